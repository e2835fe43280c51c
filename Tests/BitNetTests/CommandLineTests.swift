// bitnet-train as a user runs it: a run killed with SIGKILL resumes to the same numbers,
// and every kind of bad input gets one clear line on stderr and a non-zero exit.
import Foundation
import Testing
@testable import BitNet
import BitNetRuntime

@Suite(.serialized) struct CommandLineTests {
    static let trainArguments = ["--preset", "tiny", "--mode", "binary", "--steps", "120", "--context", "32",
                                 "--log-every", "5", "--eval-every", "40", "--eval-windows", "4", "--checkpoint-every", "10"]

    /// SIGKILL at 20 random moments of a run (steps, evaluations, checkpoint writes), each
    /// resumed: every run ends with the uninterrupted run's metrics, loss for loss.
    @Test func killedRunsResumeToTheUninterruptedNumbers() throws {
        let data = Fixtures.shared.data
        let whole = Fixtures.temporaryDirectory("cli-whole")
        let started = Date()
        let full = try Fixtures.run(["train", "--data", data, "--out", whole.path] + Self.trainArguments)
        let duration = Date().timeIntervalSince(started)
        #expect(full.status == 0, "\(full.stderr)")
        let expected = try Fixtures.deterministicMetrics(whole)

        // Moments spread over the run (seeded), two kills at a time on the two cores.
        var rng = Xoshiro256(seed: 2026)
        let moments = (0..<20).map { _ in duration * (0.02 + 0.96 * Double(rng.uniform())) }
        /// One kill's outcome, written by its own iteration.
        struct Outcome { var killed = false, duringWrite = false, beforeCheckpoint = false, failure: String? }
        let slots = Slots(count: moments.count, initial: Outcome())
        DispatchQueue.concurrentPerform(iterations: moments.count) { i in
            do {
                let run = Fixtures.temporaryDirectory("cli-killed-\(i)")
                let training = try Fixtures.launch(["train", "--data", data, "--out", run.path] + Self.trainArguments)
                usleep(UInt32(moments[i] * 1e6))
                kill(training.process.processIdentifier, SIGKILL)
                training.process.waitUntilExit()
                let killed = training.process.terminationReason == .uncaughtSignal
                let names = (try? FileManager.default.contentsOfDirectory(atPath: run.path)) ?? []
                slots.update(i) {
                    $0.killed = killed
                    $0.duringWrite = killed && names.contains { $0.contains(".tmp-") }
                    $0.beforeCheckpoint = killed && !names.contains(Checkpoint.fileName)
                }
                let resumed = try Fixtures.run(["train", "--data", data, "--out", run.path, "--resume"] + Self.trainArguments)
                let metrics = try Fixtures.deterministicMetrics(run)
                if resumed.status != 0 || metrics != expected {
                    let failure = String(format: "kill at %.2f s: status %d, %d metrics lines (expected %d); %@", moments[i],
                                         resumed.status, metrics.count, expected.count, resumed.stderr)
                    slots.update(i) { $0.failure = failure }
                }
            } catch {
                slots.update(i) { $0.failure = "kill \(i): \(error)" }
            }
        }
        let outcomes = slots.all
        let killed = outcomes.filter(\.killed).count, failures = outcomes.compactMap(\.failure)
        let duringWrite = outcomes.filter(\.duringWrite).count, beforeCheckpoint = outcomes.filter(\.beforeCheckpoint).count
        print(String(format: "kill -9: %d moments over a %.1f s run; %d killed mid-run (%d during a checkpoint write, %d before the "
                     + "first checkpoint), %d finished first; %d resumed runs differ from the uninterrupted one",
                     moments.count, duration, killed, duringWrite, beforeCheckpoint, moments.count - killed, failures.count))
        #expect(failures.isEmpty, "\(failures)")
        #expect(killed >= 15, "only \(killed) of \(moments.count) kills landed before the run finished")
    }

    @Test func sampleIsDeterministicAndStartsWithThePrompt() throws {
        let run = Fixtures.temporaryDirectory("cli-sample")
        let trained = try Fixtures.run(["train", "--data", Fixtures.shared.data, "--out", run.path, "--preset", "tiny",
                                        "--steps", "60", "--context", "32"])
        #expect(trained.status == 0, "\(trained.stderr)")
        let a = try Fixtures.run(["sample", run.path, "--prompt", "the king", "--max-tokens", "20", "--seed", "3"])
        let b = try Fixtures.run(["sample", run.path, "--prompt", "the king", "--max-tokens", "20", "--seed", "3"])
        #expect(a.status == 0 && a.stdout == b.stdout)
        #expect(a.stdout.hasPrefix("the king") && a.stdout.count > "the king".count + 5)
        let greedy = try Fixtures.run(["sample", run.path, "--prompt", "the king", "--max-tokens", "20", "--temperature", "0"])
        #expect(greedy.status == 0 && greedy.stdout.hasPrefix("the king"))
        let eval = try Fixtures.run(["eval", run.path, "--data", Fixtures.shared.data, "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as? [String: Any]
        #expect((object?["val_loss"] as? Double).map { $0 > 0 && $0 < 5 } == true, "\(eval.stdout)")
        let tooLong = try Fixtures.run(["eval", run.path, "--data", Fixtures.shared.data, "--window", "33"])
        #expect(tooLong.status == 1 && tooLong.stderr.contains("--window 33 is longer than the model's context of 32 tokens"),
                "\(tooLong.stderr)")
        // Output to a full disk: one line and status 1 (eval printed nothing and exited 0 before).
        for arguments in [["eval", run.path, "--data", Fixtures.shared.data], ["sample", run.path, "--prompt", "the"]] {
            let full = try Fixtures.run(arguments, stdout: "/dev/full")
            #expect(full.status == 1 && full.stderr.contains("cannot write to standard output: No space left on device"),
                    "\(arguments): \(full.status) \(full.stderr)")
        }
    }

    @Test func runtimeGreedyTextEqualsTrainerSample() throws {
        let run = Fixtures.temporaryDirectory("cli-runtime")
        let trained = try Fixtures.run(["train", "--data", Fixtures.shared.data, "--out", run.path, "--preset", "tiny",
                                        "--mode", "ternary", "--steps", "80", "--context", "48"])
        #expect(trained.status == 0, "\(trained.stderr)")
        let model = run.appendingPathComponent("model.bitnet").path
        #expect(try Fixtures.run(["export", run.path, "--out", model]).status == 0)
        for prompt in ["the king", "good sir will speak", ""] {
            let expected = try Fixtures.run(["sample", run.path, "--prompt", prompt, "--max-tokens", "60", "--temperature", "0"])
            let actual = try Fixtures.run(["--prompt", prompt, "--max-tokens", "60", "--temperature", "0"], executable: "bitnet-run",
                                          leading: [model])
            #expect(expected.status == 0 && actual.status == 0, "\(actual.stderr)")
            #expect(actual.stdout == expected.stdout, "prompt \(prompt.debugDescription)")
            #expect(actual.stdout.count > prompt.count + 5)
        }
        // Sampling: the same seed gives the same text, another seed (almost surely) another.
        let sampled = try (1...3).map { seed in
            try Fixtures.run(["--prompt", "the king", "--max-tokens", "30", "--temperature", "1", "--seed", "\(seed == 3 ? 2 : 1)"],
                             executable: "bitnet-run", leading: [model]).stdout
        }
        #expect(sampled[0] == sampled[1] && sampled[0] != sampled[2], "\(sampled)")
        // One sampler for both programs: the same seed and settings give the same text.
        for penalty in [[], ["--repeat-penalty", "1.3", "--repeat-last-n", "16"]] {
            let settings = ["--max-tokens", "40", "--temperature", "0.9", "--top-k", "20", "--top-p", "0.95", "--seed", "5"] + penalty
            let trainerSampled = try Fixtures.run(["sample", run.path, "--prompt", "the king"] + settings)
            let runtimeSampled = try Fixtures.run(["--prompt", "the king"] + settings, executable: "bitnet-run", leading: [model])
            #expect(trainerSampled.status == 0 && trainerSampled.stdout == runtimeSampled.stdout,
                    "\(penalty): \(trainerSampled.stdout.debugDescription) vs \(runtimeSampled.stdout.debugDescription)")
        }
        // The prompt from stdin when there is no --prompt (and stdin is not a terminal).
        let piped = try Fixtures.run(["--max-tokens", "60", "--temperature", "0"], executable: "bitnet-run", leading: [model],
                                     input: Data("the king\n".utf8))
        let expected = try Fixtures.run(["sample", run.path, "--prompt", "the king", "--max-tokens", "60", "--temperature", "0"])
        #expect(piped.status == 0 && piped.stdout == expected.stdout, "\(piped.stderr)")
        // --bench --json: one JSON object with the documented keys, on stdout only.
        let bench = try Fixtures.run(["--bench", "--json", "--repetitions", "1", "--no-bandwidth"], executable: "bitnet-run",
                                     leading: [model])
        #expect(bench.status == 0, "\(bench.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(bench.stdout.utf8)) as? [String: Any] ?? [:]
        for key in ["prompt_tokens_per_second", "gen_tokens_per_second", "bits_per_weight", "peak_rss_bytes"] {
            #expect((report[key] as? Double).map { $0 > 0 } == true, "\(key) in \(bench.stdout)")
        }
        let fileSize = try FileManager.default.attributesOfItem(atPath: model)[.size] as? Int
        #expect(report["model_bytes"] as? Int == fileSize)
        // Ternary at 2 bits per weight, plus the padding of rows to 32 and columns to 16.
        #expect((report["bits_per_weight"] as? Double).map { $0 >= 2 && $0 < 3 } == true)
        try expectCleanFailure(["--prompt-ids", "1,2,999999"], executable: "bitnet-run", leading: [model],
                               mentions: "--prompt-ids: token id 999999 is outside the vocabulary")
        try expectCleanFailure(["--prompt-ids", "1,x"], executable: "bitnet-run", leading: [model], mentions: "'x' is not a token id")
        let ids = try Fixtures.run(["--prompt-ids", "5,6,7", "--max-tokens", "5"], executable: "bitnet-run", leading: [model])
        #expect(ids.status == 0 && !ids.stdout.isEmpty, "\(ids.stderr)")
        // Arguments that are not UTF-8 are refused rather than silently repaired.
        let bytes = try Fixtures.run(["-c", "exec \"$0\" \"$1\" --prompt \"$(printf 'ab\\377')\"",
                                      Fixtures.executable.deletingLastPathComponent().appendingPathComponent("bitnet-run").path, model],
                                     executable: "/bin/sh")
        #expect(bytes.status == 1 && bytes.stderr.contains("argument 3 (after --prompt) is not valid UTF-8"), "\(bytes.stderr)")

        let missing = try Fixtures.run(["--prompt", "x"], executable: "bitnet-run", leading: [run.path + "/none.bitnet"])
        #expect(missing.status == 1 && missing.stderr.contains("none.bitnet: file does not exist"))
        let badTopP = try Fixtures.run(["--prompt", "x", "--top-p", "2"], executable: "bitnet-run", leading: [model])
        #expect(badTopP.status != 0 && badTopP.stderr.contains("--top-p must be in (0, 1]"))
        let long = String(repeating: "the king doth love the crown. ", count: 40)
        let tooLong = try Fixtures.run(["--prompt", long], executable: "bitnet-run", leading: [model])
        #expect(tooLong.status == 1 && tooLong.stderr.contains("longer than the context"), "\(tooLong.stderr)")
        var damaged = try Data(contentsOf: URL(fileURLWithPath: model))
        damaged[damaged.count / 2] ^= 0x10
        try damaged.write(to: URL(fileURLWithPath: model))
        let corrupt = try Fixtures.run(["--prompt", "x"], executable: "bitnet-run", leading: [model])
        #expect(corrupt.status == 1 && corrupt.stderr.contains("checksum mismatch"), "\(corrupt.stderr)")

        // Packed models are 1-bit: an fp run is refused with a clear line.
        let fpRun = Fixtures.temporaryDirectory("cli-fp")
        #expect(try Fixtures.run(["train", "--data", Fixtures.shared.data, "--out", fpRun.path, "--preset", "tiny",
                                  "--mode", "fp", "--steps", "5", "--context", "32"]).status == 0)
        try expectCleanFailure(["export", fpRun.path, "--out", fpRun.path + "/m.bitnet"], mentions: "this run is in fp mode")
        #expect(!FileManager.default.fileExists(atPath: fpRun.path + "/m.bitnet"))
    }

    /// One line on stderr naming the problem, status 1, no stack trace.
    func expectCleanFailure(_ arguments: [String], executable: String = "bitnet-train", leading: [String] = [],
                            mentions fragment: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let result = try Fixtures.run(arguments, executable: executable, leading: leading)
        #expect(result.status != 0, "succeeded: \(arguments)", sourceLocation: sourceLocation)
        // One line; a usage error may add a hint to --help on a second.
        let lines = result.stderr.split(separator: "\n").filter { !$0.isEmpty }
        #expect(lines.count == 1 || (lines.count == 2 && lines[1].contains("--help")), "stderr: \(result.stderr)",
                sourceLocation: sourceLocation)
        #expect(result.status == 1 || result.status == 64, "status \(result.status)", sourceLocation: sourceLocation)
        #expect(result.stderr.contains(fragment), "stderr: \(result.stderr)", sourceLocation: sourceLocation)
        #expect(!result.stderr.contains("Fatal error") && !result.stderr.contains("Stack dump"), sourceLocation: sourceLocation)
    }

    /// A model of random weights exported into a new directory named for `test`; its path.
    static func randomModel(_ test: String, mode: String, dim: Int, layers: Int, heads: Int, ffn: Int, vocab: Int = 600,
                            context: Int) throws -> String {
        let model = Fixtures.temporaryDirectory(test).appendingPathComponent("m.bitnet").path
        let export = try Fixtures.run(["export", "--random", "--mode", mode, "--dim", "\(dim)", "--layers", "\(layers)",
                                       "--heads", "\(heads)", "--ffn-dim", "\(ffn)", "--vocab-size", "\(vocab)",
                                       "--context", "\(context)", "--out", model])
        #expect(export.status == 0, "\(export.stderr)")
        return model
    }

    /// Generation with a busy neighbour on every core, and with more threads than cores,
    /// finishes in a bounded time (a spinning pool made it 50-700x slower).
    @Test func generationUnderLoad() throws {
        let model = try Self.randomModel("cli-load", mode: "ternary", dim: 256, layers: 4, heads: 4, ffn: 688, vocab: 4096, context: 512)
        let generate = ["--prompt", "Hello there", "--max-tokens", "64", "--temperature", "0"]
        func seconds(_ threads: Int) throws -> Double {
            let start = Date()
            let result = try Fixtures.run(generate + ["--threads", "\(threads)"], executable: "bitnet-run", leading: [model])
            #expect(result.status == 0, "\(result.stderr)")
            return Date().timeIntervalSince(start)
        }
        let quiet = try seconds(2)
        // A short training run, quietly: the numbers the run under load must end with.
        let data = Fixtures.shared.data
        let train = ["--preset", "tiny", "--mode", "binary", "--steps", "40", "--context", "32", "--log-every", "5",
                     "--eval-every", "20", "--eval-windows", "4", "--checkpoint-every", "10"]
        let quietRun = Fixtures.temporaryDirectory("cli-load-quiet"), loadedRun = Fixtures.temporaryDirectory("cli-load-busy")
        #expect(try Fixtures.run(["train", "--data", data, "--out", quietRun.path] + train).status == 0)
        // A busy loop per core, bounded in time by the shell itself (no child process that
        // could outlive it), and ended as soon as the measurement is done.
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let neighbours = try (0..<cores).map { _ in
            try Fixtures.launch(["-c", "while (( SECONDS < 60 )); do :; done"], executable: "/bin/bash")
        }
        defer {
            for n in neighbours {
                kill(n.process.processIdentifier, SIGKILL)
                n.process.waitUntilExit()
            }
        }
        let loaded = try seconds(2), oversubscribed = try seconds(8)
        // Training beside the same neighbours, killed once its first checkpoint exists and
        // resumed, ends with the quiet run's numbers.
        let training = try Fixtures.launch(["train", "--data", data, "--out", loadedRun.path] + train)
        let deadline = Date().addingTimeInterval(60)
        while !FileManager.default.fileExists(atPath: Checkpoint.url(in: loadedRun).path) && Date() < deadline { usleep(2_000) }
        kill(training.process.processIdentifier, SIGKILL)
        training.process.waitUntilExit()
        let resumed = try Fixtures.run(["train", "--data", data, "--out", loadedRun.path, "--resume"] + train)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(try Fixtures.deterministicMetrics(loadedRun) == Fixtures.deterministicMetrics(quietRun))
        print(String(format: "under load: quiet %.2f s; busy neighbours on %d cores: %.2f s (%.1fx); --threads 8: %.2f s (%.1fx)",
                     quiet, cores, loaded, loaded / quiet, oversubscribed, oversubscribed / quiet))
        // Other suites run beside this one, so "quiet" is only quieter: the bound is a ratio
        // (a spinning pool was 60-700x slower), with a floor for very short runs.
        let bound = max(5, 10 * quiet)
        #expect(loaded < bound && oversubscribed < bound, "\(loaded) s, \(oversubscribed) s with busy neighbours; quiet \(quiet) s")
    }

    /// Ctrl-C finishes the step, checkpoints and exits 130 (SIGTERM: 143); a resumed run refuses flags
    /// that would change its config; an interrupted sweep writes no report, an interrupted
    /// lr-sweep no results.
    @Test func interruptsAndResumes() throws {
        let data = Fixtures.shared.data
        let run = Fixtures.temporaryDirectory("cli-sigint")
        let arguments = ["train", "--data", data, "--out", run.path, "--preset", "tiny", "--steps", "100000", "--context", "32",
                         "--log-every", "1", "--checkpoint-every", "100000"]
        let training = try Fixtures.launch(arguments)
        let metrics = run.appendingPathComponent("metrics.jsonl").path
        let deadline = Date().addingTimeInterval(60)
        while (FileManager.default.contents(atPath: metrics)?.count ?? 0) == 0 && Date() < deadline { usleep(5_000) }
        kill(training.process.processIdentifier, SIGINT)
        let stopped = try training.finish()
        #expect(stopped.status == 130 && stopped.stderr.contains("interrupted: checkpoint saved at step"), "\(stopped.stderr)")
        let (_, _, state) = try Checkpoint.loadModel(runDirectory: run)
        #expect(state.step > 0)
        try expectCleanFailure(Array(arguments.dropLast(4)) + ["--resume", "--lr", "0.01"],
                               mentions: "--lr 0.01 differs from this run's learning_rate")
        // SIGTERM (a scheduler's stop) does the same, with status 143; the run resumes from it.
        let size = FileManager.default.contents(atPath: metrics)?.count ?? 0
        let resumed = try Fixtures.launch(arguments + ["--resume"])
        while (FileManager.default.contents(atPath: metrics)?.count ?? 0) <= size && Date() < deadline { usleep(5_000) }
        kill(resumed.process.processIdentifier, SIGTERM)
        let terminated = try resumed.finish()
        #expect(terminated.status == 143 && terminated.stderr.contains("terminated: stopping after this step")
                && terminated.stderr.contains("checkpoint saved at step"), "\(terminated.status): \(terminated.stderr)")
        let (_, _, later) = try Checkpoint.loadModel(runDirectory: run)
        #expect(later.step > state.step)

        let sweep = Fixtures.temporaryDirectory("cli-sigint-sweep")
        let sweeping = try Fixtures.launch(["sweep", "--data", data, "--presets", "tiny,32x1", "--modes", "binary",
                                            "--tokens", "40000000", "--context", "32", "--out", sweep.path])
        let firstMetrics = sweep.appendingPathComponent("runs/tiny-binary/metrics.jsonl").path
        while (FileManager.default.contents(atPath: firstMetrics)?.count ?? 0) == 0 && Date() < deadline { usleep(5_000) }
        kill(sweeping.process.processIdentifier, SIGINT)
        let interrupted = try sweeping.finish()
        #expect(interrupted.status == 130 && interrupted.stderr.contains("interrupted: 0 of 2 runs finished"), "\(interrupted.stderr)")
        #expect(!FileManager.default.fileExists(atPath: sweep.appendingPathComponent("report.md").path))

        // An lr-sweep training two runs at once: both checkpoint, and no results are written.
        let lrSweep = Fixtures.temporaryDirectory("cli-sigint-lr-sweep")
        let tuning = try Fixtures.launch(["lr-sweep", "--data", data, "--preset", "tiny", "--steps", "100000", "--context", "32",
                                          "--modes", "fp", "--lrs", "1e-3,3e-3", "--log-every", "1", "--jobs", "2",
                                          "--out", lrSweep.path])
        let lrMetrics = ["fp-lr0.001", "fp-lr0.003"].map { lrSweep.appendingPathComponent("runs/\($0)/metrics.jsonl").path }
        while lrMetrics.contains(where: { (FileManager.default.contents(atPath: $0)?.count ?? 0) == 0 }) && Date() < deadline {
            usleep(5_000)
        }
        kill(tuning.process.processIdentifier, SIGINT)
        let tuned = try tuning.finish()
        #expect(tuned.status == 130 && tuned.stderr.contains("interrupted: 0 of 2 runs finished"), "\(tuned.stderr)")
        for name in ["fp-lr0.001", "fp-lr0.003"] {
            let (_, _, stoppedAt) = try Checkpoint.loadModel(runDirectory: lrSweep.appendingPathComponent("runs/\(name)"))
            #expect(stoppedAt.step > 0, "\(name)")
        }
        #expect(!FileManager.default.fileExists(atPath: lrSweep.appendingPathComponent("results.json").path))
    }

    @Test func sweepCommandsRefuseBadInput() throws {
        let dir = Fixtures.temporaryDirectory("cli-sweep")
        let data = Fixtures.shared.data
        try expectCleanFailure(["sweep", "--data", data, "--presets", "tiny", "--modes", "fp,quaternary", "--tokens", "5000",
                                "--out", dir.path + "/s"], mentions: "--modes: cannot read 'quaternary'")
        try expectCleanFailure(["sweep", "--data", data, "--presets", "tiny", "--out", dir.path + "/s"],
                               mentions: "give exactly one budget")
        try expectCleanFailure(["sweep", "--data", data, "--presets", ",", "--tokens", "5000", "--out", dir.path + "/s"],
                               mentions: "size list is empty")
        try expectCleanFailure(["report", dir.path], mentions: "no sweep.json or results.json")
        try expectCleanFailure(["lr-sweep", "--data", data, "--preset", "tiny", "--lrs", "1e-3,abc", "--out", dir.path + "/l"],
                               mentions: "--lrs: cannot read 'abc'")
    }

    @Test func badInputsGetOneClearLine() throws {
        let dir = Fixtures.temporaryDirectory("cli-bad")
        let data = Fixtures.shared.data
        let binary = dir.appendingPathComponent("binary.txt").path
        try Data([0x66, 0xFF, 0xFE, 0x00, 0x80]).write(to: URL(fileURLWithPath: binary))
        let empty = dir.appendingPathComponent("empty.txt").path
        try Data().write(to: URL(fileURLWithPath: empty))
        let tok = Fixtures.shared.tokenizer

        try expectCleanFailure(["tokenizer", "--input", dir.path + "/missing.txt", "--out", dir.path + "/t.model"],
                               mentions: "missing.txt: file does not exist")
        try expectCleanFailure(["prepare", "--input", binary, "--tokenizer", tok, "--out", dir.path + "/d"],
                               mentions: "binary.txt: not valid UTF-8")
        try expectCleanFailure(["prepare", "--input", empty, "--tokenizer", tok, "--out", dir.path + "/d"],
                               mentions: "empty.txt: file is empty")
        try expectCleanFailure(["prepare", "--input", Fixtures.shared.corpus, "--tokenizer", binary, "--out", dir.path + "/d"],
                               mentions: "not a valid SentencePiece model")
        try expectCleanFailure(["train", "--data", dir.path + "/nodata", "--out", dir.path + "/r"], mentions: "meta.json: missing")
        try expectCleanFailure(["train", "--data", data, "--out", dir.path + "/r", "--preset", "huge"], mentions: "unknown preset or size 'huge'")
        try expectCleanFailure(["train", "--data", data, "--out", dir.path + "/r", "--zero", "2"], mentions: "--zero must be 0 or 1")
        try expectCleanFailure(["project-scaling", "--link", "1gbit=5", "--workload", "small=3000"],
                               mentions: "--link: expected NAME=ALPHA_US,BETA_NS")
        try expectCleanFailure(["project-scaling", "--link", "1gbit=0,6.7", "--workload", "huge=3000"], mentions: "unknown preset 'huge'")
        try expectCleanFailure(["project-scaling", "--link", "1gbit=0,6.7", "--workload", "small=-1"],
                               mentions: "--workload: expected PRESET=TOKENS_PER_SECOND")
        try expectCleanFailure(["train", "--data", data, "--out", dir.path + "/r", "--dim", "100", "--heads", "3"],
                               mentions: "heads (3) must divide dim (100)")
        try expectCleanFailure(["train", "--data", data, "--out", dir.path + "/r", "--layers", "0"],
                               mentions: "--layers must be in 1...4096, got 0")
        try expectCleanFailure(["train", "--data", data, "--out", dir.path + "/r", "--lr=-1"],
                               mentions: "--lr must be in (0, 1000], got -1.0")
        // Every field has a flag, checked against its range; a negative value after a space is a value.
        let fieldRefusals: [([String], String)] = [
            (["--lr", "-1"], "--lr must be in (0, 1000], got -1.0"),
            (["--adam-epsilon", "0"], "--adam-epsilon must be > 0, got 0.0"),
            (["--stage2-learning-rate-factor", "1.5"], "--stage2-learning-rate-factor must be in (0, 1], got 1.5"),
            (["--norm-epsilon=-1"], "--norm-epsilon must be in (0, 1), got -1.0"),
            (["--dim", "abc"], "--dim must be an integer, got 'abc'"),
            (["--norm", "batch"], "--norm must be one of rms, layer, got 'batch'"),
            (["--dimm", "64"], "unknown option '--dimm'"),
            (["--steps"], "--steps needs a value"),
            (["extra"], "unexpected argument 'extra'"),
            (["--batch-size", "1099511627776"], "--batch-size must be in 1...16777216, got 1099511627776"),
            (["--micro-batch-size", "1048576", "--batch-size", "1048576", "--context", "4096", "--heads", "4096", "--dim", "65536"],
             "estimated peak memory of at least"),
        ]
        for (arguments, fragment) in fieldRefusals {
            try expectCleanFailure(["train", "--data", data, "--out", dir.path + "/r"] + arguments, mentions: fragment)
        }
        try expectCleanFailure(["train", "--data", data, "--out", dir.path + "/r", "--mode", "quaternary"], mentions: "mode")
        try expectCleanFailure(["train", "--data", data, "--out", dir.path + "/r", "--context", "100000", "--preset", "tiny"],
                               mentions: "smaller than one context window")
        try expectCleanFailure(["train", "--data", data, "--out", dir.path + "/r", "--dim", "8192", "--layers", "64",
                                "--ffn-dim", "32768", "--heads", "64", "--context", "64", "--preset", "tiny"],
                               mentions: "exceeds the")

        // A small corpus that cannot fill one window of the default context.
        let small = dir.appendingPathComponent("small.txt").path
        try "the king doth love the crown.\n".write(toFile: small, atomically: true, encoding: .utf8)
        let smallData = dir.appendingPathComponent("small-data").path
        #expect(try Fixtures.run(["prepare", "--input", small, "--tokenizer", tok, "--out", smallData]).status == 0)
        try expectCleanFailure(["train", "--data", smallData, "--out", dir.path + "/r2", "--preset", "tiny"],
                               mentions: "smaller than one context window")

        // A run directory that already holds a run.
        let run = dir.appendingPathComponent("run").path
        #expect(try Fixtures.run(["train", "--data", data, "--out", run, "--preset", "tiny", "--steps", "10", "--context", "32"]).status == 0)
        try expectCleanFailure(["train", "--data", data, "--out", run, "--preset", "tiny", "--steps", "20"],
                               mentions: "already holds a run; pass --resume")
        #expect(try Fixtures.run(["train", "--data", data, "--out", run, "--preset", "tiny", "--steps", "10",
                                  "--context", "32", "--force"]).status == 0)

        // A truncated checkpoint, and one with flipped header bytes.
        let checkpoint = Checkpoint.url(in: URL(fileURLWithPath: run))
        let bytes = try Data(contentsOf: checkpoint)
        try bytes.prefix(bytes.count / 2).write(to: checkpoint)
        try expectCleanFailure(["sample", run, "--prompt", "the"], mentions: "checkpoint.safetensors: not a valid safetensors file")
        var flipped = bytes
        flipped[20] ^= 0xFF
        try flipped.write(to: checkpoint)
        try expectCleanFailure(["eval", run, "--data", data], mentions: "checkpoint.safetensors")
        try bytes.write(to: checkpoint)

        // A tokenizer whose vocabulary does not match the checkpoint.
        let otherTokenizer = dir.appendingPathComponent("other.model").path
        #expect(try Fixtures.run(["tokenizer", "--input", Fixtures.shared.corpus, "--vocab-size", "300",
                                  "--out", otherTokenizer]).status == 0)
        try FileManager.default.removeItem(atPath: run + "/tokenizer.model")
        try FileManager.default.copyItem(atPath: otherTokenizer, toPath: run + "/tokenizer.model")
        try expectCleanFailure(["sample", run, "--prompt", "the"], mentions: "does not match the checkpoint")
        try expectCleanFailure(["sample", run, "--max-tokens", "0"], mentions: "--max-tokens must be positive")
        try expectCleanFailure(["sample", run, "--top-k", "-3"], mentions: "--top-k must be >= 0, got -3")
    }

    /// export --random writes a model of the asked shape that bitnet-run loads and runs.
    @Test func randomExportRuns() throws {
        let directory = Fixtures.temporaryDirectory("cli-random")
        for mode in ["binary", "ternary"] {
            let model = directory.appendingPathComponent("\(mode).bitnet").path
            let export = try Fixtures.run(["export", "--random", "--mode", mode, "--dim", "48", "--layers", "2", "--heads", "4",
                                           "--ffn-dim", "80", "--vocab-size", "600", "--context", "40", "--out", model])
            #expect(export.status == 0, "\(export.stderr)")
            let file = try ModelFile(path: model)
            #expect(file.config["mode"] as? String == mode && file.config["dim"] as? Int == 48)
            #expect(try file.tensor("layers.1.ffn.gate.weight").rows == 80)
            #expect(try file.tensor("embedding.weight").type == .f16 && file.tensors["head.weight"] == nil)
            let bench = try Fixtures.run(["--bench", "--json", "--repetitions", "1", "--no-bandwidth", "--threads", "1"],
                                         executable: "bitnet-run", leading: [model])
            let report = try JSONSerialization.jsonObject(with: Data(bench.stdout.utf8)) as? [String: Any] ?? [:]
            #expect((report["gen_tokens_per_second"] as? Double).map { $0 > 0 } == true, "\(bench.stderr)")
            let text = try Fixtures.run(["--prompt", "Hello, world", "--max-tokens", "10"], executable: "bitnet-run", leading: [model])
            #expect(text.status == 0 && text.stdout.hasPrefix("Hello, world"), "\(text.stderr)")
        }
        try expectCleanFailure(["export", directory.path, "--dim", "48", "--out", directory.path + "/x.bitnet"],
                               mentions: "--dim goes with --random")
        try expectCleanFailure(["export", "--random", "--dimm", "48", "--out", directory.path + "/x.bitnet"],
                               mentions: "unknown option '--dimm'")
        try expectCleanFailure(["export", "--random", "--dim", "48", "--layers", "1", "--heads", "5", "--ffn-dim", "8", "--vocab-size", "600",
                                "--out", directory.path + "/x.bitnet"], mentions: "heads (5) must divide dim (48)")
        try expectCleanFailure(["export", "--random", "--dim", "48", "--layers", "1", "--heads", "4", "--ffn-dim", "8", "--vocab-size", "100",
                                "--out", directory.path + "/x.bitnet"], mentions: "--vocab-size must be at least 512")
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/x.bitnet"))
    }

    /// --ignore-eos: a seed whose sampled text ends at end of sequence goes on to
    /// --max-tokens with the flag.
    @Test func ignoreEosGoesOnToMaxTokens() throws {
        let model = try Self.randomModel("cli-ignore-eos", mode: "binary", dim: 64, layers: 1, heads: 2, ffn: 64, context: 512)
        func generate(seed: Int, _ extra: [String]) throws -> String {
            let result = try Fixtures.run([model, "--prompt-ids", "5", "--max-tokens", "400", "--seed", "\(seed)"] + extra,
                                          executable: "bitnet-run")
            #expect(result.status == 0, "\(result.stderr)")
            return result.stderr
        }
        let seed = try (0..<20).first { try generate(seed: $0, []).contains("stopped at end of sequence") }
        #expect(seed != nil, "no seed in 0..<20 ended at end of sequence within 400 tokens")
        if let seed {
            let stderr = try generate(seed: seed, ["--ignore-eos"])
            #expect(stderr.contains("[400 tokens; stopped at max tokens"), "\(stderr)")
        }
    }

    /// Ctrl-C during a generation: the text so far is printed, the stop reason is said,
    /// and the exit status is 130.
    @Test func interruptStopsGenerationCleanly() throws {
        let model = try Self.randomModel("cli-interrupt", mode: "binary", dim: 256, layers: 4, heads: 4, ffn: 512, context: 16384)
        // --ignore-eos: a random model's sampled end of sequence cannot end it before the interrupt.
        let launched = try Fixtures.launch(["--prompt", "Hello", "--max-tokens", "16000", "--threads", "1", "--ignore-eos"], executable: "bitnet-run",
                                           leading: [model])
        // Wait until generation has started (text beyond the prompt), then Ctrl-C.
        let deadline = Date().addingTimeInterval(20)
        while launched.stdoutSoFar.count < 40 && Date() < deadline && launched.process.isRunning { usleep(20_000) }
        launched.process.interrupt()
        let result = try launched.finish()
        #expect(result.status == 130, "\(result.stderr)")
        #expect(result.stderr.contains("stopped at interrupted"), "\(result.stderr)")
        #expect(result.stdout.hasPrefix("Hello") && result.stdout.hasSuffix("\n"))
    }

    /// On a terminal with no prompt: prompt, generate, repeat until EOF. `script` gives
    /// bitnet-run a pseudo-terminal.
    @Test func interactiveModeOnATerminal() throws {
        let model = try Self.randomModel("cli-interactive", mode: "ternary", dim: 32, layers: 1, heads: 2, ffn: 32, context: 64)
        let runtime = Fixtures.executable.deletingLastPathComponent().appendingPathComponent("bitnet-run").path
        let result = try Fixtures.run(["-qec", "'\(runtime)' '\(model)' --max-tokens 5 --temperature 0", "/dev/null"],
                                      executable: "/usr/bin/script", input: Data("first line\nsecond line\n".utf8))
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        // Each prompt is answered, with its own stop line, and the loop ends at EOF.
        #expect(result.stdout.components(separatedBy: "[5 tokens; stopped at max tokens").count == 3, "\(result.stdout)")
        #expect(result.stdout.contains("> first line") && result.stdout.contains("> second line"), "\(result.stdout)")
    }

    /// Every refusal of bitnet-run and of export --random: one line (or ArgumentParser's
    /// usage), a non-zero status, no crash.
    @Test func runtimeRefusesBadInput() throws {
        let directory = Fixtures.temporaryDirectory("cli-refusals")
        let model = directory.appendingPathComponent("m.bitnet").path
        let shape = ["--dim", "32", "--layers", "1", "--heads", "2", "--ffn-dim", "32", "--vocab-size", "600"]
        #expect(try Fixtures.run(["export", "--random"] + shape + ["--context", "64", "--out", model]).status == 0)
        let refusals: [([String], String)] = [
            (["--prompt", "x", "--max-tokens", "0"], "--max-tokens must be positive"),
            (["--prompt", "x", "--temperature=-1"], "--temperature must be >= 0"),
            (["--prompt", "x", "--temperature", "-1"], "--temperature must be >= 0, got -1.0"),
            (["--prompt", "x", "--temperature", "nan"], "--temperature must be >= 0, got nan"),
            (["--prompt", "x", "--top-p", "-0.5"], "--top-p must be in (0, 1], got -0.5"),
            (["--prompt", "x", "--threads", "-2"], "--threads must be in 1...256, got -2"),
            (["--prompt", "x", "--max-tokens", "-5"], "--max-tokens must be positive, got -5"),
            (["--prompt", "x", "--top-k=-2"], "--top-k must be >= 0"),
            (["--prompt", "x", "--threads", "0"], "--threads must be in 1...256"),
            (["--prompt", "x", "--prompt-ids", "1"], "give --prompt or --prompt-ids, not both"),
            (["--prompt", "x", "--json"], "--json goes with --bench"),
            (["--prompt", "x", "--kv-cache", "f8"], "kv-cache"),
            (["--bench", "--prompt-tokens", "0"], "--prompt-tokens must be positive"),
            (["--bench", "--gen-tokens=-1"], "--gen-tokens must be positive"),
            (["--bench", "--repetitions", "0"], "--repetitions must be positive"),
            (["--bench", "--prompt-tokens", "40", "--gen-tokens", "40"], "(80) exceed the context of 64"),
            (["--bench", "--context", "8", "--prompt-tokens", "4", "--gen-tokens", "5"], "(9) exceed the context of 8"),
            (["--prompt-ids", "1,2,3", "--context", "2"], "the prompt is 3 tokens, longer than the context of 2"),
            (["--prompt", "x", "--context", "0"], "--context must be positive, got 0"),
            (["--prompt", "x", "--context", "nan"], "context"),
        ]
        for (arguments, fragment) in refusals {
            try expectCleanFailure(arguments, executable: "bitnet-run", leading: [model], mentions: fragment)
        }
        try expectCleanFailure([], executable: "bitnet-run", mentions: "give a model file")
        // A small file that declares the largest context costs memory for the positions used,
        // not for the whole context (rotary tables were built for all of it: 1.1 GB here).
        let wide = directory.appendingPathComponent("wide.bitnet").path
        #expect(try Fixtures.run(["export", "--random", "--dim", "2048", "--heads", "1", "--layers", "1", "--ffn-dim", "64",
                                  "--vocab-size", "600", "--context", "131072", "--out", wide]).status == 0)
        let wideBench = try Fixtures.run(["--bench", "--json", "--no-bandwidth", "--repetitions", "1", "--threads", "1"],
                                         executable: "bitnet-run", leading: [wide])
        let wideReport = try JSONSerialization.jsonObject(with: Data(wideBench.stdout.utf8)) as? [String: Any] ?? [:]
        let peak = (wideReport["peak_rss_bytes"] as? Int) ?? Int.max
        let fileBytes = try Data(contentsOf: URL(fileURLWithPath: wide)).count
        #expect(peak < 300_000_000, "peak RSS \(peak) bytes for a \(fileBytes)-byte model")
        // Standard input that is a directory, or closed: one line, no trap.
        let runtime = Fixtures.executable.deletingLastPathComponent().appendingPathComponent("bitnet-run").path
        for (redirect, reason) in [("< /tmp", "Is a directory"), ("<&-", "Bad file descriptor")] {
            let result = try Fixtures.run(["-c", "exec '\(runtime)' '\(model)' --max-tokens 2 \(redirect)"], executable: "/bin/sh")
            #expect(result.status == 1 && result.stderr == "bitnet-run: error: cannot read standard input: \(reason)\n",
                    "\(redirect): \(result.stderr)")
        }
        // A closed pipe (| head) ends generation quietly, as SIGPIPE ends other tools (a long
        // generation, so that writes go on after head has gone).
        let piped = try Fixtures.run(["-c", "'\(runtime)' '\(wide)' --prompt Hello --max-tokens 3000 --threads 1 2>&1 | head -c 4; "
                                      + "echo \" status ${PIPESTATUS[0]}\""], executable: "/bin/bash")
        #expect(piped.stdout.hasSuffix(" status 141\n") && piped.stdout.count < 40, "\(piped.stdout)")
        // A full disk is an error, said in one line; nothing traps.
        for (arguments, executable, leading) in [(["--prompt", "x", "--max-tokens", "5"], "bitnet-run", [model]),
                                                 (["--bench", "--no-bandwidth", "--repetitions", "1"], "bitnet-run", [model]),
                                                 (["fields"], "bitnet-train", [String]())] {
            let full = try Fixtures.run(arguments, executable: executable, leading: leading, stdout: "/dev/full")
            #expect(full.status == 1 && full.stderr.contains("cannot write to standard output: No space left on device"),
                    "\(arguments): \(full.status) \(full.stderr)")
        }
        // --bench on a context of 1, and token counts whose sum overflows.
        let one = directory.appendingPathComponent("one.bitnet").path
        #expect(try Fixtures.run(["export", "--random"] + shape + ["--context", "1", "--out", one]).status == 0)
        try expectCleanFailure(["--bench"], executable: "bitnet-run", leading: [one], mentions: "needs a context of at least 2")
        try expectCleanFailure(["--bench", "--prompt-tokens", "\(Int.max)", "--gen-tokens", "10"], executable: "bitnet-run",
                               leading: [model], mentions: "exceed the context of 64")
        let notText = try Fixtures.run(["--max-tokens", "3"], executable: "bitnet-run", leading: [model], input: Data([0x61, 0xFF, 0x0A]))
        #expect(notText.status == 1 && notText.stderr == "bitnet-run: error: standard input is not valid UTF-8\n", "\(notText.stderr)")
        // A context beyond the runtime's limit is refused by export (and by the loader: HostileInputTests).
        try expectCleanFailure(["export", "--random"] + shape + ["--context", "200000", "--out", directory.path + "/long.bitnet"],
                               mentions: "--context must be in 1...131072, got 200000")

        let out = directory.appendingPathComponent("x.bitnet").path
        try expectCleanFailure(["export", "--random", "--mode", "fp"] + shape + ["--out", out], mentions: "--mode must be binary or ternary")
        try expectCleanFailure(["export", directory.path, "--random"] + shape + ["--out", out], mentions: "not both")
        try expectCleanFailure(["export", "--out", out], mentions: "give a RUN_DIR to export, or --random")
        try expectCleanFailure(["export", "--random"] + shape + ["--context", "0", "--out", out], mentions: "--context must be in 1...131072, got 0")
        try expectCleanFailure(["export", "--random", "--dim=-4", "--layers", "1", "--heads", "2", "--ffn-dim", "32", "--vocab-size", "600",
                                "--out", out], mentions: "--dim must be in 1...65536, got -4")
        #expect(!FileManager.default.fileExists(atPath: out))
    }
}
