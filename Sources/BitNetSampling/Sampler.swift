// Choosing the next token from logits: greedy, temperature, top-k, top-p, seeded, with an
// optional penalty on recently used tokens.
// One definition for both programs, so a seed gives the same text from `bitnet-train
// sample` on a checkpoint and from `bitnet-run` on its export.
import Foundation

public struct SamplingSettings: Sendable, Equatable {
    /// 0 is greedy: the most likely token, the lowest id on ties.
    public var temperature: Float
    /// Keep the k most likely tokens; 0 keeps all.
    public var topK: Int
    /// Keep the smallest set of most likely tokens whose probability reaches p; 1 keeps all.
    public var topP: Float
    public var seed: UInt64
    /// Divides the positive logits of tokens among the last `repeatLastN` (and multiplies
    /// the negative ones), as CTRL (Keskar et al., 2019) and llama.cpp's --repeat-penalty
    /// do: small models fall into loops. 1 is off.
    public var repeatPenalty: Float
    /// How many of the latest tokens (prompt included) the penalty looks at; 0 is none.
    public var repeatLastN: Int

    public init(temperature: Float = 0.8, topK: Int = 40, topP: Float = 1, seed: UInt64 = 0,
                repeatPenalty: Float = 1, repeatLastN: Int = 64) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
        self.repeatPenalty = repeatPenalty
        self.repeatLastN = repeatLastN
    }

    var penalizesRepeats: Bool { repeatPenalty != 1 && repeatLastN > 0 }

    /// The setting that is out of range, as (name, value, the rule); nil when all are valid.
    public var invalidSetting: (name: String, value: String, rule: String)? {
        if !(temperature >= 0 && temperature.isFinite) { return ("temperature", "\(temperature)", "must be >= 0") }
        if topK < 0 { return ("top_k", "\(topK)", "must be >= 0") }
        if !(topP > 0 && topP <= 1) { return ("top_p", "\(topP)", "must be in (0, 1]") }
        if !(repeatPenalty > 0 && repeatPenalty.isFinite) { return ("repeat_penalty", "\(repeatPenalty)", "must be > 0 (1: off)") }
        if repeatLastN < 0 { return ("repeat_last_n", "\(repeatLastN)", "must be >= 0") }
        return nil
    }
}

public enum Sampler {
    public static func sample(_ logits: UnsafeBufferPointer<Float>, settings: SamplingSettings,
                              rng: inout SplitMix64) -> Int32 {
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
        return Int32(order[order.count - 1])
    }

    public static func sample(_ logits: [Float], settings: SamplingSettings, rng: inout SplitMix64) -> Int32 {
        logits.withUnsafeBufferPointer { sample($0, settings: settings, rng: &rng) }
    }

    /// Applies the repetition penalty of `settings` to `logits` for each distinct token
    /// among the last `repeatLastN` of `history` (ids outside the vocabulary are ignored).
    public static func penalizeRepeats(_ logits: inout [Float], history: [Int32], settings: SamplingSettings) {
        guard settings.penalizesRepeats else { return }
        var seen = Set<Int32>()
        for token in history.suffix(settings.repeatLastN) where seen.insert(token).inserted {
            guard let i = Int(exactly: token), logits.indices.contains(i) else { continue }
            logits[i] = logits[i] > 0 ? logits[i] / settings.repeatPenalty : logits[i] * settings.repeatPenalty
        }
    }

    /// Indices of the k largest logits, largest first, the lower id first on ties.
    public static func topK(_ logits: UnsafeBufferPointer<Float>, _ k: Int) -> [Int] {
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
}
