// Where a run is: what a checkpoint saves besides the tensors, so a resumed run
// continues exactly (step counters, the data generator, tokens and time so far).

public struct TrainingState: Sendable, Equatable {
    public var step: Int
    public var optimizerStep: Int
    public var rngState: [UInt64]
    public var tokensSeen: Int
    /// Training wall time so far, summed over resumed segments.
    public var elapsedSeconds: Double = 0
}
