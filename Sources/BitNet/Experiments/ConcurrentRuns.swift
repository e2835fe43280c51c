// Several training runs of one experiment at once (`sweep --jobs`, `lr-sweep --jobs`).
// Small models use two cores poorly: at the scale study's 64x2 (vocabulary 8192), two
// one-thread runs side by side train 1.26x the tokens per second of one two-thread run,
// 1.58x at 32x2 (docs/BENCHMARKS.md). Each run keeps cores / jobs threads for its whole
// life: a run's last bits depend on its thread count, so a fixed share keeps a sweep
// reproducible for a given --jobs.
import Foundation

final class ConcurrentRuns: @unchecked Sendable {
    let jobs: Int
    let threadsPerRun: Int
    private let lock = NSLock()
    private var next = 0
    private var stopped = false
    private var firstError: (any Error)?
    /// Held by `serialized` blocks: the caller's reporting and shared results.
    private let outputLock = NSLock()

    init(jobs: Int, cores: Int = Parallel.threads) {
        self.jobs = max(1, jobs)
        threadsPerRun = max(1, cores / self.jobs)
    }

    /// True once a run has thrown: the others stop at their next step, checkpointing.
    var failed: Bool { lock.withLock { firstError != nil } }

    /// No run starts after this; the ones in progress finish (or stop on their own).
    func stop() { lock.withLock { stopped = true } }

    /// Calls `body(i)` for i in 0..<count in order, up to `jobs` at a time, each on a
    /// thread of its own with `threadsPerRun` threads, and returns when all have
    /// returned, rethrowing the first error. One job runs everything on the calling
    /// thread, with its threads unchanged.
    func forEach(_ count: Int, _ body: (Int) throws -> Void) throws {
        if jobs == 1 {
            while let i = take(count) {
                do { try body(i) } catch { record(error) }
            }
        } else {
            withoutActuallyEscaping(body) { escapable in
                // The threads may outlive their last call: they hold the body through a box
                // that is emptied once all have finished with it.
                let box = Box(escapable)
                let group = DispatchGroup()
                for _ in 0..<min(jobs, count) {
                    group.enter()
                    let worker = Thread { [self] in
                        Parallel.withThreads(threadsPerRun) {
                            while let i = take(count), let body = box.body {
                                do { try body(i) } catch { record(error) }
                            }
                        }
                        group.leave()
                    }
                    worker.stackSize = 8 << 20  // the main thread's 8 MiB
                    worker.start()
                }
                group.wait()
                box.body = nil
            }
        }
        if let error = lock.withLock({ firstError }) { throw error }
    }

    /// Runs `body` while no other run's `serialized` block runs.
    func serialized<T>(_ body: () throws -> T) rethrows -> T {
        outputLock.lock()
        defer { outputLock.unlock() }
        return try body()
    }

    private final class Box: @unchecked Sendable {
        var body: ((Int) throws -> Void)?
        init(_ body: @escaping (Int) throws -> Void) { self.body = body }
    }

    private func take(_ count: Int) -> Int? {
        lock.withLock {
            guard !stopped, firstError == nil, next < count else { return nil }
            defer { next += 1 }
            return next
        }
    }

    private func record(_ error: any Error) {
        lock.withLock { firstError = firstError ?? error }
    }
}
