// QuIP's incoherence processing (Chee, Cai, Kuleshov, De Sa; arXiv 2307.13304): before
// rounding, a weight matrix W [rows, cols] and its input Hessian H are turned with random
// orthogonal matrices U and V,
//   W~ = U W V^T,  H~ = V H V^T,
// which spreads large weights and dominant input directions evenly over all entries
// (the matrices become "incoherent"), so that no single weight or direction dominates
// the rounding error. W~ is quantized (GPTQ's rounding, which QuIP shows equals its
// LDLQ), and the layer's weights are U^T W^ V.
// The transforms: a size n = 2^k m (m odd) gets T = (H_2^k / sqrt(2^k) kron Q_m) D, with D
// random signs, H the Walsh-Hadamard matrix (applied with the fast transform) and Q_m a
// random orthogonal m x m matrix (Gram-Schmidt on Gaussian draws); no Hadamard matrix
// exists for odd m > 1, and widths such as 352 = 32 x 11 are common here. QuIP# uses
// random Hadamard transforms alone; QuIP itself used Kronecker products of two random
// orthogonal matrices. Both factors and the signs are stored with the codes.
import Foundation

/// One random orthogonal transform T of vectors of `size`.
public struct OrthogonalTransform: Equatable, Sendable {
    public let size: Int
    /// D: +-1 per entry, applied first.
    public let signs: [Float]
    /// Q_m row-major, m = the odd part of `size`.
    public let mix: [Float]
    public let mixSize: Int
    var hadamardSize: Int { size / mixSize }

    /// The odd factor m of n = 2^k m.
    static func oddPart(_ n: Int) -> Int {
        var m = n
        while m > 0 && m % 2 == 0 { m /= 2 }
        return m
    }

    /// A seeded draw.
    init(size: Int, seed: UInt64) {
        var rng = Xoshiro256(seed: seed)
        let m = Self.oddPart(size)
        let signs = (0..<size).map { _ in rng.below(2) == 0 ? Float(-1) : 1 }
        // Rows of Gaussian draws made orthonormal; twice, for FP rounding.
        var q = (0..<m * m).map { _ in Double(rng.normal()) }
        for _ in 0..<2 {
            for i in 0..<m {
                for j in 0..<i {
                    var dot = 0.0
                    for k in 0..<m { dot += q[i * m + k] * q[j * m + k] }
                    for k in 0..<m { q[i * m + k] -= dot * q[j * m + k] }
                }
                var norm = 0.0
                for k in 0..<m { norm += q[i * m + k] * q[i * m + k] }
                norm = norm.squareRoot()
                for k in 0..<m { q[i * m + k] /= norm }
            }
        }
        (self.size, self.signs, self.mix, mixSize) = (size, signs, q.map { Float($0) }, m)
    }

    /// From stored tensors, checked: the signs are +-1 and the mix is an orthogonal
    /// matrix of the odd part of `size`.
    init(size: Int, signs: [Float], mix: [Float], what: String) throws {
        let m = Self.oddPart(size)
        guard size > 0, signs.count == size, mix.count == m * m else {
            throw BitNetError.file("\(what): expected \(size) signs and a \(m) x \(m) mix")
        }
        guard signs.allSatisfy({ $0 == 1 || $0 == -1 }) else { throw BitNetError.file("\(what): a sign is not +-1") }
        for i in 0..<m {
            for j in 0..<m {
                var dot: Float = 0
                for k in 0..<m { dot += mix[i * m + k] * mix[j * m + k] }
                guard abs(dot - (i == j ? 1 : 0)) < 1e-4 else { throw BitNetError.file("\(what): the mix is not orthogonal") }
            }
        }
        (self.size, self.signs, self.mix, mixSize) = (size, signs, mix, m)
    }

    /// x <- T x (or T^T x) in place; `scratch` holds at least mixSize floats.
    func apply(_ x: UnsafeMutablePointer<Float>, transpose: Bool = false, scratch: UnsafeMutablePointer<Float>) {
        let m = mixSize, p = hadamardSize
        if !transpose { for i in 0..<size { x[i] *= signs[i] } }
        func mixRows() {
            for a in 0..<p {
                let row = x + a * m
                for i in 0..<m {
                    var sum: Float = 0
                    for k in 0..<m { sum += (transpose ? mix[k * m + i] : mix[i * m + k]) * row[k] }
                    scratch[i] = sum
                }
                row.update(from: scratch, count: m)
            }
        }
        if !transpose { mixRows() }
        WalshHadamard.transform(x, length: p, interleave: m)  // over index a, for each b
        if transpose {
            mixRows()
            for i in 0..<size { x[i] *= signs[i] }
        }
    }
}

/// The two transforms of one matrix: U on its rows' side (output channels), V on its
/// columns' side (inputs).
public struct Incoherence: Equatable, Sendable {
    public let rows: OrthogonalTransform
    public let columns: OrthogonalTransform

    init(rows: Int, columns: Int, seed: UInt64) {
        self.rows = OrthogonalTransform(size: rows, seed: seed &* 2 &+ 1)
        self.columns = OrthogonalTransform(size: columns, seed: seed &* 2 &+ 2)
    }

    init(rows: OrthogonalTransform, columns: OrthogonalTransform) { (self.rows, self.columns) = (rows, columns) }

    /// W [rows, cols] <- U W V^T, or with `inverse`, U^T W V.
    func transform(_ w: inout [Float], inverse: Bool = false) {
        let (r, c) = (rows.size, columns.size)
        var scratch = [Float](repeating: 0, count: max(rows.mixSize, columns.mixSize))
        var transposed = [Float](repeating: 0, count: r * c)
        w.withUnsafeMutableBufferPointer { w in
            scratch.withUnsafeMutableBufferPointer { s in
                // Right side on each row: (W V^T)_i = V w_i; (W V)_i = V^T w_i.
                for i in 0..<r { columns.apply(w.baseAddress! + i * c, transpose: inverse, scratch: s.baseAddress!) }
                // Left side on each column, through the transpose.
                transposed.withUnsafeMutableBufferPointer { t in
                    for i in 0..<r { for j in 0..<c { t[j * r + i] = w[i * c + j] } }
                    for j in 0..<c { rows.apply(t.baseAddress! + j * r, transpose: inverse, scratch: s.baseAddress!) }
                    for i in 0..<r { for j in 0..<c { w[i * c + j] = t[j * r + i] } }
                }
            }
        }
    }

    /// The inputs' Hessian H [cols, cols] <- V H V^T.
    func transformHessian(_ h: inout [Float]) {
        Incoherence(rows: columns, columns: columns).transform(&h)
    }
}
