// How both programs end: refusals in one line naming the flag or field and the value
// (a hint to --help may follow on a second line), and documented exit codes:
// 0 done, 1 failed (bad input found at run time, a file or write error), 64 usage
// (a bad flag or value), 130 interrupted.
import ArgumentParser
import Foundation

extension ParsableCommand {
    /// Parses and runs the command line; any error ends the program with one line.
    public static func mainWithOneLineErrors(programName: String) {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }  // --help, --version: printed as usual
            if let exit = error as? ExitCode { Foundation.exit(exit.rawValue) }  // already reported
            log("\(programName): error: \(message(for: error))")
            if let hint = fullMessage(for: error).split(separator: "\n").last(where: { $0.contains("--help") }) {
                log(hint.trimmingCharacters(in: .whitespaces))
            }
            Foundation.exit(code.rawValue)
        }
    }
}
