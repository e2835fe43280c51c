// Text corpora in, token files out: `prepare` encodes text files with a tokenizer into
// DATA_DIR/{train,val}.bin (little-endian token ids) plus meta.json and a copy of the
// tokenizer, so a data directory is self-contained.
import Foundation

public enum Corpus {
    /// Reads a text file, refusing missing, empty and non-UTF-8 files with one clear line.
    public static func readText(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BitNetError.file("\(path): file does not exist or is not readable")
        }
        guard !data.isEmpty else { throw BitNetError.file("\(path): file is empty") }
        guard let text = String(data: data, encoding: .utf8) else {
            throw BitNetError.file("\(path): not valid UTF-8 text")
        }
        guard text.contains(where: { !$0.isWhitespace }) else { throw BitNetError.file("\(path): file holds only whitespace") }
        return text
    }

    /// Splits text into pieces of about `size` bytes at blank lines (else at line ends).
    static func chunks(_ text: String, size: Int = 1 << 16) -> [Substring] {
        var result: [Substring] = []
        var start = text.startIndex
        while start < text.endIndex {
            let limit = text.utf8.index(start, offsetBy: size, limitedBy: text.endIndex) ?? text.endIndex
            var end = limit
            if limit < text.endIndex {
                let window = text[start..<limit]
                if let blank = window.range(of: "\n\n", options: .backwards) {
                    end = blank.upperBound
                } else if let newline = window.lastIndex(of: "\n") {
                    end = text.index(after: newline)
                }
            }
            result.append(text[start..<end])
            start = end
        }
        return result
    }

    public struct Summary: Codable, Sendable {
        public var trainTokens: Int
        public var valTokens: Int
        public var vocabSize: Int
    }

    /// Encodes `inputs` (each ending with end-of-sequence) and writes the data directory.
    /// The last `validationFraction` of the token stream becomes the validation split.
    public static func prepare(inputs: [String], tokenizerPath: String, output: String,
                               validationFraction: Double = 0.05,
                               progress: (String) -> Void = { _ in }) throws -> Summary {
        guard validationFraction > 0 && validationFraction < 1 else {
            throw BitNetError.invalid("the validation fraction must be in (0, 1), got \(validationFraction)")
        }
        guard !inputs.isEmpty else { throw BitNetError.invalid("give at least one text file") }
        let tokenizer = try Tokenizer(path: tokenizerPath)
        var tokens: [Int32] = []
        for input in inputs {
            let text = try readText(input)
            let pieces = chunks(text)
            var encoded = [[Int32]](repeating: [], count: pieces.count)
            var failure: Error?
            let lock = NSLock()
            encoded.withUnsafeMutableBufferPointer { out in
                let base = out.baseAddress!
                Parallel.forEach(pieces.count) { i in
                    do {
                        (base + i).pointee = try tokenizer.encode(String(pieces[i]))
                    } catch {
                        lock.withLock { failure = error }
                    }
                }
            }
            if let failure { throw failure }
            let before = tokens.count
            for e in encoded { tokens.append(contentsOf: e) }
            if tokenizer.eosID >= 0 { tokens.append(tokenizer.eosID) }
            progress("\(input): \(text.utf8.count) bytes -> \(tokens.count - before) tokens")
        }
        let valCount = max(1, Int(Double(tokens.count) * validationFraction))
        let trainCount = tokens.count - valCount
        guard trainCount > 1 else { throw BitNetError.invalid("corpus too small: \(tokens.count) tokens") }

        let directory = URL(fileURLWithPath: output)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // meta.json goes last: a directory without it is not a finished data directory.
        try? FileManager.default.removeItem(at: directory.appendingPathComponent("meta.json"))
        let meta = DatasetMeta(vocabSize: tokenizer.vocabSize, dtype: tokenizer.vocabSize <= 65536 ? "uint16" : "uint32",
                               trainTokens: trainCount, valTokens: valCount, tokenizer: "tokenizer.model")
        try writeTokens(tokens[0..<trainCount], dtype: meta.dtype, to: directory.appendingPathComponent("train.bin"))
        try writeTokens(tokens[trainCount...], dtype: meta.dtype, to: directory.appendingPathComponent("val.bin"))
        let tokenizerData = try Data(contentsOf: URL(fileURLWithPath: tokenizerPath))
        try AtomicFile.write(tokenizerData, to: directory.appendingPathComponent("tokenizer.model"))
        try AtomicFile.writeJSON(meta, to: directory.appendingPathComponent("meta.json"))
        return Summary(trainTokens: trainCount, valTokens: valCount, vocabSize: tokenizer.vocabSize)
    }

    static func writeTokens(_ tokens: ArraySlice<Int32>, dtype: String, to url: URL) throws {
        var data = Data()
        if dtype == "uint16" {
            data.reserveCapacity(tokens.count * 2)
            for t in tokens { withUnsafeBytes(of: UInt16(t).littleEndian) { data.append(contentsOf: $0) } }
        } else {
            data.reserveCapacity(tokens.count * 4)
            for t in tokens { withUnsafeBytes(of: UInt32(t).littleEndian) { data.append(contentsOf: $0) } }
        }
        try AtomicFile.write(data, to: url)
    }
}
