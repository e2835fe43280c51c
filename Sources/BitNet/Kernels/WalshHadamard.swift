// The fast Walsh-Hadamard transform: x <- H x / sqrt(p) for the p x p Sylvester
// Hadamard matrix, in p log p additions. Normalized, H / sqrt(p) is symmetric and
// orthogonal, so the transform is its own inverse. Used by QuIP's incoherence
// processing and by INT4 training's Hadamard quantizer.
import Foundation

enum WalshHadamard {
    /// Transforms, for every b < `interleave`, the p values x[a * interleave + b] (a < p,
    /// p a power of two) in place.
    static func transform(_ x: UnsafeMutablePointer<Float>, length p: Int, interleave m: Int = 1) {
        precondition(p > 0 && p & (p - 1) == 0, "the caller passes a power of two")
        var half = 1
        while half < p {
            for start in stride(from: 0, to: p, by: 2 * half) {
                for a in start..<(start + half) {
                    for b in 0..<m {
                        let (u, v) = (x[a * m + b], x[(a + half) * m + b])
                        x[a * m + b] = u + v
                        x[(a + half) * m + b] = u - v
                    }
                }
            }
            half *= 2
        }
        guard p > 1 else { return }
        let norm = 1 / Float(p).squareRoot()
        for i in 0..<(p * m) { x[i] *= norm }
    }

    /// The block-diagonal transform of each row of x [rows, width]: every run of `block`
    /// columns (a power of two dividing width) transformed on its own. With `source`, each
    /// row is first copied from it, on the core that transforms it, while it is in cache.
    static func blockDiagonal(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int, block: Int,
                              from source: UnsafePointer<Float>? = nil) {
        precondition(width % block == 0, "the caller checks the block size")
        Parallel.forRanges(rows, workPerItem: width * 8) { range in
            for r in range {
                if let source { (x + r * width).update(from: source + r * width, count: width) }
                if block >= 8 {
                    contiguousBlocks(x + r * width, width: width, block: block)
                } else {
                    for start in stride(from: 0, to: width, by: block) { transform(x + r * width + start, length: block) }
                }
            }
        }
    }

    /// transform() of each run of `block` >= 8 values of a row, staged so every loop runs
    /// over contiguous values: the first three butterfly stages (spans 1, 2, 4) unrolled
    /// per 8 values, the wider spans across whole runs of the row (the compiler vectorizes
    /// those; the generic recursion's short inner loops it does not).
    static func contiguousBlocks(_ x: UnsafeMutablePointer<Float>, width: Int, block: Int) {
        for g in stride(from: 0, to: width, by: 8) {
            let v = x + g
            let (a0, a1, a2, a3) = (v[0] + v[1], v[0] - v[1], v[2] + v[3], v[2] - v[3])
            let (a4, a5, a6, a7) = (v[4] + v[5], v[4] - v[5], v[6] + v[7], v[6] - v[7])
            let (b0, b1, b2, b3) = (a0 + a2, a1 + a3, a0 - a2, a1 - a3)
            let (b4, b5, b6, b7) = (a4 + a6, a5 + a7, a4 - a6, a5 - a7)
            (v[0], v[1], v[2], v[3]) = (b0 + b4, b1 + b5, b2 + b6, b3 + b7)
            (v[4], v[5], v[6], v[7]) = (b0 - b4, b1 - b5, b2 - b6, b3 - b7)
        }
        var half = 8
        while half < block {
            for start in stride(from: 0, to: width, by: 2 * half) {
                let u = x + start, w = x + start + half
                for a in 0..<half {
                    let (p, q) = (u[a], w[a])
                    u[a] = p + q
                    w[a] = p - q
                }
            }
            half *= 2
        }
        let norm = 1 / Float(block).squareRoot()
        for i in 0..<width { x[i] *= norm }
    }
}
