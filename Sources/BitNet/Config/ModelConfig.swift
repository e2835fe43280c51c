// The model's shape and the BitLinear options: every default in one place.
import BitNetFormat
import Foundation

/// How the projections inside the blocks hold their weights.
public enum WeightMode: String, ConfigChoice {
    /// Ordinary FP32 linear layer: the full-precision baseline.
    case fp
    /// BitNet: weights centred, Sign-binarized to {-1, +1}, scaled by mean |W|.
    case binary
    /// BitNet b1.58: absmean ternary weights {-1, 0, +1}, scaled by mean |W|.
    case ternary

    public var isQuantized: Bool { self != .fp }
}

public enum NormKind: String, ConfigChoice {
    case rms
    case layer
}

/// Absmax scale granularity of the 8-bit activation quantizer.
public enum ActivationScaling: String, ConfigChoice {
    case perTensor = "per-tensor"
    case perToken = "per-token"
}

public enum FFNActivation: String, ConfigChoice {
    /// SiLU(gate) * up, as in LLaMA and BitNet b1.58 (three projections).
    case swiglu
    /// GELU (tanh form) of one up projection, as in GPT-2.
    case gelu
    /// ReLU(x)^2 of one up projection, as in BitNet b1.58 2B4T.
    case relu2

    public var hasGate: Bool { self == .swiglu }
}

/// The architecture. Decoder-only Transformer: embedding, `layers` pre-norm blocks
/// (causal self-attention with RoPE, feed-forward), final norm, output head.
public struct ModelConfig: ConfigTable, Sendable, Equatable {
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
    /// Signed or (the paper's variant for non-negative inputs) unsigned 8-bit codes.
    public var activationRange: ActivationRange = .signed
    public var ffnActivation: FFNActivation = .swiglu
    /// Share the embedding matrix with the output head.
    public var tiedEmbeddings: Bool = true
    /// RoPE base frequency.
    public var ropeTheta: Float = 10000
    public var normEpsilon: Float = 1e-5

    public init() {}

    /// JSON through the table of fields (ConfigFields.swift).
    public init(from decoder: Decoder) throws { try self.init(decodingFieldsFrom: decoder) }
    public func encode(to encoder: Encoder) throws { try encodeFields(to: encoder) }

    public var headDim: Int { dim / heads }

    /// Whether the BitLinear at `slots` quantizes its input to the unsigned range.
    public func usesUnsignedActivations(_ slots: BitLinearSlots, isDownProjection: Bool) -> Bool {
        mode.isQuantized && activationRange.isUnsigned(isDownProjection: isDownProjection,
                                                       ffnActivation: ffnActivation.rawValue, norm: norm.rawValue)
    }

    /// Throws a one-line message naming the bad field: each field's range (the table),
    /// then what holds between fields.
    public func validate() throws {
        try checkFields()
        if dim % heads != 0 { throw BitNetError.field("heads", problem: "(\(heads)) must divide dim (\(dim))") }
        if headDim % 2 != 0 {
            throw BitNetError.field("heads", problem: "must leave an even head size dim/heads for rotary embeddings, got \(dim)/\(heads)")
        }
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

extension ActivationRange: ConfigChoice {}
