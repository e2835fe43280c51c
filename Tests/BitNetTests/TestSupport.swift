// Helpers shared by the tests: seeded random buffers, gradient comparison, and slots
// for results of concurrent iterations.
import Foundation
@testable import BitNet

/// A heap buffer of floats that frees itself.
final class Buffer {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    init(_ count: Int, value: Float = 0) {
        self.count = count
        pointer = .allocate(capacity: max(count, 1))
        pointer.initialize(repeating: value, count: max(count, 1))
    }

    convenience init(random count: Int, rng: inout Xoshiro256, scale: Float = 1) {
        self.init(count)
        for i in 0..<count { pointer[i] = rng.normal() * scale }
    }

    deinit { pointer.deallocate() }

    subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }

    var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }
}

/// Fourth-order central finite difference of `f` with respect to `x[i]`, in Double:
/// (8 (f(x+h) - f(x-h)) - (f(x+2h) - f(x-2h))) / 12h, whose truncation error is O(h^4),
/// so h can stay large enough that FP32 rounding in `f` does not dominate.
func finiteDifference(_ x: UnsafeMutablePointer<Float>, _ i: Int, h: Float = 1e-2, _ f: () -> Double) -> Double {
    let saved = x[i]
    func at(_ offset: Float) -> Double {
        x[i] = saved + offset
        return f()
    }
    let near = at(h) - at(-h), far = at(2 * h) - at(-2 * h)
    x[i] = saved
    return (8 * near - far) / (12 * Double(h))
}

/// The largest per-entry relative error of a gradient: |a - n| / max(|n|, floor), where
/// the floor is `floorFraction` of the largest |n| (entries near zero are judged against
/// the gradient's scale, where float noise would otherwise dominate).
func gradientError(_ analytic: [Double], _ numeric: [Double], floorFraction: Double = 1e-2) -> Double {
    precondition(analytic.count == numeric.count)
    let floor = max((numeric.map(abs).max() ?? 0) * floorFraction, 1e-12)
    return zip(analytic, numeric).map { abs($0 - $1) / max(abs($1), floor) }.max() ?? 0
}

/// max |a - b| / max |b|: the largest error relative to the gradient's scale (an
/// elementwise ratio would be dominated by float noise where a gradient is near 0).
func maxRelativeError(_ a: [Double], _ b: [Double], floor: Double = 1e-6) -> Double {
    precondition(a.count == b.count)
    let scale = max(b.map(abs).max() ?? 0, floor)
    return (zip(a, b).map { abs($0 - $1) }.max() ?? 0) / scale
}

/// sum(out * weights) in Double: a scalar loss whose gradient w.r.t. out is `weights`.
func weightedSum(_ out: UnsafePointer<Float>, _ weights: UnsafePointer<Float>, _ count: Int) -> Double {
    var s: Double = 0
    for i in 0..<count { s += Double(out[i]) * Double(weights[i]) }
    return s
}

/// Results written from concurrent iterations (DispatchQueue.concurrentPerform), one
/// slot each, under a lock.
final class Slots<T>: @unchecked Sendable {
    private var values: [T]
    private let lock = NSLock()

    init(count: Int, initial: T) { values = Array(repeating: initial, count: count) }

    func update(_ i: Int, _ change: (inout T) -> Void) { lock.withLock { change(&values[i]) } }
    var all: [T] { lock.withLock { values } }
}
