// The runtime's tokenizer, rebuilt from the vocabulary stored in MODEL.bitnet: the
// encoding of SentencePiece's BPE model for the options the trainer uses (identity
// normalization, spaces escaped as U+2581, a dummy prefix, byte fallback). Tested
// against SentencePiece itself.
import Foundation

public final class Tokenizer: @unchecked Sendable {
    public let pieces: [[UInt8]]
    public let scores: [Float]
    public let eosID: Int32
    public let bosID: Int32
    /// Normal pieces by their bytes: the only ones BPE may produce by merging.
    private let mergeable: [[UInt8]: Int32]
    /// Id of the byte-fallback piece <0xXX> of each byte value.
    private let byteIDs: [Int32]
    /// What each id decodes to: a byte piece's byte, a text piece with U+2581 as a
    /// space, nothing for control and unknown pieces.
    private let decoded: [[UInt8]]
    private let unknownID: Int32
    private let addDummyPrefix: Bool

    static let space: [UInt8] = Array("\u{2581}".utf8)  // "▁"

    /// Piece types as stored: 0 normal, 1 unknown, 2 control, 4 unused, 5 byte.
    public init(metadata: [String: Any], vocabSize: Int, path: String) throws {
        func bad(_ what: String) -> RuntimeError { RuntimeError(description: "\(path): tokenizer \(what)") }
        guard let pieceStrings = metadata["pieces"] as? [String], let scoreValues = metadata["scores"] as? [Double],
              let types = metadata["types"] as? [Int] else { throw bad("pieces, scores or types are missing") }
        guard pieceStrings.count == vocabSize, scoreValues.count == vocabSize, types.count == vocabSize else {
            throw bad("has \(pieceStrings.count) pieces but the model's vocabulary is \(vocabSize)")
        }
        guard metadata["model_type"] as? String == "bpe", metadata["normalization"] as? String == "identity" else {
            throw bad("is not a BPE model with identity normalization")
        }
        pieces = pieceStrings.map { Array($0.utf8) }
        scores = scoreValues.map(Float.init)
        // Special ids: absent (-1), or inside the vocabulary.
        func id(_ key: String) throws -> Int32 {
            let value = (metadata[key] as? Int) ?? -1
            guard value == -1 || (value >= 0 && value < vocabSize) else {
                throw bad("\(key) \(value) is outside the vocabulary (0..<\(vocabSize))")
            }
            return Int32(value)
        }
        eosID = try id("eos_id")
        bosID = try id("bos_id")
        unknownID = try id("unk_id")
        guard unknownID >= 0 else { throw bad("has no unknown id") }
        addDummyPrefix = (metadata["add_dummy_prefix"] as? Bool) ?? true
        var mergeable: [[UInt8]: Int32] = [:]
        var byteIDs = [Int32](repeating: -1, count: 256)
        var decoded = [[UInt8]](repeating: [], count: vocabSize)
        for (i, piece) in pieces.enumerated() {
            switch types[i] {
            case 0, 4:
                if types[i] == 0 && mergeable[piece] == nil { mergeable[piece] = Int32(i) }
                decoded[i] = Self.unescapeSpaces(piece)
            case 5:
                // "<0xAB>"
                let text = pieceStrings[i]
                if text.count == 6, text.hasPrefix("<0x"), text.hasSuffix(">"), let b = UInt8(text.dropFirst(3).prefix(2), radix: 16) {
                    byteIDs[Int(b)] = Int32(i)
                    decoded[i] = [b]
                }
            default: break  // control and unknown pieces decode to nothing
            }
        }
        self.mergeable = mergeable
        self.byteIDs = byteIDs
        self.decoded = decoded
    }

    /// Text to ids, as SentencePiece encodes it.
    public func encode(_ text: String) -> [Int32] {
        // Normalize: escape spaces, add the dummy prefix.
        var normalized: [UInt8] = addDummyPrefix && !text.isEmpty ? Self.space : []
        for b in text.utf8 {
            if b == 0x20 { normalized += Self.space } else { normalized.append(b) }
        }
        guard !normalized.isEmpty else { return [] }
        // Initial symbols: one per Unicode scalar (UTF-8 sequence).
        var starts: [Int] = [], ends: [Int] = []
        var i = 0
        while i < normalized.count {
            let lead = normalized[i]
            let length = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
            starts.append(i)
            i = min(i + length, normalized.count)
            ends.append(i)
        }
        let n = starts.count
        var next = Array(1...n), previous = Array(-1..<(n - 1))
        var alive = [Bool](repeating: true, count: n)
        // Candidate merges, best score first and leftmost on ties; stale entries are
        // skipped when popped (SentencePiece's agenda).
        var heap = MergeHeap()
        func consider(_ left: Int) {
            let right = next[left]
            guard right < n, let id = mergeable[Array(normalized[starts[left]..<ends[right]])] else { return }
            heap.push(Candidate(score: scores[Int(id)], left: left, right: right, length: ends[right] - starts[left]))
        }
        for s in 0..<(n - 1) { consider(s) }
        while let c = heap.pop() {
            guard alive[c.left], alive[c.right], next[c.left] == c.right, ends[c.right] - starts[c.left] == c.length else { continue }
            // Merge right into left.
            ends[c.left] = ends[c.right]
            alive[c.right] = false
            next[c.left] = next[c.right]
            if next[c.right] < n { previous[next[c.right]] = c.left }
            if previous[c.left] >= 0 { consider(previous[c.left]) }
            consider(c.left)
        }
        var ids: [Int32] = []
        var s = 0
        while s < n {
            let bytes = Array(normalized[starts[s]..<ends[s]])
            if let id = mergeable[bytes] {
                ids.append(id)
            } else {
                for b in bytes { ids.append(byteIDs[Int(b)] >= 0 ? byteIDs[Int(b)] : unknownID) }
            }
            s = next[s]
        }
        return ids
    }

    /// The bytes a token stands for (byte pieces as their byte, U+2581 as a space).
    public func bytes(of id: Int32) -> [UInt8] {
        guard id >= 0 && Int(id) < decoded.count else { return [] }
        return decoded[Int(id)]
    }

    static func unescapeSpaces(_ piece: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var i = 0
        while i < piece.count {
            if i + 3 <= piece.count && Array(piece[i..<i + 3]) == space {
                out.append(0x20)
                i += 3
            } else {
                out.append(piece[i])
                i += 1
            }
        }
        return out
    }

    /// Ids to text, as SentencePiece decodes them (the dummy prefix's space removed).
    public func decode(_ ids: [Int32]) -> String {
        var bytes = ids.flatMap { self.bytes(of: $0) }
        if addDummyPrefix && bytes.first == 0x20 { bytes.removeFirst() }
        return String(decoding: bytes, as: UTF8.self)
    }
}

struct Candidate {
    var score: Float
    var left: Int
    var right: Int
    var length: Int

    /// Higher score first; on equal scores, the leftmost pair.
    func before(_ other: Candidate) -> Bool {
        score != other.score ? score > other.score : left < other.left
    }
}

/// A binary heap of merge candidates.
struct MergeHeap {
    private var items: [Candidate] = []

    mutating func push(_ c: Candidate) {
        items.append(c)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard items[i].before(items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> Candidate? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var best = i
                if l < items.count && items[l].before(items[best]) { best = l }
                if r < items.count && items[r].before(items[best]) { best = r }
                if best == i { break }
                items.swapAt(i, best)
                i = best
            }
        }
        return top
    }
}
