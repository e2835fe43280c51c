// FP32 matrix products through OpenBLAS: where the time goes.
//
// OpenBLAS runs single-threaded and we split each product across the cores ourselves,
// by rows of the output. One threading system means no OpenBLAS worker threads spinning
// while our own loops run, several small products (attention heads) can run at once,
// and the split depends only on the shapes and the thread count, so results are
// reproducible. (Not across thread counts: OpenBLAS's rounding depends on where a
// product's rows are cut.)
import COpenBLAS

public enum Matmul {
    private static let singleThreadedBLAS: Void = { openblas_set_num_threads(1) }()

    /// Calls `body` on row ranges of 0..<rows: one per core when each gets at least
    /// `minimumFlops` of work, else one range.
    static func splitRows(_ rows: Int, flopsPerRow: Int, minimumFlops: Int = 4_000_000, _ body: (Range<Int>) -> Void) {
        _ = singleThreadedBLAS
        let parts = min(Parallel.threads, max(1, rows * flopsPerRow / minimumFlops), rows)
        if parts <= 1 {
            body(0..<rows)
            return
        }
        Parallel.forEach(parts) { part in body(rows * part / parts..<rows * (part + 1) / parts) }
    }

    /// out[N, O] (+)= inp[N, I] @ weight[O, I]^T * alpha.
    public static func forward(
        _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
        rows n: Int, inFeatures i: Int, outFeatures o: Int, alpha: Float = 1, accumulate: Bool = false
    ) {
        splitRows(n, flopsPerRow: 2 * i * o) { r in
            gemm(transA: false, transB: true, m: r.count, n: o, k: i, alpha: alpha, inp + r.lowerBound * i, lda: i,
                 weight, ldb: i, beta: accumulate ? 1 : 0, out + r.lowerBound * o, ldc: o)
        }
    }

    /// dinp[N, I] (+)= dout[N, O] @ weight[O, I] * alpha.
    public static func backwardInput(
        _ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
        rows n: Int, inFeatures i: Int, outFeatures o: Int, alpha: Float = 1, accumulate: Bool = true
    ) {
        splitRows(n, flopsPerRow: 2 * i * o) { r in
            gemm(transA: false, transB: false, m: r.count, n: i, k: o, alpha: alpha, dout + r.lowerBound * o, lda: o,
                 weight, ldb: i, beta: accumulate ? 1 : 0, dinp + r.lowerBound * i, ldc: i)
        }
    }

    /// dweight[O, I] += dout[N, O]^T @ inp[N, I], split by rows of dweight.
    public static func backwardWeight(
        _ dweight: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>,
        rows n: Int, inFeatures i: Int, outFeatures o: Int
    ) {
        splitRows(o, flopsPerRow: 2 * i * n) { r in
            gemm(transA: true, transB: false, m: r.count, n: i, k: n, alpha: 1, dout + r.lowerBound, lda: o,
                 inp, ldb: i, beta: 1, dweight + r.lowerBound * i, ldc: i)
        }
    }

    /// One single-threaded row-major product C[M, N] = alpha * op(A) @ op(B) + beta * C
    /// with explicit leading dimensions (attention works on strided per-head views).
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        _ a: UnsafePointer<Float>, lda: Int, _ b: UnsafePointer<Float>, ldb: Int,
        beta: Float, _ c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        _ = singleThreadedBLAS
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

    /// OpenBLAS's own multi-threaded sgemm, for measuring the machine's peak only.
    public static func withOpenBLASThreads<R>(_ threads: Int, _ body: () throws -> R) rethrows -> R {
        _ = singleThreadedBLAS
        openblas_set_num_threads(Int32(threads))
        defer { openblas_set_num_threads(1) }
        return try body()
    }
}
