// The training forward pass as the shared generation loop's model, so a checkpoint's
// text can be seen before export. It has no KV cache: each token recomputes the window.
import BitNetSampling

public struct TransformerPredictor: TokenPredictor {
    public let model: Transformer
    private var tokens: [Int32] = []

    /// `model` must have been built with a batch of at least 1.
    public init(model: Transformer) { self.model = model }

    public var context: Int { model.config.context }

    public mutating func logits(afterPrompt prompt: [Int32]) -> [Float] {
        tokens = prompt
        return lastLogits()
    }

    public mutating func logits(after token: Int32, at position: Int) -> [Float] {
        tokens.append(token)
        return lastLogits()
    }

    private func lastLogits() -> [Float] {
        model.forward(tokens: tokens, targets: nil, batch: 1, length: tokens.count)
        return Array(model.logits(row: tokens.count - 1))
    }
}
