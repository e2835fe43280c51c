// The runtime's packed, add-only BitLinear against the trainer's BitLinear forward
// pass on the same exported weights: equal to the last bit.
import Foundation
import Testing
@testable import BitNet
import BitNetRuntime

@Suite(.serialized) struct RuntimeBitLinearTests {
    @Test(arguments: [WeightMode.binary, .ternary])
    func packedBitLinearEqualsTrainer(mode: WeightMode) throws {
        let (model, url) = try PackedModelTests.exportedModel(mode: mode, f16: false)
        let file = try ModelFile(path: url.path)
        let n = 5
        var rng = Xoshiro256(seed: 31)
        for slots in model.layout.layers[1].projections {
            let i = slots.inFeatures, o = slots.outFeatures
            let x = Buffer(random: n * i, rng: &rng, scale: 2)
            // The trainer's forward pass.
            let out = Buffer(n * o), a = Buffer(n * i), b = Buffer(n * i), mean = Buffer(n), rstd = Buffer(n), gamma = Buffer(n)
            let savedQ = UnsafeMutablePointer<Int8>.allocate(capacity: n * i)
            defer { savedQ.deallocate() }
            let (values, scale) = model.quantizedWeight(slots)
            let options = BitLinearOptions(mode: mode, norm: model.config.norm, scaling: .perToken,
                                           normEpsilon: model.config.normEpsilon)
            BitLinear.forward(out: out.pointer, inp: x.pointer, params: model.parameters, slots: slots,
                              weight: EffectiveWeight(values: UnsafeMutablePointer(mutating: values), scale: scale),
                              saved: BitLinearSaved(mean: mean.pointer, rstd: rstd.pointer, gamma: gamma.pointer, quantized: savedQ),
                              options: options, rows: n, sequenceLength: n, scratchA: a.pointer, scratchB: b.pointer)
            // The runtime's, from the file only.
            let name = model.layout.tensors.first { $0.offset == slots.weight }!.name
            let weight = try file.tensor(name)
            let gain = file.floats(try file.tensor(name.replacingOccurrences(of: ".weight", with: ".sub_norm.weight")))
            let h = Buffer(i), y = Buffer(o)
            var q = [Int8](repeating: 0, count: i)
            var fast: [Int32] = [], naive = [Int32](repeating: 0, count: o)
            file.data.withUnsafeBytes { raw in
                let planes = raw.baseAddress! + weight.offset
                for r in 0..<n {
                    gain.withUnsafeBufferPointer { g in
                        PackedBitLinear.subNorm(.rms, out: h.pointer, x: x.pointer + r * i, gain: g.baseAddress!, bias: nil,
                                                count: i, epsilon: model.config.normEpsilon)
                    }
                    let g = PackedBitLinear.quantize(h.pointer, count: i, into: &q)
                    fast = RuntimeKernelTests.fastProduct(planes: planes, entry: weight, q: [q])[0]
                    PackedBitLinear.naiveProduct(acc: &naive, planes: planes, entry: weight, q: q)
                    #expect(fast == naive, "\(name): fast and naive products differ")
                    PackedBitLinear.rescale(fast, gamma: g, beta: weight.scale, into: y.pointer, count: o)
                    let expected = Array(UnsafeBufferPointer(start: out.pointer + r * o, count: o))
                    #expect(y.array == expected, "\(name) row \(r)")
                    #expect(q == Array(UnsafeBufferPointer(start: savedQ + r * i, count: i)))
                }
            }
        }
    }
}
