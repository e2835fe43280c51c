// The arithmetic-energy estimate of the BitNet paper (section 2.3, Table 2): the
// projections' matrix products for one token, as multiply-adds in FP32, in FP16 (the
// paper's baseline) or in INT8 (an 8-bit quantized model, W8A8), against BitNet's INT8
// additions plus one FP32 multiply per output for the rescale.

/// Picojoules per operation at one process node.
public struct OperationEnergy: Sendable {
    public let node: String
    public let int8Add, int8Multiply, fp16Add, fp16Multiply, fp32Add, fp32Multiply: Double

    /// The BitNet paper's Table 2 (Wang et al. 2023, arXiv:2310.11453), as we read it; its
    /// 45 nm figures are Horowitz's (ISSCC 2014: INT8 add 0.03, multiply 0.2; FP16 add
    /// 0.4, multiply 1.1; FP32 add 0.9, multiply 3.7). The paper's PDF could not be
    /// re-opened in this workplace, so the 7 nm FP16 pair is from our reading only.
    public static let nodes: [OperationEnergy] = [
        OperationEnergy(node: "45 nm", int8Add: 0.03, int8Multiply: 0.2, fp16Add: 0.4, fp16Multiply: 1.1,
                        fp32Add: 0.9, fp32Multiply: 3.7),
        OperationEnergy(node: "7 nm", int8Add: 0.007, int8Multiply: 0.07, fp16Add: 0.16, fp16Multiply: 0.34,
                        fp32Add: 0.38, fp32Multiply: 1.31),
    ]
}

public enum EnergyEstimate {
    /// How a model's projections compute their products.
    public enum Arithmetic: String, CaseIterable, Sendable {
        case fp32 = "FP32"
        case fp16 = "FP16"
        /// 8-bit weights and activations: INT8 multiply-adds.
        case int8 = "W8A8"
        /// BitNet (binary or ternary weights): INT8 additions only.
        case bitnet = "BitNet"
    }

    /// Picojoules of arithmetic in the projections' products for one token: one
    /// multiply-add per weight (additions only for BitNet), and for the quantized kinds
    /// one FP32 multiply per output to rescale. Embedding, attention scores and the head
    /// are left out, as in the paper.
    public static func picojoulesPerToken(config: ModelConfig, arithmetic: Arithmetic, energy e: OperationEnergy) -> Double {
        let layout = ParameterLayout(config: config)
        let weights = Double(layout.bitLinears.reduce(0) { $0 + $1.weightCount })
        let outputs = Double(layout.bitLinears.reduce(0) { $0 + $1.outFeatures })
        switch arithmetic {
        case .fp32: return weights * (e.fp32Multiply + e.fp32Add)
        case .fp16: return weights * (e.fp16Multiply + e.fp16Add)
        case .int8: return weights * (e.int8Multiply + e.int8Add) + outputs * e.fp32Multiply
        case .bitnet: return weights * e.int8Add + outputs * e.fp32Multiply
        }
    }
}
