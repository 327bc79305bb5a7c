//! The one wait-until of the tests: check a condition every [`EVERY`] until it holds or a
//! limit passes. Limits are generous timeouts for a loaded CI machine, never a claim about speed.

use std::time::{Duration, Instant};

/// How often a condition is checked again.
pub const EVERY: Duration = Duration::from_millis(100);

/// When one wait started and how long it may take: the single place that decides "too late".
struct Deadline {
    start: Instant,
    limit: Duration,
}

impl Deadline {
    fn new(limit: Duration) -> Deadline {
        Deadline {
            start: Instant::now(),
            limit,
        }
    }

    fn passed(&self) -> bool {
        self.start.elapsed() >= self.limit
    }
}

fn timed_out(limit: Duration, what: &str, context: String) -> ! {
    if context.is_empty() {
        panic!("timed out after {limit:?} waiting for {what}");
    }
    panic!("timed out after {limit:?} waiting for {what}; {context}");
}

/// Checks `f` until it returns true (true) or `limit` passes (false), for tests that report a
/// figure before they assert.
pub async fn try_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Deadline::new(limit);
    loop {
        if f() {
            return true;
        }
        if deadline.passed() {
            return false;
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// [`try_until`] for code that cannot await (a blocking wait on a child process).
pub fn try_until_blocking(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Deadline::new(limit);
    loop {
        if f() {
            return true;
        }
        if deadline.passed() {
            return false;
        }
        std::thread::sleep(EVERY);
    }
}

/// Checks `f` until it returns true; fails naming `what` after `limit`.
pub async fn eventually(limit: Duration, what: &str, f: impl FnMut() -> bool) {
    eventually_or(limit, what, f, String::new).await;
}

/// [`eventually`] that adds `context()` (e.g. the end of the agent's log) to the failure.
pub async fn eventually_or(
    limit: Duration,
    what: &str,
    f: impl FnMut() -> bool,
    context: impl FnOnce() -> String,
) {
    if !try_until(limit, f).await {
        timed_out(limit, what, context());
    }
}

/// [`eventually_or`] for code that cannot await.
pub fn eventually_blocking(
    limit: Duration,
    what: &str,
    f: impl FnMut() -> bool,
    context: impl FnOnce() -> String,
) {
    if !try_until_blocking(limit, f) {
        timed_out(limit, what, context());
    }
}

/// Runs `f` until it succeeds; fails naming `what` and the last error after `limit` (e.g.
/// binding a port again that the kernel has not released yet).
pub async fn retry_until<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    limit: Duration,
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    let deadline = Deadline::new(limit);
    loop {
        match f().await {
            Ok(t) => return t,
            Err(e) if deadline.passed() => timed_out(limit, what, format!("last error: {e}")),
            Err(_) => tokio::time::sleep(EVERY).await,
        }
    }
}

/// The last `n` lines of a log, for failure messages.
pub fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
