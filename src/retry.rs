//! Backoff policies shared by the source and the sinks, on top of `backon` (the maintained
//! successor of the unmaintained `backoff` crate, RUSTSEC-2025-0012).
//!
//! Invariants: every delay is capped (sinks at [`MAX_SINK_BACKOFF`], so a
//! recovered sink is used again within a minute), jittered (no synchronized retry storms), and
//! the sequence never ends: giving up is the caller's decision (a named error, a dead letter),
//! never an implicit drop.
//!
//! Every wait a remote answer asks for (`Retry-After`, Discord's `retry_after` and
//! `X-RateLimit-Reset-After`) is read here, by total functions: NaN, infinities, negative and
//! unreadable values are ignored (the caller's own backoff applies), and huge ones are clamped
//! to [`MAX_RETRY_AFTER`] before any `Duration` is built, so no answer can panic a task.

use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBackoff, ExponentialBuilder};
use time::OffsetDateTime;

/// Longest sink reconnect/retry backoff (SPEC: a recovered sink is used within a minute).
pub const MAX_SINK_BACKOFF: Duration = Duration::from_secs(60);

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

/// A duration as operators read it in a log line: seconds with one decimal (`1.7s`, `300.0s`),
/// not `Debug`'s `765.86166ms`.
#[derive(Clone, Copy)]
pub struct Secs(pub Duration);

impl std::fmt::Display for Secs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.1}s", self.0.as_secs_f64())
    }
}

impl std::fmt::Debug for Secs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Delay to honour for a `Retry-After` header value in seconds (0 means "at least 1 s"),
/// capped at `cap`, with up to 20 % jitter added.
pub fn retry_after(seconds: Option<u64>, cap: Duration) -> Duration {
    let base = Duration::from_secs(seconds.unwrap_or(1).max(1)).min(cap);
    let jitter = base.mul_f64(fastrand::f64() * 0.2);
    (base + jitter).min(cap.max(Duration::from_secs(1)))
}

/// The longest wait any remote answer can ask for. Callers cap it further (sinks at
/// [`MAX_SINK_BACKOFF`], the DocSpace poller at 10 minutes); this bound only
/// keeps every conversion and `Instant` addition in range.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A wait given as float seconds (Discord's `retry_after` body field and
/// `X-RateLimit-Reset-After`, a decimal `Retry-After`): `None` for NaN, an infinity or a
/// negative number, else at most [`MAX_RETRY_AFTER`].
pub fn retry_after_secs_f64(secs: f64) -> Option<Duration> {
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    let d = Duration::try_from_secs_f64(secs).unwrap_or(MAX_RETRY_AFTER);
    Some(d.min(MAX_RETRY_AFTER))
}

/// The wait a `Retry-After` header value asks for at `now`: delay-seconds (RFC 9110 §10.2.3;
/// decimals are accepted, as Discord sends them) or an HTTP-date (IMF-fixdate, or any RFC 2822
/// date), a date in the past being no wait. `None` for an empty or unreadable value, NaN, an
/// infinity or a negative number; at most [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let v = value.trim();
    if v.is_empty() {
        return None;
    }
    // A number (Rust's parser also reads `inf` and `NaN`, which are then refused), else a date.
    if let Ok(secs) = v.parse::<f64>() {
        return retry_after_secs_f64(secs);
    }
    let at = OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    // Both instants lie within years -9999..=9999: the difference cannot overflow.
    let wait = at - now;
    if wait.is_negative() {
        return Some(Duration::ZERO);
    }
    Some(
        Duration::try_from(wait)
            .unwrap_or(MAX_RETRY_AFTER)
            .min(MAX_RETRY_AFTER),
    )
}

/// The wait a chat service's 429 or 5xx asks for: `Retry-After` (as [`parse_retry_after`]),
/// Discord's `X-RateLimit-Reset-After` header and the `retry_after` field of a JSON body (float
/// seconds, as [`retry_after_secs_f64`]); the longest wins.
pub fn chat_retry_after(
    retry_after: Option<&str>,
    reset_after: Option<&str>,
    body: &str,
    now: OffsetDateTime,
) -> Option<Duration> {
    let body_wait = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("retry_after").and_then(serde_json::Value::as_f64))
        .and_then(retry_after_secs_f64);
    [
        retry_after.and_then(|v| parse_retry_after(v, now)),
        reset_after
            .and_then(|v| v.trim().parse::<f64>().ok())
            .and_then(retry_after_secs_f64),
        body_wait,
    ]
    .into_iter()
    .flatten()
    .max()
}

/// [`parse_retry_after`] now, in whole seconds rounded up (what `SinkError` and the DocSpace
/// client carry).
pub fn retry_after_header_secs(value: &str) -> Option<u64> {
    let d = parse_retry_after(value, OffsetDateTime::now_utc())?;
    Some(d.as_secs() + u64::from(d.subsec_nanos() > 0))
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
    fn durations_in_logs_have_one_decimal() {
        assert_eq!(Secs(Duration::from_micros(765_861)).to_string(), "0.8s");
        assert_eq!(Secs(Duration::from_millis(1_700)).to_string(), "1.7s");
        assert_eq!(format!("{:?}", Secs(Duration::from_secs(300))), "300.0s");
    }

    #[test]
    fn retry_after_zero_still_waits_and_is_capped() {
        assert!(retry_after(Some(0), Duration::from_secs(60)) >= Duration::from_secs(1));
        assert!(retry_after(Some(9999), Duration::from_secs(60)) <= Duration::from_secs(60));
        assert!(retry_after(None, Duration::from_secs(60)) >= Duration::from_secs(1));
    }

    #[test]
    fn remote_waits_are_total_and_clamped() {
        // See: issue 15 (a chat service answering `Retry-After: 1e20` panicked a task).
        let now = time::macros::datetime!(2025-01-15 13:00:00 UTC);
        let max = Some(MAX_RETRY_AFTER);
        for (value, want) in [
            ("1e20", max),
            ("1e300", max),
            ("18446744073709551616", max),
            ("99999999999", max),
            ("-1", None),
            ("-0.5", None),
            ("NaN", None),
            ("nan", None),
            ("inf", None),
            ("-inf", None),
            ("+Infinity", None),
            ("", None),
            ("   ", None),
            ("soon", None),
            ("1e", None),
            ("0", Some(Duration::ZERO)),
            ("2", Some(Duration::from_secs(2))),
            (" 0.53 ", Some(Duration::from_millis(530))),
            (
                "Wed, 15 Jan 2025 13:00:30 GMT",
                Some(Duration::from_secs(30)),
            ),
            ("Wed, 15 Jan 2025 12:00:00 GMT", Some(Duration::ZERO)),
            ("Fri, 31 Dec 9999 23:59:59 GMT", max),
            ("Fri, 31 Dec 9999 23:59:59 -0100", max),
            ("Mon, 01 Jan 1900 00:00:00 +2359", Some(Duration::ZERO)),
            ("Wed, 32 Jan 2025 13:00:30 GMT", None),
        ] {
            assert_eq!(parse_retry_after(value, now), want, "{value:?}");
        }
        for (secs, want) in [
            (1e20, max),
            (1e300, max),
            (f64::MAX, max),
            (-1.0, None),
            (f64::NAN, None),
            (f64::INFINITY, None),
            (f64::NEG_INFINITY, None),
            (-0.0, Some(Duration::ZERO)),
            (f64::MIN_POSITIVE, Some(Duration::ZERO)),
            (0.25, Some(Duration::from_millis(250))),
        ] {
            assert_eq!(retry_after_secs_f64(secs), want, "{secs:?}");
        }
        let chat = |ra, reset, body| chat_retry_after(ra, reset, body, now);
        assert_eq!(chat(Some("1e20"), None, ""), max);
        assert_eq!(chat(None, None, r#"{"retry_after":1e300}"#), max);
        assert_eq!(chat(None, Some("1e300"), "not json"), max);
        assert_eq!(chat(Some("NaN"), Some("-1"), r#"{"retry_after":-1}"#), None);
        assert_eq!(
            chat(Some("2"), Some("0.5"), r#"{"retry_after":3.25}"#),
            Some(Duration::from_millis(3250))
        );
        assert_eq!(retry_after_header_secs("0.53"), Some(1));
        assert_eq!(retry_after_header_secs("1e300"), Some(3600));
        assert_eq!(retry_after_header_secs("NaN"), None);
    }
}
