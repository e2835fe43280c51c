// BF16 storage of the activations kept for the backward pass: the conversion against
// its definition, and a model whose loss is unchanged and whose gradients differ from
// FP32 storage only by BF16 rounding.
import Foundation
import Testing
@testable import BitNet

@Suite struct ActivationStorageTests {
    /// Round to nearest even on the upper 16 bits, written out on one value at a time.
    static func reference(_ x: Float) -> UInt16 {
        if x.isNaN { return UInt16(x.bitPattern >> 16) | 0x0040 }
        let bits = x.bitPattern, upper = bits >> 16, lower = bits & 0xFFFF
        let roundUp = lower > 0x8000 || (lower == 0x8000 && upper & 1 == 1)
        return UInt16(truncatingIfNeeded: upper + (roundUp ? 1 : 0))
    }

    @Test func conversionRoundsToNearestEven() {
        var rng = Xoshiro256(seed: 5)
        var values: [Float] = (0..<1000).map { _ in rng.normal() * 100 }
        values += [0, -0, 1, .infinity, -.infinity, .nan, .greatestFiniteMagnitude, .leastNonzeroMagnitude,
                   Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), Float(bitPattern: 0x3F80_8001)]
        var encoded = [UInt16](repeating: 0, count: values.count), decoded = [Float](repeating: 0, count: values.count)
        BFloat16.encode(values, into: &encoded, count: values.count)
        BFloat16.decode(encoded, into: &decoded, count: values.count)
        for (i, x) in values.enumerated() {
            #expect(encoded[i] == Self.reference(x), "\(x)")
            if x.isFinite && abs(x) < 1e38 { #expect(abs(decoded[i] - x) <= max(abs(x) / 256, Float.leastNormalMagnitude), "\(x)") }
        }
        // Ties go to even; past the largest finite BF16 rounds to infinity; NaN stays NaN.
        #expect(encoded[values.count - 3] == 0x3F80 && encoded[values.count - 2] == 0x3F82 && encoded[values.count - 1] == 0x3F81)
        #expect(decoded[values.count - 6].isNaN && decoded[values.count - 5] == .infinity && decoded[values.count - 8] == .infinity)
    }

    /// The CPU's conversion (vcvtneps2bf16), on every length up to 40 (the masked tail)
    /// and the edge cases, against the portable loop; subnormals become signed zeros.
    @Test(.enabled(if: BFloat16.usesAVX512, "needs AVX-512 BF16 (Zen 4); elsewhere the portable loop runs"))
    func avx512ConversionEqualsTheLoop() {
        var rng = Xoshiro256(seed: 8)
        var values: [Float] = (0..<600).map { i in rng.normal() * Float(pow(10, Double(i % 13 - 6))) }
        values += [0, -0, 1, .infinity, -.infinity, .nan, -.nan, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                   Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), Float(bitPattern: 0x7F7F_8000),
                   Float(bitPattern: 0x0000_8000), Float(bitPattern: 0x8001_0000), .leastNormalMagnitude]
        for count in Array(0...40) + [values.count] {
            let x = Array(values.suffix(count))
            var fast = [UInt16](repeating: 0xABCD, count: count + 1), portable = [UInt16](repeating: 0, count: count)
            BFloat16.encode(x, into: &fast, count: count)
            BFloat16.encodePortable(x, into: &portable, count: count)
            #expect(fast[count] == 0xABCD, "wrote past \(count) values")
            for i in 0..<count {
                if x[i].isNaN {
                    #expect(Float(bitPattern: UInt32(fast[i]) << 16).isNaN)
                } else if x[i].isSubnormal {
                    #expect(fast[i] == (x[i].sign == .minus ? 0x8000 : 0), "\(x[i])")
                } else {
                    #expect(fast[i] == portable[i], "\(x[i]): \(fast[i]) against \(portable[i])")
                }
            }
        }
    }

    @Test(arguments: [WeightMode.fp, .binary])
    func bf16StorageChangesOnlyTheGradientsRounding(mode: WeightMode) {
        var config = Fixtures.tinyRunConfig(mode: mode).model
        // Four layers: the FP32 working layer costs one layer, so BF16 saves memory from three on.
        (config.vocabSize, config.context, config.layers) = (50, 16, 4)
        var rng = Xoshiro256(seed: 6)
        let tokens = (0..<32).map { _ in Int32(rng.below(50)) }, targets = (0..<32).map { _ in Int32(rng.below(50)) }
        func run(_ storage: ActivationStorage) -> (loss: Float, gradients: [Double]) {
            let model = Transformer(config: config, batch: 2, storage: storage)
            model.initializeParameters(seed: 3)
            model.zeroGradients()
            let loss = model.forward(tokens: tokens, targets: targets, batch: 2, length: 16)
            model.backward()
            return (loss, (0..<model.layout.totalCount).map { Double(model.gradients[$0]) })
        }
        let f32 = run(.f32), bf16 = run(.bf16)
        #expect(bf16.loss == f32.loss)  // the forward pass computes in FP32 either way
        let error = maxRelativeError(bf16.gradients, f32.gradients)
        #expect(error > 0 && error < 2e-2, "gradient difference relative to the largest: \(error)")
        let bytes = (Transformer.trainingBytes(config: config, batch: 2, storage: .f32),
                     Transformer.trainingBytes(config: config, batch: 2, storage: .bf16))
        #expect(bytes.1 < bytes.0)
    }
}
