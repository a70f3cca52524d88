//! The steps of a traced request (the CQL TRACING flag), gathered on the
//! thread that runs it: the front end [`begin`]s a trace, the front end and
//! the coordinator add [`event`]s, and [`finish`] hands them back for
//! `system_traces`.
//!
//! An untraced request pays one thread-local check per event point and
//! builds no text: [`event`] takes a closure. A traced request runs on one
//! blocking thread from start to end, so the thread's list is its own.

use std::cell::RefCell;
use std::time::{Duration, Instant};

/// Events one trace keeps, at most; the last one says that more were
/// dropped.
pub const TRACE_EVENTS_MAX: usize = 1_000;

/// One step of a traced request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    pub activity: String,
    /// Since the trace began.
    pub elapsed: Duration,
    /// The thread it ran on (`system_traces.events.thread`).
    pub thread: String,
}

struct Collecting {
    started: Instant,
    events: Vec<TraceEvent>,
}

thread_local! {
    static CURRENT: RefCell<Option<Collecting>> = const { RefCell::new(None) };
}

/// Starts tracing the request about to run on this thread (any earlier
/// trace left behind is dropped).
pub fn begin() {
    CURRENT.with(|current| {
        *current.borrow_mut() = Some(Collecting {
            started: Instant::now(),
            events: Vec::new(),
        })
    });
}

/// Whether the request running on this thread is traced.
pub fn active() -> bool {
    CURRENT.with(|current| current.borrow().is_some())
}

/// Adds a step to the trace of the request running on this thread, if it
/// is traced; `activity` is only called then.
pub fn event(activity: impl FnOnce() -> String) {
    CURRENT.with(|current| {
        let mut current = current.borrow_mut();
        let Some(collecting) = current.as_mut() else {
            return;
        };
        let activity = match collecting.events.len() {
            n if n + 1 < TRACE_EVENTS_MAX => activity(),
            n if n + 1 == TRACE_EVENTS_MAX => {
                format!("more events were dropped: a trace keeps at most {TRACE_EVENTS_MAX}")
            }
            _ => return,
        };
        let thread = std::thread::current()
            .name()
            .unwrap_or("request")
            .to_owned();
        collecting.events.push(TraceEvent {
            activity,
            elapsed: collecting.started.elapsed(),
            thread,
        });
    });
}

/// Ends this thread's trace: its events and how long it ran, or `None` if
/// no trace was begun.
pub fn finish() -> Option<(Vec<TraceEvent>, Duration)> {
    CURRENT.with(|current| {
        current
            .borrow_mut()
            .take()
            .map(|collecting| (collecting.events, collecting.started.elapsed()))
    })
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

        begin();
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
}
