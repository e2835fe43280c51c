// ptq-report (issue 11): every cell once, each score equal to an eval of its quantized
// run, the files written, and a report that resumes where it stopped.
import Foundation
import Testing
@testable import BitNet

@Suite struct PTQReportTests {
    @Test func everyCellOnceScoredAndResumable() throws {
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        let directory = Fixtures.temporaryDirectory("ptq-report")
        let definition = PTQReportDefinition(fp: QuantizationTests.fpRun, binary: nil, ternary: nil, data: Fixtures.shared.data,
                                             text: Fixtures.shared.corpus, methods: [.rtn], calibrationWindows: 8,
                                             omniQuant: OmniQuantOptions(epochs: 1), groupSize: 64)
        // The fixture's widths are 64 and 176 = 16 x 11: groups of 16.
        let expected = PTQReport.cells(methods: [.rtn], groupSize: 16).map(\.name)
        #expect(expected.count == 15 && expected.contains("rtn-w1.58a16-g16") && expected.contains("rtn-w6a6"))
        var finished: [String] = []
        func collect(_ event: PTQReport.Event) { if case .cellFinished(let name, _, _, _, _) = event { finished.append(name) } }

        // Stopped after three cells, then resumed: every cell exactly once.
        var calls = 0
        _ = try PTQReport.run(definition, directory: directory, shouldStop: { calls += 1; return calls > 3 }, progress: collect)
        #expect(finished == Array(expected.prefix(3)))
        let results = try PTQReport.run(definition, directory: directory, progress: collect)
        #expect(finished == expected)
        #expect(results.count == expected.count + 1 && results.filter { $0.trained == "fp" }.count == 1)

        // Each score is an eval of the cell's quantized run.
        for r in results.prefix(4) {
            let run = r.cell.map { directory.appendingPathComponent("runs").appendingPathComponent($0.name) } ?? definition.fp
            let (model, _, _) = try Checkpoint.loadModel(runDirectory: run, batch: 8)
            #expect(Double(Evaluation.loss(model: model, dataset: dataset, windows: .max, batch: 8)) == r.validationLoss)
            #expect(r.textLoss?.isFinite == true)
        }
        let csv = try String(contentsOf: directory.appendingPathComponent("results.csv"), encoding: .utf8)
        #expect(csv.split(separator: "\n").count == expected.count + 2)
        let report = try String(contentsOf: directory.appendingPathComponent("report.md"), encoding: .utf8)
        #expect(report.contains("15 of 15 cells done") && report.contains("groups of 16 input columns"))
        #expect(isValidSVG(try String(contentsOf: directory.appendingPathComponent("ptq.svg"), encoding: .utf8)))

        // A run again with nothing left to do quantizes nothing, and redraws the report.
        finished = []
        for name in ["report.md", "results.csv", "ptq.svg"] {
            try FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
        _ = try PTQReport.run(definition, directory: directory, progress: collect)
        #expect(finished.isEmpty)
        #expect(try String(contentsOf: directory.appendingPathComponent("report.md"), encoding: .utf8) == report)
        #expect(try String(contentsOf: directory.appendingPathComponent("results.csv"), encoding: .utf8) == csv)
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("ptq.svg").path))
    }

    @Test func groupSizeIsTheLargestThatDividesEveryWidth() {
        #expect(PTQReport.groupSize(limit: 64, widths: [128, 352]) == 32)
        #expect(PTQReport.groupSize(limit: 64, widths: [256, 704]) == 64)
        #expect(PTQReport.groupSize(limit: 100, widths: [768, 2048]) == 64)
        #expect(PTQReport.groupSize(limit: 64, widths: [100, 60]) == nil)
    }

    /// Bad runs get one line naming the flag and nothing is scored.
    @Test func badRunsAreRefusedWithOneLine() throws {
        let directory = Fixtures.temporaryDirectory("ptq-report-bad")
        func message(fp: URL, binary: URL?) -> String {
            let d = PTQReportDefinition(fp: fp, binary: binary, ternary: nil, data: Fixtures.shared.data, text: nil, methods: [.rtn],
                                        calibrationWindows: 8, omniQuant: OmniQuantOptions(epochs: 1), groupSize: 64)
            do { _ = try PTQReport.run(d, directory: directory.appendingPathComponent("out")); return "" } catch { return "\(error)" }
        }
        let fp = QuantizationTests.fpRun
        let missing = message(fp: directory.appendingPathComponent("nothing"), binary: nil)
        #expect(missing.contains("--fp") && missing.contains("no config.json"), "\(missing)")
        let wrongMode = message(fp: fp, binary: fp)
        #expect(wrongMode.contains("--bitnet") && wrongMode.contains("a fp run, not binary") && !wrongMode.contains("\n"), "\(wrongMode)")
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent("out/results.jsonl").path))
        let cli = try Fixtures.run(["ptq-report", "--fp", fp.path, "--bitnet", fp.path, "--data", Fixtures.shared.data,
                                    "--out", directory.appendingPathComponent("cli").path])
        #expect(cli.status == 1 && cli.stderr.split(separator: "\n").count == 1 && cli.stderr.contains("--bitnet"), "\(cli.stderr)")
    }
}
