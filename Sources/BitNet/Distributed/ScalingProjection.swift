// Data-parallel training on many machines, on paper. The alpha-beta model of ring
// collectives (Patarasuk & Yuan 2009; Thakur, Rabenseifner & Gropp 2005): over N machines
// a ring all-reduce of S bytes takes 2(N-1) message steps of S/N bytes each, a
// reduce-scatter or an all-gather half that. It is combined with this trainer's step:
// compute, the blocks' buckets overlapped with the last micro-batch's backward, the
// embedding and head after it, and under ZeRO-1 the all-gather after the update. Each
// bucket is its own collective and pays the latency; one all-reduce after the backward
// pays it once.
import Foundation

public enum ScalingProjection {
    /// A network: seconds per message step and per byte.
    public struct Link: Sendable {
        public let name: String
        public let alpha: Double
        public let beta: Double

        public init(name: String, alpha: Double, beta: Double) {
            (self.name, self.alpha, self.beta) = (name, alpha, beta)
        }

        /// From the fit t = a + b * bytes of an all-reduce over two ranks (`bench
        /// --allreduce`): a ring over two ranks takes 2 steps of bytes/2, so alpha = a/2
        /// and beta = b.
        public init(name: String, twoRankFit a: Double, _ b: Double) {
            self.init(name: name, alpha: a / 2, beta: b)
        }

        /// Ring all-reduces of `bytes` in all, in `messages` collectives (each pays the
        /// latency), over `machines`.
        public func allReduce(_ bytes: Double, machines n: Int, messages: Int = 1) -> Double {
            2 * reduceScatter(bytes, machines: n, messages: messages)
        }

        /// Ring reduce-scatters (or all-gathers) of `bytes` in all, in `messages` collectives.
        public func reduceScatter(_ bytes: Double, machines n: Int, messages: Int = 1) -> Double {
            n < 2 ? 0 : Double(n - 1) * (Double(messages) * alpha + bytes / Double(n) * beta)
        }
    }

    /// One model's training as one machine runs it.
    public struct Workload: Sendable {
        public let name: String
        /// Bytes of the FP32 gradient: all of it, and the part sent after the backward
        /// (the embedding, final norm and head).
        public let gradientBytes: Double
        public let tailBytes: Double
        /// Buckets: one per block, and the two after the backward (embedding; final norm
        /// and head).
        public let blockBuckets: Int
        public static let tailBuckets = 2
        /// Tokens per second of one whole machine.
        public let tokensPerSecond: Double
        public let context: Int
        public let microBatch: Int

        public init(name: String, config: ModelConfig, microBatch: Int, tokensPerSecond: Double) {
            // The trainer's own buckets: the blocks, then the tail's.
            let buckets = GradientExchange.buckets(ParameterLayout(config: config))
            self.name = name
            gradientBytes = 4 * Double(buckets.reduce(0) { $0 + $1.count })
            tailBytes = 4 * Double(buckets.suffix(Self.tailBuckets).reduce(0) { $0 + $1.count })
            blockBuckets = buckets.count - Self.tailBuckets
            self.tokensPerSecond = tokensPerSecond
            context = config.context
            self.microBatch = microBatch
        }

        public init(name: String, gradientBytes: Double, tailBytes: Double, blockBuckets: Int, tokensPerSecond: Double,
                    context: Int, microBatch: Int) {
            (self.name, self.gradientBytes, self.tailBytes, self.blockBuckets) = (name, gradientBytes, tailBytes, blockBuckets)
            (self.tokensPerSecond, self.context, self.microBatch) = (tokensPerSecond, context, microBatch)
        }
    }

    /// How a step's gradients travel.
    public enum Variant: String, CaseIterable, Sendable {
        /// One all-reduce after the backward.
        case afterBackward = "after backward"
        /// The trainer: the blocks' all-reduces during the last micro-batch's backward.
        case overlapped = "overlapped"
        /// The trainer with --zero 1: reduce-scatters overlapped, all-gather after the update.
        case zero1 = "ZeRO-1"
    }

    /// The backward pass's share of a micro-batch's compute (twice the forward's FLOPs).
    public static let backwardShare = 2.0 / 3.0

    public struct Step: Sendable {
        public let compute: Double
        /// Communication time the step waits for (not hidden behind compute).
        public let exposed: Double
        public var seconds: Double { compute + exposed }
        /// Tokens/s of N machines over N times one machine's.
        public var efficiency: Double { compute / seconds }
    }

    /// One step of `batch` sequences over `machines` (each taking batch / machines).
    public static func step(_ w: Workload, link: Link, machines n: Int, batch: Int, variant: Variant) -> Step {
        let compute = Double(batch * w.context) / Double(n) / w.tokensPerSecond
        // Only the last micro-batch's backward hides the blocks' sums.
        let microBatches = max(1, batch / (n * w.microBatch))
        let window = backwardShare * compute / Double(microBatches)
        let blocks = w.gradientBytes - w.tailBytes
        let (b, t) = (w.blockBuckets, Workload.tailBuckets)
        let exposed: Double
        switch variant {
        case .afterBackward:
            exposed = link.allReduce(w.gradientBytes, machines: n)
        case .overlapped:
            exposed = max(link.allReduce(blocks, machines: n, messages: b) - window, 0)
                + link.allReduce(w.tailBytes, machines: n, messages: t)
        case .zero1:
            exposed = max(link.reduceScatter(blocks, machines: n, messages: b) - window, 0)
                + link.reduceScatter(w.tailBytes, machines: n, messages: t) + link.reduceScatter(w.gradientBytes, machines: n, messages: b + t)
        }
        return Step(compute: compute, exposed: n < 2 ? 0 : exposed)
    }

    /// The smallest batch (a multiple of machines x micro-batch, in sequences) at which
    /// the step reaches `efficiency` (< 1). The exposed time does not grow with the batch
    /// (the hiding window is one micro-batch's backward), so compute must reach
    /// efficiency / (1 - efficiency) times it.
    public static func batchNeeded(_ w: Workload, link: Link, machines n: Int, variant: Variant, efficiency: Double) -> Int {
        let unit = n * w.microBatch
        let exposed = step(w, link: link, machines: n, batch: unit, variant: variant).exposed
        let compute = efficiency / (1 - efficiency) * exposed
        let sequences = compute * w.tokensPerSecond * Double(n) / Double(w.context)
        return max(1, Int(min((sequences / Double(unit)).rounded(.up), 1e12))) * unit
    }
}
