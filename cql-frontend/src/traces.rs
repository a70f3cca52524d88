//! Query traces as clients read them: the sessions and events a traced
//! request leaves (see [`replication::trace`] for how its steps are
//! gathered), kept by the coordinator that ran it and served as the
//! `system_traces.sessions` and `system_traces.events` tables.
//!
//! Traces live in memory, the newest [`TRACE_SESSIONS_MAX`] of them, and
//! only on the node that coordinated the request (Cassandra writes them to
//! a replicated keyspace with a one-day TTL): read a trace through the
//! node that ran it, as drivers do on their control connection or the
//! request's own connection; a restart forgets them.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;

/// Trace sessions a node keeps, the newest; older ones are forgotten.
pub const TRACE_SESSIONS_MAX: usize = 1_000;

/// One step of a traced request, as `system_traces.events` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    /// A timeuuid of when it happened.
    pub event_id: [u8; 16],
    pub activity: String,
    pub source: IpAddr,
    /// Microseconds since the request began.
    pub source_elapsed_us: i32,
    pub thread: String,
}

/// One traced request, as `system_traces.sessions` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSession {
    /// A timeuuid of when it began: the id the response carries.
    pub session_id: [u8; 16],
    pub client: Option<IpAddr>,
    /// `QUERY`, `EXECUTE` or `BATCH`.
    pub command: &'static str,
    pub coordinator: IpAddr,
    pub coordinator_port: i32,
    /// `None` once deleted by a client (drivers poll for it).
    pub duration_us: Option<i32>,
    pub parameters: Vec<(String, String)>,
    /// What ran, as Cassandra names it (`Execute CQL3 query`, ...).
    pub request: String,
    pub started_at_ms: i64,
    pub events: Vec<TraceEvent>,
}

/// A traced request about to run: what its session row will say.
#[derive(Debug, Clone)]
pub struct TraceStart {
    pub session_id: [u8; 16],
    pub started_at: SystemTime,
    pub client: Option<IpAddr>,
    pub command: &'static str,
    pub request: String,
    pub parameters: Vec<(String, String)>,
}

impl TraceStart {
    /// A trace starting now, with a fresh session id.
    pub fn now(
        client: Option<IpAddr>,
        command: &'static str,
        request: &str,
        parameters: Vec<(String, String)>,
    ) -> TraceStart {
        let started_at = SystemTime::now();
        TraceStart {
            session_id: crate::values::timeuuid(micros_since_epoch(started_at)),
            started_at,
            client,
            command,
            request: request.to_owned(),
            parameters,
        }
    }

    /// The finished session, from the steps gathered while it ran.
    pub fn finish(
        self,
        coordinator: IpAddr,
        coordinator_port: u16,
        steps: Vec<replication::trace::TraceEvent>,
        duration: Duration,
    ) -> TraceSession {
        // Steps are timed from the session's `started_at`, a timestamp of
        // milliseconds, so that their times never precede it.
        let started_us = micros_since_epoch(self.started_at) / 1000 * 1000;
        // Event ids in the order the steps happened, strictly increasing
        // (two steps in the same microsecond get consecutive ones).
        let mut last_us = i64::MIN;
        let events = steps
            .into_iter()
            .map(|step| {
                let elapsed_us = i64::try_from(step.elapsed.as_micros()).unwrap_or(i64::MAX);
                let at_us = started_us.saturating_add(elapsed_us).max(last_us + 1);
                last_us = at_us;
                // A replica's step: its address, and its own time on the
                // request (as Cassandra's source_elapsed).
                let (source, source_elapsed) = match step.replica {
                    Some((replica, since_start)) => (replica, since_start),
                    None => (coordinator, step.elapsed),
                };
                TraceEvent {
                    event_id: crate::values::timeuuid(at_us),
                    activity: step.activity,
                    source,
                    source_elapsed_us: i32::try_from(source_elapsed.as_micros())
                        .unwrap_or(i32::MAX),
                    thread: step.thread,
                }
            })
            .collect();
        TraceSession {
            session_id: self.session_id,
            client: self.client,
            command: self.command,
            coordinator,
            coordinator_port: i32::from(coordinator_port),
            duration_us: Some(i32::try_from(duration.as_micros()).unwrap_or(i32::MAX)),
            parameters: self.parameters,
            request: self.request,
            started_at_ms: started_us / 1000,
            events,
        }
    }
}

fn micros_since_epoch(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The node's recent trace sessions.
#[derive(Debug, Default)]
pub struct TraceStore {
    sessions: Mutex<VecDeque<TraceSession>>,
    /// The share of requests traced without the client asking
    /// (`nodetool settraceprobability`), as an `f64`'s bits; 0 by default.
    probability: AtomicU64,
}

impl TraceStore {
    /// Sets the share of requests traced without the client asking: a
    /// number from 0 to 1 (anything else is refused, naming the range).
    pub fn set_probability(&self, probability: f64) -> Result<(), String> {
        if !(0.0..=1.0).contains(&probability) {
            return Err(format!(
                "Trace probability must be between 0 and 1, not {probability}"
            ));
        }
        self.probability
            .store(probability.to_bits(), Ordering::Relaxed);
        Ok(())
    }

    pub fn probability(&self) -> f64 {
        f64::from_bits(self.probability.load(Ordering::Relaxed))
    }

    /// Whether to trace a request the client did not ask to trace: one
    /// atomic load when the probability is 0.
    pub fn sample(&self) -> bool {
        let bits = self.probability.load(Ordering::Relaxed);
        bits != 0 && rand::random::<f64>() < f64::from_bits(bits)
    }

    /// Keeps a finished session (forgetting the oldest past the limit).
    pub fn record(&self, session: TraceSession) {
        let mut sessions = self.sessions.lock();
        while sessions.len() >= TRACE_SESSIONS_MAX {
            sessions.pop_front();
        }
        sessions.push_back(session);
    }

    /// Every session kept, oldest first.
    pub fn sessions(&self) -> Vec<TraceSession> {
        self.sessions.lock().iter().cloned().collect()
    }

    /// Deletes columns of a session's row (`DELETE duration FROM
    /// system_traces.sessions WHERE session_id = ...`), or the whole
    /// session and its events when `columns` is empty; returns whether the
    /// session was there.
    pub fn delete(&self, session_id: &[u8], columns: &[String]) -> Result<bool, String> {
        let mut sessions = self.sessions.lock();
        let Some(at) = sessions.iter().position(|s| s.session_id == session_id) else {
            return Ok(false);
        };
        if columns.is_empty() {
            sessions.remove(at);
            return Ok(true);
        }
        let Some(session) = sessions.get_mut(at) else {
            return Ok(false);
        };
        for column in columns {
            match column.as_str() {
                "duration" => session.duration_us = None,
                "client" => session.client = None,
                "parameters" => session.parameters.clear(),
                other => {
                    return Err(format!(
                        "not yet supported: deleting {other} from system_traces.sessions \
                         (duration, client and parameters can be deleted)"
                    ))
                }
            }
        }
        Ok(true)
    }
}

/// A session's id as the 16 bytes of its uuid.
pub fn session_id_bytes(session: &TraceSession) -> Bytes {
    Bytes::copy_from_slice(&session.session_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn the_trace_probability_is_a_share_from_0_to_1() {
        let store = TraceStore::default();
        assert_eq!(store.probability(), 0.0);
        assert!((0..1000).all(|_| !store.sample()), "nothing sampled at 0");
        assert_eq!(store.set_probability(1.0), Ok(()));
        assert!((0..1000).all(|_| store.sample()), "everything sampled at 1");
        assert_eq!(store.set_probability(0.25), Ok(()));
        let sampled = (0..10_000).filter(|_| store.sample()).count();
        assert!(
            (2_000..3_000).contains(&sampled),
            "{sampled} of 10000 at 0.25"
        );
        for wrong in [-0.1, 1.5, f64::NAN] {
            let refused = store.set_probability(wrong);
            assert!(
                refused.is_err_and(|e| e.contains("between 0 and 1")),
                "{wrong}"
            );
        }
        assert_eq!(store.probability(), 0.25, "a refused value changes nothing");
    }

    fn session(n: u8) -> TraceSession {
        TraceStart::now(None, "QUERY", &format!("q{n}"), Vec::new()).finish(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            9042,
            vec![
                replication::trace::TraceEvent {
                    activity: "a".into(),
                    elapsed: Duration::from_micros(5),
                    thread: "t".into(),
                    replica: None,
                },
                replication::trace::TraceEvent {
                    activity: "b".into(),
                    elapsed: Duration::from_micros(5),
                    thread: "t".into(),
                    replica: None,
                },
            ],
            Duration::from_micros(10),
        )
    }

    #[test]
    fn store_is_bounded_and_deletes_columns_or_sessions() {
        let store = TraceStore::default();
        for n in 0..=(TRACE_SESSIONS_MAX as u32) {
            store.record(session((n % 256) as u8));
        }
        let kept = store.sessions();
        assert_eq!(kept.len(), TRACE_SESSIONS_MAX);
        let first = kept[0].clone();
        assert_eq!(first.duration_us, Some(10));
        assert!(
            first.events[0].event_id != first.events[1].event_id,
            "steps in one microsecond get distinct ids"
        );
        assert_eq!(
            store.delete(&first.session_id, &["duration".into()]),
            Ok(true)
        );
        let after = store.sessions();
        assert_eq!(after[0].duration_us, None);
        assert!(store
            .delete(&first.session_id, &["request".into()])
            .unwrap_err()
            .contains("not yet supported"));
        assert_eq!(store.delete(&first.session_id, &[]), Ok(true));
        assert_eq!(store.sessions().len(), TRACE_SESSIONS_MAX - 1);
        assert_eq!(store.delete(&[0; 16], &[]), Ok(false));
    }
}
