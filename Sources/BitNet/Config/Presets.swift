// Named model sizes for this kind of machine (2 CPU cores), from a test-sized
// one to ~85M non-embedding parameters. Training defaults travel with them.
public struct Preset: Sendable {
    public let name: String
    public let summary: String
    public let model: ModelConfig
    public let training: TrainingConfig

    public static let all: [Preset] = [
        make("tiny", "100 steps in seconds (tests, smoke runs)",
             dim: 64, layers: 2, heads: 4, ffn: 176, context: 64, batch: 8, micro: 8, steps: 100, warmup: 10),
        make("mini", "the quick-start model (about ten minutes on 2 cores)",
             dim: 128, layers: 4, heads: 4, ffn: 352, context: 128, batch: 16, micro: 16, steps: 2400, warmup: 100),
        make("small", "a few hours on 2 cores",
             dim: 256, layers: 6, heads: 4, ffn: 704, context: 256, batch: 16, micro: 8, steps: 3000, warmup: 150),
        make("medium", "a day or more on 2 cores",
             dim: 512, layers: 8, heads: 8, ffn: 1408, context: 256, batch: 32, micro: 8, steps: 5000, warmup: 250),
        make("base", "the largest; days on 2 cores",
             dim: 768, layers: 12, heads: 12, ffn: 2048, context: 512, batch: 32, micro: 4, steps: 10000, warmup: 500),
    ]

    public static func named(_ name: String) throws -> Preset {
        guard let preset = all.first(where: { $0.name == name }) else {
            throw BitNetError.invalid("unknown preset '\(name)'; known presets: \(all.map(\.name).joined(separator: ", "))")
        }
        return preset
    }

    private static func make(
        _ name: String, _ summary: String, dim: Int, layers: Int, heads: Int, ffn: Int, context: Int,
        batch: Int, micro: Int, steps: Int, warmup: Int
    ) -> Preset {
        var model = ModelConfig()
        model.dim = dim
        model.layers = layers
        model.heads = heads
        model.ffnDim = ffn
        model.context = context
        // The paper's unsigned range where inputs are non-negative: it measured better
        // for ternary and no worse for binary (docs/studies/activation-range). Files
        // without the field keep `signed`, the range they were trained with.
        model.activationRange = .auto
        var training = TrainingConfig()
        training.batchSize = batch
        training.microBatchSize = micro
        training.steps = steps
        training.warmupSteps = warmup
        return Preset(name: name, summary: summary, model: model, training: training)
    }
}
