// `bitnet-train project-scaling`: data-parallel efficiency on many machines from the
// alpha-beta model (ScalingProjection), for planning a run before renting the machines.
import ArgumentParser
import BitNet
import BitNetCLI
import Foundation

struct ProjectScalingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "project-scaling",
        abstract: "Project data-parallel training efficiency to many machines from a measured link and machine.",
        discussion: "The link comes from 'mpirun -np 2 bitnet-train bench --allreduce' between two machines (its fit line), "
            + "the machine's tokens/s from 'bitnet-train bench --preset P' on one of them. Prints, per preset and machine "
            + "count, the efficiency (N machines' tokens/s over N times one machine's) when each machine takes the preset's "
            + "batch (or at --batch-size), and the global batch each variant needs to reach --efficiency. "
            + "docs/DISTRIBUTED.md explains the model.")

    @Option(name: .customLong("link"),
            help: ArgumentHelp("NAME=ALPHA_US,BETA_NS: a two-rank all-reduce fit (t = alpha + beta * bytes); repeatable.",
                               valueName: "link"))
    var links: [String]
    @Option(name: .customLong("workload"),
            help: ArgumentHelp("PRESET=TOKENS_PER_SECOND of one machine training that preset; repeatable.", valueName: "workload"))
    var workloads: [String]
    @Option(help: "Machine counts, comma-separated.") var machines: String = "8,64,512"
    @Option(parsing: .unconditional, help: "Efficiency the batch column aims for.") var efficiency: Double = 0.9
    @Option(name: .customLong("batch-size"), parsing: .unconditional,
            help: "Global batch (sequences) for the efficiency column (default: each machine takes the preset's batch).")
    var batchSize: Int?
    @Option(help: "Also write a plot of efficiency against machines (SVG), one file per link: PATH-LINK.svg.") var svg: String?
    @Option(help: "What the plots' title says about the machines.") var machine: String = "the measured machine"

    func validate() throws {
        if !(efficiency > 0 && efficiency < 1) { throw ValidationError("--efficiency must be in (0, 1), got \(efficiency)") }
        if links.isEmpty || workloads.isEmpty { throw ValidationError("give at least one --link and one --workload") }
        if let batchSize, batchSize < 1 { throw ValidationError("--batch-size must be positive, got \(batchSize)") }
    }

    func run() throws {
        try reportingErrors {
            let links = try self.links.map(Self.link)
            let workloads = try self.workloads.map(Self.workload)
            let counts = try parseList(machines, flag: "--machines") { Int($0).flatMap { (2...1_000_000).contains($0) ? $0 : nil } }
            let variants = ScalingProjection.Variant.allCases
            for link in links {
                try printLine(String(format: "\n### %@ (alpha %.1f us per message step, %.2f GB/s)\n", link.name, link.alpha * 1e6,
                                     1 / link.beta / 1e9))
                try printLine("| preset | machines | " + variants.map { "\($0.rawValue): efficiency, batch for \(Int(efficiency * 100))%" }
                    .joined(separator: " | ") + " | AdamW moments per machine, ZeRO-1 |")
                try printLine("|---|---|" + String(repeating: "---|", count: variants.count + 1))
                for (w, batch, moments) in workloads {
                    for n in counts {
                        let cells = variants.map { v in
                            let e = ScalingProjection.step(w, link: link, machines: n, batch: batchSize ?? n * batch, variant: v).efficiency
                            let needed = ScalingProjection.batchNeeded(w, link: link, machines: n, variant: v, efficiency: efficiency)
                            return String(format: "%.0f%%, %@ seq (%@ tokens)", 100 * e, Self.count(Double(needed)),
                                          Self.count(Double(needed * w.context)))
                        }
                        try printLine("| \(w.name) | \(n) | " + cells.joined(separator: " | ")
                                      + String(format: " | %.1f MB (%.0f MB without) |", moments / Double(n) / 1e6, moments / 1e6))
                    }
                }
                if let svg { try plot(link: link, workloads: workloads.map { ($0.0, $0.1) }, path: svg + "-" + link.name + ".svg") }
            }
        }
    }

    private func plot(link: ScalingProjection.Link, workloads: [(ScalingProjection.Workload, Int)], path: String) throws {
        var chart = SVGChart(title: "Projected efficiency, \(link.name) link, \(machine), each with the preset's batch",
                             xLabel: "machines", yLabel: "efficiency", logX: true)
        let counts = (1...9).map { 1 << $0 }
        for (i, (w, batch)) in workloads.enumerated() {
            for v in ScalingProjection.Variant.allCases {
                let points = counts.map { n in
                    (x: Double(n), y: ScalingProjection.step(w, link: link, machines: n, batch: n * batch, variant: v).efficiency)
                }
                chart.series.append(SVGChart.Series(name: "\(w.name), \(v.rawValue)", points: points,
                                                    color: SVGChart.palette[i % SVGChart.palette.count], line: true,
                                                    markers: v == .zero1, dashed: v == .afterBackward))
            }
        }
        try AtomicFile.write(Data(chart.render().utf8), to: URL(fileURLWithPath: path))
        log("wrote \(path)")
    }

    static func link(_ text: String) throws -> ScalingProjection.Link {
        let parts = text.split(separator: "=", maxSplits: 1)
        let numbers = parts.count == 2 ? parts[1].split(separator: ",").compactMap { Double($0) } : []
        guard parts.count == 2, numbers.count == 2, numbers[0] >= 0, numbers[1] > 0, numbers.allSatisfy(\.isFinite) else {
            throw BitNetError.invalid("--link: expected NAME=ALPHA_US,BETA_NS with alpha >= 0 and beta > 0, got '\(text)'")
        }
        return ScalingProjection.Link(name: String(parts[0]), twoRankFit: numbers[0] * 1e-6, numbers[1] * 1e-9)
    }

    /// The workload, the preset's batch in sequences, and its AdamW moments in bytes.
    static func workload(_ text: String) throws -> (ScalingProjection.Workload, Int, Double) {
        let parts = text.split(separator: "=", maxSplits: 1)
        guard parts.count == 2, let rate = Double(parts[1]), rate > 0, rate.isFinite else {
            throw BitNetError.invalid("--workload: expected PRESET=TOKENS_PER_SECOND with a positive rate, got '\(text)'")
        }
        let preset = try Preset.named(String(parts[0]))
        let w = ScalingProjection.Workload(name: preset.name, config: preset.model, microBatch: preset.training.microBatchSize,
                                           tokensPerSecond: rate)
        return (w, preset.training.batchSize, 2 * w.gradientBytes)
    }

    static func count(_ n: Double) -> String {
        n >= 1e6 ? String(format: "%.1fM", n / 1e6) : n >= 1e4 ? String(format: "%.0fK", n / 1e3) : String(format: "%.0f", n)
    }
}
