// The calibration data of post-training quantization: windows of the context length
// drawn (seeded) from a data directory's training split, in batches of the model's
// batch, the same windows every time they are run through the model.
import Foundation

struct CalibrationWindows {
    let tokens: [[Int32]]
    let targets: [[Int32]]
    let batch: Int
    let context: Int

    init(_ dataset: TokenDataset, windows: Int, batch: Int, context: Int, seed: UInt64) {
        var rng = Xoshiro256(seed: seed)
        var tokens: [[Int32]] = [], targets: [[Int32]] = []
        for _ in 0..<(windows + batch - 1) / batch {
            var x = [Int32](repeating: 0, count: batch * context), y = [Int32](repeating: 0, count: batch * context)
            dataset.sampleBatch(rng: &rng, batch: batch, context: context, tokens: &x, targets: &y)
            tokens.append(x)
            targets.append(y)
        }
        (self.tokens, self.targets, self.batch, self.context) = (tokens, targets, batch, context)
    }

    /// Runs every batch through `model` (keeping the activations of the forward pass)
    /// and calls `body` after each.
    func forEachBatch(_ model: Transformer, _ body: () -> Void) {
        for (x, y) in zip(tokens, targets) {
            model.forward(tokens: x, targets: y, batch: batch, length: context)
            body()
        }
    }
}
