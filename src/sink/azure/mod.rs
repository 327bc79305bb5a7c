//! The Microsoft Sentinel sink (`type = "azure_logs"`): the Azure Monitor Logs Ingestion API.
//! `POST {endpoint}/dataCollectionRules/{dcr_immutable_id}/streams/{stream}?api-version=2023-01-01`
//! with `Authorization: Bearer <token>` (`token.rs`), a JSON array of records ([`record`]) of at
//! most [`MAX_BODY`] bytes (the service takes 1 MB per call, compressed or not), gzip unless
//! `compression = "none"`.
//!
//! Answers: 2xx (204) delivered; 429, 503, 408 and the other 5xx retried after `Retry-After`;
//! 401 fetches a new token and sends once more, and a second 401 is an operator error, as are
//! 403 (the app lacks "Monitoring Metrics Publisher" on the DCR), 404 (endpoint, DCR id or
//! stream wrong) and a redirect: the events wait and `/health` names the sink. 413 splits the
//! batch (the generic loop does); every other 4xx rejects the batch for good (dead letters,
//! with the service's error code and message).
//!
//! `stream` is a template (`{portal}`, `{stream}`, `{label.KEY}`): each record carries the
//! stream it was rendered for in front of its JSON, and a send posts each stream's records
//! in a request of their own.

pub mod record;
mod token;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

use super::{Partial, Records, SinkError};
use crate::event::{Event, PortalInfo, Stream};
use crate::http::HttpTls;
use crate::sink::template::Template;

/// The API version of the Logs Ingestion API this sink speaks.
pub const API_VERSION: &str = "2023-01-01";
/// Largest request body: the service's limit is 1 MB per call (compressed or not); the body
/// is kept under it before compression, so it holds either way.
pub const MAX_BODY: usize = 1_000_000;
/// The default Entra ID authority (Azure public cloud).
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The default audience of the Logs Ingestion API (Azure public cloud).
pub const DEFAULT_AUDIENCE: &str = "https://monitor.azure.com";

/// Settings of a Sentinel (Logs Ingestion API) sink.
#[derive(Debug, Clone)]
pub struct AzureConfig {
    /// The Entra ID tenant (directory) id or domain.
    pub tenant_id: String,
    /// The app registration's application (client) id.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: SecretString,
    /// The data collection endpoint, or the DCR's logs ingestion endpoint.
    pub endpoint: url::Url,
    /// The DCR's immutable id (`dcr-…`).
    pub dcr_immutable_id: String,
    /// The stream declared in the DCR (`Custom-DocSpace_CL`), rendered per portal and stream.
    pub stream: Template,
    /// The Entra ID authority, e.g. `https://login.microsoftonline.com`.
    pub authority_host: url::Url,
    /// The API's audience; the token's scope is `{audience}//.default`.
    pub audience: String,
    /// Compress request bodies with gzip.
    pub gzip: bool,
    /// Most events per request.
    pub max_events: usize,
    /// How long a partial batch waits.
    pub batch_timeout: Duration,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// TLS settings (both the ingestion endpoint and the authority).
    pub tls: HttpTls,
}

impl AzureConfig {
    /// The token scope for the audience: `https://monitor.azure.com//.default` (the double
    /// slash is Microsoft's documented spelling for this resource).
    pub fn scope(&self) -> String {
        format!("{}//.default", self.audience.trim_end_matches('/'))
    }
}

/// Posts to the Logs Ingestion API.
#[derive(Debug)]
pub struct AzureSink {
    cfg: AzureConfig,
    http: reqwest::Client,
    tokens: token::TokenSource,
    shown: String,
    records: Records,
    /// The stream rendered for the last portal and stream seen (a batch comes from one).
    last: Option<(Arc<PortalInfo>, Stream, String)>,
}

impl AzureSink {
    /// Builds the clients (no request yet).
    pub fn new(cfg: AzureConfig) -> Result<AzureSink, String> {
        let http =
            crate::http::client(&cfg.tls, cfg.timeout, &cfg.endpoint).map_err(|e| e.to_string())?;
        let auth = crate::http::client(&cfg.tls, cfg.timeout, &cfg.authority_host)
            .map_err(|e| e.to_string())?;
        let mut url = cfg.authority_host.clone();
        url.path_segments_mut()
            .map_err(|()| "authority_host cannot be a base URL".to_owned())?
            .pop_if_empty()
            .extend([cfg.tenant_id.as_str(), "oauth2", "v2.0", "token"]);
        let tokens = token::TokenSource::new(
            auth,
            url,
            cfg.client_id.clone(),
            cfg.client_secret.clone(),
            cfg.scope(),
        );
        let shown = crate::http::redact_url(cfg.endpoint.as_str());
        Ok(AzureSink {
            cfg,
            http,
            tokens,
            shown,
            records: Records::default(),
            last: None,
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

    /// One record: the stream it goes to, a newline, its JSON.
    pub fn record(&mut self, ev: &Event) -> Bytes {
        let fresh = match &self.last {
            Some((p, s, _)) => !(Arc::ptr_eq(p, &ev.portal) && *s == ev.stream),
            None => true,
        };
        if fresh {
            let name = self.cfg.stream.render(&ev.portal, ev.stream).into_owned();
            self.last = Some((ev.portal.clone(), ev.stream, name));
        }
        let stream = self.last.as_ref().map_or("", |(_, _, n)| n.as_str());
        let mut buf = Vec::with_capacity(1024);
        buf.extend_from_slice(stream.as_bytes());
        buf.push(b'\n');
        record::encode(ev, &mut buf);
        self.records.put(&buf)
    }

    /// The ingestion URL of one stream (each part percent-encoded as a path segment).
    fn url(&self, stream: &str) -> Result<url::Url, SinkError> {
        let mut url = self.cfg.endpoint.clone();
        url.path_segments_mut()
            .map_err(|()| SinkError::operator("endpoint cannot be a base URL"))?
            .pop_if_empty()
            .extend([
                "dataCollectionRules",
                self.cfg.dcr_immutable_id.as_str(),
                "streams",
                stream,
            ]);
        url.query_pairs_mut()
            .append_pair("api-version", API_VERSION);
        Ok(url)
    }

    /// Sends the records: each stream's in requests of their own, in the order each stream
    /// first appears. When a later stream fails after an earlier one went through, its
    /// records and those after it are handed back to retry (or rejected, for good), so the
    /// loop never sends a delivered stream again.
    pub async fn send(&mut self, records: &[Bytes]) -> Result<Partial, SinkError> {
        let mut groups: Vec<Group> = Vec::new();
        let mut rejected = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let (stream, json) = split_record(r);
            if json.len() + 2 > MAX_BODY {
                rejected.push((
                    i,
                    format!(
                        "azure logs {}: the record is {} bytes, more than the {MAX_BODY} the Logs Ingestion API takes per call",
                        self.shown,
                        json.len()
                    ),
                ));
                continue;
            }
            match groups.iter_mut().find(|g| g.stream == stream) {
                Some(g) => {
                    g.at.push(i);
                    g.bodies.push(json);
                }
                None => groups.push(Group {
                    stream,
                    at: vec![i],
                    bodies: vec![json],
                }),
            }
        }
        let mut partial = Partial {
            rejected,
            ..Partial::default()
        };
        let mut sent_any = false;
        let mut iter = groups.into_iter();
        while let Some(Group { stream, at, bodies }) = iter.next() {
            match self.post(stream, &bodies).await {
                Ok(()) => sent_any = true,
                Err(e) if !sent_any && partial.rejected.is_empty() => {
                    return Err(e);
                }
                Err(e) if !e.retryable && !e.too_large => {
                    partial
                        .rejected
                        .extend(at.into_iter().map(|i| (i, e.message.clone())));
                }
                Err(e) => {
                    partial.retry.extend(at);
                    partial.retry.extend(iter.flat_map(|g| g.at));
                    partial.retry_after = e.retry_after;
                    tracing::warn!(sink_target = %self.shown, "{e}");
                    break;
                }
            }
        }
        Ok(partial)
    }

    /// POSTs one stream's records, fetching a new token once when the endpoint refuses it.
    async fn post(&mut self, stream: &str, bodies: &[&[u8]]) -> Result<(), SinkError> {
        let url = self.url(stream)?;
        let body = json_array(bodies);
        let body = if self.cfg.gzip { gzip(&body) } else { body };
        let body = Bytes::from(body);
        let mut refused_once = false;
        loop {
            let token = self.tokens.bearer().await?;
            let mut req = self
                .http
                .post(url.clone())
                .header(
                    reqwest::header::AUTHORIZATION,
                    crate::http::sensitive(&format!("Bearer {}", token.expose_secret())),
                )
                .header(reqwest::header::CONTENT_TYPE, "application/json");
            if self.cfg.gzip {
                req = req.header(reqwest::header::CONTENT_ENCODING, "gzip");
            }
            let resp = req
                .body(body.clone())
                .send()
                .await
                .map_err(|e| super::transport_error("azure logs", &self.shown, &e))?;
            let status = resp.status().as_u16();
            if (200..300).contains(&status) {
                return Ok(());
            }
            if status == 401 && !refused_once {
                // An expired or revoked token: one new token, one more try.
                refused_once = true;
                self.tokens.invalidate();
                continue;
            }
            let retry_after = super::retry_after_header(&resp);
            let code = resp
                .headers()
                .get("x-ms-error-code")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let text = crate::http::read_capped(resp, crate::http::SMALL_ANSWER)
                .await
                .unwrap_or_default();
            return Err(self.judge(status, stream, code, &text, retry_after, &token));
        }
    }

    /// The error of a refused request: what the service said (its error code and message,
    /// scrubbed of the token) and whether to retry, wait for the operator or give up.
    fn judge(
        &self,
        status: u16,
        stream: &str,
        code: Option<String>,
        body: &[u8],
        retry_after: Option<u64>,
        token: &SecretString,
    ) -> SinkError {
        let doc: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let err = doc.get("error").unwrap_or(&doc);
        let code = code.or_else(|| err.get("code").and_then(Value::as_str).map(str::to_owned));
        let message = err
            .get("message")
            .and_then(Value::as_str)
            .map_or_else(|| String::from_utf8_lossy(body).into_owned(), str::to_owned);
        let scrub = |s: &str| {
            let t = token.expose_secret();
            let s = if t.is_empty() {
                s.to_owned()
            } else {
                s.replace(t, "[redacted]")
            };
            crate::http::quote(s.as_bytes())
        };
        let what = format!(
            "azure logs {} stream {:?} answered HTTP {status}{} ({})",
            self.shown,
            crate::http::quote(stream.as_bytes()),
            code.as_deref()
                .map(|c| format!(" {}", scrub(c)))
                .unwrap_or_default(),
            scrub(&message)
        );
        let stream_unknown = code
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("InvalidStream"));
        match status {
            // A stream the DCR does not declare is the configuration's fault, not the events'.
            400 if stream_unknown => SinkError::operator(format!(
                "{what}: the DCR does not declare this stream; check stream and dcr_immutable_id (events wait meanwhile)"
            )),
            413 => SinkError {
                too_large: true,
                ..SinkError::fatal(format!("{what}: the request is too large"))
            },
            // Microsoft documents a 503 also while a new role assignment propagates.
            503 => SinkError {
                retry_after,
                ..SinkError::retryable(format!(
                    "{what} (a role assignment made in the last 30 minutes can answer this too)"
                ))
            },
            408 | 429 | 500..=599 => SinkError {
                retry_after,
                ..SinkError::retryable(what)
            },
            401 => SinkError::operator(format!(
                "{what}: a fresh token was refused too; check audience (the cloud) and the app registration (events wait meanwhile)"
            )),
            403 => SinkError::operator(format!(
                "{what}: the app may not write to this DCR; assign it the role \"Monitoring Metrics Publisher\" on the DCR (it can take 30 minutes to apply; events wait meanwhile)"
            )),
            404 => SinkError::operator(format!(
                "{what}: check endpoint, dcr_immutable_id and stream (events wait meanwhile)"
            )),
            300..=399 => SinkError::operator(format!(
                "{what}: redirects are not followed; set endpoint to the final address (events wait meanwhile)"
            )),
            _ => SinkError::fatal(format!("{what}: the service rejected the records")),
        }
    }

    /// For `check`: a token (the credentials are good), then, when the stream is the same for
    /// every portal, an empty upload to it (the endpoint, DCR and role are good).
    pub async fn healthcheck(&mut self) -> Result<String, SinkError> {
        self.tokens.bearer().await?;
        if !self.cfg.stream.is_static() {
            return Ok(format!(
                "{}: token acquired (stream {} depends on the portal; not probed)",
                self.shown, self.cfg.stream
            ));
        }
        let stream = self
            .cfg
            .stream
            .as_str()
            .replace("{{", "{")
            .replace("}}", "}");
        match self.post(&stream, &[]).await {
            Ok(()) => Ok(format!("{} stream {stream} accepts uploads", self.shown)),
            Err(e) => Err(e),
        }
    }
}

/// The records of one send that go to one stream: their indices and JSON texts.
struct Group<'a> {
    stream: &'a str,
    at: Vec<usize>,
    bodies: Vec<&'a [u8]>,
}

/// A record's stream and JSON (see [`AzureSink::record`]).
fn split_record(r: &[u8]) -> (&str, &[u8]) {
    match r.iter().position(|b| *b == b'\n') {
        Some(at) => (std::str::from_utf8(&r[..at]).unwrap_or(""), &r[at + 1..]),
        None => ("", r),
    }
}

fn json_array(bodies: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bodies.iter().map(|b| b.len() + 1).sum::<usize>() + 2);
    out.push(b'[');
    for (i, b) in bodies.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b);
    }
    out.push(b']');
    out
}

fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(body);
    enc.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::http::StatusCode;
    use axum::response::IntoResponse as _;

    use super::*;

    /// What the little endpoint below answers for stream `Custom-B` (`Custom-A` takes all),
    /// and how many tokens it issued and 401s it still owes.
    #[derive(Default)]
    struct Answers {
        b_status: u16,
        tokens: usize,
        refuse: usize,
    }

    /// A token endpoint and an ingestion endpoint on one loopback port.
    async fn endpoint(b_status: u16, refuse: usize) -> (String, Arc<Mutex<Answers>>) {
        let state = Arc::new(Mutex::new(Answers {
            b_status,
            refuse,
            ..Answers::default()
        }));
        let token = {
            let state = state.clone();
            move || async move {
                state.lock().expect("lock").tokens += 1;
                axum::Json(serde_json::json!({"access_token": "tok", "expires_in": 3599}))
            }
        };
        let upload = {
            let state = state.clone();
            move |axum::extract::Path(stream): axum::extract::Path<String>| async move {
                let mut st = state.lock().expect("lock");
                if st.refuse > 0 {
                    st.refuse -= 1;
                    return StatusCode::UNAUTHORIZED.into_response();
                }
                let status = if stream == "Custom-B" {
                    st.b_status
                } else {
                    204
                };
                let mut r = StatusCode::from_u16(status)
                    .expect("status")
                    .into_response();
                r.headers_mut().insert("retry-after", 3.into());
                r
            }
        };
        let app = axum::Router::new()
            .route("/t/oauth2/v2.0/token", axum::routing::post(token))
            .route(
                "/dataCollectionRules/dcr-1/streams/{stream}",
                axum::routing::post(upload),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (url, state)
    }

    fn sink(url: &str) -> AzureSink {
        AzureSink::new(AzureConfig {
            tenant_id: "t".into(),
            client_id: "c".into(),
            client_secret: SecretString::from("secret".to_owned()),
            endpoint: url.parse().expect("url"),
            dcr_immutable_id: "dcr-1".into(),
            stream: Template::parse("Custom-A").expect("template"),
            authority_host: url.parse().expect("url"),
            audience: DEFAULT_AUDIENCE.into(),
            gzip: true,
            max_events: 500,
            batch_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            tls: HttpTls::default(),
        })
        .expect("sink")
    }

    fn records() -> Vec<Bytes> {
        [
            "Custom-A\n{\"n\":0}",
            "Custom-B\n{\"n\":1}",
            "Custom-A\n{\"n\":2}",
            "Custom-B\n{\"n\":3}",
        ]
        .into_iter()
        .map(|r: &'static str| Bytes::from_static(r.as_bytes()))
        .collect()
    }

    /// A stream that fails after another went through hands back only its own records (to
    /// retry, or rejected), so the delivered stream is never sent again.
    #[tokio::test]
    async fn a_later_stream_that_fails_hands_back_only_its_own_records() {
        let (url, _) = endpoint(429, 0).await;
        let p = sink(&url).send(&records()).await.expect("partial");
        assert_eq!(p.retry, vec![1, 3]);
        assert_eq!(p.retry_after, Some(3));
        assert!(p.rejected.is_empty());

        let (url, _) = endpoint(400, 0).await;
        let p = sink(&url).send(&records()).await.expect("partial");
        assert!(p.retry.is_empty());
        let rejected: Vec<usize> = p.rejected.iter().map(|(i, _)| *i).collect();
        assert_eq!(rejected, vec![1, 3]);
        assert!(p.rejected[0].1.contains("HTTP 400"), "{}", p.rejected[0].1);

        // The first stream failing is the whole send failing: the loop retries or holds it.
        let (url, _) = endpoint(403, 0).await;
        let e = sink(&url).send(&records()[1..2]).await.expect_err("403");
        assert!(
            e.operator && e.message.contains("Monitoring Metrics Publisher"),
            "{e}"
        );
    }

    /// A refused token is replaced once; a second refusal is the operator's to fix.
    #[tokio::test]
    async fn one_401_fetches_a_new_token_and_two_are_an_operator_error() {
        let (url, state) = endpoint(204, 1).await;
        let mut s = sink(&url);
        let p = s
            .send(&records()[..1])
            .await
            .expect("sent after a new token");
        assert!(p.retry.is_empty() && p.rejected.is_empty());
        assert_eq!(state.lock().expect("lock").tokens, 2);

        let (url, state) = endpoint(204, 2).await;
        let e = sink(&url)
            .send(&records()[..1])
            .await
            .expect_err("401 twice");
        assert!(e.operator && e.message.contains("HTTP 401"), "{e}");
        assert_eq!(state.lock().expect("lock").tokens, 2);
    }

    #[test]
    fn records_split_into_stream_and_json_and_arrays_join_them() {
        assert_eq!(
            split_record(b"Custom-X_CL\n{\"a\":1}"),
            ("Custom-X_CL", &b"{\"a\":1}"[..])
        );
        assert_eq!(json_array(&[b"{}", b"{\"b\":2}"]), b"[{},{\"b\":2}]");
        assert_eq!(json_array(&[]), b"[]");
        let packed = gzip(b"[1,2,3]");
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&packed[..]), &mut out)
            .expect("gunzip");
        assert_eq!(out, "[1,2,3]");
    }
}
