// Streaming generated text: decode the whole sequence at each token and hand out the
// bytes that are new, once they are whole UTF-8 (a piece can end inside a character,
// and a byte-fallback character spans several pieces).

public struct TextStreamer {
    private let decode: ([Int32]) -> String?
    private let promptIDs: [Int32]
    private var generated: [Int32] = []
    private var printed: Int

    /// `promptIDs` is what was printed already (as its decoding); empty when nothing was.
    public init(promptIDs: [Int32], decode: @escaping ([Int32]) -> String?) {
        self.decode = decode
        self.promptIDs = promptIDs
        printed = decode(promptIDs)?.utf8.count ?? 0
    }

    public var tokenCount: Int { generated.count }

    /// The bytes to print after `token`, possibly none.
    public mutating func append(_ token: Int32) -> [UInt8] {
        generated.append(token)
        guard let text = decode(promptIDs + generated), !text.hasSuffix("\u{FFFD}") else { return [] }
        let bytes = Array(text.utf8)
        guard bytes.count > printed else { return [] }
        defer { printed = bytes.count }
        return Array(bytes[printed...])
    }
}
