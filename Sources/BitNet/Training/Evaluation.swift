// Validation loss and perplexity of a model on fixed, non-overlapping windows.
import Foundation

public enum Evaluation {
    /// Mean cross-entropy over `windows` validation windows of `dataset`, spread over its
    /// validation split (TokenDataset.validationWindow).
    public static func loss(model: Transformer, dataset: TokenDataset, windows limit: Int, batch: Int) -> Float {
        // One process: no collective that could fail.
        (try? loss(model: model, dataset: dataset, windows: limit, batch: batch, ranks: .single)) ?? .nan
    }

    /// The same over several ranks: each evaluates its share of the windows, and the sums
    /// of the losses are reduced.
    public static func loss(model: Transformer, dataset: TokenDataset, windows limit: Int, batch: Int,
                            ranks: Communicator) throws -> Float {
        let context = model.config.context
        let windows = dataset.validationWindows(context: context, limit: limit)
        guard windows > 0 else { return .nan }
        let share = windows * ranks.rank / ranks.size..<windows * (ranks.rank + 1) / ranks.size
        let total = lossSum(model: model, windows: share, batch: batch) { index, tokens, targets in
            dataset.validationWindow(index, of: windows, context: context, tokens: tokens, targets: targets)
        }
        return Float(try ranks.sum(total) / Double(windows))
    }

    /// Mean cross-entropy over all whole windows of a token sequence.
    public static func loss(model: Transformer, tokens sequence: [Int32], batch: Int) -> Float {
        let context = model.config.context
        let windows = (sequence.count - 1) / context
        return loss(model: model, windows: windows, batch: batch) { index, tokens, targets in
            for i in 0..<context {
                tokens[i] = sequence[index * context + i]
                targets[i] = sequence[index * context + i + 1]
            }
        }
    }

    static func loss(model: Transformer, windows: Int, batch: Int,
                     fill: (Int, UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Void) -> Float {
        guard windows > 0 else { return .nan }
        return Float(lossSum(model: model, windows: 0..<windows, batch: batch, fill: fill) / Double(windows))
    }

    /// The sum of the windows' mean losses.
    static func lossSum(model: Transformer, windows: Range<Int>, batch: Int,
                        fill: (Int, UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Void) -> Double {
        let context = model.config.context
        let batch = min(batch, model.activations.batch)
        let tokens = UnsafeMutablePointer<Int32>.allocate(capacity: batch * context)
        let targets = UnsafeMutablePointer<Int32>.allocate(capacity: batch * context)
        defer {
            tokens.deallocate()
            targets.deallocate()
        }
        var total: Double = 0
        var first = windows.lowerBound
        while first < windows.upperBound {
            let b = min(batch, windows.upperBound - first)
            for i in 0..<b { fill(first + i, tokens + i * context, targets + i * context) }
            total += Double(model.forward(tokens: tokens, targets: targets, batch: b, length: context)) * Double(b)
            first += b
        }
        return total
    }
}
