// `bitnet-train plot`'s reading of a run: x from steps, tokens (batch x context per
// step) or hours; JSON nulls passed over; early steps cut; one line for what is not a
// run; legend names that tell runs apart.
import Foundation
import Testing
@testable import BitNet

@Suite struct TrainingCurvesTests {
    /// A run directory with a tiny config (batch 8 x context 64) and the given metrics lines.
    static func run(_ name: String, metrics: [String]) throws -> URL {
        let url = Fixtures.temporaryDirectory("curves").appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        var config = RunConfig(preset: "tiny", model: try Preset.named("tiny").model, training: try Preset.named("tiny").training)
        config.training.batchSize = 8
        config.model.context = 64
        try AtomicFile.writeJSON(config, to: url.appendingPathComponent("config.json"))
        try AtomicFile.write(Data(metrics.map { $0 + "\n" }.joined().utf8), to: url.appendingPathComponent("metrics.jsonl"))
        return url
    }

    static let lines = [
        #"{"step":10,"loss":7.5,"lr":0.001,"grad_norm":1,"tokens_per_second":100,"elapsed_seconds":360}"#,
        #"{"step":20,"loss":null,"lr":0.001,"grad_norm":1,"tokens_per_second":100,"elapsed_seconds":720}"#,
        #"{"step":30,"loss":6.25,"lr":0.001,"grad_norm":1,"tokens_per_second":100,"elapsed_seconds":1080,"val_loss":6.5}"#,
        "not json",
        #"{"step":40,"loss":6,"lr":0.001,"grad_norm":1,"tokens_per_second":100,"elapsed_seconds":1440,"val_loss":6.75}"#,
    ]

    @Test func pointsOnEachAxis() throws {
        let url = try Self.run("a", metrics: Self.lines)
        let steps = try TrainingCurves.read(run: url, axis: .step)
        #expect(steps.train.map(\.x) == [10, 30, 40] && steps.train.map(\.y) == [7.5, 6.25, 6])
        #expect(steps.validation.map(\.x) == [30, 40] && steps.validation.map(\.y) == [6.5, 6.75])
        #expect(steps.lastStep == 40 && steps.bestValidation?.step == 30 && steps.bestValidation?.loss == 6.5)
        #expect(try TrainingCurves.read(run: url, axis: .tokens).train.map(\.x) == [5120, 15360, 20480])
        #expect(try TrainingCurves.read(run: url, axis: .hours).validation.map(\.x) == [0.3, 0.4])
        #expect(try TrainingCurves.read(run: url, axis: .step, fromStep: 35).train.map(\.x) == [40])

        let svg = TrainingCurves.chart([steps], axis: .step).render()
        #expect(svg.contains("a (val)") && svg.contains("a (train)") && svg.contains("optimizer step"))
        #expect(!TrainingCurves.chart([steps], axis: .step, validationOnly: true).render().contains("a (train)"))
    }

    @Test func whatIsNotARunGetsOneLine() throws {
        let empty = Fixtures.temporaryDirectory("curves-empty")
        #expect(throws: BitNetError.self) { try TrainingCurves.read(run: empty, axis: .step) }
        do {
            _ = try TrainingCurves.read(run: empty, axis: .step)
        } catch {
            #expect("\(error)".contains("no config.json") && !"\(error)".contains("\n"), "\(error)")
        }
        let url = try Self.run("b", metrics: Self.lines)
        do {
            _ = try TrainingCurves.read(run: url, axis: .step, fromStep: 50)
            Issue.record("a run with no steps from 50 on was read")
        } catch {
            #expect("\(error)".contains("metrics.jsonl: no logged steps from step 50"), "\(error)")
        }
        try AtomicFile.write(Data("{".utf8), to: url.appendingPathComponent("config.json"))
        do {
            _ = try TrainingCurves.read(run: url, axis: .step)
            Issue.record("a broken config.json was read")
        } catch {
            #expect("\(error)".contains("config.json: not a run's config"), "\(error)")
        }
    }

    @Test func legendNamesTellRunsApart() {
        #expect(TrainingCurves.shortNames(["runs/x/fp", "runs/x/binary"]) == ["fp", "binary"])
        #expect(TrainingCurves.shortNames(["runs/a/fp", "runs/b/fp/"]) == ["a/fp", "b/fp"])
        #expect(TrainingCurves.shortNames(["fp"]) == ["fp"])
        #expect(TrainingCurves.shortNames(["runs/fp", "runs/fp"]) == ["runs/fp", "runs/fp"])
    }
}
