// `prepare` at scale (issue 14): files and directories with a glob, each file a document
// ending in end-of-sequence; validation by whole documents, chosen by name; streaming
// with memory that does not grow with the input; one clear line for bad inputs.
import Foundation
import Testing
@testable import BitNet

@Suite struct CorpusTests {
    static func tokens(_ dir: String, _ split: String) throws -> [UInt16] {
        let data = try Data(contentsOf: URL(fileURLWithPath: dir).appendingPathComponent(split + ".bin"))
        return data.withUnsafeBytes { raw in (0..<data.count / 2).map { UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) } }
    }

    /// A directory with text in several files (one in a subdirectory), a file the glob
    /// leaves out, and a hidden file.
    static func documents(count: Int, in dir: URL) throws -> [URL] {
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("sub"), withIntermediateDirectories: true)
        var files: [URL] = []
        for k in 0..<count {
            let url = dir.appendingPathComponent(k == 1 ? "sub/doc\(k).txt" : "doc\(k).txt")
            try Fixtures.corpusText(lines: 20 + k, seed: UInt64(100 + k)).write(to: url, atomically: true, encoding: .utf8)
            files.append(url)
        }
        try "not text for the corpus".write(to: dir.appendingPathComponent("notes.md"), atomically: true, encoding: .utf8)
        try "hidden".write(to: dir.appendingPathComponent(".hidden.txt"), atomically: true, encoding: .utf8)
        return files.sorted { $0.path < $1.path }
    }

    /// Every matching file's tokens, each followed by end-of-sequence, in path order.
    @Test func directoriesAndGlobsGiveEveryMatchingDocumentInOrder() throws {
        let dir = Fixtures.temporaryDirectory("corpus-dir"), out = Fixtures.temporaryDirectory("corpus-out").path
        let files = try Self.documents(count: 5, in: dir)
        let tokenizer = try Tokenizer(path: Fixtures.shared.tokenizer)
        let summary = try Corpus.prepare(inputs: [dir.path], glob: "*.txt", tokenizerPath: Fixtures.shared.tokenizer,
                                         output: out, validationFraction: 0.2)
        #expect(summary.documents == 5, "notes.md and .hidden.txt are not documents")
        var expected: [UInt16] = []
        for file in files {
            expected += try tokenizer.encode(String(contentsOf: file, encoding: .utf8)).map { UInt16($0) }
            expected.append(UInt16(tokenizer.eosID))
        }
        // Five documents: the split is the stream's tail.
        #expect(try Self.tokens(out, "train") + Self.tokens(out, "val") == expected)
    }

    /// --max-file-mb leaves out the larger files found in a directory.
    @Test func largeFilesInDirectoriesCanBeLeftOut() throws {
        let dir = Fixtures.temporaryDirectory("corpus-sizes")
        let files = try Self.documents(count: 4, in: dir)
        let sizes = try files.map { try FileManager.default.attributesOfItem(atPath: $0.path)[.size] as? Int ?? 0 }
        let limit = sizes.sorted()[1]  // keeps the two smallest
        let kept = try CorpusFiles.list([dir.path], glob: "*.txt", maxBytes: limit)
        #expect(kept.count == 2 && kept.allSatisfy { $0.bytes <= limit }, "\(kept.map(\.name)) with sizes \(sizes)")
    }

    /// With many documents, validation is a set of whole documents picked by name: the
    /// same for the same corpus, whatever the order the files are given in.
    @Test func manyDocumentsSplitByWholeDocumentsDeterministically() throws {
        let dir = Fixtures.temporaryDirectory("corpus-many")
        let files = try Self.documents(count: 40, in: dir).filter { !$0.path.contains("/sub/") }
        let tokenizer = try Tokenizer(path: Fixtures.shared.tokenizer)
        let a = Fixtures.temporaryDirectory("corpus-a").path, b = Fixtures.temporaryDirectory("corpus-b").path
        let first = try Corpus.prepare(inputs: files.map(\.path), tokenizerPath: Fixtures.shared.tokenizer, output: a,
                                       validationFraction: 0.2)
        let second = try Corpus.prepare(inputs: files.reversed().map(\.path), tokenizerPath: Fixtures.shared.tokenizer,
                                        output: b, validationFraction: 0.2)
        var valTokens = 0, valDocuments = 0
        for file in files where CorpusFiles.isValidation(try CorpusFiles.document(path: file.path, name: file.lastPathComponent), fraction: 0.2) {
            valTokens += try tokenizer.encode(String(contentsOf: file, encoding: .utf8)).count + 1
            valDocuments += 1
        }
        #expect(valDocuments > 2 && valDocuments < 20, "\(valDocuments) of 39 documents held out at 0.2")
        #expect(first.validationDocuments == valDocuments && first.valTokens == valTokens)
        #expect(second.valTokens == first.valTokens && second.trainTokens == first.trainTokens)
        // The same files in the same order give the same bytes.
        let again = Fixtures.temporaryDirectory("corpus-again").path
        _ = try Corpus.prepare(inputs: files.map(\.path), tokenizerPath: Fixtures.shared.tokenizer, output: again, validationFraction: 0.2)
        #expect(try Self.tokens(again, "val") == Self.tokens(a, "val") && Self.tokens(again, "train") == Self.tokens(a, "train"))
    }

    /// Evaluation's windows: every whole window in order when all are asked for; a few
    /// spread evenly over the validation split (from its start to its last part), never
    /// overlapping, when fewer are.
    @Test func validationWindowsSpreadOverTheSplit() throws {
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        let context = 16, val = dataset.file(.val), whole = (val.count - 1) / context
        #expect(whole >= 40, "the fixture's validation split: \(val.count) tokens")
        var tokens = [Int32](repeating: 0, count: context), targets = tokens, expected = [Int32](repeating: 0, count: context + 1)
        // Where each window came from: the first whole window after the previous one's
        // with these tokens (-1: none).
        func starts(_ n: Int) -> [Int] {
            var next = 0
            return (0..<n).map { i in
                dataset.validationWindow(i, of: n, context: context, tokens: &tokens, targets: &targets)
                guard let w = (next..<whole).first(where: { w in
                    val.read(from: w * context, count: context + 1, into: &expected)
                    return Array(expected.prefix(context)) == tokens && Array(expected.suffix(context)) == targets
                }) else { return -1 }
                next = w + 1
                return w * context
            }
        }
        #expect(starts(whole) == (0..<whole).map { $0 * context })
        let few = starts(8)
        #expect(few.first == 0 && !few.contains(-1), "\(few)")
        #expect(few.last! >= (whole - whole / 8 - 1) * context, "the last window should be in the split's last eighth: \(few)")
    }

    /// Documents smaller than a block are encoded a group at a time on all cores, larger
    /// ones block by block, in between: each document's tokens are the ones it gets when
    /// prepared alone, in order, split by whole documents; a whitespace-only file is left out.
    @Test func groupedDocumentsEqualDocumentsPreparedAlone() throws {
        let dir = Fixtures.temporaryDirectory("corpus-groups")
        let blockBytes = 4096
        var files: [URL] = []
        for k in 0..<30 {
            let url = dir.appendingPathComponent(String(format: "doc%02d.txt", k))
            let text = k == 7 ? "  \n\n \n" : Fixtures.corpusText(lines: k % 6 == 0 ? 200 : 2 + k, seed: UInt64(200 + k))
            try text.write(to: url, atomically: true, encoding: .utf8)
            files.append(url)
        }
        let sizes = try files.map { try FileManager.default.attributesOfItem(atPath: $0.path)[.size] as? Int ?? 0 }
        #expect(sizes.filter { $0 >= blockBytes }.count >= 3 && sizes.filter { $0 < blockBytes }.count >= 20, "\(sizes)")
        let out = Fixtures.temporaryDirectory("corpus-groups-out").path
        let summary = try Corpus.prepare(inputs: [dir.path], glob: "*.txt", tokenizerPath: Fixtures.shared.tokenizer,
                                         output: out, validationFraction: 0.2, blockBytes: blockBytes)
        #expect(summary.skippedDocuments == 1 && summary.documents == 30)
        var train: [UInt16] = [], val: [UInt16] = []
        for (k, file) in files.enumerated() where k != 7 {
            let alone = Fixtures.temporaryDirectory("corpus-alone-\(k)").path
            _ = try Corpus.prepare(inputs: [file.path], tokenizerPath: Fixtures.shared.tokenizer, output: alone,
                                   validationFraction: 0.2, blockBytes: blockBytes)
            let tokens = try Self.tokens(alone, "train") + Self.tokens(alone, "val")
            let document = try CorpusFiles.document(path: file.path, name: file.lastPathComponent)
            if CorpusFiles.isValidation(document, fraction: 0.2) { val += tokens } else { train += tokens }
        }
        #expect(!val.isEmpty && summary.validationDocuments > 0)
        #expect(try Self.tokens(out, "train") == train)
        #expect(try Self.tokens(out, "val") == val)
    }

    /// Reading in blocks far smaller than the file changes only where pieces are cut, and
    /// the process's peak memory does not grow with the input: 4x the text costs under
    /// 12 MB more (the old whole-file prepare held the text and every token at once).
    @Test func streamingKeepsMemoryFlat() throws {
        let dir = Fixtures.temporaryDirectory("corpus-big")
        let unit = Fixtures.corpusText(lines: 40_000, seed: 9)  // about 1.5 MB
        func write(_ name: String, copies: Int) throws -> String {
            let url = dir.appendingPathComponent(name)
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)
            let handle = try FileHandle(forWritingTo: url)
            for _ in 0..<copies { try handle.write(contentsOf: Data(unit.utf8)) }
            try handle.close()
            return url.path
        }
        let small = try write("small.txt", copies: 5), large = try write("large.txt", copies: 20)
        func peak(_ input: String) throws -> Double {
            let result = try Fixtures.run(["prepare", "--input", input, "--tokenizer", Fixtures.shared.tokenizer,
                                           "--out", dir.appendingPathComponent("out-" + (input as NSString).lastPathComponent).path,
                                           "--block-mb", "1"])
            #expect(result.status == 0, "\(result.stderr)")
            let line = result.stderr.split(separator: "\n").last { $0.contains("peak memory") } ?? ""
            return Double(line.split(separator: " ").dropLast().last ?? "") ?? .infinity
        }
        let smallPeak = try peak(small), largePeak = try peak(large)
        #expect(largePeak - smallPeak < 12, "peak memory \(smallPeak) MB for 7 MB of text, \(largePeak) MB for 30 MB")
    }

    /// On more lines than its sample, the tokenizer trains on a sample drawn with the
    /// seed: the same seed gives the same model, another seed another.
    @Test func tokenizerSampleIsDeterministicForASeed() throws {
        let dir = Fixtures.temporaryDirectory("tokenizer-sample")
        func train(seed: UInt32, _ name: String) throws -> Data {
            let path = dir.appendingPathComponent(name + ".model").path
            try Tokenizer.train(inputs: [Fixtures.shared.corpus], vocabSize: 300, kind: .bpe, output: path, maxSentences: 400, seed: seed)
            // The pieces and scores (the .model also records its own file name).
            return try Data(contentsOf: URL(fileURLWithPath: dir.appendingPathComponent(name + ".vocab").path))
        }
        let a = try train(seed: 7, "a"), b = try train(seed: 7, "b"), c = try train(seed: 8, "c")
        #expect(a == b)
        #expect(a != c, "a different seed should draw a different sample of 400 of the corpus's 3300 lines")
    }

    @Test func badInputsGetOneClearLine() throws {
        let dir = Fixtures.temporaryDirectory("corpus-bad"), out = dir.appendingPathComponent("out").path
        let empty = dir.appendingPathComponent("empty-dir")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        _ = try Self.documents(count: 2, in: dir.appendingPathComponent("texts"))
        func message(_ inputs: [String], glob: String? = nil) -> String {
            do {
                _ = try Corpus.prepare(inputs: inputs, glob: glob, tokenizerPath: Fixtures.shared.tokenizer, output: out)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        #expect(message([empty.path]).hasSuffix("empty-dir: no files in this directory"))
        #expect(message([dir.appendingPathComponent("texts").path], glob: "*.xyz").contains("no files matching '*.xyz'"))
        #expect(message([dir.appendingPathComponent("missing").path]).contains("missing: file does not exist"))
        #expect(message([Fixtures.shared.corpus], glob: "*.md").contains("corpus.txt: does not match --glob '*.md'"))
        #expect(!FileManager.default.fileExists(atPath: out + "/meta.json"), "nothing written")
    }
}
