// What a sweep's laws say beyond the sweep: of a size it did not train (`report
// --predict SIZE`, on the sweep's own recipe and budget rule), and of a run trained
// outside it (`report --predict-run RUN`, measured as the sweep measured its own runs).
// A larger run checked against the small ones: the paper's claim tested out of sample.
import Foundation

public struct SweepExtrapolation: Sendable {
    /// One mode's predictions (nil where the mode has no law: fewer than 3 sizes).
    public struct Row: Sendable {
        public let mode: WeightMode
        public let nonEmbeddingParameters: Int
        public let trainingFlops: Double
        public let againstParameters: Double?
        public let againstCompute: Double?
        /// The laws of the loss with short and long context, when the runs were measured by position.
        public let shortContext: Double?
        public let longContext: Double?
    }

    public let size: String
    /// Tokens the sweep's budget gives the size, and the context it would train with.
    public let tokens: Int
    public let context: Int
    /// The largest size the laws were fitted on (its non-embedding parameters, fp's).
    public let largestFitted: (size: String, nonEmbeddingParameters: Int)
    /// The context of the runs' windows (the laws hold for windows of this length) and
    /// the positions the short- and long-context laws cover, when measured.
    public let sweepContext: Int?
    public let positionParts: (short: ClosedRange<Int>, long: ClosedRange<Int>)?
    public let rows: [Row]

    public func markdown() -> String {
        let n = rows.first?.nonEmbeddingParameters ?? 0
        let ratio = Double(n) / Double(largestFitted.nonEmbeddingParameters)
        var md = "\(size): \(n) non-embedding parameters, "
            + (ratio > 1 ? String(format: "%.1fx the largest size fitted", ratio) : "inside the range fitted")
            + " (\(largestFitted.size), \(largestFitted.nonEmbeddingParameters)); on the sweep's budget \(tokens) tokens"
            + String(format: ", %.3g training FLOPs", rows.first?.trainingFlops ?? 0) + ", context \(context).\n"
        if let sweepContext, sweepContext != context {
            md += "The laws are of the loss on windows of \(sweepContext) tokens: compare with `eval --window \(sweepContext)` or `report --predict-run`.\n"
        }
        let parts = positionParts.map { [" \($0.short.lowerBound)-\($0.short.upperBound) tokens of context |",
                                          " \($0.long.lowerBound)-\($0.long.upperBound) tokens of context |"] } ?? []
        md += "\n| mode | against parameters | against training FLOPs |" + parts.joined() + "\n|---|---|---|"
            + String(repeating: "---|", count: parts.count) + "\n"
        func cell(_ v: Double?) -> String { v.map { String(format: " %.4f |", $0) } ?? " - |" }
        for r in rows {
            md += "| \(r.mode.rawValue) |" + cell(r.againstParameters) + cell(r.againstCompute)
                + (parts.isEmpty ? "" : cell(r.shortContext) + cell(r.longContext)) + "\n"
        }
        return md
    }
}

extension SweepReport {
    /// Each mode's laws evaluated at `size` as the sweep would have trained it: its
    /// recipe (base preset, overrides, learning-rate rule) and its budget.
    public func extrapolate(to size: SweepSize) throws -> SweepExtrapolation {
        let file = Sweep.definitionURL(directory).path
        guard let definition else {
            throw BitNetError.file(FileManager.default.fileExists(atPath: file)
                ? "\(file): cannot be read as a sweep definition" : "\(file): missing; predicting a size needs the sweep's budget and recipe")
        }
        do { _ = try Preset.named(definition.basePreset) } catch { throw BitNetError.file("\(file): base preset: \(error)") }
        guard let vocabSize = results.lazy.compactMap({ self.runConfig($0) }).first?.vocabSize,
              let largest = rows(.fp).last ?? results.max(by: { $0.nonEmbeddingParameters < $1.nonEmbeddingParameters })
        else { throw BitNetError.invalid("\(directory.path): no finished run to fit") }
        // Every mode of a size trains on the same tokens, with the same context.
        let shape = try definition.runConfig(size: size, mode: .fp, vocabSize: vocabSize)
        let tokens = shape.training.steps * shape.training.batchSize * shape.model.context
        let predicted = try modes.map { mode -> SweepExtrapolation.Row in
            let model = try definition.runConfig(size: size, mode: mode, vocabSize: vocabSize).model
            let n = Double(model.nonEmbeddingParameters), flops = model.trainingFlopsPerToken * Double(tokens)
            return .init(mode: mode, nonEmbeddingParameters: model.nonEmbeddingParameters, trainingFlops: flops,
                         againstParameters: fitAgainstParameters(mode)?.predict(n), againstCompute: fitAgainstCompute(mode)?.predict(flops),
                         shortContext: positionFit(mode, PositionLoss.shortContext)?.predict(n),
                         longContext: positionFit(mode, PositionLoss.longContext)?.predict(n))
        }
        let measuredContext = results.lazy.compactMap(\.lossByPosition).first?.count
        return SweepExtrapolation(size: size.name, tokens: tokens, context: shape.model.context,
                                  largestFitted: (largest.size, largest.nonEmbeddingParameters),
                                  sweepContext: results.lazy.compactMap { self.runConfig($0)?.context }.first,
                                  positionParts: measuredContext.map { (PositionLoss.shortContext($0), PositionLoss.longContext($0)) },
                                  rows: predicted)
    }
}

/// A run trained outside a sweep (larger, longer) set against the sweep's laws: what
/// they predict for its size and compute, and its loss measured as the sweep measured
/// its own runs (the same windows of the same length), so the error is the laws' alone.
public struct RunPrediction: Sendable {
    public struct Law: Sendable {
        public let name: String
        public let predicted: Double
        public let measured: Double
        public var error: Double { (predicted - measured) / measured }
    }

    public let run: String
    public let mode: WeightMode
    public let step: Int
    public let nonEmbeddingParameters: Int
    public let tokens: Int
    public let trainingFlops: Double
    /// The sweep's windows: how many, of how many tokens, from which data directory.
    public let windows: Int
    public let windowLength: Int
    public let data: String
    public let laws: [Law]

    public func markdown() -> String {
        var md = "\(run) (\(mode.rawValue), step \(step)): \(nonEmbeddingParameters) non-embedding parameters, \(tokens) tokens"
            + String(format: ", %.3g training FLOPs; measured on the sweep's %d windows of %d tokens from %@.\n\n",
                     trainingFlops, windows, windowLength, data)
            + "| law | predicted | measured | error |\n|---|---|---|---|\n"
        for law in laws {
            md += "| \(law.name) | " + String(format: "%.4f | %.4f | %+.1f%% |\n", law.predicted, law.measured, 100 * law.error)
        }
        return md + "\nerror = (predicted - measured) / measured: positive where the law expected a higher loss than the run reached.\n"
    }
}

extension SweepReport {
    /// Measures the run at `runDirectory` as the sweep measured its runs and sets each of
    /// its mode's laws beside it: against parameters (for the sweep's budget rule), against
    /// the compute the run actually spent, and, when the sweep was measured by position,
    /// with short and long context (on PositionLoss.windows windows).
    public func predict(runDirectory: URL, data: String? = nil) throws -> RunPrediction {
        let file = Sweep.definitionURL(directory).path
        guard let definition else { throw BitNetError.file("\(file): missing or unreadable; the sweep's data and windows are named there") }
        guard let length = results.lazy.compactMap({ self.runConfig($0)?.context }).first else {
            throw BitNetError.invalid("\(directory.path): no finished run to fit")
        }
        let (model, config, state) = try Checkpoint.loadModel(runDirectory: runDirectory, batch: 8)
        let mode = config.model.mode
        guard let parameterLaw = fitAgainstParameters(mode), let computeLaw = fitAgainstCompute(mode) else {
            throw BitNetError.invalid("\(directory.path): no law for \(mode.rawValue) (it needs 3 sizes in that mode) to set \(runDirectory.path) against")
        }
        guard config.model.context >= length else {
            throw BitNetError.invalid("\(runDirectory.path): a context of \(config.model.context) is shorter than the sweep's windows of \(length)")
        }
        let dataPath = data ?? definition.data
        let dataset = try TokenDataset(directory: dataPath)
        guard dataset.meta.vocabSize == config.model.vocabSize else {
            throw BitNetError.invalid("\(dataPath): vocabulary of \(dataset.meta.vocabSize) does not match \(runDirectory.path)'s \(config.model.vocabSize)")
        }
        try dataset.check(context: length)
        let n = config.model.nonEmbeddingParameters
        let tokens = state.step * config.training.batchSize * config.model.context
        let flops = config.model.trainingFlopsPerToken * Double(tokens)
        let measured = Double(Evaluation.loss(model: model, dataset: dataset, windows: definition.evalWindows, batch: 8, length: length))
        guard measured.isFinite else {
            throw BitNetError.invalid("\(runDirectory.relativePath): no finite loss on \(dataPath)'s validation windows "
                                      + "(\(file) asks for \(definition.evalWindows) of \(length) tokens)")
        }
        var laws = [RunPrediction.Law(name: "against non-embedding parameters", predicted: parameterLaw.predict(Double(n)), measured: measured),
                    .init(name: "against training FLOPs", predicted: computeLaw.predict(flops), measured: measured)]
        if results.contains(where: { $0.lossByPosition != nil }) {
            let positions = Evaluation.lossByPosition(model: model, dataset: dataset, windows: PositionLoss.windows, batch: 8, length: length)
            for (name, part) in [("short", PositionLoss.shortContext), ("long", PositionLoss.longContext)] {
                let range = part(length)
                guard let fit = positionFit(mode, part), let loss = PositionLoss.mean(positions, range) else { continue }
                laws.append(.init(name: "\(range.lowerBound)-\(range.upperBound) tokens of context (\(name), \(PositionLoss.windows) windows)",
                                  predicted: fit.predict(Double(n)), measured: loss))
            }
        }
        return RunPrediction(run: runDirectory.relativePath, mode: mode, step: state.step, nonEmbeddingParameters: n, tokens: tokens,
                             trainingFlops: flops, windows: dataset.validationWindows(context: length, limit: definition.evalWindows),
                             windowLength: length, data: dataPath, laws: laws)
    }
}
