//! The DocSpace client: one authenticated request per call, envelope and error decoding, and the
//! window walker that reads every event of a time window despite the API's paging quirks.
//!
//! Quirks handled here (docs/docspace-api.md):
//! - `from`/`to` are sent as UTC with `Z` (`YYYY-MM-DDTHH:MM:SSZ`): a value without a zone would
//!   be read in the server process's own zone.
//! - `login/filter` takes its page window (`Skip`/`Take` over the whole log, newest first)
//!   *before* applying the filters, so pages are short or empty while older matches exist; the
//!   walker advances `startIndex` by the count requested and uses unfiltered one-row probes to
//!   find where a historical window starts and to tell "nothing in this window" from "not there
//!   yet". `events/filter` filters first, so a short page is the end.
//! - A plan without the audit feature answers every filter request with the latest 20 rows,
//!   whatever the parameters: any row outside the requested window, or more rows than asked
//!   for, is reported as [`SourceError::NoAuditPlan`].
//! - 429 carries `Retry-After` (possibly 0); 401 has an empty body; errors come in an
//!   `{"error":{"message":…}}` envelope; a 502 from a proxy may be HTML.
//! - A truncated or malformed body fails the whole page; nothing of it is used.
//!
//! Invariants: the API key is sent only to the configured origin (redirects are not followed)
//! and never appears in an error or log line.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use time::OffsetDateTime;
use url::Url;

use crate::event::{Event, EventError, PortalInfo, Stream, format_utc_seconds, parse_date};

/// Rows per request: the API's maximum.
pub const PAGE_SIZE: usize = 100;
/// Longest error-body excerpt kept in an error message.
const SNIPPET: usize = 200;

/// Why a request or a window failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// 429: the portal's rate limiter said wait.
    #[error("rate limited by the portal (HTTP 429, Retry-After {})", retry_after.map_or("absent".to_owned(), |s| format!("{s}s")))]
    RateLimited {
        /// Seconds from `Retry-After`.
        retry_after: Option<u64>,
    },
    /// 401: missing, wrong, expired or revoked key.
    #[error(
        "the portal rejected the API key (HTTP 401): check api_key_file holds a valid, unexpired `sk-…` key"
    )]
    Unauthorized,
    /// 403: the key's user is not an owner/admin, or the key lacks `*:read`.
    #[error(
        "access denied (HTTP 403: {0}): the API key must belong to the portal owner or a DocSpace admin and have the *:read scope"
    )]
    Forbidden(String),
    /// 402: the plan or settings section lacks the audit feature.
    #[error(
        "the portal's plan does not include the audit trail / login history (HTTP 402: {0}); upgrade the plan or enable the Login History section"
    )]
    PaymentRequired(String),
    /// The silent fallback of a plan without `audit`.
    #[error(
        "the portal ignored the from/to filters and returned its latest events ({0}): its plan lacks the audit feature, so events cannot be read completely; the cursor was not moved"
    )]
    NoAuditPlan(String),
    /// 5xx or 408.
    #[error("portal server error (HTTP {status}): {snippet}")]
    Server {
        /// HTTP status.
        status: u16,
        /// Start of the body.
        snippet: String,
    },
    /// 3xx: not followed, so the key is not sent elsewhere.
    #[error(
        "the portal redirected (HTTP {status}) to {location}; the redirect was not followed: set url to the final https address"
    )]
    Redirect {
        /// HTTP status.
        status: u16,
        /// Where to (scheme and host only).
        location: String,
    },
    /// Another 4xx.
    #[error("the portal refused the request (HTTP {status}): {snippet}")]
    Client {
        /// HTTP status.
        status: u16,
        /// Start of the body.
        snippet: String,
    },
    /// Connection, DNS, TLS or timeout.
    #[error("cannot reach the portal: {0}")]
    Transport(String),
    /// Truncated or malformed body.
    #[error("malformed response from the portal: {0}")]
    Malformed(String),
}

/// How the poll loop should react to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Retry with exponential backoff.
    Transient,
    /// Retry after the given seconds.
    RateLimited(Option<u64>),
    /// Needs an operator: retry slowly, never a storm.
    NeedsOperator,
}

impl SourceError {
    /// Classifies the error.
    pub fn class(&self) -> ErrorClass {
        match self {
            SourceError::RateLimited { retry_after } => ErrorClass::RateLimited(*retry_after),
            SourceError::Server { .. } | SourceError::Transport(_) | SourceError::Malformed(_) => {
                ErrorClass::Transient
            }
            _ => ErrorClass::NeedsOperator,
        }
    }
}

/// One decoded page.
#[derive(Debug, Default)]
pub struct Page {
    /// Rows that decoded.
    pub events: Vec<Event>,
    /// Rows that did not, with the reason (they go to the dead-letter file).
    pub rejected: Vec<(Value, EventError)>,
}

impl Page {
    fn rows(&self) -> usize {
        self.events.len() + self.rejected.len()
    }
}

/// All events of a window.
#[derive(Debug, Default)]
pub struct Window {
    /// Decoded events, unsorted, possibly with duplicates at page edges.
    pub events: Vec<Event>,
    /// Rows that could not be decoded.
    pub rejected: Vec<(Value, EventError)>,
    /// Requests made.
    pub requests: u32,
    /// The window held more than the caller's limit (the caller splits it).
    pub too_many: bool,
}

/// Spaces requests to one portal so that they never exceed a rate (DocSpace allows 1,500 a
/// minute per user when its limiter is on): each request takes the next free slot. A request
/// dropped before its slot came (a page fetched ahead that turned out not to be needed) gives
/// its slot back when no later slot was handed out meanwhile.
#[derive(Debug)]
pub struct RateLimiter {
    /// Time between slots; zero means no client-side limit.
    interval: Duration,
    next: std::sync::Mutex<tokio::time::Instant>,
}

impl RateLimiter {
    /// At most `per_second` requests a second; 0 means no client-side limit (for self-hosted
    /// portals whose own limiter is off).
    pub fn new(per_second: u32) -> RateLimiter {
        RateLimiter {
            interval: if per_second == 0 {
                Duration::ZERO
            } else {
                Duration::from_secs(1) / per_second
            },
            next: std::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// Time between two slots (zero: no limit).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    fn reserve(&self) -> tokio::time::Instant {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let now = tokio::time::Instant::now();
        let slot = (*next).max(now);
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

/// A client of one portal.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    key: SecretString,
    portal: Arc<PortalInfo>,
    limiter: Arc<RateLimiter>,
    concurrency: usize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("portal", &self.portal.name)
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds a client.
    pub fn new(
        http: reqwest::Client,
        base: Url,
        key: SecretString,
        portal: Arc<PortalInfo>,
    ) -> Client {
        Client {
            http,
            base,
            key,
            portal,
            limiter: Arc::new(RateLimiter::new(1000)),
            concurrency: 1,
        }
    }

    /// Shares `limiter` (one per portal, across its streams) and fetches up to `concurrency`
    /// pages of a window at once during a catch-up.
    pub fn with_limits(mut self, limiter: Arc<RateLimiter>, concurrency: usize) -> Client {
        self.limiter = limiter;
        self.concurrency = concurrency.max(1);
        self
    }

    /// The portal.
    pub fn portal(&self) -> &Arc<PortalInfo> {
        &self.portal
    }

    fn url(&self, stream: Stream, query: &[(&str, String)]) -> Result<Url, SourceError> {
        let mut url = self.base.clone();
        let path = format!(
            "{}{}",
            url.path().trim_end_matches('/'),
            stream.filter_path()
        );
        url.set_path(&path);
        url.set_query(None);
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// One GET of a filter endpoint; returns the rows of the `response` array.
    pub async fn get_rows(
        &self,
        stream: Stream,
        query: &[(&str, String)],
    ) -> Result<Vec<Value>, SourceError> {
        let url = self.url(stream, query)?;
        self.limiter.acquire().await;
        let resp = self
            .http
            .get(url)
            .header(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {}", self.key.expose_secret()),
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| SourceError::Transport(crate::tls::describe_reqwest(&e)))?;
        let status = resp.status();
        if status.is_redirection() {
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(crate::config::redact_url)
                .unwrap_or_else(|| "an unnamed location".to_owned());
            return Err(SourceError::Redirect {
                status: status.as_u16(),
                location,
            });
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            return Err(SourceError::RateLimited { retry_after });
        }
        let body = resp.bytes().await.map_err(|e| {
            SourceError::Malformed(format!(
                "body ended early: {}",
                crate::tls::describe_reqwest(&e)
            ))
        })?;
        if !status.is_success() {
            let message = error_message(&body);
            return Err(match status.as_u16() {
                401 => SourceError::Unauthorized,
                402 => SourceError::PaymentRequired(message),
                403 => SourceError::Forbidden(message),
                408 | 500..=599 => SourceError::Server {
                    status: status.as_u16(),
                    snippet: message,
                },
                s => SourceError::Client {
                    status: s,
                    snippet: message,
                },
            });
        }
        let v: Value = serde_json::from_slice(&body).map_err(|e| {
            SourceError::Malformed(format!(
                "{} bytes that are not complete JSON ({e}); starts with {:?}",
                body.len(),
                snippet(&body)
            ))
        })?;
        let Value::Object(mut obj) = v else {
            return Err(SourceError::Malformed(
                "the body is not a JSON object".into(),
            ));
        };
        if obj.get("status").and_then(Value::as_i64).unwrap_or(0) != 0 {
            return Err(SourceError::Malformed(format!(
                "envelope status {} with HTTP 200",
                obj["status"]
            )));
        }
        let count = obj.get("count").and_then(Value::as_u64);
        // Taken, not cloned: a page is decoded once.
        let Some(Value::Array(rows)) = obj.remove("response") else {
            return Err(SourceError::Malformed(
                "the envelope has no `response` array".into(),
            ));
        };
        if let Some(count) = count
            && count as usize != rows.len()
        {
            return Err(SourceError::Malformed(format!(
                "envelope count {count} but {} rows",
                rows.len()
            )));
        }
        Ok(rows)
    }

    /// One page of a window, decoded; detects the no-audit-plan fallback.
    pub async fn page(
        &self,
        stream: Stream,
        from: OffsetDateTime,
        to: OffsetDateTime,
        start_index: usize,
    ) -> Result<Page, SourceError> {
        let mut q = vec![
            ("from", format_utc_seconds(from)),
            ("to", format_utc_seconds(to)),
            ("count", PAGE_SIZE.to_string()),
        ];
        if start_index > 0 {
            q.push(("startIndex", start_index.to_string()));
        }
        let rows = self.get_rows(stream, &q).await?;
        if rows.len() > PAGE_SIZE {
            return Err(SourceError::NoAuditPlan(format!(
                "{} rows for count={PAGE_SIZE}",
                rows.len()
            )));
        }
        let mut page = Page::default();
        // The API compares whole seconds of its stored values; allow for sub-second fractions.
        let lo = from - time::Duration::seconds(1);
        let hi = to + time::Duration::seconds(1);
        for row in rows {
            match Event::from_json(self.portal.clone(), Some(stream), row.clone()) {
                Ok(ev) => {
                    if ev.time < lo || ev.time > hi {
                        return Err(SourceError::NoAuditPlan(format!(
                            "event {} dated {} lies outside the requested {}..{}",
                            ev.id,
                            ev.time_rfc3339(),
                            format_utc_seconds(from),
                            format_utc_seconds(to)
                        )));
                    }
                    page.events.push(ev);
                }
                Err(e) => page.rejected.push((row, e)),
            }
        }
        Ok(page)
    }

    /// The date of the login row at `offset` (newest first, no filters), `None` past the end.
    async fn probe_login(&self, offset: usize) -> Result<Option<OffsetDateTime>, SourceError> {
        let mut q = vec![("count", "1".to_owned())];
        if offset > 0 {
            q.push(("startIndex", offset.to_string()));
        }
        let rows = self.get_rows(Stream::Login, &q).await?;
        if rows.len() > 1 {
            return Err(SourceError::NoAuditPlan(format!(
                "{} rows for count=1",
                rows.len()
            )));
        }
        match rows.first() {
            None => Ok(None),
            Some(row) => match row.get("date").and_then(Value::as_str).map(parse_date) {
                Some(Ok(t)) => Ok(Some(t)),
                _ => Err(SourceError::Malformed(format!(
                    "login row at offset {offset} has no valid date"
                ))),
            },
        }
    }

    /// The first login offset at or after `lo` whose row is not newer than `to`
    /// (exponential then binary search over one-row probes).
    async fn first_login_offset_not_after(
        &self,
        lo: usize,
        to: OffsetDateTime,
        requests: &mut u32,
    ) -> Result<usize, SourceError> {
        // Invariant: rows at offsets < `good` are newer than `to`.
        let mut good = lo;
        let mut step = PAGE_SIZE;
        let mut bad;
        loop {
            let at = good + step;
            *requests += 1;
            match self.probe_login(at).await? {
                Some(d) if d > to => {
                    good = at + 1;
                    step *= 2;
                }
                _ => {
                    bad = at;
                    break;
                }
            }
        }
        // Rows in [good, bad) are unknown; row `bad` is not newer than `to` (or past the end).
        while good < bad {
            let mid = good + (bad - good) / 2;
            *requests += 1;
            match self.probe_login(mid).await? {
                Some(d) if d > to => good = mid + 1,
                _ => bad = mid,
            }
        }
        Ok(good)
    }

    /// Reads every event of `[from, to]` (both inclusive). Stops early with `too_many` when
    /// more than `limit` rows arrive, so that memory stays bounded.
    pub async fn window(
        &self,
        stream: Stream,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: usize,
    ) -> Result<Window, SourceError> {
        let mut w = Window::default();
        let mut index = 0usize;
        // Login only: whether a page has held a match yet (matches are contiguous in the log).
        let mut seen = false;
        // Pages fetched ahead, by start index. The first page of a window is fetched alone
        // (a live poll needs one); once a full page says there is more, the following pages
        // are fetched `concurrency` at a time, still under the portal's rate limiter, and used
        // strictly in order. A wave may read up to concurrency − 1 pages past the end.
        let mut ahead: std::collections::VecDeque<(usize, Page)> = Default::default();
        let mut full_pages = 0usize;
        loop {
            let page = match ahead.pop_front() {
                Some((i, p)) if i == index => p,
                _ => {
                    ahead.clear();
                    let wave = if full_pages == 0 { 1 } else { self.concurrency };
                    let fetches =
                        (0..wave).map(|k| self.page(stream, from, to, index + k * PAGE_SIZE));
                    let pages = futures_util::future::try_join_all(fetches).await?;
                    w.requests += wave as u32;
                    ahead.extend(
                        pages
                            .into_iter()
                            .enumerate()
                            .map(|(k, p)| (index + k * PAGE_SIZE, p)),
                    );
                    match ahead.pop_front() {
                        Some((_, p)) => p,
                        None => return Ok(w),
                    }
                }
            };
            if page.rows() == PAGE_SIZE {
                full_pages += 1;
            }
            let n = page.rows();
            w.events.extend(page.events);
            w.rejected.extend(page.rejected);
            if w.events.len() + w.rejected.len() > limit {
                w.too_many = true;
                return Ok(w);
            }
            match stream {
                Stream::Audit => {
                    if n < PAGE_SIZE {
                        return Ok(w);
                    }
                }
                Stream::Login => {
                    if n == PAGE_SIZE {
                        seen = true;
                    } else if n > 0 {
                        // A short page after matches: the run of matches ended here. A short
                        // first run may continue on the next page (it began mid-page).
                        if seen {
                            return Ok(w);
                        }
                        seen = true;
                    } else if seen {
                        return Ok(w);
                    } else {
                        // No match yet: is this page window newer than `to`, or past `from`?
                        w.requests += 1;
                        match self.probe_login(index + PAGE_SIZE - 1).await? {
                            None => return Ok(w),
                            Some(d) if d < from => return Ok(w),
                            Some(d) if d > to => {
                                index = self
                                    .first_login_offset_not_after(
                                        index + PAGE_SIZE,
                                        to,
                                        &mut w.requests,
                                    )
                                    .await?;
                                continue;
                            }
                            Some(_) => {}
                        }
                    }
                }
            }
            index += PAGE_SIZE;
        }
    }

    /// The portal's retention in days for this stream (`GET …/audit/settings/lifetime`), when
    /// the key may read it.
    pub async fn lifetime_days(&self, stream: Stream) -> Option<u64> {
        let mut url = self.base.clone();
        let path = format!(
            "{}/api/2.0/security/audit/settings/lifetime",
            url.path().trim_end_matches('/')
        );
        url.set_path(&path);
        let resp = self
            .http
            .get(url)
            .header(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {}", self.key.expose_secret()),
            )
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let v: Value = resp.json().await.ok()?;
        let key = match stream {
            Stream::Login => "loginHistoryLifeTime",
            Stream::Audit => "auditTrailLifeTime",
        };
        v.pointer(&format!("/response/{key}"))
            .and_then(Value::as_u64)
    }

    /// One cheap authenticated request, for `check`.
    pub async fn check(&self) -> Result<(), SourceError> {
        let now = OffsetDateTime::now_utc();
        self.page(Stream::Login, now - time::Duration::minutes(5), now, 0)
            .await
            .map(|_| ())
    }
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(&body[..body.len().min(SNIPPET)]);
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The `error.message` of an error envelope, or the start of the body.
fn error_message(body: &[u8]) -> String {
    if body.is_empty() {
        return "empty body".to_owned();
    }
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.pointer("/response/title"))
                .and_then(Value::as_str)
                .map(|s| snippet(s.as_bytes()))
        })
        .unwrap_or_else(|| snippet(body))
}

/// Default timeout of a portal request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt as _;

    #[tokio::test]
    async fn zero_means_no_client_side_limit() {
        let l = RateLimiter::new(0);
        assert!(l.interval().is_zero());
        let t = std::time::Instant::now();
        for _ in 0..10_000 {
            l.acquire().await;
        }
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }

    #[tokio::test]
    async fn a_slot_given_up_before_it_came_is_handed_out_again() {
        let l = RateLimiter::new(10);
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
