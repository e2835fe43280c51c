// `bitnet-train ptq-report`: every post-training method at every width on one fp run,
// beside runs trained in 1 and 1.58 bits (issue 11). Resumable cell by cell.
import ArgumentParser
import BitNet
import BitNetCLI
import Foundation

struct PTQReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ptq-report",
        abstract: "Quantize an fp run with every method and width; compare with runs trained in 1 and 1.58 bits.",
        discussion: """
        bitnet-train ptq-report --fp RUN --bitnet RUN [--ternary RUN] --data DATA_DIR [--text FILE] --out DIR
        Cells: every method at W1, W1.58, W2, W3, W4, W8 (activations FP32) per output channel and in groups \
        (the largest power of two up to --group-size dividing every width), and W4A4, W6A6, W8A8. Writes report.md, \
        results.csv and ptq.svg in DIR after every cell; running it again skips finished cells.
        """)

    @Option(help: "The fp run to quantize.") var fp: String
    @Option(help: "A run trained in binary mode (BitNet).") var bitnet: String?
    @Option(help: "A run trained in ternary mode (BitNet b1.58).") var ternary: String?
    @Option(help: "Data directory: its validation split scores every cell, its training split calibrates.") var data: String
    @Option(help: "A second text file to score every cell on.") var text: String?
    @Option(help: "Report directory.") var out: String
    @Option(help: "Methods, comma-separated.") var methods: String = QuantizationMethod.allCases.map(\.rawValue).joined(separator: ",")
    @Option(parsing: .unconditional, help: "Calibration windows of the run's context.") var calibrationWindows: Int = 128
    @Option(parsing: .unconditional, help: "OmniQuant's epochs per block.") var epochs: Int = 20
    @Option(parsing: .unconditional, help: "The grouped cells' largest group size.") var groupSize: Int = 64

    func validate() throws {
        if calibrationWindows < 1 || calibrationWindows > 1 << 20 {
            throw ValidationError("--calibration-windows must be in 1...\(1 << 20), got \(calibrationWindows)")
        }
        if epochs < 0 || epochs > 10_000 { throw ValidationError("--epochs must be in 0...10000, got \(epochs)") }
        if groupSize < 8 || groupSize > 1 << 16 { throw ValidationError("--group-size must be in 8...65536, got \(groupSize)") }
        _ = try parseList(methods, flag: "--methods") { QuantizationMethod(rawValue: $0) }
    }

    func run() throws {
        try reportingErrors {
            let definition = PTQReportDefinition(
                fp: URL(fileURLWithPath: fp), binary: bitnet.map { URL(fileURLWithPath: $0) },
                ternary: ternary.map { URL(fileURLWithPath: $0) }, data: data, text: text,
                methods: try parseList(methods, flag: "--methods") { QuantizationMethod(rawValue: $0) },
                calibrationWindows: calibrationWindows, omniQuant: OmniQuantOptions(epochs: epochs), groupSize: groupSize)
            let interrupted = InterruptFlag(unit: "cell")
            var total = 0
            let results = try PTQReport.run(definition, directory: URL(fileURLWithPath: out), shouldStop: { interrupted.isSet }) { event in
                switch event {
                case .note(let text): log(text)
                case .started(let cells, let done):
                    total = cells
                    log("\(cells) cells, \(done) finished earlier")
                case .cellFinished(let name, let r, let index, let cells, let remaining):
                    log(String(format: "[%d/%d] %@: perplexity %.2f (%.1f s)", index, cells, name, exp(r.validationLoss), r.seconds)
                        + (remaining.map { " | ETA " + formatDuration($0) } ?? ""))
                }
            }
            let done = results.filter { $0.cell != nil }.count
            if interrupted.isSet {
                log("interrupted: \(done) of \(total) cells finished; the same command continues the report")
                throw ExitCode(interrupted.exitStatus)
            }
            log("wrote \(out)/report.md, results.csv and ptq.svg (\(done) cells)")
        }
    }
}
