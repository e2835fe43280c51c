// bitnet-run: generate text from a packed MODEL.bitnet with the add-only runtime.
// stdout carries only the text (the prompt followed by the continuation).
import ArgumentParser
import BitNetRuntime
import Foundation

func log(_ message: String) { FileHandle.standardError.write(Data((message + "\n").utf8)) }

@main
struct BitNetRun: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bitnet-run", abstract: "Generate text from a packed 1-bit model (see docs/FORMAT.md).")

    @Argument(help: "Model file made by 'bitnet-train export'.") var model: String
    @Option(help: "Text to continue.") var prompt: String?
    @Option(help: "Tokens to generate at most.") var maxTokens: Int = 200
    @Option(help: "Sampling temperature; 0 is greedy.") var temperature: Float = 0.8
    @Option(help: "Sample from the k most likely tokens (0: all).") var topK: Int = 40
    @Option(help: "Sample from the smallest set of tokens whose probability reaches p (1: all).") var topP: Float = 1
    @Option(help: "Random seed.") var seed: UInt64 = 0

    func validate() throws {
        if maxTokens <= 0 { throw ValidationError("--max-tokens must be positive, got \(maxTokens)") }
        if !(temperature >= 0 && temperature.isFinite) { throw ValidationError("--temperature must be >= 0, got \(temperature)") }
        if topK < 0 { throw ValidationError("--top-k must be >= 0, got \(topK)") }
        if !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1], got \(topP)") }
    }

    func run() throws {
        do {
            let m = try Model(path: model)
            guard let prompt else {
                log("bitnet-run: error: give --prompt TEXT (the interactive mode is not built yet)")
                throw ExitCode(1)
            }
            var ids = m.tokenizer.encode(prompt)
            // Documents are separated by end-of-sequence, so it starts an empty prompt.
            if ids.isEmpty { ids = [max(m.tokenizer.eosID, 0)] }
            guard ids.count <= m.config.context else {
                log("bitnet-run: error: --prompt is \(ids.count) tokens, longer than the context of \(m.config.context)")
                throw ExitCode(1)
            }
            let out = FileHandle.standardOutput
            out.write(Data(prompt.utf8))
            let promptIDs = prompt.isEmpty ? [] : ids
            var printed = Array(m.tokenizer.decode(promptIDs).utf8).count
            var generated: [Int32] = []
            let stop = Generator.generate(model: m, prompt: ids, maxTokens: maxTokens,
                                          settings: SamplingSettings(temperature: temperature, topK: topK, topP: topP, seed: seed)) { token in
                generated.append(token)
                // Print what is new once it is whole UTF-8.
                let text = m.tokenizer.decode(promptIDs + generated)
                guard !text.hasSuffix("\u{FFFD}") else { return }
                let bytes = Array(text.utf8)
                if bytes.count > printed {
                    out.write(Data(bytes[printed...]))
                    printed = bytes.count
                }
            }
            out.write(Data("\n".utf8))
            log("[\(generated.count) tokens; stopped at \(stop.rawValue)]")
        } catch let error as ExitCode {
            throw error
        } catch {
            log("bitnet-run: error: \(error)")
            throw ExitCode(1)
        }
    }
}
