// OmniQuant (Shao et al., ICLR 2024; arXiv 2308.13137): two kinds of parameters learned
// block by block, then folded into the weights and norms so inference costs nothing.
//
// Learnable weight clipping (LWC). Round to nearest over a group's full [min, max]
// wastes levels on a few large weights; LWC learns, per output channel (or group), how
// far to shrink the range, [sigmoid(b) min, sigmoid(a) max], then rounds as RTN does.
// At 1 and 1.58 bits there is no range to clip; the analogue learned here is a factor
// 2 sigmoid(a) in (0, 2) on the Sign and absmean scales, starting at 1 (plain RTN).
//
// Learnable equivalent transformation (LET), for weight-activation settings only: per-
// channel scales that move activation outliers into the weights, as SmoothQuant's but
// learned. Scales only (no shifts), as the reference code does for RMSNorm (LLaMA)
// models, learned as log-scales starting at 1:
//   s_attention: the attention norm's output (gain and bias / s; query, key, value columns x s);
//   s_ffn:       the feed-forward norm's output (up and gate columns x s);
//   s_value:     value rows / s, attention-output columns x s (attention mixes rows of V
//                per channel, so a channel's scale passes through it);
//   s_qk:        query rows / s, key rows x s (q.k unchanged), one per rotary pair, since
//                RoPE rotates channels 2j and 2j+1 together and commutes only with a
//                scale they share.
// The down projection's input follows a non-linearity and is left alone (as in the
// reference for LLaMA).
//
// Training: the target is the fp block on the fp stream, the input the stream of the
// already-quantized blocks before it; AdamW on the mean squared error of the block's
// output. Rounding passes gradients straight through (zero inside the clamp); the zero
// point and the range's max and min are held constant in the backward pass. Defaults
// are the paper's: LWC logits start at 4 (sigmoid 0.982), learning rate 1e-2 (LWC) and
// 5e-3 (LET), no weight decay, 20 epochs over the calibration windows.
import Foundation

public struct OmniQuantOptions: Equatable, Sendable {
    public var epochs = 20
    public var learningRate: Float = 1e-2
    public init(epochs: Int = 20, learningRate: Float = 1e-2) { (self.epochs, self.learningRate) = (epochs, learningRate) }
}

/// One block's calibration: mean squared error of its output against the fp block's.
public struct OmniQuantBlockLoss: Sendable {
    public let layer: Int
    /// Round to nearest (no clipping), the parameters' starting point, and the end.
    public let roundToNearest: Double
    public let start: Double
    public let end: Double
    /// The learned clip factors' range (min-max widths), or scale factors' (1 and 1.58 bits).
    public let clipFactors: ClosedRange<Float>
}

enum OmniQuant {
    static let initialLogit: Float = 4
    /// LET's learning rate relative to LWC's (5e-3 against 1e-2 in the paper).
    static let transformRate: Float = 0.5

    static func sigmoid(_ x: Float) -> Float { 1 / (1 + exp(-x)) }

    /// How LET scales each element of a projection: W'[r, c] = W[r, c] * factor.
    enum Role { case query, key, value, output, up, down }

    /// One projection of the block being calibrated.
    struct Projection {
        let name: String
        let slots: BitLinearSlots
        let role: Role
        /// The fp weights, which every quantization starts from.
        let original: [Float]
        let groupSize: Int
        /// Where its clipping logits (a then b, per row and group) start in the block's vector.
        let offset: Int
        var groups: Int { slots.inFeatures / groupSize }
        var logitCount: Int { 2 * slots.outFeatures * groups }
    }

    /// The block being calibrated: its projections, norms, and the learned vector's layout
    /// (every projection's clipping logits, then LET's log-scales when it has them).
    final class Block {
        let bits: WeightBits
        let projections: [Projection]
        let norms: [(slots: NormSlots, gain: [Float], bias: [Float]?)]
        let dim: Int
        /// Start of LET's log-scales [attention dim, ffn dim, value dim, qk dim/2], or nil.
        let transformOffset: Int?
        let count: Int
        /// W' (LET applied) per projection for the current parameters.
        private(set) var transformed: [[Float]]

        init(model: Transformer, layer: LayerSlots, names: [Int: String], bits: WeightBits, groupSize: Int?, transform: Bool) {
            self.bits = bits
            dim = model.config.dim
            var projections: [Projection] = [], offset = 0
            let roles: [(BitLinearSlots, Role)] = [(layer.query, .query), (layer.key, .key), (layer.value, .value),
                                                   (layer.attentionOutput, .output), (layer.up, .up)]
                + (layer.gate.map { [($0, Role.up)] } ?? []) + [(layer.down, .down)]
            for (p, role) in roles {
                let projection = Projection(name: names[p.index] ?? "\(p.index)", slots: p, role: role,
                                            original: Array(UnsafeBufferPointer(start: model.parameters + p.weight, count: p.weightCount)),
                                            groupSize: groupSize ?? p.inFeatures, offset: offset)
                projections.append(projection)
                offset += projection.logitCount
            }
            self.projections = projections
            norms = [layer.attentionNorm, layer.ffnNorm].map { n in
                (n, Array(UnsafeBufferPointer(start: model.parameters + n.gain, count: model.config.dim)),
                 n.bias.map { Array(UnsafeBufferPointer(start: model.parameters + $0, count: model.config.dim)) })
            }
            transformOffset = transform ? offset : nil
            count = offset + (transform ? 3 * dim + dim / 2 : 0)
            transformed = projections.map(\.original)
        }

        /// The starting parameters: clipping logits at 4 (at 0 for the 1-bit and ternary
        /// scale factors), log-scales at 0.
        func initialParameters() -> [Float] {
            var p = [Float](repeating: 0, count: count)
            if bits.integerBits != nil { for i in 0..<(transformOffset ?? count) { p[i] = initialLogit } }
            return p
        }

        /// LET's factor for element (r, c) of a projection, from the log-scales `s`.
        func factor(_ role: Role, _ r: Int, _ c: Int, _ s: UnsafePointer<Float>) -> Float {
            let (attention, ffn, value, qk) = (s, s + dim, s + 2 * dim, s + 3 * dim)
            switch role {
            case .query: return exp(attention[c] - qk[r / 2])
            case .key: return exp(attention[c] + qk[r / 2])
            case .value: return exp(attention[c] - value[r])
            case .output: return exp(value[c])
            case .up: return exp(ffn[c])
            case .down: return 1
            }
        }

        /// The clip factors of row r, group g of projection p.
        func clip(_ parameters: UnsafePointer<Float>, _ p: Projection, row r: Int, group g: Int) -> (upper: Float, lower: Float) {
            let i = p.offset + 2 * (r * p.groups + g)
            return bits.integerBits == nil ? (2 * sigmoid(parameters[i]), 1) : (sigmoid(parameters[i]), sigmoid(parameters[i + 1]))
        }

        /// Writes the model's norms and (fake-)quantized projections for `parameters`
        /// (nil: round to nearest, no transform); returns the codes when asked. Without
        /// `rounding` the transformed weights are written as they are (tests: LET alone
        /// must leave the block's function unchanged).
        @discardableResult
        func apply(_ parameters: [Float]?, model: Transformer, keepCodes: Bool = false, rounding: Bool = true) -> [String: QuantizedMatrix] {
            var result: [String: QuantizedMatrix] = [:]
            (parameters ?? []).withUnsafeBufferPointer { buffer in
                let params = parameters == nil ? nil : buffer.baseAddress
                // Norms: gain / s, bias / s (attention norm: s_attention; ffn norm: s_ffn).
                for (k, norm) in norms.enumerated() {
                    for c in 0..<dim {
                        let s = params.flatMap { p in transformOffset.map { exp(p[$0 + k * dim + c]) } } ?? 1
                        model.parameters[norm.slots.gain + c] = norm.gain[c] / s
                        if let bias = norm.slots.bias, let values = norm.bias { model.parameters[bias + c] = values[c] / s }
                    }
                }
                for (j, p) in projections.enumerated() {
                    let cols = p.slots.inFeatures, out = model.parameters + p.slots.weight
                    if let params, let t = transformOffset {
                        for r in 0..<p.slots.outFeatures {
                            for c in 0..<cols { transformed[j][r * cols + c] = p.original[r * cols + c] * factor(p.role, r, c, params + t) }
                        }
                    } else {
                        transformed[j] = p.original
                    }
                    if !rounding {
                        transformed[j].withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: $0.count) }
                        continue
                    }
                    var q = keepCodes ? QuantizedMatrix(rows: p.slots.outFeatures, cols: cols, groupSize: p.groupSize, bits: bits) : nil
                    transformed[j].withUnsafeBufferPointer { w in
                        for r in 0..<p.slots.outFeatures {
                            for g in 0..<p.groups {
                                let first = r * cols + g * p.groupSize
                                let quantizer = GroupQuantizer(bits: bits, weights: w.baseAddress! + first, count: p.groupSize,
                                                               clip: params.map { clip($0, p, row: r, group: g) } ?? (1, 1))
                                for i in first..<(first + p.groupSize) {
                                    let code = quantizer.code(w[i])
                                    out[i] = quantizer.value(ofCode: code)
                                    q?.setCode(code, at: i)
                                }
                                q?.scales[r * p.groups + g] = quantizer.scale
                                q?.zeros[r * p.groups + g] = quantizer.zero
                            }
                        }
                    }
                    if let q { result[p.name] = q }
                }
            }
            model.parametersDidChange()
            return result
        }

        /// d(loss)/d(parameters) from the model's gradients after `apply(parameters)` and a
        /// block backward: through straight-through rounding to the scales, the scales to
        /// the clip factors and these to their logits; through W' and the norms to LET.
        func gradients(_ parameters: UnsafePointer<Float>, model: Transformer, into grad: UnsafeMutablePointer<Float>,
                       rounding: Bool = true) {
            grad.update(repeating: 0, count: count)
            let dLet = transformOffset.map { grad + $0 }
            for (j, p) in projections.enumerated() {
                let cols = p.slots.inFeatures, dw = model.gradients + p.slots.weight
                transformed[j].withUnsafeBufferPointer { w in
                    for r in 0..<p.slots.outFeatures {
                        for g in 0..<p.groups {
                            let first = r * cols + g * p.groupSize
                            let factors = clip(parameters, p, row: r, group: g)
                            let quantizer = GroupQuantizer(bits: bits, weights: w.baseAddress! + first, count: p.groupSize, clip: factors)
                            var dScale: Float = 0
                            for i in first..<(first + p.groupSize) {
                                dScale += dw[i] * quantizer.valueByScale(w[i])
                                // LET: dW'/dlog s = +-W' for each scale W' carries.
                                guard let dLet, !rounding || quantizer.passesGradient(w[i]) else { continue }
                                let e = dw[i] * w[i], c = i - r * cols
                                switch p.role {
                                case .query: dLet[c] += e; dLet[3 * dim + r / 2] -= e
                                case .key: dLet[c] += e; dLet[3 * dim + r / 2] += e
                                case .value: dLet[c] += e; dLet[2 * dim + r] -= e
                                case .output: dLet[2 * dim + c] += e
                                case .up: dLet[dim + c] += e
                                case .down: break
                                }
                            }
                            let slot = p.offset + 2 * (r * p.groups + g)
                            if bits.integerBits == nil {
                                let s = factors.upper / 2  // the factor is 2 sigmoid(a)
                                grad[slot] = dScale * quantizer.scaleByClip.upper * 2 * s * (1 - s)
                            } else {
                                grad[slot] = dScale * quantizer.scaleByClip.upper * factors.upper * (1 - factors.upper)
                                grad[slot + 1] = dScale * quantizer.scaleByClip.lower * factors.lower * (1 - factors.lower)
                            }
                        }
                    }
                }
            }
            // Norms: gain' = gain / s, so dgain'/dlog s = -gain' (and the bias likewise).
            if let dLet {
                for (k, norm) in norms.enumerated() {
                    for c in 0..<dim {
                        dLet[k * dim + c] -= model.gradients[norm.slots.gain + c] * model.parameters[norm.slots.gain + c]
                        if let bias = norm.slots.bias { dLet[k * dim + c] -= model.gradients[bias + c] * model.parameters[bias + c] }
                    }
                }
            }
        }

        /// The range of the learned clip (or scale) factors.
        func clipFactors(_ parameters: [Float]) -> ClosedRange<Float> {
            var lo = Float.infinity, hi = -Float.infinity
            parameters.withUnsafeBufferPointer { params in
                for p in projections {
                    for r in 0..<p.slots.outFeatures {
                        for g in 0..<p.groups {
                            let f = clip(params.baseAddress!, p, row: r, group: g)
                            lo = min(lo, f.upper, bits.integerBits == nil ? f.upper : f.lower)
                            hi = max(hi, f.upper, bits.integerBits == nil ? f.upper : f.lower)
                        }
                    }
                }
            }
            return lo <= hi ? lo...hi : 1...1
        }
    }

    /// Sum of (y - target)^2; gradient gets d(mean squared error)/dy.
    static func squaredError(_ y: UnsafePointer<Float>, _ target: UnsafePointer<Float>, gradient: UnsafeMutablePointer<Float>,
                             count: Int) -> Double {
        var sum: Double = 0
        for j in 0..<count {
            let d = y[j] - target[j]
            sum += Double(d * d)
            gradient[j] = 2 * d / Float(count)
        }
        return sum
    }

    /// OmniQuant over a whole fp model, block by block (see the top of this file): LWC
    /// always, LET when activations are quantized. With `activationBits`, the quantized
    /// block rounds its projections' inputs during calibration as it will at run time
    /// (the fp targets never do). The model's weights and norms are replaced by the
    /// folded, dequantized ones; returns the codes by tensor name and each block's losses.
    static func quantizeModel(_ model: Transformer, calibration: CalibrationWindows, bits: WeightBits, groupSize: Int?,
                              activationBits: Int?, options: OmniQuantOptions, progress: (String) -> Void = { _ in })
        -> (matrices: [String: QuantizedMatrix], losses: [OmniQuantBlockLoss]) {
        let c = model.config, t = calibration.context
        let names = Dictionary(uniqueKeysWithValues: QuantizedRun.projections(model.layout).map { ($0.slots.index, $0.name) })
        /// A batch's windows from its stream's length.
        func windows(_ stream: [Float]) -> Int { stream.count / (t * c.dim) }
        // Block 0's input on every calibration batch: the embeddings. The fp stream and
        // the quantized stream start equal.
        var fpStream: [[Float]] = []
        calibration.forEachBatch(model) { windows in
            fpStream.append(Array(UnsafeBufferPointer(start: model.activations.views.layers[0].input, count: windows * t * c.dim)))
        }
        var quantizedStream = fpStream
        var output = [Float](repeating: 0, count: fpStream.map(\.count).max() ?? 0), dOutput = output
        var matrices: [String: QuantizedMatrix] = [:], losses: [OmniQuantBlockLoss] = []

        for (l, slots) in model.layout.layers.enumerated() {
            // Targets: the fp block on the fp stream (which becomes the next block's fp input).
            model.postTrainingActivationBits = nil
            for i in fpStream.indices {
                let b = windows(fpStream[i])
                fpStream[i].withUnsafeMutableBufferPointer { model.forwardBlock(l, input: $0.baseAddress!, output: $0.baseAddress!, batch: b, length: t) }
            }
            model.postTrainingActivationBits = activationBits
            let block = Block(model: model, layer: slots, names: names, bits: bits, groupSize: groupSize, transform: activationBits != nil)
            var parameters = block.initialParameters()
            var grad = [Float](repeating: 0, count: block.count)
            // LWC's learning rate for the clipping logits, LET's for the log-scales after them.
            let split = block.transformOffset ?? block.count
            let rates = [(0..<split, options.learningRate), (split..<block.count, options.learningRate * transformRate)]

            /// Mean squared error of the block's output against the targets on every batch;
            /// with `train`, one AdamW step per batch.
            func epoch(train optimizer: AdamW?) -> Double {
                var total: Double = 0
                for i in quantizedStream.indices {
                    if optimizer != nil { block.apply(parameters, model: model) }
                    let b = windows(quantizedStream[i]), width = quantizedStream[i].count
                    quantizedStream[i].withUnsafeBufferPointer {
                        model.forwardBlock(l, input: $0.baseAddress!, output: &output, batch: b, length: t)
                    }
                    let sum = fpStream[i].withUnsafeBufferPointer { target in
                        squaredError(output, target.baseAddress!, gradient: &dOutput, count: width)
                    }
                    total += sum / Double(width)
                    guard let optimizer else { continue }
                    model.zeroGradients()
                    model.backwardBlock(l, dout: dOutput, batch: b, length: t)
                    parameters.withUnsafeMutableBufferPointer { p in
                        block.gradients(p.baseAddress!, model: model, into: &grad)
                        optimizer.update(parameters: p.baseAddress!, gradients: grad, learningRates: rates)
                    }
                }
                return total / Double(quantizedStream.count)
            }
            block.apply(nil, model: model)
            let rtn = epoch(train: nil)
            block.apply(parameters, model: model)
            let start = epoch(train: nil)
            let optimizer = AdamW(count: block.count)
            for e in 0..<options.epochs {
                let loss = epoch(train: optimizer)
                progress(String(format: "block %d/%d epoch %d/%d: loss %.4g", l + 1, c.layers, e + 1, options.epochs, loss))
            }
            matrices.merge(block.apply(parameters, model: model, keepCodes: true)) { first, _ in first }
            let end = epoch(train: nil)
            losses.append(OmniQuantBlockLoss(layer: l, roundToNearest: rtn, start: start, end: end,
                                             clipFactors: block.clipFactors(parameters)))
            // The quantized stream moves on through the quantized block.
            for i in quantizedStream.indices {
                let b = windows(quantizedStream[i])
                quantizedStream[i].withUnsafeMutableBufferPointer {
                    model.forwardBlock(l, input: $0.baseAddress!, output: $0.baseAddress!, batch: b, length: t)
                }
            }
        }
        model.postTrainingActivationBits = activationBits
        return (matrices, losses)
    }
}
