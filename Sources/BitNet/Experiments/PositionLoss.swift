// A sweep's loss by position in the window: how much each model gains from the tokens
// before a prediction. A power law in size can hold for predictions with little context
// and break for those with much (when a model learns to copy from its context, the
// "induction heads" of Olsson et al. 2022), so the report fits the two apart.
import Foundation

public enum PositionLoss {
    /// Windows spread over the validation split: many more than a sweep's final loss
    /// needs, because a bucket of 8 positions holds only 8 tokens per window.
    public static let windows = 4096

    /// A run's final loss at each position, and the windows it was measured on.
    static func measure(model: Transformer, dataset: TokenDataset, batch: Int) -> (losses: [Double]?, windows: Int?) {
        let losses = Evaluation.lossByPosition(model: model, dataset: dataset, windows: windows, batch: batch)
        guard !losses.isEmpty, losses.allSatisfy(\.isFinite) else { return (nil, nil) }
        return (losses, dataset.validationWindows(context: model.config.context, limit: windows))
    }

    /// The positions (1-based: tokens of context a prediction had) of the two parts the
    /// report compares: short, (context/16, context/8] (9-16 at 128), and long, the
    /// window's second half.
    public static func shortContext(_ context: Int) -> ClosedRange<Int> { (context / 16 + 1)...max(context / 8, 1) }
    public static func longContext(_ context: Int) -> ClosedRange<Int> { (context / 2 + 1)...context }

    static func mean(_ losses: [Double], _ positions: ClosedRange<Int>) -> Double? {
        guard positions.lowerBound >= 1, positions.upperBound <= losses.count else { return nil }
        let slice = losses[(positions.lowerBound - 1)..<positions.upperBound]
        return slice.reduce(0, +) / Double(slice.count)
    }

    /// Measures every finished run of the sweep in `directory` that has no loss by position
    /// yet, from its final checkpoint, on the sweep's data, and saves the results. Returns
    /// the runs measured; a run without its checkpoint (a sweep restored from docs/) is
    /// passed to `skipped` and left as it is.
    @discardableResult
    public static func fill(directory: URL, skipped: (String) -> Void = { _ in },
                            measured: (SweepResult) -> Void = { _ in }) throws -> Int {
        let report = try SweepReport(directory: directory)
        guard let definition = report.definition else {
            throw BitNetError.file("\(Sweep.definitionURL(directory).path): missing; the sweep's data directory is named there")
        }
        let dataset = try TokenDataset(directory: definition.data)
        var results = report.results, count = 0
        for i in results.indices where results[i].lossByPosition == nil {
            let run = directory.appendingPathComponent("runs").appendingPathComponent(results[i].run)
            guard FileManager.default.fileExists(atPath: Checkpoint.url(in: run).path) else {
                skipped(results[i].run)
                continue
            }
            let (model, config, _) = try Checkpoint.loadModel(runDirectory: run, batch: 8)
            guard config.model.vocabSize == dataset.meta.vocabSize else {
                throw BitNetError.invalid("\(run.path): vocabulary of \(config.model.vocabSize) does not match \(definition.data)'s \(dataset.meta.vocabSize)")
            }
            try dataset.check(context: config.model.context)
            (results[i].lossByPosition, results[i].positionWindows) = measure(model: model, dataset: dataset, batch: 8)
            // Saved after each run: an interrupted fill keeps what it measured.
            try Sweep.saveResults(results, directory: directory)
            measured(results[i])
            count += 1
        }
        return count
    }
}

extension SweepResult {
    /// Mean loss over positions `part(context)` of the window, when measured.
    func positionLoss(_ part: (Int) -> ClosedRange<Int>) -> Double? {
        lossByPosition.flatMap { PositionLoss.mean($0, part($0.count)) }
    }
}

extension SweepReport {
    /// The runs' loss on short and long contexts: fits against parameters, the gap per
    /// size and the prediction of the largest size, for each part; a plot of each.
    func positionSection() -> String {
        let measured = results.filter { $0.lossByPosition != nil }
        guard let context = measured.first?.lossByPosition?.count else { return "" }
        let short = PositionLoss.shortContext(context), long = PositionLoss.longContext(context)
        let windows = Set(measured.compactMap(\.positionWindows)).sorted().map(String.init).joined(separator: ", ")
        var md = "\n## Loss by position in the window\n\n"
            + "Each finished run's final checkpoint on \(windows) windows spread over the validation split (more than the "
            + "final loss's: a bucket of a few positions holds a few tokens per window); \(measured.count) of "
            + "\(results.count) runs measured. Columns: the mean loss of predictions made with that many tokens of "
            + "context. A law can hold with little context and break with much, when a model learns to use what came "
            + "before (for example to copy from it), so the fits below take the two apart: short context "
            + "\(short.lowerBound)-\(short.upperBound) tokens, long \(long.lowerBound)-\(long.upperBound).\n\n"
        let buckets = Evaluation.doublingBuckets([Double](repeating: 0, count: context)).map(\.context)
        md += "| run | all positions |" + buckets.map { " \($0.count == 1 ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)") |" }.joined()
            + "\n|---|---|" + String(repeating: "---|", count: buckets.count) + "\n"
        for r in measured.sorted(by: { ($0.mode.rawValue, $0.nonEmbeddingParameters) < ($1.mode.rawValue, $1.nonEmbeddingParameters) }) {
            guard let losses = r.lossByPosition, losses.count == context else { continue }
            md += "| \(r.run) |" + String(format: " %.4f |", losses.reduce(0, +) / Double(context))
                + Evaluation.doublingBuckets(losses).map { String(format: " %.4f |", $0.loss) }.joined() + "\n"
        }
        // The whole window first: the sweep's law again, on many more windows than its final loss.
        let parts: [(name: String, part: (Int) -> ClosedRange<Int>)] = [("every position", { 1...$0 }),
                                                                       ("short", PositionLoss.shortContext),
                                                                       ("long", PositionLoss.longContext)]
        for (name, part) in parts {
            let range = part(context), whole = range.count == context
            md += "\n### " + (whole ? "Every position (the whole window, on \(windows) windows)" : "\(name.capitalized) context (\(range.lowerBound)-\(range.upperBound) tokens)") + "\n\n"
                + "| mode | a | alpha against non-embedding parameters | c | R^2 | sizes | largest predicted by the others | measured | error |\n"
                + "|---|---|---|---|---|---|---|---|---|\n"
            for mode in modes {
                let r = rows(mode).filter { $0.positionLoss(part) != nil }
                let x = r.map { Double($0.nonEmbeddingParameters) }, y = r.compactMap { $0.positionLoss(part) }
                guard let fit = positionFit(mode, part) else {
                    md += "| \(mode.rawValue) | too few sizes (\(r.count)) | | | | | | | |\n"
                    continue
                }
                md += "| \(mode.rawValue) | " + String(format: "%.4g | %.4f | %.4f | %.4f | %d |", fit.a, fit.alpha, fit.c, fit.rSquared, fit.points)
                if r.count >= 4, let held = y.last, let heldX = x.last,
                   let without = PowerLawFit.fit(x: Array(x.dropLast()), y: Array(y.dropLast())) {
                    let predicted = without.predict(heldX)
                    md += String(format: " %.4f | %.4f | %+.4f (%+.1f%%) |\n", predicted, held, predicted - held,
                                 100 * (predicted - held) / held)
                } else {
                    md += " | | |\n"
                }
            }
            md += gapTable("Gap to full precision, " + (whole ? name : "\(name) context"), heading: "####", loss: { $0.positionLoss(part) })
            if !whole { md += "\n![\(name)-context loss against parameters](loss_vs_params_\(name)_context.svg)\n" }
        }
        return md
    }

    /// A mode's law against non-embedding parameters for one part of the window, over
    /// the runs measured by position.
    func positionFit(_ mode: WeightMode, _ part: (Int) -> ClosedRange<Int>) -> PowerLawFit? {
        let r = rows(mode).filter { $0.positionLoss(part) != nil }
        return PowerLawFit.fit(x: r.map { Double($0.nonEmbeddingParameters) }, y: r.compactMap { $0.positionLoss(part) })
    }

    /// The two parts' plots (file name, SVG), or none when no run was measured.
    func positionPlots() -> [(String, String)] {
        guard let context = results.lazy.compactMap(\.lossByPosition).first?.count else { return [] }
        return [("short", PositionLoss.shortContext), ("long", PositionLoss.longContext)].map { name, part in
            let range = part(context)
            let y: (SweepResult) -> Double = { $0.positionLoss(part) ?? .nan }
            return ("loss_vs_params_\(name)_context.svg",
                    scatterWithFits(title: "Loss with \(range.lowerBound)-\(range.upperBound) tokens of context against model size",
                                    xLabel: "non-embedding parameters", x: { Double($0.nonEmbeddingParameters) },
                                    y: y, yLabel: "validation loss (nats/token)") { positionFit($0, part) })
        }
    }
}
