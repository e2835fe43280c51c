// Softmax of a row in place, defined once for the trainer's attention and loss and the
// runtime's attention.

public enum Softmax {
    /// x[0..<n] = exp(x - max) / sum, in three passes none of which carries a float
    /// accumulator, so each vectorizes (Reductions.swift).
    @inlinable @inline(__always)
    public static func inPlace(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
        let m = Reduce.maximum(x, n)
        for j in 0..<n { x[j] = FastMath.exp(x[j] - m) }
        let inv = 1 / Reduce.sum(x, n)
        for j in 0..<n { x[j] *= inv }
    }
}
