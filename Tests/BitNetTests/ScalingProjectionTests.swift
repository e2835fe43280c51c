// The alpha-beta projection of data-parallel training against numbers worked by hand.
import Testing
@testable import BitNet

struct ScalingProjectionTests {
    let link = ScalingProjection.Link(name: "test", alpha: 10e-6, beta: 1e-9)
    /// 100 MB of gradients in 4 block buckets and 2 after the backward (20 MB); 1000
    /// tokens/s per machine.
    let work = ScalingProjection.Workload(name: "w", gradientBytes: 100e6, tailBytes: 20e6, blockBuckets: 4, tokensPerSecond: 1000,
                                          context: 100, microBatch: 1)

    @Test func ringCollectives() {
        // Two ranks: the fit t = a + b * bytes is the ring's 2 alpha + bytes * beta.
        let two = ScalingProjection.Link(name: "2", twoRankFit: 30e-6, 2e-9)
        #expect(abs(two.allReduce(1e6, machines: 2) - (30e-6 + 1e6 * 2e-9)) < 1e-15)
        // Four machines: 2 * 3 steps of 25 MB.
        #expect(abs(link.allReduce(100e6, machines: 4) - 6 * (10e-6 + 25e6 * 1e-9)) < 1e-12)
        #expect(abs(link.reduceScatter(100e6, machines: 4) - 3 * (10e-6 + 25e6 * 1e-9)) < 1e-12)
        #expect(link.allReduce(100e6, machines: 1) == 0)
        // Three collectives pay the latency three times.
        #expect(abs(link.allReduce(100e6, machines: 4, messages: 3) - 6 * (3 * 10e-6 + 25e6 * 1e-9)) < 1e-12)
    }

    /// Four machines, one sequence each: 0.1 s of compute, of which the backward's 2/3
    /// (0.0667 s) hides the blocks' 80 MB.
    @Test func stepByVariant() {
        func exposed(_ v: ScalingProjection.Variant) -> Double {
            ScalingProjection.step(work, link: link, machines: 4, batch: 4, variant: v).exposed
        }
        #expect(abs(ScalingProjection.step(work, link: link, machines: 4, batch: 4, variant: .overlapped).compute - 0.1) < 1e-12)
        #expect(abs(exposed(.afterBackward) - 6 * (10e-6 + 25e-3)) < 1e-9)
        // Blocks, 4 buckets: 6 (40 us + 20 ms) - 0.0667 s; then the tail's 2: 6 (20 us + 5 ms).
        #expect(abs(exposed(.overlapped) - (6 * (40e-6 + 20e-3) - 0.2 / 3 + 6 * (20e-6 + 5e-3))) < 1e-9)
        // ZeRO-1: the blocks' reduce-scatter (0.06 s) is hidden whole; the tail's and the
        // all-gather of all 6 buckets are not.
        #expect(abs(exposed(.zero1) - (3 * (20e-6 + 5e-3) + 3 * (60e-6 + 25e-3))) < 1e-9)
        let step = ScalingProjection.step(work, link: link, machines: 4, batch: 4, variant: .afterBackward)
        #expect(abs(step.efficiency - 0.1 / (0.1 + 6 * (10e-6 + 25e-3))) < 1e-12)
        #expect(ScalingProjection.step(work, link: link, machines: 1, batch: 4, variant: .afterBackward).efficiency == 1)
    }

    /// The batch returned reaches the efficiency; one unit (machines x micro-batch) less
    /// does not.
    @Test(arguments: ScalingProjection.Variant.allCases)
    func batchNeededIsTheSmallest(variant: ScalingProjection.Variant) {
        for n in [2, 8, 64, 512] {
            let batch = ScalingProjection.batchNeeded(work, link: link, machines: n, variant: variant, efficiency: 0.9)
            #expect(batch % n == 0)
            #expect(ScalingProjection.step(work, link: link, machines: n, batch: batch, variant: variant).efficiency >= 0.9)
            if batch > n {
                #expect(ScalingProjection.step(work, link: link, machines: n, batch: batch - n, variant: variant).efficiency < 0.9)
            }
        }
    }

    /// A preset's workload: all its parameters travel, the tail is the embedding, final
    /// norm and head.
    @Test func workloadFromAPreset() throws {
        let preset = try Preset.named("small")
        let w = ScalingProjection.Workload(name: "small", config: preset.model, microBatch: 8, tokensPerSecond: 3000)
        let layout = ParameterLayout(config: preset.model)
        #expect(w.gradientBytes == 4 * Double(layout.totalCount))
        let m = preset.model
        let tail = m.vocabSize * m.dim * (m.tiedEmbeddings ? 1 : 2) + m.dim
        #expect(abs(w.tailBytes - 4 * Double(tail)) <= 4 * 16 * 3, "tail \(w.tailBytes / 4) floats, expected about \(tail)")
    }
}
