// config.json: the model and how it is trained, and the preset it started from.

/// What a run directory's config.json holds: the model and how it is trained.
public struct RunConfig: Codable, Sendable, Equatable {
    public var preset: String?
    public var model: ModelConfig
    public var training: TrainingConfig

    public init(preset: String?, model: ModelConfig, training: TrainingConfig) {
        self.preset = preset
        self.model = model
        self.training = training
    }

    public func validate() throws {
        try model.validate()
        try training.validate()
    }
}
