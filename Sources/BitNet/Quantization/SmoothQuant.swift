// SmoothQuant (Xiao et al. 2023, arXiv 2211.10438): activations are hard to quantize
// because a few input channels carry outliers; weights are easy. Per input channel j,
//   s_j = max|X_j|^alpha / max|W_:,j|^(1 - alpha),
// X is divided by s and W's column j multiplied by it, which leaves X W^T unchanged and
// moves the difficulty from the activations to the weights. Here X is the output of a
// block norm, so 1/s folds into the norm's gain (and bias) and costs nothing at run
// time: the attention norm feeds query, key and value (one s for the three), the
// feed-forward norm feeds up and gate. The attention output and down projections have
// no norm before them and are left as they are. Then the weights are rounded (RTN).
import Foundation

public enum SmoothQuant {
    /// Folds the smoothing scales into every block's norms and projections, with the
    /// activation maxima of the calibration windows (taken on the model as given).
    static func smooth(_ model: Transformer, calibration: CalibrationWindows, alpha: Float) {
        let c = model.config
        var attention = [[Float]](repeating: [Float](repeating: 0, count: c.dim), count: c.layers), ffn = attention
        calibration.forEachBatch(model) { windows in
            let n = windows * calibration.context
            for l in 0..<c.layers {
                let a = model.activations.views.layers[l]
                columnMaxima(a.attentionNorm, rows: n, width: c.dim, into: &attention[l])
                columnMaxima(a.ffnNorm, rows: n, width: c.dim, into: &ffn[l])
            }
        }
        for (l, slots) in model.layout.layers.enumerated() {
            fold(model, norm: slots.attentionNorm, linears: [slots.query, slots.key, slots.value], maxima: attention[l], alpha: alpha)
            fold(model, norm: slots.ffnNorm, linears: [slots.up] + (slots.gate.map { [$0] } ?? []), maxima: ffn[l], alpha: alpha)
        }
        model.parametersDidChange()
    }

    static func columnMaxima(_ x: UnsafePointer<Float>, rows n: Int, width: Int, into m: inout [Float]) {
        for r in 0..<n { for j in 0..<width { m[j] = max(m[j], abs(x[r * width + j])) } }
    }

    /// s_j from the activation maxima and the linears' column maxima; the norm's gain and
    /// bias divided by s, the linears' columns multiplied by it.
    static func fold(_ model: Transformer, norm: NormSlots, linears: [BitLinearSlots], maxima: [Float], alpha: Float) {
        let p = model.parameters, width = maxima.count
        for j in 0..<width {
            var weightMax: Float = 0
            for w in linears { for r in 0..<w.outFeatures { weightMax = max(weightMax, abs(p[w.weight + r * width + j])) } }
            guard maxima[j] > 0 && weightMax > 0 else { continue }  // nothing to balance
            let s = min(max(pow(maxima[j], alpha) / pow(weightMax, 1 - alpha), 1e-5), 1e5)
            p[norm.gain + j] /= s
            if let bias = norm.bias { p[bias + j] /= s }
            for w in linears { for r in 0..<w.outFeatures { p[w.weight + r * width + j] *= s } }
        }
    }
}
