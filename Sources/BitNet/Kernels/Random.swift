// A small seeded generator (xoshiro256**, Blackman & Vigna 2018) whose whole state
// is four words, so checkpoints can save it and a resumed run draws the same numbers.
import Foundation

public struct Xoshiro256: Sendable, Equatable {
    // Four stored words, not an array: next() is on the sampling paths' hot loops.
    private var s0, s1, s2, s3: UInt64

    /// The four words a checkpoint saves.
    public var state: [UInt64] { [s0, s1, s2, s3] }

    public init(seed: UInt64) {
        // SplitMix64 expands the seed into a well-mixed nonzero state.
        var z = seed
        var s: [UInt64] = []
        for _ in 0..<4 {
            z &+= 0x9E37_79B9_7F4A_7C15
            var x = z
            x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
            x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
            s.append(x ^ (x >> 31))
        }
        (s0, s1, s2, s3) = (s[0], s[1], s[2], s[3])
    }

    public init(state: [UInt64]) throws {
        guard state.count == 4, state.contains(where: { $0 != 0 }) else {
            throw BitNetError.invalid("random generator state must be four words, not all zero")
        }
        (s0, s1, s2, s3) = (state[0], state[1], state[2], state[3])
    }

    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }

    /// Uniform in 0..<bound (Lemire's multiply-shift; the tiny bias is irrelevant here).
    public mutating func below(_ bound: Int) -> Int {
        Int((UInt128(next()) * UInt128(bound)) >> 64)
    }

    /// Uniform in [0, 1).
    public mutating func uniform() -> Float {
        Float(next() >> 40) * (1 / Float(1 << 24))
    }

    /// Standard normal (Box-Muller).
    public mutating func normal() -> Float {
        let u1 = max(Double(next() >> 11) * (1.0 / 9007199254740992.0), 1e-300)
        let u2 = Double(next() >> 11) * (1.0 / 9007199254740992.0)
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
    }
}


/// Stateless uniform numbers: value `index` of stream `key`, a 32-bit integer hash
/// (Chris Wellons' lowbias32) of both. Any thread draws the same value for an index, so
/// loops that round stochastically can run on all cores and still repeat exactly.
enum CounterRandom {
    @inline(__always)
    static func uniform(key: UInt32, index: Int) -> Float {
        var x = UInt32(truncatingIfNeeded: index) &* 0x9E37_79B9 ^ key
        x ^= x >> 16
        x &*= 0x7FEB_352D
        x ^= x >> 15
        x &*= 0x846C_A68B
        x ^= x >> 16
        return Float(x >> 8) * (1 / Float(1 << 24))
    }
}
