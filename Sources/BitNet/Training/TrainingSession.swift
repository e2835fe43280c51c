// One training step, defined once for `train`, `bench`, `lr-sweep` and `sweep`: zero the
// gradients, forward and backward over the micro-batches (accumulated into one step),
// clip, AdamW at the schedule's rate. With several ranks (mpirun) every rank draws the
// step's whole sequence of micro-batches, computes those whose index is its rank modulo
// the number of ranks, and the gradients are summed across ranks before the update, so
// the data and the result do not depend on the number of ranks (up to FP32 sum order).
// The session owns the model, the optimizer, the schedule and the step counter and data
// generator that a checkpoint saves.
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
    /// How the ranks combine gradients and share the optimizer state (ZeRO-1 or not).
    public let exchange: GradientExchange
    public private(set) var state: TrainingState
    /// Wall seconds this process has spent in the gradient all-reduce (timing only).
    public private(set) var communicationSeconds = 0.0
    private var rng: Xoshiro256
    private let tokens, targets: UnsafeMutablePointer<Int32>

    /// A fresh run: weights initialized from the seed, the data generator seeded beside it.
    /// `zero`: shard the AdamW moments across the ranks (ZeRO stage 1).
    public init(config: RunConfig, ranks: Communicator = .single, zero: Bool = false) throws {
        self.config = config
        self.ranks = ranks
        let t = config.training, seed = t.seed
        model = Transformer(config: config.model, batch: t.microBatchSize, storage: t.activationStorage)
        model.initializeParameters(seed: seed)
        exchange = try GradientExchange(layout: model.layout, ranks: ranks, sharded: zero)
        optimizer = AdamW(count: exchange.shard.count)
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
        try exchange.loadMoments(into: optimizer) { m, v in try Checkpoint.load(file, into: model, moments: (m, v)) }
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
        let distributed = ranks.size > 1
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
            // int4: the input steps start from the first micro-batch's first sequence. A rank
            // that does not compute that micro-batch runs its forward once anyway, so every
            // rank starts from the steps one process would.
            if index == 0 && ranks.rank != 0 && model.hasUnsetInputSteps {
                _ = model.forward(tokens: tokens, targets: targets, batch: micro, length: context)
            }
            guard index % ranks.size == ranks.rank else { continue }  // another rank's micro-batch
            loss += Double(model.forward(tokens: tokens, targets: targets, batch: micro, length: context))
            if distributed && index == lastOwn {
                let (exchange, gradients) = (self.exchange, model.gradients)
                try model.backward(lossScale: 1 / Float(accumulation)) { l in
                    try timed { try exchange.send(layer: l, gradients: gradients) }
                }
            } else {
                model.backward(lossScale: 1 / Float(accumulation))
            }
        }
        // The optimizer's gradients: all, or this rank's shard of them (ZeRO-1).
        var gradients = model.gradients
        if distributed {
            // The rest (the embedding, the final norm and head), then wait for every bucket.
            try timed {
                gradients = try exchange.finish(gradients: model.gradients)
                loss = try ranks.sum(loss)
            }
        }
        loss /= Double(accumulation)
        let next = state.step + 1
        guard loss.isFinite else {
            throw BitNetError.diverged("loss became \(loss.isNaN ? "NaN" : "infinite") at step \(next)")
        }
        let gradNorm = Float(try exchange.squaredNorm(gradients).squareRoot())
        guard gradNorm.isFinite else {
            throw BitNetError.diverged("gradient norm became \(gradNorm.isNaN ? "NaN" : "infinite") at step \(next)")
        }
        AdamW.scale(gradients, count: exchange.shard.count, norm: gradNorm, maxNorm: t.gradClip)
        optimizer.update(parameters: model.parameters, gradients: gradients, layout: model.layout, shard: exchange.shard,
                         learningRate: learningRate, weightDecay: schedule.weightDecay(at: state.step), config: t)
        if distributed {
            try timed { try exchange.shareUpdatedParameters(model.parameters) }
            communicationSeconds += communication
        }
        model.parametersDidChange()
        state.step = next
        state.optimizerStep = optimizer.step
        state.tokensSeen += t.batchSize * context
        state.rngState = rng.state
        return StepResult(loss: loss, gradNorm: gradNorm, learningRate: learningRate)
    }
}
