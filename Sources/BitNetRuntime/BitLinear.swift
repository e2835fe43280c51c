// The runtime's BitLinear for one token (docs/FORMAT.md, "Quantization rules"):
// SubLN, absmax int8 activations, an integer product over the packed weights that
// only adds and subtracts activations, and one rescale per output.
import Foundation

public enum RuntimeNorm: String, Sendable {
    case rms
    case layer
}

public enum PackedBitLinear {
    /// Rule 1: out = SubLN(x). Same operation order as the trainer, so results match bit for bit.
    public static func subNorm(_ kind: RuntimeNorm, out y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                               gain: UnsafePointer<Float>, bias: UnsafePointer<Float>?, count c: Int, epsilon: Float) {
        var m: Float = 0
        if kind == .layer {
            var sum: Float = 0
            for i in 0..<c { sum += x[i] }
            m = sum / Float(c)
        }
        var sumSquares: Float = 0
        for i in 0..<c {
            let d = x[i] - m
            sumSquares += d * d
        }
        let s = 1 / (sumSquares / Float(c) + epsilon).squareRoot()
        if let bias {
            for i in 0..<c { y[i] = (x[i] - m) * s * gain[i] + bias[i] }
        } else {
            for i in 0..<c { y[i] = (x[i] - m) * s * gain[i] }
        }
    }

    /// Rules 2-3 per token: q = round_half_even(clamp(h * 127/gamma, -127, 127)); returns gamma.
    public static func quantize(_ h: UnsafePointer<Float>, count c: Int, into q: UnsafeMutablePointer<Int8>) -> Float {
        var m: Float = 0
        for i in 0..<c { m = max(m, abs(h[i])) }
        let gamma = max(m, 1e-5)
        let scale = 127 / gamma
        for i in 0..<c {
            q[i] = Int8(min(max(h[i] * scale, -127), 127).rounded(.toNearestOrEven))
        }
        return gamma
    }

    /// Rule 5, the reference: acc[o] = sum_i q_i W~_oi, reading one bit at a time and
    /// adding or subtracting the activation. `planes` points at the tensor's data.
    public static func naiveProduct(acc: UnsafeMutablePointer<Int32>, planes: UnsafeRawPointer, entry: TensorEntry,
                                    q: UnsafePointer<Int8>) {
        let words = entry.wordsPerRow, ternary = entry.type == .ternary
        for o in 0..<entry.rows {
            let row = planes + 8 * o * words * (ternary ? 2 : 1)
            var sum: Int32 = 0
            for i in 0..<entry.cols {
                let first = (row + 8 * (i / 64)).loadUnaligned(as: UInt64.self) >> UInt64(i % 64) & 1 == 1
                if ternary {
                    let plus = (row + 8 * (words + i / 64)).loadUnaligned(as: UInt64.self) >> UInt64(i % 64) & 1 == 1
                    if first { sum += plus ? Int32(q[i]) : -Int32(q[i]) }
                } else {
                    sum += first ? Int32(q[i]) : -Int32(q[i])
                }
            }
            acc[o] = sum
        }
    }

    /// Rule 5 without touching every bit: with S = sum_i q_i, a binary row is
    /// 2 * (sum of q over its +1 bits) - S; a ternary row is (sum over +1) - (sum over
    /// -1). Walks set bits only (a word's lowest set bit, then clears it): additions only.
    public static func product(acc: UnsafeMutablePointer<Int32>, planes: UnsafeRawPointer, entry: TensorEntry,
                               q: UnsafePointer<Int8>) {
        let words = entry.wordsPerRow
        let p = planes.assumingMemoryBound(to: UInt64.self)
        func sumOverBits(_ word: UInt64, base: Int) -> Int32 {
            var w = word, s: Int32 = 0
            while w != 0 {
                s &+= Int32(q[base + w.trailingZeroBitCount])
                w &= w &- 1
            }
            return s
        }
        if entry.type == .binary {
            var total: Int32 = 0
            for i in 0..<entry.cols { total &+= Int32(q[i]) }
            for o in 0..<entry.rows {
                let row = p + o * words
                var plus: Int32 = 0
                for k in 0..<words { plus &+= sumOverBits(row[k], base: 64 * k) }
                acc[o] = plus &+ plus &- total
            }
        } else {
            for o in 0..<entry.rows {
                let nonzero = p + o * 2 * words, positive = nonzero + words
                var s: Int32 = 0
                for k in 0..<words {
                    s &+= sumOverBits(nonzero[k] & positive[k], base: 64 * k)
                    s &-= sumOverBits(nonzero[k] & ~positive[k], base: 64 * k)
                }
                acc[o] = s
            }
        }
    }

    /// Rule 6: y_o = acc_o * ((gamma / 127) * beta).
    public static func rescale(_ acc: UnsafePointer<Int32>, gamma: Float, beta: Float, into y: UnsafeMutablePointer<Float>,
                               count: Int) {
        let s = gamma / 127 * beta
        for o in 0..<count { y[o] = Float(acc[o]) * s }
    }
}
