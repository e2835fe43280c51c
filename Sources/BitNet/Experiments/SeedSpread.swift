// The same sweep at other seeds (`bitnet-train report DIR --seeds DIR2,...`): how much of
// each loss and each gap to full precision is the seed's, and the gap's trend with size
// fitted on every seed's gap, so that the noise between seeds is in its interval.
import Foundation

public struct SeedSpread: Sendable {
    /// One size: each mode's final loss per seed, and each quantized mode's gap per seed
    /// (where that seed trained both it and fp).
    public struct Size: Sendable {
        public let size: String
        public let nonEmbeddingParameters: Int
        public let losses: [WeightMode: [UInt64: Double]]
        public func gaps(_ mode: WeightMode) -> [UInt64: Double] {
            var gaps: [UInt64: Double] = [:]
            for (seed, loss) in losses[mode] ?? [:] {
                if let fp = losses[.fp]?[seed] { gaps[seed] = loss - fp }
            }
            return gaps
        }
    }

    public let seeds: [UInt64]
    public let modes: [WeightMode]
    public let sizes: [Size]

    /// The gap's line against log10 of the parameters through every seed's gap.
    public func trend(_ mode: WeightMode) -> LinearTrend? {
        let points = sizes.flatMap { size in size.gaps(mode).values.map { (log10(Double(size.nonEmbeddingParameters)), $0) } }
        return LinearTrend.fit(x: points.map(\.0), y: points.map(\.1))
    }

    public func markdown() -> String {
        let others = modes.filter { $0 != .fp }
        func spread(_ values: [Double], signed: Bool) -> String {
            guard let lo = values.min(), let hi = values.max() else { return " - |" }
            let mean = values.reduce(0, +) / Double(values.count), f = signed ? "%+.4f" : "%.4f"
            return values.count == 1 ? String(format: " \(f) |", mean) : String(format: " \(f) (\(f) to \(f)) |", mean, lo, hi)
        }
        var md = "Seeds " + seeds.map(String.init).joined(separator: ", ") + ": the mean over the seeds that trained each run, "
            + "and in brackets the lowest and highest.\n\n| size | non-embedding | seeds |" + modes.map { " \($0.rawValue) |" }.joined()
            + others.map { " \($0.rawValue) - fp |" }.joined() + "\n|---|---|---|" + String(repeating: "---|", count: modes.count + others.count) + "\n"
        for size in sizes {
            let trained = Set(size.losses.values.flatMap(\.keys)).count
            md += "| \(size.size) | \(size.nonEmbeddingParameters) | \(trained) |"
                + modes.map { spread(Array((size.losses[$0] ?? [:]).values), signed: false) }.joined()
                + others.map { spread(Array(size.gaps($0).values), signed: true) }.joined() + "\n"
        }
        let trends = others.compactMap { trend($0)?.describeGap($0, counted: "gaps") }
        if !trends.isEmpty {
            md += "\nThe gap's trend with size through every seed's gap: " + trends.joined(separator: "; ") + ".\n"
        }
        return md
    }
}

extension SweepReport {
    /// This sweep beside the same sweep at other seeds. The sweeps must differ only in
    /// their seed and sizes: the same budget, recipe, data and evaluation.
    public func seedSpread(_ others: [SweepReport]) throws -> SeedSpread {
        guard let mine = definition else {
            throw BitNetError.file("\(Sweep.definitionURL(directory).path): missing or unreadable; seeds are matched by the sweep's definition")
        }
        var sizes: [String: (n: Int, losses: [WeightMode: [UInt64: Double]])] = [:]
        var seeds: [UInt64] = []
        for report in [self] + others {
            guard let theirs = report.definition else {
                throw BitNetError.file("\(Sweep.definitionURL(report.directory).path): missing or unreadable")
            }
            var comparable = theirs
            (comparable.seed, comparable.sizes, comparable.text) = (mine.seed, mine.sizes, mine.text)
            guard comparable == mine else {
                throw BitNetError.invalid("\(report.directory.path): not the same sweep as \(directory.path) at another seed "
                                          + "(its budget, recipe, data or evaluation differ)")
            }
            if !seeds.contains(theirs.seed) { seeds.append(theirs.seed) }
            // A run twice at one seed (two directories of that seed): the first counts.
            for r in report.results {
                var entry = sizes[r.size] ?? (r.nonEmbeddingParameters, [:])
                if entry.losses[r.mode]?[theirs.seed] == nil { entry.losses[r.mode, default: [:]][theirs.seed] = r.finalValLoss }
                if r.mode == .fp { entry.n = r.nonEmbeddingParameters }
                sizes[r.size] = entry
            }
        }
        let modes = WeightMode.allCases.filter { m in sizes.values.contains { $0.losses[m] != nil } }
        return SeedSpread(seeds: seeds, modes: modes,
                          sizes: sizes.map { SeedSpread.Size(size: $0.key, nonEmbeddingParameters: $0.value.n, losses: $0.value.losses) }
                              .sorted { ($0.nonEmbeddingParameters, $0.size) < ($1.nonEmbeddingParameters, $1.size) })
    }
}
