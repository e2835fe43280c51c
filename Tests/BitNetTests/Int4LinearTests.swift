// An `int4` projection (issue 12) against a naive reference written from the paper's
// equations: a dense block-Hadamard matrix, LSQ rounding, float loops. The forward and the
// exact backward must equal it; the sampled backward (bit splitting + leverage scores)
// must be unbiased: the mean of many seeds converges to the exact backward.
import Foundation
import Testing
@testable import BitNet

@Suite struct Int4LinearTests {
    /// One projection: inputs [n, i], weight [o, i], steps after it in one parameter block.
    struct Layer {
        let n = 24, i = 32, o = 16, block = 8
        let params: Buffer, x: Buffer, g: Buffer
        let slots: BitLinearSlots, steps: StepSlots
        let transformed: Buffer, codes: UnsafeMutablePointer<Int8>, transposedCodes: UnsafeMutablePointer<Int8>
        let workspace: Int4Workspace
        var weight: Int4Weight {
            Int4Weight(transformed: transformed.pointer, codes: codes, transposedCodes: transposedCodes, step: params[o * i + 1])
        }

        /// A structurally sparse output gradient (a few token rows carry most of it).
        init(seed: UInt64) {
            var rng = Xoshiro256(seed: seed)
            params = Buffer(o * i + 2)
            for k in 0..<(o * i) { params[k] = rng.normal() * 0.2 }
            x = Buffer(random: n * i, rng: &rng)
            for r in 0..<n { x[r * i + 5] *= 12 }  // an outlier feature column
            g = Buffer(n * o)
            for r in 0..<n { for c in 0..<o { g[r * o + c] = rng.normal() * (r % 7 == 0 ? 1 : 0.05) } }
            steps = StepSlots(input: o * i, weight: o * i + 1)
            var s = BitLinearSlots(weight: 0, subNorm: nil, inFeatures: i, outFeatures: o, index: 0)
            s.steps = steps
            slots = s
            transformed = Buffer(o * i)
            codes = .allocate(capacity: o * i)
            Int4Linear.transform(params.pointer, into: transformed.pointer, rows: o, width: i, block: block)
            params[o * i + 1] = LearnedStepQuantizer.initialStep(transformed.pointer, count: o * i)
            transposedCodes = .allocate(capacity: o * i)
            Int4Linear.encodeWeight(transformed.pointer, rows: o, cols: i, step: params[o * i + 1], codes: codes,
                                    transposed: transposedCodes)
            workspace = Int4Workspace(rows: n, wide: max(i, o))
        }

        func forward() -> [Float] {
            let out = Buffer(n * o), scratch = Buffer(n * i)
            Int4Linear.forward(out: out.pointer, inp: x.pointer, params: params.pointer, slots: slots, steps: steps,
                               weight: weight, block: block, rows: n, sequenceLength: n, scratch: scratch.pointer,
                               workspace: workspace)
            return out.array
        }

        /// (dX, dW, d input step, d weight step).
        func backward(_ mode: Int4Backward, seed: UInt64, sampleFraction: Double = 0.5) -> (dx: [Float], dw: [Float], dsx: Float, dsw: Float) {
            let dx = Buffer(n * i), dparams = Buffer(o * i + 2), a = Buffer(n * i), b = Buffer(n * i)
            Int4Linear.backward(dinp: dx.pointer, dparams: dparams.pointer, dout: g.pointer, inp: x.pointer,
                                params: params.pointer, slots: slots, steps: steps, weight: weight, block: block, mode: mode,
                                sampleFraction: sampleFraction, seed: seed, rows: n, sequenceLength: n, scratchA: a.pointer, scratchB: b.pointer, workspace: workspace)
            return (dx.array, Array(dparams.array[0..<(o * i)]), dparams[o * i], dparams[o * i + 1])
        }
    }

    // MARK: The naive reference

    static func hadamard(_ width: Int, block: Int) -> [[Double]] {
        (0..<width).map { r in
            (0..<width).map { c in
                guard r / block == c / block else { return 0 }
                let sign: Double = ((r % block) & (c % block)).nonzeroBitCount % 2 == 0 ? 1 : -1
                return sign / Double(block).squareRoot()
            }
        }
    }

    /// rows [rows, width] times H (symmetric).
    static func timesH(_ a: [Double], rows: Int, width: Int, block: Int) -> [Double] {
        let h = hadamard(width, block: block)
        var out = [Double](repeating: 0, count: rows * width)
        for r in 0..<rows { for c in 0..<width { for k in 0..<width { out[r * width + c] += a[r * width + k] * h[k][c] } } }
        return out
    }

    static func lsq(_ v: Double, step: Double) -> (code: Double, inside: Bool) {
        let k = (v / step).rounded(.toNearestOrEven)
        return (min(max(k, -8), 7), k >= -8 && k <= 7)
    }

    @Test func forwardEqualsTheNaiveHadamardInt4Product() {
        let l = Layer(seed: 81)
        let out = l.forward()
        let xh = Self.timesH(l.x.array.map(Double.init), rows: l.n, width: l.i, block: l.block)
        let wh = Self.timesH(Array(l.params.array[0..<(l.o * l.i)]).map(Double.init), rows: l.o, width: l.i, block: l.block)
        let sx = Double(l.params[l.o * l.i]), sw = Double(l.params[l.o * l.i + 1])
        #expect(sx > 0, "the input step starts from the data")
        var expected = [Double](repeating: 0, count: l.n * l.o)
        for r in 0..<l.n {
            for c in 0..<l.o {
                var sum = 0.0
                for k in 0..<l.i { sum += Self.lsq(xh[r * l.i + k], step: sx).code * Self.lsq(wh[c * l.i + k], step: sw).code }
                expected[r * l.o + c] = sum * sx * sw
            }
        }
        #expect(maxRelativeError(out.map(Double.init), expected) < 1e-5)
    }

    /// The exact backward: straight through q inside its range, LSQ's step gradients,
    /// back through H; written out as loops.
    @Test func exactBackwardEqualsTheStraightThroughReference() {
        let l = Layer(seed: 82)
        _ = l.forward()
        let got = l.backward(.exact, seed: 0)
        let (n, i, o) = (l.n, l.i, l.o)
        let sx = Double(l.params[o * i]), sw = Double(l.params[o * i + 1])
        let xh = Self.timesH(l.x.array.map(Double.init), rows: n, width: i, block: l.block)
        let wh = Self.timesH(Array(l.params.array[0..<(o * i)]).map(Double.init), rows: o, width: i, block: l.block)
        let g = l.g.array.map(Double.init)
        var dxh = [Double](repeating: 0, count: n * i), dwh = [Double](repeating: 0, count: o * i)
        var dsx = 0.0, dsw = 0.0
        for r in 0..<n {
            for k in 0..<i {
                var sum = 0.0
                for c in 0..<o { sum += g[r * o + c] * Self.lsq(wh[c * i + k], step: sw).code * sw }
                let (code, inside) = Self.lsq(xh[r * i + k], step: sx)
                dxh[r * i + k] = inside ? sum : 0
                dsx += sum * (inside ? code - xh[r * i + k] / sx : code)
            }
        }
        for c in 0..<o {
            for k in 0..<i {
                var sum = 0.0
                for r in 0..<n { sum += g[r * o + c] * Self.lsq(xh[r * i + k], step: sx).code * sx }
                let (code, inside) = Self.lsq(wh[c * i + k], step: sw)
                dwh[c * i + k] = inside ? sum : 0
                dsw += sum * (inside ? code - wh[c * i + k] / sw : code)
            }
        }
        let dx = Self.timesH(dxh, rows: n, width: i, block: l.block), dw = Self.timesH(dwh, rows: o, width: i, block: l.block)
        #expect(maxRelativeError(got.dx.map(Double.init), dx) < 1e-4)
        #expect(maxRelativeError(got.dw.map(Double.init), dw) < 1e-4)
        let expectedDsx = dsx / (Double(n * i) * 7).squareRoot(), expectedDsw = dsw / (Double(o * i) * 7).squareRoot()
        #expect(abs(Double(got.dsx) - expectedDsx) < 1e-3 * max(abs(expectedDsx), 1e-3), "\(got.dsx) vs \(expectedDsx)")
        #expect(abs(Double(got.dsw) - expectedDsw) < 1e-3 * max(abs(expectedDsw), 1e-3), "\(got.dsw) vs \(expectedDsw)")
    }

    /// Bit splitting plus leverage-score sampling is an unbiased estimate of the exact
    /// backward (stochastic rounding makes the split unbiased too): the
    /// mean over seeds approaches it, the error shrinking as more seeds are averaged.
    @Test func sampledBackwardIsUnbiased() {
        let l = Layer(seed: 83)
        _ = l.forward()
        let exact = l.backward(.exact, seed: 0)
        func meanError(seeds: Range<UInt64>) -> (dx: Double, dw: Double) {
            var dx = [Double](repeating: 0, count: exact.dx.count), dw = [Double](repeating: 0, count: exact.dw.count)
            for s in seeds {
                let b = l.backward(.lss, seed: s)
                for k in dx.indices { dx[k] += Double(b.dx[k]) }
                for k in dw.indices { dw[k] += Double(b.dw[k]) }
            }
            let t = Double(seeds.count)
            return (maxRelativeError(dx.map { $0 / t }, exact.dx.map(Double.init)),
                    maxRelativeError(dw.map { $0 / t }, exact.dw.map(Double.init)))
        }
        let one = meanError(seeds: 0..<1), many = meanError(seeds: 100..<1700)
        #expect(many.dx < 0.005 && many.dw < 0.005, "mean of 1600 sampled backward passes is \(many) from the exact one")
        #expect(many.dx < 0.1 * one.dx && many.dw < 0.1 * one.dw, "one pass \(one), 1600 passes \(many): not converging")
    }

    /// A sample fraction of 1 keeps every non-zero part row: only bit splitting's
    /// rounding is left, so one pass lands far closer to the exact backward than one
    /// pass that keeps half the rows.
    @Test func keepingEveryRowLeavesOnlyTheRounding() {
        let l = Layer(seed: 84)
        _ = l.forward()
        let exact = l.backward(.exact, seed: 0)
        func error(_ fraction: Double) -> Double {
            (0..<8).map { s -> Double in
                let b = l.backward(.lss, seed: UInt64(s), sampleFraction: fraction)
                return maxRelativeError(b.dx.map(Double.init), exact.dx.map(Double.init))
            }.reduce(0, +) / 8
        }
        let all = error(1), half = error(0.5)
        #expect(all < 0.025 && all < 0.5 * half, "one pass keeping every row \(all), keeping half \(half)")
    }
}
