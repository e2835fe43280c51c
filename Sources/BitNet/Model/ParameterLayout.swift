// Where every parameter lives in the one flat FP32 block (llm.c's size table).
// Gradients and both AdamW moments use the same layout in blocks of their own.
import BitNetFormat

public struct TensorSpec: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    /// Offset in floats from the start of the block (a multiple of 16: 64 bytes).
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
    /// Matrices get weight decay; gains and biases do not (as in nanoGPT).
    public var decays: Bool { shape.count >= 2 }
}

/// Offsets of a norm's gain and (for LayerNorm) bias.
public struct NormSlots: Sendable {
    public let gain: Int
    public let bias: Int?
}

/// Offsets of an `int4` projection's two LSQ step sizes (one float each).
public struct StepSlots: Sendable {
    public let input: Int
    public let weight: Int
}

/// Offsets of one BitLinear: its weight [outFeatures, inFeatures] and, in the
/// BitNet modes, its SubLN (every BitLinear in the bitnet layout; the attention output
/// and down projections in b1.58's); in `int4` mode, its learned step sizes.
public struct BitLinearSlots: Sendable {
    public let weight: Int
    public let subNorm: NormSlots?
    public var steps: StepSlots? = nil
    public let inFeatures: Int
    public let outFeatures: Int
    /// Index of this projection among all BitLinears of the model (for side buffers).
    public let index: Int
    public var weightCount: Int { inFeatures * outFeatures }
}

public struct LayerSlots: Sendable {
    public let attentionNorm: NormSlots
    public let query, key, value, attentionOutput: BitLinearSlots
    public let ffnNorm: NormSlots
    public let up: BitLinearSlots
    public let gate: BitLinearSlots?
    public let down: BitLinearSlots

    public var projections: [BitLinearSlots] {
        [query, key, value, attentionOutput, up] + (gate.map { [$0] } ?? []) + [down]
    }
}

public struct ParameterLayout: Sendable {
    public private(set) var tensors: [TensorSpec] = []
    public private(set) var totalCount = 0
    public private(set) var embedding = 0
    public private(set) var layers: [LayerSlots] = []
    public private(set) var finalNorm = NormSlots(gain: 0, bias: nil)
    /// The output head's weight [vocab, dim]; the embedding when tied.
    public private(set) var head = 0
    public private(set) var bitLinears: [BitLinearSlots] = []

    public init(config: ModelConfig) {
        let c = config.dim, f = config.ffnDim, kv = config.keyValueDim
        embedding = add("embedding.weight", [config.vocabSize, c])
        for l in 0..<config.layers {
            let p = "layers.\(l)."
            let attentionNorm = addNorm(p + "attention_norm", c, config.norm)
            let q = addBitLinear(p + "attention.query", c, c, config)
            let k = addBitLinear(p + "attention.key", c, kv, config)
            let v = addBitLinear(p + "attention.value", c, kv, config)
            let o = addBitLinear(p + "attention.output", c, c, config)
            let ffnNorm = addNorm(p + "ffn_norm", c, config.norm)
            let up = addBitLinear(p + "ffn.up", c, f, config)
            let gate = config.ffnActivation.hasGate ? addBitLinear(p + "ffn.gate", c, f, config) : nil
            let down = addBitLinear(p + "ffn.down", f, c, config)
            layers.append(LayerSlots(attentionNorm: attentionNorm, query: q, key: k, value: v, attentionOutput: o,
                                     ffnNorm: ffnNorm, up: up, gate: gate, down: down))
        }
        finalNorm = addNorm("final_norm", c, config.norm)
        head = config.tiedEmbeddings ? embedding : add("head.weight", [config.vocabSize, c])
    }

    public func tensor(named name: String) -> TensorSpec? { tensors.first { $0.name == name } }

    /// The span of the block `l`'s parameters in the flat block (its tensors are
    /// consecutive, padding included): a bucket of the data-parallel gradient sum.
    public func range(ofLayer l: Int) -> Range<Int> {
        let prefix = "layers.\(l)."
        let own = tensors.filter { $0.name.hasPrefix(prefix) }
        guard let first = own.first, let last = own.last else { return 0..<0 }
        return first.offset..<last.offset + (last.count + 15) / 16 * 16
    }

    private mutating func add(_ name: String, _ shape: [Int]) -> Int {
        let offset = totalCount
        tensors.append(TensorSpec(name: name, shape: shape, offset: offset))
        totalCount += (shape.reduce(1, *) + 15) / 16 * 16
        return offset
    }

    private mutating func addNorm(_ name: String, _ width: Int, _ kind: NormKind) -> NormSlots {
        let gain = add(name + ".weight", [width])
        let bias = kind == .layer ? add(name + ".bias", [width]) : nil
        return NormSlots(gain: gain, bias: bias)
    }

    private mutating func addBitLinear(_ name: String, _ inFeatures: Int, _ outFeatures: Int, _ config: ModelConfig) -> BitLinearSlots {
        let projection = name.split(separator: ".").suffix(2).joined(separator: ".")
        let subNorm = config.mode.isBitNet && config.layout.hasSubNorm(projection)
            ? addNorm(name + ".sub_norm", inFeatures, config.norm) : nil
        let weight = add(name + ".weight", [outFeatures, inFeatures])
        var slots = BitLinearSlots(weight: weight, subNorm: subNorm, inFeatures: inFeatures,
                                   outFeatures: outFeatures, index: bitLinears.count)
        if config.mode == .int4 {
            slots.steps = StepSlots(input: add(name + ".input_step", [1]), weight: add(name + ".weight_step", [1]))
        }
        bitLinears.append(slots)
        return slots
    }
}
