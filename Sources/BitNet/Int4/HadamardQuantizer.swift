// The Hadamard quantizer (HQ) of "Training Transformers with 4-bit Integers" (Xi et al.
// 2023): a few feature columns of a Transformer's activations are outliers, and rounding
// a whole tensor to 16 levels spends them all on those columns. A block-diagonal
// Hadamard transform H (normalized, orthogonal) spreads each outlier over its block, so
// X H has a far narrower range than X; since X W^T = (X H)(W H)^T, both operands are
// transformed along the shared feature dimension and quantized there (LSQ, INT4).
import Foundation

struct HadamardQuantizer {
    /// Columns per Hadamard block (a power of two dividing the width).
    let block: Int

    /// x [rows, width] -> codes of q(x H) and their dequantized values (still in the
    /// transformed basis, as the integer product takes them).
    func quantize(_ x: UnsafePointer<Float>, rows: Int, width: Int, step: Float, transformed: UnsafeMutablePointer<Float>,
                  dequantized: UnsafeMutablePointer<Float>, codes: UnsafeMutablePointer<Int8>?) {
        transformed.update(from: x, count: rows * width)
        WalshHadamard.blockDiagonal(transformed, rows: rows, width: width, block: block)
        LearnedStepQuantizer.forward(transformed, count: rows * width, step: step, out: dequantized, codes: codes)
    }

    /// Back to the original basis: y H (H is its own inverse).
    func restore(_ y: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
        WalshHadamard.blockDiagonal(y, rows: rows, width: width, block: block)
    }
}
