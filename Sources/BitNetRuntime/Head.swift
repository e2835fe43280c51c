// The output head: logits = W x over the whole vocabulary. It is the largest matrix a
// generated token reads (two thirds of the bytes of a 125M model with a 32000-piece
// vocabulary and an FP16 head), so it can be rounded to 8 bits at load: one int8 code
// per weight and one scale per row (absmax, as the activations), half an FP16 head's
// bytes. Opt-in, like llama.cpp's Q8_0 output tensor: the stored head gives the trainer's
// logits, the int8 one differs from them (docs/BENCHMARKS.md measures by how much).
import CBitKernels

public enum HeadType: String, Sendable, CaseIterable {
    /// As the file stores it (FP16 or FP32).
    case stored
    /// Rows rounded to int8 at load, one FP32 scale each.
    case int8
}

final class Head: @unchecked Sendable {
    let entry: TensorEntry
    /// The stored head's first byte (in the mapped file).
    let stored: UnsafeRawPointer
    /// The int8 head: [vocab, dim] codes and [vocab] scales; nil for the stored head.
    let codes: Scratch<Int8>?, scales: Scratch<Float>?

    /// `file` is the mapping holding the head; the int8 head lets go of the stored one's
    /// pages once it has read them (the embedding's rows, when tied, are read again as used).
    init(entry: TensorEntry, file: MappedFile, type: HeadType, pool: WorkerPool) {
        let base = file.bytes.baseAddress!  // a model file's mapping is not empty
        self.entry = entry
        stored = base + entry.offset
        guard type == .int8 else {
            (codes, scales) = (nil, nil)
            return
        }
        let (rows, cols) = (entry.rows, entry.cols)
        let codes = Scratch<Int8>(rows * cols), scales = Scratch<Float>(rows)
        let rowBuffers = Scratch<Float>(pool.count * cols)
        let chunk = 256
        pool.forEach((rows + chunk - 1) / chunk) { item, worker in
            let row = rowBuffers.pointer + worker * cols
            let rows = item * chunk..<min((item + 1) * chunk, rows)
            for r in rows {
                entry.row(r, base: base, into: row)
                scales.pointer[r] = PackedBitLinear.quantize(row, count: cols, into: codes.pointer + r * cols) / 127
            }
            // As it goes, so that the whole stored head need not be resident at once.
            let bytesPerRow = entry.length / entry.rows
            file.release(entry.offset + rows.lowerBound * bytesPerRow..<entry.offset + rows.upperBound * bytesPerRow)
        }
        (self.codes, self.scales) = (codes, scales)
    }

    /// The bytes a generated token reads from the head.
    var bytesPerToken: Int { codes == nil ? entry.length : entry.rows * (entry.cols + 4) }

    /// logits[r] = row r . x for r in rows.
    func logits(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, rows: Range<Int>) {
        let cols = Int32(entry.cols), (begin, end) = (Int32(rows.lowerBound), Int32(rows.upperBound))
        if let codes, let scales {
            bitnet_matvec_q8(codes.pointer, scales.pointer, entry.cols, x, y, cols, begin, end)
        } else if entry.type == .f16 {
            bitnet_matvec_f16(stored.assumingMemoryBound(to: UInt16.self), entry.cols, x, y, cols, begin, end)
        } else {
            bitnet_matvec_f32(stored.assumingMemoryBound(to: Float.self), entry.cols, x, y, cols, begin, end)
        }
    }
}
