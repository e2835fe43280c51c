// The quantizers' values and straight-through gradients against naive references.
import Foundation
import Testing
@testable import BitNet

@Suite struct QuantizerTests {
    @Test func binaryWeightsAreCentredSignsScaledByMeanAbs() {
        let w: [Float] = [0.5, -0.25, 0.1, 0.3, -1.0, 0.35]
        let mean = w.reduce(0, +) / Float(w.count)  // 0.0
        var out = [Float](repeating: 9, count: w.count)
        let beta = Quantizers.binarizeWeights(out: &out, weight: w, count: w.count)
        #expect(out == w.map { $0 - mean > 0 ? 1 : -1 })
        #expect(abs(beta - w.map(abs).reduce(0, +) / Float(w.count)) < 1e-7)
        // Sign(0) = -1: a weight equal to the mean goes negative.
        var same = [Float](repeating: 0, count: 3)
        Quantizers.binarizeWeights(out: &same, weight: [2, 2, 2], count: 3)
        #expect(same == [-1, -1, -1])
    }

    @Test func ternaryWeightsAreAbsmeanRoundClip() {
        let w: [Float] = [0.9, -0.05, 0.2, -0.6, 0.0, 3.0]
        var out = [Float](repeating: 9, count: w.count)
        let gamma = Quantizers.ternarizeWeights(out: &out, weight: w, count: w.count)
        let expectedGamma = w.map(abs).reduce(0, +) / Float(w.count)  // 0.7917
        #expect(abs(gamma - expectedGamma) < 1e-6)
        // 0.9/0.79 = 1.14 -> 1; -0.05/0.79 -> 0; 0.2/0.79 = 0.25 -> 0; -0.6/0.79 = -0.76 -> -1; 3.0 -> clip 1.
        #expect(out == [1, 0, 0, -1, 0, 1])
    }

    @Test(arguments: ActivationScaling.allCases)
    func absmaxActivationQuantization(scaling: ActivationScaling) {
        var rng = Xoshiro256(seed: 11)
        let n = 5, c = 19
        let x = Buffer(random: n * c, rng: &rng)
        for i in 0..<c { x[2 * c + i] = 0 }  // an all-zero row stays zero
        let gamma = Buffer(n), q = Buffer(n * c)
        var saved = [Int8](repeating: 0, count: n * c)
        Quantizers.absmax(gamma: gamma.pointer, inp: x.pointer, rows: n, width: c, scaling: scaling, sequenceLength: n)
        Quantizers.quantizeActivations(out: q.pointer, saved: &saved, inp: x.pointer, gamma: gamma.pointer, rows: n, width: c)
        let tensorMax = x.array.map(abs).max()!
        for r in 0..<n {
            let rowMax = (0..<c).map { abs(x[r * c + $0]) }.max()!
            let g = scaling == .perTensor ? tensorMax : max(rowMax, Quantizers.minimumAbsmax)
            #expect(gamma[r] == g)
            for i in 0..<c {
                let expected = (Double(x[r * c + i]) * 127 / Double(g)).rounded(.toNearestOrEven)
                #expect(abs(Double(q[r * c + i]) - expected) <= 1e-9 || abs(abs(Double(x[r * c + i]) * 127 / Double(g)).truncatingRemainder(dividingBy: 1) - 0.5) < 1e-4)
                #expect(abs(q[r * c + i]) <= 127)
                #expect(Float(saved[r * c + i]) == q[r * c + i])
            }
        }
        // The row maximum maps to +-127 exactly.
        let r0max = (0..<c).max { abs(x[$0]) < abs(x[$1]) }!
        if scaling == .perToken { #expect(abs(q[r0max]) == 127) }
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
