// The queue that trains several runs at once, and the per-thread thread count it gives them.
import Foundation
import Synchronization
import Testing
@testable import BitNet

@Suite struct ConcurrentRunsTests {
    @Test func everyIndexOnceAtMostJobsAtATimeOnTheirShareOfTheCores() throws {
        let queue = ConcurrentRuns(jobs: 3, cores: 7)
        #expect(queue.threadsPerRun == 2)
        struct Seen { var done: [Int] = [], running = 0, most = 0, threads: Set<Int> = [] }
        let seen = Mutex(Seen())
        try queue.forEach(24) { i in
            seen.withLock { s in
                s.running += 1
                s.most = max(s.most, s.running)
                s.threads.insert(Parallel.threads)
            }
            usleep(3000)
            seen.withLock { s in
                s.running -= 1
                s.done.append(i)
            }
        }
        seen.withLock { s in
            #expect(s.done.sorted() == Array(0..<24))
            #expect(s.most >= 2 && s.most <= 3, "\(s.most) at once")
            #expect(s.threads == [2])
        }
    }

    @Test func oneJobRunsOnTheCallingThreadInOrder() throws {
        let queue = ConcurrentRuns(jobs: 1, cores: 4)
        var order: [Int] = []
        let outside = Parallel.threads
        try queue.forEach(5) { i in
            order.append(i)
            #expect(Parallel.threads == outside)
        }
        #expect(order == [0, 1, 2, 3, 4])
    }

    /// The first error is rethrown; no run starts after it, and the runs in progress are
    /// told to stop (`failed`).
    @Test(arguments: [1, 2]) func firstErrorStopsTheQueue(jobs: Int) {
        let queue = ConcurrentRuns(jobs: jobs, cores: 2)
        let started = Mutex(0)
        #expect(throws: BitNetError.invalid("run 3")) {
            try queue.forEach(100) { i in
                started.withLock { $0 += 1 }
                if i == 3 { throw BitNetError.invalid("run 3") }
                usleep(1000)
            }
        }
        #expect(queue.failed)
        #expect(started.withLock { $0 } <= 3 + jobs)
    }

    @Test func stopEndsTheQueueAfterTheRunsInProgress() throws {
        let queue = ConcurrentRuns(jobs: 2, cores: 2)
        let done = Mutex(0)
        try queue.forEach(50) { i in
            if i == 4 { queue.stop() }
            usleep(1000)
            done.withLock { $0 += 1 }
        }
        #expect(done.withLock { $0 } <= 6)
        #expect(!queue.failed)
    }

    /// Work handed out inside `withThreads` sees its count, on whichever thread runs it.
    @Test func nestedWorkInheritsTheThreadCount() {
        let seen = Mutex(Set<Int>())
        Parallel.withThreads(3) {
            #expect(Parallel.threads == 3)
            Parallel.forEach(6) { _ in
                seen.withLock { _ = $0.insert(Parallel.threads) }
                Parallel.forRanges(4, minimumWork: 1) { _ in seen.withLock { _ = $0.insert(Parallel.threads) } }
            }
        }
        #expect(seen.withLock { $0 } == [3])
        Parallel.withThreads(1) { #expect(Parallel.threads == 1) }
    }
}
