// Causal multi-head self-attention, forward and backward (RoPE is applied before, in Rope.swift).
import BitNetMath
import Foundation

/// Causal attention, with grouped-query attention when `kvHeads` < `heads`: query head
/// h reads key/value head h / (heads / kvHeads). Shapes: q, out [B*T, C] (heads side by
/// side in C); k, v [B*T, KV] with KV = kvHeads * C / heads; probs [B, NH, T, T] (row i
/// holds softmax weights over keys j <= i, zeros above).
public enum Attention {
    public static func forward(
        out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>, q: UnsafePointer<Float>,
        k: UnsafePointer<Float>, v: UnsafePointer<Float>, batch b: Int, length t: Int, width c: Int, heads nh: Int,
        kvHeads: Int? = nil
    ) {
        let hd = c / nh, nkv = kvHeads ?? nh, kvWidth = nkv * hd, group = nh / nkv
        let scale = 1 / Float(hd).squareRoot()
        // Heads are independent: they run side by side, each product single-threaded.
        Parallel.forEach(b * nh) { pair in
            let bi = pair / nh, h = pair % nh
            let p = probs + pair * t * t
            let base = bi * t * c + h * hd, kvBase = bi * t * kvWidth + h / group * hd
            // scores[i, j] = q_i . k_j / sqrt(hd)
            Matmul.gemm(transA: false, transB: true, m: t, n: t, k: hd, alpha: scale, q + base, lda: c,
                        k + kvBase, ldb: kvWidth, beta: 0, p, ldc: t)
            causalSoftmax(p, length: t)
            Matmul.gemm(transA: false, transB: false, m: t, n: hd, k: t, alpha: 1, p, lda: t,
                        v + kvBase, ldb: kvWidth, beta: 0, out + base, ldc: c)
        }
    }

    /// Row-wise softmax over j <= i; entries above the diagonal become 0.
    static func causalSoftmax(_ p: UnsafeMutablePointer<Float>, length t: Int) {
        for i in 0..<t {
            let row = p + i * t
            Softmax.inPlace(row, i + 1)
            for j in (i + 1)..<t { row[j] = 0 }
        }
    }

    /// dq, dk, dv += gradients given dout. `scratch` holds B*NH*T*T floats.
    public static func backward(
        dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
        dout: UnsafePointer<Float>, probs: UnsafePointer<Float>, q: UnsafePointer<Float>, k: UnsafePointer<Float>,
        v: UnsafePointer<Float>, batch b: Int, length t: Int, width c: Int, heads nh: Int, kvHeads: Int? = nil,
        scratch: UnsafeMutablePointer<Float>
    ) {
        let hd = c / nh, nkv = kvHeads ?? nh, kvWidth = nkv * hd, group = nh / nkv
        let scale = 1 / Float(hd).squareRoot()
        // The query heads of one key/value head add into the same dk and dv: a group runs
        // on one thread, groups side by side.
        Parallel.forEach(b * nkv) { kvPair in
            for h in kvPair % nkv * group..<(kvPair % nkv + 1) * group {
                let bi = kvPair / nkv, pair = bi * nh + h
                let p = probs + pair * t * t
                let base = bi * t * c + h * hd, kvBase = bi * t * kvWidth + h / group * hd
                let dp = scratch + pair * t * t
                // dP = dout @ v^T; dv += P^T @ dout
                Matmul.gemm(transA: false, transB: true, m: t, n: t, k: hd, alpha: 1, dout + base, lda: c,
                            v + kvBase, ldb: kvWidth, beta: 0, dp, ldc: t)
                Matmul.gemm(transA: true, transB: false, m: t, n: hd, k: t, alpha: 1, p, lda: t,
                            dout + base, ldb: c, beta: 1, dv + kvBase, ldc: kvWidth)
                // dS = P * (dP - sum_j P * dP): the softmax Jacobian, row by row.
                for i in 0..<t {
                    let pr = p + i * t, dr = dp + i * t
                    var dot: Float = 0
                    for j in 0...i { dot += pr[j] * dr[j] }
                    for j in 0...i { dr[j] = pr[j] * (dr[j] - dot) }
                    for j in (i + 1)..<t { dr[j] = 0 }
                }
                // dq += dS @ k * scale; dk += dS^T @ q * scale
                Matmul.gemm(transA: false, transB: false, m: t, n: hd, k: t, alpha: scale, dp, lda: t,
                            k + kvBase, ldb: kvWidth, beta: 1, dq + base, ldc: c)
                Matmul.gemm(transA: true, transB: false, m: t, n: hd, k: t, alpha: scale, dp, lda: t,
                            q + base, ldb: c, beta: 1, dk + kvBase, ldc: kvWidth)
            }
        }
    }
}
