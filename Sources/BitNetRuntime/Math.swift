// Element-wise functions computed exactly as the trainer computes them, so logits match.

/// exp, tanh and sigmoid as the trainer computes them (Cody-Waite + degree-6 polynomial).
enum RuntimeMath {
    @inline(__always)
    static func exp(_ x: Float) -> Float {
        let x = min(max(x, -87.0), 88.0)
        let shifted = x * 1.442_695_04 + 12_582_912
        let n = shifted - 12_582_912
        let r = (x - n * 0.693_145_751_953_125) - n * 1.428_606_765_330_187e-6
        var p: Float = 1.0 / 720
        p = p * r + 1.0 / 120
        p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6
        p = p * r + 0.5
        p = p * r + 1
        p = p * r + 1
        return p * Float(bitPattern: (shifted.bitPattern &+ 127) &<< 23)
    }

    static func tanh(_ x: Float) -> Float { 1 - 2 / (exp(2 * x) + 1) }
    static func sigmoid(_ x: Float) -> Float { 1 / (1 + exp(-x)) }
}

extension Optional where Wrapped == [Float] {
    func withUnsafeBufferPointerOptional<R>(_ body: (UnsafePointer<Float>?) -> R) -> R {
        switch self {
        case .some(let array): array.withUnsafeBufferPointer { body($0.baseAddress) }
        case .none: body(nil)
        }
    }
}
