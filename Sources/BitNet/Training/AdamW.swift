// AdamW (Loshchilov & Hutter 2019) over the flat parameter block, with FP32 moments,
// and global gradient-norm clipping.
import Foundation

public final class AdamW {
    public let count: Int
    /// First and second moments, in the parameter layout.
    public let m: UnsafeMutablePointer<Float>
    public let v: UnsafeMutablePointer<Float>
    /// Updates taken so far (for bias correction).
    public var step = 0

    public init(count: Int) {
        self.count = count
        m = .allocate(capacity: count)
        m.initialize(repeating: 0, count: count)
        v = .allocate(capacity: count)
        v.initialize(repeating: 0, count: count)
    }

    deinit {
        m.deallocate()
        v.deallocate()
    }

    /// One update of every tensor in `layout` whose moments this optimizer keeps (`shard`:
    /// all of them, or a rank's part under ZeRO-1, whose gradients `gradients` then holds
    /// in shard order); matrices get decoupled weight decay.
    public func update(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>, layout: ParameterLayout,
                       shard: OptimizerShard? = nil, learningRate lr: Float, weightDecay: Float, config: TrainingConfig) {
        step += 1
        for piece in (shard ?? .whole(count)).pieces {
            for tensor in layout.tensors {
                let range = piece.range.clamped(to: tensor.offset..<(tensor.offset + tensor.count))
                guard !range.isEmpty else { continue }
                let local = piece.local + range.lowerBound - piece.range.lowerBound
                update(parameters + range.lowerBound, gradients + local, local, range.count, learningRate: lr,
                       weightDecay: tensor.decays ? weightDecay : 0, beta1: config.beta1, beta2: config.beta2,
                       epsilon: config.adamEpsilon)
            }
        }
    }

    /// One update of all `count` parameters, without weight decay, each range at its own
    /// learning rate (small problems, such as OmniQuant's clipping and scales).
    func update(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
                learningRates: [(Range<Int>, Float)], beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8) {
        step += 1
        for (range, lr) in learningRates where !range.isEmpty {
            update(parameters + range.lowerBound, gradients + range.lowerBound, range.lowerBound, range.count, learningRate: lr,
                   weightDecay: 0, beta1: beta1, beta2: beta2, epsilon: epsilon)
        }
    }

    /// `count` parameters from `parameters`, their gradients from `gradients`, their
    /// moments from index `moment` of m and v.
    private func update(_ parameters: UnsafeMutablePointer<Float>, _ gradients: UnsafePointer<Float>, _ moment: Int, _ count: Int,
                        learningRate lr: Float, weightDecay decay: Float, beta1 b1: Float, beta2 b2: Float, epsilon eps: Float) {
        let correction1 = 1 - Float(pow(Double(b1), Double(step)))
        let correction2 = 1 - Float(pow(Double(b2), Double(step)))
        let (m, v) = (self.m + moment, self.v + moment)
        Parallel.forRanges(count) { range in
            for i in range {
                let g = gradients[i]
                m[i] = b1 * m[i] + (1 - b1) * g
                v[i] = b2 * v[i] + (1 - b2) * g * g
                let mHat = m[i] / correction1, vHat = v[i] / correction2
                parameters[i] -= lr * (mHat / (vHat.squareRoot() + eps) + decay * parameters[i])
            }
        }
    }

    /// The L2 norm of all gradients; when above `maxNorm` (> 0) they are scaled down to it.
    @discardableResult
    public static func clipGradients(_ gradients: UnsafeMutablePointer<Float>, count: Int, maxNorm: Float) -> Float {
        let norm = Float(sumOfSquares(gradients, count: count).squareRoot())
        scale(gradients, count: count, norm: norm, maxNorm: maxNorm)
        return norm
    }

    /// The sum of the squared gradients. Partial sums are combined in a fixed order, so the
    /// result is reproducible.
    public static func sumOfSquares(_ gradients: UnsafePointer<Float>, count: Int) -> Double {
        let chunks = 64
        var partial = [Double](repeating: 0, count: chunks)
        partial.withUnsafeMutableBufferPointer { sums in
            guard let out = sums.baseAddress else { return }
            Parallel.forEach(chunks) { c in
                var s: Float = 0
                for i in count * c / chunks..<count * (c + 1) / chunks { s += gradients[i] * gradients[i] }
                out[c] = Double(s)
            }
        }
        return partial.reduce(0, +)
    }

    /// Scales gradients of L2 norm `norm` down to `maxNorm` when above it (`maxNorm` > 0).
    public static func scale(_ gradients: UnsafeMutablePointer<Float>, count: Int, norm: Float, maxNorm: Float) {
        guard maxNorm > 0 && norm > maxNorm && norm.isFinite else { return }
        let scale = maxNorm / norm
        Parallel.forRanges(count) { range in
            for i in range { gradients[i] *= scale }
        }
    }
}
