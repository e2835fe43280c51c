// Where a block's sub-norms sit and how RoPE pairs dimensions (docs/FORMAT.md, "Layouts
// and attention"). Defined here because the trainer and the runtime must agree on both.

public enum ModelLayout: String, Sendable, CaseIterable, Codable {
    /// BitNet (the paper's section 2): every BitLinear normalizes its own input (SubLN);
    /// RoPE on interleaved pairs (2j, 2j+1).
    case bitnet
    /// BitNet b1.58 as llama.cpp's `bitnet` graph computes it: the block norms feed the
    /// query, key, value, up and gate projections directly; a sub-norm only before the
    /// attention output projection (attn_sub_norm) and the down projection (ffn_sub_norm);
    /// RoPE on the two halves of each head (j, j + headDim/2), GPT-NeoX style.
    case b158 = "b1.58"

    /// Whether the BitLinear `projection` ("attention.query", ..., "ffn.down") has a
    /// SubLN in the BitNet modes.
    public func hasSubNorm(_ projection: String) -> Bool {
        self == .bitnet || projection == "attention.output" || projection == "ffn.down"
    }

    /// RoPE's pair j within a head: (j * step, j * step + partner).
    public func ropePairing(headDim: Int) -> (step: Int, partner: Int) {
        self == .b158 ? (1, headDim / 2) : (2, 1)
    }
}
