// The runtime against the trainer's forward pass for every layer variant the runtime
// reads: RMSNorm and LayerNorm, SwiGLU, GELU and relu², tied and untied heads, binary
// and ternary weights, FP32 and FP16 KV caches. Logits within a stated tolerance and the
// same greedy tokens for 32 steps. Per-tensor models are refused (a runtime that runs
// one token at a time cannot take the scale over a whole sequence).
import Foundation
import Testing
@testable import BitNet
import BitNetFormat
import BitNetRuntime
import BitNetSampling

@Suite(.serialized) struct RuntimeParityTests {
    struct Variant: CustomStringConvertible, Sendable {
        var mode: WeightMode, norm: NormKind, ffn: FFNActivation, tied: Bool, kv: KVCacheType
        var range: ActivationRange = .signed
        var layout: ModelLayout = .bitnet, kvHeads = 0
        var description: String {
            "\(mode.rawValue) \(norm.rawValue) \(ffn.rawValue) \(tied ? "tied" : "untied") kv-\(kv.rawValue) \(range.rawValue)"
                + " \(layout.rawValue) kv-heads \(kvHeads)"
        }
    }

    static let variants: [Variant] = [
        Variant(mode: .binary, norm: .rms, ffn: .swiglu, tied: true, kv: .f32),
        Variant(mode: .ternary, norm: .layer, ffn: .gelu, tied: false, kv: .f32),
        Variant(mode: .binary, norm: .layer, ffn: .relu2, tied: true, kv: .f32),
        Variant(mode: .ternary, norm: .rms, ffn: .relu2, tied: false, kv: .f32),
        Variant(mode: .ternary, norm: .rms, ffn: .swiglu, tied: true, kv: .f16),
        Variant(mode: .binary, norm: .layer, ffn: .gelu, tied: false, kv: .f16),
        Variant(mode: .binary, norm: .rms, ffn: .relu2, tied: true, kv: .f32, range: .auto),
        Variant(mode: .ternary, norm: .layer, ffn: .swiglu, tied: false, kv: .f32, range: .unsigned),
        Variant(mode: .ternary, norm: .rms, ffn: .swiglu, tied: true, kv: .f32, layout: .b158),
        Variant(mode: .ternary, norm: .rms, ffn: .swiglu, tied: true, kv: .f16, layout: .b158, kvHeads: 2),
        Variant(mode: .binary, norm: .rms, ffn: .relu2, tied: false, kv: .f32, range: .auto, layout: .b158, kvHeads: 1),
        Variant(mode: .binary, norm: .layer, ffn: .gelu, tied: true, kv: .f32, layout: .bitnet, kvHeads: 2),
    ]

    /// A model of the variant with spread-out weights (not the 0.02 init, so that every
    /// path matters and logits are not near ties), exported with the fixture tokenizer.
    static func exported(_ v: Variant, scaling: ActivationScaling = .perToken) throws -> (Transformer, URL) {
        let tokenizer = try BitNet.Tokenizer(path: Fixtures.shared.tokenizer)
        var c = ModelConfig()
        (c.vocabSize, c.dim, c.heads, c.layers, c.ffnDim, c.context) = (tokenizer.vocabSize, 48, 4, 2, 80, 48)
        (c.mode, c.norm, c.ffnActivation, c.tiedEmbeddings, c.activationScaling) = (v.mode, v.norm, v.ffn, v.tied, scaling)
        (c.activationRange, c.layout, c.kvHeads) = (v.range, v.layout, v.kvHeads)
        let model = Transformer(config: c, batch: 1)
        model.initializeParameters(seed: 21)
        var rng = Xoshiro256(seed: 22)
        for i in 0..<model.layout.totalCount { model.parameters[i] += rng.normal() * 0.3 }
        model.parametersDidChange()
        let url = Fixtures.temporaryDirectory("parity").appendingPathComponent("m.bitnet")
        try PackedModel.write(config: c, tensors: PackedModel.tensors(of: model, embeddingsAsF16: false),
                              tokenizer: PackedModel.tokenizerMetadata(tokenizer), to: url)
        return (model, url)
    }

    @Test(arguments: variants)
    func logitsAndGreedyTokensMatchTheTrainer(variant: Variant) throws {
        let (model, url) = try Self.exported(variant)
        let runtime = try BitNetRuntime.Model(path: url.path, threads: 2, kvCache: variant.kv)
        let prompt: [Int32] = try BitNet.Tokenizer(path: Fixtures.shared.tokenizer).encode("the king doth love")
        // Logits at every prompt position, relative to the largest.
        model.forward(tokens: prompt, targets: nil, batch: 1, length: prompt.count)
        var worst: Float = 0
        for (pos, token) in prompt.enumerated() {
            let logits = runtime.forward(token: token, pos: pos), expected = Array(model.logits(row: pos))
            let scale = expected.map(abs).max()!
            worst = max(worst, zip(logits, expected).map { abs($0 - $1) }.max()! / scale)
        }
        // FP32 cache: float rounding only. FP16 cache: keys and values rounded to 11 bits,
        // which these deliberately large weights amplify (a trained model stays within 2e-2,
        // RuntimeModelTests).
        let tolerance: Float = variant.kv == .f32 ? 1e-5 : 5e-2
        #expect(worst < tolerance, "\(variant): largest logit difference relative to the largest: \(worst)")

        // Greedy, 32 tokens, through the shared generation loop with each forward pass.
        let greedy = SamplingSettings(temperature: 0, topK: 0, topP: 1, seed: 0)
        var trainer = TransformerPredictor(model: Transformer(config: model.config, batch: 1)), trainerTokens: [Int32] = []
        trainer.model.parameters.update(from: model.parameters, count: model.layout.totalCount)
        trainer.model.parametersDidChange()
        _ = Generation.generate(model: &trainer, prompt: prompt, maxTokens: 32, settings: greedy, endOfSequence: nil) {
            trainerTokens.append($0)
        }
        var fresh = try BitNetRuntime.Model(path: url.path, threads: 2, kvCache: variant.kv), runtimeTokens: [Int32] = []
        _ = Generation.generate(model: &fresh, prompt: prompt, maxTokens: 32, settings: greedy, endOfSequence: nil) {
            runtimeTokens.append($0)
        }
        #expect(Set(trainerTokens).count > 3, "\(variant): a degenerate continuation tests little: \(trainerTokens)")
        #expect(runtimeTokens.count == 32)
        // Float-level differences (attention, softmax) can round one 8-bit code the other
        // way, or FP16 keys flip a near-tie: each runtime token must be the trainer's
        // choice on the runtime's own sequence, or within this margin of it.
        let margin: Float = variant.kv == .f32 ? 2e-3 : 5e-2
        let sequence = prompt + runtimeTokens
        model.forward(tokens: sequence, targets: nil, batch: 1, length: sequence.count)
        var exact = 0
        for (i, token) in runtimeTokens.enumerated() {
            let row = Array(model.logits(row: prompt.count - 1 + i)), best = row.max()!
            if row[Int(token)] == best { exact += 1 }
            let below = (best - row[Int(token)]) / row.map(abs).max()!
            #expect(below <= margin, "\(variant): token \(i) is \(below) below the trainer's choice")
        }
        print("parity \(variant): \(exact)/32 greedy tokens are the trainer's own choice; logits within \(worst)")
    }

    @Test func perTensorModelsAreRefused() throws {
        let (_, url) = try Self.exported(Self.variants[0], scaling: .perTensor)
        #expect(throws: RuntimeError.self) { try BitNetRuntime.Model(path: url.path) }
        do {
            _ = try BitNetRuntime.Model(path: url.path)
        } catch {
            #expect("\(error)".contains("activation_scaling must be per-token"))
        }
    }
}
