// A ternary model trained here in the b1.58 layout with grouped-query attention, exported
// to GGUF, against llama.cpp itself (llama-cpp-python, installed from PyPI and built from
// source by scripts/llama-cpp-env.sh, cached after the first run): the file loads, the
// tokenization of test prompts is ours, logits match bitnet-run's within a derived
// tolerance, greedy continuations agree, and perplexity on unseen text within 1%.
import Foundation
import Testing
@testable import BitNet
import BitNetRuntime

@Suite(.serialized) struct LlamaCppParityTests {
    /// A trained model (dim and ffn_dim multiples of 256, as the ternary blocks need).
    static let run: URL = {
        let dir = Fixtures.temporaryDirectory("gguf-run")
        let result = try? Fixtures.run([
            "train", "--data", Fixtures.shared.data, "--out", dir.path, "--preset", "tiny", "--mode", "ternary",
            "--layout", "b1.58", "--dim", "256", "--layers", "2", "--heads", "4", "--kv-heads", "2", "--ffn-dim", "512",
            "--context", "64", "--steps", "150", "--batch-size", "8", "--micro-batch-size", "8", "--eval-every", "150",
        ])
        if result?.status != 0 { print("training failed: \(result?.stderr ?? "")") }
        return dir
    }()

    /// The Python with llama.cpp (installing it on first use).
    static func python() throws -> String {
        let out = try Fixtures.run([Fixtures.repositoryRoot.appendingPathComponent("scripts/llama-cpp-env.sh").path],
                                   executable: "/bin/bash")
        guard out.status == 0 else { throw BitNetError.invalid("scripts/llama-cpp-env.sh failed: \(out.stderr)") }
        return out.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// llama.cpp's answer to `request` (scripts/llama-cpp-reference.py).
    static func llamaCpp(_ request: [String: Any]) throws -> [String: Any] {
        let input = try JSONSerialization.data(withJSONObject: request)
        let out = try Fixtures.run([Fixtures.repositoryRoot.appendingPathComponent("scripts/llama-cpp-reference.py").path],
                                   executable: try python(), input: input)
        guard out.status == 0, let answer = try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any] else {
            throw BitNetError.invalid("llama-cpp-reference.py failed: \(out.stderr.suffix(2000))")
        }
        return answer
    }

    static func export(_ type: String) throws -> URL {
        let url = Fixtures.temporaryDirectory("gguf").appendingPathComponent("m-\(type).\(type == "packed" ? "bitnet" : "gguf")")
        let arguments = type == "packed" ? ["export", run.path, "--f16", "--out", url.path]
            : ["export", run.path, "--format", "gguf", "--type", type, "--out", url.path]
        let out = try Fixtures.run(arguments)
        guard out.status == 0 else { throw BitNetError.invalid("export \(type) failed: \(out.stderr)") }
        return url
    }

    static let prompts = ["the king doth love", " my lord, hath slain\nthe sea.", "Ünïcödé, 123 and £!", "  two  spaces",
                          "sweet lady will speak to our land"]

    /// Logits of every position of `tokens` from bitnet-run's model.
    static func runtimeLogits(_ model: BitNetRuntime.Model, _ tokens: [Int32]) -> [[Float]] {
        tokens.enumerated().map { model.forward(token: $1, pos: $0) }
    }

    @Test func tq2_0MatchesBitNetRun() throws {
        let gguf = try Self.export("tq2_0"), packed = try Self.export("packed")
        let runtime = try BitNetRuntime.Model(path: packed.path, threads: 2, kvCache: .f16)
        let ours = Self.prompts.map { runtime.tokenizer.encode($0) }
        let prompt = ours[0] + ours[4]
        var greedyOurs: [Int32] = [], sequence = prompt
        for _ in 0..<16 {
            let next = Int32(Self.runtimeLogits(runtime, sequence).last!.enumerated().max { $0.element < $1.element }!.offset)
            greedyOurs.append(next)
            sequence.append(next)
        }
        // Unseen text in windows of the model's context.
        let text = Fixtures.corpusText(lines: 120, seed: 99)
        let validation = runtime.tokenizer.encode(text)
        let windows = stride(from: 0, to: validation.count - 64, by: 64).prefix(8).map { Array(validation[$0..<$0 + 64]) }

        let answer = try Self.llamaCpp([
            "model": gguf.path, "context": 64, "threads": 2, "tokenize": Self.prompts, "logits": prompt.map(Int.init),
            "greedy": ["prompt": prompt.map(Int.init), "steps": 16], "windows": windows.map { $0.map(Int.init) },
        ])
        let types = answer["tensor_types"] as? [String: String] ?? [:]
        #expect(types["blk.0.attn_q.weight"] == "TQ2_0" && types["token_embd.weight"] == "F16", "\(types)")

        // Tokenization: llama.cpp's SentencePiece tokenizer on our vocabulary gives our ids.
        let theirs = (answer["tokens"] as? [[Int]] ?? []).map { $0.map(Int32.init) }
        #expect(theirs == ours, "llama.cpp \(theirs) vs ours \(ours)")

        // Logits at every position, both with FP32 attention (FP32 KV caches, no flash
        // attention), against the Float64 reference computing each program's rounding rules.
        let exactAnswer = try Self.llamaCpp(["model": gguf.path, "context": 64, "threads": 2, "exact_attention": true,
                                             "logits": prompt.map(Int.init)])
        let llamaLogits = exactAnswer["logits"] as? [[Double]] ?? []
        let ourLogits = Self.runtimeLogits(try BitNetRuntime.Model(path: packed.path, threads: 2, kvCache: .f32), prompt)
            .map { $0.map { Double($0) } }
        let (trained, _, _) = try Checkpoint.loadModel(runDirectory: Self.run, batch: 1)
        var reference = ReferenceModel(model: trained)
        reference.rules.embeddingInFloat16 = true  // the packed file's embedding, as exported with --f16
        let (referenceOurs, oursRounding) = reference.logits(tokens: prompt, t: prompt.count)
        reference.rules = .llamaCpp
        let (referenceLlama, llamaRounding) = reference.logits(tokens: prompt, t: prompt.count)
        func largest(_ a: [[Double]], _ b: [[Double]], rows: Int = .max) -> Double {
            guard a.count == b.count else { return .infinity }
            return zip(a, b).prefix(rows).map { zip($0, $1).map { abs($0 - $1) }.max() ?? .infinity }.max() ?? 0
        }
        // An activation within 1e-5 of a rounding tie (in quantization steps; FP32's own
        // error there is about 1e-5) may round the other way in a program than in the
        // Float64 reference: one step apart, which attention then carries to every later
        // position. Each program is held to its rules exactly before its first such tie.
        func firstTie(_ rounding: ReferenceModel.Offsets) -> Int {
            (0..<prompt.count).first { (rounding.nearestTie[$0] ?? 1) < 1e-5 } ?? prompt.count
        }
        let (runtimeError, llamaError, rules) = (largest(ourLogits, referenceOurs, rows: firstTie(oursRounding)),
                                                 largest(llamaLogits, referenceLlama, rows: firstTie(llamaRounding)),
                                                 largest(referenceOurs, referenceLlama))
        let (runtimeAll, llamaAll) = (largest(ourLogits, referenceOurs), largest(llamaLogits, referenceLlama))
        let between = largest(llamaLogits, ourLogits)
        print("largest logit differences: bitnet-run vs its rules \(runtimeError) before position \(firstTie(oursRounding)) "
              + "(\(runtimeAll) at all \(prompt.count)), llama.cpp vs its rules \(llamaError) before \(firstTie(llamaRounding)) "
              + "(\(llamaAll)), the two rule sets \(rules), llama.cpp vs bitnet-run \(between)")
        // The tolerance: each program computes its own rules to float precision (FP32 sums
        // in another order than the Float64 reference: 1e-3 is ~20x what either shows); a
        // flipped rounding costs a quantization step (0.1 bounds it here); and the two
        // programs differ by at most what their rules differ by plus each one's error.
        #expect(runtimeError < 1e-3 && llamaError < 1e-3)
        #expect(runtimeAll < 0.1 && llamaAll < 0.1)
        #expect(between <= rules + runtimeAll + llamaAll + 2e-3)
        // The ternary types hold the same codes and scales: TQ1_0 computes what TQ2_0 does.
        let tq1 = try Self.llamaCpp(["model": try Self.export("tq1_0").path, "context": 64, "threads": 2,
                                     "exact_attention": true, "logits": prompt.map(Int.init)])
        #expect(largest(tq1["logits"] as? [[Double]] ?? [], llamaLogits) == 0)

        // Greedy continuations.
        let greedyTheirs = (answer["greedy"] as? [Int] ?? []).map(Int32.init)
        let agree = zip(greedyTheirs, greedyOurs).prefix { $0 == $1 }.count
        print("greedy: llama.cpp \(greedyTheirs), ours \(greedyOurs): first \(agree) agree")
        #expect(greedyTheirs.count == 16 && Set(greedyOurs).count > 3)
        // Where they part, the two choices were a near-tie in our logits: closer than twice
        // what the programs' logits differ by on the prompt.
        if agree < 16 {
            let step = Self.runtimeLogits(runtime, prompt + greedyOurs.prefix(agree)).last!
            let gap = Double(step[Int(greedyOurs[agree])] - step[Int(greedyTheirs[agree])])
            print("greedy parts at step \(agree): our logit for llama.cpp's token is \(gap) below our choice")
            #expect(gap >= 0 && gap <= 2 * between + 2e-3, "gap \(gap), between \(between)")
        }

        // Perplexity on unseen text.
        let nll = answer["window_nll"] as? [Double] ?? [], counts = answer["window_count"] as? [Int] ?? []
        let llamaPerplexity = exp(nll.reduce(0, +) / Double(counts.reduce(0, +)))
        var ourNLL = 0.0, ourCount = 0
        for window in windows {
            let logits = Self.runtimeLogits(runtime, Array(window.dropLast()))
            for (i, row) in logits.enumerated() {
                let m = row.max()!, z = row.reduce(0.0) { $0 + exp(Double($1 - m)) }
                ourNLL -= Double(row[Int(window[i + 1])] - m) - log(z)
                ourCount += 1
            }
        }
        let ourPerplexity = exp(ourNLL / Double(ourCount))
        print("perplexity over \(ourCount) tokens: llama.cpp \(llamaPerplexity), bitnet-run \(ourPerplexity)")
        #expect(abs(llamaPerplexity / ourPerplexity - 1) < 0.01)
    }
}
