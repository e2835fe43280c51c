// From a sweep's results: power-law fits per mode, the Markdown report, the SVG plots
// and the energy estimate. `bitnet-train report` re-runs just this.
import Foundation

public struct SweepReport {
    public let directory: URL
    public let results: [SweepResult]
    public let definition: SweepDefinition?

    public init(directory: URL) throws {
        self.directory = directory
        results = Sweep.loadResults(directory)
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

    public func fitAgainstParameters(_ mode: WeightMode) -> PowerLawFit? {
        let r = rows(mode)
        return PowerLawFit.fit(x: r.map { Double($0.nonEmbeddingParameters) }, y: r.map(\.finalValLoss))
    }

    public func fitAgainstCompute(_ mode: WeightMode) -> PowerLawFit? {
        let r = rows(mode)
        return PowerLawFit.fit(x: r.map(\.trainingFlops), y: r.map(\.finalValLoss))
    }

    /// Writes report.md and the three plots; returns the Markdown.
    @discardableResult
    public func write() throws -> String {
        let plots = [("loss_vs_params.svg", lossVersusParameters()), ("loss_vs_compute.svg", lossVersusCompute()),
                     ("training_curves.svg", trainingCurves())]
        for (name, svg) in plots { try AtomicFile.write(Data(svg.utf8), to: directory.appendingPathComponent(name)) }
        let markdown = self.markdown()
        try AtomicFile.write(Data(markdown.utf8), to: directory.appendingPathComponent("report.md"))
        return markdown
    }

    public func markdown() -> String {
        var md = "# Scaling sweep\n\n"
        if let d = definition {
            md += "Data `\(d.data)`; sizes \(d.sizes.map(\.name).joined(separator: ", ")); modes "
                + "\(d.modes.map(\.rawValue).joined(separator: ", ")); budget: \(d.budget); seed \(d.seed).\n\n"
            md += "Peak learning rates: " + (d.learningRateRule.map { "from lr-sweeps, \($0.description)." }
                                             ?? "each mode's default.") + "\n\n"
        }
        md += "## Runs\n\n| run | mode | parameters | non-embedding | tokens | training FLOPs | wall time | final train loss | final val loss |\n"
        md += "|---|---|---|---|---|---|---|---|---|\n"
        for r in results.sorted(by: { ($0.mode.rawValue, $0.nonEmbeddingParameters) < ($1.mode.rawValue, $1.nonEmbeddingParameters) }) {
            md += "| \(r.run) | \(r.mode.rawValue) | \(r.parameters) | \(r.nonEmbeddingParameters) | \(r.tokens) | "
                + String(format: "%.3g | %.0f s | %.4f | %.4f |\n", r.trainingFlops, r.wallSeconds, r.finalTrainLoss, r.finalValLoss)
        }
        md += "\n## Fits: L = a * x^(-alpha) + c\n\n| mode | against | a | alpha | c | R^2 | points |\n|---|---|---|---|---|---|---|\n"
        for mode in modes {
            for (against, fit) in [("non-embedding parameters", fitAgainstParameters(mode)), ("training FLOPs", fitAgainstCompute(mode))] {
                if let f = fit {
                    md += "| \(mode.rawValue) | \(against) | " + String(format: "%.4g | %.4f | %.4f | %.4f | %d |\n", f.a, f.alpha, f.c, f.rSquared, f.points)
                } else {
                    md += "| \(mode.rawValue) | \(against) | too few points (\(rows(mode).count) < 3): no fit | | | | |\n"
                }
            }
        }
        if modes.contains(.fp) && modes.count > 1 {
            md += "\n## Gap to full precision (final validation loss)\n\n| size | non-embedding | "
                + modes.filter { $0 != .fp }.map { "\($0.rawValue) - fp" }.joined(separator: " | ") + " |\n"
            md += "|---|---|" + modes.filter { $0 != .fp }.map { _ in "---|" }.joined() + "\n"
            for fp in rows(.fp) {
                let gaps = modes.filter { $0 != .fp }.map { m -> String in
                    guard let other = results.first(where: { $0.mode == m && $0.size == fp.size }) else { return "-" }
                    return String(format: "%+.4f", other.finalValLoss - fp.finalValLoss)
                }
                md += "| \(fp.size) | \(fp.nonEmbeddingParameters) | " + gaps.joined(separator: " | ") + " |\n"
            }
        }
        md += "\n## Plots\n\n![validation loss against parameters](loss_vs_params.svg)\n\n"
            + "![validation loss against training compute](loss_vs_compute.svg)\n\n![training curves](training_curves.svg)\n"
        md += energySection()
        return md
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
                         fit: (WeightMode) -> PowerLawFit?) -> String {
        var chart = SVGChart(title: title, xLabel: xLabel, yLabel: "final validation loss (nats/token)", logX: true)
        for mode in modes {
            let color = Self.modeColors[mode] ?? "#333"
            let points = rows(mode).map { (x: x($0), y: $0.finalValLoss) }
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
