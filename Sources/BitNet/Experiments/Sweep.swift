// Scaling-law sweeps (the BitNet paper's section 3 as one command): every (size, mode)
// trained into its own run directory under the sweep directory, one after another;
// finished runs are skipped, an interrupted one resumes from its checkpoint.
import Foundation

/// How many tokens each run trains on.
public enum SweepBudget: Codable, Sendable, Equatable, CustomStringConvertible {
    case tokens(Int)
    /// Tokens = ratio x non-embedding parameters (Chinchilla-style budgets).
    case tokensPerParameter(Double)
    /// Tokens = FLOPs / training FLOPs per token.
    case flops(Double)

    public func tokens(for config: ModelConfig) -> Int {
        switch self {
        case .tokens(let n): n
        case .tokensPerParameter(let r): Int((r * Double(config.nonEmbeddingParameters)).rounded())
        case .flops(let f): Int((f / config.trainingFlopsPerToken).rounded())
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
            throw BitNetError.invalid("unknown size '\(name)': give a preset (\(Preset.all.map(\.name).joined(separator: ", "))) "
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

    public init(data: String, sizes: [SweepSize], modes: [WeightMode], budget: SweepBudget, basePreset: String,
                context: Int?, batchSize: Int?, microBatchSize: Int?, seed: UInt64, evalWindows: Int) {
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
        let sized = try RunConfig(preset: size.name, model: m, training: t).overriding(overrides)
        // The budget sets the steps; logging, evaluation and checkpoints scale with them.
        let tokensPerStep = sized.training.batchSize * sized.model.context
        let tokens = budget.tokens(for: sized.model)
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
    /// (tokens seen, training loss) at each logged step, for the training-curve plot.
    public var curve: [[Double]]

    enum CodingKeys: String, CodingKey {
        case run, size, mode, parameters, nonEmbeddingParameters = "non_embedding_parameters", tokens
        case trainingFlops = "training_flops", wallSeconds = "wall_seconds", finalTrainLoss = "final_train_loss"
        case finalValLoss = "final_val_loss", curve
    }

    public static let csvHeader =
        "run,size,mode,parameters,non_embedding_parameters,tokens,training_flops,wall_seconds,final_train_loss,final_val_loss"

    public var csvRow: String {
        [run, size, mode.rawValue, String(parameters), String(nonEmbeddingParameters), String(tokens),
         String(format: "%.6g", trainingFlops), String(format: "%.1f", wallSeconds),
         String(format: "%.5f", finalTrainLoss), String(format: "%.5f", finalValLoss)].joined(separator: ",")
    }
}

public enum SweepEvent: Sendable {
    case starting(run: String, index: Int, total: Int, config: RunConfig, resuming: Bool)
    case skipped(run: String)
    case training(run: String, TrainingEvent)
    case finished(SweepResult)
}

public enum Sweep {
    public static func definitionURL(_ directory: URL) -> URL { directory.appendingPathComponent("sweep.json") }
    public static func resultsURL(_ directory: URL) -> URL { directory.appendingPathComponent("results.json") }

    /// Runs (or continues) a sweep. A directory holding a different sweep is refused
    /// unless `force`; then runs whose config changed are started over, the others kept.
    public static func run(definition: SweepDefinition, directory: URL, force: Bool,
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
        // Every run's config is checked before any training starts.
        var plan: [(SweepSize, WeightMode, RunConfig)] = []
        for size in definition.sizes {
            for mode in definition.modes {
                let config = try definition.runConfig(size: size, mode: mode, vocabSize: dataset.meta.vocabSize)
                try dataset.check(context: config.model.context)
                plan.append((size, mode, config))
            }
        }
        try fm.createDirectory(at: directory.appendingPathComponent("runs"), withIntermediateDirectories: true)
        try AtomicFile.writeJSON(definition, to: definitionURL)

        var results = loadResults(directory).filter { r in plan.contains { SweepDefinition.runName(size: $0.0, mode: $0.1) == r.run } }
        for (index, (size, mode, config)) in plan.enumerated() {
            let name = SweepDefinition.runName(size: size, mode: mode)
            let runDirectory = directory.appendingPathComponent("runs").appendingPathComponent(name)
            let savedConfig = try? RunDirectory(runDirectory).readConfig()
            let unchanged = savedConfig == config
            if unchanged, results.contains(where: { $0.run == name }) {
                report(.skipped(run: name))
                continue
            }
            results.removeAll { $0.run == name }
            report(.starting(run: name, index: index, total: plan.count, config: config, resuming: unchanged))
            let trainer = try Trainer(runDirectory: runDirectory, config: config, dataset: dataset,
                                      resume: unchanged, force: !unchanged)
            trainer.shouldStop = shouldStop
            try trainer.run { report(.training(run: name, $0)) }
            if trainer.state.step < config.training.steps { return results }  // stopped
            let result = try summarize(trainer: trainer, name: name, size: size, mode: mode)
            results.append(result)
            try saveResults(results, directory: directory)
            report(.finished(result))
        }
        return results
    }

    static func summarize(trainer: Trainer, name: String, size: SweepSize, mode: WeightMode) throws -> SweepResult {
        let config = trainer.config.model
        let metrics = trainer.directory.readMetrics()
        let tokensPerStep = Double(trainer.config.training.batchSize * config.context)
        let curve = metrics.compactMap { m -> [Double]? in
            guard let step = m["step"] as? Int, let loss = m["loss"] as? Double else { return nil }
            return [Double(step) * tokensPerStep, loss]
        }
        let tokens = trainer.state.tokensSeen
        return SweepResult(
            run: name, size: size.name, mode: mode, parameters: config.totalParameters,
            nonEmbeddingParameters: config.nonEmbeddingParameters, tokens: tokens,
            trainingFlops: config.trainingFlopsPerToken * Double(tokens), wallSeconds: trainer.state.elapsedSeconds,
            finalTrainLoss: curve.last?[1] ?? .nan, finalValLoss: Double(trainer.validationLoss()), curve: curve)
    }

    public static func loadResults(_ directory: URL) -> [SweepResult] {
        guard let data = FileManager.default.contents(atPath: resultsURL(directory).path) else { return [] }
        return (try? JSONDecoder().decode([SweepResult].self, from: data)) ?? []
    }

    static func saveResults(_ results: [SweepResult], directory: URL) throws {
        try AtomicFile.writeJSON(results, to: resultsURL(directory))
        let csv = ([SweepResult.csvHeader] + results.map(\.csvRow)).joined(separator: "\n") + "\n"
        try AtomicFile.write(Data(csv.utf8), to: directory.appendingPathComponent("results.csv"))
    }
}
