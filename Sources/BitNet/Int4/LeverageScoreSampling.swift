// The backward half of "Training Transformers with 4-bit Integers" (Xi et al. 2023):
// output gradients are structurally sparse (a few tokens carry almost all of it), so
// their INT4 budget goes to the rows that matter.
//   Bit splitting: the gradient is held as two INT4 tensors, g ~ s_hi hi + s_lo lo, hi
//   rounded to a step of max|g| / 7 and lo the residual at a step 14x finer, so the pair
//   carries about 7.6 bits; the rows double.
//   Leverage-score sampling: a product sum_i a_i^T b_i over rows i (the weight gradient
//   G^T X, or the rows of the activation gradient) keeps row i with probability p_i
//   proportional to its score ||a_i|| ||b_i|| (capped at 1, scaled so the p_i sum to the
//   budget) and divides it by p_i: unbiased, with the smallest variance a row-sampling
//   estimator of this kind can have (Drineas, Kannan, Mahoney 2006).
import BitNetMath
import Foundation

enum LeverageScoreSampling {
    /// p_i = min(1, c score_i) with c such that sum p_i = budget (fewer when fewer rows
    /// have a non-zero score); rows with score 0 get 0.
    static func probabilities(scores: [Float], budget: Double) -> [Float] {
        let positive = scores.reduce(0) { $0 + ($1 > 0 ? 1 : 0) }
        guard positive > 0 else { return scores.map { _ in 0 } }
        if budget >= Double(positive) { return scores.map { $0 > 0 ? 1 : 0 } }
        // Water-filling without sorting: rows whose c score reaches 1 saturate and leave
        // the rest of the budget to the others; c only grows, so once no new row
        // saturates it is final (a few passes; at most one per saturating row).
        var saturated = 0, c = 0.0
        var isSaturated = [Bool](repeating: false, count: scores.count)
        while true {
            var rest = 0.0
            for (k, v) in scores.enumerated() where !isSaturated[k] { rest += Double(v) }
            c = (budget - Double(saturated)) / rest
            var changed = false
            for (k, v) in scores.enumerated() where !isSaturated[k] && Double(v) * c >= 1 {
                isSaturated[k] = true
                saturated += 1
                changed = true
            }
            if !changed { break }
        }
        return scores.indices.map { isSaturated[$0] ? 1 : Float(min(1, max(0, Double(scores[$0]) * c))) }
    }

    /// Independent keep/drop draws: the kept rows with their weights 1 / p_i.
    static func sample(_ p: [Float], rng: inout Xoshiro256) -> [(row: Int, weight: Float)] {
        p.indices.compactMap { i in p[i] > 0 && rng.uniform() < p[i] ? (i, 1 / p[i]) : nil }
    }

    /// A tensor as two INT4 tensors with one step each (so both backward products stay
    /// integer sums): hi = round(g / s_hi), s_hi = max |g| / 7, and lo the residual at
    /// s_lo = s_hi / 14, rounded stochastically (floor(v + u), u uniform in [0, 1), drawn
    /// from stream `key`) as in the paper's reference code, so E[s_hi hi + s_lo lo] = g.
    /// The residual is within s_hi / 2 = 7 s_lo, so lo stays in [-7, 7] without clipping.
    static func splitBits(_ g: UnsafePointer<Float>, count: Int, hi: UnsafeMutablePointer<Int8>,
                          lo: UnsafeMutablePointer<Int8>, key: UInt32) -> (high: Float, low: Float) {
        let largest = Reduce.maximumMagnitude(g, count)
        guard largest > 0 else {
            hi.update(repeating: 0, count: count)
            lo.update(repeating: 0, count: count)
            return (1, 1)
        }
        let high = largest / 7, low = high / 14, inverseHigh = 1 / high, inverseLow = 1 / low
        // Adding 1.5 * 2^23 rounds to the nearest integer (half to even) and leaves it in
        // the low mantissa bits: a truncation, not a checked conversion, so the loop
        // vectorizes. floor(v + u) is taken as round(v + u - 1/2), equal but at exact ties
        // (u on a 2^-24 grid makes them rare, and either neighbour keeps the estimate close).
        let magic: Float = 12_582_912
        Parallel.forRanges(count) { range in
            for i in range {
                let h = min(max(g[i] * inverseHigh, -7), 7) + magic - magic
                hi[i] = Int8(truncatingIfNeeded: (h + magic).bitPattern)
                let v = (g[i] - h * high) * inverseLow + (CounterRandom.uniform(key: key, index: i) - 0.5)
                lo[i] = Int8(truncatingIfNeeded: (min(max(v, -7), 7) + magic).bitPattern)
            }
        }
        return (high, low)
    }
}
