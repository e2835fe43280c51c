// A projection of the `int4` mode ("Training Transformers with 4-bit Integers", Xi et
// al. 2023), all three products on 4-bit integers:
//   forward   Y = s_x s_w q(X H) q(W H)^T: the Hadamard quantizer (block-diagonal H along
//             the shared feature dimension, then LSQ) on both operands;
//   backward  dL/d(XH) = G q(W H) s_w and dL/d(WH) = G^T q(X H) s_x, with G split into a
//             high and a low INT4 part (bit splitting) and the 2N part rows sampled by
//             leverage score with a budget of N rows; then LSQ's straight-through mask
//             and step gradients, and H to return to the original basis.
// `--int4-backward exact` computes the two backward products in FP32 (the ablation).
import Foundation

/// An `int4` projection's weight as the forward pass uses it: W H (FP32, for the
/// backward's straight-through mask), its INT4 codes [o, i], the same transposed [i, o]
/// (the activation gradient's operand, made once per step) and its step s_w.
struct Int4Weight {
    var transformed: UnsafePointer<Float>
    var codes: UnsafePointer<Int8>
    var transposedCodes: UnsafePointer<Int8>
    var step: Float
}

/// Scratch for the integer products of every `int4` projection of a model, sized once
/// for `rows` = micro-batch x context and the widest projection side `wide`.
final class Int4Workspace {
    let rows, wide: Int
    /// Codes of q(X H) [rows, wide] and of the two gradient parts [rows, wide] each.
    let inputCodes, high, low: UnsafeMutablePointer<Int8>
    /// Kept part rows and their input rows, gathered [2 rows, wide] each.
    let gatheredParts, gatheredInputs: UnsafeMutablePointer<Int8>
    /// Transposes inside the integer products, [max(2 rows, wide), wide] each.
    let transposeA, transposeB: UnsafeMutablePointer<Int8>
    let products: UnsafeMutablePointer<Int32>
    /// FP32 operands of the exact backward, and dL/d(W H).
    let floatA, floatB, weightGradient: UnsafeMutablePointer<Float>

    init(rows: Int, wide: Int) {
        (self.rows, self.wide) = (rows, wide)
        let codes = rows * wide, gathered = 2 * rows * wide, square = max(2 * rows, wide) * wide
        func bytes(_ n: Int) -> UnsafeMutablePointer<Int8> {
            let p = UnsafeMutablePointer<Int8>.allocate(capacity: n)
            p.initialize(repeating: 0, count: n)
            return p
        }
        func floats(_ n: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: n)
            p.initialize(repeating: 0, count: n)
            return p
        }
        (inputCodes, high, low) = (bytes(codes), bytes(codes), bytes(codes))
        (gatheredParts, gatheredInputs) = (bytes(gathered), bytes(gathered))
        (transposeA, transposeB) = (bytes(square), bytes(square))
        products = .allocate(capacity: square)
        products.initialize(repeating: 0, count: square)
        (floatA, floatB, weightGradient) = (floats(square), floats(square), floats(wide * wide))
    }

    static func bytesNeeded(rows: Int, wide: Int) -> Int {
        let square = max(2 * rows, wide) * wide
        return 3 * rows * wide + 4 * rows * wide + 2 * square + 4 * square + 4 * (2 * square + wide * wide)
    }

    deinit {
        for p in [inputCodes, high, low, gatheredParts, gatheredInputs, transposeA, transposeB] { p.deallocate() }
        products.deallocate()
        for p in [floatA, floatB, weightGradient] { p.deallocate() }
    }
}

enum Int4Linear {
    /// A learned step as the quantizer uses it: the optimizer may push it through zero.
    static func step(_ s: Float) -> Float { max(s, 1e-8) }

    /// out[n, o] = s_x s_w q(X H) q(W H)^T for inp X [n, i]. The input step starts (when
    /// still 0) at LSQ's initial value on the first sequence's rows, so it does not
    /// depend on how a batch is split into micro-batches. `scratch` holds n * i floats.
    static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, params: UnsafeMutablePointer<Float>,
                        slots: BitLinearSlots, steps: StepSlots, weight: Int4Weight, block: Int, rows n: Int,
                        sequenceLength t: Int, scratch: UnsafeMutablePointer<Float>, workspace ws: Int4Workspace) {
        let i = slots.inFeatures, o = slots.outFeatures
        transform(inp, into: scratch, rows: n, width: i, block: block)
        if params[steps.input] <= 0 {
            params[steps.input] = LearnedStepQuantizer.initialStep(scratch, count: min(t, n) * i)
        }
        let sx = step(params[steps.input])
        encode(scratch, count: n * i, step: sx, codes: ws.inputCodes)
        IntegerMatmul.forward(out, ws.inputCodes, weight.codes, rows: n, inFeatures: i, outFeatures: o, values: .int4)
        let scale = sx * weight.step
        Parallel.forRanges(n * o) { range in
            for k in range { out[k] *= scale }
        }
    }

    /// dinp += dL/dX, dparams += dL/dW and both steps' gradients, for dout G [n, o].
    /// `scratchA` and `scratchB` hold n * i floats each; `seed` drives the sampling, which
    /// keeps `sampleFraction` of the 2n part rows in expectation (1: every non-zero row).
    static func backward(dinp: UnsafeMutablePointer<Float>, dparams: UnsafeMutablePointer<Float>, dout g: UnsafePointer<Float>,
                         inp: UnsafePointer<Float>, params: UnsafePointer<Float>, slots: BitLinearSlots, steps: StepSlots,
                         weight: Int4Weight, block: Int, mode: Int4Backward, sampleFraction: Double = 0.5, seed: UInt64,
                         rows n: Int, sequenceLength t: Int,
                         scratchA: UnsafeMutablePointer<Float>, scratchB: UnsafeMutablePointer<Float>, workspace ws: Int4Workspace) {
        let i = slots.inFeatures, o = slots.outFeatures
        let sx = step(params[steps.input]), sw = weight.step
        // X H and its codes again (cheaper to recompute than to keep per layer).
        let xh = scratchA, dxh = scratchB, dwh = ws.weightGradient
        transform(inp, into: xh, rows: n, width: i, block: block)
        encode(xh, count: n * i, step: sx, codes: ws.inputCodes)
        dxh.update(repeating: 0, count: n * i)
        dwh.update(repeating: 0, count: o * i)
        switch mode {
        case .exact:
            decode(ws.inputCodes, count: n * i, step: sx, into: ws.floatA)
            decode(weight.codes, count: o * i, step: sw, into: ws.floatB)
            Matmul.backwardInput(dxh, g, ws.floatB, rows: n, inFeatures: i, outFeatures: o)
            Matmul.backwardWeight(dwh, g, ws.floatA, rows: n, inFeatures: i, outFeatures: o)
        case .lss:
            var rng = Xoshiro256(seed: seed)
            let scales = LeverageScoreSampling.splitBits(g, count: n * o, hi: ws.high, lo: ws.low,
                                                         key: UInt32(truncatingIfNeeded: rng.next()))
            let parts = GradientParts(high: UnsafePointer(ws.high), low: UnsafePointer(ws.low),
                                      highScale: scales.high, lowScale: scales.low, rows: n, width: o)
            let budget = sampleFraction * Double(2 * n)
            activationGradient(dxh, parts: parts, weight: weight, inFeatures: i, budget: budget, rng: &rng, workspace: ws)
            weightGradient(dwh, parts: parts, inputStep: sx, inFeatures: i, budget: budget, rng: &rng, workspace: ws)
        }
        // Straight through q (inside its range), the steps' gradients, then back through H.
        // LSQ scales the input step's gradient by the features of one example (a sequence),
        // so accumulated micro-batches equal one batch.
        let dsx = parallelStepGradient(xh, count: n * i, step: sx, gradient: dxh, scaleCount: min(t, n) * i)
        let dsw = parallelStepGradient(weight.transformed, count: o * i, step: sw, gradient: dwh, scaleCount: o * i)
        WalshHadamard.blockDiagonal(dxh, rows: n, width: i, block: block)
        WalshHadamard.blockDiagonal(dwh, rows: o, width: i, block: block)
        let dw = dparams + slots.weight
        Parallel.forRanges(n * i) { range in
            for k in range { dinp[k] += dxh[k] }
        }
        Parallel.forRanges(o * i) { range in
            for k in range { dw[k] += dwh[k] }
        }
        dparams[steps.input] += dsx
        dparams[steps.weight] += dsw
    }

    // MARK: The sampled backward products

    /// G as 2n INT4 rows: row r < n is high part r (times highScale), row n + r low part r.
    struct GradientParts {
        let high, low: UnsafePointer<Int8>
        let highScale, lowScale: Float
        let rows, width: Int

        func codes(_ r: Int) -> UnsafePointer<Int8> { r < rows ? high + r * width : low + (r - rows) * width }
        func scale(_ r: Int) -> Float { r < rows ? highScale : lowScale }
        func norm(_ r: Int) -> Float { scale(r) * codeNorm(codes(r), width) }
    }

    /// dL/d(XH) += sum over kept part rows r of (scale_r / p_r) part_r q(WH) s_w: each
    /// output row is its token's two parts, so the weights 1 / p apply after the product.
    static func activationGradient(_ dxh: UnsafeMutablePointer<Float>, parts: GradientParts, weight: Int4Weight,
                                   inFeatures i: Int, budget: Double, rng: inout Xoshiro256, workspace ws: Int4Workspace) {
        let n = parts.rows, o = parts.width
        let scores = rowValues(2 * n, width: o) { parts.norm($0) }
        let kept = LeverageScoreSampling.sample(LeverageScoreSampling.probabilities(scores: scores, budget: budget), rng: &rng)
        guard !kept.isEmpty else { return }
        for (j, k) in kept.enumerated() { (ws.gatheredParts + j * o).update(from: parts.codes(k.row), count: o) }
        IntegerMatmul.forward(ws.products, ws.gatheredParts, weight.transposedCodes, rows: kept.count, inFeatures: o,
                              outFeatures: i, values: .int4)
        // A token's high and low part land in the same output row: the cores take
        // column ranges, so no two write one value.
        let products = ws.products
        Parallel.forRanges(i, workPerItem: kept.count) { columns in
            for (j, k) in kept.enumerated() {
                let factor = parts.scale(k.row) * k.weight * weight.step
                let y = dxh + (k.row % n) * i, p = products + j * i
                for c in columns { y[c] += factor * Float(p[c]) }
            }
        }
    }

    /// dL/d(WH) += sum over kept part rows r of (scale_r / p_r) part_r^T q(x_r H) s_x, in
    /// three integer products: the rows kept with p = 1 of each part (each part has its own
    /// step), and the rows kept with p < 1, whose weight 1 / p no INT4 code can hold. Those
    /// are multiplied out and rounded again to INT4 at one common step, stochastically, so
    /// the estimate stays unbiased. (The paper's reference kernels take them in FP16.)
    static func weightGradient(_ dwh: UnsafeMutablePointer<Float>, parts: GradientParts, inputStep sx: Float,
                               inFeatures i: Int, budget: Double, rng: inout Xoshiro256, workspace ws: Int4Workspace) {
        let n = parts.rows, o = parts.width
        let inputCodes = UnsafePointer(ws.inputCodes)
        let inputNorms = rowValues(n, width: i) { sx * codeNorm(inputCodes + $0 * i, i) }
        let scores = rowValues(2 * n, width: o) { parts.norm($0) * inputNorms[$0 % n] }
        let kept = LeverageScoreSampling.sample(LeverageScoreSampling.probabilities(scores: scores, budget: budget), rng: &rng)
        let groups = [kept.filter { $0.row < n && $0.weight == 1 }, kept.filter { $0.row >= n && $0.weight == 1 },
                      kept.filter { $0.weight != 1 }]
        for (group, rows) in groups.enumerated() where !rows.isEmpty {
            var step = parts.scale(rows[0].row)
            if group < 2 {
                for (j, k) in rows.enumerated() { (ws.gatheredParts + j * o).update(from: parts.codes(k.row), count: o) }
            } else {
                var largest: Float = 0
                for k in rows { largest = max(largest, parts.scale(k.row) * k.weight * Float(maxCode(parts.codes(k.row), o))) }
                guard largest > 0 else { continue }
                step = largest / 7
                let key = UInt32(truncatingIfNeeded: rng.next()), gathered = ws.gatheredParts
                // The integer from the bits of v + 1.5 * 2^23 and unchecked index arithmetic:
                // a trapping conversion or addition would keep the loop scalar.
                let magic: Float = 12_582_912
                Parallel.forRanges(rows.count, workPerItem: o) { range in
                    for j in range {
                        let k = rows[j], factor = parts.scale(k.row) * k.weight / step, codes = parts.codes(k.row)
                        let first = j * o, out = gathered + first
                        // |codes * factor| <= 7, so floor(v + u) stays in [-7, 7].
                        for c in 0..<o {
                            let u = CounterRandom.uniform(key: key, index: first &+ c)
                            let v = (Float(codes[c]) * factor + u).rounded(.down) + magic
                            out[c] = Int8(truncatingIfNeeded: v.bitPattern)
                        }
                    }
                }
            }
            for (j, k) in rows.enumerated() {
                (ws.gatheredInputs + j * i).update(from: ws.inputCodes + (k.row % n) * i, count: i)
            }
            IntegerMatmul.backwardWeight(ws.products, ws.gatheredParts, ws.gatheredInputs, rows: rows.count, inFeatures: i,
                                         outFeatures: o, scratchG: ws.transposeA, scratchX: ws.transposeB, values: .int4)
            let factor = step * sx, products = ws.products
            Parallel.forRanges(o * i) { range in
                for k in range { dwh[k] += factor * Float(products[k]) }
            }
        }
    }

    // MARK: Helpers

    /// into = inp H, row by row in blocks.
    static func transform(_ inp: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, rows: Int, width: Int, block: Int) {
        WalshHadamard.blockDiagonal(out, rows: rows, width: width, block: block, from: inp)
    }

    /// A weight's INT4 codes from W H [o, i] at step s, and the same transposed [i, o]
    /// (the activation gradient's operand): made once per optimizer step.
    static func encodeWeight(_ transformed: UnsafePointer<Float>, rows o: Int, cols i: Int, step: Float,
                             codes: UnsafeMutablePointer<Int8>, transposed: UnsafeMutablePointer<Int8>) {
        encode(transformed, count: o * i, step: step, codes: codes)
        IntegerMatmul.transpose(codes, rows: o, cols: i, into: transposed)
    }

    /// The INT4 codes clamp(round(x / s), -8, 7), on all cores.
    static func encode(_ x: UnsafePointer<Float>, count: Int, step s: Float, codes: UnsafeMutablePointer<Int8>) {
        let inverse = 1 / s, magic: Float = 12_582_912  // 1.5 * 2^23: round half to even
        Parallel.forRanges(count) { range in
            for k in range {
                let v = min(max(x[k] * inverse, LearnedStepQuantizer.lowest), LearnedStepQuantizer.highest) + magic
                codes[k] = Int8(truncatingIfNeeded: v.bitPattern)
            }
        }
    }

    static func decode(_ codes: UnsafePointer<Int8>, count: Int, step s: Float, into out: UnsafeMutablePointer<Float>) {
        Parallel.forRanges(count) { range in
            for k in range { out[k] = Float(codes[k]) * s }
        }
    }

    /// [f(0), ..., f(count - 1)] computed on all cores (each f reads a row of `width`).
    static func rowValues(_ count: Int, width: Int, _ f: (Int) -> Float) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            let out = buffer.baseAddress!
            Parallel.forRanges(count, workPerItem: width) { range in
                for r in range { out[r] = f(r) }
            }
            initialized = count
        }
    }

    /// The largest |code| of a row. The largest and smallest are taken apart (a negation
    /// inside the loop checks for overflow, which keeps it scalar); codes >= -8, so the
    /// final negation cannot overflow.
    static func maxCode(_ codes: UnsafePointer<Int8>, _ width: Int) -> Int8 {
        var largest: Int8 = 0, smallest: Int8 = 0
        for c in 0..<width {
            largest = max(largest, codes[c])
            smallest = min(smallest, codes[c])
        }
        return max(largest, 0 &- smallest)
    }

    static func codeNorm(_ codes: UnsafePointer<Int8>, _ width: Int) -> Float {
        var sum: Int32 = 0
        for c in 0..<width { sum &+= Int32(codes[c]) * Int32(codes[c]) }
        return Float(sum).squareRoot()
    }

    /// LearnedStepQuantizer.backward in place on `gradient`, in a fixed number of chunks
    /// on all cores (their partial sums added in order, so the result does not vary).
    static func parallelStepGradient(_ x: UnsafePointer<Float>, count: Int, step: Float,
                                     gradient: UnsafeMutablePointer<Float>, scaleCount: Int) -> Float {
        let chunks = 8
        var partial = [Float](repeating: 0, count: chunks)
        partial.withUnsafeMutableBufferPointer { sums in
            let out = sums.baseAddress!
            Parallel.forEach(chunks) { c in
                let start = count * c / chunks, end = count * (c + 1) / chunks
                out[c] = LearnedStepQuantizer.backward(x + start, count: end - start, step: step, dout: gradient + start,
                                                       dx: gradient + start, scaleCount: scaleCount)
            }
        }
        return partial.reduce(0, +)
    }
}
