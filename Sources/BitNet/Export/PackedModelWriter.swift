// Writes MODEL.bitnet (docs/FORMAT.md, "Packed models"): one self-contained file with
// the config, the tokenizer's vocabulary, and the tensors, BitLinear weights packed at
// 1 bit (binary) or 2 bits (ternary) per weight, aligned to 64 bytes, with a checksum.
import BitNetFormat
import Foundation

/// One tensor as stored in a model file.
public struct PackedTensor {
    public var name: String
    public var dtype: TensorType
    public var rows: Int
    public var cols: Int
    /// beta of a packed BitLinear weight; 1 otherwise.
    public var scale: Float
    public var bytes: Data

    public init(name: String, dtype: TensorType, rows: Int, cols: Int, scale: Float, bytes: Data) {
        (self.name, self.dtype, self.rows, self.cols, self.scale, self.bytes) = (name, dtype, rows, cols, scale, bytes)
    }

    /// FP32 values stored as IEEE half.
    public init(name: String, rows: Int, cols: Int, f16 values: UnsafeBufferPointer<Float>) {
        self.init(name: name, dtype: .f16, rows: rows, cols: cols, scale: 1, bytes: Data(float16LittleEndian: values))
    }
}

public enum PackedModel {
    /// Packs W~ ({-1, +1} or {-1, 0, +1} as floats) into tiled bit-planes: binary is one
    /// plane (bit set for +1); ternary is a nonzero plane, then a plus plane.
    public static func pack(_ values: UnsafePointer<Float>, rows: Int, cols: Int, ternary: Bool) -> [UInt8] {
        let geometry = TiledPlanes(rows: rows, cols: cols), plane = geometry.planeBytes
        var out = [UInt8](repeating: 0, count: plane * (ternary ? 2 : 1))
        for r in 0..<rows {
            for c in 0..<cols {
                let v = values[r * cols + c]
                let (byte, bit) = geometry.bitPosition(row: r, col: c)
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
        guard config.mode.isBitNet else {
            throw BitNetError.invalid("export writes packed 1-bit models: this run is in \(config.mode.rawValue) mode; train with mode binary or ternary")
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
        try write(configObject: JSONSerialization.jsonObject(with: JSONEncoder().encode(config)), tensors: entries,
                  tokenizer: tokenizer, to: url)
    }

    /// Writes a model file with the config as a JSON object (tests write hostile values this way).
    static func write(configObject: Any, tensors entries: [PackedTensor], tokenizer: [String: Any], to url: URL) throws {
        for e in entries where e.name.utf8.count >= PackedFormat.nameCapacity {
            throw BitNetError.invalid("tensor name '\(e.name)' is too long for the packed format")
        }
        let metadata = try JSONSerialization.data(
            withJSONObject: ["format": PackedFormat.metadataFormat, "config": configObject, "tokenizer": tokenizer],
            options: [.sortedKeys])

        let headerSize = PackedFormat.headerSize, aligned = PackedFormat.aligned
        let metadataOffset = headerSize
        let tableOffset = aligned(metadataOffset + metadata.count)
        var dataOffset = aligned(tableOffset + entries.count * PackedFormat.tableEntrySize)
        var offsets: [Int] = []
        for e in entries {
            offsets.append(dataOffset)
            dataOffset = aligned(dataOffset + e.bytes.count)
        }
        let fileSize = dataOffset

        var body = [UInt8](repeating: 0, count: fileSize - headerSize)  // everything after the header
        body.withUnsafeMutableBytes { raw in
            func copy(_ bytes: some DataProtocol, at offset: Int) {
                _ = bytes.copyBytes(to: UnsafeMutableRawBufferPointer(rebasing: raw[(offset - headerSize)...]))
            }
            copy(metadata, at: metadataOffset)
            for (i, e) in entries.enumerated() {
                TableRecord(name: Array(e.name.utf8), type: e.dtype.rawValue, rows: UInt32(e.rows), cols: UInt32(e.cols),
                            scale: e.scale, offset: UInt64(offsets[i]), length: UInt64(e.bytes.count))
                    .write(into: raw, at: tableOffset + i * PackedFormat.tableEntrySize - headerSize)
                copy(e.bytes, at: offsets[i])
            }
        }
        let header = PackedHeader(fileSize: UInt64(fileSize), checksum: body.withUnsafeBytes { PackedFormat.checksum($0) },
                                  metadataOffset: UInt64(metadataOffset), metadataLength: UInt64(metadata.count),
                                  tableOffset: UInt64(tableOffset), tensorCount: UInt32(entries.count))
        try AtomicFile.write(to: url) { handle in
            try handle.write(contentsOf: header.bytes)
            try handle.write(contentsOf: body)
        }
    }
}
