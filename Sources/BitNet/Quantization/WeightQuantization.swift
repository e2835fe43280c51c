// Post-training weight quantization of one matrix (issue 11): integer codes with a scale
// and zero point per output channel, or per group of input columns within a channel.
// Round-to-nearest (the BitNet paper's Absmax baseline and the starting point of GPTQ
// and OmniQuant):
//   2-8 bits: asymmetric min-max, scale = (max - min) / (2^b - 1),
//             zero = round(-min / scale), code = clamp(round(w / scale) + zero, 0, 2^b - 1),
//             w~ = scale (code - zero);
//   1 bit:    BitNet's binarization per group: code = Sign(w - mean(w)), scale = mean |w|;
//   1.58:     BitNet b1.58's absmean ternary per group: code in {-1, 0, 1}, scale = mean |w|.
import Foundation

/// Weight bits of a post-training quantization.
public enum WeightBits: String, CaseIterable, Codable, Sendable {
    case one = "1", ternary = "1.58", two = "2", three = "3", four = "4", six = "6", eight = "8"

    /// Integer bits of a min-max code; nil for the 1-bit and ternary codes.
    public var integerBits: Int? {
        switch self {
        case .one, .ternary: nil
        case .two: 2
        case .three: 3
        case .four: 4
        case .six: 6
        case .eight: 8
        }
    }

    /// Whether `code` is one of this width's codes (the 1-bit code has no 0).
    public func holds(_ code: Int) -> Bool { self == .one ? code == -1 || code == 1 : codeRange.contains(code) }

    /// The codes' range.
    public var codeRange: ClosedRange<Int> {
        switch self {
        case .one, .ternary: -1...1
        default: 0...((1 << (integerBits ?? 1)) - 1)
        }
    }
}

/// One quantized matrix [rows, cols]: codes row-major, scales and zero points [rows, groups].
public struct QuantizedMatrix: Equatable, Sendable {
    public let rows: Int
    public let cols: Int
    public let groupSize: Int
    public let bits: WeightBits
    public var codes: [Int8]
    public var scales: [Float]
    public var zeros: [Float]
    /// QuIP: the codes are of U W V^T; the weights are U^T (scale (code - zero)) V.
    public var incoherence: Incoherence? = nil
    public var groups: Int { cols / groupSize }

    /// Code `i` as an integer: the ±1 and ternary codes are signed, the min-max codes
    /// (up to 255) are stored as their 8-bit pattern.
    public func code(_ i: Int) -> Int { bits.integerBits == nil ? Int(codes[i]) : Int(UInt8(bitPattern: codes[i])) }

    /// The weights: w~ = scale (code - zero), in the same FP32 arithmetic everywhere that
    /// reads codes, then turned back when the codes are of an incoherent basis (QuIP).
    public func dequantized() -> [Float] {
        var out = [Float](repeating: 0, count: rows * cols)
        for r in 0..<rows {
            for c in 0..<cols {
                let g = r * groups + c / groupSize
                out[r * cols + c] = scales[g] * (Float(code(r * cols + c)) - zeros[g])
            }
        }
        incoherence?.transform(&out, inverse: true)
        return out
    }
}

/// One group's quantizer: its parameters from the group's weights, then any value's
/// code (GPTQ quantizes values that error compensation has moved since). A clip
/// (OmniQuant's learnable weight clipping) shrinks the range before rounding: min-max
/// rounds over [lower * min, upper * max]; the 1-bit and ternary scales are multiplied
/// by `upper`. (1, 1) is round to nearest.
struct GroupQuantizer {
    let bits: WeightBits
    private(set) var scale: Float = 1, zero: Float = 0
    /// Binary's alpha = mean(w): a code is Sign(w - alpha).
    private var alpha: Float = 0
    /// d scale / d clip.upper and d scale / d clip.lower (0 where the scale is at its floor).
    private(set) var scaleByClip: (upper: Float, lower: Float) = (0, 0)

    init(bits: WeightBits, weights w: UnsafePointer<Float>, count: Int, clip: (upper: Float, lower: Float) = (1, 1)) {
        self.bits = bits
        switch bits {
        case .one:
            let (mean, meanAbsolute) = Quantizers.binaryParameters(w, count: count)
            (alpha, scale, scaleByClip) = (mean, meanAbsolute * clip.upper, (meanAbsolute, 0))
        case .ternary:
            let meanAbsolute = Quantizers.meanAbsolute(w, count: count)
            (scale, scaleByClip) = (meanAbsolute * clip.upper, (meanAbsolute, 0))
        default:
            // Asymmetric over [min, max], widened to hold 0 so that zero weights stay exact.
            let levels = Float(bits.codeRange.upperBound)
            var lo: Float = 0, hi: Float = 0
            for i in 0..<count {
                lo = min(lo, w[i])
                hi = max(hi, w[i])
            }
            guard hi > lo else { return }  // all zero: any scale reproduces it
            // A floor (as OmniQuant's) keeps a clipped range from collapsing to nothing.
            let clipped = (clip.upper * hi - clip.lower * lo) / levels, floor = 1e-3 * (hi - lo) / levels
            if clipped > floor {
                scale = clipped
                scaleByClip = (hi / levels, -lo / levels)
            } else {
                scale = floor
            }
            zero = min(max((-clip.lower * lo / scale).rounded(.toNearestOrEven), 0), levels)
        }
    }

    func code(_ w: Float) -> Int {
        switch bits {
        case .one: return w - alpha > 0 ? 1 : -1
        case .ternary: return Int(min(max((w / (scale + Quantizers.ternaryEpsilon)).rounded(.toNearestOrEven), -1), 1))
        default:
            return Int(min(max((w / scale).rounded(.toNearestOrEven) + zero, 0), Float(bits.codeRange.upperBound)))
        }
    }

    func value(ofCode c: Int) -> Float { scale * (Float(c) - zero) }

    /// Whether rounding w passes its gradient straight through: its code is not clamped
    /// at the end of the range (Sign at 1 bit always passes, as BitNet's STE does).
    func passesGradient(_ w: Float) -> Bool {
        switch bits {
        case .one: return true
        case .ternary: return abs((w / (scale + Quantizers.ternaryEpsilon)).rounded(.toNearestOrEven)) <= 1
        default:
            let u = (w / scale).rounded(.toNearestOrEven) + zero
            return u >= 0 && u <= Float(bits.codeRange.upperBound)
        }
    }

    /// d w~ / d scale at weight w, rounding passed straight through and the zero point
    /// held constant (OmniQuant's backward): inside the range w~ = scale round(w / scale)
    /// gives round(w / scale) - w / scale; a clamped code gives its level.
    func valueByScale(_ w: Float) -> Float {
        switch bits {
        case .one: return Float(code(w))
        case .ternary:
            let r = (w / (scale + Quantizers.ternaryEpsilon)).rounded(.toNearestOrEven)
            return abs(r) > 1 ? Float(code(w)) : r - w / scale
        default:
            let r = (w / scale).rounded(.toNearestOrEven), u = r + zero
            if u > Float(bits.codeRange.upperBound) { return Float(bits.codeRange.upperBound) - zero }
            if u < 0 { return -zero }
            return r - w / scale
        }
    }
}

extension QuantizedMatrix {
    /// An empty matrix of this shape, to fill group by group.
    init(rows: Int, cols: Int, groupSize: Int, bits: WeightBits) {
        self.init(rows: rows, cols: cols, groupSize: groupSize, bits: bits, codes: [Int8](repeating: 0, count: rows * cols),
                  scales: [Float](repeating: 0, count: rows * (cols / groupSize)),
                  zeros: [Float](repeating: 0, count: rows * (cols / groupSize)))
    }

    /// Stores code `c` at `i` (min-max codes up to 255 as their 8-bit pattern).
    mutating func setCode(_ c: Int, at i: Int) { codes[i] = Int8(truncatingIfNeeded: c) }
}

public enum RoundToNearest {
    /// Quantizes `weight` [rows, cols] in groups of `groupSize` columns (cols for per channel).
    public static func quantize(_ weight: UnsafePointer<Float>, rows: Int, cols: Int, bits: WeightBits,
                                groupSize: Int) -> QuantizedMatrix {
        precondition(groupSize > 0 && cols % groupSize == 0, "the caller checks the group size")
        var q = QuantizedMatrix(rows: rows, cols: cols, groupSize: groupSize, bits: bits)
        for r in 0..<rows {
            for g in 0..<q.groups {
                let first = r * cols + g * groupSize
                let quantizer = GroupQuantizer(bits: bits, weights: weight + first, count: groupSize)
                (q.scales[r * q.groups + g], q.zeros[r * q.groups + g]) = (quantizer.scale, quantizer.zero)
                for i in 0..<groupSize { q.setCode(quantizer.code(weight[first + i]), at: first + i) }
            }
        }
        return q
    }
}
