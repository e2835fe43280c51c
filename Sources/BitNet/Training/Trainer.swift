// The training loop: sample windows, forward, backward (accumulated over micro-batches),
// clip, AdamW; log metrics, evaluate, checkpoint; resume exactly where a run stopped.
import Foundation

/// What the trainer reports; the CLI decides how to print it.
public enum TrainingEvent: Sendable {
    case resumed(step: Int)
    case step(StepMetrics)
    case checkpoint(step: Int, path: String)
    case stopped(step: Int)
}

/// One line of RUN_DIR/metrics.jsonl.
public struct StepMetrics: Sendable, Equatable {
    public var step: Int
    public var steps: Int
    public var loss: Float
    public var learningRate: Float
    public var gradNorm: Float
    public var tokensPerSecond: Double
    public var elapsedSeconds: Double
    public var valLoss: Float?
    /// Fraction of quantized weights that changed value since the previous logged step.
    public var flipFraction: Double?
    /// Fraction of ternary weights that are zero.
    public var zeroFraction: Double?

    public var jsonLine: String {
        func number(_ x: Double) -> String { x.isFinite ? "\(x)" : "null" }
        func number(_ x: Float) -> String { x.isFinite ? "\(x)" : "null" }
        var fields = [
            "\"step\":\(step)", "\"loss\":\(number(loss))", "\"lr\":\(number(learningRate))",
            "\"grad_norm\":\(number(gradNorm))", "\"tokens_per_second\":\(number(tokensPerSecond.rounded()))",
            "\"elapsed_seconds\":\(number((elapsedSeconds * 1000).rounded() / 1000))",
        ]
        if let valLoss {
            fields.append("\"val_loss\":\(number(valLoss))")
            fields.append("\"val_perplexity\":\(number(exp(Double(valLoss))))")
        }
        if let flipFraction { fields.append("\"flip_fraction\":\(number(flipFraction))") }
        if let zeroFraction { fields.append("\"zero_fraction\":\(number(zeroFraction))") }
        return "{" + fields.joined(separator: ",") + "}"
    }
}

public struct TrainingError: Error, CustomStringConvertible {
    public let description: String
}

public final class Trainer {
    public let runDirectory: URL
    public let config: RunConfig
    public let model: Transformer
    public let optimizer: AdamW
    public let dataset: TokenDataset
    let schedule: LearningRateSchedule
    public private(set) var state: TrainingState
    /// Checked between steps; when true the trainer checkpoints and returns (Ctrl-C).
    public var shouldStop: () -> Bool = { false }
    /// Tests only: simulate a kill part way through the checkpoint written at this step.
    public var failCheckpointWrite: (step: Int, afterBytes: Int)?

    public var metricsURL: URL { runDirectory.appendingPathComponent("metrics.jsonl") }
    public var configURL: URL { runDirectory.appendingPathComponent("config.json") }

    /// Sets up a run. A directory holding a run is refused unless `resume` (continue it
    /// from its checkpoint, with its own config) or `force` (start over).
    public init(runDirectory: URL, config requested: RunConfig, dataset: TokenDataset,
                resume: Bool, force: Bool, memoryLimit: Int? = nil) throws {
        self.runDirectory = runDirectory
        self.dataset = dataset
        let fm = FileManager.default
        let configURL = runDirectory.appendingPathComponent("config.json")
        let checkpointURL = Checkpoint.url(in: runDirectory)
        var config = requested
        var checkpoint: (file: SafeTensorsFile, state: TrainingState)?
        let existing = (try? fm.contentsOfDirectory(atPath: runDirectory.path)) ?? []
        if resume && fm.fileExists(atPath: configURL.path) {
            guard let data = fm.contents(atPath: configURL.path),
                  let saved = try? JSONDecoder().decode(RunConfig.self, from: data) else {
                throw FileError("\(configURL.path): unreadable or invalid; cannot resume this run")
            }
            config = saved
            if fm.fileExists(atPath: checkpointURL.path) {
                let file = try SafeTensorsFile(url: checkpointURL)
                let (checkpointConfig, state) = try Checkpoint.readHeader(file)
                guard checkpointConfig == saved else {
                    throw FileError("\(checkpointURL.path): its config differs from \(configURL.path); refusing to resume")
                }
                checkpoint = (file, state)
            }
        } else if !existing.filter({ !$0.hasPrefix(".") }).isEmpty {
            guard force else {
                throw FileError("\(runDirectory.path): already holds a run; pass --resume to continue it or --force to replace it")
            }
            for name in ["config.json", "metrics.jsonl", Checkpoint.fileName, "tokenizer.model"] {
                try? fm.removeItem(at: runDirectory.appendingPathComponent(name))
            }
        }
        try config.validate()
        guard config.model.vocabSize == dataset.meta.vocabSize else {
            throw ConfigError("vocabulary mismatch: the model has vocab_size \(config.model.vocabSize) but "
                              + "\(dataset.directory) was prepared with \(dataset.meta.vocabSize)")
        }
        try dataset.check(context: config.model.context)
        let needed = Transformer.trainingBytes(config: config.model, batch: config.training.microBatchSize)
        let limit = memoryLimit ?? Int(Double(ProcessInfo.processInfo.physicalMemory) * 0.85)
        guard needed <= limit else {
            throw ConfigError(String(format: "estimated peak memory %.1f GB exceeds the %.1f GB available; lower "
                                     + "--micro-batch-size or the model size", Double(needed) / 1e9, Double(limit) / 1e9))
        }
        self.config = config
        model = Transformer(config: config.model, batch: config.training.microBatchSize)
        optimizer = AdamW(count: model.layout.totalCount)
        schedule = LearningRateSchedule(config: config.training, mode: config.model.mode)
        let seed = config.training.seed
        state = TrainingState(step: 0, optimizerStep: 0, rngState: Xoshiro256(seed: seed &+ 1).state, tokensSeen: 0)
        try fm.createDirectory(at: runDirectory, withIntermediateDirectories: true)
        if let (file, saved) = checkpoint {
            try Checkpoint.load(file, into: model, optimizer: optimizer)
            optimizer.step = saved.optimizerStep
            state = saved
            try truncateMetrics(after: saved.step)
        } else {
            model.initializeParameters(seed: seed)
            try AtomicFile.writeJSON(config, to: configURL)
            try? fm.removeItem(at: metricsURL)
            let tokenizerCopy = runDirectory.appendingPathComponent("tokenizer.model")
            try? fm.removeItem(at: tokenizerCopy)
            if fm.fileExists(atPath: dataset.tokenizerPath) {
                try AtomicFile.write(try Data(contentsOf: URL(fileURLWithPath: dataset.tokenizerPath)), to: tokenizerCopy)
            }
        }
    }

    /// Keeps the metrics lines of steps up to `step` (a killed run may have logged past
    /// its last checkpoint), so the resumed run's lines follow on exactly.
    private func truncateMetrics(after step: Int) throws {
        guard let data = FileManager.default.contents(atPath: metricsURL.path) else { return }
        let kept = String(decoding: data, as: UTF8.self).split(separator: "\n").filter { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let s = object["step"] as? Int else { return false }
            return s <= step
        }
        try AtomicFile.write(Data((kept.map { $0 + "\n" }.joined()).utf8), to: metricsURL)
    }

    /// Mean loss over the fixed validation windows.
    public func validationLoss() -> Float {
        Evaluation.loss(model: model, dataset: dataset, windows: config.training.evalWindows,
                        batch: config.training.microBatchSize)
    }

    /// Trains to the end of the schedule (or until `shouldStop`), reporting each logged step.
    public func run(_ report: (TrainingEvent) -> Void) throws {
        let t = config.training, m = config.model
        let micro = t.microBatchSize, context = m.context
        var rng = try Xoshiro256(state: state.rngState)
        let tokens = UnsafeMutablePointer<Int32>.allocate(capacity: micro * context)
        let targets = UnsafeMutablePointer<Int32>.allocate(capacity: micro * context)
        defer {
            tokens.deallocate()
            targets.deallocate()
        }
        if state.step > 0 { report(.resumed(step: state.step)) }
        let metrics = try openMetrics()
        defer { try? metrics.close() }
        // Wall time carries over from earlier segments of a resumed run.
        let start = Date().addingTimeInterval(-state.elapsedSeconds)
        var windowStart = Date(), windowTokens = 0
        if state.step == 0 && m.mode.isQuantized { _ = model.quantizationStatistics() }

        while state.step < t.steps {
            if shouldStop() {
                try saveCheckpoint()
                report(.stopped(step: state.step))
                return
            }
            let lr = schedule.learningRate(at: state.step)
            model.zeroGradients()
            var loss: Double = 0
            for _ in 0..<t.accumulationSteps {
                dataset.sampleBatch(rng: &rng, batch: micro, context: context, tokens: tokens, targets: targets)
                loss += Double(model.forward(tokens: tokens, targets: targets, batch: micro, length: context))
                model.backward(lossScale: 1 / Float(t.accumulationSteps))
            }
            loss /= Double(t.accumulationSteps)
            guard loss.isFinite else {
                throw TrainingError(description: "loss became \(loss.isNaN ? "NaN" : "infinite") at step \(state.step + 1); stopping. The last good "
                                    + "checkpoint is kept; try a lower --lr or a smaller --grad-clip")
            }
            let gradNorm = AdamW.clipGradients(model.gradients, count: model.layout.totalCount, maxNorm: t.gradClip)
            guard gradNorm.isFinite else {
                throw TrainingError(description: "gradient norm became \(gradNorm.isNaN ? "NaN" : "infinite") at step \(state.step + 1); stopping. "
                                    + "The last good checkpoint is kept; try a lower --lr")
            }
            optimizer.update(parameters: model.parameters, gradients: model.gradients, layout: model.layout,
                             learningRate: lr, weightDecay: schedule.weightDecay(at: state.step), config: t)
            model.parametersDidChange()
            state.step += 1
            state.optimizerStep = optimizer.step
            state.tokensSeen += t.batchSize * context
            state.rngState = rng.state
            state.elapsedSeconds = Date().timeIntervalSince(start)
            windowTokens += t.batchSize * context

            let last = state.step == t.steps
            if state.step % t.logEvery == 0 || last {
                let now = Date()
                var entry = StepMetrics(step: state.step, steps: t.steps, loss: Float(loss), learningRate: lr,
                                        gradNorm: gradNorm, tokensPerSecond: Double(windowTokens) / now.timeIntervalSince(windowStart),
                                        elapsedSeconds: now.timeIntervalSince(start))
                if m.mode.isQuantized { (entry.flipFraction, entry.zeroFraction) = model.quantizationStatistics() }
                if state.step % t.evalEvery == 0 || last { entry.valLoss = validationLoss() }
                try metrics.write(contentsOf: Data((entry.jsonLine + "\n").utf8))
                report(.step(entry))
                windowStart = Date()
                windowTokens = 0
            }
            if state.step % t.checkpointEvery == 0 || last {
                try saveCheckpoint()
                report(.checkpoint(step: state.step, path: Checkpoint.url(in: runDirectory).path))
                windowStart = Date()
            }
        }
    }

    public func saveCheckpoint() throws {
        let fail = failCheckpointWrite.flatMap { $0.step == state.step ? $0.afterBytes : nil }
        try Checkpoint.save(to: Checkpoint.url(in: runDirectory), config: config, model: model, optimizer: optimizer,
                            state: state, failAfterBytes: fail)
    }

    private func openMetrics() throws -> FileHandle {
        if !FileManager.default.fileExists(atPath: metricsURL.path) {
            _ = FileManager.default.createFile(atPath: metricsURL.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: metricsURL)
        try handle.seekToEnd()
        return handle
    }
}
