// The configuration defined once: the table of fields against config.json files written
// by the previous version, against the README's copy, and through the overrides.
import Foundation
import Testing
@testable import BitNet

@Suite struct ConfigTests {
    /// config.json as the version before the table wrote it (synthesized Codable; an unset
    /// learning rate left out).
    static let previousConfigJSON = """
    {
      "model" : { "activation_scaling" : "per-token", "context" : 128, "dim" : 128, "ffn_activation" : "swiglu",
                  "ffn_dim" : 352, "heads" : 4, "layers" : 4, "mode" : "ternary", "norm" : "rms", "norm_epsilon" : 1e-05,
                  "rope_theta" : 10000, "tied_embeddings" : true, "vocab_size" : 4096 },
      "preset" : "mini",
      "training" : { "adam_epsilon" : 1e-08, "batch_size" : 16, "beta1" : 0.9, "beta2" : 0.95, "checkpoint_every" : 200,
                     "decay" : "cosine", "eval_every" : 100, "eval_windows" : 64, "grad_clip" : 1, "log_every" : 10,
                     "micro_batch_size" : 16, "min_learning_rate_ratio" : 0.1, "seed" : 1337, "stage2_learning_rate_factor" : 0.5,
                     "steps" : 2400, "two_stage" : false, "warmup_steps" : 100, "weight_decay" : 0.1 }
    }
    """

    @Test func previousConfigFilesReadAndWriteTheSameKeys() throws {
        let data = Data(Self.previousConfigJSON.utf8)
        let config = try JSONDecoder().decode(RunConfig.self, from: data)
        let expected = try Preset.named("mini")
        var model = expected.model
        model.mode = .ternary
        model.activationRange = .signed  // what the file was trained with, not the preset's newer default
        #expect(config == RunConfig(preset: "mini", model: model, training: expected.training))
        // Written again: the same keys and values as the previous version wrote, and the
        // fields added since (activation_range, activation_storage, hadamard_block,
        // int4_backward, int4_sample_fraction, layout, kv_heads) at their defaults.
        let written = try JSONSerialization.jsonObject(with: JSONEncoder().encode(config)) as? [String: Any]
        var previous = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
        var previousModel = previous["model"] as? [String: Any] ?? [:]
        previousModel["activation_range"] = "signed"
        previousModel["hadamard_block"] = 0
        previousModel["int4_backward"] = "lss"
        previousModel["int4_sample_fraction"] = 0.5
        previousModel["layout"] = "bitnet"
        previousModel["kv_heads"] = 0
        previous["model"] = previousModel
        var previousTraining = previous["training"] as? [String: Any] ?? [:]
        previousTraining["activation_storage"] = "f32"
        previous["training"] = previousTraining
        #expect(written.map { NSDictionary(dictionary: $0) } == NSDictionary(dictionary: previous))
        #expect(ConfigFields.all.count == 19 + 20)
    }

    @Test func everyFieldHasAFlagAndIsChecked() throws {
        let base = Fixtures.tinyRunConfig(mode: .binary)
        let set = try base.overriding([("adam_epsilon", "1e-6"), ("stage2_learning_rate_factor", "0.25"),
                                       ("norm_epsilon", "1e-6"), ("learning_rate", "0.002"), ("mode", "ternary")])
        #expect(set.training.adamEpsilon == 1e-6 && set.training.stage2LearningRateFactor == 0.25)
        #expect(set.model.normEpsilon == 1e-6 && set.training.learningRate == 0.002 && set.model.mode == .ternary)
        #expect(Set(ConfigFields.all.map(\.flag)).count == ConfigFields.all.count)
        // Each field's text round-trips through its flag's parser (warm-up given, so that
        // setting steps does not cap it).
        for entry in ConfigFields.all {
            let again = try base.overriding([(entry.key, entry.text(base)), ("warmup_steps", "\(base.training.warmupSteps)")])
            #expect(again == base, "\(entry.key)")
        }
        #expect(throws: BitNetError.field("adam_epsilon", problem: "must be > 0, got 0.0")) {
            try base.overriding([("adam_epsilon", "0")])
        }
        #expect(throws: BitNetError.field("dim", problem: "must be an integer, got '1.5'")) {
            try base.overriding([("dim", "1.5")])
        }
    }

    /// The short-run conveniences: micro-batch fitted to a smaller batch, warm-up capped.
    @Test func overridesKeepShortRunsSensible() throws {
        let base = try RunConfig(preset: "small", model: Preset.named("small").model, training: Preset.named("small").training)
        let short = try base.overriding([("batch_size", "4"), ("steps", "50")])
        #expect(short.training.microBatchSize == 4 && short.training.warmupSteps == 5)
        let explicit = try base.overriding([("steps", "50"), ("warmup_steps", "20")])
        #expect(explicit.training.warmupSteps == 20)
    }

    /// The README's table of fields is the one `bitnet-train fields --markdown` prints.
    @Test func readmeTableEqualsTheFields() throws {
        let readme = try String(contentsOf: Fixtures.repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let begin = "<!-- fields: begin (bitnet-train fields --markdown) -->\n", end = "<!-- fields: end -->"
        let start = try #require(readme.range(of: begin)), stop = try #require(readme.range(of: end))
        #expect(String(readme[start.upperBound..<stop.lowerBound]) == ConfigFields.markdownTable)
    }
}
