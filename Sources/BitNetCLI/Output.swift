// Writing to the terminal: results to stdout, diagnostics to stderr, with write errors
// (a full disk, a closed pipe) thrown instead of trapping inside Foundation.
import Foundation

/// A failed read of standard input or write to standard output, in one line.
public struct OutputError: Error, CustomStringConvertible {
    public let description: String
}

/// The POSIX reason inside a Foundation file error, when there is one.
func posixReason(_ error: Error) -> String {
    let code = ((error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError)?.code ?? 0
    return code != 0 ? String(cString: strerror(Int32(code))) : "\(error)"
}

public enum Input {
    /// All of standard input; one clear line when it cannot be read (a directory, closed).
    public static func readAll() throws -> Data {
        do {
            return try FileHandle.standardInput.readToEnd() ?? Data()
        } catch {
            throw OutputError(description: "cannot read standard input: \(posixReason(error))")
        }
    }
}

public enum Output {
    /// Writes to stdout; throws one line on a write error (a full disk). A closed pipe
    /// (`| head`) ends the program quietly, as SIGPIPE ends other command-line tools.
    public static func write(_ bytes: some DataProtocol) throws {
        do {
            try FileHandle.standardOutput.write(contentsOf: bytes)
        } catch {
            let code = ((error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError)?.code ?? 0
            if code == Int(EPIPE) {
                signal(SIGPIPE, SIG_DFL)
                raise(SIGPIPE)
            }
            throw OutputError(description: "cannot write to standard output: \(posixReason(error))")
        }
    }

    public static func write(_ text: String) throws { try write(Data(text.utf8)) }
}

/// Prints one line (or `terminator`) to stderr; a failing stderr is ignored, as there is
/// nowhere left to report it.
public func log(_ message: String, terminator: String = "\n") {
    try? FileHandle.standardError.write(contentsOf: Data((message + terminator).utf8))
}

/// Output to standard output, with write errors thrown: `print` buffers, and a full disk
/// would be noticed by nobody.
public func printLine(_ text: String) throws { try Output.write(text + "\n") }
