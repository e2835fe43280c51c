// Data-parallel training under Open MPI's mpirun: two ranks repeat bit for bit, match one
// process to within the reordering of FP32 sums, and refuse a batch they cannot share.
import Foundation
import Testing
@testable import BitNet

@Suite(.serialized) struct DistributedTests {
    static let mpirun = "/usr/bin/mpirun"

    /// `bitnet-train train` for 40 steps on the fixture data, under mpirun with `ranks`
    /// ranks or alone (ranks nil); 1 thread each, as two ranks share this machine.
    static func train(_ out: URL, ranks: Int?, mode: WeightMode, batch: Int = 8, extra: [String] = []) throws -> Fixtures.Output {
        allowRunningAsRoot()
        let arguments = ["train", "--data", Fixtures.shared.data, "--out", out.path, "--preset", "tiny", "--mode", mode.rawValue,
                         "--context", "32", "--steps", "40", "--batch-size", "\(batch)", "--micro-batch-size", "2",
                         "--log-every", "5", "--eval-every", "20", "--eval-windows", "8", "--threads", "1"] + extra
        guard let ranks else { return try Fixtures.run(arguments) }
        return try Fixtures.run(["-np", "\(ranks)", "--oversubscribe", Fixtures.executable.path] + arguments,
                                executable: mpirun)
    }

    /// Open MPI refuses to run as root without these (containers and CI run as root).
    static func allowRunningAsRoot() {
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1)
        setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1)
    }

    /// Two fp runs' logged losses agree within the fp tolerance (the difference printed).
    static func expectFPMatch(_ a: URL, _ b: URL, _ what: String) throws {
        let worst = try largestDifference(a, b)
        print("fp: \(what): largest relative loss difference: \(worst)")
        #expect(worst < cases[0].2)
    }

    /// (loss, val_loss) per logged step.
    static func losses(_ run: URL) throws -> [[Double]] {
        try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n").map { line in
            let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
            return [object["loss"] as? Double ?? .nan, object["val_loss"] as? Double ?? 0]
        }
    }

    /// Tolerances, relative, on every logged training and validation loss over 40 steps.
    /// fp: the gradients are summed in another order, which moves the losses by FP32
    /// rounding (seen: 1e-7). binary: a latent weight at its sign threshold can flip one
    /// way in one run and not the other, and each flip changes the forward pass, so the
    /// runs drift apart; at binary's default rate (3e-3) this tiny model's training is
    /// chaotic enough (gradient-norm spikes past 10) that 40 steps end 3% apart, so the
    /// check runs at 5e-4, where the drift stays near 5e-4.
    /// int4: as binary, a weight's rounding can go either way (seen 1.3e-4). Its input
    /// steps start from the first micro-batch, which under two ranks only rank 0 computes;
    /// rank 1 runs that forward too, for the steps. Without it the ranks' weights part and
    /// the losses end 1.5e-3 apart, which the tolerance of 5e-4 catches (checked).
    static let cases: [(WeightMode, [String], Double)] = [(.fp, [], 1e-5), (.binary, ["--lr", "5e-4"], 2e-3),
                                                           (.int4, ["--lr", "5e-4"], 5e-4)]

    @Test(arguments: [0, 1, 2])
    func twoRanksMatchOneProcessAndRepeatExactly(index: Int) throws {
        let (mode, extra, tolerance) = Self.cases[index]
        let one = Fixtures.temporaryDirectory("one"), two = Fixtures.temporaryDirectory("two"),
            again = Fixtures.temporaryDirectory("again"), single = Fixtures.temporaryDirectory("single")
        for (dir, ranks) in [(one, nil), (two, 2), (again, 2), (single, 1)] as [(URL, Int?)] {
            let out = try Self.train(dir, ranks: ranks, mode: mode, extra: extra)
            #expect(out.status == 0, "\(ranks ?? 1) ranks: \(out.stderr.suffix(1500))")
        }
        // One rank under mpirun computes exactly what one process does.
        #expect(try Fixtures.deterministicMetrics(one) == Fixtures.deterministicMetrics(single))
        // The same ranks again: the same numbers and the same weights, bit for bit.
        #expect(try Fixtures.deterministicMetrics(two) == Fixtures.deterministicMetrics(again))
        let a = try SafeTensorsFile(url: two.appendingPathComponent("checkpoint.safetensors"))
        let b = try SafeTensorsFile(url: again.appendingPathComponent("checkpoint.safetensors"))
        #expect(a.tensors.keys.sorted() == b.tensors.keys.sorted())
        for (name, tensor) in a.tensors {
            #expect(a.data[tensor.range] == b.tensors[name].map { b.data[$0.range] }, "\(name)")
        }
        // Against one process, within the stated tolerance.
        let worst = try Self.largestDifference(one, two)
        print("\(mode.rawValue): 2 ranks against 1 process, largest relative loss difference over 40 steps: \(worst)")
        #expect(worst < tolerance)
    }

    /// The largest relative difference between two runs' logged losses (both logged the
    /// same 8 steps).
    static func largestDifference(_ a: URL, _ b: URL) throws -> Double {
        let (x, y) = (try losses(a), try losses(b))
        #expect(x.count == y.count && x.count >= 8, "\(x.count) and \(y.count) logged steps")
        var worst = 0.0
        for (p, q) in zip(x, y) {
            for (u, v) in zip(p, q) where u != 0 { worst = max(worst, abs(u - v) / abs(u)) }
        }
        return worst
    }

    /// ZeRO-1 (`--zero 1`): the same training as the unsharded two ranks within the
    /// tolerance of summing in another order (here the gradient norm, summed per shard),
    /// bit for bit again when repeated, and half the AdamW moments per rank.
    @Test(arguments: [0, 1])
    func shardedOptimizerMatchesTheUnshardedRun(index: Int) throws {
        let (mode, extra, tolerance) = Self.cases[index]
        let plain = Fixtures.temporaryDirectory("plain"), zero = Fixtures.temporaryDirectory("zero"),
            again = Fixtures.temporaryDirectory("zero-again")
        var banners: [String] = []
        for (dir, more) in [(plain, []), (zero, ["--zero", "1"]), (again, ["--zero", "1"])] as [(URL, [String])] {
            let out = try Self.train(dir, ranks: 2, mode: mode, extra: extra + more)
            #expect(out.status == 0, "\(out.stderr.suffix(1500))")
            banners.append(out.stderr)
        }
        #expect(try Fixtures.deterministicMetrics(zero) == Fixtures.deterministicMetrics(again))
        let worst = try Self.largestDifference(plain, zero)
        print("\(mode.rawValue): ZeRO-1 against unsharded (2 ranks), largest relative loss difference over 40 steps: \(worst)")
        #expect(worst < tolerance)
        // The banner's AdamW moments per rank: half, up to the pieces' rounding to 16 floats.
        let moments = banners.map { text -> Double in
            let after = text.components(separatedBy: "AdamW moments ").dropFirst().first ?? ""
            return Double(after.prefix { $0 != " " }) ?? .nan
        }
        #expect(banners[1].contains("per rank, ZeRO-1 over 2 ranks"), "\(banners[1].prefix(800))")
        #expect(abs(moments[1] / moments[0] - 0.5) < 0.02, "AdamW moments (MB): \(moments)")
    }

    /// Every rank's pieces of every bucket tile it, each rank keeps about 1/N of the
    /// parameters, and pieces start on 64-byte lines.
    @Test(arguments: [2, 3, 7])
    func shardsTileTheParameters(ranks: Int) {
        var c = ModelConfig()
        (c.layers, c.dim, c.heads, c.ffnDim, c.tiedEmbeddings) = (3, 48, 4, 96, false)
        let layout = ParameterLayout(config: c)
        var covered = 0
        for bucket in GradientExchange.buckets(layout) {
            let bounds = GradientExchange.pieceBounds(count: bucket.count, ranks: ranks)
            #expect(bounds.first == 0 && bounds.last == bucket.count && zip(bounds, bounds.dropFirst()).allSatisfy { $0 <= $1 })
            #expect(bounds.dropLast().allSatisfy { $0 % 16 == 0 })
            covered += bucket.count
        }
        #expect(covered == layout.totalCount)
        let largest = GradientExchange.largestShard(layout: layout, ranks: ranks)
        #expect(largest >= layout.totalCount / ranks && largest <= layout.totalCount / ranks + 16 * (c.layers + 2))
    }

    @Test func aBatchTheRanksCannotShareIsRefused() throws {
        let out = try Self.train(Fixtures.temporaryDirectory("refused"), ranks: 2, mode: .fp, batch: 2)
        #expect(out.status != 0)
        #expect(out.stderr.contains("--batch-size (2) must be a multiple of the 2 ranks x micro_batch_size (2)"))
    }

    /// Two-rank job in `out` (fresh, or `--resume`): `steps` steps of the tiny preset.
    static func twoRanks(_ out: URL, resume: Bool = false, mode: WeightMode, steps: Int, checkpointEvery: Int,
                         extra: [String] = []) -> [String] {
        ["-np", "2", "--oversubscribe", Fixtures.executable.path, "train", "--data", Fixtures.shared.data, "--out", out.path]
            + (resume ? ["--resume"] : ["--preset", "tiny", "--mode", mode.rawValue, "--context", "32", "--steps", "\(steps)",
                                        "--batch-size", "8", "--micro-batch-size", "2", "--log-every", "25",
                                        "--eval-every", "100", "--eval-windows", "4", "--checkpoint-every", "\(checkpointEvery)"])
            + ["--threads", "1"] + extra
    }

    /// Runs the job whole, then again, calling `interrupt(mpirun's ranks)` once `ready`
    /// holds for its directory; returns the interrupted job's output and the seconds it
    /// took to end (a job still running after 60 s is killed and fails the test: a hang),
    /// after checking that resuming it reaches the whole run's numbers exactly. `extra`:
    /// options for both jobs (the resumed one too). `alsoResumeAlone`: a copy of the
    /// interrupted run is resumed by one process, without mpirun, and returned.
    static func interruptAndResume(mode: WeightMode, steps: Int, checkpointEvery: Int, extra: [String] = [],
                                   alsoResumeAlone: Bool = false, ready: (URL) -> Bool,
                                   interrupt: ([Int32]) -> Void) throws -> (Fixtures.Output, seconds: Double, whole: URL, alone: URL?) {
        allowRunningAsRoot()
        let whole = Fixtures.temporaryDirectory("whole"), cut = Fixtures.temporaryDirectory("cut")
        let arguments = { (out: URL, resume: Bool) in
            twoRanks(out, resume: resume, mode: mode, steps: steps, checkpointEvery: checkpointEvery, extra: extra)
        }
        #expect(try Fixtures.run(arguments(whole, false), executable: mpirun).status == 0)
        let job = try Fixtures.launch(arguments(cut, false), executable: mpirun)
        let deadline = Date().addingTimeInterval(120)
        while !ready(cut) && Date() < deadline { usleep(20_000) }
        let ranks = try Fixtures.run(["-P", "\(job.process.processIdentifier)"], executable: "/usr/bin/pgrep").stdout
            .split(separator: "\n").compactMap { Int32($0) }
        #expect(ranks.count == 2, "mpirun's ranks: \(ranks)")
        interrupt(ranks)
        let interrupted = Date()
        while job.process.isRunning && Date().timeIntervalSince(interrupted) < 60 { usleep(20_000) }
        let seconds = Date().timeIntervalSince(interrupted)
        if job.process.isRunning { kill(job.process.processIdentifier, SIGKILL) }
        #expect(seconds < 60, "the job was still running 60 s after the interruption")
        let out = try job.finish()
        var alone: URL?
        if alsoResumeAlone {
            let copy = Fixtures.temporaryDirectory("alone").appendingPathComponent("run")
            try FileManager.default.copyItem(at: cut, to: copy)
            let resumed = try Fixtures.run(["train", "--data", Fixtures.shared.data, "--out", copy.path, "--resume"])
            #expect(resumed.status == 0, "\(resumed.stderr.suffix(1500))")
            alone = copy
        }
        let resumed = try Fixtures.run(arguments(cut, true), executable: mpirun)
        #expect(resumed.status == 0, "\(resumed.stderr.suffix(1500))")
        #expect(try Fixtures.deterministicMetrics(cut) == Fixtures.deterministicMetrics(whole))
        return (out, seconds, whole, alone)
    }

    /// A rank killed with SIGKILL ends the job (non-zero, mpirun names the rank; no hang),
    /// the last checkpoint is whole, and resuming it with two ranks reaches the numbers of
    /// an uninterrupted two-rank run exactly.
    @Test func aKilledRankEndsTheJobAndTheRunResumes() throws {
        let (out, seconds, _, _) = try Self.interruptAndResume(mode: .fp, steps: 300, checkpointEvery: 50, ready: {
            FileManager.default.fileExists(atPath: $0.appendingPathComponent("checkpoint.safetensors").path)
        }, interrupt: { ranks in
            if let rank = ranks.last { kill(rank, SIGKILL) }
        })
        print("a killed rank: the job ended \(seconds) s later")
        #expect(out.status != 0)
        #expect(out.stderr.contains("exited on signal 9"), "\(out.stderr.suffix(1500))")
    }

    /// The buckets of the gradient sum (the embedding, each block, the rest) tile the
    /// parameters exactly: every gradient is summed once.
    @Test(arguments: [WeightMode.fp, .binary, .int4])
    func bucketsCoverEveryParameterOnce(mode: WeightMode) {
        var c = ModelConfig()
        (c.mode, c.layers, c.dim, c.heads, c.ffnDim, c.tiedEmbeddings, c.layout, c.kvHeads) = (mode, 3, 32, 4, 64, false, .b158, 2)
        let layout = ParameterLayout(config: c)
        let blocks = (0..<c.layers).map { layout.range(ofLayer: $0) }
        #expect(blocks.first?.lowerBound == layout.tensor(named: "layers.0.attention_norm.weight")?.offset)
        #expect(zip(blocks, blocks.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
        #expect(blocks.last?.upperBound == layout.tensor(named: "final_norm.weight")?.offset)
        #expect(layout.tensors.allSatisfy { t in
            t.name.hasPrefix("layers.") ? blocks.contains { $0.contains(t.offset) && $0.contains(t.offset + t.count - 1) }
                : blocks.allSatisfy { !$0.contains(t.offset) }
        })
    }

    /// Ctrl-C at mpirun makes mpirun send every rank a SIGTERM (seen from a shell; a
    /// signal sent to mpirun from inside this test process has no effect, so the test sends
    /// the ranks that SIGTERM itself): every rank finishes its step, rank 0 checkpoints,
    /// and resuming reaches the uninterrupted run's numbers exactly.
    @Test func aTerminatedJobCheckpointsAndResumes() throws {
        let (out, _, _, _) = try Self.interruptAndResume(mode: .binary, steps: 800, checkpointEvery: 1000, ready: {
            ((try? Data(contentsOf: $0.appendingPathComponent("metrics.jsonl")))?.count ?? 0) > 0
        }, interrupt: { ranks in
            for rank in ranks { kill(rank, SIGTERM) }
        })
        #expect(out.status != 0)
        #expect(out.stderr.contains("checkpoint saved at step"), "\(out.stderr.suffix(1500))")
    }

    /// Under ZeRO-1 the checkpoint still holds every moment: a terminated sharded job
    /// resumes on two ranks to the uninterrupted job's numbers exactly, and on one process
    /// (no mpirun) within the tolerance of summing in another order.
    @Test func aShardedCheckpointResumesOnAnyNumberOfRanks() throws {
        let (_, _, whole, alone) = try Self.interruptAndResume(mode: .fp, steps: 300, checkpointEvery: 1000, extra: ["--zero", "1"],
                                                        alsoResumeAlone: true, ready: {
            ((try? Data(contentsOf: $0.appendingPathComponent("metrics.jsonl")))?.count ?? 0) > 0
        }, interrupt: { ranks in
            for rank in ranks { kill(rank, SIGTERM) }
        })
        let copy = try #require(alone)
        let file = try SafeTensorsFile(url: copy.appendingPathComponent("checkpoint.safetensors"))
        #expect(file.tensors.keys.contains("optimizer.v.embedding.weight"))
        try Self.expectFPMatch(whole, copy, "ZeRO-1 on 2 ranks, resumed on one process")
    }

    /// The other way round: a run checkpointed by one process (terminated part way)
    /// resumes on two ranks, to within the fp tolerance of the uninterrupted process.
    @Test func aOneProcessCheckpointResumesOnTwoRanks() throws {
        Self.allowRunningAsRoot()
        let whole = Fixtures.temporaryDirectory("alone-whole"), cut = Fixtures.temporaryDirectory("alone-cut")
        let arguments = { (out: URL) in
            ["train", "--data", Fixtures.shared.data, "--out", out.path, "--preset", "tiny", "--mode", "fp", "--context", "32",
             "--steps", "300", "--batch-size", "8", "--micro-batch-size", "2", "--log-every", "25", "--eval-every", "100",
             "--eval-windows", "4", "--checkpoint-every", "1000", "--threads", "1"]
        }
        #expect(try Fixtures.run(arguments(whole)).status == 0)
        let job = try Fixtures.launch(arguments(cut))
        let metrics = cut.appendingPathComponent("metrics.jsonl")
        let deadline = Date().addingTimeInterval(120)
        while ((try? Data(contentsOf: metrics))?.count ?? 0) == 0 && Date() < deadline { usleep(20_000) }
        kill(job.process.processIdentifier, SIGTERM)
        let out = try job.finish()
        #expect(out.status == 143 && out.stderr.contains("checkpoint saved at step"), "\(out.stderr.suffix(800))")
        let resumed = try Fixtures.run(["-np", "2", "--oversubscribe", Fixtures.executable.path, "train", "--data", Fixtures.shared.data,
                                        "--out", cut.path, "--resume", "--threads", "1"], executable: Self.mpirun)
        #expect(resumed.status == 0, "\(resumed.stderr.suffix(1500))")
        try Self.expectFPMatch(whole, cut, "one process resumed on 2 ranks")
    }

    /// A hostfile that does not exist: mpirun itself says so in its first lines and exits
    /// non-zero at once; no rank starts.
    @Test func aMissingHostfileFailsAtOnce() throws {
        Self.allowRunningAsRoot()
        let started = Date()
        let out = try Fixtures.run(["-np", "2", "--hostfile", "/nonexistent/hosts", Fixtures.executable.path, "train", "--data",
                                    Fixtures.shared.data, "--out", Fixtures.temporaryDirectory("no-hosts").path], executable: Self.mpirun)
        #expect(out.status != 0)
        #expect(out.stderr.contains("unable to open the hostfile") && out.stderr.contains("/nonexistent/hosts"), "\(out.stderr)")
        #expect(Date().timeIntervalSince(started) < 30)
    }

    /// The alpha-beta fit recovers a known latency and bandwidth, and `bench --allreduce`
    /// under mpirun measures every size and prints the fit.
    @Test func allReduceBenchmarkAndFit() throws {
        let points = stride(from: 12, through: 26, by: 2).map { k in
            AllReduceBenchmark.Point(bytes: 1 << k, seconds: 20e-6 + Double(1 << k) * 0.5e-9)
        }
        let fit = try #require(AllReduceBenchmark.fit(points))
        #expect(abs(fit.alpha - 20e-6) < 1e-9 && abs(fit.beta - 0.5e-9) < 1e-14, "\(fit)")
        // Times whose free line would start below zero: alpha 0, beta the weighted slope
        // (the 1 Gb/s link measured 0.12 GB/s up to 4 MiB, half that beyond).
        let bent = [AllReduceBenchmark.Point(bytes: 1 << 20, seconds: 8e-3), AllReduceBenchmark.Point(bytes: 1 << 24, seconds: 0.28)]
        let clamped = try #require(AllReduceBenchmark.fit(bent))
        #expect(clamped.alpha == 0 && clamped.beta > 8e-3 / Double(1 << 20) && clamped.beta < 0.28 / Double(1 << 24), "\(clamped)")
        Self.allowRunningAsRoot()
        let out = try Fixtures.run(["-np", "2", "--oversubscribe", Fixtures.executable.path, "bench", "--allreduce"],
                                   executable: Self.mpirun)
        #expect(out.status == 0, "\(out.stderr.suffix(1500))")
        let lines = out.stdout.split(separator: "\n")
        #expect(lines.filter { $0.contains(" bytes: ") }.count == 8 && lines.last?.hasPrefix("fit: alpha") == true, "\(out.stdout)")
    }
}
