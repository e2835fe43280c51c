// Scaling sweeps: the power-law fit on points with known parameters, a tiny sweep end
// to end (results, report, parseable SVG), re-runs, and bad definitions.
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Synchronization
import Testing
@testable import BitNet

/// Checks that a document is well-formed XML with an <svg> root.
func isValidSVG(_ text: String) -> Bool {
    final class Root: NSObject, XMLParserDelegate {
        var root: String?
        var failed = false
        var depth = 0
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            if root == nil { root = name }
            depth += 1
        }
        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            depth -= 1
        }
        func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) { failed = true }
    }
    let parser = XMLParser(data: Data(text.utf8))
    let delegate = Root()
    parser.delegate = delegate
    // parse()'s result alone is not enough on Linux: an error is reported to the delegate.
    let parsed = parser.parse()
    return parsed && !delegate.failed && delegate.depth == 0 && delegate.root == "svg"
}

@Suite struct PowerLawFitTests {
    @Test(arguments: [(12.0, 0.35, 1.7), (3.0, 0.08, 0.0), (250.0, 0.5, 2.4)])
    func recoversKnownParameters(a: Double, alpha: Double, c: Double) throws {
        let x = [1e4, 3e4, 1e5, 3e5, 1e6, 3e6]
        let y = x.map { a * pow($0, -alpha) + c }
        let fit = try #require(PowerLawFit.fit(x: x, y: y))
        #expect(abs(fit.alpha - alpha) < 0.01 * alpha + 1e-3, "alpha \(fit.alpha)")
        #expect(abs(fit.c - c) < 0.01 * max(c, 0.05), "c \(fit.c)")
        #expect(abs(fit.a - a) / a < 0.05, "a \(fit.a)")
        #expect(fit.rSquared > 0.9999)
    }

    @Test func toleratesNoiseAndThreePoints() throws {
        var rng = Xoshiro256(seed: 21)
        let x = [2e4, 8e4, 3e5, 1e6, 4e6]
        let y = x.map { 40 * pow($0, -0.3) + 2.0 + Double(rng.normal()) * 0.003 }
        let fit = try #require(PowerLawFit.fit(x: x, y: y))
        #expect(abs(fit.alpha - 0.3) < 0.1 && fit.rSquared > 0.99)
        // Three points determine the three parameters: an exact fit.
        let three = try #require(PowerLawFit.fit(x: [1e4, 1e5, 1e6], y: [3.0, 2.5, 2.3]))
        #expect(three.rSquared > 0.999999)
        #expect(abs(three.predict(1e5) - 2.5) < 1e-4)
    }

    @Test func svgCheckRejectsMalformedDocuments() {
        #expect(!isValidSVG("<svg><g></svg>"))
        #expect(!isValidSVG("<html></html>"))
        #expect(isValidSVG(SVGChart(title: "t", xLabel: "x", yLabel: "y", logX: true).render()))
    }

    /// Log axes: powers of ten (and 2x, 5x) over wide spans; round, evenly stepped values
    /// under a decade, where powers of ten would leave one or two labels, or none.
    @Test func logAxisTicks() {
        let chart = SVGChart(title: "t", xLabel: "x", yLabel: "y", logX: true)
        #expect(chart.ticks(0, 4, log: true) == [1, 10, 100, 1000, 10000])
        #expect(chart.ticks(log10(3), log10(300), log: true) == [5, 10, 20, 50, 100, 200])
        let narrow = chart.ticks(log10(28), log10(150), log: true)
        #expect(narrow == [50, 100, 150], "\(narrow)")
        // A loss axis: no power of ten in range at all, before.
        #expect(chart.ticks(log10(3.2), log10(4.5), log: true) == [3.5, 4, 4.5])
    }

    @Test func fewerThanThreePointsGiveNoFit() {
        #expect(PowerLawFit.fit(x: [1e4, 1e5], y: [3, 2.5]) == nil)
        #expect(PowerLawFit.fit(x: [1e4, 1e4, 1e4], y: [3, 2.9, 2.8]) == nil)
        #expect(LinearTrend.fit(x: [1, 2], y: [3, 4]) == nil && LinearTrend.fit(x: [1, 1, 1], y: [3, 4, 5]) == nil)
        #expect(PowerLawFit.leaveOneOutAlphas(x: [1e4, 1e5, 1e6], y: [3.0, 2.5, 2.3]) == nil)
    }

    /// Leaving out each point in turn: on an exact law every fit finds its alpha; with one
    /// point moved, the fit without it still does, and the others do not.
    @Test func leaveOneOutAlphasShowWhatOnePointDecides() throws {
        let x = [1e4, 3e4, 1e5, 3e5, 1e6]
        let exact = x.map { 12 * pow($0, -0.3) + 1.5 }
        let same = try #require(PowerLawFit.leaveOneOutAlphas(x: x, y: exact))
        #expect(abs(same.lowerBound - 0.3) < 3e-3 && abs(same.upperBound - 0.3) < 3e-3, "\(same)")
        var moved = exact
        moved[4] -= 0.3
        let spread = try #require(PowerLawFit.leaveOneOutAlphas(x: x, y: moved))
        #expect(spread.contains(0.3) || abs(spread.lowerBound - 0.3) < 3e-3 || abs(spread.upperBound - 0.3) < 3e-3, "\(spread)")
        #expect(spread.upperBound - spread.lowerBound > 0.05, "\(spread)")
    }

    /// The gap's trend, worked by hand: through (0, 0), (1, 1), (2, 1) the line is
    /// 1/6 + x/2, its residuals -1/6, 1/3, -1/6, so the slope's standard error is
    /// sqrt((1/6) / 1 / 2).
    @Test func linearTrendByHand() throws {
        let t = try #require(LinearTrend.fit(x: [0, 1, 2], y: [0, 1, 1]))
        #expect(abs(t.slope - 0.5) < 1e-12 && abs(t.intercept - 1.0 / 6) < 1e-12 && t.points == 3)
        #expect(abs(t.standardError - (1.0 / 12).squareRoot()) < 1e-12)
        // One degree of freedom: t = 12.706, so the interval is 0.5 +- 3.668 and holds zero.
        #expect(abs(t.interval95.upperBound - (0.5 + 12.706 * (1.0 / 12).squareRoot())) < 1e-9 && t.direction == .flat)
        let line = try #require(LinearTrend.fit(x: [4, 5, 6, 7], y: [2.2, 2.0, 1.8, 1.6]))
        #expect(abs(line.slope + 0.2) < 1e-12 && line.standardError < 1e-12 && line.direction == .falls)
        #expect(try #require(LinearTrend.fit(x: [1, 2, 3, 4], y: [0.1, 0.21, 0.29, 0.4])).direction == .rises)
        // Five points whose slope is 2.04 standard errors from zero: past 2 (the normal
        // quantile's round value) but inside t's 3.182 for 3 degrees of freedom, so flat.
        let noisy = try #require(LinearTrend.fit(x: [0, 1, 2, 3, 4], y: [0, 0.3, 0.1, 0.5, 0.4]))
        let z = noisy.slope / noisy.standardError
        #expect(z > 2 && z < 3.182 && noisy.direction == .flat, "slope \(noisy.slope), standard error \(noisy.standardError)")
        #expect(LinearTrend.tQuantile975(degrees: 3) == 3.182 && LinearTrend.tQuantile975(degrees: 45) == 2.021
                    && LinearTrend.tQuantile975(degrees: 1000) == 1.980 && LinearTrend.tQuantile975(degrees: 0) == .infinity)
    }
}

@Suite(.serialized) struct SweepTests {
    static func definition(_ sizes: [String], budget: SweepBudget = .tokens(12_000), text: String? = nil) -> SweepDefinition {
        SweepDefinition(data: Fixtures.shared.data, sizes: sizes.map(SweepSize.init), modes: [.fp, .binary], budget: budget,
                        basePreset: "tiny", context: 32, batchSize: nil, microBatchSize: nil, seed: 3, evalWindows: 8, text: text)
    }

    /// `sweep --plan`: every run with the tokens its budget gives and a measured rate, the
    /// hours their quotient, and no sweep directory written.
    @Test func planTimesEveryRunAndWritesNothing() throws {
        let out = Fixtures.temporaryDirectory("plan").appendingPathComponent("sweep")
        let result = try Fixtures.run(["sweep", "--data", Fixtures.shared.data, "--presets", "32x1,48x2", "--modes", "fp,binary",
                                       "--tokens-per-param", "20", "--base-preset", "tiny", "--context", "32", "--out", out.path,
                                       "--plan"])
        #expect(result.status == 0, "\(result.stderr)")
        let rows = result.stdout.split(separator: "\n").filter { $0.hasPrefix("| 32x1-") || $0.hasPrefix("| 48x2-") }
        #expect(rows.count == 4, "\(result.stdout)")
        let definition = Self.definition(["32x1", "48x2"], budget: .tokensPerParameter(20))
        for row in rows {
            let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            let (size, mode) = (String(cells[0].split(separator: "-")[0]), WeightMode(rawValue: String(cells[0].split(separator: "-")[1])))
            let config = try definition.runConfig(size: SweepSize(size), mode: try #require(mode), vocabSize: 320)
            #expect(Int(cells[2]) == config.training.steps, "\(row)")
            let rate = try #require(Double(cells[4])), hours = try #require(Double(cells[5]))
            let tokens = Double(config.training.steps * config.training.batchSize * 32)
            #expect(rate > 0 && abs(hours - tokens / rate / 3600) <= 0.005 + 0.01 * hours, "\(row)")
        }
        #expect(result.stdout.contains("total: ") && result.stdout.contains("(4 runs)"))
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }

    @Test func tinySweepEndToEnd() throws {
        let dir = Fixtures.temporaryDirectory("sweep")
        var started: [String] = []
        // A second corpus: another text from the same generator (a different seed).
        let text = dir.appendingPathComponent("second.txt")
        try Fixtures.corpusText(lines: 400, seed: 11).write(to: text, atomically: true, encoding: .utf8)
        let definition = Self.definition(["32x1", "tiny"], text: text.path)
        // The time left after each run: the planned FLOPs of the runs left at the pace so far.
        var costs: [String: Double] = [:], estimates: [(reported: Double?, expected: Double)] = []
        for size in ["32x1", "tiny"] {
            for mode in [WeightMode.fp, .binary] {
                costs["\(size)-\(mode.rawValue)"] = Sweep.cost(try definition.runConfig(size: SweepSize(size), mode: mode, vocabSize: 320))
            }
        }
        let t0 = ProcessInfo.processInfo.systemUptime
        let results = try Sweep.run(definition: definition, directory: dir, force: false) { event in
            switch event {
            case .starting(let run, _, _, _, _): started.append(run)
            case .finished(_, let secondsLeft):
                let done = Set(started.prefix(estimates.count + 1))
                let trained = costs.filter { done.contains($0.key) }.values.reduce(0, +)
                let left = costs.filter { !done.contains($0.key) }.values.reduce(0, +)
                estimates.append((secondsLeft, (ProcessInfo.processInfo.systemUptime - t0) * left / trained))
            default: break
            }
        }
        #expect(results.count == 4)
        #expect(started == ["32x1-fp", "32x1-binary", "tiny-fp", "tiny-binary"])
        #expect(estimates.count == 4 && estimates.last?.reported == 0)
        for (reported, expected) in estimates.dropLast() {
            let value = try #require(reported)
            #expect(value > 0 && abs(value - expected) <= 0.25 * expected, "reported \(value) s left, expected about \(expected) s")
        }
        for r in results {
            #expect(r.finalValLoss.isFinite && r.finalValLoss < 5.77)  // below log(320), the untrained loss
            // The text loss is the run's checkpoint evaluated on the encoded text, as `eval --text` does.
            let (model, _, _) = try Checkpoint.loadModel(runDirectory: dir.appendingPathComponent("runs/\(r.run)"), batch: 8)
            let ids = try Tokenizer(path: Fixtures.shared.tokenizer).encode(try Corpus.readText(text.path))
            let expected = Double(Evaluation.loss(model: model, tokens: ids, batch: 8))
            #expect(abs(try #require(r.textLoss) - expected) < 1e-5 * expected, "\(r.run): \(String(describing: r.textLoss)) vs \(expected)")
            #expect(r.tokens >= 12_000 - 256 && r.tokens <= 12_000 + 256)
            #expect(r.trainingFlops > 0 && !r.curve.isEmpty)
            // The loss by position averages to the checkpoint's loss on the same windows.
            let positions = try #require(r.lossByPosition), windows = try #require(r.positionWindows)
            let dataset = try TokenDataset(directory: Fixtures.shared.data)
            let whole = Double(Evaluation.loss(model: model, dataset: dataset, windows: windows, batch: 8))
            #expect(positions.count == 32 && windows > 8)
            #expect(abs(positions.reduce(0, +) / 32 - whole) < 1e-5 * whole, "\(r.run)")
        }
        let csv = try String(contentsOf: dir.appendingPathComponent("results.csv"), encoding: .utf8)
        #expect(csv.split(separator: "\n").count == 5 && csv.hasPrefix(SweepResult.csvHeader))

        let markdown = try SweepReport(directory: dir).write()
        #expect(markdown.contains("too few points (2 < 3): no fit"))
        #expect(markdown.contains("binary - fp"))
        #expect(markdown.contains("45 nm"))
        #expect(markdown.contains("## Second corpus: `\(text.path)`"))
        #expect(markdown.contains("## Loss by position in the window") && markdown.contains("4 of 4 runs measured"))
        for name in ["loss_vs_params.svg", "loss_vs_compute.svg", "loss_vs_energy.svg", "training_curves.svg",
                     "loss_vs_params_short_context.svg", "loss_vs_params_long_context.svg"] {
            let svg = try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
            #expect(isValidSVG(svg), "\(name) is not valid SVG")
        }

        // A sweep from before the measurement: `report --by-position` measures the same values.
        var cleared = try Sweep.loadResults(dir)
        for i in cleared.indices { (cleared[i].lossByPosition, cleared[i].positionWindows) = (nil, nil) }
        try Sweep.saveResults(cleared, directory: dir)
        #expect(!(try SweepReport(directory: dir).markdown().contains("## Loss by position")))
        let filled = try Fixtures.run(["report", dir.path, "--by-position"])
        #expect(filled.status == 0 && filled.stderr.contains("measured 4 runs"), "\(filled.stderr)")
        #expect(try Sweep.loadResults(dir) == results)

        // Running it again trains nothing.
        var events: [String] = []
        _ = try Sweep.run(definition: definition, directory: dir, force: false) { event in
            switch event {
            case .skipped(let run): events.append("skip " + run)
            case .starting(let run, _, _, _, _): events.append("start " + run)
            default: break
            }
        }
        #expect(events == ["skip 32x1-fp", "skip 32x1-binary", "skip tiny-fp", "skip tiny-binary"])

        // A different definition is refused, and with force only the changed runs train.
        #expect(throws: BitNetError.self) {
            _ = try Sweep.run(definition: Self.definition(["32x1", "tiny", "48x2"], text: text.path), directory: dir, force: false) { _ in }
        }
        events = []
        let more = try Sweep.run(definition: Self.definition(["32x1", "tiny", "48x2"], text: text.path), directory: dir,
                                 force: true) { event in
            if case .starting(let run, _, _, _, _) = event { events.append(run) }
        }
        #expect(events == ["48x2-fp", "48x2-binary"])
        #expect(more.count == 6)
        let fitted = try SweepReport(directory: dir)
        #expect(fitted.fitAgainstParameters(.fp) != nil && fitted.fitAgainstParameters(.binary) != nil)

        // `report --predict` at a trained size: the tokens and FLOPs the sweep gave it, and
        // each law evaluated there.
        let extrapolation = try fitted.extrapolate(to: SweepSize("48x2"))
        #expect(extrapolation.rows.map(\.mode) == [.fp, .binary])
        for row in extrapolation.rows {
            let trained = try #require(more.first { $0.run == "48x2-\(row.mode.rawValue)" })
            #expect(extrapolation.tokens == trained.tokens && row.nonEmbeddingParameters == trained.nonEmbeddingParameters)
            #expect(abs(row.trainingFlops - trained.trainingFlops) <= 1e-9 * trained.trainingFlops)
            let compute = try #require(fitted.fitAgainstCompute(row.mode)).predict(trained.trainingFlops)
            #expect(abs(try #require(row.againstCompute) - compute) < 1e-9)
        }
        let printed = try Fixtures.run(["report", dir.path, "--predict", "48x2,tiny"])
        #expect(printed.status == 0 && printed.stdout.contains("48x2: ") && printed.stdout.contains("\ntiny: "), "\(printed.stderr)")
        for value in FlagCase.values + ["48y2", "48x0", ","] {
            let refused = try Fixtures.run(["report", dir.path, "--predict", value])
            #expect((refused.status == 1 || refused.status == 64) && refused.stdout.isEmpty, "\(value): \(refused.stderr)")
            #expect(refused.stderr.split(separator: "\n").first?.contains("--predict") == true, "\(value): \(refused.stderr)")
            #expect(refused.stderr.split(separator: "\n").count == 1 || refused.stderr.contains("--help"), "\(value): \(refused.stderr)")
        }
        let both = try Fixtures.run(["report", dir.path, "--predict", "48x2", "--by-position"])
        #expect(both.status == 64 && both.stderr.contains("--by-position"), "\(both.stderr)")

        // `report --predict-run` on one of the sweep's own runs measures it as the sweep did:
        // its recorded final loss and loss by position come back.
        let own = try fitted.predict(runDirectory: dir.appendingPathComponent("runs/48x2-binary"))
        let recorded = try #require(more.first { $0.run == "48x2-binary" })
        #expect(own.tokens == recorded.tokens && own.nonEmbeddingParameters == recorded.nonEmbeddingParameters && own.laws.count == 4)
        #expect(abs(own.laws[1].predicted - (try #require(fitted.fitAgainstCompute(.binary))).predict(recorded.trainingFlops)) < 1e-9)
        for (law, expected) in zip(own.laws, [recorded.finalValLoss, recorded.finalValLoss,
                                              recorded.positionLoss(PositionLoss.shortContext), recorded.positionLoss(PositionLoss.longContext)]) {
            let value = try #require(expected)
            #expect(abs(law.measured - value) < 1e-5 * value, "\(law.name): \(law.measured) against \(value)")
        }
        let checked = try Fixtures.run(["report", dir.path, "--predict-run", dir.path + "/runs/tiny-fp"])
        #expect(checked.status == 0 && checked.stdout.contains("| against training FLOPs | "), "\(checked.stderr)")
        let noRun = try Fixtures.run(["report", dir.path, "--predict-run", dir.path + "/runs/missing"])
        #expect(noRun.status == 1 && noRun.stderr.split(separator: "\n").count == 1 && noRun.stderr.contains("runs/missing"), "\(noRun.stderr)")
        let strayData = try Fixtures.run(["report", dir.path, "--data", Fixtures.shared.data])
        #expect(strayData.status == 64 && strayData.stderr.contains("--predict-run"), "\(strayData.stderr)")
        // A sweep.json asking for no windows leaves nothing to measure: one line, not a NaN in a table.
        var noWindows = Self.definition(["32x1", "tiny", "48x2"], text: text.path)
        noWindows.evalWindows = 0
        try AtomicFile.writeJSON(noWindows, to: Sweep.definitionURL(dir))
        let empty = try Fixtures.run(["report", dir.path, "--predict-run", dir.path + "/runs/tiny-fp"])
        #expect(empty.status == 1 && empty.stdout.isEmpty && empty.stderr.contains("no finite loss"), "\(empty.stderr)")
    }

    /// `report --seeds`: two seeds' sweeps side by side, by hand. Seed 3 trains three sizes,
    /// seed 4 the two smaller; each loss is a mean with its range, each gap is taken within
    /// a seed, and the trend goes through every seed's gap.
    @Test func seedsSideBySide() throws {
        func sweep(_ name: String, _ seed: UInt64, _ sizes: [String], budget: SweepBudget = .tokens(12_000),
                   loss: (String, WeightMode) -> Double) throws -> URL {
            let dir = Fixtures.temporaryDirectory(name)
            var definition = Self.definition(sizes, budget: budget)
            definition.seed = seed
            try AtomicFile.writeJSON(definition, to: Sweep.definitionURL(dir))
            let results = sizes.flatMap { size in
                [WeightMode.fp, .binary].map { mode in
                    SweepResult(run: "\(size)-\(mode.rawValue)", size: size, mode: mode, parameters: 0,
                                nonEmbeddingParameters: ["32x1": 1_000, "48x1": 10_000, "64x2": 100_000][size] ?? 0, tokens: 12_000,
                                trainingFlops: 1e9, wallSeconds: 1, finalTrainLoss: 0, finalValLoss: loss(size, mode), textLoss: nil, curve: [])
                }
            }
            try Sweep.saveResults(results, directory: dir)
            return dir
        }
        // Gaps: seed 3 0.30, 0.20, 0.10 at 10^3, 10^4, 10^5 parameters; seed 4 0.40, 0.20.
        let gap3 = ["32x1": 0.3, "48x1": 0.2, "64x2": 0.1], gap4 = ["32x1": 0.4, "48x1": 0.2]
        let a = try sweep("seeds-a", 3, ["32x1", "48x1", "64x2"]) { size, mode in 3 + (mode == .binary ? gap3[size]! : 0) }
        let b = try sweep("seeds-b", 4, ["32x1", "48x1"]) { size, mode in 3.5 + (mode == .binary ? gap4[size]! : 0) }
        let spread = try SweepReport(directory: a).seedSpread([try SweepReport(directory: b)])
        #expect(spread.seeds == [3, 4] && spread.sizes.map(\.size) == ["32x1", "48x1", "64x2"])
        let gaps = spread.sizes[0].gaps(.binary)
        #expect(gaps.count == 2 && abs((gaps[3] ?? 0) - 0.3) < 1e-12 && abs((gaps[4] ?? 0) - 0.4) < 1e-12)
        let markdown = spread.markdown()
        #expect(markdown.contains("| 32x1 | 1000 | 2 | 3.2500 (3.0000 to 3.5000) | 3.6000 (3.3000 to 3.9000) | +0.3500 (+0.3000 to +0.4000) |"),
                "\(markdown)")
        #expect(markdown.contains("| 64x2 | 100000 | 1 | 3.0000 | 3.1000 | +0.1000 |"), "\(markdown)")
        // Through (3, 0.3), (3, 0.4), (4, 0.2), (4, 0.2), (5, 0.1): -0.36 / 2.8 by the normal equations.
        let x = [3.0, 3, 4, 4, 5], y = [0.3, 0.4, 0.2, 0.2, 0.1]
        let n = Double(x.count), sx = x.reduce(0, +), sy = y.reduce(0, +)
        let slope = (n * zip(x, y).map(*).reduce(0, +) - sx * sy) / (n * x.map { $0 * $0 }.reduce(0, +) - sx * sx)
        let trend = try #require(spread.trend(.binary))
        #expect(abs(trend.slope - slope) < 1e-12 && trend.points == 5 && abs(slope + 0.36 / 2.8) < 1e-12)
        #expect(markdown.contains("binary - fp -0.129 nats per 10x the parameters"), "\(markdown)")
        // Another budget is another sweep, not another seed: one line, from the command too.
        let other = try sweep("seeds-c", 5, ["32x1"], budget: .tokens(24_000)) { _, _ in 3 }
        #expect(throws: BitNetError.self) { try SweepReport(directory: a).seedSpread([try SweepReport(directory: other)]) }
        let refused = try Fixtures.run(["report", a.path, "--seeds", b.path + "," + other.path])
        #expect(refused.status == 1 && refused.stderr.split(separator: "\n").count == 1 && refused.stderr.contains("not the same sweep"),
                "\(refused.stderr)")
        let printed = try Fixtures.run(["report", a.path, "--seeds", b.path])
        #expect(printed.status == 0 && printed.stdout.contains("Seeds 3, 4:"), "\(printed.stderr)")
    }

    /// Stopped by a signal, every run in progress checkpoints; the next call resumes them.
    @Test(arguments: [1, 2]) func interruptedSweepResumes(jobs: Int) throws {
        let dir = Fixtures.temporaryDirectory("sweep-stop")
        let steps = Mutex(0)
        let partial = try Sweep.run(definition: Self.definition(["32x1"]), directory: dir, force: false, jobs: jobs,
                                    shouldStop: { steps.withLock { $0 >= 1 } }) { event in
            if case .training(_, .step) = event { steps.withLock { $0 += 1 } }
        }
        #expect(partial.isEmpty)
        var resumed: [String] = []
        let results = try Sweep.run(definition: Self.definition(["32x1"]), directory: dir, force: false, jobs: jobs) { event in
            if case .starting(let run, _, _, _, true) = event { resumed.append(run) }
        }
        #expect(resumed.count == jobs && results.count == 2, "\(resumed)")
    }

    /// Two runs at once: each run's metrics equal the same run trained alone on its share
    /// of the threads (the runs do not disturb each other), the costliest start first,
    /// and the results keep the plan's order.
    @Test func concurrentRunsEqualRunsTrainedAlone() throws {
        let dir = Fixtures.temporaryDirectory("sweep-jobs")
        let definition = Self.definition(["32x1", "tiny"])
        var started: [String] = []
        let results = try Sweep.run(definition: definition, directory: dir, force: false, jobs: 2) { event in
            if case .starting(let run, _, _, _, _) = event { started.append(run) }
        }
        #expect(results.map(\.run) == ["32x1-fp", "32x1-binary", "tiny-fp", "tiny-binary"])
        #expect(Set(started.prefix(2)) == ["tiny-fp", "tiny-binary"], "\(started)")
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        let share = ConcurrentRuns(jobs: 2).threadsPerRun
        for (size, mode, config) in try Sweep.configs(definition, dataset: dataset) {
            let name = SweepDefinition.runName(size: size, mode: mode)
            let alone = Fixtures.temporaryDirectory("alone-\(name)")
            try Parallel.withThreads(share) {
                try Trainer(runDirectory: alone, config: config, dataset: dataset, resume: false, force: false).run { _ in }
            }
            let swept = try Fixtures.deterministicMetrics(dir.appendingPathComponent("runs/\(name)"))
            #expect(try Fixtures.deterministicMetrics(alone) == swept, "\(name)")
        }
    }

    @Test func badDefinitionsAreRefused() throws {
        let dir = Fixtures.temporaryDirectory("sweep-bad")
        func message(_ d: SweepDefinition) -> String {
            do {
                _ = try Sweep.run(definition: d, directory: dir, force: false) { _ in }
                return ""
            } catch {
                return "\(error)"
            }
        }
        #expect(message(Self.definition([])).contains("size list is empty"))
        #expect(message(Self.definition(["huge"])).contains("unknown preset or size 'huge'"))
        #expect(message(Self.definition(["tiny"], budget: .tokens(100))).contains("less than one optimizer step"))
        #expect(message(Self.definition(["tiny"], budget: .flops(-1))).contains("budget of FLOPs per run must be positive"))
        let short = dir.appendingPathComponent("short.txt")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try "too short".write(to: short, atomically: true, encoding: .utf8)
        #expect(message(Self.definition(["tiny"], text: short.path)).contains("smaller than one context window"))
        #expect(message(Self.definition(["tiny"], text: dir.path + "/missing.txt")).contains("missing.txt"))
        // Results that cannot be read (an lr-sweep's, or a damaged file) are not taken for
        // none: the sweep would train its runs again and write over them.
        try Data("[{\"mode\": \"fp\", \"learning_rate\": 0.01}]".utf8).write(to: Sweep.resultsURL(dir))
        #expect(message(Self.definition(["tiny"])).contains("results.json: not a sweep's results"))
        let report = try Fixtures.run(["report", dir.path])
        #expect(report.status == 1 && report.stderr.split(separator: "\n").count == 1 && report.stderr.contains("results.json"),
                "\(report.stderr)")
        // Nothing was written for a refused sweep.
        #expect(!FileManager.default.fileExists(atPath: Sweep.definitionURL(dir).path))
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("runs").path))
    }

    /// Every mode of a size trains on the same tokens under a tokens-per-parameter budget
    /// (the quantized modes' extra norm gains do not change it), counted on `fp`'s parameters.
    @Test func tokensPerParameterBudgetIsTheSameForEveryMode() throws {
        var definition = Self.definition(["64x2"], budget: .tokensPerParameter(20))
        definition.modes = [.fp, .binary, .ternary, .int4]
        let configs = try WeightMode.allCases.map { try definition.runConfig(size: SweepSize("64x2"), mode: $0, vocabSize: 320) }
        let fp = configs[0]
        #expect(configs[1].model.nonEmbeddingParameters > fp.model.nonEmbeddingParameters)  // the SubLN gains
        let tokensPerStep = fp.training.batchSize * fp.model.context
        #expect(fp.training.steps == (20 * fp.model.nonEmbeddingParameters + tokensPerStep / 2) / tokensPerStep)
        for c in configs { #expect(c.training.steps == fp.training.steps, "\(c.model.mode)") }
    }

    /// `--preset WIDTHxLAYERS` (train, bench, lr-sweep) shapes the model as the sweep's size
    /// of that name, so an lr-sweep tunes exactly the models a sweep trains.
    @Test func presetFlagTakesASweepSize() throws {
        let run = Fixtures.temporaryDirectory("preset-size").appendingPathComponent("run")
        let result = try Fixtures.run(["train", "--data", Fixtures.shared.data, "--out", run.path, "--preset", "48x2",
                                       "--context", "32", "--steps", "1", "--batch-size", "2", "--micro-batch-size", "2"])
        #expect(result.status == 0, "\(result.stderr)")
        let saved = try #require(try RunDirectory(run).readConfig())
        let definition = SweepDefinition(data: Fixtures.shared.data, sizes: [SweepSize("48x2")], modes: [.binary], budget: .tokens(64),
                                         basePreset: "mini", context: 32, batchSize: 2, microBatchSize: 2, seed: 0, evalWindows: 1)
        let swept = try definition.runConfig(size: SweepSize("48x2"), mode: .binary, vocabSize: 320).model
        #expect(saved.model == swept, "\(saved.model) vs \(swept)")
        #expect(saved.model.dim == 48 && saved.model.layers == 2 && saved.model.heads == 3)
    }

    /// The report on results that follow known laws exactly: the held-out size is
    /// predicted, the gap and second-corpus tables hold the differences, and the energy
    /// fit uses each mode's arithmetic.
    @Test func reportPredictsTheLargestSizeOfAnExactLaw() throws {
        let dir = Fixtures.temporaryDirectory("sweep-report")
        let sizes = ["32x1", "48x1", "64x2", "96x2", "128x3"]
        let definition = Self.definition(sizes, text: "second.txt")
        try AtomicFile.writeJSON(definition, to: Sweep.definitionURL(dir))
        func law(_ mode: WeightMode, _ n: Double) -> Double { mode == .fp ? 9 * pow(n, -0.3) + 1.5 : 4 * pow(n, -0.2) + 1.8 }
        var results: [SweepResult] = []
        for size in sizes {
            for mode in [WeightMode.fp, .binary] {
                let config = try definition.runConfig(size: SweepSize(size), mode: mode, vocabSize: 320).model
                let n = Double(config.nonEmbeddingParameters), tokens = 12_000
                // By position (context 32): short context (positions 3-4) on the law plus 0.5, long
                // (17-32) on a steeper law, the others far off both.
                let positions = (1...32).map { p -> Double in
                    PositionLoss.shortContext(32).contains(p) ? law(mode, n) + 0.5
                        : PositionLoss.longContext(32).contains(p) ? 2 * law(mode, n) - 2 : 7.0
                }
                results.append(SweepResult(run: "\(size)-\(mode.rawValue)", size: size, mode: mode, parameters: config.totalParameters,
                                           nonEmbeddingParameters: config.nonEmbeddingParameters, tokens: tokens,
                                           trainingFlops: 6 * n * Double(tokens), wallSeconds: 1800, finalTrainLoss: law(mode, n),
                                           finalValLoss: law(mode, n), textLoss: law(mode, n) + (mode == .fp ? 1 : 1.25), curve: [],
                                           lossByPosition: positions, positionWindows: 64))
            }
        }
        try Sweep.saveResults(results, directory: dir)
        let report = try SweepReport(directory: dir)
        let predictions = report.predictions()
        #expect(predictions.count == 4)  // 2 modes x (parameters, compute)
        for p in predictions {
            #expect(p.heldOut.size == "128x3" && p.fit.points == 4)
            #expect(abs(p.error) < 1e-3, "\(p.mode) against \(p.against): predicted \(p.predicted), actual \(p.heldOut.finalValLoss)")
        }
        // Energy: fp's FP16 multiply-adds cost more per token than binary's additions at every size.
        for size in sizes {
            let fp = try #require(results.first { $0.size == size && $0.mode == .fp })
            let binary = try #require(results.first { $0.size == size && $0.mode == .binary })
            #expect(report.inferenceEnergy(fp) > 10 * report.inferenceEnergy(binary))
        }
        #expect(try #require(report.fitAgainstEnergy(.fp)).rSquared > 0.99)
        let markdown = try report.write()
        #expect(markdown.contains("Wall time of the runs in all: 5.00 hours."))
        // An exact law: leaving out any one size finds the same exponent.
        let fpRow = try #require(markdown.split(separator: "\n").first { $0.hasPrefix("| fp | non-embedding parameters |") })
        #expect(fpRow.hasSuffix("| 0.3000-0.3000 |") || fpRow.hasSuffix("| 0.2999-0.3000 |") || fpRow.hasSuffix("| 0.3000-0.3001 |"), "\(fpRow)")
        // The gap's trend: the slope of the gaps against log10 N, by the normal equations.
        var lx: [Double] = [], gaps: [Double] = []
        for size in sizes {
            let fp = try #require(results.first { $0.size == size && $0.mode == .fp })
            let binary = try #require(results.first { $0.size == size && $0.mode == .binary })
            lx.append(log10(Double(fp.nonEmbeddingParameters)))
            gaps.append(binary.finalValLoss - fp.finalValLoss)
        }
        let k = Double(lx.count), sx = lx.reduce(0, +), sy = gaps.reduce(0, +)
        let sxy = zip(lx, gaps).map(*).reduce(0, +), sxx = lx.map { $0 * $0 }.reduce(0, +)
        let slope = (k * sxy - sx * sy) / (k * sxx - sx * sx)
        #expect(markdown.contains(String(format: "binary - fp %+.3f nats per 10x the parameters", slope)), "slope \(slope)")
        #expect(markdown.contains("## Prediction test"))
        #expect(markdown.contains("inference energy per token"))
        // The second corpus's gaps are the validation gaps plus 0.25.
        let second = try #require(markdown.components(separatedBy: "## Second corpus").last)
        let firstRow = try #require(second.split(separator: "\n").first { $0.hasPrefix("| 32x1 |") })
        let fp = try #require(results.first { $0.run == "32x1-fp" }), binary = try #require(results.first { $0.run == "32x1-binary" })
        let gap = binary.finalValLoss - fp.finalValLoss
        #expect(firstRow.contains(String(format: "%+.4f |", gap + 0.25)), "\(firstRow)")
        #expect(markdown.contains(String(format: "| 32x1 | %d | %.4f | %.4f | %+.4f |", fp.nonEmbeddingParameters, fp.finalValLoss,
                                         binary.finalValLoss, gap)))
        #expect(isValidSVG(try String(contentsOf: dir.appendingPathComponent("loss_vs_energy.svg"), encoding: .utf8)))
        // Both parts are exact laws: each predicts its largest size, and the gap tables
        // hold each part's own differences.
        for part in ["### Every position", "### Short context (3-4 tokens)", "### Long context (17-32 tokens)"] {
            let section = try #require(markdown.components(separatedBy: part).dropFirst().first)
            let rows = section.split(separator: "\n").filter { $0.hasPrefix("| fp |") || $0.hasPrefix("| binary |") }.prefix(2)
            #expect(rows.count == 2, "\(part)")
            for row in rows { #expect(row.hasSuffix("| +0.0000 (+0.0%) |") || row.hasSuffix("| -0.0000 (-0.0%) |"), "\(part): \(row)") }
            // Each part's law in full (a, alpha, c): short context is the law plus 0.5, long twice the law minus 2.
            for row in rows where !part.contains("Every") {
                let cells = row.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
                let fp = cells[0] == "fp", short = part.contains("Short")
                let a = (fp ? 9.0 : 4.0) * (short ? 1 : 2), alpha = fp ? 0.3 : 0.2
                let c = short ? (fp ? 1.5 : 1.8) + 0.5 : 2 * (fp ? 1.5 : 1.8) - 2
                let fitted = cells[1...3].compactMap { Double($0) }
                #expect(fitted.count == 3 && abs(fitted[0] - a) < 0.01 * a && abs(fitted[1] - alpha) < 1e-3 && abs(fitted[2] - c) < 1e-3,
                        "\(part): \(row)")
            }
            let gapRow = try #require(section.split(separator: "\n").first { $0.hasPrefix("| 32x1 |") })
            // Every position: the constants cancel; 2 of the 32 positions carry the gap once, 16 twice.
            let expected = part.contains("Short") ? gap : part.contains("Long") ? 2 * gap : (2 * gap + 16 * 2 * gap) / 32
            #expect(gapRow.hasSuffix(String(format: "| %+.4f |", expected)), "\(part): \(gapRow)")
        }
        #expect(isValidSVG(try String(contentsOf: dir.appendingPathComponent("loss_vs_params_long_context.svg"), encoding: .utf8)))

        // A size beyond the sweep: every law gives it its own exact value.
        let beyond = try report.extrapolate(to: SweepSize("160x4"))
        #expect(beyond.rows.count == 2 && beyond.sweepContext == 32 && beyond.context == 32)
        #expect(beyond.tokens >= 12_000 - 256 && beyond.tokens <= 12_000 + 256)
        for row in beyond.rows {
            let n = Double(row.nonEmbeddingParameters), expected = law(row.mode, n)
            #expect(n > 2 * Double(try #require(results.last).nonEmbeddingParameters))
            #expect(abs(try #require(row.againstParameters) - expected) < 1e-3, "\(row.mode)")
            #expect(abs(try #require(row.shortContext) - (expected + 0.5)) < 1e-3, "\(row.mode)")
            #expect(abs(try #require(row.longContext) - (2 * expected - 2)) < 1e-3, "\(row.mode)")
        }
        #expect(beyond.markdown().contains("x the largest size fitted (128x3, "))
        // Without a usable definition there is no recipe to predict with: one line naming sweep.json.
        var unknownBase = definition
        unknownBase.basePreset = "huge"
        try AtomicFile.writeJSON(unknownBase, to: Sweep.definitionURL(dir))
        let base = try Fixtures.run(["report", dir.path, "--predict", "160x4"])
        #expect(base.stderr.contains("sweep.json: base preset: unknown preset 'huge'"), "\(base.stderr)")
        try Data("{\"sizes\": 3".utf8).write(to: Sweep.definitionURL(dir))
        let garbled = try Fixtures.run(["report", dir.path, "--predict", "160x4"])
        #expect(garbled.stderr.contains("sweep.json: cannot be read"), "\(garbled.stderr)")
        try FileManager.default.removeItem(at: Sweep.definitionURL(dir))
        let missing = try Fixtures.run(["report", dir.path, "--predict", "160x4"])
        for failed in [base, garbled, missing] {
            #expect(failed.status == 1 && failed.stderr.split(separator: "\n").count == 1 && failed.stderr.contains("sweep.json"),
                    "\(failed.stderr)")
        }
    }

    @Test(arguments: [1, 2]) func learningRateSweepFlagsDivergence(jobs: Int) throws {
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        let config = Fixtures.tinyRunConfig(mode: .fp, steps: 20, vocabSize: dataset.meta.vocabSize)
        let dir = Fixtures.temporaryDirectory("lr-sweep")
        var progress: [String] = []
        let results = try LearningRateSweep.run(base: config, modes: [.fp, .binary], learningRates: [3e-3, 1000],
                                                dataset: dataset, directory: dir, force: false, jobs: jobs) { progress.append($0) }
        #expect(results.map(\.mode) == [.fp, .fp, .binary, .binary] && results.map(\.learningRate) == [3e-3, 1000, 3e-3, 1000])
        // Each finished run says how many are done and, but for the last, about how long the rest take.
        let finishedLines = progress.filter { $0.contains("final val loss") }
        #expect(finishedLines.count == 4 && finishedLines.last?.hasSuffix("(4 of 4 runs finished)") == true, "\(progress)")
        #expect(finishedLines.dropLast().allSatisfy { $0.contains("runs finished; the other runs: about ") }, "\(progress)")
        for r in results {
            #expect(r.diverged == (r.learningRate == 1000), "\(r)")
        }
        let svg = try String(contentsOf: dir.appendingPathComponent("lr_sweep.svg"), encoding: .utf8)
        #expect(isValidSVG(svg))
        let decoded = try JSONDecoder().decode([LearningRateResult].self,
                                               from: Data(contentsOf: dir.appendingPathComponent("results.json")))
        #expect(decoded.count == 4)

        // With only each run's config and result left (checkpoints, metrics and the
        // sweep's results gone, as when results are kept in git and run directories are
        // not), a second call trains nothing and returns the same results.
        let fm = FileManager.default
        try fm.removeItem(at: dir.appendingPathComponent("results.json"))
        for run in try fm.contentsOfDirectory(atPath: dir.appendingPathComponent("runs").path) {
            let runDir = dir.appendingPathComponent("runs").appendingPathComponent(run)
            for file in try fm.contentsOfDirectory(atPath: runDir.path) where file != "config.json" && file != "lr_result.json" {
                try fm.removeItem(at: runDir.appendingPathComponent(file))
            }
        }
        var lines: [String] = []
        let again = try LearningRateSweep.run(base: config, modes: [.fp, .binary], learningRates: [3e-3, 1000],
                                              dataset: dataset, directory: dir, force: false, jobs: jobs) { lines.append($0) }
        #expect(again.count == 4)
        for (a, b) in zip(again, results) {
            #expect(a.mode == b.mode && a.learningRate == b.learningRate && a.diverged == b.diverged)
            #expect(a.finalValLoss == b.finalValLoss || (a.finalValLoss.isNaN && b.finalValLoss.isNaN))
        }
        #expect(lines.filter { $0.contains("finished before") }.count == 4, "\(lines)")
        #expect(!lines.contains { $0.contains("training") }, "\(lines)")
    }
}

/// The energy estimate against the arithmetic done by hand for the tiny preset.
@Suite struct EnergyTests {
    @Test func tinyPresetEnergyByHand() throws {
        let config = try Preset.named("tiny").model  // dim 64, 2 layers, SwiGLU ffn 176
        // Weights: 2 x (4 x 64 x 64 + 3 x 64 x 176) = 100352; outputs: 2 x (4 x 64 + 2 x 176 + 64) = 1344.
        let node45 = OperationEnergy.nodes[0], node7 = OperationEnergy.nodes[1]
        func pj(_ a: EnergyEstimate.Arithmetic, _ n: OperationEnergy) -> Double {
            EnergyEstimate.picojoulesPerToken(config: config, arithmetic: a, energy: n)
        }
        #expect(abs(pj(.fp32, node45) - 100352 * 4.6) < 1e-6)
        #expect(abs(pj(.fp16, node45) - 100352 * 1.5) < 1e-6)
        #expect(abs(pj(.int8, node45) - (100352 * 0.23 + 1344 * 3.7)) < 1e-6)
        #expect(abs(pj(.bitnet, node45) - (100352 * 0.03 + 1344 * 3.7)) < 1e-6)
        #expect(abs(pj(.fp16, node7) - 100352 * 0.5) < 1e-6)
        #expect(abs(pj(.bitnet, node7) - (100352 * 0.007 + 1344 * 1.31)) < 1e-6)
    }
}

/// Learning rates per (size, mode) from lr-sweep results (issue 14).
@Suite struct LearningRateRuleTests {
    /// An lr-sweep directory as `lr-sweep` leaves it: results.json and each run's config.
    static func lrSweep(width: Int, results: [(WeightMode, Float, Double, Bool)]) throws -> URL {
        let dir = Fixtures.temporaryDirectory("lr-sweep-\(width)")
        var entries: [LearningRateResult] = []
        for (mode, rate, loss, diverged) in results {
            entries.append(LearningRateResult(mode: mode, learningRate: rate, initialValLoss: 6, finalValLoss: loss,
                                              diverged: diverged, note: ""))
            var config = Fixtures.tinyRunConfig(mode: mode)
            config.model.dim = width
            config.model.heads = width / 16
            let run = dir.appendingPathComponent("runs").appendingPathComponent("\(mode.rawValue)-lr\(rate)")
            try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
            try JSONEncoder().encode(config).write(to: run.appendingPathComponent("config.json"))
        }
        try JSONEncoder().encode(entries).write(to: dir.appendingPathComponent("results.json"))
        return dir
    }

    /// Two widths give lr = a width^-k per mode, through each one's best rate that did
    /// not diverge; a sweep's run config takes the rate for its size's width.
    @Test func fitsAPowerOfWidthAndTheSweepUsesIt() throws {
        let narrow = try Self.lrSweep(width: 64, results: [(.fp, 1e-3, 4.0, false), (.fp, 3e-3, 3.5, false), (.fp, 1e-2, 9, true),
                                                           (.binary, 3e-3, 4.1, false), (.binary, 1e-2, 3.9, false)])
        let wide = try Self.lrSweep(width: 256, results: [(.fp, 1.5e-3, 3.2, false), (.fp, 3e-3, 3.3, false),
                                                         (.binary, 5e-3, 3.6, false), (.binary, 1e-2, .nan, true)])
        let rule = try LearningRateRule.from(sweeps: [narrow, wide])
        let fp = try #require(rule.laws["fp"]), binary = try #require(rule.laws["binary"])
        #expect(abs(fp.k - 0.5) < 1e-6, "fp: 3e-3 at 64 and 1.5e-3 at 256 give k = 0.5, got \(fp.k)")
        #expect(abs(binary.k - log(2.0) / log(4.0)) < 1e-6, "binary: 1e-2 at 64, 5e-3 at 256")
        #expect(rule.description.contains("fp: lr = 0.024 width^-0.500 (from 0.003 at width 64, 0.0015 at width 256)"),
                "\(rule.description)")
        // The same best rate at both widths: one rate for every width, not width^-0.
        let flat = try LearningRateRule.from(sweeps: [narrow, Self.lrSweep(width: 256, results: [(.binary, 1e-2, 3.5, false)])])
        #expect(flat.description.contains("binary: lr = 0.01 at every width (from 0.01 at width 64, 0.01 at width 256)"),
                "\(flat.description)")
        let definition = SweepDefinition(data: Fixtures.shared.data, sizes: [SweepSize("128x2")], modes: [.fp, .binary],
                                         budget: .tokens(10_000), basePreset: "tiny", context: 32, batchSize: nil,
                                         microBatchSize: nil, seed: 1, evalWindows: 4, learningRateRule: rule)
        let config = try definition.runConfig(size: SweepSize("128x2"), mode: .fp, vocabSize: 320)
        let expected = 3e-3 * (64.0 / 128.0).squareRoot()
        #expect(abs(Double(try #require(config.training.learningRate)) - expected) < 1e-7 * expected / 1e-3)
        // One lr-sweep: its best rate for every size.
        let single = try LearningRateRule.from(sweeps: [narrow])
        #expect(single.learningRate(mode: .fp, width: 512) == 3e-3 && single.laws["fp"]?.k == 0)
        // Written into sweep.json and read back.
        let coded = try JSONDecoder().decode(SweepDefinition.self, from: JSONEncoder().encode(definition))
        #expect(coded == definition)
    }

    @Test func unusableLearningRateSweepsAreRefusedInOneLine() throws {
        let diverged = try Self.lrSweep(width: 64, results: [(.fp, 1e-2, 9, true), (.fp, 3e-2, .nan, true)])
        #expect(throws: BitNetError.self) { try LearningRateRule.from(sweeps: [diverged]) }
        do { _ = try LearningRateRule.from(sweeps: [diverged]) } catch {
            #expect("\(error)".contains("every fp run diverged"), "\(error)")
        }
        let empty = Fixtures.temporaryDirectory("not-an-lr-sweep")
        do { _ = try LearningRateRule.from(sweeps: [empty]) } catch {
            #expect("\(error)".contains("no results.json"), "\(error)")
        }
    }
}
