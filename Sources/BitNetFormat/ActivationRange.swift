// Which 8-bit range a BitLinear quantizes its input to (docs/FORMAT.md, rules 2-3):
// symmetric [-127, 127] around zero, or the BitNet paper's variant for non-negative
// inputs, shifted by the minimum into [0, 254]. Defined here because the trainer and
// the runtime must make the same choice for every projection.

public enum ActivationRange: String, Sendable, CaseIterable, Codable {
    /// x~ = round(clip(h 127 / gamma, -127, 127)), gamma = max |h|.
    case signed
    /// x~ = round(clip((h - eta) 254 / gamma, 0, 254)), eta = min h, gamma = max h - eta.
    case unsigned
    /// Unsigned where the input is non-negative by construction (the feed-forward down
    /// projection after relu² and an RMSNorm SubLN), signed elsewhere.
    case auto

    /// Whether the projection quantizes its input to the unsigned range.
    /// - Parameters:
    ///   - isDownProjection: the feed-forward output projection (`ffn.down`).
    ///   - ffnActivation: the config's `ffn_activation` ("relu2", "swiglu", "gelu").
    ///   - norm: the config's `norm` ("rms" or "layer"): LayerNorm centres its output.
    public func isUnsigned(isDownProjection: Bool, ffnActivation: String, norm: String) -> Bool {
        switch self {
        case .signed: false
        case .unsigned: true
        case .auto: isDownProjection && ffnActivation == "relu2" && norm == "rms"
        }
    }

    /// Levels of the unsigned codes: 0...254, stored as code - 127 in an int8 so the
    /// product kernels see the same [-127, 127] as for signed codes.
    public static let unsignedLevels: Float = 254
    public static let unsignedOffset: Int32 = 127
}
