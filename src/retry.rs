//! Backoff policies shared by the source and the sinks, on top of `backon` (the maintained
//! successor of the unmaintained `backoff` crate, RUSTSEC-2025-0012).
//!
//! Invariants: every delay is capped (sinks at [`crate::config::MAX_SINK_BACKOFF`], so a
//! recovered sink is used again within a minute), jittered (no synchronized retry storms), and
//! the sequence never ends: giving up is the caller's decision (a named error, a dead letter),
//! never an implicit drop.

use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBackoff, ExponentialBuilder};

/// An endless, jittered, exponential delay sequence with a reset.
#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    current: ExponentialBackoff,
    max: Duration,
}

impl Backoff {
    /// Starts at `min`, doubles up to `max`, with jitter.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let builder = ExponentialBuilder::default()
            .with_min_delay(min)
            .with_max_delay(max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        Backoff {
            current: builder.build(),
            builder,
            max,
        }
    }

    /// The next delay (never longer than `max`).
    pub fn next_delay(&mut self) -> Duration {
        self.current.next().unwrap_or(self.max).min(self.max)
    }

    /// Back to the first delay, after a success.
    pub fn reset(&mut self) {
        self.current = self.builder.build();
    }
}

/// Delay to honour for a `Retry-After` header value in seconds (0 means "at least 1 s"),
/// capped at `cap`, with up to 20 % jitter added.
pub fn retry_after(seconds: Option<u64>, cap: Duration) -> Duration {
    let base = Duration::from_secs(seconds.unwrap_or(1).max(1)).min(cap);
    let jitter = base.mul_f64(fastrand::f64() * 0.2);
    (base + jitter).min(cap.max(Duration::from_secs(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_is_capped_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let delays: Vec<Duration> = (0..20).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(2)));
        assert!(delays[19] >= Duration::from_secs(1), "{delays:?}");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(200));
    }

    #[test]
    fn retry_after_zero_still_waits_and_is_capped() {
        assert!(retry_after(Some(0), Duration::from_secs(60)) >= Duration::from_secs(1));
        assert!(retry_after(Some(9999), Duration::from_secs(60)) <= Duration::from_secs(60));
        assert!(retry_after(None, Duration::from_secs(60)) >= Duration::from_secs(1));
    }
}
