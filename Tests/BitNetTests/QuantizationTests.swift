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
            // Every projection weight equals scale (code - zero) computed here from the stored tensors.
            let file = try SafeTensorsFile(url: q.appendingPathComponent("model.safetensors"))
            for (name, p) in QuantizedRun.projections(model.layout) {
                let groups = p.inFeatures / (group ?? p.inFeatures)
                func floats(_ suffix: String) -> [Float] {
                    let t = file.tensors[name + suffix]!
                    return file.data.subdata(in: t.range).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
                }
                let scales = floats(".scales"), zeros = floats(".zeros")
                let codes = file.data.subdata(in: file.tensors[name + ".codes"]!.range).map { byte -> Int in
                    bits.integerBits == nil ? Int(Int8(bitPattern: byte)) : Int(byte)
                }
                for r in 0..<p.outFeatures {
                    for c in 0..<p.inFeatures {
                        let g = r * groups + c / (group ?? p.inFeatures)
                        let expected = scales[g] * (Float(codes[r * p.inFeatures + c]) - zeros[g])
                        #expect(model.parameters[p.weight + r * p.inFeatures + c] == expected)
                    }
                }
            }
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

    /// SmoothQuant's folding is exact: smoothing without rounding leaves the logits as
    /// they were (to FP32 rounding), with RMSNorm and with LayerNorm (gain and bias).
    @Test(arguments: [NormKind.rms, .layer])
    func smoothingLeavesTheLogitsUnchanged(norm: NormKind) throws {
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        var config = Fixtures.tinyRunConfig(mode: .fp, vocabSize: dataset.meta.vocabSize).model
        config.norm = norm
        let model = Transformer(config: config, batch: 2)
        model.initializeParameters(seed: 4)
        var rng = Xoshiro256(seed: 5)
        for t in model.layout.tensors where t.name.hasSuffix("norm.weight") || t.name.hasSuffix("norm.bias") {
            for i in 0..<t.count { model.parameters[t.offset + i] = 1 + 0.5 * rng.normal() }  // not all ones: the fold must carry them
        }
        model.parametersDidChange()
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
