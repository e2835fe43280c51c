// The sampler both programs use: its top-k selection against a full sort, and its
// draws against the softmax probabilities they should follow.
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
}
