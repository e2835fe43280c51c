// The whole model's backward pass against finite differences of its loss (fp mode,
// where the loss is smooth in every parameter), for each architecture option.
import Testing
@testable import BitNet

@Suite struct ModelGradientTests {
    static func tinyConfig(norm: NormKind, ffn: FFNActivation, tied: Bool) -> ModelConfig {
        var c = ModelConfig()
        c.vocabSize = 29
        c.dim = 16
        c.heads = 2
        c.layers = 2
        c.ffnDim = 24
        c.context = 6
        c.mode = .fp
        c.norm = norm
        c.ffnActivation = ffn
        c.tiedEmbeddings = tied
        return c
    }

    @Test(arguments: [
        (NormKind.rms, FFNActivation.swiglu, true),
        (NormKind.layer, FFNActivation.gelu, false),
        (NormKind.rms, FFNActivation.relu2, false),
    ])
    func fullModel(norm: NormKind, ffn: FFNActivation, tied: Bool) {
        let config = Self.tinyConfig(norm: norm, ffn: ffn, tied: tied)
        let b = 2, t = config.context
        let model = Transformer(config: config, batch: b)
        model.initializeParameters(seed: 7)
        // Larger weights and non-trivial gains than the 0.02 init, so every path matters.
        var rng = Xoshiro256(seed: 8)
        for tensor in model.layout.tensors {
            for i in 0..<tensor.count { model.parameters[tensor.offset + i] += rng.normal() * 0.2 }
        }
        model.parametersDidChange()
        let tokens: [Int32] = (0..<b * t).map { _ in Int32(rng.below(config.vocabSize)) }
        let targets: [Int32] = (0..<b * t).map { _ in Int32(rng.below(config.vocabSize)) }
        func loss() -> Double {
            model.parametersDidChange()
            return Double(model.forward(tokens: tokens, targets: targets, batch: b, length: t))
        }
        model.zeroGradients()
        _ = loss()
        model.backward()
        let analytic = Array(UnsafeBufferPointer(start: model.gradients, count: model.layout.totalCount))
        for tensor in model.layout.tensors {
            let picks = (0..<min(6, tensor.count)).map { _ in tensor.offset + rng.below(tensor.count) }
            let numeric = picks.map { finiteDifference(model.parameters, $0, h: 1e-2, loss) }
            let error = maxRelativeError(picks.map { Double(analytic[$0]) }, numeric, floor: 1e-4)
            #expect(error < 3e-2, "\(tensor.name): relative error \(error)")
        }
    }
}
