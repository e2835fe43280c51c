// The runtime's forward pass with a KV cache, in llama2.c's mould: the weights (views
// into the mapped file), the run state (buffers allocated once), forward(tokens, start)
// -> logits. A prompt runs in batched steps (many tokens against the same weights);
// generation is a step of one token. Every BitLinear runs add-only on packed weights.
import BitNetMath
import BitNetSampling
import CBitKernels
import Foundation

/// An uninitialized buffer that lives as long as the model. Large ones are left
/// untouched until used (the KV cache), so they cost memory only as positions fill.
final class Scratch<T>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<T>
    init(_ count: Int) { pointer = .allocate(capacity: max(count, 1)) }
    deinit { pointer.deallocate() }
}

public final class Model: @unchecked Sendable {
    public let file: ModelFile
    public let config: RuntimeConfig
    public let tokenizer: Tokenizer
    /// Worker threads for products, attention and the head.
    public let threads: Int
    /// Tokens per batched forward step; longer prompts run in chunks of this many.
    public let batch: Int
    let weights: Weights
    /// RoPE: theta^(-2j / headDim) per pair j, and the rotations of the step's positions
    /// [batch, headDim / 2], computed per step rather than tabled for the whole context.
    let ropeFrequencies: [Double]
    let ropeCos, ropeSin: Scratch<Float>
    /// The mapped file's first byte; valid while `file` (held by this model) lives.
    let base: UnsafeRawPointer
    /// Positions this model holds (the KV cache's length): the file's context, or fewer.
    public let context: Int
    let pool: WorkerPool

    // Run state, [batch, width] each, and the KV cache [layers, context, kvDim].
    let x, xb, q, k, v, attention, ffnUp, ffnGate, hidden, normalized: Scratch<Float>
    let logits: Scratch<Float>
    let scores: Scratch<Float>  // [threads, context]
    let quantized: Scratch<Int8>
    let gammas: Scratch<Float>
    /// The shift of unsigned codes, per (linear, token).
    let etas: Scratch<Float>
    let qSums: Scratch<Int32>
    let tables: Scratch<UInt8>
    let accumulators, partialSums: Scratch<Int32>
    /// [layers, context, kvDim] in FP32, or FP16 (half the memory and the bytes attention reads).
    let keyCache, valueCache: KVCache
    /// The output head, as stored or rounded to int8.
    let head: Head
    /// The widest BitLinear input and output, rows padded to 32.
    let wide, wideRows, tableStride: Int
    /// BitLinears applied together to one input (query, key and value; up and gate).
    static let maxGroup = 3

    /// Loads and validates `path`. `context` limits the positions held (default: the
    /// file's context); the memory all of it needs is computed first and a model that
    /// needs more than `memoryLimit` bytes (default: the machine's memory) is refused.
    public init(path: String, threads: Int = ProcessInfo.processInfo.activeProcessorCount, batch: Int = 64,
                kvCache: KVCacheType = .f32, head headType: HeadType = .stored, context requested: Int? = nil,
                memoryLimit: Int = Int(clamping: ProcessInfo.processInfo.physicalMemory)) throws {
        precondition(threads >= 1 && batch >= 1 && (requested ?? 1) >= 1)
        self.threads = threads
        self.batch = batch
        file = try ModelFile(path: path)
        let c = try RuntimeConfig(file.config, path: path)
        config = c
        let context = min(requested ?? c.context, c.context)
        self.context = context
        let need = Self.memoryNeeded(config: c, fileBytes: file.bytes.count, context: context, threads: threads,
                                     batch: batch, kvCache: kvCache, head: headType)
        guard let need, need.total <= memoryLimit else {
            func gb(_ bytes: Int) -> String { String(format: "%.2f GB", Double(bytes) / 1e9) }
            let amount = need.map { "\(gb($0.total)) of memory (\(gb($0.kvCache)) of it the KV cache for \(context) positions)" }
                ?? "more than \(Int.max) bytes of memory"
            throw RuntimeError(description: "\(path): needs \(amount), more than the \(gb(memoryLimit)) available"
                               + (context > 1 ? "; a shorter --context needs less" : ""))
        }
        tokenizer = try Tokenizer(metadata: file.tokenizer, vocabSize: c.vocabSize, path: path)
        weights = try Weights(file: file, config: c)
        base = file.bytes.baseAddress!  // the mapping is not empty: its header was read
        // RoPE frequencies, as the trainer computes them (its tables hold cos and sin of
        // Double(position) * these, rounded to Float).
        ropeFrequencies = (0..<c.headDim / 2).map { pow(Double(c.ropeTheta), -2 * Double($0) / Double(c.headDim)) }
        (ropeCos, ropeSin) = (Scratch(batch * c.headDim / 2), Scratch(batch * c.headDim / 2))
        wide = max(c.dim, c.ffnDim)
        wideRows = (wide + 31) / 32 * 32
        tableStride = PackedBitLinear.tableBytes(cols: wide)
        (x, xb, q, k, v, attention) = (Scratch(batch * c.dim), Scratch(batch * c.dim), Scratch(batch * c.dim),
                                       Scratch(batch * c.dim), Scratch(batch * c.dim), Scratch(batch * c.dim))
        (ffnUp, ffnGate, hidden) = (Scratch(batch * c.ffnDim), Scratch(batch * c.ffnDim), Scratch(batch * c.ffnDim))
        normalized = Scratch(batch * wide)
        logits = Scratch(c.vocabSize)
        scores = Scratch(threads * context)
        quantized = Scratch(Self.maxGroup * batch * wide)
        gammas = Scratch(Self.maxGroup * batch)
        etas = Scratch(Self.maxGroup * batch)
        qSums = Scratch(Self.maxGroup * batch)
        tables = Scratch(Self.maxGroup * batch * tableStride)
        accumulators = Scratch(Self.maxGroup * batch * wideRows)
        partialSums = Scratch(Self.maxGroup * batch * wideRows)
        keyCache = KVCache(layers: c.layers, heads: c.kvHeads, context: context, headDim: c.headDim, type: kvCache)
        valueCache = KVCache(layers: c.layers, heads: c.kvHeads, context: context, headDim: c.headDim, type: kvCache)
        pool = WorkerPool(threads: threads)
        head = Head(entry: weights.head, file: file.mapping, type: headType, pool: pool)
    }


    /// The bytes a model needs: the mapped file (resident once read), the KV cache for
    /// `context` positions, the scratch buffers; nil if the sum overflows.
    static func memoryNeeded(config c: RuntimeConfig, fileBytes: Int, context: Int, threads: Int, batch: Int,
                             kvCache: KVCacheType, head: HeadType = .stored) -> (total: Int, kvCache: Int)? {
        // Every value is bounded by RuntimeConfig, but the products of several are not.
        func fold(_ xs: [Int], _ start: Int, _ op: (Int) -> (Int) -> (partialValue: Int, overflow: Bool)) -> Int? {
            var r = start
            for x in xs {
                let (value, overflow) = op(r)(x)
                if overflow { return nil }
                r = value
            }
            return r
        }
        func product(_ factors: Int...) -> Int? { fold(factors, 1, Int.multipliedReportingOverflow) }
        let wide = max(c.dim, c.ffnDim), wideRows = (wide + 31) / 32 * 32
        guard let kv = product(2, c.layers, context, c.kvDim, kvCache == .f32 ? 4 : 2),
              let activations = product(4, batch, 6 * c.dim + 3 * c.ffnDim + wide + c.headDim),
              let scores = product(4, threads, context),
              let codes = product(maxGroup, batch, wide + 2 * 4 * wideRows + PackedBitLinear.tableBytes(cols: wide)),
              let rowSums = product(4, c.layers, c.dim),
              let headBytes = product(c.vocabSize, head == .int8 ? c.dim + 4 : 0),
              let total = fold([fileBytes, kv, activations, 4 * c.vocabSize, scores, codes, rowSums, headBytes], 0,
                               Int.addingReportingOverflow)
        else { return nil }
        return (total, kv)
    }

    /// A row of the embedding as FP32.
    func embed(_ token: Int32, into out: UnsafeMutablePointer<Float>) {
        weights.embedding.row(Int(token), base: base, into: out)
    }

    /// outputs[j] = BitLinear_j(input) for `tokens` rows, add-only on the packed weights.
    /// Per token (serial, cheap): SubLN (where the layout has one), int8 quantization,
    /// look-up tables. Then the products, rows split across the workers, each rescaling
    /// the rows it computed.
    func apply(_ linears: [PackedLinear], _ input: UnsafeMutablePointer<Float>, _ outputs: [UnsafeMutablePointer<Float>],
               tokens: Int) {
        let cols = linears[0].entry.cols
        // Per token: the norm statistics once (the linears share the input), then each
        // linear's gain, quantization and tables.
        func prepare(_ t: Int) {
            let x = input + t * cols, normed = normalized.pointer + t * wide
            let hasSubNorm = linears.contains { $0.gain != nil }
            let (mean, scale) = hasSubNorm
                ? PackedBitLinear.normStatistics(config.norm, x: x, count: cols, epsilon: config.normEpsilon) : (0, 1)
            for (j, linear) in linears.enumerated() {
                var h = UnsafePointer(x)
                if let gain = linear.gain {
                    gain.withUnsafeBufferPointer { g in
                        linear.bias.withUnsafeBufferPointerOptional { b in
                            PackedBitLinear.normalize(out: normed, x: x, mean: mean, scale: scale, gain: g.baseAddress!, bias: b, count: cols)
                        }
                    }
                    h = UnsafePointer(normed)
                }
                let slot = j * batch + t, q = quantized.pointer + slot * wide
                if linear.rowSums != nil {
                    (gammas.pointer[slot], etas.pointer[slot]) = PackedBitLinear.quantizeUnsigned(h, count: cols, into: q)
                } else {
                    gammas.pointer[slot] = PackedBitLinear.quantize(h, count: cols, into: q)
                }
                qSums.pointer[slot] = PackedBitLinear.prepare(q, cols: cols, tables: tables.pointer + slot * tableStride)
            }
        }
        // A single token is prepared on this thread: cheaper than handing it over.
        if tokens == 1 {
            prepare(0)
        } else {
            pool.forEach(tokens) { t, _ in prepare(t) }
        }
        // The products in chunks of a few blocks, handed to whichever worker is free;
        // each rescales the rows it computed. Chunks of linear j are items
        // firstChunk[j]..<firstChunk[j + 1] (key and value are narrower than the query
        // with grouped-query attention).
        let chunk = 8
        var firstChunk = [0]
        for linear in linears { firstChunk.append(firstChunk[firstChunk.count - 1] + (linear.entry.blocks + chunk - 1) / chunk) }
        pool.forEach(firstChunk[linears.count]) { item, _ in
            var j = 0
            while item >= firstChunk[j + 1] { j += 1 }
            let e = linears[j].entry, first = (item - firstChunk[j]) * chunk, slot = j * batch
            let blocks = first..<min(first + chunk, e.blocks)
            let acc = accumulators.pointer + slot * wideRows
            PackedBitLinear.product(acc: acc, scratch: partialSums.pointer + slot * wideRows, accStride: wideRows,
                                    planes: base + e.offset, entry: e, tables: tables.pointer + slot * tableStride,
                                    tableStride: tableStride, qSums: qSums.pointer + slot, tokens: tokens, blocks: blocks)
            let rows = 32 * blocks.lowerBound..<min(32 * blocks.upperBound, e.rows)
            for t in 0..<tokens {
                let y = outputs[j] + t * e.rows + rows.lowerBound, a = acc + t * wideRows + rows.lowerBound
                if let sums = linears[j].rowSums {
                    sums.withUnsafeBufferPointer {
                        PackedBitLinear.rescaleUnsigned(a, gamma: gammas.pointer[slot + t], eta: etas.pointer[slot + t],
                                                        beta: e.scale, rowSums: $0.baseAddress! + rows.lowerBound, into: y,
                                                        count: rows.count)
                    }
                } else {
                    PackedBitLinear.rescale(a, gamma: gammas.pointer[slot + t], beta: e.scale, into: y, count: rows.count)
                }
            }
        }
    }

    func blockNorm(_ gain: Vector, _ bias: Vector?, _ inp: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>,
                   tokens: Int) {
        gain.withUnsafeBufferPointer { g in
            bias.withUnsafeBufferPointerOptional { b in
                for t in 0..<tokens {
                    PackedBitLinear.subNorm(config.norm, out: out + t * config.dim, x: inp + t * config.dim, gain: g.baseAddress!,
                                            bias: b, count: config.dim, epsilon: config.normEpsilon)
                }
            }
        }
    }

    /// Causal attention of `tokens` queries at positions start..<start+tokens over the
    /// cache of layer `l`; (head, token) pairs split across the workers.
    func attend(layer l: Int, start: Int, tokens: Int) {
        let c = config, hd = c.headDim, group = c.heads / c.kvHeads
        let scale = 1 / Float(hd).squareRoot()
        pool.forEach(tokens * c.heads) { pair, worker in
            let s = scores.pointer + worker * context
            // Head-major items: a worker scores consecutive tokens against the same head's
            // rows, which then stay in its L2 cache through a batched prompt.
            let head = pair / tokens, t = pair % tokens, pos = start + t
            // Query head `head` reads key/value head head / group (grouped-query attention).
            let query = q.pointer + t * c.dim + head * hd
            keyCache.scores(layer: l, head: head / group, query: query, positions: pos + 1, into: s)
            for i in 0...pos { s[i] *= scale }
            Softmax.inPlace(s, pos + 1)
            valueCache.weightedSum(layer: l, head: head / group, weights: s, positions: pos + 1,
                                   into: attention.pointer + t * c.dim + head * hd)
        }
    }

    /// Logits for `token` at position `pos` (0-based, < context); fills the KV cache.
    public func forward(token: Int32, pos: Int) -> [Float] { forward(tokens: [token], start: pos) }

    /// Runs `tokens` at positions start..<start+count through the model (in batched
    /// steps of `batch` tokens), fills the KV cache, and returns the last token's logits.
    public func forward(tokens: [Int32], start: Int) -> [Float] {
        precondition(!tokens.isEmpty && start >= 0 && start + tokens.count <= context)
        precondition(tokens.allSatisfy { $0 >= 0 && Int($0) < config.vocabSize })
        var offset = 0
        while offset < tokens.count {
            let n = min(batch, tokens.count - offset)
            step(Array(tokens[offset..<offset + n]), start: start + offset)
            offset += n
        }
        return Array(UnsafeBufferPointer(start: logits.pointer, count: config.vocabSize))
    }

    /// One batched step; leaves the last token's logits in `logits`.
    func step(_ tokens: [Int32], start: Int) {
        let c = config, hd = c.headDim, half = hd / 2, n = tokens.count
        let (x, xb, q, k, v) = (x.pointer, xb.pointer, q.pointer, k.pointer, v.pointer)
        for (t, token) in tokens.enumerated() { embed(token, into: x + t * c.dim) }
        for t in 0..<n {
            for j in 0..<half {
                let angle = Double(start + t) * ropeFrequencies[j]
                (ropeCos.pointer[t * half + j], ropeSin.pointer[t * half + j]) = (Float(Foundation.cos(angle)), Float(Foundation.sin(angle)))
            }
        }
        for (l, w) in weights.layers.enumerated() {
            blockNorm(w.attentionNorm, w.attentionNormBias, x, xb, tokens: n)
            apply([w.query, w.key, w.value], xb, [q, k, v], tokens: n)
            // RoPE as the trainer pairs dimensions: (2j, 2j+1), or (j, j + half) in b1.58's layout.
            let (pairStep, partner) = c.layout.ropePairing(headDim: hd)
            for t in 0..<n {
                let pos = start + t, qt = q + t * c.dim, kt = k + t * c.kvDim
                let cosRow = ropeCos.pointer + t * half, sinRow = ropeSin.pointer + t * half
                func rotate(_ x: UnsafeMutablePointer<Float>, heads: Int) {
                    for head in 0..<heads {
                        for j in 0..<half {
                            let cs = cosRow[j], sn = sinRow[j]
                            let i = head * hd + j * pairStep
                            (x[i], x[i + partner]) = (x[i] * cs - x[i + partner] * sn, x[i] * sn + x[i + partner] * cs)
                        }
                    }
                }
                rotate(qt, heads: c.heads)
                rotate(kt, heads: c.kvHeads)
                keyCache.store(kt, layer: l, position: pos)
                valueCache.store(v + t * c.kvDim, layer: l, position: pos)
            }
            attend(layer: l, start: start, tokens: n)
            apply([w.output], attention.pointer, [xb], tokens: n)
            for i in 0..<n * c.dim { x[i] += xb[i] }
            blockNorm(w.ffnNorm, w.ffnNormBias, x, xb, tokens: n)
            if let gate = w.gate {
                apply([w.up, gate], xb, [ffnUp.pointer, ffnGate.pointer], tokens: n)
            } else {
                apply([w.up], xb, [ffnUp.pointer], tokens: n)
            }
            let (up, gate, hidden) = (ffnUp.pointer, ffnGate.pointer, hidden.pointer)
            switch c.activation {
            case .swiglu:
                for i in 0..<n * c.ffnDim { hidden[i] = gate[i] * FastMath.sigmoid(gate[i]) * up[i] }
            case .gelu:
                for i in 0..<n * c.ffnDim {
                    let u = up[i]
                    hidden[i] = 0.5 * u * (1 + FastMath.tanh(0.797_884_56 * (u + 0.044715 * u * u * u)))
                }
            case .relu2:
                for i in 0..<n * c.ffnDim {
                    let r = max(up[i], 0)
                    hidden[i] = r * r
                }
            }
            apply([w.down], hidden, [xb], tokens: n)
            for i in 0..<n * c.dim { x[i] += xb[i] }
        }
        // Only the last token's logits are needed: its final norm, then the head.
        blockNorm(weights.finalNorm, weights.finalNormBias, x + (n - 1) * c.dim, xb, tokens: 1)
        let rowsPerChunk = 1024
        pool.forEach((c.vocabSize + rowsPerChunk - 1) / rowsPerChunk) { item, _ in
            head.logits(xb, into: logits.pointer, rows: item * rowsPerChunk..<min((item + 1) * rowsPerChunk, c.vocabSize))
        }
    }
}

/// The runtime as the shared generation loop's model: the prompt in batched steps,
/// then one token per step against the KV cache.
extension Model: TokenPredictor {
    public func logits(afterPrompt prompt: [Int32]) -> [Float] { forward(tokens: prompt, start: 0) }
    public func logits(after token: Int32, at position: Int) -> [Float] { forward(token: token, pos: position) }
}
