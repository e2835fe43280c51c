// `bitnet-train export`: a run's checkpoint as one packed MODEL.bitnet for bitnet-run, or
// as GGUF for llama.cpp (--format gguf), or (--random) a model of any shape with random
// weights for runtime benchmarks.
import ArgumentParser
import BitNet
import BitNetCLI
import Foundation

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Write a run's checkpoint as a packed model file or GGUF (see docs/FORMAT.md).",
        discussion: """
        bitnet-train export RUN_DIR --out MODEL.bitnet [--f16]
        bitnet-train export RUN_DIR --format gguf [--type tq2_0|tq1_0|f16] --out MODEL.gguf
        GGUF (for llama.cpp's bitnet architecture) holds binary or ternary runs trained with --layout b1.58.
        bitnet-train export --random --mode ternary --dim 768 --layers 12 --heads 12 --ffn-dim 2048 --vocab-size 32000 \\
            --context 2048 --out M.bitnet
        With --random the shape is a preset (--preset, default mini) with any config field set by its flag; \
        --seed seeds the weights.
        """)

    @Option(help: "Output model file.") var out: String
    @Option(help: "packed (MODEL.bitnet, for bitnet-run) or gguf (for llama.cpp).") var format: ExportFormat = .packed
    @Option(help: "GGUF weight type: tq2_0 (2.06 bits per weight), tq1_0 (1.69) or f16.") var type: GGUFWeightType?
    @Flag(help: "Store the embedding (and an untied head) in 16 bits instead of 32.") var f16 = false
    @Flag(help: "Write random weights of a given shape instead of a run's checkpoint (RUN_DIR).") var random = false
    /// RUN_DIR, or with --random the shape's config fields.
    @OptionGroup var options: ConfigOptions

    /// The run directory to export, or nil with --random.
    func runDirectory() throws -> String? {
        let (values, positionals) = try options.parsedArguments()
        if random {
            if !positionals.isEmpty { throw ValidationError("give either RUN_DIR or --random, not both") }
            return nil
        }
        guard positionals.count == 1 else { throw ValidationError("give a RUN_DIR to export, or --random with a shape") }
        if let (key, _) = values.first {
            throw ValidationError("\(ConfigFields.entry(key: key)?.flag ?? key) goes with --random; a run is exported with its own config")
        }
        return positionals[0]
    }

    func validate() throws {
        _ = try runDirectory()
        if format == .gguf && f16 { throw ValidationError("--f16 is a packed-format option (GGUF stores the embedding in FP16)") }
        if format == .packed && type != nil { throw ValidationError("--type goes with --format gguf") }
    }

    func run() throws {
        try reportingErrors {
            let url = URL(fileURLWithPath: out)
            let description: String
            if let runDirectory = try runDirectory() {
                // The packed format holds a BitNet model: every projection normalizes its input
                // (SubLN) before rounding it, and its weights are codes with one scale per
                // tensor. A run quantized after training is an fp model: no SubLN inside its
                // projections, and a scale per output channel (or group).
                if QuantizedRun.isQuantizedRun(URL(fileURLWithPath: runDirectory)) {
                    throw BitNetError.invalid("\(runDirectory): a run quantized after training is an fp model (no norm inside "
                                              + "its projections, a scale per output channel or group), which the packed format "
                                              + "cannot hold; evaluate it with 'eval' and 'sample'")
                }
                if format == .gguf, let config = try RunDirectory(URL(fileURLWithPath: runDirectory)).readConfig(),
                   let problem = GGUFExport.problem(config.model, type: type ?? .tq2_0) {
                    throw BitNetError.invalid("\(runDirectory): \(problem)")
                }
                let (model, config, state) = try Checkpoint.loadModel(runDirectory: URL(fileURLWithPath: runDirectory))
                let tokenizer = try runTokenizer(runDirectory, vocabSize: config.model.vocabSize)
                let tensors = try PackedModel.tensors(of: model, embeddingsAsF16: f16)
                let name = URL(fileURLWithPath: runDirectory).standardizedFileURL.lastPathComponent
                try write(config: config.model, tensors: tensors, tokenizer: PackedModel.tokenizerMetadata(tokenizer), name: name, to: url)
                description = "step \(state.step), \(config.model.mode.rawValue)"
            } else {
                let run = try options.runConfig(vocabSize: nil), config = run.model
                guard config.mode.isBitNet else { throw ValidationError("--mode must be binary or ternary for a packed model") }
                let tokenizer = try RandomModel.tokenizer(size: config.vocabSize)
                log("generating \(formatCount(config.totalParameters)) random \(config.mode.rawValue) parameters")
                if format == .gguf, let problem = GGUFExport.problem(config, type: type ?? .tq2_0) { throw BitNetError.invalid(problem) }
                try write(config: config, tensors: RandomModel.tensors(config: config, seed: run.training.seed),
                          tokenizer: tokenizer, name: "random", to: url)
                description = "random \(config.mode.rawValue), d\(config.dim) \(config.layers)L"
            }
            let bytes = (try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0
            let as_ = format == .gguf ? " as GGUF \((type ?? .tq2_0).rawValue)" : ""
            log("wrote \(out): \(description)\(as_), \(bytes) bytes")
        }
    }

    /// The packed file, or GGUF holding the same weights.
    func write(config: ModelConfig, tensors: [PackedTensor], tokenizer: [String: Any], name: String, to url: URL) throws {
        if format == .gguf {
            try GGUFExport.write(config: config, tensors: tensors, tokenizer: tokenizer, type: type ?? .tq2_0, name: name, to: url)
        } else {
            try PackedModel.write(config: config, tensors: tensors, tokenizer: tokenizer, to: url)
        }
    }
}

enum ExportFormat: String, ExpressibleByArgument, CaseIterable {
    case packed, gguf
}

extension GGUFWeightType: ExpressibleByArgument {}
