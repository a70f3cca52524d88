//! Client warnings (protocol v4+, the WARNING flag): what a statement tells
//! its client beside its answer, as Cassandra's `ClientWarn` does — a batch
//! larger than `batch_size_warn_threshold`, an unlogged batch over more
//! than 10 partitions, an aggregate over a whole table or over several
//! partitions named by IN.
//!
//! A statement runs synchronously on one thread, so its warnings gather in
//! that thread's list: [`begin`] empties it before the statement, the
//! statement calls [`warn`], and [`take`] hands them to the response
//! right after, on the same thread.

use std::cell::RefCell;

/// Warnings one statement may leave, at most (more are dropped).
const WARNINGS_MAX: usize = 16;

/// Cassandra's `batch_size_warn_threshold` default: 5 KiB.
pub const BATCH_SIZE_WARN_BYTES: usize = 5 * 1024;

thread_local! {
    static PENDING: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Starts a statement: no warnings yet.
pub fn begin() {
    PENDING.with(|pending| pending.borrow_mut().clear());
}

/// Adds a warning for the statement running on this thread.
pub fn warn(message: String) {
    PENDING.with(|pending| {
        let mut pending = pending.borrow_mut();
        if pending.contains(&message) || pending.len() >= WARNINGS_MAX {
            return;
        }
        // The last slot says that the limit was reached, rather than
        // dropping warnings silently.
        if pending.len() == WARNINGS_MAX - 1 {
            pending.push(format!(
                "more warnings were dropped: at most {WARNINGS_MAX} are sent per statement"
            ));
            return;
        }
        pending.push(message);
    });
}

/// The statement's warnings (and none left behind).
pub fn take() -> Vec<String> {
    PENDING.with(|pending| std::mem::take(&mut *pending.borrow_mut()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_per_statement_deduplicated_and_bounded() {
        begin();
        warn("a".into());
        warn("a".into());
        assert_eq!(take(), vec!["a".to_owned()]);
        assert!(take().is_empty(), "taken once");
        warn("left behind".into());
        begin();
        assert!(take().is_empty(), "a new statement starts clean");
        for n in 0..100 {
            warn(format!("w{n}"));
        }
        let kept = take();
        assert_eq!(kept.len(), WARNINGS_MAX);
        assert!(kept[WARNINGS_MAX - 1].contains("at most 16"), "{kept:?}");
    }
}
