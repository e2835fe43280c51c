// bitnet-run: generate text from a packed MODEL.bitnet with the add-only runtime.
// stdout carries only the text (the prompt followed by the continuation), or the
// benchmark's report; diagnostics go to stderr.
import ArgumentParser
import BitNetCLI
import BitNetRuntime
import BitNetSampling
import Foundation

struct RunError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

@main
struct BitNetRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bitnet-run", abstract: "Generate text from a packed 1-bit model (see docs/FORMAT.md).",
        discussion: """
        bitnet-run MODEL --prompt TEXT     continue TEXT, streaming to stdout
        bitnet-run MODEL                   interactive on a terminal (until EOF); else the prompt is read from stdin
        bitnet-run MODEL --bench [--json]  prompt and generation speed (like llama-bench -p 128 -n 128)
        bitnet-run --bench-kernel          the add-only product kernel alone
        """)

    @Argument(help: ArgumentHelp("Model file made by 'bitnet-train export'.", valueName: "model")) var modelPath: String?
    var model: String { modelPath ?? "" }
    @Option(help: "Text to continue.") var prompt: String?
    @Option(help: "The prompt as comma-separated token ids instead of text.") var promptIds: String?
    @OptionGroup var sampling: SamplingOptions
    @Option(help: "KV cache precision: f32 (exact: matches the trainer) or f16 (half the memory and attention reads).")
    var kvCache: KVCacheType = .f32
    @Option(help: "Output head: stored (as the file holds it: the trainer's logits) or int8 (rows rounded to 8 bits at load: half an FP16 head's bytes, faster generation, logits slightly off; docs/BENCHMARKS.md).")
    var head: HeadType = .stored
    @Option(parsing: .unconditional, help: "Worker threads (default: all cores).") var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Option(parsing: .unconditional, help: "Positions to hold, prompt and output together (default: the model's context); the KV cache's memory grows with it.")
    var context: Int?

    @Flag(help: "Measure prompt-processing and generation speed on random tokens.") var bench = false
    @Flag(help: "With --bench: print one JSON object.") var json = false
    @Option(parsing: .unconditional, help: "With --bench: prompt tokens (default 128, or half the context if that is shorter).") var promptTokens: Int?
    @Option(parsing: .unconditional, help: "With --bench: generated tokens (default as --prompt-tokens).") var genTokens: Int?
    @Option(parsing: .unconditional, help: "With --bench: timed repetitions (after one warm-up); the median is reported.") var repetitions: Int = 3
    @Flag(help: "Measure the add-only product kernel alone (one thread; no model needed).")
    var benchKernel = false
    @Flag(help: "With --bench: skip measuring the machine's read bandwidth (which needs 1 GiB for a moment).")
    var noBandwidth = false

    /// Refuses arguments that are not UTF-8 (Swift would silently repair them) before parsing.
    static func main() {
        for i in 1..<Int(CommandLine.argc) {
            guard let raw = CommandLine.unsafeArgv[i], String(validatingCString: raw) != nil else {
                let after = i > 1 ? CommandLine.unsafeArgv[i - 1].flatMap { String(validatingCString: $0) } : nil
                log("bitnet-run: error: argument \(i)\(after.map { " (after \($0))" } ?? "") is not valid UTF-8")
                Foundation.exit(1)
            }
        }
        mainWithOneLineErrors(programName: "bitnet-run")
    }

    func validate() throws {
        if threads < 1 || threads > 256 { throw ValidationError("--threads must be in 1...256, got \(threads)") }
        if let context, context < 1 { throw ValidationError("--context must be positive, got \(context)") }
        if let promptTokens, promptTokens < 1 { throw ValidationError("--prompt-tokens must be positive, got \(promptTokens)") }
        if let genTokens, genTokens < 1 { throw ValidationError("--gen-tokens must be positive, got \(genTokens)") }
        if repetitions < 1 { throw ValidationError("--repetitions must be positive, got \(repetitions)") }
        if prompt != nil && promptIds != nil { throw ValidationError("give --prompt or --prompt-ids, not both") }
        if json && !bench { throw ValidationError("--json goes with --bench") }
        if modelPath == nil && !benchKernel { throw ValidationError("give a model file (made by 'bitnet-train export')") }
    }

    func run() throws {
        do {
            if benchKernel { return try benchmarkKernel() }
            // More workers than cores only wait for each other: use the cores there are.
            let cores = ProcessInfo.processInfo.activeProcessorCount
            if threads > cores { log("bitnet-run: --threads \(threads) is more than the \(cores) cores; using \(cores)") }
            let m = try Model(path: model, threads: min(threads, cores), kvCache: kvCache, head: head, context: context)
            if let context, context > m.context { log("bitnet-run: --context \(context) is more than the model's \(m.context); using \(m.context)") }
            if bench {
                try runBenchmark(m)
            } else if let promptIds {
                try generate(m, ids: parseIDs(promptIds, vocabSize: m.config.vocabSize), text: nil)
            } else if let prompt {
                try generate(m, text: prompt)
            } else if isatty(STDIN_FILENO) == 1 {
                try interactive(m)
            } else {
                let input = try Input.readAll()
                guard let text = String(data: input, encoding: .utf8) else { throw RunError("standard input is not valid UTF-8") }
                try generate(m, text: text.hasSuffix("\n") ? String(text.dropLast()) : text)
            }
        } catch let error as ExitCode {
            throw error
        } catch {
            log("bitnet-run: error: \(error)")
            throw ExitCode(1)
        }
    }

    func generate(_ m: Model, text: String, interactive: Bool = false) throws {
        var ids = m.tokenizer.encode(text)
        // Documents are separated by end-of-sequence, so it starts an empty prompt.
        if ids.isEmpty { ids = [max(m.tokenizer.eosID, 0)] }
        try generate(m, ids: ids, text: text, interactive: interactive)
    }

    /// Streams the prompt and its continuation to stdout; `text` is the prompt as given
    /// (nil for --prompt-ids, whose decoding is printed instead). In interactive mode an
    /// interrupted generation returns to the prompt.
    func generate(_ m: Model, ids: [Int32], text: String?, interactive: Bool = false) throws {
        guard ids.count <= m.context else {
            throw RunError("the prompt is \(ids.count) tokens, longer than the context of \(m.context)")
        }
        let interrupt = Interrupt.shared  // Ctrl-C handling from here on
        let promptIDs = text?.isEmpty == true ? [] : ids
        try Output.write(text ?? m.tokenizer.decode(ids))
        var streamer = TextStreamer(promptIDs: promptIDs) { m.tokenizer.decode($0) }
        interrupt.generating = true
        defer { interrupt.generating = false }
        let started = DispatchTime.now().uptimeNanoseconds
        var firstToken: UInt64 = 0
        var model = m, writeError: Error?
        let stop = Generation.generate(
            model: &model, prompt: ids, maxTokens: sampling.maxTokens, settings: sampling.settings,
            endOfSequence: sampling.endOfSequence(m.tokenizer.eosID), shouldStop: { writeError != nil || interrupt.takeRequest() }
        ) { token in
            if streamer.tokenCount == 0 { firstToken = DispatchTime.now().uptimeNanoseconds }
            do { try Output.write(streamer.append(token)) } catch { writeError = writeError ?? error }
        }
        if let writeError { throw writeError }
        let generated = streamer.tokenCount
        try Output.write("\n")
        let end = DispatchTime.now().uptimeNanoseconds
        var timing = ""
        if generated > 1 {
            let rate = Double(generated - 1) / (Double(end - firstToken) / 1e9)
            timing = String(format: "; prompt %d tokens in %.2f s, %.1f tokens/s after the first", ids.count,
                            Double(firstToken - started) / 1e9, rate)
        }
        log("[\(generated) tokens; stopped at \(stop.rawValue)\(timing)]")
        // Interrupted: the text so far is printed; a one-shot run exits as shells expect.
        if stop == .interrupted && !interactive { throw ExitCode(130) }
    }

    /// Prompt, generate, repeat until EOF (Ctrl-D). Ctrl-C stops a generation; at the
    /// prompt it quits.
    func interactive(_ m: Model) throws {
        log("bitnet-run: \(model) (\(m.config.ternary ? "ternary" : "binary"), d\(m.config.dim), \(m.config.layers) layers, "
            + "context \(m.context)); type a prompt, Ctrl-D to quit")
        _ = Interrupt.shared
        while true {
            log("> ", terminator: "")
            guard let line = readLine(strippingNewline: true) else {
                log("")
                return
            }
            do {
                try generate(m, text: line, interactive: true)
            } catch {
                log("bitnet-run: error: \(error)")
            }
        }
    }

    func runBenchmark(_ m: Model) throws {
        guard m.context >= 2 else {
            throw RunError("--bench needs a context of at least 2 tokens; this one is \(m.context)")
        }
        let promptTokens = promptTokens ?? min(128, m.context / 2)
        let genTokens = genTokens ?? min(128, m.context / 2)
        // Compared without adding, which could overflow for huge counts.
        guard promptTokens <= m.context, genTokens <= m.context - promptTokens else {
            let total = promptTokens.addingReportingOverflow(genTokens)
            throw RunError("--prompt-tokens + --gen-tokens (\(total.overflow ? "more than \(Int.max)" : "\(total.partialValue)")) "
                           + "exceed the context of \(m.context)")
        }
        let c = m.config
        log("machine: \(Machine.description)")
        log("bench: \(model): \(c.ternary ? "ternary" : "binary"), d\(c.dim), \(c.layers) layers, ffn \(c.ffnDim), vocab \(c.vocabSize); "
            + "\(m.threads) thread(s), \(RuntimeBenchmark.kernel) kernels, \(kvCache.rawValue) KV cache, \(head.rawValue) head; -p \(promptTokens) -n \(genTokens), \(repetitions) repetitions")
        let r = RuntimeBenchmark.run(model: m, promptTokens: promptTokens, genTokens: genTokens, repetitions: repetitions,
                                     progress: { log($0) })
        let peak = RuntimeBenchmark.peakResidentBytes()
        let modelBytes = m.file.bytes.count, bytesPerToken = RuntimeBenchmark.bytesPerToken(m)
        let bandwidth = noBandwidth ? nil : RuntimeBenchmark.readBandwidth(threads: m.threads)
        let bound = bandwidth.map { $0 / Double(bytesPerToken) }
        if json {
            var object: [String: Any] = [
                "model": model, "machine": Machine.description, "threads": m.threads, "kernel": RuntimeBenchmark.kernel,
                "kv_cache": kvCache.rawValue, "head": head.rawValue,
                "prompt_tokens": promptTokens, "gen_tokens": genTokens, "repetitions": repetitions,
                "prompt_tokens_per_second": r.promptTokensPerSecond, "gen_tokens_per_second": r.genTokensPerSecond,
                "prompt_tokens_per_second_range": [r.promptRange.lowerBound, r.promptRange.upperBound],
                "gen_tokens_per_second_range": [r.genRange.lowerBound, r.genRange.upperBound],
                "ms_per_token": r.msPerGenToken, "bits_per_weight": RuntimeBenchmark.bitsPerWeight(m),
                "model_bytes": modelBytes, "bytes_per_token": bytesPerToken, "peak_rss_bytes": peak,
            ]
            if let bandwidth, let bound {
                object["read_bandwidth_bytes_per_second"] = bandwidth
                object["bandwidth_bound_tokens_per_second"] = bound
                object["fraction_of_bound"] = r.genTokensPerSecond / bound
            }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            try printLine(String(decoding: data, as: UTF8.self))
        } else {
            try printLine(String(format: "prompt processing  %8.1f tokens/s  (range %.1f-%.1f, %d tokens)", r.promptTokensPerSecond,
                         r.promptRange.lowerBound, r.promptRange.upperBound, promptTokens))
            try printLine(String(format: "generation         %8.2f tokens/s  (range %.2f-%.2f, %d tokens), %.2f ms/token", r.genTokensPerSecond,
                         r.genRange.lowerBound, r.genRange.upperBound, genTokens, r.msPerGenToken))
            try printLine(String(format: "model              %8.1f MB, %.3f bits per BitLinear weight; %.1f MB read per generated token",
                         Double(modelBytes) / 1e6, RuntimeBenchmark.bitsPerWeight(m), Double(bytesPerToken) / 1e6))
            try printLine(String(format: "peak resident      %8.1f MB", Double(peak) / 1e6))
            if let bandwidth, let bound {
                // A model small enough to stay in the CPU's caches is not read from memory each token.
                let share = r.genTokensPerSecond > bound ? "above it: the model stays in the CPU's caches"
                    : String(format: "generation at %.0f%% of it", 100 * r.genTokensPerSecond / bound)
                try printLine(String(format: "bandwidth bound    %8.1f tokens/s  (%.1f GB/s read with %d threads); ", bound, bandwidth / 1e9,
                                     m.threads) + share)
            }
        }
    }
}

extension BitNetRun {
    /// The product kernel on one plane of 1536 x 1536 (in cache) and 4096 x 4096 x 8
    /// (far larger than the caches).
    func benchmarkKernel() throws {
        log("product kernel (\(RuntimeBenchmark.kernel)), one thread, one token; one plane = 1 bit per weight")
        for (rows, cols, place) in [(1536, 1536, "in cache"), (32768, 4096, "from memory")] {
            let r = RuntimeBenchmark.productKernel(rows: rows, cols: cols)
            try printLine(String(format: "%5d x %4d (%@): %.2f ns per 64-byte tile, %.1f GB/s of plane", rows, cols, place, r.nsPerTile,
                         r.bytesPerSecond / 1e9))
        }
    }
}

extension KVCacheType: ExpressibleByArgument {}
extension HeadType: ExpressibleByArgument {}

/// "1,5,9" as token ids inside the vocabulary.
func parseIDs(_ text: String, vocabSize: Int) throws -> [Int32] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    return try parts.map { part in
        guard let id = Int(part) else { throw RunError("--prompt-ids: '\(part)' is not a token id") }
        guard id >= 0 && id < vocabSize else {
            throw RunError("--prompt-ids: token id \(id) is outside the vocabulary (0..<\(vocabSize))")
        }
        return Int32(id)
    }
}

/// Ctrl-C: during a generation, stop it after the current token; otherwise (or a second
/// time) quit with status 130.
final class Interrupt: @unchecked Sendable {
    static let shared = Interrupt()
    private let lock = NSLock()
    private var requested = false
    private var _generating = false
    private var source: DispatchSourceSignal?

    var generating: Bool {
        get { lock.withLock { _generating } }
        set { lock.withLock { _generating = newValue; requested = false } }
    }

    /// True once after Ctrl-C during a generation.
    func takeRequest() -> Bool { lock.withLock { defer { requested = false }; return requested } }

    private init() {
        signal(SIGINT, SIG_IGN)
        let s = DispatchSource.makeSignalSource(signal: SIGINT, queue: .global())
        s.setEventHandler { [unowned self] in
            let quit = lock.withLock { () -> Bool in
                defer { requested = true }
                return !_generating || requested
            }
            if quit {
                log("")
                exit(130)
            }
        }
        s.resume()
        source = s
    }
}
