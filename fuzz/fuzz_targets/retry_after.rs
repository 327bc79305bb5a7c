//! Fuzz target `retry_after`: any bytes → every reader of a wait a remote answer asks for
//! (issue 15: `Retry-After: 1e20` and Discord's `retry_after: 1e300` panicked a task in
//! `Duration::from_secs_f64`).
//!
//! Input: up to three texts separated by 0xFF (read lossily): a `Retry-After` value, an
//! `X-RateLimit-Reset-After` value and a response body; the first 8 bytes are also read as the
//! bits of an f64 (so NaN payloads, subnormals and infinities all come up).
//!
//! Checked, without a panic: `parse_retry_after` (at a fixed instant and now),
//! `retry_after_header_secs`, `retry_after_secs_f64` and `chat_retry_after` never exceed
//! `MAX_RETRY_AFTER`; a value that reads as a finite non-negative number gives that many
//! seconds (clamped), anything NaN, infinite or negative gives nothing; and the delay the
//! sinks and the poller then sleep (`retry::retry_after`) stays within its cap.

#![no_main]

use std::time::Duration;

use docspace_siem::retry::{
    MAX_RETRY_AFTER, chat_retry_after, parse_retry_after, retry_after, retry_after_header_secs,
    retry_after_secs_f64,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = time::macros::datetime!(2025-01-15 13:00:00 UTC);
    let mut parts = data.split(|b| *b == 0xFF).map(String::from_utf8_lossy);
    let header = parts.next().unwrap_or_default();
    let reset = parts.next();
    let body = parts.next().unwrap_or_default();

    if data.len() >= 8 {
        let bits = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
        check_f64(f64::from_bits(bits));
    }
    let fixed = parse_retry_after(&header, now);
    within(fixed);
    within(parse_retry_after(&header, time::OffsetDateTime::now_utc()));
    if let Ok(secs) = header.trim().parse::<f64>() {
        assert_eq!(fixed, retry_after_secs_f64(secs), "{header:?}");
        check_f64(secs);
    }
    let whole = retry_after_header_secs(&header);
    assert!(
        whole.is_none_or(|s| s <= MAX_RETRY_AFTER.as_secs()),
        "{header:?}"
    );
    let cap = Duration::from_secs(60);
    let slept = retry_after(whole, cap);
    assert!(
        slept >= Duration::from_secs(1) && slept <= cap,
        "{header:?}: {slept:?}"
    );

    let chat = chat_retry_after(Some(&header), reset.as_deref(), &body, now);
    within(chat);
    assert!(chat >= fixed, "the longest wait wins");
});

fn check_f64(secs: f64) {
    let got = retry_after_secs_f64(secs);
    within(got);
    if !secs.is_finite() || secs < 0.0 {
        assert_eq!(got, None, "{secs:?}");
    } else {
        let want =
            Duration::try_from_secs_f64(secs).map_or(MAX_RETRY_AFTER, |d| d.min(MAX_RETRY_AFTER));
        assert_eq!(got, Some(want), "{secs:?}");
    }
}

fn within(d: Option<Duration>) {
    assert!(d.is_none_or(|d| d <= MAX_RETRY_AFTER), "{d:?}");
}
