// The runtime's forward pass, one token at a time with a KV cache, in llama2.c's mould:
// config, weights (views into the mapped file), run state, forward(token, pos) -> logits.
// Every BitLinear runs add-only on packed weights (PackedBitLinear).
import Foundation

/// The model config, read from the file's metadata.
public enum RuntimeActivation: String, Sendable {
    case swiglu
    case gelu
    case relu2
}

public struct RuntimeConfig: Sendable {
    public let vocabSize, dim, layers, heads, ffnDim, context: Int
    public let ternary: Bool
    public let norm: RuntimeNorm
    public let activation: RuntimeActivation
    public var gated: Bool { activation == .swiglu }
    public let tied: Bool
    public let ropeTheta: Float
    public let normEpsilon: Float
    public var headDim: Int { dim / heads }

    init(_ c: [String: Any], path: String) throws {
        func bad(_ what: String) -> ModelFileError { ModelFileError(description: "\(path): config \(what)") }
        func int(_ key: String) throws -> Int {
            guard let v = c[key] as? Int, v > 0, v < 1 << 24 else { throw bad("field \(key) is missing or out of range") }
            return v
        }
        vocabSize = try int("vocab_size")
        dim = try int("dim")
        layers = try int("layers")
        heads = try int("heads")
        ffnDim = try int("ffn_dim")
        context = try int("context")
        guard dim % heads == 0, (dim / heads) % 2 == 0 else { throw bad("heads must divide dim into even head sizes") }
        switch c["mode"] as? String {
        case "binary": ternary = false
        case "ternary": ternary = true
        default: throw bad("mode must be binary or ternary")
        }
        guard let n = (c["norm"] as? String).flatMap(RuntimeNorm.init) else { throw bad("norm must be rms or layer") }
        norm = n
        guard c["activation_scaling"] as? String == "per-token" else {
            throw bad("activation_scaling must be per-token (a one-token runtime cannot use the per-tensor scale)")
        }
        guard let a = (c["ffn_activation"] as? String).flatMap(RuntimeActivation.init) else {
            throw bad("ffn_activation must be swiglu, gelu or relu2")
        }
        activation = a
        tied = (c["tied_embeddings"] as? Bool) ?? true
        ropeTheta = Float((c["rope_theta"] as? Double) ?? 10000)
        normEpsilon = Float((c["norm_epsilon"] as? Double) ?? 1e-5)
    }
}

/// A float vector tensor (norm gain or bias) copied out of the file.
typealias Vector = [Float]

struct PackedLinear {
    let entry: TensorEntry
    let gain: Vector
    let bias: Vector?
}

struct LayerWeights {
    let attentionNorm: Vector, attentionNormBias: Vector?
    let query, key, value, output: PackedLinear
    let ffnNorm: Vector, ffnNormBias: Vector?
    let up: PackedLinear, gate: PackedLinear?, down: PackedLinear
}

public final class Model: @unchecked Sendable {
    public let file: ModelFile
    public let config: RuntimeConfig
    public let tokenizer: Tokenizer
    let layers: [LayerWeights]
    let finalNorm: Vector, finalNormBias: Vector?
    let embedding: TensorEntry
    let head: TensorEntry
    let ropeCos: [Float], ropeSin: [Float]

    // Run state: preallocated buffers and the KV cache [layers, context, dim].
    var x, xb, h, q, k, v, attention, ffnUp, ffnGate, hidden, logits, scores: [Float]
    var quantized: [Int8]
    var accumulator: [Int32]
    var keyCache, valueCache: [Float]

    public init(path: String) throws {
        file = try ModelFile(path: path)
        let c = try RuntimeConfig(file.config, path: path)
        config = c
        tokenizer = try Tokenizer(metadata: file.tokenizer, vocabSize: c.vocabSize, path: path)
        let f = file
        func vector(_ name: String, _ count: Int) throws -> Vector {
            let e = try f.tensor(name)
            guard e.rows * e.cols == count, e.type == .f32 else {
                throw ModelFileError(description: "\(path): tensor '\(name)' should be \(count) FP32 values")
            }
            return f.floats(e)
        }
        func optionalVector(_ name: String, _ count: Int) throws -> Vector? {
            c.norm == .layer ? try vector(name, count) : nil
        }
        func linear(_ name: String, _ inFeatures: Int, _ outFeatures: Int) throws -> PackedLinear {
            let e = try f.tensor(name + ".weight")
            guard e.type == (c.ternary ? .ternary : .binary), e.rows == outFeatures, e.cols == inFeatures else {
                throw ModelFileError(description: "\(path): tensor '\(name).weight' is not a packed [\(outFeatures), \(inFeatures)] matrix")
            }
            return PackedLinear(entry: e, gain: try vector(name + ".sub_norm.weight", inFeatures),
                                bias: try optionalVector(name + ".sub_norm.bias", inFeatures))
        }
        var layers: [LayerWeights] = []
        for l in 0..<c.layers {
            let p = "layers.\(l)."
            layers.append(LayerWeights(
                attentionNorm: try vector(p + "attention_norm.weight", c.dim),
                attentionNormBias: try optionalVector(p + "attention_norm.bias", c.dim),
                query: try linear(p + "attention.query", c.dim, c.dim), key: try linear(p + "attention.key", c.dim, c.dim),
                value: try linear(p + "attention.value", c.dim, c.dim),
                output: try linear(p + "attention.output", c.dim, c.dim),
                ffnNorm: try vector(p + "ffn_norm.weight", c.dim), ffnNormBias: try optionalVector(p + "ffn_norm.bias", c.dim),
                up: try linear(p + "ffn.up", c.dim, c.ffnDim), gate: c.gated ? try linear(p + "ffn.gate", c.dim, c.ffnDim) : nil,
                down: try linear(p + "ffn.down", c.ffnDim, c.dim)))
        }
        self.layers = layers
        finalNorm = try vector("final_norm.weight", c.dim)
        finalNormBias = try optionalVector("final_norm.bias", c.dim)
        embedding = try f.tensor("embedding.weight")
        head = c.tied ? embedding : try f.tensor("head.weight")
        for e in [embedding, head] where !(e.rows == c.vocabSize && e.cols == c.dim && (e.type == .f32 || e.type == .f16)) {
            throw ModelFileError(description: "\(path): tensor '\(e.name)' should be [\(c.vocabSize), \(c.dim)] FP32 or FP16")
        }
        // RoPE tables, computed as the trainer computes them.
        var cosTable = [Float](repeating: 0, count: c.context * c.headDim / 2), sinTable = cosTable
        for t in 0..<c.context {
            for j in 0..<c.headDim / 2 {
                let angle = Double(t) * pow(Double(c.ropeTheta), -2 * Double(j) / Double(c.headDim))
                cosTable[t * c.headDim / 2 + j] = Float(Foundation.cos(angle))
                sinTable[t * c.headDim / 2 + j] = Float(Foundation.sin(angle))
            }
        }
        ropeCos = cosTable
        ropeSin = sinTable
        let wide = max(c.dim, c.ffnDim)
        (x, xb, q, k, v, attention) = ([Float](repeating: 0, count: c.dim), [Float](repeating: 0, count: c.dim),
                                       [Float](repeating: 0, count: c.dim), [Float](repeating: 0, count: c.dim),
                                       [Float](repeating: 0, count: c.dim), [Float](repeating: 0, count: c.dim))
        h = [Float](repeating: 0, count: wide)
        (ffnUp, ffnGate, hidden) = ([Float](repeating: 0, count: c.ffnDim), [Float](repeating: 0, count: c.ffnDim),
                                    [Float](repeating: 0, count: c.ffnDim))
        logits = [Float](repeating: 0, count: c.vocabSize)
        scores = [Float](repeating: 0, count: c.context)
        quantized = [Int8](repeating: 0, count: wide)
        accumulator = [Int32](repeating: 0, count: wide)
        keyCache = [Float](repeating: 0, count: c.layers * c.context * c.dim)
        valueCache = keyCache
    }

    /// A row of the embedding (or head) as FP32.
    func row(_ e: TensorEntry, _ r: Int, into out: UnsafeMutablePointer<Float>) {
        file.data.withUnsafeBytes { raw in
            let base = raw.baseAddress! + e.offset
            for i in 0..<e.cols {
                out[i] = e.type == .f32
                    ? Float(bitPattern: UInt32(littleEndian: (base + 4 * (r * e.cols + i)).loadUnaligned(as: UInt32.self)))
                    : Float(Float16(bitPattern: UInt16(littleEndian: (base + 2 * (r * e.cols + i)).loadUnaligned(as: UInt16.self))))
            }
        }
    }

    /// out = BitLinear(inp), add-only on the packed weights.
    func apply(_ layer: PackedLinear, _ inp: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
        let e = layer.entry
        h.withUnsafeMutableBufferPointer { hb in
            layer.gain.withUnsafeBufferPointer { g in
                layer.bias.withUnsafeBufferPointerOptional { b in
                    PackedBitLinear.subNorm(config.norm, out: hb.baseAddress!, x: inp, gain: g.baseAddress!, bias: b,
                                            count: e.cols, epsilon: config.normEpsilon)
                }
            }
            let gamma = PackedBitLinear.quantize(hb.baseAddress!, count: e.cols, into: &quantized)
            file.data.withUnsafeBytes { raw in
                PackedBitLinear.product(acc: &accumulator, planes: raw.baseAddress! + e.offset, entry: e, q: quantized)
            }
            PackedBitLinear.rescale(accumulator, gamma: gamma, beta: e.scale, into: out, count: e.rows)
        }
    }

    func blockNorm(_ gain: Vector, _ bias: Vector?, _ inp: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
        gain.withUnsafeBufferPointer { g in
            bias.withUnsafeBufferPointerOptional { b in
                PackedBitLinear.subNorm(config.norm, out: out, x: inp, gain: g.baseAddress!, bias: b, count: config.dim,
                                        epsilon: config.normEpsilon)
            }
        }
    }

    /// Logits for `token` at position `pos` (0-based, < context); fills the KV cache.
    public func forward(token: Int32, pos: Int) -> [Float] {
        let c = config, hd = c.headDim, half = hd / 2
        precondition(pos >= 0 && pos < c.context && token >= 0 && Int(token) < c.vocabSize)
        x.withUnsafeMutableBufferPointer { row(embedding, Int(token), into: $0.baseAddress!) }
        for (l, w) in layers.enumerated() {
            blockNorm(w.attentionNorm, w.attentionNormBias, x, &xb)
            apply(w.query, xb, &q)
            apply(w.key, xb, &k)
            apply(w.value, xb, &v)
            // RoPE on interleaved pairs, as the trainer.
            for head in 0..<c.heads {
                for j in 0..<half {
                    let cs = ropeCos[pos * half + j], sn = ropeSin[pos * half + j]
                    let i = head * hd + 2 * j
                    (q[i], q[i + 1]) = (q[i] * cs - q[i + 1] * sn, q[i] * sn + q[i + 1] * cs)
                    (k[i], k[i + 1]) = (k[i] * cs - k[i + 1] * sn, k[i] * sn + k[i + 1] * cs)
                }
            }
            let cacheBase = l * c.context * c.dim
            for i in 0..<c.dim {
                keyCache[cacheBase + pos * c.dim + i] = k[i]
                valueCache[cacheBase + pos * c.dim + i] = v[i]
            }
            let scale = 1 / Float(hd).squareRoot()
            for head in 0..<c.heads {
                var m = -Float.infinity
                for t in 0...pos {
                    var s: Float = 0
                    for i in 0..<hd { s += q[head * hd + i] * keyCache[cacheBase + t * c.dim + head * hd + i] }
                    scores[t] = s * scale
                    m = max(m, scores[t])
                }
                var sum: Float = 0
                for t in 0...pos {
                    scores[t] = RuntimeMath.exp(scores[t] - m)
                    sum += scores[t]
                }
                // Normalized once per position (the same values the inner loop divided out each time).
                for t in 0...pos { scores[t] /= sum }
                for i in 0..<hd {
                    var acc: Float = 0
                    for t in 0...pos { acc += scores[t] * valueCache[cacheBase + t * c.dim + head * hd + i] }
                    attention[head * hd + i] = acc
                }
            }
            apply(w.output, attention, &xb)
            for i in 0..<c.dim { x[i] += xb[i] }
            blockNorm(w.ffnNorm, w.ffnNormBias, x, &xb)
            apply(w.up, xb, &ffnUp)
            if let gate = w.gate { apply(gate, xb, &ffnGate) }
            switch c.activation {
            case .swiglu:
                for i in 0..<c.ffnDim { hidden[i] = ffnGate[i] * RuntimeMath.sigmoid(ffnGate[i]) * ffnUp[i] }
            case .gelu:
                for i in 0..<c.ffnDim {
                    let u = ffnUp[i]
                    hidden[i] = 0.5 * u * (1 + RuntimeMath.tanh(0.797_884_56 * (u + 0.044715 * u * u * u)))
                }
            case .relu2:
                for i in 0..<c.ffnDim {
                    let r = max(ffnUp[i], 0)
                    hidden[i] = r * r
                }
            }
            apply(w.down, hidden, &xb)
            for i in 0..<c.dim { x[i] += xb[i] }
        }
        blockNorm(finalNorm, finalNormBias, x, &xb)
        // The head, read straight from the mapped file row by row.
        file.data.withUnsafeBytes { raw in
            let base = raw.baseAddress! + head.offset
            for token in 0..<c.vocabSize {
                var s: Float = 0
                for i in 0..<c.dim {
                    let at = token * c.dim + i
                    let w = head.type == .f32
                        ? Float(bitPattern: UInt32(littleEndian: (base + 4 * at).loadUnaligned(as: UInt32.self)))
                        : Float(Float16(bitPattern: UInt16(littleEndian: (base + 2 * at).loadUnaligned(as: UInt16.self))))
                    s += w * xb[i]
                }
                logits[token] = s
            }
        }
        return logits
    }
}

extension Optional where Wrapped == [Float] {
    func withUnsafeBufferPointerOptional<R>(_ body: (UnsafePointer<Float>?) -> R) -> R {
        switch self {
        case .some(let array): array.withUnsafeBufferPointer { body($0.baseAddress) }
        case .none: body(nil)
        }
    }
}

/// exp, tanh and sigmoid as the trainer computes them (Cody-Waite + degree-6 polynomial).
enum RuntimeMath {
    @inline(__always)
    static func exp(_ x: Float) -> Float {
        let x = min(max(x, -87.0), 88.0)
        let shifted = x * 1.442_695_04 + 12_582_912
        let n = shifted - 12_582_912
        let r = (x - n * 0.693_145_751_953_125) - n * 1.428_606_765_330_187e-6
        var p: Float = 1.0 / 720
        p = p * r + 1.0 / 120
        p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6
        p = p * r + 0.5
        p = p * r + 1
        p = p * r + 1
        return p * Float(bitPattern: (shifted.bitPattern &+ 127) &<< 23)
    }

    static func tanh(_ x: Float) -> Float { 1 - 2 / (exp(2 * x) + 1) }
    static func sigmoid(_ x: Float) -> Float { 1 / (1 + exp(-x)) }
}
