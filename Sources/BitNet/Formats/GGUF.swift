// GGUF version 3, the file format of llama.cpp and ggml (ggml's docs/gguf.md): a header,
// typed key-value metadata, a table of tensor descriptions, then the tensor data, each
// tensor aligned to `general.alignment` (32 bytes by default). Little-endian throughout.
import Foundation

/// A metadata value (the types this project writes).
public enum GGUFValue {
    case uint32(UInt32)
    case int32(Int32)
    case float32(Float)
    case bool(Bool)
    case string(String)
    case strings([String])
    case float32s([Float])
    case int32s([Int32])

    /// GGUF's value type codes.
    static let typeUInt32: UInt32 = 4, typeInt32: UInt32 = 5, typeFloat32: UInt32 = 6, typeBool: UInt32 = 7,
               typeString: UInt32 = 8, typeArray: UInt32 = 9
}

/// ggml tensor types used here, with their block geometry.
public enum GGMLType: UInt32, Sendable {
    case f32 = 0
    case f16 = 1
    case tq1_0 = 34
    case tq2_0 = 35

    /// Elements per block and bytes per block.
    public var block: (elements: Int, bytes: Int) {
        switch self {
        case .f32: return (1, 4)
        case .f16: return (1, 2)
        case .tq1_0: return (256, 54)
        case .tq2_0: return (256, 66)
        }
    }
}

/// One tensor: its name, its dimensions in ggml's order (ne[0], the contiguous one,
/// first: [columns, rows] for a row-major matrix) and its encoded bytes.
public struct GGUFTensor {
    public var name: String
    public var dimensions: [Int]
    public var type: GGMLType
    public var data: Data

    public init(name: String, dimensions: [Int], type: GGMLType, data: Data) {
        (self.name, self.dimensions, self.type, self.data) = (name, dimensions, type, data)
    }
}

public enum GGUF {
    public static let magic: [UInt8] = Array("GGUF".utf8)
    public static let version: UInt32 = 3
    public static let alignment = 32

    /// Writes a GGUF file atomically (a temporary file renamed into place).
    public static func write(metadata: [(String, GGUFValue)], tensors: [GGUFTensor], to url: URL) throws {
        var header = ByteWriter()
        header.bytes(magic)
        header.u32(version)
        header.u64(UInt64(tensors.count))
        header.u64(UInt64(metadata.count))
        for (key, value) in metadata {
            header.string(key)
            header.value(value)
        }
        var offset = 0
        for tensor in tensors {
            let elements = tensor.dimensions.reduce(1, *), (perBlock, blockBytes) = tensor.type.block
            guard elements % perBlock == 0, tensor.data.count == elements / perBlock * blockBytes else {
                throw BitNetError.invalid("GGUF tensor \(tensor.name): \(tensor.data.count) bytes do not hold "
                                          + "\(tensor.dimensions) elements of type \(tensor.type)")
            }
            header.string(tensor.name)
            header.u32(UInt32(tensor.dimensions.count))
            for d in tensor.dimensions { header.u64(UInt64(d)) }
            header.u32(tensor.type.rawValue)
            header.u64(UInt64(offset))
            offset = aligned(offset + tensor.data.count)
        }
        header.pad(to: alignment)
        try AtomicFile.write(to: url) { handle in
            try handle.write(contentsOf: header.data)
            for tensor in tensors {
                try handle.write(contentsOf: tensor.data)
                let padding = aligned(tensor.data.count) - tensor.data.count
                if padding > 0 { try handle.write(contentsOf: Data(count: padding)) }
            }
        }
    }

    static func aligned(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }
}

/// Appends little-endian values to a byte buffer.
struct ByteWriter {
    private(set) var data = Data()

    mutating func bytes(_ b: [UInt8]) { data.append(contentsOf: b) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    mutating func i32(_ v: Int32) { u32(UInt32(bitPattern: v)) }
    mutating func f32(_ v: Float) { u32(v.bitPattern) }
    mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        u64(UInt64(utf8.count))
        bytes(utf8)
    }
    mutating func pad(to alignment: Int) {
        let padding = (alignment - data.count % alignment) % alignment
        data.append(contentsOf: [UInt8](repeating: 0, count: padding))
    }

    mutating func value(_ value: GGUFValue) {
        func array(_ elementType: UInt32, _ count: Int) {
            u32(GGUFValue.typeArray)
            u32(elementType)
            u64(UInt64(count))
        }
        switch value {
        case .uint32(let v): u32(GGUFValue.typeUInt32); u32(v)
        case .int32(let v): u32(GGUFValue.typeInt32); i32(v)
        case .float32(let v): u32(GGUFValue.typeFloat32); f32(v)
        case .bool(let v): u32(GGUFValue.typeBool); bytes([v ? 1 : 0])
        case .string(let v): u32(GGUFValue.typeString); string(v)
        case .strings(let vs): array(GGUFValue.typeString, vs.count); for v in vs { string(v) }
        case .float32s(let vs): array(GGUFValue.typeFloat32, vs.count); for v in vs { f32(v) }
        case .int32s(let vs): array(GGUFValue.typeInt32, vs.count); for v in vs { i32(v) }
        }
    }
}
