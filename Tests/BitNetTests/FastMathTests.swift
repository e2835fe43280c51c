// The vectorizable exp/tanh/sigmoid against libm over their whole useful range.
import Foundation
import Testing
@testable import BitNet
import BitNetMath

@Suite struct FastMathTests {
    @Test func expMatchesLibmToAFewUlps() {
        var worst: Double = 0
        var x: Float = -87
        while x < 88 {
            let exact = Foundation.exp(Double(x))
            worst = max(worst, abs(Double(FastMath.exp(x)) - exact) / exact)
            x += 0.001_7
        }
        #expect(worst < 4e-7, "worst relative error \(worst)")
        #expect(FastMath.exp(0) == 1)
        #expect(FastMath.exp(-1000) >= 0 && FastMath.exp(-1000) < 1e-37)
        #expect(FastMath.exp(1000).isFinite)
    }

    @Test func tanhAndSigmoidMatchLibm() {
        var worstTanh: Double = 0, worstSigmoid: Double = 0
        var x: Float = -30
        while x < 30 {
            worstTanh = max(worstTanh, abs(Double(FastMath.tanh(x)) - Foundation.tanh(Double(x))))
            worstSigmoid = max(worstSigmoid, abs(Double(FastMath.sigmoid(x)) - 1 / (1 + Foundation.exp(-Double(x)))))
            x += 0.000_93
        }
        #expect(worstTanh < 3e-7, "tanh absolute error \(worstTanh)")
        #expect(worstSigmoid < 2e-7, "sigmoid absolute error \(worstSigmoid)")
    }
}

/// The sixteen-lane reductions against plain loops, on lengths around the lane count
/// (the tail loop and the vector loop alone and together) and values of both signs.
@Suite struct ReductionTests {
    @Test(arguments: [0, 1, 7, 15, 16, 17, 31, 32, 33, 100, 8192])
    func matchPlainLoops(n: Int) {
        var rng = Xoshiro256(seed: UInt64(n) + 1)
        var x = (0..<n).map { _ in rng.uniform() * 200 - 100 }
        if n > 20 { x[n / 2] = -1000 }  // the largest magnitude is negative
        let plainMax = x.reduce(-Float.infinity) { max($0, $1) }
        let plainMagnitude = x.reduce(Float(0)) { max($0, abs($1)) }
        let exactSum = x.reduce(0.0) { $0 + Double($1) }
        x.withUnsafeBufferPointer { p in
            let base = p.baseAddress ?? UnsafePointer(bitPattern: 16)!
            #expect(Reduce.maximum(base, n) == plainMax)
            #expect(Reduce.maximumMagnitude(base, n) == plainMagnitude)
            // 16 partial sums: within a few roundings of the exact sum of |x| ~ 50 n.
            #expect(abs(Double(Reduce.sum(base, n)) - exactSum) <= 1e-6 * 50 * Double(max(n, 1)) + 1e-6)
        }
    }

    /// A NaN is passed over by the maximum, and the softmax still returns a NaN loss for
    /// its row, so training stops on it.
    @Test func softmaxPropagatesANaNLogit() {
        var logits: [Float] = (0..<40).map { Float($0) / 10 }
        logits[20] = .nan
        var losses: [Float] = [0]
        let targets: [Int32] = [3]
        logits.withUnsafeMutableBufferPointer { l in
            losses.withUnsafeMutableBufferPointer { out in
                CrossEntropy.forward(probs: l.baseAddress!, losses: out.baseAddress!, targets: targets, rows: 1, vocab: 40)
            }
        }
        #expect(losses[0].isNaN)
    }
}
