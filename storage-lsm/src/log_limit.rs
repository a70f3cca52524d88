//! Rate-limited logging for errors that repeat: a loop that fails the same
//! way every few milliseconds (a full disk, a flood of refused connections)
//! logs once per interval with a count of what it did not log, instead of
//! filling the log and the disk it may be short of.

use std::time::{Duration, Instant};

/// Says when a repeating message may be logged again.
#[derive(Debug)]
pub struct RateLimitedLog {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    pub fn new(interval: Duration) -> RateLimitedLog {
        RateLimitedLog {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when the caller should log now, `n` being how many times
    /// it was told not to since the last time; `None` to stay quiet.
    pub fn should_log(&mut self) -> Option<u64> {
        self.should_log_at(Instant::now())
    }

    fn should_log_at(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// Forgets the last time, so the next occurrence logs at once (after
    /// the condition cleared).
    pub fn reset(&mut self) {
        self.last = None;
        self.suppressed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_once_per_interval_with_the_count_suppressed() {
        let mut log = RateLimitedLog::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(log.should_log_at(start), Some(0));
        for ms in 1..500 {
            assert_eq!(
                log.should_log_at(start + Duration::from_millis(ms * 20)),
                None
            );
        }
        assert_eq!(
            log.should_log_at(start + Duration::from_secs(10)),
            Some(499)
        );
        assert_eq!(log.should_log_at(start + Duration::from_secs(11)), None);
    }
}
