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
    public static func quantize(_ weight: UnsafePointer<Float>, rows: Int, cols: Int, hessian: [Float], bits: WeightBits,
                                groupSize: Int, damping: Float = 0.01) throws -> QuantizedMatrix {
        precondition(groupSize > 0 && cols % groupSize == 0 && hessian.count == cols * cols, "the caller checks the shapes")
        var w = Array(UnsafeBufferPointer(start: weight, count: rows * cols))
        var h = hessian
        // A column no calibration input ever touched carries no information: zero it.
        for i in 0..<cols where h[i * cols + i] == 0 {
            h[i * cols + i] = 1
            for r in 0..<rows { w[r * cols + i] = 0 }
        }
        let meanDiagonal = (0..<cols).reduce(Float(0)) { $0 + h[$1 * cols + $1] } / Float(cols)
        for i in 0..<cols { h[i * cols + i] += damping * meanDiagonal }
        try upperCholeskyOfInverse(&h, n: cols)
        func u(_ i: Int, _ j: Int) -> Float { h[i + j * cols] }  // column-major, i <= j

        var q = QuantizedMatrix(rows: rows, cols: cols, groupSize: groupSize, bits: bits)
        var quantizers = [GroupQuantizer](repeating: GroupQuantizer(bits: bits, weights: weight, count: 1), count: rows)
        var error = [Float](repeating: 0, count: rows), trailing = [Float](repeating: 0, count: cols)
        w.withUnsafeMutableBufferPointer { w in
            for i in 0..<cols {
                if i % groupSize == 0 {
                    // A group's scale from its weights as error compensation has left them.
                    for r in 0..<rows {
                        quantizers[r] = GroupQuantizer(bits: bits, weights: w.baseAddress! + r * cols + i, count: groupSize)
                        let slot = r * q.groups + i / groupSize
                        (q.scales[slot], q.zeros[slot]) = (quantizers[r].scale, quantizers[r].zero)
                    }
                }
                let d = u(i, i)
                for r in 0..<rows {
                    let value = w[r * cols + i], code = quantizers[r].code(value)
                    q.setCode(code, at: r * cols + i)
                    error[r] = (value - quantizers[r].value(ofCode: code)) / d
                }
                let rest = cols - i - 1
                guard rest > 0 else { continue }
                for j in 0..<rest { trailing[j] = u(i, i + 1 + j) }
                cblas_sger(CblasRowMajor, Int32(rows), Int32(rest), -1, error, 1, trailing, 1, w.baseAddress! + i + 1, Int32(cols))
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
                              groupSize: Int?, incoherent: Bool = false) throws -> [String: QuantizedMatrix] {
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
                                     bits: bits, groupSize: groupSize ?? p.inFeatures)
                q.incoherence = incoherence
                q.dequantized().withUnsafeBufferPointer { (model.parameters + p.weight).update(from: $0.baseAddress!, count: $0.count) }
                result[names[p.index] ?? "\(p.index)"] = q
            }
            model.parametersDidChange()
        }
        return result
    }
}
