// MODEL.bitnet, memory-mapped and validated before use (docs/FORMAT.md, "Packed
// models"). Every offset and length is checked against the file; nothing is read
// outside it. This file shares no code with the trainer: only the format.
import Foundation

public struct ModelFileError: Error, CustomStringConvertible {
    public let description: String
}

public enum TensorType: UInt32, Sendable {
    case f32 = 0
    case f16 = 1
    case binary = 2
    case ternary = 3
}

/// One tensor's place in the mapped file.
public struct TensorEntry: Sendable {
    public let name: String
    public let type: TensorType
    public let rows: Int
    public let cols: Int
    /// beta of a packed BitLinear weight; 1 otherwise.
    public let scale: Float
    public let offset: Int
    public let length: Int

    /// A packed weight's 32-row blocks and 16-column tiles (docs/FORMAT.md, "Tiled bit-planes").
    public var blocks: Int { (rows + 31) / 32 }
    public var tiles: Int { (cols + 15) / 16 }
    /// Bytes of one bit-plane: 64 per tile.
    public var planeBytes: Int { blocks * tiles * 64 }

    /// Where weight (r, c) lives in a plane: byte and bit.
    @inline(__always)
    public func bitPosition(row r: Int, col c: Int) -> (byte: Int, bit: Int) {
        ((r / 32 * tiles + c / 16) * 64 + (c % 16) / 8 * 32 + r % 32, c % 8)
    }

    var expectedLength: Int {
        switch type {
        case .f32: rows * cols * 4
        case .f16: rows * cols * 2
        case .binary: planeBytes
        case .ternary: 2 * planeBytes
        }
    }
}

public final class ModelFile: @unchecked Sendable {
    public let path: String
    public let data: Data
    public let tensors: [String: TensorEntry]
    /// The "config" object of the metadata.
    public let config: [String: Any]
    /// The "tokenizer" object of the metadata.
    public let tokenizer: [String: Any]

    static let magic = Array("BITNETMF".utf8)
    static let supportedVersion: UInt32 = 2

    public init(path: String) throws {
        self.path = path
        func bad(_ what: String) -> ModelFileError { ModelFileError(description: "\(path): \(what)") }
        guard FileManager.default.fileExists(atPath: path) else { throw bad("file does not exist") }
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw bad("cannot read: \(error.localizedDescription)")
        }
        let size = data.count
        guard size >= 64 else { throw bad("too short (\(size) bytes) to be a BitNet model") }
        let header = data.withUnsafeBytes { raw -> (magic: [UInt8], version: UInt32, headerSize: UInt32, fileSize: UInt64,
                                                     checksum: UInt64, metaOffset: UInt64, metaLength: UInt64,
                                                     tableOffset: UInt64, count: UInt32) in
            func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
            func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
            return (Array(raw[0..<8]), u32(8), u32(12), u64(16), u64(24), u64(32), u64(40), u64(48), u32(56))
        }
        guard header.magic == Self.magic else { throw bad("not a BitNet model (bad magic)") }
        guard header.version == Self.supportedVersion else {
            throw bad("format version \(header.version) is not supported (this runtime reads version \(Self.supportedVersion)"
                      + (header.version < Self.supportedVersion ? "; export the run again with 'bitnet-train export')" : ")"))
        }
        guard header.headerSize == 64 else { throw bad("unexpected header size \(header.headerSize)") }
        guard header.fileSize == UInt64(size) else {
            throw bad("truncated or padded: the header says \(header.fileSize) bytes, the file has \(size)")
        }
        func inside(_ offset: UInt64, _ length: UInt64) -> Bool {
            offset >= 64 && offset <= UInt64(size) && length <= UInt64(size) - offset
        }
        guard inside(header.metaOffset, header.metaLength) else { throw bad("metadata lies outside the file") }
        guard header.count > 0, header.count < 100_000,
              inside(header.tableOffset, UInt64(header.count) * 128) else { throw bad("tensor table lies outside the file") }
        guard size % 64 == 0 else { throw bad("size \(size) is not a multiple of 64 bytes: not a BitNet model") }
        // FNV-1a's step over little-endian u64 words (docs/FORMAT.md).
        let actualChecksum = data.withUnsafeBytes { raw -> UInt64 in
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            for i in stride(from: 64, to: size, by: 8) {
                h = (h ^ UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self))) &* 0x0000_0100_0000_01b3
            }
            return h
        }
        guard actualChecksum == header.checksum else { throw bad("checksum mismatch: the file is corrupt") }

        let metaStart = Int(header.metaOffset)
        let metadata = data.subdata(in: metaStart..<metaStart + Int(header.metaLength))
        guard let object = try? JSONSerialization.jsonObject(with: metadata) as? [String: Any],
              object["format"] as? String == "bitnet-model",
              let config = object["config"] as? [String: Any],
              let tokenizer = object["tokenizer"] as? [String: Any]
        else { throw bad("metadata is not a BitNet model description") }
        self.config = config
        self.tokenizer = tokenizer

        var tensors: [String: TensorEntry] = [:]
        try data.withUnsafeBytes { raw in
            for i in 0..<Int(header.count) {
                let at = Int(header.tableOffset) + i * 128
                let nameBytes = Array(raw[at..<at + 80].prefix { $0 != 0 })
                guard let name = String(bytes: nameBytes, encoding: .utf8), !name.isEmpty else {
                    throw bad("tensor \(i) has an invalid name")
                }
                func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at + o, as: UInt32.self)) }
                func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at + o, as: UInt64.self)) }
                guard let type = TensorType(rawValue: u32(80)) else { throw bad("tensor '\(name)' has unknown type \(u32(80))") }
                let rows = Int(u32(84)), cols = Int(u32(88))
                guard rows > 0, cols > 0, rows <= 1 << 24, cols <= 1 << 24 else { throw bad("tensor '\(name)' has a bad shape") }
                let offset = u64(96), length = u64(104)
                guard offset % 64 == 0, inside(offset, length) else { throw bad("tensor '\(name)' lies outside the file") }
                let entry = TensorEntry(name: name, type: type, rows: rows, cols: cols, scale: Float(bitPattern: u32(92)),
                                        offset: Int(offset), length: Int(length))
                guard entry.length == entry.expectedLength else {
                    throw bad("tensor '\(name)' has \(length) bytes, expected \(entry.expectedLength) for its type and shape")
                }
                guard entry.scale.isFinite else { throw bad("tensor '\(name)' has a non-finite scale") }
                guard tensors[name] == nil else { throw bad("tensor '\(name)' appears twice") }
                tensors[name] = entry
            }
        }
        self.tensors = tensors
    }

    public func tensor(_ name: String) throws -> TensorEntry {
        guard let t = tensors[name] else { throw ModelFileError(description: "\(path): tensor '\(name)' is missing") }
        return t
    }

    /// The tensor as FP32 values (f32 copied, f16 widened, packed weights expanded to
    /// {-1, 0, +1} without the scale): for tests and the reference path.
    public func floats(_ entry: TensorEntry) -> [Float] {
        data.withUnsafeBytes { raw -> [Float] in
            let base = raw.baseAddress! + entry.offset
            let n = entry.rows * entry.cols
            switch entry.type {
            case .f32:
                return (0..<n).map { Float(bitPattern: UInt32(littleEndian: (base + 4 * $0).loadUnaligned(as: UInt32.self))) }
            case .f16:
                return (0..<n).map { Float(Float16(bitPattern: UInt16(littleEndian: (base + 2 * $0).loadUnaligned(as: UInt16.self)))) }
            case .binary, .ternary:
                var out = [Float](repeating: 0, count: n)
                for r in 0..<entry.rows {
                    for c in 0..<entry.cols {
                        let (byte, shift) = entry.bitPosition(row: r, col: c)
                        func bit(_ plane: Int) -> Bool { (base + plane * entry.planeBytes + byte).load(as: UInt8.self) >> shift & 1 == 1 }
                        out[r * entry.cols + c] = entry.type == .binary ? (bit(0) ? 1 : -1) : (bit(0) ? (bit(1) ? 1 : -1) : 0)
                    }
                }
                return out
            }
        }
    }
}
