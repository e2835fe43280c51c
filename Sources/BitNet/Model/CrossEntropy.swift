// Token embedding lookup and softmax cross-entropy, forward and backward.
import Foundation

public enum Embedding {
    /// out[N, C] = table[tokens[n]].
    public static func forward(out: UnsafeMutablePointer<Float>, tokens: UnsafePointer<Int32>,
                               table: UnsafePointer<Float>, rows n: Int, width c: Int) {
        for r in 0..<n { (out + r * c).update(from: table + Int(tokens[r]) * c, count: c) }
    }

    /// dtable[tokens[n]] += dout[n], in row order (deterministic).
    public static func backward(dtable: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                                tokens: UnsafePointer<Int32>, rows n: Int, width c: Int) {
        for r in 0..<n {
            let d = dtable + Int(tokens[r]) * c, g = dout + r * c
            for i in 0..<c { d[i] += g[i] }
        }
    }
}

public enum CrossEntropy {
    /// Replaces logits [N, V] by probabilities and writes losses [N] = -log p[target].
    public static func forward(probs logits: UnsafeMutablePointer<Float>, losses: UnsafeMutablePointer<Float>,
                               targets: UnsafePointer<Int32>, rows n: Int, vocab v: Int) {
        Parallel.forRanges(n, workPerItem: v) { rows in
            for r in rows {
                let row = logits + r * v
                var m = -Float.infinity
                for j in 0..<v { m = max(m, row[j]) }
                var sum: Float = 0
                for j in 0..<v {
                    let e = FastMath.exp(row[j] - m)
                    row[j] = e
                    sum += e
                }
                let inv = 1 / sum
                for j in 0..<v { row[j] *= inv }
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
