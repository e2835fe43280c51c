// The whole model in Float64, written from the equations with plain loops and sharing
// no code with the trainer but the parameter layout (which says where each tensor
// lives): the reference for the FP32 model's loss, and through finite differences for
// its gradients. In the quantized modes it also computes the straight-through
// estimator's surrogate: the same network with each quantizer Q replaced by
// v + (Q(v0) - v0), the offset frozen at a base point, so that its derivative is the
// identity that the STE assumes while its value equals the quantized network's there.
import BitNetFormat
import Foundation
@testable import BitNet

struct ReferenceModel {
    let config: ModelConfig
    let layout: ParameterLayout
    var params: [Double]
    var rules = Rules()

    /// Where another program rounds differently from ours (llama.cpp's ternary GGUF types:
    /// activations quantized in blocks of 256 with their own absmax (Q8_K), the tensor
    /// scale stored in FP16, the embedding and the output head's input in FP16).
    struct Rules {
        var activationBlock: Int? = nil
        var scaleInFloat16 = false
        var embeddingInFloat16 = false
        var headInputInFloat16 = false

        static let llamaCpp = Rules(activationBlock: 256, scaleInFloat16: true, embeddingInFloat16: true, headInputInFloat16: true)
    }

    static func float16(_ x: Double) -> Double { Double(Float16(Float(x))) }

    /// Per BitLinear call (layer, projection) and per BitLinear: the frozen offsets of the
    /// STE surrogate; nil computes the quantized network itself.
    struct Offsets {
        var activations: [String: [Double]] = [:]
        var weights: [Int: [Double]] = [:]
        /// Per row (token): the smallest distance, in quantization steps, of any of its
        /// quantized activations from a rounding tie. A value that close rounds either
        /// way in another program's FP32 arithmetic, and the two then differ by a step.
        var nearestTie: [Int: Double] = [:]

        mutating func noteRounding(_ v: Double, row: Int) {
            let margin = abs(abs(v - v.rounded(.down)) - 0.5)
            nearestTie[row] = min(nearestTie[row] ?? .infinity, margin)
        }
    }

    init(model: Transformer) {
        config = model.config
        layout = model.layout
        params = (0..<model.layout.totalCount).map { Double(model.parameters[$0]) }
    }

    func vector(_ offset: Int, _ count: Int) -> [Double] { Array(params[offset..<offset + count]) }

    /// y[r] = Norm(x[r]) (RMSNorm: x rstd g; LayerNorm: (x - mean) rstd g + b).
    func norm(_ x: [[Double]], _ slots: NormSlots) -> [[Double]] {
        let c = x[0].count, g = vector(slots.gain, c), b = slots.bias.map { vector($0, c) }
        let eps = Double(config.normEpsilon)
        return x.map { row in
            let mean = config.norm == .layer ? row.reduce(0, +) / Double(c) : 0
            let rstd = 1 / (row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(c) + eps).squareRoot()
            return (0..<c).map { (row[$0] - mean) * rstd * g[$0] + (b?[$0] ?? 0) }
        }
    }

    /// The weight a BitLinear multiplies by: W (fp), W~ beta (quantized), or W + offset.
    func effectiveWeight(_ s: BitLinearSlots, offsets: Offsets?, record: inout Offsets) -> [Double] {
        let w = vector(s.weight, s.weightCount)
        guard config.mode.isBitNet else { return w }
        if let offset = offsets?.weights[s.index] { return zip(w, offset).map { $0 + $1 } }
        let n = Double(w.count), exactMeanAbs = w.reduce(0) { $0 + abs($1) } / n
        let meanAbs = rules.scaleInFloat16 ? Self.float16(exactMeanAbs) : exactMeanAbs
        let quantized: [Double]
        if config.mode == .binary {
            let alpha = w.reduce(0, +) / n
            quantized = w.map { ($0 - alpha > 0 ? 1 : -1) * meanAbs }
        } else {
            quantized = w.map { min(max(($0 / (exactMeanAbs + 1e-6)).rounded(.toNearestOrEven), -1), 1) * meanAbs }
        }
        record.weights[s.index] = zip(quantized, w).map { $0 - $1 }
        return quantized
    }

    /// BitLinear on rows of `t` tokens per sequence; `key` names the call for the offsets.
    func linear(_ x: [[Double]], _ s: BitLinearSlots, key: String, t: Int, offsets: Offsets?, record: inout Offsets) -> [[Double]] {
        let w = effectiveWeight(s, offsets: offsets, record: &record)
        var input = x
        if config.mode.isBitNet {
            // SubLN where the layer has one (all of them in the bitnet layout).
            let h = s.subNorm.map { norm(x, $0) } ?? x
            if let offset = offsets?.activations[key] {
                input = h.enumerated().map { r, row in row.indices.map { row[$0] + offset[r * row.count + $0] } }
            } else if config.usesUnsignedActivations(s, isDownProjection: key.hasSuffix(".down")) {
                // The paper's [0, Qb] variant: eta = min, gamma = max - min (per token, or over
                // the sequence); x~ = round(clip((h - eta) 254 / gamma, 0, 254)); h ~ x~ gamma / 254 + eta.
                input = h.enumerated().map { r, row in
                    let rows = config.activationScaling == .perToken ? r...r : (r / t * t)...(r / t * t + t - 1)
                    let eta = rows.map { h[$0].min()! }.min()!, top = rows.map { h[$0].max()! }.max()!
                    let gamma = max(top - eta, 1e-5)
                    return row.map { h -> Double in
                        let v = min(max((h - eta) * 254 / gamma, 0), 254)
                        record.noteRounding(v, row: r)
                        return v.rounded(.toNearestOrEven) * gamma / 254 + eta
                    }
                }
                record.activations[key] = zip(input.flatMap { $0 }, h.flatMap { $0 }).map { $0 - $1 }
            } else {
                // gamma = absmax per token, or over the sequence (per tensor), or per block of
                // a row (rules.activationBlock); x~ = round(clip(h 127 / gamma)).
                let rowMax = h.map { row in max(row.map(abs).max() ?? 0, 1e-5) }
                input = h.enumerated().map { r, row in
                    let start = r / t * t
                    let gamma = config.activationScaling == .perToken ? rowMax[r] : rowMax[start..<start + t].max()!
                    return row.indices.map { i in
                        var g = gamma
                        if let block = rules.activationBlock {
                            let first = i / block * block
                            g = max(row[first..<min(first + block, row.count)].map(abs).max() ?? 0, 1e-5)
                        }
                        let v = min(max((row[i] * 127 / g), -127), 127)
                        record.noteRounding(v, row: r)
                        return v.rounded(.toNearestOrEven) * g / 127
                    }
                }
                record.activations[key] = zip(input.flatMap { $0 }, h.flatMap { $0 }).map { $0 - $1 }
            }
        }
        return input.map { row in
            (0..<s.outFeatures).map { o in (0..<s.inFeatures).reduce(0.0) { $0 + row[$1] * w[o * s.inFeatures + $1] } }
        }
    }

    /// RoPE at positions r mod t on pairs of each head: (2j, 2j+1) in the bitnet layout,
    /// (j, j + hd/2) in b1.58's.
    func rope(_ x: [[Double]], t: Int) -> [[Double]] {
        let hd = config.headDim, theta = Double(config.ropeTheta)
        return x.enumerated().map { r, row in
            var out = row
            for head in 0..<row.count / hd {
                for j in 0..<hd / 2 {
                    let angle = Double(r % t) * pow(theta, -2 * Double(j) / Double(hd))
                    let (i, partner) = config.layout == .b158 ? (head * hd + j, head * hd + j + hd / 2) : (head * hd + 2 * j, head * hd + 2 * j + 1)
                    let a = row[i], b = row[partner]
                    out[i] = a * cos(angle) - b * sin(angle)
                    out[partner] = a * sin(angle) + b * cos(angle)
                }
            }
            return out
        }
    }

    /// Causal softmax attention per sequence and head; query head h reads key/value
    /// head h * kvHeads / heads (grouped-query attention).
    func attention(q: [[Double]], k: [[Double]], v: [[Double]], t: Int) -> [[Double]] {
        let hd = config.headDim
        var out = q.map { _ in [Double](repeating: 0, count: config.dim) }
        for r in q.indices {
            let start = r / t * t
            for head in 0..<config.heads {
                let kvShift = (head * config.keyValueHeads / config.heads - head) * hd
                let span = head * hd..<(head + 1) * hd
                let scores = (start...r).map { j in span.reduce(0.0) { $0 + q[r][$1] * k[j][$1 + kvShift] } / Double(hd).squareRoot() }
                let m = scores.max()!, e = scores.map { exp($0 - m) }, z = e.reduce(0, +)
                for (n, j) in (start...r).enumerated() {
                    for i in span { out[r][i] += e[n] / z * v[j][i + kvShift] }
                }
            }
        }
        return out
    }

    func activation(_ up: Double, _ gate: Double) -> Double {
        switch config.ffnActivation {
        case .swiglu: return gate / (1 + exp(-gate)) * up
        case .gelu: return 0.5 * up * (1 + tanh((2 / Double.pi).squareRoot() * (up + 0.044715 * up * up * up)))
        case .relu2: return max(up, 0) * max(up, 0)
        }
    }

    /// Mean cross-entropy of `targets` given `tokens`, B sequences of T, and the offsets
    /// the quantizers took (for a later surrogate evaluation).
    func loss(tokens: [Int32], targets: [Int32], t: Int, offsets: Offsets? = nil) -> (loss: Double, offsets: Offsets) {
        let (logits, record) = self.logits(tokens: tokens, t: t, offsets: offsets)
        var total = 0.0
        for (r, row) in logits.enumerated() {
            let m = row.max()!, z = row.reduce(0) { $0 + exp($1 - m) }
            total += -(row[Int(targets[r])] - m - log(z))
        }
        return (total / Double(tokens.count), record)
    }

    /// Logits [B*T, vocab] of `tokens`, B sequences of T, and the quantizers' offsets.
    func logits(tokens: [Int32], t: Int, offsets: Offsets? = nil) -> (logits: [[Double]], offsets: Offsets) {
        var record = Offsets()
        let c = config.dim
        var x = tokens.map { vector(layout.embedding + Int($0) * c, c).map { rules.embeddingInFloat16 ? Self.float16($0) : $0 } }
        for (l, s) in layout.layers.enumerated() {
            func lin(_ input: [[Double]], _ slots: BitLinearSlots, _ name: String) -> [[Double]] {
                linear(input, slots, key: "\(l).\(name)", t: t, offsets: offsets, record: &record)
            }
            let h = norm(x, s.attentionNorm)
            let q = rope(lin(h, s.query, "q"), t: t), k = rope(lin(h, s.key, "k"), t: t), v = lin(h, s.value, "v")
            let o = lin(attention(q: q, k: k, v: v, t: t), s.attentionOutput, "o")
            let mid = zip(x, o).map { zip($0, $1).map(+) }
            let h2 = norm(mid, s.ffnNorm)
            let up = lin(h2, s.up, "up"), gate = s.gate.map { lin(h2, $0, "gate") }
            let hidden = up.indices.map { r in up[r].indices.map { activation(up[r][$0], gate?[r][$0] ?? 0) } }
            let down = lin(hidden, s.down, "down")
            x = zip(mid, down).map { zip($0, $1).map(+) }
        }
        let final = norm(x, layout.finalNorm).map { $0.map { rules.headInputInFloat16 ? Self.float16($0) : $0 } }
        let head = rules.embeddingInFloat16 && config.tiedEmbeddings
            ? vector(layout.head, config.vocabSize * c).map(Self.float16) : vector(layout.head, config.vocabSize * c)
        let logits = final.map { row in
            (0..<config.vocabSize).map { o in (0..<c).reduce(0.0) { $0 + row[$1] * head[o * c + $1] } }
        }
        return (logits, record)
    }

    /// Central difference of the loss with respect to parameter `i`, in Float64.
    mutating func derivative(_ i: Int, h: Double = 1e-5, _ f: (ReferenceModel) -> Double) -> Double {
        let saved = params[i]
        params[i] = saved + h
        let plus = f(self)
        params[i] = saved - h
        let minus = f(self)
        params[i] = saved
        return (plus - minus) / (2 * h)
    }
}
