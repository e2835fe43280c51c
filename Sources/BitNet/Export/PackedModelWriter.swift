// Writes MODEL.bitnet (docs/FORMAT.md, "Packed models"): one self-contained file with
// the config, the tokenizer's vocabulary, and the tensors, BitLinear weights packed at
// 1 bit (binary) or 2 bits (ternary) per weight, aligned to 64 bytes, with a checksum.
import Foundation

public enum PackedDType: UInt32, Sendable {
    case f32 = 0
    case f16 = 1
    case binary = 2
    case ternary = 3
}

public enum PackedModel {
    public static let magic: [UInt8] = Array("BITNETMF".utf8)
    public static let version: UInt32 = 1
    public static let headerSize = 64
    public static let tableEntrySize = 128
    public static let nameCapacity = 80
    public static let alignment = 64

    /// FNV-1a, 64-bit, over `bytes` (the checksum of everything after the header).
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        return h
    }

    /// u64 words per packed row of `cols` weights (one bit-plane).
    public static func wordsPerRow(_ cols: Int) -> Int { (cols + 63) / 64 }

    /// Packs W~ rows ({-1, +1} or {-1, 0, +1} as floats) into bit-planes: binary rows are
    /// one plane (bit set for +1); ternary rows are a nonzero plane then a plus plane.
    public static func pack(_ values: UnsafePointer<Float>, rows: Int, cols: Int, ternary: Bool) -> [UInt64] {
        let words = wordsPerRow(cols), planes = ternary ? 2 : 1
        var out = [UInt64](repeating: 0, count: rows * words * planes)
        for r in 0..<rows {
            let base = r * words * planes
            for c in 0..<cols {
                let v = values[r * cols + c]
                let bit = UInt64(1) << UInt64(c % 64)
                if ternary {
                    if v != 0 { out[base + c / 64] |= bit }
                    if v > 0 { out[base + words + c / 64] |= bit }
                } else if v > 0 {
                    out[base + c / 64] |= bit
                }
            }
        }
        return out
    }

    /// The tokenizer part of the metadata: pieces, scores, types and special ids.
    public static func tokenizerMetadata(_ tokenizer: Tokenizer) -> [String: Any] {
        var pieces: [String] = [], scores: [Double] = [], types: [Int] = []
        for id in 0..<tokenizer.vocabSize {
            let entry = tokenizer.piece(Int32(id))!
            pieces.append(String(decoding: entry.piece, as: UTF8.self))
            scores.append(Double(entry.score))
            types.append(Int(entry.type))
        }
        return ["model_type": "bpe", "pieces": pieces, "scores": scores, "types": types,
                "bos_id": Int(tokenizer.bosID), "eos_id": Int(tokenizer.eosID), "unk_id": Int(tokenizer.unknownID),
                "add_dummy_prefix": true, "byte_fallback": true, "normalization": "identity"]
    }

    /// Writes `model` (binary or ternary) to `url`. `embeddingsAsF16` stores the
    /// embedding (and an untied head) in 16 bits; norms always stay FP32.
    public static func write(model: Transformer, tokenizer: [String: Any], to url: URL, embeddingsAsF16: Bool) throws {
        let config = model.config
        guard config.mode.isQuantized else {
            throw ConfigError("export writes packed 1-bit models: this run is in fp mode; train with --mode binary or ternary")
        }
        struct Entry {
            var name: String
            var dtype: PackedDType
            var rows: Int
            var cols: Int
            var scale: Float
            var bytes: Data
        }
        var entries: [Entry] = []
        let bitLinearAt = Dictionary(uniqueKeysWithValues: model.layout.bitLinears.map { ($0.weight, $0) })
        for tensor in model.layout.tensors {
            let rows = tensor.shape.count == 2 ? tensor.shape[0] : 1
            let cols = tensor.shape.last!
            let p = model.parameters + tensor.offset
            if let slots = bitLinearAt[tensor.offset] {
                let (values, scale) = model.quantizedWeight(slots)
                let ternary = config.mode == .ternary
                let words = pack(values, rows: rows, cols: cols, ternary: ternary)
                entries.append(Entry(name: tensor.name, dtype: ternary ? .ternary : .binary, rows: rows, cols: cols,
                                     scale: scale, bytes: words.withUnsafeBytes { Data($0) }))
            } else if tensor.shape.count == 2 && embeddingsAsF16 {
                let halves = (0..<tensor.count).map { Float16(p[$0]).bitPattern.littleEndian }
                entries.append(Entry(name: tensor.name, dtype: .f16, rows: rows, cols: cols, scale: 1,
                                     bytes: halves.withUnsafeBytes { Data($0) }))
            } else {
                entries.append(Entry(name: tensor.name, dtype: .f32, rows: rows, cols: cols, scale: 1,
                                     bytes: Data(bytes: p, count: tensor.count * 4)))
            }
        }
        for e in entries where e.name.utf8.count >= nameCapacity {
            throw ConfigError("tensor name '\(e.name)' is too long for the packed format")
        }
        let configObject = try JSONSerialization.jsonObject(with: JSONEncoder().encode(config))
        let metadata = try JSONSerialization.data(
            withJSONObject: ["format": "bitnet-model", "config": configObject, "tokenizer": tokenizer], options: [.sortedKeys])

        func aligned(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }
        let metadataOffset = headerSize
        let tableOffset = aligned(metadataOffset + metadata.count)
        var dataOffset = aligned(tableOffset + entries.count * tableEntrySize)
        var offsets: [Int] = []
        for e in entries {
            offsets.append(dataOffset)
            dataOffset = aligned(dataOffset + e.bytes.count)
        }
        let fileSize = dataOffset

        var body = Data(count: fileSize - headerSize)  // everything after the header
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { body.replaceSubrange(offset - headerSize..<offset - headerSize + $0.count, with: $0) }
        }
        body.replaceSubrange(metadataOffset - headerSize..<metadataOffset - headerSize + metadata.count, with: metadata)
        for (i, e) in entries.enumerated() {
            let at = tableOffset + i * tableEntrySize
            let name = Array(e.name.utf8)
            body.replaceSubrange(at - headerSize..<at - headerSize + name.count, with: name)
            put(e.dtype.rawValue, at: at + 80)
            put(UInt32(e.rows), at: at + 84)
            put(UInt32(e.cols), at: at + 88)
            put(e.scale.bitPattern, at: at + 92)
            put(UInt64(offsets[i]), at: at + 96)
            put(UInt64(e.bytes.count), at: at + 104)
            body.replaceSubrange(offsets[i] - headerSize..<offsets[i] - headerSize + e.bytes.count, with: e.bytes)
        }
        var header = Data(magic)
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { header.append(contentsOf: $0) } }
        append(version)
        append(UInt32(headerSize))
        append(UInt64(fileSize))
        append(body.withUnsafeBytes { checksum($0) })
        append(UInt64(metadataOffset))
        append(UInt64(metadata.count))
        append(UInt64(tableOffset))
        append(UInt32(entries.count))
        append(UInt32(0))
        precondition(header.count == headerSize)
        try AtomicFile.write(to: url) { handle in
            try handle.write(contentsOf: header)
            try handle.write(contentsOf: body)
        }
    }
}
