// GGUF export without llama.cpp: the ternary block encodings against hand-computed bytes
// and their decoder, the container's layout, and the runs export refuses (one line each).
// LlamaCppParityTests checks the files against llama.cpp and the gguf package's reader.
import Foundation
import Testing
@testable import BitNet

@Suite struct GGUFTests {
    @Test func ternaryBlocksRoundTripAndMatchHandComputedBytes() {
        var rng = Xoshiro256(seed: 3)
        let codes = (0..<1024).map { _ in Int8(rng.below(3)) - 1 }
        for type in [GGMLType.tq2_0, .tq1_0] {
            let bytes = codes.withUnsafeBufferPointer {
                type == .tq2_0 ? TernaryBlocks.tq2_0($0.baseAddress!, count: 1024, scale: 0.0123)
                    : TernaryBlocks.tq1_0($0.baseAddress!, count: 1024, scale: 0.0123)
            }
            #expect(bytes.count == 4 * type.block.bytes)
            let (decoded, scales) = TernaryBlocks.decode(bytes, type: type)
            #expect(decoded == codes, "\(type)")
            #expect(scales == Array(repeating: Float(Float16(0.0123)), count: 4))
        }
        // All zeros (digit 1 everywhere): TQ2_0 bytes are 01 01 01 01 = 0x55; TQ1_0 bytes hold
        // 11111 in base 3 = 121 -> ceil(121 * 256 / 243) = 128, and the four-digit bytes
        // 1111 then a 0 digit = 120 -> ceil(120 * 256 / 243) = 127.
        let zeros = [Int8](repeating: 0, count: 256)
        let tq2 = zeros.withUnsafeBufferPointer { TernaryBlocks.tq2_0($0.baseAddress!, count: 256, scale: 1) }
        #expect(tq2[0..<64].allSatisfy { $0 == 0x55 } && tq2[64...] == [0x00, 0x3C])  // FP16 1.0 = 0x3C00
        let tq1 = zeros.withUnsafeBufferPointer { TernaryBlocks.tq1_0($0.baseAddress!, count: 256, scale: 1) }
        #expect(tq1[0..<48].allSatisfy { $0 == 128 } && tq1[48..<52].allSatisfy { $0 == 127 })
        // Weight 0 is the most significant digit of byte 0: +1 there (digit 2) gives
        // 2*81 + 40 = 202 -> ceil(202 * 256 / 243) = 213.
        var first = zeros
        first[0] = 1
        let one = first.withUnsafeBufferPointer { TernaryBlocks.tq1_0($0.baseAddress!, count: 256, scale: 1) }
        #expect(one[0] == 213)
    }

    @Test func containerLayout() throws {
        let url = Fixtures.temporaryDirectory("gguf-container").appendingPathComponent("t.gguf")
        let tensor = GGUFTensor(name: "a", dimensions: [3, 2], type: .f32, data: Data(count: 24))
        try GGUF.write(metadata: [("general.architecture", .string("bitnet")), ("x.count", .uint32(7))],
                       tensors: [tensor, GGUFTensor(name: "b", dimensions: [5], type: .f16, data: Data(count: 10))], to: url)
        let bytes = [UInt8](try Data(contentsOf: url))
        func u64(_ at: Int) -> UInt64 { (0..<8).reduce(0) { $0 | UInt64(bytes[at + $1]) << (8 * $1) } }
        #expect(Array(bytes[0..<4]) == Array("GGUF".utf8) && bytes[4] == 3)
        #expect(u64(8) == 2 && u64(16) == 2)  // tensors, key-values
        // Data starts aligned; tensor b starts 32 bytes after a (24 padded); the file ends
        // with b's 10 bytes padded to 32.
        #expect(bytes.count % 32 == 0)
        let dataStart = bytes.count - 64
        #expect(dataStart % 32 == 0 && bytes[dataStart...].allSatisfy { $0 == 0 })
        #expect(throws: BitNetError.self) {
            try GGUF.write(metadata: [], tensors: [GGUFTensor(name: "bad", dimensions: [256], type: .tq2_0, data: Data(count: 65))],
                           to: url.deletingLastPathComponent().appendingPathComponent("bad.gguf"))
        }
        #expect(!FileManager.default.fileExists(atPath: url.deletingLastPathComponent().appendingPathComponent("bad.gguf").path))
    }

    @Test func exportRefusesWhatLlamaCppCannotRun() {
        var c = ModelConfig()
        (c.dim, c.ffnDim, c.heads, c.mode, c.layout) = (256, 512, 4, .ternary, .b158)
        #expect(GGUFExport.problem(c, type: .tq2_0) == nil)
        var wrong = c
        wrong.layout = .bitnet
        #expect(GGUFExport.problem(wrong, type: .tq2_0)?.contains("--layout b1.58") == true)
        wrong = c
        wrong.mode = .fp
        #expect(GGUFExport.problem(wrong, type: .f16)?.contains("this run is fp") == true)
        wrong = c
        wrong.tiedEmbeddings = false
        #expect(GGUFExport.problem(wrong, type: .tq2_0)?.contains("untied") == true)
        wrong = c
        wrong.ffnDim = 704
        #expect(GGUFExport.problem(wrong, type: .tq2_0)?.contains("multiples of 256") == true)
        #expect(GGUFExport.problem(wrong, type: .f16) == nil)
        wrong = c
        wrong.ffnActivation = .relu2
        wrong.activationRange = .auto
        #expect(GGUFExport.problem(wrong, type: .tq2_0) != nil)
    }

    @Test func everyTensorHasALlamaCppName() {
        var c = ModelConfig()
        (c.dim, c.ffnDim, c.heads, c.layers, c.mode, c.layout, c.kvHeads) = (64, 128, 4, 2, .ternary, .b158, 2)
        let names = ParameterLayout(config: c).tensors.map { GGUFExport.llamaName(of: $0.name) }
        #expect(!names.contains(nil))
        #expect(Set(names.compactMap { $0 }) == Set(["token_embd.weight", "output_norm.weight"] + (0..<2).flatMap { l in
            ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "attn_sub_norm", "ffn_norm", "ffn_up", "ffn_gate",
             "ffn_down", "ffn_sub_norm"].map { "blk.\(l).\($0).weight" }
        }))
    }
}
