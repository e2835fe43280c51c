// `bitnet-train sweep`, `lr-sweep` and `report`: scaling-law experiments.
import ArgumentParser
import BitNet
import BitNetCLI
import Foundation

func parseList<T>(_ text: String, flag: String, _ parse: (String) -> T?) throws -> [T] {
    let items = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    return try items.map { item in
        guard let value = parse(item) else { throw BitNetError.invalid("\(flag): cannot read '\(item)'") }
        return value
    }
}

let jobsHelp = ArgumentHelp(
    "Runs to train at once, each on cores / jobs threads. Small models use many cores poorly, so several at once "
        + "finish sooner (docs/BENCHMARKS.md); a run's last bits depend on its thread count.")

func validateJobs(_ jobs: Int) throws {
    if jobs < 1 || jobs > 256 { throw ValidationError("--jobs must be in 1...256, got \(jobs)") }
}

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Train every (size, mode), fit L(N) = a N^-alpha + c per mode, and write a report with plots.",
        discussion: "Running it again on the same --out skips finished runs and resumes an interrupted one.")

    @Option(help: "Data directory made by 'bitnet-train prepare'.") var data: String
    @Option(help: "Sizes: preset names or WIDTHxLAYERS (e.g. 64x2,96x3), comma-separated.") var presets: String
    @Option(help: "Weight modes, comma-separated.") var modes: String = "fp,binary"
    @Option(parsing: .unconditional, help: "Tokens per run.") var tokens: Int?
    @Option(name: .customLong("tokens-per-param"), parsing: .unconditional, help: "Tokens per non-embedding parameter.") var tokensPerParam: Double?
    @Option(parsing: .unconditional, help: "Training FLOPs per run.") var flops: Double?
    @Option(help: "Sweep directory.") var out: String
    @Flag(help: "Redefine a sweep directory that holds a different sweep.") var force = false
    @Option(help: "Preset whose training settings WIDTHxLAYERS sizes use.") var basePreset: String = "mini"
    @Option(parsing: .unconditional, help: "Context length for every run.") var context: Int?
    @Option(parsing: .unconditional, help: "Sequences per step for every run.") var batchSize: Int?
    @Option(parsing: .unconditional, help: "Sequences per forward pass.") var microBatchSize: Int?
    @Option(parsing: .unconditional, help: "Seed for every run.") var seed: UInt64 = 1337
    @Option(parsing: .unconditional, help: "Validation windows for the final loss.") var evalWindows: Int = 128
    @Option(name: .customLong("lr-from"),
            help: ArgumentHelp("lr-sweep directories, comma-separated: each mode's best rate there; from two or more widths, "
                               + "lr = a width^-k fitted per mode and applied to each size's width."))
    var lrFrom: String?
    @Option(help: ArgumentHelp("A second text file (a corpus the models are not trained on) every finished run is also "
                               + "evaluated on, encoded with the data's tokenizer."))
    var text: String?
    @Flag(help: ArgumentHelp("Plan instead of training: time a few steps of every run here and print its tokens, "
                             + "tokens/s and CPU-hours, and the total. Writes nothing."))
    var plan = false
    @Option(parsing: .unconditional, help: jobsHelp) var jobs = 1

    func validate() throws {
        let budgets = [tokens != nil, tokensPerParam != nil, flops != nil].filter { $0 }.count
        if budgets != 1 { throw ValidationError("give exactly one budget: --tokens, --tokens-per-param or --flops") }
        if let tokens, tokens <= 0 { throw ValidationError("--tokens must be positive, got \(tokens)") }
        if let tokensPerParam, !(tokensPerParam > 0 && tokensPerParam.isFinite) {
            throw ValidationError("--tokens-per-param must be a positive number, got \(tokensPerParam)")
        }
        if let flops, !(flops > 0 && flops.isFinite) { throw ValidationError("--flops must be a positive number, got \(flops)") }
        if evalWindows <= 0 { throw ValidationError("--eval-windows must be positive, got \(evalWindows)") }
        try validateJobs(jobs)
    }

    func run() throws {
        try reportingErrors {
            let budget: SweepBudget = tokens.map { .tokens($0) } ?? tokensPerParam.map { .tokensPerParameter($0) } ?? .flops(flops!)
            let definition = SweepDefinition(
                data: data, sizes: try parseList(presets, flag: "--presets") { SweepSize($0) },
                modes: try parseList(modes, flag: "--modes") { WeightMode(rawValue: $0) }, budget: budget,
                basePreset: basePreset, context: context, batchSize: batchSize, microBatchSize: microBatchSize,
                seed: seed, evalWindows: evalWindows,
                learningRateRule: try lrFrom.map { try LearningRateRule.from(sweeps: parseList($0, flag: "--lr-from") { URL(fileURLWithPath: $0) }) },
                text: text)
            if let rule = definition.learningRateRule { log("peak learning rates: \(rule.description)") }
            if plan { return try printPlan(definition) }
            let directory = URL(fileURLWithPath: out)
            let interrupted = InterruptFlag()
            if jobs > 1 { log("\(jobs) runs at a time, \(max(1, Parallel.threads / jobs)) thread(s) each") }
            var progress: [String: ProgressPrinter] = [:]
            let total = definition.sizes.count * definition.modes.count
            var finished = 0
            let results = try Sweep.run(definition: definition, directory: directory, force: force, jobs: jobs,
                                        shouldStop: { interrupted.isSet }) { event in
                switch event {
                case .skipped(let run):
                    finished += 1
                    log("\(run): finished earlier, kept")
                case .starting(let run, let index, let total, let config, let resuming):
                    log("[\(index + 1)/\(total)] \(run): \(formatCount(config.model.nonEmbeddingParameters)) non-embedding "
                        + "parameters, \(config.training.steps) steps of \(config.training.batchSize) x \(config.model.context) tokens"
                        + (resuming ? " (resuming)" : ""))
                    progress[run] = ProgressPrinter(steps: config.training.steps, run: jobs > 1 ? run : nil)
                case .training(let run, let e): progress[run]?.handle(e)
                case .finished(let r, let secondsLeft):
                    progress.removeValue(forKey: r.run)?.finish()
                    finished += 1
                    log(String(format: "%@: final val loss %.4f after %.0f s ", r.run, r.finalValLoss, r.wallSeconds)
                        + SweepPace.describe(finished: finished, of: total, secondsLeft: secondsLeft))
                }
            }
            if interrupted.isSet || results.count < total {
                // Not a finished sweep: no report that would read as one.
                log("interrupted: \(results.count) of \(total) runs finished; the same command continues the sweep")
                throw ExitCode(interrupted.isSet ? interrupted.exitStatus : 130)
            }
            let markdown = try SweepReport(directory: directory).write()
            try printLine(markdown)
            log("wrote \(out)/report.md, results.csv, results.json and the plots")
        }
    }
}

extension SweepCommand {
    /// `--plan`: a Markdown table of every run's compute on this machine.
    func printPlan(_ definition: SweepDefinition) throws {
        log("machine: \(Machine.description); timing 3 steps of every run (\(definition.budget))")
        try printLine("| run | non-embedding parameters | steps | tokens | tokens/s | hours |")
        try printLine("|---|---|---|---|---|---|")
        let runs = try Sweep.plan(definition: definition) { r in
            let m = r.config.model
            try printLine(String(format: "| %@ | %@ | %d | %@ | %.0f | %.2f |", r.run, formatCount(m.nonEmbeddingParameters),
                                  r.config.training.steps, formatCount(r.tokens), r.tokensPerSecond, r.hours))
        }
        try printLine(String(format: "\ntotal: %.1f hours on this machine (%d runs)", runs.reduce(0) { $0 + $1.hours }, runs.count))
    }
}

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Re-fit and re-draw a sweep's report from its results, without training.")

    @Argument(help: "Sweep directory.") var sweep: String
    @Flag(help: "First measure the loss by position in the window of every finished run that lacks it (runs of sweeps made before it was measured), from its checkpoint, on the sweep's data (not while the sweep runs: it rewrites results.json).")
    var byPosition = false
    @Option(help: ArgumentHelp("Print instead what each mode's laws predict for these sizes (presets or WIDTHxLAYERS, "
                               + "comma-separated), trained on the sweep's recipe and budget; writes nothing.", valueName: "sizes"))
    var predict: String?
    @Option(name: .customLong("predict-run"),
            help: ArgumentHelp("Print instead what each law of the run's mode predicts for a run trained outside the sweep (a larger "
                               + "or longer one), beside its loss measured on the sweep's windows; writes nothing.", valueName: "run"))
    var predictRun: String?
    @Option(help: "With --predict-run: the data directory to measure on (default: the sweep's).") var data: String?
    @Option(help: ArgumentHelp("Print instead this sweep beside the same sweep at other seeds (directories, comma-separated): "
                               + "each loss and gap as a mean and range, and the gap's trend through every seed's gap; writes nothing.",
                               valueName: "sweeps"))
    var seeds: String?

    func validate() throws {
        if let predict, try parseList(predict, flag: "--predict", { $0 }).isEmpty { throw ValidationError("--predict: no size given") }
        if (predict != nil || predictRun != nil || seeds != nil) && byPosition {
            throw ValidationError("--predict, --predict-run and --seeds write nothing: give them without --by-position")
        }
        if let seeds, try parseList(seeds, flag: "--seeds", { $0 }).isEmpty { throw ValidationError("--seeds: no directory given") }
        if data != nil && predictRun == nil { throw ValidationError("--data goes with --predict-run") }
    }

    func run() throws {
        try reportingErrors {
            let directory = URL(fileURLWithPath: sweep)
            if let predict {
                let report = try SweepReport(directory: directory)
                for size in try parseList(predict, flag: "--predict", { SweepSize($0) }) {
                    let extrapolation: SweepExtrapolation
                    do { extrapolation = try report.extrapolate(to: size) } catch BitNetError.invalid(let message) {
                        throw BitNetError.invalid("--predict: " + message)
                    }
                    try printLine(extrapolation.markdown())
                }
            }
            if let predictRun {
                try printLine(try SweepReport(directory: directory).predict(runDirectory: URL(fileURLWithPath: predictRun), data: data).markdown())
            }
            if let seeds {
                let others = try parseList(seeds, flag: "--seeds") { $0 }.map { try SweepReport(directory: URL(fileURLWithPath: $0)) }
                try printLine(try SweepReport(directory: directory).seedSpread(others).markdown())
            }
            if predict != nil || predictRun != nil || seeds != nil { return }
            if byPosition {
                let count = try PositionLoss.fill(directory: directory, skipped: { log("\($0): no checkpoint; its loss by position is not measured") },
                                                  measured: { log(String(format: "%@: loss by position measured on %d windows", $0.run, $0.positionWindows ?? 0)) })
                log("measured \(count) run\(count == 1 ? "" : "s")")
            }
            try printLine(try SweepReport(directory: directory).write())
        }
    }
}

struct LearningRateSweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lr-sweep", abstract: "Train one size at a grid of peak learning rates; report which runs diverged.",
        discussion: configFieldsHelp)

    @Option(help: "Data directory made by 'bitnet-train prepare'.") var data: String
    @Option(help: "Weight modes, comma-separated.") var modes: String = "fp,binary"
    @Option(parsing: .unconditional, help: "Peak learning rates, comma-separated.") var lrs: String = "1e-4,3e-4,1e-3,3e-3,1e-2"
    @Option(help: "Output directory.") var out: String
    @Flag(help: "Retrain runs that already exist.") var force = false
    @Option(parsing: .unconditional, help: jobsHelp) var jobs = 1
    @OptionGroup var options: ConfigOptions

    func validate() throws {
        _ = try options.fieldValues()
        try validateJobs(jobs)
        for rate in try parseList(lrs, flag: "--lrs", { Float($0) }) where !(rate > 0 && rate <= 1000) {
            throw ValidationError("--lrs: each rate must be in (0, 1000], got \(rate)")
        }
    }

    func run() throws {
        try reportingErrors {
            let dataset = try TokenDataset(directory: data)
            let base = try options.runConfig(vocabSize: dataset.meta.vocabSize)
            try dataset.check(context: base.model.context)
            let modeList = try parseList(modes, flag: "--modes") { WeightMode(rawValue: $0) }
            let rates = try parseList(lrs, flag: "--lrs") { Float($0) }
            let interrupted = InterruptFlag()
            var progress: [String: ProgressPrinter] = [:]
            let results = try LearningRateSweep.run(
                base: base, modes: modeList, learningRates: rates, dataset: dataset, directory: URL(fileURLWithPath: out),
                force: force, jobs: jobs, shouldStop: { interrupted.isSet },
                training: { run, event in
                    let printer = progress[run] ?? ProgressPrinter(steps: base.training.steps, run: jobs > 1 ? run : nil)
                    progress[run] = printer
                    printer.handle(event)
                }) { line in
                    // A run's line ends its progress bar (on a terminal).
                    if let run = line.split(separator: ":").first.map(String.init) { progress.removeValue(forKey: run)?.finish() }
                    log(line)
                }
            if interrupted.isSet || results.count < modeList.count * rates.count {
                log("interrupted: \(results.count) of \(modeList.count * rates.count) runs finished; "
                    + "the same command continues the sweep")
                throw ExitCode(interrupted.isSet ? interrupted.exitStatus : 130)
            }
            for r in results {
                try printLine(String(format: "%@ lr %g: %.4f -> %.4f%@", r.mode.rawValue, r.learningRate, r.initialValLoss,
                             r.finalValLoss, r.diverged ? " DIVERGED" : ""))
            }
        }
    }
}
