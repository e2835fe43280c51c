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
    /// INT4 training (Xi et al. 2023): every projection's three products on 4-bit
    /// integers, Hadamard quantizer forward, bit splitting and leverage-score sampling
    /// backward; no SubLN (it is the paper's plain linear layer, quantized).
    case int4

    /// The BitNet modes: BitLinear with SubLN, int8 activations, 1- or 1.58-bit weights.
    public var isBitNet: Bool { self == .binary || self == .ternary }
}

/// How an `int4` projection computes its two backward products.
public enum Int4Backward: String, ConfigChoice {
    /// Bit splitting and leverage-score sampling, on the integer kernel (the paper's).
    case lss
    /// FP32 products of the output gradient with the dequantized operands (the paper's
    /// ablation: INT4 forward, full-precision backward).
    case exact
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
    public var layout: ModelLayout = .bitnet
    /// Key and value heads (grouped-query attention); 0: as many as `heads`.
    public var kvHeads: Int = 0
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
    /// `int4`: columns per block of the Hadamard quantizer (a power of two dividing dim and
    /// ffn_dim); 0 picks `hadamardBlockSize`'s default.
    public var hadamardBlock: Int = 0
    public var int4Backward: Int4Backward = .lss
    /// `int4`: the share of the 2N bit-split gradient rows each backward product keeps in
    /// expectation (the paper's budget is N: 0.5; 1 keeps every non-zero row).
    public var int4SampleFraction: Float = 0.5

    public init() {}

    /// JSON through the table of fields (ConfigFields.swift).
    public init(from decoder: Decoder) throws { try self.init(decodingFieldsFrom: decoder) }
    public func encode(to encoder: Encoder) throws { try encodeFields(to: encoder) }

    public var headDim: Int { dim / heads }
    /// Key and value heads in use: kv_heads, or heads when it is 0.
    public var keyValueHeads: Int { kvHeads > 0 ? kvHeads : heads }
    /// Width of the key and value projections' outputs.
    public var keyValueDim: Int { keyValueHeads * headDim }

    /// The Hadamard block in use: hadamard_block, or the largest power of two up to 32
    /// that divides both dim and ffn_dim.
    public var hadamardBlockSize: Int {
        if hadamardBlock > 0 { return hadamardBlock }
        var block = 32
        while block > 1 && (dim % block != 0 || ffnDim % block != 0) { block /= 2 }
        return block
    }

    /// Whether the BitLinear at `slots` quantizes its input to the unsigned range.
    public func usesUnsignedActivations(_ slots: BitLinearSlots, isDownProjection: Bool) -> Bool {
        mode.isBitNet && activationRange.isUnsigned(isDownProjection: isDownProjection,
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
        if keyValueHeads > heads || heads % keyValueHeads != 0 {
            throw BitNetError.field("kv_heads", problem: "(\(kvHeads)) must divide heads (\(heads))")
        }
        if mode == .int4 && (dim % hadamardBlockSize != 0 || ffnDim % hadamardBlockSize != 0) {
            throw BitNetError.field("hadamard_block", problem: "(\(hadamardBlock)) must divide dim (\(dim)) and ffn_dim (\(ffnDim))")
        }
    }

    /// Parameters of the embedding (and of an untied head).
    public var embeddingParameters: Int { vocabSize * dim * (tiedEmbeddings ? 1 : 2) }

    /// Weights of the projections inside one block (Q, K, V, O and the feed-forward).
    public var projectionParametersPerLayer: Int {
        2 * dim * dim + 2 * dim * keyValueDim + (ffnActivation.hasGate ? 3 : 2) * dim * ffnDim
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
extension ModelLayout: ConfigChoice {}
