// A trained BitNet model as a GGUF file for llama.cpp's `bitnet` architecture
// (docs/FORMAT.md, "GGUF"): the b1.58 layout's tensors under llama.cpp's names, the
// BitLinear weights as ternary blocks with the tensor scale beta as every block's scale,
// the embedding (also the output head) in FP16, norms in FP32, and the SentencePiece
// vocabulary as llama.cpp's `llama` (SentencePiece) tokenizer.
import Foundation

public enum GGUFWeightType: String, CaseIterable, Sendable {
    case tq2_0, tq1_0, f16

    var ggml: GGMLType {
        switch self {
        case .tq2_0: return .tq2_0
        case .tq1_0: return .tq1_0
        case .f16: return .f16
        }
    }

    /// llama.cpp's general.file_type (LLAMA_FTYPE_MOSTLY_*).
    var fileType: UInt32 {
        switch self {
        case .tq2_0: return 37
        case .tq1_0: return 36
        case .f16: return 1
        }
    }
}

public enum GGUFExport {
    /// Why `config` cannot be written as GGUF of `type`, or nil when it can: what
    /// llama.cpp's `bitnet` graph computes (and the ternary blocks hold) and nothing else.
    public static func problem(_ config: ModelConfig, type: GGUFWeightType) -> String? {
        let need = "GGUF export holds binary or ternary models in the b1.58 layout with rms norms, swiglu, tied "
            + "embeddings and per-token signed activations"
        if !config.mode.isBitNet { return "\(need); this run is \(config.mode.rawValue)" }
        if config.layout != .b158 { return "\(need); this run has the \(config.layout.rawValue) layout (train with --layout b1.58)" }
        if config.norm != .rms { return "\(need); this run has \(config.norm.rawValue) norms" }
        if config.ffnActivation != .swiglu { return "\(need); this run's feed-forward is \(config.ffnActivation.rawValue)" }
        if !config.tiedEmbeddings { return "\(need); this run has an untied head (llama.cpp's bitnet graph reuses the embedding)" }
        if config.activationScaling != .perToken { return "\(need); this run scales activations per tensor" }
        let layout = ParameterLayout(config: config), downs = Set(layout.layers.map(\.down.index))
        if layout.bitLinears.contains(where: { config.usesUnsignedActivations($0, isDownProjection: downs.contains($0.index)) }) {
            return "\(need); this run uses unsigned activation codes"
        }
        if type != .f16 && (config.dim % TernaryBlocks.blockSize != 0 || config.ffnDim % TernaryBlocks.blockSize != 0) {
            return "--type \(type.rawValue) packs rows in blocks of 256 weights: dim (\(config.dim)) and ffn_dim "
                + "(\(config.ffnDim)) must be multiples of 256; --type f16 has no such limit"
        }
        return nil
    }

    /// llama.cpp's name of each of our tensors.
    public static func llamaName(of ours: String) -> String? {
        if ours == "embedding.weight" { return "token_embd.weight" }
        if ours == "final_norm.weight" { return "output_norm.weight" }
        let parts = ours.split(separator: ".", maxSplits: 2)
        guard parts.count == 3, parts[0] == "layers", let layer = Int(parts[1]) else { return nil }
        let names = [
            "attention_norm.weight": "attn_norm.weight", "ffn_norm.weight": "ffn_norm.weight",
            "attention.query.weight": "attn_q.weight", "attention.key.weight": "attn_k.weight",
            "attention.value.weight": "attn_v.weight", "attention.output.weight": "attn_output.weight",
            "attention.output.sub_norm.weight": "attn_sub_norm.weight",
            "ffn.up.weight": "ffn_up.weight", "ffn.gate.weight": "ffn_gate.weight", "ffn.down.weight": "ffn_down.weight",
            "ffn.down.sub_norm.weight": "ffn_sub_norm.weight",
        ]
        return names[String(parts[2])].map { "blk.\(layer).\($0)" }
    }

    /// Writes `model` (with its tokenizer) as GGUF of `type` at `url`.
    public static func write(model: Transformer, tokenizer: Tokenizer, type: GGUFWeightType, name: String, to url: URL) throws {
        let config = model.config
        if let problem = problem(config, type: type) { throw BitNetError.invalid(problem) }
        let bitLinearAt = Dictionary(uniqueKeysWithValues: model.layout.bitLinears.map { ($0.weight, $0) })
        var tensors: [GGUFTensor] = []
        for tensor in model.layout.tensors {
            guard let ggufName = llamaName(of: tensor.name) else {
                throw BitNetError.invalid("GGUF export: no llama.cpp name for tensor \(tensor.name)")
            }
            let dimensions = Array(tensor.shape.reversed())  // ggml lists the contiguous dimension first
            let p = UnsafePointer(model.parameters + tensor.offset)
            if let slots = bitLinearAt[tensor.offset] {
                let (values, scale) = model.quantizedWeight(slots)
                let data: Data
                if type == .f16 {
                    data = (0..<slots.weightCount).map { values[$0] * scale }.withUnsafeBufferPointer { Data(float16LittleEndian: $0) }
                } else {
                    let codes = (0..<slots.weightCount).map { Int8(values[$0]) }  // -1, 0 or +1
                    data = codes.withUnsafeBufferPointer { c in
                        Data(type == .tq2_0 ? TernaryBlocks.tq2_0(c.baseAddress!, count: c.count, scale: scale)
                                            : TernaryBlocks.tq1_0(c.baseAddress!, count: c.count, scale: scale))
                    }
                }
                tensors.append(GGUFTensor(name: ggufName, dimensions: dimensions, type: type.ggml, data: data))
            } else if tensor.shape.count == 2 {
                tensors.append(GGUFTensor(name: ggufName, dimensions: dimensions, type: .f16,
                                          data: Data(float16LittleEndian: UnsafeBufferPointer(start: p, count: tensor.count))))
            } else {
                tensors.append(GGUFTensor(name: ggufName, dimensions: dimensions, type: .f32,
                                          data: Data(buffer: UnsafeBufferPointer(start: p, count: tensor.count))))
            }
        }
        try GGUF.write(metadata: metadata(config, tokenizer: tokenizer, type: type, name: name), tensors: tensors, to: url)
    }

    /// The hyperparameters llama.cpp reads for `bitnet`, and the tokenizer.
    static func metadata(_ c: ModelConfig, tokenizer: Tokenizer, type: GGUFWeightType, name: String) -> [(String, GGUFValue)] {
        var pieces: [String] = [], scores: [Float] = [], types: [Int32] = []
        for id in 0..<tokenizer.vocabSize {
            guard let entry = tokenizer.piece(Int32(id)) else { continue }
            pieces.append(String(decoding: entry.piece, as: UTF8.self))
            scores.append(entry.score)
            types.append(llamaTokenType(entry.type))
        }
        let arch = "bitnet"
        return [
            ("general.architecture", .string(arch)),
            ("general.name", .string(name)),
            ("general.file_type", .uint32(type.fileType)),
            ("general.quantization_version", .uint32(2)),
            ("general.alignment", .uint32(UInt32(GGUF.alignment))),
            ("\(arch).vocab_size", .uint32(UInt32(c.vocabSize))),
            ("\(arch).context_length", .uint32(UInt32(c.context))),
            ("\(arch).embedding_length", .uint32(UInt32(c.dim))),
            ("\(arch).block_count", .uint32(UInt32(c.layers))),
            ("\(arch).feed_forward_length", .uint32(UInt32(c.ffnDim))),
            ("\(arch).attention.head_count", .uint32(UInt32(c.heads))),
            ("\(arch).attention.head_count_kv", .uint32(UInt32(c.keyValueHeads))),
            ("\(arch).attention.layer_norm_rms_epsilon", .float32(c.normEpsilon)),
            ("\(arch).rope.freq_base", .float32(c.ropeTheta)),
            ("\(arch).rope.dimension_count", .uint32(UInt32(c.headDim))),
            ("tokenizer.ggml.model", .string("llama")),
            ("tokenizer.ggml.tokens", .strings(pieces)),
            ("tokenizer.ggml.scores", .float32s(scores)),
            ("tokenizer.ggml.token_type", .int32s(types)),
            ("tokenizer.ggml.bos_token_id", .uint32(UInt32(max(tokenizer.bosID, 0)))),
            ("tokenizer.ggml.eos_token_id", .uint32(UInt32(max(tokenizer.eosID, 0)))),
            ("tokenizer.ggml.unknown_token_id", .uint32(UInt32(max(tokenizer.unknownID, 0)))),
            // Our models are trained on documents separated by EOS, without BOS.
            ("tokenizer.ggml.add_bos_token", .bool(false)),
            ("tokenizer.ggml.add_eos_token", .bool(false)),
            ("tokenizer.ggml.add_space_prefix", .bool(true)),
        ]
    }

    /// SentencePiece's piece type as our tokenizer reports it (0 normal, 1 unknown,
    /// 2 control, 4 unused, 5 byte) -> llama.cpp's (1 normal, 2 unknown, 3 control,
    /// 5 unused, 6 byte).
    static func llamaTokenType(_ type: Int32) -> Int32 {
        switch type {
        case 1: return 2
        case 2: return 3
        case 4: return 5
        case 5: return 6
        default: return 1
        }
    }
}
