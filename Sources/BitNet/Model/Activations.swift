// Every activation the backward pass needs, carved out of one allocation
// (plus one Int8 block for the quantized BitLinear inputs). With BF16 storage, the
// large per-layer tensors are computed in one FP32 working layer and kept per layer in
// BF16: the forward pass stores each layer's as it finishes, the backward pass widens
// them back before that layer's gradients (FP32 arithmetic throughout).

/// How the activations saved for the backward pass are kept.
public enum ActivationStorage: String, ConfigChoice {
    case f32
    /// Half the memory of the saved activations; gradients from values rounded to 8 bits
    /// of mantissa (the forward pass and the loss are unchanged).
    case bf16
}

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
    /// BF16 storage: where this layer's large tensors are kept ([(FP32 working tensor,
    /// BF16 copy, count)]; the input first, stored before the layer overwrites it).
    var stored: [(working: UnsafeMutablePointer<Float>, copy: UnsafeMutablePointer<UInt16>, count: Int)] = []

    /// Keeps the layer's input in BF16 (before the working layer's input is overwritten).
    func storeInput() {
        guard let first = stored.first else { return }
        BFloat16.encode(first.working, into: first.copy, count: first.count)
    }

    /// Keeps the rest of the layer's tensors in BF16, after its forward pass.
    func storeRest() {
        for s in stored.dropFirst() { BFloat16.encode(s.working, into: s.copy, count: s.count) }
    }

    /// Widens the layer's tensors into the working layer, before its backward pass.
    func restore() {
        for s in stored { BFloat16.decode(s.copy, into: s.working, count: s.count) }
    }
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

    fileprivate init(config: ModelConfig, batch b: Int, storage: ActivationStorage, floats f: inout Arena<Float>,
                     bytes by: inout Arena<Int8>, halves h: inout Arena<UInt16>) {
        let t = config.context, c = config.dim, ff = config.ffnDim, n = b * t
        let gated = config.ffnActivation.hasGate
        let layout = ParameterLayout(config: config)
        // The large tensors of a layer: per layer in FP32, or one FP32 working layer.
        func largeTensors() -> [UnsafeMutablePointer<Float>] {
            [f.take(n * c), f.take(n * c), f.take(n * c), f.take(n * c), f.take(n * c), f.take(b * config.heads * t * t),
             f.take(n * c), f.take(n * c), f.take(n * c), f.take(n * ff), gated ? f.take(n * ff) : nil, f.take(n * ff)]
                .compactMap { $0 }
        }
        let counts = [n * c, n * c, n * c, n * c, n * c, b * config.heads * t * t, n * c, n * c, n * c, n * ff]
            + (gated ? [n * ff] : []) + [n * ff]
        let working = storage == .bf16 ? largeTensors() : []
        for l in 0..<config.layers {
            let large = storage == .bf16 ? working : largeTensors()
            let (input, an, q, k, v, probs, ao, mid, fn) = (large[0], large[1], large[2], large[3], large[4], large[5],
                                                            large[6], large[7], large[8])
            let up = large[9], gate = gated ? large[10] : up, hidden = large[large.count - 1]
            let anm = f.take(n), anr = f.take(n), fnm = f.take(n), fnr = f.take(n)
            var saved: [BitLinearSaved] = []
            if config.mode.isBitNet {
                for p in layout.layers[l].projections {
                    let unsigned = config.usesUnsignedActivations(p, isDownProjection: p.index == layout.layers[l].down.index)
                    saved.append(BitLinearSaved(mean: f.take(n), rstd: f.take(n), gamma: f.take(n),
                                                quantized: by.take(n * p.inFeatures), eta: unsigned ? f.take(n) : nil))
                }
            }
            var layer = LayerActivations(
                input: input, attentionNorm: an, attentionNormMean: anm, attentionNormRstd: anr, q: q, k: k, v: v,
                probs: probs, attentionOut: ao, residualMid: mid, ffnNorm: fn, ffnNormMean: fnm, ffnNormRstd: fnr,
                up: up, gate: gate, hidden: hidden, saved: saved)
            if storage == .bf16 {
                layer.stored = zip(large, counts).map { (working: $0, copy: h.take($1), count: $1) }
            }
            layers.append(layer)
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
    private let halves: UnsafeMutablePointer<UInt16>
    public let byteCount: Int
    public internal(set) var views: ActivationViews

    /// Bytes an `Activations` of this shape allocates, without allocating.
    public static func bytesNeeded(config: ModelConfig, batch: Int, storage: ActivationStorage = .f32) -> Int {
        var f = Arena<Float>(base: nil), by = Arena<Int8>(base: nil), h = Arena<UInt16>(base: nil)
        _ = ActivationViews(config: config, batch: batch, storage: storage, floats: &f, bytes: &by, halves: &h)
        return f.count * 4 + by.count + h.count * 2
    }

    public init(config: ModelConfig, batch: Int, storage: ActivationStorage = .f32) {
        self.batch = batch
        var countF = Arena<Float>(base: nil), countB = Arena<Int8>(base: nil), countH = Arena<UInt16>(base: nil)
        _ = ActivationViews(config: config, batch: batch, storage: storage, floats: &countF, bytes: &countB, halves: &countH)
        floats = .allocate(capacity: countF.count)
        floats.initialize(repeating: 0, count: countF.count)
        bytes = .allocate(capacity: max(countB.count, 1))
        bytes.initialize(repeating: 0, count: max(countB.count, 1))
        halves = .allocate(capacity: max(countH.count, 1))
        halves.initialize(repeating: 0, count: max(countH.count, 1))
        byteCount = countF.count * 4 + countB.count + countH.count * 2
        var f = Arena<Float>(base: floats), by = Arena<Int8>(base: bytes), h = Arena<UInt16>(base: halves)
        views = ActivationViews(config: config, batch: batch, storage: storage, floats: &f, bytes: &by, halves: &h)
    }

    deinit {
        floats.deallocate()
        bytes.deallocate()
        halves.deallocate()
    }
}
