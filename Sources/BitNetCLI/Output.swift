// Writing to the terminal: results to stdout, diagnostics to stderr, with write errors
// (a full disk, a closed pipe) thrown instead of trapping inside Foundation.
import Foundation

public enum Output {
    /// Writes to stdout; throws on a write error.
    public static func write(_ bytes: some DataProtocol) throws {
        try FileHandle.standardOutput.write(contentsOf: bytes)
    }

    public static func write(_ text: String) throws { try write(Data(text.utf8)) }
}

/// Prints one line (or `terminator`) to stderr; a failing stderr is ignored, as there is
/// nowhere left to report it.
public func log(_ message: String, terminator: String = "\n") {
    try? FileHandle.standardError.write(contentsOf: Data((message + terminator).utf8))
}
