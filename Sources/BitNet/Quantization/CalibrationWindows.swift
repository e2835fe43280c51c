// The calibration data of post-training quantization: windows of the context length
// drawn (seeded) from a data directory's training split, in batches of up to the model's
// batch (the last one holds the rest), the same windows every time they are run through
// the model.
import Foundation

struct CalibrationWindows {
    /// Per batch: its windows' tokens and targets, [windows * context] each.
    let tokens: [[Int32]]
    let targets: [[Int32]]
    let context: Int
    var count: Int { tokens.reduce(0) { $0 + $1.count } / context }

    init(_ dataset: TokenDataset, windows: Int, batch: Int, context: Int, seed: UInt64) {
        var rng = Xoshiro256(seed: seed)
        var tokens: [[Int32]] = [], targets: [[Int32]] = []
        for first in stride(from: 0, to: windows, by: batch) {
            let k = min(batch, windows - first)
            var x = [Int32](repeating: 0, count: k * context), y = x
            dataset.sampleBatch(rng: &rng, batch: k, context: context, tokens: &x, targets: &y)
            tokens.append(x)
            targets.append(y)
        }
        (self.tokens, self.targets, self.context) = (tokens, targets, context)
    }

    /// Runs every batch through `model` (keeping the activations of the forward pass)
    /// and calls `body` after each with the batch's number of windows.
    func forEachBatch(_ model: Transformer, _ body: (_ windows: Int) -> Void) {
        for (x, y) in zip(tokens, targets) {
            let windows = x.count / context
            model.forward(tokens: x, targets: y, batch: windows, length: context)
            body(windows)
        }
    }
}
