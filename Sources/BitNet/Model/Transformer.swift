// The decoder-only Transformer: parameters, gradients and activations in a few big
// blocks, and the forward and backward passes over them, layer by layer (llm.c's shape).
import Foundation

public final class Transformer {
    public let config: ModelConfig
    public let layout: ParameterLayout
    /// FP32 latent weights [layout.totalCount].
    public let parameters: UnsafeMutablePointer<Float>
    /// dL/dparameters, same layout; backward adds into it.
    public let gradients: UnsafeMutablePointer<Float>
    public let activations: Activations
    let rope: Rope
    private(set) var options: BitLinearOptions
    /// Activation bits of an fp model quantized after training (eval and sample only).
    public var postTrainingActivationBits: Int? {
        get { options.activationBits }
        set { options.activationBits = newValue }
    }

    /// W~ of every BitLinear (integer-valued floats) in the BitNet modes, and beta;
    /// `codes` holds the same values as int8 for the integer forward product. In `int4`
    /// mode: W H (FP32), its INT4 codes, and the weight steps.
    private let quantized: UnsafeMutablePointer<Float>
    private let codes: UnsafeMutablePointer<Int8>
    /// `int4`: the codes of each projection transposed (empty otherwise).
    private let transposedCodes: UnsafeMutablePointer<Int8>
    private let quantizedOffsets: [Int]
    /// Per BitLinear: whether its input takes unsigned codes, and then where its rows'
    /// sums of W~ start in `rowSums`.
    let unsignedInputs: [Bool]
    private let rowSums: UnsafeMutablePointer<Float>
    private let rowSumOffsets: [Int]
    public private(set) var weightScales: [Float]
    private var quantizedWeightsAreStale = true
    /// W~ at the last `quantizationStatistics()` call, to count sign flips (checkpointed,
    /// so a resumed run reports the same flips as an uninterrupted one).
    public var quantizationSnapshot: [Int8] = []

    private var lastBatch = 0, lastLength = 0, hasTargets = false
    /// `int4`: scratch of the integer products, and the seed of the next backward's
    /// leverage-score sampling (the trainer draws it from the run's generator).
    private let int4Workspace: Int4Workspace?
    public var samplingSeed: UInt64 = 0

    /// - Parameters:
    ///   - batch: the largest batch `forward` will be given.
    ///   - storage: how the activations saved for the backward pass are kept.
    public init(config: ModelConfig, batch: Int, storage: ActivationStorage = .f32) {
        self.config = config
        layout = ParameterLayout(config: config)
        parameters = .allocate(capacity: layout.totalCount)
        parameters.initialize(repeating: 0, count: layout.totalCount)
        gradients = .allocate(capacity: layout.totalCount)
        gradients.initialize(repeating: 0, count: layout.totalCount)
        activations = Activations(config: config, batch: batch, storage: storage)
        rope = Rope(context: config.context, headDim: config.headDim, theta: config.ropeTheta, layout: config.layout)
        options = BitLinearOptions(mode: config.mode, norm: config.norm, scaling: config.activationScaling,
                                   normEpsilon: config.normEpsilon)
        var offsets: [Int] = [], total = 0
        for p in layout.bitLinears {
            offsets.append(total)
            total += config.mode != .fp ? p.weightCount : 0
        }
        quantizedOffsets = offsets
        quantized = .allocate(capacity: max(total, 1))
        quantized.initialize(repeating: 0, count: max(total, 1))
        codes = .allocate(capacity: max(total, 1))
        codes.initialize(repeating: 0, count: max(total, 1))
        let transposedCount = config.mode == .int4 ? total : 1
        transposedCodes = .allocate(capacity: transposedCount)
        transposedCodes.initialize(repeating: 0, count: transposedCount)
        weightScales = Array(repeating: 1, count: layout.bitLinears.count)
        let downs = Set(layout.layers.map(\.down.index))
        let unsigned = layout.bitLinears.map { config.usesUnsignedActivations($0, isDownProjection: downs.contains($0.index)) }
        unsignedInputs = unsigned
        var sumOffsets: [Int] = [], sumTotal = 0
        for p in layout.bitLinears {
            sumOffsets.append(sumTotal)
            sumTotal += unsigned[p.index] ? p.outFeatures : 0
        }
        rowSumOffsets = sumOffsets
        rowSums = .allocate(capacity: max(sumTotal, 1))
        rowSums.initialize(repeating: 0, count: max(sumTotal, 1))
        int4Workspace = config.mode == .int4
            ? Int4Workspace(rows: batch * config.context, wide: max(config.dim, config.ffnDim)) : nil
    }

    deinit {
        parameters.deallocate()
        gradients.deallocate()
        quantized.deallocate()
        codes.deallocate()
        transposedCodes.deallocate()
        rowSums.deallocate()
    }

    /// Bytes of memory a model of this shape needs to train with batch `batch`:
    /// parameters, gradients, both AdamW moments, quantized weights and activations. Under
    /// ZeRO-1 over `zeroRanks` ranks, the moments (and the gradients' reduced part) of the
    /// largest shard.
    public static func trainingBytes(config: ModelConfig, batch: Int, storage: ActivationStorage = .f32, zeroRanks: Int = 1) -> Int {
        // A rough bound in Double first: shapes past any machine's memory would overflow
        // the exact count below; they are reported as "at least a petabyte".
        let (b, t, c) = (Double(batch), Double(config.context), Double(max(config.dim, config.ffnDim)))
        let bound = 4 * (Double(config.layers) * (16 * b * t * c + b * Double(config.heads) * t * t + 8 * c * c)
                         + 2 * b * t * Double(config.vocabSize) + 2 * Double(config.vocabSize) * c)
        if bound > 1e15 { return Int(1e15) }
        let layout = ParameterLayout(config: config)
        let quantizedCount = config.mode != .fp ? layout.bitLinears.reduce(0) { $0 + $1.weightCount } : 0
        let workspace = config.mode == .int4
            ? Int4Workspace.bytesNeeded(rows: batch * config.context, wide: max(config.dim, config.ffnDim)) : 0
        let codeCount = quantizedCount * (config.mode == .int4 ? 2 : 1)
        return 4 * (2 * layout.totalCount + optimizerFloats(layout: layout, zeroRanks: zeroRanks) + quantizedCount) + codeCount + workspace
            + Activations.bytesNeeded(config: config, batch: batch, storage: storage)
    }

    /// The floats AdamW keeps per rank: both moments of every parameter, or under ZeRO-1
    /// over `zeroRanks` ranks both moments and the summed gradients of the largest shard.
    static func optimizerFloats(layout: ParameterLayout, zeroRanks: Int) -> Int {
        zeroRanks > 1 ? 3 * GradientExchange.largestShard(layout: layout, ranks: zeroRanks) : 2 * layout.totalCount
    }

    /// Why a model of this shape cannot train (or run) with batch `batch` within `limit`
    /// bytes (default: 85% of the machine's memory), or nil when it can.
    public static func memoryShortfall(config: ModelConfig, batch: Int, storage: ActivationStorage = .f32,
                                       zeroRanks: Int = 1, limit: Int? = nil) -> String? {
        let needed = trainingBytes(config: config, batch: batch, storage: storage, zeroRanks: zeroRanks)
        let limit = limit ?? Int(Double(ProcessInfo.processInfo.physicalMemory) * 0.85)
        guard needed > limit else { return nil }
        return String(format: "the estimated peak memory of %@%.1f GB exceeds the %.1f GB available",
                      needed >= Int(1e15) ? "at least " : "", Double(needed) / 1e9, Double(limit) / 1e9)
    }

    // MARK: Initialization

    /// GPT-2's scheme: N(0, 0.02) matrices, residual outputs scaled by 1/sqrt(2 * layers),
    /// unit gains, zero biases.
    public func initializeParameters(seed: UInt64) {
        var rng = Xoshiro256(seed: seed)
        let residualScale = 1 / Float(2 * config.layers).squareRoot()
        for tensor in layout.tensors {
            let p = parameters + tensor.offset
            if tensor.shape.count == 1 {
                let value: Float = tensor.name.hasSuffix(".bias") ? 0 : 1
                for i in 0..<tensor.count { p[i] = value }
            } else {
                let isResidual = tensor.name.hasSuffix("attention.output.weight") || tensor.name.hasSuffix("ffn.down.weight")
                let std: Float = 0.02 * (isResidual ? residualScale : 1)
                for i in 0..<tensor.count { p[i] = rng.normal() * std }
            }
        }
        // int4: LSQ's initial weight step from W H; the input step (0) waits for data.
        for p in layout.bitLinears {
            guard let steps = p.steps else { continue }
            let wh = UnsafeMutablePointer<Float>.allocate(capacity: p.weightCount)
            defer { wh.deallocate() }
            Int4Linear.transform(parameters + p.weight, into: wh, rows: p.outFeatures, width: p.inFeatures,
                                 block: config.hadamardBlockSize)
            parameters[steps.weight] = LearnedStepQuantizer.initialStep(wh, count: p.weightCount)
            parameters[steps.input] = 0
        }
        parametersDidChange()
    }

    /// Call after anything writes `parameters` (optimizer step, checkpoint load).
    public func parametersDidChange() { quantizedWeightsAreStale = true }

    /// int4: whether some input step still waits for its first data (the first forward
    /// pass sets it from its first sequence).
    public var hasUnsetInputSteps: Bool {
        layout.bitLinears.contains { p in p.steps.map { parameters[$0.input] <= 0 } ?? false }
    }

    public func zeroGradients() { gradients.update(repeating: 0, count: layout.totalCount) }

    // MARK: Weights as the forward pass sees them

    private func refreshQuantizedWeights() {
        guard quantizedWeightsAreStale else { return }
        quantizedWeightsAreStale = false
        if config.mode == .int4 {
            for p in layout.bitLinears {
                guard let steps = p.steps else { continue }
                let wh = quantized + quantizedOffsets[p.index]
                Int4Linear.transform(parameters + p.weight, into: wh, rows: p.outFeatures, width: p.inFeatures,
                                     block: config.hadamardBlockSize)
                weightScales[p.index] = Int4Linear.step(parameters[steps.weight])
                Int4Linear.encodeWeight(wh, rows: p.outFeatures, cols: p.inFeatures, step: weightScales[p.index],
                                        codes: codes + quantizedOffsets[p.index], transposed: transposedCodes + quantizedOffsets[p.index])
            }
            return
        }
        guard config.mode.isBitNet else { return }
        Parallel.forEach(layout.bitLinears.count) { j in
            let p = layout.bitLinears[j]
            weightScales[j] = Quantizers.quantizeWeights(config.mode, out: quantized + quantizedOffsets[j],
                                                         weight: parameters + p.weight, count: p.weightCount)
            let (w, c) = (quantized + quantizedOffsets[j], codes + quantizedOffsets[j])
            for i in 0..<p.weightCount { c[i] = Int8(truncatingIfNeeded: Int32(w[i])) }  // -1, 0 or +1
        }
        for p in layout.bitLinears where unsignedInputs[p.index] {
            let w = quantized + quantizedOffsets[p.index], sums = rowSums + rowSumOffsets[p.index]
            // Integers (sums of +-1 and 0): exact in FP32, as the runtime's.
            for o in 0..<p.outFeatures {
                var sum: Float = 0
                for i in 0..<p.inFeatures { sum += w[o * p.inFeatures + i] }
                sums[o] = sum
            }
        }
    }

    func effectiveWeight(_ slots: BitLinearSlots) -> EffectiveWeight {
        if config.mode.isBitNet {
            return EffectiveWeight(values: quantized + quantizedOffsets[slots.index], scale: weightScales[slots.index],
                                   rowSums: unsignedInputs[slots.index] ? UnsafePointer(rowSums + rowSumOffsets[slots.index]) : nil,
                                   codes: UnsafePointer(codes + quantizedOffsets[slots.index]))
        }
        return EffectiveWeight(values: parameters + slots.weight, scale: 1)
    }

    func int4Weight(_ slots: BitLinearSlots) -> Int4Weight {
        Int4Weight(transformed: quantized + quantizedOffsets[slots.index], codes: codes + quantizedOffsets[slots.index],
                   transposedCodes: transposedCodes + quantizedOffsets[slots.index], step: weightScales[slots.index])
    }

    /// W~ of one BitLinear as the forward pass uses it (values in {-1, 0, +1} unless fp).
    public func quantizedWeight(_ slots: BitLinearSlots) -> (values: UnsafePointer<Float>, scale: Float) {
        refreshQuantizedWeights()
        let w = effectiveWeight(slots)
        return (UnsafePointer(w.values), w.scale)
    }

    /// Fraction of quantized weights whose value changed since the previous call
    /// (nil on the first call) and fraction of zeros (ternary). Nil values in fp mode.
    public func quantizationStatistics() -> (flipFraction: Double?, zeroFraction: Double?) {
        guard config.mode.isBitNet else { return (nil, nil) }
        refreshQuantizedWeights()
        let total = quantizedOffsets.last.map { $0 + layout.bitLinears.last!.weightCount } ?? 0
        var zeros = 0, flips = 0
        let first = quantizationSnapshot.count != total
        if first { quantizationSnapshot = Array(repeating: 0, count: total) }
        quantizationSnapshot.withUnsafeMutableBufferPointer { previous in
            for i in 0..<total {
                let value = Int8(quantized[i])
                if value == 0 { zeros += 1 }
                if value != previous[i] { flips += 1 }
                previous[i] = value
            }
        }
        let zeroFraction = config.mode == .ternary ? Double(zeros) / Double(total) : nil
        return (first ? nil : Double(flips) / Double(total), zeroFraction)
    }

    // MARK: Forward

    /// Runs the model on tokens [B, T] (B <= the allocated batch, T <= context). With
    /// targets [B, T] returns the mean cross-entropy and keeps what `backward` needs;
    /// without, leaves logits [B*T, V] in `logits`.
    @discardableResult
    public func forward(tokens: UnsafePointer<Int32>, targets: UnsafePointer<Int32>?, batch b: Int, length t: Int) -> Float {
        precondition(b <= activations.batch && t <= config.context && b > 0 && t > 0, "batch shape out of range")
        refreshQuantizedWeights()
        let a = activations.views
        let n = b * t, c = config.dim, v = config.vocabSize
        let params = UnsafePointer(parameters)
        a.tokens.update(from: tokens, count: n)
        Embedding.forward(out: a.layers[0].input, tokens: a.tokens, table: params + layout.embedding, rows: n, width: c)

        for l in 0..<config.layers { forwardLayer(l, batch: b, length: t) }
        normForward(layout.finalNorm, out: a.finalNorm, mean: a.finalNormMean, rstd: a.finalNormRstd, inp: a.output, rows: n)
        Matmul.forward(a.logits, a.finalNorm, params + layout.head, rows: n, inFeatures: c, outFeatures: v)

        lastBatch = b
        lastLength = t
        hasTargets = targets != nil
        guard let targets else { return .nan }
        a.targets.update(from: targets, count: n)
        CrossEntropy.forward(probs: a.logits, losses: a.losses, targets: a.targets, rows: n, vocab: v)
        var sum: Double = 0
        for i in 0..<n { sum += Double(a.losses[i]) }
        return Float(sum / Double(n))
    }

    /// Logits of row `row` of the last forward without targets.
    public func logits(row: Int) -> UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: activations.views.logits + row * config.vocabSize, count: config.vocabSize)
    }

    // MARK: Backward

    /// Adds d(lossScale * mean loss)/dparameters into `gradients`, for the last forward.
    /// `layerDone(l)` is called once block l's parameter gradients are complete (blocks
    /// finish from the last to the first; the embedding's come after block 0's).
    public func backward(lossScale: Float = 1, layerDone: ((Int) throws -> Void)? = nil) rethrows {
        precondition(hasTargets, "backward needs a forward pass with targets")
        let a = activations.views
        let b = lastBatch, t = lastLength, n = b * t, c = config.dim, v = config.vocabSize
        let params = UnsafePointer(parameters), grads = gradients

        CrossEntropy.backward(probs: a.logits, targets: a.targets, rows: n, vocab: v, scale: lossScale / Float(n))
        zero(a.dNorm, n * c)
        Matmul.backwardInput(a.dNorm, a.logits, params + layout.head, rows: n, inFeatures: c, outFeatures: v)
        Matmul.backwardWeight(grads + layout.head, a.logits, a.finalNorm, rows: n, inFeatures: c, outFeatures: v)
        zero(a.dResidual, n * c)
        normBackward(layout.finalNorm, dinp: a.dResidual, dout: a.dNorm, inp: a.output, mean: a.finalNormMean,
                     rstd: a.finalNormRstd, rows: n)

        for l in (0..<config.layers).reversed() {
            backwardLayer(l, batch: b, length: t)
            try layerDone?(l)
        }
        Embedding.backward(dtable: grads + layout.embedding, dout: a.dResidual, tokens: a.tokens, rows: n, width: c)
    }

    /// Block `l` on its input (a.layers[l].input, rows b * t), leaving its output in the
    /// next block's input (or a.output) and what backward needs in a.layers[l].
    private func forwardLayer(_ l: Int, batch b: Int, length t: Int) {
        let a = activations.views, slots = layout.layers[l]
        let n = b * t, c = config.dim, f = config.ffnDim
        let params = UnsafePointer(parameters)
        let x = a.layers[l]
        let next = l + 1 < config.layers ? a.layers[l + 1].input : a.output
        func linear(_ s: BitLinearSlots, _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>) {
            if let steps = s.steps, let workspace = int4Workspace {
                Int4Linear.forward(out: out, inp: inp, params: parameters, slots: s, steps: steps, weight: int4Weight(s),
                                   block: config.hadamardBlockSize, rows: n, sequenceLength: t, scratch: a.scratchA,
                                   workspace: workspace)
                return
            }
            BitLinear.forward(out: out, inp: inp, params: params, slots: s, weight: effectiveWeight(s),
                              saved: saved(x, s, slots), options: options(s), rows: n, sequenceLength: t,
                              scratchA: a.scratchA, scratchB: a.scratchB)
        }
        x.storeInput()  // BF16 storage: before the layer's output overwrites the working input
        normForward(slots.attentionNorm, out: x.attentionNorm, mean: x.attentionNormMean, rstd: x.attentionNormRstd,
                    inp: x.input, rows: n)
        linear(slots.query, x.q, x.attentionNorm)
        linear(slots.key, x.k, x.attentionNorm)
        linear(slots.value, x.v, x.attentionNorm)
        rope.apply(x.q, batch: b, length: t, width: c)
        rope.apply(x.k, batch: b, length: t, width: config.keyValueDim)
        Attention.forward(out: x.attentionOut, probs: x.probs, q: x.q, k: x.k, v: x.v, batch: b, length: t,
                          width: c, heads: config.heads, kvHeads: config.keyValueHeads)
        linear(slots.attentionOutput, a.projectionOut, x.attentionOut)
        add(x.residualMid, x.input, a.projectionOut, count: n * c)
        normForward(slots.ffnNorm, out: x.ffnNorm, mean: x.ffnNormMean, rstd: x.ffnNormRstd, inp: x.residualMid, rows: n)
        linear(slots.up, x.up, x.ffnNorm)
        if let gate = slots.gate { linear(gate, x.gate, x.ffnNorm) }
        FeedForward.forward(config.ffnActivation, hidden: x.hidden, up: x.up,
                            gate: slots.gate == nil ? nil : x.gate, count: n * f)
        linear(slots.down, a.projectionOut, x.hidden)
        add(next, x.residualMid, a.projectionOut, count: n * c)
        x.storeRest()
    }

    /// Block `l` backward for the last forward: a.dResidual holds dL/d(block output) on
    /// entry and dL/d(block input) on return; parameter gradients are added.
    private func backwardLayer(_ l: Int, batch b: Int, length t: Int) {
        let a = activations.views, slots = layout.layers[l]
        let n = b * t, c = config.dim, f = config.ffnDim
        let params = UnsafePointer(parameters), grads = gradients
        let x = a.layers[l]
        x.restore()  // BF16 storage: the layer's saved tensors back into the working layer
        func linearBackward(_ s: BitLinearSlots, dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                            inp: UnsafePointer<Float>) {
            if let steps = s.steps, let workspace = int4Workspace {
                // One independent stream per projection and backward pass.
                var mixer = Xoshiro256(seed: samplingSeed ^ (UInt64(s.index + 1) &* 0x9E37_79B9_7F4A_7C15))
                Int4Linear.backward(dinp: dinp, dparams: grads, dout: dout, inp: inp, params: params, slots: s, steps: steps,
                                    weight: int4Weight(s), block: config.hadamardBlockSize, mode: config.int4Backward,
                                    sampleFraction: Double(config.int4SampleFraction),
                                    seed: mixer.next(), rows: n, sequenceLength: t, scratchA: a.scratchA, scratchB: a.scratchB,
                                    workspace: workspace)
                return
            }
            BitLinear.backward(dinp: dinp, dparams: grads, dout: dout, inp: inp, params: params, slots: s,
                               weight: effectiveWeight(s), saved: saved(x, s, slots), options: options(s), rows: n,
                               scratchA: a.scratchA, scratchB: a.scratchB)
        }
        // dResidual holds dL/d(layer output) = dL/d(residualMid) through the skip.
        zero(a.dHidden, n * f)
        linearBackward(slots.down, dinp: a.dHidden, dout: a.dResidual, inp: x.hidden)
        FeedForward.backward(config.ffnActivation, dup: a.dUp, dgate: slots.gate == nil ? nil : a.dGate,
                             dhidden: a.dHidden, up: x.up, gate: slots.gate == nil ? nil : x.gate, count: n * f)
        zero(a.dNorm, n * c)
        linearBackward(slots.up, dinp: a.dNorm, dout: a.dUp, inp: x.ffnNorm)
        if let gate = slots.gate { linearBackward(gate, dinp: a.dNorm, dout: a.dGate, inp: x.ffnNorm) }
        normBackward(slots.ffnNorm, dinp: a.dResidual, dout: a.dNorm, inp: x.residualMid, mean: x.ffnNormMean,
                     rstd: x.ffnNormRstd, rows: n)
        // dResidual now holds dL/d(residualMid) = dL/d(layer input) through the skip.
        zero(a.dAttentionOut, n * c)
        linearBackward(slots.attentionOutput, dinp: a.dAttentionOut, dout: a.dResidual, inp: x.attentionOut)
        let kv = config.keyValueDim
        zero(a.dq, n * c)
        zero(a.dk, n * kv)
        zero(a.dv, n * kv)
        Attention.backward(dq: a.dq, dk: a.dk, dv: a.dv, dout: a.dAttentionOut, probs: x.probs, q: x.q, k: x.k,
                           v: x.v, batch: b, length: t, width: c, heads: config.heads, kvHeads: config.keyValueHeads,
                           scratch: a.dProbs)
        rope.apply(a.dq, batch: b, length: t, width: c, inverse: true)
        rope.apply(a.dk, batch: b, length: t, width: kv, inverse: true)
        zero(a.dNorm, n * c)
        linearBackward(slots.query, dinp: a.dNorm, dout: a.dq, inp: x.attentionNorm)
        linearBackward(slots.key, dinp: a.dNorm, dout: a.dk, inp: x.attentionNorm)
        linearBackward(slots.value, dinp: a.dNorm, dout: a.dv, inp: x.attentionNorm)
        normBackward(slots.attentionNorm, dinp: a.dResidual, dout: a.dNorm, inp: x.input,
                     mean: x.attentionNormMean, rstd: x.attentionNormRstd, rows: n)
    }

    // MARK: One block alone (OmniQuant's block-wise calibration)

    /// Runs block `l` alone on `input` [b * t, dim] and writes its output to `output`.
    func forwardBlock(_ l: Int, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, batch b: Int, length t: Int) {
        precondition(b <= activations.batch && t <= config.context && b > 0 && t > 0, "batch shape out of range")
        refreshQuantizedWeights()
        let a = activations.views, count = b * t * config.dim
        a.layers[l].input.update(from: input, count: count)
        forwardLayer(l, batch: b, length: t)
        output.update(from: l + 1 < config.layers ? a.layers[l + 1].input : a.output, count: count)
    }

    /// After `forwardBlock(l, ...)`: adds the block's parameter gradients for dL/d(output) `dout`.
    func backwardBlock(_ l: Int, dout: UnsafePointer<Float>, batch b: Int, length t: Int) {
        activations.views.dResidual.update(from: dout, count: b * t * config.dim)
        backwardLayer(l, batch: b, length: t)
    }

    // MARK: Helpers

    private func options(_ s: BitLinearSlots) -> BitLinearOptions {
        var o = options
        o.unsigned = unsignedInputs[s.index]
        return o
    }

    private func saved(_ x: LayerActivations, _ s: BitLinearSlots, _ slots: LayerSlots) -> BitLinearSaved? {
        config.mode.isBitNet ? x.saved[s.index - slots.query.index] : nil
    }

    private func normForward(_ s: NormSlots, out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                             rstd: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, rows n: Int) {
        Norm.forward(config.norm, out: out, mean: mean, rstd: rstd, inp: inp, gain: parameters + s.gain,
                     bias: s.bias.map { UnsafePointer(parameters + $0) }, rows: n, width: config.dim,
                     epsilon: config.normEpsilon)
    }

    private func normBackward(_ s: NormSlots, dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                              inp: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, rows n: Int) {
        Norm.backward(config.norm, dinp: dinp, dgain: gradients + s.gain, dbias: s.bias.map { gradients + $0 },
                      dout: dout, inp: inp, gain: parameters + s.gain, mean: mean, rstd: rstd, rows: n, width: config.dim)
    }

    private func add(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) {
        Parallel.forRanges(count) { range in
            for i in range { out[i] = x[i] + y[i] }
        }
    }

    private func zero(_ p: UnsafeMutablePointer<Float>, _ count: Int) { p.update(repeating: 0, count: count) }
}
