// What a sweep is: sizes, modes and a budget (SWEEP_DIR/sweep.json), and the run
// config each (size, mode) trains with.
import Foundation

/// How many tokens each run trains on.
public enum SweepBudget: Codable, Sendable, Equatable, CustomStringConvertible {
    case tokens(Int)
    /// Tokens = ratio x non-embedding parameters (Chinchilla-style budgets).
    case tokensPerParameter(Double)
    /// Tokens = FLOPs / training FLOPs per token.
    case flops(Double)

    /// More tokens than any run could train on: a budget above it is refused.
    public static let maxTokens = 1 << 50

    /// Tokens for a model of this config; nil when beyond `maxTokens` (or not a number).
    public func tokens(for config: ModelConfig) -> Int? {
        let n: Double
        switch self {
        case .tokens(let t): return t <= Self.maxTokens ? t : nil
        case .tokensPerParameter(let r): n = r * Double(config.nonEmbeddingParameters)
        case .flops(let f): n = f / config.trainingFlopsPerToken
        }
        return n.isFinite && n <= Double(Self.maxTokens) ? Int(n.rounded()) : nil
    }

    /// The `sweep` flag that sets this budget.
    public var flag: String {
        switch self {
        case .tokens: "--tokens"
        case .tokensPerParameter: "--tokens-per-param"
        case .flops: "--flops"
        }
    }

    public var description: String {
        switch self {
        case .tokens(let n): "\(n) tokens per run"
        case .tokensPerParameter(let r): "\(r) tokens per non-embedding parameter"
        case .flops(let f): String(format: "%.3g training FLOPs per run", f)
        }
    }
}

/// A size: a preset name, or "DxL" (width D, L layers) built on `basePreset`.
public struct SweepSize: Codable, Sendable, Equatable {
    public var name: String

    public init(_ name: String) { self.name = name }

    /// The model and training settings of this size (mode and vocabulary still to set).
    public func config(basePreset: String) throws -> (ModelConfig, TrainingConfig) {
        if let preset = Preset.all.first(where: { $0.name == name }) { return (preset.model, preset.training) }
        let parts = name.lowercased().split(separator: "x")
        guard parts.count == 2, let dim = Int(parts[0]), let layers = Int(parts[1]), dim > 0, layers > 0 else {
            throw BitNetError.invalid("unknown preset or size '\(name)': give a preset (\(Preset.all.map(\.name).joined(separator: ", "))) "
                              + "or WIDTHxLAYERS such as 96x3")
        }
        let base = try Preset.named(basePreset)
        var m = base.model
        m.dim = dim
        m.layers = layers
        // Heads of 32 dimensions when the width allows, else 16.
        let headDim = dim % 32 == 0 ? 32 : 16
        guard dim % headDim == 0 else { throw BitNetError.invalid("size '\(name)': the width must be a multiple of 16") }
        m.heads = dim / headDim
        // SwiGLU's 8/3 expansion keeps its parameters equal to a 4x GELU MLP; multiple of 16.
        m.ffnDim = m.ffnActivation.hasGate ? (8 * dim / 3 + 15) / 16 * 16 : 4 * dim
        try m.validate()
        return (m, base.training)
    }
}

/// SWEEP_DIR/sweep.json: what a sweep is, so a re-run can check it is the same sweep.
public struct SweepDefinition: Codable, Sendable, Equatable {
    public var data: String
    public var sizes: [SweepSize]
    public var modes: [WeightMode]
    public var budget: SweepBudget
    public var basePreset: String
    /// Overrides applied to every run (context, batch, seed, ...), as `ModelConfig`/
    /// `TrainingConfig` fields would be by the command line.
    public var context: Int?
    public var batchSize: Int?
    public var microBatchSize: Int?
    public var seed: UInt64
    public var evalWindows: Int
    /// Peak learning rates by mode and width from lr-sweeps (nil: each mode's default).
    public var learningRateRule: LearningRateRule?
    /// A text file every finished run is also evaluated on (a second corpus the models
    /// were not trained on), encoded with the data's tokenizer.
    public var text: String?

    public init(data: String, sizes: [SweepSize], modes: [WeightMode], budget: SweepBudget, basePreset: String,
                context: Int?, batchSize: Int?, microBatchSize: Int?, seed: UInt64, evalWindows: Int,
                learningRateRule: LearningRateRule? = nil, text: String? = nil) {
        self.data = data
        self.sizes = sizes
        self.modes = modes
        self.budget = budget
        self.basePreset = basePreset
        self.context = context
        self.batchSize = batchSize
        self.microBatchSize = microBatchSize
        self.seed = seed
        self.evalWindows = evalWindows
        self.learningRateRule = learningRateRule
        self.text = text
    }

    public func validate() throws {
        if sizes.isEmpty { throw BitNetError.invalid("the size list is empty") }
        if modes.isEmpty { throw BitNetError.invalid("the mode list is empty") }
        if Set(sizes.map(\.name)).count != sizes.count { throw BitNetError.invalid("a size is listed twice") }
        switch budget {
        case .tokens(let n) where n <= 0: throw BitNetError.invalid("the budget of tokens per run must be positive, got \(n)")
        case .tokensPerParameter(let r) where !(r > 0): throw BitNetError.invalid("the budget of tokens per parameter must be positive, got \(r)")
        case .flops(let f) where !(f > 0): throw BitNetError.invalid("the budget of FLOPs per run must be positive, got \(f)")
        default: break
        }
    }

    /// The run config of one (size, mode), with its step count from the budget.
    public func runConfig(size: SweepSize, mode: WeightMode, vocabSize: Int) throws -> RunConfig {
        let (m, t) = try size.config(basePreset: basePreset)
        var overrides: [(key: String, text: String)] = [("mode", mode.rawValue), ("vocab_size", "\(vocabSize)")]
        if let context { overrides.append(("context", "\(context)")) }
        if let batchSize { overrides.append(("batch_size", "\(batchSize)")) }
        if let microBatchSize { overrides.append(("micro_batch_size", "\(microBatchSize)")) }
        overrides += [("seed", "\(seed)"), ("eval_windows", "\(evalWindows)")]
        if let rate = learningRateRule?.learningRate(mode: mode, width: m.dim) {
            overrides.append(("learning_rate", "\(rate)"))
        }
        let sized = try RunConfig(preset: size.name, model: m, training: t).overriding(overrides)
        // The budget sets the steps; logging, evaluation and checkpoints scale with them.
        let tokensPerStep = sized.training.batchSize * sized.model.context
        // The budget counts the size's parameters as `fp` has them (without the quantized
        // modes' SubLN gains), so every mode of a size trains on the same tokens.
        var shape = sized.model
        shape.mode = .fp
        guard let tokens = budget.tokens(for: shape) else {
            throw BitNetError.invalid("\(budget.flag): the budget (\(budget)) gives size \(size.name) more than "
                                      + "\(SweepBudget.maxTokens) tokens")
        }
        guard tokens >= tokensPerStep else {
            throw BitNetError.invalid("the budget (\(budget)) gives size \(size.name) \(tokens) tokens, less than one optimizer "
                                      + "step of \(sized.training.batchSize) x \(sized.model.context) = \(tokensPerStep) tokens")
        }
        let steps = (tokens + tokensPerStep / 2) / tokensPerStep
        return try sized.overriding([("steps", "\(steps)"), ("log_every", "\(max(1, steps / 100))"),
                                     ("eval_every", "\(max(1, steps / 10))"), ("checkpoint_every", "\(max(1, steps / 10))")])
    }

    public static func runName(size: SweepSize, mode: WeightMode) -> String { "\(size.name)-\(mode.rawValue)" }
}
