// How a step's gradients travel between the ranks of a data-parallel run, and which
// parameters' AdamW moments each rank keeps.
//
// Plain data parallelism: each gradient bucket (a block's parameters, the embedding, the
// final norm and head) is summed onto every rank by an all-reduce, queued on the
// communication thread as soon as the backward pass has finished the bucket; every rank
// keeps all moments and applies the same update. ZeRO stage 1 (Rajbhandari et al. 2020, `--zero 1`): each bucket is cut into one
// piece per rank, a reduce-scatter leaves rank r the sum of its piece only, rank r updates
// those parameters with the moments it alone keeps, and an all-gather hands the updated
// parameters to every rank. The same traffic (an all-reduce is a reduce-scatter followed
// by an all-gather) for 1/N of the optimizer memory.
import Foundation

/// The parameters whose AdamW moments one rank keeps: ranges of the flat parameter block,
/// each stored from `local` on in the rank's own moment buffers.
public struct OptimizerShard: Sendable {
    public struct Piece: Sendable {
        public let range: Range<Int>
        public let local: Int
    }
    public let pieces: [Piece]
    /// Floats in each moment buffer.
    public let count: Int

    public static func whole(_ count: Int) -> OptimizerShard {
        OptimizerShard(pieces: [Piece(range: 0..<count, local: 0)], count: count)
    }
}

public final class GradientExchange {
    public let ranks: Communicator
    /// Whether the moments are sharded (ZeRO-1; only with several ranks).
    public let sharded: Bool
    /// The parameters whose moments this rank keeps.
    public let shard: OptimizerShard
    /// The buckets: blocks 0..<layers, then the embedding, then the final norm and head.
    private let buckets: [Range<Int>]
    private let layers: Int
    /// Floats in the parameter block.
    private let totalCount: Int
    /// ZeRO-1: per bucket b and rank r, the length and offset (from the bucket's start) of
    /// r's piece at [b * ranks + r].
    private let counts, offsets: UnsafeMutablePointer<Int32>
    /// ZeRO-1: this rank's pieces of the summed gradients, in shard order.
    private let shardGradients: UnsafeMutablePointer<Float>?
    /// Runs the buckets' collectives during the backward (several ranks only).
    private let thread: CommunicationThread?

    public init(layout: ParameterLayout, ranks: Communicator, sharded requested: Bool) throws {
        self.ranks = ranks
        let n = ranks.size
        sharded = requested && n > 1
        layers = layout.layers.count
        totalCount = layout.totalCount
        buckets = Self.buckets(layout)
        counts = .allocate(capacity: buckets.count * n)
        offsets = .allocate(capacity: buckets.count * n)
        thread = n > 1 ? CommunicationThread() : nil
        guard sharded else {
            shard = .whole(layout.totalCount)
            shardGradients = nil
            return
        }
        var pieces: [OptimizerShard.Piece] = [], local = 0
        for (b, bucket) in buckets.enumerated() {
            guard bucket.count <= Int(Int32.max) else {
                throw BitNetError.invalid("--zero 1: a bucket of \(bucket.count) parameters exceeds MPI's count limit of \(Int32.max)")
            }
            let bounds = Self.pieceBounds(count: bucket.count, ranks: n)
            for r in 0..<n {
                counts[b * n + r] = Int32(bounds[r + 1] - bounds[r])
                offsets[b * n + r] = Int32(bounds[r])
            }
            let own = bucket.lowerBound + bounds[ranks.rank]..<bucket.lowerBound + bounds[ranks.rank + 1]
            pieces.append(OptimizerShard.Piece(range: own, local: local))
            local += own.count
        }
        shard = OptimizerShard(pieces: pieces, count: local)
        shardGradients = .allocate(capacity: max(local, 1))
    }

    deinit {
        thread?.stop()
        counts.deallocate()
        offsets.deallocate()
        shardGradients?.deallocate()
    }

    /// Where each of `ranks` pieces of a bucket of `count` floats starts (and, last, the
    /// end): nearly equal parts, cut at multiples of 16 floats so every piece starts on a
    /// 64-byte line as the bucket does.
    static func pieceBounds(count: Int, ranks: Int) -> [Int] {
        (0...ranks).map { r in r == ranks ? count : count / 16 * r / ranks * 16 }
    }

    /// The buckets, which tile the parameter block: blocks 0..<layers, then the embedding
    /// (before block 0), then the final norm and head (after the last).
    static func buckets(_ layout: ParameterLayout) -> [Range<Int>] {
        let blocks = (0..<layout.layers.count).map { layout.range(ofLayer: $0) }
        let first = blocks.first?.lowerBound ?? layout.totalCount, end = blocks.last?.upperBound ?? first
        return blocks + [0..<first, end..<layout.totalCount]
    }

    /// The floats each rank keeps moments for under ZeRO-1 over `ranks` ranks (at most:
    /// the rank with the largest pieces), for the memory estimate.
    public static func largestShard(layout: ParameterLayout, ranks: Int) -> Int {
        guard ranks > 1 else { return layout.totalCount }
        return buckets(layout).reduce(0) { total, bucket in
            let bounds = pieceBounds(count: bucket.count, ranks: ranks)
            return total + ((0..<ranks).map { bounds[$0 + 1] - bounds[$0] }.max() ?? 0)
        }
    }

    // MARK: One step

    /// Starts combining block `layer`'s gradients (final once its backward is done).
    public func send(layer: Int, gradients: UnsafeMutablePointer<Float>) throws {
        try send(bucket: layer, gradients: gradients)
    }

    /// Sends the remaining buckets, waits for all, and returns the gradients the
    /// optimizer reads: all of them, or under ZeRO-1 this rank's shard.
    public func finish(gradients: UnsafeMutablePointer<Float>) throws -> UnsafeMutablePointer<Float> {
        try send(bucket: layers, gradients: gradients)
        try send(bucket: layers + 1, gradients: gradients)
        try thread?.finish()
        return shardGradients ?? gradients
    }

    /// Queues bucket b's sum; the backward must not touch the bucket until `finish`.
    private func send(bucket b: Int, gradients: UnsafeMutablePointer<Float>) throws {
        guard let thread else { return }
        let bucket = buckets[b], ranks = self.ranks
        let values = gradients + bucket.lowerBound
        if let shardGradients {
            let piece = shardGradients + shard.pieces[b].local, counts = self.counts + b * ranks.size
            thread.submit { try ranks.reduceScatter(values, into: piece, counts: counts) }
        } else {
            thread.submit { try ranks.sum(values, count: bucket.count) }
        }
    }

    /// The squared L2 norm of all summed gradients (`finish`'s result): under ZeRO-1 each
    /// rank's part, summed across ranks.
    public func squaredNorm(_ gradients: UnsafePointer<Float>) throws -> Double {
        let own = AdamW.sumOfSquares(gradients, count: shard.count)
        return sharded ? try ranks.sum(own) : own
    }

    /// ZeRO-1, after the update: every rank's updated pieces to every rank.
    public func shareUpdatedParameters(_ parameters: UnsafeMutablePointer<Float>) throws {
        guard sharded else { return }
        let n = ranks.size
        for (b, bucket) in buckets.enumerated() {
            try ranks.allGather(parameters + bucket.lowerBound, counts: counts + b * n, offsets: offsets + b * n)
        }
    }

    // MARK: Checkpoints (they hold every moment, whatever the number of ranks)

    /// Calls `body` with the moments of every parameter: on every rank when unsharded; under
    /// ZeRO-1 gathered onto rank 0 (nil on the others), in temporary buffers.
    public func withWholeMoments(of optimizer: AdamW,
                                 _ body: ((m: UnsafePointer<Float>, v: UnsafePointer<Float>)?) throws -> Void) throws {
        guard sharded else { return try body((UnsafePointer(optimizer.m), UnsafePointer(optimizer.v))) }
        let total = totalCount, n = ranks.size
        let whole = UnsafeMutablePointer<Float>.allocate(capacity: ranks.isRoot ? 2 * max(total, 1) : 1)
        defer { whole.deallocate() }
        if ranks.isRoot { whole.initialize(repeating: 0, count: 2 * total) }
        for (moments, base) in [(optimizer.m, 0), (optimizer.v, total)] {
            for (b, bucket) in buckets.enumerated() {
                let into = ranks.isRoot ? whole + base + bucket.lowerBound : whole
                try ranks.gather(moments + shard.pieces[b].local, into: into, counts: counts + b * n, offsets: offsets + b * n)
            }
        }
        try body(ranks.isRoot ? (UnsafePointer(whole), UnsafePointer(whole + total)) : nil)
    }

    /// Fills the optimizer's moments through `fill`, which writes every parameter's moments
    /// (a checkpoint's) into the buffers it is given; under ZeRO-1 this rank keeps its pieces.
    public func loadMoments(into optimizer: AdamW,
                            _ fill: (_ m: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>) throws -> Void) throws {
        guard sharded else { return try fill(optimizer.m, optimizer.v) }
        let total = totalCount
        let whole = UnsafeMutablePointer<Float>.allocate(capacity: 2 * max(total, 1))
        defer { whole.deallocate() }
        whole.initialize(repeating: 0, count: 2 * total)
        try fill(whole, whole + total)
        for piece in shard.pieces {
            (optimizer.m + piece.local).update(from: whole + piece.range.lowerBound, count: piece.range.count)
            (optimizer.v + piece.local).update(from: whole + total + piece.range.lowerBound, count: piece.range.count)
        }
    }
}
