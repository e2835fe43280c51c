// The packed loader against hostile values (issue 13): a valid model's metadata values
// replaced one or two at a time by out-of-range, negative, zero, huge, fractional or
// mistyped ones, written with a correct checksum, then loaded and run for one token.
// Every mutant is refused with one line or runs; none may trap.
import BitNetFormat
import Foundation
import Testing
@testable import BitNet
@testable import BitNetRuntime

@Suite(.serialized) struct ValueFuzzTests {
    @Test func mutatedMetadataValuesAreRefusedOrRun() throws {
        let (tensors, config, tokenizer) = try HostileInputTests.parts()
        let replacements: [Any] = [0, -1, 1, 2, 3, 7, 599, 600, 601, 1 << 20, 1 << 31, 1 << 40, Int.max, Int.min, 0.5, -0.5,
                                   1e-30, 1e30, 1e308, "", "rms", "binary", "x", true, NSNull(), [Int](), [String: Int]()]
        let url = Fixtures.temporaryDirectory("value-fuzz").appendingPathComponent("m.bitnet")
        var rng = Xoshiro256(seed: 77)
        var refused = 0, ran = 0
        let configKeys = Array(config.keys).sorted(), tokenizerKeys = ["bos_id", "eos_id", "unk_id", "model_type",
                                                                        "normalization", "add_dummy_prefix", "byte_fallback"]
        for _ in 0..<1500 {
            var c = config, t = tokenizer
            for _ in 0..<(1 + rng.below(2)) {
                let value = replacements[rng.below(replacements.count)]
                if rng.below(3) > 0 {
                    c[configKeys[rng.below(configKeys.count)]] = value
                } else {
                    t[tokenizerKeys[rng.below(tokenizerKeys.count)]] = value
                }
            }
            guard JSONSerialization.isValidJSONObject(["c": c, "t": t]) else { continue }
            try PackedModel.write(configObject: c, tensors: tensors, tokenizer: t, to: url)
            do {
                let model = try BitNetRuntime.Model(path: url.path, threads: 1, batch: 2)
                _ = model.forward(tokens: [0], start: 0)  // one token: any valid context and vocabulary hold it
                ran += 1
            } catch {
                #expect(!"\(error)".contains("\n"))
                refused += 1
            }
        }
        print("value fuzzing: \(refused + ran) mutants, \(refused) refused, \(ran) ran, 0 trapped")
        #expect(refused > 500 && ran > 50, "refused \(refused), ran \(ran)")
    }
}
