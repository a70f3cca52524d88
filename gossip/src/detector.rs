//! Phi-accrual failure detection, with Cassandra's semantics: the time
//! since an endpoint's last heartbeat, measured against the mean of recent
//! intervals between heartbeats, as `phi = (elapsed / mean) / ln 10`. An
//! endpoint is convicted when phi passes `phi_convict_threshold` (8 by
//! default: about 18 mean intervals of silence).
//!
//! The mean is kept between half and one echo interval: a live peer is
//! heard from at least once an echo interval, so a larger mean only says
//! that a few early samples were slow (a young window, a loaded machine),
//! and a smaller one would convict after a second or two of silence. At
//! the default threshold a silent peer is convicted after 4.6 to 9.2 s.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// 1 / ln(10) = log10(e): phi for exponentially distributed arrivals.
const PHI_FACTOR: f64 = std::f64::consts::LOG10_E;
/// Intervals remembered per endpoint.
const WINDOW: usize = 1_000;
/// An interval longer than this is a gap (a restart, a pause), not a sample.
const MAX_INTERVAL: Duration = Duration::from_secs(2);
/// Evidence closer than this to the last is the same evidence (a heartbeat
/// and the message that carried it), not a new arrival.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The interval assumed before any has been seen, and the largest mean
/// used: the echo period, the interval a live peer keeps to.
const INITIAL_INTERVAL: Duration = crate::core::ECHO_INTERVAL;
/// The smallest mean used, half the echo period: evidence more frequent
/// than this does not make a short silence more suspicious.
const MIN_MEAN: Duration = Duration::from_millis(250);

/// Heartbeat arrivals of one endpoint.
#[derive(Debug, Clone)]
pub struct ArrivalWindow {
    last: Instant,
    intervals: VecDeque<Duration>,
    sum: Duration,
}

impl ArrivalWindow {
    /// A window whose first arrival is `now`.
    pub fn new(now: Instant) -> ArrivalWindow {
        ArrivalWindow {
            last: now,
            intervals: VecDeque::new(),
            sum: Duration::ZERO,
        }
    }

    /// Evidence that the endpoint is alive (a newer heartbeat, or a message
    /// from it) arrived at `now`.
    pub fn report(&mut self, now: Instant) {
        let interval = now.saturating_duration_since(self.last);
        if interval < MIN_INTERVAL {
            return;
        }
        self.last = now;
        if interval > MAX_INTERVAL {
            return;
        }
        if self.intervals.len() == WINDOW {
            if let Some(oldest) = self.intervals.pop_front() {
                self.sum = self.sum.saturating_sub(oldest);
            }
        }
        self.intervals.push_back(interval);
        self.sum += interval;
    }

    fn mean(&self) -> Duration {
        match u32::try_from(self.intervals.len()) {
            Ok(n) if n > 0 => (self.sum / n).clamp(MIN_MEAN, INITIAL_INTERVAL),
            _ => INITIAL_INTERVAL,
        }
    }

    /// Suspicion that the endpoint is down, at `now`.
    pub fn phi(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        let mean = self.mean().as_secs_f64().max(1e-6);
        PHI_FACTOR * elapsed / mean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phi_grows_with_silence_relative_to_the_usual_interval() {
        let start = Instant::now();
        let mut window = ArrivalWindow::new(start);
        for i in 1..=10 {
            window.report(start + Duration::from_millis(400 * i));
        }
        let last = start + Duration::from_secs(4);
        assert!(window.phi(last) < 0.01);
        // 8 / 0.434 ≈ 18.4 mean intervals (0.4 s) of silence convict.
        assert!(window.phi(last + Duration::from_millis(7_200)) < 8.0);
        assert!(window.phi(last + Duration::from_millis(7_600)) > 8.0);
    }

    #[test]
    fn slow_early_samples_do_not_delay_conviction_past_the_echo_bound() {
        // A window that has only seen a few slow intervals (a node that
        // just joined on a loaded machine) still convicts within 9.2 s.
        let start = Instant::now();
        let mut window = ArrivalWindow::new(start);
        window.report(start + Duration::from_millis(1_900));
        window.report(start + Duration::from_millis(3_500));
        let last = start + Duration::from_millis(3_500);
        assert!(window.phi(last + Duration::from_secs(9)) < 8.0);
        assert!(window.phi(last + Duration::from_millis(9_300)) > 8.0);
    }

    #[test]
    fn frequent_evidence_does_not_convict_after_a_short_silence() {
        let start = Instant::now();
        let mut window = ArrivalWindow::new(start);
        for i in 1..=50 {
            window.report(start + Duration::from_millis(100 * i));
        }
        let last = start + Duration::from_secs(5);
        // Not after 4.5 s (18.4 intervals of 0.1 s would be 1.8 s) …
        assert!(window.phi(last + Duration::from_millis(4_500)) < 8.0);
        // … but after 4.7 s, 18.4 intervals of the 0.25 s floor.
        assert!(window.phi(last + Duration::from_millis(4_700)) > 8.0);
    }

    #[test]
    fn long_gaps_are_not_samples() {
        let start = Instant::now();
        let mut window = ArrivalWindow::new(start);
        window.report(start + Duration::from_secs(60));
        assert_eq!(window.mean(), INITIAL_INTERVAL);
        window.report(start + Duration::from_millis(60_400));
        assert_eq!(window.mean(), Duration::from_millis(400));
    }
}
