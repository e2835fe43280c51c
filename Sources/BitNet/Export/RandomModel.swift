// `export --random`: a packed model of any shape with random weights, so the runtime
// can be benchmarked at sizes nobody has trained here (docs/BENCHMARKS.md).
import Foundation

public enum RandomModel {
    /// Every tensor of `config`'s layout: BitLinear weights uniform over {-1, +1} or
    /// {-1, 0, +1} with beta 0.02, the embedding N(0, 0.02) in FP16, norm gains 1.
    public static func tensors(config: ModelConfig, seed: UInt64) -> [PackedTensor] {
        var rng = Xoshiro256(seed: seed)
        let layout = ParameterLayout(config: config)
        let bitLinearWeights = Set(layout.bitLinears.map(\.weight))
        let ternary = config.mode == .ternary
        return layout.tensors.map { tensor in
            let rows = tensor.shape.count == 2 ? tensor.shape[0] : 1, cols = tensor.shape.last!
            if bitLinearWeights.contains(tensor.offset) {
                let values = (0..<tensor.count).map { _ in ternary ? Float(rng.below(3) - 1) : (rng.next() & 1 == 0 ? -1 : 1) }
                return PackedTensor(name: tensor.name, dtype: ternary ? .ternary : .binary, rows: rows, cols: cols, scale: 0.02,
                                    bytes: Data(PackedModel.pack(values, rows: rows, cols: cols, ternary: ternary)))
            }
            if tensor.shape.count == 2 {
                let values = (0..<tensor.count).map { _ in 0.02 * rng.normal() }
                return values.withUnsafeBufferPointer { PackedTensor(name: tensor.name, rows: rows, cols: cols, f16: $0) }
            }
            // Norm gains 1 (biases 0): the layer's sub-norms then leave activations unscaled.
            let value: Float = tensor.name.hasSuffix(".bias") ? 0 : 1
            let ones = [Float](repeating: value, count: tensor.count)
            return PackedTensor(name: tensor.name, dtype: .f32, rows: rows, cols: cols, scale: 1,
                                bytes: ones.withUnsafeBytes { Data($0) })
        }
    }

    /// A stand-in vocabulary of `size` pieces (at least 512): <unk>, <s>, </s>, the 256
    /// byte pieces, printable ASCII with and without the U+2581 word marker, then
    /// numbered filler pieces. Enough for the runtime to encode and decode any text.
    public static func tokenizer(size: Int) throws -> [String: Any] {
        guard size >= 512 else { throw BitNetError.field("vocab_size", problem: "must be at least 512 for a random model, got \(size)") }
        var pieces = ["<unk>", "<s>", "</s>"], types = [1, 2, 2]
        for b in 0..<256 {
            pieces.append(String(format: "<0x%02X>", b))
            types.append(5)
        }
        for c in 33..<127 {
            let character = String(UnicodeScalar(UInt8(c)))
            pieces += [character, "\u{2581}" + character]
            types += [0, 0]
        }
        pieces.append("\u{2581}")
        types.append(0)
        var n = 0
        while pieces.count < size {
            pieces.append("\u{2581}piece\(n)")
            types.append(0)
            n += 1
        }
        return ["model_type": "bpe", "pieces": pieces, "scores": (0..<size).map { -Double($0) }, "types": types,
                "bos_id": 1, "eos_id": 2, "unk_id": 0, "add_dummy_prefix": true, "byte_fallback": true,
                "normalization": "identity"]
    }
}
