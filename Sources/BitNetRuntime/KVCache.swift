// The KV cache: every layer's keys and values at each position so far, [layers,
// context, dim], in FP32 (exact) or FP16 (half the memory and the attention's reads).
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
    let raw: UnsafeMutableRawPointer

    init(count: Int, type: KVCacheType) {
        self.type = type
        // Uninitialized: pages cost memory only as positions fill.
        raw = .allocate(byteCount: max(count, 1) * (type == .f32 ? 4 : 2), alignment: 64)
    }

    deinit { raw.deallocate() }

    func store(_ x: UnsafePointer<Float>, count: Int, at offset: Int) {
        switch type {
        case .f32: (raw.assumingMemoryBound(to: Float.self) + offset).update(from: x, count: count)
        case .f16: bitnet_to_f16(x, raw.assumingMemoryBound(to: UInt16.self) + offset, Int32(count))
        }
    }

    /// s[p] = query . row(offset + p * stride) for p < positions.
    func scores(at offset: Int, stride: Int, query: UnsafePointer<Float>, count: Int, positions: Int,
                into s: UnsafeMutablePointer<Float>) {
        switch type {
        case .f32: bitnet_matvec_f32(raw.assumingMemoryBound(to: Float.self) + offset, stride, query, s, Int32(count), 0, Int32(positions))
        case .f16: bitnet_matvec_f16(raw.assumingMemoryBound(to: UInt16.self) + offset, stride, query, s, Int32(count), 0, Int32(positions))
        }
    }

    /// out = sum over p < positions of weights[p] * row(offset + p * stride).
    func weightedSum(at offset: Int, stride: Int, weights: UnsafePointer<Float>, positions: Int, count: Int,
                     into out: UnsafeMutablePointer<Float>) {
        switch type {
        case .f32:
            bitnet_weighted_sum_f32(raw.assumingMemoryBound(to: Float.self) + offset, stride, weights, Int32(positions), Int32(count), out)
        case .f16:
            bitnet_weighted_sum_f16(raw.assumingMemoryBound(to: UInt16.self) + offset, stride, weights, Int32(positions), Int32(count), out)
        }
    }
}
