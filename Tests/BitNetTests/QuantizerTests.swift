// The quantizers' values and straight-through gradients against naive references.
import Foundation
import Testing
@testable import BitNet

@Suite struct QuantizerTests {
    // References written from the papers' equations as plain scalar loops in Double,
    // sharing no code with the quantizers under test.

    /// BitNet eq. 1-3: alpha = mean(W); W~ = Sign(W - alpha), Sign(0) = -1; beta = mean |W|.
    static func binaryReference(_ w: [Float]) -> (values: [Float], beta: Double) {
        var sum = 0.0, sumAbs = 0.0
        for v in w {
            sum += Double(v)
            sumAbs += Double(v).magnitude
        }
        let alpha = Float(sum / Double(w.count))
        var values: [Float] = []
        for v in w { values.append(v - alpha > 0 ? 1 : -1) }
        return (values, sumAbs / Double(w.count))
    }

    /// BitNet b1.58 eq. 1-3: gamma = mean |W|; W~ = RoundClip(W / (gamma + eps), -1, 1).
    static func ternaryReference(_ w: [Float]) -> (values: [Float], gamma: Double) {
        var sumAbs = 0.0
        for v in w { sumAbs += Double(v).magnitude }
        let gamma = sumAbs / Double(w.count)
        let inverse = 1 / (Float(gamma) + 1e-6)
        var values: [Float] = []
        for v in w {
            var r = (v * inverse).rounded(.toNearestOrEven)
            if r > 1 { r = 1 }
            if r < -1 { r = -1 }
            values.append(r)
        }
        return (values, gamma)
    }

    /// BitNet eq. 4-5: gamma = max(||x||_inf, 1e-5); x~ = round(clip(x * Qb / gamma, -Qb, Qb)).
    static func activationReference(_ x: [Float], gamma: Float) -> [Float] {
        let scale: Float = 127 / gamma
        var out: [Float] = []
        for v in x {
            var y = v * scale
            if y > 127 { y = 127 }
            if y < -127 { y = -127 }
            out.append(y.rounded(.toNearestOrEven))
        }
        return out
    }

    static func absmaxReference(_ x: ArraySlice<Float>) -> Float {
        var m: Float = 0
        for v in x where v.magnitude > m { m = v.magnitude }
        return m < 1e-5 ? 1e-5 : m
    }

    static let weightCases: [[Float]] = {
        var rng = Xoshiro256(seed: 41)
        return [
            (0..<37).map { _ in rng.normal() * 0.1 },      // random, odd size
            [0.5, -0.25, 0.1, 0.3, -1.0, 0.35],            // mean 0: Sign(W - 0)
            [2, 2, 2],                                     // all equal: every W - alpha is 0, Sign(0) = -1
            [0, 0, 0, 0],                                  // all zero
            [1, 3, 2, 2],                                  // two weights equal to the mean
            [0.9, -0.05, 0.2, -0.6, 0.0, 3.0],             // beyond the clip
        ]
    }()

    @Test(arguments: weightCases)
    func binaryWeightsMatchTheEquations(w: [Float]) {
        var out = [Float](repeating: 9, count: w.count)
        let beta = Quantizers.binarizeWeights(out: &out, weight: w, count: w.count)
        let reference = Self.binaryReference(w)
        #expect(out == reference.values)
        #expect(Double(beta) == Double(Float(reference.beta)))
    }

    @Test(arguments: weightCases)
    func ternaryWeightsMatchTheEquations(w: [Float]) {
        var out = [Float](repeating: 9, count: w.count)
        let gamma = Quantizers.ternarizeWeights(out: &out, weight: w, count: w.count)
        let reference = Self.ternaryReference(w)
        #expect(out == reference.values)
        #expect(Double(gamma) == Double(Float(reference.gamma)))
    }

    /// Hand-checked values, so the references themselves are checked.
    @Test func referencesGiveTheHandValues() {
        #expect(Self.binaryReference([2, 2, 2]).values == [-1, -1, -1])
        #expect(Self.binaryReference([1, 3, 2, 2]).values == [-1, 1, -1, -1])
        // gamma = 4.75 / 6 = 0.7917: 0.9 -> 1.14 -> 1; -0.05 -> 0; 0.2 -> 0.25 -> 0; -0.6 -> -0.76 -> -1; 3.0 -> 1.
        #expect(Self.ternaryReference([0.9, -0.05, 0.2, -0.6, 0.0, 3.0]).values == [1, 0, 0, -1, 0, 1])
        // Ties round to even: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0.
        #expect(Self.activationReference([127, 0.5, 1.5, 2.5, -0.5], gamma: 127) == [127, 0, 2, 2, 0])
    }

    @Test(arguments: ActivationScaling.allCases)
    func activationsMatchTheEquations(scaling: ActivationScaling) {
        var rng = Xoshiro256(seed: 11)
        let t = 3, sequences = 2, n = t * sequences, c = 19
        var x = (0..<n * c).map { _ in rng.normal() }
        for i in 0..<c { x[2 * c + i] = 0 }                             // an all-zero row
        x[4 * c] = 127
        for (i, v) in [0.5, 1.5, 2.5, -0.5, -126.5].enumerated() { x[4 * c + 1 + i] = Float(v) }  // ties at gamma 127
        let gamma = Buffer(n), q = Buffer(n * c)
        var saved = [Int8](repeating: 0, count: n * c)
        x.withUnsafeBufferPointer { xp in
            Quantizers.absmax(gamma: gamma.pointer, inp: xp.baseAddress!, rows: n, width: c, scaling: scaling, sequenceLength: t)
            Quantizers.quantizeActivations(out: q.pointer, saved: &saved, inp: xp.baseAddress!, gamma: gamma.pointer,
                                           rows: n, width: c)
        }
        for r in 0..<n {
            let rows = scaling == .perToken ? r...r : (r / t * t)...(r / t * t + t - 1)
            let expectedGamma = rows.map { Self.absmaxReference(x[$0 * c..<($0 + 1) * c]) }.max()!
            #expect(gamma[r] == expectedGamma, "row \(r)")
            let expected = Self.activationReference(Array(x[r * c..<(r + 1) * c]), gamma: expectedGamma)
            #expect((0..<c).map { q[r * c + $0] } == expected, "row \(r)")
            #expect((0..<c).map { Float(saved[r * c + $0]) } == expected, "row \(r)")
        }
        #expect((0..<c).allSatisfy { q[2 * c + $0] == 0 })
        if scaling == .perToken {
            #expect(gamma[2] == 1e-5)
            #expect((1...6).map { q[4 * c + $0 - 1] } == [127, 0, 2, 2, 0, -126])
        }
    }

    /// Non-finite values are never turned into finite codes: a NaN or infinity in a
    /// weight makes its scale non-finite, and in an activation row makes that row's
    /// outputs non-finite, so the trainer's check on the loss stops the run.
    @Test func nonFiniteInputsStayNonFinite() {
        for bad in [Float.nan, .infinity, -.infinity] {
            var out = [Float](repeating: 0, count: 3)
            #expect(!Quantizers.binarizeWeights(out: &out, weight: [0.1, bad, -0.2], count: 3).isFinite)
            #expect(!Quantizers.ternarizeWeights(out: &out, weight: [0.1, bad, -0.2], count: 3).isFinite)
            let x: [Float] = [0.5, bad, -0.25]
            let gamma = Buffer(1), q = Buffer(3)
            Quantizers.absmax(gamma: gamma.pointer, inp: x, rows: 1, width: 3, scaling: .perToken, sequenceLength: 1)
            Quantizers.quantizeActivations(out: q.pointer, saved: nil, inp: x, gamma: gamma.pointer, rows: 1, width: 3)
            let dequantized = (0..<3).map { q[$0] * gamma[0] / 127 }
            #expect(dequantized.contains { !$0.isFinite }, "\(bad): \(dequantized)")
        }
    }

    @Test func activationSTEPassesInsideClipRangeOnly() {
        // gamma smaller than the largest |x|: values past it are clipped and get no gradient.
        let x: [Float] = [0.5, -2.0, 1.0, 1.5, -0.99]
        let gamma: [Float] = [1.0]
        let dout: [Float] = [1, 2, 3, 4, 5]
        var dx = [Float](repeating: 0.5, count: 5)
        Quantizers.activationSTE(dinp: &dx, dout: dout, inp: x, gamma: gamma, rows: 1, width: 5)
        #expect(dx == [1.5, 0.5, 3.5, 0.5, 5.5])
    }

    /// BitLinear's quantized forward and STE backward against a Double implementation
    /// written from the equations.
    @Test(arguments: [(WeightMode.binary, NormKind.rms, ActivationScaling.perToken),
                      (WeightMode.ternary, NormKind.layer, ActivationScaling.perTensor)])
    func bitLinearMatchesNaiveReference(mode: WeightMode, norm: NormKind, scaling: ActivationScaling) {
        var config = ModelConfig()
        config.mode = mode
        config.norm = norm
        config.activationScaling = scaling
        config.dim = 24
        config.ffnDim = 40
        config.heads = 2
        config.layers = 1
        config.vocabSize = 10
        let layout = ParameterLayout(config: config)
        let slots = layout.layers[0].up  // 24 -> 40
        let n = 7, i = slots.inFeatures, o = slots.outFeatures
        var rng = Xoshiro256(seed: 12)
        let params = Buffer(random: layout.totalCount, rng: &rng, scale: 0.5)
        let x = Buffer(random: n * i, rng: &rng), dout = Buffer(random: n * o, rng: &rng)
        let wq = Buffer(o * i)
        let beta = Quantizers.quantizeWeights(mode, out: wq.pointer, weight: params.pointer + slots.weight, count: o * i)
        let mean = Buffer(n), rstd = Buffer(n), gamma = Buffer(n)
        let savedQ = UnsafeMutablePointer<Int8>.allocate(capacity: n * i)
        defer { savedQ.deallocate() }
        let saved = BitLinearSaved(mean: mean.pointer, rstd: rstd.pointer, gamma: gamma.pointer, quantized: savedQ)
        let options = BitLinearOptions(mode: mode, norm: norm, scaling: scaling, normEpsilon: 1e-5)
        let out = Buffer(n * o), a = Buffer(n * i), b = Buffer(n * i)
        let weight = EffectiveWeight(values: wq.pointer, scale: beta)
        BitLinear.forward(out: out.pointer, inp: x.pointer, params: params.pointer, slots: slots, weight: weight,
                          saved: saved, options: options, rows: n, sequenceLength: n, scratchA: a.pointer, scratchB: b.pointer)
        // The int8 kernel's product gives the same outputs, bit for bit.
        let codes = (0..<o * i).map { Int8(wq[$0]) }, integerOut = Buffer(n * o)
        codes.withUnsafeBufferPointer { codes in
            let integerWeight = EffectiveWeight(values: wq.pointer, scale: beta, codes: codes.baseAddress)
            BitLinear.forward(out: integerOut.pointer, inp: x.pointer, params: params.pointer, slots: slots, weight: integerWeight,
                              saved: saved, options: options, rows: n, sequenceLength: n, scratchA: a.pointer, scratchB: b.pointer)
        }
        #expect((0..<n * o).allSatisfy { integerOut[$0].bitPattern == out[$0].bitPattern }, "the int8 product differs from sgemm's")
        let dx = Buffer(n * i), dparams = Buffer(layout.totalCount)
        BitLinear.backward(dinp: dx.pointer, dparams: dparams.pointer, dout: dout.pointer, inp: x.pointer,
                           params: params.pointer, slots: slots, weight: weight, saved: saved, options: options,
                           rows: n, scratchA: a.pointer, scratchB: b.pointer)

        // Reference, in Double, from the equations.
        let g = (0..<i).map { Double(params[slots.subNorm!.gain + $0]) }
        let bias = (0..<i).map { norm == .layer ? Double(params[slots.subNorm!.bias! + $0]) : 0 }
        var xhat = [[Double]](), normed = [[Double]]()
        for r in 0..<n {
            let row = (0..<i).map { Double(x[r * i + $0]) }
            let m = norm == .layer ? row.reduce(0, +) / Double(i) : 0
            let s = 1 / ((row.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(i)) + 1e-5).squareRoot()
            xhat.append(row.map { ($0 - m) * s })
            normed.append((0..<i).map { xhat[r][$0] * g[$0] + bias[$0] })
        }
        let tensorMax = normed.flatMap { $0 }.map(abs).max()!
        let gammas = normed.map { scaling == .perToken ? $0.map(abs).max()! : tensorMax }
        let xq = (0..<n).map { r in normed[r].map { min(max(($0 * 127 / gammas[r]), -127), 127).rounded(.toNearestOrEven) } }
        let w = (0..<o * i).map { Double(wq[$0]) }
        var maxOutError = 0.0
        for r in 0..<n {
            for c in 0..<o {
                let acc = (0..<i).reduce(0.0) { $0 + xq[r][$1] * w[c * i + $1] }
                let expected = acc * gammas[r] / 127 * Double(beta)
                maxOutError = max(maxOutError, abs(expected - Double(out[r * o + c])) / (abs(expected) + 1e-3))
            }
        }
        #expect(maxOutError < 1e-4)
        // STE: dW = dout^T @ (x~ * gamma / Qb); d(normed) = dout @ (W~ * beta); then the norm's backward.
        var maxWError = 0.0
        for c in 0..<o {
            for k in 0..<i {
                let expected = (0..<n).reduce(0.0) { $0 + Double(dout[$1 * o + c]) * xq[$1][k] * gammas[$1] / 127 }
                maxWError = max(maxWError, abs(expected - Double(dparams[slots.weight + c * i + k])) / (abs(expected) + 1e-3))
            }
        }
        #expect(maxWError < 1e-4)
        var maxXError = 0.0
        for r in 0..<n {
            let dnormed = (0..<i).map { k in (0..<o).reduce(0.0) { $0 + Double(dout[r * o + $1]) * w[$1 * i + k] * Double(beta) } }
            let dxhat = (0..<i).map { dnormed[$0] * g[$0] }
            let meanD = norm == .layer ? dxhat.reduce(0, +) / Double(i) : 0
            let meanDX = (0..<i).reduce(0.0) { $0 + dxhat[$1] * xhat[r][$1] } / Double(i)
            let row = (0..<i).map { Double(x[r * i + $0]) }
            let m = norm == .layer ? row.reduce(0, +) / Double(i) : 0
            let s = 1 / ((row.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(i)) + 1e-5).squareRoot()
            for k in 0..<i {
                let expected = s * (dxhat[k] - meanD - xhat[r][k] * meanDX)
                maxXError = max(maxXError, abs(expected - Double(dx[r * i + k])) / (abs(expected) + 1e-3))
            }
        }
        #expect(maxXError < 1e-3)
    }

    @Test func matmulMatchesNaiveOnAwkwardShapes() {
        var rng = Xoshiro256(seed: 13)
        for (n, i, o) in [(1, 1, 1), (3, 67, 5), (65, 33, 129), (17, 200, 3)] {
            let x = Buffer(random: n * i, rng: &rng), w = Buffer(random: o * i, rng: &rng)
            let fast = Buffer(n * o), naive = Buffer(n * o)
            Matmul.forward(fast.pointer, x.pointer, w.pointer, rows: n, inFeatures: i, outFeatures: o)
            Matmul.naiveForward(naive.pointer, x.pointer, w.pointer, rows: n, inFeatures: i, outFeatures: o)
            #expect(maxRelativeError(fast.array.map(Double.init), naive.array.map(Double.init)) < 1e-5)
        }
    }
}
