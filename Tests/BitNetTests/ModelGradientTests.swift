// The whole model against a Float64 implementation written from the equations
// (ReferenceModel): its loss, and its backward pass against central differences of the
// reference in every parameter tensor. `fp` is checked against the true gradient;
// `binary` and `ternary` against the gradient of the straight-through surrogate (the
// same network with each quantizer's Jacobian replaced by the identity). Per entry,
// relative error with a floor at 1% of the tensor's largest checked gradient, below 1e-3.
import BitNetFormat
import Testing
@testable import BitNet

@Suite struct ModelGradientTests {
    struct Variant: CustomStringConvertible, Sendable {
        var mode: WeightMode, norm: NormKind, ffn: FFNActivation, tied: Bool, scaling: ActivationScaling = .perToken
        var range: ActivationRange = .signed
        var layout: ModelLayout = .bitnet, kvHeads = 0
        var description: String {
            "\(mode.rawValue) \(norm.rawValue) \(ffn.rawValue) \(tied ? "tied" : "untied") \(scaling.rawValue) \(range.rawValue)"
                + " \(layout.rawValue) kv-heads \(kvHeads)"
        }
    }

    static let fpVariants = [
        Variant(mode: .fp, norm: .rms, ffn: .swiglu, tied: true),
        Variant(mode: .fp, norm: .layer, ffn: .gelu, tied: false),
        Variant(mode: .fp, norm: .rms, ffn: .relu2, tied: false),
        Variant(mode: .fp, norm: .rms, ffn: .swiglu, tied: true, layout: .b158, kvHeads: 1),
    ]
    static let quantizedVariants = [
        Variant(mode: .binary, norm: .rms, ffn: .swiglu, tied: true),
        Variant(mode: .ternary, norm: .layer, ffn: .gelu, tied: false),
        Variant(mode: .binary, norm: .layer, ffn: .relu2, tied: false, scaling: .perTensor),
        Variant(mode: .ternary, norm: .rms, ffn: .swiglu, tied: true, scaling: .perTensor),
        Variant(mode: .binary, norm: .rms, ffn: .relu2, tied: false, range: .auto),
        Variant(mode: .ternary, norm: .layer, ffn: .swiglu, tied: true, scaling: .perTensor, range: .unsigned),
        Variant(mode: .ternary, norm: .rms, ffn: .swiglu, tied: true, layout: .b158),
        Variant(mode: .binary, norm: .rms, ffn: .relu2, tied: false, range: .auto, layout: .b158, kvHeads: 1),
        Variant(mode: .ternary, norm: .layer, ffn: .gelu, tied: true, scaling: .perTensor, layout: .bitnet, kvHeads: 1),
    ]

    /// A tiny model with weights well away from the 0.02 init, so every path matters,
    /// and a batch of 2 sequences of 6 tokens.
    static func setUp(_ v: Variant) -> (Transformer, tokens: [Int32], targets: [Int32], b: Int, t: Int) {
        var c = ModelConfig()
        (c.vocabSize, c.dim, c.heads, c.layers, c.ffnDim, c.context) = (29, 16, 2, 2, 24, 6)
        (c.mode, c.norm, c.ffnActivation, c.tiedEmbeddings, c.activationScaling) = (v.mode, v.norm, v.ffn, v.tied, v.scaling)
        (c.activationRange, c.layout, c.kvHeads) = (v.range, v.layout, v.kvHeads)
        let b = 2, t = c.context
        let model = Transformer(config: c, batch: b)
        model.initializeParameters(seed: 7)
        var rng = Xoshiro256(seed: 8)
        for i in 0..<model.layout.totalCount { model.parameters[i] += rng.normal() * 0.2 }
        model.parametersDidChange()
        let tokens = (0..<b * t).map { _ in Int32(rng.below(c.vocabSize)) }
        let targets = (0..<b * t).map { _ in Int32(rng.below(c.vocabSize)) }
        return (model, tokens, targets, b, t)
    }

    @Test(arguments: fpVariants + quantizedVariants)
    func lossEqualsTheFloat64Reference(variant: Variant) {
        let (model, tokens, targets, b, t) = Self.setUp(variant)
        let loss = Double(model.forward(tokens: tokens, targets: targets, batch: b, length: t))
        let reference = ReferenceModel(model: model).loss(tokens: tokens, targets: targets, t: t).loss
        #expect(abs(loss - reference) / reference < 1e-5, "\(variant): \(loss) vs \(reference)")
    }

    /// The FP32 backward against central differences of the Float64 reference (of the
    /// surrogate in the quantized modes), every tensor, 8 entries each.
    @Test(arguments: fpVariants + quantizedVariants)
    func backwardMatchesTheReferenceGradient(variant: Variant) {
        let (model, tokens, targets, b, t) = Self.setUp(variant)
        model.zeroGradients()
        model.forward(tokens: tokens, targets: targets, batch: b, length: t)
        model.backward()
        var reference = ReferenceModel(model: model)
        // The quantizers' offsets at this point: the surrogate's value equals the model's here.
        let offsets = variant.mode.isBitNet ? reference.loss(tokens: tokens, targets: targets, t: t).offsets : nil
        var rng = Xoshiro256(seed: 9)
        for tensor in model.layout.tensors {
            let picks = (0..<min(8, tensor.count)).map { _ in tensor.offset + rng.below(tensor.count) }
            let numeric = picks.map { i in
                reference.derivative(i) { $0.loss(tokens: tokens, targets: targets, t: t, offsets: offsets).loss }
            }
            let error = gradientError(picks.map { Double(model.gradients[$0]) }, numeric)
            #expect(error < 1e-3, "\(variant), \(tensor.name): per-entry relative error \(error)")
        }
    }
}
