//! The Elasticsearch / OpenSearch sink: `POST {endpoint}/_bulk` with `create` actions into a data
//! stream (`logs-docspace.<stream>-default` by default; `index` may name `{portal}`, `{stream}`
//! and `{label.KEY}`, rendered per portal and stream) and a deterministic `_id`
//! (`<portal host[:port]>:<stream>:<DocSpace id>`, `Event::unique_id`), so a re-sent event is a
//! 409, never a duplicate, and no two events share one.
//!
//! The per-item response is read (docs/formats.md §4.2): 2xx and 409 count as delivered; 429
//! and 5xx items are retried alone with backoff; other item errors (mapping, parsing) go to the
//! dead-letter file with Elasticsearch's reason. A whole-request 429/5xx or network error
//! retries the request; 413 splits the batch; 401/403 are named credential errors.

use std::time::Duration;

use bytes::Bytes;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

use super::template::{Route, Template};
use super::{Partial, SinkError};
use crate::event::Event;
use crate::http::HttpTls;
use crate::transform;
use crate::transform::Format;

/// Which product speaks `_bulk` at the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Elasticsearch (data streams need `create`).
    Elasticsearch,
    /// OpenSearch (same wire protocol for `_bulk`).
    Opensearch,
}

/// How the sink authenticates.
#[derive(Debug, Clone)]
pub enum EsAuth {
    /// No credentials.
    None,
    /// `Authorization: ApiKey <encoded key>`.
    ApiKey(SecretString),
    /// HTTP basic.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: SecretString,
    },
}

/// Settings of an Elasticsearch/OpenSearch sink.
#[derive(Debug, Clone)]
pub struct ElasticConfig {
    /// Base URL of the cluster.
    pub endpoint: url::Url,
    /// Target index or data stream: `{stream}`, `{portal}` and `{label.KEY}` are replaced per
    /// portal and stream.
    pub index: Template,
    /// Credentials.
    pub auth: EsAuth,
    /// Product flavour.
    pub flavor: Flavor,
    /// Ingest pipeline, if any.
    pub pipeline: Option<String>,
    /// Most events per request.
    pub max_events: usize,
    /// How long a partial batch waits.
    pub batch_timeout: Duration,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// TLS settings.
    pub tls: HttpTls,
}

/// Posts `_bulk` requests.
#[derive(Debug)]
pub struct ElasticSink {
    cfg: ElasticConfig,
    format: Format,
    http: reqwest::Client,
    shown: String,
    /// The index of the portal and stream of the last event, and its `data_stream` object:
    /// rendered once per batch, since a batch comes from one portal and stream.
    index: Route<(String, Value)>,
}

impl ElasticSink {
    /// Builds the client.
    pub fn new(cfg: ElasticConfig, format: Format) -> Result<ElasticSink, String> {
        let http =
            crate::http::client(&cfg.tls, cfg.timeout, &cfg.endpoint).map_err(|e| e.to_string())?;
        let shown = crate::http::redact_url(cfg.endpoint.as_str());
        Ok(ElasticSink {
            cfg,
            format,
            http,
            shown,
            index: Route::default(),
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

    /// The deterministic document id of an event ([`Event::unique_id`]: login and audit ids
    /// collide, and so do those of two portals on one host).
    pub fn doc_id(ev: &Event) -> String {
        ev.unique_id()
    }

    /// One action line and one source line.
    pub fn record(&mut self, ev: &Event) -> Bytes {
        let template = &self.cfg.index;
        let (index, data_stream) = self.index.get(ev, |portal, stream| {
            let index = template.render(portal, stream).into_owned();
            // Match the data stream naming scheme logs-<dataset>-<namespace>.
            let mut parts = index.splitn(3, '-');
            let data_stream = match (parts.next(), parts.next(), parts.next()) {
                (Some(t), Some(ds), Some(ns)) => {
                    json!({ "type": t, "dataset": ds, "namespace": ns })
                }
                _ => Value::Null,
            };
            (index, data_stream)
        });
        let mut out = serde_json::to_vec(&json!({
            "create": { "_index": index, "_id": Self::doc_id(ev) }
        }))
        .unwrap_or_default();
        out.push(b'\n');
        let mut doc = Vec::with_capacity(1024);
        transform::encode(self.format, ev, &mut doc);
        let mut v: Value = serde_json::from_slice(&doc).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            // Data streams need @timestamp; the raw format has only DocSpace's `date`.
            m.entry("@timestamp")
                .or_insert_with(|| json!(ev.time_rfc3339()));
            if !data_stream.is_null() {
                m.insert("data_stream".into(), data_stream.clone());
            }
        }
        out.extend(serde_json::to_vec(&v).unwrap_or_default());
        out.push(b'\n');
        out.into()
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.cfg.endpoint.as_str().trim_end_matches('/'));
        let req = self.http.request(method, url);
        match &self.cfg.auth {
            EsAuth::None => req,
            EsAuth::ApiKey(k) => req.header(
                reqwest::header::AUTHORIZATION,
                crate::http::sensitive(&format!("ApiKey {}", k.expose_secret())),
            ),
            EsAuth::Basic { username, password } => {
                req.basic_auth(username, Some(password.expose_secret()))
            }
        }
    }

    /// Sends one `_bulk` request and reads every item.
    pub async fn send(&mut self, records: &[Bytes]) -> Result<Partial, SinkError> {
        let body: Vec<u8> = records.iter().flat_map(|r| r.iter().copied()).collect();
        let mut path = "/_bulk?filter_path=errors,items.*.status,items.*.error".to_owned();
        if let Some(p) = &self.cfg.pipeline {
            path.push_str("&pipeline=");
            path.push_str(&url::form_urlencoded::byte_serialize(p.as_bytes()).collect::<String>());
        }
        let resp = self
            .request(reqwest::Method::POST, &path)
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body)
            .send()
            .await
            .map_err(|e| super::transport_error("elasticsearch", &self.shown, &e))?;
        let status = resp.status().as_u16();
        let retry_after = super::retry_after_header(&resp);
        let what = format!("elasticsearch {} answered HTTP {status}", self.shown);
        match status {
            200..=299 => {}
            413 => {
                return Err(SinkError {
                    too_large: true,
                    ..SinkError::fatal(format!("{what}: the batch exceeds http.max_content_length"))
                });
            }
            401 | 403 | 404 => {
                return Err(SinkError::operator(format!(
                    "{what}: check endpoint, api_key / username and password, and the index privileges; events wait meanwhile"
                )));
            }
            408 | 429 | 500..=599 => {
                return Err(SinkError {
                    retry_after,
                    ..SinkError::retryable(what)
                });
            }
            // Not followed (the credentials would go elsewhere), and not the documents' fault:
            // the batch waits for the operator.
            300..=399 => {
                return Err(SinkError::operator(format!(
                    "{what}: redirects are not followed; set endpoint to the final address (events wait meanwhile)"
                )));
            }
            _ => {
                let text = crate::http::read_prefix(resp, 4096).await;
                let reason = crate::http::quote(&text);
                return Err(SinkError::fatal(format!("{what}: {reason}")));
            }
        }
        let body = crate::http::read_capped(resp, crate::http::BULK_ANSWER)
            .await
            .map_err(|e| SinkError::retryable(format!("{what} with an unreadable body: {e}")))?;
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| SinkError::retryable(format!("{what} with an unreadable body: {e}")))?;
        if v.get("errors").and_then(Value::as_bool) != Some(true) {
            return Ok(Partial::default());
        }
        let items = v
            .get("items")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if items.len() != records.len() {
            return Err(SinkError::retryable(format!(
                "{what} with {} items for {} documents",
                items.len(),
                records.len()
            )));
        }
        let mut partial = Partial::default();
        for (i, item) in items.iter().enumerate() {
            let result = item
                .as_object()
                .and_then(|o| o.values().next())
                .cloned()
                .unwrap_or(Value::Null);
            let st = result.get("status").and_then(Value::as_u64).unwrap_or(0);
            match st {
                200..=299 | 409 => {}
                429 | 500..=599 => partial.retry.push(i),
                _ => {
                    let kind = crate::http::quote(
                        result
                            .pointer("/error/type")
                            .and_then(Value::as_str)
                            .unwrap_or("error")
                            .as_bytes(),
                    );
                    let reason = crate::http::quote(
                        result
                            .pointer("/error/reason")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .as_bytes(),
                    );
                    partial.rejected.push((
                        i,
                        format!("elasticsearch {} rejected the document (status {st}, {kind}): {reason}", self.shown),
                    ));
                }
            }
        }
        Ok(partial)
    }

    /// `GET /` answers with the cluster's name and version, for `check`.
    pub async fn healthcheck(&mut self) -> Result<String, SinkError> {
        let resp = self
            .request(reqwest::Method::GET, "/")
            .send()
            .await
            .map_err(|e| super::transport_error("elasticsearch", &self.shown, &e))?;
        let status = resp.status().as_u16();
        match status {
            200..=299 => Ok(format!("{} reachable ({:?})", self.shown, self.cfg.flavor)),
            401 | 403 => Err(SinkError::fatal(format!(
                "elasticsearch {} refused the credentials (HTTP {status})",
                self.shown
            ))),
            _ => Err(SinkError::retryable(format!(
                "elasticsearch {} answered HTTP {status}",
                self.shown
            ))),
        }
    }
}
