// Sums and maxima of float arrays in sixteen lanes. A loop that carries one float
// accumulator does not vectorize (IEEE addition is not reassociated), and neither does
// anything else in its body: the softmax over an 8192-piece vocabulary spent a third of
// a small model's training step computing its exponentials one at a time.
// @inlinable: inlined into other modules' loops.

/// Sixteen floats at a time from and to unaligned memory.
public enum Lanes {
    @inlinable @inline(__always)
    public static func load(_ p: UnsafePointer<Float>) -> SIMD16<Float> { UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self) }

    @inlinable @inline(__always)
    public static func store(_ v: SIMD16<Float>, to p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
    }
}

public enum Reduce {
    /// x[0] + ... + x[n-1], summed in 16 lanes, then across them.
    @inlinable @inline(__always)
    public static func sum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var lanes = SIMD16<Float>(repeating: 0)
        var i = 0
        while i + 16 <= n {
            lanes += Lanes.load(x + i)
            i += 16
        }
        var total = lanes.sum()
        while i < n {
            total += x[i]
            i += 1
        }
        return total
    }

    /// The largest of x[0..<n] (-infinity when n is 0). NaNs are passed over; a caller
    /// that feeds them on (as softmax does, through exp) still propagates them.
    @inlinable @inline(__always)
    public static func maximum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var lanes = SIMD16<Float>(repeating: -.infinity)
        var i = 0
        while i + 16 <= n {
            // A compare and a blend; pointwiseMax compiles to a scalar compare per lane.
            let v = Lanes.load(x + i)
            lanes.replace(with: v, where: v .> lanes)
            i += 16
        }
        var m = lanes.max()
        while i < n {
            m = max(m, x[i])
            i += 1
        }
        return m
    }

    /// The largest |x[i]| of x[0..<n] (0 when n is 0); NaNs are passed over.
    @inlinable @inline(__always)
    public static func maximumMagnitude(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var lanes = SIMD16<Float>(repeating: 0)
        var i = 0
        while i + 16 <= n {
            var v = Lanes.load(x + i)
            v.replace(with: -v, where: v .< 0)
            lanes.replace(with: v, where: v .> lanes)
            i += 16
        }
        var m = lanes.max()
        while i < n {
            m = max(m, abs(x[i]))
            i += 1
        }
        return m
    }
}
