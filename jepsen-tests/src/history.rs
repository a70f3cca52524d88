//! The history of a run: every client operation's invocation and
//! completion, as Jepsen records them. An operation completes `ok`, `fail`
//! (it definitely did not happen) or `info` (unknown: a timeout is always
//! `info`, never `fail`).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;

/// Invocation or one of the three completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Op {
    /// The client (Jepsen's process) that ran it.
    pub process: u32,
    pub kind: Kind,
    /// What it does: `add`, `read`, `write`.
    pub f: &'static str,
    /// Its argument or result (JSON).
    pub value: serde_json::Value,
    /// Nanoseconds since the run started.
    pub time: u64,
    /// The key it touched (register workload).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<i64>,
    /// Why it failed or is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The shared history of a run (bounded: a run's length and client count
/// bound it).
#[derive(Debug, Clone)]
pub struct History {
    started: Instant,
    ops: Arc<Mutex<Vec<Op>>>,
}

impl History {
    pub fn new(started: Instant) -> History {
        History {
            started,
            ops: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Nanoseconds since the run started.
    pub fn now(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }

    pub fn record(&self, mut op: Op) -> Op {
        op.time = self.now();
        self.ops.lock().push(op.clone());
        op
    }

    pub fn ops(&self) -> Vec<Op> {
        self.ops.lock().clone()
    }

    /// Writes the history as JSON lines.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for op in self.ops.lock().iter() {
            serde_json::to_writer(&mut out, op)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(())
    }
}

/// Pairs each completion with its invocation: `(invoke, completion)`, the
/// completion `None` if the run ended first (then it counts as `info`).
pub fn pairs(ops: &[Op]) -> Vec<(Op, Option<Op>)> {
    let mut open: std::collections::HashMap<u32, usize> = std::collections::HashMap::new();
    let mut out: Vec<(Op, Option<Op>)> = Vec::new();
    for op in ops {
        match op.kind {
            Kind::Invoke => {
                open.insert(op.process, out.len());
                out.push((op.clone(), None));
            }
            _ => {
                if let Some(i) = open.remove(&op.process) {
                    if let Some(pair) = out.get_mut(i) {
                        pair.1 = Some(op.clone());
                    }
                }
            }
        }
    }
    out
}
