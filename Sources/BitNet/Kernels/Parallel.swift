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
    /// ranks can share a machine). Set once at start, before any work.
    nonisolated(unsafe) public static var threads = ProcessInfo.processInfo.activeProcessorCount

    /// Calls `body` on disjoint sub-ranges of 0..<count covering it, on all threads,
    /// when there is at least `minimumWork` units of work per chunk. The split depends
    /// only on `count`, so results are reproducible run to run.
    public static func forRanges(_ count: Int, workPerItem: Int = 1, minimumWork: Int = 32_768,
                                 _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
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
                box.value(start..<end)
            }
        }
    }

    /// Calls `body(i)` for i in 0..<count, spread over all cores (each call is big work).
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        guard count > 0 else { return }
        if count == 1 || threads == 1 {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { escapable in
            let box = UncheckedSendable(value: escapable)
            DispatchQueue.concurrentPerform(iterations: count) { box.value($0) }
        }
    }
}
