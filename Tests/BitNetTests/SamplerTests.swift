// The sampler both programs use: its top-k selection against a full sort, its draws
// against the softmax probabilities they should follow, and the repetition penalty.
import BitNetSampling
import Foundation
import Testing

@Suite struct SamplerTests {
    @Test func topKEqualsSortedPrefix() {
        var rng = SplitMix64(seed: 4)
        for n in [1, 7, 100, 5000] {
            // Few distinct values, so there are many ties to break by id.
            let logits = (0..<n).map { _ in Float(rng.next() % 13) / 4 }
            let sorted = Array(logits.indices).sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
            for k in [1, 3, 40, n] where k <= n {
                #expect(logits.withUnsafeBufferPointer { Sampler.topK($0, k) } == Array(sorted.prefix(k)), "n \(n) k \(k)")
            }
        }
    }

    @Test func drawsFollowTheSoftmax() {
        let logits: [Float] = [2, 1, 0.5, -1, 0]
        let z = logits.map { exp(Double($0) / 0.7) }.reduce(0, +)
        for (topK, topP) in [(0, Float(1)), (3, Float(1)), (0, Float(0.8))] {
            var expected = logits.map { exp(Double($0) / 0.7) / z }
            let order = Array(logits.indices).sorted { logits[$0] > logits[$1] }
            var kept = Set(order.prefix(topK > 0 ? topK : logits.count))
            if topP < 1 {  // the smallest prefix whose probability reaches p
                var cumulative = 0.0
                kept = []
                for i in order where cumulative < Double(topP) {
                    kept.insert(i)
                    cumulative += expected[i]
                }
            }
            let mass = kept.reduce(0.0) { $0 + expected[$1] }
            expected = expected.indices.map { kept.contains($0) ? expected[$0] / mass : 0 }
            var rng = SplitMix64(seed: 11), counts = [Int](repeating: 0, count: logits.count)
            let draws = 40_000
            let settings = SamplingSettings(temperature: 0.7, topK: topK, topP: topP, seed: 0)
            for _ in 0..<draws { counts[Int(Sampler.sample(logits, settings: settings, rng: &rng))] += 1 }
            for i in logits.indices {
                #expect(abs(Double(counts[i]) / Double(draws) - expected[i]) < 0.01, "token \(i), top-k \(topK), top-p \(topP)")
            }
        }
    }

    @Test func repetitionPenaltyScalesRecentDistinctTokens() {
        let settings = SamplingSettings(repeatPenalty: 2, repeatLastN: 5)
        // Token 0 twice (penalized once), 1 negative (multiplied), 9 and -1 outside the
        // vocabulary (ignored), 3 too far back.
        var logits: [Float] = [2, -1, 0.5, 3]
        Sampler.penalizeRepeats(&logits, history: [3, 0, 1, 0, 9, -1], settings: settings)
        #expect(logits == [1, -2, 0.5, 3])
        for off in [SamplingSettings(repeatPenalty: 1, repeatLastN: 5), SamplingSettings(repeatPenalty: 2, repeatLastN: 0)] {
            var unchanged: [Float] = [2, -1, 0.5, 3]
            Sampler.penalizeRepeats(&unchanged, history: [0, 1, 2, 3], settings: off)
            #expect(unchanged == [2, -1, 0.5, 3])
        }
        #expect(SamplingSettings(repeatPenalty: 0).invalidSetting?.name == "repeat_penalty")
        #expect(SamplingSettings(repeatPenalty: .infinity).invalidSetting?.name == "repeat_penalty")
        #expect(SamplingSettings(repeatLastN: -1).invalidSetting?.name == "repeat_last_n")
    }

    /// A model whose logits never change: greedy repeats token 0 forever; with the penalty
    /// over the last 2 tokens (the prompt's included), it cycles 0, 1, 2, worked by hand:
    /// after [3]: 3, 2.5, 2, 0.5 -> 0; after [3, 0]: 1.5, 2.5, 2, 0.5 -> 1; after [0, 1]:
    /// 1.5, 1.25, 2, 1 -> 2; after [1, 2]: 3, 1.25, 1, 1 -> 0; and so on.
    @Test func repetitionPenaltyInGeneration() {
        struct Constant: TokenPredictor {
            let context = 100
            func logits(afterPrompt prompt: [Int32]) -> [Float] { [3, 2.5, 2, 1] }
            func logits(after token: Int32, at position: Int) -> [Float] { [3, 2.5, 2, 1] }
        }
        func generate(_ settings: SamplingSettings) -> [Int32] {
            var model = Constant(), tokens: [Int32] = []
            _ = Generation.generate(model: &model, prompt: [3], maxTokens: 12, settings: settings, endOfSequence: nil) {
                tokens.append($0)
            }
            return tokens
        }
        #expect(generate(SamplingSettings(temperature: 0)) == [Int32](repeating: 0, count: 12))
        #expect(generate(SamplingSettings(temperature: 0, repeatPenalty: 2, repeatLastN: 2)) == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2])
    }
}
