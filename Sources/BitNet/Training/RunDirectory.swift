// RUN_DIR: config.json, metrics.jsonl, checkpoint.safetensors and a copy of the
// tokenizer, every write atomic, and a lock so that two trainers never share one.
import Foundation

public final class RunDirectory {
    public let url: URL
    private var lockDescriptor: Int32 = -1

    public init(_ url: URL) { self.url = url }

    deinit { if lockDescriptor >= 0 { close(lockDescriptor) } }

    public var configURL: URL { url.appendingPathComponent("config.json") }
    public var metricsURL: URL { url.appendingPathComponent("metrics.jsonl") }
    public var checkpointURL: URL { url.appendingPathComponent(Checkpoint.fileName) }
    public var tokenizerURL: URL { url.appendingPathComponent("tokenizer.model") }
    var lockURL: URL { url.appendingPathComponent(".lock") }

    /// True when the directory holds anything but hidden files.
    public var holdsRun: Bool {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        return names.contains { !$0.hasPrefix(".") }
    }

    /// The saved config; nil when there is none.
    public func readConfig() throws -> RunConfig? {
        guard FileManager.default.fileExists(atPath: configURL.path) else { return nil }
        guard let data = FileManager.default.contents(atPath: configURL.path),
              let config = try? JSONDecoder().decode(RunConfig.self, from: data) else {
            throw BitNetError.file("\(configURL.path): unreadable or invalid; cannot resume this run")
        }
        return config
    }

    /// The checkpoint's file and training state, checked to belong to `config`; nil when
    /// the run has not saved one yet.
    public func readCheckpoint(of config: RunConfig) throws -> (file: SafeTensorsFile, state: TrainingState)? {
        guard FileManager.default.fileExists(atPath: checkpointURL.path) else { return nil }
        let file = try SafeTensorsFile(url: checkpointURL)
        let (saved, state) = try Checkpoint.readHeader(file)
        guard saved == config else {
            throw BitNetError.file("\(checkpointURL.path): its config differs from \(configURL.path); refusing to resume")
        }
        return (file, state)
    }

    /// Creates the directory and takes its lock, held until `unlock` or the end of this
    /// object: a second trainer on the same directory is refused instead of overwriting
    /// the first one's files.
    public func lock() throws {
        guard lockDescriptor < 0 else { return }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw BitNetError.file("\(url.path): is a file, not a run directory")
        }
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw BitNetError.file("\(url.path): cannot create the run directory: \(error.localizedDescription)")
        }
        let fd = open(lockURL.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BitNetError.file("\(lockURL.path): cannot open: \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw BitNetError.file("\(url.path): another trainer is using this run directory")
        }
        lockDescriptor = fd
        // Temporary files of a writer that was killed (AtomicFile names them ".NAME.tmp-PID").
        for name in (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? [] where name.hasPrefix(".") && name.contains(".tmp-") {
            try? FileManager.default.removeItem(at: url.appendingPathComponent(name))
        }
    }

    /// Lets another trainer use the directory.
    public func unlock() {
        if lockDescriptor >= 0 { close(lockDescriptor) }
        lockDescriptor = -1
    }

    /// Removes a previous run's files (the lock must be held).
    public func clear() {
        for file in [configURL, metricsURL, checkpointURL, tokenizerURL] { try? FileManager.default.removeItem(at: file) }
    }

    /// Starts a run: its config, no metrics yet, and a copy of the data's tokenizer.
    public func start(config: RunConfig, tokenizerPath: String) throws {
        try AtomicFile.writeJSON(config, to: configURL)
        try? FileManager.default.removeItem(at: metricsURL)
        try? FileManager.default.removeItem(at: tokenizerURL)
        if FileManager.default.fileExists(atPath: tokenizerPath) {
            try AtomicFile.write(try Data(contentsOf: URL(fileURLWithPath: tokenizerPath)), to: tokenizerURL)
        }
    }

    /// metrics.jsonl's lines as JSON objects (unparseable lines skipped).
    public func readMetrics() -> [[String: Any]] {
        guard let data = FileManager.default.contents(atPath: metricsURL.path) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    /// Keeps the metrics lines of steps up to `step` (a killed run may have logged past
    /// its last checkpoint), so the resumed run's lines follow on exactly.
    public func truncateMetrics(after step: Int) throws {
        guard let data = FileManager.default.contents(atPath: metricsURL.path) else { return }
        let kept = String(decoding: data, as: UTF8.self).split(separator: "\n").filter { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let s = object["step"] as? Int else { return false }
            return s <= step
        }
        try AtomicFile.write(Data((kept.map { $0 + "\n" }.joined()).utf8), to: metricsURL)
    }

    /// A handle that appends to metrics.jsonl.
    public func openMetrics() throws -> FileHandle {
        if !FileManager.default.fileExists(atPath: metricsURL.path) {
            _ = FileManager.default.createFile(atPath: metricsURL.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: metricsURL)
        try handle.seekToEnd()
        return handle
    }
}
