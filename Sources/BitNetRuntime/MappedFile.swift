// A file mapped read-only into memory for as long as this object lives. The mapping's
// lifetime is explicit: pointers into `bytes` are valid exactly while the owner holds
// the MappedFile (the model holds its ModelFile, which holds this), unlike a pointer
// carried out of Data.withUnsafeBytes.
import Foundation

public final class MappedFile: @unchecked Sendable {
    public let bytes: UnsafeRawBufferPointer

    /// Maps `path`; every refusal is one line naming the path.
    public init(path: String) throws {
        func bad(_ what: String) -> RuntimeError { RuntimeError(description: "\(path): \(what)") }
        // Non-blocking, so that a FIFO given as the model is refused instead of waiting for a writer.
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            switch errno {
            case ENOENT: throw bad("file does not exist")
            case EACCES: throw bad("permission denied")
            default: throw bad("cannot open: \(String(cString: strerror(errno)))")
            }
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else { throw bad("cannot read: \(String(cString: strerror(errno)))") }
        switch status.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: throw bad("is a directory, not a model file")
        default: throw bad("is not a regular file")
        }
        let size = Int(status.st_size)
        guard size > 0 else { throw bad("too short (0 bytes) to be a BitNet model") }
        let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let address, address != MAP_FAILED else { throw bad("cannot map: \(String(cString: strerror(errno)))") }
        bytes = UnsafeRawBufferPointer(start: address, count: size)
    }

    /// Lets the kernel drop this process's pages of bytes[range] (the whole pages inside
    /// it), and read them back one page at a time when touched, not the 64 KB around each
    /// fault it reads by default. For a part read once at load and then only here and
    /// there (the embedding's rows).
    public func release(_ range: Range<Int>) {
        guard let start = bytes.baseAddress, range.lowerBound >= 0, range.upperBound <= bytes.count else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let first = (range.lowerBound + page - 1) / page * page, last = range.upperBound / page * page
        guard first < last else { return }
        let at = UnsafeMutableRawPointer(mutating: start + first)
        madvise(at, last - first, MADV_DONTNEED)
        madvise(at, last - first, MADV_RANDOM)
    }

    deinit {
        if let start = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: start), bytes.count) }
    }
}
