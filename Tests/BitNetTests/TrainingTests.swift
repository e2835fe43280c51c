// Model-level behaviour: learning, gradient accumulation, exact resume, safe checkpoints.
import BitNetFormat
import Foundation
import Testing
@testable import BitNet

@Suite struct TrainingTests {
    @Test(arguments: [WeightMode.binary, .ternary, .int4])
    func tinyQuantizedModelOverfitsOneBatch(mode: WeightMode) {
        var config = Fixtures.tinyRunConfig(mode: mode).model
        config.vocabSize = 64
        config.context = 16
        let model = Transformer(config: config, batch: 4)
        model.initializeParameters(seed: 3)
        let optimizer = AdamW(count: model.layout.totalCount)
        var rng = Xoshiro256(seed: 4)
        let tokens = (0..<64).map { _ in Int32(rng.below(64)) }
        let targets = (0..<64).map { _ in Int32(rng.below(64)) }
        var training = TrainingConfig()
        training.weightDecay = 0
        var first: Float = 0, last: Float = 0
        for step in 0..<300 {
            model.zeroGradients()
            let loss = model.forward(tokens: tokens, targets: targets, batch: 4, length: 16)
            if step == 0 { first = loss }
            last = loss
            model.backward()
            AdamW.clipGradients(model.gradients, count: model.layout.totalCount, maxNorm: 1)
            optimizer.update(parameters: model.parameters, gradients: model.gradients, layout: model.layout,
                             learningRate: 1e-2, weightDecay: 0, config: training)
            model.parametersDidChange()
        }
        // Random targets: memorizing them is the only way down from log(64) = 4.16.
        #expect(first > 3.9)
        #expect(last < 0.5, "final loss \(last)")
    }

    /// The loss at position p of a window is the prediction of token p + 1 from the first
    /// p + 1 tokens alone (a forward of that length, its log-softmax in Float64), and the
    /// positions' mean is the window loss. Per-token scaling keeps the model causal.
    @Test func lossByPositionMatchesShorterForwards() {
        var config = Fixtures.tinyRunConfig(mode: .binary).model
        (config.vocabSize, config.context, config.activationScaling) = (40, 12, .perToken)
        let model = Transformer(config: config, batch: 3)
        model.initializeParameters(seed: 5)
        var rng = Xoshiro256(seed: 6)
        for i in 0..<model.layout.totalCount { model.parameters[i] += rng.normal() * 0.2 }
        model.parametersDidChange()
        let windows = 3, sequence = (0..<windows * 12 + 1).map { _ in Int32(rng.below(40)) }
        // Batches of 2 over 3 windows: the last batch is short.
        let byPosition = Evaluation.lossByPosition(model: model, tokens: sequence, batch: 2)
        #expect(byPosition.count == 12)
        let whole = Double(Evaluation.loss(model: model, tokens: sequence, batch: 3))
        #expect(abs(byPosition.reduce(0, +) / 12 - whole) < 1e-5)
        for p in [0, 4, 11] {
            var reference = 0.0
            for w in 0..<windows {
                model.forward(tokens: Array(sequence[w * 12..<w * 12 + p + 1]), targets: nil, batch: 1, length: p + 1)
                let logits = model.logits(row: p).map { Double($0) }
                let top = logits.max() ?? 0
                let logSum = log(logits.reduce(0) { $0 + exp($1 - top) }) + top
                reference += logSum - logits[Int(sequence[w * 12 + p + 1])]
            }
            reference /= Double(windows)
            #expect(abs(byPosition[p] - reference) < 1e-4, "position \(p): \(byPosition[p]) against \(reference)")
        }
        // Later positions see more context, and a random model cannot use it: the test
        // is about the bookkeeping, so the values only need to differ between positions.
        #expect(Set(byPosition.map { Float($0) }).count > 1)
        let buckets = Evaluation.doublingBuckets(byPosition)
        #expect(buckets.map(\.context) == [1...1, 2...2, 3...4, 5...8, 9...12])
        #expect(abs(buckets[4].loss - byPosition[8..<12].reduce(0, +) / 4) < 1e-12)
    }

    /// A window shorter than the context is what a model trained with that context sees:
    /// the same weights in a model whose context is the window give the same losses, on
    /// a token sequence and on a dataset's spread validation windows (different windows
    /// from the full context's, since their length places them).
    @Test func shortWindowEqualsModelWithThatContext() throws {
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        var config = Fixtures.tinyRunConfig(mode: .binary, vocabSize: dataset.meta.vocabSize).model
        config.context = 12
        let long = Transformer(config: config, batch: 2)
        long.initializeParameters(seed: 7)
        config.context = 5
        let short = Transformer(config: config, batch: 2)
        #expect(short.layout.totalCount == long.layout.totalCount)
        short.parameters.update(from: long.parameters, count: long.layout.totalCount)
        short.parametersDidChange()
        var rng = Xoshiro256(seed: 8)
        let sequence = (0..<61).map { _ in Int32(rng.below(config.vocabSize)) }
        let windowed = Evaluation.loss(model: long, tokens: sequence, batch: 2, length: 5)
        #expect(windowed == Evaluation.loss(model: short, tokens: sequence, batch: 2))
        #expect(windowed != Evaluation.loss(model: long, tokens: sequence, batch: 2))
        #expect(Evaluation.lossByPosition(model: long, tokens: sequence, batch: 2, length: 5)
                == Evaluation.lossByPosition(model: short, tokens: sequence, batch: 2))
        #expect(Evaluation.loss(model: long, dataset: dataset, windows: 6, batch: 2, length: 5)
                == Evaluation.loss(model: short, dataset: dataset, windows: 6, batch: 2))
    }

    /// One batch of 8 sequences and 4 accumulated micro-batches of 2 are the same
    /// computation: per-tensor scaling takes gamma per sequence, so sequences do not
    /// change each other's quantization. (`int4` with its exact backward: sampling draws
    /// differ with the split by construction.)
    @Test(arguments: WeightMode.allCases, ActivationScaling.allCases)
    func gradientAccumulationEqualsOneBigBatch(mode: WeightMode, scaling: ActivationScaling) {
        var config = Fixtures.tinyRunConfig(mode: mode).model
        config.int4Backward = .exact
        config.vocabSize = 50
        config.context = 8
        config.activationScaling = scaling
        var rng = Xoshiro256(seed: 9)
        let tokens = (0..<64).map { _ in Int32(rng.below(50)) }
        let targets = (0..<64).map { _ in Int32(rng.below(50)) }
        let big = Transformer(config: config, batch: 8)
        big.initializeParameters(seed: 1)
        big.zeroGradients()
        big.forward(tokens: tokens, targets: targets, batch: 8, length: 8)
        big.backward()
        let small = Transformer(config: config, batch: 2)
        small.initializeParameters(seed: 1)
        small.zeroGradients()
        for part in 0..<4 {
            let range = part * 16..<(part + 1) * 16
            small.forward(tokens: Array(tokens[range]), targets: Array(targets[range]), batch: 2, length: 8)
            small.backward(lossScale: 0.25)
        }
        let a = (0..<big.layout.totalCount).map { Double(big.gradients[$0]) }
        let b = (0..<small.layout.totalCount).map { Double(small.gradients[$0]) }
        #expect(maxRelativeError(b, a) < 1e-5, "\(mode), \(scaling)")
    }

    @Test(arguments: [WeightMode.fp, .binary, .int4])
    func validationLossFallsOnGeneratedCorpus(mode: WeightMode) throws {
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        var config = Fixtures.tinyRunConfig(mode: mode, steps: 80, vocabSize: dataset.meta.vocabSize)
        config.training.evalEvery = 1000
        let trainer = try Trainer(runDirectory: Fixtures.temporaryDirectory("falls"), config: config, dataset: dataset,
                                  resume: false, force: false)
        let before = try trainer.validationLoss()
        try trainer.run { _ in }
        let after = try trainer.validationLoss()
        #expect(before > 5.0)  // about log(320) = 5.77 at initialization
        #expect(after < before - 2.0, "validation loss \(before) -> \(after)")
    }

    /// (mode, layout, key/value heads): the b1.58 layout with grouped-query attention too.
    @Test(arguments: [(WeightMode.ternary, ModelLayout.bitnet, 0), (.fp, .bitnet, 0), (.int4, .bitnet, 0), (.binary, .b158, 1)])
    func resumedRunReproducesUninterruptedRun(mode: WeightMode, layout: ModelLayout, kvHeads: Int) throws {
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        var config = Fixtures.tinyRunConfig(mode: mode, steps: 40, vocabSize: dataset.meta.vocabSize)
        (config.model.layout, config.model.kvHeads) = (layout, kvHeads)
        let whole = Fixtures.temporaryDirectory("whole")
        try Trainer(runDirectory: whole, config: config, dataset: dataset, resume: false, force: false).run { _ in }

        let parts = Fixtures.temporaryDirectory("parts")
        let first = try Trainer(runDirectory: parts, config: config, dataset: dataset, resume: false, force: false)
        first.shouldStop = { first.state.step >= 15 }  // stops, checkpointing at step 15
        try first.run { _ in }
        #expect(first.state.step == 15)
        let second = try Trainer(runDirectory: parts, config: config, dataset: dataset, resume: true, force: false)
        #expect(second.state.step == 15)
        try second.run { _ in }
        let a = try Fixtures.deterministicMetrics(whole), b = try Fixtures.deterministicMetrics(parts)
        #expect(a.count == 8)
        #expect(a == b)
    }

    /// `bench` times the step `train` runs: from the same config and data, the same losses.
    @Test(arguments: [WeightMode.binary, .fp, .int4])
    func benchmarkStepsEqualTrainingSteps(mode: WeightMode) throws {
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        var config = Fixtures.tinyRunConfig(mode: mode, steps: 6, vocabSize: dataset.meta.vocabSize)
        config.training.logEvery = 1
        config.training.batchSize = 16
        config.training.microBatchSize = 8  // accumulation too
        let dir = Fixtures.temporaryDirectory("bench-equals-train")
        try Trainer(runDirectory: dir, config: config, dataset: dataset, resume: false, force: false).run { _ in }
        let logged = RunDirectory(dir).readMetrics().compactMap { $0["loss"] as? Double }
        let bench = try Benchmark.training(config: config, steps: 4, warmup: 2, source: .dataset(dataset))
        #expect(logged.count == 6 && bench.losses.count == 6)
        // metrics.jsonl holds the loss as a Float.
        #expect(bench.losses.map { Float($0) } == logged.map { Float($0) }, "\(bench.losses) vs \(logged)")
    }

    /// Two trainers never share a run directory.
    @Test func secondTrainerOnOneDirectoryIsRefused() throws {
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        let config = Fixtures.tinyRunConfig(mode: .binary, steps: 10, vocabSize: dataset.meta.vocabSize)
        let dir = Fixtures.temporaryDirectory("locked")
        let first = try Trainer(runDirectory: dir, config: config, dataset: dataset, resume: false, force: false)
        #expect(throws: BitNetError.file("\(dir.path): another trainer is using this run directory")) {
            try Trainer(runDirectory: dir, config: config, dataset: dataset, resume: true, force: false)
        }
        try first.run { _ in }
        // Finished, it lets the next one in.
        let second = try Trainer(runDirectory: dir, config: config, dataset: dataset, resume: true, force: false)
        #expect(second.state.step == 10)
    }

    /// A run killed before its first checkpoint (a config and some metrics lines, no
    /// checkpoint): a fresh start is refused, and `--resume` starts it again from step 0
    /// with its saved config, dropping the stale metrics (the study's scripts rely on it).
    @Test func resumeBeforeTheFirstCheckpointStartsOver() throws {
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        let config = Fixtures.tinyRunConfig(mode: .binary, steps: 10, vocabSize: dataset.meta.vocabSize)
        let dir = Fixtures.temporaryDirectory("killed-early")
        do {
            let killed = try Trainer(runDirectory: dir, config: config, dataset: dataset, resume: false, force: false)
            killed.directory.unlock()
        }
        let run = RunDirectory(dir)
        try AtomicFile.write(Data("{\"step\":7,\"loss\":5}\n".utf8), to: run.metricsURL)
        #expect(!FileManager.default.fileExists(atPath: run.checkpointURL.path))
        #expect(throws: BitNetError.occupied("\(dir.path): already holds a run")) {
            try Trainer(runDirectory: dir, config: config, dataset: dataset, resume: false, force: false)
        }
        var other = config
        other.training.steps = 99  // ignored: a resumed run keeps its own config
        let resumed = try Trainer(runDirectory: dir, config: other, dataset: dataset, resume: true, force: false)
        #expect(resumed.state.step == 0 && resumed.config.training.steps == 10)
        try resumed.run { _ in }
        #expect(resumed.state.step == 10)
        #expect(run.readMetrics().compactMap { $0["step"] as? Int }.first != 7)
    }

    @Test func interruptedCheckpointWriteKeepsThePreviousCheckpoint() throws {
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        let config = Fixtures.tinyRunConfig(mode: .binary, steps: 40, vocabSize: dataset.meta.vocabSize)
        let dir = Fixtures.temporaryDirectory("interrupted")
        let trainer = try Trainer(runDirectory: dir, config: config, dataset: dataset, resume: false, force: false)
        trainer.failCheckpointWrite = (step: 40, afterBytes: 50_000)
        #expect(throws: BitNetError.self) { try trainer.run { _ in } }
        // The step-20 checkpoint is intact and no temporary file is left behind.
        let (_, _, state) = try Checkpoint.loadModel(runDirectory: dir)
        #expect(state.step == 20)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty)
        // And the run resumes from it to the end.
        let resumed = try Trainer(runDirectory: dir, config: config, dataset: dataset, resume: true, force: false)
        try resumed.run { _ in }
        #expect(resumed.state.step == 40)
    }

    @Test func nonFiniteLossStopsAndKeepsTheLastCheckpoint() throws {
        let dataset = try TokenDataset(directory: Fixtures.shared.data)
        let config = Fixtures.tinyRunConfig(mode: .binary, steps: 40, vocabSize: dataset.meta.vocabSize)
        let dir = Fixtures.temporaryDirectory("nan")
        let trainer = try Trainer(runDirectory: dir, config: config, dataset: dataset, resume: false, force: false)
        trainer.shouldStop = { trainer.state.step >= 20 }
        try trainer.run { _ in }
        // Poison the final norm: every logit becomes NaN.
        let resumed = try Trainer(runDirectory: dir, config: config, dataset: dataset, resume: true, force: false)
        resumed.model.parameters[resumed.model.layout.finalNorm.gain] = .nan
        resumed.model.parametersDidChange()
        var message = ""
        do {
            try resumed.run { _ in }
        } catch {
            message = "\(error)"
        }
        #expect(message.contains("loss became NaN at step 21; the checkpoint of step 20 is kept"), "\(message)")
        let (_, _, state) = try Checkpoint.loadModel(runDirectory: dir)
        #expect(state.step == 20)
    }

    @Test func scheduleWarmsUpDecaysAndDropsInStageTwo() {
        var t = TrainingConfig()
        t.steps = 100
        t.warmupSteps = 10
        t.learningRate = 1e-3
        t.minLearningRateRatio = 0.1
        t.twoStage = true
        t.stage2LearningRateFactor = 0.5
        let s = LearningRateSchedule(config: t, mode: .binary)
        #expect(abs(s.learningRate(at: 0) - 1e-4) < 1e-9)
        #expect(abs(s.learningRate(at: 9) - 1e-3) < 1e-9)
        #expect(s.learningRate(at: 30) < s.learningRate(at: 20))
        #expect(abs(s.learningRate(at: 49) / s.learningRate(at: 50) - 2) < 0.1)  // the stage-two drop
        #expect(s.weightDecay(at: 49) == t.weightDecay && s.weightDecay(at: 50) == 0)
        #expect(abs(s.learningRate(at: 100) - 0.5e-4) < 1e-8)
    }
}
