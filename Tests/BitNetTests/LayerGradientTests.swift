// Each layer's analytic backward pass against fourth-order finite differences of its
// forward pass, entry by entry (relative error with a floor at 1% of the gradient's scale).
import Foundation
import Testing
@testable import BitNet

@Suite struct LayerGradientTests {
    /// The FP32 norm's forward against the formula in Float64, and its backward against
    /// central differences of that Float64 formula (differences of the FP32 forward carry
    /// its rounding noise, divided by the step: 8e-4 against a bound of 1e-3; against the
    /// Float64 formula the errors are about 1e-6).
    @Test(arguments: NormKind.allCases)
    func norm(kind: NormKind) {
        var rng = Xoshiro256(seed: 1)
        let n = 3, c = 37  // two sixteen-lane blocks and a tail
        let x = Buffer(random: n * c, rng: &rng), gain = Buffer(random: c, rng: &rng)
        let bias = Buffer(random: c, rng: &rng), r = Buffer(random: n * c, rng: &rng)
        let out = Buffer(n * c), mean = Buffer(n), rstd = Buffer(n)
        Norm.forward(kind, out: out.pointer, mean: mean.pointer, rstd: rstd.pointer, inp: x.pointer,
                     gain: gain.pointer, bias: kind == .layer ? bias.pointer : nil, rows: n, width: c, epsilon: 1e-5)
        let dx = Buffer(n * c), dgain = Buffer(c), dbias = Buffer(c)
        Norm.backward(kind, dinp: dx.pointer, dgain: dgain.pointer, dbias: kind == .layer ? dbias.pointer : nil,
                      dout: r.pointer, inp: x.pointer, gain: gain.pointer, mean: mean.pointer, rstd: rstd.pointer,
                      rows: n, width: c)

        // The same norm in Float64: y = (x - mean) rstd g + b, mean 0 for RMSNorm.
        let weights = r.array.map(Double.init)
        func outputs(_ x: [Double], _ g: [Double], _ b: [Double]) -> [Double] {
            (0..<n).flatMap { row -> [Double] in
                let v = x[row * c..<(row + 1) * c]
                let m = kind == .layer ? v.reduce(0, +) / Double(c) : 0
                let s = 1 / (v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(c) + 1e-5).squareRoot()
                return (0..<c).map { (v[row * c + $0] - m) * s * g[$0] + (kind == .layer ? b[$0] : 0) }
            }
        }
        let (x64, g64, b64) = (x.array.map(Double.init), gain.array.map(Double.init), bias.array.map(Double.init))
        #expect(maxRelativeError(out.array.map(Double.init), outputs(x64, g64, b64)) < 1e-6)
        func loss(_ x: [Double], _ g: [Double], _ b: [Double]) -> Double { zip(outputs(x, g, b), weights).reduce(0) { $0 + $1.0 * $1.1 } }
        func central(_ v: [Double], _ i: Int, _ f: ([Double]) -> Double) -> Double {
            var plus = v, minus = v
            plus[i] += 1e-5
            minus[i] -= 1e-5
            return (f(plus) - f(minus)) / 2e-5
        }
        let numericX = (0..<n * c).map { central(x64, $0) { loss($0, g64, b64) } }
        let numericG = (0..<c).map { central(g64, $0) { loss(x64, $0, b64) } }
        #expect(gradientError(dx.array.map(Double.init), numericX) < 1e-5)
        #expect(gradientError(dgain.array.map(Double.init), numericG) < 1e-5)
        if kind == .layer {
            let numericB = (0..<c).map { central(b64, $0) { loss(x64, g64, $0) } }
            #expect(gradientError(dbias.array.map(Double.init), numericB) < 1e-5)
        }
    }

    /// The element-wise non-linearities: FP32 noise in a forward pass of single values is
    /// of the order of the finite difference's, so the reference is the same formula in
    /// Float64, differentiated numerically, and the FP32 forward is checked against it.
    @Test(arguments: FFNActivation.allCases)
    func feedForwardActivation(kind: FFNActivation) {
        var rng = Xoshiro256(seed: 2)
        let count = 101
        let up = Buffer(random: count, rng: &rng, scale: 2), gate = Buffer(random: count, rng: &rng, scale: 2)
        let r = Buffer(random: count, rng: &rng), hidden = Buffer(count)
        let gatePointer: UnsafeMutablePointer<Float>? = kind.hasGate ? gate.pointer : nil
        FeedForward.forward(kind, hidden: hidden.pointer, up: up.pointer, gate: gatePointer, count: count)
        // hidden = h(up, gate) in Float64, from the definitions.
        func reference(_ u: Double, _ g: Double) -> Double {
            switch kind {
            case .swiglu: return g / (1 + Foundation.exp(-g)) * u
            case .gelu: return 0.5 * u * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (u + 0.044715 * u * u * u)))
            case .relu2: return max(u, 0) * max(u, 0)
            }
        }
        for i in 0..<count {
            let expected = reference(Double(up[i]), Double(gate[i]))
            #expect(abs(Double(hidden[i]) - expected) <= 1e-6 * max(1, abs(expected)), "forward \(i)")
        }
        let dup = Buffer(count), dgate = Buffer(count)
        FeedForward.backward(kind, dup: dup.pointer, dgate: kind.hasGate ? dgate.pointer : nil, dhidden: r.pointer,
                             up: up.pointer, gate: gatePointer, count: count)
        let h = 1e-4
        func centralDifference(_ f: (Double) -> Double, at x: Double) -> Double { (f(x + h) - f(x - h)) / (2 * h) }
        let numericUp = (0..<count).map { i in
            Double(r[i]) * centralDifference({ reference($0, Double(gate[i])) }, at: Double(up[i]))
        }
        #expect(gradientError(dup.array.map(Double.init), numericUp) < 1e-4)
        if kind.hasGate {
            let numericGate = (0..<count).map { i in
                Double(r[i]) * centralDifference({ reference(Double(up[i]), $0) }, at: Double(gate[i]))
            }
            #expect(gradientError(dgate.array.map(Double.init), numericGate) < 1e-4)
        }
    }

    @Test func attentionWithRope() {
        var rng = Xoshiro256(seed: 3)
        let b = 2, t = 5, c = 12, nh = 3
        let rope = Rope(context: t, headDim: c / nh, theta: 10000)
        let q = Buffer(random: b * t * c, rng: &rng), k = Buffer(random: b * t * c, rng: &rng)
        let v = Buffer(random: b * t * c, rng: &rng), r = Buffer(random: b * t * c, rng: &rng)
        let qr = Buffer(b * t * c), kr = Buffer(b * t * c), out = Buffer(b * t * c), probs = Buffer(b * nh * t * t)
        func loss() -> Double {
            qr.pointer.update(from: q.pointer, count: q.count)
            kr.pointer.update(from: k.pointer, count: k.count)
            rope.apply(qr.pointer, batch: b, length: t, width: c)
            rope.apply(kr.pointer, batch: b, length: t, width: c)
            Attention.forward(out: out.pointer, probs: probs.pointer, q: qr.pointer, k: kr.pointer, v: v.pointer,
                              batch: b, length: t, width: c, heads: nh)
            return weightedSum(out.pointer, r.pointer, out.count)
        }
        _ = loss()
        let dq = Buffer(b * t * c), dk = Buffer(b * t * c), dv = Buffer(b * t * c), scratch = Buffer(b * nh * t * t)
        Attention.backward(dq: dq.pointer, dk: dk.pointer, dv: dv.pointer, dout: r.pointer, probs: probs.pointer,
                           q: qr.pointer, k: kr.pointer, v: v.pointer, batch: b, length: t, width: c, heads: nh,
                           scratch: scratch.pointer)
        rope.apply(dq.pointer, batch: b, length: t, width: c, inverse: true)
        rope.apply(dk.pointer, batch: b, length: t, width: c, inverse: true)
        for (analytic, input) in [(dq, q), (dk, k), (dv, v)] {
            let numeric = (0..<input.count).map { finiteDifference(input.pointer, $0, h: 5e-2, loss) }
            #expect(gradientError(analytic.array.map(Double.init), numeric) < 1e-3)
        }
    }

    @Test func crossEntropy() {
        var rng = Xoshiro256(seed: 4)
        let n = 4, v = 11
        let logits = Buffer(random: n * v, rng: &rng, scale: 3), work = Buffer(n * v), losses = Buffer(n)
        let targets: [Int32] = [0, 10, 3, 3]
        func loss() -> Double {
            work.pointer.update(from: logits.pointer, count: n * v)
            CrossEntropy.forward(probs: work.pointer, losses: losses.pointer, targets: targets, rows: n, vocab: v)
            return losses.array.reduce(0) { $0 + Double($1) } / Double(n)
        }
        _ = loss()
        CrossEntropy.backward(probs: work.pointer, targets: targets, rows: n, vocab: v, scale: 1 / Float(n))
        let analytic = work.array.map(Double.init)
        let numeric = (0..<n * v).map { finiteDifference(logits.pointer, $0, h: 5e-2, loss) }
        #expect(gradientError(analytic, numeric) < 1e-3)
    }

    @Test func fpLinear() {
        var rng = Xoshiro256(seed: 5)
        let n = 6, i = 13, o = 7
        let w = Buffer(random: o * i, rng: &rng), x = Buffer(random: n * i, rng: &rng)
        let r = Buffer(random: n * o, rng: &rng), out = Buffer(n * o)
        func loss() -> Double {
            Matmul.forward(out.pointer, x.pointer, w.pointer, rows: n, inFeatures: i, outFeatures: o)
            return weightedSum(out.pointer, r.pointer, n * o)
        }
        let dx = Buffer(n * i), dw = Buffer(o * i)
        Matmul.backwardInput(dx.pointer, r.pointer, w.pointer, rows: n, inFeatures: i, outFeatures: o)
        Matmul.backwardWeight(dw.pointer, r.pointer, x.pointer, rows: n, inFeatures: i, outFeatures: o)
        let numericX = (0..<n * i).map { finiteDifference(x.pointer, $0, h: 1e-2, loss) }
        let numericW = (0..<o * i).map { finiteDifference(w.pointer, $0, h: 1e-2, loss) }
        #expect(gradientError(dx.array.map(Double.init), numericX) < 1e-3)
        #expect(gradientError(dw.array.map(Double.init), numericW) < 1e-3)
    }
}
