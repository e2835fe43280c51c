// From a sweep's results: power-law fits per mode, the Markdown report, the SVG plots
// and the energy estimate. `bitnet-train report` re-runs just this.
import Foundation

public struct SweepReport {
    public let directory: URL
    public let results: [SweepResult]
    public let definition: SweepDefinition?

    public init(directory: URL) throws {
        self.directory = directory
        results = try Sweep.loadResults(directory)
        definition = FileManager.default.contents(atPath: Sweep.definitionURL(directory).path)
            .flatMap { try? JSONDecoder().decode(SweepDefinition.self, from: $0) }
        guard definition != nil || !results.isEmpty else {
            throw BitNetError.file("\(directory.path): no sweep.json or results.json; is this a sweep directory?")
        }
    }

    static let modeColors: [WeightMode: String] = [.fp: "#1f77b4", .binary: "#d62728", .ternary: "#2ca02c", .int4: "#9467bd"]

    var modes: [WeightMode] { WeightMode.allCases.filter { m in results.contains { $0.mode == m } } }

    func rows(_ mode: WeightMode) -> [SweepResult] {
        results.filter { $0.mode == mode }.sorted { $0.nonEmbeddingParameters < $1.nonEmbeddingParameters }
    }

    /// What the laws are fitted against.
    enum LawAxis: String, CaseIterable {
        case parameters = "non-embedding parameters", compute = "training FLOPs", energy = "inference energy per token"
    }

    /// A mode's (x, final validation loss) points along an axis, smallest size first.
    func lawPoints(_ mode: WeightMode, _ axis: LawAxis) -> (x: [Double], y: [Double]) {
        // Each run's energy once (it reads the run's config); runs without one are left out.
        let points = rows(mode).map { r -> (Double, Double) in
            switch axis {
            case .parameters: (Double(r.nonEmbeddingParameters), r.finalValLoss)
            case .compute: (r.trainingFlops, r.finalValLoss)
            case .energy: (inferenceEnergy(r), r.finalValLoss)
            }
        }.filter { $0.0.isFinite }
        return (points.map(\.0), points.map(\.1))
    }

    func fit(_ mode: WeightMode, _ axis: LawAxis) -> PowerLawFit? {
        let (x, y) = lawPoints(mode, axis)
        return PowerLawFit.fit(x: x, y: y)
    }

    public func fitAgainstParameters(_ mode: WeightMode) -> PowerLawFit? { fit(mode, .parameters) }

    public func fitAgainstCompute(_ mode: WeightMode) -> PowerLawFit? { fit(mode, .compute) }

    /// The arithmetic a mode's products use at inference: FP16 multiply-adds for `fp`
    /// (the paper's baseline), additions only for BitNet, INT8 multiply-adds for `int4`
    /// (Table 2 has no INT4 figures, so this is an upper bound).
    static func inferenceArithmetic(_ mode: WeightMode) -> EnergyEstimate.Arithmetic {
        switch mode {
        case .fp: .fp16
        case .binary, .ternary: .bitnet
        case .int4: .int8
        }
    }

    /// The node the loss-against-energy plot uses (the paper's energy figures are at 7 nm).
    static let energyNode = OperationEnergy.nodes[1]

    /// Arithmetic energy per token of a run's projections at inference (NaN when its
    /// config cannot be found).
    func inferenceEnergy(_ r: SweepResult) -> Double {
        runConfig(r).map {
            EnergyEstimate.picojoulesPerToken(config: $0, arithmetic: Self.inferenceArithmetic(r.mode), energy: Self.energyNode)
        } ?? .nan
    }

    public func fitAgainstEnergy(_ mode: WeightMode) -> PowerLawFit? { fit(mode, .energy) }

    /// A law fitted on every size but the largest, and what it says of the largest.
    public struct Prediction: Sendable {
        public let mode: WeightMode
        public let against: String
        public let heldOut: SweepResult
        public let fit: PowerLawFit
        public var predicted: Double { fit.predict(x) }
        public let x: Double
        public var error: Double { predicted - heldOut.finalValLoss }
    }

    /// The BitNet paper's claim that small runs predict large ones, tested per mode: fitted
    /// on all sizes but the largest (at least 3), against parameters and against compute.
    public func predictions() -> [Prediction] {
        modes.flatMap { mode -> [Prediction] in
            let r = rows(mode)
            guard r.count >= 4, let largest = r.last else { return [] }
            let fitted = r.dropLast()
            let axes: [(String, (SweepResult) -> Double)] = [("non-embedding parameters", { Double($0.nonEmbeddingParameters) }),
                                                             ("training FLOPs", \.trainingFlops)]
            return axes.compactMap { against, x in
                PowerLawFit.fit(x: fitted.map(x), y: fitted.map(\.finalValLoss)).map {
                    Prediction(mode: mode, against: against, heldOut: largest, fit: $0, x: x(largest))
                }
            }
        }
    }

    /// Writes report.md and the plots; returns the Markdown.
    @discardableResult
    public func write() throws -> String {
        let plots = [("loss_vs_params.svg", lossVersusParameters()), ("loss_vs_compute.svg", lossVersusCompute()),
                     ("loss_vs_energy.svg", lossVersusEnergy()), ("training_curves.svg", trainingCurves())] + positionPlots()
        for (name, svg) in plots { try AtomicFile.write(Data(svg.utf8), to: directory.appendingPathComponent(name)) }
        let markdown = self.markdown()
        try AtomicFile.write(Data(markdown.utf8), to: directory.appendingPathComponent("report.md"))
        return markdown
    }

    public func markdown() -> String {
        var md = "# Scaling sweep\n\n"
        if let d = definition {
            md += "Data `\(d.data)`; sizes \(d.sizes.map(\.name).joined(separator: ", ")); modes "
                + "\(d.modes.map(\.rawValue).joined(separator: ", ")); budget: \(d.budget); seed \(d.seed); validation loss on "
                + "\(d.evalWindows) windows spread over the validation split.\n\n"
            md += "Peak learning rates: " + (d.learningRateRule.map { "from lr-sweeps, \($0.description)." }
                                             ?? "each mode's default.") + "\n\n"
        }
        md += "## Runs\n\n| run | mode | parameters | non-embedding | tokens | training FLOPs | wall time | final train loss | final val loss |\n"
        md += "|---|---|---|---|---|---|---|---|---|\n"
        for r in results.sorted(by: { ($0.mode.rawValue, $0.nonEmbeddingParameters) < ($1.mode.rawValue, $1.nonEmbeddingParameters) }) {
            md += "| \(r.run) | \(r.mode.rawValue) | \(r.parameters) | \(r.nonEmbeddingParameters) | \(r.tokens) | "
                + String(format: "%.3g | %.0f s | %.4f | %.4f |\n", r.trainingFlops, r.wallSeconds, r.finalTrainLoss, r.finalValLoss)
        }
        md += String(format: "\nWall time of the runs in all: %.2f hours.\n", results.reduce(0) { $0 + $1.wallSeconds } / 3600)
        md += "\n## Fits: L = a * x^(-alpha) + c\n\nThe last column is how far one size moves the exponent: alpha fitted again "
            + "without each size in turn (from 4 sizes).\n\n| mode | against | a | alpha | c | R^2 | points | alpha leaving out one size |\n"
            + "|---|---|---|---|---|---|---|---|\n"
        for mode in modes {
            for axis in LawAxis.allCases {
                let (x, y) = lawPoints(mode, axis)
                if let f = PowerLawFit.fit(x: x, y: y) {
                    let spread = PowerLawFit.leaveOneOutAlphas(x: x, y: y).map { String(format: " %.4f-%.4f |", $0.lowerBound, $0.upperBound) }
                    md += "| \(mode.rawValue) | \(axis.rawValue) | " + String(format: "%.4g | %.4f | %.4f | %.4f | %d |", f.a, f.alpha, f.c, f.rSquared, f.points)
                        + (spread ?? " |") + "\n"
                } else {
                    md += "| \(mode.rawValue) | \(axis.rawValue) | too few points (\(rows(mode).count) < 3): no fit | | | | | |\n"
                }
            }
        }
        md += gapTable("Gap to full precision (final validation loss)", loss: \.finalValLoss)
        md += predictionSection()
        if results.contains(where: { $0.textLoss != nil }) {
            md += gapTable("Second corpus: `\(definition?.text ?? "text")` (not trained on)", loss: \.textLoss)
        }
        md += "\n## Plots\n\n![validation loss against parameters](loss_vs_params.svg)\n\n"
            + "![validation loss against training compute](loss_vs_compute.svg)\n\n"
            + "![validation loss against inference energy](loss_vs_energy.svg)\n\n![training curves](training_curves.svg)\n"
        md += positionSection()
        md += energySection()
        return md
    }

    /// Each size's loss per mode and each quantized mode's difference from `fp`.
    func gapTable(_ title: String, heading: String = "##", loss: (SweepResult) -> Double?) -> String {
        let others = modes.filter { $0 != .fp }
        guard modes.contains(.fp), !others.isEmpty else { return "" }
        var md = "\n\(heading) \(title)\n\n| size | non-embedding |" + modes.map { " \($0.rawValue) |" }.joined()
            + others.map { " \($0.rawValue) - fp |" }.joined() + "\n|---|---|" + String(repeating: "---|", count: modes.count + others.count) + "\n"
        func value(_ mode: WeightMode, _ size: String) -> Double? {
            results.first { $0.mode == mode && $0.size == size }.flatMap(loss)
        }
        for fp in rows(.fp) {
            let losses = modes.map { value($0, fp.size).map { String(format: " %.4f |", $0) } ?? " - |" }
            let gaps = others.map { m -> String in
                guard let a = value(m, fp.size), let b = loss(fp) else { return " - |" }
                return String(format: " %+.4f |", a - b)
            }
            md += "| \(fp.size) | \(fp.nonEmbeddingParameters) |" + losses.joined() + gaps.joined() + "\n"
        }
        // Whether each gap narrows with size: a line through it against log10 N.
        let trends = others.compactMap { m -> String? in
            let points = rows(.fp).compactMap { fp -> (Double, Double)? in
                guard let a = value(m, fp.size), let b = loss(fp) else { return nil }
                return (log10(Double(fp.nonEmbeddingParameters)), a - b)
            }
            return LinearTrend.fit(x: points.map(\.0), y: points.map(\.1))?.describeGap(m, counted: "sizes")
        }
        if !trends.isEmpty {
            md += "\nThe gap's trend with size, a line through it against log10 of the non-embedding parameters: "
                + trends.joined(separator: "; ") + ".\n"
        }
        return md
    }

    func predictionSection() -> String {
        let predictions = self.predictions()
        guard !predictions.isEmpty else { return "" }
        var md = "\n## Prediction test: each law fitted without the largest size\n\n"
            + "| mode | against | fitted on | alpha | held out | predicted | actual | error |\n|---|---|---|---|---|---|---|---|\n"
        for p in predictions {
            md += "| \(p.mode.rawValue) | \(p.against) | \(p.fit.points) sizes | " + String(format: "%.4f", p.fit.alpha)
                + " | \(p.heldOut.size) | " + String(format: "%.4f | %.4f | %+.4f (%+.1f%%) |\n", p.predicted,
                                                      p.heldOut.finalValLoss, p.error, 100 * p.error / p.heldOut.finalValLoss)
        }
        return md + "\nerror = predicted - actual (and as a share of actual): positive where the law expected a higher loss.\n"
    }

    /// Arithmetic energy per token of each size, in each kind of arithmetic, at each node.
    func energySection() -> String {
        var md = "\n## Arithmetic energy per token (projections' products, inference)\n\n"
            + "One multiply-add per weight in FP32, in FP16 (the paper's baseline) or in INT8 (an 8-bit quantized "
            + "model); INT8 additions only for BitNet (`binary` and `ternary`); one FP32 multiply per output to rescale "
            + "the quantized kinds. Per-operation energies from the BitNet paper's Table 2 (45 nm from Horowitz 2014); "
            + "embedding, attention scores and head are left out, as in the paper.\n\n"
            + "| size | node |" + EnergyEstimate.Arithmetic.allCases.map { " \($0.rawValue) (pJ) |" }.joined()
            + " BitNet uses less than FP32 / FP16 / W8A8 |\n|---|---|"
            + EnergyEstimate.Arithmetic.allCases.map { _ in "---|" }.joined() + "---|\n"
        var seen = Set<String>()
        let sized = results.sorted { ($0.nonEmbeddingParameters, $0.run) < ($1.nonEmbeddingParameters, $1.run) }
        for r in sized where !seen.contains(r.size) {
            guard let config = runConfig(r) else { continue }
            seen.insert(r.size)
            for node in OperationEnergy.nodes {
                let pj = EnergyEstimate.Arithmetic.allCases.map {
                    EnergyEstimate.picojoulesPerToken(config: config, arithmetic: $0, energy: node)
                }
                let bitnet = pj[pj.count - 1]
                md += "| \(r.size) | \(node.node) |" + pj.map { String(format: " %.3g |", $0) }.joined()
                    + pj.dropLast().map { String(format: " %.1fx", $0 / bitnet) }.joined(separator: " /") + " |\n"
            }
        }
        return md
    }

    /// The model config of a run: its run directory's, or (when the runs were not kept,
    /// as in docs/sweeps) the sweep definition's for its size and mode, with the
    /// vocabulary its parameter counts imply.
    func runConfig(_ r: SweepResult) -> ModelConfig? {
        let url = directory.appendingPathComponent("runs").appendingPathComponent(r.run).appendingPathComponent("config.json")
        if let saved = FileManager.default.contents(atPath: url.path)
            .flatMap({ try? JSONDecoder().decode(RunConfig.self, from: $0) }) { return saved.model }
        guard let definition, let shape = try? definition.runConfig(size: SweepSize(r.size), mode: r.mode, vocabSize: 1).model
        else { return nil }
        var config = shape
        config.vocabSize = (r.parameters - r.nonEmbeddingParameters) / (config.dim * (config.tiedEmbeddings ? 1 : 2))
        return config
    }

    func fittedCurve(_ fit: PowerLawFit, over xs: [Double]) -> [(x: Double, y: Double)] {
        guard let lo = xs.min(), let hi = xs.max(), lo > 0 else { return [] }
        return (0...40).map { i in
            let x = lo * pow(hi / lo, Double(i) / 40)
            return (x, fit.predict(x))
        }
    }

    func scatterWithFits(title: String, xLabel: String, x: (SweepResult) -> Double,
                         y: (SweepResult) -> Double = \.finalValLoss, yLabel: String = "final validation loss (nats/token)",
                         fit: (WeightMode) -> PowerLawFit?) -> String {
        var chart = SVGChart(title: title, xLabel: xLabel, yLabel: yLabel, logX: true)
        for mode in modes {
            let color = Self.modeColors[mode] ?? "#333"
            let points = rows(mode).map { (x: x($0), y: y($0)) }.filter { $0.x.isFinite && $0.y.isFinite }
            chart.series.append(.init(name: mode.rawValue, points: points, color: color, line: false, markers: true))
            if let f = fit(mode) {
                chart.series.append(.init(name: String(format: "%@ fit (alpha %.3f)", mode.rawValue, f.alpha),
                                          points: fittedCurve(f, over: points.map(\.x)), color: color, line: true,
                                          markers: false, dashed: true))
            }
        }
        return chart.render()
    }

    public func lossVersusParameters() -> String {
        scatterWithFits(title: "Validation loss against model size", xLabel: "non-embedding parameters",
                        x: { Double($0.nonEmbeddingParameters) }, fit: fitAgainstParameters)
    }

    public func lossVersusCompute() -> String {
        scatterWithFits(title: "Validation loss against training compute", xLabel: "training FLOPs",
                        x: \.trainingFlops, fit: fitAgainstCompute)
    }

    public func lossVersusEnergy() -> String {
        scatterWithFits(title: "Validation loss against inference energy (\(Self.energyNode.node); fp in FP16)",
                        xLabel: "arithmetic energy per token (pJ)", x: inferenceEnergy, fit: fitAgainstEnergy)
    }

    public func trainingCurves() -> String {
        var chart = SVGChart(title: "Training curves", xLabel: "tokens seen", yLabel: "training loss", logX: true)
        let ordered = results.sorted { ($0.mode.rawValue, $0.nonEmbeddingParameters) < ($1.mode.rawValue, $1.nonEmbeddingParameters) }
        for (i, r) in ordered.enumerated() {
            chart.series.append(.init(name: r.run, points: r.curve.map { (x: $0[0], y: $0[1]) },
                                      color: SVGChart.palette[i % SVGChart.palette.count], line: true, markers: false,
                                      dashed: r.mode != .fp))
        }
        return chart.render()
    }
}
