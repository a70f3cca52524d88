//! The engine's background threads (flush, compaction) run at a lower
//! scheduling priority than the threads serving requests, as Cassandra's
//! compaction threads do: on a small machine a compaction then costs
//! requests throughput, not latency. Memtable back-pressure keeps a
//! starved flusher from letting memory grow.

/// Niceness of the flush thread: behind requests, ahead of compaction.
pub const FLUSH_NICENESS: i32 = 5;
/// Niceness of the compaction thread.
pub const COMPACTION_NICENESS: i32 = 10;

/// Lowers the calling thread's priority to `niceness` (Linux: per thread).
/// A failure is logged and otherwise ignored: it costs latency, not data.
pub fn lower_priority(niceness: i32) {
    #[cfg(target_os = "linux")]
    {
        #[allow(unsafe_code)]
        // SAFETY: gettid has no preconditions; setpriority only reads its
        // integer arguments and affects the calling thread alone.
        let result = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, niceness)
        };
        if result != 0 {
            tracing::debug!(
                niceness,
                error = %std::io::Error::last_os_error(),
                "could not lower a background thread's priority"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = niceness;
}
