// `bitnet-train bench`: training tokens/s against the machine's measured sgemm peak.
import ArgumentParser
import BitNet
import BitNetCLI
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure training throughput (the step 'train' runs) and compare it with the sgemm peak.",
        discussion: "Times the trainer's own optimizer step on random tokens, or on --data's batches. "
            + configFieldsHelp + " Each mode runs in its own process, so peak memory is per mode.")

    @OptionGroup var options: ConfigOptions
    @Option(help: "Time on this data directory's batches (and its vocabulary) instead of random tokens.") var data: String?
    @Option(name: .customLong("bench-steps"), parsing: .unconditional, help: "Timed optimizer steps (the median is reported).") var benchSteps: Int = 9
    @Flag(help: "Print one JSON object.") var json = false
    @Flag(name: .customLong("int8-products"),
          help: "Time the model's forward product shapes on each int8 path this CPU has against sgemm, instead of training.")
    var int8Products = false
    @Flag(name: .customLong("int4-operator"),
          help: ArgumentHelp("Time one int4 projection's whole training operator (quantizers, forward, both backward "
                             + "products) on the model's shapes against the FP32 operator, instead of training."))
    var int4Operator = false
    @Flag(help: ArgumentHelp("Under mpirun: time the gradient sum over the ranks at sizes from 4 KiB to 64 MiB and fit "
                             + "t = alpha + beta * bytes, instead of training."))
    var allreduce = false

    func validate() throws {
        if benchSteps <= 0 { throw ValidationError("--bench-steps must be positive, got \(benchSteps)") }
        _ = try options.fieldValues()
    }

    func run() throws {
        try reportingErrors {
            let dataset = try data.map { try TokenDataset(directory: $0) }
            let config = try options.runConfig(vocabSize: dataset?.meta.vocabSize)
            try dataset?.check(context: config.model.context)
            let threads = Parallel.threads
            if allreduce {
                let ranks = try Communicator.world()
                defer { ranks.finalize() }
                guard ranks.size > 1 else {
                    throw BitNetError.invalid("--allreduce times the sum over ranks: run it under mpirun -np N (N >= 2)")
                }
                let points = try AllReduceBenchmark.measure(ranks: ranks)
                guard ranks.isRoot else { return }
                log("machine: \(Machine.description); \(ranks.size) rank(s)")
                for p in points {
                    try printLine(String(format: "%10d bytes: %.3f ms, %.2f GB/s", p.bytes, p.seconds * 1e3, Double(p.bytes) / p.seconds / 1e9))
                }
                if let (alpha, beta) = AllReduceBenchmark.fit(points) {
                    try printLine(String(format: "fit: alpha %.1f us, beta %.3f ns/byte (%.2f GB/s)", alpha * 1e6, beta * 1e9, 1 / beta / 1e9))
                }
                return
            }
            if int8Products {
                log("machine: \(Machine.description)")
                if let peak = Benchmark.vnniPeakGops() {
                    try printLine(String(format: "int8 limit: %.1f GOP/s (vpdpbusd on registers, %d thread(s))", peak, threads))
                }
                for t in Benchmark.integerProducts(config: config) {
                    let best = t.integer.max { $0.gops < $1.gops }
                    let line = String(format: "%d x %d -> %d: sgemm %.1f GFLOP/s; ", t.rows, t.inFeatures, t.outFeatures, t.sgemmGflops)
                        + t.integer.map { String(format: "%@ %.1f GOP/s", $0.path, $0.gops) }.joined(separator: ", ")
                        + (best.map { String(format: " (best %.2fx sgemm)", $0.gops / t.sgemmGflops) } ?? "")
                    try printLine(line + ", \(threads) thread(s)")
                }
                return
            }
            if int4Operator {
                log("machine: \(Machine.description); Hadamard block \(config.model.hadamardBlockSize)")
                for t in Benchmark.int4Operator(config: config) {
                    try printLine(String(format: "%d x %d -> %d: FP32 %.2f ms; int4 %.2f ms (%.2fx); int4 exact backward %.2f ms "
                                         + "(%.2fx), %d thread(s)", t.rows, t.inFeatures, t.outFeatures, t.fp32, t.int4,
                                         t.fp32 / t.int4, t.int4Exact, t.fp32 / t.int4Exact, threads))
                }
                return
            }
            if !json { log("machine: \(Machine.description)") }
            if !json { log("measuring the sgemm peak with \(threads) thread(s)...") }
            let peak = Benchmark.sgemmPeak()
            if !json {
                log(String(format: "sgemm peak: %.1f GFLOP/s; timing %d steps of %d x %d tokens, mode %@...", peak, benchSteps,
                           config.training.batchSize, config.model.context, config.model.mode.rawValue))
            }
            let r = try Benchmark.training(config: config, steps: benchSteps, source: dataset.map { .dataset($0) } ?? .randomTokens)
            let m = config.model
            if json {
                let fields: [String] = [
                    "\"mode\":\"\(m.mode.rawValue)\"", "\"machine\":\(Machine.json)", "\"dim\":\(m.dim)", "\"layers\":\(m.layers)", "\"heads\":\(m.heads)",
                    "\"ffn_dim\":\(m.ffnDim)", "\"ffn_activation\":\"\(m.ffnActivation.rawValue)\"", "\"context\":\(m.context)",
                    "\"batch\":\(config.training.batchSize)", "\"vocab_size\":\(m.vocabSize)",
                    "\"parameters\":\(m.totalParameters)", "\"threads\":\(threads)",
                    "\"activation_storage\":\"\(config.training.activationStorage.rawValue)\"",
                    "\"tokens_per_second\":\(String(format: "%.1f", r.tokensPerSecond))",
                    "\"gflops\":\(String(format: "%.2f", r.gflops))",
                    "\"sgemm_peak_gflops\":\(String(format: "%.2f", peak))",
                    "\"fraction_of_sgemm_peak\":\(String(format: "%.4f", r.gflops / peak))",
                    "\"seconds_per_step\":\(String(format: "%.4f", r.secondsPerStep))",
                    "\"peak_rss_bytes\":\(r.peakMemoryBytes)", "\"estimated_memory_bytes\":\(r.estimatedMemoryBytes)",
                ]
                try printLine("{" + fields.joined(separator: ",") + "}")
            } else {
                try printLine(String(format: "%@: %.0f tokens/s, %.1f GFLOP/s (%.0f%% of the %.1f GFLOP/s sgemm peak), %.3f s/step, "
                             + "peak RSS %.2f GB, %@ parameters", m.mode.rawValue, r.tokensPerSecond, r.gflops,
                             100 * r.gflops / peak, peak, r.secondsPerStep, Double(r.peakMemoryBytes) / 1e9,
                             formatCount(m.totalParameters)))
            }
        }
    }
}
