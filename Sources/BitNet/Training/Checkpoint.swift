// RUN_DIR/checkpoint.safetensors: latent weights, AdamW moments, the sign-flip
// snapshot, and in the metadata the config, step, and generator state. One file,
// written atomically, so a kill at any moment leaves the previous checkpoint whole.
import Foundation

public enum Checkpoint {
    public static let fileName = "checkpoint.safetensors"
    static let format = "bitnet-checkpoint"
    static let version = "1"

    public static func url(in runDirectory: URL) -> URL { runDirectory.appendingPathComponent(fileName) }

    /// Writes the checkpoint atomically. `failAfterBytes` simulates a kill mid-write (tests).
    /// `moments`: AdamW's m and v of every parameter, in the parameter layout.
    public static func save(to url: URL, config: RunConfig, model: Transformer,
                            moments: (m: UnsafePointer<Float>, v: UnsafePointer<Float>)?,
                            state: TrainingState, failAfterBytes: Int? = nil) throws {
        var entries: [SafeTensorsEntry] = []
        for t in model.layout.tensors {
            entries.append(SafeTensorsEntry(name: t.name, dtype: .f32, shape: t.shape, pointer: model.parameters + t.offset))
        }
        if let moments {
            for t in model.layout.tensors {
                entries.append(SafeTensorsEntry(name: "optimizer.m." + t.name, dtype: .f32, shape: t.shape, pointer: moments.m + t.offset))
                entries.append(SafeTensorsEntry(name: "optimizer.v." + t.name, dtype: .f32, shape: t.shape, pointer: moments.v + t.offset))
            }
        }
        let snapshot = model.quantizationSnapshot
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys  // identical runs write identical checkpoints (but for the elapsed time)
        let configJSON = String(decoding: try encoder.encode(config), as: UTF8.self)
        let metadata = [
            "format": format, "version": version, "config": configJSON,
            "step": String(state.step), "optimizer_step": String(state.optimizerStep),
            "rng": state.rngState.map(String.init).joined(separator: ","), "tokens_seen": String(state.tokensSeen),
            "elapsed_seconds": String(state.elapsedSeconds),
        ]
        try snapshot.withUnsafeBytes { snapshotBytes in
            if !snapshot.isEmpty {
                entries.append(SafeTensorsEntry(name: "quantization.snapshot", dtype: .i8, shape: [snapshot.count],
                                                pointer: snapshotBytes.baseAddress!))
            }
            try AtomicFile.write(to: url) { handle in
                try SafeTensorsWriter.write(entries, metadata: metadata, to: handle, failAfterBytes: failAfterBytes)
            }
        }
    }

    /// Reads and validates a checkpoint's config and training state, and that it holds
    /// each weight of that config (the values are read by `load`).
    public static func readHeader(_ file: SafeTensorsFile) throws -> (RunConfig, TrainingState) {
        let m = file.metadata
        func bad(_ what: String) -> BitNetError { BitNetError.file("\(file.path): not a BitNet checkpoint: \(what)") }
        guard m["format"] == format else { throw bad("metadata 'format' is \(m["format"] ?? "missing")") }
        guard m["version"] == version else {
            throw bad("version \(m["version"] ?? "missing") is not supported (expected \(version))")
        }
        guard let configText = m["config"], let config = try? JSONDecoder().decode(RunConfig.self, from: Data(configText.utf8)) else {
            throw bad("metadata 'config' is missing or invalid")
        }
        // Bounds far beyond any run, so that counting on from them cannot overflow.
        let counts = 0...(1 << 50)
        guard let step = m["step"].flatMap(Int.init), counts.contains(step),
              let optimizerStep = m["optimizer_step"].flatMap(Int.init), counts.contains(optimizerStep),
              let tokensSeen = m["tokens_seen"].flatMap(Int.init), counts.contains(tokensSeen),
              let rng = m["rng"]?.split(separator: ",", omittingEmptySubsequences: false).map({ UInt64($0) }),
              rng.count == 4, !rng.contains(nil)
        else { throw bad("metadata 'step', 'optimizer_step', 'tokens_seen' or 'rng' is missing or invalid") }
        let elapsed = m["elapsed_seconds"].flatMap(Double.init) ?? 0
        guard elapsed.isFinite && elapsed >= 0 else { throw bad("metadata 'elapsed_seconds' is \(elapsed)") }
        // Every weight the config implies, present with its shape, before a model that
        // size is allocated: the file's own size then bounds the allocation.
        for t in ParameterLayout(config: config.model).tensors { try file.tensor(t.name, dtype: .f32, shape: t.shape) }
        return (config, TrainingState(step: step, optimizerStep: optimizerStep, rngState: rng.compactMap { $0 }, tokensSeen: tokensSeen,
                                      elapsedSeconds: elapsed))
    }

    /// Loads weights (and AdamW's moments of every parameter, in the parameter layout, when
    /// `moments` is given) into a model whose config must equal the checkpoint's; every
    /// tensor's shape is checked.
    public static func load(_ file: SafeTensorsFile, into model: Transformer,
                            moments: (m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>)?) throws {
        for t in model.layout.tensors {
            try file.copy(t.name, dtype: .f32, shape: t.shape, into: model.parameters + t.offset)
            if let moments {
                try file.copy("optimizer.m." + t.name, dtype: .f32, shape: t.shape, into: moments.m + t.offset)
                try file.copy("optimizer.v." + t.name, dtype: .f32, shape: t.shape, into: moments.v + t.offset)
            }
        }
        for i in 0..<model.layout.totalCount where !model.parameters[i].isFinite {
            throw BitNetError.file("\(file.path): holds a non-finite weight; the checkpoint is corrupt")
        }
        if let snapshot = file.tensors["quantization.snapshot"], (snapshot.shape.first ?? 0) > 0 {
            let count = snapshot.shape.first ?? 0
            var values = [Int8](repeating: 0, count: count)
            try values.withUnsafeMutableBytes { raw in
                try file.copy("quantization.snapshot", dtype: .i8, shape: [count], into: raw.baseAddress!)
            }
            model.quantizationSnapshot = values
        }
        model.parametersDidChange()
    }

    /// A trained model from a run directory, ready for sampling or evaluation. A run
    /// quantized after training (QRUN_DIR) loads as its dequantized fp model.
    public static func loadModel(runDirectory: URL, batch: Int = 1) throws -> (Transformer, RunConfig, TrainingState) {
        if QuantizedRun.isQuantizedRun(runDirectory) { return try QuantizedRun.loadModel(runDirectory: runDirectory, batch: batch) }
        let url = url(in: runDirectory)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw BitNetError.file("\(url.path): no checkpoint; has this run saved one yet?")
        }
        let file = try SafeTensorsFile(url: url)
        let (config, state) = try readHeader(file)
        if let shortfall = Transformer.memoryShortfall(config: config.model, batch: batch) {
            throw BitNetError.file("\(url.path): its model cannot be loaded here: \(shortfall)")
        }
        let model = Transformer(config: config.model, batch: batch)
        try load(file, into: model, moments: nil)
        return (model, config, state)
    }
}
