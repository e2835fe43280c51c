// The training loop: steps (TrainingSession) until the schedule ends, with metrics,
// evaluation and checkpoints in the run directory; resumes exactly where a run stopped.
// Under mpirun every rank runs this loop in step; rank 0 alone writes the run directory
// and reports, every rank reads the checkpoint on resume.
import Foundation

/// What the trainer reports; the CLI decides how to print it.
public enum TrainingEvent: Sendable {
    case resumed(step: Int)
    case step(StepMetrics)
    case checkpoint(step: Int, path: String)
    case stopped(step: Int)
}

public final class Trainer {
    public let directory: RunDirectory
    public let dataset: TokenDataset
    public let session: TrainingSession
    public var config: RunConfig { session.config }
    public var model: Transformer { session.model }
    public var state: TrainingState { session.state }
    /// Checked between steps; when true the trainer checkpoints and returns (Ctrl-C).
    public var shouldStop: () -> Bool = { false }
    /// The step of the newest checkpoint on disk, if any.
    public private(set) var lastCheckpointStep: Int?
    /// Tests only: simulate a kill part way through the checkpoint written at this step.
    public var failCheckpointWrite: (step: Int, afterBytes: Int)?

    /// Sets up a run. A directory holding a run is refused unless `resume` (continue it
    /// from its checkpoint, with its own config) or `force` (start over).
    public init(runDirectory: URL, config requested: RunConfig, dataset: TokenDataset,
                resume: Bool, force: Bool, memoryLimit: Int? = nil, ranks: Communicator = .single, zero: Bool = false) throws {
        let directory = RunDirectory(runDirectory)
        self.directory = directory
        self.dataset = dataset
        let saved = resume ? try directory.readConfig() : nil
        let config = saved ?? requested
        try config.validate()
        if config.training.accumulationSteps % ranks.size != 0 {
            throw BitNetError.field("batch_size", problem: "(\(config.training.batchSize)) must be a multiple of the \(ranks.size) ranks "
                                    + "x micro_batch_size (\(config.training.microBatchSize)): each rank takes whole micro-batches")
        }
        guard config.model.vocabSize == dataset.meta.vocabSize else {
            throw BitNetError.invalid("vocabulary mismatch: the model has vocab_size \(config.model.vocabSize) but "
                                      + "\(dataset.directory) was prepared with \(dataset.meta.vocabSize)")
        }
        try dataset.check(context: config.model.context)
        if FileManager.default.fileExists(atPath: dataset.tokenizerPath) {
            let tokenizer = try Tokenizer(path: dataset.tokenizerPath)
            guard tokenizer.vocabSize == dataset.meta.vocabSize else {
                throw BitNetError.file("\(dataset.tokenizerPath): its vocabulary of \(tokenizer.vocabSize) differs from the "
                                       + "data's \(dataset.meta.vocabSize); prepare the data again with this tokenizer")
            }
        }
        if let shortfall = Transformer.memoryShortfall(config: config.model, batch: config.training.microBatchSize,
                                                       storage: config.training.activationStorage,
                                                       zeroRanks: zero ? ranks.size : 1, limit: memoryLimit) {
            throw BitNetError.field("micro_batch_size", problem: "(\(config.training.microBatchSize)): \(shortfall); lower it or the model size")
        }
        if ranks.isRoot { try directory.lock() }
        let checkpoint = saved == nil ? nil : try directory.readCheckpoint(of: config)
        if ranks.isRoot && saved == nil && directory.holdsRun {
            guard force else { throw BitNetError.occupied("\(runDirectory.path): already holds a run") }
            directory.clear()
        }
        self.ranks = ranks
        session = try TrainingSession(config: config, ranks: ranks, zero: zero)
        if let checkpoint {
            try session.restore(from: checkpoint.file, state: checkpoint.state)
            lastCheckpointStep = checkpoint.state.step
            if ranks.isRoot { try directory.truncateMetrics(after: checkpoint.state.step) }
        } else if ranks.isRoot {
            try directory.start(config: config, tokenizerPath: dataset.tokenizerPath)
        }
    }

    /// The ranks of this run (one process without mpirun).
    public let ranks: Communicator

    /// Mean loss over the fixed validation windows (shared among the ranks).
    public func validationLoss() throws -> Float {
        try Evaluation.loss(model: model, dataset: dataset, windows: config.training.evalWindows,
                            batch: config.training.microBatchSize, ranks: ranks)
    }

    /// Trains to the end of the schedule (or until `shouldStop`), reporting each logged
    /// step; then lets another trainer have the directory.
    public func run(_ reportEvent: (TrainingEvent) -> Void) throws {
        defer { if ranks.isRoot { directory.unlock() } }
        let t = config.training, m = config.model
        func report(_ event: TrainingEvent) { if ranks.isRoot { reportEvent(event) } }
        if state.step > 0 { report(.resumed(step: state.step)) }
        let metrics = ranks.isRoot ? try directory.openMetrics() : nil
        defer { try? metrics?.close() }
        // Wall time carries over from earlier segments of a resumed run.
        let start = Date().addingTimeInterval(-state.elapsedSeconds)
        var windowStart = Date(), windowTokens = 0, windowCommunication = session.communicationSeconds
        if state.step == 0 && m.mode.isBitNet { _ = model.quantizationStatistics() }

        while state.step < t.steps {
            if try ranks.any(shouldStop()) {
                try saveCheckpoint()
                report(.stopped(step: state.step))
                return
            }
            let result: StepResult
            do {
                result = try session.step(from: .dataset(dataset))
            } catch BitNetError.diverged(let reason) {
                let kept = lastCheckpointStep.map { "the checkpoint of step \($0) is kept" } ?? "no checkpoint was written yet"
                throw BitNetError.diverged(reason + "; " + kept)
            }
            session.setElapsedSeconds(Date().timeIntervalSince(start))
            windowTokens += t.batchSize * m.context

            let last = state.step == t.steps
            if state.step % t.logEvery == 0 || last {
                let now = Date()
                var entry = StepMetrics(step: state.step, steps: t.steps, loss: Float(result.loss),
                                        learningRate: result.learningRate, gradNorm: result.gradNorm,
                                        tokensPerSecond: Double(windowTokens) / now.timeIntervalSince(windowStart),
                                        elapsedSeconds: now.timeIntervalSince(start))
                if m.mode.isBitNet { (entry.flipFraction, entry.zeroFraction) = model.quantizationStatistics() }
                if ranks.size > 1 {
                    entry.communicationShare = (session.communicationSeconds - windowCommunication) / now.timeIntervalSince(windowStart)
                }
                if state.step % t.evalEvery == 0 || last { entry.valLoss = try validationLoss() }
                try metrics?.write(contentsOf: Data((entry.jsonLine + "\n").utf8))
                report(.step(entry))
                windowStart = Date()
                windowTokens = 0
                windowCommunication = session.communicationSeconds
            }
            if state.step % t.checkpointEvery == 0 || last {
                let before = Date()
                try saveCheckpoint()
                report(.checkpoint(step: state.step, path: directory.checkpointURL.path))
                // The rate counts training time only: the window (which may have begun
                // steps before) skips the time the checkpoint took.
                windowStart = windowStart.addingTimeInterval(Date().timeIntervalSince(before))
            }
        }
    }

    /// Writes the checkpoint: rank 0 writes (the ranks hold the same weights), every rank
    /// calls this (under ZeRO-1 each holds part of the optimizer moments).
    public func saveCheckpoint() throws {
        let fail = failCheckpointWrite.flatMap { $0.step == state.step ? $0.afterBytes : nil }
        try session.exchange.withWholeMoments(of: session.optimizer) { moments in
            guard ranks.isRoot else { return }
            try Checkpoint.save(to: directory.checkpointURL, config: config, model: model, moments: moments,
                                state: state, failAfterBytes: fail)
        }
        lastCheckpointStep = state.step
    }
}
