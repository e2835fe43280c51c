// The vectorizable exp/tanh/sigmoid against libm over their whole useful range.
import Foundation
import Testing
@testable import BitNet

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
