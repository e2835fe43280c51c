// LSQ (Esser et al. 2020, "Learned Step Size Quantization"), the INT4 quantizer of
// "Training Transformers with 4-bit Integers" (Xi et al. 2023): a tensor's values
// become integers in [-8, 7] times a step s that is itself learned:
//   q(x) = clamp(round(x / s), -8, 7) s.
// Backward (straight-through): dq/dx = 1 inside the range, 0 where clamped;
// dq/ds = round(x / s) - x / s inside, the clamped level outside; the step's gradient
// is scaled by g = 1 / sqrt(count * 7), LSQ's rule for keeping the step's updates in
// proportion to the weights' whatever the tensor's size.
import BitNetMath
import Foundation

enum LearnedStepQuantizer {
    static let lowest: Float = -8, highest: Float = 7

    /// out = q(x) (dequantized), codes = the integers (INT4 values in int8 lanes).
    static func forward(_ x: UnsafePointer<Float>, count: Int, step s: Float, out: UnsafeMutablePointer<Float>,
                        codes: UnsafeMutablePointer<Int8>?) {
        let inverse = 1 / s
        for i in 0..<count {
            let k = min(max((x[i] * inverse).rounded(.toNearestOrEven), lowest), highest)
            out[i] = k * s
            codes?[i] = Int8(k)
        }
    }

    /// dx = dout where x is inside the range (0 elsewhere); returns dL/ds, LSQ-scaled for
    /// a tensor of `scaleCount` values (default: `count`; a chunk of a larger tensor
    /// passes the whole tensor's). dx may be dout.
    static func backward(_ x: UnsafePointer<Float>, count: Int, step s: Float, dout: UnsafePointer<Float>,
                         dx: UnsafeMutablePointer<Float>, scaleCount: Int? = nil) -> Float {
        let inverse = 1 / s
        var ds: Double = 0
        // Sixteen lanes at a time: one Double accumulator per element kept the loop scalar
        // (2% of an `int4` step at `small`). The terms are summed in Float lanes over
        // runs of 1024 values, each run's total then added in Double (the lanes' sum is a
        // call, too slow to make per block).
        let low = SIMD16<Float>(repeating: lowest), high = SIMD16<Float>(repeating: highest)
        var i = 0
        while i + 16 <= count {
            var terms = SIMD16<Float>(repeating: 0)
            let end = min(i + 1024, count - 15)
            while i < end {
                let v = Lanes.load(x + i) * inverse, d = Lanes.load(dout + i)  // read before dx (may alias)
                let k = v.rounded(.toNearestOrEven), below = k .< low, above = k .> high, outside = below .| above
                var level = k, inside = v, passed = d
                level.replace(with: low, where: below)
                level.replace(with: high, where: above)
                inside.replace(with: 0, where: outside)
                passed.replace(with: 0, where: outside)
                Lanes.store(passed, to: dx + i)
                terms += d * (level - inside)
                i += 16
            }
            ds += Double(terms.sum())
        }
        while i < count {
            let v = x[i] * inverse, k = v.rounded(.toNearestOrEven), d = dout[i]
            if k < lowest || k > highest {
                dx[i] = 0
                ds += Double(d * (k < lowest ? lowest : highest))
            } else {
                dx[i] = d
                ds += Double(d * (k - v))
            }
            i += 1
        }
        return Float(ds) / (Float(scaleCount ?? count) * highest).squareRoot()
    }

    /// LSQ's initial step: 2 mean |x| / sqrt(7).
    static func initialStep(_ x: UnsafePointer<Float>, count: Int) -> Float {
        var sum: Double = 0
        for i in 0..<count { sum += Double(abs(x[i])) }
        return max(Float(2 * sum / Double(max(count, 1))) / highest.squareRoot(), 1e-8)
    }
}
