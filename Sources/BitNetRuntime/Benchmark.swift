// `bitnet-run --bench`: prompt processing and generation speed on random token ids,
// in the manner of `llama-bench -p 128 -n 128`, plus what bounds it: the bytes a
// generated token must read and the machine's measured read bandwidth.
import BitNetFormat
import BitNetSampling
import CBitKernels
import Foundation

public struct RuntimeBenchmarkResult: Sendable {
    public var promptTokens: Int
    public var genTokens: Int
    public var repetitions: Int
    /// Median over the repetitions.
    public var promptTokensPerSecond: Double
    public var genTokensPerSecond: Double
    public var promptRange: ClosedRange<Double>
    public var genRange: ClosedRange<Double>
    public var msPerGenToken: Double { 1000 / genTokensPerSecond }
}

public enum RuntimeBenchmark {
    /// Which product kernels run: "avx2" or "scalar".
    public static var kernel: String { bitnet_kernels_use_avx2() != 0 ? "avx2" : "scalar" }

    /// `repetitions` runs of: a `promptTokens` prompt in batched steps, then
    /// `genTokens` single-token steps (the model's forward, no sampling), after one warm-up run.
    public static func run(model: Model, promptTokens: Int, genTokens: Int, repetitions: Int, seed: UInt64 = 1,
                           progress: (String) -> Void = { _ in }) -> RuntimeBenchmarkResult {
        precondition(promptTokens >= 1 && genTokens >= 1 && promptTokens + genTokens <= model.context)
        var rng = SplitMix64(seed: seed)
        let vocab = UInt64(model.config.vocabSize)
        func randomTokens(_ n: Int) -> [Int32] { (0..<n).map { _ in Int32(rng.next() % vocab) } }
        var prompt: [Double] = [], gen: [Double] = []
        for repetition in 0...repetitions {
            let tokens = randomTokens(promptTokens + genTokens)
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = model.forward(tokens: Array(tokens[..<promptTokens]), start: 0)
            let t1 = DispatchTime.now().uptimeNanoseconds
            for i in 0..<genTokens { _ = model.forward(token: tokens[promptTokens + i], pos: promptTokens + i) }
            let t2 = DispatchTime.now().uptimeNanoseconds
            let pp = Double(promptTokens) / (Double(t1 - t0) / 1e9), tg = Double(genTokens) / (Double(t2 - t1) / 1e9)
            progress(repetition == 0 ? String(format: "warm-up: prompt %.1f tok/s, generation %.2f tok/s", pp, tg)
                                     : String(format: "run %d/%d: prompt %.1f tok/s, generation %.2f tok/s", repetition, repetitions, pp, tg))
            if repetition > 0 {
                prompt.append(pp)
                gen.append(tg)
            }
        }
        func median(_ v: [Double]) -> Double {
            let s = v.sorted()
            return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
        return RuntimeBenchmarkResult(promptTokens: promptTokens, genTokens: genTokens, repetitions: repetitions,
                                      promptTokensPerSecond: median(prompt), genTokensPerSecond: median(gen),
                                      promptRange: prompt.min()!...prompt.max()!, genRange: gen.min()!...gen.max()!)
    }

    /// Read bandwidth in bytes per second with `threads` threads each summing its share
    /// of a buffer far larger than the caches; the best of five passes.
    public static func readBandwidth(threads: Int, bytes: Int = 1 << 30) -> Double {
        let words = bytes / 8
        let buffer = UnsafeMutablePointer<UInt64>.allocate(capacity: words)
        defer { buffer.deallocate() }
        for i in 0..<words { buffer[i] = UInt64(i) }  // touch every page first
        let pool = WorkerPool(threads: threads)
        var best = 0.0
        for _ in 0..<5 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            pool.run { worker in
                let begin = words * worker / threads, end = words * (worker + 1) / threads
                blackHole(bitnet_read_sum(buffer + begin, end - begin))
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            best = max(best, Double(words * 8) / seconds)
        }
        return best
    }

    /// The look-up-table product alone, on one thread, for one token: nanoseconds per
    /// 64-byte tile and bytes of plane read per second, for a plane of `rows` x `cols`
    /// random bits (small enough to stay in cache, or far larger than the caches).
    public static func productKernel(rows: Int, cols: Int, seconds: Double = 1) -> (nsPerTile: Double, bytesPerSecond: Double) {
        let geometry = TiledPlanes(rows: rows, cols: cols)
        let blocks = geometry.blocks, tiles = geometry.tiles, planeBytes = geometry.planeBytes
        var rng = SplitMix64(seed: 3)
        let plane = UnsafeMutablePointer<UInt64>.allocate(capacity: planeBytes / 8)
        defer { plane.deallocate() }
        for i in 0..<planeBytes / 8 { plane[i] = rng.next() }
        let q = (0..<cols).map { _ in Int8(truncatingIfNeeded: Int(rng.next() % 255) - 127) }
        var tables = [UInt8](repeating: 0, count: PackedBitLinear.tableBytes(cols: cols))
        _ = tables.withUnsafeMutableBufferPointer { PackedBitLinear.prepare(q, cols: cols, tables: $0.baseAddress!) }
        var sums = [Int32](repeating: 0, count: blocks * 32)
        var passes = 0
        let start = DispatchTime.now().uptimeNanoseconds
        var elapsed = 0.0
        repeat {
            bitnet_plane_sums(UnsafeRawPointer(plane).assumingMemoryBound(to: UInt8.self), 0, Int32(blocks), Int32(tiles),
                              tables, 0, 1, &sums, 0)
            passes += 1
            elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        } while elapsed < seconds
        return (elapsed / Double(passes * blocks * tiles) * 1e9, Double(passes * planeBytes) / elapsed)
    }

    /// Bytes a generated token reads at least: every packed weight, the head (as the model
    /// holds it), the norms; not the embedding's rows or the KV cache.
    public static func bytesPerToken(_ model: Model) -> Int {
        let head = model.weights.head.name
        return model.file.tensors.values.filter { $0.name != "embedding.weight" && $0.name != head }.reduce(0) { $0 + $1.length }
            + model.head.bytesPerToken
    }

    /// Stored bits per BitLinear weight (padding included).
    public static func bitsPerWeight(_ model: Model) -> Double {
        let packed = model.file.tensors.values.filter { $0.type == .binary || $0.type == .ternary }
        let bits = packed.reduce(0) { $0 + 8 * $1.length }, weights = packed.reduce(0) { $0 + $1.rows * $1.cols }
        return Double(bits) / Double(weights)
    }

    /// Peak resident memory of this process so far.
    public static func peakResidentBytes() -> Int {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return usage.ru_maxrss * 1024  // kilobytes on Linux
    }
}

@inline(never) func blackHole(_ value: UInt64) {
    if value == 0x1234_5678_9ABC_DEF0 { try? FileHandle.standardError.write(contentsOf: Data("\n".utf8)) }
}
