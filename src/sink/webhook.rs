//! The webhook sink: HTTP POST of a batch of encoded events, as one JSON array
//! (`body = "array"`, `Content-Type: application/json`) or one event per line
//! (`body = "ndjson"`, `Content-Type: application/x-ndjson`).
//!
//! Status handling (after vector's `RetryStrategy`): 2xx delivered; 429 retried after
//! `Retry-After`; 408 and 5xx except 501 retried with backoff; 401, 403, 404 and a 3xx (never
//! followed) hold the batch for the operator (retried, shown in `/health`); every other status
//! (4xx, 501) is a named error and the batch goes to the dead-letter file.
//!
//! Invariant: the URL (which often embeds a token) and header values never appear in errors
//! or logs; only scheme://host/… does.

use std::time::Duration;

use bytes::Bytes;
use secrecy::{ExposeSecret as _, SecretString};

use super::SinkError;
use crate::event::Event;
use crate::http::HttpTls;
use crate::http::redact_url;
use crate::transform;
use crate::transform::Format;

/// Settings of a webhook sink.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Target URL (may embed a token, hence secret).
    pub url: SecretString,
    /// Extra headers; values may be tokens.
    pub headers: Vec<(String, SecretString)>,
    /// Most events in one POST.
    pub max_events: usize,
    /// How long a partial batch waits for more events.
    pub batch_timeout: Duration,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// TLS settings.
    pub tls: HttpTls,
    /// Compress request bodies (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// How the events of a POST are put together.
    pub body: Body,
}

/// How the events of one POST are put together (`body`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Body {
    /// One JSON array (`application/json`).
    #[default]
    Array,
    /// One JSON value per line, each line ending in LF (`application/x-ndjson`): what log
    /// collectors' HTTP inputs (Vector, Fluent Bit, Logstash `json_lines`) read without a
    /// splitting step.
    Ndjson,
}

impl Body {
    /// `"array"` or `"ndjson"`.
    pub fn parse(s: &str) -> Option<Body> {
        match s {
            "array" => Some(Body::Array),
            "ndjson" => Some(Body::Ndjson),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Body::Array => "application/json",
            Body::Ndjson => "application/x-ndjson",
        }
    }
}

impl WebhookConfig {
    /// The URL with any user info, query and path tokens hidden, for logs.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose_secret())
    }
}

/// Posts batches to a URL.
#[derive(Debug)]
pub struct WebhookSink {
    cfg: WebhookConfig,
    format: Format,
    http: reqwest::Client,
    shown: String,
    records: super::Records,
}

impl WebhookSink {
    /// Builds the client (no request yet).
    pub fn new(cfg: WebhookConfig, format: Format) -> Result<WebhookSink, String> {
        let target = url::Url::parse(cfg.url.expose_secret())
            .map_err(|_| format!("url {} is not a valid URL", cfg.redacted_url()))?;
        let http =
            crate::http::client(&cfg.tls, cfg.timeout, &target).map_err(|e| e.to_string())?;
        let shown = cfg.redacted_url();
        Ok(WebhookSink {
            cfg,
            format,
            http,
            shown,
            records: super::Records::default(),
        })
    }

    /// Most events per POST.
    pub fn max_events(&self) -> usize {
        self.cfg.max_events
    }

    /// How long a partial batch waits.
    pub fn linger(&self) -> Duration {
        self.cfg.batch_timeout
    }

    /// One array element: the JSON document, or a CEF line as a JSON string.
    pub fn record(&mut self, ev: &Event) -> Bytes {
        if matches!(self.format, Format::Cef | Format::Leef) {
            let mut out = Vec::with_capacity(512);
            transform::encode(self.format, ev, &mut out);
            let line = String::from_utf8_lossy(&out);
            return self
                .records
                .put(&serde_json::to_vec(&line).unwrap_or_default());
        }
        self.records.encode(self.format, ev)
    }

    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .request(method, self.cfg.url.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, self.cfg.body.content_type());
        for (k, v) in &self.cfg.headers {
            req = req.header(k.as_str(), crate::http::sensitive(v.expose_secret()));
        }
        req
    }

    /// POSTs the records as one JSON array, or one per line.
    pub async fn send(&mut self, records: &[Bytes]) -> Result<(), SinkError> {
        let mut body = Vec::with_capacity(records.iter().map(|r| r.len() + 1).sum::<usize>() + 2);
        match self.cfg.body {
            Body::Array => {
                body.push(b'[');
                for (i, r) in records.iter().enumerate() {
                    if i > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(r);
                }
                body.push(b']');
            }
            // Each record is one line already: the encoders never write a raw line break.
            Body::Ndjson => {
                for r in records {
                    body.extend_from_slice(r);
                    body.push(b'\n');
                }
            }
        }
        let mut req = self.request(reqwest::Method::POST);
        if self.cfg.gzip {
            use std::io::Write as _;
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            // Writing into a Vec cannot fail.
            let _ = enc.write_all(&body);
            body = enc.finish().unwrap_or(body);
            req = req.header(reqwest::header::CONTENT_ENCODING, "gzip");
        }
        let resp = req
            .body(body)
            .send()
            .await
            .map_err(|e| super::transport_error("webhook", &self.shown, &e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = super::retry_after_header(&resp);
        let code = status.as_u16();
        let what = format!("webhook {} answered HTTP {code}", self.shown);
        Err(match code {
            429 => SinkError {
                retry_after,
                ..SinkError::retryable(format!("{what} (rate limited)"))
            },
            413 => SinkError {
                too_large: true,
                ..SinkError::fatal(format!("{what}: the batch is too large for the receiver"))
            },
            408 | 500 | 502..=599 => SinkError {
                retry_after,
                ..SinkError::retryable(what)
            },
            // Not followed (a token in the URL or headers would go elsewhere), and not the
            // content's fault: the batch waits, retried and shown in /health, never dead-lettered.
            300..=399 => SinkError::operator(format!(
                "{what}: redirects are not followed; set url to the final address (events wait meanwhile)"
            )),
            401 | 403 | 407 => SinkError::operator(format!(
                "{what}: the receiver refused the credentials; check the url token or headers (events wait meanwhile)"
            )),
            404 => SinkError::operator(format!(
                "{what}: no such endpoint; check url (events wait meanwhile)"
            )),
            _ => SinkError::fatal(format!("{what}: the receiver rejected the batch")),
        })
    }

    /// A HEAD request: a receiver that answers it (or refuses only the method or the empty
    /// body) is reachable; one that refuses the credentials, has nothing at this URL (a revoked
    /// or mistyped hook), redirects or fails is not.
    pub async fn healthcheck(&mut self) -> Result<String, SinkError> {
        match self.request(reqwest::Method::HEAD).send().await {
            Ok(r) => {
                let code = r.status().as_u16();
                let why = match code {
                    200..=299 | 400 | 405 | 411 | 415 | 422 => {
                        return Ok(format!("{} reachable (HTTP {code})", self.shown));
                    }
                    401 | 403 => "refused the credentials: check the sink's headers or token",
                    404 | 410 => "nothing at this URL: the hook was revoked or the URL is mistyped",
                    300..=399 => "redirects, and redirects are not followed: set the final URL",
                    500..=599 => "the receiver fails",
                    _ => "unexpected answer",
                };
                Err(SinkError::fatal(format!(
                    "webhook {}: HTTP {code}: {why}",
                    self.shown
                )))
            }
            Err(e) => Err(SinkError::retryable(format!(
                "webhook {}: {}",
                self.shown,
                crate::tls::describe_reqwest(&e)
            ))),
        }
    }
}
