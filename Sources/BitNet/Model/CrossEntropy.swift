// Softmax cross-entropy over the vocabulary, forward and backward.
import BitNetMath
import Foundation

public enum CrossEntropy {
    /// Replaces logits [N, V] by probabilities and writes losses [N] = -log p[target].
    public static func forward(probs logits: UnsafeMutablePointer<Float>, losses: UnsafeMutablePointer<Float>,
                               targets: UnsafePointer<Int32>, rows n: Int, vocab v: Int) {
        Parallel.forRanges(n, workPerItem: v) { rows in
            for r in rows {
                let row = logits + r * v
                Softmax.inPlace(row, v)
                // Clamp zero probabilities, but let a NaN through so training can stop on it.
                let p = row[Int(targets[r])]
                losses[r] = -logf(p < Float.leastNormalMagnitude ? Float.leastNormalMagnitude : p)
            }
        }
    }

    /// In place: probs become dlogits = (probs - onehot(target)) * scale.
    public static func backward(probs: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>,
                                rows n: Int, vocab v: Int, scale: Float) {
        Parallel.forRanges(n, workPerItem: v) { rows in
            for r in rows {
                let row = probs + r * v
                row[Int(targets[r])] -= 1
                for j in 0..<v { row[j] *= scale }
            }
        }
    }
}
