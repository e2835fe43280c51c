// Splitting loops across both cores with Dispatch.
import Dispatch
import Foundation

/// Wraps a value the compiler cannot prove Sendable (a closure over unsafe pointers)
/// so Dispatch's worker threads can call it; each worker touches disjoint memory.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
}

public enum Parallel {
    /// Threads the loops use: all cores, or fewer (`train --threads`, so that several
    /// ranks can share a machine). Set once at start, before any work. A thread inside
    /// `withThreads` sees that count instead.
    public static var threads: Int {
        get {
            let local = Int(bitPattern: pthread_getspecific(threadsKey))
            return local > 0 ? local : processThreads
        }
        set { processThreads = newValue }
    }
    nonisolated(unsafe) private static var processThreads = ProcessInfo.processInfo.activeProcessorCount

    /// The calling thread's own count, inherited by the work it hands out: several training
    /// runs at once (`sweep --jobs`) each get their share of the cores, and tests can use one
    /// thread without changing the count of tests running beside them.
    private static let threadsKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Runs `body` on the calling thread with `count` threads for everything it starts.
    public static func withThreads<R>(_ count: Int, _ body: () throws -> R) rethrows -> R {
        let saved = pthread_getspecific(threadsKey)
        pthread_setspecific(threadsKey, UnsafeRawPointer(bitPattern: max(count, 1)))
        defer { pthread_setspecific(threadsKey, saved) }
        return try body()
    }

    /// Calls `body` on disjoint sub-ranges of 0..<count covering it, on all threads,
    /// when there is at least `minimumWork` units of work per chunk. The split depends
    /// only on `count` and the thread count, so results are reproducible run to run.
    public static func forRanges(_ count: Int, workPerItem: Int = 1, minimumWork: Int = 32_768,
                                 _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let threads = threads
        let maxChunks = max(1, count * max(workPerItem, 1) / minimumWork)
        let chunks = min(count, min(maxChunks, threads * 4))
        if chunks <= 1 || threads == 1 {
            body(0..<count)
            return
        }
        withoutActuallyEscaping(body) { escapable in
            let box = UncheckedSendable(value: escapable)
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let start = count * chunk / chunks
                let end = count * (chunk + 1) / chunks
                withThreads(threads) { box.value(start..<end) }
            }
        }
    }

    /// Calls `body(i)` for i in 0..<count, spread over all cores (each call is big work).
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        guard count > 0 else { return }
        let threads = threads
        if count == 1 || threads == 1 {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { escapable in
            let box = UncheckedSendable(value: escapable)
            DispatchQueue.concurrentPerform(iterations: count) { i in withThreads(threads) { box.value(i) } }
        }
    }
}
