// The packed model format (MODEL.bitnet, docs/FORMAT.md "Packed models"), defined once:
// the constants, the 64-byte header, the 128-byte tensor table entry, the checksum and
// the tiled bit-plane geometry. The trainer's writer and the runtime's reader both use
// this module; it depends on nothing, so the runtime still shares no training code.

public enum PackedFormat {
    public static let magic: [UInt8] = Array("BITNETMF".utf8)
    /// Version 1 stored plain (untiled) bit-planes; readers refuse it with a hint.
    public static let version: UInt32 = 2
    public static let headerSize = 64
    public static let tableEntrySize = 128
    /// Bytes of a tensor name in the table, NUL-padded; names must be shorter.
    public static let nameCapacity = 80
    /// Every section, tensor and the file size are multiples of this.
    public static let alignment = 64
    /// The metadata JSON's "format" value.
    public static let metadataFormat = "bitnet-model"
    /// Tensor counts above this are taken as damage, not a model.
    public static let maxTensors = 100_000
    /// Rows and columns above this are taken as damage.
    public static let maxDimension = 1 << 24

    public static func aligned(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    /// The checksum of everything after the header: FNV-1a's step, h = (h ^ w) * prime,
    /// over little-endian u64 words rather than bytes (8x fewer dependent multiplies);
    /// any change to one word changes the result. `bytes.count` must be a multiple of 8.
    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for i in stride(from: 0, to: bytes.count & ~7, by: 8) {
            h = (h ^ UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))) &* 0x0000_0100_0000_01b3
        }
        return h
    }
}

/// How a tensor's values are stored.
public enum TensorType: UInt32, Sendable, CaseIterable {
    case f32 = 0
    /// IEEE half.
    case f16 = 1
    /// One tiled bit-plane: bit set for +1, clear for -1.
    case binary = 2
    /// Two tiled bit-planes: nonzero, then plus.
    case ternary = 3
}

/// The 64-byte header, field by field at the offsets of docs/FORMAT.md.
public struct PackedHeader: Sendable, Equatable {
    public var magic: [UInt8]
    public var version: UInt32
    public var headerSize: UInt32
    public var fileSize: UInt64
    public var checksum: UInt64
    public var metadataOffset: UInt64
    public var metadataLength: UInt64
    public var tableOffset: UInt64
    public var tensorCount: UInt32

    public init(fileSize: UInt64, checksum: UInt64, metadataOffset: UInt64, metadataLength: UInt64,
                tableOffset: UInt64, tensorCount: UInt32) {
        magic = PackedFormat.magic
        version = PackedFormat.version
        headerSize = UInt32(PackedFormat.headerSize)
        self.fileSize = fileSize
        self.checksum = checksum
        self.metadataOffset = metadataOffset
        self.metadataLength = metadataLength
        self.tableOffset = tableOffset
        self.tensorCount = tensorCount
    }

    /// Reads the header from the first 64 bytes of `raw` (the caller checks the length).
    public init(reading raw: UnsafeRawBufferPointer) {
        let r = FieldReader(raw: raw, base: 0)
        magic = Array(raw[0..<8])
        version = r.u32(8)
        headerSize = r.u32(12)
        fileSize = r.u64(16)
        checksum = r.u64(24)
        metadataOffset = r.u64(32)
        metadataLength = r.u64(40)
        tableOffset = r.u64(48)
        tensorCount = r.u32(56)
    }

    /// The 64 bytes as stored.
    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: PackedFormat.headerSize)
        out.replaceSubrange(0..<8, with: magic)
        out.withUnsafeMutableBytes { raw in
            let w = FieldWriter(raw: raw, base: 0)
            w.u32(version, 8)
            w.u32(headerSize, 12)
            w.u64(fileSize, 16)
            w.u64(checksum, 24)
            w.u64(metadataOffset, 32)
            w.u64(metadataLength, 40)
            w.u64(tableOffset, 48)
            w.u32(tensorCount, 56)
        }
        return out
    }
}

/// One 128-byte tensor table entry as stored: values not yet validated.
public struct TableRecord: Sendable, Equatable {
    /// The name's bytes up to the first NUL.
    public var name: [UInt8]
    public var type: UInt32
    public var rows: UInt32
    public var cols: UInt32
    public var scale: Float
    public var offset: UInt64
    public var length: UInt64

    public init(name: [UInt8], type: UInt32, rows: UInt32, cols: UInt32, scale: Float, offset: UInt64, length: UInt64) {
        (self.name, self.type, self.rows, self.cols, self.scale, self.offset, self.length) =
            (name, type, rows, cols, scale, offset, length)
    }

    /// Reads the entry at byte `at` of `raw` (the caller checks at + 128 <= raw.count).
    public init(reading raw: UnsafeRawBufferPointer, at: Int) {
        let r = FieldReader(raw: raw, base: at)
        name = Array(raw[at..<at + PackedFormat.nameCapacity].prefix { $0 != 0 })
        type = r.u32(80)
        rows = r.u32(84)
        cols = r.u32(88)
        scale = Float(bitPattern: r.u32(92))
        offset = r.u64(96)
        length = r.u64(104)
    }

    /// Writes the entry at byte `at` of `raw` (name NUL-padded, reserved bytes zero).
    public func write(into raw: UnsafeMutableRawBufferPointer, at: Int) {
        for i in 0..<PackedFormat.tableEntrySize { raw[at + i] = 0 }
        for (i, b) in name.prefix(PackedFormat.nameCapacity - 1).enumerated() { raw[at + i] = b }
        let w = FieldWriter(raw: raw, base: at)
        w.u32(type, 80)
        w.u32(rows, 84)
        w.u32(cols, 88)
        w.u32(scale.bitPattern, 92)
        w.u64(offset, 96)
        w.u64(length, 104)
    }
}

/// The tiled bit-plane layout of a packed [rows, cols] weight: blocks of 32 rows by
/// tiles of 16 columns, 64 bytes each, rows and columns padded with zero bits. One
/// 32-byte load holds a 4-bit slice of 32 rows in each nibble (the runtime's look-up).
public struct TiledPlanes: Sendable, Equatable {
    public let rows: Int
    public let cols: Int

    public init(rows: Int, cols: Int) {
        self.rows = rows
        self.cols = cols
    }

    public var blocks: Int { (rows + 31) / 32 }
    public var tiles: Int { (cols + 15) / 16 }
    /// Bytes of one plane: 64 per tile.
    public var planeBytes: Int { blocks * tiles * 64 }

    /// Where weight (r, c) lives in a plane: byte `r % 32` of the tile's first 32 bytes
    /// for columns 0-7 of the tile, of its second 32 bytes for columns 8-15; bit `c % 8`.
    @inline(__always)
    public func bitPosition(row r: Int, col c: Int) -> (byte: Int, bit: Int) {
        ((r / 32 * tiles + c / 16) * 64 + (c % 16) / 8 * 32 + r % 32, c % 8)
    }

    /// Bytes a tensor of this shape takes when stored as `type`.
    public func storedBytes(_ type: TensorType) -> Int {
        switch type {
        case .f32: rows * cols * 4
        case .f16: rows * cols * 2
        case .binary: planeBytes
        case .ternary: 2 * planeBytes
        }
    }
}

/// Little-endian fields at offsets from `base`.
struct FieldReader {
    let raw: UnsafeRawBufferPointer
    let base: Int
    func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: base + o, as: UInt32.self)) }
    func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: base + o, as: UInt64.self)) }
}

struct FieldWriter {
    let raw: UnsafeMutableRawBufferPointer
    let base: Int
    func u32(_ v: UInt32, _ o: Int) { raw.storeBytes(of: v.littleEndian, toByteOffset: base + o, as: UInt32.self) }
    func u64(_ v: UInt64, _ o: Int) { raw.storeBytes(of: v.littleEndian, toByteOffset: base + o, as: UInt64.self) }
}
