// FP32 values stored as little-endian IEEE half (the packed format's and GGUF's F16).
import Foundation

extension Data {
    public init(float16LittleEndian values: UnsafeBufferPointer<Float>) {
        let halves = values.map { Float16($0).bitPattern.littleEndian }
        self = halves.withUnsafeBytes { Data($0) }
    }
}
