// The KV cache: every layer's keys and values at each position so far, in FP32 (exact)
// or FP16 (half the memory and the attention's reads). Head-major, [layers, kvHeads,
// context, headDim]: attention reads one head's rows at every position, and contiguous
// rows stream from memory about 3x faster than rows a layer's width apart (each then
// 128 of 1536 bytes at a 125M model's FP16 width).
import CBitKernels

public enum KVCacheType: String, Sendable, CaseIterable {
    /// Exact: the runtime's logits then match the trainer's (the default).
    case f32
    /// Half the memory and the attention's reads; keys and values rounded to FP16 (as
    /// llama.cpp's default cache).
    case f16
}

/// One of the KV cache's two tensors.
final class KVCache: @unchecked Sendable {
    let type: KVCacheType
    let context, heads, headDim: Int
    let raw: UnsafeMutableRawPointer

    init(layers: Int, heads: Int, context: Int, headDim: Int, type: KVCacheType) {
        (self.type, self.context, self.heads, self.headDim) = (type, context, heads, headDim)
        // Uninitialized: pages cost memory only as positions fill.
        raw = .allocate(byteCount: max(layers * heads * context * headDim, 1) * (type == .f32 ? 4 : 2), alignment: 64)
    }

    deinit { raw.deallocate() }

    /// Where (layer, head)'s row at position 0 starts, in elements.
    func offset(layer: Int, head: Int) -> Int { (layer * heads + head) * context * headDim }

    /// Stores every head's row at `position`: x holds heads * headDim values, head-major.
    func store(_ x: UnsafePointer<Float>, layer: Int, position: Int) {
        for h in 0..<heads {
            let at = offset(layer: layer, head: h) + position * headDim
            switch type {
            case .f32: (raw.assumingMemoryBound(to: Float.self) + at).update(from: x + h * headDim, count: headDim)
            case .f16: bitnet_to_f16(x + h * headDim, raw.assumingMemoryBound(to: UInt16.self) + at, Int32(headDim))
            }
        }
    }

    /// s[p] = query . (layer, head)'s row at p, for p < positions.
    func scores(layer: Int, head: Int, query: UnsafePointer<Float>, positions: Int, into s: UnsafeMutablePointer<Float>) {
        let at = offset(layer: layer, head: head), n = Int32(headDim)
        switch type {
        case .f32: bitnet_matvec_f32(raw.assumingMemoryBound(to: Float.self) + at, headDim, query, s, n, 0, Int32(positions))
        case .f16: bitnet_matvec_f16(raw.assumingMemoryBound(to: UInt16.self) + at, headDim, query, s, n, 0, Int32(positions))
        }
    }

    /// out = sum over p < positions of weights[p] * (layer, head)'s row at p.
    func weightedSum(layer: Int, head: Int, weights: UnsafePointer<Float>, positions: Int, into out: UnsafeMutablePointer<Float>) {
        let at = offset(layer: layer, head: head), n = Int32(headDim)
        switch type {
        case .f32: bitnet_weighted_sum_f32(raw.assumingMemoryBound(to: Float.self) + at, headDim, weights, Int32(positions), n, out)
        case .f16: bitnet_weighted_sum_f16(raw.assumingMemoryBound(to: UInt16.self) + at, headDim, weights, Int32(positions), n, out)
        }
    }
}
