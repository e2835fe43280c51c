// A trained BitNet model as a GGUF file for llama.cpp's `bitnet` architecture
// (docs/FORMAT.md, "GGUF"): the b1.58 layout's tensors under llama.cpp's names, the
// BitLinear weights as ternary blocks with the tensor scale beta as every block's scale,
// the embedding (also the output head) in FP16, norms in FP32, and the SentencePiece
// vocabulary as llama.cpp's `llama` (SentencePiece) tokenizer.
import BitNetFormat
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

    /// Writes a model, as its packed tensors (PackedModel.tensors: a trained run's, or
    /// RandomModel's) and tokenizer metadata (PackedModel.tokenizerMetadata), as GGUF of
    /// `type` at `url`: the same weights bitnet-run reads from the packed file.
    public static func write(config: ModelConfig, tensors: [PackedTensor], tokenizer: [String: Any], type: GGUFWeightType,
                             name: String, to url: URL) throws {
        if let problem = problem(config, type: type) { throw BitNetError.invalid(problem) }
        let converted = try tensors.map { tensor -> GGUFTensor in
            guard let ggufName = llamaName(of: tensor.name) else {
                throw BitNetError.invalid("GGUF export: no llama.cpp name for tensor \(tensor.name)")
            }
            // ggml lists the contiguous dimension first.
            let dimensions = tensor.rows == 1 && !tensor.name.hasSuffix("embedding.weight") ? [tensor.cols] : [tensor.cols, tensor.rows]
            switch tensor.dtype {
            case .binary, .ternary:
                let codes = unpack(tensor)
                let data: Data
                switch type {
                case .f16: data = codes.map { Float($0) * tensor.scale }.withUnsafeBufferPointer { Data(float16LittleEndian: $0) }
                case .tq2_0: data = Data(codes.withUnsafeBufferPointer { TernaryBlocks.tq2_0($0.baseAddress!, count: $0.count, scale: tensor.scale) })
                case .tq1_0: data = Data(codes.withUnsafeBufferPointer { TernaryBlocks.tq1_0($0.baseAddress!, count: $0.count, scale: tensor.scale) })
                }
                return GGUFTensor(name: ggufName, dimensions: dimensions, type: type.ggml, data: data)
            case .f16:
                return GGUFTensor(name: ggufName, dimensions: dimensions, type: .f16, data: tensor.bytes)
            case .f32 where dimensions.count == 2:
                // Matrices (the embedding) in FP16, as llama.cpp's converters store them.
                let halves = tensor.bytes.withUnsafeBytes { Data(float16LittleEndian: $0.bindMemory(to: Float.self)) }
                return GGUFTensor(name: ggufName, dimensions: dimensions, type: .f16, data: halves)
            case .f32:
                return GGUFTensor(name: ggufName, dimensions: dimensions, type: .f32, data: tensor.bytes)
            }
        }
        try GGUF.write(metadata: try metadata(config, tokenizer: tokenizer, type: type, name: name), tensors: converted, to: url)
    }

    /// The codes (-1, 0, +1) of a packed weight, row-major, from its tiled bit-planes.
    static func unpack(_ tensor: PackedTensor) -> [Int8] {
        let geometry = TiledPlanes(rows: tensor.rows, cols: tensor.cols), plane = geometry.planeBytes
        return tensor.bytes.withUnsafeBytes { raw -> [Int8] in
            let b = raw.bindMemory(to: UInt8.self)
            var codes = [Int8](repeating: 0, count: tensor.rows * tensor.cols)
            for r in 0..<tensor.rows {
                for c in 0..<tensor.cols {
                    let (byte, bit) = geometry.bitPosition(row: r, col: c)
                    let first = b[byte] >> bit & 1 == 1
                    if tensor.dtype == .ternary {
                        codes[r * tensor.cols + c] = first ? (b[plane + byte] >> bit & 1 == 1 ? 1 : -1) : 0
                    } else {
                        codes[r * tensor.cols + c] = first ? 1 : -1
                    }
                }
            }
            return codes
        }
    }

    /// The hyperparameters llama.cpp reads for `bitnet`, and the tokenizer (from the packed
    /// format's tokenizer metadata).
    static func metadata(_ c: ModelConfig, tokenizer: [String: Any], type: GGUFWeightType, name: String) throws -> [(String, GGUFValue)] {
        guard let pieces = tokenizer["pieces"] as? [String], let scores = tokenizer["scores"] as? [Double],
              let types = tokenizer["types"] as? [Int], pieces.count == c.vocabSize, scores.count == pieces.count,
              types.count == pieces.count, let bos = tokenizer["bos_id"] as? Int, let eos = tokenizer["eos_id"] as? Int,
              let unk = tokenizer["unk_id"] as? Int else {
            throw BitNetError.invalid("GGUF export: the tokenizer does not describe \(c.vocabSize) pieces")
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
            ("tokenizer.ggml.scores", .float32s(scores.map { Float($0) })),
            ("tokenizer.ggml.token_type", .int32s(types.map { llamaTokenType(Int32($0)) })),
            ("tokenizer.ggml.bos_token_id", .uint32(UInt32(max(bos, 0)))),
            ("tokenizer.ggml.eos_token_id", .uint32(UInt32(max(eos, 0)))),
            ("tokenizer.ggml.unknown_token_id", .uint32(UInt32(max(unk, 0)))),
            // Our models are trained on documents separated by EOS, without BOS.
            ("tokenizer.ggml.add_bos_token", .bool(false)),
            ("tokenizer.ggml.add_eos_token", .bool(false)),
            ("tokenizer.ggml.add_space_prefix", .bool((tokenizer["add_dummy_prefix"] as? Bool) ?? true)),
        ]
    }

    /// A piece's type as the packed format numbers it (0 normal, 1 unknown, 2 control,
    /// 4 unused, 5 byte) -> llama.cpp's (1 normal, 2 unknown, 3 control,
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
