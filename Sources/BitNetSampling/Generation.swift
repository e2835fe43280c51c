// The generation loop, defined once: run the prompt, then sample, stop at end of
// sequence or the context limit, feed the token back. The trainer's forward pass and
// the runtime's each supply logits through `TokenPredictor`.

/// A model that gives the next token's logits.
public protocol TokenPredictor {
    /// Tokens the model has positions for.
    var context: Int { get }
    /// Runs `prompt` (at least one token) from position 0; the last token's logits.
    mutating func logits(afterPrompt prompt: [Int32]) -> [Float]
    /// Runs one more token at `position`; its logits.
    mutating func logits(after token: Int32, at position: Int) -> [Float]
}

public enum StopReason: String, Sendable {
    case maxTokens = "max tokens"
    case endOfSequence = "end of sequence"
    case contextFull = "context limit"
    case interrupted = "interrupted"
}

public enum Generation {
    /// Runs the prompt, then samples up to `maxTokens` tokens, calling `onToken` with
    /// each; `endOfSequence` stops without being emitted; `shouldStop` is checked
    /// between tokens (Ctrl-C).
    public static func generate<M: TokenPredictor>(
        model: inout M, prompt: [Int32], maxTokens: Int, settings: SamplingSettings, endOfSequence: Int32?,
        shouldStop: () -> Bool = { false }, onToken: (Int32) -> Void
    ) -> StopReason {
        var rng = SplitMix64(seed: settings.seed)
        var logits = model.logits(afterPrompt: prompt)
        var position = prompt.count
        // The tokens the repetition penalty looks back on (only kept when it is on).
        var history = settings.penalizesRepeats ? prompt : []
        for _ in 0..<maxTokens {
            if shouldStop() { return .interrupted }
            Sampler.penalizeRepeats(&logits, history: history, settings: settings)
            let next = Sampler.sample(logits, settings: settings, rng: &rng)
            if next == endOfSequence { return .endOfSequence }
            onToken(next)
            if settings.penalizesRepeats {
                history.append(next)
                if history.count > 2 * settings.repeatLastN { history.removeFirst(history.count - settings.repeatLastN) }
            }
            // The last position has no successor inside the trained context.
            guard position < model.context else { return .contextFull }
            logits = model.logits(after: next, at: position)
            position += 1
        }
        return .maxTokens
    }
}
