// The trainer's int8 product (issue 12): every path this CPU has against a naive int32
// reference, exactly, on awkward shapes and extreme values. The paths are named in the
// result, so a log shows which ran; scalar always runs, AVX2 wherever the CPU has it
// (every machine this project runs on).
import CBitKernels
import Foundation
import Testing
@testable import BitNet

@Suite struct IntegerGemmTests {
    static let paths: [(id: Int32, name: String)] = [(Int32(BITNET_S8_SCALAR), "scalar"), (Int32(BITNET_S8_AVX2), "AVX2"),
                                                     (Int32(BITNET_S8_AVXVNNI), "AVX-VNNI"), (Int32(BITNET_S8_AVX512VNNI), "AVX-512 VNNI")]

    /// Random int8 with the extremes -128 and 127 over-represented.
    static func values(_ count: Int, rng: inout Xoshiro256) -> [Int8] {
        (0..<count).map { _ in
            switch rng.below(4) {
            case 0: return -128
            case 1: return 127
            default: return Int8(truncatingIfNeeded: rng.below(256))
            }
        }
    }

    @Test func everyPathEqualsTheNaiveProduct() throws {
        var rng = Xoshiro256(seed: 51)
        var ran: [String] = []
        for path in Self.paths where bitnet_s8_path_supported(path.id) != 0 {
            ran.append(path.name)
            for (m, n, k) in [(1, 1, 1), (4, 2, 16), (5, 3, 17), (7, 9, 31), (8, 4, 32), (3, 5, 63), (9, 7, 64), (6, 2, 65),
                              (4, 3, 130), (11, 13, 257), (2, 1, 1000)] {
                let (lda, ldb, ldc) = (k + 3, k + 1, n + 2)  // strides wider than the rows
                let a = Self.values(m * lda, rng: &rng), b = Self.values(n * ldb, rng: &rng)
                var c = [Int32](repeating: -7, count: m * ldc)
                // Two row ranges, as the caller splits rows across cores.
                let half = m / 2
                bitnet_gemm_s8(path.id, a, lda, b, ldb, &c, ldc, 0, Int32(half), Int32(n), Int32(k))
                bitnet_gemm_s8(path.id, a, lda, b, ldb, &c, ldc, Int32(half), Int32(m), Int32(n), Int32(k))
                var f = [Float](repeating: -7, count: m * ldc)
                bitnet_gemm_s8_f32(path.id, a, lda, b, ldb, &f, ldc, 0, Int32(m), Int32(n), Int32(k))
                var wrong = 0
                for i in 0..<m {
                    for j in 0..<n {
                        var s: Int32 = 0
                        for p in 0..<k { s += Int32(a[i * lda + p]) * Int32(b[j * ldb + p]) }
                        if c[i * ldc + j] != s || f[i * ldc + j] != Float(s) { wrong += 1 }
                    }
                    for j in n..<ldc where c[i * ldc + j] != -7 || f[i * ldc + j] != -7 { wrong += 1 }  // nothing written past n
                }
                #expect(wrong == 0, "\(path.name) \(m)x\(n)x\(k): \(wrong) outputs wrong")
            }
            // The extreme sum: k = 65536 products of -128 x -128 = 2^30 in total.
            let k = 65536, a = [Int8](repeating: -128, count: k)
            var c: [Int32] = [0]
            bitnet_gemm_s8(path.id, a, k, a, k, &c, 1, 0, 1, 1, Int32(k))
            #expect(c[0] == 1 << 30, "\(path.name): all -128 over 65536 gives \(c[0])")
        }
        print("int8 product paths tested on this CPU: \(ran.joined(separator: ", "))")
        #expect(ran.contains("scalar") && ran.contains("AVX2"), "ran \(ran)")
        #expect(bitnet_s8_best_path() == Self.paths.last { bitnet_s8_path_supported($0.id) != 0 }?.id)
    }

    /// The INT4 product (operands in [-8, 7]) on every path against naive sums, the
    /// extremes -8 and 7 over-represented, on awkward shapes, and past the AVX2 kernel's
    /// 4096-wide int16 chunks at the largest magnitudes.
    @Test func everyPathEqualsTheNaiveInt4Product() {
        var rng = Xoshiro256(seed: 53)
        func values(_ count: Int) -> [Int8] {
            (0..<count).map { _ in [-8, 7, Int8(rng.below(16)) - 8][min(rng.below(4), 2)] }
        }
        var ran: [String] = []
        for path in Self.paths where bitnet_s8_path_supported(path.id) != 0 {
            ran.append(path.name)
            for (m, n, k) in [(1, 1, 1), (4, 2, 32), (5, 3, 33), (7, 9, 31), (3, 5, 95), (9, 7, 128), (4, 3, 4100), (11, 13, 257)] {
                let (lda, ldb, ldc) = (k + 3, k + 1, n + 2)
                let a = values(m * lda), b = values(n * ldb)
                var c = [Int32](repeating: -7, count: m * ldc), f = [Float](repeating: -7, count: m * ldc)
                let half = m / 2
                bitnet_gemm_s4(path.id, a, lda, b, ldb, &c, ldc, 0, Int32(half), Int32(n), Int32(k))
                bitnet_gemm_s4(path.id, a, lda, b, ldb, &c, ldc, Int32(half), Int32(m), Int32(n), Int32(k))
                bitnet_gemm_s4_f32(path.id, a, lda, b, ldb, &f, ldc, 0, Int32(m), Int32(n), Int32(k))
                var wrong = 0
                for i in 0..<m {
                    for j in 0..<n {
                        var s: Int32 = 0
                        for p in 0..<k { s += Int32(a[i * lda + p]) * Int32(b[j * ldb + p]) }
                        if c[i * ldc + j] != s || f[i * ldc + j] != Float(s) { wrong += 1 }
                    }
                    for j in n..<ldc where c[i * ldc + j] != -7 || f[i * ldc + j] != -7 { wrong += 1 }
                }
                #expect(wrong == 0, "\(path.name) INT4 \(m)x\(n)x\(k): \(wrong) outputs wrong")
            }
            // The largest sums of each sign over 65536 products: 7 x -8 and -8 x -8.
            let k = 65536
            for (x, y) in [(Int8(7), Int8(-8)), (-8, -8), (7, 7)] {
                let a = [Int8](repeating: x, count: k), b = [Int8](repeating: y, count: k)
                var c: [Int32] = [0]
                bitnet_gemm_s4(path.id, a, k, b, k, &c, 1, 0, 1, 1, Int32(k))
                #expect(c[0] == Int32(x) * Int32(y) * Int32(k), "\(path.name): \(x) x \(y) over \(k) gives \(c[0])")
            }
        }
        print("INT4 product paths tested on this CPU: \(ran.joined(separator: ", "))")
        #expect(ran.contains("scalar") && ran.contains("AVX2"), "ran \(ran)")
    }

    /// BitLinear's forward product (activations in [-127, 127], weights in {-1, 0, +1}) on
    /// every path against naive sums, past the AVX2 kernel's 4096-wide int16 chunks at the
    /// largest magnitudes.
    @Test func everyPathEqualsTheNaiveTernaryWeightProduct() {
        var rng = Xoshiro256(seed: 54)
        var ran: [String] = []
        for path in Self.paths where bitnet_s8_path_supported(path.id) != 0 {
            ran.append(path.name)
            for (m, n, k) in [(1, 1, 1), (4, 2, 32), (5, 3, 33), (7, 9, 31), (9, 7, 128), (4, 3, 4100), (11, 13, 257)] {
                let (lda, ldb, ldc) = (k + 3, k + 1, n + 2)
                let a = (0..<m * lda).map { _ in [-127, 127, Int8(rng.below(255) - 127)][min(rng.below(4), 2)] }
                let b = (0..<n * ldb).map { _ in Int8(rng.below(3) - 1) }
                var c = [Int32](repeating: -7, count: m * ldc), f = [Float](repeating: -7, count: m * ldc)
                bitnet_gemm_s8t(path.id, a, lda, b, ldb, &c, ldc, 0, Int32(m / 2), Int32(n), Int32(k))
                bitnet_gemm_s8t(path.id, a, lda, b, ldb, &c, ldc, Int32(m / 2), Int32(m), Int32(n), Int32(k))
                bitnet_gemm_s8t_f32(path.id, a, lda, b, ldb, &f, ldc, 0, Int32(m), Int32(n), Int32(k))
                var wrong = 0
                for i in 0..<m {
                    for j in 0..<n {
                        var s: Int32 = 0
                        for p in 0..<k { s += Int32(a[i * lda + p]) * Int32(b[j * ldb + p]) }
                        if c[i * ldc + j] != s || f[i * ldc + j] != Float(s) { wrong += 1 }
                    }
                    for j in n..<ldc where c[i * ldc + j] != -7 || f[i * ldc + j] != -7 { wrong += 1 }
                }
                #expect(wrong == 0, "\(path.name) ternary-weight \(m)x\(n)x\(k): \(wrong) outputs wrong")
            }
            let k = 65536
            for (x, y) in [(Int8(127), Int8(1)), (-127, 1), (127, -1), (-127, -1)] {
                let a = [Int8](repeating: x, count: k), b = [Int8](repeating: y, count: k)
                var c: [Int32] = [0]
                bitnet_gemm_s8t(path.id, a, k, b, k, &c, 1, 0, 1, 1, Int32(k))
                #expect(c[0] == Int32(x) * Int32(y) * Int32(k), "\(path.name): \(x) x \(y) over \(k) gives \(c[0])")
            }
        }
        print("ternary-weight product paths tested on this CPU: \(ran.joined(separator: ", "))")
        #expect(ran.contains("scalar") && ran.contains("AVX2"), "ran \(ran)")
    }

    /// The three products of a training step (forward X W^T, activation gradient G W,
    /// weight gradient G^T X) on the best path, split over the cores, against naive sums.
    @Test func threeLayoutsEqualNaiveProducts() {
        var rng = Xoshiro256(seed: 52)
        for (n, i, o) in [(1, 1, 1), (7, 33, 5), (64, 100, 48), (130, 17, 70)] {
            let x = Self.values(n * i, rng: &rng), w = Self.values(o * i, rng: &rng), g = Self.values(n * o, rng: &rng)
            var y = [Int32](repeating: 0, count: n * o), dx = [Int32](repeating: 0, count: n * i), dw = [Int32](repeating: 0, count: o * i)
            var s1 = [Int8](repeating: 0, count: o * n), s2 = [Int8](repeating: 0, count: i * max(n, o))
            IntegerMatmul.forward(&y, x, w, rows: n, inFeatures: i, outFeatures: o)
            IntegerMatmul.backwardInput(&dx, g, w, rows: n, inFeatures: i, outFeatures: o, scratch: &s2)
            IntegerMatmul.backwardWeight(&dw, g, x, rows: n, inFeatures: i, outFeatures: o, scratchG: &s1, scratchX: &s2)
            func sum(_ count: Int, _ term: (Int) -> Int32) -> Int32 { (0..<count).reduce(0) { $0 + term($1) } }
            let forwardWrong = (0..<n * o).filter { k in y[k] != sum(i) { Int32(x[k / o * i + $0]) * Int32(w[k % o * i + $0]) } }.count
            let inputWrong = (0..<n * i).filter { k in dx[k] != sum(o) { Int32(g[k / i * o + $0]) * Int32(w[$0 * i + k % i]) } }.count
            let weightWrong = (0..<o * i).filter { k in dw[k] != sum(n) { Int32(g[$0 * o + k / i]) * Int32(x[$0 * i + k % i]) } }.count
            #expect(forwardWrong == 0 && inputWrong == 0 && weightWrong == 0,
                    "\(n)x\(i)->\(o): wrong outputs \(forwardWrong) (X W^T), \(inputWrong) (G W), \(weightWrong) (G^T X)")
        }
    }
}
