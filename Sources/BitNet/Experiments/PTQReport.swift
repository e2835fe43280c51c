// `ptq-report`: an fp run quantized after training with every method at every width,
// evaluated beside runs trained in 1 and 1.58 bits (issue 11; the BitNet paper's
// Table 3 on the user's own models). Each finished cell is recorded in results.jsonl
// as it ends, so an interrupted report resumes where it stopped; report.md,
// results.csv and ptq.svg are written again after every cell.
import Foundation

/// One quantization setting.
public struct PTQCell: Codable, Hashable, Sendable {
    public var method: QuantizationMethod
    public var weightBits: WeightBits
    public var activationBits: Int?
    public var groupSize: Int?

    enum CodingKeys: String, CodingKey {
        case method, weightBits = "weight_bits", activationBits = "activation_bits", groupSize = "group_size"
    }

    /// "gptq-w2a16-g64": also the quantized run's directory name.
    public var name: String {
        "\(method.rawValue)-w\(weightBits.rawValue)a\(activationBits ?? 16)" + (groupSize.map { "-g\($0)" } ?? "")
    }
}

/// A cell's scores (or a trained run's, with method nil).
public struct PTQResult: Codable, Sendable {
    public var cell: PTQCell?
    /// For trained runs: "fp", "binary" or "ternary".
    public var trained: String?
    public var validationLoss: Double
    public var textLoss: Double?
    public var seconds: Double
    public var weightError: Double?

    enum CodingKeys: String, CodingKey {
        case cell, trained, validationLoss = "val_loss", textLoss = "text_loss", seconds, weightError = "weight_mse"
    }
}

public struct PTQReportDefinition: Sendable {
    public var fp: URL
    public var binary: URL?
    public var ternary: URL?
    public var data: String
    public var text: String?
    public var methods: [QuantizationMethod]
    public var calibrationWindows: Int
    public var omniQuant: OmniQuantOptions
    /// The grouped cells' group size: the largest power of two up to this that divides
    /// every projection's width.
    public var groupSize: Int

    public init(fp: URL, binary: URL?, ternary: URL?, data: String, text: String?, methods: [QuantizationMethod],
                calibrationWindows: Int, omniQuant: OmniQuantOptions, groupSize: Int) {
        (self.fp, self.binary, self.ternary, self.data, self.text) = (fp, binary, ternary, data, text)
        (self.methods, self.calibrationWindows, self.omniQuant, self.groupSize) = (methods, calibrationWindows, omniQuant, groupSize)
    }
}

public enum PTQReport {
    public enum Event {
        case started(total: Int, done: Int)
        case cellFinished(name: String, result: PTQResult, index: Int, total: Int, remainingSeconds: Double?)
        case note(String)
    }

    static let widths: [WeightBits] = [.one, .ternary, .two, .three, .four, .eight]
    static let weightActivation: [(WeightBits, Int)] = [(.four, 4), (.six, 6), (.eight, 8)]

    /// Every cell of the report, cheapest methods first.
    public static func cells(methods: [QuantizationMethod], groupSize: Int?) -> [PTQCell] {
        var cells: [PTQCell] = []
        for method in QuantizationMethod.allCases where methods.contains(method) {
            for bits in widths { cells.append(PTQCell(method: method, weightBits: bits, activationBits: nil, groupSize: nil)) }
            if let groupSize {
                for bits in widths { cells.append(PTQCell(method: method, weightBits: bits, activationBits: nil, groupSize: groupSize)) }
            }
            for (bits, a) in weightActivation { cells.append(PTQCell(method: method, weightBits: bits, activationBits: a, groupSize: nil)) }
        }
        return cells
    }

    /// The largest power of two up to `limit` (at least 8) dividing every width, or nil.
    static func groupSize(limit: Int, widths: [Int]) -> Int? {
        var g = 1
        while g * 2 <= limit { g *= 2 }
        while g >= 8 {
            if widths.allSatisfy({ $0 % g == 0 }) { return g }
            g /= 2
        }
        return nil
    }

    static func resultsURL(_ directory: URL) -> URL { directory.appendingPathComponent("results.jsonl") }

    public static func loadResults(_ directory: URL) -> [PTQResult] {
        guard let text = try? String(contentsOf: resultsURL(directory), encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { try? JSONDecoder().decode(PTQResult.self, from: Data($0.utf8)) }
    }

    /// Runs every unfinished cell (and evaluates the trained runs once), writing the
    /// report after each; stops between cells when `shouldStop` says so.
    public static func run(_ d: PTQReportDefinition, directory: URL, shouldStop: () -> Bool = { false },
                           progress: (Event) -> Void = { _ in }) throws -> [PTQResult] {
        let dataset = try TokenDataset(directory: d.data)
        /// A run's config (its checkpoint is read, and checked, when it is first scored below).
        func config(_ run: URL, flag: String) throws -> RunConfig {
            guard let config = try RunDirectory(run).readConfig() else { throw BitNetError.file("\(flag) \(run.path): no config.json") }
            return config
        }
        let fpConfig = try config(d.fp, flag: "--fp")
        guard fpConfig.model.mode == .fp else { throw BitNetError.invalid("--fp \(d.fp.path): a \(fpConfig.model.mode.rawValue) run, not fp") }
        guard dataset.meta.vocabSize == fpConfig.model.vocabSize else {
            throw BitNetError.invalid("\(d.data): vocabulary of \(dataset.meta.vocabSize) does not match the fp run's \(fpConfig.model.vocabSize)")
        }
        try dataset.check(context: fpConfig.model.context)
        for (flag, run, mode) in [("--bitnet", d.binary, WeightMode.binary), ("--ternary", d.ternary, .ternary)] {
            guard let run else { continue }
            let config = try config(run, flag: flag)
            guard config.model.mode == mode else { throw BitNetError.invalid("\(flag) \(run.path): a \(config.model.mode.rawValue) run, not \(mode.rawValue)") }
            guard config.model.vocabSize == fpConfig.model.vocabSize else {
                throw BitNetError.invalid("\(flag) \(run.path): vocabulary of \(config.model.vocabSize) does not match the fp run's")
            }
        }
        let text: [Int32]? = try d.text.map { path in
            let ids = try Tokenizer(path: RunDirectory(d.fp).tokenizerURL.path).encode(try Corpus.readText(path))
            guard ids.count > fpConfig.model.context else {
                throw BitNetError.invalid("--text \(path): \(ids.count) tokens is smaller than one context window")
            }
            return ids
        }
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("runs"), withIntermediateDirectories: true)
        let layout = ParameterLayout(config: fpConfig.model)
        let group = groupSize(limit: d.groupSize, widths: layout.bitLinears.map(\.inFeatures))
        if group == nil { progress(.note("no group size of 8 to \(d.groupSize) divides every width: no grouped cells")) }
        let cells = cells(methods: d.methods, groupSize: group)

        var results = loadResults(directory)
        func evaluate(_ run: URL) throws -> (Double, Double?) {
            let (model, _, _) = try Checkpoint.loadModel(runDirectory: run, batch: 8)
            let validation = Double(Evaluation.loss(model: model, dataset: dataset, windows: .max, batch: 8))
            return (validation, text.map { Double(Evaluation.loss(model: model, tokens: $0, batch: 8)) })
        }
        func record(_ result: PTQResult) throws {
            results.append(result)
            let lines = try results.map { String(decoding: try JSONEncoder().encode($0), as: UTF8.self) }
            try AtomicFile.write(Data((lines.joined(separator: "\n") + "\n").utf8), to: resultsURL(directory))
            try write(results, definition: d, groupSize: group, directory: directory)
        }
        for (name, run) in [("fp", d.fp), ("binary", d.binary), ("ternary", d.ternary)] {
            guard let run, !results.contains(where: { $0.trained == name }) else { continue }
            let started = Date()
            let (validation, textLoss) = try evaluate(run)
            try record(PTQResult(cell: nil, trained: name, validationLoss: validation, textLoss: textLoss,
                                 seconds: Date().timeIntervalSince(started), weightError: nil))
        }
        let finished = Set(results.compactMap(\.cell))
        progress(.started(total: cells.count, done: cells.filter { finished.contains($0) }.count))
        for (index, cell) in cells.enumerated() where !finished.contains(cell) {
            if shouldStop() { break }
            let out = directory.appendingPathComponent("runs").appendingPathComponent(cell.name)
            try? FileManager.default.removeItem(at: out)  // a cell interrupted after writing, before scoring
            let started = Date()
            let calibration = cell.method == .rtn ? nil : (dataset: dataset, windows: d.calibrationWindows)
            let (weightError, _) = try QuantizedRun.quantize(
                source: d.fp, method: cell.method, bits: cell.weightBits, groupSize: cell.groupSize,
                activationBits: cell.activationBits, calibration: calibration, omniQuant: d.omniQuant, to: out)
            let (validation, textLoss) = try evaluate(out)
            let result = PTQResult(cell: cell, trained: nil, validationLoss: validation, textLoss: textLoss,
                                   seconds: Date().timeIntervalSince(started), weightError: weightError)
            try record(result)
            progress(.cellFinished(name: cell.name, result: result, index: index + 1, total: cells.count,
                                   remainingSeconds: remainingSeconds(cells: cells, results: results)))
        }
        // Also when every cell had finished earlier: a re-run redraws the report with this build.
        try write(results, definition: d, groupSize: group, directory: directory)
        return results
    }

    /// Seconds the unfinished cells should take: each method's mean so far (the overall
    /// mean for methods not yet seen); nil before any cell has finished.
    static func remainingSeconds(cells: [PTQCell], results: [PTQResult]) -> Double? {
        let done = results.filter { $0.cell != nil }
        guard !done.isEmpty else { return nil }
        let overall = done.map(\.seconds).reduce(0, +) / Double(done.count)
        let finished = Set(done.compactMap(\.cell))
        return cells.filter { !finished.contains($0) }.reduce(0) { total, cell in
            let same = done.filter { $0.cell?.method == cell.method }.map(\.seconds)
            return total + (same.isEmpty ? overall : same.reduce(0, +) / Double(same.count))
        }
    }

    // MARK: The report

    static let methodColors: [QuantizationMethod: String] = [.rtn: "#7f7f7f", .smoothquant: "#ff7f0e", .gptq: "#1f77b4",
                                                             .quip: "#9467bd", .omniquant: "#2ca02c"]

    static func perplexity(_ loss: Double) -> String {
        let p = exp(loss)
        return p >= 1000 ? String(format: "%.0f", p) : String(format: "%.1f", p)
    }

    /// Writes results.csv, report.md and ptq.svg; returns the Markdown.
    @discardableResult
    static func write(_ results: [PTQResult], definition d: PTQReportDefinition, groupSize: Int?, directory: URL) throws -> String {
        var csv = "method,weight_bits,activation_bits,group_size,val_loss,val_perplexity,text_loss,text_perplexity,seconds,weight_mse\n"
        for r in results {
            let method = r.cell?.method.rawValue ?? "trained-\(r.trained ?? "?")"
            let bits = r.cell?.weightBits.rawValue ?? ["fp": "32", "binary": "1", "ternary": "1.58"][r.trained ?? ""] ?? ""
            // activation_bits: blank where activations stay FP32 (the paper's "A16").
            let activation = r.cell.map { $0.activationBits.map(String.init) ?? "" } ?? (r.trained == "fp" ? "" : "8")
            csv += [method, bits, activation, r.cell?.groupSize.map(String.init) ?? "",
                    String(format: "%.5f", r.validationLoss), String(format: "%.3f", exp(r.validationLoss)),
                    r.textLoss.map { String(format: "%.5f", $0) } ?? "", r.textLoss.map { String(format: "%.3f", exp($0)) } ?? "",
                    String(format: "%.2f", r.seconds), r.weightError.map { String(format: "%.4e", $0) } ?? ""].joined(separator: ",") + "\n"
        }
        try AtomicFile.write(Data(csv.utf8), to: directory.appendingPathComponent("results.csv"))

        func lookup(_ method: QuantizationMethod, _ bits: WeightBits, _ a: Int?, _ g: Int?) -> PTQResult? {
            results.first { $0.cell == PTQCell(method: method, weightBits: bits, activationBits: a, groupSize: g) }
        }
        let trained = Dictionary(results.compactMap { r in r.trained.map { ($0, r) } }, uniquingKeysWith: { a, _ in a })
        let methods = QuantizationMethod.allCases.filter { d.methods.contains($0) }
        var md = "# Quantized after training against trained in low precision\n\n"
        md += "fp run `\(d.fp.path)`" + (d.binary.map { ", binary `\($0.path)`" } ?? "") + (d.ternary.map { ", ternary `\($0.path)`" } ?? "")
        md += "; validation split of `\(d.data)`" + (d.text.map { ", and `\($0)`" } ?? "") + ".\n"
        md += "Calibration: \(d.calibrationWindows) training windows; OmniQuant \(d.omniQuant.epochs) epochs at learning rate "
        md += "\(d.omniQuant.learningRate). Every figure is a perplexity over the whole validation split. "
        md += "\(results.filter { $0.cell != nil }.count) of \(cells(methods: d.methods, groupSize: groupSize).count) cells done.\n\n"

        func table(_ title: String, activation: Int?, group: Int?) -> String {
            var t = "## \(title)\n\n| method | " + widths.map { "W\($0.rawValue)" }.joined(separator: " | ") + " |\n"
            t += "|---|" + widths.map { _ in "---|" }.joined() + "\n"
            for m in methods {
                t += "| \(m.rawValue) | " + widths.map { bits in lookup(m, bits, activation, group).map { perplexity($0.validationLoss) } ?? "" }
                    .joined(separator: " | ") + " |\n"
            }
            if group == nil {
                t += "| **trained** | " + widths.map { bits -> String in
                    let name = bits == .one ? "binary" : bits == .ternary ? "ternary" : ""
                    return trained[name].map { "**\(perplexity($0.validationLoss))**" } ?? ""
                }.joined(separator: " | ") + " |\n"
            }
            return t + "\n"
        }
        if let fp = trained["fp"] { md += "The fp run itself: perplexity **\(perplexity(fp.validationLoss))**.\n\n" }
        md += table("Weights only (activations FP32), one scale per output channel", activation: nil, group: nil)
        if let groupSize { md += table("Weights only, groups of \(groupSize) input columns", activation: nil, group: groupSize) }
        md += "## Weights and activations (activations absmax per token), per output channel\n\n| method | W4A4 | W6A6 | W8A8 |\n|---|---|---|---|\n"
        for m in methods {
            md += "| \(m.rawValue) | " + weightActivation.map { lookup(m, $0.0, $0.1, nil).map { perplexity($0.validationLoss) } ?? "" }
                .joined(separator: " | ") + " |\n"
        }
        md += "\n" + reading(results, trained: trained, methods: methods)
        md += "## Cost per cell (quantize and evaluate)\n\n| method | mean seconds | cells |\n|---|---|---|\n"
        for m in methods {
            let s = results.filter { $0.cell?.method == m }.map(\.seconds)
            if !s.isEmpty { md += String(format: "| %@ | %.1f | %d |\n", m.rawValue, s.reduce(0, +) / Double(s.count), s.count) }
        }
        md += "\n![perplexity against weight bits](ptq.svg)\n"
        try AtomicFile.write(Data(md.utf8), to: directory.appendingPathComponent("report.md"))
        try AtomicFile.write(Data(chart(results, trained: trained, methods: methods).render().utf8),
                             to: directory.appendingPathComponent("ptq.svg"))
        return md
    }

    /// Sentences computed from the table: at 1 and 1.58 bits, the best method against the
    /// trained run; the fewest bits at which some method is within 1% of fp.
    static func reading(_ results: [PTQResult], trained: [String: PTQResult], methods: [QuantizationMethod]) -> String {
        var lines: [String] = []
        for (bits, name) in [(WeightBits.one, "binary"), (.ternary, "ternary")] {
            let best = results.filter { $0.cell?.weightBits == bits && $0.cell?.activationBits == nil && $0.cell?.groupSize == nil }
                .min { $0.validationLoss < $1.validationLoss }
            guard let best, let cell = best.cell, let native = trained[name] else { continue }
            let verdict = native.validationLoss < best.validationLoss ? "better than" : "not better than"
            lines.append("At \(bits.rawValue) bit\(bits == .one ? "" : "s") the trained \(name) run (\(perplexity(native.validationLoss))) is \(verdict) "
                         + "the best method after training, \(cell.method.rawValue) (\(perplexity(best.validationLoss))).")
        }
        if let fp = trained["fp"] {
            let close = widths.first { bits in
                results.contains { $0.cell?.weightBits == bits && $0.cell?.activationBits == nil && $0.cell?.groupSize == nil
                    && exp($0.validationLoss) <= 1.01 * exp(fp.validationLoss) }
            }
            if let close {
                lines.append("From \(close.rawValue) bit\(close == .one ? "" : "s") per weight on, a method after training is within 1% of fp's perplexity.")
            }
        }
        return lines.isEmpty ? "" : "## Reading\n\n" + lines.map { "- " + $0 }.joined(separator: "\n") + "\n\n"
    }

    static func chart(_ results: [PTQResult], trained: [String: PTQResult], methods: [QuantizationMethod]) -> SVGChart {
        var chart = SVGChart(title: "Perplexity against weight bits (activations FP32, per channel)", xLabel: "weight bits",
                             yLabel: "validation perplexity", logX: true, logY: true)
        func bitsValue(_ b: WeightBits) -> Double { Double(b.rawValue) ?? 0 }
        for m in methods {
            let points = widths.compactMap { bits in
                results.first { $0.cell == PTQCell(method: m, weightBits: bits, activationBits: nil, groupSize: nil) }
                    .map { (x: bitsValue(bits), y: exp($0.validationLoss)) }
            }
            if !points.isEmpty {
                chart.series.append(.init(name: m.rawValue, points: points, color: methodColors[m] ?? "#000000", line: true, markers: true))
            }
        }
        for (name, bits, color) in [("binary", 1.0, "#d62728"), ("ternary", 1.58, "#8c564b")] {
            if let r = trained[name] {
                chart.series.append(.init(name: "trained \(name)", points: [(x: bits, y: exp(r.validationLoss))], color: color,
                                          line: false, markers: true))
            }
        }
        if let fp = trained["fp"] {
            chart.series.append(.init(name: "fp", points: [(x: 1, y: exp(fp.validationLoss)), (x: 8, y: exp(fp.validationLoss))],
                                      color: "#000000", line: true, markers: false, dashed: true))
        }
        return chart
    }
}
