// Every error the training library throws: one line that names the configuration field,
// the file or the value at fault. The library has no command line; the CLI turns a
// field's name into its flag.

public enum BitNetError: Error, CustomStringConvertible, Equatable {
    /// A configuration field (by its JSON key) holds a value it cannot take; `problem`
    /// completes the sentence, e.g. "must be positive, got 0".
    case field(String, problem: String)
    /// A file or directory cannot be used; the message starts with its path.
    case file(String)
    /// A request that cannot be carried out as asked.
    case invalid(String)
    /// Training stopped because the loss or the gradient norm stopped being finite.
    case diverged(String)
    /// A directory already holds a run (or a different sweep), and neither continuing nor
    /// replacing it was asked; the message starts with the path and says what it holds.
    case occupied(String)

    public var description: String {
        switch self {
        case .field(let key, let problem): "config field \(key) \(problem)"
        case .file(let message), .invalid(let message): message
        case .diverged(let message):
            message + "; stopped. Try a lower learning_rate or grad_clip"
        case .occupied(let what): what + "; continue it, or replace it"
        }
    }

    /// Throws "config field KEY must be positive, got VALUE" unless `value` > 0.
    static func requirePositive(_ value: Int, _ key: String) throws {
        if value <= 0 { throw BitNetError.field(key, problem: "must be positive, got \(value)") }
    }
}
