//! The engine's background threads (flush, compaction) run at a lower
//! scheduling priority than the threads serving requests, as Cassandra's
//! compaction threads do: on a small machine a compaction then costs
//! requests throughput, not latency. Memtable back-pressure keeps a
//! starved flusher from letting memory grow.

/// Niceness of the flush thread: behind requests, ahead of compaction.
pub const FLUSH_NICENESS: i32 = 5;
/// Niceness of the compaction thread.
pub const COMPACTION_NICENESS: i32 = 10;

/// Scheduling slice asked for by threads that serve requests.
pub const REQUEST_SLICE: std::time::Duration = std::time::Duration::from_micros(100);

/// Sets the calling thread's niceness (lowered for the background threads)
/// and its scheduling slice: `Some` asks for a custom slice, `None` for
/// the kernel's default. Linux (6.12 on, EEVDF) lets a waking thread with a
/// shorter slice preempt a running one with a longer slice at once, instead
/// of waiting for that thread's slice to end: a request thread (asking for
/// [`REQUEST_SLICE`]) woken by a client does not wait behind a flush or a
/// compaction for a millisecond or more. Shares of the CPU still follow
/// niceness only. Threads inherit these settings, so background threads
/// started from a request thread set theirs back to the default slice.
/// Older kernels ignore the slice; a refusal is logged and otherwise
/// ignored: it costs latency, not data.
pub fn set_scheduling(niceness: i32, slice: Option<std::time::Duration>) {
    #[cfg(target_os = "linux")]
    {
        let attr = SchedAttr {
            size: std::mem::size_of::<SchedAttr>() as u32,
            policy: libc::SCHED_OTHER as u32,
            flags: 0,
            nice: niceness,
            priority: 0,
            runtime_ns: slice.map_or(0, |s| s.as_nanos().min(u128::from(u64::MAX)) as u64),
            deadline_ns: 0,
            period_ns: 0,
        };
        #[allow(unsafe_code)]
        // SAFETY: sched_setattr reads `attr.size` bytes from a live struct
        // laid out as the kernel's; pid 0 is the calling thread.
        let result =
            unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0u32) };
        if result != 0 {
            tracing::debug!(
                niceness,
                ?slice,
                error = %std::io::Error::last_os_error(),
                "could not set a thread's scheduling"
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (niceness, slice);
}

/// The layout of Linux's `struct sched_attr` (its first version, 48 bytes).
#[cfg(target_os = "linux")]
#[repr(C)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime_ns: u64,
    deadline_ns: u64,
    period_ns: u64,
}
