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
        public var documents: Int = 0
        public var validationDocuments: Int = 0
        /// Files found in directories but left out for holding no text.
        public var skippedDocuments: Int = 0
        public var bytes: Int = 0
    }

    /// Where `prepare` is: for a progress line with a rate and an ETA.
    public struct Progress: Sendable {
        public var bytesDone: Int, totalBytes: Int, tokens: Int, documentsDone: Int, documents: Int
    }

    /// With at least this many documents (files), validation is a set of whole documents;
    /// with fewer, the last fraction of the token stream (a single book, say).
    public static let documentSplitMinimum = 20

    /// Encodes the documents `inputs` name (files, or directories filtered by `glob`; each
    /// document ends with end-of-sequence) and writes the data directory. Streams: text is
    /// read `blockBytes` at a time (cut at a blank line, else a line end), encoded on all
    /// cores and appended to the token files, so memory stays flat however large the
    /// corpus. Validation: whole documents chosen by a hash of their names (about
    /// `validationFraction` of them) when there are at least `documentSplitMinimum`, else
    /// the last `validationFraction` of the token stream.
    public static func prepare(inputs: [String], glob: String? = nil, maxDocumentBytes: Int? = nil, tokenizerPath: String,
                               output: String, validationFraction: Double = 0.05, blockBytes: Int = 8 << 20,
                               progress: (Progress) -> Void = { _ in }) throws -> Summary {
        guard validationFraction > 0 && validationFraction < 1 else {
            throw BitNetError.invalid("the validation fraction must be in (0, 1), got \(validationFraction)")
        }
        let documents = try CorpusFiles.list(inputs, glob: glob, maxBytes: maxDocumentBytes)
        let named = Set(inputs)
        let tokenizer = try Tokenizer(path: tokenizerPath)
        let directory = URL(fileURLWithPath: output)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // meta.json goes last: a directory without it is not a finished data directory.
        try? FileManager.default.removeItem(at: directory.appendingPathComponent("meta.json"))
        // Token files left half-written by an earlier prepare that was killed.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: output)) ?? []
        where name.hasPrefix(".train.bin.tmp-") || name.hasPrefix(".val.bin.tmp-") {
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
        let wide = tokenizer.vocabSize > 65536
        let train = try TokenStreamWriter(url: directory.appendingPathComponent("train.bin"), wide: wide)
        let val = try TokenStreamWriter(url: directory.appendingPathComponent("val.bin"), wide: wide)
        defer {
            train.discard()
            val.discard()
        }
        let byDocument = documents.count >= documentSplitMinimum
        let validation = byDocument ? validationSet(documents, fraction: validationFraction) : []
        var summary = Summary(trainTokens: 0, valTokens: 0, vocabSize: tokenizer.vocabSize, documents: documents.count)
        let totalBytes = documents.reduce(0) { $0 + $1.bytes }
        func report(_ bytes: Int, _ index: Int) {
            progress(Progress(bytesDone: summary.bytes + bytes, totalBytes: totalBytes,
                              tokens: train.count + val.count, documentsDone: index, documents: documents.count))
        }
        // One document's tokens are in its writer from `before` on: end it, or drop it if
        // it held no text.
        func finish(_ index: Int, _ document: CorpusDocument, before: Int, hasText: Bool) throws {
            let writer = validation.contains(index) ? val : train
            summary.bytes += document.bytes
            if !hasText {
                if named.contains(document.path) {
                    throw BitNetError.file("\(document.path): " + (document.bytes == 0 ? "file is empty" : "file holds only whitespace"))
                }
                writer.dropTail(from: before)
                summary.skippedDocuments += 1
                return
            }
            if tokenizer.eosID >= 0 { try writer.append([tokenizer.eosID]) }
            if validation.contains(index) { summary.validationDocuments += 1 }
        }
        // Documents smaller than a block are encoded a group at a time (about a block of
        // text), all their pieces on all cores at once: most files of a source tree are
        // one piece each, which alone would keep one core busy.
        var group: [Int] = [], groupBytes = 0
        func encodeGroup() throws {
            guard !group.isEmpty else { return }
            let texts = try group.map { try readWhole(documents[$0]) }
            var owner: [Int] = [], pieces: [Substring] = []
            for (g, text) in texts.enumerated() {
                for piece in chunks(text) {
                    owner.append(g)
                    pieces.append(piece)
                }
            }
            let encoded = try encodePieces(pieces, tokenizer: tokenizer)
            var next = 0
            for (g, index) in group.enumerated() {
                let writer = validation.contains(index) ? val : train
                let before = writer.count
                while next < pieces.count && owner[next] == g {
                    try writer.append(encoded[next])
                    next += 1
                }
                try finish(index, documents[index], before: before, hasText: texts[g].contains { !$0.isWhitespace })
                report(0, index)
            }
            group = []
            groupBytes = 0
        }
        for (index, document) in documents.enumerated() {
            if document.bytes < blockBytes {
                group.append(index)
                groupBytes += document.bytes
                if groupBytes >= blockBytes { try encodeGroup() }
                continue
            }
            try encodeGroup()
            let writer = validation.contains(index) ? val : train
            let before = writer.count
            let hasText = try encode(document, tokenizer: tokenizer, blockBytes: blockBytes, into: writer) { bytes in
                report(bytes, index)
            }
            try finish(index, document, before: before, hasText: hasText)
        }
        try encodeGroup()
        if !byDocument { try train.moveTail(fraction: validationFraction, to: val) }
        summary.trainTokens = train.count
        summary.valTokens = val.count
        guard summary.trainTokens > 1, summary.valTokens > 0 else {
            throw BitNetError.invalid("corpus too small: \(summary.trainTokens + summary.valTokens) tokens")
        }
        try train.finish()
        try val.finish()
        let meta = DatasetMeta(vocabSize: tokenizer.vocabSize, dtype: wide ? "uint32" : "uint16",
                               trainTokens: summary.trainTokens, valTokens: summary.valTokens, tokenizer: "tokenizer.model")
        let tokenizerData = try Data(contentsOf: URL(fileURLWithPath: tokenizerPath))
        try AtomicFile.write(tokenizerData, to: directory.appendingPathComponent("tokenizer.model"))
        try AtomicFile.writeJSON(meta, to: directory.appendingPathComponent("meta.json"))
        return summary
    }

    /// Indices of the validation documents: those CorpusFiles.isValidation picks, and at
    /// least one document on each side.
    static func validationSet(_ documents: [CorpusDocument], fraction: Double) -> Set<Int> {
        var chosen = Set(documents.indices.filter { CorpusFiles.isValidation(documents[$0], fraction: fraction) })
        let byHash = documents.indices.sorted { CorpusFiles.hash(documents[$0].name) < CorpusFiles.hash(documents[$1].name) }
        if chosen.isEmpty, let first = byHash.first { chosen.insert(first) }
        if chosen.count == documents.count, let last = byHash.last { chosen.remove(last) }
        return chosen
    }

    /// Reads one document block by block, encodes each block's pieces on all cores, and
    /// appends the ids in order. Returns whether it held any non-whitespace text.
    static func encode(_ document: CorpusDocument, tokenizer: Tokenizer, blockBytes: Int, into writer: TokenStreamWriter,
                       progress: (Int) -> Void) throws -> Bool {
        let handle: FileHandle
        do {
            handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: document.path))
        } catch {
            throw BitNetError.file("\(document.path): file does not exist or is not readable")
        }
        defer { try? handle.close() }
        var carry = Data(), offset = 0, hasText = false
        while true {
            let chunk: Data
            do {
                chunk = try handle.read(upToCount: blockBytes) ?? Data()
            } catch {
                throw BitNetError.file("\(document.path): cannot read: \(error.localizedDescription)")
            }
            // A regular file returns whole blocks until its end: a short one is the last.
            let atEnd = chunk.count < blockBytes
            var block = carry
            block.append(chunk)
            carry = Data()
            if !atEnd {
                let cut = blockEnd(block)
                carry = block.subdata(in: cut..<block.count)
                block = block.subdata(in: 0..<cut)
            }
            if !block.isEmpty {
                guard let text = String(data: block, encoding: .utf8) else {
                    throw BitNetError.file("\(document.path): not valid UTF-8 text (in bytes \(offset)..<\(offset + block.count))")
                }
                if !hasText { hasText = text.contains { !$0.isWhitespace } }
                let encoded = try encodePieces(chunks(text), tokenizer: tokenizer)
                for e in encoded { try writer.append(e) }
                offset += block.count
                progress(offset)
            }
            if atEnd { return hasText }
        }
    }

    /// A document smaller than a block, read whole (the same errors as `encode`).
    static func readWhole(_ document: CorpusDocument) throws -> String {
        guard let data = FileManager.default.contents(atPath: document.path) else {
            throw BitNetError.file("\(document.path): file does not exist or is not readable")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw BitNetError.file("\(document.path): not valid UTF-8 text (in bytes 0..<\(data.count))")
        }
        return text
    }

    /// Each piece's ids, the pieces spread over all cores.
    static func encodePieces(_ pieces: [Substring], tokenizer: Tokenizer) throws -> [[Int32]] {
        var encoded = [[Int32]](repeating: [], count: pieces.count)
        var failure: Error?
        let lock = NSLock()
        encoded.withUnsafeMutableBufferPointer { out in
            guard let base = out.baseAddress else { return }
            Parallel.forEach(pieces.count) { i in
                do {
                    (base + i).pointee = try tokenizer.encode(String(pieces[i]))
                } catch {
                    lock.withLock { failure = error }
                }
            }
        }
        if let failure { throw failure }
        return encoded
    }

    /// Where a block read from the middle of a file ends: after its last blank line, else
    /// its last line end, else its last whole UTF-8 character.
    static func blockEnd(_ block: Data) -> Int {
        block.withUnsafeBytes { raw -> Int in
            let bytes = raw.bindMemory(to: UInt8.self)
            var lastNewline = -1
            var i = bytes.count - 1
            while i >= 0 {
                if bytes[i] == 0x0A {
                    if lastNewline < 0 { lastNewline = i }
                    if i > 0 && bytes[i - 1] == 0x0A { return i + 1 }
                }
                i -= 1
                // A blank line far back is not worth a tiny block: settle for a line end.
                if lastNewline >= 0 && lastNewline - i > (1 << 16) { break }
            }
            if lastNewline >= 0 { return lastNewline + 1 }
            var end = bytes.count
            while end > 0 && bytes[end - 1] & 0xC0 == 0x80 { end -= 1 }  // continuation bytes
            return max(end - 1, 0) > 0 ? end - 1 : bytes.count
        }
    }
}

/// Token ids appended to a temporary file beside their target, buffered; `finish`
/// renames it into place, `discard` removes it.
final class TokenStreamWriter {
    let url: URL, temporary: URL
    let wide: Bool
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private(set) var count = 0
    private var finished = false

    init(url: URL, wide: Bool) throws {
        (self.url, self.wide) = (url, wide)
        temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)")
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil),
              let handle = try? FileHandle(forUpdating: temporary) else {
            throw BitNetError.file("\(url.path): cannot create a file in \(url.deletingLastPathComponent().path)")
        }
        self.handle = handle
        buffer.reserveCapacity(1 << 22)
    }

    var tokenBytes: Int { wide ? 4 : 2 }

    func append(_ ids: [Int32]) throws {
        for id in ids {
            if wide {
                withUnsafeBytes(of: UInt32(truncatingIfNeeded: id).littleEndian) { buffer.append(contentsOf: $0) }
            } else {
                withUnsafeBytes(of: UInt16(truncatingIfNeeded: id).littleEndian) { buffer.append(contentsOf: $0) }
            }
        }
        count += ids.count
        if buffer.count >= 1 << 22 { try flush() }
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        do {
            try handle.write(contentsOf: buffer)
        } catch {
            throw BitNetError.file("\(url.path): cannot write: \(error.localizedDescription)")
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Forgets the tokens from `start` on (a document that turned out to hold no text),
    /// as far as they are still in the buffer (megabytes of whitespace would not be).
    func dropTail(from start: Int) {
        let keep = start - (count - buffer.count / tokenBytes)
        if keep >= 0 {
            buffer.removeLast(buffer.count - keep * tokenBytes)
            count = start
        }
    }

    /// Moves the last `fraction` of the tokens (at least one) to `other`, copying in
    /// bounded pieces, then truncates this file.
    func moveTail(fraction: Double, to other: TokenStreamWriter) throws {
        try flush()
        let moved = max(1, Int(Double(count) * fraction)), start = count - moved
        guard start > 0 else { return }
        var position = start * tokenBytes
        let end = count * tokenBytes
        while position < end {
            let size = min(1 << 22, end - position)
            try handle.seek(toOffset: UInt64(position))
            guard let data = try handle.read(upToCount: size), data.count == size else {
                throw BitNetError.file("\(temporary.path): could not read back the tokens just written")
            }
            other.buffer.append(contentsOf: data)
            other.count += size / tokenBytes
            try other.flush()
            position += size
        }
        try handle.truncate(atOffset: UInt64(start * tokenBytes))
        try handle.seekToEnd()
        count = start
    }

    func finish() throws {
        try flush()
        try handle.synchronize()
        try handle.close()
        guard rename(temporary.path, url.path) == 0 else {
            throw BitNetError.file("\(url.path): cannot rename the finished file into place: \(String(cString: strerror(errno)))")
        }
        finished = true
    }

    func discard() {
        guard !finished else { return }
        try? handle.close()
        try? FileManager.default.removeItem(at: temporary)
    }
}
