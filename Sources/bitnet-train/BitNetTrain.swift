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
                      ReportCommand.self, ExportCommand.self, PresetsCommand.self]
    )
}

/// Runs `body`, turning any error into one line on stderr and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch {
        log("bitnet-train: error: \(error)")
        throw ExitCode(1)
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
            print("\(p.name.padding(toLength: 8, withPad: " ", startingAt: 0)) dim \(m.dim), layers \(m.layers), heads \(m.heads), "
                  + "ffn \(m.ffnDim), context \(m.context), batch \(p.training.batchSize) (micro \(p.training.microBatchSize)), "
                  + "\(p.training.steps) steps; \(formatCount(m.nonEmbeddingParameters)) non-embedding parameters "
                  + "(binary, vocabulary \(m.vocabSize)): \(p.summary)")
        }
    }
}
