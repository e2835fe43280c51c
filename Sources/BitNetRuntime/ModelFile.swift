// MODEL.bitnet, memory-mapped and validated before use (docs/FORMAT.md, "Packed
// models"). Every offset and length is checked against the file; nothing is read
// outside it. This file shares no code with the trainer: only the format.
import BitNetFormat
import Foundation

/// Every error the runtime throws: one line, starting with the model file's path.
public struct RuntimeError: Error, CustomStringConvertible {
    public let description: String
}

/// One tensor's place in the mapped file, validated.
public struct TensorEntry: Sendable {
    public let name: String
    public let type: TensorType
    public let rows: Int
    public let cols: Int
    /// beta of a packed BitLinear weight; 1 otherwise.
    public let scale: Float
    public let offset: Int
    public let length: Int

    public init(name: String, type: TensorType, rows: Int, cols: Int, scale: Float, offset: Int, length: Int) {
        (self.name, self.type, self.rows, self.cols, self.scale, self.offset, self.length) =
            (name, type, rows, cols, scale, offset, length)
    }

    /// The tiled bit-plane geometry of a packed weight (docs/FORMAT.md, "Tiled bit-planes").
    public var planes: TiledPlanes { TiledPlanes(rows: rows, cols: cols) }
    public var blocks: Int { planes.blocks }
    public var tiles: Int { planes.tiles }
    public var planeBytes: Int { planes.planeBytes }

    /// Row r of an FP32 or FP16 tensor (little-endian in the file at `base`) as FP32.
    func row(_ r: Int, base: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>) {
        let at = base + offset
        for i in 0..<cols {
            let index = r * cols + i
            out[i] = type == .f32
                ? Float(bitPattern: UInt32(littleEndian: (at + 4 * index).loadUnaligned(as: UInt32.self)))
                : Float(Float16(bitPattern: UInt16(littleEndian: (at + 2 * index).loadUnaligned(as: UInt16.self))))
        }
    }
}

public final class ModelFile: @unchecked Sendable {
    public let path: String
    /// The file, mapped for the lifetime of this object.
    public let mapping: MappedFile
    /// The file's bytes; valid while this object lives.
    public var bytes: UnsafeRawBufferPointer { mapping.bytes }
    public let tensors: [String: TensorEntry]
    /// The "config" object of the metadata.
    public let config: [String: Any]
    /// The "tokenizer" object of the metadata.
    public let tokenizer: [String: Any]

    public init(path: String) throws {
        self.path = path
        func bad(_ what: String) -> RuntimeError { RuntimeError(description: "\(path): \(what)") }
        mapping = try MappedFile(path: path)
        let data = mapping.bytes
        let size = data.count
        guard size >= PackedFormat.headerSize else { throw bad("too short (\(size) bytes) to be a BitNet model") }
        let header = PackedHeader(reading: data)
        let version = PackedFormat.version
        guard header.magic == PackedFormat.magic else {
            if Array(UnsafeRawBufferPointer(rebasing: data[0..<4])) == Array("GGUF".utf8) {
                throw bad("is a GGUF file, for llama.cpp; bitnet-run reads the packed format (bitnet-train export RUN_DIR --out MODEL.bitnet)")
            }
            throw bad("not a BitNet model (bad magic)")
        }
        guard header.version == version else {
            throw bad("format version \(header.version) is not supported (this runtime reads version \(version)"
                      + (header.version < version ? "; export the run again with 'bitnet-train export')" : ")"))
        }
        guard Int(header.headerSize) == PackedFormat.headerSize else { throw bad("unexpected header size \(header.headerSize)") }
        guard header.fileSize == UInt64(size) else {
            throw bad("truncated or padded: the header says \(header.fileSize) bytes, the file has \(size)")
        }
        let headerSize = UInt64(PackedFormat.headerSize), entrySize = PackedFormat.tableEntrySize
        func inside(_ offset: UInt64, _ length: UInt64) -> Bool {
            offset >= headerSize && offset <= UInt64(size) && length <= UInt64(size) - offset
        }
        guard inside(header.metadataOffset, header.metadataLength) else { throw bad("metadata lies outside the file") }
        guard header.tensorCount > 0, Int(header.tensorCount) < PackedFormat.maxTensors,
              inside(header.tableOffset, UInt64(header.tensorCount) * UInt64(entrySize)) else {
            throw bad("tensor table lies outside the file")
        }
        guard size % PackedFormat.alignment == 0 else {
            throw bad("size \(size) is not a multiple of \(PackedFormat.alignment) bytes: not a BitNet model")
        }
        let actualChecksum = PackedFormat.checksum(UnsafeRawBufferPointer(rebasing: data[Int(headerSize)...]))
        guard actualChecksum == header.checksum else { throw bad("checksum mismatch: the file is corrupt") }

        let metaStart = Int(header.metadataOffset)
        let metadata = Data(data[metaStart..<metaStart + Int(header.metadataLength)])
        guard let object = try? JSONSerialization.jsonObject(with: metadata) as? [String: Any],
              object["format"] as? String == PackedFormat.metadataFormat,
              let config = object["config"] as? [String: Any],
              let tokenizer = object["tokenizer"] as? [String: Any]
        else { throw bad("metadata is not a BitNet model description") }
        self.config = config
        self.tokenizer = tokenizer

        var tensors: [String: TensorEntry] = [:]
        do {
            let raw = data
            for i in 0..<Int(header.tensorCount) {
                let record = TableRecord(reading: raw, at: Int(header.tableOffset) + i * entrySize)
                guard let name = String(bytes: record.name, encoding: .utf8), !name.isEmpty else {
                    throw bad("tensor \(i) has an invalid name")
                }
                guard let type = TensorType(rawValue: record.type) else { throw bad("tensor '\(name)' has unknown type \(record.type)") }
                let rows = Int(record.rows), cols = Int(record.cols)
                guard rows > 0, cols > 0, rows <= PackedFormat.maxDimension, cols <= PackedFormat.maxDimension else {
                    throw bad("tensor '\(name)' has a bad shape")
                }
                guard record.offset % UInt64(PackedFormat.alignment) == 0, inside(record.offset, record.length) else {
                    throw bad("tensor '\(name)' lies outside the file")
                }
                let entry = TensorEntry(name: name, type: type, rows: rows, cols: cols, scale: record.scale,
                                        offset: Int(record.offset), length: Int(record.length))
                let expected = entry.planes.storedBytes(type)
                guard entry.length == expected else {
                    throw bad("tensor '\(name)' has \(record.length) bytes, expected \(expected) for its type and shape")
                }
                // beta = mean |W|: finite, not negative (zero for an all-zero matrix).
                guard entry.scale.isFinite && entry.scale >= 0 && entry.scale < 1e30 else {
                    throw bad("tensor '\(name)' has scale \(entry.scale); a scale is a mean |W|, finite and >= 0")
                }
                guard tensors[name] == nil else { throw bad("tensor '\(name)' appears twice") }
                tensors[name] = entry
            }
        }
        self.tensors = tensors
    }

    public func tensor(_ name: String) throws -> TensorEntry {
        guard let t = tensors[name] else { throw RuntimeError(description: "\(path): tensor '\(name)' is missing") }
        return t
    }

    /// The tensor as FP32 values (f32 copied, f16 widened, packed weights expanded to
    /// {-1, 0, +1} without the scale): for tests and the reference path.
    public func floats(_ entry: TensorEntry) -> [Float] {
        do {
            let base = bytes.baseAddress! + entry.offset
            let n = entry.rows * entry.cols
            switch entry.type {
            case .f32:
                return (0..<n).map { Float(bitPattern: UInt32(littleEndian: (base + 4 * $0).loadUnaligned(as: UInt32.self))) }
            case .f16:
                return (0..<n).map { Float(Float16(bitPattern: UInt16(littleEndian: (base + 2 * $0).loadUnaligned(as: UInt16.self)))) }
            case .binary, .ternary:
                var out = [Float](repeating: 0, count: n)
                let planes = entry.planes
                for r in 0..<entry.rows {
                    for c in 0..<entry.cols {
                        let (byte, shift) = planes.bitPosition(row: r, col: c)
                        func bit(_ plane: Int) -> Bool { (base + plane * entry.planeBytes + byte).load(as: UInt8.self) >> shift & 1 == 1 }
                        out[r * entry.cols + c] = entry.type == .binary ? (bit(0) ? 1 : -1) : (bit(0) ? (bit(1) ? 1 : -1) : 0)
                    }
                }
                return out
            }
        }
    }
}
