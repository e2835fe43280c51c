// The packed format's definitions (BitNetFormat) on their own: header and table entry
// round trips at the documented offsets, and the tiled plane geometry.
import BitNetFormat
import Testing

@Suite struct PackedFormatTests {
    @Test func headerRoundTripsAtTheDocumentedOffsets() {
        let header = PackedHeader(fileSize: 0x1_0000_0040, checksum: 0xdead_beef_0123_4567, metadataOffset: 64,
                                  metadataLength: 1234, tableOffset: 1344, tensorCount: 17)
        let bytes = header.bytes
        #expect(bytes.count == PackedFormat.headerSize)
        #expect(Array(bytes[0..<8]) == Array("BITNETMF".utf8))
        #expect(bytes[8] == UInt8(PackedFormat.version) && bytes[12] == 64)
        #expect(bytes[56] == 17 && bytes[60..<64].allSatisfy { $0 == 0 })
        let read = bytes.withUnsafeBytes { PackedHeader(reading: $0) }
        #expect(read == header)
    }

    @Test func tableRecordRoundTrips() {
        let record = TableRecord(name: Array("layers.3.ffn.down.weight".utf8), type: TensorType.ternary.rawValue,
                                 rows: 352, cols: 128, scale: 0.0417, offset: 4096, length: 2 * 11 * 8 * 64)
        var raw = [UInt8](repeating: 0xff, count: 3 * PackedFormat.tableEntrySize)
        raw.withUnsafeMutableBytes { record.write(into: $0, at: PackedFormat.tableEntrySize) }
        #expect(raw[0..<128].allSatisfy { $0 == 0xff } && raw[256...].allSatisfy { $0 == 0xff })
        #expect(raw[128 + 112..<256].allSatisfy { $0 == 0 })  // reserved
        let read = raw.withUnsafeBytes { TableRecord(reading: $0, at: PackedFormat.tableEntrySize) }
        #expect(read == record)
    }

    /// Every weight of awkward shapes gets its own bit, inside the plane.
    @Test(arguments: [(1, 1), (31, 17), (33, 15), (64, 48), (70, 100)])
    func tiledPositionsAreDistinctAndInside(shape: (Int, Int)) {
        let planes = TiledPlanes(rows: shape.0, cols: shape.1)
        var seen = Set<Int>()
        for r in 0..<shape.0 {
            for c in 0..<shape.1 {
                let (byte, bit) = planes.bitPosition(row: r, col: c)
                #expect(byte < planes.planeBytes && bit < 8)
                seen.insert(byte * 8 + bit)
            }
        }
        #expect(seen.count == shape.0 * shape.1)
        #expect(planes.storedBytes(.ternary) == 2 * planes.planeBytes && planes.storedBytes(.f16) == 2 * shape.0 * shape.1)
    }

    @Test func checksumSeesEveryWord() {
        var words = [UInt8](repeating: 7, count: 256)
        let base = words.withUnsafeBytes { PackedFormat.checksum($0) }
        for i in stride(from: 0, to: 256, by: 37) {
            words[i] ^= 1
            #expect(words.withUnsafeBytes { PackedFormat.checksum($0) } != base)
            words[i] ^= 1
        }
    }
}
