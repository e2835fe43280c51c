// The BitNet quantizers, defined once: absmax int8 activations (BitNet eq. 4-5),
// Sign-binarized weights (eq. 1-3) and absmean ternary weights (BitNet b1.58 eq. 1-3).
// docs/FORMAT.md restates these rules for the runtime, which must match them exactly.

import BitNetMath
import BitNetFormat

public enum Quantizers {
    /// Qb = 2^(b-1) - 1 for b = 8 bits.
    public static let activationLevels: Float = 127
    /// Floor of the absmax scale, so an all-zero row quantizes to zeros.
    public static let minimumAbsmax: Float = 1e-5
    /// Added to mean |W| before dividing in the ternary rule (b1.58's epsilon).
    public static let ternaryEpsilon: Float = 1e-6

    // MARK: Activations

    /// gamma = max |x| over each row (per token) or over each sequence of `t` rows (per
    /// tensor: the tensor one sequence's inference computes, so sequences in a batch do
    /// not change each other's quantization); writes one gamma per row either way.
    /// Shapes: inp [N, C] with N a multiple of t, gamma [N].
    public static func absmax(
        gamma: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, rows n: Int, width c: Int,
        scaling: ActivationScaling, sequenceLength t: Int
    ) {
        Parallel.forRanges(n, workPerItem: c) { rows in
            for r in rows { gamma[r] = absmaxRow(inp + r * c, width: c) }
        }
        if scaling == .perTensor { shareSequenceMaximum(gamma, rows: n, sequenceLength: t) }
    }

    @inline(__always)
    static func absmaxRow(_ x: UnsafePointer<Float>, width c: Int) -> Float {
        max(Reduce.maximumMagnitude(x, c), minimumAbsmax)
    }

    /// Per-tensor scaling: every row's gamma becomes the largest of its sequence's rows.
    static func shareSequenceMaximum(_ gamma: UnsafeMutablePointer<Float>, rows n: Int, sequenceLength t: Int) {
        for start in stride(from: 0, to: n, by: t) {
            let end = min(start + t, n)
            var m: Float = 0
            for r in start..<end { m = max(m, gamma[r]) }
            for r in start..<end { gamma[r] = m }
        }
    }

    /// x~ = round(clip(x * Qb / gamma, -Qb, Qb)), rounding half to even, as integer-valued
    /// floats (for the FP32 product) and as Int8 (kept for the backward pass).
    public static func quantizeActivations(
        out: UnsafeMutablePointer<Float>, saved: UnsafeMutablePointer<Int8>?, inp: UnsafePointer<Float>,
        gamma: UnsafePointer<Float>, rows n: Int, width c: Int
    ) {
        Parallel.forRanges(n, workPerItem: c) { rows in
            for r in rows {
                quantizeRow(out: out + r * c, saved: saved.map { $0 + r * c }, inp: inp + r * c, gamma: gamma[r], width: c)
            }
        }
    }

    /// Post-training activation quantization of an fp model (the PTQ baselines' W-A rows):
    /// each row of inp [N, C] rounded to `bits`-bit signed codes with its own absmax,
    /// then scaled back: out = round(clip(x Qb / gamma, -Qb, Qb)) gamma / Qb.
    public static func fakeQuantizeRows(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, rows n: Int, width c: Int,
                                        bits: Int) {
        let qb = Float((1 << (bits - 1)) - 1)
        Parallel.forRanges(n, workPerItem: c) { rows in
            for r in rows {
                let x = inp + r * c, y = out + r * c, gamma = absmaxRow(x, width: c)
                let scale = qb / gamma, inverse = gamma / qb
                for i in 0..<c { y[i] = (min(max(x[i] * scale, -qb), qb)).rounded(.toNearestOrEven) * inverse }
            }
        }
    }

    @inline(__always)
    static func quantizeRow(out q: UnsafeMutablePointer<Float>, saved: UnsafeMutablePointer<Int8>?,
                            inp x: UnsafePointer<Float>, gamma: Float, width c: Int) {
        let qb = activationLevels
        let scale = qb / gamma
        // Adding 1.5 * 2^23 rounds half to even (the FPU's mode) and leaves the integer
        // in the low mantissa bits, so the Int8 is a truncation: no checked conversion,
        // which would trap and keep the loop from vectorizing.
        let magic: Float = 12_582_912
        if let s = saved {
            for i in 0..<c {
                let shifted = min(max(x[i] * scale, -qb), qb) + magic
                q[i] = shifted - magic
                s[i] = Int8(truncatingIfNeeded: shifted.bitPattern)
            }
        } else {
            for i in 0..<c { q[i] = (min(max(x[i] * scale, -qb), qb) + magic) - magic }
        }
    }

    // MARK: Activations, unsigned (the paper's [0, Qb] variant for non-negative inputs)

    /// eta = min x and gamma = max(max x - eta, 1e-5) over each row, or over each
    /// sequence of `t` rows (per tensor). Shapes: inp [N, C]; eta, gamma [N].
    public static func minRange(
        eta: UnsafeMutablePointer<Float>, gamma: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, rows n: Int,
        width c: Int, scaling: ActivationScaling, sequenceLength t: Int
    ) {
        Parallel.forRanges(n, workPerItem: c) { rows in
            for r in rows { (eta[r], gamma[r]) = minMaxRow(inp + r * c, width: c) }
        }
        if scaling == .perTensor { shareSequenceRange(eta: eta, gamma: gamma, rows: n, sequenceLength: t) }
        for r in 0..<n { gamma[r] = max(gamma[r] - eta[r], minimumAbsmax) }
    }

    /// (min x, max x) of a row.
    @inline(__always)
    static func minMaxRow(_ x: UnsafePointer<Float>, width c: Int) -> (Float, Float) {
        var lo = x[0], hi = x[0]
        for i in 1..<c {
            lo = min(lo, x[i])
            hi = max(hi, x[i])
        }
        return (lo, hi)
    }

    /// Per-tensor: each row's (min, max) in (eta, gamma) becomes its sequence's.
    static func shareSequenceRange(eta: UnsafeMutablePointer<Float>, gamma: UnsafeMutablePointer<Float>, rows n: Int,
                                   sequenceLength t: Int) {
        for start in stride(from: 0, to: n, by: t) {
            let end = min(start + t, n)
            var lo = eta[start], hi = gamma[start]
            for r in start..<end {
                lo = min(lo, eta[r])
                hi = max(hi, gamma[r])
            }
            for r in start..<end { (eta[r], gamma[r]) = (lo, hi) }
        }
    }

    /// x~ = round(clip((x - eta) * 254 / gamma, 0, 254)), rounding half to even, as
    /// integer-valued floats; kept as x~ - 127 in an Int8 (the runtime's codes).
    @inline(__always)
    static func quantizeRowUnsigned(out q: UnsafeMutablePointer<Float>, saved s: UnsafeMutablePointer<Int8>?,
                                    inp x: UnsafePointer<Float>, eta: Float, gamma: Float, width c: Int) {
        let levels = ActivationRange.unsignedLevels
        let scale = levels / gamma
        let magic: Float = 12_582_912, offset = ActivationRange.unsignedOffset
        if let s {
            for i in 0..<c {
                // As in quantizeRow: the integer k sits in the low bits of k + 1.5 * 2^23.
                let shifted = min(max((x[i] - eta) * scale, 0), levels) + magic
                q[i] = shifted - magic
                s[i] = Int8(truncatingIfNeeded: Int32(bitPattern: shifted.bitPattern) &- offset)
            }
        } else {
            for i in 0..<c { q[i] = (min(max((x[i] - eta) * scale, 0), levels) + magic) - magic }
        }
    }

    public static func quantizeActivationsUnsigned(
        out: UnsafeMutablePointer<Float>, saved: UnsafeMutablePointer<Int8>?, inp: UnsafePointer<Float>,
        eta: UnsafePointer<Float>, gamma: UnsafePointer<Float>, rows n: Int, width c: Int
    ) {
        Parallel.forRanges(n, workPerItem: c) { rows in
            for r in rows {
                quantizeRowUnsigned(out: out + r * c, saved: saved.map { $0 + r * c }, inp: inp + r * c, eta: eta[r],
                                    gamma: gamma[r], width: c)
            }
        }
    }

    /// Straight-through estimator of the activation quantizer, with respect to the
    /// dequantized value x~ * gamma / Qb: the gradient passes where x * Qb / gamma lies
    /// inside [-Qb, Qb] and is zero outside (gamma is treated as a constant).
    /// dinp += dout * mask.
    public static func activationSTE(
        dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
        gamma: UnsafePointer<Float>, rows n: Int, width c: Int
    ) {
        let qb = activationLevels
        Parallel.forRanges(n, workPerItem: c) { rows in
            for r in rows {
                let scale = qb / gamma[r]
                // A value at the absmax lands a rounding error past Qb; it is inside.
                let limit = qb * (1 + 1e-6)
                for i in r * c..<(r + 1) * c where abs(inp[i] * scale) <= limit {
                    dinp[i] += dout[i]
                }
            }
        }
    }

    // MARK: Weights

    /// Binary (BitNet): alpha = mean(W), W~ = Sign(W - alpha) with Sign(0) = -1,
    /// beta = mean |W|. Writes W~ as +-1 floats and returns beta.
    @discardableResult
    public static func binarizeWeights(out: UnsafeMutablePointer<Float>, weight: UnsafePointer<Float>, count: Int) -> Float {
        let (alpha, beta) = binaryParameters(weight, count: count)
        for i in 0..<count { out[i] = weight[i] - alpha > 0 ? 1 : -1 }
        return beta
    }

    /// mean |W|: the ternary scale gamma.
    static func meanAbsolute(_ weight: UnsafePointer<Float>, count: Int) -> Float {
        var sum: Double = 0
        for i in 0..<count { sum += Double(abs(weight[i])) }
        return Float(sum / Double(count))
    }

    /// alpha = mean(W) and beta = mean |W| of the binarization.
    static func binaryParameters(_ weight: UnsafePointer<Float>, count: Int) -> (alpha: Float, beta: Float) {
        var sum: Double = 0, sumAbs: Double = 0
        for i in 0..<count {
            sum += Double(weight[i])
            sumAbs += Double(abs(weight[i]))
        }
        return (Float(sum / Double(count)), Float(sumAbs / Double(count)))
    }

    /// Ternary (BitNet b1.58): gamma = mean |W|, W~ = RoundClip(W / (gamma + eps), -1, 1)
    /// with rounding half to even. Writes W~ as {-1, 0, +1} floats and returns gamma.
    @discardableResult
    public static func ternarizeWeights(out: UnsafeMutablePointer<Float>, weight: UnsafePointer<Float>, count: Int) -> Float {
        let scale = meanAbsolute(weight, count: count)
        let inverse = 1 / (scale + ternaryEpsilon)
        for i in 0..<count { out[i] = min(max((weight[i] * inverse).rounded(.toNearestOrEven), -1), 1) }
        return scale
    }

    /// Quantizes a weight matrix by `mode`; fp copies it and returns 1 (`int4` weights
    /// need their learned step: Int4Linear quantizes those).
    @discardableResult
    public static func quantizeWeights(_ mode: WeightMode, out: UnsafeMutablePointer<Float>, weight: UnsafePointer<Float>, count: Int) -> Float {
        switch mode {
        case .fp, .int4:
            out.update(from: weight, count: count)
            return 1
        case .binary: return binarizeWeights(out: out, weight: weight, count: count)
        case .ternary: return ternarizeWeights(out: out, weight: weight, count: count)
        }
    }
}
