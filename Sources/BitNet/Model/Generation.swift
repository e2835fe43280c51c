// Text generation with the training forward pass (no KV cache: it recomputes the
// window each token), so a checkpoint's quality can be seen before export.
import Foundation

public struct SamplingOptions: Sendable {
    /// 0 means greedy (argmax, lowest id on ties).
    public var temperature: Float = 0.8
    /// Keep only the k most likely tokens; 0 keeps all.
    public var topK: Int = 40
    public var seed: UInt64 = 0

    public init(temperature: Float = 0.8, topK: Int = 40, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.seed = seed
    }
}

public enum StopReason: String, Sendable {
    case maxTokens = "max tokens"
    case endOfSequence = "end of sequence"
    case contextFull = "context limit"
}

public enum Sampler {
    public static func sample(_ logits: UnsafeBufferPointer<Float>, options: SamplingOptions, rng: inout Xoshiro256) -> Int32 {
        if options.temperature <= 0 {
            var best = 0
            for i in 1..<logits.count where logits[i] > logits[best] { best = i }
            return Int32(best)
        }
        var candidates = Array(0..<logits.count)
        if options.topK > 0 && options.topK < logits.count {
            candidates.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
            candidates.removeLast(logits.count - options.topK)
        }
        let maximum = candidates.map { logits[$0] }.max() ?? 0
        let weights = candidates.map { Double(expf((logits[$0] - maximum) / options.temperature)) }
        let total = weights.reduce(0, +)
        var threshold = Double(rng.uniform()) * total
        for (i, w) in zip(candidates, weights) {
            threshold -= w
            if threshold < 0 { return Int32(i) }
        }
        return Int32(candidates.last!)
    }
}

public enum Generation {
    /// Appends up to `maxTokens` tokens to `prompt`, calling `onToken` with each.
    public static func generate(model: Transformer, prompt: [Int32], maxTokens: Int, options: SamplingOptions,
                                endOfSequence: Int32?, onToken: (Int32) -> Void) -> StopReason {
        var rng = Xoshiro256(seed: options.seed)
        var tokens = prompt
        for _ in 0..<maxTokens {
            // Positions past the trained context have no rotary table: stop there.
            guard tokens.count <= model.config.context else { return .contextFull }
            let t = tokens.count
            model.forward(tokens: tokens, targets: nil, batch: 1, length: t)
            let next = Sampler.sample(model.logits(row: t - 1), options: options, rng: &rng)
            if next == endOfSequence { return .endOfSequence }
            tokens.append(next)
            onToken(next)
        }
        return .maxTokens
    }
}
