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

/// One tensor as stored in a model file.
public struct PackedTensor {
    public var name: String
    public var dtype: PackedDType
    public var rows: Int
    public var cols: Int
    /// beta of a packed BitLinear weight; 1 otherwise.
    public var scale: Float
    public var bytes: Data

    public init(name: String, dtype: PackedDType, rows: Int, cols: Int, scale: Float, bytes: Data) {
        (self.name, self.dtype, self.rows, self.cols, self.scale, self.bytes) = (name, dtype, rows, cols, scale, bytes)
    }

    /// FP32 values stored as IEEE half.
    public init(name: String, rows: Int, cols: Int, f16 values: UnsafeBufferPointer<Float>) {
        let halves = values.map { Float16($0).bitPattern.littleEndian }
        self.init(name: name, dtype: .f16, rows: rows, cols: cols, scale: 1, bytes: halves.withUnsafeBytes { Data($0) })
    }
}

public enum PackedModel {
    public static let magic: [UInt8] = Array("BITNETMF".utf8)
    public static let version: UInt32 = 2
    public static let headerSize = 64
    public static let tableEntrySize = 128
    public static let nameCapacity = 80
    public static let alignment = 64

    /// The checksum of everything after the header (docs/FORMAT.md): FNV-1a's step,
    /// h = (h ^ w) * prime, over little-endian u64 words rather than bytes, 8x fewer
    /// dependent multiplies; any change to one word changes the result. `bytes.count`
    /// is a multiple of 8 (files are padded to 64 bytes).
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        precondition(bytes.count % 8 == 0)
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for i in stride(from: 0, to: bytes.count, by: 8) {
            h = (h ^ UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))) &* 0x0000_0100_0000_01b3
        }
        return h
    }

    /// Bytes of one tiled bit-plane (docs/FORMAT.md): blocks of 32 rows by tiles of
    /// 16 columns, 64 bytes each; rows and columns padded with zero bits.
    public static func planeBytes(rows: Int, cols: Int) -> Int { (rows + 31) / 32 * ((cols + 15) / 16) * 64 }

    /// Where weight (r, c) lives in a tiled plane: byte `r % 32` of the tile's first
    /// 32 bytes for columns 0-7 of the tile, of its second 32 bytes for columns 8-15;
    /// bit `c % 8`. So one 32-byte load holds a 4-bit slice of 32 rows in each nibble.
    @inline(__always)
    public static func bitPosition(row r: Int, col c: Int, cols: Int) -> (byte: Int, bit: Int) {
        ((r / 32 * ((cols + 15) / 16) + c / 16) * 64 + (c % 16) / 8 * 32 + r % 32, c % 8)
    }

    /// Packs W~ ({-1, +1} or {-1, 0, +1} as floats) into tiled bit-planes: binary is one
    /// plane (bit set for +1); ternary is a nonzero plane, then a plus plane.
    public static func pack(_ values: UnsafePointer<Float>, rows: Int, cols: Int, ternary: Bool) -> [UInt8] {
        let plane = planeBytes(rows: rows, cols: cols)
        var out = [UInt8](repeating: 0, count: plane * (ternary ? 2 : 1))
        for r in 0..<rows {
            for c in 0..<cols {
                let v = values[r * cols + c]
                let (byte, bit) = bitPosition(row: r, col: c, cols: cols)
                if ternary {
                    if v != 0 { out[byte] |= 1 << bit }
                    if v > 0 { out[plane + byte] |= 1 << bit }
                } else if v > 0 {
                    out[byte] |= 1 << bit
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

    /// `model`'s tensors (binary or ternary) as stored. `embeddingsAsF16` stores the
    /// embedding (and an untied head) in 16 bits; norms always stay FP32.
    public static func tensors(of model: Transformer, embeddingsAsF16: Bool) throws -> [PackedTensor] {
        let config = model.config
        guard config.mode.isQuantized else {
            throw ConfigError("export writes packed 1-bit models: this run is in fp mode; train with --mode binary or ternary")
        }
        var entries: [PackedTensor] = []
        let bitLinearAt = Dictionary(uniqueKeysWithValues: model.layout.bitLinears.map { ($0.weight, $0) })
        for tensor in model.layout.tensors {
            let rows = tensor.shape.count == 2 ? tensor.shape[0] : 1
            let cols = tensor.shape.last!
            let p = model.parameters + tensor.offset
            if let slots = bitLinearAt[tensor.offset] {
                let (values, scale) = model.quantizedWeight(slots)
                let ternary = config.mode == .ternary
                entries.append(PackedTensor(name: tensor.name, dtype: ternary ? .ternary : .binary, rows: rows, cols: cols,
                                            scale: scale, bytes: Data(pack(values, rows: rows, cols: cols, ternary: ternary))))
            } else if tensor.shape.count == 2 && embeddingsAsF16 {
                entries.append(PackedTensor(name: tensor.name, rows: rows, cols: cols, f16: UnsafeBufferPointer(start: p, count: tensor.count)))
            } else {
                entries.append(PackedTensor(name: tensor.name, dtype: .f32, rows: rows, cols: cols, scale: 1,
                                            bytes: Data(bytes: p, count: tensor.count * 4)))
            }
        }
        return entries
    }

    /// Writes a model file: the config and tokenizer as metadata, then `entries`.
    public static func write(config: ModelConfig, tensors entries: [PackedTensor], tokenizer: [String: Any], to url: URL) throws {
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
