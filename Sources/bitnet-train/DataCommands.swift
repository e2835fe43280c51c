// `bitnet-train tokenizer` and `bitnet-train prepare`.
import ArgumentParser
import BitNet
import BitNetCLI
import Foundation

struct TokenizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer", abstract: "Train a SentencePiece tokenizer on text files.",
        discussion: "Inputs are files or directories (walked recursively; --glob filters file names). On a corpus of "
            + "more than --sample-sentences lines, SentencePiece trains on a uniform sample of that many, drawn with --seed.")

    @Option(name: .customLong("input"), help: "A text file or a directory of them (repeat for several).") var inputs: [String] = []
    @Option(help: "Only files whose name matches this pattern (fnmatch, e.g. '*.txt').") var glob: String?
    @Option(name: .customLong("max-file-mb"), parsing: .unconditional,
            help: "Leave out files in directories larger than this many MB (generated tables in a source tree).")
    var maxFileMB: Double?
    @Option(parsing: .unconditional, help: "Vocabulary size.") var vocabSize: Int = 4096
    @Option(help: "Tokenizer algorithm: bpe or unigram.") var kind: TokenizerKind = .bpe
    @Option(name: .customLong("sample-sentences"), parsing: .unconditional, help: "Lines SentencePiece trains on at most.")
    var sampleSentences: Int = 2_000_000
    @Option(parsing: .unconditional, help: "Seed of the sample.") var seed: Int = 1
    @Option(help: "Output file (must end in .model).") var out: String

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give at least one --input file or directory") }
        if vocabSize < 300 { throw ValidationError("--vocab-size must be at least 300 (256 byte pieces plus specials), got \(vocabSize)") }
        if sampleSentences < 1 { throw ValidationError("--sample-sentences must be positive, got \(sampleSentences)") }
        if let maxFileMB, !(maxFileMB > 0 && maxFileMB <= 1e6) { throw ValidationError("--max-file-mb must be in (0, 1e6], got \(maxFileMB)") }
        if !(0...Int(UInt32.max)).contains(seed) { throw ValidationError("--seed must be in 0...\(UInt32.max), got \(seed)") }
    }

    func run() throws {
        try reportingErrors {
            let documents = try CorpusFiles.list(inputs, glob: glob, maxBytes: maxFileMB.map { Int($0 * 1e6) })
            // Files named directly are checked whole (empty, not UTF-8) when that is cheap.
            for document in documents where inputs.contains(document.path) && document.bytes <= 256 << 20 {
                _ = try Corpus.readText(document.path)
            }
            log("training a \(kind.rawValue) tokenizer with \(vocabSize) pieces on \(documents.count) file(s)...")
            try Tokenizer.train(inputs: documents.map(\.path), vocabSize: vocabSize, kind: kind, output: out,
                                maxSentences: sampleSentences, seed: UInt32(seed))
            log("wrote \(out)")
        }
    }
}

struct PrepareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare", abstract: "Encode text files into a data directory of token ids.",
        discussion: "Inputs are files or directories (walked recursively; --glob filters file names). Each file is a "
            + "document; with at least \(Corpus.documentSplitMinimum) of them, validation is a hashed choice of whole "
            + "documents, else the last --val-fraction of the token stream. Text is streamed block by block and encoded "
            + "on all cores, so memory stays flat however large the corpus.")

    @Option(name: .customLong("input"), help: "A text file or a directory of them (repeat for several).") var inputs: [String] = []
    @Option(help: "Only files whose name matches this pattern (fnmatch, e.g. '*.txt'), in directories and among files.")
    var glob: String?
    @Option(name: .customLong("max-file-mb"), parsing: .unconditional,
            help: "Leave out files in directories larger than this many MB (generated tables in a source tree).")
    var maxFileMB: Double?
    @Option(help: "SentencePiece model made by 'bitnet-train tokenizer'.") var tokenizer: String
    @Option(help: "Output data directory.") var out: String
    @Option(parsing: .unconditional, help: "Fraction held out for validation (of documents, or of the tokens at the end).")
    var valFraction: Double = 0.05
    @Option(name: .customLong("block-mb"), parsing: .unconditional, help: "Text read and encoded at a time, in MB.")
    var blockMB: Int = 8

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give at least one --input file or directory") }
        if !(valFraction > 0 && valFraction < 1) { throw ValidationError("--val-fraction must be in (0, 1), got \(valFraction)") }
        if !(1...1024).contains(blockMB) { throw ValidationError("--block-mb must be in 1...1024, got \(blockMB)") }
        if let maxFileMB, !(maxFileMB > 0 && maxFileMB <= 1e6) { throw ValidationError("--max-file-mb must be in (0, 1e6], got \(maxFileMB)") }
    }

    func run() throws {
        try reportingErrors {
            let start = Date()
            var lastReport = Date.distantPast
            let summary = try Corpus.prepare(inputs: inputs, glob: glob, maxDocumentBytes: maxFileMB.map { Int($0 * 1e6) },
                                             tokenizerPath: tokenizer, output: out,
                                             validationFraction: valFraction, blockBytes: blockMB << 20) { p in
                let now = Date()
                guard now.timeIntervalSince(lastReport) >= 1 || p.bytesDone == p.totalBytes else { return }
                lastReport = now
                let seconds = max(now.timeIntervalSince(start), 1e-3), rate = Double(p.bytesDone) / seconds
                let eta = rate > 0 ? Double(p.totalBytes - p.bytesDone) / rate : 0
                log(String(format: "prepare: %.1f/%.1f MB (%.0f%%), document %d/%d, %@ tokens, %.1f MB/s, ETA %@",
                           Double(p.bytesDone) / 1e6, Double(p.totalBytes) / 1e6,
                           100 * Double(p.bytesDone) / Double(max(p.totalBytes, 1)), p.documentsDone + 1, p.documents,
                           formatCount(p.tokens), rate / 1e6, formatDuration(eta)))
            }
            let seconds = max(Date().timeIntervalSince(start), 1e-3), tokens = summary.trainTokens + summary.valTokens
            let split = summary.documents >= Corpus.documentSplitMinimum
                ? "\(summary.validationDocuments) of \(summary.documents) documents held out"
                : "the last \(valFraction) of the tokens held out (\(summary.documents) document(s))"
            log("wrote \(out): \(summary.trainTokens) train and \(summary.valTokens) validation tokens, vocabulary "
                + "\(summary.vocabSize); \(split)" + (summary.skippedDocuments > 0 ? "; \(summary.skippedDocuments) file(s) without text skipped" : ""))
            log(String(format: "prepare: %.1f MB in %.1f s: %.2f MB/s, %.0f tokens/s, peak memory %.0f MB",
                       Double(summary.bytes) / 1e6, seconds, Double(summary.bytes) / 1e6 / seconds, Double(tokens) / seconds,
                       Double(Benchmark.peakResidentBytes()) / 1e6))
        }
    }
}
