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

    /// One update of every tensor in `layout`; matrices get decoupled weight decay.
    public func update(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>, layout: ParameterLayout,
                       learningRate lr: Float, weightDecay: Float, config: TrainingConfig) {
        step += 1
        for tensor in layout.tensors {
            update(parameters, gradients, tensor.offset..<(tensor.offset + tensor.count), learningRate: lr,
                   weightDecay: tensor.decays ? weightDecay : 0, beta1: config.beta1, beta2: config.beta2,
                   epsilon: config.adamEpsilon)
        }
    }

    /// One update of all `count` parameters, without weight decay, each range at its own
    /// learning rate (small problems, such as OmniQuant's clipping and scales).
    func update(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
                learningRates: [(Range<Int>, Float)], beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8) {
        step += 1
        for (range, lr) in learningRates where !range.isEmpty {
            update(parameters, gradients, range, learningRate: lr, weightDecay: 0, beta1: beta1, beta2: beta2, epsilon: epsilon)
        }
    }

    private func update(_ parameters: UnsafeMutablePointer<Float>, _ gradients: UnsafePointer<Float>, _ indices: Range<Int>,
                        learningRate lr: Float, weightDecay decay: Float, beta1 b1: Float, beta2 b2: Float, epsilon eps: Float) {
        let correction1 = 1 - Float(pow(Double(b1), Double(step)))
        let correction2 = 1 - Float(pow(Double(b2), Double(step)))
        let (m, v) = (self.m, self.v), base = indices.lowerBound
        Parallel.forRanges(indices.count) { range in
            for j in range {
                let i = base + j
                let g = gradients[i]
                m[i] = b1 * m[i] + (1 - b1) * g
                v[i] = b2 * v[i] + (1 - b2) * g * g
                let mHat = m[i] / correction1, vHat = v[i] / correction2
                parameters[i] -= lr * (mHat / (vHat.squareRoot() + eps) + decay * parameters[i])
            }
        }
    }

    /// The L2 norm of all gradients; when above `maxNorm` (> 0) they are scaled down to it.
    /// Partial sums are combined in a fixed order, so the result is reproducible.
    @discardableResult
    public static func clipGradients(_ gradients: UnsafeMutablePointer<Float>, count: Int, maxNorm: Float) -> Float {
        let chunks = 64
        var partial = [Double](repeating: 0, count: chunks)
        partial.withUnsafeMutableBufferPointer { sums in
            let out = sums.baseAddress!
            Parallel.forEach(chunks) { c in
                var s: Float = 0
                for i in count * c / chunks..<count * (c + 1) / chunks { s += gradients[i] * gradients[i] }
                out[c] = Double(s)
            }
        }
        let norm = Float(partial.reduce(0, +).squareRoot())
        if maxNorm > 0 && norm > maxNorm && norm.isFinite {
            let scale = maxNorm / norm
            Parallel.forRanges(count) { range in
                for i in range { gradients[i] *= scale }
            }
        }
        return norm
    }
}
