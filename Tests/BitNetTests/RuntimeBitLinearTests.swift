// The runtime's packed, add-only BitLinear against the trainer's BitLinear forward
// pass on the same exported weights: equal to the last bit, with signed and with
// unsigned activation codes.
import Foundation
import Testing
@testable import BitNet
@testable import BitNetRuntime

@Suite(.serialized) struct RuntimeBitLinearTests {
    @Test(arguments: [WeightMode.binary, .ternary], [false, true])
    func packedBitLinearEqualsTrainer(mode: WeightMode, unsigned: Bool) throws {
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
            var options = BitLinearOptions(mode: mode, norm: model.config.norm, scaling: .perToken,
                                           normEpsilon: model.config.normEpsilon)
            options.unsigned = unsigned
            // Each row's sum of W~, added up here from the trainer's values.
            let rowSums = (0..<o).map { r in (0..<i).reduce(Float(0)) { $0 + values[r * i + $1] } }
            let eta = Buffer(n)
            rowSums.withUnsafeBufferPointer { sums in
                BitLinear.forward(out: out.pointer, inp: x.pointer, params: model.parameters, slots: slots,
                                  weight: EffectiveWeight(values: UnsafeMutablePointer(mutating: values), scale: scale,
                                                          rowSums: sums.baseAddress),
                                  saved: BitLinearSaved(mean: mean.pointer, rstd: rstd.pointer, gamma: gamma.pointer,
                                                        quantized: savedQ, eta: eta.pointer),
                                  options: options, rows: n, sequenceLength: n, scratchA: a.pointer, scratchB: b.pointer)
            }
            // The runtime's, from the file only.
            let name = model.layout.tensors.first { $0.offset == slots.weight }!.name
            let weight = try file.tensor(name)
            let gain = file.floats(try file.tensor(name.replacingOccurrences(of: ".weight", with: ".sub_norm.weight")))
            let h = Buffer(i), y = Buffer(o)
            var q = [Int8](repeating: 0, count: i)
            var fast: [Int32] = [], naive = [Int32](repeating: 0, count: o)
            do { let raw = file.bytes
                let planes = raw.baseAddress! + weight.offset
                let runtimeSums = Weights.rowSums(weight, planes)
                #expect(runtimeSums.map(Float.init) == rowSums, "\(name): row sums")
                for r in 0..<n {
                    gain.withUnsafeBufferPointer { g in
                        PackedBitLinear.subNorm(.rms, out: h.pointer, x: x.pointer + r * i, gain: g.baseAddress!, bias: nil,
                                                count: i, epsilon: model.config.normEpsilon)
                    }
                    let (g, shift) = unsigned ? PackedBitLinear.quantizeUnsigned(h.pointer, count: i, into: &q)
                        : (PackedBitLinear.quantize(h.pointer, count: i, into: &q), 0)
                    fast = RuntimeKernelTests.fastProduct(planes: planes, entry: weight, q: [q])[0]
                    PackedBitLinear.naiveProduct(acc: &naive, planes: planes, entry: weight, q: q)
                    #expect(fast == naive, "\(name): fast and naive products differ")
                    if unsigned {
                        #expect(gamma[r] == g && eta[r] == shift)
                        PackedBitLinear.rescaleUnsigned(fast, gamma: g, eta: shift, beta: weight.scale, rowSums: runtimeSums,
                                                        into: y.pointer, count: o)
                    } else {
                        PackedBitLinear.rescale(fast, gamma: g, beta: weight.scale, into: y.pointer, count: o)
                    }
                    let expected = Array(UnsafeBufferPointer(start: out.pointer + r * o, count: o))
                    #expect(y.array == expected, "\(name) row \(r)")
                    #expect(q == Array(UnsafeBufferPointer(start: savedQ + r * i, count: i)))
                }
            }
        }
    }
}
