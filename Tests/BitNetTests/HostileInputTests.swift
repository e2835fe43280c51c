// Findings of issue 13, each kept fixed: hostile values in checksum-valid model files,
// odd paths given as a model or a run, data directories that point outside themselves,
// and leftovers of killed writers.
import BitNetFormat
import Foundation
import Testing
@testable import BitNet
@testable import BitNetRuntime

@Suite(.serialized) struct HostileInputTests {
    /// A valid tiny model's tensors, config object and tokenizer, to rewrite with one value changed.
    static func parts() throws -> ([PackedTensor], [String: Any], [String: Any]) {
        var c = ModelConfig()
        (c.vocabSize, c.dim, c.heads, c.layers, c.ffnDim, c.context) = (600, 32, 2, 1, 32, 16)
        let config = try JSONSerialization.jsonObject(with: JSONEncoder().encode(c)) as? [String: Any] ?? [:]
        return (RandomModel.tensors(config: c, seed: 1), config, try RandomModel.tokenizer(size: 600))
    }

    static func loadMessage(config: [String: Any], tokenizer: [String: Any], tensors: [PackedTensor]) throws -> String {
        let url = Fixtures.temporaryDirectory("hostile").appendingPathComponent("m.bitnet")
        try PackedModel.write(configObject: config, tensors: tensors, tokenizer: tokenizer, to: url)
        do {
            _ = try BitNetRuntime.Model(path: url.path, threads: 1)
            return ""
        } catch {
            return "\(error)"
        }
    }

    @Test func hostileValuesAreRefused() throws {
        let (tensors, config, tokenizer) = try Self.parts()
        #expect(try Self.loadMessage(config: config, tokenizer: tokenizer, tensors: tensors) == "")
        let tokenizerCases: [(String, Any, String)] = [
            ("eos_id", 1 << 31, "eos_id 2147483648 is outside the vocabulary"), ("eos_id", 600, "eos_id 600 is outside"),
            ("bos_id", -5, "bos_id -5 is outside"), ("unk_id", 1 << 40, "unk_id 1099511627776 is outside"),
        ]
        for (key, value, fragment) in tokenizerCases {
            var t = tokenizer
            t[key] = value
            let message = try Self.loadMessage(config: config, tokenizer: t, tensors: tensors)
            #expect(message.contains(fragment), "\(key) \(value): \(message)")
        }
        let configCases: [(String, Any, String)] = [
            ("rope_theta", -1.0, "rope_theta must be a finite number > 1"), ("rope_theta", 0.0, "rope_theta"),
            ("rope_theta", 1e39, "rope_theta"), ("norm_epsilon", 0.0, "norm_epsilon must be in (0, 1)"),
            ("norm_epsilon", -1e-5, "norm_epsilon"), ("norm_epsilon", 3.0, "norm_epsilon"),
            ("activation_range", "sideways", "activation_range must be"),
            ("context", 200_000, "context 200000 is larger than this runtime's limit of 131072"),
            ("heads", 3, "heads must divide dim"), ("dim", 1 << 30, "field dim is missing or out of range"),
        ]
        for (key, value, fragment) in configCases {
            var c = config
            c[key] = value
            let message = try Self.loadMessage(config: c, tokenizer: tokenizer, tensors: tensors)
            #expect(message.contains(fragment), "\(key) \(value): \(message)")
        }
        for scale in [Float.nan, -0.5, .infinity, 1e31] {
            var t = tensors
            let i = try #require(t.firstIndex { $0.dtype == .binary })
            t[i].scale = scale
            let message = try Self.loadMessage(config: config, tokenizer: tokenizer, tensors: t)
            #expect(message.contains("has scale"), "\(scale): \(message)")
        }
    }

    @Test func pathsThatAreNotModelFiles() {
        for (path, fragment) in [(NSTemporaryDirectory(), "is a directory, not a model file"), ("/dev/null", "is not a regular file")] {
            #expect(throws: RuntimeError.self) { try ModelFile(path: path) }
            do { _ = try ModelFile(path: path) } catch { #expect("\(error)".contains(fragment), "\(error)") }
        }
    }

    @Test func dataDirectoriesStayInside() throws {
        let data = Fixtures.temporaryDirectory("outside")
        for file in ["train.bin", "val.bin", "meta.json", "tokenizer.model"] {
            try FileManager.default.copyItem(atPath: Fixtures.shared.data + "/" + file, toPath: data.path + "/" + file)
        }
        let metaURL = data.appendingPathComponent("meta.json")
        var meta = try JSONSerialization.jsonObject(with: Data(contentsOf: metaURL)) as? [String: Any] ?? [:]
        meta["tokenizer"] = "../../../../etc/hostname"
        try JSONSerialization.data(withJSONObject: meta).write(to: metaURL)
        #expect(throws: BitNetError.file("\(metaURL.path): tokenizer must be a file name inside \(data.path), got '../../../../etc/hostname'")) {
            try TokenDataset(directory: data.path)
        }
        // A tokenizer whose vocabulary is not the data's is refused before training.
        meta["tokenizer"] = "tokenizer.model"
        meta["vocab_size"] = (meta["vocab_size"] as? Int ?? 0) + 7
        try JSONSerialization.data(withJSONObject: meta).write(to: metaURL)
        let dataset = try TokenDataset(directory: data.path)
        let config = Fixtures.tinyRunConfig(mode: .binary, steps: 5, vocabSize: dataset.meta.vocabSize)
        do {
            _ = try Trainer(runDirectory: Fixtures.temporaryDirectory("vocab"), config: config, dataset: dataset,
                            resume: false, force: false)
            Issue.record("a tokenizer of another vocabulary was accepted")
        } catch {
            #expect("\(error)".contains("differs from the data's"), "\(error)")
        }
    }

    @Test func runDirectoryLeftoversAndFiles() throws {
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        let config = Fixtures.tinyRunConfig(mode: .binary, steps: 5, vocabSize: dataset.meta.vocabSize)
        // A file where the run directory should be.
        let file = Fixtures.temporaryDirectory("file-as-run").appendingPathComponent("run")
        try Data("x".utf8).write(to: file)
        #expect(throws: BitNetError.file("\(file.path): is a file, not a run directory")) {
            try Trainer(runDirectory: file, config: config, dataset: dataset, resume: false, force: false)
        }
        // A killed writer's temporary checkpoint is removed when the next trainer starts.
        let run = Fixtures.temporaryDirectory("leftovers")
        try Trainer(runDirectory: run, config: config, dataset: dataset, resume: false, force: false).run { _ in }
        let leftover = run.appendingPathComponent(".checkpoint.safetensors.tmp-99999")
        try Data(count: 100).write(to: leftover)
        _ = try Trainer(runDirectory: run, config: config, dataset: dataset, resume: true, force: false)
        #expect(!FileManager.default.fileExists(atPath: leftover.path))
    }
}
