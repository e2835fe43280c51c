// `bitnet-train train`: set up or resume a run and print its progress.
import ArgumentParser
import BitNet
import BitNetCLI
import Foundation

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train", abstract: "Train a model on a prepared data directory.", discussion: configFieldsHelp)

    @Option(help: "Data directory made by 'bitnet-train prepare'.") var data: String
    @Option(help: "Run directory (config.json, metrics.jsonl, checkpoint.safetensors).") var out: String
    @Flag(help: "Continue the run in --out from its last checkpoint, with its own config.") var resume = false
    @Flag(help: "Replace a run that --out already holds.") var force = false
    @Option(parsing: .unconditional,
            help: "Threads for the products and loops (default: all cores); ranks sharing a machine under mpirun divide its cores.")
    var threads: Int?
    @Option(help: ArgumentHelp("ZeRO stage under mpirun: 0 keeps every optimizer moment on every rank; 1 shards them across the ranks "
                               + "(each rank updates its part of the parameters; optimizer memory per rank falls as 1/ranks).",
                               valueName: "stage"))
    var zero = 0
    @OptionGroup var options: ConfigOptions

    func validate() throws {
        _ = try options.fieldValues()
        if let threads, threads < 1 || threads > 4096 { throw ValidationError("--threads must be in 1...4096, got \(threads)") }
        if zero != 0 && zero != 1 { throw ValidationError("--zero must be 0 or 1 (ZeRO stage 1 shards the optimizer moments), got \(zero)") }
    }

    func run() throws {
        try reportingErrors {
            // Under mpirun: one of several ranks (docs/DISTRIBUTED.md); otherwise alone.
            if let threads { Parallel.threads = threads }
            let ranks = try Communicator.world()
            defer { ranks.finalize() }
            let dataset = try TokenDataset(directory: data)
            let requested = try options.runConfig(vocabSize: dataset.meta.vocabSize)
            if resume, let saved = try RunDirectory(URL(fileURLWithPath: out)).readConfig() {
                try refuseChanges(to: saved)
            }
            let trainer = try Trainer(runDirectory: URL(fileURLWithPath: out), config: requested, dataset: dataset,
                                      resume: resume, force: force, ranks: ranks, zero: zero == 1)
            if ranks.isRoot { printBanner(trainer) }
            let progress = ProgressPrinter(steps: trainer.config.training.steps)
            let interrupted = InterruptFlag()
            trainer.shouldStop = { interrupted.isSet }
            try trainer.run { event in progress.handle(event) }
            progress.finish()
            // Stopped by a signal after checkpointing: the status says which.
            if interrupted.isSet { throw ExitCode(interrupted.exitStatus) }
        }
    }

    /// A resumed run keeps its config: a field flag that would change it is refused
    /// rather than ignored.
    private func refuseChanges(to saved: RunConfig) throws {
        for (key, text) in try options.fieldValues() {
            guard let entry = ConfigFields.entry(key: key) else { continue }
            let asked = try saved.overriding([(key, text)])
            if entry.text(asked) != entry.text(saved) {
                throw ValidationError("\(entry.flag) \(text) differs from this run's \(key) \(entry.text(saved)); a resumed run "
                                      + "keeps its config (use another --out, or --force to start over)")
            }
        }
    }

    private func printBanner(_ trainer: Trainer) {
        let c = trainer.config, m = c.model, t = c.training
        let zeroRanks = trainer.session.exchange.sharded ? trainer.ranks.size : 1
        let memory = Double(Transformer.trainingBytes(config: m, batch: t.microBatchSize, storage: t.activationStorage,
                                                      zeroRanks: zeroRanks)) / 1e9
        let moments = Double(2 * 4 * GradientExchange.largestShard(layout: trainer.model.layout, ranks: zeroRanks)) / 1e6
        log("run: \(out)  data: \(data) (\(trainer.dataset.train.count) train / \(trainer.dataset.val.count) val tokens)")
        let int4 = m.mode == .int4 ? " (Hadamard block \(m.hadamardBlockSize), \(m.int4Backward.rawValue) backward)" : ""
        log("model: preset \(c.preset ?? "custom"), mode \(m.mode.rawValue)\(int4), dim \(m.dim), layers \(m.layers), heads \(m.heads), "
            + "ffn \(m.ffnDim) (\(m.ffnActivation.rawValue)), context \(m.context), vocab \(m.vocabSize), norm \(m.norm.rawValue), "
            + "activations \(m.activationScaling.rawValue), tied \(m.tiedEmbeddings)")
        log(String(format: "parameters: %@ total, %@ non-embedding; %.1f MFLOP per token (training); peak memory ~%.2f GB "
                   + "(activations in %@; AdamW moments %.1f MB%@)", formatCount(m.totalParameters), formatCount(m.nonEmbeddingParameters),
                   m.trainingFlopsPerToken / 1e6, memory, t.activationStorage.rawValue, moments,
                   trainer.ranks.size > 1 ? (zeroRanks > 1 ? " per rank, ZeRO-1 over \(zeroRanks) ranks" : " per rank") : ""))
        log("training: \(t.steps) steps x \(t.batchSize) sequences (micro-batch \(t.microBatchSize)) x \(m.context) tokens; "
            + String(format: "lr %.2g, ", t.peakLearningRate(for: m.mode)) + "warm-up \(t.warmupSteps), \(t.decay.rawValue) decay"
            + (t.twoStage ? ", two-stage" : "") + String(format: "; weight decay %.2g; grad clip %.2g", t.weightDecay, t.gradClip)
            + "; seed \(t.seed)" + (trainer.ranks.size > 1 ? "; \(trainer.ranks.size) ranks (mpirun)" : ""))
    }
}

func formatCount(_ n: Int) -> String {
    if n >= 1_000_000 { return String(format: "%.2fM", Double(n) / 1e6) }
    if n >= 1_000 { return String(format: "%.1fK", Double(n) / 1e3) }
    return "\(n)"
}

/// A progress bar when stderr is a terminal, plain log lines otherwise, and always
/// for one of several runs training at once (each line then starts with its name).
final class ProgressPrinter {
    let steps: Int
    let prefix: String
    let isTerminal: Bool
    private var barShown = false

    init(steps: Int, run: String? = nil) {
        self.steps = steps
        prefix = run.map { "\($0): " } ?? ""
        isTerminal = run == nil && isatty(STDERR_FILENO) == 1
    }

    func handle(_ event: TrainingEvent) {
        switch event {
        case .resumed(let step):
            line("resuming at step \(step)")
        case .checkpoint(let step, let path):
            if !isTerminal || step == steps { line("step \(step): checkpoint written to \(path)") }
        case .stopped(let step):
            line("interrupted: checkpoint saved at step \(step); continue with --resume")
        case .step(let m):
            var text = String(format: "step %d/%d | loss %.4f | lr %.2e | %.0f tok/s", m.step, m.steps, m.loss,
                              m.learningRate, m.tokensPerSecond)
            if let f = m.flipFraction { text += String(format: " | flips %.2e", f) }
            if let z = m.zeroFraction { text += String(format: " | zeros %.3f", z) }
            if let c = m.communicationShare { text += String(format: " | comm %.0f%%", 100 * c) }
            let rate = m.elapsedSeconds / Double(m.step)
            let eta = formatDuration(rate * Double(steps - m.step))
            if let v = m.valLoss {
                line(text + String(format: " | val loss %.4f (ppl %.2f)", v, exp(Double(v))))
            } else if isTerminal {
                let width = 24
                let filled = width * m.step / max(steps, 1)
                let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
                log("\r\u{1B}[2K[\(bar)] " + text + " | ETA \(eta)", terminator: "")
                barShown = true
            } else {
                line(text + " | ETA \(eta)")
            }
        }
    }

    private func line(_ text: String) {
        if barShown { log("\r\u{1B}[2K", terminator: "") }
        barShown = false
        log(prefix + text)
    }

    func finish() { if barShown { log("") } }
}

/// Set by SIGINT (Ctrl-C) or SIGTERM (a job scheduler, `kill`), so training can stop
/// cleanly at a step boundary, checkpoint, and exit 128 + the signal (130 or 143).
final class InterruptFlag: @unchecked Sendable {
    private var received: Int32?
    private let lock = NSLock()
    private var sources: [DispatchSourceSignal] = []

    var isSet: Bool { lock.withLock { received != nil } }
    /// The exit status that reports the signal, as shells do.
    var exitStatus: Int32 { 128 + (lock.withLock { received } ?? SIGINT) }

    /// - unit: what finishes before stopping ("step", or "cell" for ptq-report).
    init(unit: String = "step") {
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: number, queue: .global())
            s.setEventHandler { [weak self] in
                guard let self else { return }
                let second = self.lock.withLock { () -> Bool in
                    defer { self.received = self.received ?? number }
                    return self.received != nil
                }
                if second { exit(128 + number) }
                log(number == SIGINT ? "\nstopping after this \(unit) (Ctrl-C again to quit at once)"
                                     : "\nterminated: stopping after this \(unit)")
            }
            s.resume()
            sources.append(s)
        }
    }
}
