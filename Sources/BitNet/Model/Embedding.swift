// Token embedding lookup, forward and backward.

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
