// Command-line overrides of every config field, shared by `train` and `bench`.
import ArgumentParser
import BitNet
import BitNetCLI

struct ModelOptions: ParsableArguments {
    @Option(help: "Size preset (see 'bitnet-train presets').") var preset: String = "mini"
    @Option(help: "Weight mode of the projections: fp, binary or ternary.") var mode: WeightMode = .binary
    @Option(help: "Model width.") var dim: Int?
    @Option(help: "Number of Transformer blocks.") var layers: Int?
    @Option(help: "Attention heads (must divide --dim).") var heads: Int?
    @Option(name: .customLong("ffn-dim"), help: "Feed-forward hidden width.") var ffnDim: Int?
    @Option(help: "Context length in tokens.") var context: Int?
    @Option(help: "Norm kind for every norm and SubLN: rms or layer.") var norm: NormKind?
    @Option(help: "Absmax scale of the int8 activations: per-token or per-tensor.") var activationScaling: ActivationScaling?
    @Option(help: "Feed-forward non-linearity: swiglu, gelu or relu2.") var ffnActivation: FFNActivation?
    @Option(help: "Share the embedding with the output head (true/false).") var tiedEmbeddings: Bool?
    @Option(help: "RoPE base frequency.") var ropeTheta: Float?

    @Option(help: "Sequences per optimizer step.") var batchSize: Int?
    @Option(help: "Sequences per forward/backward pass (gradient accumulation).") var microBatchSize: Int?
    @Option(help: "Optimizer steps.") var steps: Int?
    @Option(name: .customLong("lr"), help: "Peak learning rate (default 1e-3 for fp, 3e-3 for binary/ternary).") var learningRate: Float?
    @Option(help: "Linear warm-up steps.") var warmupSteps: Int?
    @Option(help: "Decay after warm-up: cosine, linear or constant.") var decay: DecayKind?
    @Option(help: "Final learning rate as a fraction of the peak.") var minLrRatio: Float?
    @Option(help: "AdamW weight decay (matrices only).") var weightDecay: Float?
    @Option(help: "AdamW beta1.") var beta1: Float?
    @Option(help: "AdamW beta2.") var beta2: Float?
    @Option(help: "Global gradient-norm clip (0 disables).") var gradClip: Float?
    @Option(help: "BitNet b1.58 two-stage schedule (true/false).") var twoStage: Bool?
    @Option(help: "Random seed (initialization and data order).") var seed: UInt64?
    @Option(help: "Log a metrics line every K steps.") var logEvery: Int?
    @Option(help: "Evaluate validation loss every K steps.") var evalEvery: Int?
    @Option(help: "Validation windows per evaluation.") var evalWindows: Int?
    @Option(help: "Write a checkpoint every K steps.") var checkpointEvery: Int?

    /// The preset with every given override applied, validated.
    func runConfig(vocabSize: Int?) throws -> RunConfig {
        let p = try Preset.named(preset)
        var m = p.model, t = p.training
        m.mode = mode
        if let vocabSize { m.vocabSize = vocabSize }
        if let dim { m.dim = dim }
        if let layers { m.layers = layers }
        if let heads { m.heads = heads }
        if let ffnDim { m.ffnDim = ffnDim }
        if let context { m.context = context }
        if let norm { m.norm = norm }
        if let activationScaling { m.activationScaling = activationScaling }
        if let ffnActivation { m.ffnActivation = ffnActivation }
        if let tiedEmbeddings { m.tiedEmbeddings = tiedEmbeddings }
        if let ropeTheta { m.ropeTheta = ropeTheta }
        if let batchSize {
            t.batchSize = batchSize
            if microBatchSize == nil { t.microBatchSize = min(t.microBatchSize, batchSize) }
        }
        if let microBatchSize { t.microBatchSize = microBatchSize }
        if let steps { t.steps = steps }
        if let learningRate { t.learningRate = learningRate }
        if let warmupSteps { t.warmupSteps = warmupSteps }
        if let decay { t.decay = decay }
        if let minLrRatio { t.minLearningRateRatio = minLrRatio }
        if let weightDecay { t.weightDecay = weightDecay }
        if let beta1 { t.beta1 = beta1 }
        if let beta2 { t.beta2 = beta2 }
        if let gradClip { t.gradClip = gradClip }
        if let twoStage { t.twoStage = twoStage }
        if let seed { t.seed = seed }
        if let logEvery { t.logEvery = logEvery }
        if let evalEvery { t.evalEvery = evalEvery }
        if let evalWindows { t.evalWindows = evalWindows }
        if let checkpointEvery { t.checkpointEvery = checkpointEvery }
        // Short runs keep warm-up within the run.
        if steps != nil && warmupSteps == nil { t.warmupSteps = min(t.warmupSteps, max(t.steps / 10, 1)) }
        let config = RunConfig(preset: preset, model: m, training: t)
        try config.validate()
        return config
    }
}
