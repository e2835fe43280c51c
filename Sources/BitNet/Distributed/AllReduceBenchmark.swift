// The time one gradient sum takes over the ranks, by message size: the measurements the
// alpha-beta model of all-reduce (t = alpha + beta * bytes) is fitted to
// (docs/DISTRIBUTED.md).
import Foundation

public enum AllReduceBenchmark {
    public struct Point: Sendable {
        public let bytes: Int
        /// Median seconds of one sum of `bytes` of FP32 values.
        public let seconds: Double
    }

    /// Median time of `repetitions` sums (after one warm-up) at each size, 4 KiB to
    /// `maxBytes` by factors of 4. Every rank must call this together.
    public static func measure(ranks: Communicator, maxBytes: Int = 64 << 20, repetitions: Int = 7) throws -> [Point] {
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: maxBytes / 4)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 1, count: maxBytes / 4)
        var points: [Point] = [], bytes = 4096
        while bytes <= maxBytes {
            var times: [Double] = []
            for repetition in 0...repetitions {
                let started = DispatchTime.now().uptimeNanoseconds
                try ranks.sum(buffer, count: bytes / 4)
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                if repetition > 0 { times.append(seconds) }
            }
            // This rank's median (rank 0's is the one reported).
            points.append(Point(bytes: bytes, seconds: times.sorted()[times.count / 2]))
            bytes *= 4
        }
        return points
    }

    /// Fit of seconds = alpha + beta * bytes minimizing the relative errors (weights
    /// 1 / seconds^2), so the small messages fix alpha and the large ones beta. A latency
    /// cannot be negative: when the free fit's alpha is, alpha is 0 and beta refitted (a
    /// shaped link whose rate falls at large sizes bends the line that way).
    public static func fit(_ points: [Point]) -> (alpha: Double, beta: Double)? {
        guard points.count >= 2 else { return nil }
        var (s0, s1, s2, t0, t1) = (0.0, 0.0, 0.0, 0.0, 0.0)
        for p in points where p.seconds > 0 {
            let w = 1 / (p.seconds * p.seconds), x = Double(p.bytes)
            s0 += w; s1 += w * x; s2 += w * x * x; t0 += w * p.seconds; t1 += w * x * p.seconds
        }
        let determinant = s0 * s2 - s1 * s1
        guard determinant > 0 else { return nil }
        let alpha = (s2 * t0 - s1 * t1) / determinant
        return alpha >= 0 ? (alpha, (s0 * t1 - s1 * t0) / determinant) : (0, t1 / s2)
    }
}
