// The feed-forward non-linearities (SwiGLU, GELU, squared ReLU), elementwise
// forward and backward; the projections around them are BitLinears.
import BitNetMath
import Foundation

/// Shapes: up, gate, hidden [N, F] (gate only for SwiGLU).
public enum FeedForward {
    // Constants are locals, not static lets: a global read inside a loop that stores
    // through a pointer may alias it, which stops vectorization.

    public static func forward(
        _ kind: FFNActivation, hidden: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>,
        gate: UnsafePointer<Float>?, count: Int
    ) {
        let geluScale: Float = 0.797_884_56  // sqrt(2 / pi)
        Parallel.forRanges(count) { range in
            switch kind {
            case .swiglu:
                let g = gate!
                for i in range {
                    let s = FastMath.sigmoid(g[i])
                    hidden[i] = g[i] * s * up[i]
                }
            case .gelu:
                for i in range {
                    let x = up[i]
                    hidden[i] = 0.5 * x * (1 + FastMath.tanh(geluScale * (x + 0.044715 * x * x * x)))
                }
            case .relu2:
                for i in range {
                    let r = max(up[i], 0)
                    hidden[i] = r * r
                }
            }
        }
    }

    /// Writes (not adds) dup and dgate from dhidden.
    public static func backward(
        _ kind: FFNActivation, dup: UnsafeMutablePointer<Float>, dgate: UnsafeMutablePointer<Float>?,
        dhidden: UnsafePointer<Float>, up: UnsafePointer<Float>, gate: UnsafePointer<Float>?, count: Int
    ) {
        let geluScale: Float = 0.797_884_56  // sqrt(2 / pi)
        Parallel.forRanges(count) { range in
            switch kind {
            case .swiglu:
                let g = gate!, dg = dgate!
                for i in range {
                    let s = FastMath.sigmoid(g[i])
                    let silu = g[i] * s
                    dup[i] = dhidden[i] * silu
                    dg[i] = dhidden[i] * up[i] * s * (1 + g[i] * (1 - s))
                }
            case .gelu:
                for i in range {
                    let x = up[i]
                    let inner = geluScale * (x + 0.044715 * x * x * x)
                    let th = FastMath.tanh(inner)
                    let sech2 = 1 - th * th
                    let derivative = 0.5 * (1 + th) + 0.5 * x * sech2 * geluScale * (1 + 3 * 0.044715 * x * x)
                    dup[i] = dhidden[i] * derivative
                }
            case .relu2:
                for i in range { dup[i] = dhidden[i] * 2 * max(up[i], 0) }
            }
        }
    }
}
