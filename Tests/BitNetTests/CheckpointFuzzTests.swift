// Checkpoints against hostile values (issue 13): a real run's checkpoint whose
// safetensors header (length, tensor dtypes, shapes, offsets, names), training state
// (step, generator, token count) or config fields are mutated, then read as `eval` and
// `sample` read it (load, one evaluation pass, one prediction) and as `train --resume`
// reads it (up to two more steps). Every mutant is refused with one line or runs; none
// may trap (a trap ends the test process) or hang.
import Foundation
import Testing
@testable import BitNet

@Suite(.serialized) struct CheckpointFuzzTests {
    static let mutants = 2000

    @Test func mutatedCheckpointsAreRefusedOrRun() throws {
        // The base run: 20 of 22 steps done, its checkpoint at step 20.
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        var config = Fixtures.tinyRunConfig(mode: .binary, steps: 22, vocabSize: dataset.meta.vocabSize)
        config.model.dim = 32
        config.model.ffnDim = 64
        config.model.heads = 2
        config.model.layers = 1
        config.training.evalWindows = 2
        let base = Fixtures.temporaryDirectory("checkpoint-fuzz-base")
        let trainer = try Trainer(runDirectory: base, config: config, dataset: dataset, resume: false, force: false)
        trainer.shouldStop = { [unowned trainer] in trainer.state.step >= 20 }
        try trainer.run { _ in }
        let checkpoint = try Data(contentsOf: base.appendingPathComponent(Checkpoint.fileName))
        let configJSON = try Data(contentsOf: base.appendingPathComponent("config.json"))
        let (header, payload) = try Self.split(checkpoint)

        let numbers: [Any] = [0, -1, 1, 2, 3, 19, 20, 21, 64, 1 << 20, 1 << 31, 1 << 40, Int.max, Int.min, 0.5, -0.5, 1e308,
                              "", "x", "binary", true, NSNull(), [Int](), [1, 2], [String: Int]()]
        let strings = ["", "-1", "0", "1", "19", "21", "1000000000000", "9223372036854775807", "-9223372036854775808", "nan",
                       "inf", "-inf", "1e308", "abc", "1,2,3,4", "0,0,0,0", "1,2,3", "18446744073709551615,1,1,1", "1,,2,3"]
        let dtypes: [Any] = ["F32", "I8", "F16", "", 4, NSNull()]
        var rng = Xoshiro256(seed: 1313)
        var refused = 0, ran = 0, resumed = 0, loadedOnly = 0
        let run = Fixtures.temporaryDirectory("checkpoint-fuzz")
        while refused + ran < Self.mutants {
            var h = header
            var runConfig = try JSONSerialization.jsonObject(with: configJSON) as? [String: Any] ?? [:]
            var writeConfigJSON = false
            var lengthOverride: UInt64?
            for _ in 0..<(1 + rng.below(2)) {
                var metadata = h["__metadata__"] as? [String: String] ?? [:]
                switch rng.below(10) {
                case 0, 1, 2:  // a tensor entry's field
                    let names = h.keys.filter { $0 != "__metadata__" }.sorted()
                    let name = names[rng.below(names.count)]
                    var entry = h[name] as? [String: Any] ?? [:]
                    let shape = entry["shape"] as? [Int] ?? []
                    let offsets = entry["data_offsets"] as? [Int] ?? [0, 0]
                    switch rng.below(6) {
                    case 0: entry["dtype"] = dtypes[rng.below(dtypes.count)]
                    case 1: entry["shape"] = [[], [0], [-1], shape.reversed(), shape + [1], shape.map { $0 * 2 },
                                              [1 << 39, 1 << 23], [Int.max], [shape.reduce(1, *)]][rng.below(9)]
                    case 2: entry["data_offsets"] = [[0, 0], [-1, 3], [offsets[0] + 4, offsets[1] + 4], [offsets[1], offsets[0]],
                                                     [0, offsets[1] - offsets[0]], [Int.max - 8, Int.max], [offsets[0]]][rng.below(7)]
                    case 3: h[name] = nil
                    case 4: h[name] = nil; h[name + "x"] = entry
                    default: entry[["dtype", "shape", "data_offsets"][rng.below(3)]] = numbers[rng.below(numbers.count)]
                    }
                    if h[name] != nil { h[name] = entry }
                case 3, 4, 5:  // the training state
                    metadata[["step", "optimizer_step", "rng", "tokens_seen", "elapsed_seconds", "format", "version"][rng.below(7)]] =
                        strings[rng.below(strings.count)]
                case 6, 7, 8:  // a config field, in the checkpoint and (mostly) in config.json alike
                    let section = rng.below(2) == 0 ? "model" : "training"
                    var fields = runConfig[section] as? [String: Any] ?? [:]
                    let keys = fields.keys.sorted()
                    fields[keys[rng.below(keys.count)]] = numbers[rng.below(numbers.count)]
                    runConfig[section] = fields
                    guard JSONSerialization.isValidJSONObject(runConfig) else { continue }
                    metadata["config"] = String(decoding: try JSONSerialization.data(withJSONObject: runConfig), as: UTF8.self)
                    writeConfigJSON = rng.below(4) > 0
                default:  // the header's length
                    lengthOverride = [0, 7, 8, 1 << 20, 1 << 40, UInt64.max, UInt64(rng.below(1 << 16))][rng.below(7)]
                }
                h["__metadata__"] = metadata
            }
            guard JSONSerialization.isValidJSONObject(h) else { continue }
            try Self.join(h, payload, lengthOverride: lengthOverride).write(to: run.appendingPathComponent(Checkpoint.fileName))
            let json = writeConfigJSON ? try JSONSerialization.data(withJSONObject: runConfig) : configJSON
            try json.write(to: run.appendingPathComponent("config.json"))

            // As `eval` and `sample` read it.
            do {
                let (model, loaded, _) = try Checkpoint.loadModel(runDirectory: run, batch: 2)
                guard loaded.model.vocabSize == dataset.meta.vocabSize else { throw BitNetError.invalid("vocabulary differs") }
                try dataset.check(context: loaded.model.context)
                _ = Evaluation.loss(model: model, dataset: dataset, windows: 2, batch: 2)
                var predictor = TransformerPredictor(model: model)
                _ = predictor.logits(afterPrompt: [1])  // one token: any valid context holds it
                ran += 1
            } catch {
                #expect(!"\(error)".contains("\n"), "\(error)")
                refused += 1
            }
            // As `train --resume` reads it.
            do {
                let resumer = try Trainer(runDirectory: run, config: config, dataset: dataset, resume: true, force: false)
                // A valid config may ask for a lot of work per step (batch_size 2^20):
                // such mutants are loaded, not trained.
                if resumer.config.training.accumulationSteps > 4 {
                    loadedOnly += 1
                } else {
                    resumer.shouldStop = { [unowned resumer] in resumer.state.step >= 22 }
                    try resumer.run { _ in }
                    resumed += 1
                }
            } catch {
                #expect(!"\(error)".contains("\n"), "\(error)")
            }
        }
        print("checkpoint fuzzing: \(refused + ran) mutants, \(refused) refused and \(ran) ran by eval/sample, "
              + "\(resumed) resumed and trained (\(loadedOnly) more resumed, too large a batch to train here), 0 trapped")
        #expect(refused > 500 && ran > 100 && resumed > 100, "refused \(refused), ran \(ran), resumed \(resumed)")
    }

    /// A safetensors file's JSON header and the bytes after it.
    static func split(_ file: Data) throws -> ([String: Any], Data) {
        let length = Int(file.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
        let header = try #require(try JSONSerialization.jsonObject(with: file.subdata(in: 8..<8 + length)) as? [String: Any])
        return (header, file.subdata(in: 8 + length..<file.count))
    }

    static func join(_ header: [String: Any], _ payload: Data, lengthOverride: UInt64?) throws -> Data {
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var length = (lengthOverride ?? UInt64(json.count)).littleEndian
        return Data(bytes: &length, count: 8) + json + payload
    }
}
