// Fitting L(x) = a * x^(-alpha) + c (Kaplan et al. 2020; the BitNet paper's section 3)
// by non-linear least squares that converges from 3 points up: for a fixed floor c the
// problem is linear in log space, so c is searched (grid, then golden section) and
// a, alpha follow in closed form; the residuals are measured in loss space.
import Foundation

public struct PowerLawFit: Sendable, Equatable, Codable {
    public var a: Double
    public var alpha: Double
    public var c: Double
    /// Coefficient of determination in loss space.
    public var rSquared: Double
    public var points: Int

    public func predict(_ x: Double) -> Double { a * pow(x, -alpha) + c }

    /// Nil when there are fewer than 3 points or the x values are not distinct and positive.
    public static func fit(x: [Double], y: [Double]) -> PowerLawFit? {
        guard x.count == y.count, x.count >= 3, x.allSatisfy({ $0 > 0 && $0.isFinite }), y.allSatisfy(\.isFinite),
              Set(x).count >= 3 else { return nil }
        let minY = y.min()!, span = max(y.max()! - minY, 1e-9)
        // c ranges over [0, min(y)) (a loss floor is non-negative and below every point).
        let upper = minY - span * 1e-6
        guard upper > 0 else { return linearFit(x: x, y: y, c: 0)?.fit }
        func sse(_ c: Double) -> Double { linearFit(x: x, y: y, c: c)?.residual ?? .infinity }
        var best = 0.0, bestError = sse(0)
        let grid = 400
        for i in 1..<grid {
            let c = upper * Double(i) / Double(grid)
            let e = sse(c)
            if e < bestError { (best, bestError) = (c, e) }
        }
        // Golden-section refinement around the best grid point.
        var lo = max(0, best - upper / Double(grid)), hi = min(upper, best + upper / Double(grid))
        let ratio = (5.0.squareRoot() - 1) / 2
        for _ in 0..<80 {
            let m1 = hi - ratio * (hi - lo), m2 = lo + ratio * (hi - lo)
            if sse(m1) < sse(m2) { hi = m2 } else { lo = m1 }
        }
        let c = (lo + hi) / 2
        return [linearFit(x: x, y: y, c: c), linearFit(x: x, y: y, c: best)].compactMap { $0 }
            .min { $0.residual < $1.residual }?.fit
    }

    /// The range of alpha over the fits that leave out one point each (a jackknife: how
    /// much a single size decides the exponent); nil below 4 points or when one fails.
    public static func leaveOneOutAlphas(x: [Double], y: [Double]) -> ClosedRange<Double>? {
        guard x.count == y.count, x.count >= 4 else { return nil }
        let alphas = x.indices.compactMap { i -> Double? in
            var (xs, ys) = (x, y)
            xs.remove(at: i)
            ys.remove(at: i)
            return fit(x: xs, y: ys)?.alpha
        }
        guard alphas.count == x.count, let lo = alphas.min(), let hi = alphas.max() else { return nil }
        return lo...hi
    }

    /// log(y - c) = log a - alpha log x by ordinary least squares.
    private static func linearFit(x: [Double], y: [Double], c: Double) -> (fit: PowerLawFit, residual: Double)? {
        guard y.allSatisfy({ $0 - c > 0 }) else { return nil }
        let lx = x.map { Foundation.log($0) }, ly = y.map { Foundation.log($0 - c) }
        let n = Double(x.count)
        let mx = lx.reduce(0, +) / n, my = ly.reduce(0, +) / n
        let sxx = lx.reduce(0) { $0 + ($1 - mx) * ($1 - mx) }
        guard sxx > 0 else { return nil }
        let sxy = zip(lx, ly).reduce(0) { $0 + ($1.0 - mx) * ($1.1 - my) }
        let slope = sxy / sxx
        let a = Foundation.exp(my - slope * mx)
        var fit = PowerLawFit(a: a, alpha: -slope, c: c, rSquared: 0, points: x.count)
        let residual = zip(x, y).reduce(0) { $0 + pow(fit.predict($1.0) - $1.1, 2) }
        let meanY = y.reduce(0, +) / n
        let total = y.reduce(0) { $0 + ($1 - meanY) * ($1 - meanY) }
        fit.rSquared = total > 0 ? 1 - residual / total : 1
        return (fit, residual)
    }
}
