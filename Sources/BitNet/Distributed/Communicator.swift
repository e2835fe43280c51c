// The processes of one training run: one, or N ranks started by Open MPI's mpirun.
// Data-parallel training needs only a few collectives: sum the gradients (and the loss),
// agree on stopping. Without mpirun nothing here touches MPI. Every call blocks; the
// gradient buckets' calls run on a thread of their own (CommunicationThread).
import CMPI
import Foundation

public final class Communicator: @unchecked Sendable {
    /// This process's index and the number of processes.
    public let rank: Int
    public let size: Int
    public var isRoot: Bool { rank == 0 }
    private let usesMPI: Bool

    /// A run of one process.
    public static let single = Communicator(rank: 0, size: 1, usesMPI: false)

    private init(rank: Int, size: Int, usesMPI: Bool) {
        (self.rank, self.size, self.usesMPI) = (rank, size, usesMPI)
    }

    /// Whether this process was started by Open MPI's mpirun (or another launcher that
    /// sets its environment).
    public static var launchedByMPI: Bool { ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"] != nil }

    /// The world of an mpirun job: initializes MPI once. Call `finalize()` at the end.
    public static func world() throws -> Communicator {
        guard launchedByMPI else { return .single }
        var provided: Int32 = 0
        guard bitnet_mpi_init(&provided) == 0, bitnet_mpi_errors_return() == 0 else {
            throw BitNetError.invalid("MPI: initialization failed")
        }
        guard provided >= bitnet_mpi_thread_serialized() else {
            _ = bitnet_mpi_finalize()
            throw BitNetError.invalid("MPI: this Open MPI does not support MPI_THREAD_SERIALIZED (the gradient sums' thread needs it)")
        }
        var rank: Int32 = 0, size: Int32 = 0
        guard bitnet_mpi_rank(&rank) == 0, bitnet_mpi_size(&size) == 0 else { throw BitNetError.invalid("MPI: no rank or size") }
        return Communicator(rank: Int(rank), size: Int(size), usesMPI: true)
    }

    public func finalize() {
        if usesMPI { _ = bitnet_mpi_finalize() }
    }

    /// values[i] = the sum over ranks of values[i], on every rank. (Open MPI's blocking
    /// MPI_Allreduce ran 64 MiB twice as fast as its non-blocking MPI_Iallreduce here.)
    public func sum(_ values: UnsafeMutablePointer<Float>, count: Int) throws {
        guard usesMPI else { return }
        try Self.inPieces(count) { offset, n in try check(bitnet_mpi_sum_floats(values + offset, n), "sum of gradients") }
    }

    /// MPI counts are Int32: calls `body(offset, n)` over pieces covering 0..<count.
    private static func inPieces(_ count: Int, _ body: (Int, Int32) throws -> Void) rethrows {
        var offset = 0
        while offset < count {
            let n = min(count - offset, Int(Int32.max / 2))
            try body(offset, Int32(n))
            offset += n
        }
    }

    /// Sums values[0..<counts.sum()] over the ranks, leaving rank r's part of the sum
    /// (counts[r] floats, after those of ranks 0..<r) in `piece` (ZeRO-1).
    public func reduceScatter(_ values: UnsafePointer<Float>, into piece: UnsafeMutablePointer<Float>,
                              counts: UnsafePointer<Int32>) throws {
        guard usesMPI else {
            piece.update(from: values, count: Int(counts[0]))
            return
        }
        try check(bitnet_mpi_reduce_scatter_floats(values, piece, counts), "sum of gradients")
    }

    /// Each rank's part of values (counts[r] floats at offsets[r], in place on rank r)
    /// copied to every rank: the parameters each rank updated under ZeRO-1.
    public func allGather(_ values: UnsafeMutablePointer<Float>, counts: UnsafePointer<Int32>, offsets: UnsafePointer<Int32>) throws {
        guard usesMPI else { return }
        try check(bitnet_mpi_all_gather_floats(values, counts, offsets), "gathering of parameters")
    }

    /// Each rank's `piece` placed at offsets[r] of `values` on rank 0 (a checkpoint of
    /// sharded optimizer moments); `values` is only written on rank 0.
    public func gather(_ piece: UnsafePointer<Float>, into values: UnsafeMutablePointer<Float>, counts: UnsafePointer<Int32>,
                       offsets: UnsafePointer<Int32>) throws {
        guard usesMPI else {
            (values + Int(offsets[0])).update(from: piece, count: Int(counts[0]))
            return
        }
        try check(bitnet_mpi_gather_floats(piece, counts[rank], values, counts, offsets), "gathering of optimizer moments")
    }

    public func sum(_ value: Double) throws -> Double {
        guard usesMPI else { return value }
        var v = value
        try check(bitnet_mpi_sum_doubles(&v, 1), "sum")
        return v
    }

    /// True on every rank when it is true on any (a stop one rank saw, all take).
    public func any(_ flag: Bool) throws -> Bool {
        guard usesMPI else { return flag }
        var v: Int32 = flag ? 1 : 0
        try check(bitnet_mpi_max_int(&v), "agreement")
        return v != 0
    }

    private func check(_ code: Int32, _ what: String) throws {
        if code != 0 { throw BitNetError.invalid("MPI: the \(what) failed on rank \(rank) (error \(code)); another rank may have died") }
    }
}
