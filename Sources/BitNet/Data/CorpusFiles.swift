// Which text files a corpus is: `prepare`'s inputs may be files or directories (walked
// recursively, hidden entries skipped), filtered by a glob on the file name. Each file is
// one document: the unit of the train/validation split.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct CorpusDocument: Sendable, Equatable {
    public let path: String
    /// The path relative to the input that named it (a file's own name when named
    /// directly): what the split hashes, so moving a corpus does not change its split.
    public let name: String
    public let bytes: Int
}

public enum CorpusFiles {
    /// The documents `inputs` name, in order: each input's files sorted by path, without
    /// those of more than `maxBytes` found in directories (generated tables rather than
    /// text, in a source tree). Throws one line for a missing input, an unreadable file,
    /// or an input that yields nothing.
    public static func list(_ inputs: [String], glob: String? = nil, maxBytes: Int? = nil) throws -> [CorpusDocument] {
        guard !inputs.isEmpty else { throw BitNetError.invalid("give at least one --input file or directory") }
        var documents: [CorpusDocument] = []
        for input in inputs {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory) else {
                throw BitNetError.file("\(input): file does not exist")
            }
            var found: [CorpusDocument] = []
            if isDirectory.boolValue {
                guard let walker = FileManager.default.enumerator(atPath: input) else {
                    throw BitNetError.file("\(input): cannot read the directory")
                }
                for case let relative as String in walker {
                    let components = relative.split(separator: "/")
                    if components.contains(where: { $0.hasPrefix(".") }) { continue }
                    let path = (input as NSString).appendingPathComponent(relative)
                    var isSubdirectory: ObjCBool = false
                    guard FileManager.default.fileExists(atPath: path, isDirectory: &isSubdirectory), !isSubdirectory.boolValue,
                          matches(String(components.last ?? ""), glob) else { continue }
                    let candidate = try document(path: path, name: relative)
                    if let maxBytes, candidate.bytes > maxBytes { continue }
                    found.append(candidate)
                }
                found.sort { $0.path < $1.path }
                if found.isEmpty {
                    throw BitNetError.file("\(input): no files" + (glob.map { " matching '\($0)'" } ?? "")
                                           + (maxBytes.map { " of at most \($0) bytes" } ?? "") + " in this directory")
                }
            } else {
                guard matches((input as NSString).lastPathComponent, glob) else {
                    throw BitNetError.file("\(input): does not match --glob '\(glob ?? "")'")
                }
                found.append(try document(path: input, name: (input as NSString).lastPathComponent))
            }
            documents += found
        }
        return documents
    }

    static func matches(_ name: String, _ glob: String?) -> Bool {
        guard let glob else { return true }
        return fnmatch(glob, name, 0) == 0
    }

    static func document(path: String, name: String) throws -> CorpusDocument {
        guard FileManager.default.isReadableFile(atPath: path) else { throw BitNetError.file("\(path): file is not readable") }
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        let bytes = (attributes?[.size] as? NSNumber)?.intValue ?? 0
        return CorpusDocument(path: path, name: name, bytes: bytes)
    }

    /// Whether a document goes to validation: a 64-bit FNV-1a hash of its name below
    /// `fraction` of the range. Deterministic, and independent of the other documents.
    public static func isValidation(_ document: CorpusDocument, fraction: Double) -> Bool {
        Double(hash(document.name)) / 18_446_744_073_709_551_616.0 < fraction
    }

    static func hash(_ name: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in name.utf8 {
            h ^= UInt64(byte)
            h &*= 0x100_0000_01B3
        }
        return h
    }
}
