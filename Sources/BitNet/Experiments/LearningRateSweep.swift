// The BitNet paper's stability test: one size trained at a grid of peak learning rates
// per mode; a run diverged when its loss became NaN/inf or ended above where it started.
import Foundation

public struct LearningRateResult: Codable, Sendable, Equatable {
    public var mode: WeightMode
    public var learningRate: Float
    public var initialValLoss: Double
    /// NaN when the run diverged to a non-finite loss.
    public var finalValLoss: Double
    public var diverged: Bool
    public var note: String

    enum CodingKeys: String, CodingKey {
        case mode, learningRate = "learning_rate", initialValLoss = "initial_val_loss"
        case finalValLoss = "final_val_loss", diverged, note
    }

    // NaN is not valid JSON: stored as null.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(mode, forKey: .mode)
        try c.encode(learningRate, forKey: .learningRate)
        try c.encode(initialValLoss, forKey: .initialValLoss)
        try c.encode(finalValLoss.isFinite ? finalValLoss : nil, forKey: .finalValLoss)
        try c.encode(diverged, forKey: .diverged)
        try c.encode(note, forKey: .note)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        mode = try c.decode(WeightMode.self, forKey: .mode)
        learningRate = try c.decode(Float.self, forKey: .learningRate)
        initialValLoss = try c.decode(Double.self, forKey: .initialValLoss)
        finalValLoss = try c.decodeIfPresent(Double.self, forKey: .finalValLoss) ?? .nan
        diverged = try c.decode(Bool.self, forKey: .diverged)
        note = try c.decode(String.self, forKey: .note)
    }

    public init(mode: WeightMode, learningRate: Float, initialValLoss: Double, finalValLoss: Double, diverged: Bool, note: String) {
        self.mode = mode
        self.learningRate = learningRate
        self.initialValLoss = initialValLoss
        self.finalValLoss = finalValLoss
        self.diverged = diverged
        self.note = note
    }
}

public enum LearningRateSweep {
    /// Trains `base` once per (mode, learning rate) under DIR/runs, `jobs` at a time
    /// (`training` sees each run's events, by run name), then writes results.json, lr_sweep.svg and report.md into `directory`. Stopped
    /// (`shouldStop`), the runs in progress checkpoint and nothing is written: the
    /// results so far are returned, and the same call continues.
    public static func run(base: RunConfig, modes: [WeightMode], learningRates: [Float], dataset: TokenDataset,
                           directory: URL, force: Bool, jobs: Int = 1, shouldStop: @escaping () -> Bool = { false },
                           training: (String, TrainingEvent) -> Void = { _, _ in },
                           report: (String) -> Void) throws -> [LearningRateResult] {
        guard !modes.isEmpty else { throw BitNetError.invalid("the list of modes is empty") }
        guard !learningRates.isEmpty else { throw BitNetError.invalid("the list of learning rates is empty") }
        let grid = modes.flatMap { mode in learningRates.map { (mode, $0) } }
        var results: [(Int, LearningRateResult)] = []
        let queue = ConcurrentRuns(jobs: jobs)
        let configs = try grid.map { mode, lr in try base.overriding([("mode", mode.rawValue), ("learning_rate", "\(lr)")]) }
        func runDirectory(_ index: Int) -> URL {
            directory.appendingPathComponent("runs").appendingPathComponent("\(grid[index].0.rawValue)-lr\(grid[index].1)")
        }
        var pace = SweepPace(left: grid.indices.filter { force || finishedResult(runDirectory($0), config: configs[$0]) == nil }
            .map { Sweep.cost(configs[$0]) }.reduce(0, +))
        try queue.forEach(grid.count) { index in
            let (mode, lr) = grid[index]
            let config = configs[index]
            let name = "\(mode.rawValue)-lr\(lr)"
            let runDirectory = runDirectory(index)
            // A run finished before keeps its result beside its config, so it is not trained
            // (or even read) again: that holds when its checkpoints are gone too.
            if !force, let kept = finishedResult(runDirectory, config: config) {
                queue.serialized {
                    report(String(format: "%@: finished before, final val loss %.4f", name, kept.finalValLoss))
                    results.append((index, kept))
                }
                return
            }
            queue.serialized { report("\(name): training \(config.training.steps) steps") }
            let trainer = try Trainer(runDirectory: runDirectory, config: config, dataset: dataset, resume: !force,
                                      force: force)
            let firstStep = trainer.state.step
            trainer.shouldStop = { shouldStop() || queue.failed }
            // The starting loss, from a fresh model with the run's seed (a re-run resumes
            // finished runs, whose weights are trained).
            let fresh = try TrainingSession(config: config).model
            let initial = Double(Evaluation.loss(model: fresh, dataset: dataset, windows: config.training.evalWindows,
                                                 batch: config.training.microBatchSize))
            var result = LearningRateResult(mode: mode, learningRate: lr, initialValLoss: initial, finalValLoss: .nan,
                                            diverged: false, note: "")
            do {
                try trainer.run { event in queue.serialized { training(name, event) } }
                if trainer.state.step < config.training.steps {  // stopped
                    queue.stop()
                    return
                }
                result.finalValLoss = Double(try trainer.validationLoss())
                if !result.finalValLoss.isFinite || result.finalValLoss > initial {
                    result.diverged = true
                    result.note = "final loss above the initial loss"
                }
            } catch BitNetError.diverged(let reason) {
                result.diverged = true
                result.note = reason
            }
            try AtomicFile.writeJSON(result, to: resultURL(runDirectory))
            queue.serialized {
                results.append((index, result))
                pace.finished(flops: Sweep.cost(config), fraction: Double(trainer.state.step - firstStep) / Double(config.training.steps))
                report(String(format: "%@: final val loss %.4f%@ ", name, result.finalValLoss, result.diverged ? " (diverged)" : "")
                       + SweepPace.describe(finished: results.count, of: grid.count, secondsLeft: pace.secondsLeft()))
            }
        }
        let ordered = results.sorted { $0.0 < $1.0 }.map(\.1)
        guard ordered.count == grid.count else { return ordered }
        try AtomicFile.writeJSON(ordered, to: directory.appendingPathComponent("results.json"))
        try AtomicFile.write(Data(plot(ordered).utf8), to: directory.appendingPathComponent("lr_sweep.svg"))
        try AtomicFile.write(Data(markdown(ordered, base: base).utf8), to: directory.appendingPathComponent("report.md"))
        return ordered
    }

    /// Where a finished run keeps its result.
    static func resultURL(_ runDirectory: URL) -> URL { runDirectory.appendingPathComponent("lr_result.json") }

    /// The result a run left when it finished, if its config is still `config`.
    static func finishedResult(_ runDirectory: URL, config: RunConfig) -> LearningRateResult? {
        guard (try? RunDirectory(runDirectory).readConfig()) == config,
              let data = FileManager.default.contents(atPath: resultURL(runDirectory).path) else { return nil }
        return try? JSONDecoder().decode(LearningRateResult.self, from: data)
    }

    public static func plot(_ results: [LearningRateResult]) -> String {
        var chart = SVGChart(title: "Final validation loss against peak learning rate", xLabel: "peak learning rate",
                             yLabel: "final validation loss (x: diverged)", logX: true)
        let ceiling = results.map(\.initialValLoss).max() ?? 1
        for (index, mode) in WeightMode.allCases.enumerated() {
            let rows = results.filter { $0.mode == mode }.sorted { $0.learningRate < $1.learningRate }
            guard !rows.isEmpty else { continue }
            let finite = rows.filter { !$0.diverged }.map { (x: Double($0.learningRate), y: $0.finalValLoss) }
            // Diverged runs are drawn as crosses in a band above the starting loss, one row per mode.
            let top = ceiling * (1.04 + 0.03 * Double(index))
            let crosses = rows.filter(\.diverged).map {
                (x: Double($0.learningRate), y: $0.finalValLoss.isFinite ? min($0.finalValLoss, top) : top)
            }
            chart.series.append(.init(name: mode.rawValue, points: finite, color: SweepReport.modeColors[mode] ?? "#333",
                                      line: true, markers: true, crosses: crosses))
        }
        return chart.render()
    }

    static func markdown(_ results: [LearningRateResult], base: RunConfig) -> String {
        var md = "# Learning-rate stability\n\nSize: dim \(base.model.dim), \(base.model.layers) layers, "
            + "\(base.training.steps) steps of \(base.training.batchSize) x \(base.model.context) tokens.\n\n"
            + "| mode | peak lr | initial val loss | final val loss | diverged |\n|---|---|---|---|---|\n"
        for r in results {
            md += "| \(r.mode.rawValue) | \(r.learningRate) | " + String(format: "%.4f | %.4f | ", r.initialValLoss, r.finalValLoss)
                + (r.diverged ? "yes: \(r.note)" : "no") + " |\n"
        }
        return md + "\n![final loss against learning rate](lr_sweep.svg)\n"
    }
}
