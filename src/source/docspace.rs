//! The DocSpace client of one portal: its settings and one authenticated, rate-limited request
//! per call, the answer classified. Its children read what it fetches: the envelope
//! (`envelope.rs`), a page (`page.rs`), the start of a login window (`locator.rs`) and a whole
//! window (`walker.rs`), and their errors are in `error.rs`.
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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tracing::{trace, warn};
use url::Url;

use crate::event::{PortalInfo, Stream};

mod dates;
mod envelope;
mod error;
mod locator;
mod narrow;
mod page;
mod plan;
mod ties;
mod walker;
pub use dates::FALL_BACK;
pub use envelope::{PageRow, page_rows, rows};
#[doc(hidden)]
pub use envelope::{envelope_paths_agree, scan_splits};
pub use error::{ErrorClass, SourceError};
pub use narrow::Unreadable;
pub use page::Page;
pub use plan::Quota;
pub use walker::Window;
// The limiter's old path, kept for the agent and the integration tests that name it.
pub use crate::ratelimit::RateLimiter;

/// Rows per request: the API's maximum.
pub const PAGE_SIZE: usize = 100;

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
    hint: Arc<std::sync::Mutex<Option<locator::LoginHint>>>,
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
                .map(crate::http::redact_url)
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
            return Err(SourceError::of_answer(status.as_u16(), &body));
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

/// Default timeout of a portal request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
