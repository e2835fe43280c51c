// BitLinear (BitNet eq. 11): y = (Quant(SubLN(x)) @ W~^T) * beta * gamma / Qb, the
// projection every block uses; in `fp` mode an ordinary linear layer y = x @ W^T.

import BitNetFormat

/// What a quantized BitLinear saves for its backward pass. Shapes: mean, rstd,
/// gamma [N]; quantized [N, inFeatures] as Int8 (4x smaller than FP32); eta [N], the
/// shift of unsigned codes (nil for signed ones).
public struct BitLinearSaved {
    public var mean: UnsafeMutablePointer<Float>
    public var rstd: UnsafeMutablePointer<Float>
    public var gamma: UnsafeMutablePointer<Float>
    public var quantized: UnsafeMutablePointer<Int8>
    public var eta: UnsafeMutablePointer<Float>?

    public init(mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>, gamma: UnsafeMutablePointer<Float>,
                quantized: UnsafeMutablePointer<Int8>, eta: UnsafeMutablePointer<Float>? = nil) {
        (self.mean, self.rstd, self.gamma, self.quantized, self.eta) = (mean, rstd, gamma, quantized, eta)
    }
}

/// The weights one BitLinear multiplies by: W~ (integer-valued floats, or W itself
/// in fp mode), its scale beta (1 in fp mode), and each row's sum of W~ (what the shift
/// of unsigned activation codes adds to an output).
public struct EffectiveWeight {
    public var values: UnsafeMutablePointer<Float>
    public var scale: Float
    public var rowSums: UnsafePointer<Float>?
    /// W~ as int8, for the integer forward product (nil: the FP32 product).
    public var codes: UnsafePointer<Int8>?

    public init(values: UnsafeMutablePointer<Float>, scale: Float, rowSums: UnsafePointer<Float>? = nil,
                codes: UnsafePointer<Int8>? = nil) {
        (self.values, self.scale, self.rowSums, self.codes) = (values, scale, rowSums, codes)
    }
}

public struct BitLinearOptions {
    public var mode: WeightMode
    public var norm: NormKind
    public var scaling: ActivationScaling
    public var normEpsilon: Float
    /// Unsigned activation codes (ActivationRange): saved.eta and weight.rowSums are set.
    public var unsigned = false
    /// In fp mode, inputs rounded to this many bits per token before the product (a model
    /// quantized after training, in eval and sample); nil: FP32.
    public var activationBits: Int?
}

public enum BitLinear {
    /// out[N, O] = BitLinear(inp[N, I]) for N = sequences x t rows. `scratchA` and
    /// `scratchB` hold N * I floats each.
    public static func forward(
        out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, params: UnsafePointer<Float>,
        slots: BitLinearSlots, weight: EffectiveWeight, saved: BitLinearSaved?, options: BitLinearOptions,
        rows n: Int, sequenceLength t: Int, scratchA: UnsafeMutablePointer<Float>, scratchB: UnsafeMutablePointer<Float>
    ) {
        let i = slots.inFeatures, o = slots.outFeatures
        guard options.mode.isBitNet, let saved else {
            var input = inp
            if let bits = options.activationBits {
                Quantizers.fakeQuantizeRows(out: scratchA, inp: inp, rows: n, width: i, bits: bits)
                input = UnsafePointer(scratchA)
            }
            Matmul.forward(out, input, params + slots.weight, rows: n, inFeatures: i, outFeatures: o)
            return
        }
        let quantized = scratchB
        let sub = slots.subNorm
        quantizeInput(quantized: quantized, normed: scratchA, saved: saved, inp: inp, gain: sub.map { params + $0.gain },
                      bias: sub?.bias.map { params + $0 }, rows: n, sequenceLength: t, width: i, options: options)
        // Integer-valued operands: the FP32 sums are exact (|sum| <= 254 * I < 2^24), so
        // this equals the runtime's integer accumulator before the one rescale per output,
        // whether the int8 kernel or FP32 sgemm computes it.
        if let codes = weight.codes {
            productOnIntegers(out, saved: saved, codes: codes, rowSums: options.unsigned ? weight.rowSums : nil,
                              rows: n, inFeatures: i, outFeatures: o)
        } else {
            Matmul.forward(out, quantized, weight.values, rows: n, inFeatures: i, outFeatures: o)
        }
        if options.unsigned, let eta = saved.eta, let rowSums = weight.rowSums {
            rescaleRowsUnsigned(out, gamma: saved.gamma, eta: eta, weightScale: weight.scale, rowSums: rowSums, rows: n, width: o)
        } else {
            rescaleRows(out, gamma: saved.gamma, weightScale: weight.scale, rows: n, width: o)
        }
    }

    /// SubLN (when the layer has one: `gain` is set), absmax and int8 quantization of the
    /// input, fused row by row so each row is read while in cache, with one fork-join
    /// (per-tensor scaling needs each sequence's maximum first, so it takes two passes).
    /// Same rules as Norm.forward, Quantizers.absmax and Quantizers.quantizeActivations,
    /// whose row helpers it calls.
    static func quantizeInput(
        quantized: UnsafeMutablePointer<Float>, normed: UnsafeMutablePointer<Float>, saved: BitLinearSaved,
        inp: UnsafePointer<Float>, gain: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, rows n: Int,
        sequenceLength t: Int, width c: Int, options: BitLinearOptions
    ) {
        let perToken = options.scaling == .perToken
        let eta = options.unsigned ? saved.eta : nil
        // What is quantized: the SubLN output, or (no SubLN) the input itself.
        let source = gain == nil ? inp : UnsafePointer(normed)
        Parallel.forRanges(n, workPerItem: c) { rows in
            for r in rows {
                let y = source + r * c
                if let gain {
                    (saved.mean[r], saved.rstd[r]) = Norm.forwardRow(options.norm, out: normed + r * c, inp: inp + r * c,
                                                                     gain: gain, bias: bias, width: c, epsilon: options.normEpsilon)
                }
                if let eta {
                    // Unsigned: (min, max) now, turned into (eta, gamma = max - eta) below.
                    (eta[r], saved.gamma[r]) = Quantizers.minMaxRow(y, width: c)
                    if perToken {
                        saved.gamma[r] = max(saved.gamma[r] - eta[r], Quantizers.minimumAbsmax)
                        Quantizers.quantizeRowUnsigned(out: quantized + r * c, saved: saved.quantized + r * c, inp: y,
                                                       eta: eta[r], gamma: saved.gamma[r], width: c)
                    }
                } else {
                    saved.gamma[r] = Quantizers.absmaxRow(y, width: c)
                    if perToken {
                        Quantizers.quantizeRow(out: quantized + r * c, saved: saved.quantized + r * c, inp: y,
                                               gamma: saved.gamma[r], width: c)
                    }
                }
            }
        }
        guard !perToken else { return }
        if let eta {
            Quantizers.shareSequenceRange(eta: eta, gamma: saved.gamma, rows: n, sequenceLength: t)
            for r in 0..<n { saved.gamma[r] = max(saved.gamma[r] - eta[r], Quantizers.minimumAbsmax) }
            Quantizers.quantizeActivationsUnsigned(out: quantized, saved: saved.quantized, inp: source, eta: eta,
                                                   gamma: saved.gamma, rows: n, width: c)
        } else {
            Quantizers.shareSequenceMaximum(saved.gamma, rows: n, sequenceLength: t)
            Quantizers.quantizeActivations(out: quantized, saved: saved.quantized, inp: source, gamma: saved.gamma,
                                           rows: n, width: c)
        }
    }

    /// out[n, o] = X~ W~^T on the int8 kernel, rows split over the cores: the saved int8
    /// activation codes against W~'s. Unsigned codes are saved as q - offset, so the
    /// offset times each row's sum of W~ is added back (still exact integers).
    static func productOnIntegers(_ out: UnsafeMutablePointer<Float>, saved: BitLinearSaved, codes: UnsafePointer<Int8>,
                                  rowSums: UnsafePointer<Float>?, rows n: Int, inFeatures i: Int, outFeatures o: Int) {
        IntegerMatmul.forward(out, saved.quantized, codes, rows: n, inFeatures: i, outFeatures: o, values: .ternaryWeights)
        guard let rowSums else { return }
        let offset = Float(ActivationRange.unsignedOffset)
        Parallel.forRanges(n, workPerItem: o) { rows in
            for r in rows {
                let y = out + r * o
                for j in 0..<o { y[j] += offset * rowSums[j] }
            }
        }
    }

    /// y[n, o] = acc[n, o] * (gamma[n] / Qb * beta): the dequantization rule.
    static func rescaleRows(_ out: UnsafeMutablePointer<Float>, gamma: UnsafePointer<Float>, weightScale: Float,
                            rows n: Int, width o: Int) {
        Parallel.forRanges(n, workPerItem: o) { rows in
            for r in rows {
                let s = gamma[r] / Quantizers.activationLevels * weightScale
                let y = out + r * o
                for j in 0..<o { y[j] *= s }
            }
        }
    }

    /// Unsigned codes: y[n, o] = acc[n, o] * (gamma[n] / 254 * beta) + (eta[n] * beta) * rowSum[o],
    /// since x = x~ gamma / 254 + eta and the shift adds eta times the row's sum of W~.
    static func rescaleRowsUnsigned(_ out: UnsafeMutablePointer<Float>, gamma: UnsafePointer<Float>,
                                    eta: UnsafePointer<Float>, weightScale: Float, rowSums: UnsafePointer<Float>,
                                    rows n: Int, width o: Int) {
        Parallel.forRanges(n, workPerItem: o) { rows in
            for r in rows {
                let s = gamma[r] / ActivationRange.unsignedLevels * weightScale, shift = eta[r] * weightScale
                let y = out + r * o
                for j in 0..<o { y[j] = y[j] * s + shift * rowSums[j] }
            }
        }
    }

    /// dinp += dL/dinp; dparams += dL/dW (and SubLN gains). The straight-through
    /// estimator treats W~ * beta as W (identity, as in BitNet's reference code) and
    /// the dequantized activation as SubLN(x): with gamma = absmax the clip range is
    /// never left, so the activation STE mask (Quantizers.activationSTE) is all ones.
    public static func backward(
        dinp: UnsafeMutablePointer<Float>, dparams: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
        inp: UnsafePointer<Float>, params: UnsafePointer<Float>, slots: BitLinearSlots, weight: EffectiveWeight,
        saved: BitLinearSaved?, options: BitLinearOptions, rows n: Int,
        scratchA: UnsafeMutablePointer<Float>, scratchB: UnsafeMutablePointer<Float>
    ) {
        let i = slots.inFeatures, o = slots.outFeatures
        guard options.mode.isBitNet, let saved else {
            Matmul.backwardInput(dinp, dout, params + slots.weight, rows: n, inFeatures: i, outFeatures: o)
            // dW from the input the product used: rounded per token when it was.
            var input = inp
            if let bits = options.activationBits {
                Quantizers.fakeQuantizeRows(out: scratchA, inp: inp, rows: n, width: i, bits: bits)
                input = UnsafePointer(scratchA)
            }
            Matmul.backwardWeight(dparams + slots.weight, dout, input, rows: n, inFeatures: i, outFeatures: o)
            return
        }
        // dW += dout^T @ x_deq with x_deq = x~ * gamma / Qb.
        let dequantized = scratchA
        let eta = options.unsigned ? saved.eta : nil
        Parallel.forRanges(n, workPerItem: i) { rows in
            for r in rows {
                let q = saved.quantized + r * i, x = dequantized + r * i
                if let eta {
                    let s = saved.gamma[r] / ActivationRange.unsignedLevels, shift = eta[r], offset = Float(ActivationRange.unsignedOffset)
                    for j in 0..<i { x[j] = (Float(q[j]) + offset) * s + shift }
                } else {
                    let s = saved.gamma[r] / Quantizers.activationLevels
                    for j in 0..<i { x[j] = Float(q[j]) * s }
                }
            }
        }
        Matmul.backwardWeight(dparams + slots.weight, dout, dequantized, rows: n, inFeatures: i, outFeatures: o)
        // d(SubLN output) = dout @ (W~ * beta); without a SubLN, that is dinp's share.
        guard let sub = slots.subNorm else {
            Matmul.backwardInput(dinp, dout, weight.values, rows: n, inFeatures: i, outFeatures: o, alpha: weight.scale)
            return
        }
        let dnormed = scratchB
        Matmul.backwardInput(dnormed, dout, weight.values, rows: n, inFeatures: i, outFeatures: o, alpha: weight.scale,
                             accumulate: false)
        Norm.backward(options.norm, dinp: dinp, dgain: dparams + sub.gain, dbias: sub.bias.map { dparams + $0 },
                      dout: dnormed, inp: inp, gain: params + sub.gain, mean: saved.mean, rstd: saved.rstd,
                      rows: n, width: i)
    }
}
