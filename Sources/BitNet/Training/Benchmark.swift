// Training throughput (the trainer's own step, on random tokens or a data directory's
// batches), and the machine's sgemm peak to compare it with; the int8 product against sgemm.
import CBitKernels
import Foundation

public enum Benchmark {
    /// GFLOP/s of OpenBLAS's own multi-threaded sgemm on square n x n matrices: the rate
    /// FP32 training could reach if all its time were large matrix products.
    public static func sgemmPeak(threads: Int = Parallel.threads, size n: Int = 1536, seconds: Double = 1.5) -> Double {
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
        let session = try TrainingSession(config: config)
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

// MARK: The int8 product against sgemm

extension Benchmark {
    /// One forward product shape timed on each int8 path and with sgemm, same threads.
    public struct ProductTiming: Sendable {
        public var rows: Int, inFeatures: Int, outFeatures: Int
        /// Giga-operations per second (2 per multiply-add) by path name, best of the runs.
        public var integer: [(path: String, gops: Double)]
        public var sgemmGflops: Double
    }

    /// The int8 limit of this machine in GOP/s: a register-only `vpdpbusd` loop on every
    /// core at once (nil without AVX-512 VNNI).
    public static func vnniPeakGops() -> Double? {
        guard bitnet_s8_path_supported(Int32(BITNET_S8_AVX512VNNI)) != 0 else { return nil }
        let cores = Parallel.threads
        var rates = [Double](repeating: 0, count: cores)
        rates.withUnsafeMutableBufferPointer { out in
            guard let base = out.baseAddress else { return }
            Parallel.forEach(cores) { (base + $0).pointee = bitnet_vnni_peak_ops(50_000_000) }
        }
        return rates.reduce(0, +) / 1e9
    }

    public static let integerPathNames = [(Int32(BITNET_S8_SCALAR), "scalar"), (Int32(BITNET_S8_AVX2), "avx2"),
                                          (Int32(BITNET_S8_AVXVNNI), "avx-vnni"), (Int32(BITNET_S8_AVX512VNNI), "avx512-vnni")]

    /// BitLinear's forward products of `config` (rows = micro-batch x context; each
    /// distinct projection shape) on every int8 path this CPU has against sgemm on the
    /// same values as floats, both split over all cores as training splits them.
    public static func integerProducts(config: RunConfig, seconds: Double = 0.5) -> [ProductTiming] {
        let n = config.training.microBatchSize * config.model.context
        let layer = ParameterLayout(config: config.model).layers[0]
        var shapes: [(Int, Int)] = []
        for p in layer.projections where !shapes.contains(where: { $0 == (p.inFeatures, p.outFeatures) }) {
            shapes.append((p.inFeatures, p.outFeatures))
        }
        var rng = Xoshiro256(seed: 2)
        return shapes.map { (i, o) in
            let x = (0..<n * i).map { _ in Int8(truncatingIfNeeded: rng.below(255) - 127) }
            let w = (0..<o * i).map { _ in Int8(truncatingIfNeeded: rng.below(3) - 1) }
            let xf = x.map(Float.init), wf = w.map(Float.init)
            var out = [Float](repeating: 0, count: n * o)
            let operations = 2 * Double(n) * Double(i) * Double(o)
            func rate(_ body: () -> Void) -> Double {
                body()  // warm-up
                var best = 0.0
                let start = Date()
                repeat {
                    let t0 = Date()
                    body()
                    best = max(best, operations / Date().timeIntervalSince(t0) / 1e9)
                } while Date().timeIntervalSince(start) < seconds
                return best
            }
            var integer: [(String, Double)] = []
            for (path, name) in integerPathNames where bitnet_s8_path_supported(path) != 0 {
                integer.append((name, rate {
                    Parallel.forRanges(n, workPerItem: i * o) { rows in
                        bitnet_gemm_s8_f32(path, x, i, w, i, &out, o, Int32(rows.lowerBound), Int32(rows.upperBound), Int32(o), Int32(i))
                    }
                }))
            }
            // BitLinear's operands (these) on the best path's ternary-weight kernel, and INT4
            // operands (the int4 mode's) on its INT4 kernel.
            integer.append(("ternary-weights", rate {
                IntegerMatmul.forward(&out, x, w, rows: n, inFeatures: i, outFeatures: o, values: .ternaryWeights)
            }))
            let x4 = x.map { $0 / 16 }, w4 = (0..<o * i).map { _ in Int8(truncatingIfNeeded: rng.below(16) - 8) }
            integer.append(("int4", rate {
                IntegerMatmul.forward(&out, x4, w4, rows: n, inFeatures: i, outFeatures: o, values: .int4)
            }))
            let sgemm = rate { Matmul.forward(&out, xf, wf, rows: n, inFeatures: i, outFeatures: o) }
            return ProductTiming(rows: n, inFeatures: i, outFeatures: o, integer: integer, sgemmGflops: sgemm)
        }
    }
}

// MARK: The int4 linear operator against FP32

extension Benchmark {
    /// One projection shape's whole training operator (forward and both backward
    /// products, with every quantization step) timed three ways, in milliseconds.
    public struct OperatorTiming: Sendable {
        public var rows: Int, inFeatures: Int, outFeatures: Int
        /// FP32: sgemm forward, activation gradient and weight gradient.
        public var fp32: Double
        /// int4: Hadamard quantizer + INT4 forward, bit splitting + leverage-score sampling backward.
        public var int4: Double
        /// int4 with the FP32 backward (`--int4-backward exact`).
        public var int4Exact: Double
    }

    /// The int4 operator of every distinct projection shape of `config` (rows = micro-batch
    /// x context) against the FP32 operator on the same values, both on all cores.
    public static func int4Operator(config: RunConfig, seconds: Double = 0.5) -> [OperatorTiming] {
        let n = config.training.microBatchSize * config.model.context
        var shapes: [(Int, Int)] = []
        for p in ParameterLayout(config: config.model).layers[0].projections where !shapes.contains(where: { $0 == (p.inFeatures, p.outFeatures) }) {
            shapes.append((p.inFeatures, p.outFeatures))
        }
        let block = config.model.hadamardBlockSize
        var rng = Xoshiro256(seed: 3)
        return shapes.map { (i, o) in
            func floats(_ count: Int, _ scale: Float) -> UnsafeMutablePointer<Float> {
                let p = UnsafeMutablePointer<Float>.allocate(capacity: count)
                for k in 0..<count { p[k] = rng.normal() * scale }
                return p
            }
            let x = floats(n * i, 1), g = floats(n * o, 1e-3), params = floats(o * i + 2, 0.02)
            let out = floats(n * o, 0), dx = floats(n * i, 0), dparams = floats(o * i + 2, 0)
            let a = floats(n * i, 0), b = floats(n * i, 0), transformed = floats(o * i, 0)
            let codes = UnsafeMutablePointer<Int8>.allocate(capacity: o * i), transposed = UnsafeMutablePointer<Int8>.allocate(capacity: o * i)
            defer {
                for p in [x, g, params, out, dx, dparams, a, b, transformed] { p.deallocate() }
                codes.deallocate()
                transposed.deallocate()
            }
            let steps = StepSlots(input: o * i, weight: o * i + 1)
            var slots = BitLinearSlots(weight: 0, subNorm: nil, inFeatures: i, outFeatures: o, index: 0)
            slots.steps = steps
            Int4Linear.transform(params, into: transformed, rows: o, width: i, block: block)
            params[o * i] = 0
            params[o * i + 1] = LearnedStepQuantizer.initialStep(transformed, count: o * i)
            Int4Linear.encodeWeight(transformed, rows: o, cols: i, step: params[o * i + 1], codes: codes, transposed: transposed)
            let weight = Int4Weight(transformed: transformed, codes: codes, transposedCodes: transposed, step: params[o * i + 1])
            let workspace = Int4Workspace(rows: n, wide: max(i, o))
            var seed: UInt64 = 0
            func int4(_ mode: Int4Backward) {
                Int4Linear.forward(out: out, inp: x, params: params, slots: slots, steps: steps, weight: weight, block: block,
                                   rows: n, sequenceLength: config.model.context, scratch: a, workspace: workspace)
                seed &+= 1
                Int4Linear.backward(dinp: dx, dparams: dparams, dout: g, inp: x, params: params, slots: slots, steps: steps,
                                    weight: weight, block: block, mode: mode, seed: seed, rows: n,
                                    sequenceLength: config.model.context, scratchA: a, scratchB: b, workspace: workspace)
            }
            func milliseconds(_ body: () -> Void) -> Double {
                body()  // warm-up
                var best = Double.infinity
                let start = Date()
                repeat {
                    let t0 = Date()
                    body()
                    best = min(best, Date().timeIntervalSince(t0) * 1000)
                } while Date().timeIntervalSince(start) < seconds
                return best
            }
            let fp32 = milliseconds {
                Matmul.forward(out, x, params, rows: n, inFeatures: i, outFeatures: o)
                Matmul.backwardInput(dx, g, params, rows: n, inFeatures: i, outFeatures: o)
                Matmul.backwardWeight(dparams, g, x, rows: n, inFeatures: i, outFeatures: o)
            }
            return OperatorTiming(rows: n, inFeatures: i, outFeatures: o, fp32: fp32, int4: milliseconds { int4(.lss) },
                                  int4Exact: milliseconds { int4(.exact) })
        }
    }
}
