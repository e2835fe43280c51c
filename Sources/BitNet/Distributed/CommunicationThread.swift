// A thread of its own for the gradient buckets' collectives, so they travel while the
// backward pass continues. Open MPI 4.1 advances a non-blocking collective only inside MPI
// calls (`ompi_info`: "OMPI progress: no"), so started with MPI_Iallreduce the buckets
// moved over TCP only in the step's final wait (docs/DISTRIBUTED.md). Here each bucket is
// one blocking collective, run in order on this thread, as PyTorch's DDP runs its
// reducer's. MPI is initialized MPI_THREAD_SERIALIZED: the caller makes no MPI call between
// the first `submit` and `finish`.
import Foundation

final class CommunicationThread: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs: [() throws -> Void] = []
    private var busy = false
    private var stopping = false
    private var failure: Error?

    init() {
        // The thread keeps this object alive until `stop` ends its loop.
        let thread = Thread { self.loop() }
        thread.name = "bitnet-communication"
        thread.start()
    }

    /// Stops the thread once its queue is empty.
    func stop() {
        condition.withLock {
            stopping = true
            condition.broadcast()
        }
    }

    /// Queues a collective; collectives run in the order submitted, on every rank alike.
    func submit(_ job: @escaping () throws -> Void) {
        condition.withLock {
            jobs.append(job)
            condition.broadcast()
        }
    }

    /// Waits until every submitted collective is done; throws the first one's error.
    func finish() throws {
        try condition.withLock {
            while busy || !jobs.isEmpty { condition.wait() }
            if let failure {
                self.failure = nil
                throw failure
            }
        }
    }

    private func loop() {
        while true {
            let job: (() throws -> Void)? = condition.withLock {
                while jobs.isEmpty && !stopping { condition.wait() }
                if jobs.isEmpty { return nil }
                busy = true
                return jobs.removeFirst()
            }
            guard let job else { return }
            // After a failure (a rank died) the remaining collectives are skipped.
            let skip = condition.withLock { failure != nil }
            var error: Error?
            if !skip {
                do { try job() } catch let e { error = e }
            }
            condition.withLock {
                if let error, failure == nil { failure = error }
                busy = false
                condition.broadcast()
            }
        }
    }
}
