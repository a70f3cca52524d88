//! Paces a `--rate` run: a thread of its own releases one permit per
//! operation as each falls due, about every 50 µs, and workers wait for a
//! permit before taking their next operation.
//!
//! The async runtime's timers tick once a millisecond, so workers sleeping
//! on them would wake together and send their operations in bursts (25 at
//! once at 25,000 ops/s), measuring the burst instead of the server. A
//! thread sleeping on the kernel's high-resolution timers spreads them out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// How long the pacing thread sleeps between releases.
const TICK: Duration = Duration::from_micros(50);
/// Permits waiting unclaimed at most (a stalled server leaves them piling up;
/// operation numbers, not permits, keep the intended schedule).
const WAITING_PERMITS_MAX: usize = 1 << 20;

/// The pacing thread and the permits it releases.
pub struct Pacer {
    permits: Arc<Semaphore>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Pacer {
    /// Releases `rate` permits a second from `started` until `until` (or
    /// until stopped); then closes, so waiting workers return.
    pub fn start(rate: u64, started: Instant, until: Option<Instant>) -> std::io::Result<Pacer> {
        let permits = Arc::new(Semaphore::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let permits = permits.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("stress-pacer".into())
                .spawn(move || {
                    let mut released: u64 = 0;
                    while !stop.load(Ordering::Acquire) {
                        let now = Instant::now();
                        if until.is_some_and(|until| now >= until) {
                            break;
                        }
                        // Operation n is due at n / rate: 0 at once.
                        let due =
                            (now.duration_since(started).as_secs_f64() * rate as f64) as u64 + 1;
                        if due > released {
                            let room =
                                WAITING_PERMITS_MAX.saturating_sub(permits.available_permits());
                            let add = usize::try_from(due - released).unwrap_or(room).min(room);
                            permits.add_permits(add);
                            released = due;
                        }
                        std::thread::sleep(TICK);
                    }
                    permits.close();
                })?
        };
        Ok(Pacer {
            permits,
            stop,
            thread: Some(thread),
        })
    }

    /// Waits for the next operation's turn; false once the run is over.
    pub async fn wait(&self) -> bool {
        match self.permits.acquire().await {
            Ok(permit) => {
                permit.forget();
                true
            }
            Err(_) => false,
        }
    }
}

impl Drop for Pacer {
    /// Stops releasing permits (closing them wakes every waiting worker).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn releases_about_rate_permits_a_second_then_closes() -> std::io::Result<()> {
        let started = Instant::now();
        let until = started + Duration::from_millis(300);
        let pacer = Pacer::start(10_000, started, Some(until))?;
        let mut taken = 0u64;
        while pacer.wait().await {
            taken += 1;
        }
        // 300 ms at 10,000/s is 3,000; the thread may stop a tick early or late.
        assert!((2_500..=3_100).contains(&taken), "released {taken}");
        assert!(started.elapsed() >= Duration::from_millis(300));
        Ok(())
    }
}
