// exp, tanh and sigmoid written so loops over them vectorize: libm's expf and tanhf
// are scalar calls, and GELU alone spent ~18% of an fp training step in them. One
// definition for the trainer and the runtime, so that their logits match bit for bit.
// @inlinable: inlined into other modules' loops, or they would not vectorize.

public enum FastMath {
    /// e^x to about 1 ulp for x in [-87, 88] (clamped outside): x = n ln2 + r with
    /// |r| <= ln2/2 (Cody-Waite split of ln2), e^r by its degree-6 Taylor polynomial
    /// (truncation error below 1.2e-7 relative), 2^n built in the exponent bits.
    /// No checked Float-to-Int conversion (it would trap and stop vectorization):
    /// adding 1.5 * 2^23 rounds to an integer held in the low mantissa bits.
    @inlinable @inline(__always)
    public static func exp(_ x: Float) -> Float {
        let x = min(max(x, -87.0), 88.0)
        let shifted = x * 1.442_695_04 + 12_582_912  // 1.5 * 2^23
        let n = shifted - 12_582_912
        let r = (x - n * 0.693_145_751_953_125) - n * 1.428_606_765_330_187e-6
        var p: Float = 1.0 / 720
        p = p * r + 1.0 / 120
        p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6
        p = p * r + 0.5
        p = p * r + 1
        p = p * r + 1
        // The low 9 bits of `shifted` hold n mod 512; (n + 127) << 23 is 2^n.
        return p * Float(bitPattern: (shifted.bitPattern &+ 127) &<< 23)
    }

    /// tanh(x) = 1 - 2 / (e^(2x) + 1); absolute error about 1e-7.
    @inlinable @inline(__always)
    public static func tanh(_ x: Float) -> Float {
        1 - 2 / (exp(2 * x) + 1)
    }

    /// 1 / (1 + e^-x).
    @inlinable @inline(__always)
    public static func sigmoid(_ x: Float) -> Float {
        1 / (1 + exp(-x))
    }
}
