// Small helpers of the runtime. (exp, tanh and sigmoid are BitNetMath.FastMath, the
// trainer's own, so that logits match.)

extension Optional where Wrapped == [Float] {
    func withUnsafeBufferPointerOptional<R>(_ body: (UnsafePointer<Float>?) -> R) -> R {
        switch self {
        case .some(let array): array.withUnsafeBufferPointer { body($0.baseAddress) }
        case .none: body(nil)
        }
    }
}
