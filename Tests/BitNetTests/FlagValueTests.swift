// Every value-taking flag of both programs against hostile values (issue 13): NaN,
// infinity, negative, zero, huge and non-numeric. Each is refused with one line naming
// the flag (a usage hint may follow), or, where the value is valid for the flag, the
// command runs normally.
import Foundation
import Testing
@testable import BitNet

struct FlagCase: CustomTestStringConvertible, Sendable {
    let program: String
    /// The command before the flag; "MODEL", "RUN", "DATA" and "OUT" are filled in.
    let command: [String]
    let flag: String
    /// Hostile values that are valid for this flag: the command must then succeed.
    let valid: Set<String>
    /// Values that are valid but ask for more work than a test can do (a sweep of 1e20
    /// FLOPs): not run.
    var costly: Set<String> = []
    var testDescription: String { "\(program) \(command.first ?? "") \(flag)" }

    static let values = ["nan", "inf", "-1", "0", "99999999999999999999", "1e30", "abc"]

    static let all: [FlagCase] = {
        let run = ["MODEL", "--prompt", "x", "--max-tokens", "2"], bench = ["MODEL", "--bench", "--no-bandwidth", "--repetitions", "1"]
        let sample = ["sample", "RUN", "--max-tokens", "2"], eval = ["eval", "RUN", "--data", "DATA", "--windows", "2"]
        let train = ["train", "--data", "DATA", "--out", "OUT", "--preset", "tiny", "--steps", "2"]
        let sweep = ["sweep", "--data", "DATA", "--presets", "32x1", "--out", "OUT", "--tokens-per-param", "1"]
        var cases: [FlagCase] = []
        func add(_ program: String, _ command: [String], _ flags: [String], valid: Set<String> = [], costly: Set<String> = []) {
            cases += flags.map { FlagCase(program: program, command: command, flag: $0, valid: valid, costly: costly) }
        }
        add("bitnet-run", ["MODEL", "--prompt", "x"], ["--max-tokens"])
        add("bitnet-run", run, ["--temperature"], valid: ["0", "99999999999999999999", "1e30"])
        add("bitnet-run", run, ["--top-k"], valid: ["0"])
        add("bitnet-run", run, ["--seed"], valid: ["0"])
        add("bitnet-run", run, ["--top-p", "--threads", "--context"])
        add("bitnet-run", run, ["--head", "--kv-cache"])
        add("bitnet-run", run, ["--repeat-penalty"], valid: ["99999999999999999999", "1e30"])
        add("bitnet-run", run, ["--repeat-last-n"], valid: ["0"])
        add("bitnet-run", bench + ["--gen-tokens", "1"], ["--prompt-tokens"])
        add("bitnet-run", bench + ["--prompt-tokens", "1"], ["--gen-tokens"])
        add("bitnet-run", bench + ["--prompt-tokens", "1", "--gen-tokens", "1"], ["--repetitions"])
        add("bitnet-train", ["sample", "RUN"], ["--max-tokens"])
        add("bitnet-train", sample, ["--temperature"], valid: ["0", "99999999999999999999", "1e30"])
        add("bitnet-train", sample, ["--top-k"], valid: ["0"])
        add("bitnet-train", sample, ["--seed"], valid: ["0"])
        add("bitnet-train", sample, ["--top-p"])
        add("bitnet-train", sample, ["--repeat-penalty"], valid: ["99999999999999999999", "1e30"])
        add("bitnet-train", sample, ["--repeat-last-n"], valid: ["0"])
        add("bitnet-train", eval, ["--windows"], valid: ["0"])
        add("bitnet-train", eval, ["--batch", "--window"])
        add("bitnet-train", ["bench", "--preset", "tiny"], ["--bench-steps"])
        add("bitnet-train", ["tokenizer", "--input", "DATA/meta.json", "--out", "OUT/t.model"], ["--vocab-size"])
        add("bitnet-train", ["prepare", "--input", "DATA/meta.json", "--tokenizer", "DATA/tokenizer.model", "--out", "OUT"],
            ["--val-fraction"])
        add("bitnet-train", train, ["--lr", "--steps", "--batch-size", "--micro-batch-size", "--log-every", "--eval-every",
                                    "--eval-windows", "--checkpoint-every", "--dim", "--layers", "--context"])
        add("bitnet-train", train, ["--warmup-steps", "--weight-decay", "--beta2"], valid: ["0"])
        add("bitnet-train", train, ["--grad-clip"], valid: ["0", "99999999999999999999", "1e30"])
        add("bitnet-train", ["sweep", "--data", "DATA", "--presets", "32x1", "--out", "OUT"], ["--tokens", "--tokens-per-param"])
        add("bitnet-train", ["sweep", "--data", "DATA", "--presets", "32x1", "--out", "OUT"], ["--flops"], costly: ["99999999999999999999"])
        add("bitnet-train", sweep, ["--context", "--eval-windows", "--batch-size", "--micro-batch-size", "--jobs"])
        add("bitnet-train", ["quantize", "RUN", "--out", "OUT", "--wbits", "4"], ["--group-size", "--abits"])
        add("bitnet-train", ["quantize", "RUN", "--out", "OUT"], ["--wbits"])
        add("bitnet-train", ["quantize", "RUN", "--out", "OUT", "--wbits", "4", "--method", "gptq", "--calibration", "DATA"],
            ["--calibration-windows"])
        add("bitnet-train", ["quantize", "RUN", "--out", "OUT", "--wbits", "4", "--method", "smoothquant", "--calibration", "DATA"],
            ["--alpha"], valid: ["0"])
        add("bitnet-train", ["quantize", "RUN", "--out", "OUT", "--wbits", "4", "--method", "omniquant", "--calibration", "DATA"],
            ["--epochs"], valid: ["0"])
        add("bitnet-train", ["quantize", "RUN", "--out", "OUT", "--wbits", "4", "--method", "omniquant", "--calibration", "DATA"],
            ["--lr"])
        add("bitnet-train", ["ptq-report", "--fp", "RUN", "--data", "DATA", "--out", "OUT", "--methods", "rtn"],
            ["--calibration-windows", "--group-size"])
        add("bitnet-train", ["ptq-report", "--fp", "RUN", "--data", "DATA", "--out", "OUT", "--methods", "rtn"],
            ["--epochs"], costly: ["0"])
        add("bitnet-train", ["lr-sweep", "--data", "DATA", "--preset", "tiny", "--steps", "2", "--out", "OUT"], ["--lrs", "--jobs"])
        add("bitnet-train", ["plot", "RUN", "--out", "OUT"], ["--from-step"], valid: ["0"])
        return cases
    }()
}

@Suite struct FlagValueTests {
    /// A random model for bitnet-run and a 2-step fp run for eval, sample and quantize.
    static let fixtures: (model: String, run: String) = {
        let directory = Fixtures.temporaryDirectory("flag-values")
        let model = directory.appendingPathComponent("m.bitnet").path
        let run = directory.appendingPathComponent("run")
        let exported = try? Fixtures.run(["export", "--random", "--dim", "32", "--layers", "1", "--heads", "2", "--ffn-dim", "32",
                                          "--vocab-size", "600", "--context", "64", "--out", model])
        precondition(exported?.status == 0, "the test model was not written")
        let trained = try? Fixtures.run(["train", "--data", Fixtures.shared.data, "--out", run.path, "--preset", "tiny",
                                         "--steps", "2", "--dim", "32", "--layers", "1", "--mode", "fp"])
        precondition(trained?.status == 0, "the test run did not train")
        return (model, run.path)
    }()

    @Test(arguments: FlagCase.all)
    func flagValues(_ flagCase: FlagCase) throws {
        let (model, run) = Self.fixtures
        for value in FlagCase.values where !flagCase.costly.contains(value) {
            let out = Fixtures.temporaryDirectory("flag-out").appendingPathComponent("out").path
            let command = flagCase.command.map { part in
                part.replacingOccurrences(of: "MODEL", with: model).replacingOccurrences(of: "RUN", with: run)
                    .replacingOccurrences(of: "DATA", with: Fixtures.shared.data).replacingOccurrences(of: "OUT", with: out)
            }
            let arguments = command + [flagCase.flag, value]
            let result = try Fixtures.run(arguments, executable: flagCase.program)
            let lines = result.stderr.split(separator: "\n").filter { !$0.isEmpty }
            let what = "\(flagCase.program) \(arguments.joined(separator: " ")): status \(result.status), stderr: \(result.stderr)"
            if flagCase.valid.contains(value) {
                #expect(result.status == 0, "\(what)")
                continue
            }
            #expect(result.status == 1 || result.status == 64, "\(what)")
            #expect(lines.count == 1 || (lines.count == 2 && lines[1].contains("--help")), "\(what)")
            let key = flagCase.flag.dropFirst(2).replacingOccurrences(of: "-", with: "_")
            #expect(result.stderr.contains(flagCase.flag) || result.stderr.contains(key), "\(what)")
        }
    }

    /// Every config field (what `train`, `bench` and `lr-sweep` read by flag, and
    /// config.json holds) against the same values: refused naming the field, or valid.
    @Test func everyConfigFieldValue() throws {
        let base = RunConfig(preset: "mini", model: try Preset.named("mini").model, training: try Preset.named("mini").training)
        var refused = 0, accepted = 0
        for entry in ConfigFields.all {
            for value in FlagCase.values + ["1e-30", "-0", "1.5", "true", ""] {
                do {
                    let config = try base.overriding([(entry.key, value)])
                    try config.validate()
                    accepted += 1
                } catch let error as BitNetError {
                    #expect("\(error)".contains(entry.key) && !"\(error)".contains("\n"), "\(entry.key) = \(value): \(error)")
                    refused += 1
                }
            }
        }
        #expect(refused > 5 * ConfigFields.all.count && accepted > 0)
    }
}
