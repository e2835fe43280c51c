// The runtime's tokenizer against SentencePiece itself, on the vocabulary stored in
// an exported model file.
import Foundation
import Testing
@testable import BitNet
import BitNetRuntime

@Suite struct RuntimeTokenizerTests {
    static let texts = [
        "the king doth love the crown.",
        "  two leading spaces, and   three inside\nand a newline\n\nand a blank line",
        "Unknown words: zephyr quixotic jabberwocky 12345 67.8 -- (brackets) [and] {braces}!?",
        "Unicode: café naïve — “quotes” ‘single’ 日本語 😀 and a ZWJ family 👨‍👩‍👧",
        "",
        " ",
        "sweet lady, my lord hath slain the duke; a fool shall see thy heart.",
        // Runs of one letter: equal-score merges, where the leftmost must win.
        "shalll swweeeet ssss ttttt llllll eeeee oooooo hhhhh thththth ......",
    ]

    static func tokenizers() throws -> (BitNet.Tokenizer, BitNetRuntime.Tokenizer) {
        let reference = try BitNet.Tokenizer(path: Fixtures.shared.tokenizer)
        let metadata = PackedModel.tokenizerMetadata(reference)
        // Through JSON, as the runtime reads it from a model file.
        let data = try JSONSerialization.data(withJSONObject: metadata)
        let decoded = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let runtime = try BitNetRuntime.Tokenizer(metadata: decoded, vocabSize: reference.vocabSize, path: "test")
        return (reference, runtime)
    }

    @Test func encodingEqualsSentencePiece() throws {
        let (reference, runtime) = try Self.tokenizers()
        var corpusLines = try String(contentsOfFile: Fixtures.shared.corpus, encoding: .utf8).split(separator: "\n").prefix(200).map(String.init)
        corpusLines.append(try String(contentsOfFile: Fixtures.shared.corpus, encoding: .utf8).prefix(5000).description)
        for text in Self.texts + corpusLines {
            let expected = try reference.encode(text)
            let actual = runtime.encode(text)
            #expect(actual == expected, "text: \(text.debugDescription)")
        }
    }

    @Test func decodingEqualsSentencePiece() throws {
        let (reference, runtime) = try Self.tokenizers()
        for text in Self.texts {
            let ids = try reference.encode(text)
            #expect(runtime.decode(ids) == (try reference.decode(ids)), "text: \(text.debugDescription)")
        }
    }
}
