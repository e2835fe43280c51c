// The runtime's look-up-table product (C, AVX2 and scalar paths) against the naive
// bit-by-bit product, on shapes that are not multiples of the 32-row blocks and
// 16-column tiles, with extreme activations and several tokens at once.
import BitNetFormat
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
        // Rows in fours and one at a time, columns in sixteens and a tail; a row stride
        // wider than the row (as the KV cache's); rows split in two ranges (as the workers
        // split the head).
        for (rows, cols, stride) in [(3, 7, 7), (10, 64, 64), (9, 100, 100), (13, 16, 40), (6, 768, 768), (11, 15, 15)] {
            let w = (0..<rows * stride).map { _ in rng.normal() }, x = (0..<cols).map { _ in rng.normal() }
            let halves = w.map { Float16($0).bitPattern }
            for scalar in [false, true] {
                let previous = bitnet_kernels_force_scalar(scalar ? 1 : 0)
                defer { _ = bitnet_kernels_force_scalar(previous) }
                var y32 = [Float](repeating: .nan, count: rows), y16 = y32
                for range in [0..<rows / 2 + 1, rows / 2 + 1..<rows] {
                    bitnet_matvec_f32(w, stride, x, &y32, Int32(cols), Int32(range.lowerBound), Int32(range.upperBound))
                    bitnet_matvec_f16(halves, stride, x, &y16, Int32(cols), Int32(range.lowerBound), Int32(range.upperBound))
                }
                for r in 0..<rows {
                    let exact32 = (0..<cols).reduce(0.0) { $0 + Double(w[r * stride + $1]) * Double(x[$1]) }
                    let exact16 = (0..<cols).reduce(0.0) { $0 + Double(Float(Float16(w[r * stride + $1]))) * Double(x[$1]) }
                    #expect(abs(Double(y32[r]) - exact32) < 1e-4 * max(1, abs(exact32)), "f32 \(rows)x\(cols) row \(r) scalar: \(scalar)")
                    #expect(abs(Double(y16[r]) - exact16) < 1e-4 * max(1, abs(exact16)), "f16 \(rows)x\(cols) row \(r) scalar: \(scalar)")
                }
            }
        }
    }

    /// The int8 head's product: codes times x times the row's scale, against a Double
    /// reference; rows split in two ranges, columns in thirty-twos and a tail.
    @Test func int8MatvecMatchesDoubleReference() {
        var rng = Xoshiro256(seed: 9)
        for (rows, cols) in [(3, 7), (10, 64), (9, 100), (5, 768)] {
            let codes = (0..<rows * cols).map { _ in Int8(truncatingIfNeeded: Int(rng.below(255)) - 127) }
            let scales = (0..<rows).map { _ in rng.uniform() * 0.01 }, x = (0..<cols).map { _ in rng.normal() }
            for scalar in [false, true] {
                let previous = bitnet_kernels_force_scalar(scalar ? 1 : 0)
                defer { _ = bitnet_kernels_force_scalar(previous) }
                var y = [Float](repeating: .nan, count: rows)
                for range in [0..<rows / 2 + 1, rows / 2 + 1..<rows] {
                    bitnet_matvec_q8(codes, scales, cols, x, &y, Int32(cols), Int32(range.lowerBound), Int32(range.upperBound))
                }
                for r in 0..<rows {
                    let terms = (0..<cols).map { Double(scales[r]) * Double(codes[r * cols + $0]) * Double(x[$0]) }
                    let exact = terms.reduce(0, +), size = terms.map(abs).reduce(0, +)
                    #expect(abs(Double(y[r]) - exact) <= 1e-5 * size, "\(rows)x\(cols) row \(r) scalar: \(scalar)")
                }
            }
        }
    }

    /// The FP16 KV cache: conversion to half equals Swift's Float16 (both paths, including
    /// subnormals, ties and overflow), and the FP16 and FP32 weighted sums match a Double reference.
    @Test func halfConversionAndWeightedSum() {
        var rng = Xoshiro256(seed: 12)
        var x: [Float] = [0, -0, 1, -1, 65504, 65520, 70000, -1e9, 6e-8, 3e-8, 2.98e-8, 5.96e-8, 1e-5, -6.1e-5, .infinity, 0.1]
        for _ in 0..<2000 { x.append(rng.normal() * Float(pow(2.0, Double(rng.below(60) - 40)))) }
        for _ in 0..<500 { x.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()) & 0x7FFF_FFFF | 0x3300_0000)) }
        let expected = x.map { Float16($0).bitPattern }
        for scalar in [false, true] {
            let previous = bitnet_kernels_force_scalar(scalar ? 1 : 0)
            defer { _ = bitnet_kernels_force_scalar(previous) }
            var out = [UInt16](repeating: 0, count: x.count)
            bitnet_to_f16(x, &out, Int32(x.count))
            let wrong = x.indices.filter { out[$0] != expected[$0] && !x[$0].isNaN }
            #expect(wrong.isEmpty, "scalar \(scalar): \(wrong.prefix(5).map { (x[$0], out[$0], expected[$0]) })")
            // Columns in sixty-fours, thirty-twos and a tail.
            for (n, cols, stride) in [(1, 8, 8), (9, 40, 48), (130, 96, 100), (7, 64, 64), (33, 136, 140), (2, 128, 768)] {
                let floats = (0..<n * stride).map { _ in rng.normal() }, weights = (0..<n).map { _ in rng.uniform() }
                let values = floats.map { Float16($0).bitPattern }
                var y = [Float](repeating: .nan, count: cols), y32 = y
                bitnet_weighted_sum_f16(values, stride, weights, Int32(n), Int32(cols), &y)
                bitnet_weighted_sum_f32(floats, stride, weights, Int32(n), Int32(cols), &y32)
                for j in 0..<cols {
                    let exact = (0..<n).reduce(0.0) { $0 + Double(weights[$1]) * Double(Float(Float16(bitPattern: values[$1 * stride + j]))) }
                    let exact32 = (0..<n).reduce(0.0) { $0 + Double(weights[$1]) * Double(floats[$1 * stride + j]) }
                    #expect(abs(Double(y[j]) - exact) < 1e-4, "f16 weighted sum \(n)x\(cols) column \(j) scalar: \(scalar)")
                    #expect(abs(Double(y32[j]) - exact32) < 1e-4, "f32 weighted sum \(n)x\(cols) column \(j) scalar: \(scalar)")
                }
            }
        }
    }
}
