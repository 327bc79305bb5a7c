//! The DocSpace client: one authenticated request per call, envelope and error decoding, and the
//! window walker that reads every event of a time window despite the API's paging quirks.
//!
//! Quirks handled here (docs/docspace-api.md):
//! - `from`/`to` are sent as UTC with `Z` (`YYYY-MM-DDTHH:MM:SSZ`): since v3.7.1 a value without
//!   a zone is a 400 (older servers read it in the server process's own zone).
//! - `login/filter` takes its page window (`Skip`/`Take` over the whole log, newest first)
//!   *before* applying the filters, so pages are short or empty while older matches exist; the
//!   walker locates where a window's rows start with unfiltered slices of the log (one answer
//!   shows both the last row newer than `to` and the first one not newer), seeded by where the
//!   previous window started, then pages on from there. `events/filter` filters first, so a
//!   short page is the end.
//! - Rows inserted while the walker pages shift offsets. Pages overlap by one row and each
//!   must repeat the last row of the one before, so a shift is seen, never silently skipped
//!   (see [`Client::window`]); duplicates are removed downstream by id.
//! - A plan without the audit feature, or a hidden Login History section, answers every filter
//!   request with the latest 20 rows: each window ends with a probe the fallback cannot pass
//!   (`plan.rs`). Rows an hour late (`dates.rs`), ties in any order (`ties.rs`) and rows the
//!   server cannot return (`narrow.rs`) are the server as it really behaves (§14).
//! - 429 carries `Retry-After` (possibly 0); 401 has an empty body; errors come in an
//!   `{"error":{"message":…}}` envelope; a 502 from a proxy may be HTML.
//! - A truncated or malformed body fails the whole page; nothing of it is used.
//!
//! Invariants: the API key is sent only to the configured origin (redirects are not followed)
//! and never appears in an error or log line.

use rustc_hash::FxHashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesOrdered;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use tracing::{debug, trace, warn};
use url::Url;

use crate::event::{Event, EventError, PortalInfo, Stream, format_utc_seconds};

mod dates;
mod narrow;
mod plan;
mod ties;
pub use dates::FALL_BACK;
use narrow::Part;
pub use narrow::Unreadable;
pub use plan::Quota;
// The limiter's old path, kept for the agent and the integration tests that name it.
pub use crate::ratelimit::RateLimiter;

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
    /// 403 from the portal's IP restriction (`IpSecurityFilter`): the key is fine, the agent's
    /// address is not allowed.
    #[error(
        "the portal refuses this host's IP address (HTTP 403: {0}): add the agent's outgoing address to the portal's IP security list (Settings → Security → IP Security)"
    )]
    IpRestricted(String),
    /// 402 with an error envelope: the plan lacks the feature asked for.
    #[error(
        "the portal's plan does not include the audit trail / login history (HTTP 402: {0}); upgrade the plan or enable the Login History section"
    )]
    PaymentRequired(String),
    /// A bare 402 with no body (`PaymentFilter`): the portal itself is unpaid or blocked, for
    /// every API call, not only the audit ones.
    #[error(
        "the portal is unpaid or suspended (HTTP 402 with no body, on every API call): renew its subscription; the cursor was not moved"
    )]
    Unpaid,
    /// The silent "latest 20 rows" fallback of the filter endpoints (docs/docspace-api.md §14.1).
    #[error(
        "the portal answers its latest events whatever was asked ({0}), so events cannot be read completely; the cursor was not moved and every event since it will be delivered once the portal answers for real"
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
    /// A body larger than `max_response_mib`.
    #[error(
        "the portal's answer is larger than max_response_mib ({mib} MiB){}; a page of 100 events is normally well under 1 MiB: if this portal's rows are really that large, raise max_response_mib",
        length.map_or(String::new(), |l| format!(": Content-Length {l}"))
    )]
    TooLarge {
        /// The limit.
        mib: u64,
        /// What the server announced, if it did.
        length: Option<u64>,
    },
    /// Rows were inserted faster than a window could be read; read again later.
    #[error("the portal's log changed faster than the window could be read: {0}")]
    Unsettled(String),
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
            SourceError::Server { .. }
            | SourceError::Transport(_)
            | SourceError::Malformed(_)
            | SourceError::Unsettled(_) => ErrorClass::Transient,
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
    /// Ids of the rows in the order served (rows without a readable id left out).
    ids: Vec<i64>,
    /// Id and date of the last row served, when both are readable.
    last: Option<(i64, OffsetDateTime)>,
    /// Id and date of each row in the order served, when readable.
    served: Vec<(Option<i64>, Option<OffsetDateTime>)>,
    /// Rows the server could not return (read around).
    pub holes: Vec<Unreadable>,
}

/// A row of a page as read: decoded, undecodable (its text), or not returned at all.
#[allow(clippy::large_enum_variant)] // nearly every row is an `Event`: boxing would cost an allocation each
enum Got<'a> {
    Event(Event),
    Bad(EventError, &'a str),
    Hole(usize),
}

impl Page {
    fn rows(&self) -> usize {
        self.events.len() + self.rejected.len() + self.holes.len()
    }

    /// Records the id of the next row served (`last`: it is the last one).
    fn note_id(&mut self, id: Option<i64>, date: Option<OffsetDateTime>, last: bool) {
        if let Some(id) = id {
            self.ids.push(id);
        }
        self.served.push((id, date));
        if last {
            self.last = id.zip(date);
        }
    }

    /// The date of the first row served, when readable.
    fn first_date(&self) -> Option<OffsetDateTime> {
        self.served.first().and_then(|r| r.1)
    }

    /// Rows dated `second`, and the index of the first of them.
    fn of_second(&self, second: OffsetDateTime) -> (usize, Option<usize>) {
        let mut first = None;
        let mut n = 0;
        for (i, r) in self.served.iter().enumerate() {
            if r.1 == Some(second) {
                first.get_or_insert(i);
                n += 1;
            }
        }
        (n, first)
    }

    /// Rows dated `second` other than `id`.
    fn others_of_second(&self, second: OffsetDateTime, id: i64) -> usize {
        self.served
            .iter()
            .filter(|r| r.1 == Some(second) && r.0 != Some(id))
            .count()
    }
}

/// A row that could not be decoded, as a JSON value for the dead-letter file.
fn raw_value(row: &str) -> Value {
    serde_json::from_str(row).unwrap_or_else(|_| Value::String(row.to_owned()))
}

/// All events of a window.
#[derive(Debug, Default)]
pub struct Window {
    /// Decoded events, unsorted, possibly with duplicates at page edges.
    pub events: Vec<Event>,
    /// Rows that could not be decoded.
    pub rejected: Vec<(Value, EventError)>,
    /// Rows the server could not return: every answer holding one fails (§14.4).
    pub unreadable: Vec<Unreadable>,
    /// Requests made.
    pub requests: u32,
    /// The window held more than the caller's limit (the caller splits it).
    pub too_many: bool,
}

/// Where the last login window started, to seed the search for the next one (see
/// [`Client::window`]).
#[derive(Debug, Clone, Copy)]
struct LoginHint {
    /// The window's `to`.
    to: OffsetDateTime,
    /// Offset of its first row not newer than `to`, when it was read.
    start: usize,
    /// Rows per second in it.
    rate: f64,
    /// How far off the guesses from earlier hints were, in rows (smoothed).
    error: Option<f64>,
}

/// Where the run of a login window probably starts, give or take `spread` rows.
#[derive(Debug, Clone, Copy)]
struct Guess {
    at: usize,
    spread: Option<usize>,
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
    /// The last login window's start (shared by clones: one login poller per portal).
    hint: Arc<std::sync::Mutex<Option<LoginHint>>>,
    /// Smoothed round trip of a request, in microseconds (0 = none measured yet).
    latency_us: Arc<AtomicU64>,
    /// Largest answer body read, in bytes.
    max_body: u64,
    /// Where the portal's zone changed its UTC offset (login; shared by clones).
    zones: Arc<std::sync::Mutex<dates::ZoneChanges>>,
    /// The last plan probe found the fallback (shared by clones).
    plan_lost: Arc<std::sync::atomic::AtomicBool>,
    /// Requests by the class of their answer, for the metrics.
    classes: Arc<crate::pipeline::RequestClasses>,
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
            limiter: Arc::new(RateLimiter::new(1000.0)),
            concurrency: 1,
            hint: Arc::default(),
            latency_us: Arc::default(),
            max_body: 64 << 20,
            zones: Arc::default(),
            plan_lost: Arc::default(),
            classes: Arc::default(),
        }
    }

    /// Counts its requests by the class of their answer into `classes` (the metrics').
    pub fn with_request_classes(mut self, classes: Arc<crate::pipeline::RequestClasses>) -> Client {
        self.classes = classes;
        self
    }

    /// Refuses answers larger than `mib` MiB (read in chunks, never buffered past the limit).
    pub fn with_max_response(mut self, mib: u64) -> Client {
        self.max_body = mib.max(1) << 20;
        self
    }

    /// Shares `limiter` (one per portal, across its streams) and keeps up to `concurrency`
    /// requests of a window in flight during a catch-up.
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

    /// One GET of a filter endpoint; returns the body of a 2xx answer (see [`rows`]).
    pub async fn get_body(
        &self,
        stream: Stream,
        query: &[(&str, String)],
    ) -> Result<String, SourceError> {
        let url = self.url(stream, query)?;
        self.request(url).await
    }

    /// One authenticated GET of `url` after a rate-limiter slot; the body of a 2xx answer, or
    /// the classified error.
    async fn request(&self, url: Url) -> Result<String, SourceError> {
        self.limiter.acquire().await;
        let sent = Instant::now();
        let resp = self
            .http
            .get(url.clone())
            .header(
                reqwest::header::AUTHORIZATION,
                crate::http::sensitive(&format!("Bearer {}", self.key.expose_secret())),
            )
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                self.classes.count(None);
                SourceError::Transport(crate::tls::describe_reqwest(&e))
            })?;
        let status = resp.status();
        self.classes.count(Some(status.as_u16()));
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
                .and_then(crate::retry::retry_after_header_secs);
            return Err(SourceError::RateLimited { retry_after });
        }
        let body = self.read_body(resp).await?;
        let rtt = sent.elapsed();
        self.note_latency(rtt);
        trace!(portal = %self.portal.name, path = url.path(), query = url.query().unwrap_or(""), status = status.as_u16(), rtt_ms = rtt.as_millis() as u64, "request");
        if !status.is_success() {
            let message = error_message(&body);
            return Err(match status.as_u16() {
                401 => SourceError::Unauthorized,
                402 if body.is_empty() => SourceError::Unpaid,
                402 => SourceError::PaymentRequired(message),
                403 if ip_restricted(&body) => SourceError::IpRestricted(message),
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
        String::from_utf8(body)
            .map_err(|e| SourceError::Malformed(format!("the body is not UTF-8 ({e})")))
    }

    /// The body, at most `max_body` bytes of it (the shared cap, [`crate::http::read_capped`]).
    async fn read_body(&self, resp: reqwest::Response) -> Result<Vec<u8>, SourceError> {
        crate::http::read_capped(resp, self.max_body)
            .await
            .map_err(|e| match e {
                crate::http::BodyError::TooLarge { announced, .. } => SourceError::TooLarge {
                    mib: self.max_body >> 20,
                    length: announced,
                },
                crate::http::BodyError::Broken(why) => {
                    SourceError::Malformed(format!("body ended early: {why}"))
                }
            })
    }

    /// One page of a window, decoded; read around rows the server cannot return
    /// (`narrow.rs`); more rows than asked for is the no-audit-plan fallback.
    pub async fn page(
        &self,
        stream: Stream,
        from: OffsetDateTime,
        to: OffsetDateTime,
        start_index: usize,
    ) -> Result<Page, SourceError> {
        let parts = self
            .read(stream, Some((from, to)), start_index, PAGE_SIZE)
            .await?;
        let answered = OffsetDateTime::now_utc();
        // Each row decoded, or its text and why not, or a hole, with its date (an hour late
        // repaired below when that is certain; nothing else about a row's date is an error:
        // the server filtered on the true instant, §14.2).
        let mut got: Vec<Got<'_>> = Vec::new();
        let mut dates = Vec::new();
        for part in &parts {
            let body = match part {
                Part::Body(body) => body,
                Part::Hole(at) => {
                    got.push(Got::Hole(*at));
                    dates.push(None);
                    continue;
                }
            };
            let rows = page_rows(body, &self.portal, stream)?;
            if rows.len() > PAGE_SIZE {
                return Err(SourceError::NoAuditPlan(format!(
                    "{} rows for count={PAGE_SIZE}",
                    rows.len()
                )));
            }
            for row in rows {
                let g = match row {
                    PageRow::Event(ev) => Got::Event(ev),
                    PageRow::Text(row) => {
                        match Event::from_row_text(self.portal.clone(), Some(stream), row) {
                            Ok(ev) => Got::Event(ev),
                            Err(e) => Got::Bad(e, row),
                        }
                    }
                };
                dates.push(match &g {
                    Got::Event(ev) => Some(ev.time),
                    Got::Bad(_, row) => crate::event::row_id_and_date(row).1,
                    Got::Hole(_) => None,
                });
                got.push(g);
            }
        }
        let late = dates::repair(&mut dates, answered, Some(to));
        if late > 0 {
            debug!(portal = %self.portal.name, stream = %stream, rows = late, "rows dated an hour late (the DST fall-back hour) were given their true instant");
        }
        let n = got.len();
        let mut page = Page {
            events: Vec::with_capacity(n),
            ..Page::default()
        };
        for (i, g) in got.into_iter().enumerate() {
            let last = i + 1 == n;
            match g {
                Got::Event(mut ev) => {
                    if let Some(date) = dates[i] {
                        ev.time = date;
                    }
                    page.note_id(Some(ev.id), Some(ev.time), last);
                    page.events.push(ev);
                }
                Got::Bad(e, row) => {
                    let (id, _) = crate::event::row_id_and_date(row);
                    page.note_id(id, dates[i], last);
                    page.rejected.push((raw_value(row), e));
                }
                Got::Hole(at) => {
                    page.note_id(None, None, last);
                    page.holes.push(Unreadable {
                        stream,
                        position: at,
                        window: Some((from, to)),
                        newer: dates[..i].iter().rev().find_map(|d| *d),
                        older: dates[i + 1..].iter().find_map(|d| *d),
                    });
                }
            }
        }
        Ok(page)
    }

    /// One page of the whole login log (no filters) at `offset`: the dates of up to 100
    /// consecutive rows, all from one answer, so one consistent view of the log.
    async fn login_slice(&self, offset: usize) -> Result<Slice, SourceError> {
        let parts = self.read(Stream::Login, None, offset, PAGE_SIZE).await?;
        // One answer, the usual case: its rows stay where they are in its body. Parts read
        // around an unreadable row are joined into one text.
        let joined = !matches!(parts.as_slice(), [Part::Body(_)]);
        let mut text = String::new();
        let mut slice = Slice {
            offset,
            body: String::new(),
            spans: Vec::with_capacity(PAGE_SIZE),
            ids: Vec::with_capacity(PAGE_SIZE),
            dates: Vec::with_capacity(PAGE_SIZE),
            events: Vec::with_capacity(PAGE_SIZE),
            holes: Vec::new(),
            done: Instant::now(),
        };
        for part in &parts {
            let body = match part {
                Part::Body(body) => body,
                Part::Hole(_) => {
                    slice.holes.push(slice.spans.len());
                    slice.spans.push((0, 0));
                    slice.ids.push(None);
                    slice.dates.push(None);
                    slice.events.push(None);
                    continue;
                }
            };
            // Decoded in the one pass that splits the answer: a slice that starts the window
            // is emitted from, and its rows are not read again.
            let found = page_rows(body, &self.portal, Stream::Login)?;
            let n = found.len();
            if n > PAGE_SIZE {
                return Err(SourceError::NoAuditPlan(format!(
                    "{n} rows for count={PAGE_SIZE}"
                )));
            }
            let base = body.as_ptr() as usize;
            for row in found {
                match row {
                    PageRow::Event(ev) => {
                        slice.spans.push((0, 0));
                        slice.ids.push(Some(ev.id));
                        slice.dates.push(Some(ev.time));
                        slice.events.push(Some(ev));
                    }
                    PageRow::Text(row) => {
                        let span = if joined {
                            let start = text.len();
                            text.push_str(row);
                            (start, text.len())
                        } else {
                            let start = row.as_ptr() as usize - base;
                            (start, start + row.len())
                        };
                        slice.spans.push(span);
                        let (id, date) = crate::event::row_id_and_date(row);
                        slice.ids.push(id);
                        slice.dates.push(date);
                        slice.events.push(None);
                    }
                }
            }
        }
        // Moving the one body keeps its bytes where the spans point.
        slice.body = match parts.into_iter().next() {
            Some(Part::Body(body)) if !joined => body,
            _ => text,
        };
        if dates::repair(&mut slice.dates, OffsetDateTime::now_utc(), None) > 0 {
            for (ev, date) in slice.events.iter_mut().zip(&slice.dates) {
                if let (Some(ev), Some(date)) = (ev.as_mut(), date) {
                    ev.time = *date;
                }
            }
        }
        Ok(slice)
    }

    /// Records a request's round trip (a smoothed average).
    fn note_latency(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        let old = self.latency_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            us
        } else {
            old.saturating_mul(7).saturating_add(us) / 8
        };
        self.latency_us.store(new.max(1), Ordering::Relaxed);
    }

    /// How many probes to send at once: as many as the rate limiter lets through during one
    /// round trip (more would only wait for their slots), at most `concurrency`.
    fn probe_width(&self) -> usize {
        let interval = self.limiter.interval();
        if interval.is_zero() {
            return self.concurrency;
        }
        let rtt = self.latency_us.load(Ordering::Relaxed) as f64;
        let k = (rtt / interval.as_micros().max(1) as f64).ceil();
        (k as usize).clamp(1, self.concurrency)
    }

    /// Where the run of login rows not newer than `to` starts. Rows at offsets below `lo` are
    /// known to be newer than `to`; `guess` is where the run probably starts.
    ///
    /// Each round sends `probe_width` unfiltered slices at once: first a block of adjacent
    /// slices around the guess, then galloping away from what the slices showed, then k-ary
    /// splits of the bracket, and finally slices that cover it. It ends when one slice holds a
    /// row newer than `to` followed by one that is not: a single answer is a consistent view
    /// of the log, so rows inserted between answers cannot fake the start. Returns that slice,
    /// followed by the adjacent slices after it from the same round (they hold the run's next
    /// rows), and the index of the start in it (its length when the log ends before any such
    /// row).
    async fn locate_login(
        &self,
        to: OffsetDateTime,
        mut lo: usize,
        mut guess: Option<Guess>,
        requests: &mut u32,
    ) -> Result<(Vec<Slice>, usize), SourceError> {
        let mut hi: Option<usize> = None;
        let mut up: Option<usize> = None;
        let mut down: Option<usize> = None;
        for round in 0..MAX_PROBE_ROUNDS {
            // Known after the first answer of a run.
            let k = self.probe_width();
            let guessed = guess.is_some();
            let offsets = match (guess.take(), hi) {
                // No idea where: the head first, alone (a live window starts there).
                (None, None) if round == 0 && lo == 0 => vec![0],
                (_, Some(h)) if h.saturating_sub(lo.saturating_sub(1)) <= STRIDE * k => {
                    cover(lo, h)
                }
                (Some(g), _) => {
                    // Wide enough for the usual error of the guesses, at most `k`.
                    let n = g
                        .spread
                        .map_or(k, |s| (2 * s + 1).div_ceil(STRIDE))
                        .clamp(1, k);
                    block(g.at, n, lo, hi)
                }
                (None, None) => {
                    let step = up.unwrap_or(STRIDE * k);
                    up = Some(step.saturating_mul(1 << k));
                    gallop(lo.saturating_sub(1), step, k, true)
                }
                (None, Some(h)) => match down {
                    Some(step) => {
                        down = Some(step.saturating_mul(1 << k));
                        let v: Vec<usize> = gallop(h, step, k, false)
                            .into_iter()
                            .filter(|&o| o >= lo)
                            .collect();
                        if v.is_empty() { split(lo, h, k) } else { v }
                    }
                    None => split(lo, h, k),
                },
            };
            *requests += offsets.len() as u32;
            let slices =
                futures_util::future::try_join_all(offsets.iter().map(|&o| self.login_slice(o)))
                    .await?;
            if let Some(i) = slices.iter().position(|s| s.start(to).is_some()) {
                let at = slices[i].start(to).expect("checked");
                // The slices right after it hold the run's next rows.
                let mut run: Vec<Slice> = slices.into_iter().skip(i).collect();
                let adjacent = run
                    .windows(2)
                    .take_while(|w| w[1].offset == w[0].offset + STRIDE)
                    .count();
                run.truncate(adjacent + 1);
                return Ok((run, at));
            }
            let lo_before = lo;
            for s in &slices {
                let (l, h) = s.bounds(to);
                lo = lo.max(l);
                if let Some(h) = h {
                    hi = Some(hi.map_or(h, |x| x.min(h)));
                }
            }
            // Answers taken at different moments can disagree (rows were inserted between
            // them): look around `lo` then.
            if let Some(h) = hi
                && h < lo
            {
                hi = Some(lo);
            }
            if guessed && lo == lo_before && hi.is_some() {
                // The whole block lies past the start: gallop back towards the head.
                down = Some(STRIDE * k);
            } else if lo != lo_before {
                down = None;
            }
        }
        Err(SourceError::Unsettled(format!(
            "no start of the login rows up to {} after {MAX_PROBE_ROUNDS} rounds of probes (rows inserted faster than the search converges, or rows without a readable date)",
            format_utc_seconds(to)
        )))
    }

    /// Takes the window's first rows from the slice that located their start (`at`), and
    /// from the adjacent slices after it while each repeats the last row of the one before
    /// (they were answered in any order), filtered to `[from, to]` here. Returns where the
    /// next page goes when the run of matches may go on past them.
    fn start_from_slices(
        &self,
        slices: Vec<Slice>,
        at: usize,
        from: OffsetDateTime,
        to: OffsetDateTime,
        walk: &mut Walk,
    ) -> Option<After> {
        let mut prev: Option<Prev> = None;
        let mut index = 0;
        let mut run = 0usize;
        for mut slice in slices {
            let skip = match prev {
                None => {
                    walk.start.get_or_insert(slice.offset + at);
                    at
                }
                Some(p) => match slice.ids.iter().position(|id| *id == Some(p.id)) {
                    Some(i) => {
                        let others = (0..slice.len())
                            .filter(|&j| {
                                slice.dates[j] == Some(p.date) && slice.ids[j] != Some(p.id)
                            })
                            .count();
                        if p.tied >= 2 || others > 0 {
                            walk.ties.push((p.date, p.tied_at));
                        }
                        i + 1
                    }
                    None => break,
                },
            };
            let n = slice.len();
            let mut ended = n < PAGE_SIZE;
            let mut page = Page::default();
            for i in skip..n {
                let date = slice.dates[i];
                if slice.holes.contains(&i) {
                    page.note_id(None, None, i + 1 == n);
                    page.holes.push(Unreadable {
                        stream: Stream::Login,
                        position: slice.offset + i,
                        window: None,
                        newer: slice.dates[..i].iter().rev().find_map(|d| *d),
                        older: slice.dates[i + 1..].iter().find_map(|d| *d),
                    });
                    continue;
                }
                match date {
                    Some(d) if d < from => {
                        ended = true;
                        break;
                    }
                    // Not in one sorted answer; kept out all the same.
                    Some(d) if d > to => {}
                    _ => {
                        page.note_id(slice.ids[i], date, i + 1 == n);
                        if let Some(ev) = slice.events[i].take() {
                            page.events.push(ev);
                            continue;
                        }
                        let row = slice.row(i);
                        match Event::from_row_text(self.portal.clone(), Some(Stream::Login), row) {
                            Ok(mut ev) => {
                                if let Some(d) = date {
                                    ev.time = d;
                                }
                                page.events.push(ev)
                            }
                            Err(e) => page.rejected.push((raw_value(row), e)),
                        }
                    }
                }
            }
            run += page.rows();
            prev = Prev::of(&page, slice.offset + skip, slice.done, run);
            index = slice.offset + STRIDE;
            walk.take(page);
            if ended {
                return None;
            }
            if prev.is_none() {
                // A last row without a readable id or date: go on with pages, unchecked.
                break;
            }
        }
        Some(After { index, prev })
    }

    /// Locates where the login rows not newer than `top` start and takes the first of them.
    async fn start_login(
        &self,
        from: OffsetDateTime,
        top: OffsetDateTime,
        guess: Option<Guess>,
        walk: &mut Walk,
    ) -> Result<Option<After>, SourceError> {
        let (slices, at) = self
            .locate_login(top, 0, guess, &mut walk.w.requests)
            .await?;
        // Rows of two UTC offsets around the start: the zone changed near this window, and
        // dates may be an hour late and out of order there (§14.2).
        if let Some(first) = slices.first() {
            let mut zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
            zones.note(
                (0..first.len())
                    .rev()
                    .filter_map(|i| first.offset_secs(i).zip(first.dates[i])),
            );
        }
        Ok(self.start_from_slices(slices, at, from, top, walk))
    }

    /// A rough place to start looking for the run of login rows up to `to`, from where the
    /// last window started and its density (catch-up walks windows oldest first, so the next
    /// one starts nearer the head). `None` when the run probably begins in the first page.
    fn guess_start(&self, to: OffsetDateTime) -> Option<(Guess, f64)> {
        let h = (*self.hint.lock().unwrap_or_else(|e| e.into_inner()))?;
        let between = (to - h.to).as_seconds_f64() * h.rate;
        let at = h.start as f64 - between;
        let spread = h.error.map(|e| e as usize + 20);
        (at >= PAGE_SIZE as f64).then_some((
            Guess {
                at: at as usize,
                spread,
            },
            h.rate,
        ))
    }

    /// One filtered page, with the moments it was asked for and answered.
    async fn fetch(
        &self,
        stream: Stream,
        from: OffsetDateTime,
        to: OffsetDateTime,
        offset: usize,
    ) -> Result<Fetched, SourceError> {
        let issued = Instant::now();
        let page = self.page(stream, from, to, offset).await?;
        Ok(Fetched {
            page,
            issued,
            answered: Instant::now(),
        })
    }

    /// Reads every event of `[from, to]` (both inclusive). Stops early with `too_many` when
    /// more than `limit` rows arrive, so that memory stays bounded.
    ///
    /// - Pages are requested with `startIndex` steps of 99, so each page after a full one
    ///   repeats that page's last row. The first page of a window is fetched alone (a live
    ///   poll needs one). Once the window goes on, up to `concurrency` requests are kept in
    ///   flight and their pages used strictly in order; pages are not requested past where the
    ///   density read so far puts the end, and any fetched past the end are dropped.
    /// - A page that does not repeat that row was shifted by rows inserted above it: served
    ///   before the page above it (pages in flight together are served in any order), it
    ///   starts past rows that neither holds; served after, by 100 rows or more, it holds
    ///   nothing of the run yet. The first kind is fetched again; for the second the walker
    ///   starts again just below the last row read (`to` lowered to its date; duplicates of
    ///   that second are removed downstream). A short page that does repeat it ends the run.
    /// - Login pages the whole log before filtering, so the start of the window's run of rows
    ///   is located with unfiltered slices (`Client::locate_login`): at offset 0 alone when
    ///   the previous window gave no hint that the run lies further back (a live poll), else
    ///   around where the hint puts it.
    /// - Every window read in full ends with [`Client::probe_plan`], before any of its rows is
    ///   used: the "latest 20 rows" fallback is told apart for certain (§14.1).
    pub async fn window(
        &self,
        stream: Stream,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: usize,
    ) -> Result<Window, SourceError> {
        self.window_skipping(stream, from, to, limit, FxHashSet::default())
            .await
    }

    /// [`Client::window`], dropping events whose id is in `skip` as each page arrives (the
    /// poller's already-emitted ids: a re-read of the overlap then holds only new events).
    pub async fn window_skipping(
        &self,
        stream: Stream,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: usize,
        skip: FxHashSet<i64>,
    ) -> Result<Window, SourceError> {
        let began = Instant::now();
        let mut walk = Walk {
            skip,
            ..Walk::default()
        };
        if self.plan_lost.load(Ordering::Relaxed) {
            // Gone at the last look: while it stays gone, one request per retry.
            walk.w.requests += 1;
            self.probe_plan(stream).await?;
        }
        self.walk(stream, from, to, limit, &mut walk).await?;
        if stream == Stream::Login && !walk.w.too_many {
            let near = {
                let mut zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
                // Pages come newest first: the oldest and the newest row tell a change.
                let ends = [walk.w.events.last(), walk.w.events.first()];
                zones.note(
                    ends.into_iter()
                        .flatten()
                        .filter_map(|e| dates::offset_secs(e.date_text()).map(|o| (o, e.time))),
                );
                zones.near(from, to)
            };
            if near {
                self.read_by_position(from, to, &mut walk).await?;
            }
        }
        if !walk.w.too_many {
            let mut ties = std::mem::take(&mut walk.ties);
            ties.sort_unstable();
            ties.dedup_by_key(|t| t.0);
            for (second, at) in ties {
                self.read_second(stream, second, at, &mut walk).await?;
            }
        }
        if !walk.w.too_many {
            // After the last read and before any row is used: a window read while the plan
            // was gone is never used (§14.1).
            walk.w.requests += 1;
            self.probe_plan(stream).await?;
        }
        debug!(
            portal = %self.portal.name,
            stream = %stream,
            from = %format_utc_seconds(from),
            to = %format_utc_seconds(to),
            rows = walk.count(),
            requests = walk.w.requests,
            start = ?walk.start,
            too_many = walk.w.too_many,
            ms = began.elapsed().as_millis() as u64,
            "window read"
        );
        if stream == Stream::Login
            && let Some(start) = walk.start
        {
            let covered = if walk.w.too_many {
                walk.oldest.unwrap_or(from).max(from)
            } else {
                from
            };
            let secs = (to - covered).as_seconds_f64().max(1.0);
            let mut hint = self.hint.lock().unwrap_or_else(|e| e.into_inner());
            let error = match (walk.guess, hint.and_then(|h| h.error)) {
                (Some(g), Some(e)) => Some((e + start.abs_diff(g) as f64) / 2.0),
                (Some(g), None) => Some(start.abs_diff(g) as f64),
                (None, e) => e,
            };
            *hint = Some(LoginHint {
                to,
                start,
                rate: walk.rows as f64 / secs,
                error,
            });
        }
        Ok(walk.w)
    }

    async fn walk(
        &self,
        stream: Stream,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: usize,
        walk: &mut Walk,
    ) -> Result<(), SourceError> {
        // Rows newer than `top` were read already (or lie outside the window).
        let mut top = to;
        // Offset of the next page to use.
        let mut index = 0usize;
        // Whether the window goes on past its first page: then pages are fetched ahead.
        let mut ahead = false;
        // The last row of the last full page used.
        let mut prev: Option<Prev> = None;
        let mut anchors = 0usize;
        let mut refetched = false;
        if stream == Stream::Login {
            let guess = self.guess_start(to).map(|(guess, rate)| {
                walk.prior_rate = Some(rate);
                walk.guess = Some(guess.at);
                guess
            });
            let Some(after) = self.start_login(from, top, guess, walk).await? else {
                walk.w.too_many = walk.count() > limit;
                return Ok(());
            };
            if walk.count() > limit {
                walk.w.too_many = true;
                return Ok(());
            }
            (index, prev, ahead) = (after.index, after.prev, true);
        }
        let mut queue = FuturesOrdered::new();
        let mut next = index;
        loop {
            if queue.is_empty() {
                queue.push_back(self.fetch(stream, from, top, index));
                walk.w.requests += 1;
                next = index + STRIDE;
            }
            if ahead {
                let remaining = walk.remaining(from);
                while queue.len() < self.concurrency
                    && walk.count() + STRIDE * queue.len() <= limit
                    && remaining.is_none_or(|r| {
                        // The page at `next` is needed if the run reaches it. Rather one page
                        // too many (one request) than one too few (a round trip of waiting).
                        let margin = r.sqrt() + r / 10.0 + 10.0;
                        next as f64 <= index as f64 + r + margin
                    })
                {
                    queue.push_back(self.fetch(stream, from, top, next));
                    walk.w.requests += 1;
                    next += STRIDE;
                }
            }
            let f = queue.next().await.expect("the queue is not empty")?;
            // Starting again below a row of the second the walk restarted at would not move it
            // on (rows of one second may come in a different order in another answer): such a
            // page is used as it is.
            // A page that starts inside the second its predecessor ended in (ties, in any
            // order) is no shift: that second is read whole afterwards.
            if let Some(p) = prev
                && !f.page.ids.contains(&p.id)
                && f.page.first_date() != Some(p.date)
                && (p.date < top || (f.issued < p.answered && !refetched))
            {
                queue = FuturesOrdered::new();
                if f.issued < p.answered && !refetched {
                    // Fetched ahead, and maybe served before the page above it.
                    debug!(portal = %self.portal.name, stream = %stream, offset = index, "a page fetched ahead does not repeat the last row of the page before it; fetching it again");
                    refetched = true;
                    continue;
                }
                anchors += 1;
                if anchors > MAX_ANCHORS {
                    return Err(SourceError::Unsettled(format!(
                        "{MAX_ANCHORS} restarts of the {stream} window below rows shifted by inserts"
                    )));
                }
                debug!(portal = %self.portal.name, stream = %stream, offset = index, "rows inserted above the window shifted it by a page or more; reading on below the last row read");
                refetched = false;
                top = p.date;
                prev = None;
                match stream {
                    // Filtered first: offset 0 of `[from, top]` is the row below.
                    Stream::Audit => index = 0,
                    Stream::Login => {
                        let guess = Guess {
                            at: index,
                            spread: None,
                        };
                        let Some(after) = self.start_login(from, top, Some(guess), walk).await?
                        else {
                            walk.w.too_many = walk.count() > limit;
                            return Ok(());
                        };
                        (index, prev) = (after.index, after.prev);
                    }
                }
                if walk.count() > limit {
                    walk.w.too_many = true;
                    return Ok(());
                }
                continue;
            }
            refetched = false;
            let n = f.page.rows();
            if let Some(p) = prev
                && p.tie_with(&f.page)
            {
                walk.ties.push((p.date, p.tied_at));
            }
            // Rows this page repeats from above (the previous page's last row and any shifted
            // in with it, or the rows of the second it ended in), and how many rows of the run
            // are known down to its last row.
            let (repeated, run) = match prev {
                Some(p) => {
                    let at = match f.page.ids.iter().position(|id| *id == p.id) {
                        Some(i) => i + 1,
                        None => f
                            .page
                            .served
                            .iter()
                            .take_while(|r| r.1.is_some_and(|d| d >= p.date))
                            .count()
                            .max(1),
                    };
                    (at, p.run.saturating_add(n.saturating_sub(at)))
                }
                None => (0, n),
            };
            // A short page ends the run (login matches are contiguous in the log, audit rows
            // are filtered first), unless it may have been short only because rows from above
            // the run's start were shifted into it: it repeats every row of the run read so
            // far. Then the next page tells.
            let ends =
                n < PAGE_SIZE && (stream == Stream::Audit || prev.is_none_or(|p| repeated < p.run));
            prev = (n == PAGE_SIZE || (n > 0 && !ends))
                .then(|| Prev::of(&f.page, index, f.answered, run))
                .flatten();
            walk.take(f.page);
            if walk.count() > limit || (!ends && walk.will_overflow(from, to, limit)) {
                walk.w.too_many = true;
                return Ok(());
            }
            if ends || (n < PAGE_SIZE && prev.is_none()) {
                return Ok(());
            }
            ahead = true;
            index += STRIDE;
        }
    }

    /// The portal's retention in days for this stream (`GET …/audit/settings/lifetime`), when
    /// the key may read it. The answer is read under the same cap as every other
    /// ([`crate::http::SMALL_ANSWER`], or `max_response_mib` when lower): a larger or endless
    /// one is refused with a warning naming it, and the retention stays unknown.
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
                crate::http::sensitive(&format!("Bearer {}", self.key.expose_secret())),
            )
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let cap = crate::http::SMALL_ANSWER.min(self.max_body);
        let body = match crate::http::read_capped(resp, cap).await {
            Ok(b) => b,
            Err(e) => {
                warn!(portal = %self.portal.name, stream = %stream, error = %e, "the portal's retention (audit/settings/lifetime) was not read; retention warnings are off until the next start");
                return None;
            }
        };
        let v: Value = serde_json::from_slice(&body).ok()?;
        let key = match stream {
            Stream::Login => "loginHistoryLifeTime",
            Stream::Audit => "auditTrailLifeTime",
        };
        v.pointer(&format!("/response/{key}"))
            .and_then(Value::as_u64)
    }

    /// One cheap authenticated request, for `check`.
    /// The probe of [`Client::probe_plan`] on both streams: the key is accepted and both
    /// filter endpoints answer for real.
    pub async fn check(&self) -> Result<(), SourceError> {
        self.probe_plan(Stream::Login).await?;
        self.probe_plan(Stream::Audit).await
    }
}

/// `startIndex` step between consecutive pages: one row less than a page, so that each page
/// repeats the last row of the page before (see [`Client::window`]).
const STRIDE: usize = PAGE_SIZE - 1;
/// Rows a window is read to before its density may say it is too dense to finish.
const EARLY_ROWS: usize = 500;
/// Rounds of probes before the search for a login window's start gives up.
const MAX_PROBE_ROUNDS: usize = 64;
/// Times a window may start again below its last row read (rows inserted faster than it is
/// read) before it fails and is retried later.
const MAX_ANCHORS: usize = 32;

/// Up to 100 consecutive rows of the whole login log, from one answer.
struct Slice {
    offset: usize,
    /// The answer's body; each row the scan path left undecoded is
    /// `body[spans[i].0..spans[i].1]`.
    body: String,
    spans: Vec<(usize, usize)>,
    /// Each row as the scan path decoded it while splitting the answer (taken when emitted).
    events: Vec<Option<Event>>,
    /// Each row's id, `None` when unreadable.
    ids: Vec<Option<i64>>,
    /// Each row's date, `None` when unreadable.
    dates: Vec<Option<OffsetDateTime>>,
    /// Indices of rows the server could not return (read around, §14.4).
    holes: Vec<usize>,
    /// When the answer arrived.
    done: Instant,
}

impl Slice {
    fn len(&self) -> usize {
        self.spans.len()
    }

    fn row(&self, i: usize) -> &str {
        let (a, b) = self.spans[i];
        self.body.get(a..b).unwrap_or_default()
    }

    /// The UTC offset DocSpace wrote in row `i`'s date, in seconds.
    fn offset_secs(&self, i: usize) -> Option<i32> {
        match self.events.get(i)? {
            Some(ev) => dates::offset_secs(ev.date_text()),
            None => {
                let row = serde_json::from_str::<Value>(self.row(i)).ok()?;
                dates::offset_secs(row.get("date")?.as_str()?)
            }
        }
    }
    /// The index of the first row not newer than `to`, when this answer alone proves it: a
    /// row newer than `to` comes before it (or the slice starts the log). Rows with an
    /// unreadable date between the two count as not newer, so they are read, never skipped.
    /// The slice's length when it ends the log and all its rows are newer than `to`.
    fn start(&self, to: OffsetDateTime) -> Option<usize> {
        let first_older = self.dates.iter().position(|d| d.is_some_and(|d| d <= to));
        let end = first_older.unwrap_or(self.len());
        let last_newer = self.dates[..end]
            .iter()
            .rposition(|d| d.is_some_and(|d| d > to));
        match (first_older, last_newer) {
            (Some(_), Some(j)) => Some(j + 1),
            (Some(_), None) if self.offset == 0 => Some(0),
            (None, Some(j)) if self.len() < PAGE_SIZE && j + 1 == self.len() => Some(self.len()),
            (None, None) if self.offset == 0 && (self.len() == 0) => Some(0),
            _ => None,
        }
    }

    /// What this slice says otherwise: rows below `.0` are newer than `to`, and the row at
    /// `.1` is not (or lies past the end of the log).
    fn bounds(&self, to: OffsetDateTime) -> (usize, Option<usize>) {
        let first_older = self.dates.iter().position(|d| d.is_some_and(|d| d <= to));
        let end = first_older.unwrap_or(self.len());
        let lo = self.dates[..end]
            .iter()
            .rposition(|d| d.is_some_and(|d| d > to))
            .map_or(0, |j| self.offset + j + 1);
        let hi = match first_older {
            Some(i) => Some(self.offset + i),
            None if self.len() < PAGE_SIZE => Some(self.offset + self.len()),
            None => None,
        };
        (lo, hi)
    }
}

/// Slices that cover every possible start in `[lo, hi]`: adjacent ones overlap by a row, so
/// the start falls inside one of them.
fn cover(lo: usize, hi: usize) -> Vec<usize> {
    let first = lo.saturating_sub(1);
    let n = hi.saturating_sub(first).div_ceil(STRIDE).max(1);
    (0..n).map(|j| first + STRIDE * j).collect()
}

/// `k` adjacent slices centred on `center`, within the bracket.
fn block(center: usize, k: usize, lo: usize, hi: Option<usize>) -> Vec<usize> {
    let span = STRIDE * k;
    let floor = lo.saturating_sub(1);
    let mut first = center.saturating_sub(span / 2).max(floor);
    if let Some(h) = hi {
        first = first.min(h.saturating_sub(span)).max(floor);
    }
    (0..k).map(|j| first + STRIDE * j).collect()
}

/// `k` slices splitting `(lo, hi)` evenly.
fn split(lo: usize, hi: usize, k: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..k).map(|j| lo + (hi - lo) * (j + 1) / (k + 1)).collect();
    v.dedup();
    v
}

/// `k` slices at `step`, 2 × `step`, 4 × `step`… from `anchor`, upwards or downwards.
fn gallop(anchor: usize, step: usize, k: usize, up: bool) -> Vec<usize> {
    let mut v: Vec<usize> = (0..k)
        .map(|j| {
            let d = step.saturating_mul(1 << j);
            if up {
                anchor.saturating_add(d)
            } else {
                anchor.saturating_sub(d)
            }
        })
        .collect();
    v.dedup();
    v
}

/// A filtered page and when it was asked for and answered.
struct Fetched {
    page: Page,
    issued: Instant,
    answered: Instant,
}

/// The last row of the last full page (or slice) used, which the next page must repeat.
#[derive(Debug, Clone, Copy)]
struct Prev {
    id: i64,
    date: OffsetDateTime,
    /// When that page was answered.
    answered: Instant,
    /// Rows of the run read down to this one since the run's start was located (login).
    run: usize,
    /// Rows of that page dated `date` (a second of ties when more than one).
    tied: usize,
    /// Login: the offset in the log of the first of them.
    tied_at: usize,
}

impl Prev {
    /// The last row of `page`, read at `offset`, when its id and date are readable.
    fn of(page: &Page, offset: usize, answered: Instant, run: usize) -> Option<Prev> {
        let (id, date) = page.last?;
        let (tied, first) = page.of_second(date);
        Some(Prev {
            id,
            date,
            answered,
            run,
            tied,
            tied_at: offset + first.unwrap_or(0),
        })
    }

    /// Whether the edge between its page and `next` lies inside a second of several rows:
    /// rows of one second come in any order (§14.3), so neither page proves it read them all.
    fn tie_with(&self, next: &Page) -> bool {
        self.tied >= 2 || next.others_of_second(self.date, self.id) > 0
    }
}

/// Where a window goes on after the slice that located its start.
struct After {
    /// Offset of the next page.
    index: usize,
    /// The slice's last row.
    prev: Option<Prev>,
}

/// A window being read.
#[derive(Default)]
struct Walk {
    w: Window,
    /// Login: offset of the window's first row, roughly.
    start: Option<usize>,
    /// Rows read, and the newest and oldest date among them.
    rows: usize,
    newest: Option<OffsetDateTime>,
    oldest: Option<OffsetDateTime>,
    /// Rows per second of the previous window, until this one has enough of its own.
    prior_rate: Option<f64>,
    /// Login: where the hint put the start.
    guess: Option<usize>,
    /// Ids not to keep (already emitted).
    skip: FxHashSet<i64>,
    /// Seconds of several rows that a page edge fell inside, and (login) where in the log the
    /// first of their rows was seen: each is read whole once the window is (§14.3).
    ties: Vec<(OffsetDateTime, usize)>,
}

impl Walk {
    fn take(&mut self, page: Page) {
        self.rows += page.rows();
        for ev in &page.events {
            self.newest = Some(self.newest.map_or(ev.time, |t| t.max(ev.time)));
            self.oldest = Some(self.oldest.map_or(ev.time, |t| t.min(ev.time)));
        }
        if self.skip.is_empty() {
            self.w.events.extend(page.events);
        } else {
            let skip = &self.skip;
            self.w
                .events
                .extend(page.events.into_iter().filter(|e| !skip.contains(&e.id)));
        }
        self.w.rejected.extend(page.rejected);
        self.w.unreadable.extend(page.holes);
    }

    fn count(&self) -> usize {
        self.w.events.len() + self.w.rejected.len()
    }

    /// Whether the window clearly holds more than `limit` rows at the density read so far
    /// (`EARLY_ROWS` at least, a quarter more than allowed): it is split then, not after
    /// `limit` rows, each page of which would be a request under the portal's rate limit
    /// spent for nothing (a dense window is read again in parts). Never for a window of a
    /// second or two, which cannot be split.
    fn will_overflow(&self, from: OffsetDateTime, to: OffsetDateTime, limit: usize) -> bool {
        if self.rows < EARLY_ROWS || to - from <= time::Duration::seconds(2) {
            return false;
        }
        self.remaining(from)
            .is_some_and(|r| self.count() as f64 + r > limit as f64 * 1.25)
    }

    /// Rows expected between the oldest one read and `from`, at the density read so far.
    fn remaining(&self, from: OffsetDateTime) -> Option<f64> {
        let oldest = self.oldest?;
        let measured = self.newest.and_then(|newest| {
            let span = (newest - oldest).as_seconds_f64();
            (self.rows >= 2 && span > 0.0).then(|| (self.rows - 1) as f64 / span)
        });
        let rate = if self.rows >= 50 {
            measured
        } else {
            self.prior_rate.filter(|r| *r > 0.0).or(measured)
        }?;
        Some((oldest - from).as_seconds_f64().max(0.0) * rate)
    }
}

/// The envelope of a filter answer; rows stay unparsed slices of the body.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    response: Option<Vec<&'a RawValue>>,
    count: Option<Value>,
    status: Option<Value>,
}

/// The rows of a filter answer's envelope, each its own JSON text within `body`. A truncated
/// or malformed body, an error status inside a 200, or a `count` that disagrees with the rows
/// fails the whole page.
pub fn rows(body: &str) -> Result<Vec<&str>, SourceError> {
    let (rows, count, status) = match rows_scan(body) {
        Some(found) => found,
        None => rows_serde(body)?,
    };
    check_envelope(rows, count, status)
}

/// A row of a page read in one pass: decoded by the scan path, or its text, left to
/// [`Event::from_row_text`].
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // nearly every row is an `Event`: boxing would cost an allocation each
pub enum PageRow<'a> {
    /// Decoded as it was read.
    Event(Event),
    /// The row's JSON text, for the general decoder.
    Text(&'a str),
}

impl PageRow<'_> {
    /// The row's JSON text as it lies in the body.
    pub fn text(&self) -> &str {
        match self {
            PageRow::Event(ev) => ev.raw(),
            PageRow::Text(t) => t,
        }
    }
}

/// The rows of a filter answer, as [`rows`] finds them, each decoded in the same pass when
/// the scan path can (the page path: one read of the body instead of envelope + rows).
pub fn page_rows<'a>(
    body: &'a str,
    portal: &Arc<PortalInfo>,
    stream: Stream,
) -> Result<Vec<PageRow<'a>>, SourceError> {
    let (rows, count, status) = match page_rows_scan(body, portal, stream) {
        Some(found) => found,
        None => {
            let (rows, count, status) = rows_serde(body)?;
            (rows.into_iter().map(PageRow::Text).collect(), count, status)
        }
    };
    check_envelope(rows, count, status)
}

fn page_rows_scan<'a>(
    body: &'a str,
    portal: &Arc<PortalInfo>,
    stream: Stream,
) -> Option<EnvelopeParts<PageRow<'a>>> {
    envelope_scan(body, |sc| {
        let start = sc.pos();
        let mut probe = sc.clone();
        if let Some(ev) = Event::scan_row(portal, Some(stream), &mut probe) {
            *sc = probe;
            return Some(PageRow::Event(ev));
        }
        sc.skip_value(1)?;
        Some(PageRow::Text(sc.since(start)?))
    })
}

/// The checks every envelope passes: `status` 0, `count` (when given) the number of rows.
fn check_envelope<T>(rows: Vec<T>, count: Option<u64>, status: i64) -> Result<Vec<T>, SourceError> {
    if status != 0 {
        return Err(SourceError::Malformed(format!(
            "envelope status {status} with HTTP 200"
        )));
    }
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

/// Rows, `count` and `status` of an envelope (`count` when it is an unsigned integer,
/// `status` 0 unless an integer says otherwise).
type EnvelopeParts<T> = (Vec<T>, Option<u64>, i64);

/// [`rows`] by [`crate::scan`], one byte pass over the body; `None` for anything it leaves to
/// [`rows_serde`] (which then decides and names the problem): a row that is not an object,
/// a `count` or `status` that is not a plain integer, a duplicate key, malformed JSON.
fn rows_scan(body: &str) -> Option<EnvelopeParts<&str>> {
    envelope_scan(body, |sc| {
        let start = sc.pos();
        sc.skip_value(1)?;
        sc.since(start)
    })
}

/// The envelope read by [`crate::scan`], each row (the scanner at its `{`) read by `row`,
/// which must consume exactly that object.
fn envelope_scan<'a, T>(
    body: &'a str,
    mut row: impl FnMut(&mut crate::scan::Scanner<'a>) -> Option<T>,
) -> Option<EnvelopeParts<T>> {
    let mut sc = crate::scan::Scanner::new(body);
    let (mut rows, mut count, mut status) = (None, None, None);
    sc.object(|sc, key| {
        match key {
            "response" if rows.is_none() => {
                // Rows are a few hundred bytes: no page-sized block for an empty answer.
                let mut found = Vec::with_capacity((body.len() / 256).min(PAGE_SIZE));
                sc.array(|sc| {
                    sc.ws();
                    if sc.peek() != Some(b'{') {
                        return None;
                    }
                    found.push(row(sc)?);
                    Some(())
                })?;
                rows = Some(found);
            }
            "count" if count.is_none() => count = Some(sc.uint()? as u64),
            "status" if status.is_none() => status = Some(sc.uint()?),
            "response" | "count" | "status" => return None,
            _ => sc.skip_value(1)?,
        }
        Some(())
    })?;
    if !sc.at_end() {
        return None;
    }
    Some((rows?, count, status.unwrap_or(0)))
}

/// Splits `body` by both paths, [`crate::scan`] and serde_json, and names the first
/// difference: the scan may give up, but what it finds must be what serde_json finds. For the
/// differential tests and the `decode` fuzz target.
#[doc(hidden)]
pub fn envelope_paths_agree(body: &str) -> Result<(), String> {
    let portal = Arc::new(PortalInfo::new("p", "https://p.example"));
    let paged = page_rows_scan(body, &portal, Stream::Login);
    let Some(fast) = rows_scan(body) else {
        return match paged {
            None => Ok(()),
            Some(_) => Err("the page scan read a body the row scan gives up on".into()),
        };
    };
    let paged = paged.ok_or("the page scan gave up on a body the row scan reads")?;
    let paged_text: Vec<&str> = paged.0.iter().map(PageRow::text).collect();
    if (&paged_text, paged.1, paged.2) != (&fast.0, fast.1, fast.2) {
        return Err(format!("page scan {paged_text:?}, row scan {fast:?}"));
    }
    match rows_serde(body) {
        Ok(slow) if slow == fast => Ok(()),
        Ok(slow) => Err(format!("scan {fast:?}, serde {slow:?}")),
        Err(e) => Err(format!("scan split a body serde_json refuses ({e})")),
    }
}

/// Whether the scan path splits `body` (the hot path is taken), for tests.
#[doc(hidden)]
pub fn scan_splits(body: &str) -> bool {
    rows_scan(body).is_some()
}

/// [`rows`] by serde_json: the reference, and the path that names what is wrong.
fn rows_serde(body: &str) -> Result<EnvelopeParts<&str>, SourceError> {
    let env: Envelope<'_> = serde_json::from_str(body).map_err(|e| {
        if e.is_data() {
            SourceError::Malformed(format!("the body is not a DocSpace envelope ({e})"))
        } else {
            SourceError::Malformed(format!(
                "{} bytes that are not complete JSON ({e}); starts with {:?}",
                body.len(),
                snippet(body.as_bytes())
            ))
        }
    })?;
    let status = env.status.as_ref().map_or(0, |s| s.as_i64().unwrap_or(0));
    let rows: Vec<&str> = env
        .response
        .ok_or_else(|| SourceError::Malformed("the envelope has no `response` array".into()))?
        .into_iter()
        .map(RawValue::get)
        .collect();
    Ok((rows, env.count.as_ref().and_then(Value::as_u64), status))
}

/// The start of a remote text, fit to quote: every configured secret removed (an error page
/// or proxy may echo the request's `Authorization` header), control characters blanked, cut
/// short ([`crate::http::quote`]).
fn snippet(body: &[u8]) -> String {
    let mut s = crate::http::quote(body);
    if s.chars().count() > SNIPPET {
        s = s.chars().take(SNIPPET).collect();
        s.push('…');
    }
    s
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

/// Whether a 403 body is the IP restriction's (`IpSecurityFilter` answers
/// `Resource.ErrorIpSecurity`, "The access to the portal is restricted", as a bare string or in
/// an envelope).
fn ip_restricted(body: &[u8]) -> bool {
    const TEXT: &[u8] = b"access to the portal is restricted";
    body.windows(TEXT.len())
        .any(|w| w.eq_ignore_ascii_case(TEXT))
}

/// Default timeout of a portal request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use time::macros::datetime;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Envelopes with keys in any order, missing, duplicated or mistyped, rows of any
        /// kind, odd spacing, and now and then a byte cut or changed: whatever the scan path
        /// splits, serde_json splits the same way.
        #[test]
        fn the_scan_path_splits_envelopes_as_serde_json_does(
            rows in prop::collection::vec(prop_oneof![
                4 => Just(r#"{"id":1,"date":"2025-01-15T14:32:07.0000000\u002B01:00","user":"a\"}b"}"#),
                1 => Just(r#"{ "nested": {"a": [1, {"b": "]"}]}, "x": -1.5e3 }"#),
                1 => Just("[]"),
                1 => Just("\"row\""),
                1 => Just("null"),
            ], 0..5),
            extra in prop::collection::vec(prop_oneof![
                Just(r#""count":2"#), Just(r#""count":"2""#), Just(r#""count":-1"#),
                Just(r#""status":0"#), Just(r#""status":1"#), Just(r#""status":null"#),
                Just(r#""statusCode":200"#), Just(r#""links":[{"href":"x"}]"#),
                Just(r#""response":null"#), Just(r#""response":[]"#), Just(r#""total":1.5"#),
            ], 0..4),
            ws in prop::sample::select(vec!["", " ", "\n  "]),
            cut in any::<u16>(),
            mutation in any::<u8>(),
        ) {
            let mut fields = vec![format!("\"response\":{ws}[{}]", rows.join(&format!(",{ws}")))];
            fields.extend(extra.iter().map(|s| s.to_string()));
            let n = fields.len();
            fields.rotate_left(mutation as usize % n);
            let mut body = format!("{ws}{{{}}}{ws}", fields.join(&format!("{ws},{ws}")));
            match mutation % 10 {
                0 => {
                    let mut at = cut as usize % (body.len() + 1);
                    while !body.is_char_boundary(at) {
                        at -= 1;
                    }
                    body.truncate(at);
                }
                1 => {
                    let at = cut as usize % (body.len() + 1);
                    if body.is_char_boundary(at) {
                        body.insert(at, ['"', ',', '}', ']', '\\'][mutation as usize % 5]);
                    }
                }
                _ => {}
            }
            prop_assert_eq!(envelope_paths_agree(&body), Ok(()));
            let via_rows = rows_scan(&body).map(|(r, _, _)| r);
            if let Some(found) = via_rows {
                prop_assert_eq!(rows_serde(&body).ok().map(|(r, _, _)| r), Some(found));
            }
        }
    }

    #[test]
    fn docspace_pages_take_the_scan_path() {
        let page = include_str!("../../tests/fixtures/login-filter.json");
        assert!(scan_splits(page));
        assert_eq!(envelope_paths_agree(page), Ok(()));
        let compact: Value = serde_json::from_str(page).unwrap();
        assert!(scan_splits(&compact.to_string()));
        let found = rows(page).unwrap();
        assert!(found.iter().all(|r| crate::event::scan_decodes(r)));
        for bad in [
            "",
            "{",
            r#"{"response":[{"id":1}],"count":2}"#,
            r#"{"status":1,"response":[]}"#,
        ] {
            assert!(rows(bad).is_err(), "{bad}");
        }
    }

    fn slice(offset: usize, dates: &[Option<OffsetDateTime>], full: bool) -> Slice {
        let mut dates = dates.to_vec();
        if full {
            let last = dates.last().copied().flatten();
            dates.resize(PAGE_SIZE, last);
        }
        let mut body = String::new();
        let mut spans = Vec::new();
        for i in 0..dates.len() {
            let start = body.len();
            body.push_str(&json!({ "id": 1000 - i as i64 }).to_string());
            spans.push((start, body.len()));
        }
        Slice {
            offset,
            body,
            ids: (0..spans.len()).map(|i| Some(1000 - i as i64)).collect(),
            events: (0..spans.len()).map(|_| None).collect(),
            spans,
            dates,
            holes: Vec::new(),
            done: Instant::now(),
        }
    }

    #[test]
    fn a_slice_proves_a_start_only_with_a_newer_row_before_it() {
        let to = datetime!(2025-01-01 12:00 UTC);
        let newer = Some(to + time::Duration::minutes(1));
        let older = Some(to - time::Duration::minutes(1));
        // Newer, newer, unreadable, older…: the start is the unreadable row (read, not skipped).
        let s = slice(500, &[newer, newer, None, older], true);
        assert_eq!(s.start(to), Some(2));
        // Older from the first row on: not proven here (rows above may be older too)…
        let s = slice(500, &[older], true);
        assert_eq!(s.start(to), None);
        assert_eq!(s.bounds(to), (0, Some(500)));
        // … unless the slice starts the log.
        assert_eq!(slice(0, &[older], true).start(to), Some(0));
        // All newer and full: the start lies further on.
        let s = slice(500, &[newer], true);
        assert_eq!(s.start(to), None);
        assert_eq!(s.bounds(to), (600, None));
        // All newer and the log ends: no row is old enough; the start is the end.
        let s = slice(500, &[newer, newer, newer], false);
        assert_eq!(s.start(to), Some(3));
        // Past the end.
        let s = slice(900, &[], false);
        assert_eq!(s.start(to), None);
        assert_eq!(s.bounds(to), (0, Some(900)));
    }

    #[test]
    fn probe_layouts_cover_what_they_must() {
        // Every start in [lo, hi] falls strictly inside one covering slice.
        for (lo, hi) in [(0, 0), (1, 1), (100, 100), (100, 150), (100, 496), (7, 300)] {
            let v = cover(lo, hi);
            for s in lo.max(1)..=hi {
                assert!(
                    v.iter().any(|&o| o < s && s <= o + STRIDE),
                    "{s} in [{lo}, {hi}]: {v:?}"
                );
            }
        }
        assert_eq!(block(1000, 4, 0, None), vec![802, 901, 1000, 1099]);
        assert_eq!(block(50, 4, 0, None), vec![0, 99, 198, 297]);
        assert_eq!(split(0, 1000, 4), vec![200, 400, 600, 800]);
        assert_eq!(gallop(99, 396, 3, true), vec![495, 891, 1683]);
        assert_eq!(gallop(1000, 396, 3, false), vec![604, 208, 0]);
    }
}
