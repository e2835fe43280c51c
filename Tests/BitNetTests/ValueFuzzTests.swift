// The packed loader against hostile values (issue 13): a valid model whose metadata
// values (config and tokenizer) or tensor-table records (type, shape, scale, offset,
// length, name) are replaced one or two at a time by out-of-range, negative, zero,
// huge, NaN, fractional or mistyped ones, written with a correct checksum, then loaded
// under a memory limit and run for one token. Every mutant is refused with one line or
// runs; none may trap (a trap ends the test process).
import BitNetFormat
import BitNetSampling
import Foundation
import Testing
@testable import BitNet
@testable import BitNetRuntime

@Suite(.serialized) struct ValueFuzzTests {
    static let mutants = 6000
    /// The loader's limit: far above the valid model's need (under 1 MB), far below the
    /// machine's, so a mutant that asks for more than it holds is refused, not allocated.
    static let memoryLimit = 64 << 20

    @Test func mutatedValuesAreRefusedOrRun() throws {
        let (tensors, config, tokenizer) = try HostileInputTests.parts()
        let values: [Any] = [0, -1, 1, 2, 3, 7, 16, 17, 599, 600, 601, 1 << 20, 1 << 31, 1 << 40, Int.max, Int.min, 0.5, -0.5,
                             1e-30, 1e30, 1e308, "", "rms", "binary", "x", true, NSNull(), [Int](), [String: Int]()]
        let words: [UInt64] = [0, 1, 2, 3, 31, 32, 33, 64, 600, 4095, 4096, 1 << 16, 1 << 24, 1 << 31, 1 << 32 - 1, 1 << 40, UInt64.max]
        let floats: [Float] = [0, -0, 1, -1, 1e-38, 1e30, .nan, .infinity, -.infinity, .greatestFiniteMagnitude]
        let url = Fixtures.temporaryDirectory("value-fuzz").appendingPathComponent("m.bitnet")
        var rng = Xoshiro256(seed: 77)
        var refused = 0, ran = 0, tableMutants = 0
        let configKeys = Array(config.keys).sorted(), tokenizerKeys = ["bos_id", "eos_id", "unk_id", "model_type",
                                                                        "normalization", "add_dummy_prefix", "byte_fallback"]
        let before = RuntimeBenchmark.peakResidentBytes()
        while refused + ran < Self.mutants {
            var c = config, t = tokenizer
            let mutateTable = rng.below(2) == 0
            if !mutateTable {
                for _ in 0..<(1 + rng.below(2)) {
                    let value = values[rng.below(values.count)]
                    if rng.below(3) > 0 {
                        c[configKeys[rng.below(configKeys.count)]] = value
                    } else {
                        t[tokenizerKeys[rng.below(tokenizerKeys.count)]] = value
                    }
                }
                guard JSONSerialization.isValidJSONObject(["c": c, "t": t]) else { continue }
            }
            try PackedModel.write(configObject: c, tensors: tensors, tokenizer: t, to: url)
            if mutateTable {
                tableMutants += 1
                try Self.mutateTable(of: url, count: 1 + rng.below(2), rng: &rng) { field, rng in
                    switch field {
                    case 0: .type(UInt32(rng.below(6)))
                    case 1: .rows(UInt32(truncatingIfNeeded: words[rng.below(words.count)]))
                    case 2: .cols(UInt32(truncatingIfNeeded: words[rng.below(words.count)]))
                    case 3: .scale(floats[rng.below(floats.count)])
                    case 4: .offset(words[rng.below(words.count)] &+ UInt64(rng.below(3)) &* 64)
                    case 5: .length(words[rng.below(words.count)])
                    default: .name([[], Array("embedding.weight".utf8), [0xff, 0xfe], Array("layers.0.ffn.up.weight".utf8)][rng.below(4)])
                    }
                }
            }
            do {
                let model = try BitNetRuntime.Model(path: url.path, threads: 1, batch: 2, memoryLimit: Self.memoryLimit)
                _ = model.forward(tokens: [0], start: 0)  // one token: any valid context and vocabulary hold it
                ran += 1
            } catch {
                #expect(!"\(error)".contains("\n"))
                refused += 1
            }
        }
        let grew = RuntimeBenchmark.peakResidentBytes() - before
        print("value fuzzing: \(refused + ran) mutants (\(tableMutants) of the tensor table), \(refused) refused, \(ran) ran, "
              + "0 trapped; peak resident memory grew \(grew >> 20) MiB (limit \(Self.memoryLimit >> 20) MiB per model)")
        #expect(refused > 1500 && ran > 150, "refused \(refused), ran \(ran)")
        #expect(grew < 4 * Self.memoryLimit)
    }

    /// The memory limit itself: the same model is refused under a limit it exceeds, and
    /// a shorter context lowers its need.
    @Test func memoryLimitAndContext() throws {
        let (tensors, config, tokenizer) = try HostileInputTests.parts()
        var c = config
        c["context"] = 1 << 17  // a 34 MB KV cache in FP32 for this 1-layer, 32-wide model
        let url = Fixtures.temporaryDirectory("memory-limit").appendingPathComponent("m.bitnet")
        try PackedModel.write(configObject: c, tensors: tensors, tokenizer: tokenizer, to: url)
        do {
            _ = try BitNetRuntime.Model(path: url.path, threads: 1, memoryLimit: 20 << 20)
            Issue.record("a model needing more than the limit was loaded")
        } catch {
            #expect("\(error)".contains("needs 0.03 GB of memory (0.03 GB of it the KV cache for 131072 positions)"), "\(error)")
            #expect("\(error)".contains("more than the 0.02 GB available; a shorter --context needs less"), "\(error)")
        }
        let short = try BitNetRuntime.Model(path: url.path, threads: 1, context: 1000, memoryLimit: 16 << 20)
        #expect(short.context == 1000 && short.config.context == 1 << 17)
        let long = try BitNetRuntime.Model(path: url.path, threads: 1, context: 1 << 30, memoryLimit: 1 << 30)
        #expect(long.context == 1 << 17)
        // The context held is the generation's limit: 5 positions, then one last token.
        var tiny = try BitNetRuntime.Model(path: url.path, threads: 1, context: 5)
        var tokens: [Int32] = []
        let stop = Generation.generate(model: &tiny, prompt: [1, 2], maxTokens: 100, settings: SamplingSettings(temperature: 0),
                                       endOfSequence: nil) { tokens.append($0) }
        #expect(stop == .contextFull && tokens.count == 4)
    }

    enum TableChange {
        case type(UInt32), rows(UInt32), cols(UInt32), scale(Float), offset(UInt64), length(UInt64), name([UInt8])
    }

    /// Rewrites `count` fields of random tensor-table records of the model at `url` and
    /// stores a checksum that matches the damage.
    static func mutateTable(of url: URL, count: Int, rng: inout Xoshiro256,
                            change: (Int, inout Xoshiro256) -> TableChange) throws {
        var bytes = [UInt8](try Data(contentsOf: url))
        try bytes.withUnsafeMutableBytes { raw in
            var header = PackedHeader(reading: UnsafeRawBufferPointer(raw))
            let tensorCount = Int(header.tensorCount)
            try #require(tensorCount > 0)
            for _ in 0..<count {
                let at = Int(header.tableOffset) + rng.below(tensorCount) * PackedFormat.tableEntrySize
                var record = TableRecord(reading: UnsafeRawBufferPointer(raw), at: at)
                switch change(rng.below(7), &rng) {
                case .type(let v): record.type = v
                case .rows(let v): record.rows = v
                case .cols(let v): record.cols = v
                case .scale(let v): record.scale = v
                case .offset(let v): record.offset = v
                case .length(let v): record.length = v
                case .name(let v): record.name = v
                }
                record.write(into: raw, at: at)
            }
            header.checksum = PackedFormat.checksum(UnsafeRawBufferPointer(rebasing: raw[PackedFormat.headerSize...]))
            for (i, b) in header.bytes.enumerated() { raw[i] = b }
        }
        try Data(bytes).write(to: url)
    }
}
