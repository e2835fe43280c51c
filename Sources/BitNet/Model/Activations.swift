// Every activation the backward pass needs, carved out of one allocation
// (plus one Int8 block for the quantized BitLinear inputs).

/// Hands out consecutive slices of a block; in counting mode (no base) it only
/// measures, so the memory estimate and the allocation can never disagree.
struct Arena<Element> {
    private(set) var count = 0
    let base: UnsafeMutablePointer<Element>?

    init(base: UnsafeMutablePointer<Element>?) { self.base = base }

    mutating func take(_ n: Int) -> UnsafeMutablePointer<Element> {
        let offset = count
        count += (n + 15) / 16 * 16
        // Counting mode returns a placeholder that is never dereferenced.
        return base.map { $0 + offset } ?? UnsafeMutablePointer(bitPattern: 64)!
    }
}

public struct LayerActivations {
    /// The residual stream entering the layer [N, C].
    var input: UnsafeMutablePointer<Float>
    var attentionNorm, attentionNormMean, attentionNormRstd: UnsafeMutablePointer<Float>
    var q, k, v: UnsafeMutablePointer<Float>
    /// [B, NH, T, T]
    var probs: UnsafeMutablePointer<Float>
    var attentionOut: UnsafeMutablePointer<Float>
    var residualMid: UnsafeMutablePointer<Float>
    var ffnNorm, ffnNormMean, ffnNormRstd: UnsafeMutablePointer<Float>
    /// [N, F]
    var up, gate, hidden: UnsafeMutablePointer<Float>
    /// One per BitLinear of the layer, in `LayerSlots.projections` order (quantized modes).
    var saved: [BitLinearSaved]
}

/// Named views into the activation block. Shapes for batch B and length T
/// (N = B*T rows), width C, FFN width F, vocabulary V.
public struct ActivationViews {
    var layers: [LayerActivations] = []
    /// The residual stream after the last layer [N, C].
    var output, finalNorm, finalNormMean, finalNormRstd: UnsafeMutablePointer<Float>
    /// [N, V]: logits, then probabilities after the loss, then their gradient.
    var logits: UnsafeMutablePointer<Float>
    var losses: UnsafeMutablePointer<Float>
    var tokens, targets: UnsafeMutablePointer<Int32>
    // Scratch shared by all layers.
    var projectionOut, scratchA, scratchB: UnsafeMutablePointer<Float>
    // Gradients of activations.
    var dResidual, dNorm, dq, dk, dv, dAttentionOut, dUp, dGate, dHidden: UnsafeMutablePointer<Float>
    /// [B, NH, T, T]
    var dProbs: UnsafeMutablePointer<Float>

    fileprivate init(config: ModelConfig, batch b: Int, floats f: inout Arena<Float>, bytes by: inout Arena<Int8>) {
        let t = config.context, c = config.dim, ff = config.ffnDim, n = b * t
        let gated = config.ffnActivation.hasGate
        let layout = ParameterLayout(config: config)
        for l in 0..<config.layers {
            let input = f.take(n * c)
            let an = f.take(n * c), anm = f.take(n), anr = f.take(n)
            let q = f.take(n * c), k = f.take(n * c), v = f.take(n * c)
            let probs = f.take(b * config.heads * t * t)
            let ao = f.take(n * c), mid = f.take(n * c)
            let fn = f.take(n * c), fnm = f.take(n), fnr = f.take(n)
            let up = f.take(n * ff), gate = gated ? f.take(n * ff) : up, hidden = f.take(n * ff)
            var saved: [BitLinearSaved] = []
            if config.mode.isQuantized {
                for p in layout.layers[l].projections {
                    let unsigned = config.usesUnsignedActivations(p, isDownProjection: p.index == layout.layers[l].down.index)
                    saved.append(BitLinearSaved(mean: f.take(n), rstd: f.take(n), gamma: f.take(n),
                                                quantized: by.take(n * p.inFeatures), eta: unsigned ? f.take(n) : nil))
                }
            }
            layers.append(LayerActivations(
                input: input, attentionNorm: an, attentionNormMean: anm, attentionNormRstd: anr, q: q, k: k, v: v,
                probs: probs, attentionOut: ao, residualMid: mid, ffnNorm: fn, ffnNormMean: fnm, ffnNormRstd: fnr,
                up: up, gate: gate, hidden: hidden, saved: saved))
        }
        output = f.take(n * c)
        finalNorm = f.take(n * c)
        finalNormMean = f.take(n)
        finalNormRstd = f.take(n)
        logits = f.take(n * config.vocabSize)
        losses = f.take(n)
        // Int32 and Float have the same size and alignment.
        tokens = UnsafeMutableRawPointer(f.take(2 * n)).assumingMemoryBound(to: Int32.self)
        targets = tokens + n
        let wide = max(c, ff)
        projectionOut = f.take(n * c)
        scratchA = f.take(n * wide)
        scratchB = f.take(n * wide)
        dResidual = f.take(n * c)
        dNorm = f.take(n * c)
        dq = f.take(n * c)
        dk = f.take(n * c)
        dv = f.take(n * c)
        dAttentionOut = f.take(n * c)
        dUp = f.take(n * ff)
        dGate = gated ? f.take(n * ff) : dUp
        dHidden = f.take(n * ff)
        dProbs = f.take(b * config.heads * t * t)
    }
}

/// Owns the activation block for batches of up to `batch` sequences of up to `context` tokens.
public final class Activations {
    public let batch: Int
    private let floats: UnsafeMutablePointer<Float>
    private let bytes: UnsafeMutablePointer<Int8>
    public let byteCount: Int
    public internal(set) var views: ActivationViews

    /// Bytes an `Activations` of this shape allocates, without allocating.
    public static func bytesNeeded(config: ModelConfig, batch: Int) -> Int {
        var f = Arena<Float>(base: nil), by = Arena<Int8>(base: nil)
        _ = ActivationViews(config: config, batch: batch, floats: &f, bytes: &by)
        return f.count * 4 + by.count
    }

    public init(config: ModelConfig, batch: Int) {
        self.batch = batch
        var countF = Arena<Float>(base: nil), countB = Arena<Int8>(base: nil)
        _ = ActivationViews(config: config, batch: batch, floats: &countF, bytes: &countB)
        floats = .allocate(capacity: countF.count)
        floats.initialize(repeating: 0, count: countF.count)
        bytes = .allocate(capacity: max(countB.count, 1))
        bytes.initialize(repeating: 0, count: max(countB.count, 1))
        byteCount = countF.count * 4 + countB.count
        var f = Arena<Float>(base: floats), by = Arena<Int8>(base: bytes)
        views = ActivationViews(config: config, batch: batch, floats: &f, bytes: &by)
    }

    deinit {
        floats.deallocate()
        bytes.deallocate()
    }
}
