// The learning rate and weight decay at each optimizer step.
import Foundation

/// The learning-rate schedule: linear warm-up, then cosine, linear or no decay to
/// `minLearningRateRatio * peak`; with `twoStage`, BitNet b1.58's drop half way.
public struct LearningRateSchedule: Sendable {
    public let peak: Float
    public let config: TrainingConfig

    public init(config: TrainingConfig, mode: WeightMode) {
        self.config = config
        peak = config.peakLearningRate(for: mode)
    }

    /// Learning rate of optimizer step `step` (0-based).
    public func learningRate(at step: Int) -> Float {
        let minimum = peak * config.minLearningRateRatio
        var lr: Float
        if step < config.warmupSteps {
            // 1) Warm-up: from peak/warmup up to peak.
            lr = peak * Float(step + 1) / Float(config.warmupSteps)
        } else {
            let span = max(config.steps - config.warmupSteps, 1)
            let progress = min(Float(step - config.warmupSteps) / Float(span), 1)
            switch config.decay {
            // 2) Cosine from peak down to the minimum.
            case .cosine: lr = minimum + 0.5 * (1 + cos(Float.pi * progress)) * (peak - minimum)
            // 3) Straight line from peak down to the minimum.
            case .linear: lr = peak - progress * (peak - minimum)
            case .constant: lr = peak
            }
        }
        if isSecondStage(step) { lr *= config.stage2LearningRateFactor }
        return lr
    }

    public func weightDecay(at step: Int) -> Float {
        isSecondStage(step) ? 0 : config.weightDecay
    }

    func isSecondStage(_ step: Int) -> Bool { config.twoStage && step >= config.steps / 2 }
}
