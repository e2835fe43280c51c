// Optimizer, schedule and run-control settings: every default in one place.
import Foundation

public enum DecayKind: String, ConfigChoice {
    case cosine
    case linear
    case constant
}

public struct TrainingConfig: ConfigTable, Sendable, Equatable {
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
    /// How activations saved for the backward pass are kept: FP32, or BF16 (half their
    /// memory; master weights, gradients and AdamW state stay FP32 either way).
    public var activationStorage: ActivationStorage = .f32

    public init() {}

    /// BitNet trains stably at larger learning rates than FP (the paper's section 3),
    /// so the quantized modes default higher.
    public static func defaultLearningRate(for mode: WeightMode) -> Float {
        mode.isBitNet ? 3e-3 : 1e-3
    }

    public func peakLearningRate(for mode: WeightMode) -> Float {
        learningRate ?? Self.defaultLearningRate(for: mode)
    }

    public var accumulationSteps: Int { batchSize / microBatchSize }

    /// JSON through the table of fields (ConfigFields.swift).
    public init(from decoder: Decoder) throws { try self.init(decodingFieldsFrom: decoder) }
    public func encode(to encoder: Encoder) throws { try encodeFields(to: encoder) }

    /// Throws a one-line message naming the bad field: each field's range (the table),
    /// then what holds between fields.
    public func validate() throws {
        try checkFields()
        if batchSize % microBatchSize != 0 {
            throw BitNetError.field("micro_batch_size", problem: "(\(microBatchSize)) must divide batch_size (\(batchSize))")
        }
    }
}
