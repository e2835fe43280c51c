// The weights: views into the memory-mapped file (packed BitLinear planes, the FP16 or
// FP32 embedding and head) and the small FP32 norm vectors copied out, each checked for
// its type and shape against the config.
import BitNetFormat
import Foundation

/// A float vector tensor (norm gain or bias) copied out of the file.
typealias Vector = [Float]

struct PackedLinear {
    let entry: TensorEntry
    /// SubLN's gain and bias; nil where the layout has no SubLN (b1.58's query, key,
    /// value, up and gate read the block norm's output).
    let gain: Vector?
    let bias: Vector?
    /// Unsigned activation codes: each row's sum of W~ (what the codes' shift adds).
    let rowSums: [Int32]?
}

struct LayerWeights {
    let attentionNorm: Vector, attentionNormBias: Vector?
    let query, key, value, output: PackedLinear
    let ffnNorm: Vector, ffnNormBias: Vector?
    let up: PackedLinear, gate: PackedLinear?, down: PackedLinear
}

extension Weights {
    /// Each row's sum of W~ from the tiled planes: binary 2 popcount(row) - cols; ternary
    /// 2 popcount(plus) - popcount(nonzero). Padding bits are zero, so whole bytes count.
    static func rowSums(_ e: TensorEntry, _ planes: UnsafeRawPointer) -> [Int32] {
        let bytes = planes.assumingMemoryBound(to: UInt8.self), tiles = e.tiles
        func popcount(_ plane: UnsafePointer<UInt8>, row r: Int) -> Int32 {
            var n = 0
            let block = plane + r / 32 * tiles * 64 + r % 32
            for t in 0..<tiles { n += block[t * 64].nonzeroBitCount + block[t * 64 + 32].nonzeroBitCount }
            return Int32(n)
        }
        return (0..<e.rows).map { r in
            e.type == .binary ? 2 * popcount(bytes, row: r) - Int32(e.cols)
                : 2 * popcount(bytes + e.planeBytes, row: r) - popcount(bytes, row: r)
        }
    }
}

/// Every tensor the forward pass reads, found by name and checked against the config.
struct Weights {
    let layers: [LayerWeights]
    let finalNorm: Vector, finalNormBias: Vector?
    let embedding: TensorEntry
    /// The embedding itself when tied.
    let head: TensorEntry

    init(file: ModelFile, config c: RuntimeConfig) throws {
        let f = file, path = file.path
        func vector(_ name: String, _ count: Int) throws -> Vector {
            let e = try f.tensor(name)
            guard e.rows * e.cols == count, e.type == .f32 else {
                throw RuntimeError(description: "\(path): tensor '\(name)' should be \(count) FP32 values")
            }
            return f.floats(e)
        }
        func optionalVector(_ name: String, _ count: Int) throws -> Vector? {
            c.norm == .layer ? try vector(name, count) : nil
        }
        func linear(_ name: String, _ inFeatures: Int, _ outFeatures: Int, isDown: Bool = false) throws -> PackedLinear {
            let e = try f.tensor(name + ".weight")
            guard e.type == (c.ternary ? .ternary : .binary), e.rows == outFeatures, e.cols == inFeatures else {
                throw RuntimeError(description: "\(path): tensor '\(name).weight' is not a packed [\(outFeatures), \(inFeatures)] matrix")
            }
            let sums = c.unsignedInput(isDownProjection: isDown) ? Self.rowSums(e, f.bytes.baseAddress! + e.offset) : nil
            let hasSubNorm = c.layout.hasSubNorm(name.split(separator: ".").suffix(2).joined(separator: "."))
            return PackedLinear(entry: e, gain: hasSubNorm ? try vector(name + ".sub_norm.weight", inFeatures) : nil,
                                bias: hasSubNorm ? try optionalVector(name + ".sub_norm.bias", inFeatures) : nil, rowSums: sums)
        }
        var layers: [LayerWeights] = []
        for l in 0..<c.layers {
            let p = "layers.\(l)."
            layers.append(LayerWeights(
                attentionNorm: try vector(p + "attention_norm.weight", c.dim),
                attentionNormBias: try optionalVector(p + "attention_norm.bias", c.dim),
                query: try linear(p + "attention.query", c.dim, c.dim), key: try linear(p + "attention.key", c.dim, c.kvDim),
                value: try linear(p + "attention.value", c.dim, c.kvDim),
                output: try linear(p + "attention.output", c.dim, c.dim),
                ffnNorm: try vector(p + "ffn_norm.weight", c.dim), ffnNormBias: try optionalVector(p + "ffn_norm.bias", c.dim),
                up: try linear(p + "ffn.up", c.dim, c.ffnDim), gate: c.gated ? try linear(p + "ffn.gate", c.dim, c.ffnDim) : nil,
                down: try linear(p + "ffn.down", c.ffnDim, c.dim, isDown: true)))
        }
        self.layers = layers
        finalNorm = try vector("final_norm.weight", c.dim)
        finalNormBias = try optionalVector("final_norm.bias", c.dim)
        embedding = try f.tensor("embedding.weight")
        head = c.tied ? embedding : try f.tensor("head.weight")
        for e in [embedding, head] where !(e.rows == c.vocabSize && e.cols == c.dim && (e.type == .f32 || e.type == .f16)) {
            throw RuntimeError(description: "\(path): tensor '\(e.name)' should be [\(c.vocabSize), \(c.dim)] FP32 or FP16")
        }
    }
}
