// The runtime's whole forward pass (one token at a time, KV cache, add-only BitLinear)
// against the trainer's forward pass on the same exported model: logits to float
// rounding, and the same greedy tokens.
import Foundation
import Testing
@testable import BitNet
@testable import BitNetRuntime
import BitNetSampling

@Suite(.serialized) struct RuntimeModelTests {
    @Test(arguments: [WeightMode.binary, .ternary])
    func logitsAndGreedyTokensEqualTrainer(mode: WeightMode) throws {
        let (model, url) = try PackedModelTests.exportedModel(mode: mode, f16: false)
        let runtime = try BitNetRuntime.Model(path: url.path)
        let tokens: [Int32] = try BitNet.Tokenizer(path: Fixtures.shared.tokenizer).encode("the king doth love the crown, my lord")
        let t = min(tokens.count, model.config.context)
        model.forward(tokens: tokens, targets: nil, batch: 1, length: t)
        var worst: Float = 0
        for pos in 0..<t {
            let logits = runtime.forward(token: tokens[pos], pos: pos)
            let expected = Array(model.logits(row: pos))
            let scale = expected.map(abs).max()!
            worst = max(worst, zip(logits, expected).map { abs($0 - $1) }.max()! / scale)
            #expect(logits.indices.max { logits[$0] < logits[$1] } == expected.indices.max { expected[$0] < expected[$1] })
        }
        #expect(worst < 1e-5, "largest logit difference relative to the largest logit: \(worst)")

        // Greedy generation: the trainer's forward pass and the runtime's pick the same tokens.
        let greedy = SamplingSettings(temperature: 0, topK: 0, topP: 1, seed: 0)
        try expectSameTokens(mode: mode, model: model, url: url, prompt: Array(tokens.prefix(3)), settings: greedy)
    }

    /// The shared generation loop and sampler with the trainer's forward pass and with the
    /// runtime's: the same seed and settings give the same tokens, in both modes.
    @Test(arguments: [WeightMode.binary, .ternary])
    func sampledTokensEqualTrainer(mode: WeightMode) throws {
        let (model, url) = try PackedModelTests.exportedModel(mode: mode, f16: false)
        let prompt: [Int32] = try BitNet.Tokenizer(path: Fixtures.shared.tokenizer).encode("good sir")
        for seed in [UInt64(1), 2, 3] {
            let settings = SamplingSettings(temperature: 0.9, topK: 30, topP: 0.95, seed: seed)
            try expectSameTokens(mode: mode, model: model, url: url, prompt: prompt, settings: settings)
        }
    }

    /// 24 tokens generated with each forward pass must be the same.
    func expectSameTokens(mode: WeightMode, model: Transformer, url: URL, prompt: [Int32], settings: SamplingSettings) throws {
        var trainer = TransformerPredictor(model: model), trainerTokens: [Int32] = []
        _ = Generation.generate(model: &trainer, prompt: prompt, maxTokens: 24, settings: settings, endOfSequence: nil) {
            trainerTokens.append($0)
        }
        var runtime = try BitNetRuntime.Model(path: url.path), runtimeTokens: [Int32] = []
        _ = Generation.generate(model: &runtime, prompt: prompt, maxTokens: 24, settings: settings, endOfSequence: nil) {
            runtimeTokens.append($0)
        }
        #expect(trainerTokens.count == 24 && runtimeTokens == trainerTokens, "\(mode): \(trainerTokens) vs \(runtimeTokens)")
    }

    /// A prompt in batched steps (chunks of 4 tokens, 2 workers) gives the same logits,
    /// bit for bit, as feeding it one token at a time on one thread.
    @Test func batchedPromptEqualsTokenByToken() throws {
        let (_, url) = try PackedModelTests.exportedModel(mode: .ternary, f16: true)
        let encoded = try BitNet.Tokenizer(path: Fixtures.shared.tokenizer).encode("to be, or not to be: that is the question")
        let single = try BitNetRuntime.Model(path: url.path, threads: 1, batch: 1)
        let tokens = Array(encoded.prefix(single.config.context - 1))
        var expected: [Float] = []
        for (pos, token) in tokens.enumerated() { expected = single.forward(token: token, pos: pos) }
        let batched = try BitNetRuntime.Model(path: url.path, threads: 2, batch: 4)
        #expect(tokens.count > 8)
        #expect(batched.forward(tokens: tokens, start: 0) == expected)
        // And generation continues from the batched cache as from the single one.
        let next = Int32(tokens.count % 7)
        #expect(batched.forward(token: next, pos: tokens.count) == single.forward(token: next, pos: tokens.count))
    }

    /// The FP16 KV cache changes logits only by the rounding of keys and values.
    @Test func halfPrecisionCacheStaysClose() throws {
        let (_, url) = try PackedModelTests.exportedModel(mode: .binary, f16: false)
        let exact = try BitNetRuntime.Model(path: url.path, threads: 2, kvCache: .f32)
        let half = try BitNetRuntime.Model(path: url.path, threads: 2, kvCache: .f16)
        let tokens: [Int32] = try BitNet.Tokenizer(path: Fixtures.shared.tokenizer).encode("the crown doth love the king")
        var worst: Float = 0
        for (pos, token) in tokens.prefix(exact.config.context).enumerated() {
            let a = exact.forward(token: token, pos: pos), b = half.forward(token: token, pos: pos)
            let scale = a.map(abs).max()!
            worst = max(worst, zip(a, b).map { abs($0 - $1) }.max()! / scale)
        }
        #expect(worst > 0, "the FP16 cache should round something")
        #expect(worst < 2e-2, "largest logit difference relative to the largest logit: \(worst)")
    }

    /// `--head int8`: every logit is the row's int8 codes (absmax per row, rounded half to
    /// even, computed here from the stored head) times the final norm's output, times the
    /// row's scale; and the logits stay close to the stored head's. FP32 and FP16 heads.
    @Test(arguments: [false, true])
    func int8HeadIsTheRoundedRowsProduct(f16: Bool) throws {
        let (_, url) = try PackedModelTests.exportedModel(mode: .ternary, f16: f16)
        let stored = try BitNetRuntime.Model(path: url.path, threads: 2)
        let rounded = try BitNetRuntime.Model(path: url.path, threads: 2, head: .int8)
        let c = rounded.config, head = rounded.weights.head
        #expect(rounded.head.bytesPerToken == c.vocabSize * (c.dim + 4) && stored.head.bytesPerToken == head.length)
        var row = [Float](repeating: 0, count: c.dim)
        var worstVsStored: Float = 0
        for (pos, token) in [Int32(5), 17, 42, 7, 5].enumerated() {
            let logits = rounded.forward(token: token, pos: pos), exact = stored.forward(token: token, pos: pos)
            let x = rounded.xb.pointer  // what the head multiplied
            for r in 0..<c.vocabSize {
                head.row(r, base: rounded.base, into: &row)
                let absmax = max(row.map(abs).max()!, 1e-5), scale = 127 / absmax
                let codes = row.map { min(max(($0 * scale).rounded(.toNearestOrEven), -127), 127) }
                let dot = (0..<c.dim).reduce(0.0) { $0 + Double(codes[$1]) * Double(x[$1]) }
                let size = (0..<c.dim).reduce(0.0) { $0 + abs(Double(codes[$1]) * Double(x[$1])) }
                let expected = dot * Double(absmax) / 127
                #expect(abs(Double(logits[r]) - expected) <= 1e-5 * size * Double(absmax) / 127 + 1e-30,
                        "row \(r) at position \(pos): \(logits[r]) against \(expected)")
            }
            worstVsStored = max(worstVsStored, zip(logits, exact).map { abs($0 - $1) }.max()! / exact.map(abs).max()!)
        }
        #expect(worstVsStored > 0 && worstVsStored < 2e-2, "largest difference from the stored head's logits, relative: \(worstVsStored)")
    }
}
