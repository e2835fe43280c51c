// The arithmetic-energy estimate of the BitNet paper (section 2.3 / Table 2): the
// matrix products of the projections per token, as FP32 multiply-adds for `fp` and as
// INT8 additions (plus one FP32 multiply per output to rescale) for `binary`/`ternary`.

public struct OperationEnergy: Sendable {
    public let node: String
    /// Picojoules per operation.
    public let int8Add, int8Multiply, fp32Add, fp32Multiply: Double

    /// Values from the BitNet paper's Table 2 (Wang et al. 2023, arXiv:2310.11453), which
    /// cites Horowitz (ISSCC 2014) for 45 nm. The table's FP16 row is not used: it could
    /// not be checked against the paper here, and our `fp` baseline computes in FP32.
    public static let nodes: [OperationEnergy] = [
        OperationEnergy(node: "45 nm", int8Add: 0.03, int8Multiply: 0.2, fp32Add: 0.9, fp32Multiply: 3.7),
        OperationEnergy(node: "7 nm", int8Add: 0.007, int8Multiply: 0.07, fp32Add: 0.38, fp32Multiply: 1.31),
    ]
}

public enum EnergyEstimate {
    /// Picojoules of arithmetic in the projections' products for one token.
    public static func picojoulesPerToken(config: ModelConfig, energy e: OperationEnergy) -> Double {
        let layout = ParameterLayout(config: config)
        let weights = Double(layout.bitLinears.reduce(0) { $0 + $1.weightCount })
        let outputs = Double(layout.bitLinears.reduce(0) { $0 + $1.outFeatures })
        if config.mode == .fp { return weights * (e.fp32Multiply + e.fp32Add) }
        return weights * e.int8Add + outputs * e.fp32Multiply
    }
}
