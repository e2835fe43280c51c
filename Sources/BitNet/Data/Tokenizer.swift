// SentencePiece through the CSentencePiece shim: train a model, load it, encode, decode.
import CSentencePiece
import Foundation

public enum TokenizerKind: String, Codable, Sendable, CaseIterable {
    case bpe
    case unigram
}

public final class Tokenizer: @unchecked Sendable {
    private let processor: OpaquePointer
    public let path: String

    public init(path: String) throws {
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw BitNetError.file("\(path): tokenizer file does not exist or is not readable")
        }
        var error: UnsafeMutablePointer<CChar>?
        guard let p = spm_load(path, &error) else {
            let message = error.map { String(cString: $0) } ?? "unknown error"
            spm_free_string(error)
            throw BitNetError.file("\(path): not a valid SentencePiece model: \(message)")
        }
        processor = p
        self.path = path
    }

    deinit { spm_free(processor) }

    public var vocabSize: Int { Int(spm_vocab_size(processor)) }
    public var bosID: Int32 { spm_bos_id(processor) }
    public var eosID: Int32 { spm_eos_id(processor) }
    public var unknownID: Int32 { spm_unk_id(processor) }

    public func encode(_ text: String) throws -> [Int32] {
        var ids: UnsafeMutablePointer<Int32>?
        var count = 0
        let utf8 = Array(text.utf8CString)  // NUL-terminated; the length excludes the NUL
        let error = utf8.withUnsafeBufferPointer { chars in
            spm_encode(processor, chars.baseAddress!, chars.count - 1, &ids, &count)
        }
        if let error {
            defer { spm_free_string(error) }
            throw BitNetError.file("\(path): encoding failed: \(String(cString: error))")
        }
        defer { spm_free_ids(ids) }
        return Array(UnsafeBufferPointer(start: ids, count: count))
    }

    public func decode(_ ids: [Int32]) throws -> String {
        var text: UnsafeMutablePointer<CChar>?
        if let error = ids.withUnsafeBufferPointer({ spm_decode(processor, $0.baseAddress, $0.count, &text) }) {
            defer { spm_free_string(error) }
            throw BitNetError.file("\(path): decoding failed: \(String(cString: error))")
        }
        defer { spm_free_string(text) }
        return text.map { String(cString: $0) } ?? ""
    }

    /// The vocabulary entry of `id`: its piece, score and type (the runtime's tokenizer
    /// is rebuilt from these).
    public func piece(_ id: Int32) -> (piece: [UInt8], score: Float, type: Int32)? {
        var length = 0
        guard let p = spm_id_to_piece(processor, id, &length) else { return nil }
        let bytes = UnsafeRawBufferPointer(start: p, count: length)
        return (Array(bytes), spm_score(processor, id), spm_piece_type(processor, id))
    }

    /// Trains a SentencePiece model on text files and writes `output` (and its
    /// `.vocab` companion beside it). When the files hold more than `maxSentences` lines
    /// (SentencePiece's sentences), it trains on a sample of about that many, each line
    /// kept by a hash of (`seed`, its position): a corpus of any size trains in bounded
    /// memory, and the same seed gives the same model.
    public static func train(inputs: [String], vocabSize: Int, kind: TokenizerKind, output: String,
                             characterCoverage: Double = 1.0, byteFallback: Bool = true,
                             maxSentences: Int = 2_000_000, seed: UInt32 = 1) throws {
        let lines = try TextLines.count(inputs)
        guard lines > maxSentences else {
            try trainSentencePiece(inputs: inputs, vocabSize: vocabSize, kind: kind, output: output,
                                   characterCoverage: characterCoverage, byteFallback: byteFallback, maxSentences: maxSentences)
            return
        }
        let sample = URL(fileURLWithPath: output).deletingLastPathComponent()
            .appendingPathComponent(".tokenizer-sample-\(ProcessInfo.processInfo.processIdentifier).txt").path
        defer { try? FileManager.default.removeItem(atPath: sample) }
        try TextLines.sample(inputs, keep: Double(maxSentences) / Double(lines), seed: seed, to: sample)
        try trainSentencePiece(inputs: [sample], vocabSize: vocabSize, kind: kind, output: output,
                               characterCoverage: characterCoverage, byteFallback: byteFallback, maxSentences: maxSentences)
    }

    static func trainSentencePiece(inputs: [String], vocabSize: Int, kind: TokenizerKind, output: String,
                                   characterCoverage: Double, byteFallback: Bool, maxSentences: Int) throws {
        guard output.hasSuffix(".model") else { throw BitNetError.file("\(output): a tokenizer file's name must end in .model") }
        for input in inputs where input.contains(",") {
            throw BitNetError.file("\(input): SentencePiece cannot take input paths that contain a comma")
        }
        let prefix = String(output.dropLast(".model".count))
        // Train into a temporary prefix and rename, so a failure never leaves half a model.
        let temporaryPrefix = prefix + ".tmp-\(ProcessInfo.processInfo.processIdentifier)"
        let options: [(String, String)] = [
            ("input", inputs.joined(separator: ",")),
            ("model_prefix", temporaryPrefix),
            ("vocab_size", String(vocabSize)),
            ("model_type", kind.rawValue),
            ("character_coverage", String(characterCoverage)),
            ("byte_fallback", byteFallback ? "true" : "false"),
            ("input_sentence_size", String(maxSentences)),
            ("shuffle_input_sentence", "false"),
            ("max_sentence_length", "16384"),
            ("split_digits", "true"),
            // Identity normalization keeps text as written (newlines survive as byte
            // pieces), which also keeps the runtime's own tokenizer simple to match.
            ("normalization_rule_name", "identity"),
            ("remove_extra_whitespaces", "false"),
            ("num_threads", String(Parallel.threads)),
            ("minloglevel", "2"),
        ]
        let keys = options.map { strdup($0.0) }, values = options.map { strdup($0.1) }
        defer { (keys + values).forEach { free($0) } }
        let error = keys.map { UnsafePointer($0) }.withUnsafeBufferPointer { k in
            values.map { UnsafePointer($0) }.withUnsafeBufferPointer { v in
                spm_train(k.baseAddress, v.baseAddress, options.count)
            }
        }
        if let error {
            defer { spm_free_string(error) }
            try? FileManager.default.removeItem(atPath: temporaryPrefix + ".model")
            try? FileManager.default.removeItem(atPath: temporaryPrefix + ".vocab")
            throw BitNetError.file("tokenizer training failed: \(String(cString: error))")
        }
        for ext in [".model", ".vocab"] {
            guard rename(temporaryPrefix + ext, prefix + ext) == 0 else {
                throw BitNetError.file("\(prefix + ext): cannot write: \(String(cString: strerror(errno)))")
            }
        }
    }
}

/// Lines of text files, read in blocks (memory stays flat): counted, or sampled.
enum TextLines {
    static func forEachBlock(_ path: String, _ body: (Data) throws -> Void) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw BitNetError.file("\(path): file is not readable") }
        defer { try? handle.close() }
        while true {
            let block: Data
            do { block = try handle.read(upToCount: 1 << 22) ?? Data() } catch {
                throw BitNetError.file("\(path): cannot read: \(error.localizedDescription)")
            }
            if block.isEmpty { return }
            try body(block)
        }
    }

    static func count(_ paths: [String]) throws -> Int {
        var lines = 0
        for path in paths {
            var last: UInt8 = 0x0A
            try forEachBlock(path) { block in
                block.withUnsafeBytes { raw in for b in raw where b == 0x0A { lines += 1 } }
                last = block.last ?? last
            }
            if last != 0x0A { lines += 1 }  // a last line without its newline
        }
        return lines
    }

    /// Writes the lines whose hash of (seed, running line number) falls below `keep`.
    static func sample(_ paths: [String], keep: Double, seed: UInt32, to output: String) throws {
        guard FileManager.default.createFile(atPath: output, contents: nil), let out = FileHandle(forWritingAtPath: output) else {
            throw BitNetError.file("\(output): cannot create the tokenizer's sample file")
        }
        defer { try? out.close() }
        let threshold = Float(keep)
        var index = 0, pending = Data(), kept = Data()
        func take(_ line: Data) {
            if CounterRandom.uniform(key: seed, index: index) < threshold { kept.append(line) }
            index += 1
        }
        for path in paths {
            try forEachBlock(path) { block in
                pending.append(block)
                var start = pending.startIndex
                while let newline = pending[start...].firstIndex(of: 0x0A) {
                    take(pending[start...newline])
                    start = newline + 1
                }
                pending = Data(pending[start...])
                if kept.count >= 1 << 22 {
                    try out.write(contentsOf: kept)
                    kept.removeAll(keepingCapacity: true)
                }
            }
            if !pending.isEmpty {
                take(pending + Data([0x0A]))
                pending.removeAll()
            }
        }
        try out.write(contentsOf: kept)
    }
}
