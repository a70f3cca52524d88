//! The engine's one source of time. Tests inject a [`ManualClock`] to make
//! TTL expiry and tombstone purging deterministic.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock time in seconds since the Unix epoch (for TTL and gc_grace).
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_s(&self) -> i64;
}

/// The machine's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_s(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default, Clone)]
pub struct ManualClock {
    now_s: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn new(now_s: i64) -> ManualClock {
        ManualClock {
            now_s: Arc::new(AtomicI64::new(now_s)),
        }
    }

    pub fn set(&self, now_s: i64) {
        self.now_s.store(now_s, Ordering::SeqCst);
    }

    pub fn advance(&self, seconds: i64) {
        self.now_s.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_s(&self) -> i64 {
        self.now_s.load(Ordering::SeqCst)
    }
}
