// Loss curves of one or more runs from their metrics.jsonl (`bitnet-train plot`): the
// logged training loss and the validation loss against steps, tokens or hours, on one
// chart, so runs of different modes or sizes can be compared as they train.
import Foundation

public enum TrainingCurves {
    public enum Axis: String, CaseIterable, Sendable {
        case step, tokens, hours

        var label: String {
            switch self {
            case .step: "optimizer step"
            case .tokens: "training tokens"
            case .hours: "training hours (wall time)"
            }
        }
    }

    /// One run's points: (x, training loss) at every logged step, (x, validation loss)
    /// where it was evaluated.
    public struct Curve {
        public var name: String
        public var train: [(x: Double, y: Double)]
        public var validation: [(x: Double, y: Double)]
        /// The last logged step, and the steps of the validation points.
        public var lastStep = 0
        public var validationSteps: [Int] = []

        /// (step, loss) of the lowest validation loss.
        public var bestValidation: (step: Int, loss: Double)? {
            zip(validationSteps, validation).min { $0.1.y < $1.1.y }.map { ($0.0, $0.1.y) }
        }
    }

    /// Reads a run directory's config and metrics. Steps before `fromStep` are left out.
    public static func read(run: URL, axis: Axis, fromStep: Int = 0) throws -> Curve {
        let directory = RunDirectory(run)
        guard let data = FileManager.default.contents(atPath: directory.configURL.path) else {
            throw BitNetError.file("\(run.path): no config.json; not a run directory")
        }
        guard let config = try? JSONDecoder().decode(RunConfig.self, from: data) else {
            throw BitNetError.file("\(directory.configURL.path): not a run's config")
        }
        let tokensPerStep = Double(config.training.batchSize * config.model.context)
        var curve = Curve(name: run.lastPathComponent, train: [], validation: [])
        for line in directory.readMetrics() {
            guard let step = line["step"] as? Int, step >= fromStep else { continue }
            let x: Double
            switch axis {
            case .step: x = Double(step)
            case .tokens: x = Double(step) * tokensPerStep
            case .hours:
                guard let seconds = (line["elapsed_seconds"] as? NSNumber)?.doubleValue else { continue }
                x = seconds / 3600
            }
            curve.lastStep = max(curve.lastStep, step)
            // JSON null (a non-finite loss) arrives as NSNull and is skipped.
            if let loss = (line["loss"] as? NSNumber)?.doubleValue { curve.train.append((x, loss)) }
            if let loss = (line["val_loss"] as? NSNumber)?.doubleValue {
                curve.validation.append((x, loss))
                curve.validationSteps.append(step)
            }
        }
        guard !curve.train.isEmpty || !curve.validation.isEmpty else {
            throw BitNetError.file("\(directory.metricsURL.path): no logged steps\(fromStep > 0 ? " from step \(fromStep)" : "")")
        }
        return curve
    }

    /// Legend names for run paths: the fewest trailing path components that tell them
    /// apart (`runs/a/fp` and `runs/b/fp` become `a/fp` and `b/fp`; distinct last
    /// components stand alone).
    public static func shortNames(_ paths: [String]) -> [String] {
        let parts = paths.map { $0.split(separator: "/").map(String.init) }
        let longest = parts.map(\.count).max() ?? 0
        for keep in 1..<max(longest, 1) {
            let names = parts.map { $0.suffix(keep).joined(separator: "/") }
            if Set(names).count == names.count { return names }
        }
        return paths
    }

    /// The chart: per run, its validation loss as a line with markers and (unless
    /// `validationOnly`) its training loss as a dashed line of the same colour.
    public static func chart(_ curves: [Curve], axis: Axis, validationOnly: Bool = false, logX: Bool = false,
                             logY: Bool = false, title: String? = nil) -> SVGChart {
        var chart = SVGChart(title: title ?? (validationOnly ? "Validation loss" : "Training and validation loss"),
                             xLabel: axis.label, yLabel: "loss (nats per token)", logX: logX, logY: logY)
        for (i, curve) in curves.enumerated() {
            let color = SVGChart.palette[i % SVGChart.palette.count]
            if !curve.validation.isEmpty {
                chart.series.append(.init(name: "\(curve.name) (val)", points: curve.validation, color: color, line: true,
                                          markers: true))
            }
            if !validationOnly && !curve.train.isEmpty {
                chart.series.append(.init(name: "\(curve.name) (train)", points: curve.train, color: color, line: true,
                                          markers: false, dashed: true))
            }
        }
        return chart
    }
}
