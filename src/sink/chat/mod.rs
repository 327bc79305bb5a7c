//! Chat sinks: alert messages in each service's native shape (Slack blocks, a Teams Workflows
//! Adaptive Card, Mattermost, Discord embeds, Google Chat cardsV2; one renderer per service),
//! and the client that posts them under a per-webhook rate limit (docs/formats.md §4.3). The
//! generic sink loop judges a batch with the sink's rules; the alerts become one record, the
//! rendered message, which [`ChatSink::send`] posts.
//!
//! Invariants:
//! - A chat sink posts only alerts: nothing at start-up, no heartbeat, never an event as such.
//!   Its health check makes a request that posts nothing.
//! - At most one message per batch of events: several alerts become one digest ("12 alerts"),
//!   showing as many as the service's limits allow and counting the rest by rule, never
//!   dropping them silently.
//! - Every message is within the service's documented limits (Slack 50 blocks and 3000
//!   characters per section; Discord 2000 content, 10 embeds, 6000 characters in embeds, 25
//!   fields; Mattermost 16383 characters; Google Chat 32,000 bytes; Teams about 28 KB),
//!   counted in UTF-16 units, the stricter of the ways services count.
//! - Event values are attacker-controlled (a login is whatever was typed): control, bidi and
//!   zero-width characters become U+FFFD, `://` and `www.` are broken so nothing links, and
//!   each service's markup is neutralised (Slack `&<>` entities inside code spans; Mattermost
//!   and Google Chat `<>` replaced and code spans; Discord code spans, `@` broken and
//!   `allowed_mentions: {"parse": []}`; Teams `[]<>` replaced; Google Chat cards HTML-escaped).
//! - The webhook URL is a credential: only scheme://host/… appears in errors and logs, and a
//!   response body is quoted only when it holds no piece of the URL.
//! - Posts are paced by a token bucket (1 message/s by default); `Retry-After` (and Discord's
//!   `retry_after` body field and `X-RateLimit-Reset-After`) hold the bucket and are handed to
//!   the retry loop, which never drops an alert for a retryable failure.

mod discord;
mod google_chat;
mod mattermost;
mod render;
mod slack;
mod teams;

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

pub use render::payload;
pub(crate) use render::tally;

use crate::alert::{Alert, RuleConfig};
use crate::http::{HttpTls, redact_url};
use crate::retry::MAX_SINK_BACKOFF;
use crate::sink::SinkError;

/// A chat service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChatKind {
    /// Slack incoming webhook (blocks).
    Slack,
    /// Microsoft Teams Workflows webhook (Adaptive Card 1.4).
    Teams,
    /// Mattermost incoming webhook.
    Mattermost,
    /// Discord webhook (embeds).
    Discord,
    /// Google Chat incoming webhook (cardsV2).
    GoogleChat,
}

impl ChatKind {
    /// Every chat service.
    pub const ALL: [ChatKind; 5] = [
        ChatKind::Slack,
        ChatKind::Teams,
        ChatKind::Mattermost,
        ChatKind::Discord,
        ChatKind::GoogleChat,
    ];

    /// The sink `type` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatKind::Slack => "slack",
            ChatKind::Teams => "teams",
            ChatKind::Mattermost => "mattermost",
            ChatKind::Discord => "discord",
            ChatKind::GoogleChat => "google_chat",
        }
    }

    /// Parses a sink `type`.
    pub fn parse(s: &str) -> Option<ChatKind> {
        ChatKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Most alerts shown in one digest before the "and N more" line.
    pub(super) fn max_shown(self) -> usize {
        match self {
            ChatKind::Slack => 40,
            ChatKind::Discord => 9,
            ChatKind::Teams | ChatKind::GoogleChat | ChatKind::Mattermost => 25,
        }
    }
}

impl std::fmt::Display for ChatKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// The sink

/// Settings of a chat sink (`type = "slack" | "teams" | "mattermost" | "discord" | "google_chat"`).
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// The service.
    pub kind: ChatKind,
    /// The webhook URL (it embeds a token, hence secret).
    pub url: SecretString,
    /// The rules that raise alerts on this sink, resolved (built-in defaults included).
    pub rules: Vec<RuleConfig>,
    /// Messages per second (token bucket); 1 by default.
    pub rate: f64,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// TLS settings.
    pub tls: HttpTls,
    /// The agent's `state_dir`: the sink keeps its rule state in `alerts/<sink name>/` below it.
    pub state_dir: PathBuf,
}

impl ChatConfig {
    /// The URL with its tokens hidden, for logs.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose_secret())
    }
}

/// A token bucket of capacity one: at most one message per `interval`, and no message before
/// a `Retry-After` has passed.
#[derive(Debug)]
struct Pacer {
    interval: Duration,
    next: Option<tokio::time::Instant>,
}

impl Pacer {
    fn new(rate: f64) -> Pacer {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate.clamp(0.001, 100.0)
        } else {
            1.0
        };
        Pacer {
            interval: Duration::from_secs_f64(1.0 / rate),
            next: None,
        }
    }

    /// Waits for the token, then takes it.
    async fn acquire(&mut self) {
        if let Some(n) = self.next {
            tokio::time::sleep_until(n).await;
        }
        self.next = Some(tokio::time::Instant::now() + self.interval);
    }

    /// Nothing is sent for `d` (a `Retry-After`).
    fn hold(&mut self, d: Duration) {
        let until = tokio::time::Instant::now() + d;
        self.next = Some(self.next.map_or(until, |n| n.max(until)));
    }
}

/// A chat webhook: posts the messages the sink loop renders from the alerts of its rules.
pub struct ChatSink {
    name: String,
    kind: ChatKind,
    url: SecretString,
    shown: String,
    http: reqwest::Client,
    pacer: Pacer,
}

impl std::fmt::Debug for ChatSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatSink")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl ChatSink {
    /// Builds the client (no request, no write).
    pub fn new(name: &str, cfg: ChatConfig) -> Result<ChatSink, String> {
        let target = url::Url::parse(cfg.url.expose_secret())
            .map_err(|_| format!("url {} is not a valid URL", cfg.redacted_url()))?;
        let http =
            crate::http::client(&cfg.tls, cfg.timeout, &target).map_err(|e| e.to_string())?;
        let shown = cfg.redacted_url();
        Ok(ChatSink {
            name: name.to_owned(),
            kind: cfg.kind,
            url: cfg.url,
            shown,
            http,
            pacer: Pacer::new(cfg.rate),
        })
    }

    /// The service.
    pub fn kind(&self) -> ChatKind {
        self.kind
    }

    /// The message for the alerts of one batch, as the one record the sink posts: a single
    /// alert in detail or a digest; `None` when the batch raised none (nothing is posted).
    pub fn render(&self, alerts: &[Alert]) -> Option<Bytes> {
        if alerts.is_empty() {
            return None;
        }
        Some(
            serde_json::to_vec(&payload(self.kind, alerts))
                .unwrap_or_default()
                .into(),
        )
    }

    /// Posts records, each one message, in order, stopping at the first failure. The sink loop
    /// hands it the one message of a batch at a time, so a retry never posts a message twice.
    pub async fn send(&mut self, records: &[Bytes]) -> Result<(), SinkError> {
        for r in records {
            self.post_body(r.clone()).await?;
        }
        Ok(())
    }

    /// Posts one message, after the rate limit allows it.
    pub async fn post(&mut self, payload: &Value) -> Result<(), SinkError> {
        self.post_body(serde_json::to_vec(payload).unwrap_or_default().into())
            .await
    }

    /// Posts one serialised message, after the rate limit allows it.
    async fn post_body(&mut self, body: Bytes) -> Result<(), SinkError> {
        self.pacer.acquire().await;
        let content_type = match self.kind {
            ChatKind::GoogleChat => "application/json; charset=UTF-8",
            _ => "application/json",
        };
        let what = format!("{} webhook {}", self.kind, self.shown);
        let resp = self
            .http
            .post(self.url.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                SinkError::retryable(format!("{what}: {}", crate::tls::describe_reqwest(&e)))
            })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = read_capped(resp, 16 * 1024).await;
        if status.is_success() {
            return Ok(());
        }
        let wait = retry_after_of(&headers, &text);
        if let Some(w) = wait {
            self.pacer.hold(w);
        }
        let retry_after = wait.map(|w| w.as_secs_f64().ceil() as u64);
        let code = status.as_u16();
        let said = quote_body(&text, self.url.expose_secret());
        let what = format!("{what} answered HTTP {code}{said}");
        Err(match code {
            429 => SinkError {
                retry_after,
                ..SinkError::retryable(format!("{what} (rate limited)"))
            },
            408 | 500 | 502..=599 => SinkError {
                retry_after,
                ..SinkError::retryable(what)
            },
            401 | 403 | 404 | 410 => SinkError::operator(format!(
                "{what}: the service refused the webhook (revoked or wrong URL, deleted or archived channel, disabled flow); check url (alerts wait meanwhile)"
            )),
            // Not the alert's fault: it waits for the operator (retried, shown in /health).
            300..=399 => SinkError::operator(format!(
                "{what}: redirects are not followed; set url to the webhook's final address (alerts wait meanwhile)"
            )),
            _ => SinkError::fatal(format!("{what}: the service rejected the message")),
        })
    }

    /// Checks the webhook is reachable without posting anything (a chat sink posts only
    /// alerts). Discord answers a GET with the webhook, so a wrong token shows here.
    pub async fn healthcheck(&mut self) -> Result<String, SinkError> {
        let method = match self.kind {
            ChatKind::Discord => reqwest::Method::GET,
            _ => reqwest::Method::HEAD,
        };
        let what = format!("{} webhook {}", self.kind, self.shown);
        match self
            .http
            .request(method, self.url.expose_secret())
            .send()
            .await
        {
            Ok(r) => {
                let code = r.status().as_u16();
                if self.kind == ChatKind::Discord && matches!(code, 401 | 403 | 404) {
                    return Err(SinkError::operator(format!(
                        "{what} answered HTTP {code}: no such webhook or a wrong token; check url"
                    )));
                }
                Ok(format!("{what} reachable (HTTP {code}); nothing posted"))
            }
            Err(e) => Err(SinkError::retryable(format!(
                "{what}: {}",
                crate::tls::describe_reqwest(&e)
            ))),
        }
    }
}

/// Reads at most `cap` bytes of a response body as text.
async fn read_capped(mut resp: reqwest::Response, cap: usize) -> String {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = cap.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= cap {
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The wait a 429/5xx asks for (`Retry-After`, Discord's `X-RateLimit-Reset-After` and
/// `retry_after` body field; the longest wins), capped at the sink backoff. Absurd values (NaN,
/// negative, infinite) are ignored and huge ones clamped by [`crate::retry::chat_retry_after`]:
/// no answer can panic the task.
fn retry_after_of(headers: &reqwest::header::HeaderMap, body: &str) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    crate::retry::chat_retry_after(
        header("retry-after"),
        header("x-ratelimit-reset-after"),
        body,
        time::OffsetDateTime::now_utc(),
    )
    .map(|d| d.min(MAX_SINK_BACKOFF))
}

/// ` (body)` for an error message: the first line of a short body, only when it holds no
/// piece of the secret URL.
fn quote_body(body: &str, url: &str) -> String {
    let line: String = body
        .trim()
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(160)
        .collect();
    if line.is_empty() {
        return String::new();
    }
    // Every configured secret, not only this webhook's: a service may echo anything it got.
    let line = crate::http::scrub(&line);
    let secret_bits = url
        .split(['/', '?', '&', '=', ':'])
        .filter(|s| s.len() >= 6);
    let lower = line.to_lowercase();
    if secret_bits
        .into_iter()
        .any(|bit| lower.contains(&bit.to_lowercase()))
    {
        return String::new();
    }
    format!(" ({line})")
}

#[cfg(test)]
mod tests;
