// FP32 matrix products of the linear layers through OpenBLAS: where the time goes.
import COpenBLAS

public enum Matmul {
    /// out[N, O] (+)= inp[N, I] @ weight[O, I]^T * alpha.
    public static func forward(
        _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
        rows n: Int, inFeatures i: Int, outFeatures o: Int, alpha: Float = 1, accumulate: Bool = false
    ) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(o), Int32(i),
                    alpha, inp, Int32(i), weight, Int32(i), accumulate ? 1 : 0, out, Int32(o))
    }

    /// dinp[N, I] += dout[N, O] @ weight[O, I] * alpha.
    public static func backwardInput(
        _ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
        rows n: Int, inFeatures i: Int, outFeatures o: Int, alpha: Float = 1
    ) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(i), Int32(o),
                    alpha, dout, Int32(o), weight, Int32(i), 1, dinp, Int32(i))
    }

    /// dweight[O, I] += dout[N, O]^T @ inp[N, I].
    public static func backwardWeight(
        _ dweight: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>,
        rows n: Int, inFeatures i: Int, outFeatures o: Int
    ) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(o), Int32(i), Int32(n),
                    1, dout, Int32(o), inp, Int32(i), 1, dweight, Int32(i))
    }

    /// General row-major product C[M, N] = alpha * op(A) @ op(B) + beta * C with
    /// explicit leading dimensions (attention works on strided per-head views).
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
        beta: Float, _ c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// The naive triple loop that `forward` must agree with (tests only).
    public static func naiveForward(
        _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
        rows n: Int, inFeatures i: Int, outFeatures o: Int
    ) {
        for r in 0..<n {
            for c in 0..<o {
                var sum: Double = 0
                for k in 0..<i { sum += Double(inp[r * i + k]) * Double(weight[c * i + k]) }
                out[r * o + c] = Float(sum)
            }
        }
    }

    public static var threads: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }
}
