//! The Splunk HEC sink: `POST {endpoint}/services/collector/event` with concatenated event
//! envelopes, `Authorization: Splunk <token>`, and optional indexer acknowledgement.
//!
//! Envelope per event: `{"time": <epoch s.ms of the event>, "host", "source", "sourcetype",
//! "index", "event": <ECS or raw JSON>}` (docs/formats.md §4.1); `index`, `sourcetype` and
//! `source` may name `{portal}`, `{stream}` and `{label.KEY}`, rendered per portal and stream,
//! and are sent exactly as configured when they name none. Responses are mapped by HEC
//! code: 0 delivered; 8/9, 5xx, 429 and network errors retried; 6 (invalid data format at
//! event N) accepts the events before N, dead-letters N and re-sends the rest; 413 splits the
//! batch; token, index and channel errors are named configuration errors (dead-lettered, so the
//! operator sees every event that did not make it).
//!
//! With `ack = true`, every request carries `X-Splunk-Request-Channel` and a batch counts as
//! delivered only once `/services/collector/ack` reports its `ackId` indexed; an ack that does
//! not come within `ack_timeout` re-sends the batch (a duplicate, never a loss).

use std::time::{Duration, Instant};

use bytes::Bytes;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

use super::template::{Route, Template};
use super::{Partial, SinkError};
use crate::event::{Event, PortalInfo, Stream};
use crate::http::HttpTls;
use crate::transform;
use crate::transform::Format;

/// Settings of a Splunk HEC sink.
#[derive(Debug, Clone)]
pub struct SplunkConfig {
    /// Base URL; the sink appends `/services/collector/event`.
    pub endpoint: url::Url,
    /// The HEC token.
    pub token: SecretString,
    /// `index`, when set. This and the two below may name `{portal}`, `{stream}` and
    /// `{label.KEY}`; a text without them is sent exactly as configured.
    pub index: Option<Template>,
    /// `sourcetype`; default `docspace:login` / `docspace:audit`.
    pub sourcetype: Option<Template>,
    /// `source`; default `docspace-siem`.
    pub source: Option<Template>,
    /// `host`; default the portal's host name.
    pub host: Option<String>,
    /// Indexer acknowledgement.
    pub ack: bool,
    /// How long to wait for an ack before re-sending.
    pub ack_timeout: Duration,
    /// Most events per request.
    pub max_events: usize,
    /// How long a partial batch waits.
    pub batch_timeout: Duration,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// TLS settings.
    pub tls: HttpTls,
}

/// Posts to Splunk HEC.
#[derive(Debug)]
pub struct SplunkSink {
    cfg: SplunkConfig,
    format: Format,
    http: reqwest::Client,
    channel: String,
    shown: String,
    /// The envelope's routing fields for the portal and stream of the last event: rendered once
    /// per batch, since a batch comes from one portal and stream.
    route: Route<Routing>,
}

/// `host`, `source`, `sourcetype` and `index` of one portal and stream, as JSON values.
#[derive(Debug)]
struct Routing {
    host: Value,
    source: Value,
    sourcetype: Value,
    index: Option<Value>,
}

impl Routing {
    fn of(cfg: &SplunkConfig, portal: &PortalInfo, stream: Stream) -> Routing {
        let render = |t: &Template| Value::String(t.render(portal, stream).into_owned());
        Routing {
            host: json!(cfg.host.as_deref().unwrap_or(&portal.host)),
            source: cfg
                .source
                .as_ref()
                .map_or_else(|| json!("docspace-siem"), render),
            sourcetype: cfg.sourcetype.as_ref().map_or_else(
                || Value::String(format!("docspace:{}", stream.as_str())),
                render,
            ),
            index: cfg.index.as_ref().map(render),
        }
    }
}

/// A random GUID for the HEC request channel.
fn guid() -> String {
    let a = fastrand::u64(..);
    let b = fastrand::u64(..);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

impl SplunkSink {
    /// Builds the client.
    pub fn new(cfg: SplunkConfig, format: Format) -> Result<SplunkSink, String> {
        let http =
            crate::http::client(&cfg.tls, cfg.timeout, &cfg.endpoint).map_err(|e| e.to_string())?;
        let shown = crate::http::redact_url(cfg.endpoint.as_str());
        Ok(SplunkSink {
            cfg,
            format,
            http,
            channel: guid(),
            shown,
            route: Route::default(),
        })
    }

    /// Most events per request.
    pub fn max_events(&self) -> usize {
        self.cfg.max_events
    }

    /// How long a partial batch waits.
    pub fn linger(&self) -> Duration {
        self.cfg.batch_timeout
    }

    /// One HEC envelope (with a trailing newline).
    pub fn record(&mut self, ev: &Event) -> Bytes {
        let mut doc = Vec::with_capacity(1024);
        transform::encode(self.format, ev, &mut doc);
        let event: Value = serde_json::from_slice(&doc).unwrap_or(Value::Null);
        let cfg = &self.cfg;
        let route = self
            .route
            .get(ev, |portal, stream| Routing::of(cfg, portal, stream));
        let millis = ev.epoch_millis();
        let mut env = serde_json::Map::new();
        env.insert("host".into(), route.host.clone());
        env.insert("source".into(), route.source.clone());
        env.insert("sourcetype".into(), route.sourcetype.clone());
        if let Some(index) = &route.index {
            env.insert("index".into(), index.clone());
        }
        env.insert("event".into(), event);
        let rest = serde_json::to_vec(&Value::Object(env)).unwrap_or_default();
        // `time` first, as epoch seconds with exactly three decimals: written by hand because
        // a JSON number through serde_json would lose the trailing zeros.
        let mut out = format!(
            "{{\"time\":{}.{:03},",
            millis.div_euclid(1000),
            millis.rem_euclid(1000)
        )
        .into_bytes();
        out.extend_from_slice(rest.get(1..).unwrap_or_default());
        out.push(b'\n');
        out.into()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.endpoint.as_str().trim_end_matches('/'))
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .post(self.url(path))
            .header(
                reqwest::header::AUTHORIZATION,
                crate::http::sensitive(&format!("Splunk {}", self.cfg.token.expose_secret())),
            )
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if self.cfg.ack {
            req = req.header("X-Splunk-Request-Channel", &self.channel);
        }
        req
    }

    /// Sends one batch of envelopes.
    pub async fn send(&mut self, records: &[Bytes]) -> Result<Partial, SinkError> {
        let body: Vec<u8> = records.iter().flat_map(|r| r.iter().copied()).collect();
        let resp = self
            .post("/services/collector/event")
            .body(body)
            .send()
            .await
            .map_err(|e| super::transport_error("splunk hec", &self.shown, &e))?;
        let status = resp.status().as_u16();
        let retry_after = super::retry_after_header(&resp);
        let body: Value = crate::http::read_capped(resp, crate::http::SMALL_ANSWER)
            .await
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let code = body.get("code").and_then(Value::as_i64);
        let text = crate::http::quote(
            body.get("text")
                .and_then(Value::as_str)
                .unwrap_or("")
                .as_bytes(),
        );
        let what = format!(
            "splunk hec {} answered HTTP {status} code {} ({text})",
            self.shown,
            code.map_or("-".to_owned(), |c| c.to_string())
        );
        match (status, code) {
            (200..=299, _) => {
                if self.cfg.ack
                    && let Some(ack_id) = body.get("ackId").and_then(Value::as_u64)
                {
                    self.wait_for_ack(ack_id).await?;
                }
                Ok(Partial::default())
            }
            (400, Some(6)) => {
                // Events before N were accepted; N is bad; the rest must be sent again.
                let n = body
                    .get("invalid-event-number")
                    .and_then(Value::as_u64)
                    .map_or(0, |n| n as usize)
                    .min(records.len().saturating_sub(1));
                Ok(Partial {
                    rejected: vec![(n, format!("{what}: event rejected as invalid"))],
                    retry: (n + 1..records.len()).collect(),
                    retry_after: Some(0),
                })
            }
            (413, _) => Err(SinkError {
                too_large: true,
                ..SinkError::fatal(format!("{what}: the batch exceeds max_content_length"))
            }),
            (429, _) | (500..=599, _) => Err(SinkError {
                retry_after,
                ..SinkError::retryable(what)
            }),
            (_, Some(1..=4)) => Err(SinkError::operator(format!(
                "{what}: check the HEC token (token / token_file); events wait meanwhile"
            ))),
            (_, Some(7)) => Err(SinkError::operator(format!(
                "{what}: the token may not write to index {:?}; events wait meanwhile",
                self.cfg
                    .index
                    .as_ref()
                    .map_or("(default)", Template::as_str)
            ))),
            (_, Some(10 | 11 | 14)) => Err(SinkError::operator(format!(
                "{what}: indexer acknowledgement is misconfigured; set ack to match the token's useACK"
            ))),
            (401 | 403 | 404, _) => Err(SinkError::operator(format!(
                "{what}: check endpoint and token; events wait meanwhile"
            ))),
            // Not followed (the token would go elsewhere), and not the events' fault.
            (300..=399, _) => Err(SinkError::operator(format!(
                "{what}: redirects are not followed; set endpoint to the final address (events wait meanwhile)"
            ))),
            _ => Err(SinkError::fatal(format!(
                "{what}: the receiver rejected the batch"
            ))),
        }
    }

    /// Polls `/services/collector/ack` until `ack_id` is indexed or `ack_timeout` passes.
    async fn wait_for_ack(&self, ack_id: u64) -> Result<(), SinkError> {
        let start = Instant::now();
        let mut delay = Duration::from_millis(200);
        while start.elapsed() < self.cfg.ack_timeout {
            let left = self.cfg.ack_timeout.saturating_sub(start.elapsed());
            tokio::time::sleep(delay.min(left)).await;
            delay = (delay * 2).min(Duration::from_secs(5));
            let resp = self
                .post("/services/collector/ack")
                .json(&json!({ "acks": [ack_id] }))
                .send()
                .await;
            let Ok(resp) = resp else { continue };
            if !resp.status().is_success() {
                continue;
            }
            let v: Value = crate::http::read_capped(resp, crate::http::SMALL_ANSWER)
                .await
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null);
            if v.pointer(&format!("/acks/{ack_id}"))
                .and_then(Value::as_bool)
                == Some(true)
            {
                return Ok(());
            }
        }
        Err(SinkError::retryable(format!(
            "splunk hec {}: ack {ack_id} not confirmed within {}; re-sending the batch",
            self.shown,
            humantime::format_duration(self.cfg.ack_timeout)
        )))
    }

    /// `GET /services/collector/health`, for `check`.
    pub async fn healthcheck(&mut self) -> Result<String, SinkError> {
        let resp = self
            .http
            .get(self.url("/services/collector/health"))
            .send()
            .await
            .map_err(|e| super::transport_error("splunk hec", &self.shown, &e))?;
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            Ok(format!("{} healthy", self.shown))
        } else {
            Err(SinkError::retryable(format!(
                "splunk hec {} health answered HTTP {status}",
                self.shown
            )))
        }
    }
}
