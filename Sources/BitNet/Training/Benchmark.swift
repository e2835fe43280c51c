// Training throughput (the trainer's own step, on random tokens or a data directory's
// batches), and the machine's sgemm peak to compare it with.
import Foundation

public enum Benchmark {
    /// GFLOP/s of OpenBLAS's own multi-threaded sgemm on square n x n matrices: the rate
    /// FP32 training could reach if all its time were large matrix products.
    public static func sgemmPeak(threads: Int = Parallel.cores, size n: Int = 1536, seconds: Double = 1.5) -> Double {
        Matmul.withOpenBLASThreads(threads) { measureSgemm(size: n, seconds: seconds) }
    }

    private static func measureSgemm(size n: Int, seconds: Double) -> Double {
        var rng = Xoshiro256(seed: 1)
        let a = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        let b = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: n * n)
        defer {
            a.deallocate()
            b.deallocate()
            c.deallocate()
        }
        for i in 0..<n * n {
            a[i] = rng.normal()
            b[i] = rng.normal()
        }
        Matmul.forward(c, a, b, rows: n, inFeatures: n, outFeatures: n)  // warm-up
        var best = 0.0
        let start = Date()
        repeat {
            let t0 = Date()
            Matmul.forward(c, a, b, rows: n, inFeatures: n, outFeatures: n)
            best = max(best, 2 * Double(n * n * n) / Date().timeIntervalSince(t0) / 1e9)
        } while Date().timeIntervalSince(start) < seconds
        return best
    }

    public struct Result: Sendable {
        public var mode: WeightMode
        public var tokensPerSecond: Double
        public var gflops: Double
        public var secondsPerStep: Double
        public var steps: Int
        public var peakMemoryBytes: Int
        public var estimatedMemoryBytes: Int
        /// The training loss of every step, the warm-up's first: the same numbers `train`
        /// logs for the same config and data.
        public var losses: [Double]
    }

    /// Times full optimizer steps, the very step `train` runs (TrainingSession), from a
    /// fresh model on `source`, and reports the median step.
    public static func training(config: RunConfig, steps: Int, warmup: Int = 2,
                                source: BatchSource = .randomTokens) throws -> Result {
        let m = config.model, t = config.training
        let session = TrainingSession(config: config)
        var losses: [Double] = []
        for _ in 0..<warmup { losses.append(try session.step(from: source).loss) }
        // The median step time: a shared virtual machine's hiccups hit single steps.
        var times: [Double] = []
        for _ in 0..<steps {
            let start = Date()
            losses.append(try session.step(from: source).loss)
            times.append(Date().timeIntervalSince(start))
        }
        times.sort()
        let median = times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
        let tokensPerSecond = Double(t.batchSize * m.context) / median
        return Result(mode: m.mode, tokensPerSecond: tokensPerSecond,
                      gflops: tokensPerSecond * m.trainingFlopsPerToken / 1e9, secondsPerStep: median,
                      steps: steps, peakMemoryBytes: peakResidentBytes(),
                      estimatedMemoryBytes: Transformer.trainingBytes(config: m, batch: t.microBatchSize, storage: t.activationStorage),
                      losses: losses)
    }

    /// The process's peak resident set size (Linux VmHWM), 0 where unavailable.
    public static func peakResidentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
            return kb * 1024
        }
        return 0
    }
}
