// DATA_DIR/meta.json: what a prepared data directory holds.
import Foundation

/// DATA_DIR/meta.json.
public struct DatasetMeta: Codable, Sendable {
    public var vocabSize: Int
    /// "uint16" or "uint32", little-endian.
    public var dtype: String
    public var trainTokens: Int
    public var valTokens: Int
    /// The tokenizer's file name inside the data directory.
    public var tokenizer: String

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", dtype, trainTokens = "train_tokens", valTokens = "val_tokens", tokenizer
    }
}
