// The model's shape and options, read from the file's metadata ("config", the same keys
// as a run's config.json "model") and checked before anything is allocated.
import BitNetFormat
import Foundation

/// The norm of every block norm, the final norm and each BitLinear's SubLN.
public enum RuntimeNorm: String, Sendable {
    case rms
    case layer
}

/// The feed-forward non-linearity.
public enum RuntimeActivation: String, Sendable {
    case swiglu
    case gelu
    case relu2
}

public struct RuntimeConfig: Sendable {
    public let vocabSize, dim, layers, heads, ffnDim, context: Int
    /// Key/value heads (fewer than `heads` with grouped-query attention).
    public let kvHeads: Int
    public let layout: ModelLayout
    public let ternary: Bool
    public let norm: RuntimeNorm
    public let activation: RuntimeActivation
    public var gated: Bool { activation == .swiglu }
    public let tied: Bool
    public let ropeTheta: Float
    public let normEpsilon: Float
    /// Signed or unsigned activation codes (absent in older files: signed).
    public let activationRange: ActivationRange
    public var headDim: Int { dim / heads }
    /// Width of the key and value projections and of a KV cache row.
    public var kvDim: Int { kvHeads * headDim }

    /// Whether a projection quantizes its input to the unsigned range (the trainer's rule).
    func unsignedInput(isDownProjection: Bool) -> Bool {
        activationRange.isUnsigned(isDownProjection: isDownProjection, ffnActivation: activation.rawValue, norm: norm.rawValue)
    }
    /// The KV cache and RoPE tables grow with the context; beyond this a file is suspect.
    public static let maxContext = 1 << 17

    init(_ c: [String: Any], path: String) throws {
        func bad(_ what: String) -> RuntimeError { RuntimeError(description: "\(path): config \(what)") }
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
        // Absent in files written before grouped-query attention: one key/value head per head.
        let kv = (c["kv_heads"] as? Int) ?? 0
        guard kv >= 0, kv <= heads, kv == 0 || heads % kv == 0 else { throw bad("kv_heads must be 0 or divide heads (\(heads)), got \(kv)") }
        kvHeads = kv == 0 ? heads : kv
        guard let l = ModelLayout(rawValue: (c["layout"] as? String) ?? "bitnet") else { throw bad("layout must be bitnet or b1.58") }
        layout = l
        guard context <= Self.maxContext else { throw bad("context \(context) is larger than this runtime's limit of \(Self.maxContext)") }
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
        guard let range = ActivationRange(rawValue: (c["activation_range"] as? String) ?? "signed") else {
            throw bad("activation_range must be signed, unsigned or auto")
        }
        activationRange = range
        ropeTheta = Float((c["rope_theta"] as? Double) ?? 10000)
        normEpsilon = Float((c["norm_epsilon"] as? Double) ?? 1e-5)
        // The trainer's own ranges (ConfigFields): anything else is damage, not a model.
        guard ropeTheta.isFinite && ropeTheta > 1 else { throw bad("rope_theta must be a finite number > 1, got \(ropeTheta)") }
        guard normEpsilon > 0 && normEpsilon < 1 else { throw bad("norm_epsilon must be in (0, 1), got \(normEpsilon)") }
    }
}
