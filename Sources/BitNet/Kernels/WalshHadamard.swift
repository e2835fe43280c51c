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
    /// columns (a power of two dividing width) transformed on its own.
    static func blockDiagonal(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int, block: Int) {
        precondition(width % block == 0, "the caller checks the block size")
        Parallel.forRanges(rows, workPerItem: width * 8) { range in
            for r in range {
                for start in stride(from: 0, to: width, by: block) { transform(x + r * width + start, length: block) }
            }
        }
    }
}
