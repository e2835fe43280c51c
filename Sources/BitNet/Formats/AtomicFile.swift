// Files appear whole or not at all: written to a temporary name, flushed to disk,
// then renamed over the target (rename is atomic on POSIX file systems).
import Foundation

public enum AtomicFile {
    /// Calls `body` with a handle to a temporary file beside `url`, then renames it to `url`.
    /// If `body` throws, the temporary file is removed and `url` is untouched.
    public static func write(to url: URL, _ body: (FileHandle) throws -> Void) throws {
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)")
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
            throw BitNetError.file("\(url.path): cannot create a file in \(url.deletingLastPathComponent().path)")
        }
        do {
            let handle = try FileHandle(forWritingTo: temporary)
            defer { try? handle.close() }
            try body(handle)
            try handle.synchronize()
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
        guard rename(temporary.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw BitNetError.file("\(url.path): cannot rename the finished file into place: \(reason)")
        }
    }

    public static func write(_ data: Data, to url: URL) throws {
        try write(to: url) { try $0.write(contentsOf: data) }
    }

    /// Encodes `value` as pretty, key-sorted JSON and writes it atomically.
    public static func writeJSON<T: Encodable>(_ value: T, to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var data = try encoder.encode(value)
        data.append(0x0A)
        try write(data, to: url)
    }
}
