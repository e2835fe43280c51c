// A prepared data directory, memory-mapped and validated: random training windows
// drawn with a seeded generator, fixed validation windows.
import Foundation

public enum Split: String, Sendable {
    case train
    case val
}

/// One split's token ids, memory-mapped, every id checked to be below the vocabulary size.
public final class TokenFile: @unchecked Sendable {
    public let path: String
    private let data: Data
    private let wide: Bool
    public let count: Int

    public init(path: String, dtype: String, expectedCount: Int?, vocabSize: Int) throws {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else { throw BitNetError.file("\(path): file does not exist") }
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw BitNetError.file("\(path): cannot read: \(error.localizedDescription)")
        }
        switch dtype {
        case "uint16": wide = false
        case "uint32": wide = true
        default: throw BitNetError.file("\(path): unknown token dtype '\(dtype)' (expected uint16 or uint32)")
        }
        let size = wide ? 4 : 2
        guard data.count % size == 0 else { throw BitNetError.file("\(path): size \(data.count) is not a whole number of tokens") }
        count = data.count / size
        if let expectedCount, expectedCount != count {
            throw BitNetError.file("\(path): holds \(count) tokens but meta.json says \(expectedCount)")
        }
        let maximum = data.withUnsafeBytes { raw -> Int in
            var m = 0
            if wide {
                for i in 0..<count { m = max(m, Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))) }
            } else {
                for i in 0..<count { m = max(m, Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))) }
            }
            return m
        }
        if count > 0 && maximum >= vocabSize {
            throw BitNetError.file("\(path): token id \(maximum) is outside the vocabulary of \(vocabSize)")
        }
    }

    /// Copies tokens start..<start+n into `out`.
    public func read(from start: Int, count n: Int, into out: UnsafeMutablePointer<Int32>) {
        precondition(start >= 0 && start + n <= count)
        data.withUnsafeBytes { raw in
            if wide {
                for i in 0..<n { out[i] = Int32(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * (start + i), as: UInt32.self))) }
            } else {
                for i in 0..<n { out[i] = Int32(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * (start + i), as: UInt16.self))) }
            }
        }
    }
}

public final class TokenDataset: @unchecked Sendable {
    public let directory: String
    public let meta: DatasetMeta
    public let train: TokenFile
    public let val: TokenFile

    public init(directory: String) throws {
        self.directory = directory
        let metaURL = URL(fileURLWithPath: directory).appendingPathComponent("meta.json")
        guard let metaData = FileManager.default.contents(atPath: metaURL.path) else {
            throw BitNetError.file("\(metaURL.path): missing; is \(directory) a directory made by 'bitnet-train prepare'?")
        }
        do {
            meta = try JSONDecoder().decode(DatasetMeta.self, from: metaData)
        } catch {
            throw BitNetError.file("\(metaURL.path): malformed: \(error)")
        }
        guard meta.vocabSize > 0 else { throw BitNetError.file("\(metaURL.path): vocab_size must be positive") }
        // A file name inside the data directory, never a path out of it.
        guard !meta.tokenizer.isEmpty, !meta.tokenizer.contains("/"), meta.tokenizer != "..", meta.tokenizer != "." else {
            throw BitNetError.file("\(metaURL.path): tokenizer must be a file name inside \(directory), got '\(meta.tokenizer)'")
        }
        train = try TokenFile(path: directory + "/train.bin", dtype: meta.dtype, expectedCount: meta.trainTokens,
                              vocabSize: meta.vocabSize)
        val = try TokenFile(path: directory + "/val.bin", dtype: meta.dtype, expectedCount: meta.valTokens,
                            vocabSize: meta.vocabSize)
    }

    public var tokenizerPath: String { directory + "/" + meta.tokenizer }

    public func file(_ split: Split) -> TokenFile { split == .train ? train : val }

    /// Refuses a corpus that cannot give one window of `context` tokens plus its target.
    public func check(context: Int) throws {
        for split in [Split.train, .val] where file(split).count < context + 1 {
            throw BitNetError.file("\(file(split).path): \(file(split).count) tokens is smaller than one context window "
                            + "(\(context) + 1); use a larger corpus or a smaller context")
        }
    }

    /// Fills tokens/targets [batch, context] with random training windows.
    public func sampleBatch(rng: inout Xoshiro256, batch: Int, context: Int,
                            tokens: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>) {
        let window = UnsafeMutablePointer<Int32>.allocate(capacity: context + 1)
        defer { window.deallocate() }
        for b in 0..<batch {
            let start = rng.below(train.count - context)
            train.read(from: start, count: context + 1, into: window)
            (tokens + b * context).update(from: window, count: context)
            (targets + b * context).update(from: window + 1, count: context)
        }
    }

    /// Number of non-overlapping validation windows, capped at `limit`.
    public func validationWindows(context: Int, limit: Int) -> Int {
        min(limit, (val.count - 1) / context)
    }

    /// Window `index` of `windows` spread evenly over the validation split's whole,
    /// non-overlapping windows (every one of them, in order, when `windows` is their
    /// number): tokens and targets [context]. Spread, so that a few hundred windows sample
    /// every part of a large split, not only its first documents.
    public func validationWindow(_ index: Int, of windows: Int, context: Int, tokens: UnsafeMutablePointer<Int32>,
                                 targets: UnsafeMutablePointer<Int32>) {
        let whole = (val.count - 1) / context
        precondition(windows >= 1 && windows <= whole && index >= 0 && index < windows)
        let window = UnsafeMutablePointer<Int32>.allocate(capacity: context + 1)
        defer { window.deallocate() }
        val.read(from: index * whole / windows * context, count: context + 1, into: window)
        tokens.update(from: window, count: context)
        targets.update(from: window + 1, count: context)
    }
}
