// The three products of a linear layer's training step on int8 operands (issue 12),
// exact in int32, on the int8 kernel (CBitKernels/int8gemm.c) with rows split over the
// cores. The kernel computes A B^T with both operands along k; the backward layouts get
// there by transposing an operand into a scratch buffer first (O(size), against the
// product's O(size x width)).
import CBitKernels
import Foundation

enum IntegerMatmul {
    /// The int8 path this CPU runs fastest.
    static let path = Int32(bitnet_s8_best_path())

    /// What the operands hold: any int8; INT4 values in [-8, 7] only; or BitLinear's
    /// activations in [-127, 127] against weights in {-1, 0, +1}. The last two have faster
    /// kernels of their own on AVX2 (the other paths run the int8 ones).
    enum Values { case int8, int4, ternaryWeights }

    /// out[n, o] = x[n, i] w[o, i]^T (the forward product), as int32 or as FP32 (exact
    /// while |sum| < 2^24).
    static func forward(_ out: UnsafeMutablePointer<Int32>, _ x: UnsafePointer<Int8>, _ w: UnsafePointer<Int8>,
                        rows n: Int, inFeatures i: Int, outFeatures o: Int, values: Values = .int8) {
        let kernel = switch values {
        case .int8: bitnet_gemm_s8
        case .int4: bitnet_gemm_s4
        case .ternaryWeights: bitnet_gemm_s8t
        }
        Parallel.forRanges(n, workPerItem: i * o) { r in
            kernel(path, x, i, w, i, out, o, Int32(r.lowerBound), Int32(r.upperBound), Int32(o), Int32(i))
        }
    }

    static func forward(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Int8>, _ w: UnsafePointer<Int8>,
                        rows n: Int, inFeatures i: Int, outFeatures o: Int, values: Values = .int8) {
        let kernel = switch values {
        case .int8: bitnet_gemm_s8_f32
        case .int4: bitnet_gemm_s4_f32
        case .ternaryWeights: bitnet_gemm_s8t_f32
        }
        Parallel.forRanges(n, workPerItem: i * o) { r in
            kernel(path, x, i, w, i, out, o, Int32(r.lowerBound), Int32(r.upperBound), Int32(o), Int32(i))
        }
    }

    /// dx[n, i] = g[n, o] w[o, i] (the activation gradient); `scratch` holds i * o.
    static func backwardInput(_ dx: UnsafeMutablePointer<Int32>, _ g: UnsafePointer<Int8>, _ w: UnsafePointer<Int8>,
                              rows n: Int, inFeatures i: Int, outFeatures o: Int, scratch: UnsafeMutablePointer<Int8>,
                              values: Values = .int8) {
        transpose(w, rows: o, cols: i, into: scratch)  // w^T [i, o]
        forward(dx, g, scratch, rows: n, inFeatures: o, outFeatures: i, values: values)
    }

    /// dw[o, i] = g[n, o]^T x[n, i] (the weight gradient); the scratches hold o * n and i * n.
    static func backwardWeight(_ dw: UnsafeMutablePointer<Int32>, _ g: UnsafePointer<Int8>, _ x: UnsafePointer<Int8>,
                               rows n: Int, inFeatures i: Int, outFeatures o: Int,
                               scratchG: UnsafeMutablePointer<Int8>, scratchX: UnsafeMutablePointer<Int8>,
                               values: Values = .int8) {
        transpose(g, rows: n, cols: o, into: scratchG)  // g^T [o, n]
        transpose(x, rows: n, cols: i, into: scratchX)  // x^T [i, n]
        forward(dw, scratchG, scratchX, rows: o, inFeatures: n, outFeatures: i, values: values)
    }

    /// out[c, r] = a[r, c] (CBitKernels/transpose_s8.c); the cores take 64-column tiles.
    /// `vectorized: false` runs the scalar path, for the tests.
    static func transpose(_ a: UnsafePointer<Int8>, rows: Int, cols: Int, into out: UnsafeMutablePointer<Int8>,
                          vectorized: Bool = true) {
        let tile = 64
        Parallel.forRanges((cols + tile - 1) / tile, workPerItem: rows * tile) { tiles in
            bitnet_transpose_s8(a, rows, cols, out, tiles.lowerBound * tile, min(tiles.upperBound * tile, cols),
                                vectorized ? 1 : 0)
        }
    }
}
