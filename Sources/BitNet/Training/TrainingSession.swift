// One training step, defined once for `train`, `bench`, `lr-sweep` and `sweep`: zero the
// gradients, forward and backward over the micro-batches (accumulated into one step),
// clip, AdamW at the schedule's rate. With several ranks (mpirun) every rank draws the
// step's whole sequence of micro-batches, computes those whose index is its rank modulo
// the number of ranks, and the gradients are summed across ranks before the update, so
// the data and the result do not depend on the number of ranks (up to FP32 sum order). The session owns the model, the optimizer, the
// schedule and the step counter and data generator that a checkpoint saves.
import Foundation

/// Where a step's sequences come from.
public enum BatchSource {
    /// Random windows of the training split (the trainer).
    case dataset(TokenDataset)
    /// Uniformly random token ids (the benchmark, which needs no corpus).
    case randomTokens
}

/// What one optimizer step did.
public struct StepResult: Sendable {
    /// Mean training loss over the step's sequences.
    public var loss: Double
    /// Global gradient norm before clipping.
    public var gradNorm: Float
    public var learningRate: Float
}

public final class TrainingSession {
    public let config: RunConfig
    public let model: Transformer
    public let optimizer: AdamW
    public let schedule: LearningRateSchedule
    /// The ranks sharing each step (one process without mpirun).
    public let ranks: Communicator
    public private(set) var state: TrainingState
    /// Wall seconds this process has spent in the gradient all-reduce (timing only).
    public private(set) var communicationSeconds = 0.0
    private var rng: Xoshiro256
    private let tokens, targets: UnsafeMutablePointer<Int32>

    /// A fresh run: weights initialized from the seed, the data generator seeded beside it.
    public init(config: RunConfig, ranks: Communicator = .single) {
        self.config = config
        self.ranks = ranks
        let t = config.training, seed = t.seed
        model = Transformer(config: config.model, batch: t.microBatchSize, storage: t.activationStorage)
        model.initializeParameters(seed: seed)
        optimizer = AdamW(count: model.layout.totalCount)
        schedule = LearningRateSchedule(config: t, mode: config.model.mode)
        rng = Xoshiro256(seed: seed &+ 1)
        state = TrainingState(step: 0, optimizerStep: 0, rngState: rng.state, tokensSeen: 0)
        tokens = .allocate(capacity: t.microBatchSize * config.model.context)
        targets = .allocate(capacity: t.microBatchSize * config.model.context)
    }

    deinit {
        tokens.deallocate()
        targets.deallocate()
    }

    /// Continues from a checkpoint written by a run of this config.
    public func restore(from file: SafeTensorsFile, state saved: TrainingState) throws {
        try Checkpoint.load(file, into: model, optimizer: optimizer)
        rng = try Xoshiro256(state: saved.rngState)
        optimizer.step = saved.optimizerStep
        state = saved
    }

    /// Adds wall time spent on this run (summed over resumed segments).
    public func setElapsedSeconds(_ seconds: Double) { state.elapsedSeconds = seconds }

    /// One optimizer step. Throws, leaving the weights as they were before the update,
    /// when the loss or the gradient norm is not finite.
    @discardableResult
    public func step(from source: BatchSource) throws -> StepResult {
        let t = config.training, m = config.model
        let micro = t.microBatchSize, context = m.context, accumulation = t.accumulationSteps
        let learningRate = schedule.learningRate(at: state.step)
        model.zeroGradients()
        var loss: Double = 0
        // Several ranks: this rank's last micro-batch's backward starts each block's
        // gradient sum as soon as the block is done (the block's gradients are then final),
        // so the sums travel while the blocks below run.
        let pending = ranks.size > 1 ? ranks.pendingSums() : nil
        let lastOwn = (accumulation - 1) - (accumulation - 1 - ranks.rank) % ranks.size
        var communication = 0.0
        func timed(_ body: () throws -> Void) rethrows {
            let started = DispatchTime.now().uptimeNanoseconds
            try body()
            communication += Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        }
        for index in 0..<accumulation {
            switch source {
            case .dataset(let dataset):
                dataset.sampleBatch(rng: &rng, batch: micro, context: context, tokens: tokens, targets: targets)
            case .randomTokens:
                for i in 0..<micro * context {
                    tokens[i] = Int32(rng.below(m.vocabSize))
                    targets[i] = Int32(rng.below(m.vocabSize))
                }
            }
            if m.mode == .int4 { model.samplingSeed = rng.next() }  // the backward's sampling, resumable
            guard index % ranks.size == ranks.rank else { continue }  // another rank's micro-batch
            loss += Double(model.forward(tokens: tokens, targets: targets, batch: micro, length: context))
            if let pending, index == lastOwn {
                let (layout, gradients) = (model.layout, model.gradients)
                try model.backward(lossScale: 1 / Float(accumulation)) { l in
                    let r = layout.range(ofLayer: l)
                    try timed { try pending.start(gradients + r.lowerBound, count: r.count) }
                }
            } else {
                model.backward(lossScale: 1 / Float(accumulation))
            }
        }
        if let pending {
            // The rest (the embedding before block 0, the final norm and head after the
            // last block), then wait for every bucket.
            let layout = model.layout
            let first = layout.range(ofLayer: 0).lowerBound, end = layout.range(ofLayer: m.layers - 1).upperBound
            try timed {
                try pending.start(model.gradients, count: first)
                try pending.start(model.gradients + end, count: layout.totalCount - end)
                try pending.finish()
                loss = try ranks.sum(loss)
            }
            communicationSeconds += communication
        }
        loss /= Double(accumulation)
        let next = state.step + 1
        guard loss.isFinite else {
            throw BitNetError.diverged("loss became \(loss.isNaN ? "NaN" : "infinite") at step \(next)")
        }
        let gradNorm = AdamW.clipGradients(model.gradients, count: model.layout.totalCount, maxNorm: t.gradClip)
        guard gradNorm.isFinite else {
            throw BitNetError.diverged("gradient norm became \(gradNorm.isNaN ? "NaN" : "infinite") at step \(next)")
        }
        optimizer.update(parameters: model.parameters, gradients: model.gradients, layout: model.layout,
                         learningRate: learningRate, weightDecay: schedule.weightDecay(at: state.step), config: t)
        model.parametersDidChange()
        state.step = next
        state.optimizerStep = optimizer.step
        state.tokensSeen += t.batchSize * context
        state.rngState = rng.state
        return StepResult(loss: loss, gradNorm: gradNorm, learningRate: learningRate)
    }
}
