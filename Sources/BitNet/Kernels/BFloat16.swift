// BF16 storage for activations kept for the backward pass: the top 16 bits of an FP32,
// rounded to nearest even. On a CPU with AVX-512 BF16 the conversion is one instruction
// per 16 values (chosen at run time); elsewhere plain loops over the bit patterns, which
// the compiler vectorizes (AVX2).
import CBitKernels

public enum BFloat16 {
    /// Whether `encode` uses the CPU's BF16 conversion (which turns subnormal inputs into
    /// zeros; far below any activation, so the two paths train alike).
    public static let usesAVX512 = bitnet_has_avx512_bf16() != 0

    /// out[i] = x[i] rounded to BF16; a NaN stays a (quiet) NaN, infinities stay infinite.
    public static func encode(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<UInt16>, count: Int) {
        if usesAVX512 { return bitnet_bf16_encode_avx512(x, out, count) }
        encodePortable(x, into: out, count: count)
    }

    /// The loop every CPU runs without AVX-512 BF16 (and the tests' comparison).
    static func encodePortable(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<UInt16>, count: Int) {
        for i in 0..<count {
            let bits = x[i].bitPattern
            let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
            let isNaN = bits & 0x7FFF_FFFF > 0x7F80_0000
            out[i] = UInt16(truncatingIfNeeded: (isNaN ? bits | 0x0040_0000 : rounded) >> 16)
        }
    }

    /// out[i] = x[i] widened to FP32 (exact).
    public static func decode(_ x: UnsafePointer<UInt16>, into out: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { out[i] = Float(bitPattern: UInt32(x[i]) << 16) }
    }
}
