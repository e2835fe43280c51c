// `bitnet-train quantize`: an fp run quantized after training (issue 11's PTQ baselines),
// written as a run directory that `eval` and `sample` read like any other. So far the
// round-to-nearest method; GPTQ, SmoothQuant, QuIP and OmniQuant are still to come.
import ArgumentParser
import BitNet
import BitNetCLI
import Foundation

struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize", abstract: "Quantize an fp run's weights after training (round to nearest).",
        discussion: """
        bitnet-train quantize RUN_DIR --wbits 4 [--group-size 64] [--abits 8] --out QRUN_DIR
        Every projection's weights become integer codes with a scale (and zero point) per output channel, or per \
        group of --group-size input columns: min-max round-to-nearest at 2-8 bits, BitNet's Sign and mean |W| at 1 bit, \
        absmean ternary at 1.58. With --abits, every projection's input is rounded per token (absmax) as \
        BitNet does. The embedding, the head and the norms stay FP32. Compare with a run trained in 1 bit: \
        'bitnet-train eval QRUN_DIR --data DATA'.
        """)

    @Argument(help: "An fp run directory.") var runDirectory: String
    @Option(help: "Quantization method (rtn: round to nearest).") var method: String = "rtn"
    @Option(help: "Weight bits: 1, 1.58, 2, 3, 4 or 8.") var wbits: String
    @Option(parsing: .unconditional, help: "Input columns per scale (default: one scale per output channel).") var groupSize: Int?
    @Option(parsing: .unconditional, help: "Activation bits: 4, 6 or 8 (every projection's input, absmax per token), or 16: FP32.")
    var abits: Int = 16
    @Option(help: "Output run directory (must not exist).") var out: String

    func validate() throws {
        if method != "rtn" { throw ValidationError("--method \(method): only rtn is available so far") }
        if WeightBits(rawValue: wbits) == nil {
            throw ValidationError("--wbits must be one of \(WeightBits.allCases.map(\.rawValue).joined(separator: ", ")), got \(wbits)")
        }
        if let groupSize, groupSize < 1 { throw ValidationError("--group-size must be positive, got \(groupSize)") }
        if abits != 16 && !QuantizationSettings.activationWidths.contains(abits) {
            throw ValidationError("--abits must be 4, 6, 8 or 16, got \(abits)")
        }
    }

    func run() throws {
        try reportingErrors {
            guard let bits = WeightBits(rawValue: wbits) else { return }
            let error = try QuantizedRun.quantize(source: URL(fileURLWithPath: runDirectory), bits: bits, groupSize: groupSize,
                                                  activationBits: abits == 16 ? nil : abits, to: URL(fileURLWithPath: out))
            log(String(format: "wrote %@: W%@A%d round to nearest, %@; mean squared weight error %.3e", out, wbits, abits,
                       groupSize.map { "groups of \($0)" } ?? "per output channel", error))
        }
    }
}
