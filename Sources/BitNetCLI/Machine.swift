// The machine a benchmark ran on: the CPU's name and the SIMD features the kernels
// choose between, from /proc/cpuinfo (Linux), so every figure printed names its machine.
import Foundation

public enum Machine {
    /// The flags that decide a kernel path here, in /proc/cpuinfo's spelling.
    static let relevantFlags = ["avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
                                "avx512_vpopcntdq"]

    /// "AMD EPYC (avx2 fma f16c), 2 cores", or what part of it is known.
    public static var description: String {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "\(cores) cores" }
        func field(_ name: String) -> String? {
            text.split(separator: "\n").first { $0.hasPrefix(name) }?.split(separator: ":", maxSplits: 1).last
                .map { $0.trimmingCharacters(in: .whitespaces) }
        }
        let flags = Set((field("flags") ?? "").split(separator: " ").map(String.init))
        let present = relevantFlags.filter(flags.contains)
        return "\(field("model name") ?? "unknown CPU") (\(present.isEmpty ? "no AVX2" : present.joined(separator: " "))), \(cores) cores"
    }

    /// The description as a JSON string literal, quotes included.
    public static var json: String {
        (try? JSONSerialization.data(withJSONObject: description, options: .fragmentsAllowed))
            .map { String(decoding: $0, as: UTF8.self) } ?? "\"\""
    }
}
