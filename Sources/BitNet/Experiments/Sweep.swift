// Scaling-law sweeps (the BitNet paper's section 3 as one command): every (size, mode)
// trained into its own run directory under the sweep directory, one after another or
// `jobs` at a time; finished runs are skipped, an interrupted one resumes from its
// checkpoint.
import Foundation

/// One finished run of a sweep: a row of results.csv and results.json.
public struct SweepResult: Codable, Sendable, Equatable {
    public var run: String
    public var size: String
    public var mode: WeightMode
    public var parameters: Int
    public var nonEmbeddingParameters: Int
    public var tokens: Int
    public var trainingFlops: Double
    public var wallSeconds: Double
    public var finalTrainLoss: Double
    public var finalValLoss: Double
    /// Loss on the sweep's second corpus (`text`), when it has one.
    public var textLoss: Double?
    /// (tokens seen, training loss) at each logged step, for the training-curve plot.
    public var curve: [[Double]]
    /// The final checkpoint's validation loss at each position of the window, on
    /// `positionWindows` windows (PositionLoss); nil for runs measured before it existed
    /// until `report --by-position` fills it in.
    public var lossByPosition: [Double]?
    public var positionWindows: Int?

    enum CodingKeys: String, CodingKey {
        case run, size, mode, parameters, nonEmbeddingParameters = "non_embedding_parameters", tokens
        case trainingFlops = "training_flops", wallSeconds = "wall_seconds", finalTrainLoss = "final_train_loss"
        case finalValLoss = "final_val_loss", textLoss = "text_loss", curve
        case lossByPosition = "loss_by_position", positionWindows = "position_windows"
    }

    public static let csvHeader =
        "run,size,mode,parameters,non_embedding_parameters,tokens,training_flops,wall_seconds,final_train_loss,final_val_loss,text_loss"

    public var csvRow: String {
        [run, size, mode.rawValue, String(parameters), String(nonEmbeddingParameters), String(tokens),
         String(format: "%.6g", trainingFlops), String(format: "%.1f", wallSeconds),
         String(format: "%.5f", finalTrainLoss), String(format: "%.5f", finalValLoss),
         textLoss.map { String(format: "%.5f", $0) } ?? ""].joined(separator: ",")
    }
}

public enum SweepEvent: Sendable {
    case starting(run: String, index: Int, total: Int, config: RunConfig, resuming: Bool)
    case skipped(run: String)
    case training(run: String, TrainingEvent)
    /// A finished run, and how long the runs not yet finished should take at this call's pace.
    case finished(SweepResult, secondsLeft: Double?)
}

/// How long a sweep's unfinished runs should take at the pace this call has kept: the
/// training FLOPs it has done over its wall time, against the FLOPs the unfinished runs
/// were planned to take. Runs in progress count whole, so the estimate is high by at most
/// what they have done.
public struct SweepPace {
    var left: Double
    var trained = 0.0
    let started = ProcessInfo.processInfo.systemUptime

    /// A run of planned `flops` finished, having trained `fraction` of its steps in this call.
    mutating func finished(flops: Double, fraction: Double) {
        left = max(0, left - flops)
        trained += flops * fraction
    }

    func secondsLeft(now: Double = ProcessInfo.processInfo.systemUptime) -> Double? {
        let elapsed = now - started
        return trained > 0 && elapsed > 0 ? left / (trained / elapsed) : nil
    }

    /// "(3 of 12 runs finished; the other runs: about 1h05m at this pace)".
    public static func describe(finished: Int, of total: Int, secondsLeft: Double?) -> String {
        let left = finished == total ? "" : secondsLeft.map { "; the other runs: about \(formatDuration($0)) at this pace" } ?? ""
        return "(\(finished) of \(total) runs finished\(left))"
    }
}

/// 45s, 12m05s, 3h07m.
public func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite && seconds >= 0 else { return "?" }
    let s = Int(seconds.rounded())
    if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", s % 3600 / 60))m" }
    if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
    return "\(s)s"
}

public enum Sweep {
    public static func definitionURL(_ directory: URL) -> URL { directory.appendingPathComponent("sweep.json") }
    public static func resultsURL(_ directory: URL) -> URL { directory.appendingPathComponent("results.json") }

    /// Runs (or continues) a sweep. A directory holding a different sweep is refused
    /// unless `force`; then runs whose config changed are started over, the others kept.
    public static func run(definition: SweepDefinition, directory: URL, force: Bool, jobs: Int = 1,
                           shouldStop: @escaping () -> Bool = { false },
                           report: (SweepEvent) -> Void) throws -> [SweepResult] {
        try definition.validate()
        let dataset = try TokenDataset(directory: definition.data)
        let fm = FileManager.default
        let definitionURL = definitionURL(directory)
        if let data = fm.contents(atPath: definitionURL.path) {
            let existing = try? JSONDecoder().decode(SweepDefinition.self, from: data)
            if existing != definition && !force {
                throw BitNetError.occupied("\(directory.path) holds a different sweep (\(definitionURL.lastPathComponent) differs)")
            }
        }
        // Every run's config (and the second corpus) is checked before any training starts.
        let plan = try configs(definition, dataset: dataset)
        let text = try textTokens(definition, dataset: dataset, context: plan.map(\.2.model.context).max() ?? 0)
        let names = plan.map { SweepDefinition.runName(size: $0.0, mode: $0.1) }
        var results = try loadResults(directory).filter { names.contains($0.run) }
        try fm.createDirectory(at: directory.appendingPathComponent("runs"), withIntermediateDirectories: true)
        try AtomicFile.writeJSON(definition, to: definitionURL)
        let queue = ConcurrentRuns(jobs: jobs)
        func runDirectory(_ name: String) -> URL { directory.appendingPathComponent("runs").appendingPathComponent(name) }
        // A run is finished when its directory holds the planned config and it has a result.
        func configUnchanged(_ i: Int) -> Bool { (try? RunDirectory(runDirectory(names[i])).readConfig()) == plan[i].2 }
        func isFinished(_ i: Int, configUnchanged: Bool) -> Bool { configUnchanged && results.contains { $0.run == names[i] } }
        var pace = SweepPace(left: plan.indices.filter { !isFinished($0, configUnchanged: configUnchanged($0)) }
            .map { cost(plan[$0].2) }.reduce(0, +))
        // Several at once: the longest runs first, so that the last to finish is a short one.
        let order = jobs == 1 ? Array(plan.indices) : plan.indices.sorted { cost(plan[$0].2) > cost(plan[$1].2) }
        try queue.forEach(order.count) { k in
            let index = order[k]
            let (size, mode, config) = plan[index], name = names[index]
            let runDirectory = runDirectory(name)
            let unchanged = configUnchanged(index)
            let skipped = queue.serialized { () -> Bool in
                if isFinished(index, configUnchanged: unchanged) {
                    report(.skipped(run: name))
                    return true
                }
                results.removeAll { $0.run == name }
                report(.starting(run: name, index: index, total: plan.count, config: config, resuming: unchanged))
                return false
            }
            if skipped { return }
            let trainer = try Trainer(runDirectory: runDirectory, config: config, dataset: dataset,
                                      resume: unchanged, force: !unchanged)
            let firstStep = trainer.state.step
            trainer.shouldStop = { shouldStop() || queue.failed }
            try trainer.run { event in queue.serialized { report(.training(run: name, event)) } }
            if trainer.state.step < config.training.steps {  // stopped
                queue.stop()
                return
            }
            let result = try summarize(trainer: trainer, name: name, size: size, mode: mode, text: text)
            try queue.serialized {
                results.append(result)
                results.sort { (names.firstIndex(of: $0.run) ?? 0) < (names.firstIndex(of: $1.run) ?? 0) }
                try saveResults(results, directory: directory)
                pace.finished(flops: cost(config), fraction: Double(trainer.state.step - firstStep) / Double(config.training.steps))
                report(.finished(result, secondsLeft: pace.secondsLeft()))
            }
        }
        return results
    }

    /// A run's training compute, to order concurrent runs.
    static func cost(_ config: RunConfig) -> Double {
        config.model.trainingFlopsPerToken * Double(config.training.steps * config.training.batchSize * config.model.context)
    }

    /// Every (size, mode)'s run config, checked against the data.
    static func configs(_ definition: SweepDefinition, dataset: TokenDataset) throws -> [(SweepSize, WeightMode, RunConfig)] {
        var plan: [(SweepSize, WeightMode, RunConfig)] = []
        for size in definition.sizes {
            for mode in definition.modes {
                let config = try definition.runConfig(size: size, mode: mode, vocabSize: dataset.meta.vocabSize)
                try dataset.check(context: config.model.context)
                plan.append((size, mode, config))
            }
        }
        return plan
    }

    /// One run's compute, as planned before a sweep starts.
    public struct PlannedRun: Sendable {
        public let run: String
        public let config: RunConfig
        /// Tokens the budget gives it.
        public let tokens: Int
        /// Measured on this machine: the median of a few of the run's own training steps.
        public let tokensPerSecond: Double
        public var hours: Double { Double(tokens) / tokensPerSecond / 3600 }
    }

    /// The compute each run of a sweep would take here, from `steps` timed training steps
    /// of its own config on the data's batches (nothing is written).
    public static func plan(definition: SweepDefinition, steps: Int = 3,
                            report: (PlannedRun) throws -> Void = { _ in }) throws -> [PlannedRun] {
        try definition.validate()
        let dataset = try TokenDataset(directory: definition.data)
        return try configs(definition, dataset: dataset).map { size, mode, config in
            let t = config.training
            let timed = try Benchmark.training(config: config, steps: steps, warmup: 1, source: .dataset(dataset))
            let run = PlannedRun(run: SweepDefinition.runName(size: size, mode: mode), config: config,
                                 tokens: t.steps * t.batchSize * config.model.context, tokensPerSecond: timed.tokensPerSecond)
            try report(run)
            return run
        }
    }

    /// The second corpus as token ids of the data's tokenizer, long enough for a window of
    /// every run's context.
    static func textTokens(_ definition: SweepDefinition, dataset: TokenDataset, context: Int) throws -> [Int32]? {
        guard let path = definition.text else { return nil }
        let ids = try Tokenizer(path: dataset.tokenizerPath).encode(try Corpus.readText(path))
        guard ids.count > context else {
            throw BitNetError.invalid("--text \(path): \(ids.count) tokens is smaller than one context window (\(context) + 1)")
        }
        return ids
    }

    static func summarize(trainer: Trainer, name: String, size: SweepSize, mode: WeightMode,
                          text: [Int32]?) throws -> SweepResult {
        let config = trainer.config.model
        let metrics = trainer.directory.readMetrics()
        let tokensPerStep = Double(trainer.config.training.batchSize * config.context)
        let curve = metrics.compactMap { m -> [Double]? in
            guard let step = m["step"] as? Int, let loss = m["loss"] as? Double else { return nil }
            return [Double(step) * tokensPerStep, loss]
        }
        let tokens = trainer.state.tokensSeen
        let positions = PositionLoss.measure(model: trainer.model, dataset: trainer.dataset,
                                             batch: trainer.config.training.microBatchSize)
        return SweepResult(
            run: name, size: size.name, mode: mode, parameters: config.totalParameters,
            nonEmbeddingParameters: config.nonEmbeddingParameters, tokens: tokens,
            trainingFlops: config.trainingFlopsPerToken * Double(tokens), wallSeconds: trainer.state.elapsedSeconds,
            finalTrainLoss: curve.last?[1] ?? .nan, finalValLoss: Double(try trainer.validationLoss()),
            textLoss: text.map { Double(Evaluation.loss(model: trainer.model, tokens: $0, batch: trainer.config.training.microBatchSize)) }
                .flatMap { $0.isFinite ? $0 : nil },
            curve: curve, lossByPosition: positions.losses, positionWindows: positions.windows)
    }

    /// The finished runs' results, none before the first. A file that cannot be read is an
    /// error, not an empty sweep: `sweep` would train its runs again and write over it.
    public static func loadResults(_ directory: URL) throws -> [SweepResult] {
        let url = resultsURL(directory)
        guard let data = FileManager.default.contents(atPath: url.path) else { return [] }
        guard let results = try? JSONDecoder().decode([SweepResult].self, from: data) else {
            throw BitNetError.file("\(url.path): not a sweep's results (a list of runs with their losses); an lr-sweep's, or damaged?")
        }
        return results
    }

    static func saveResults(_ results: [SweepResult], directory: URL) throws {
        try AtomicFile.writeJSON(results, to: resultsURL(directory))
        let csv = ([SweepResult.csvHeader] + results.map(\.csvRow)).joined(separator: "\n") + "\n"
        try AtomicFile.write(Data(csv.utf8), to: directory.appendingPathComponent("results.csv"))
    }
}
