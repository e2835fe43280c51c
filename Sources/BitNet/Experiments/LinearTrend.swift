// Does the gap to full precision narrow as models grow? A straight line through each
// quantized mode's gap against log10 of the size, with the standard error of its slope,
// so that a report says "narrows", "widens" or "no trend beyond its error" from the
// numbers rather than from a glance down a column.
import Foundation

public struct LinearTrend: Sendable, Equatable {
    public var slope: Double
    public var intercept: Double
    /// The slope's standard error from the residuals (n - 2 degrees of freedom); 0 when
    /// the points lie on the line.
    public var standardError: Double
    public var points: Int

    /// Ordinary least squares; nil below 3 points (no error left to estimate) or when
    /// the x values are all equal or a value is not finite.
    public static func fit(x: [Double], y: [Double]) -> LinearTrend? {
        guard x.count == y.count, x.count >= 3, (x + y).allSatisfy(\.isFinite) else { return nil }
        let n = Double(x.count), mx = x.reduce(0, +) / n, my = y.reduce(0, +) / n
        let sxx = x.reduce(0) { $0 + ($1 - mx) * ($1 - mx) }
        guard sxx > 0 else { return nil }
        let slope = zip(x, y).reduce(0) { $0 + ($1.0 - mx) * ($1.1 - my) } / sxx
        let intercept = my - slope * mx
        let residual = zip(x, y).reduce(0) { $0 + pow($1.1 - intercept - slope * $1.0, 2) }
        return LinearTrend(slope: slope, intercept: intercept, standardError: (residual / (n - 2) / sxx).squareRoot(), points: x.count)
    }

    /// Student's t at 97.5% for `degrees` of freedom: the half-width of a 95% interval in
    /// standard errors. Tabulated (any statistics table) to 30, then at 40, 60 and 120; in
    /// between, the next lower entry, which is the wider interval.
    public static func tQuantile975(degrees: Int) -> Double {
        let table: [Double] = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                               2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                               2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]
        switch degrees {
        case ..<1: return .infinity
        case 1...30: return table[degrees - 1]
        case 31..<60: return 2.021
        case 60..<120: return 2.000
        default: return 1.980
        }
    }

    /// The slope's 95% interval (normal errors).
    public var interval95: ClosedRange<Double> {
        let half = Self.tQuantile975(degrees: points - 2) * standardError
        return (slope - half)...(slope + half)
    }

    /// Which way the line goes: up or down when its 95% interval leaves out zero.
    public enum Direction: String, Sendable {
        case falls = "falls", rises = "rises", flat = "no trend (the interval holds zero)"
    }

    /// "binary - fp +0.025 nats per 10x the parameters (95% interval ..., 5 sizes): ...",
    /// for a gap's line against log10 of the parameters; `counted` names the points.
    public func describeGap(_ mode: WeightMode, counted: String) -> String {
        String(format: "%@ - fp %+.3f nats per 10x the parameters (95%% interval %+.3f to %+.3f, %d %@): %@", mode.rawValue,
               slope, interval95.lowerBound, interval95.upperBound, points, counted, direction.rawValue)
    }

    public var direction: Direction {
        interval95.upperBound < 0 ? .falls : interval95.lowerBound > 0 ? .rises : .flat
    }
}
