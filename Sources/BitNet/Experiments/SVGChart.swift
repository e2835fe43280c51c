// A small SVG line/scatter chart writer with log or linear axes, labelled axes and a
// legend: enough for the sweep plots without a plotting dependency.
import Foundation

public struct SVGChart {
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public var color: String
        public var line: Bool
        public var markers: Bool
        public var dashed: Bool = false
        /// Points drawn as crosses (for example diverged runs).
        public var crosses: [(x: Double, y: Double)] = []

        public init(name: String, points: [(x: Double, y: Double)], color: String, line: Bool, markers: Bool,
                    dashed: Bool = false, crosses: [(x: Double, y: Double)] = []) {
            self.name = name
            self.points = points
            self.color = color
            self.line = line
            self.markers = markers
            self.dashed = dashed
            self.crosses = crosses
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var logX: Bool
    public var logY: Bool = false
    public var series: [Series] = []
    public var width = 760.0, height = 480.0

    public init(title: String, xLabel: String, yLabel: String, logX: Bool, logY: Bool = false) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.logX = logX
        self.logY = logY
    }

    public static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

    public func render() -> String {
        let left = 80.0, right = 190.0, top = 40.0, bottom = 60.0
        let plotW = width - left - right, plotH = height - top - bottom
        let all = series.flatMap { $0.points + $0.crosses }.filter { (!logX || $0.x > 0) && (!logY || $0.y > 0) }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
            + "viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        svg += "<text x=\"\(f(width / 2 - right / 2 + left / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">\(escape(title))</text>\n"
        guard !all.isEmpty else { return svg + "<text x=\"\(f(width / 2))\" y=\"\(f(height / 2))\" text-anchor=\"middle\">no data</text>\n</svg>\n" }
        let xs = all.map { logX ? log10($0.x) : $0.x }, ys = all.map { logY ? log10($0.y) : $0.y }
        var (x0, x1) = padded(xs.min()!, xs.max()!, log: logX)
        var (y0, y1) = padded(ys.min()!, ys.max()!, log: logY)
        if x0 == x1 { (x0, x1) = (x0 - 1, x1 + 1) }
        if y0 == y1 { (y0, y1) = (y0 - 1, y1 + 1) }
        func px(_ x: Double) -> Double { left + ((logX ? log10(x) : x) - x0) / (x1 - x0) * plotW }
        func py(_ y: Double) -> Double { top + plotH - ((logY ? log10(y) : y) - y0) / (y1 - y0) * plotH }

        // Grid, ticks and labels.
        for t in ticks(x0, x1, log: logX) {
            let x = px(t)
            svg += "<line x1=\"\(f(x))\" y1=\"\(f(top))\" x2=\"\(f(x))\" y2=\"\(f(top + plotH))\" stroke=\"#e5e5e5\"/>\n"
            svg += "<text x=\"\(f(x))\" y=\"\(f(top + plotH + 18))\" text-anchor=\"middle\">\(label(t))</text>\n"
        }
        for t in ticks(y0, y1, log: logY) {
            let y = py(t)
            svg += "<line x1=\"\(f(left))\" y1=\"\(f(y))\" x2=\"\(f(left + plotW))\" y2=\"\(f(y))\" stroke=\"#e5e5e5\"/>\n"
            svg += "<text x=\"\(f(left - 8))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(label(t))</text>\n"
        }
        svg += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"none\" stroke=\"#333\"/>\n"
        svg += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 15))\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        svg += "<text transform=\"translate(20 \(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"

        for (i, s) in series.enumerated() {
            let pts = s.points.filter { (!logX || $0.x > 0) && (!logY || $0.y > 0) && $0.y.isFinite }
            if s.line && pts.count > 1 {
                let path = pts.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
                svg += "<polyline fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"1.8\"\(s.dashed ? " stroke-dasharray=\"6 4\"" : "") points=\"\(path)\"/>\n"
            }
            if s.markers {
                for p in pts { svg += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"4\" fill=\"\(s.color)\"/>\n" }
            }
            for p in s.crosses where (!logX || p.x > 0) && (!logY || p.y > 0) {
                let (cx, cy) = (px(p.x), py(p.y))
                svg += "<path d=\"M\(f(cx - 5)),\(f(cy - 5)) L\(f(cx + 5)),\(f(cy + 5)) M\(f(cx - 5)),\(f(cy + 5)) L\(f(cx + 5)),\(f(cy - 5))\" stroke=\"\(s.color)\" stroke-width=\"2\"/>\n"
            }
            // Legend entry.
            let ly = top + 10 + Double(i) * 20, lx = left + plotW + 15
            svg += "<line x1=\"\(f(lx))\" y1=\"\(f(ly))\" x2=\"\(f(lx + 22))\" y2=\"\(f(ly))\" stroke=\"\(s.color)\" stroke-width=\"2\"\(s.dashed ? " stroke-dasharray=\"6 4\"" : "")/>\n"
            if s.markers { svg += "<circle cx=\"\(f(lx + 11))\" cy=\"\(f(ly))\" r=\"4\" fill=\"\(s.color)\"/>\n" }
            svg += "<text x=\"\(f(lx + 28))\" y=\"\(f(ly + 4))\">\(escape(s.name))</text>\n"
        }
        return svg + "</svg>\n"
    }

    private func padded(_ lo: Double, _ hi: Double, log: Bool) -> (Double, Double) {
        let pad = (hi - lo) * 0.06
        return (lo - pad, hi + pad)
    }

    /// Tick values in data units: powers of ten (with 2 and 5 when few decades) on a log
    /// axis, 1-2-5 steps on a linear one.
    /// Tick values (in data units) for an axis spanning [lo, hi] (log10 units on a log
    /// axis). A log axis under one decade gets evenly stepped round values instead of
    /// powers of ten, which would leave it with one or two labels.
    func ticks(_ lo: Double, _ hi: Double, log: Bool) -> [Double] {
        if log && hi - lo < 1 { return ticks(pow(10, lo), pow(10, hi), log: false).filter { $0 > 0 } }
        if log {
            let decades = Int(floor(lo))...Int(ceil(hi))
            let multipliers: [Double] = hi - lo < 2.5 ? [1, 2, 5] : [1]
            return decades.flatMap { d in multipliers.map { $0 * pow(10, Double(d)) } }
                .filter { log10($0) >= lo && log10($0) <= hi }
        }
        let raw = (hi - lo) / 6
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        var t = ceil(lo / step) * step, out: [Double] = []
        while t <= hi + step * 1e-9 {
            out.append(abs(t) < step * 1e-9 ? 0 : t)
            t += step
        }
        return out
    }

    private func label(_ v: Double) -> String {
        let a = abs(v)
        if a >= 1e12 { return trim(v / 1e12) + "T" }
        if a >= 1e9 { return trim(v / 1e9) + "G" }
        if a >= 1e6 { return trim(v / 1e6) + "M" }
        if a >= 1e3 { return trim(v / 1e3) + "K" }
        if a > 0 && a < 1e-2 {
            return String(format: "%.0e", v).replacingOccurrences(of: "e-0", with: "e-")
        }
        return trim(v)
    }

    private func trim(_ v: Double) -> String {
        var s = String(format: "%.3g", v)
        if s.contains(".") && !s.contains("e") {
            while s.hasSuffix("0") { s.removeLast() }
            if s.hasSuffix(".") { s.removeLast() }
        }
        return s
    }

    private func f(_ v: Double) -> String { String(format: "%.1f", v) }

    private func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}
