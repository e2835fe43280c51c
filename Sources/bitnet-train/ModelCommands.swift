// `bitnet-train eval` and `bitnet-train sample`: use a trained checkpoint.
import ArgumentParser
import BitNet
import BitNetCLI
import BitNetSampling
import Foundation

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Validation loss and perplexity of a run's checkpoint.")

    @Argument(help: "Run directory.") var runDirectory: String
    @Option(help: "Data directory (its validation split is used).") var data: String?
    @Option(help: "A text file to evaluate instead (encoded with the run's tokenizer).") var text: String?
    @Option(parsing: .unconditional, help: "Validation windows to use (0: all).") var windows: Int = 0
    @Option(parsing: .unconditional, help: "Windows per forward pass.") var batch: Int = 8
    @Option(parsing: .unconditional, help: "Tokens per window (default: the model's context; at most it). Models trained with different contexts compare on the same window.")
    var window: Int?
    @Flag(help: "Also the loss at each position of the window (the tokens of context a prediction had), in buckets of doubling length; with --json, every position.")
    var byPosition = false
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        if (data == nil) == (text == nil) { throw ValidationError("give exactly one of --data or --text") }
        if windows < 0 { throw ValidationError("--windows must be >= 0, got \(windows)") }
        if batch <= 0 { throw ValidationError("--batch must be positive, got \(batch)") }
        if let window, window <= 0 { throw ValidationError("--window must be positive, got \(window)") }
    }

    func run() throws {
        try reportingErrors {
            let (model, config, state) = try Checkpoint.loadModel(runDirectory: URL(fileURLWithPath: runDirectory), batch: batch)
            let length = window ?? config.model.context
            guard length <= config.model.context else {
                throw BitNetError.invalid("--window \(length) is longer than the model's context of \(config.model.context) tokens")
            }
            // The loss, or the loss per position (one pass gives both: the loss is the positions' mean).
            var loss: Float = .nan, positions: [Double] = []
            let tokens: Int
            func measure(_ whole: () -> Float, _ perPosition: () -> [Double]) {
                if byPosition { positions = perPosition() }
                loss = byPosition ? Float(positions.reduce(0, +) / Double(length)) : whole()
            }
            if let data {
                let dataset = try TokenDataset(directory: data)
                guard dataset.meta.vocabSize == config.model.vocabSize else {
                    throw BitNetError.invalid("\(data): vocabulary of \(dataset.meta.vocabSize) does not match the model's \(config.model.vocabSize)")
                }
                try dataset.check(context: length)
                let limit = windows == 0 ? Int.max : windows
                measure({ Evaluation.loss(model: model, dataset: dataset, windows: limit, batch: batch, length: length) },
                        { Evaluation.lossByPosition(model: model, dataset: dataset, windows: limit, batch: batch, length: length) })
                tokens = dataset.validationWindows(context: length, limit: limit) * length
            } else {
                let tokenizer = try runTokenizer(runDirectory, vocabSize: config.model.vocabSize)
                let ids = try tokenizer.encode(try Corpus.readText(text!))
                guard ids.count > length else {
                    throw BitNetError.invalid("\(text!): \(ids.count) tokens is smaller than one window (\(length) + 1)")
                }
                measure({ Evaluation.loss(model: model, tokens: ids, batch: batch, length: length) },
                        { Evaluation.lossByPosition(model: model, tokens: ids, batch: batch, length: length) })
                tokens = (ids.count - 1) / length * length
            }
            if json {
                let byPositionField = byPosition ? ",\"loss_by_position\":[\(positions.map { "\(Float($0))" }.joined(separator: ","))]" : ""
                try printLine("{\"step\":\(state.step),\"val_loss\":\(loss),\"val_perplexity\":\(exp(Double(loss))),\"tokens\":\(tokens),\"window\":\(length)\(byPositionField)}")
            } else {
                try printLine(String(format: "step %d: loss %.4f, perplexity %.3f over %d tokens in windows of %d", state.step, loss, exp(Double(loss)), tokens, length))
                if byPosition {
                    for (range, mean) in Evaluation.doublingBuckets(positions) {
                        let label = range.count == 1 ? "\(range.lowerBound)" : "\(range.lowerBound)-\(range.upperBound)"
                        try printLine("  context " + label.padding(toLength: 9, withPad: " ", startingAt: 0) + String(format: " loss %.4f", mean))
                    }
                }
            }
        }
    }
}

/// The tokenizer a run was trained with, checked against the model's vocabulary.
func runTokenizer(_ run: String, vocabSize: Int) throws -> Tokenizer {
    let tokenizer = try Tokenizer(path: run + "/tokenizer.model")
    guard tokenizer.vocabSize == vocabSize else {
        throw BitNetError.invalid("\(run)/tokenizer.model: vocabulary of \(tokenizer.vocabSize) does not match the checkpoint's \(vocabSize)")
    }
    return tokenizer
}

struct SampleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample", abstract: "Generate text from a run's checkpoint with the training forward pass.")

    @Argument(help: "Run directory.") var runDirectory: String
    @Option(help: "Text to continue.") var prompt: String = ""
    @OptionGroup var sampling: SamplingOptions

    func run() throws {
        try reportingErrors {
            let (model, config, _) = try Checkpoint.loadModel(runDirectory: URL(fileURLWithPath: runDirectory))
            let tokenizer = try runTokenizer(runDirectory, vocabSize: config.model.vocabSize)
            var promptIDs = try tokenizer.encode(prompt)
            // Documents are separated by end-of-sequence, so it starts an empty prompt.
            if promptIDs.isEmpty { promptIDs = [max(tokenizer.eosID, 0)] }
            guard promptIDs.count <= config.model.context else {
                throw BitNetError.invalid("--prompt is \(promptIDs.count) tokens, longer than the context of \(config.model.context)")
            }
            let decode: ([Int32]) -> String? = { try? tokenizer.decode($0) }
            try Output.write(prompt)
            var streamer = TextStreamer(promptIDs: prompt.isEmpty ? [] : promptIDs, decode: decode)
            var predictor = TransformerPredictor(model: model), writeError: Error?
            let reason = Generation.generate(
                model: &predictor, prompt: promptIDs, maxTokens: sampling.maxTokens, settings: sampling.settings,
                endOfSequence: sampling.endOfSequence(tokenizer.eosID >= 0 ? tokenizer.eosID : nil), shouldStop: { writeError != nil }
            ) { token in
                do { try Output.write(streamer.append(token)) } catch { writeError = writeError ?? error }
            }
            if let writeError { throw writeError }
            try Output.write("\n")
            log("[\(streamer.tokenCount) tokens; stopped at \(reason.rawValue)]")
        }
    }
}
