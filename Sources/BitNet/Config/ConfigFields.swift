// Every configuration field, once: JSON key, flag, valid values, default and meaning.
// config.json's coding, validation, the command line's overrides and the README's table
// of fields (`bitnet-train fields --markdown`; a test keeps the README's copy equal) all
// come from these two lists. The defaults themselves live beside each property
// (ModelConfig, TrainingConfig) and in the presets.

import BitNetFormat

extension ModelConfig {
    static let fields: [ConfigField<ModelConfig>] = [
        .init("mode", \.mode, rule: .anyChoice, default: "`binary`",
              help: "Weights of every projection (Q, K, V, attention output, feed-forward): fp (FP32 baseline), "
                  + "binary (BitNet: Sign of the centred weights), ternary (BitNet b1.58: absmean {-1, 0, +1}) or "
                  + "int4 (INT4 training: Hadamard quantizer forward, bit splitting and leverage-score sampling backward)."),
        .init("layout", \.layout, rule: .anyChoice, default: "`bitnet`",
              help: "bitnet: a SubLN inside every BitLinear, RoPE on interleaved pairs; b1.58: BitNet b1.58 as llama.cpp's "
                  + "`bitnet` graph computes it (sub-norms only before the attention output and down projections, RoPE on "
                  + "halves), the layout GGUF export needs."),
        .init("vocab_size", \.vocabSize, rule: .range(1...(1 << 24)), default: "from the data",
              help: "Vocabulary size; set by the tokenizer the data was prepared with."),
        .init("dim", \.dim, rule: .range(1...65536), default: "preset", help: "Model width."),
        .init("layers", \.layers, rule: .range(1...4096), default: "preset", help: "Transformer blocks."),
        .init("heads", \.heads, rule: .range(1...4096), default: "preset",
              help: "Attention heads; must divide dim into an even head size (RoPE)."),
        .init("kv_heads", \.kvHeads, rule: .range(0...4096), default: "0 (= heads)",
              help: "Key/value heads (grouped-query attention); must divide heads."),
        .init("ffn_dim", \.ffnDim, rule: .range(1...262_144), default: "preset", help: "Feed-forward hidden width."),
        .init("context", \.context, rule: .range(1...131_072), default: "preset",
              help: "Tokens per training window (context length); the runtime reads up to 131072."),
        .init("norm", \.norm, rule: .anyChoice, default: "`rms`",
              help: "Block norms, final norm and the SubLN inside each BitLinear: rms or layer."),
        .init("activation_scaling", \.activationScaling, rule: .anyChoice, default: "`per-token`",
              help: "Absmax scale of the int8 activations: per-token or per-tensor (the paper's; training only)."),
        .init("activation_range", \.activationRange, rule: .anyChoice, default: "`auto` (`signed` in files without it)",
              help: "8-bit activation codes: signed [-127, 127], or the paper's variant for non-negative inputs, "
                  + "shifted by the minimum into [0, 254] (unsigned); auto: unsigned where the input is non-negative "
                  + "by construction (the down projection after relu2 and an rms SubLN)."),
        .init("ffn_activation", \.ffnActivation, rule: .anyChoice, default: "`swiglu`",
              help: "Feed-forward non-linearity: swiglu (gate, up, down), gelu or relu2 (up, down)."),
        .init("tied_embeddings", \.tiedEmbeddings, rule: ConfigRule("true or false") { _ in true }, default: "`true`",
              help: "The output head shares the embedding matrix."),
        .init("rope_theta", \.ropeTheta, rule: ConfigRule("> 1") { $0 > 1 && $0.isFinite }, default: "10000",
              help: "Rotary embedding base frequency."),
        .init("norm_epsilon", \.normEpsilon, rule: ConfigRule("in (0, 1)") { $0 > 0 && $0 < 1 }, default: "1e-05",
              help: "Epsilon inside every norm's square root."),
        .init("hadamard_block", \.hadamardBlock, rule: ConfigRule("0 or a power of two in [1, 4096]") { $0 >= 0 && $0 <= 4096 && $0 & ($0 - 1) == 0 },
              default: "0 (auto)", help: "int4: columns per block of the Hadamard quantizer's block-diagonal transform, "
                  + "dividing dim and ffn_dim; 0: the largest power of two up to 32 that does."),
        .init("int4_backward", \.int4Backward, rule: .anyChoice, default: "`lss`",
              help: "int4: backward products with bit splitting and leverage-score sampling on integers (lss), or in "
                  + "FP32 on the dequantized operands (exact, the paper's ablation)."),
        .init("int4_sample_fraction", \.int4SampleFraction, rule: ConfigRule("in (0, 1]") { $0 > 0 && $0 <= 1 }, default: "0.5",
              help: "int4 with the lss backward: the share of the 2N bit-split gradient rows each backward product keeps "
                  + "in expectation (0.5: the paper's budget of N; 1: every non-zero row, no sampling)."),
    ]
}

extension TrainingConfig {
    static let fields: [ConfigField<TrainingConfig>] = [
        .init("batch_size", \.batchSize, rule: .range(1...(1 << 24)), default: "preset", help: "Sequences per optimizer step."),
        .init("micro_batch_size", \.microBatchSize, rule: .range(1...(1 << 20)), default: "preset",
              help: "Sequences per forward/backward pass; batch_size / micro_batch_size passes are accumulated into one step."),
        .init("steps", \.steps, rule: .range(1...(1 << 40)), default: "preset", help: "Optimizer steps."),
        .init("learning_rate", \.learningRate, flag: "--lr",
              rule: ConfigRule("in (0, 1000]") { $0.map { $0 > 0 && $0 <= 1000 } ?? true },
              default: "1e-3 (`fp`, `int4`), 3e-3 (`binary`, `ternary`)",
              help: "Peak learning rate; BitNet trains stably at larger rates than fp (the paper's section 3)."),
        .init("warmup_steps", \.warmupSteps, rule: .nonNegative, default: "preset",
              help: "Linear warm-up steps; when steps is set without it, capped at a tenth of the run."),
        .init("decay", \.decay, rule: .anyChoice, default: "`cosine`", help: "Decay after warm-up: cosine, linear or constant."),
        .init("min_learning_rate_ratio", \.minLearningRateRatio, flag: "--min-lr-ratio",
              rule: ConfigRule("in [0, 1]") { $0 >= 0 && $0 <= 1 }, default: "0.1",
              help: "The schedule decays to this fraction of the peak."),
        .init("weight_decay", \.weightDecay, rule: ConfigRule("in [0, 10]") { $0 >= 0 && $0 <= 10 }, default: "0.1",
              help: "AdamW decoupled weight decay, on matrices only."),
        .init("beta1", \.beta1, rule: ConfigRule("in [0, 1)") { $0 >= 0 && $0 < 1 }, default: "0.9", help: "AdamW beta1."),
        .init("beta2", \.beta2, rule: ConfigRule("in [0, 1)") { $0 >= 0 && $0 < 1 }, default: "0.95", help: "AdamW beta2."),
        .init("adam_epsilon", \.adamEpsilon, rule: ConfigRule("> 0") { $0 > 0 && $0.isFinite }, default: "1e-08",
              help: "AdamW epsilon."),
        .init("grad_clip", \.gradClip, rule: ConfigRule(">= 0") { $0 >= 0 && $0.isFinite }, default: "1.0",
              help: "Global gradient-norm clip; 0 disables it."),
        .init("two_stage", \.twoStage, rule: ConfigRule("true or false") { _ in true }, default: "`false`",
              help: "BitNet b1.58's recipe: half way through, the rate is multiplied by stage2_learning_rate_factor "
                  + "and weight decay switched off."),
        .init("stage2_learning_rate_factor", \.stage2LearningRateFactor, rule: ConfigRule("in (0, 1]") { $0 > 0 && $0 <= 1 },
              default: "0.5", help: "The second stage's learning-rate factor (two_stage)."),
        .init("seed", \.seed, rule: ConfigRule("an integer") { _ in true }, default: "1337",
              help: "Seed of the initialization and the data order."),
        .init("log_every", \.logEvery, rule: .positive, default: "10", help: "Write a metrics line every this many steps."),
        .init("eval_every", \.evalEvery, rule: .positive, default: "100", help: "Evaluate the validation loss every this many steps."),
        .init("eval_windows", \.evalWindows, rule: .positive, default: "64",
              help: "Validation windows (of context tokens) per evaluation, spread evenly over the validation split."),
        .init("checkpoint_every", \.checkpointEvery, rule: .positive, default: "200",
              help: "Write a checkpoint every this many steps."),
        .init("activation_storage", \.activationStorage, rule: .anyChoice, default: "`f32`",
              help: "Activations saved for the backward pass in f32, or bf16 (half their memory; weights, gradients "
                  + "and AdamW state stay FP32, arithmetic is FP32)."),
    ]
}

/// The fields of a run's config (model, then training), by key and by flag.
public enum ConfigFields {
    public struct Entry: Sendable {
        public let key, flag, defaultText, validText, help: String
        /// "model" or "training": where config.json holds it.
        public let section: String
        let set: @Sendable (inout RunConfig, String) throws -> Void
        public let text: @Sendable (RunConfig) -> String
    }

    public static let all: [Entry] =
        ModelConfig.fields.map { f in
            Entry(key: f.key, flag: f.flag, defaultText: f.defaultText, validText: f.validText, help: f.help, section: "model",
                  set: { try f.set(&$0.model, $1) }, text: { f.text($0.model) })
        } + TrainingConfig.fields.map { f in
            Entry(key: f.key, flag: f.flag, defaultText: f.defaultText, validText: f.validText, help: f.help, section: "training",
                  set: { try f.set(&$0.training, $1) }, text: { f.text($0.training) })
        }

    public static func entry(key: String) -> Entry? { all.first { $0.key == key } }
    public static func entry(flag: String) -> Entry? { all.first { $0.flag == flag } }

    /// The table of fields in Markdown, as the README shows it.
    public static var markdownTable: String {
        var lines = ["| field | flag | default | valid | meaning |", "|---|---|---|---|---|"]
        for e in all {
            lines.append("| `\(e.key)` | `\(e.flag)` | \(e.defaultText) | \(e.validText) | \(e.help) |")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

extension RunConfig {
    /// This config with fields set from text, by JSON key, in the given order, then
    /// validated. Two conveniences keep short runs sensible: a batch_size set without
    /// micro_batch_size lowers the micro-batch to fit, and steps set without warmup_steps
    /// caps the warm-up at a tenth of the run.
    public func overriding(_ values: [(key: String, text: String)]) throws -> RunConfig {
        var config = self
        for (key, text) in values {
            guard let entry = ConfigFields.entry(key: key) else {
                throw BitNetError.invalid("unknown config field '\(key)'")
            }
            try entry.set(&config, text)
        }
        let keys = Set(values.map(\.key))
        if keys.contains("batch_size") && !keys.contains("micro_batch_size") {
            config.training.microBatchSize = min(config.training.microBatchSize, config.training.batchSize)
        }
        if keys.contains("steps") && !keys.contains("warmup_steps") {
            config.training.warmupSteps = min(config.training.warmupSteps, max(config.training.steps / 10, 1))
        }
        try config.validate()
        return config
    }
}
