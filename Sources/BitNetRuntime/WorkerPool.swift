// Workers that stay awake between the ~100 parallel regions of a generated token:
// waking a sleeping thread costs tens of microseconds, as much as a whole small
// product, so workers spin on a generation counter before they sleep on a condition
// (an idle prompt in interactive mode costs no CPU). A spin yields the core after a
// few tens of microseconds: with a busy neighbour, or more threads than cores, the
// thread that holds the work may be waiting for that core (pure spinning made
// generation 50-500x slower then).
import CBitKernels
import Foundation
import Synchronization

final class WorkerPool: @unchecked Sendable {
    let count: Int
    private let shared = Shared()

    /// What the pool and its threads share; the threads keep it alive after the pool goes.
    private final class Shared: @unchecked Sendable {
        let generation = Atomic<Int>(0)
        let remaining = Atomic<Int>(0)
        let condition = NSCondition()
        var sleepers = 0
        let stopping = Atomic<Bool>(false)
        var job: ((Int) -> Void)?
        /// The next item of a forEach.
        let next = Atomic<Int>(0)
    }

    /// Spins (each a `pause`, tens of nanoseconds) before a waiting thread starts to
    /// yield its core at each spin, and before an idle worker sleeps.
    private static let spinsBeforeYield = 2_000
    private static let spinsBeforeSleep = 20_000

    /// One turn of a wait: `pause` at first, then give the core to whoever is runnable.
    @inline(__always)
    private static func relax(_ spins: Int) {
        if spins < spinsBeforeYield { bitnet_cpu_relax() } else { sched_yield() }
    }

    init(threads: Int) {
        count = threads
        for index in 1..<max(threads, 1) {
            let shared = shared
            let thread = Thread { Self.work(index, shared) }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    deinit {
        shared.condition.lock()
        shared.stopping.store(true, ordering: .releasing)
        shared.generation.add(1, ordering: .releasing)
        shared.condition.broadcast()
        shared.condition.unlock()
    }

    /// Runs `body(worker)` for worker 0..<count, worker 0 on the calling thread; returns
    /// when all are done.
    func run(_ body: (Int) -> Void) {
        guard count > 1 else { return body(0) }
        let s = shared
        withoutActuallyEscaping(body) { body in
            s.job = body
            s.remaining.store(count - 1, ordering: .releasing)
            s.generation.add(1, ordering: .releasing)
            s.condition.lock()
            if s.sleepers > 0 { s.condition.broadcast() }
            s.condition.unlock()
            body(0)
            var spins = 0
            while s.remaining.load(ordering: .acquiring) > 0 {
                Self.relax(spins)
                spins += 1
            }
            s.job = nil
        }
    }

    /// Runs `body(item, worker)` for item 0..<count, items handed out one at a time to
    /// whichever worker is free: on a shared, noisy machine a fixed split leaves one
    /// core waiting for the other.
    func forEach(_ count: Int, _ body: (_ item: Int, _ worker: Int) -> Void) {
        let s = shared
        s.next.store(0, ordering: .relaxed)
        run { worker in
            while true {
                let item = s.next.add(1, ordering: .relaxed).oldValue
                if item >= count { return }
                body(item, worker)
            }
        }
    }

    private static func work(_ index: Int, _ s: Shared) {
        let condition = s.condition
        var seen = 0
        while true {
            var spins = 0
            while s.generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins < Self.spinsBeforeSleep {
                    Self.relax(spins)
                    continue
                }
                condition.lock()
                s.sleepers += 1
                while s.generation.load(ordering: .acquiring) == seen { condition.wait() }
                s.sleepers -= 1
                condition.unlock()
            }
            seen = s.generation.load(ordering: .acquiring)
            if s.stopping.load(ordering: .acquiring) { return }
            s.job!(index)
            s.remaining.subtract(1, ordering: .releasing)
        }
    }
}
