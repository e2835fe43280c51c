// How one configuration field is described: its JSON key, flag, valid values, help and
// the property it reads and writes. The table of every field (ConfigFields.swift) is
// the one place from which the JSON coding, validation, command-line overrides and the
// README's table of fields all come.
import BitNetFormat
import Foundation

/// A value a field can hold: read from a flag's text, written to config.json.
public protocol ConfigValue: Codable, Equatable, Sendable {
    init?(configText: String)
    var configText: String { get }
    /// True for an unset optional, which config.json leaves out.
    var isAbsent: Bool { get }
}

extension ConfigValue {
    public var isAbsent: Bool { false }
}

extension Int: ConfigValue {
    public init?(configText: String) { self.init(configText) }
    public var configText: String { String(self) }
}

extension UInt64: ConfigValue {
    public init?(configText: String) { self.init(configText) }
    public var configText: String { String(self) }
}

extension Float: ConfigValue {
    public init?(configText: String) { self.init(configText) }
    public var configText: String { "\(self)" }
}

extension Bool: ConfigValue {
    public init?(configText: String) { self.init(configText) }
    public var configText: String { String(self) }
}

/// An optional field: "default" unsets it (the field's documented default applies).
extension Optional: ConfigValue where Wrapped: ConfigValue {
    public init?(configText: String) {
        if configText == "default" {
            self = .none
            return
        }
        guard let value = Wrapped(configText: configText) else { return nil }
        self = .some(value)
    }
    public var configText: String { self?.configText ?? "default" }
    public var isAbsent: Bool { self == nil }
}

/// Enumerations stored by their names.
public protocol ConfigChoice: ConfigValue, RawRepresentable, CaseIterable where RawValue == String {}

extension ConfigChoice {
    public init?(configText: String) { self.init(rawValue: configText) }
    public var configText: String { rawValue }
}

/// The values a field accepts, as a phrase that completes "must be ...".
public struct ConfigRule<Value>: Sendable {
    public let phrase: String
    let holds: @Sendable (Value) -> Bool

    public init(_ phrase: String, _ holds: @escaping @Sendable (Value) -> Bool) {
        self.phrase = phrase
        self.holds = holds
    }
}

extension ConfigRule where Value == Int {
    public static let positive = ConfigRule("positive") { $0 > 0 }
    public static let nonNegative = ConfigRule(">= 0") { $0 >= 0 }
    /// Bounded sizes keep every product of sizes (the memory estimate) far from overflow.
    public static func range(_ r: ClosedRange<Int>) -> ConfigRule { ConfigRule("in \(r.lowerBound)...\(r.upperBound)") { r.contains($0) } }
}

extension ConfigRule where Value: ConfigChoice {
    public static var anyChoice: ConfigRule {
        ConfigRule("one of " + Value.allCases.map(\.rawValue).joined(separator: ", ")) { _ in true }
    }
}

/// JSON keys chosen at run time (the table's keys).
struct FieldKey: CodingKey {
    let stringValue: String
    init(_ key: String) { stringValue = key }
    init?(stringValue: String) { self.stringValue = stringValue }
    var intValue: Int? { nil }
    init?(intValue: Int) { nil }
}

/// One field of `Root` (ModelConfig or TrainingConfig), type-erased so that fields of
/// different types share a table.
public struct ConfigField<Root>: Sendable {
    /// The JSON key (snake_case), also the name errors give.
    public let key: String
    /// The command-line flag, "--" and the key with dashes unless given.
    public let flag: String
    /// What the field means (the flag's help and the README's "meaning").
    public let help: String
    /// The default as the README shows it.
    public let defaultText: String
    /// The valid values as the README shows them.
    public let validText: String
    /// Reads a flag's text into the field; throws naming the field when it is not a value
    /// of the field's type.
    public let set: @Sendable (inout Root, String) throws -> Void
    /// Throws naming the field when its value is outside the valid range.
    public let check: @Sendable (Root) throws -> Void
    /// The field's current value as text.
    public let text: @Sendable (Root) -> String
    let decode: @Sendable (KeyedDecodingContainer<FieldKey>, inout Root) throws -> Void
    let encode: @Sendable (Root, inout KeyedEncodingContainer<FieldKey>) throws -> Void

    /// A field stored at `path`, accepting values for which `rule` holds. `defaultText`
    /// defaults to the value in `Root()`'s, through `defaults`.
    public init<Value: ConfigValue>(
        _ key: String, _ path: WritableKeyPath<Root, Value> & Sendable, flag: String? = nil, rule: ConfigRule<Value>,
        default defaultText: String, help: String
    ) {
        self.key = key
        self.flag = flag ?? "--" + key.replacingOccurrences(of: "_", with: "-")
        self.help = help
        self.defaultText = defaultText
        validText = rule.phrase
        let typeName = Value.self is any ConfigChoice.Type ? rule.phrase : Self.typeName(Value.self)
        set = { root, text in
            guard let value = Value(configText: text) else {
                throw BitNetError.field(key, problem: "must be \(typeName), got '\(text)'")
            }
            root[keyPath: path] = value
        }
        check = { root in
            let value = root[keyPath: path]
            if !rule.holds(value) { throw BitNetError.field(key, problem: "must be \(rule.phrase), got \(value.configText)") }
        }
        text = { $0[keyPath: path].configText }
        decode = { container, root in
            if let value = try container.decodeIfPresent(Value.self, forKey: FieldKey(key)) { root[keyPath: path] = value }
        }
        encode = { root, container in
            let value = root[keyPath: path]
            if !value.isAbsent { try container.encode(value, forKey: FieldKey(key)) }
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is UInt64.Type: "an integer"
        case is Bool.Type: "true or false"
        default: "a number"
        }
    }
}

/// JSON coding through a table of fields: absent keys keep `Root()`'s defaults, and
/// unknown keys are ignored (files from later versions stay readable).
protocol ConfigTable: Codable {
    init()
    static var fields: [ConfigField<Self>] { get }
    func validate() throws
}

extension ConfigTable {
    init(decodingFieldsFrom decoder: Decoder) throws {
        self.init()
        let container = try decoder.container(keyedBy: FieldKey.self)
        for field in Self.fields { try field.decode(container, &self) }
        try validate()
    }

    func encodeFields(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: FieldKey.self)
        for field in Self.fields { try field.encode(self, &container) }
    }

    /// Every field's own range; the config's cross-field checks come after.
    func checkFields() throws {
        for field in Self.fields { try field.check(self) }
    }
}
