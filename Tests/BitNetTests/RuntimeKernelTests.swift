// The runtime's look-up-table product (C, AVX2 and scalar paths) against the naive
// bit-by-bit product, on shapes that are not multiples of the 32-row blocks and
// 16-column tiles, with extreme activations and several tokens at once.
@testable import BitNetRuntime
import CBitKernels
import Foundation
import Testing
@testable import BitNet

@Suite(.serialized) struct RuntimeKernelTests {
    /// The runtime's fast product of `planes` with each token's activations.
    static func fastProduct(planes: UnsafeRawPointer, entry: TensorEntry, q: [[Int8]]) -> [[Int32]] {
        let stride = PackedBitLinear.tableBytes(cols: entry.cols), accStride = entry.blocks * 32
        var tables = [UInt8](repeating: 0xAA, count: q.count * stride)  // garbage: every byte must be written
        var sums = [Int32](repeating: 0, count: q.count)
        for (t, row) in q.enumerated() {
            sums[t] = tables.withUnsafeMutableBufferPointer { PackedBitLinear.prepare(row, cols: entry.cols, tables: $0.baseAddress! + t * stride) }
        }
        var acc = [Int32](repeating: 7, count: q.count * accStride), scratch = acc
        // Two uneven block ranges, as two workers would split them.
        let middle = entry.blocks / 3
        for blocks in [0..<middle, middle..<entry.blocks] {
            PackedBitLinear.product(acc: &acc, scratch: &scratch, accStride: accStride, planes: planes, entry: entry,
                                    tables: tables, tableStride: stride, qSums: sums, tokens: q.count, blocks: blocks)
        }
        return (0..<q.count).map { Array(acc[$0 * accStride..<$0 * accStride + entry.rows]) }
    }

    @Test(arguments: [WeightMode.binary, .ternary])
    func tableProductEqualsNaive(mode: WeightMode) throws {
        var rng = Xoshiro256(seed: 5)
        let shapes = [(1, 1), (31, 17), (33, 16), (70, 72), (64, 100), (5, 1000), (40, 4100)]
        for (rows, cols) in shapes {
            let values = (0..<rows * cols).map { _ in mode == .ternary ? Float(rng.below(3) - 1) : (rng.below(2) == 0 ? -1 : 1) }
            let packed = values.withUnsafeBufferPointer {
                PackedModel.pack($0.baseAddress!, rows: rows, cols: cols, ternary: mode == .ternary)
            }
            let entry = TensorEntry(name: "w", type: mode == .ternary ? .ternary : .binary, rows: rows, cols: cols, scale: 1,
                                    offset: 0, length: packed.count)
            // Random activations, and the extremes that stress the 16-bit partial sums.
            let q: [[Int8]] = [(0..<cols).map { _ in Int8(rng.below(255) - 127) }, [Int8](repeating: 127, count: cols),
                               [Int8](repeating: -127, count: cols), (0..<cols).map { $0 % 2 == 0 ? 127 : -127 }]
            for scalar in [false, true] {
                let previous = bitnet_kernels_force_scalar(scalar ? 1 : 0)
                defer { _ = bitnet_kernels_force_scalar(previous) }
                let fast = packed.withUnsafeBytes { Self.fastProduct(planes: $0.baseAddress!, entry: entry, q: q) }
                for (t, qt) in q.enumerated() {
                    var naive = [Int32](repeating: 0, count: rows)
                    packed.withUnsafeBytes { PackedBitLinear.naiveProduct(acc: &naive, planes: $0.baseAddress!, entry: entry, q: qt) }
                    #expect(fast[t] == naive, "\(rows)x\(cols) token \(t) scalar: \(scalar)")
                    // And the naive product is the plain matrix product.
                    var direct = [Int32](repeating: 0, count: rows)
                    for r in 0..<rows {
                        for c in 0..<cols { direct[r] += Int32(values[r * cols + c]) * Int32(qt[c]) }
                    }
                    #expect(naive == direct)
                }
            }
        }
    }

    @Test func headMatvecMatchesDoubleReference() {
        var rng = Xoshiro256(seed: 8)
        for (rows, cols) in [(3, 7), (10, 64), (9, 100)] {
            let w = (0..<rows * cols).map { _ in rng.normal() }, x = (0..<cols).map { _ in rng.normal() }
            let halves = w.map { Float16($0).bitPattern }
            for scalar in [false, true] {
                let previous = bitnet_kernels_force_scalar(scalar ? 1 : 0)
                defer { _ = bitnet_kernels_force_scalar(previous) }
                var y32 = [Float](repeating: 0, count: rows), y16 = y32
                bitnet_matvec_f32(w, cols, x, &y32, Int32(cols), 0, Int32(rows))
                bitnet_matvec_f16(halves, cols, x, &y16, Int32(cols), 0, Int32(rows))
                for r in 0..<rows {
                    let exact32 = (0..<cols).reduce(0.0) { $0 + Double(w[r * cols + $1]) * Double(x[$1]) }
                    let exact16 = (0..<cols).reduce(0.0) { $0 + Double(Float(Float16(w[r * cols + $1]))) * Double(x[$1]) }
                    #expect(abs(Double(y32[r]) - exact32) < 1e-4, "f32 \(rows)x\(cols) scalar: \(scalar)")
                    #expect(abs(Double(y16[r]) - exact16) < 1e-4, "f16 \(rows)x\(cols) scalar: \(scalar)")
                }
            }
        }
    }
}
