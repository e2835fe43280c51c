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
/// backward's straight-through mask), its INT4 codes and its step s_w.
struct Int4Weight {
    var transformed: UnsafePointer<Float>
    var codes: UnsafePointer<Int8>
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
    /// FP32 operands (rows sampled with p < 1, the exact backward), and dL/d(W H).
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
        IntegerMatmul.forward(out, ws.inputCodes, weight.codes, rows: n, inFeatures: i, outFeatures: o)
        let scale = sx * weight.step
        Parallel.forRanges(n * o) { range in
            for k in range { out[k] *= scale }
        }
    }

    /// dinp += dL/dX, dparams += dL/dW and both steps' gradients, for dout G [n, o].
    /// `scratchA` and `scratchB` hold n * i floats each; `seed` drives the sampling.
    static func backward(dinp: UnsafeMutablePointer<Float>, dparams: UnsafeMutablePointer<Float>, dout g: UnsafePointer<Float>,
                         inp: UnsafePointer<Float>, params: UnsafePointer<Float>, slots: BitLinearSlots, steps: StepSlots,
                         weight: Int4Weight, block: Int, mode: Int4Backward, seed: UInt64, rows n: Int, sequenceLength t: Int,
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
            let scales = LeverageScoreSampling.splitBits(g, count: n * o, hi: ws.high, lo: ws.low, rng: &rng)
            let parts = GradientParts(high: UnsafePointer(ws.high), low: UnsafePointer(ws.low),
                                      highScale: scales.high, lowScale: scales.low, rows: n, width: o)
            activationGradient(dxh, parts: parts, weight: weight, inFeatures: i, rng: &rng, workspace: ws)
            weightGradient(dwh, parts: parts, inputStep: sx, inFeatures: i, rng: &rng, workspace: ws)
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
                                   inFeatures i: Int, rng: inout Xoshiro256, workspace ws: Int4Workspace) {
        let n = parts.rows, o = parts.width
        let scores = (0..<2 * n).map { parts.norm($0) }
        let kept = LeverageScoreSampling.sample(LeverageScoreSampling.probabilities(scores: scores, budget: Double(n)), rng: &rng)
        guard !kept.isEmpty else { return }
        for (j, k) in kept.enumerated() { (ws.gatheredParts + j * o).update(from: parts.codes(k.row), count: o) }
        IntegerMatmul.backwardInput(ws.products, ws.gatheredParts, weight.codes, rows: kept.count, inFeatures: i,
                                    outFeatures: o, scratch: ws.transposeA)
        // Rows of one token (its high and low part) land in the same output row: serial
        // over kept rows, vectorized along the row.
        for (j, k) in kept.enumerated() {
            let factor = parts.scale(k.row) * k.weight * weight.step
            let y = dxh + (k.row % n) * i, p = ws.products + j * i
            for c in 0..<i { y[c] += factor * Float(p[c]) }
        }
    }

    /// dL/d(WH) += sum over kept part rows r of (scale_r / p_r) part_r^T q(x_r H) s_x. Rows
    /// kept with p = 1 go through the integer product (one per part, each with its scale);
    /// the few with p < 1 carry a weight 1 / p no INT4 code can hold, so they take an FP32
    /// product, as in the paper's reference kernels.
    static func weightGradient(_ dwh: UnsafeMutablePointer<Float>, parts: GradientParts, inputStep sx: Float,
                               inFeatures i: Int, rng: inout Xoshiro256, workspace ws: Int4Workspace) {
        let n = parts.rows, o = parts.width
        let inputNorms = (0..<n).map { sx * codeNorm(ws.inputCodes + $0 * i, i) }
        let scores = (0..<2 * n).map { parts.norm($0) * inputNorms[$0 % n] }
        let kept = LeverageScoreSampling.sample(LeverageScoreSampling.probabilities(scores: scores, budget: Double(n)), rng: &rng)
        for part in 0..<2 {
            let whole = kept.filter { ($0.row < n) == (part == 0) && $0.weight == 1 }
            guard !whole.isEmpty else { continue }
            for (j, k) in whole.enumerated() {
                (ws.gatheredParts + j * o).update(from: parts.codes(k.row), count: o)
                (ws.gatheredInputs + j * i).update(from: ws.inputCodes + (k.row % n) * i, count: i)
            }
            IntegerMatmul.backwardWeight(ws.products, ws.gatheredParts, ws.gatheredInputs, rows: whole.count, inFeatures: i,
                                         outFeatures: o, scratchG: ws.transposeA, scratchX: ws.transposeB)
            let factor = parts.scale(whole[0].row) * sx, products = ws.products
            Parallel.forRanges(o * i) { range in
                for k in range { dwh[k] += factor * Float(products[k]) }
            }
        }
        let sampled = kept.filter { $0.weight != 1 }
        guard !sampled.isEmpty else { return }
        for (j, k) in sampled.enumerated() {
            let factor = parts.scale(k.row) * k.weight, codes = parts.codes(k.row)
            let a = ws.floatA + j * o, x = ws.floatB + j * i, xc = ws.inputCodes + (k.row % n) * i
            for c in 0..<o { a[c] = factor * Float(codes[c]) }
            for c in 0..<i { x[c] = sx * Float(xc[c]) }
        }
        Matmul.backwardWeight(dwh, ws.floatA, ws.floatB, rows: sampled.count, inFeatures: i, outFeatures: o)
    }

    // MARK: Helpers

    /// into = inp H, row by row in blocks.
    static func transform(_ inp: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, rows: Int, width: Int, block: Int) {
        out.update(from: inp, count: rows * width)
        WalshHadamard.blockDiagonal(out, rows: rows, width: width, block: block)
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
