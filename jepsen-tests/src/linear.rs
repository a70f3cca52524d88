//! A linearizability checker for a single read/write register: the
//! Wing-Gong search with Lowe's memoization (the algorithm of Knossos'
//! `wgl` and Porcupine).
//!
//! Each operation has an invocation and a completion time. The search walks
//! the history in time order, tries to linearize a pending call against the
//! register's state, and backtracks when it reaches a completion whose call
//! it could not place. A set of (linearized operations, state) pairs already
//! explored cuts repeated work. Operations whose outcome is unknown
//! (`info`: a timeout) never complete: a write may take effect at any point
//! after its invocation, or never; a read with unknown outcome tells
//! nothing and is left out.

use std::collections::HashSet;

/// What a register operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOp {
    Write(i64),
    /// A read and the value it returned (`None`: never written).
    Read(Option<i64>),
}

/// One operation of a history, with its real-time interval. `returned` is
/// `None` for an operation whose outcome is unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timed {
    pub op: RegisterOp,
    pub invoked: u64,
    pub returned: Option<u64>,
}

/// Why a history is not linearizable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The operation (index into the history) whose completion the deepest
    /// explored order could not get past: where the anomaly is.
    pub stuck_at: usize,
    /// Most operations any explored order linearized.
    pub deepest: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Call(usize),
    Return(usize),
}

/// A doubly linked list of events over a vector (indices as links).
struct Events {
    events: Vec<Event>,
    next: Vec<Option<usize>>,
    prev: Vec<Option<usize>>,
    head: Option<usize>,
    /// Position of each operation's return event, if it has one.
    return_of: Vec<Option<usize>>,
}

impl Events {
    fn new(history: &[Timed]) -> Events {
        // Calls at the same instant as a return come after it: an operation
        // that returned at t does not overlap one invoked at t.
        let mut timed: Vec<(u64, u8, Event)> = Vec::new();
        for (i, t) in history.iter().enumerate() {
            timed.push((t.invoked, 1, Event::Call(i)));
            if let Some(returned) = t.returned {
                timed.push((returned, 0, Event::Return(i)));
            }
        }
        timed.sort_by_key(|(time, order, _)| (*time, *order));
        let events: Vec<Event> = timed.into_iter().map(|(_, _, e)| e).collect();
        let n = events.len();
        let mut return_of = vec![None; history.len()];
        for (position, event) in events.iter().enumerate() {
            if let Event::Return(op) = event {
                if let Some(slot) = return_of.get_mut(*op) {
                    *slot = Some(position);
                }
            }
        }
        Events {
            events,
            next: (0..n).map(|i| (i + 1 < n).then_some(i + 1)).collect(),
            prev: (0..n).map(|i| i.checked_sub(1)).collect(),
            head: (n > 0).then_some(0),
            return_of,
        }
    }

    fn unlink(&mut self, at: usize) {
        let (prev, next) = (self.prev[at], self.next[at]);
        match prev {
            Some(p) => self.next[p] = next,
            None => self.head = next,
        }
        if let Some(n) = next {
            self.prev[n] = prev;
        }
    }

    fn relink(&mut self, at: usize) {
        let (prev, next) = (self.prev[at], self.next[at]);
        match prev {
            Some(p) => self.next[p] = Some(at),
            None => self.head = Some(at),
        }
        if let Some(n) = next {
            self.prev[n] = Some(at);
        }
    }
}

/// A set of operation indices, hashable for the memo.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize, on: bool) {
        if let Some(word) = self.0.get_mut(i / 64) {
            if on {
                *word |= 1 << (i % 64);
            } else {
                *word &= !(1 << (i % 64));
            }
        }
    }
    fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// The register's answer to `op` in `state`: the next state, or None if
/// the operation cannot happen there.
fn step(state: Option<i64>, op: RegisterOp) -> Option<Option<i64>> {
    match op {
        RegisterOp::Write(value) => Some(Some(value)),
        RegisterOp::Read(seen) => (seen == state).then_some(state),
    }
}

/// Checks that `history` (one register, starting unwritten) is
/// linearizable.
pub fn check(history: &[Timed]) -> Result<(), Violation> {
    // Reads of unknown outcome constrain nothing.
    let kept: Vec<usize> = (0..history.len())
        .filter(|i| {
            history
                .get(*i)
                .is_some_and(|t| t.returned.is_some() || matches!(t.op, RegisterOp::Write(_)))
        })
        .collect();
    let ops: Vec<Timed> = kept
        .iter()
        .filter_map(|i| history.get(*i).cloned())
        .collect();
    let mut events = Events::new(&ops);
    let mut state: Option<i64> = None;
    let mut linearized = Bits::new(ops.len());
    let mut memo: HashSet<(Bits, Option<i64>)> = HashSet::new();
    // (call event position, state before it)
    let mut stack: Vec<(usize, Option<i64>)> = Vec::new();
    let mut deepest = 0;
    let mut stuck_at = 0;
    let mut cursor = events.head;
    loop {
        // Done when only calls that never return are left.
        let unfinished = {
            let mut at = events.head;
            let mut any = false;
            while let Some(position) = at {
                if matches!(events.events[position], Event::Return(_)) {
                    any = true;
                    break;
                }
                at = events.next[position];
            }
            any
        };
        if !unfinished {
            return Ok(());
        }
        let Some(position) = cursor else {
            // Only unplaceable calls remain before the end: backtrack.
            match backtrack(&mut events, &mut stack, &mut linearized, &mut state) {
                Some(next) => {
                    cursor = next;
                    continue;
                }
                None => return Err(Violation { stuck_at, deepest }),
            }
        };
        match events.events[position] {
            Event::Call(op) => {
                let next_state = ops.get(op).and_then(|t| step(state, t.op));
                let mut placed = false;
                if let Some(next_state) = next_state {
                    let mut after = linearized.clone();
                    after.set(op, true);
                    if memo.insert((after.clone(), next_state)) {
                        stack.push((position, state));
                        state = next_state;
                        linearized = after;
                        deepest = deepest.max(linearized.count());
                        events.unlink(position);
                        if let Some(r) = events.return_of[op] {
                            events.unlink(r);
                        }
                        cursor = events.head;
                        placed = true;
                    }
                }
                if !placed {
                    cursor = events.next[position];
                }
            }
            Event::Return(op) => {
                if linearized.count() >= deepest {
                    stuck_at = kept.get(op).copied().unwrap_or(op);
                }
                match backtrack(&mut events, &mut stack, &mut linearized, &mut state) {
                    Some(next) => cursor = next,
                    None => return Err(Violation { stuck_at, deepest }),
                }
            }
        }
    }
}

/// Undoes the last linearized call; returns where the search goes on (the
/// event after that call), or None when nothing is left to undo.
fn backtrack(
    events: &mut Events,
    stack: &mut Vec<(usize, Option<i64>)>,
    linearized: &mut Bits,
    state: &mut Option<i64>,
) -> Option<Option<usize>> {
    let (position, before) = stack.pop()?;
    let Event::Call(op) = events.events[position] else {
        return None;
    };
    if let Some(r) = events.return_of[op] {
        events.relink(r);
    }
    events.relink(position);
    linearized.set(op, false);
    *state = before;
    Some(events.next[position])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(value: i64, invoked: u64, returned: u64) -> Timed {
        Timed {
            op: RegisterOp::Write(value),
            invoked,
            returned: Some(returned),
        }
    }

    fn r(seen: Option<i64>, invoked: u64, returned: u64) -> Timed {
        Timed {
            op: RegisterOp::Read(seen),
            invoked,
            returned: Some(returned),
        }
    }

    #[test]
    fn sequential_histories() {
        assert!(check(&[]).is_ok());
        assert!(check(&[r(None, 0, 1), w(1, 2, 3), r(Some(1), 4, 5)]).is_ok());
        assert!(
            check(&[w(1, 0, 1), r(None, 2, 3)]).is_err(),
            "a read after a write misses it"
        );
        assert!(
            check(&[w(1, 0, 1), w(2, 2, 3), r(Some(1), 4, 5)]).is_err(),
            "stale read"
        );
    }

    #[test]
    fn concurrent_operations_may_take_either_order() {
        // Two overlapping writes: a later read may see either.
        assert!(check(&[w(1, 0, 10), w(2, 1, 9), r(Some(1), 11, 12)]).is_ok());
        assert!(check(&[w(1, 0, 10), w(2, 1, 9), r(Some(2), 11, 12)]).is_ok());
        // A read overlapping a write sees the old or the new value...
        assert!(check(&[w(1, 0, 1), w(2, 2, 10), r(Some(1), 3, 4), r(Some(2), 5, 6)]).is_ok());
        // ...but not new then old (the register went back).
        assert!(check(&[w(1, 0, 1), w(2, 2, 10), r(Some(2), 3, 4), r(Some(1), 5, 6)]).is_err());
    }

    #[test]
    fn unknown_outcomes() {
        // A timed-out write may take effect late...
        let late = Timed {
            op: RegisterOp::Write(7),
            invoked: 0,
            returned: None,
        };
        assert!(check(&[late.clone(), r(None, 1, 2), r(Some(7), 3, 4)]).is_ok());
        // ...or never.
        assert!(check(&[late.clone(), r(None, 1, 2), r(None, 3, 4)]).is_ok());
        // But not before it was invoked.
        let late_after = Timed { invoked: 5, ..late };
        assert!(check(&[r(Some(7), 1, 2), late_after]).is_err());
        // A read with unknown outcome constrains nothing.
        let lost_read = Timed {
            op: RegisterOp::Read(Some(99)),
            invoked: 0,
            returned: None,
        };
        assert!(check(&[w(1, 0, 1), lost_read]).is_ok());
    }

    #[test]
    fn a_larger_history_is_checked_quickly() {
        // 3 clients, 600 operations, each read sees the last write.
        let mut history = Vec::new();
        let mut value = None;
        for i in 0..600u64 {
            let t = i * 10;
            if i % 3 == 0 {
                history.push(w(i as i64, t, t + 5));
                value = Some(i as i64);
            } else {
                history.push(r(value, t, t + 5));
            }
        }
        let started = std::time::Instant::now();
        assert!(check(&history).is_ok());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}
