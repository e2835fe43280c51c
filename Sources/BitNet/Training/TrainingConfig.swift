// Optimizer, schedule and run-control settings: every default in one place.
import Foundation

public enum DecayKind: String, Codable, Sendable, CaseIterable {
    case cosine
    case linear
    case constant
}

public struct TrainingConfig: Codable, Sendable, Equatable {
    /// Sequences per optimizer step.
    public var batchSize: Int = 16
    /// Sequences per forward/backward pass; batchSize / microBatchSize passes are
    /// accumulated into one step (same numbers as one big batch, smaller memory).
    public var microBatchSize: Int = 16
    public var steps: Int = 1000
    /// Peak learning rate; nil means the mode's default (see `defaultLearningRate`).
    public var learningRate: Float? = nil
    public var warmupSteps: Int = 50
    public var decay: DecayKind = .cosine
    /// The schedule decays to this fraction of the peak.
    public var minLearningRateRatio: Float = 0.1
    public var weightDecay: Float = 0.1
    public var beta1: Float = 0.9
    public var beta2: Float = 0.95
    public var adamEpsilon: Float = 1e-8
    /// Global gradient-norm clip; 0 disables it.
    public var gradClip: Float = 1.0
    /// BitNet b1.58's two-stage recipe: half way through, the learning rate is
    /// multiplied by `stage2LearningRateFactor` and weight decay is switched off.
    public var twoStage: Bool = false
    public var stage2LearningRateFactor: Float = 0.5
    public var seed: UInt64 = 1337
    public var logEvery: Int = 10
    public var evalEvery: Int = 100
    /// Validation windows (of `context` tokens) per evaluation.
    public var evalWindows: Int = 64
    public var checkpointEvery: Int = 200

    public init() {}

    /// BitNet trains stably at larger learning rates than FP (the paper's section 3),
    /// so the quantized modes default higher.
    public static func defaultLearningRate(for mode: WeightMode) -> Float {
        mode == .fp ? 1e-3 : 3e-3
    }

    public func peakLearningRate(for mode: WeightMode) -> Float {
        learningRate ?? Self.defaultLearningRate(for: mode)
    }

    public var accumulationSteps: Int { batchSize / microBatchSize }

    enum CodingKeys: String, CodingKey {
        case batchSize = "batch_size", microBatchSize = "micro_batch_size", steps
        case learningRate = "learning_rate", warmupSteps = "warmup_steps", decay
        case minLearningRateRatio = "min_learning_rate_ratio", weightDecay = "weight_decay"
        case beta1, beta2, adamEpsilon = "adam_epsilon", gradClip = "grad_clip", twoStage = "two_stage"
        case stage2LearningRateFactor = "stage2_learning_rate_factor", seed
        case logEvery = "log_every", evalEvery = "eval_every", evalWindows = "eval_windows"
        case checkpointEvery = "checkpoint_every"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TrainingConfig()
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
        microBatchSize = try c.decodeIfPresent(Int.self, forKey: .microBatchSize) ?? d.microBatchSize
        steps = try c.decodeIfPresent(Int.self, forKey: .steps) ?? d.steps
        learningRate = try c.decodeIfPresent(Float.self, forKey: .learningRate)
        warmupSteps = try c.decodeIfPresent(Int.self, forKey: .warmupSteps) ?? d.warmupSteps
        decay = try c.decodeIfPresent(DecayKind.self, forKey: .decay) ?? d.decay
        minLearningRateRatio = try c.decodeIfPresent(Float.self, forKey: .minLearningRateRatio) ?? d.minLearningRateRatio
        weightDecay = try c.decodeIfPresent(Float.self, forKey: .weightDecay) ?? d.weightDecay
        beta1 = try c.decodeIfPresent(Float.self, forKey: .beta1) ?? d.beta1
        beta2 = try c.decodeIfPresent(Float.self, forKey: .beta2) ?? d.beta2
        adamEpsilon = try c.decodeIfPresent(Float.self, forKey: .adamEpsilon) ?? d.adamEpsilon
        gradClip = try c.decodeIfPresent(Float.self, forKey: .gradClip) ?? d.gradClip
        twoStage = try c.decodeIfPresent(Bool.self, forKey: .twoStage) ?? d.twoStage
        stage2LearningRateFactor = try c.decodeIfPresent(Float.self, forKey: .stage2LearningRateFactor) ?? d.stage2LearningRateFactor
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        logEvery = try c.decodeIfPresent(Int.self, forKey: .logEvery) ?? d.logEvery
        evalEvery = try c.decodeIfPresent(Int.self, forKey: .evalEvery) ?? d.evalEvery
        evalWindows = try c.decodeIfPresent(Int.self, forKey: .evalWindows) ?? d.evalWindows
        checkpointEvery = try c.decodeIfPresent(Int.self, forKey: .checkpointEvery) ?? d.checkpointEvery
        try validate()
    }

    public func validate() throws {
        try ConfigError.requirePositive(batchSize, "batch_size")
        try ConfigError.requirePositive(microBatchSize, "micro_batch_size")
        try ConfigError.requirePositive(steps, "steps")
        try ConfigError.requirePositive(logEvery, "log_every")
        try ConfigError.requirePositive(evalEvery, "eval_every")
        try ConfigError.requirePositive(evalWindows, "eval_windows")
        try ConfigError.requirePositive(checkpointEvery, "checkpoint_every")
        if batchSize % microBatchSize != 0 {
            throw ConfigError("config field micro_batch_size (\(microBatchSize)) must divide batch_size (\(batchSize))")
        }
        if warmupSteps < 0 { throw ConfigError("config field warmup_steps must be >= 0, got \(warmupSteps)") }
        if let lr = learningRate, !(lr > 0 && lr.isFinite) {
            throw ConfigError("config field learning_rate must be positive, got \(lr)")
        }
        if !(minLearningRateRatio >= 0 && minLearningRateRatio <= 1) {
            throw ConfigError("config field min_learning_rate_ratio must be in [0, 1], got \(minLearningRateRatio)")
        }
        if !(weightDecay >= 0) { throw ConfigError("config field weight_decay must be >= 0, got \(weightDecay)") }
        if !(beta1 >= 0 && beta1 < 1) { throw ConfigError("config field beta1 must be in [0, 1), got \(beta1)") }
        if !(beta2 >= 0 && beta2 < 1) { throw ConfigError("config field beta2 must be in [0, 1), got \(beta2)") }
        if !(adamEpsilon > 0) { throw ConfigError("config field adam_epsilon must be > 0, got \(adamEpsilon)") }
        if !(gradClip >= 0) { throw ConfigError("config field grad_clip must be >= 0, got \(gradClip)") }
        if !(stage2LearningRateFactor > 0 && stage2LearningRateFactor <= 1) {
            throw ConfigError("config field stage2_learning_rate_factor must be in (0, 1], got \(stage2LearningRateFactor)")
        }
    }
}

/// What a run directory's config.json holds: the model and how it is trained.
public struct RunConfig: Codable, Sendable, Equatable {
    public var preset: String?
    public var model: ModelConfig
    public var training: TrainingConfig

    public init(preset: String?, model: ModelConfig, training: TrainingConfig) {
        self.preset = preset
        self.model = model
        self.training = training
    }

    public func validate() throws {
        try model.validate()
        try training.validate()
    }
}
