// A sweep's peak learning rate per (size, mode), taken from lr-sweep results instead of
// one fixed rate per mode: each lr-sweep gives, per mode, the best rate (lowest final
// validation loss among the runs that did not diverge) at its model width. From one
// width that rate serves every size; from two or more, lr = a * width^-k is fitted by
// least squares in log-log space (wider models want smaller rates).
import Foundation

public struct LearningRateRule: Codable, Sendable, Equatable {
    public struct Law: Codable, Sendable, Equatable {
        public var a: Double
        /// The exponent: lr = a * width^-k; 0 with a single width.
        public var k: Double
        /// (width, best learning rate) of each lr-sweep it was taken from.
        public var points: [[Double]]

        public func learningRate(width: Int) -> Float { Float(a * pow(Double(width), -k)) }
    }

    /// Laws by mode name (JSON keys must be strings).
    public var laws: [String: Law]

    public func learningRate(mode: WeightMode, width: Int) -> Float? { laws[mode.rawValue]?.learningRate(width: width) }

    public var description: String {
        laws.keys.sorted().map { mode in
            let law = laws[mode]!
            let taken = law.points.map { String(format: "%g at width %d", $0[1], Int($0[0])) }.joined(separator: ", ")
            if law.points.count == 1 { return "\(mode): \(taken), every size" }
            // The same best rate at every width fits k = 0 (printed as -0 through %f).
            if abs(law.k) < 5e-4 { return String(format: "%@: lr = %.3g at every width (from %@)", mode, law.a, taken) }
            return String(format: "%@: lr = %.3g width^%.3f (from %@)", mode, law.a, -law.k, taken)
        }.joined(separator: "; ")
    }

    /// The rule from lr-sweep directories (each holding results.json and its runs).
    /// Throws one line for a directory that is not an lr-sweep, or a mode whose runs all
    /// diverged in one of them.
    public static func from(sweeps: [URL]) throws -> LearningRateRule {
        var points: [String: [(width: Double, rate: Double)]] = [:]
        for sweep in sweeps {
            let resultsURL = sweep.appendingPathComponent("results.json")
            guard let data = FileManager.default.contents(atPath: resultsURL.path) else {
                throw BitNetError.file("\(sweep.path): no results.json (not a finished lr-sweep directory)")
            }
            let results: [LearningRateResult]
            do {
                results = try JSONDecoder().decode([LearningRateResult].self, from: data)
            } catch {
                throw BitNetError.file("\(resultsURL.path): not an lr-sweep's results: \(error.localizedDescription)")
            }
            for mode in Set(results.map(\.mode)).sorted(by: { $0.rawValue < $1.rawValue }) {
                let usable = results.filter { $0.mode == mode && !$0.diverged && $0.finalValLoss.isFinite }
                guard let best = usable.min(by: { $0.finalValLoss < $1.finalValLoss }) else {
                    throw BitNetError.file("\(sweep.path): every \(mode.rawValue) run diverged: no learning rate to take")
                }
                let width = try self.width(sweep: sweep, mode: mode, rate: best.learningRate)
                points[mode.rawValue, default: []].append((Double(width), Double(best.learningRate)))
            }
        }
        var laws: [String: Law] = [:]
        for (mode, p) in points {
            let widths = Set(p.map(\.width))
            if widths.count == 1 {
                // One width (or repeats of it): the geometric mean of its best rates.
                let mean = exp(p.map { log($0.rate) }.reduce(0, +) / Double(p.count))
                laws[mode] = Law(a: mean, k: 0, points: p.map { [$0.width, $0.rate] })
            } else {
                let x = p.map { log($0.width) }, y = p.map { log($0.rate) }
                let mx = x.reduce(0, +) / Double(x.count), my = y.reduce(0, +) / Double(y.count)
                let sxy = zip(x, y).reduce(0) { $0 + ($1.0 - mx) * ($1.1 - my) }, sxx = x.reduce(0) { $0 + ($1 - mx) * ($1 - mx) }
                let slope = sxy / sxx
                laws[mode] = Law(a: exp(my - slope * mx), k: -slope, points: p.map { [$0.width, $0.rate] })
            }
        }
        return LearningRateRule(laws: laws)
    }

    /// The model width of an lr-sweep's run (the config of its run at `rate`).
    static func width(sweep: URL, mode: WeightMode, rate: Float) throws -> Int {
        let config = sweep.appendingPathComponent("runs").appendingPathComponent("\(mode.rawValue)-lr\(rate)")
            .appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: config.path),
              let run = try? JSONDecoder().decode(RunConfig.self, from: data) else {
            throw BitNetError.file("\(config.path): missing or unreadable: the lr-sweep's run config gives its model width")
        }
        return run.model.dim
    }
}
