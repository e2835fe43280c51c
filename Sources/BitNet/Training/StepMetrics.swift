// One line of RUN_DIR/metrics.jsonl: what a logged step measured.
import Foundation

/// One line of RUN_DIR/metrics.jsonl.
public struct StepMetrics: Sendable, Equatable {
    public var step: Int
    public var steps: Int
    public var loss: Float
    public var learningRate: Float
    public var gradNorm: Float
    public var tokensPerSecond: Double
    public var elapsedSeconds: Double
    public var valLoss: Float?
    /// Fraction of quantized weights that changed value since the previous logged step.
    public var flipFraction: Double?
    /// Fraction of ternary weights that are zero.
    public var zeroFraction: Double?
    /// Under mpirun: the share of rank 0's wall time since the last logged step spent in
    /// the gradient all-reduce (waiting for the other ranks included).
    public var communicationShare: Double?

    public var jsonLine: String {
        func number(_ x: Double) -> String { x.isFinite ? "\(x)" : "null" }
        func number(_ x: Float) -> String { x.isFinite ? "\(x)" : "null" }
        var fields = [
            "\"step\":\(step)", "\"loss\":\(number(loss))", "\"lr\":\(number(learningRate))",
            "\"grad_norm\":\(number(gradNorm))", "\"tokens_per_second\":\(number(tokensPerSecond.rounded()))",
            "\"elapsed_seconds\":\(number((elapsedSeconds * 1000).rounded() / 1000))",
        ]
        if let valLoss {
            fields.append("\"val_loss\":\(number(valLoss))")
            fields.append("\"val_perplexity\":\(number(exp(Double(valLoss))))")
        }
        if let flipFraction { fields.append("\"flip_fraction\":\(number(flipFraction))") }
        if let zeroFraction { fields.append("\"zero_fraction\":\(number(zeroFraction))") }
        if let communicationShare { fields.append("\"communication_share\":\(number((communicationShare * 1e4).rounded() / 1e4))") }
        return "{" + fields.joined(separator: ",") + "}"
    }
}
