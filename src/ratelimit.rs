//! Spacing of outgoing requests to one remote: a rate limiter that hands out evenly spaced
//! slots, keeps a short credit of slots left unused, and takes back a slot given up before it
//! came. The DocSpace client shares one per portal across its streams.

use std::time::Duration;

/// Spaces requests to one portal so that they never exceed a rate (DocSpace allows 1,500 a
/// minute per user when its limiter is on): each request takes the next free slot.
///
/// - Slots left unused while nothing was asked for (a round trip spent waiting between two
///   windows) are kept for up to [`RateLimiter::CREDIT`] and handed out at once afterwards:
///   the rate holds on average, and any interval `T` holds at most `rate × (T + CREDIT) + 1`
///   requests (at 24 a second, 1,447 in any minute).
/// - A request dropped before its slot came (a page fetched ahead that turned out not to be
///   needed) gives its slot back when no later slot was handed out meanwhile.
#[derive(Debug)]
pub struct RateLimiter {
    /// Time between slots; zero means no client-side limit.
    interval: Duration,
    next: std::sync::Mutex<tokio::time::Instant>,
}

impl RateLimiter {
    /// At most `per_second` requests a second; 0 means no client-side limit (for self-hosted
    /// portals whose own limiter is off).
    pub fn new(per_second: f64) -> RateLimiter {
        RateLimiter {
            // At least one request every 100 s (the config allows no slower).
            interval: if per_second > 0.0 && per_second.is_finite() {
                Duration::from_secs_f64(1.0 / per_second.max(0.01))
            } else {
                Duration::ZERO
            },
            next: std::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// How long unused slots are kept.
    pub const CREDIT: Duration = Duration::from_millis(250);

    /// Time between two slots (zero: no limit).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    fn reserve(&self) -> tokio::time::Instant {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let now = tokio::time::Instant::now();
        let floor = now.checked_sub(Self::CREDIT).unwrap_or(now);
        let slot = (*next).max(floor);
        *next = slot + self.interval;
        slot
    }

    /// Gives back `slot` if it is still the last one handed out.
    fn release(&self, slot: tokio::time::Instant) {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        if *next == slot + self.interval {
            *next = slot;
        }
    }

    /// Waits for this request's slot.
    pub async fn acquire(&self) {
        if self.interval.is_zero() {
            return;
        }
        struct Unused<'a> {
            limiter: &'a RateLimiter,
            slot: tokio::time::Instant,
            armed: bool,
        }
        impl Drop for Unused<'_> {
            fn drop(&mut self) {
                if self.armed {
                    self.limiter.release(self.slot);
                }
            }
        }
        let mut guard = Unused {
            limiter: self,
            slot: self.reserve(),
            armed: true,
        };
        tokio::time::sleep_until(guard.slot).await;
        guard.armed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt as _;

    // Every test runs on paused time: slots are computed from tokio's clock, so the schedule
    // is exact whatever the machine's load, and any wait shows as virtual time passing.
    #[tokio::test(start_paused = true)]
    async fn zero_means_no_client_side_limit() {
        let l = RateLimiter::new(0.0);
        assert!(l.interval().is_zero());
        let t = tokio::time::Instant::now();
        for _ in 0..10_000 {
            l.acquire().await;
        }
        assert!(t.elapsed().is_zero(), "{:?}", t.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn unused_slots_are_kept_for_a_while_then_the_rate_holds() {
        // 40 a second (25 ms): after a pause, a quarter second of slots (10) comes at once,
        // then one every 25 ms.
        let l = RateLimiter::new(40.0);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = tokio::time::Instant::now();
        let slots: Vec<_> = (0..30).map(|_| l.reserve()).collect();
        let ready = slots.iter().filter(|s| **s <= now).count();
        assert!((10..=11).contains(&ready), "{ready} at once");
        assert!(
            slots
                .windows(2)
                .all(|w| w[1] - w[0] == Duration::from_millis(25))
        );
        // In any second: at most 40 + 10 + 1.
        let last = *slots.last().expect("slots");
        assert!(last - slots[0] >= Duration::from_millis(25 * 29));
    }

    #[tokio::test(start_paused = true)]
    async fn the_default_rate_stays_below_docspaces_1500_a_minute() {
        // Slots after a pause (the credit comes at once), then three minutes of them: no
        // 60-second span holds more than 1,494 (60 × 24.8 and the quarter second of credit),
        // which leaves room for requests that arrive closer together than they were sent.
        let l = RateLimiter::new(24.8);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let slots: Vec<_> = (0..4500).map(|_| l.reserve()).collect();
        let mut most = 0;
        let mut lo = 0;
        for hi in 0..slots.len() {
            while slots[hi] - slots[lo] >= Duration::from_secs(60) {
                lo += 1;
            }
            most = most.max(hi - lo + 1);
        }
        assert!((1480..=1494).contains(&most), "{most} slots within 60 s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_given_up_before_it_came_is_handed_out_again() {
        let l = RateLimiter::new(10.0);
        // Use up the credit: the slots after it lie ahead.
        while l.reserve() <= tokio::time::Instant::now() {}
        let first = l.reserve();
        // Polled once: it takes the next slot (100 ms ahead) and waits; dropped, it gives the
        // slot back.
        assert!(l.acquire().now_or_never().is_none());
        assert_eq!(l.reserve(), first + Duration::from_millis(100));
        // Only the last slot handed out can be given back.
        let a = l.reserve();
        let _b = l.reserve();
        l.release(a);
        assert_eq!(l.reserve(), a + Duration::from_millis(200));
    }
}
