//! The steps of a traced request (the CQL TRACING flag), gathered on the
//! thread that runs it: the front end [`begin`]s a trace, the front end and
//! the coordinator add [`event`]s, and [`finish`] hands them back for
//! `system_traces`.
//!
//! Replicas' steps come back with their replies: a request sent while a
//! trace is being gathered carries the trace's id ([`current_id`]); the
//! replica gathers its own steps the same way ([`begin_replica`],
//! [`finish_replica`]) and returns them; the messaging reader hands them
//! to [`deliver`], which keeps them for the trace until it finishes (a
//! bounded inbox, as the reader runs on another thread).
//!
//! An untraced request pays one thread-local check per event point and
//! builds no text: [`event`] takes a closure. A traced request runs on one
//! blocking thread from start to end, so the thread's list is its own.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Events one trace keeps, at most; the last one says that more were
/// dropped.
pub const TRACE_EVENTS_MAX: usize = 1_000;
/// Traces whose replicas' steps are awaited at once, at most (past it,
/// a trace records its own steps only).
pub const TRACES_AWAITING_REPLICAS_MAX: usize = 1_024;

/// One step of a traced request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    pub activity: String,
    /// Since the trace began on the coordinator (a replica's step: as
    /// estimated from when its reply arrived).
    pub elapsed: Duration,
    /// The thread it ran on (`system_traces.events.thread`).
    pub thread: String,
    /// A replica's step: the replica, and the time since it began the
    /// request (`system_traces.events.source_elapsed`).
    pub replica: Option<(IpAddr, Duration)>,
}

/// A replica's steps for one traced request, sent back with its reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplicaSteps {
    /// The trace they belong to.
    pub trace: u64,
    /// How long the replica worked on the request.
    pub took: Duration,
    /// Each step, timed from when the replica began.
    pub events: Vec<(String, Duration, String)>,
}

struct Collecting {
    /// `Some` for a coordinator's trace (replicas send steps to it).
    id: Option<u64>,
    started: Instant,
    events: Vec<TraceEvent>,
}

thread_local! {
    static CURRENT: RefCell<Option<Collecting>> = const { RefCell::new(None) };
}

/// Replicas' steps for a trace being gathered.
struct Inbox {
    started: Instant,
    events: Vec<TraceEvent>,
}

/// The inboxes of the traces being gathered on this node, by trace id.
fn inboxes() -> &'static Mutex<HashMap<u64, Inbox>> {
    static INBOXES: OnceLock<Mutex<HashMap<u64, Inbox>>> = OnceLock::new();
    INBOXES.get_or_init(|| Mutex::new(HashMap::new()))
}

fn start(id: Option<u64>) {
    CURRENT.with(|current| {
        *current.borrow_mut() = Some(Collecting {
            id,
            started: Instant::now(),
            events: Vec::new(),
        })
    });
}

/// Held while a request is traced: dropped without [`finish`] (a panic
/// unwinding through the request), it ends the trace, so the thread's next
/// request is not traced and the trace's inbox is given back.
#[must_use = "the trace ends when this is dropped"]
pub struct Tracing(());

impl Drop for Tracing {
    fn drop(&mut self) {
        let left = CURRENT.with(|current| current.borrow_mut().take());
        if let Some(id) = left.and_then(|c| c.id) {
            inboxes().lock().remove(&id);
        }
    }
}

/// Starts tracing the request about to run on this thread (any earlier
/// trace left behind is dropped); replicas' steps for it are kept until
/// [`finish`].
pub fn begin() -> Tracing {
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut inboxes = inboxes().lock();
    let awaited = inboxes.len() < TRACES_AWAITING_REPLICAS_MAX;
    if awaited {
        inboxes.insert(
            id,
            Inbox {
                started: Instant::now(),
                events: Vec::new(),
            },
        );
    }
    drop(inboxes);
    start(awaited.then_some(id));
    Tracing(())
}

/// Starts gathering a replica's steps for the coordinator's trace `id`.
pub fn begin_replica(id: u64) -> Tracing {
    start(Some(id));
    Tracing(())
}

/// Whether the request running on this thread is traced.
pub fn active() -> bool {
    CURRENT.with(|current| current.borrow().is_some())
}

/// The id requests sent from this thread carry so that replicas trace
/// their steps: `Some` only while a coordinator's trace is gathered.
pub fn current_id() -> Option<u64> {
    CURRENT.with(|current| current.borrow().as_ref().and_then(|c| c.id))
}

/// Adds a step to the trace of the request running on this thread, if it
/// is traced; `activity` is only called then.
pub fn event(activity: impl FnOnce() -> String) {
    CURRENT.with(|current| {
        let mut current = current.borrow_mut();
        let Some(collecting) = current.as_mut() else {
            return;
        };
        let Some(activity) = bounded(collecting.events.len(), activity) else {
            return;
        };
        let thread = std::thread::current()
            .name()
            .unwrap_or("request")
            .to_owned();
        collecting.events.push(TraceEvent {
            activity,
            elapsed: collecting.started.elapsed(),
            thread,
            replica: None,
        });
    });
}

/// The activity of the next event of a trace holding `held`: itself, the
/// note that more were dropped, or nothing past the limit.
fn bounded(held: usize, activity: impl FnOnce() -> String) -> Option<String> {
    match held {
        n if n + 1 < TRACE_EVENTS_MAX => Some(activity()),
        n if n + 1 == TRACE_EVENTS_MAX => Some(format!(
            "more events were dropped: a trace keeps at most {TRACE_EVENTS_MAX}"
        )),
        _ => None,
    }
}

/// Ends this thread's trace: its events (with the replicas' that came
/// back, in time order) and how long it ran, or `None` if no trace was
/// begun.
pub fn finish() -> Option<(Vec<TraceEvent>, Duration)> {
    let collecting = CURRENT.with(|current| current.borrow_mut().take())?;
    let mut events = collecting.events;
    if let Some(inbox) = collecting.id.and_then(|id| inboxes().lock().remove(&id)) {
        events.extend(inbox.events);
        events.sort_by_key(|e| e.elapsed);
        events.truncate(TRACE_EVENTS_MAX);
    }
    Some((events, collecting.started.elapsed()))
}

/// Ends a replica's gathering: the steps to send back, or `None` if none
/// was begun.
pub fn finish_replica() -> Option<ReplicaSteps> {
    let collecting = CURRENT.with(|current| current.borrow_mut().take())?;
    Some(ReplicaSteps {
        trace: collecting.id.unwrap_or(0),
        took: collecting.started.elapsed(),
        events: collecting
            .events
            .into_iter()
            .map(|e| (e.activity, e.elapsed, e.thread))
            .collect(),
    })
}

/// Traces which memtables and SSTables hold a partition being read (looked
/// up again: for traced reads only).
pub fn trace_sources(
    engine: &storage_lsm::Engine,
    table: storage_lsm::model::TableId,
    key: &storage_lsm::model::PartitionKey,
) {
    if !active() {
        return;
    }
    match engine.sources_of(table, key) {
        Ok(sources) => event(|| {
            format!(
                "Merged data from {} memtables and {} of {} SSTables",
                sources.memtables, sources.sstables, sources.sstables_total
            )
        }),
        Err(error) => event(|| format!("Could not list the partition's sources: {error}")),
    }
}

/// Traces a partition read's sources and what it found: the memtables
/// and SSTables holding the partition (looked up again, for traced reads
/// only), its rows and its tombstones.
pub fn trace_read(
    engine: &storage_lsm::Engine,
    table: storage_lsm::model::TableId,
    key: &storage_lsm::model::PartitionKey,
    data: Option<&storage_lsm::model::PartitionUpdate>,
) {
    if !active() {
        return;
    }
    trace_sources(engine, table, key);
    let (rows, tombstones) = data.map_or((0, 0), |update| {
        let rows = update.rows.iter().filter(|r| r.deletion.is_none()).count();
        let cells = update
            .rows
            .iter()
            .chain(&update.static_row)
            .flat_map(|r| &r.cells)
            .filter(|c| c.is_tombstone())
            .count();
        let deletions = update.rows.iter().filter(|r| r.deletion.is_some()).count()
            + update.range_tombstones.len()
            + usize::from(update.partition_deletion.is_some());
        (rows, cells + deletions)
    });
    event(|| format!("Read {rows} rows and {tombstones} tombstones"));
}

/// Keeps a replica's steps for their trace, if it is still gathered (a
/// reply that comes after the trace finished is dropped). Each step is
/// placed on the coordinator's time line as if the reply left the replica
/// the moment it arrived.
pub fn deliver(replica: IpAddr, steps: ReplicaSteps) {
    let mut inboxes = inboxes().lock();
    let Some(inbox) = inboxes.get_mut(&steps.trace) else {
        return;
    };
    let arrived = inbox.started.elapsed();
    for (activity, since_start, thread) in steps.events {
        let Some(activity) = bounded(inbox.events.len(), || activity) else {
            return;
        };
        let before_reply = steps.took.saturating_sub(since_start);
        inbox.events.push(TraceEvent {
            activity,
            elapsed: arrived.saturating_sub(before_reply),
            thread,
            replica: Some((replica, since_start)),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_kept_only_while_tracing_and_bounded() {
        let _ = finish();
        let mut called = false;
        event(|| {
            called = true;
            "untraced".into()
        });
        assert!(!called, "an untraced request builds no event text");
        assert!(finish().is_none());

        let _tracing = begin();
        assert!(active());
        event(|| "first".into());
        for n in 0..2 * TRACE_EVENTS_MAX {
            event(|| format!("e{n}"));
        }
        let Some((events, elapsed)) = finish() else {
            panic!("a trace was begun");
        };
        assert!(!active());
        assert_eq!(events.len(), TRACE_EVENTS_MAX);
        assert_eq!(events[0].activity, "first");
        assert!(events[TRACE_EVENTS_MAX - 1]
            .activity
            .contains("at most 1000"));
        assert!(events.windows(2).all(|w| w[0].elapsed <= w[1].elapsed));
        assert!(elapsed >= events[TRACE_EVENTS_MAX - 1].elapsed);
    }

    #[test]
    fn a_trace_abandoned_by_a_panic_ends_with_it() {
        let _ = finish();
        let unwound = std::panic::catch_unwind(|| {
            let _tracing = begin();
            event(|| "before the panic".into());
            let id = current_id();
            assert!(id.is_some());
            std::panic::panic_any(id)
        });
        let id = unwound
            .err()
            .and_then(|payload| payload.downcast::<Option<u64>>().ok())
            .and_then(|id| *id);
        assert!(!active(), "the thread's next request is not traced");
        assert_eq!(current_id(), None);
        assert!(
            id.is_some_and(|id| !inboxes().lock().contains_key(&id)),
            "inbox given back"
        );
    }

    #[test]
    fn replicas_steps_join_the_trace_they_belong_to() {
        let _ = finish();
        assert_eq!(current_id(), None, "no trace, no id to send");
        let _tracing = begin();
        event(|| "coordinator step".into());
        let Some(id) = current_id() else {
            panic!("a coordinator's trace has an id for its replicas");
        };
        // On the replica (another thread in a real node).
        let steps = std::thread::spawn(move || {
            let _tracing = begin_replica(id);
            assert_eq!(current_id(), Some(id));
            event(|| "replica step".into());
            finish_replica()
        })
        .join()
        .ok()
        .flatten();
        let Some(steps) = steps else {
            panic!("the replica's steps");
        };
        assert_eq!(steps.trace, id);
        let replica = IpAddr::from([127, 0, 0, 2]);
        deliver(replica, steps.clone());
        deliver(
            replica,
            ReplicaSteps {
                trace: id ^ 1,
                ..steps.clone()
            },
        );
        let Some((events, _)) = finish() else {
            panic!("a trace was begun");
        };
        let activities: Vec<&str> = events.iter().map(|e| e.activity.as_str()).collect();
        assert_eq!(activities, ["coordinator step", "replica step"]);
        assert_eq!(events[1].replica.map(|(ip, _)| ip), Some(replica));
        // After the trace finished, its replicas' steps are dropped.
        deliver(replica, steps);
        assert!(!inboxes().lock().contains_key(&id));
    }
}
