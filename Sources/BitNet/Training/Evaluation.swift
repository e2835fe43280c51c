// Validation loss and perplexity of a model on fixed, non-overlapping windows.
//
// Windows are the model's context unless `length` says shorter: models trained with
// different contexts then compare on the same windows (the model sees only those tokens,
// as a model with that context would).
import Foundation

public enum Evaluation {
    /// Mean cross-entropy over `windows` validation windows of `dataset`, spread over its
    /// validation split (TokenDataset.validationWindow).
    public static func loss(model: Transformer, dataset: TokenDataset, windows limit: Int, batch: Int, length: Int? = nil) -> Float {
        // One process: no collective that could fail.
        (try? loss(model: model, dataset: dataset, windows: limit, batch: batch, length: length, ranks: .single)) ?? .nan
    }

    /// The same over several ranks: each evaluates its share of the windows, and the sums
    /// of the losses are reduced.
    public static func loss(model: Transformer, dataset: TokenDataset, windows limit: Int, batch: Int, length: Int? = nil,
                            ranks: Communicator) throws -> Float {
        let length = windowLength(length, model)
        let windows = dataset.validationWindows(context: length, limit: limit)
        guard windows > 0 else { return .nan }
        let share = windows * ranks.rank / ranks.size..<windows * (ranks.rank + 1) / ranks.size
        let total = lossSum(model: model, windows: share, length: length, batch: batch,
                            fill: fillWindow(of: dataset, windows: windows, length: length))
        return Float(try ranks.sum(total) / Double(windows))
    }

    /// Mean cross-entropy over all whole windows of a token sequence.
    public static func loss(model: Transformer, tokens sequence: [Int32], batch: Int, length: Int? = nil) -> Float {
        let length = windowLength(length, model)
        let windows = (sequence.count - 1) / length
        guard windows > 0 else { return .nan }
        return Float(lossSum(model: model, windows: 0..<windows, length: length, batch: batch,
                             fill: fillWindow(of: sequence, length: length)) / Double(windows))
    }

    /// The window length: the model's context unless a shorter one is asked for.
    static func windowLength(_ length: Int?, _ model: Transformer) -> Int {
        guard let length else { return model.config.context }
        precondition(length > 0 && length <= model.config.context, "window of \(length) tokens outside 1...\(model.config.context)")
        return length
    }

    typealias WindowFill = (Int, UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Void

    /// Writes window `index` of a token sequence (its tokens, and the tokens after them as targets).
    static func fillWindow(of sequence: [Int32], length: Int) -> WindowFill {
        { index, tokens, targets in
            for i in 0..<length {
                tokens[i] = sequence[index * length + i]
                targets[i] = sequence[index * length + i + 1]
            }
        }
    }

    /// Writes the `index`-th of `windows` validation windows spread over the split.
    static func fillWindow(of dataset: TokenDataset, windows: Int, length: Int) -> WindowFill {
        { index, tokens, targets in dataset.validationWindow(index, of: windows, context: length, tokens: tokens, targets: targets) }
    }

    /// Mean cross-entropy at each position of the window (element p: predicting token
    /// p + 1 from the p + 1 before it), over the same windows as `loss`: how much a token
    /// gains from the context before it. Empty when there is no window.
    public static func lossByPosition(model: Transformer, dataset: TokenDataset, windows limit: Int, batch: Int,
                                      length: Int? = nil) -> [Double] {
        let length = windowLength(length, model)
        let windows = dataset.validationWindows(context: length, limit: limit)
        return lossByPosition(model: model, windows: windows, length: length, batch: batch,
                              fill: fillWindow(of: dataset, windows: windows, length: length))
    }

    /// The same over all whole windows of a token sequence.
    public static func lossByPosition(model: Transformer, tokens sequence: [Int32], batch: Int, length: Int? = nil) -> [Double] {
        let length = windowLength(length, model)
        return lossByPosition(model: model, windows: (sequence.count - 1) / length, length: length, batch: batch,
                              fill: fillWindow(of: sequence, length: length))
    }

    static func lossByPosition(model: Transformer, windows: Int, length: Int, batch: Int, fill: WindowFill) -> [Double] {
        guard windows > 0 else { return [] }
        var sums = [Double](repeating: 0, count: length)
        sums.withUnsafeMutableBufferPointer { sums in
            _ = lossSum(model: model, windows: 0..<windows, length: length, batch: batch, positions: sums.baseAddress, fill: fill)
        }
        return sums.map { $0 / Double(windows) }
    }

    /// Means of `lossByPosition` over buckets of doubling length, each named by the tokens
    /// of context its predictions had (1-based): 1, 2, 3-4, 5-8, ..., up to the window.
    public static func doublingBuckets(_ byPosition: [Double]) -> [(context: ClosedRange<Int>, loss: Double)] {
        var buckets: [(context: ClosedRange<Int>, loss: Double)] = []
        var first = 1
        while first <= byPosition.count {
            let last = min(max(first, 2 * (first - 1)), byPosition.count)
            let slice = byPosition[(first - 1)..<last]
            buckets.append((first...last, slice.reduce(0, +) / Double(slice.count)))
            first = last + 1
        }
        return buckets
    }

    /// The sum of the windows' mean losses; with `positions` (`length` elements), also adds
    /// each token's loss to its position's sum.
    static func lossSum(model: Transformer, windows: Range<Int>, length: Int, batch: Int,
                        positions: UnsafeMutablePointer<Double>? = nil, fill: WindowFill) -> Double {
        let batch = min(batch, model.activations.batch)
        let tokens = UnsafeMutablePointer<Int32>.allocate(capacity: batch * length)
        let targets = UnsafeMutablePointer<Int32>.allocate(capacity: batch * length)
        defer {
            tokens.deallocate()
            targets.deallocate()
        }
        var total: Double = 0
        var first = windows.lowerBound
        while first < windows.upperBound {
            let b = min(batch, windows.upperBound - first)
            for i in 0..<b { fill(first + i, tokens + i * length, targets + i * length) }
            total += Double(model.forward(tokens: tokens, targets: targets, batch: b, length: length)) * Double(b)
            if let positions {
                let losses = model.activations.views.losses  // [b, length], from the forward above
                for i in 0..<b * length { positions[i % length] += Double(losses[i]) }
            }
            first += b
        }
        return total
    }
}
