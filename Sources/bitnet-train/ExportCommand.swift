// `bitnet-train export`: a run's checkpoint as one packed MODEL.bitnet for bitnet-run.
import ArgumentParser
import BitNet
import Foundation

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Write a run's checkpoint as a packed model file (see docs/FORMAT.md).")

    @Argument(help: "Run directory.") var runDirectory: String
    @Option(help: "Output model file.") var out: String
    @Flag(help: "Store the embedding (and an untied head) in 16 bits instead of 32.") var f16 = false

    func run() throws {
        try reportingErrors {
            let (model, config, state) = try Checkpoint.loadModel(runDirectory: URL(fileURLWithPath: runDirectory))
            let tokenizer = try runTokenizer(runDirectory, vocabSize: config.model.vocabSize)
            try PackedModel.write(model: model, tokenizer: PackedModel.tokenizerMetadata(tokenizer),
                                  to: URL(fileURLWithPath: out), embeddingsAsF16: f16)
            let bytes = (try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0
            log("wrote \(out): step \(state.step), \(config.model.mode.rawValue), \(bytes) bytes")
        }
    }
}
