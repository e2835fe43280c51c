// RMSNorm and LayerNorm over the last dimension, forward and backward
// (the block norms, the final norm, and BitLinear's SubLN).
import BitNetMath

/// Shapes: inp, out [N, C]; gain, bias [C]; mean, rstd [N] (saved for backward).
public enum Norm {
    public static func forward(
        _ kind: NormKind, out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
        rstd: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, gain: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, rows n: Int, width c: Int, epsilon: Float
    ) {
        Parallel.forRanges(n, workPerItem: c) { rows in
            for r in rows {
                (mean[r], rstd[r]) = forwardRow(kind, out: out + r * c, inp: inp + r * c, gain: gain, bias: bias,
                                                width: c, epsilon: epsilon)
            }
        }
    }

    /// One row: y = (x - mean) * rstd * gain (+ bias); returns (mean, rstd). RMSNorm's
    /// mean is 0.
    @inline(__always)
    static func forwardRow(
        _ kind: NormKind, out y: UnsafeMutablePointer<Float>, inp x: UnsafePointer<Float>, gain: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, width c: Int, epsilon: Float
    ) -> (Float, Float) {
        let (m, s) = RowNorm.statistics(x, count: c, centred: kind == .layer, epsilon: epsilon)
        RowNorm.apply(out: y, x: x, mean: m, scale: s, gain: gain, bias: bias, count: c)
        return (m, s)
    }

    /// dinp += d/dinp; dgain (and dbias) += their gradients. For LayerNorm
    /// dx = rstd * (g*dy - mean(g*dy) - xhat * mean(g*dy * xhat)); RMSNorm drops
    /// the mean term (its "mean" is 0).
    public static func backward(
        _ kind: NormKind, dinp: UnsafeMutablePointer<Float>, dgain: UnsafeMutablePointer<Float>,
        dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
        gain: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, rows n: Int, width c: Int
    ) {
        // One pass over the rows in a fixed number of chunks; each chunk sums its rows'
        // parameter gradients into its own partial, and the partials are added in chunk
        // order, so the result does not depend on threading.
        let chunks = min(8, n)
        let partial = UnsafeMutablePointer<Float>.allocate(capacity: chunks * 2 * c)
        partial.initialize(repeating: 0, count: chunks * 2 * c)
        defer { partial.deallocate() }
        Parallel.forEach(chunks) { chunk in
            let pg = partial + chunk * 2 * c, pb = pg + c
            for r in n * chunk / chunks..<n * (chunk + 1) / chunks {
                let x = inp + r * c, dy = dout + r * c, dx = dinp + r * c
                let m = mean[r], s = rstd[r]
                // Sixteen lanes by hand: the two sums would keep the plain loop scalar.
                var lanesG = SIMD16<Float>(repeating: 0), lanesGX = SIMD16<Float>(repeating: 0)
                var i = 0
                while i + 16 <= c {
                    let dyv = Lanes.load(dy + i), xhat = (Lanes.load(x + i) - m) * s, g = dyv * Lanes.load(gain + i)
                    lanesG += g
                    lanesGX += g * xhat
                    Lanes.store(Lanes.load(pg + i) + dyv * xhat, to: pg + i)
                    Lanes.store(Lanes.load(pb + i) + dyv, to: pb + i)
                    i += 16
                }
                var sumG = lanesG.sum(), sumGX = lanesGX.sum()
                while i < c {
                    let xhat = (x[i] - m) * s
                    let g = dy[i] * gain[i]
                    sumG += g
                    sumGX += g * xhat
                    pg[i] += dy[i] * xhat
                    pb[i] += dy[i]
                    i += 1
                }
                let meanG = kind == .layer ? sumG / Float(c) : 0
                let meanGX = sumGX / Float(c)
                for i in 0..<c {
                    let xhat = (x[i] - m) * s
                    dx[i] += s * (dy[i] * gain[i] - meanG - xhat * meanGX)
                }
            }
        }
        for chunk in 0..<chunks {
            let pg = partial + chunk * 2 * c, pb = pg + c
            for i in 0..<c { dgain[i] += pg[i] }
            if let dbias { for i in 0..<c { dbias[i] += pb[i] } }
        }
    }
}
