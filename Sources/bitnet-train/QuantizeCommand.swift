// `bitnet-train quantize`: an fp run quantized after training (issue 11's PTQ baselines),
// written as a run directory that `eval` and `sample` read like any other: round to
// nearest, GPTQ, QuIP (GPTQ on incoherent matrices), SmoothQuant and OmniQuant's learned
// weight clipping.
import ArgumentParser
import BitNet
import BitNetCLI
import Foundation

struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize", abstract: "Quantize an fp run's weights after training (rtn, gptq, quip, smoothquant, omniquant).",
        discussion: """
        bitnet-train quantize RUN_DIR --wbits 4 [--group-size 64] [--abits 8] --out QRUN_DIR
        bitnet-train quantize RUN_DIR --method gptq --calibration DATA_DIR --wbits 3 --out QRUN_DIR
        bitnet-train quantize RUN_DIR --method omniquant --calibration DATA_DIR --wbits 2 [--epochs 20] --out QRUN_DIR
        Every projection's weights become integer codes with a scale (and zero point) per output channel, or per \
        group of --group-size input columns: min-max round-to-nearest at 2-8 bits, BitNet's Sign and mean |W| at 1 bit, \
        absmean ternary at 1.58. With --abits, every projection's input is rounded per token (absmax) as \
        BitNet does. The embedding, the head and the norms stay FP32. Compare with a run trained in 1 bit: \
        'bitnet-train eval QRUN_DIR --data DATA'.
        """)

    @Argument(help: "An fp run directory.") var runDirectory: String
    @Option(help: "rtn (round to nearest), gptq (error compensation through the calibration inputs), quip (gptq on matrices turned by random orthogonal transforms), smoothquant (activation outliers moved into the weights, then rtn) or omniquant (clipping learned block by block).")
    var method: QuantizationMethod = .rtn
    @Option(help: "Weight bits: 1, 1.58, 2, 3, 4, 6 or 8.") var wbits: String
    /// --wbits as a width; one line naming the flag otherwise.
    var bits: WeightBits {
        get throws {
            guard let bits = WeightBits(rawValue: wbits) else {
                throw ValidationError("--wbits must be one of \(WeightBits.allCases.map(\.rawValue).joined(separator: ", ")), got \(wbits)")
            }
            return bits
        }
    }
    @Option(parsing: .unconditional, help: "Input columns per scale (default: one scale per output channel).") var groupSize: Int?
    @Option(parsing: .unconditional, help: "Activation bits: 4, 6 or 8 (every projection's input, absmax per token), or 16: FP32.")
    var abits: Int = 16
    @Option(help: "Output run directory (must not exist).") var out: String
    @Option(help: "With every method but rtn: a data directory (of the run's tokenizer) whose training windows calibrate.") var calibration: String?
    @Option(parsing: .unconditional, help: "With every method but rtn: calibration windows of the run's context.") var calibrationWindows: Int = 128
    @Option(parsing: .unconditional, help: "With smoothquant: the migration strength alpha in [0, 1].") var alpha: Float = 0.5
    @Flag(help: "With gptq or quip: quantize columns in order of decreasing Hessian diagonal (static groups).") var actOrder = false
    @Option(parsing: .unconditional, help: "With omniquant: epochs over the calibration windows per block.") var epochs: Int = 20
    @Option(name: .customLong("lr"), parsing: .unconditional, help: "With omniquant: AdamW's learning rate for the clipping.")
    var learningRate: Float = 1e-2

    func validate() throws {
        _ = try bits
        if method != .rtn && calibration == nil { throw ValidationError("--method \(method.rawValue) needs --calibration DATA_DIR") }
        if !(alpha >= 0 && alpha <= 1) { throw ValidationError("--alpha must be in [0, 1], got \(alpha)") }
        if calibrationWindows < 1 || calibrationWindows > 1 << 20 {
            throw ValidationError("--calibration-windows must be in 1...\(1 << 20), got \(calibrationWindows)")
        }
        if actOrder && method != .gptq && method != .quip { throw ValidationError("--act-order is for --method gptq or quip") }
        if epochs < 0 || epochs > 10_000 { throw ValidationError("--epochs must be in 0...10000, got \(epochs)") }
        if !(learningRate > 0 && learningRate <= 1) { throw ValidationError("--lr must be in (0, 1], got \(learningRate)") }
        if let groupSize, groupSize < 1 { throw ValidationError("--group-size must be positive, got \(groupSize)") }
        if abits != 16 && !QuantizationSettings.activationWidths.contains(abits) {
            throw ValidationError("--abits must be 4, 6, 8 or 16, got \(abits)")
        }
    }

    func run() throws {
        try reportingErrors {
            let data = try calibration.map { (dataset: try TokenDataset(directory: $0), windows: calibrationWindows) }
            let started = Date()
            var lastProgress = started
            let (error, blocks) = try QuantizedRun.quantize(
                source: URL(fileURLWithPath: runDirectory), method: method, bits: try bits, groupSize: groupSize,
                activationBits: abits == 16 ? nil : abits, calibration: method == .rtn ? nil : data, alpha: alpha, actOrder: actOrder,
                omniQuant: OmniQuantOptions(epochs: epochs, learningRate: learningRate), to: URL(fileURLWithPath: out),
                progress: { line in
                    // At most one progress line every 5 s.
                    guard Date().timeIntervalSince(lastProgress) >= 5 else { return }
                    lastProgress = Date()
                    log(line)
                })
            for b in blocks {
                log(String(format: "block %d: output mean squared error %.4g (round to nearest), %.4g (start), %.4g (learned); "
                           + "factors %.3f-%.3f", b.layer + 1, b.roundToNearest, b.start, b.end,
                           b.clipFactors.lowerBound, b.clipFactors.upperBound))
            }
            log(String(format: "wrote %@ in %.1f s: W%@A%d %@, %@; mean squared weight error %.3e", out,
                       Date().timeIntervalSince(started), wbits, abits, method.rawValue,
                       groupSize.map { "groups of \($0)" } ?? "per output channel", error))
        }
    }
}

extension QuantizationMethod: ExpressibleByArgument {}
