// GPTQ (Frantar, Ashkboos, Hoefler, Alistarh; arXiv 2210.17323): a layer's weights are
// quantized one input column at a time, and each column's rounding error is spread over
// the columns not yet quantized, weighted by the inverse Hessian H = X^T X of the layer's
// calibration inputs, so that the layer's output on those inputs moves as little as
// possible. Per row, the update after column i is
//   W[:, j] -= (w_i - q(w_i)) / U[i, i] * U[i, j]  for j > i,
// with U the upper Cholesky factor of H^-1 (LAPACK's spotrf/spotri from OpenBLAS). Not
// yet here: act-order and the lazy batched updates (a rank-1 update per column instead).
import COpenBLAS
import Foundation

public enum GPTQ {
    /// H += X^T X for calibration rows x [n, width] (row-major).
    static func accumulate(_ h: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, rows n: Int, width: Int) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(width), Int32(width), Int32(n), 1, x, Int32(width),
                    x, Int32(width), 1, h, Int32(width))
    }

    /// Quantizes `weight` [rows, cols] against the Hessian `hessian` [cols, cols] of its
    /// inputs; `damping` times the mean diagonal is added to the diagonal first.
    /// - actOrder: columns in order of decreasing Hessian diagonal (the inputs that move
    ///   the output most first, while the most columns are left to absorb their error);
    ///   the groups' scales are then taken from the weights before any compensation
    ///   (GPTQ's static groups), since a group's columns are no longer quantized together.
    /// - blockSize: columns per lazy batch. Within a block each column's error updates
    ///   the block's later columns; the columns after the block get the whole block's
    ///   errors at its end in one matrix product. Without act-order the block is fitted
    ///   to the groups (a group never straddles a block boundary unless it is the whole
    ///   row), so the result is the column-by-column one.
    public static func quantize(_ weight: UnsafePointer<Float>, rows: Int, cols: Int, hessian: [Float], bits: WeightBits,
                                groupSize: Int, damping: Float = 0.01, actOrder: Bool = false,
                                blockSize: Int = 128) throws -> QuantizedMatrix {
        precondition(groupSize > 0 && cols % groupSize == 0 && hessian.count == cols * cols && blockSize > 0,
                     "the caller checks the shapes")
        var original = Array(UnsafeBufferPointer(start: weight, count: rows * cols))
        var hOriginal = hessian
        // A column no calibration input ever touched carries no information: zero it.
        for i in 0..<cols where hOriginal[i * cols + i] == 0 {
            hOriginal[i * cols + i] = 1
            for r in 0..<rows { original[r * cols + i] = 0 }
        }
        // The column order, and W and H permuted into it (position k holds column order[k]).
        let order = actOrder ? (0..<cols).sorted { (hOriginal[$0 * cols + $0], $1) > (hOriginal[$1 * cols + $1], $0) }
                             : Array(0..<cols)
        var w = [Float](repeating: 0, count: rows * cols), h = [Float](repeating: 0, count: cols * cols)
        for r in 0..<rows { for k in 0..<cols { w[r * cols + k] = original[r * cols + order[k]] } }
        for i in 0..<cols { for j in 0..<cols { h[i * cols + j] = hOriginal[order[i] * cols + order[j]] } }
        let meanDiagonal = (0..<cols).reduce(Float(0)) { $0 + h[$1 * cols + $1] } / Float(cols)
        for i in 0..<cols { h[i * cols + i] += damping * meanDiagonal }
        try upperCholeskyOfInverse(&h, n: cols)

        var q = QuantizedMatrix(rows: rows, cols: cols, groupSize: groupSize, bits: bits)
        let groups = q.groups
        // Static groups (act-order): every group's quantizer up front, from the weights as given.
        var quantizers = [GroupQuantizer](repeating: GroupQuantizer(bits: bits, weights: weight, count: 1),
                                          count: rows * (actOrder ? groups : 1))
        if actOrder {
            original.withUnsafeBufferPointer { o in
                for r in 0..<rows {
                    for g in 0..<groups {
                        quantizers[r * groups + g] = GroupQuantizer(bits: bits, weights: o.baseAddress! + r * cols + g * groupSize,
                                                                    count: groupSize)
                        (q.scales[r * groups + g], q.zeros[r * groups + g]) = (quantizers[r * groups + g].scale, quantizers[r * groups + g].zero)
                    }
                }
            }
        }
        let block = actOrder || groupSize == cols ? blockSize
            : groupSize <= blockSize ? max(1, blockSize / groupSize) * groupSize
            : groupSize % blockSize == 0 ? blockSize : groupSize
        var errors = [Float](repeating: 0, count: rows * block), trailing = [Float](repeating: 0, count: block * cols)
        w.withUnsafeMutableBufferPointer { w in
            for start in stride(from: 0, to: cols, by: block) {
                let end = min(start + block, cols), width = end - start
                for i in start..<end {
                    let column = order[i]
                    if !actOrder && i % groupSize == 0 {
                        // A group's scale from its weights as error compensation has left them.
                        for r in 0..<rows {
                            quantizers[r] = GroupQuantizer(bits: bits, weights: w.baseAddress! + r * cols + i, count: groupSize)
                            (q.scales[r * groups + i / groupSize], q.zeros[r * groups + i / groupSize]) = (quantizers[r].scale, quantizers[r].zero)
                        }
                    }
                    let d = h[i + i * cols]  // U[i, i]; U is column-major
                    for r in 0..<rows {
                        let quantizer = quantizers[actOrder ? r * groups + column / groupSize : r]
                        let value = w[r * cols + i], code = quantizer.code(value)
                        q.setCode(code, at: r * cols + column)
                        errors[r * width + (i - start)] = (value - quantizer.value(ofCode: code)) / d
                    }
                    // The block's later columns now; the rest at the block's end.
                    let rest = end - i - 1
                    guard rest > 0 else { continue }
                    for j in 0..<rest { trailing[j] = h[i + (i + 1 + j) * cols] }
                    errors.withUnsafeBufferPointer { e in
                        cblas_sger(CblasRowMajor, Int32(rows), Int32(rest), -1, e.baseAddress! + (i - start), Int32(width),
                                   trailing, 1, w.baseAddress! + i + 1, Int32(cols))
                    }
                }
                let rest = cols - end
                guard rest > 0 else { continue }
                // W[:, end...] -= E [rows, width] x U[start..<end, end...] (U copied row-major).
                for a in 0..<width { for j in 0..<rest { trailing[a * rest + j] = h[(start + a) + (end + j) * cols] } }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(rest), Int32(width), -1,
                            errors, Int32(width), trailing, Int32(rest), 1, w.baseAddress! + end, Int32(cols))
            }
        }
        return q
    }

    /// h (symmetric, n x n) becomes U, upper triangular in column-major order, with
    /// U^T U = h^-1: Cholesky, inverse from it, Cholesky again.
    static func upperCholeskyOfInverse(_ h: inout [Float], n: Int) throws {
        var size = Int32(n), info: Int32 = 0
        var lower = Int8(UInt8(ascii: "L")), upper = Int8(UInt8(ascii: "U"))
        spotrf_(&lower, &size, &h, &size, &info)
        guard info == 0 else { throw BitNetError.invalid("GPTQ: the calibration Hessian is not positive definite (column \(info))") }
        spotri_(&lower, &size, &h, &size, &info)
        guard info == 0 else { throw BitNetError.invalid("GPTQ: the calibration Hessian cannot be inverted") }
        for j in 0..<n { for i in (j + 1)..<n { h[j + i * n] = h[i + j * n] } }  // mirror the lower triangle
        spotrf_(&upper, &size, &h, &size, &info)
        guard info == 0 else { throw BitNetError.invalid("GPTQ: the inverse Hessian is not positive definite") }
    }

    /// GPTQ over a whole fp model, block by block: each block's projections are quantized
    /// with the Hessians of their inputs as the already-quantized blocks before produce
    /// them on the calibration windows. The model's weights are replaced by the
    /// dequantized ones; returns the codes by tensor name. `incoherent`: QuIP (each matrix
    /// and its Hessian turned by seeded random orthogonal transforms first).
    static func quantizeModel(_ model: Transformer, calibration: CalibrationWindows, bits: WeightBits,
                              groupSize: Int?, incoherent: Bool = false, actOrder: Bool = false) throws -> [String: QuantizedMatrix] {
        let c = model.config, t = calibration.context
        let names = Dictionary(uniqueKeysWithValues: QuantizedRun.projections(model.layout).map { ($0.slots.index, $0.name) })
        var result: [String: QuantizedMatrix] = [:]
        for (l, slots) in model.layout.layers.enumerated() {
            // Inputs: the attention norm (query, key, value), the attention output, the
            // feed-forward norm (up, gate) and the hidden activation (down).
            var hAttention = [Float](repeating: 0, count: c.dim * c.dim), hOutput = hAttention, hFFN = hAttention
            var hDown = [Float](repeating: 0, count: c.ffnDim * c.ffnDim)
            calibration.forEachBatch(model) { windows in
                let a = model.activations.views.layers[l], n = windows * t
                accumulate(&hAttention, a.attentionNorm, rows: n, width: c.dim)
                accumulate(&hOutput, a.attentionOut, rows: n, width: c.dim)
                accumulate(&hFFN, a.ffnNorm, rows: n, width: c.dim)
                accumulate(&hDown, a.hidden, rows: n, width: c.ffnDim)
            }
            let inputs: [(BitLinearSlots, [Float])] = [(slots.query, hAttention), (slots.key, hAttention), (slots.value, hAttention),
                                                       (slots.attentionOutput, hOutput), (slots.up, hFFN), (slots.down, hDown)]
                + (slots.gate.map { [($0, hFFN)] } ?? [])
            for (p, hessian) in inputs {
                var weights = Array(UnsafeBufferPointer(start: model.parameters + p.weight, count: p.weightCount))
                var hessian = hessian
                let incoherence = incoherent ? Incoherence(rows: p.outFeatures, columns: p.inFeatures, seed: UInt64(p.index)) : nil
                incoherence?.transform(&weights)
                incoherence?.transformHessian(&hessian)
                var q = try quantize(weights, rows: p.outFeatures, cols: p.inFeatures, hessian: hessian,
                                     bits: bits, groupSize: groupSize ?? p.inFeatures, actOrder: actOrder)
                q.incoherence = incoherence
                q.dequantized().withUnsafeBufferPointer { (model.parameters + p.weight).update(from: $0.baseAddress!, count: $0.count) }
                result[names[p.index] ?? "\(p.index)"] = q
            }
            model.parametersDidChange()
        }
        return result
    }
}
