// One row of LayerNorm or RMSNorm, the one definition the trainer's norms and the
// runtime's SubLN both use: summed in order, so the runtime's BitLinear equals the
// trainer's bit for bit (RuntimeBitLinearTests), where one ulp in the norm would move
// the absmax scale after it.
public enum RowNorm {
    /// The row's mean (0 when not `centred`: RMSNorm) and 1 / sqrt(mean square about it + epsilon).
    @inlinable @inline(__always)
    public static func statistics(_ x: UnsafePointer<Float>, count c: Int, centred: Bool,
                                  epsilon: Float) -> (mean: Float, scale: Float) {
        var m: Float = 0
        if centred {
            var sum: Float = 0
            for i in 0..<c { sum += x[i] }
            m = sum / Float(c)
        }
        var sumSquares: Float = 0
        for i in 0..<c {
            let d = x[i] - m
            sumSquares += d * d
        }
        return (m, 1 / (sumSquares / Float(c) + epsilon).squareRoot())
    }

    /// y = (x - mean) * scale * gain (+ bias).
    @inlinable @inline(__always)
    public static func apply(out y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, mean m: Float, scale s: Float,
                             gain: UnsafePointer<Float>, bias: UnsafePointer<Float>?, count c: Int) {
        if let bias {
            for i in 0..<c { y[i] = (x[i] - m) * s * gain[i] + bias[i] }
        } else {
            for i in 0..<c { y[i] = (x[i] - m) * s * gain[i] }
        }
    }
}
