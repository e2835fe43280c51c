// The runtime's BitLinear (docs/FORMAT.md, "Quantization rules"): SubLN, absmax int8
// activations per token, an integer product over the packed weights that only adds
// activations (through tables of their partial sums), and one rescale per output.
import BitNetFormat
import BitNetMath
import CBitKernels
import Foundation

public enum PackedBitLinear {
    /// Rule 1: out = SubLN(x). Same operation order as the trainer, so results match bit for bit.
    public static func subNorm(_ kind: RuntimeNorm, out y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>,
                               gain: UnsafePointer<Float>, bias: UnsafePointer<Float>?, count c: Int, epsilon: Float) {
        let (m, s) = normStatistics(kind, x: x, count: c, epsilon: epsilon)
        normalize(out: y, x: x, mean: m, scale: s, gain: gain, bias: bias, count: c)
    }

    /// The norm's mean (0 for RMSNorm) and 1 / sqrt(mean square + epsilon): the part of
    /// SubLN that BitLinears reading the same input (query, key, value) share.
    public static func normStatistics(_ kind: RuntimeNorm, x: UnsafePointer<Float>, count c: Int,
                                      epsilon: Float) -> (mean: Float, scale: Float) {
        RowNorm.statistics(x, count: c, centred: kind == .layer, epsilon: epsilon)
    }

    public static func normalize(out y: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, mean m: Float, scale s: Float,
                                 gain: UnsafePointer<Float>, bias: UnsafePointer<Float>?, count c: Int) {
        RowNorm.apply(out: y, x: x, mean: m, scale: s, gain: gain, bias: bias, count: c)
    }

    /// Rules 2-3 per token: q = round_half_even(clamp(h * 127/gamma, -127, 127)); returns gamma.
    public static func quantize(_ h: UnsafePointer<Float>, count c: Int, into q: UnsafeMutablePointer<Int8>) -> Float {
        let gamma = max(Reduce.maximumMagnitude(h, c), 1e-5)  // the trainer's absmax, in sixteen lanes
        let scale = 127 / gamma
        // Adding 1.5 * 2^23 rounds half to even and leaves the integer in the low bits:
        // no checked conversion, so the loop vectorizes.
        let magic: Float = 12_582_912
        for i in 0..<c { q[i] = Int8(truncatingIfNeeded: (min(max(h[i] * scale, -127), 127) + magic).bitPattern) }
        return gamma
    }

    /// Rules 2-3, unsigned codes (the paper's [0, Qb] variant): eta = min h,
    /// gamma = max(max h - eta, 1e-5), x~ = round_half_even(clamp((h - eta) * 254/gamma, 0, 254)),
    /// stored as q = x~ - 127 so the product kernels see [-127, 127]; returns (gamma, eta).
    public static func quantizeUnsigned(_ h: UnsafePointer<Float>, count c: Int, into q: UnsafeMutablePointer<Int8>)
        -> (gamma: Float, eta: Float) {
        var lo = h[0], hi = h[0]
        for i in 1..<c {
            lo = min(lo, h[i])
            hi = max(hi, h[i])
        }
        let gamma = max(hi - lo, 1e-5), levels = ActivationRange.unsignedLevels, scale = levels / gamma
        let magic: Float = 12_582_912, offset = ActivationRange.unsignedOffset
        for i in 0..<c {
            let shifted = min(max((h[i] - lo) * scale, 0), levels) + magic
            q[i] = Int8(truncatingIfNeeded: Int32(bitPattern: shifted.bitPattern) &- offset)
        }
        return (gamma, lo)
    }

    /// Rule 5, the reference: acc[o] = sum_i q_i W~_oi, reading one bit at a time and
    /// adding or subtracting the activation. `planes` points at the tensor's data.
    public static func naiveProduct(acc: UnsafeMutablePointer<Int32>, planes: UnsafeRawPointer, entry: TensorEntry,
                                    q: UnsafePointer<Int8>) {
        let geometry = entry.planes
        for o in 0..<entry.rows {
            var sum: Int32 = 0
            for i in 0..<entry.cols {
                let (byte, shift) = geometry.bitPosition(row: o, col: i)
                let first = planes.load(fromByteOffset: byte, as: UInt8.self) >> shift & 1 == 1
                if entry.type == .ternary {
                    let plus = planes.load(fromByteOffset: entry.planeBytes + byte, as: UInt8.self) >> shift & 1 == 1
                    if first { sum += plus ? Int32(q[i]) : -Int32(q[i]) }
                } else {
                    sum += first ? Int32(q[i]) : -Int32(q[i])
                }
            }
            acc[o] = sum
        }
    }

    /// Bytes of one token's look-up tables for a BitLinear with `cols` inputs.
    public static func tableBytes(cols: Int) -> Int { bitnet_table_bytes(Int32(cols)) }

    /// One token's look-up tables (partial sums of its activations, see bitkernels.h);
    /// returns sum_i q_i, which a binary row needs.
    public static func prepare(_ q: UnsafePointer<Int8>, cols: Int, tables: UnsafeMutablePointer<UInt8>) -> Int32 {
        bitnet_build_tables(q, Int32(cols), tables)
        var sum: Int32 = 0
        for i in 0..<cols { sum &+= Int32(q[i]) }
        return sum
    }

    /// Rule 5, fast, for the rows of 32-row `blocks` and `tokens` tokens at once:
    /// acc[t * accStride + o] = sum_i q_ti W~_oi. With S(plane) = the sum of q over a
    /// plane's set bits (table look-ups and additions only): a binary row is
    /// 2 S - sum(q); a ternary row is 2 S(plus) - S(nonzero). `scratch` is laid out as `acc`.
    public static func product(acc: UnsafeMutablePointer<Int32>, scratch: UnsafeMutablePointer<Int32>, accStride: Int,
                               planes: UnsafeRawPointer, entry: TensorEntry, tables: UnsafePointer<UInt8>, tableStride: Int,
                               qSums: UnsafePointer<Int32>, tokens: Int, blocks: Range<Int>) {
        guard !blocks.isEmpty else { return }
        let p = planes.assumingMemoryBound(to: UInt8.self)
        func sums(_ plane: UnsafePointer<UInt8>, into out: UnsafeMutablePointer<Int32>) {
            bitnet_plane_sums(plane, Int32(blocks.lowerBound), Int32(blocks.upperBound), Int32(entry.tiles), tables,
                              tableStride, Int32(tokens), out, accStride)
        }
        let rows = 32 * blocks.lowerBound..<min(32 * blocks.upperBound, entry.rows)
        if entry.type == .binary {
            sums(p, into: acc)
            for t in 0..<tokens {
                let a = acc + t * accStride
                for o in rows { a[o] = a[o] &+ a[o] &- qSums[t] }
            }
        } else {
            sums(p, into: scratch)
            sums(p + entry.planeBytes, into: acc)
            for t in 0..<tokens {
                let a = acc + t * accStride, nonzero = scratch + t * accStride
                for o in rows { a[o] = a[o] &+ a[o] &- nonzero[o] }
            }
        }
    }

    /// Rule 6: y_o = acc_o * ((gamma / 127) * beta).
    public static func rescale(_ acc: UnsafePointer<Int32>, gamma: Float, beta: Float, into y: UnsafeMutablePointer<Float>,
                               count: Int) {
        let s = gamma / 127 * beta
        for o in 0..<count { y[o] = Float(acc[o]) * s }
    }

    /// Rule 6, unsigned codes: with A_o = acc_o + 127 rowSum_o (the product with x~ itself),
    /// y_o = A_o * ((gamma / 254) * beta) + (eta * beta) * rowSum_o.
    public static func rescaleUnsigned(_ acc: UnsafePointer<Int32>, gamma: Float, eta: Float, beta: Float,
                                       rowSums: UnsafePointer<Int32>, into y: UnsafeMutablePointer<Float>, count: Int) {
        let s = gamma / ActivationRange.unsignedLevels * beta, shift = eta * beta, offset = ActivationRange.unsignedOffset
        for o in 0..<count { y[o] = Float(acc[o] &+ offset &* rowSums[o]) * s + shift * Float(rowSums[o]) }
    }
}
