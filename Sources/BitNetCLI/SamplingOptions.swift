// The sampling flags, defined once for `bitnet-train sample` and `bitnet-run`.
import ArgumentParser
import BitNetSampling

/// Numeric options take the next argument as their value even when it starts with a dash,
/// so "--temperature -1" is refused for its value rather than read as a missing one.
public struct SamplingOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Tokens to generate at most.") public var maxTokens: Int = 200
    @Option(parsing: .unconditional, help: "Sampling temperature; 0 is greedy (the most likely token).") public var temperature: Float = 0.8
    @Option(parsing: .unconditional, help: "Sample from the k most likely tokens (0: all).") public var topK: Int = 40
    @Option(parsing: .unconditional, help: "Sample from the smallest set of likely tokens whose probability reaches p (1: all).")
    public var topP: Float = 1
    @Option(parsing: .unconditional, help: "Random seed of the sampler.") public var seed: UInt64 = 0
    @Option(parsing: .unconditional, help: "Penalize tokens used in the last --repeat-last-n: positive logits divided by it, negative ones multiplied (as llama.cpp's; 1: off, 1.1-1.3 breaks small models' loops).")
    public var repeatPenalty: Float = 1
    @Option(parsing: .unconditional, help: "Latest tokens, prompt included, the repetition penalty looks at (0: none).")
    public var repeatLastN: Int = 64
    @Flag(help: "Go on past the end-of-sequence token, to --max-tokens (as llama.cpp's --ignore-eos).")
    public var ignoreEos = false

    public init() {}

    /// The token that ends a generation: `eos`, or none with --ignore-eos.
    public func endOfSequence(_ eos: Int32?) -> Int32? { ignoreEos ? nil : eos }

    public var settings: SamplingSettings { SamplingSettings(temperature: temperature, topK: topK, topP: topP, seed: seed,
                                                                   repeatPenalty: repeatPenalty, repeatLastN: repeatLastN) }

    public func validate() throws {
        if maxTokens <= 0 { throw ValidationError("--max-tokens must be positive, got \(maxTokens)") }
        if let bad = settings.invalidSetting {
            throw ValidationError("--\(bad.name.replacingOccurrences(of: "_", with: "-")) \(bad.rule), got \(bad.value)")
        }
    }
}
