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

    /// Which way the line goes, when the slope is more than twice its standard error from
    /// zero (about 95% for normal errors with many points; fewer points need more).
    public enum Direction: String, Sendable {
        case falls = "falls", rises = "rises", flat = "no trend beyond twice its standard error"
    }

    public var direction: Direction {
        slope + 2 * standardError < 0 ? .falls : slope - 2 * standardError > 0 ? .rises : .flat
    }
}
