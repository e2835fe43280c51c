// QRUN_DIR: a full-precision run quantized after training (issue 11).
//   config.json        the source run's config (mode fp: the quantized weights are
//                      dequantized into an fp model for eval and sample)
//   quantization.json  method, weight bits, group size, source run and step
//   model.safetensors  every projection weight as NAME.codes (I8 [rows, cols]; min-max
//                      codes stored as their 8-bit pattern), NAME.scales and NAME.zeros
//                      (F32 [rows, groups]); every other tensor (embedding, norms) as F32
//   tokenizer.model    copied from the source run
// Written into a temporary directory and renamed into place: whole or not at all.
import Foundation

/// How the weights are rounded.
public enum QuantizationMethod: String, CaseIterable, Codable, Sendable {
    /// Round to nearest, each weight on its own.
    case rtn
    /// GPTQ: rounding errors compensated through the calibration inputs' Hessian.
    case gptq
    /// SmoothQuant: activation outliers moved into the weights (folded into the norms),
    /// then round to nearest.
    case smoothquant
    /// QuIP: GPTQ's rounding of each matrix turned by random orthogonal transforms.
    case quip
    /// OmniQuant: per-channel clipping learned block by block against the fp outputs.
    case omniquant

    var needsCalibration: Bool { self != .rtn }
}

public struct QuantizationSettings: Codable, Equatable, Sendable {
    public var method: QuantizationMethod
    public var weightBits: WeightBits
    /// Columns per scale; nil: one scale per output channel.
    public var groupSize: Int?
    /// Every projection's input rounded to this many bits per token (absmax); nil: FP32.
    public var activationBits: Int?
    public var sourceRun: String
    public var sourceStep: Int
    /// The calibration data directory and windows (GPTQ, SmoothQuant).
    public var calibration: String?
    public var calibrationWindows: Int?
    /// SmoothQuant's migration strength alpha.
    public var smoothingAlpha: Float?
    /// GPTQ and QuIP: columns quantized in order of decreasing Hessian diagonal.
    public var actOrder: Bool?
    /// OmniQuant's epochs over the calibration windows and learning rate.
    public var epochs: Int?
    public var learningRate: Float?

    enum CodingKeys: String, CodingKey {
        case method, weightBits = "weight_bits", groupSize = "group_size", activationBits = "activation_bits"
        case sourceRun = "source_run", sourceStep = "source_step", calibration, calibrationWindows = "calibration_windows"
        case smoothingAlpha = "smoothing_alpha", epochs, learningRate = "learning_rate", actOrder = "act_order"
    }

    public init(method: QuantizationMethod, weightBits: WeightBits, groupSize: Int?, activationBits: Int?, sourceRun: String,
                sourceStep: Int, calibration: String? = nil, calibrationWindows: Int? = nil, smoothingAlpha: Float? = nil,
                epochs: Int? = nil, learningRate: Float? = nil, actOrder: Bool? = nil) {
        (self.method, self.weightBits, self.groupSize, self.activationBits, self.sourceRun, self.sourceStep) =
            (method, weightBits, groupSize, activationBits, sourceRun, sourceStep)
        (self.calibration, self.calibrationWindows, self.smoothingAlpha) = (calibration, calibrationWindows, smoothingAlpha)
        (self.epochs, self.learningRate, self.actOrder) = (epochs, learningRate, actOrder)
    }

    /// Activation widths a quantized run may use (the BitNet paper's and OmniQuant's).
    public static let activationWidths: Set<Int> = [4, 6, 8]
}

public enum QuantizedRun {
    static let settingsFile = "quantization.json", modelFile = "model.safetensors"

    public static func isQuantizedRun(_ directory: URL) -> Bool {
        FileManager.default.fileExists(atPath: directory.appendingPathComponent(settingsFile).path)
    }

    /// The projection weights' tensor names and slots, in layout order.
    static func projections(_ layout: ParameterLayout) -> [(name: String, slots: BitLinearSlots)] {
        let names = Dictionary(layout.tensors.map { ($0.offset, $0.name) }, uniquingKeysWith: { first, _ in first })
        return layout.bitLinears.compactMap { p in names[p.weight].map { ($0, p) } }
    }

    /// Quantizes the fp run at `source` and writes QRUN_DIR `out`. GPTQ and SmoothQuant
    /// need `calibration` (a data directory of the same tokenizer) and a number of windows;
    /// `alpha` is SmoothQuant's migration strength.
    /// Returns the mean squared weight error over all projections and OmniQuant's block losses.
    @discardableResult
    public static func quantize(source: URL, method: QuantizationMethod = .rtn, bits: WeightBits, groupSize: Int?,
                                activationBits: Int? = nil, calibration: (dataset: TokenDataset, windows: Int)? = nil,
                                alpha: Float = 0.5, actOrder: Bool = false, omniQuant: OmniQuantOptions = OmniQuantOptions(), to out: URL,
                                progress: (String) -> Void = { _ in }) throws -> (weightError: Double, blockLosses: [OmniQuantBlockLoss]) {
        if let a = activationBits, !QuantizationSettings.activationWidths.contains(a) {
            throw BitNetError.invalid("--abits must be 4, 6, 8 or 16, got \(a)")
        }
        if FileManager.default.fileExists(atPath: out.path) {
            throw BitNetError.occupied("\(out.path): already exists")
        }
        let (model, config, state) = try Checkpoint.loadModel(runDirectory: source, batch: 8)
        guard config.model.mode == .fp else {
            throw BitNetError.invalid("\(source.path): a \(config.model.mode.rawValue) run is quantized already; quantize an fp run")
        }
        // LET's query/key scales follow interleaved rotary pairs and one key head per query head.
        if method == .omniquant && (config.model.layout != .bitnet || config.model.keyValueHeads != config.model.heads) {
            throw BitNetError.invalid("\(source.path): --method omniquant needs the bitnet layout without grouped-query attention")
        }
        let projections = projections(model.layout)
        if let groupSize {
            for (name, p) in projections where groupSize <= 0 || p.inFeatures % groupSize != 0 {
                throw BitNetError.invalid("--group-size \(groupSize) does not divide the \(p.inFeatures) columns of \(name)")
            }
        }
        // Every tensor as an owned buffer that the writer reads from.
        var buffers: [UnsafeMutableRawPointer] = []
        defer { buffers.forEach { $0.deallocate() } }
        func owned<T>(_ values: [T]) -> UnsafeRawPointer {
            let p = UnsafeMutableRawPointer.allocate(byteCount: max(values.count * MemoryLayout<T>.stride, 1), alignment: 16)
            values.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            buffers.append(p)
            return UnsafeRawPointer(p)
        }
        let projectionNames = Set(projections.map(\.name))
        var windows: CalibrationWindows?
        if method.needsCalibration {
            guard let calibration else { throw BitNetError.invalid("--method \(method.rawValue) needs --calibration DATA_DIR") }
            guard calibration.dataset.meta.vocabSize == config.model.vocabSize else {
                throw BitNetError.invalid("\(calibration.dataset.directory): vocabulary of \(calibration.dataset.meta.vocabSize) "
                                          + "does not match the run's \(config.model.vocabSize)")
            }
            let runTokenizer = FileManager.default.contents(atPath: RunDirectory(source).tokenizerURL.path)
            let dataTokenizer = FileManager.default.contents(atPath: calibration.dataset.tokenizerPath)
            if let runTokenizer, let dataTokenizer, runTokenizer != dataTokenizer {
                throw BitNetError.invalid("\(calibration.dataset.directory): tokenized with another tokenizer than the run's "
                                          + "(\(calibration.dataset.meta.tokenizer) differs from the run's tokenizer.model)")
            }
            try calibration.dataset.check(context: config.model.context)
            // Fewer calibration tokens than a projection has inputs leave its Hessian singular.
            let needed = max(config.model.dim, config.model.ffnDim), context = config.model.context
            guard calibration.windows * context >= needed else {
                throw BitNetError.invalid("--calibration-windows \(calibration.windows): \(calibration.windows * context) tokens; "
                                          + "calibration needs at least \(needed) (the widest projection's inputs), "
                                          + "so at least \((needed + context - 1) / context) windows of \(context)")
            }
            windows = CalibrationWindows(calibration.dataset, windows: calibration.windows, batch: model.activations.batch,
                                         context: config.model.context, seed: 1)
        }
        if method == .smoothquant, let windows { SmoothQuant.smooth(model, calibration: windows, alpha: alpha) }
        // The weights as they are before rounding (SmoothQuant's already scaled).
        let original = Array(UnsafeBufferPointer(start: model.parameters, count: model.layout.totalCount))
        var matrices: [String: QuantizedMatrix] = [:], blockLosses: [OmniQuantBlockLoss] = []
        if method == .gptq, let windows {
            matrices = try GPTQ.quantizeModel(model, calibration: windows, bits: bits, groupSize: groupSize, actOrder: actOrder)
        } else if method == .quip, let windows {
            matrices = try GPTQ.quantizeModel(model, calibration: windows, bits: bits, groupSize: groupSize, incoherent: true,
                                              actOrder: actOrder)
        } else if method == .omniquant, let windows {
            (matrices, blockLosses) = OmniQuant.quantizeModel(model, calibration: windows, bits: bits, groupSize: groupSize,
                                                              activationBits: activationBits, options: omniQuant, progress: progress)
        } else {
            for (name, p) in projections {
                matrices[name] = RoundToNearest.quantize(model.parameters + p.weight, rows: p.outFeatures, cols: p.inFeatures,
                                                         bits: bits, groupSize: groupSize ?? p.inFeatures)
            }
        }
        var entries: [SafeTensorsEntry] = [], squaredError: Double = 0, count = 0
        for t in model.layout.tensors where !projectionNames.contains(t.name) {
            entries.append(SafeTensorsEntry(name: t.name, dtype: .f32, shape: t.shape, pointer: model.parameters + t.offset))
        }
        for (name, p) in projections {
            guard let q = matrices[name] else { throw BitNetError.invalid("\(name): not quantized") }
            for (i, v) in q.dequantized().enumerated() {
                let d = Double(v - original[p.weight + i])
                squaredError += d * d
            }
            count += p.weightCount
            entries.append(SafeTensorsEntry(name: name + ".codes", dtype: .i8, shape: [q.rows, q.cols], pointer: owned(q.codes)))
            entries.append(SafeTensorsEntry(name: name + ".scales", dtype: .f32, shape: [q.rows, q.groups], pointer: owned(q.scales)))
            entries.append(SafeTensorsEntry(name: name + ".zeros", dtype: .f32, shape: [q.rows, q.groups], pointer: owned(q.zeros)))
            if let incoherence = q.incoherence {
                for (side, t) in [("rows", incoherence.rows), ("columns", incoherence.columns)] {
                    entries.append(SafeTensorsEntry(name: "\(name).\(side).signs", dtype: .f32, shape: [t.size], pointer: owned(t.signs)))
                    entries.append(SafeTensorsEntry(name: "\(name).\(side).mix", dtype: .f32, shape: [t.mixSize, t.mixSize],
                                                    pointer: owned(t.mix)))
                }
            }
        }
        let settings = QuantizationSettings(method: method, weightBits: bits, groupSize: groupSize, activationBits: activationBits,
                                            sourceRun: source.path, sourceStep: state.step,
                                            calibration: windows == nil ? nil : calibration?.dataset.directory,
                                            calibrationWindows: windows == nil ? nil : calibration?.windows,
                                            smoothingAlpha: method == .smoothquant ? alpha : nil,
                                            epochs: method == .omniquant ? omniQuant.epochs : nil,
                                            learningRate: method == .omniquant ? omniQuant.learningRate : nil,
                                            actOrder: method == .gptq || method == .quip ? actOrder : nil)
        // Assembled beside the target, renamed into place when whole.
        let temporary = out.deletingLastPathComponent()
            .appendingPathComponent(".\(out.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.removeItem(at: temporary)
        do {
            try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
            try AtomicFile.writeJSON(config, to: temporary.appendingPathComponent("config.json"))
            try AtomicFile.writeJSON(settings, to: temporary.appendingPathComponent(settingsFile))
            try AtomicFile.write(to: temporary.appendingPathComponent(modelFile)) { handle in
                try SafeTensorsWriter.write(entries, metadata: ["format": "bitnet-quantized", "version": "1"], to: handle)
            }
            let tokenizer = RunDirectory(source).tokenizerURL
            if FileManager.default.fileExists(atPath: tokenizer.path) {
                try FileManager.default.copyItem(at: tokenizer, to: temporary.appendingPathComponent("tokenizer.model"))
            }
            guard rename(temporary.path, out.path) == 0 else {
                throw BitNetError.file("\(out.path): cannot move the finished directory into place: \(String(cString: strerror(errno)))")
            }
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            if error is BitNetError { throw error }
            throw BitNetError.file("\(out.path): cannot write: \(error.localizedDescription)")
        }
        return (squaredError / Double(max(count, 1)), blockLosses)
    }

    /// The quantized run as an fp model with the dequantized weights, for eval and sample.
    /// Every code, scale and shape is checked against the config before use.
    public static func loadModel(runDirectory: URL, batch: Int) throws -> (Transformer, RunConfig, TrainingState) {
        let directory = RunDirectory(runDirectory)
        let settingsURL = runDirectory.appendingPathComponent(settingsFile)
        guard let config = try directory.readConfig() else { throw BitNetError.file("\(directory.configURL.path): missing") }
        guard let data = FileManager.default.contents(atPath: settingsURL.path),
              let settings = try? JSONDecoder().decode(QuantizationSettings.self, from: data) else {
            throw BitNetError.file("\(settingsURL.path): unreadable or invalid")
        }
        guard config.model.mode == .fp else { throw BitNetError.file("\(directory.configURL.path): a quantized run's config must be fp") }
        if let a = settings.activationBits, !QuantizationSettings.activationWidths.contains(a) {
            throw BitNetError.file("\(settingsURL.path): activation_bits must be 4, 6 or 8, got \(a)")
        }
        if let shortfall = Transformer.memoryShortfall(config: config.model, batch: batch) {
            throw BitNetError.file("\(runDirectory.path): its model cannot be loaded here: \(shortfall)")
        }
        let file = try SafeTensorsFile(url: runDirectory.appendingPathComponent(modelFile))
        let layout = ParameterLayout(config: config.model)
        let projections = projections(layout)
        let projectionNames = Set(projections.map(\.name))
        for t in layout.tensors where !projectionNames.contains(t.name) { try file.tensor(t.name, dtype: .f32, shape: t.shape) }
        let model = Transformer(config: config.model, batch: batch)
        for t in layout.tensors where !projectionNames.contains(t.name) {
            try file.copy(t.name, dtype: .f32, shape: t.shape, into: model.parameters + t.offset)
        }
        for (name, p) in projections {
            let q = try readMatrix(file, name: name, rows: p.outFeatures, cols: p.inFeatures, settings: settings)
            q.dequantized().withUnsafeBufferPointer { (model.parameters + p.weight).update(from: $0.baseAddress!, count: $0.count) }
        }
        for i in 0..<layout.totalCount where !model.parameters[i].isFinite {
            throw BitNetError.file("\(file.path): holds a non-finite weight or scale")
        }
        model.parametersDidChange()
        model.postTrainingActivationBits = settings.activationBits
        let state = TrainingState(step: settings.sourceStep, optimizerStep: 0, rngState: Xoshiro256(seed: 0).state, tokensSeen: 0)
        return (model, config, state)
    }

    /// One projection's codes, scales and zero points, validated.
    static func readMatrix(_ file: SafeTensorsFile, name: String, rows: Int, cols: Int,
                           settings: QuantizationSettings) throws -> QuantizedMatrix {
        let groupSize = settings.groupSize ?? cols
        guard groupSize > 0, cols % groupSize == 0 else {
            throw BitNetError.file("\(file.path): group size \(groupSize) does not divide the \(cols) columns of \(name)")
        }
        var q = QuantizedMatrix(rows: rows, cols: cols, groupSize: groupSize, bits: settings.weightBits)
        let groups = q.groups
        try q.codes.withUnsafeMutableBytes { try file.copy(name + ".codes", dtype: .i8, shape: [rows, cols], into: $0.baseAddress!) }
        try q.scales.withUnsafeMutableBytes { try file.copy(name + ".scales", dtype: .f32, shape: [rows, groups], into: $0.baseAddress!) }
        try q.zeros.withUnsafeMutableBytes { try file.copy(name + ".zeros", dtype: .f32, shape: [rows, groups], into: $0.baseAddress!) }
        for i in 0..<q.codes.count where !settings.weightBits.holds(q.code(i)) {
            throw BitNetError.file("\(file.path): \(name) holds code \(q.code(i)), not a \(settings.weightBits.rawValue)-bit code")
        }
        if settings.method == .quip {
            func transform(_ side: String, size: Int) throws -> OrthogonalTransform {
                let m = OrthogonalTransform.oddPart(size)
                var signs = [Float](repeating: 0, count: size), mix = [Float](repeating: 0, count: m * m)
                try signs.withUnsafeMutableBytes { try file.copy("\(name).\(side).signs", dtype: .f32, shape: [size], into: $0.baseAddress!) }
                try mix.withUnsafeMutableBytes { try file.copy("\(name).\(side).mix", dtype: .f32, shape: [m, m], into: $0.baseAddress!) }
                return try OrthogonalTransform(size: size, signs: signs, mix: mix, what: "\(file.path): \(name).\(side)")
            }
            q.incoherence = Incoherence(rows: try transform("rows", size: rows), columns: try transform("columns", size: cols))
        }
        return q
    }
}
