// The safetensors format (Hugging Face): an 8-byte little-endian header length, a
// JSON header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
// then the tensor bytes, offsets relative to the end of the header. The reader checks
// every size and offset against the file before touching data.
import Foundation

public enum SafeTensorsDType: String, Sendable {
    case f32 = "F32"
    case i8 = "I8"

    var size: Int {
        switch self {
        case .f32: 4
        case .i8: 1
        }
    }
}

/// One tensor to write: its bytes come from `pointer`.
public struct SafeTensorsEntry {
    public let name: String
    public let dtype: SafeTensorsDType
    public let shape: [Int]
    public let pointer: UnsafeRawPointer

    public init(name: String, dtype: SafeTensorsDType, shape: [Int], pointer: UnsafeRawPointer) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.pointer = pointer
    }

    var byteCount: Int { shape.reduce(1, *) * dtype.size }
}

public enum SafeTensorsWriter {
    /// Writes the tensors in the given order to `handle`. `failAfterBytes` (tests only)
    /// throws part way through, to simulate a process killed mid-write.
    public static func write(_ entries: [SafeTensorsEntry], metadata: [String: String], to handle: FileHandle,
                             failAfterBytes: Int? = nil) throws {
        var header: [String: Any] = ["__metadata__": metadata]
        var offset = 0
        for e in entries {
            header[e.name] = ["dtype": e.dtype.rawValue, "shape": e.shape, "data_offsets": [offset, offset + e.byteCount]]
            offset += e.byteCount
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad with spaces so the data starts 8-byte aligned.
        while (json.count + 8) % 8 != 0 { json.append(0x20) }
        var length = UInt64(json.count).littleEndian
        var written = 0
        try handle.write(contentsOf: Data(bytes: &length, count: 8))
        try handle.write(contentsOf: json)
        written += 8 + json.count
        for e in entries {
            var start = 0
            // Write in pieces of at most 64 MiB so no large copy is ever made.
            while start < e.byteCount {
                let piece = min(e.byteCount - start, 64 << 20)
                if let limit = failAfterBytes, written + piece > limit {
                    throw BitNetError.file("simulated interruption after \(written) bytes")
                }
                try handle.write(contentsOf: Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: e.pointer + start),
                                                  count: piece, deallocator: .none))
                start += piece
                written += piece
            }
        }
    }
}

/// A validated, memory-mapped safetensors file.
public struct SafeTensorsFile {
    public struct Tensor {
        public let dtype: SafeTensorsDType
        public let shape: [Int]
        /// Byte range inside `data`.
        public let range: Range<Int>
    }

    public let path: String
    public let data: Data
    public let tensors: [String: Tensor]
    public let metadata: [String: String]

    public init(url: URL) throws {
        path = url.path
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw BitNetError.file("\(url.path): cannot read: \(error.localizedDescription)")
        }
        self.data = data
        func bad(_ what: String) -> BitNetError { BitNetError.file("\(url.path): not a valid safetensors file: \(what)") }
        guard data.count >= 8 else { throw bad("shorter than its 8-byte header length") }
        let headerLength = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLength <= UInt64(data.count - 8), headerLength <= 100_000_000 else {
            throw bad("header length \(headerLength) exceeds the file size \(data.count)")
        }
        let dataStart = 8 + Int(headerLength)
        let header = data.subdata(in: 8..<dataStart)
        guard let object = try? JSONSerialization.jsonObject(with: header), let dictionary = object as? [String: Any] else {
            throw bad("header is not a JSON object")
        }
        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        let bufferSize = data.count - dataStart
        for (name, value) in dictionary {
            if name == "__metadata__" {
                guard let m = value as? [String: String] else { throw bad("__metadata__ is not a string map") }
                metadata = m
                continue
            }
            guard let entry = value as? [String: Any],
                  let dtypeName = entry["dtype"] as? String,
                  let shape = entry["shape"] as? [Int],
                  let offsets = entry["data_offsets"] as? [Int], offsets.count == 2
            else { throw bad("tensor '\(name)' has a malformed entry") }
            guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
                throw bad("tensor '\(name)' has unsupported dtype \(dtypeName)")
            }
            guard shape.allSatisfy({ $0 >= 0 && $0 < 1 << 40 }) else { throw bad("tensor '\(name)' has a bad shape \(shape)") }
            let (count, overflow) = shape.reduce((1, false)) { acc, d in
                let (p, o) = acc.0.multipliedReportingOverflow(by: d)
                return (p, acc.1 || o)
            }
            let bytes = count.multipliedReportingOverflow(by: dtype.size)
            guard !overflow, !bytes.overflow, offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= bufferSize,
                  offsets[1] - offsets[0] == bytes.partialValue
            else { throw bad("tensor '\(name)' has data offsets \(offsets) that do not fit its shape or the file") }
            tensors[name] = Tensor(dtype: dtype, shape: shape, range: (dataStart + offsets[0])..<(dataStart + offsets[1]))
        }
        self.tensors = tensors
        self.metadata = metadata
    }

    /// Tensor `name`, checked to have this dtype and shape.
    @discardableResult
    public func tensor(_ name: String, dtype: SafeTensorsDType, shape: [Int]) throws -> Tensor {
        guard let t = tensors[name] else { throw BitNetError.file("\(path): tensor '\(name)' is missing") }
        guard t.dtype == dtype, t.shape == shape else {
            throw BitNetError.file("\(path): tensor '\(name)' is \(t.dtype.rawValue) \(t.shape), expected \(dtype.rawValue) \(shape)")
        }
        return t
    }

    /// Copies tensor `name` into `destination`, checking its dtype and shape first.
    public func copy(_ name: String, dtype: SafeTensorsDType, shape: [Int], into destination: UnsafeMutableRawPointer) throws {
        let t = try tensor(name, dtype: dtype, shape: shape)
        data.withUnsafeBytes { raw in
            destination.copyMemory(from: raw.baseAddress! + t.range.lowerBound, byteCount: t.range.count)
        }
    }
}
