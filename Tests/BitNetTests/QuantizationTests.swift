// Post-training quantization (issue 11), round to nearest: the codes against the
// equations written out per value, group boundaries, the quantized run's weights against
// a direct computation from its stored codes and scales, W8 against fp, bad input.
import Foundation
import Testing
@testable import BitNet

@Suite struct QuantizationTests {
    /// Min-max round to nearest of one group, value by value (the range holds 0).
    static func referenceMinMax(_ w: [Float], bits: Int) -> (codes: [Int], scale: Float, zero: Float) {
        let levels = Float((1 << bits) - 1)
        let lo = min(w.min() ?? 0, 0), hi = max(w.max() ?? 0, 0)
        if hi == lo { return (w.map { _ in 0 }, 1, 0) }
        let scale = (hi - lo) / levels
        let zero = min(max((-lo / scale).rounded(.toNearestOrEven), 0), levels)
        return (w.map { Int(min(max(($0 / scale).rounded(.toNearestOrEven) + zero, 0), levels)) }, scale, zero)
    }

    @Test(arguments: WeightBits.allCases)
    func codesFollowTheEquationsGroupByGroup(bits: WeightBits) {
        var rng = Xoshiro256(seed: 21)
        let (rows, cols, group) = (5, 48, 16)
        var w = (0..<rows * cols).map { _ in rng.normal() * 0.1 }
        w[7] = 0.9  // an outlier in row 0, group 0 only
        for c in 16..<32 { w[cols + c] = 0 }  // an all-zero group
        let q = RoundToNearest.quantize(w, rows: rows, cols: cols, bits: bits, groupSize: group)
        let dequantized = q.dequantized()
        for r in 0..<rows {
            for g in 0..<cols / group {
                let slice = Array(w[(r * cols + g * group)..<(r * cols + (g + 1) * group)])
                let slot = r * (cols / group) + g, codes = (0..<group).map { q.code(r * cols + g * group + $0) }
                #expect(codes.allSatisfy(bits.holds), "\(bits) row \(r) group \(g): \(codes)")
                switch bits {
                case .one:
                    let mean = slice.reduce(0, +) / Float(group)
                    #expect(codes == slice.map { $0 - mean > 0 ? 1 : -1 })
                    #expect(abs(q.scales[slot] - slice.map(abs).reduce(0, +) / Float(group)) < 1e-6)
                case .ternary:
                    let gamma = slice.map(abs).reduce(0, +) / Float(group)
                    #expect(codes == slice.map { Int(min(max(($0 / (gamma + 1e-6)).rounded(.toNearestOrEven), -1), 1)) })
                default:
                    let reference = Self.referenceMinMax(slice, bits: bits.integerBits ?? 0)
                    #expect(codes == reference.codes && q.scales[slot] == reference.scale && q.zeros[slot] == reference.zero)
                    // Inside the range, round to nearest is off by at most half a step.
                    for i in 0..<group {
                        #expect(abs(dequantized[r * cols + g * group + i] - slice[i]) <= reference.scale / 2 * 1.0001)
                    }
                }
            }
        }
        // The outlier widens only its own group's step.
        if bits.integerBits != nil { #expect(q.scales[0] > 2 * q.scales[1]) }
    }

    /// A tiny fp run (40 steps) for the run-level tests.
    static let fpRun: URL = {
        let run = Fixtures.temporaryDirectory("ptq-fp")
        do {
            let dataset = try TokenDataset(directory: Fixtures.shared.data)
            let config = Fixtures.tinyRunConfig(mode: .fp, steps: 40, vocabSize: dataset.meta.vocabSize)
            try Trainer(runDirectory: run, config: config, dataset: dataset, resume: false, force: false).run { _ in }
        } catch {
            Issue.record("the fp run did not train: \(error)")
        }
        return run
    }()

    /// Every projection weight of the loaded quantized run equals scale (code - zero),
    /// computed here from the stored tensors; every code is within its width.
    static func expectWeightsFromCodes(_ q: URL, model: Transformer, bits: WeightBits, group: Int?) throws {
        let file = try SafeTensorsFile(url: q.appendingPathComponent("model.safetensors"))
        for (name, p) in QuantizedRun.projections(model.layout) {
            let groups = p.inFeatures / (group ?? p.inFeatures)
            func floats(_ suffix: String) throws -> [Float] {
                let t = try #require(file.tensors[name + suffix])
                return file.data.subdata(in: t.range).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            }
            let scales = try floats(".scales"), zeros = try floats(".zeros")
            let codes = file.data.subdata(in: try #require(file.tensors[name + ".codes"]).range).map { byte -> Int in
                bits.integerBits == nil ? Int(Int8(bitPattern: byte)) : Int(byte)
            }
            #expect(codes.allSatisfy(bits.holds), "\(name): a code outside \(bits.rawValue) bits")
            var mismatches = 0
            for r in 0..<p.outFeatures {
                for c in 0..<p.inFeatures {
                    let g = r * groups + c / (group ?? p.inFeatures)
                    let expected = scales[g] * (Float(codes[r * p.inFeatures + c]) - zeros[g])
                    if model.parameters[p.weight + r * p.inFeatures + c] != expected { mismatches += 1 }
                }
            }
            #expect(mismatches == 0, "\(name): \(mismatches) weights differ from their codes")
        }
    }

    @Test func quantizedRunHoldsItsCodesAndEvaluatesClose() throws {
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        let (fp, _, _) = try Checkpoint.loadModel(runDirectory: Self.fpRun, batch: 4)
        let fpLoss = Evaluation.loss(model: fp, dataset: dataset, windows: 16, batch: 4)
        let out = Fixtures.temporaryDirectory("ptq-out")
        for (bits, group) in [(WeightBits.eight, nil), (.four, 16), (.ternary, nil), (.one, 16)] as [(WeightBits, Int?)] {
            let q = out.appendingPathComponent("w\(bits.rawValue)-\(group ?? 0)")
            try QuantizedRun.quantize(source: Self.fpRun, bits: bits, groupSize: group, to: q)
            let (model, config, state) = try Checkpoint.loadModel(runDirectory: q, batch: 4)
            #expect(config.model.mode == .fp && state.step == 40)
            try Self.expectWeightsFromCodes(q, model: model, bits: bits, group: group)
            let loss = Evaluation.loss(model: model, dataset: dataset, windows: 16, batch: 4)
            if bits == .eight {
                #expect(abs(exp(Double(loss)) / exp(Double(fpLoss)) - 1) < 0.01, "W8 perplexity \(exp(loss)) against fp \(exp(fpLoss))")
            }
            #expect(loss.isFinite)
        }
    }

    /// Activations rounded per token: every value on the row's grid gamma / Qb, within
    /// half a step of the input, the row's largest magnitude kept exactly.
    @Test(arguments: [4, 6, 8])
    func activationRoundingPerToken(bits: Int) {
        var rng = Xoshiro256(seed: 23)
        let (rows, cols) = (6, 40), qb = Float((1 << (bits - 1)) - 1)
        var x = (0..<rows * cols).map { _ in rng.normal() }
        for c in 0..<cols { x[2 * cols + c] = 0 }  // an all-zero token
        x[5] = 50  // an outlier in token 0 only
        var y = [Float](repeating: .nan, count: x.count)
        Quantizers.fakeQuantizeRows(out: &y, inp: x, rows: rows, width: cols, bits: bits)
        for r in 0..<rows {
            let row = x[r * cols..<(r + 1) * cols], gamma = row.map(abs).max() ?? 0
            for c in 0..<cols {
                let (xi, yi) = (x[r * cols + c], y[r * cols + c])
                if gamma == 0 { #expect(yi == 0); continue }
                let k = yi * qb / gamma
                #expect(abs(k - k.rounded()) < 1e-3 && abs(k) <= qb + 1e-3, "row \(r): \(yi) is not on the grid")
                #expect(abs(yi - xi) <= gamma / qb / 2 * 1.001, "row \(r): \(xi) -> \(yi)")
            }
            if gamma > 0 { #expect(row.contains { abs($0) == gamma } && y[r * cols..<(r + 1) * cols].contains { abs(abs($0) - gamma) < gamma * 1e-6 }) }
        }
    }

    @Test func activationBitsTravelWithTheRun() throws {
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        let out = Fixtures.temporaryDirectory("ptq-abits")
        let w8 = out.appendingPathComponent("w8"), w8a8 = out.appendingPathComponent("w8a8")
        try QuantizedRun.quantize(source: Self.fpRun, bits: .eight, groupSize: nil, to: w8)
        try QuantizedRun.quantize(source: Self.fpRun, bits: .eight, groupSize: nil, activationBits: 8, to: w8a8)
        let (a, _, _) = try Checkpoint.loadModel(runDirectory: w8, batch: 4)
        let (b, _, _) = try Checkpoint.loadModel(runDirectory: w8a8, batch: 4)
        #expect(a.postTrainingActivationBits == nil && b.postTrainingActivationBits == 8)
        let lossA = Evaluation.loss(model: a, dataset: dataset, windows: 16, batch: 4)
        let lossB = Evaluation.loss(model: b, dataset: dataset, windows: 16, batch: 4)
        #expect(lossA != lossB && abs(lossB - lossA) < 0.02, "W8A16 \(lossA), W8A8 \(lossB)")
        #expect((try? QuantizedRun.quantize(source: Self.fpRun, bits: .eight, groupSize: nil, activationBits: 5,
                                            to: out.appendingPathComponent("a5"))) == nil)
    }

    /// GPTQ's promise: on its calibration inputs, the layer's output moves less than with
    /// round to nearest at the same bits (correlated inputs, so the Hessian matters).
    @Test(arguments: [WeightBits.two, .three, .four, .ternary])
    func gptqOutputErrorIsBelowRoundToNearest(bits: WeightBits) throws {
        var rng = Xoshiro256(seed: 31)
        let (rows, cols, n) = (24, 32, 256)
        let mixing = (0..<cols * cols).map { _ in rng.normal() / Float(cols).squareRoot() }
        let z = (0..<n * cols).map { _ in rng.normal() }
        var x = [Float](repeating: 0, count: n * cols)  // x = z mixing: correlated columns
        for i in 0..<n { for j in 0..<cols { for k in 0..<cols { x[i * cols + j] += z[i * cols + k] * mixing[k * cols + j] } } }
        let w = (0..<rows * cols).map { _ in rng.normal() * 0.1 }
        var h = [Float](repeating: 0, count: cols * cols)
        GPTQ.accumulate(&h, x, rows: n, width: cols)
        func outputError(_ q: QuantizedMatrix) -> Double {
            let d = q.dequantized()
            var total: Double = 0
            for i in 0..<n {
                for r in 0..<rows {
                    var e: Double = 0
                    for j in 0..<cols { e += Double(x[i * cols + j]) * Double(d[r * cols + j] - w[r * cols + j]) }
                    total += e * e
                }
            }
            return total
        }
        for group in [cols, 8] {
            let gptq = try GPTQ.quantize(w, rows: rows, cols: cols, hessian: h, bits: bits, groupSize: group)
            let rtn = RoundToNearest.quantize(w, rows: rows, cols: cols, bits: bits, groupSize: group)
            #expect((0..<rows * cols).allSatisfy { bits.holds(gptq.code($0)) })
            let (e1, e2) = (outputError(gptq), outputError(rtn))
            #expect(e1 < 0.9 * e2, "\(bits) groups of \(group): GPTQ \(e1), RTN \(e2)")
            let ordered = try GPTQ.quantize(w, rows: rows, cols: cols, hessian: h, bits: bits, groupSize: group, actOrder: true)
            #expect((0..<rows * cols).allSatisfy { bits.holds(ordered.code($0)) })
            #expect(outputError(ordered) < 0.9 * e2, "\(bits) groups of \(group): act-order \(outputError(ordered)), RTN \(e2)")
        }
    }

    /// Lazy batches (the block's errors applied to later columns in one product) give the
    /// column-by-column result, with one scale per row and with groups smaller than,
    /// larger than and straddling the 128-column block; so does act-order.
    @Test func lazyBatchesEqualColumnByColumn() throws {
        var rng = Xoshiro256(seed: 41)
        let (rows, cols, n) = (6, 300, 400)
        let x = (0..<n * cols).map { i in rng.normal() * (i % cols < 5 ? 8 : 1) }  // a few loud inputs
        let w = (0..<rows * cols).map { _ in rng.normal() * 0.1 }
        var h = [Float](repeating: 0, count: cols * cols)
        GPTQ.accumulate(&h, x, rows: n, width: cols)
        for (group, actOrder) in [(300, false), (20, false), (60, false), (150, false), (300, true), (20, true)] {
            let columnByColumn = try GPTQ.quantize(w, rows: rows, cols: cols, hessian: h, bits: .three, groupSize: group,
                                                   actOrder: actOrder, blockSize: 1)
            let lazy = try GPTQ.quantize(w, rows: rows, cols: cols, hessian: h, bits: .three, groupSize: group, actOrder: actOrder)
            let same = (0..<rows * cols).filter { lazy.code($0) == columnByColumn.code($0) }.count
            #expect(same >= rows * cols - 2, "groups of \(group), act-order \(actOrder): \(rows * cols - same) codes differ")
            let scales = zip(lazy.scales, columnByColumn.scales).map { abs($0 - $1) / max(abs($1), 1e-12) }.max() ?? 0
            #expect(scales < 1e-4, "groups of \(group), act-order \(actOrder): scales differ by \(scales)")
        }
    }

    @Test func gptqRunRecordsItsCalibration() throws {
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        let out = Fixtures.temporaryDirectory("ptq-gptq").appendingPathComponent("w3")
        try QuantizedRun.quantize(source: Self.fpRun, method: .gptq, bits: .three, groupSize: 16,
                                  calibration: (dataset, 8), to: out)
        let settings = try JSONDecoder().decode(QuantizationSettings.self,
                                                from: Data(contentsOf: out.appendingPathComponent("quantization.json")))
        #expect(settings.method == .gptq && settings.calibration == dataset.directory && settings.calibrationWindows == 8)
        let (model, _, _) = try Checkpoint.loadModel(runDirectory: out, batch: 4)
        #expect(Evaluation.loss(model: model, dataset: dataset, windows: 8, batch: 4).isFinite)
        #expect((try? QuantizedRun.quantize(source: Self.fpRun, method: .gptq, bits: .three, groupSize: nil,
                                            to: out.deletingLastPathComponent().appendingPathComponent("none"))) == nil)
    }

    /// OmniQuant's clipping, learned on calibration windows: every block's output error
    /// ends at or below where it started, and below round to nearest's; the clip factors
    /// stay in (0, 1]; the run's codes reproduce its weights; W2 perplexity beats RTN's.
    @Test func omniQuantLearnsClippingThatBeatsRoundToNearest() throws {
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        let out = Fixtures.temporaryDirectory("ptq-omniquant")
        let (omniquant, rtn) = (out.appendingPathComponent("omniquant"), out.appendingPathComponent("rtn"))
        let (_, blocks) = try QuantizedRun.quantize(source: Self.fpRun, method: .omniquant, bits: .two, groupSize: nil,
                                                    calibration: (dataset, 32), omniQuant: OmniQuantOptions(epochs: 40), to: omniquant)
        try QuantizedRun.quantize(source: Self.fpRun, bits: .two, groupSize: nil, to: rtn)
        #expect(blocks.count == 2)
        for b in blocks {
            #expect(b.end <= b.start && b.end < 0.9 * b.roundToNearest, "block \(b.layer): \(b)")
            #expect(b.clipFactors.lowerBound > 0 && b.clipFactors.upperBound <= 1 && b.clipFactors.lowerBound < 0.98,
                    "block \(b.layer): clip factors \(b.clipFactors)")
        }
        let (model, _, _) = try Checkpoint.loadModel(runDirectory: omniquant, batch: 4)
        try Self.expectWeightsFromCodes(omniquant, model: model, bits: .two, group: nil)
        let (rtnModel, _, _) = try Checkpoint.loadModel(runDirectory: rtn, batch: 4)
        let (lossOmniQuant, lossRTN) = (Evaluation.loss(model: model, dataset: dataset, windows: 16, batch: 4),
                                        Evaluation.loss(model: rtnModel, dataset: dataset, windows: 16, batch: 4))
        #expect(lossOmniQuant < lossRTN, "W2 OmniQuant \(lossOmniQuant) against RTN \(lossRTN)")
    }

    /// T = (H_p / sqrt(p) kron Q) D as a dense matrix, entry by entry: H[a][a'] is
    /// (-1)^popcount(a & a') (Sylvester's construction).
    static func denseTransform(_ t: OrthogonalTransform) -> [Double] {
        let (n, m, p) = (t.size, t.mixSize, t.size / t.mixSize)
        var dense = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0..<n {
                let (a, b, a2, b2) = (i / m, i % m, j / m, j % m)
                let h: Double = (a & a2).nonzeroBitCount % 2 == 0 ? 1 : -1
                dense[i * n + j] = h / Double(p).squareRoot() * Double(t.mix[b * m + b2]) * Double(t.signs[j])
            }
        }
        return dense
    }

    /// QuIP's transforms equal their dense definition, are orthogonal (T^T T x = x) on
    /// widths with and without an odd factor, and the two-sided transform of a matrix
    /// and its Hessian round-trips.
    @Test(arguments: [1, 7, 12, 64, 352])
    func incoherenceTransformIsOrthogonal(size: Int) {
        let t = OrthogonalTransform(size: size, seed: UInt64(size))
        var rng = Xoshiro256(seed: 31)
        let x = (0..<size).map { _ in rng.normal() }
        var y = x, scratch = [Float](repeating: 0, count: t.mixSize)
        t.apply(&y, scratch: &scratch)
        let dense = Self.denseTransform(t)
        let reference = (0..<size).map { i in (0..<size).reduce(0.0) { $0 + dense[i * size + $1] * Double(x[$1]) } }
        #expect(zip(y, reference).allSatisfy { abs(Double($0) - $1) < 1e-5 }, "T x differs from the dense T")
        var back = y
        t.apply(&back, transpose: true, scratch: &scratch)
        #expect(zip(back, x).allSatisfy { abs($0 - $1) < 1e-5 }, "T^T T x is not x")
        let normX = x.reduce(0) { $0 + $1 * $1 }, normY = y.reduce(0) { $0 + $1 * $1 }
        #expect(abs(normX - normY) < 1e-4 * normX)

        let incoherence = Incoherence(rows: 12, columns: size, seed: 3)
        let w = (0..<12 * size).map { _ in rng.normal() }
        var turned = w
        incoherence.transform(&turned)
        #expect(zip(turned, w).contains { abs($0 - $1) > 1e-3 } || size == 1)
        incoherence.transform(&turned, inverse: true)
        #expect(zip(turned, w).allSatisfy { abs($0 - $1) < 1e-5 }, "U^T (U W V^T) V is not W")
    }

    /// A QuIP run: codes within their width, and every weight equals U^T (scale (code -
    /// zero)) V computed here with the stored signs and mixes in dense form; a mix that
    /// is not orthogonal is refused on load.
    @Test func quipRunStoresItsTransforms() throws {
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        let q = Fixtures.temporaryDirectory("ptq-quip").appendingPathComponent("w2")
        try QuantizedRun.quantize(source: Self.fpRun, method: .quip, bits: .two, groupSize: nil, calibration: (dataset, 8), to: q)
        let (model, _, _) = try Checkpoint.loadModel(runDirectory: q, batch: 4)
        let file = try SafeTensorsFile(url: q.appendingPathComponent("model.safetensors"))
        func floats(_ name: String) throws -> [Float] {
            let t = try #require(file.tensors[name])
            return file.data.subdata(in: t.range).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        }
        for (name, p) in QuantizedRun.projections(model.layout) {
            let (r, c) = (p.outFeatures, p.inFeatures)
            let codes = file.data.subdata(in: try #require(file.tensors[name + ".codes"]).range).map { Int($0) }
            #expect(codes.allSatisfy(WeightBits.two.holds))
            let scales = try floats(name + ".scales"), zeros = try floats(name + ".zeros")
            let u = Self.denseTransform(try OrthogonalTransform(size: r, signs: try floats(name + ".rows.signs"),
                                                                 mix: try floats(name + ".rows.mix"), what: name))
            let v = Self.denseTransform(try OrthogonalTransform(size: c, signs: try floats(name + ".columns.signs"),
                                                                 mix: try floats(name + ".columns.mix"), what: name))
            let inner = (0..<r * c).map { Double(scales[$0 / c]) * (Double(codes[$0]) - Double(zeros[$0 / c])) }
            // (U^T M V)[i, j] = sum_k sum_l U[k, i] M[k, l] V[l, j]
            var mv = [Double](repeating: 0, count: r * c)
            for k in 0..<r { for j in 0..<c { mv[k * c + j] = (0..<c).reduce(0.0) { $0 + inner[k * c + $1] * v[$1 * c + j] } } }
            var worst = 0.0
            for i in 0..<r {
                for j in 0..<c {
                    let expected = (0..<r).reduce(0.0) { $0 + u[$1 * r + i] * mv[$1 * c + j] }
                    worst = max(worst, abs(expected - Double(model.parameters[p.weight + i * c + j])))
                }
            }
            #expect(worst < 1e-5, "\(name): weights differ from U^T codes V by \(worst)")
        }
        #expect(Evaluation.loss(model: model, dataset: dataset, windows: 8, batch: 4).isFinite)
        // A mix that is not orthogonal.
        let modelURL = q.appendingPathComponent("model.safetensors")
        let mix = try #require(file.tensors.first { $0.key.hasSuffix(".columns.mix") }?.value)
        var bytes = try Data(contentsOf: modelURL)
        bytes.replaceSubrange(mix.range.lowerBound..<(mix.range.lowerBound + 4), with: withUnsafeBytes(of: Float(3)) { Data($0) })
        try bytes.write(to: modelURL)
        do {
            _ = try Checkpoint.loadModel(runDirectory: q, batch: 4)
            Issue.record("a mix that is not orthogonal was accepted")
        } catch {
            #expect("\(error)".contains("is not orthogonal"), "\(error)")
        }
    }

    /// A tiny fp model whose norm gains and biases are not all ones (a fold must carry
    /// them), and the generator for the test's further draws.
    static func modelWithUnevenNorms(_ norm: NormKind, vocabSize: Int, seed: UInt64) -> (Transformer, ModelConfig, Xoshiro256) {
        var config = Fixtures.tinyRunConfig(mode: .fp, vocabSize: vocabSize).model
        config.norm = norm
        let model = Transformer(config: config, batch: 2)
        model.initializeParameters(seed: seed)
        var rng = Xoshiro256(seed: seed + 1)
        for t in model.layout.tensors where t.name.hasSuffix("norm.weight") || t.name.hasSuffix("norm.bias") {
            for i in 0..<t.count { model.parameters[t.offset + i] = 1 + 0.5 * rng.normal() }
        }
        model.parametersDidChange()
        return (model, config, rng)
    }

    /// SmoothQuant's folding is exact: smoothing without rounding leaves the logits as
    /// they were (to FP32 rounding), with RMSNorm and with LayerNorm (gain and bias).
    @Test(arguments: [NormKind.rms, .layer])
    func smoothingLeavesTheLogitsUnchanged(norm: NormKind) throws {
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        var (model, config, rng) = Self.modelWithUnevenNorms(norm, vocabSize: dataset.meta.vocabSize, seed: 4)
        let tokens = (0..<2 * config.context).map { _ in Int32(rng.below(config.vocabSize)) }
        func logits() -> [Float] {
            model.forward(tokens: tokens, targets: nil, batch: 2, length: config.context)
            return (0..<2 * config.context).flatMap { Array(model.logits(row: $0)) }
        }
        let before = logits()
        let windows = CalibrationWindows(dataset, windows: 4, batch: 2, context: config.context, seed: 1)
        let weightsBefore = Array(UnsafeBufferPointer(start: model.parameters, count: model.layout.totalCount))
        SmoothQuant.smooth(model, calibration: windows, alpha: 0.5)
        let changed = (0..<model.layout.totalCount).filter { model.parameters[$0] != weightsBefore[$0] }.count
        let after = logits()
        let scale = before.map(abs).max() ?? 1
        let worst = zip(before, after).map { abs($0 - $1) }.max() ?? 0
        #expect(changed > 1000, "smoothing changed only \(changed) parameters")
        #expect(worst <= 1e-4 * scale, "logits moved by \(worst) (scale \(scale))")
    }

    /// OmniQuant's LET folds exactly: random scales on the attention and feed-forward
    /// inputs, value -> output and query/key (one per rotary pair), applied without
    /// rounding, leave the logits unchanged with RMSNorm and with LayerNorm. And since the
    /// loss then does not depend on the scales, their gradient must cancel: the weights'
    /// term (computed here for the attention scale) against the norms' term.
    @Test(arguments: [NormKind.rms, .layer])
    func equivalentTransformLeavesTheLogitsUnchanged(norm: NormKind) throws {
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        var (model, config, rng) = Self.modelWithUnevenNorms(norm, vocabSize: dataset.meta.vocabSize, seed: 6)
        let tokens = (0..<2 * config.context).map { _ in Int32(rng.below(config.vocabSize)) }
        let targets = (0..<2 * config.context).map { _ in Int32(rng.below(config.vocabSize)) }
        func logits() -> [Float] {
            model.forward(tokens: tokens, targets: nil, batch: 2, length: config.context)
            return (0..<2 * config.context).flatMap { Array(model.logits(row: $0)) }
        }
        let before = logits(), weightsBefore = Array(UnsafeBufferPointer(start: model.parameters, count: model.layout.totalCount))
        let layer = model.layout.layers[1], dim = config.dim
        let block = OmniQuant.Block(model: model, layer: layer, names: [:], bits: .four, groupSize: nil, transform: true)
        let offset = try #require(block.transformOffset)
        var parameters = block.initialParameters()
        for k in offset..<block.count { parameters[k] = 0.5 * rng.normal() }
        block.apply(parameters, model: model, rounding: false)
        let after = logits()
        let changed = (0..<model.layout.totalCount).filter { model.parameters[$0] != weightsBefore[$0] }.count
        let scale = before.map(abs).max() ?? 1, worst = zip(before, after).map { abs($0 - $1) }.max() ?? 0
        #expect(changed > 1000, "LET changed only \(changed) parameters")
        #expect(worst <= 1e-4 * scale, "logits moved by \(worst) (scale \(scale))")

        model.zeroGradients()
        model.forward(tokens: tokens, targets: targets, batch: 2, length: config.context)
        model.backward()
        var grad = [Float](repeating: 0, count: block.count)
        parameters.withUnsafeBufferPointer { block.gradients($0.baseAddress!, model: model, into: &grad, rounding: false) }
        var weightTerm = [Float](repeating: 0, count: dim)
        for p in [layer.query, layer.key, layer.value] {
            for r in 0..<p.outFeatures {
                for c in 0..<dim { weightTerm[c] += model.gradients[p.weight + r * dim + c] * model.parameters[p.weight + r * dim + c] }
            }
        }
        let big = weightTerm.map(abs).max() ?? 0, residual = grad[offset...].map(abs).max() ?? 0
        #expect(big > 1e-6 && residual < 1e-3 * big, "LET gradient \(residual) does not cancel (weights' term \(big))")
    }

    @Test func badInputGetsOneLine() throws {
        let out = Fixtures.temporaryDirectory("ptq-bad")
        func message(_ body: () throws -> Void) -> String {
            do { try body(); return "" } catch { return "\(error)" }
        }
        // A run trained in 1 bit.
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        let binary = Fixtures.temporaryDirectory("ptq-binary")
        try Trainer(runDirectory: binary, config: Fixtures.tinyRunConfig(mode: .binary, steps: 5, vocabSize: dataset.meta.vocabSize),
                    dataset: dataset, resume: false, force: false).run { _ in }
        #expect(message { try QuantizedRun.quantize(source: binary, bits: .four, groupSize: nil, to: out.appendingPathComponent("a")) }
            .contains("a binary run is quantized already; quantize an fp run"))
        // A group size that does not divide a width; an existing output.
        #expect(message { try QuantizedRun.quantize(source: Self.fpRun, bits: .four, groupSize: 48, to: out.appendingPathComponent("b")) }
            .contains("--group-size 48 does not divide"))
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("b").path))
        #expect(message { try QuantizedRun.quantize(source: Self.fpRun, bits: .four, groupSize: nil, to: out) }.contains("already exists"))
        // Calibration data from another tokenizer; too few calibration windows.
        let otherData = Fixtures.temporaryDirectory("ptq-other-tokenizer")
        try FileManager.default.removeItem(at: otherData)
        try FileManager.default.copyItem(at: URL(fileURLWithPath: dataset.directory), to: otherData)
        let otherTokenizer = otherData.appendingPathComponent(dataset.meta.tokenizer)
        try (Data(contentsOf: otherTokenizer) + [0]).write(to: otherTokenizer)
        let other = try TokenDataset(directory: otherData.path)
        #expect(message { try QuantizedRun.quantize(source: Self.fpRun, method: .gptq, bits: .four, groupSize: nil,
                                                    calibration: (other, 8), to: out.appendingPathComponent("d")) }
            .contains("tokenized with another tokenizer than the run's"))
        let few = message { try QuantizedRun.quantize(source: Self.fpRun, method: .omniquant, bits: .four, groupSize: nil,
                                                      calibration: (dataset, 2), to: out.appendingPathComponent("e")) }
        #expect(few.contains("--calibration-windows 2: 64 tokens; calibration needs at least 176") && !few.contains("\n"), "\(few)")
        for name in ["d", "e"] { #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent(name).path)) }
        // A stored code outside its width is refused on load.
        let q = out.appendingPathComponent("c")
        try QuantizedRun.quantize(source: Self.fpRun, bits: .two, groupSize: nil, to: q)
        let modelURL = q.appendingPathComponent("model.safetensors")
        let file = try SafeTensorsFile(url: modelURL)
        let codes = try #require(file.tensors.first { $0.key.hasSuffix(".codes") }?.value)
        var bytes = try Data(contentsOf: modelURL)
        bytes[codes.range.lowerBound] = 9
        try bytes.write(to: modelURL)
        let refused = message { _ = try Checkpoint.loadModel(runDirectory: q) }
        #expect(refused.contains("holds code 9, not a 2-bit code") && !refused.contains("\n"), "\(refused)")
        // export says why it cannot pack a quantized run (one line, status 1).
        let export = try Fixtures.run(["export", q.path, "--out", out.appendingPathComponent("m.bitnet").path])
        #expect(export.status == 1 && export.stderr.contains("the packed format cannot hold"), "\(export.stderr)")
    }
}
