// The model's shape and the BitLinear options: every default in one place.
import Foundation

/// How the projections inside the blocks hold their weights.
public enum WeightMode: String, Codable, Sendable, CaseIterable {
    /// Ordinary FP32 linear layer: the full-precision baseline.
    case fp
    /// BitNet: weights centred, Sign-binarized to {-1, +1}, scaled by mean |W|.
    case binary
    /// BitNet b1.58: absmean ternary weights {-1, 0, +1}, scaled by mean |W|.
    case ternary

    public var isQuantized: Bool { self != .fp }
}

public enum NormKind: String, Codable, Sendable, CaseIterable {
    case rms
    case layer
}

/// Absmax scale granularity of the 8-bit activation quantizer.
public enum ActivationScaling: String, Codable, Sendable, CaseIterable {
    case perTensor = "per-tensor"
    case perToken = "per-token"
}

public enum FFNActivation: String, Codable, Sendable, CaseIterable {
    /// SiLU(gate) * up, as in LLaMA and BitNet b1.58 (three projections).
    case swiglu
    /// GELU (tanh form) of one up projection, as in GPT-2.
    case gelu
    /// ReLU(x)^2 of one up projection, as in BitNet b1.58 2B4T.
    case relu2

    public var hasGate: Bool { self == .swiglu }
}

public struct ConfigError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }

    /// Throws "config field NAME must be positive" unless `value` > 0.
    static func requirePositive(_ value: Int, _ name: String) throws {
        if value <= 0 { throw ConfigError("config field \(name) must be positive, got \(value)") }
    }
}

/// The architecture. Decoder-only Transformer: embedding, `layers` pre-norm blocks
/// (causal self-attention with RoPE, feed-forward), final norm, output head.
public struct ModelConfig: Codable, Sendable, Equatable {
    public var vocabSize: Int = 4096
    /// Model width C.
    public var dim: Int = 256
    public var layers: Int = 4
    public var heads: Int = 4
    /// Hidden width of the feed-forward network.
    public var ffnDim: Int = 704
    /// Context length T (tokens per training window).
    public var context: Int = 256
    public var mode: WeightMode = .binary
    /// Kind of every norm: block norms, final norm and the SubLN inside BitLinear.
    public var norm: NormKind = .rms
    public var activationScaling: ActivationScaling = .perToken
    public var ffnActivation: FFNActivation = .swiglu
    /// Share the embedding matrix with the output head.
    public var tiedEmbeddings: Bool = true
    /// RoPE base frequency.
    public var ropeTheta: Float = 10000
    public var normEpsilon: Float = 1e-5

    public init() {}

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", dim, layers, heads, ffnDim = "ffn_dim", context, mode, norm
        case activationScaling = "activation_scaling", ffnActivation = "ffn_activation"
        case tiedEmbeddings = "tied_embeddings", ropeTheta = "rope_theta", normEpsilon = "norm_epsilon"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ModelConfig()
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? d.vocabSize
        dim = try c.decodeIfPresent(Int.self, forKey: .dim) ?? d.dim
        layers = try c.decodeIfPresent(Int.self, forKey: .layers) ?? d.layers
        heads = try c.decodeIfPresent(Int.self, forKey: .heads) ?? d.heads
        ffnDim = try c.decodeIfPresent(Int.self, forKey: .ffnDim) ?? d.ffnDim
        context = try c.decodeIfPresent(Int.self, forKey: .context) ?? d.context
        mode = try c.decodeIfPresent(WeightMode.self, forKey: .mode) ?? d.mode
        norm = try c.decodeIfPresent(NormKind.self, forKey: .norm) ?? d.norm
        activationScaling = try c.decodeIfPresent(ActivationScaling.self, forKey: .activationScaling) ?? d.activationScaling
        ffnActivation = try c.decodeIfPresent(FFNActivation.self, forKey: .ffnActivation) ?? d.ffnActivation
        tiedEmbeddings = try c.decodeIfPresent(Bool.self, forKey: .tiedEmbeddings) ?? d.tiedEmbeddings
        ropeTheta = try c.decodeIfPresent(Float.self, forKey: .ropeTheta) ?? d.ropeTheta
        normEpsilon = try c.decodeIfPresent(Float.self, forKey: .normEpsilon) ?? d.normEpsilon
        try validate()
    }

    public var headDim: Int { dim / heads }

    /// Throws a one-line message naming the bad field.
    public func validate() throws {
        try ConfigError.requirePositive(vocabSize, "vocab_size")
        try ConfigError.requirePositive(dim, "dim")
        try ConfigError.requirePositive(layers, "layers")
        try ConfigError.requirePositive(heads, "heads")
        try ConfigError.requirePositive(ffnDim, "ffn_dim")
        try ConfigError.requirePositive(context, "context")
        if dim % heads != 0 { throw ConfigError("config field heads (\(heads)) must divide dim (\(dim))") }
        if headDim % 2 != 0 { throw ConfigError("head dimension dim/heads = \(headDim) must be even for rotary embeddings") }
        if vocabSize > Int(Int32.max) { throw ConfigError("config field vocab_size is too large: \(vocabSize)") }
        if !(ropeTheta > 1) { throw ConfigError("config field rope_theta must be > 1, got \(ropeTheta)") }
        if !(normEpsilon > 0) { throw ConfigError("config field norm_epsilon must be > 0, got \(normEpsilon)") }
    }

    /// Parameters of the embedding (and of an untied head).
    public var embeddingParameters: Int { vocabSize * dim * (tiedEmbeddings ? 1 : 2) }

    /// Weights of the projections inside one block (Q, K, V, O and the feed-forward).
    public var projectionParametersPerLayer: Int {
        4 * dim * dim + (ffnActivation.hasGate ? 3 : 2) * dim * ffnDim
    }

    /// Every parameter except the embedding and head (the scaling-law N).
    public var nonEmbeddingParameters: Int {
        ParameterLayout(config: self).totalCount - embeddingParameters
    }

    public var totalParameters: Int { ParameterLayout(config: self).totalCount }

    /// Training FLOPs per token: 6 per weight of every matrix product (forward and
    /// backward), the head included, plus the attention scores and their weighted
    /// sums (12 * layers * context * dim, Kaplan et al. 2020, without causal halving).
    public var trainingFlopsPerToken: Double {
        let matmulWeights = Double(layers * projectionParametersPerLayer + vocabSize * dim)
        return 6 * matmulWeights + 12 * Double(layers * context * dim)
    }
}
