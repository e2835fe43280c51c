// Rotary position embedding: the rotation tables and their application, both directions.
import BitNetFormat
import Foundation

/// RoPE (Su et al. 2021) on pairs (a, b) of each head: (a, b) -> (a cos - b sin,
/// a sin + b cos) with angle t * theta^(-2j / headDim) for pair j. The bitnet layout
/// pairs dimensions (2j, 2j+1); b1.58's, as llama.cpp's `bitnet` graph (NeoX style),
/// pairs (j, j + headDim/2).
public struct Rope {
    public let context: Int
    public let halfHeadDim: Int
    /// Pair j is (j * pairStep, j * pairStep + partner) within each head (ModelLayout).
    let pairStep, partner: Int
    /// Shapes: cos, sin [context, headDim / 2].
    public let cos: [Float]
    public let sin: [Float]

    public init(context: Int, headDim: Int, theta: Float, layout: ModelLayout = .bitnet) {
        self.context = context
        halfHeadDim = headDim / 2
        (pairStep, partner) = layout.ropePairing(headDim: headDim)
        var c = [Float](repeating: 0, count: context * headDim / 2)
        var s = c
        for t in 0..<context {
            for j in 0..<headDim / 2 {
                let angle = Double(t) * pow(Double(theta), -2 * Double(j) / Double(headDim))
                c[t * headDim / 2 + j] = Float(Foundation.cos(angle))
                s[t * headDim / 2 + j] = Float(Foundation.sin(angle))
            }
        }
        cos = c
        sin = s
    }

    /// Rotates x [B*T, C] in place; `inverse` applies the transpose (the backward pass).
    public func apply(_ x: UnsafeMutablePointer<Float>, batch b: Int, length t: Int, width c: Int, inverse: Bool = false) {
        let half = halfHeadDim, heads = c / (2 * half)
        let sign: Float = inverse ? -1 : 1
        let (step, partner) = (pairStep, partner)
        cos.withUnsafeBufferPointer { cosTable in
            sin.withUnsafeBufferPointer { sinTable in
                Parallel.forRanges(b * t, workPerItem: c) { rows in
                    for r in rows {
                        let pos = r % t
                        let cs = cosTable.baseAddress! + pos * half, sn = sinTable.baseAddress! + pos * half
                        for h in 0..<heads {
                            let v = x + r * c + h * 2 * half
                            for j in 0..<half {
                                let i = j * step, a = v[i], bb = v[i + partner]
                                let sj = sign * sn[j]
                                v[i] = a * cs[j] - bb * sj
                                v[i + partner] = a * sj + bb * cs[j]
                            }
                        }
                    }
                }
            }
        }
    }
}
