// OmniQuant's learnable weight clipping (Shao et al., ICLR 2024; arXiv 2308.13137).
// Round to nearest over a group's full [min, max] wastes levels on a few large weights;
// LWC learns, per output channel (or group), how far to shrink the range:
//   [lower, upper] = [sigmoid(b) * min, sigmoid(a) * max],
// then rounds as RTN does. The factors are trained block by block with AdamW to make
// the quantized block's output match the full-precision block's: the target is the fp
// block on the fp stream, the input the stream of the already-quantized blocks before
// it. Rounding passes gradients straight through; the zero point is held constant in
// the backward pass, as in the reference code (OpenGVLab/OmniQuant, quantize/quantizer.py).
// Defaults are the paper's: a = b = 4 at the start (sigmoid 0.982), learning rate 1e-2,
// no weight decay, 20 epochs over the calibration windows.
// At 1 and 1.58 bits there is no range to clip; the analogue learned here is a factor
// 2 sigmoid(a) in (0, 2) on the Sign and absmean scales, starting at 1 (plain RTN).
// The learnable equivalent transformation (LET) is not built yet.
import Foundation

public struct OmniQuantOptions: Equatable, Sendable {
    public var epochs = 20
    public var learningRate: Float = 1e-2
    public init(epochs: Int = 20, learningRate: Float = 1e-2) { (self.epochs, self.learningRate) = (epochs, learningRate) }
}

/// One block's calibration: mean squared error of its output against the fp block's.
public struct OmniQuantBlockLoss: Sendable {
    public let layer: Int
    /// Round to nearest (no clipping), the clipping's starting point, and the end.
    public let roundToNearest: Double
    public let start: Double
    public let end: Double
    /// The learned clip factors' range (min-max widths), or scale factors' (1 and 1.58 bits).
    public let clipFactors: ClosedRange<Float>
}

enum OmniQuant {
    /// The clipping of one projection in the block being calibrated.
    struct Clipping {
        let name: String
        let slots: BitLinearSlots
        /// The fp weights, which every quantization starts from.
        let original: [Float]
        let groupSize: Int
        /// Where its logits (a then b, one each per row and group) start in the block's vector.
        let offset: Int
        var groups: Int { slots.inFeatures / groupSize }
        var logitCount: Int { 2 * slots.outFeatures * groups }
    }

    static let initialLogit: Float = 4

    static func sigmoid(_ x: Float) -> Float { 1 / (1 + exp(-x)) }

    /// The clip factors of row r, group g from the logits.
    static func clip(_ logits: UnsafePointer<Float>, _ p: Clipping, row r: Int, group g: Int, bits: WeightBits) -> (upper: Float, lower: Float) {
        let i = p.offset + 2 * (r * p.groups + g)
        return bits.integerBits == nil ? (2 * sigmoid(logits[i]), 1) : (sigmoid(logits[i]), sigmoid(logits[i + 1]))
    }

    /// Quantizes every clipped projection with the current logits (nil: round to nearest)
    /// and writes the dequantized weights into the model; returns the codes when asked.
    @discardableResult
    static func apply(_ clippings: [Clipping], logits: [Float]?, bits: WeightBits, model: Transformer,
                      keepCodes: Bool = false) -> [String: QuantizedMatrix] {
        var result: [String: QuantizedMatrix] = [:]
        let logits = logits ?? []
        for p in clippings {
            let cols = p.slots.inFeatures, out = model.parameters + p.slots.weight
            var q = keepCodes ? QuantizedMatrix(rows: p.slots.outFeatures, cols: cols, groupSize: p.groupSize, bits: bits) : nil
            p.original.withUnsafeBufferPointer { w in
                logits.withUnsafeBufferPointer { logits in
                    for r in 0..<p.slots.outFeatures {
                        for g in 0..<p.groups {
                            let first = r * cols + g * p.groupSize
                            let factors = logits.isEmpty ? (1, 1) : clip(logits.baseAddress!, p, row: r, group: g, bits: bits)
                            let quantizer = GroupQuantizer(bits: bits, weights: w.baseAddress! + first, count: p.groupSize, clip: factors)
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
            }
            if let q { result[p.name] = q }
        }
        model.parametersDidChange()
        return result
    }

    /// dL/dlogits from dL/dW~ (the model's weight gradients): through the straight-through
    /// rounding to the scale, the scale to the clip factors, the factors to the logits.
    static func chainGradients(_ clippings: [Clipping], logits: UnsafePointer<Float>, into grad: UnsafeMutablePointer<Float>,
                               bits: WeightBits, model: Transformer) {
        for p in clippings {
            let cols = p.slots.inFeatures, dw = model.gradients + p.slots.weight
            p.original.withUnsafeBufferPointer { w in
                for r in 0..<p.slots.outFeatures {
                    for g in 0..<p.groups {
                        let first = r * cols + g * p.groupSize
                        let factors = clip(logits, p, row: r, group: g, bits: bits)
                        let quantizer = GroupQuantizer(bits: bits, weights: w.baseAddress! + first, count: p.groupSize, clip: factors)
                        var dScale: Float = 0
                        for i in first..<(first + p.groupSize) { dScale += dw[i] * quantizer.valueByScale(w[i]) }
                        let slot = p.offset + 2 * (r * p.groups + g)
                        if bits.integerBits == nil {
                            let s = factors.upper / 2  // the factor is 2 sigmoid(a)
                            grad[slot] = dScale * quantizer.scaleByClip.upper * 2 * s * (1 - s)
                            grad[slot + 1] = 0
                        } else {
                            grad[slot] = dScale * quantizer.scaleByClip.upper * factors.upper * (1 - factors.upper)
                            grad[slot + 1] = dScale * quantizer.scaleByClip.lower * factors.lower * (1 - factors.lower)
                        }
                    }
                }
            }
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

    /// LWC over a whole fp model, block by block (see the top of this file). The model's
    /// weights are replaced by the dequantized ones; returns the codes by tensor name and
    /// each block's losses.
    /// With `activationBits`, the quantized block rounds its projections' inputs during
    /// calibration as it will at run time (the fp targets never do).
    static func quantizeModel(_ model: Transformer, calibration: CalibrationWindows, bits: WeightBits, groupSize: Int?,
                              activationBits: Int?, options: OmniQuantOptions, progress: (String) -> Void = { _ in })
        -> (matrices: [String: QuantizedMatrix], losses: [OmniQuantBlockLoss]) {
        let c = model.config, t = calibration.context
        /// A batch's windows from its stream's length.
        func windows(_ stream: [Float]) -> Int { stream.count / (t * c.dim) }
        let names = Dictionary(uniqueKeysWithValues: QuantizedRun.projections(model.layout).map { ($0.slots.index, $0.name) })
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
            defer { model.postTrainingActivationBits = activationBits }
            for i in fpStream.indices {
                let b = windows(fpStream[i])
                fpStream[i].withUnsafeMutableBufferPointer { model.forwardBlock(l, input: $0.baseAddress!, output: $0.baseAddress!, batch: b, length: t) }
            }
            var clippings: [Clipping] = [], offset = 0
            for p in slots.projections {
                let clipping = Clipping(name: names[p.index] ?? "\(p.index)",
                                        slots: p, original: Array(UnsafeBufferPointer(start: model.parameters + p.weight, count: p.weightCount)),
                                        groupSize: groupSize ?? p.inFeatures, offset: offset)
                clippings.append(clipping)
                offset += clipping.logitCount
            }
            model.postTrainingActivationBits = activationBits
            var logits = [Float](repeating: bits.integerBits == nil ? 0 : initialLogit, count: offset)
            var grad = [Float](repeating: 0, count: offset)

            /// Mean squared error of the block's output against the targets on every batch;
            /// with `train`, one AdamW step per batch.
            func epoch(train optimizer: AdamW?) -> Double {
                var total: Double = 0
                for i in quantizedStream.indices {
                    if optimizer != nil { apply(clippings, logits: logits, bits: bits, model: model) }
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
                    logits.withUnsafeMutableBufferPointer { logits in
                        chainGradients(clippings, logits: logits.baseAddress!, into: &grad, bits: bits, model: model)
                        optimizer.update(parameters: logits.baseAddress!, gradients: grad, learningRate: options.learningRate)
                    }
                }
                return total / Double(quantizedStream.count)
            }
            apply(clippings, logits: nil, bits: bits, model: model)
            let rtn = epoch(train: nil)
            apply(clippings, logits: logits, bits: bits, model: model)
            let start = epoch(train: nil)
            let optimizer = AdamW(count: offset)
            for e in 0..<options.epochs {
                let loss = epoch(train: optimizer)
                progress(String(format: "block %d/%d epoch %d/%d: loss %.4g", l + 1, c.layers, e + 1, options.epochs, loss))
            }
            let quantized = apply(clippings, logits: logits, bits: bits, model: model, keepCodes: true)
            matrices.merge(quantized) { first, _ in first }
            let end = epoch(train: nil)
            var factors: [Float] = []
            for p in clippings {
                for r in 0..<p.slots.outFeatures {
                    for g in 0..<p.groups {
                        let f = logits.withUnsafeBufferPointer { clip($0.baseAddress!, p, row: r, group: g, bits: bits) }
                        factors += bits.integerBits == nil ? [f.upper] : [f.upper, f.lower]
                    }
                }
            }
            losses.append(OmniQuantBlockLoss(layer: l, roundToNearest: rtn, start: start, end: end,
                                             clipFactors: (factors.min() ?? 1)...(factors.max() ?? 1)))
            // The quantized stream moves on through the quantized block.
            for i in quantizedStream.indices {
                let b = windows(quantizedStream[i])
                quantizedStream[i].withUnsafeMutableBufferPointer {
                    model.forwardBlock(l, input: $0.baseAddress!, output: $0.baseAddress!, batch: b, length: t)
                }
            }
        }
        return (matrices, losses)
    }
}
