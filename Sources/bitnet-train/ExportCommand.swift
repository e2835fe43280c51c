// `bitnet-train export`: a run's checkpoint as one packed MODEL.bitnet for bitnet-run,
// or (--random) a model of any shape with random weights for runtime benchmarks.
import ArgumentParser
import BitNet
import BitNetCLI
import Foundation

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Write a run's checkpoint as a packed model file (see docs/FORMAT.md).",
        discussion: """
        bitnet-train export RUN_DIR --out MODEL.bitnet [--f16]
        bitnet-train export --random --mode ternary --dim 768 --layers 12 --heads 12 --ffn 2048 --vocab-size 32000 --out M.bitnet
        """)

    @Argument(help: "Run directory (omit with --random).") var runDirectory: String?
    @Option(help: "Output model file.") var out: String
    @Flag(help: "Store the embedding (and an untied head) in 16 bits instead of 32.") var f16 = false

    @Flag(help: "Write random weights of the shape given below instead of a run's checkpoint.") var random = false
    @Option(help: "--random: binary or ternary.") var mode: WeightMode = .ternary
    @Option(help: "--random: model width.") var dim: Int?
    @Option(help: "--random: Transformer blocks.") var layers: Int?
    @Option(help: "--random: attention heads.") var heads: Int?
    @Option(help: "--random: feed-forward width (gate, up and down).") var ffn: Int?
    @Option(help: "--random: vocabulary size.") var vocabSize: Int?
    @Option(help: "--random: context length.") var context: Int = 2048
    @Option(help: "--random: seed.") var seed: UInt64 = 1

    func validate() throws {
        if random {
            if runDirectory != nil { throw ValidationError("give either RUN_DIR or --random, not both") }
            for (value, flag) in [(dim, "--dim"), (layers, "--layers"), (heads, "--heads"), (ffn, "--ffn"), (vocabSize, "--vocab-size")] {
                guard let value else { throw ValidationError("--random needs \(flag)") }
                if value <= 0 { throw ValidationError("\(flag) must be positive, got \(value)") }
            }
            if !mode.isQuantized { throw ValidationError("--mode must be binary or ternary for a packed model") }
            if context <= 0 { throw ValidationError("--context must be positive, got \(context)") }
        } else if runDirectory == nil {
            throw ValidationError("give a RUN_DIR to export, or --random with a shape")
        }
    }

    func run() throws {
        try reportingErrors {
            let url = URL(fileURLWithPath: out)
            let description: String
            if random {
                var config = ModelConfig()
                (config.mode, config.dim, config.layers, config.heads) = (mode, dim!, layers!, heads!)
                (config.ffnDim, config.vocabSize, config.context, config.tiedEmbeddings) = (ffn!, vocabSize!, context, true)
                try config.validate()
                let tokenizer = try RandomModel.tokenizer(size: config.vocabSize)
                log("generating \(formatCount(config.totalParameters)) random \(mode.rawValue) parameters")
                try PackedModel.write(config: config, tensors: RandomModel.tensors(config: config, seed: seed),
                                      tokenizer: tokenizer, to: url)
                description = "random \(mode.rawValue), d\(config.dim) \(config.layers)L"
            } else {
                let (model, config, state) = try Checkpoint.loadModel(runDirectory: URL(fileURLWithPath: runDirectory!))
                let tokenizer = try runTokenizer(runDirectory!, vocabSize: config.model.vocabSize)
                try PackedModel.write(config: config.model, tensors: PackedModel.tensors(of: model, embeddingsAsF16: f16),
                                      tokenizer: PackedModel.tokenizerMetadata(tokenizer), to: url)
                description = "step \(state.step), \(config.model.mode.rawValue)"
            }
            let bytes = (try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0
            log("wrote \(out): \(description), \(bytes) bytes")
        }
    }
}
