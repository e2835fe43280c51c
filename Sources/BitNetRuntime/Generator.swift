// Sampling and generation for the runtime: greedy, temperature, top-k, top-p, seeded.
import Foundation

/// SplitMix64: a small seeded generator (the runtime shares no code with the trainer).
public struct SplitMix64: Sendable {
    var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    public mutating func uniform() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }
}

public struct SamplingSettings: Sendable {
    /// 0 is greedy: the most likely token, the lowest id on ties (as the trainer's sampler).
    public var temperature: Float
    public var topK: Int
    public var topP: Float
    public var seed: UInt64

    public init(temperature: Float, topK: Int, topP: Float, seed: UInt64) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
    }
}

public enum GenerationStop: String, Sendable {
    case maxTokens = "max tokens"
    case endOfSequence = "end of sequence"
    case contextFull = "context limit"
    case interrupted = "interrupted"
}

public enum Generator {
    public static func sample(_ logits: [Float], settings: SamplingSettings, rng: inout SplitMix64) -> Int32 {
        if settings.temperature <= 0 {
            var best = 0
            for i in 1..<logits.count where logits[i] > logits[best] { best = i }
            return Int32(best)
        }
        // Candidates, most likely first (lowest id on ties): the top k by a bounded heap,
        // everything sorted only when top-p needs the order, else all in id order.
        var order: [Int]
        if settings.topK > 0 && settings.topK < logits.count {
            order = topK(logits, settings.topK)
        } else if settings.topP < 1 {
            order = Array(logits.indices).sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        } else {
            order = Array(logits.indices)
        }
        let maximum = order.reduce(-Float.infinity) { max($0, logits[$1]) }
        var weights = order.map { Foundation.exp(Double((logits[$0] - maximum) / settings.temperature)) }
        if settings.topP > 0 && settings.topP < 1 {
            let total = weights.reduce(0, +)
            var cumulative = 0.0, keep = 0
            while keep < weights.count {
                cumulative += weights[keep] / total
                keep += 1
                if cumulative >= Double(settings.topP) { break }
            }
            order.removeLast(order.count - keep)
            weights.removeLast(weights.count - keep)
        }
        var threshold = rng.uniform() * weights.reduce(0, +)
        for (id, w) in zip(order, weights) {
            threshold -= w
            if threshold < 0 { return Int32(id) }
        }
        return Int32(order.last!)
    }

    /// Indices of the k largest logits, largest first, the lower id first on ties.
    static func topK(_ logits: [Float], _ k: Int) -> [Int] {
        func better(_ a: Int, _ b: Int) -> Bool { logits[a] > logits[b] || (logits[a] == logits[b] && a < b) }
        var heap: [Int] = []  // a min-heap: its root is the worst kept candidate
        heap.reserveCapacity(k)
        func siftDown(_ start: Int) {
            var i = start
            while true {
                let l = 2 * i + 1, r = l + 1
                var worst = i
                if l < heap.count && better(heap[worst], heap[l]) { worst = l }
                if r < heap.count && better(heap[worst], heap[r]) { worst = r }
                if worst == i { return }
                heap.swapAt(i, worst)
                i = worst
            }
        }
        for i in logits.indices {
            if heap.count < k {
                heap.append(i)
                var c = heap.count - 1
                while c > 0 && better(heap[(c - 1) / 2], heap[c]) {
                    heap.swapAt(c, (c - 1) / 2)
                    c = (c - 1) / 2
                }
            } else if better(i, heap[0]) {
                heap[0] = i
                siftDown(0)
            }
        }
        return heap.sorted(by: better)
    }

    /// Runs the prompt (at least one token) through the model, then samples up to `maxTokens` tokens, calling
    /// `onToken` with each; `shouldStop` is checked between tokens (Ctrl-C).
    public static func generate(model: Model, prompt: [Int32], maxTokens: Int, settings: SamplingSettings,
                                shouldStop: () -> Bool = { false }, onToken: (Int32) -> Void) -> GenerationStop {
        var rng = SplitMix64(seed: settings.seed)
        // The prompt in batched steps, then one token per step.
        var logits = model.forward(tokens: prompt, start: 0)
        var position = prompt.count
        for _ in 0..<maxTokens {
            if shouldStop() { return .interrupted }
            let next = sample(logits, settings: settings, rng: &rng)
            if next == model.tokenizer.eosID { return .endOfSequence }
            onToken(next)
            guard position < model.config.context else { return .contextFull }
            logits = model.forward(token: next, pos: position)
            position += 1
        }
        return .maxTokens
    }
}
