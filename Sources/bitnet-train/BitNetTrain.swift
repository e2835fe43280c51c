// bitnet-train: tokenizer, prepare, train, eval, sample, bench. Diagnostics and
// progress go to stderr; stdout carries only results.
import ArgumentParser
import BitNet
import BitNetCLI
import Foundation

@main
struct BitNetTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bitnet-train",
        abstract: "Train 1-bit (BitNet) and full-precision Transformer language models on the CPU.",
        subcommands: [TokenizerCommand.self, PrepareCommand.self, TrainCommand.self, EvalCommand.self,
                      SampleCommand.self, BenchCommand.self, SweepCommand.self, LearningRateSweepCommand.self,
                      ReportCommand.self, QuantizeCommand.self, PTQReportCommand.self, ExportCommand.self,
                      ProjectScalingCommand.self, PlotCommand.self, PresetsCommand.self, FieldsCommand.self]
    )

    static func main() { mainWithOneLineErrors(programName: "bitnet-train") }
}

/// Runs `body`, turning any error into one line on stderr and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch {
        log("bitnet-train: error: \(commandLineMessage(error))")
        throw ExitCode(1)
    }
}

/// The library's error in the command line's words: configuration fields become their
/// flags, and the ways out name the flags that take them.
func commandLineMessage(_ error: Error) -> String {
    guard let error = error as? BitNetError else { return "\(error)" }
    switch error {
    case .field(let key, let problem): return "\(ConfigFields.entry(key: key)?.flag ?? key) \(problem)"
    case .diverged(let message):
        return message + "; stopped. Try a lower --lr or a smaller --grad-clip"
    case .occupied(let what) where what.hasSuffix("already holds a run"):
        return what + "; pass --resume to continue it or --force to replace it"
    case .occupied(let what):
        return what + "; use another --out, or --force to redefine it (finished runs whose config is unchanged are kept)"
    default: return error.description
    }
}

extension WeightMode: ExpressibleByArgument {}
extension NormKind: ExpressibleByArgument {}
extension ActivationScaling: ExpressibleByArgument {}
extension FFNActivation: ExpressibleByArgument {}
extension DecayKind: ExpressibleByArgument {}
extension TokenizerKind: ExpressibleByArgument {}

struct PresetsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "presets", abstract: "List the model size presets.")

    func run() throws {
        for p in Preset.all {
            let m = p.model
            try printLine("\(p.name.padding(toLength: 8, withPad: " ", startingAt: 0)) dim \(m.dim), layers \(m.layers), heads \(m.heads), "
                  + "ffn \(m.ffnDim), context \(m.context), batch \(p.training.batchSize) (micro \(p.training.microBatchSize)), "
                  + "\(p.training.steps) steps; \(formatCount(m.nonEmbeddingParameters)) non-embedding parameters "
                  + "(binary, vocabulary \(m.vocabSize)): \(p.summary)")
        }
    }
}
