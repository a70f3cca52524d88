//! The engine's background threads (flush, compaction) run at a lower
//! scheduling priority than the threads serving requests, as Cassandra's
//! compaction threads do: on a small machine a compaction then costs
//! requests throughput, not latency. Memtable back-pressure keeps a
//! starved flusher from letting memory grow.

/// How far behind requests a background thread runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// A lower niceness: a share of the CPU that shrinks when requests want it.
    Nice(i32),
    /// Linux's `SCHED_IDLE`: runs only on CPU time nothing else wants, and a
    /// waking request thread takes the CPU from it at once (a niced thread
    /// may finish its time slice first, a few milliseconds of request
    /// latency).
    Idle,
}

/// The flush thread: behind requests, but a share of the CPU even when
/// requests keep it busy, or writers would soon wait for memtable memory.
pub const FLUSH_PRIORITY: Priority = Priority::Nice(5);
/// The compaction thread: only idle CPU time.
pub const COMPACTION_PRIORITY: Priority = Priority::Idle;

/// Lowers the calling thread's priority (Linux: per thread). A failure is
/// logged and otherwise ignored: it costs latency, not data.
pub fn lower_priority(priority: Priority) {
    #[cfg(target_os = "linux")]
    {
        #[allow(unsafe_code)]
        // SAFETY: gettid has no preconditions; setpriority and
        // sched_setscheduler only read their arguments (the parameter struct
        // lives on this stack frame) and affect the calling thread alone.
        let result = unsafe {
            let tid = libc::gettid();
            match priority {
                Priority::Nice(niceness) => {
                    libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, niceness)
                }
                Priority::Idle => {
                    let param = libc::sched_param { sched_priority: 0 };
                    libc::sched_setscheduler(tid, libc::SCHED_IDLE, &param)
                }
            }
        };
        if result != 0 {
            tracing::debug!(
                ?priority,
                error = %std::io::Error::last_os_error(),
                "could not lower a background thread's priority"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = priority;
}
