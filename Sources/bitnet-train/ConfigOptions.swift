// The configuration on the command line: a preset, then any field of the table
// (ConfigFields) by its flag, shared by `train`, `bench` and `lr-sweep`.
import ArgumentParser
import BitNet
import BitNetCLI

struct ConfigOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Size preset (see 'bitnet-train presets'), or WIDTHxLAYERS (e.g. 64x2) on mini's settings, "
                               + "shaped as sweep's sizes are."))
    var preset: String = "mini"
    /// Every other option: config fields by flag, read against the table in `runConfig`.
    @Argument(parsing: .allUnrecognized, help: .hidden) var fieldArguments: [String] = []

    /// "--flag value" or "--flag=value" pairs as (key, text), in order, and the arguments
    /// that are not flags. A value may start with a dash (a negative number is a value,
    /// then refused by the field's range).
    func parsedArguments() throws -> (values: [(key: String, text: String)], positionals: [String]) {
        var values: [(key: String, text: String)] = [], positionals: [String] = []
        var i = 0
        while i < fieldArguments.count {
            let argument = fieldArguments[i]
            guard argument.hasPrefix("--") else {
                positionals.append(argument)
                i += 1
                continue
            }
            let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
            guard let entry = ConfigFields.entry(flag: parts[0]) else {
                throw ValidationError("unknown option '\(parts[0])'; 'bitnet-train fields' lists the config fields")
            }
            if parts.count == 2 {
                values.append((entry.key, parts[1]))
                i += 1
            } else {
                guard i + 1 < fieldArguments.count else { throw ValidationError("\(entry.flag) needs a value") }
                values.append((entry.key, fieldArguments[i + 1]))
                i += 2
            }
        }
        return (values, positionals)
    }

    /// Unknown flags and missing values are refused before any work starts.
    func validate() throws { _ = try parsedArguments() }

    /// The field values; an argument that is not a flag is refused.
    func fieldValues() throws -> [(key: String, text: String)] {
        let (values, positionals) = try parsedArguments()
        if let first = positionals.first { throw ValidationError("unexpected argument '\(first)'") }
        return values
    }

    /// The preset, the data's vocabulary size, then the flags given, validated.
    func runConfig(vocabSize: Int?) throws -> RunConfig {
        let (model, training) = try SweepSize(preset).config(basePreset: "mini")
        let base = RunConfig(preset: preset, model: model, training: training)
        return try base.overriding((vocabSize.map { [("vocab_size", "\($0)")] } ?? []) + fieldValues())
    }
}

/// Appended to the help of commands that take config fields.
let configFieldsHelp = "Every config field can be set by its flag (--dim 128, --lr 3e-3, --two-stage true, ...); "
    + "'bitnet-train fields' lists them with their defaults and valid values."

/// `bitnet-train fields`: the table of config fields.
struct FieldsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fields", abstract: "List every config field: its flag, default, valid values and meaning.")

    @Flag(help: "Print the Markdown table the README holds.") var markdown = false

    func run() throws {
        if markdown { return try Output.write(ConfigFields.markdownTable) }
        var text = ""
        for e in ConfigFields.all {
            text += "\(e.flag.padding(toLength: 32, withPad: " ", startingAt: 0)) \(e.key) (\(e.section)); "
                + "default \(e.defaultText.replacingOccurrences(of: "`", with: "")); \(e.validText)\n"
                + "\(String(repeating: " ", count: 33))\(e.help)\n"
        }
        try Output.write(text)
    }
}
