// `bitnet-train tokenizer` and `bitnet-train prepare`.
import ArgumentParser
import BitNet
import BitNetCLI
import Foundation

struct TokenizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer", abstract: "Train a SentencePiece tokenizer on text files.")

    @Option(name: .customLong("input"), help: "A text file (repeat for several).") var inputs: [String] = []
    @Option(parsing: .unconditional, help: "Vocabulary size.") var vocabSize: Int = 4096
    @Option(help: "Tokenizer algorithm: bpe or unigram.") var kind: TokenizerKind = .bpe
    @Option(help: "Output file (must end in .model).") var out: String

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give at least one --input text file") }
        if vocabSize < 300 { throw ValidationError("--vocab-size must be at least 300 (256 byte pieces plus specials), got \(vocabSize)") }
    }

    func run() throws {
        try reportingErrors {
            for input in inputs { _ = try Corpus.readText(input) }
            log("training a \(kind.rawValue) tokenizer with \(vocabSize) pieces on \(inputs.count) file(s)...")
            try Tokenizer.train(inputs: inputs, vocabSize: vocabSize, kind: kind, output: out)
            log("wrote \(out)")
        }
    }
}

struct PrepareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare", abstract: "Encode text files into a data directory of token ids.")

    @Option(name: .customLong("input"), help: "A text file (repeat for several).") var inputs: [String] = []
    @Option(help: "SentencePiece model made by 'bitnet-train tokenizer'.") var tokenizer: String
    @Option(help: "Output data directory.") var out: String
    @Option(parsing: .unconditional, help: "Fraction of tokens (at the end) held out for validation.") var valFraction: Double = 0.05

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give at least one --input text file") }
        if !(valFraction > 0 && valFraction < 1) { throw ValidationError("--val-fraction must be in (0, 1), got \(valFraction)") }
    }

    func run() throws {
        try reportingErrors {
            let summary = try Corpus.prepare(inputs: inputs, tokenizerPath: tokenizer, output: out,
                                             validationFraction: valFraction) { log($0) }
            log("wrote \(out): \(summary.trainTokens) train and \(summary.valTokens) validation tokens, vocabulary \(summary.vocabSize)")
        }
    }
}
