// `bitnet-train plot`: the loss curves of one or more runs as an SVG chart.
import ArgumentParser
import BitNet
import BitNetCLI
import Foundation

extension TrainingCurves.Axis: ExpressibleByArgument {}

struct PlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract: "Draw runs' training and validation loss curves (from metrics.jsonl) as one SVG chart.",
        discussion: "Each run gets one colour: its validation loss as a line with markers, its logged training "
            + "loss dashed. Prints each run's last logged step and its last and best validation loss. Works on "
            + "runs still training.")

    @Argument(help: "Run directories.") var runs: [String]
    @Option(help: "The SVG file to write.") var out: String
    @Option(help: "The horizontal axis (hours: wall time, carried over resumes).")
    var x: TrainingCurves.Axis = .step
    @Option(parsing: .unconditional, help: "Leave out the steps before this one (the first steps' high loss flattens the rest).")
    var fromStep: Int = 0
    @Flag(help: "Validation loss only.") var valOnly = false
    @Flag(help: "Logarithmic horizontal axis.") var logX = false
    @Flag(help: "Logarithmic vertical axis.") var logY = false
    @Option(help: "The chart's title.") var title: String?

    func validate() throws {
        if fromStep < 0 { throw ValidationError("--from-step must be >= 0, got \(fromStep)") }
    }

    func run() throws {
        try reportingErrors {
            var curves: [TrainingCurves.Curve] = []
            for (run, name) in zip(runs, TrainingCurves.shortNames(runs)) {
                var curve = try TrainingCurves.read(run: URL(fileURLWithPath: run), axis: x, fromStep: fromStep)
                curve.name = name
                curves.append(curve)
            }
            let svg = TrainingCurves.chart(curves, axis: x, validationOnly: valOnly, logX: logX, logY: logY, title: title).render()
            try AtomicFile.write(Data(svg.utf8), to: URL(fileURLWithPath: out))
            for (run, curve) in zip(runs, curves) {
                var line = "\(run): step \(curve.lastStep)"
                if let last = curve.validation.last, let best = curve.bestValidation {
                    line += String(format: ", val loss %.4f (best %.4f at step %d)", last.y, best.loss, best.step)
                }
                try printLine(line)
            }
            log("wrote \(out) (\(runs.count) run\(runs.count == 1 ? "" : "s"))")
        }
    }
}
