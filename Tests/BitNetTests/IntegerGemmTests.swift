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

    typealias Kernel32 = (Int32, UnsafePointer<Int8>?, Int, UnsafePointer<Int8>?, Int, UnsafeMutablePointer<Int32>?, Int,
                          Int32, Int32, Int32, Int32) -> Void
    typealias KernelF32 = (Int32, UnsafePointer<Int8>?, Int, UnsafePointer<Int8>?, Int, UnsafeMutablePointer<Float>?, Int,
                           Int32, Int32, Int32, Int32) -> Void

    /// One kernel (int32 and FP32 outputs) on every path this CPU has, against naive
    /// sums: awkward shapes with strides wider than the rows, rows in two ranges as the
    /// cores split them, nothing written past the last column, and k = 65536 products
    /// of each extreme pair. Returns the paths that ran.
    func checkEveryPath(_ name: String, _ kernel: Kernel32, _ kernelF32: KernelF32, shapes: [(Int, Int, Int)],
                        a values: (inout Xoshiro256) -> Int8, b bValues: (inout Xoshiro256) -> Int8,
                        extremes: [(Int8, Int8)], seed: UInt64) {
        var rng = Xoshiro256(seed: seed)
        var ran: [String] = []
        for path in Self.paths where bitnet_s8_path_supported(path.id) != 0 {
            ran.append(path.name)
            for (m, n, k) in shapes {
                let (lda, ldb, ldc) = (k + 3, k + 1, n + 2)
                let a = (0..<m * lda).map { _ in values(&rng) }, b = (0..<n * ldb).map { _ in bValues(&rng) }
                var c = [Int32](repeating: -7, count: m * ldc), f = [Float](repeating: -7, count: m * ldc)
                kernel(path.id, a, lda, b, ldb, &c, ldc, 0, Int32(m / 2), Int32(n), Int32(k))
                kernel(path.id, a, lda, b, ldb, &c, ldc, Int32(m / 2), Int32(m), Int32(n), Int32(k))
                kernelF32(path.id, a, lda, b, ldb, &f, ldc, 0, Int32(m), Int32(n), Int32(k))
                var wrong = 0
                for i in 0..<m {
                    for j in 0..<n {
                        var s: Int32 = 0
                        for p in 0..<k { s += Int32(a[i * lda + p]) * Int32(b[j * ldb + p]) }
                        if c[i * ldc + j] != s || f[i * ldc + j] != Float(s) { wrong += 1 }
                    }
                    for j in n..<ldc where c[i * ldc + j] != -7 || f[i * ldc + j] != -7 { wrong += 1 }
                }
                #expect(wrong == 0, "\(path.name) \(name) \(m)x\(n)x\(k): \(wrong) outputs wrong")
            }
            let k = 65536
            for (x, y) in extremes {
                let a = [Int8](repeating: x, count: k), b = [Int8](repeating: y, count: k)
                var c: [Int32] = [0]
                kernel(path.id, a, k, b, k, &c, 1, 0, 1, 1, Int32(k))
                #expect(c[0] == Int32(x) * Int32(y) * Int32(k), "\(path.name) \(name): \(x) x \(y) over \(k) gives \(c[0])")
            }
        }
        print("\(name) product paths tested on this CPU: \(ran.joined(separator: ", "))")
        #expect(ran.contains("scalar") && ran.contains("AVX2"), "ran \(ran)")
    }

    /// The int8 limit `bench --int8-products` prints: a rate where AVX-512 VNNI runs, 0 elsewhere.
    @Test func vnniLimitIsMeasuredWhereVNNIRuns() {
        let ops = bitnet_vnni_peak_ops(10_000)
        if bitnet_s8_path_supported(Int32(BITNET_S8_AVX512VNNI)) != 0 {
            #expect(ops > 0 && ops.isFinite)
        } else {
            #expect(ops == 0)
        }
    }

    /// Any int8 (the extremes -128 and 127 over-represented).
    @Test func everyPathEqualsTheNaiveProduct() {
        checkEveryPath("int8", bitnet_gemm_s8, bitnet_gemm_s8_f32,
                       shapes: [(1, 1, 1), (4, 2, 16), (5, 3, 17), (7, 9, 31), (8, 4, 32), (3, 5, 63), (9, 7, 64), (6, 2, 65),
                                (4, 3, 130), (11, 13, 257), (2, 1, 1000),
                                (13, 37, 35), (7, 50, 9), (6, 33, 64), (19, 64, 18)],
                       a: { Self.values(1, rng: &$0)[0] }, b: { Self.values(1, rng: &$0)[0] }, extremes: [(-128, -128)], seed: 51)
        #expect(bitnet_s8_best_path() == Self.paths.last { bitnet_s8_path_supported($0.id) != 0 }?.id)
    }

    /// INT4 operands in [-8, 7] (the extremes over-represented), past the AVX2 kernel's
    /// 4096-wide int16 chunks at the largest magnitudes.
    @Test func everyPathEqualsTheNaiveInt4Product() {
        func int4(_ rng: inout Xoshiro256) -> Int8 { [-8, 7, Int8(rng.below(16)) - 8][min(rng.below(4), 2)] }
        checkEveryPath("INT4", bitnet_gemm_s4, bitnet_gemm_s4_f32,
                       shapes: [(1, 1, 1), (4, 2, 32), (5, 3, 33), (7, 9, 31), (3, 5, 95), (9, 7, 128), (4, 3, 4100), (11, 13, 257),
                                (13, 37, 35), (7, 50, 9), (19, 64, 18)],
                       a: int4, b: int4, extremes: [(7, -8), (-8, -8), (7, 7)], seed: 53)
    }

    /// BitLinear's forward operands: activations in [-127, 127] against weights in
    /// {-1, 0, +1}, at the largest magnitudes too.
    @Test func everyPathEqualsTheNaiveTernaryWeightProduct() {
        checkEveryPath("ternary-weight", bitnet_gemm_s8t, bitnet_gemm_s8t_f32,
                       shapes: [(1, 1, 1), (4, 2, 32), (5, 3, 33), (7, 9, 31), (9, 7, 128), (4, 3, 4100), (11, 13, 257),
                                (13, 37, 35), (7, 50, 9), (19, 64, 18)],
                       a: { [-127, 127, Int8($0.below(255) - 127)][min($0.below(4), 2)] }, b: { Int8($0.below(3) - 1) },
                       extremes: [(127, 1), (-127, 1), (127, -1), (-127, -1)], seed: 54)
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

    /// The backward products' byte transpose, scalar and in 16 x 16 register blocks, against
    /// the definition: shapes with and without whole blocks, column ranges split as the
    /// cores split them, and nothing written outside the output.
    @Test func transposeEqualsTheDefinition() {
        var rng = Xoshiro256(seed: 55)
        for (rows, cols) in [(1, 1), (15, 17), (16, 16), (33, 47), (130, 200), (3, 64)] {
            let a = Self.values(rows * cols, rng: &rng)
            for vectorized in [false, true] {
                var out = [Int8](repeating: 99, count: rows * cols + 16)
                IntegerMatmul.transpose(a, rows: rows, cols: cols, into: &out, vectorized: vectorized)
                let wrong = (0..<rows * cols).filter { k in out[k] != a[k % rows * cols + k / rows] }.count
                #expect(wrong == 0 && out[(rows * cols)...].allSatisfy { $0 == 99 },
                        "\(rows)x\(cols) \(vectorized ? "SSE2" : "scalar"): \(wrong) wrong")
            }
        }
    }
}
