// ggml's ternary block types, which llama.cpp's `bitnet` architecture runs: blocks of
// 256 weights in {-1, 0, +1} with one FP16 scale d, the value of a weight being d * code.
//   TQ2_0 (66 bytes, 2.06 bits per weight): 64 bytes of 2-bit codes, then d. In each
//     128-weight half h, byte 32h + m holds weights 128h + 32n + m (n = 0..3) at bits 2n,
//     as code + 1.
//   TQ1_0 (54 bytes, 1.69 bits per weight): 48 bytes of five base-3 digits each, 4 bytes
//     of four, then d. A byte stores the digits (code + 1), the first the most
//     significant, as a fraction of 3^5: ceil(value * 256 / 243), so multiplying the byte
//     by 3^n (mod 256) brings digit n to the top, where (b * 3) >> 8 reads it. Bytes
//     0-31 hold weights m + 32n (n = 0..4), bytes 32-47 weights 160 + m + 16n, and the
//     4 last bytes weights 240 + m + 4n (n = 0..3, a fifth digit of 0).
// (Layouts as ggml's ggml-quants.c and the gguf package's quants.py decode them.)

import Foundation

public enum TernaryBlocks {
    public static let blockSize = 256

    /// `codes` (count a multiple of 256, each -1, 0 or +1) as TQ2_0 blocks of scale `scale`.
    public static func tq2_0(_ codes: UnsafePointer<Int8>, count: Int, scale: Float) -> [UInt8] {
        let d = float16Bytes(scale)
        var out: [UInt8] = []
        out.reserveCapacity(count / blockSize * GGMLType.tq2_0.block.bytes)
        for start in stride(from: 0, to: count, by: blockSize) {
            let block = codes + start
            for half in 0..<2 {
                for m in 0..<32 {
                    var byte: UInt8 = 0
                    for n in 0..<4 { byte |= digit(block[128 * half + 32 * n + m]) << (2 * n) }
                    out.append(byte)
                }
            }
            out.append(contentsOf: d)
        }
        return out
    }

    /// `codes` (count a multiple of 256, each -1, 0 or +1) as TQ1_0 blocks of scale `scale`.
    public static func tq1_0(_ codes: UnsafePointer<Int8>, count: Int, scale: Float) -> [UInt8] {
        let d = float16Bytes(scale)
        var out: [UInt8] = []
        out.reserveCapacity(count / blockSize * GGMLType.tq1_0.block.bytes)
        /// Digits of weights first, first + stride, ... (`digits` of them) in one byte.
        func packed(_ block: UnsafePointer<Int8>, first: Int, stride: Int, digits: Int) -> UInt8 {
            var value = 0
            for n in 0..<5 { value = value * 3 + (n < digits ? Int(digit(block[first + stride * n])) : 0) }
            return UInt8((value * 256 + 242) / 243)  // ceil(value * 256 / 243) <= 255 since value <= 242
        }
        for start in stride(from: 0, to: count, by: blockSize) {
            let block = codes + start
            for m in 0..<32 { out.append(packed(block, first: m, stride: 32, digits: 5)) }
            for m in 0..<16 { out.append(packed(block, first: 160 + m, stride: 16, digits: 5)) }
            for m in 0..<4 { out.append(packed(block, first: 240 + m, stride: 4, digits: 4)) }
            out.append(contentsOf: d)
        }
        return out
    }

    /// Decodes either type back to codes and block scales (the inverse, for tests and checks).
    public static func decode(_ bytes: [UInt8], type: GGMLType) -> (codes: [Int8], scales: [Float]) {
        let blockBytes = type.block.bytes
        var codes: [Int8] = [], scales: [Float] = []
        for start in stride(from: 0, to: bytes.count, by: blockBytes) {
            let b = Array(bytes[start..<start + blockBytes])
            var block = [Int8](repeating: 0, count: blockSize)
            if type == .tq2_0 {
                for half in 0..<2 {
                    for m in 0..<32 {
                        for n in 0..<4 { block[128 * half + 32 * n + m] = Int8((b[32 * half + m] >> (2 * n)) & 3) - 1 }
                    }
                }
            } else {
                func unpack(_ byte: UInt8, first: Int, stride: Int, digits: Int) {
                    for n in 0..<digits {
                        let shifted = UInt8(truncatingIfNeeded: Int(byte) * pow3[n])
                        block[first + stride * n] = Int8((Int(shifted) * 3) >> 8) - 1
                    }
                }
                for m in 0..<32 { unpack(b[m], first: m, stride: 32, digits: 5) }
                for m in 0..<16 { unpack(b[32 + m], first: 160 + m, stride: 16, digits: 5) }
                for m in 0..<4 { unpack(b[48 + m], first: 240 + m, stride: 4, digits: 4) }
            }
            codes += block
            let half = UInt16(b[blockBytes - 2]) | UInt16(b[blockBytes - 1]) << 8
            scales.append(Float(Float16(bitPattern: half)))
        }
        return (codes, scales)
    }

    private static let pow3 = [1, 3, 9, 27, 81]

    /// -1, 0, +1 -> 0, 1, 2.
    @inline(__always) private static func digit(_ code: Int8) -> UInt8 { UInt8(truncatingIfNeeded: code + 1) }

    /// The block scale as FP16 bytes (little-endian).
    private static func float16Bytes(_ value: Float) -> [UInt8] {
        [UInt8]([value].withUnsafeBufferPointer { Data(float16LittleEndian: $0) })
    }
}
