// MODEL.bitnet round trip: the runtime's loader reads back exactly what the trainer's
// forward pass uses, and refuses damaged files with one clear message.
import Foundation
import Testing
@testable import BitNet
import BitNetFormat
import BitNetRuntime

@Suite(.serialized) struct PackedModelTests {
    static func exportedModel(mode: WeightMode, f16: Bool) throws -> (Transformer, URL) {
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        var config = Fixtures.tinyRunConfig(mode: mode, steps: 10, vocabSize: dataset.meta.vocabSize)
        config.model.dim = 72  // widths that are not multiples of 64 exercise the row padding
        config.model.heads = 3
        config.model.ffnDim = 100
        let run = Fixtures.temporaryDirectory("export-\(mode.rawValue)")
        let trainer = try Trainer(runDirectory: run, config: config, dataset: dataset, resume: false, force: false)
        try trainer.run { _ in }
        let url = run.appendingPathComponent("model.bitnet")
        let tokenizer = try Tokenizer(path: run.appendingPathComponent("tokenizer.model").path)
        try PackedModel.write(config: trainer.model.config,
                              tensors: PackedModel.tensors(of: trainer.model, embeddingsAsF16: f16),
                              tokenizer: PackedModel.tokenizerMetadata(tokenizer), to: url)
        return (trainer.model, url)
    }

    @Test(arguments: [(WeightMode.binary, false), (WeightMode.ternary, true)])
    func roundTrip(mode: WeightMode, f16: Bool) throws {
        let (model, url) = try Self.exportedModel(mode: mode, f16: f16)
        let file = try ModelFile(path: url.path)
        #expect(file.config["mode"] as? String == mode.rawValue)
        #expect((file.tokenizer["pieces"] as? [String])?.count == model.config.vocabSize)
        for tensor in model.layout.tensors {
            let entry = try file.tensor(tensor.name)
            let values = file.floats(entry)
            if let slots = model.layout.bitLinears.first(where: { $0.weight == tensor.offset }) {
                let (expected, scale) = model.quantizedWeight(slots)
                #expect(entry.type == (mode == .binary ? .binary : .ternary))
                #expect(entry.scale == scale)
                #expect(values == Array(UnsafeBufferPointer(start: expected, count: tensor.count)), "\(tensor.name)")
            } else {
                let latent = Array(UnsafeBufferPointer(start: model.parameters + tensor.offset, count: tensor.count))
                if f16 && tensor.shape.count == 2 {
                    #expect(values == latent.map { Float(Float16($0)) }, "\(tensor.name)")
                } else {
                    #expect(values == latent, "\(tensor.name)")
                }
            }
        }
    }

    /// The packed bytes against docs/FORMAT.md's layout, written out here on its own:
    /// weight (r, c) is bit c mod 8 of byte 64 (floor(r/32) ceil(cols/16) + floor(c/16))
    /// + 32 floor((c mod 16)/8) + (r mod 32); a binary plane sets +1; a ternary weight
    /// has a nonzero plane, then a plus plane.
    static func documentedPlanes(_ w: [Float], rows: Int, cols: Int, ternary: Bool) -> [UInt8] {
        let tilesPerBlock = (cols + 15) / 16, planeBytes = (rows + 31) / 32 * tilesPerBlock * 64
        var bytes = [UInt8](repeating: 0, count: planeBytes * (ternary ? 2 : 1))
        for r in 0..<rows {
            for c in 0..<cols {
                let byte = 64 * ((r / 32) * tilesPerBlock + c / 16) + 32 * ((c % 16) / 8) + r % 32
                let v = w[r * cols + c]
                if ternary {
                    if v != 0 { bytes[byte] |= 1 << (c % 8) }
                    if v == 1 { bytes[planeBytes + byte] |= 1 << (c % 8) }
                } else if v == 1 {
                    bytes[byte] |= 1 << (c % 8)
                }
            }
        }
        return bytes
    }

    @Test func packedBitsFollowTheDocumentedLayout() throws {
        // By hand: [[+1, -1, +1], [-1, -1, +1]] is one tile; row 0 is byte 0 (bits 0 and 2), row 1 byte 1 (bit 2).
        let small: [Float] = [1, -1, 1, -1, -1, 1]
        var expected = [UInt8](repeating: 0, count: 64)
        (expected[0], expected[1]) = (0b101, 0b100)
        #expect(PackedModel.pack(small, rows: 2, cols: 3, ternary: false) == expected)
        // Weight (32, 16) of a 33 x 17 matrix: block 1, tile 1 of 2, so tile 3: byte 192, bit 0.
        var corner = [Float](repeating: -1, count: 33 * 17)
        corner[32 * 17 + 16] = 1
        let packed = PackedModel.pack(corner, rows: 33, cols: 17, ternary: false)
        #expect(packed.count == 4 * 64 && packed.enumerated().allSatisfy { $0.offset == 192 ? $0.element == 1 : $0.element == 0 })
        // Ternary: [0, +1, -1] sets nonzero bits 1, 2 and the plus bit 1.
        var ternary = [UInt8](repeating: 0, count: 128)
        (ternary[0], ternary[64]) = (0b110, 0b010)
        #expect(PackedModel.pack([0, 1, -1], rows: 1, cols: 3, ternary: true) == ternary)

        // A whole exported model: every packed tensor's bytes in the file, as documented.
        for mode in [WeightMode.binary, .ternary] {
            let (model, url) = try Self.exportedModel(mode: mode, f16: false)
            let file = try ModelFile(path: url.path)
            for slots in model.layout.bitLinears {
                let tensor = try #require(model.layout.tensors.first { $0.offset == slots.weight })
                let (values, _) = model.quantizedWeight(slots)
                let w = Array(UnsafeBufferPointer(start: values, count: tensor.count))
                let entry = try file.tensor(tensor.name)
                let stored = Array(file.bytes[entry.offset..<entry.offset + entry.length])
                #expect(stored == Self.documentedPlanes(w, rows: tensor.shape[0], cols: tensor.shape[1], ternary: mode == .ternary),
                        "\(tensor.name)")
            }
        }
    }

    @Test func damagedFilesAreRefused() throws {
        let (_, url) = try Self.exportedModel(mode: .binary, f16: false)
        let bytes = try Data(contentsOf: url)
        let damaged = url.deletingLastPathComponent().appendingPathComponent("damaged.bitnet")
        func message(_ data: Data) -> String {
            try? data.write(to: damaged)
            do {
                _ = try ModelFile(path: damaged.path)
                return ""
            } catch {
                return "\(error)"
            }
        }
        #expect(message(bytes.prefix(bytes.count - 100)).contains("truncated"))
        #expect(message(bytes.prefix(30)).contains("too short"))
        var flipped = bytes
        flipped[bytes.count / 2] ^= 0x40
        #expect(message(flipped).contains("checksum mismatch"))
        var version = bytes
        version[8] = 9
        #expect(message(version).contains("version 9 is not supported"))
        version[8] = 1
        #expect(message(version).contains("export the run again with 'bitnet-train export'"))
        // A size that is not a multiple of 64, with a header that agrees.
        var odd = bytes + Data(count: 8)
        withUnsafeBytes(of: UInt64(odd.count).littleEndian) { odd.replaceSubrange(16..<24, with: $0) }
        #expect(message(odd).contains("is not a multiple of 64 bytes"))
        var magic = bytes
        magic[0] = 0x58
        #expect(message(magic).contains("bad magic"))
        magic.replaceSubrange(0..<4, with: Array("GGUF".utf8))
        #expect(message(magic).contains("is a GGUF file, for llama.cpp"))
        // Random truncations and byte flips: always a clean error, never a crash.
        var rng = Xoshiro256(seed: 99)
        for _ in 0..<300 {
            var d = bytes
            if rng.below(2) == 0 {
                d = d.prefix(rng.below(bytes.count))
            } else {
                for _ in 0..<(1 + rng.below(4)) { d[rng.below(d.count)] ^= UInt8(1 + rng.below(255)) }
            }
            #expect(!message(d).isEmpty)
        }
    }

    /// Byte flips in the header, metadata and tensor table with the checksum recomputed,
    /// so they reach the structural checks: loading either fails with a message or gives
    /// a model that runs. Never a crash, never a read outside the file.
    @Test func structuralFuzzing() throws {
        let (_, url) = try Self.exportedModel(mode: .ternary, f16: true)
        let bytes = try Data(contentsOf: url)
        let tableOffset = bytes.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 48, as: UInt64.self))) }
        let count = bytes.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: 56, as: UInt32.self))) }
        let structure = tableOffset + 128 * count
        let path = url.deletingLastPathComponent().appendingPathComponent("fuzzed.bitnet").path
        var rng = Xoshiro256(seed: 2024)
        var refused = 0, loaded = 0
        for _ in 0..<2000 {
            var d = bytes
            for _ in 0..<(1 + rng.below(3)) {
                // Mostly the table and header, where a flip is seldom a JSON syntax error.
                let at = rng.below(3) == 0 ? rng.below(structure) : (rng.below(2) == 0 ? rng.below(64) : tableOffset + rng.below(128 * count))
                d[at] ^= UInt8(1 << rng.below(8))
            }
            if rng.below(10) > 0 {  // usually repair the checksum so the structural checks are reached
                let sum = d.withUnsafeBytes { PackedFormat.checksum(UnsafeRawBufferPointer(rebasing: $0[64...])) }
                withUnsafeBytes(of: sum.littleEndian) { d.replaceSubrange(24..<32, with: $0) }
            }
            try d.write(to: URL(fileURLWithPath: path))
            do {
                let model = try BitNetRuntime.Model(path: path, threads: 1, batch: 2)
                let logits = model.forward(tokens: [0, 1, 2], start: 0)
                #expect(logits.count == model.config.vocabSize)
                loaded += 1
            } catch {
                #expect(!"\(error)".isEmpty)
                refused += 1
            }
        }
        #expect(refused > 1000, "refused \(refused), loaded \(loaded)")
    }
}
