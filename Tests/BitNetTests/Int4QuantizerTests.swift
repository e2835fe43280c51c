// INT4 training's quantizers (issue 12): the block-diagonal Walsh-Hadamard transform
// against the dense Sylvester matrix and its own inverse; the Hadamard quantizer's error
// below plain INT4's with planted outlier columns; LSQ's step gradient against finite
// differences of its straight-through surrogate.
import Foundation
import Testing
@testable import BitNet

@Suite struct Int4QuantizerTests {
    @Test(arguments: [1, 2, 8, 32])
    func blockHadamardEqualsTheDenseMatrixAndInvertsItself(block: Int) {
        var rng = Xoshiro256(seed: UInt64(60 + block))
        let (rows, width) = (3, 64)
        let x = (0..<rows * width).map { _ in rng.normal() }
        var y = x
        WalshHadamard.blockDiagonal(&y, rows: rows, width: width, block: block)
        var worst: Float = 0
        for r in 0..<rows {
            for c in 0..<width {
                let start = c / block * block
                var expected = 0.0
                for k in start..<(start + block) {
                    let sign: Double = ((c - start) & (k - start)).nonzeroBitCount % 2 == 0 ? 1 : -1
                    expected += sign * Double(x[r * width + k])
                }
                expected /= Double(block).squareRoot()
                worst = max(worst, abs(Float(expected) - y[r * width + c]))
            }
        }
        #expect(worst < 1e-5, "block \(block): differs from the dense transform by \(worst)")
        WalshHadamard.blockDiagonal(&y, rows: rows, width: width, block: block)
        #expect(zip(x, y).allSatisfy { abs($0 - $1) < 1e-5 }, "block \(block): H H x is not x")
    }

    /// With two outlier columns 40x the rest, INT4 after the Hadamard transform (back in
    /// the original basis) reconstructs X with a smaller error than INT4 of X itself,
    /// each at its own best step.
    @Test func hadamardQuantizerBeatsPlainInt4OnOutliers() {
        var rng = Xoshiro256(seed: 63)
        let (rows, width) = (64, 128)
        var x = (0..<rows * width).map { _ in rng.normal() }
        for r in 0..<rows { for c in [5, 77] { x[r * width + c] *= 40 } }
        func error(_ y: [Float]) -> Double { zip(x, y).reduce(0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) } }
        let steps = (1...400).map { Float($0) * 0.05 }
        var plain = Double.infinity, hadamard = Double.infinity
        let hq = HadamardQuantizer(block: 32)
        for s in steps {
            var out = [Float](repeating: 0, count: x.count)
            LearnedStepQuantizer.forward(x, count: x.count, step: s, out: &out, codes: nil)
            plain = min(plain, error(out))
            var transformed = out, dequantized = out
            hq.quantize(x, rows: rows, width: width, step: s, transformed: &transformed, dequantized: &dequantized, codes: nil)
            hq.restore(&dequantized, rows: rows, width: width)
            hadamard = min(hadamard, error(dequantized))
        }
        #expect(hadamard < 0.5 * plain, "HQ error \(hadamard) against plain INT4 \(plain)")
    }

    /// LSQ's dL/ds for L = sum (q(x) - t)^2 against a central difference of the
    /// straight-through surrogate: s round(x / s) with round(x / s) - x / s frozen at s0
    /// inside the range and the clamped level outside, times LSQ's gradient scale.
    @Test func stepGradientMatchesFiniteDifferences() {
        var rng = Xoshiro256(seed: 64)
        let count = 500
        let x = (0..<count).map { _ in rng.normal() * 2 }, t = (0..<count).map { _ in rng.normal() }
        let s0: Float = 0.3  // x / s reaches past [-8, 7]: both clamps occur
        var out = [Float](repeating: 0, count: count)
        LearnedStepQuantizer.forward(x, count: count, step: s0, out: &out, codes: nil)
        let dout = (0..<count).map { 2 * (out[$0] - t[$0]) }
        var dx = [Float](repeating: 0, count: count)
        let ds = LearnedStepQuantizer.backward(x, count: count, step: s0, dout: dout, dx: &dx)
        #expect(x.contains { $0 / s0 > 7.5 } && x.contains { $0 / s0 < -8.5 })
        func surrogate(_ s: Double) -> Double {
            (0..<count).reduce(0.0) { sum, i in
                let v = Double(x[i]) / Double(s0), k = v.rounded(.toNearestOrEven)
                let q = k < -8 || k > 7 ? s * min(max(k, -8), 7) : Double(x[i]) + s * (k - v)
                return sum + (q - Double(t[i])) * (q - Double(t[i]))
            }
        }
        let h = 1e-4
        let numeric = (surrogate(Double(s0) + h) - surrogate(Double(s0) - h)) / (2 * h) / (Double(count) * 7).squareRoot()
        #expect(abs(Double(ds) - numeric) < 1e-3 * abs(numeric) + 1e-6, "LSQ gradient \(ds), finite differences \(numeric)")
        // dx passes inside the range only.
        for i in 0..<count {
            let k = (x[i] / s0).rounded(.toNearestOrEven)
            #expect(dx[i] == (k < -8 || k > 7 ? 0 : dout[i]))
        }
    }
}

/// Leverage-score sampling and bit splitting (the INT4 backward).
@Suite struct LeverageScoreSamplingTests {
    /// A structurally sparse gradient: 6 of 96 token rows carry almost all of it.
    static func sparseProduct(seed: UInt64) -> (g: [Float], x: [Float], rows: Int, out: Int, width: Int) {
        var rng = Xoshiro256(seed: seed)
        let (rows, out, width) = (96, 12, 10)
        var g = (0..<rows * out).map { _ in rng.normal() * 0.01 }
        for r in [3, 17, 40, 41, 70, 95] { for j in 0..<out { g[r * out + j] = rng.normal() * (1 + Float(r % 5)) } }
        let x = (0..<rows * width).map { _ in rng.normal() }
        return (g, x, rows, out, width)
    }

    /// G^T X from the sampled rows, each divided by its probability.
    static func estimate(_ s: (g: [Float], x: [Float], rows: Int, out: Int, width: Int), kept: [(row: Int, weight: Float)]) -> [Double] {
        var e = [Double](repeating: 0, count: s.out * s.width)
        for (r, w) in kept {
            for j in 0..<s.out { for c in 0..<s.width { e[j * s.width + c] += Double(w * s.g[r * s.out + j] * s.x[r * s.width + c]) } }
        }
        return e
    }

    static func scores(_ s: (g: [Float], x: [Float], rows: Int, out: Int, width: Int)) -> [Float] {
        (0..<s.rows).map { r in
            let gn = (0..<s.out).reduce(Float(0)) { $0 + s.g[r * s.out + $1] * s.g[r * s.out + $1] }.squareRoot()
            let xn = (0..<s.width).reduce(Float(0)) { $0 + s.x[r * s.width + $1] * s.x[r * s.width + $1] }.squareRoot()
            return gn * xn
        }
    }

    @Test func probabilitiesSumToTheBudgetAndFollowTheScores() {
        let p = LeverageScoreSampling.probabilities(scores: [10, 5, 1, 1, 1, 0, 2], budget: 3)
        #expect(abs(p.reduce(0, +) - 3) < 1e-5 && p[0] == 1 && p[5] == 0, "\(p)")
        #expect(abs(p[1] / p[2] - 5) < 1e-4 && abs(p[6] / p[2] - 2) < 1e-4, "\(p)")
        #expect(LeverageScoreSampling.probabilities(scores: [1, 2, 0], budget: 5) == [1, 1, 0])
    }

    /// Unbiased: the mean of T sampled estimates approaches G^T X, its error shrinking
    /// like 1 / sqrt(T); and with the same budget its variance is below uniform sampling's.
    @Test func samplingIsUnbiasedAndBeatsUniform() {
        let s = Self.sparseProduct(seed: 71)
        let exact = Self.estimate(s, kept: (0..<s.rows).map { ($0, 1) })
        let budget = 24.0
        let leverage = LeverageScoreSampling.probabilities(scores: Self.scores(s), budget: budget)
        let uniform = [Float](repeating: Float(budget / Double(s.rows)), count: s.rows)
        var rng = Xoshiro256(seed: 72)
        func meanError(_ p: [Float], trials: Int) -> (bias: Double, variance: Double) {
            var sum = [Double](repeating: 0, count: exact.count), squared = 0.0
            for _ in 0..<trials {
                let e = Self.estimate(s, kept: LeverageScoreSampling.sample(p, rng: &rng))
                for k in e.indices { sum[k] += e[k] }
                squared += zip(e, exact).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
            }
            let bias = zip(sum, exact).reduce(0.0) { $0 + ($1.0 / Double(trials) - $1.1) * ($1.0 / Double(trials) - $1.1) }.squareRoot()
            return (bias, squared / Double(trials))
        }
        let norm = exact.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let short = meanError(leverage, trials: 25), long = meanError(leverage, trials: 1600)
        #expect(long.bias < 0.05 * norm, "the mean of 1600 estimates is \(long.bias) from G^T X (norm \(norm))")
        #expect(long.bias < 0.35 * short.bias, "error after 1600 trials \(long.bias), after 25 \(short.bias): not ~1/sqrt(T)")
        let uniformVariance = meanError(uniform, trials: 400).variance
        #expect(long.variance < 0.5 * uniformVariance, "leverage variance \(long.variance), uniform \(uniformVariance)")
    }

    /// Two INT4 parts hold each value to one low step (max |g| / 98), and the stochastic
    /// rounding of the low part makes the pair unbiased: the mean of many splits is g.
    @Test func bitSplittingIsFineAndUnbiased() {
        var rng = Xoshiro256(seed: 73)
        let g = (0..<200).map { _ in rng.normal() * 3 }
        var hi = [Int8](repeating: 0, count: g.count), lo = hi
        var mean = [Double](repeating: 0, count: g.count)
        let trials = 2000
        var low: Float = 0
        for trial in 0..<trials {
            let scales = LeverageScoreSampling.splitBits(g, count: g.count, hi: &hi, lo: &lo, key: UInt32(trial))
            low = scales.low
            #expect(hi.allSatisfy { (-7...7).contains($0) } && lo.allSatisfy { (-7...7).contains($0) })
            for i in g.indices {
                let back = scales.high * Float(hi[i]) + scales.low * Float(lo[i])
                #expect(abs(back - g[i]) <= scales.low * 1.001, "\(g[i]) -> \(back)")
                mean[i] += Double(back) / Double(trials)
            }
        }
        let largest = g.map { abs($0) }.max() ?? 0
        #expect(abs(Double(low) - Double(largest) / 98) < 1e-6)
        // Each split's error is up to one low step; the mean's falls as 1 / sqrt(trials).
        let worst = zip(mean, g).map { abs($0 - Double($1)) }.max() ?? 0
        #expect(worst < 0.1 * Double(low), "mean of \(trials) splits is \(worst) from g (low step \(low))")
    }
}
