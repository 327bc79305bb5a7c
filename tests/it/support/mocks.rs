//! Loopback Splunk HEC and Elasticsearch/OpenSearch `_bulk` receivers (axum on 127.0.0.1:0)
//! that follow docs/formats.md §4.1 and §4.2 and record every request; both can stop listening
//! and listen again on their port.
//!
//! - [`Hec`]: `POST /services/collector/event` (and `/services/collector`, `/event/1.0`) checks
//!   `Authorization: Splunk <token>` (or Basic with the token as password: 401 code 2 when
//!   missing, 401 code 3 when malformed, 403 code 4 when wrong), parses concatenated envelopes,
//!   requires a non-empty `event` (code 12/13) and a numeric `time` (code 6), answers code 6 with
//!   `invalid-event-number` for chosen event ids (the events before it are accepted), 413 above
//!   `max_content_length`, scripted answers (500 code 8, 503 code 9, 429 + `Retry-After`…), and
//!   with indexer acknowledgement a channel (code 10/11), increasing `ackId`s per channel and
//!   `/services/collector/ack` that turns an id true after N polls or never;
//!   `GET /services/collector/health` answers code 17.
//! - [`Bulk`]: `POST /_bulk` (or `/<index>/_bulk`) checks the credentials (`ApiKey` or Basic,
//!   401 `security_exception`), `Content-Type: application/x-ndjson` (406) and the final
//!   newline (400); parses action/source pairs; `create` is 409 for an existing index+`_id`;
//!   data streams (`logs-*-*`) take only `create`, need `@timestamp` and matching
//!   `data_stream.*`; per-item scripted statuses (429, 5xx, 400 `document_parsing_exception`),
//!   whole-request scripted answers, 413 above `max_content_length`; HTTP 200 with `errors` and
//!   one item per document in order, honouring `filter_path`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// An axum app on a loopback port that can be stopped and started again on that port.
struct Listener {
    addr: SocketAddr,
    app: Router,
    stop: Mutex<Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>>,
}

impl Listener {
    async fn start(app: Router) -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let l = Listener {
            addr: listener.local_addr().expect("addr"),
            app,
            stop: Mutex::new(None),
        };
        l.serve(listener);
        l
    }

    fn serve(&self, listener: TcpListener) {
        let (tx, rx) = oneshot::channel::<()>();
        let app = self.app.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        *self.stop.lock().expect("lock") = Some((tx, task));
    }

    /// Stops listening and closes every connection.
    async fn stop(&self) {
        let taken = self.stop.lock().expect("lock").take();
        if let Some((tx, task)) = taken {
            let _ = tx.send(());
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }

    async fn restart(&self) {
        let addr = self.addr;
        let listener = super::retry_until(Duration::from_secs(10), "rebind", || {
            TcpListener::bind(addr)
        })
        .await;
        self.serve(listener);
    }
}

fn headers_map(h: &HeaderMap) -> BTreeMap<String, String> {
    h.iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect()
}

fn query_map(q: &Option<String>) -> BTreeMap<String, String> {
    q.as_deref()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Standard base64 (for checking Basic credentials).
pub fn base64(s: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional).
pub fn unbase64(s: &str) -> Option<String> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.trim_end_matches('=').bytes() {
        let v = A.iter().position(|a| *a == c)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `8-4-4-4-12` hex digits.
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The DocSpace id inside an encoded event (ECS `event.id` string or raw `id`).
fn event_id(ev: &Value) -> Option<i64> {
    ev.pointer("/event/id")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .or_else(|| ev.get("id").and_then(Value::as_i64))
}

/// The literal text of a top-level key's scalar value in one JSON object.
pub fn top_level_scalar(raw: &[u8], key: &str) -> Option<String> {
    let s = std::str::from_utf8(raw).ok()?;
    let b = s.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    let mut expect_key = false;
    while i < b.len() {
        match b[i] {
            b'{' => {
                depth += 1;
                expect_key = depth == 1;
                i += 1;
            }
            b'[' => {
                depth += 1;
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b',' => {
                expect_key = depth == 1;
                i += 1;
            }
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                let text = &s[start..i.min(b.len())];
                i += 1;
                if expect_key && depth == 1 {
                    expect_key = false;
                    if text == key {
                        let rest = s[i..].trim_start().strip_prefix(':')?.trim_start();
                        let end = rest.find([',', '}']).unwrap_or(rest.len());
                        return Some(rest[..end].trim().to_owned());
                    }
                }
            }
            _ => i += 1,
        }
    }
    None
}

// -----------------------------------------------------------------------------------------
// Splunk HEC
// -----------------------------------------------------------------------------------------

/// When the indexer confirms an ackId.
#[derive(Debug, Clone, Copy)]
pub enum AckMode {
    /// `true` from the Nth poll of that id on.
    AfterPolls(u32),
    /// Never (the ack "expires"; the agent must re-send).
    Never,
}

/// One request to `/services/collector/event`.
#[derive(Debug, Clone)]
pub struct HecRequest {
    pub at: Instant,
    pub headers: BTreeMap<String, String>,
    pub body_len: usize,
    pub status: u16,
    pub code: Option<i64>,
    /// Envelopes that parsed (whether accepted or not).
    pub events: usize,
    /// DocSpace ids of the parsed envelopes, in order.
    pub ids: Vec<i64>,
    /// How many were accepted (stored).
    pub accepted: usize,
    pub ack_id: Option<u64>,
}

/// One poll of `/services/collector/ack`.
#[derive(Debug, Clone)]
pub struct AckPoll {
    pub channel: String,
    pub ids: Vec<u64>,
}

#[derive(Default)]
struct Channel {
    next: u64,
    polls: HashMap<u64, u32>,
}

struct HecState {
    token: String,
    ack: Option<AckMode>,
    script: VecDeque<(u16, Option<i64>, Option<u64>)>,
    reject: BTreeSet<i64>,
    max_content_length: usize,
    accepted: Vec<(Value, String)>,
    requests: Vec<HecRequest>,
    channels: HashMap<String, Channel>,
    polls: Vec<AckPoll>,
}

/// A Splunk HTTP Event Collector.
#[derive(Clone)]
pub struct Hec {
    state: Arc<Mutex<HecState>>,
    listener: Arc<Listener>,
}

fn hec_reply(status: u16, code: i64, text: &str, extra: &[(&str, Value)]) -> Response {
    let mut body = Map::new();
    body.insert("text".into(), json!(text));
    body.insert("code".into(), json!(code));
    for (k, v) in extra {
        body.insert((*k).into(), v.clone());
    }
    (
        StatusCode::from_u16(status).expect("status"),
        axum::Json(Value::Object(body)),
    )
        .into_response()
}

fn hec_text(code: i64) -> &'static str {
    match code {
        0 => "Success",
        1 => "Token disabled",
        2 => "Token is required",
        3 => "Invalid authorization",
        4 => "Invalid token",
        5 => "No data",
        6 => "Invalid data format",
        7 => "Incorrect index",
        8 => "Internal server error",
        9 => "Server is busy",
        10 => "Data channel is missing",
        11 => "Invalid data channel",
        12 => "Event field is required",
        13 => "Event field cannot be blank",
        14 => "ACK is disabled",
        15 => "Error in handling indexed fields",
        _ => "Error",
    }
}

/// Checks `Authorization: Splunk <token>` (or Basic with the token as password); the error
/// is the HTTP status and HEC code.
fn hec_auth(st: &HecState, headers: &HeaderMap) -> Result<(), (u16, i64)> {
    let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err((401, 2));
    };
    let ok = if let Some(t) = v.strip_prefix("Splunk ") {
        t == st.token
    } else if let Some(b) = v.strip_prefix("Basic ") {
        // Any user, the token as password.
        unbase64(b)
            .and_then(|d| d.split_once(':').map(|(_, p)| p == st.token))
            .unwrap_or(false)
    } else {
        return Err((401, 3));
    };
    if ok { Ok(()) } else { Err((403, 4)) }
}

fn hec_channel(headers: &HeaderMap, query: &Option<String>) -> Option<String> {
    headers
        .get("x-splunk-request-channel")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| query_map(query).get("channel").cloned())
}

async fn hec_event(
    State(s): State<HecShared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = s.0.lock().expect("lock");
    let mut req = HecRequest {
        at: Instant::now(),
        headers: headers_map(&headers),
        body_len: body.len(),
        status: 0,
        code: None,
        events: 0,
        ids: Vec::new(),
        accepted: 0,
        ack_id: None,
    };
    // Parse first, only to record what was sent; acceptance follows Splunk's order.
    let mut parsed: Vec<(Result<Value, String>, String)> = Vec::new();
    let mut stream = serde_json::Deserializer::from_slice(&body).into_iter::<Value>();
    let mut start = 0;
    loop {
        match stream.next() {
            None => break,
            Some(Ok(v)) => {
                let end = stream.byte_offset();
                let raw = String::from_utf8_lossy(&body[start..end]).trim().to_owned();
                start = end;
                parsed.push((Ok(v), raw));
            }
            Some(Err(e)) => {
                parsed.push((Err(e.to_string()), String::new()));
                break;
            }
        }
    }
    req.events = parsed.iter().filter(|(v, _)| v.is_ok()).count();
    req.ids = parsed
        .iter()
        .filter_map(|(v, _)| v.as_ref().ok())
        .filter_map(|v| v.get("event").and_then(event_id))
        .collect();
    let resp = hec_event_answer(&mut st, &headers, &query, &body, parsed, &mut req);
    st.requests.push(req);
    resp
}

fn hec_event_answer(
    st: &mut HecState,
    headers: &HeaderMap,
    query: &Option<String>,
    body: &[u8],
    parsed: Vec<(Result<Value, String>, String)>,
    req: &mut HecRequest,
) -> Response {
    let mut answer = |status: u16, code: Option<i64>, resp: Response| {
        req.status = status;
        req.code = code;
        resp
    };
    if let Err((status, code)) = hec_auth(st, headers) {
        return answer(
            status,
            Some(code),
            hec_reply(status, code, hec_text(code), &[]),
        );
    }
    let channel = hec_channel(headers, query);
    if st.ack.is_some() {
        match &channel {
            None => return answer(400, Some(10), hec_reply(400, 10, hec_text(10), &[])),
            Some(c) if !is_guid(c) => {
                return answer(400, Some(11), hec_reply(400, 11, hec_text(11), &[]));
            }
            _ => {}
        }
    }
    if let Some((status, code, retry_after)) = st.script.pop_front() {
        let mut r = match code {
            Some(c) => hec_reply(status, c, hec_text(c), &[]),
            None => StatusCode::from_u16(status)
                .expect("status")
                .into_response(),
        };
        if let Some(s) = retry_after {
            r.headers_mut()
                .insert("retry-after", s.to_string().parse().expect("hv"));
        }
        return answer(status, code, r);
    }
    if body.len() > st.max_content_length {
        let r = (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Content-Length of {} too large (maximum is {})",
                body.len(),
                st.max_content_length
            ),
        )
            .into_response();
        return answer(413, None, r);
    }
    if parsed.is_empty() {
        return answer(400, Some(5), hec_reply(400, 5, hec_text(5), &[]));
    }
    for (n, (v, raw)) in parsed.into_iter().enumerate() {
        let bad = |code: i64| -> (i64, usize) { (code, n) };
        let problem = match &v {
            Err(_) => Some(bad(6)),
            Ok(Value::Object(m)) => match m.get("event") {
                None => Some(bad(12)),
                Some(Value::Null) => Some(bad(13)),
                Some(Value::String(s)) if s.is_empty() => Some(bad(13)),
                Some(Value::Object(o)) if o.is_empty() => Some(bad(13)),
                Some(ev) => {
                    if m.get("time").is_some_and(|t| !t.is_number()) {
                        Some(bad(6))
                    } else if m.get("fields").is_some_and(|f| {
                        !f.as_object().is_some_and(|o| {
                            o.values().all(|v| {
                                v.is_string()
                                    || v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
                            })
                        })
                    }) {
                        Some(bad(15))
                    } else if event_id(ev).is_some_and(|id| st.reject.contains(&id)) {
                        Some(bad(6))
                    } else {
                        None
                    }
                }
            },
            Ok(_) => Some(bad(6)),
        };
        if let Some((code, n)) = problem {
            let r = hec_reply(
                400,
                code,
                hec_text(code),
                &[("invalid-event-number", json!(n))],
            );
            return answer(400, Some(code), r);
        }
        let time = top_level_scalar(raw.as_bytes(), "time").unwrap_or_default();
        st.accepted.push((v.expect("parsed"), time));
        req.accepted += 1;
    }
    if st.ack.is_some() {
        let ch = st
            .channels
            .entry(channel.expect("checked above"))
            .or_default();
        let id = ch.next;
        ch.next += 1;
        ch.polls.insert(id, 0);
        req.ack_id = Some(id);
        return answer(
            200,
            Some(0),
            hec_reply(200, 0, "Success", &[("ackId", json!(id))]),
        );
    }
    answer(200, Some(0), hec_reply(200, 0, "Success", &[]))
}

async fn hec_ack(
    State(s): State<HecShared>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = s.0.lock().expect("lock");
    if let Err((status, code)) = hec_auth(&st, &headers) {
        return hec_reply(status, code, hec_text(code), &[]);
    }
    let Some(mode) = st.ack else {
        return hec_reply(400, 14, hec_text(14), &[]);
    };
    let Some(channel) = hec_channel(&headers, &query) else {
        return hec_reply(400, 10, hec_text(10), &[]);
    };
    if !is_guid(&channel) {
        return hec_reply(400, 11, hec_text(11), &[]);
    }
    let Some(ids) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("acks").cloned())
        .and_then(|a| serde_json::from_value::<Vec<u64>>(a).ok())
    else {
        return hec_reply(400, 6, hec_text(6), &[]);
    };
    st.polls.push(AckPoll {
        channel: channel.clone(),
        ids: ids.clone(),
    });
    let ch = st.channels.entry(channel).or_default();
    let mut acks = Map::new();
    for id in ids {
        let done = match ch.polls.get_mut(&id) {
            Some(n) => {
                *n += 1;
                match mode {
                    AckMode::AfterPolls(k) => *n >= k,
                    AckMode::Never => false,
                }
            }
            None => false,
        };
        acks.insert(id.to_string(), json!(done));
    }
    axum::Json(json!({ "acks": acks })).into_response()
}

async fn hec_health() -> Response {
    hec_reply(200, 17, "HEC is healthy", &[])
}

impl Hec {
    /// A HEC accepting `token`, without indexer acknowledgement, 1 MB body limit.
    pub async fn start(token: &str) -> Hec {
        let state = Arc::new(Mutex::new(HecState {
            token: token.to_owned(),
            ack: None,
            script: VecDeque::new(),
            reject: BTreeSet::new(),
            max_content_length: 1_000_000,
            accepted: Vec::new(),
            requests: Vec::new(),
            channels: HashMap::new(),
            polls: Vec::new(),
        }));
        let shared = HecShared(state.clone());
        let app = Router::new()
            .route("/services/collector/event", axum::routing::post(hec_event))
            .route("/services/collector", axum::routing::post(hec_event))
            .route(
                "/services/collector/event/1.0",
                axum::routing::post(hec_event),
            )
            .route("/services/collector/ack", axum::routing::post(hec_ack))
            .route("/services/collector/health", axum::routing::get(hec_health))
            .route(
                "/services/collector/health/1.0",
                axum::routing::get(hec_health),
            )
            .with_state(shared);
        let listener = Arc::new(Listener::start(app).await);
        Hec { state, listener }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.listener.addr)
    }

    /// Answers for the next requests (after auth and channel checks): HTTP status, HEC code
    /// (none: empty body), `Retry-After` seconds.
    pub fn script(&self, steps: &[(u16, Option<i64>, Option<u64>)]) {
        self.state
            .lock()
            .expect("lock")
            .script
            .extend(steps.iter().copied());
    }

    /// Answers code 6 at the event with this DocSpace id (events before it are accepted).
    pub fn reject_id(&self, id: i64) {
        self.state.lock().expect("lock").reject.insert(id);
    }

    pub fn set_max_content_length(&self, n: usize) {
        self.state.lock().expect("lock").max_content_length = n;
    }

    /// The token has useACK: a channel is required and every 200 carries an ackId.
    pub fn require_ack(&self, mode: AckMode) {
        self.state.lock().expect("lock").ack = Some(mode);
    }

    /// Changes when ackIds turn true (counts already made stay).
    pub fn set_ack_mode(&self, mode: AckMode) {
        self.state.lock().expect("lock").ack = Some(mode);
    }

    /// Accepted envelopes, in order, with the literal text of their `time`.
    pub fn accepted(&self) -> Vec<(Value, String)> {
        self.state.lock().expect("lock").accepted.clone()
    }

    /// DocSpace ids of accepted envelopes, in order (duplicates kept).
    pub fn ids(&self) -> Vec<i64> {
        let events: Vec<Value> = self
            .state
            .lock()
            .expect("lock")
            .accepted
            .iter()
            .map(|(e, _)| e["event"].clone())
            .collect();
        super::ids_of(&events)
    }

    pub fn requests(&self) -> Vec<HecRequest> {
        self.state.lock().expect("lock").requests.clone()
    }

    pub fn ack_polls(&self) -> Vec<AckPoll> {
        self.state.lock().expect("lock").polls.clone()
    }

    /// Stops listening (connections closed); [`Hec::restart`] listens again on the port.
    pub async fn stop(&self) {
        self.listener.stop().await;
    }

    pub async fn restart(&self) {
        self.listener.restart().await;
    }
}

#[derive(Clone)]
struct HecShared(Arc<Mutex<HecState>>);

// -----------------------------------------------------------------------------------------
// Elasticsearch / OpenSearch `_bulk`
// -----------------------------------------------------------------------------------------

/// Credentials the cluster accepts.
#[derive(Debug, Clone)]
pub enum BulkAuth {
    /// Anonymous access.
    None,
    /// `Authorization: ApiKey <encoded>`.
    ApiKey(String),
    /// HTTP basic.
    Basic(String, String),
}

/// One `_bulk` request.
#[derive(Debug, Clone)]
pub struct BulkRequest {
    pub at: Instant,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub headers: BTreeMap<String, String>,
    pub body_len: usize,
    pub status: u16,
    /// Action names, ids and per-item statuses, in request order.
    pub actions: Vec<String>,
    pub ids: Vec<String>,
    pub statuses: Vec<u16>,
    pub docs: usize,
}

enum ItemRule {
    /// These statuses for the next attempts, then normal handling.
    Next(VecDeque<u16>),
    /// Always a mapping error.
    Reject,
}

struct BulkState {
    auth: BulkAuth,
    script: VecDeque<(u16, Option<u64>)>,
    rules: HashMap<String, ItemRule>,
    max_content_length: usize,
    store: BTreeMap<String, BTreeMap<String, Value>>,
    created: BTreeMap<String, u32>,
    requests: Vec<BulkRequest>,
    auto_id: u64,
}

/// An Elasticsearch/OpenSearch cluster's `_bulk` endpoint.
#[derive(Clone)]
pub struct Bulk {
    state: Arc<Mutex<BulkState>>,
    listener: Arc<Listener>,
}

#[derive(Clone)]
struct BulkShared(Arc<Mutex<BulkState>>);

fn es_error(status: u16, kind: &str, reason: &str) -> Response {
    (
        StatusCode::from_u16(status).expect("status"),
        axum::Json(json!({
            "error": {
                "root_cause": [{ "type": kind, "reason": reason }],
                "type": kind,
                "reason": reason
            },
            "status": status
        })),
    )
        .into_response()
}

fn item_error(status: u16, id: &str, index: &str) -> Value {
    let (kind, reason) = match status {
        400 => (
            "document_parsing_exception",
            format!(
                "[1:15] failed to parse field [source.ip] of type [ip] in document with id '{id}'. Preview of field's value: '2a02'"
            ),
        ),
        409 => (
            "version_conflict_engine_exception",
            format!("[{id}]: version conflict, document already exists (current version [1])"),
        ),
        429 => (
            "es_rejected_execution_exception",
            "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1024, max_coordinating_and_primary_bytes=0]".to_owned(),
        ),
        _ => (
            "unavailable_shards_exception",
            format!("[{index}][0] primary shard is not active"),
        ),
    };
    json!({ "type": kind, "reason": reason, "index": index })
}

fn bulk_auth_ok(auth: &BulkAuth, headers: &HeaderMap) -> bool {
    let got = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match auth {
        BulkAuth::None => true,
        BulkAuth::ApiKey(k) => got == format!("ApiKey {k}"),
        BulkAuth::Basic(u, p) => got == format!("Basic {}", base64(&format!("{u}:{p}"))),
    }
}

/// `/{index}/_bulk` or `/_bulk`.
async fn bulk_s(
    State(s): State<BulkShared>,
    uri: axum::http::Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = s.0.lock().expect("lock");
    let path = uri.path().to_owned();
    let default_index = path
        .trim_start_matches('/')
        .strip_suffix("/_bulk")
        .map(str::to_owned);
    let mut req = BulkRequest {
        at: Instant::now(),
        path: path.clone(),
        query: query_map(&query),
        headers: headers_map(&headers),
        body_len: body.len(),
        status: 0,
        actions: Vec::new(),
        ids: Vec::new(),
        statuses: Vec::new(),
        docs: 0,
    };
    let resp = bulk_answer(&mut st, default_index, &headers, &body, &mut req);
    req.status = resp.status().as_u16();
    st.requests.push(req);
    resp
}

fn bulk_answer(
    st: &mut BulkState,
    default_index: Option<String>,
    headers: &HeaderMap,
    body: &[u8],
    req: &mut BulkRequest,
) -> Response {
    if !bulk_auth_ok(&st.auth, headers) {
        let mut r = es_error(
            401,
            "security_exception",
            "unable to authenticate with provided credentials and anonymous access is not allowed for this request",
        );
        r.headers_mut().insert(
            "www-authenticate",
            "ApiKey, Basic realm=\"security\", charset=\"UTF-8\""
                .parse()
                .expect("hv"),
        );
        return r;
    }
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/x-ndjson") {
        return (
            StatusCode::NOT_ACCEPTABLE,
            axum::Json(json!({
                "error": format!("Content-Type header [{ct}] is not supported"),
                "status": 406
            })),
        )
            .into_response();
    }
    if let Some((status, retry_after)) = st.script.pop_front() {
        let mut r = match status {
            429 => es_error(
                429,
                "es_rejected_execution_exception",
                "rejected execution of coordinating operation",
            ),
            413 => StatusCode::PAYLOAD_TOO_LARGE.into_response(),
            401 => es_error(
                401,
                "security_exception",
                "missing authentication credentials",
            ),
            s => es_error(
                s,
                "cluster_block_exception",
                "blocked by: [SERVICE_UNAVAILABLE/2/no master];",
            ),
        };
        if let Some(s) = retry_after {
            r.headers_mut()
                .insert("retry-after", s.to_string().parse().expect("hv"));
        }
        return r;
    }
    if body.len() > st.max_content_length {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    if body.is_empty() {
        return es_error(
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: no requests added;",
        );
    }
    if body.last() != Some(&b'\n') {
        return es_error(
            400,
            "illegal_argument_exception",
            "The bulk request must be terminated by a newline [\\n]",
        );
    }
    // Parse every action (and source) line before executing anything.
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(_) => return es_error(400, "parse_exception", "not UTF-8"),
    };
    let mut lines = text.split_terminator('\n').enumerate();
    let mut ops: Vec<(String, String, Option<String>, Option<Value>)> = Vec::new();
    while let Some((n, line)) = lines.next() {
        if line.trim().is_empty() {
            continue;
        }
        let action: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                return es_error(
                    400,
                    "x_content_parse_exception",
                    &format!("[{}:1] Malformed action/metadata line: {e}", n + 1),
                );
            }
        };
        let Some((name, meta)) = action
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.iter().next())
        else {
            return es_error(
                400,
                "illegal_argument_exception",
                &format!(
                    "Malformed action/metadata line [{}], expected START_OBJECT",
                    n + 1
                ),
            );
        };
        if !["create", "index", "update", "delete"].contains(&name.as_str()) {
            return es_error(
                400,
                "illegal_argument_exception",
                &format!(
                    "Malformed action/metadata line [{}], expected field [create, delete, index, update] but found [{name}]",
                    n + 1
                ),
            );
        }
        let Some(index) = meta
            .get("_index")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| default_index.clone())
        else {
            return es_error(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: index is missing;",
            );
        };
        let id = meta.get("_id").and_then(Value::as_str).map(str::to_owned);
        let source = if name == "delete" {
            None
        } else {
            let Some((_, src)) = lines.next() else {
                return es_error(
                    400,
                    "illegal_argument_exception",
                    "The bulk request must be terminated by a newline [\\n]",
                );
            };
            match serde_json::from_str::<Value>(src) {
                Ok(v) if v.is_object() => Some(v),
                _ => {
                    return es_error(
                        400,
                        "x_content_parse_exception",
                        &format!("[{}:1] source is not a JSON object on one line", n + 2),
                    );
                }
            }
        };
        ops.push((name.clone(), index, id, source));
    }
    let mut items = Vec::new();
    let mut errors = false;
    for (name, index, id, source) in ops {
        req.docs += 1;
        req.actions.push(name.clone());
        let id = id.unwrap_or_else(|| {
            st.auto_id += 1;
            format!("auto-{}", st.auto_id)
        });
        req.ids.push(id.clone());
        let status = bulk_item(st, &name, &index, &id, source);
        req.statuses.push(status);
        let mut r = json!({ "_index": index, "_id": id, "status": status });
        if status >= 300 {
            errors = true;
            r["error"] = item_error(status, &id, &index);
        } else {
            r["_version"] = json!(1);
            r["result"] = json!(if status == 201 { "created" } else { "updated" });
            r["_shards"] = json!({"total": 2, "successful": 1, "failed": 0});
        }
        items.push(json!({ name: r }));
    }
    let mut reply = json!({ "took": 3, "errors": errors, "items": items });
    if let Some(fp) = req.query.get("filter_path") {
        reply = filter_path(&reply, fp);
    }
    axum::Json(reply).into_response()
}

/// Executes one item; returns its status.
fn bulk_item(
    st: &mut BulkState,
    action: &str,
    index: &str,
    id: &str,
    source: Option<Value>,
) -> u16 {
    match st.rules.get_mut(id) {
        Some(ItemRule::Reject) => return 400,
        Some(ItemRule::Next(q)) => {
            if let Some(s) = q.pop_front() {
                return s;
            }
        }
        None => {}
    }
    // Data streams (logs-*-*): create only, @timestamp required, constant data_stream.*.
    let parts: Vec<&str> = index.splitn(3, '-').collect();
    if parts.len() == 3 && parts[0] == "logs" {
        if action != "create" {
            return 400;
        }
        let Some(src) = source.as_ref() else {
            return 400;
        };
        if !src.get("@timestamp").is_some_and(Value::is_string) {
            return 400;
        }
        if let Some(ds) = src.get("data_stream") {
            let want = json!({"type": parts[0], "dataset": parts[1], "namespace": parts[2]});
            for k in ["type", "dataset", "namespace"] {
                if ds.get(k).is_some_and(|v| *v != want[k]) {
                    return 400;
                }
            }
        }
    }
    let docs = st.store.entry(index.to_owned()).or_default();
    match action {
        "create" => {
            if docs.contains_key(id) {
                return 409;
            }
            docs.insert(id.to_owned(), source.unwrap_or(Value::Null));
            *st.created.entry(format!("{index}/{id}")).or_insert(0) += 1;
            201
        }
        "index" => {
            let existed = docs
                .insert(id.to_owned(), source.unwrap_or(Value::Null))
                .is_some();
            if existed { 200 } else { 201 }
        }
        "delete" => {
            if docs.remove(id).is_some() {
                200
            } else {
                404
            }
        }
        _ => {
            // update: {"doc": {...}} merged into an existing document.
            let Some(doc) = source.and_then(|s| s.get("doc").cloned()) else {
                return 400;
            };
            match docs.get_mut(id) {
                Some(Value::Object(cur)) => {
                    if let Value::Object(d) = doc {
                        cur.extend(d);
                    }
                    200
                }
                _ => 404,
            }
        }
    }
}

/// Elasticsearch's `filter_path` for the shapes `_bulk` answers (`errors`, `took`,
/// `items.*.<field>`).
fn filter_path(reply: &Value, fp: &str) -> Value {
    let mut out = Map::new();
    let mut item_fields: Vec<&str> = Vec::new();
    for p in fp.split(',') {
        match p.split_once('.') {
            None => {
                if let Some(v) = reply.get(p) {
                    out.insert(p.to_owned(), v.clone());
                }
            }
            Some(("items", rest)) => {
                if let Some(f) = rest.strip_prefix("*.") {
                    item_fields.push(f);
                }
            }
            _ => {}
        }
    }
    if !item_fields.is_empty() {
        let items: Vec<Value> = reply["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|it| {
                        let o = it.as_object().expect("item");
                        let (k, v) = o.iter().next().expect("action");
                        let kept: Map<String, Value> = item_fields
                            .iter()
                            .filter_map(|f| v.get(*f).map(|x| ((*f).to_owned(), x.clone())))
                            .collect();
                        json!({ k: kept })
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.insert("items".into(), Value::Array(items));
    }
    Value::Object(out)
}

async fn es_root(State(s): State<BulkShared>, headers: HeaderMap) -> Response {
    let st = s.0.lock().expect("lock");
    if !bulk_auth_ok(&st.auth, &headers) {
        return es_error(401, "security_exception", "unable to authenticate");
    }
    axum::Json(json!({
        "name": "mock-node",
        "cluster_name": "mock",
        "version": { "number": "9.4.0" },
        "tagline": "You Know, for Search"
    }))
    .into_response()
}

impl Bulk {
    pub async fn start(auth: BulkAuth) -> Bulk {
        let state = Arc::new(Mutex::new(BulkState {
            auth,
            script: VecDeque::new(),
            rules: HashMap::new(),
            max_content_length: 100 * 1024 * 1024,
            store: BTreeMap::new(),
            created: BTreeMap::new(),
            requests: Vec::new(),
            auto_id: 0,
        }));
        let app = Router::new()
            .route("/_bulk", axum::routing::post(bulk_s).put(bulk_s))
            .route("/{index}/_bulk", axum::routing::post(bulk_s).put(bulk_s))
            .route("/", axum::routing::get(es_root))
            .with_state(BulkShared(state.clone()));
        let listener = Arc::new(Listener::start(app).await);
        Bulk { state, listener }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.listener.addr)
    }

    /// Whole-request answers for the next requests (after auth and content type).
    pub fn script(&self, steps: &[(u16, Option<u64>)]) {
        self.state
            .lock()
            .expect("lock")
            .script
            .extend(steps.iter().copied());
    }

    /// The document with this `_id` answers these statuses on its next attempts.
    pub fn fail_item(&self, id: &str, statuses: &[u16]) {
        self.state.lock().expect("lock").rules.insert(
            id.to_owned(),
            ItemRule::Next(statuses.iter().copied().collect()),
        );
    }

    /// The document with this `_id` always fails to parse (400).
    pub fn reject_item(&self, id: &str) {
        self.state
            .lock()
            .expect("lock")
            .rules
            .insert(id.to_owned(), ItemRule::Reject);
    }

    /// Stores a document as if it had been indexed earlier.
    pub fn preseed(&self, index: &str, id: &str, doc: Value) {
        self.state
            .lock()
            .expect("lock")
            .store
            .entry(index.to_owned())
            .or_default()
            .insert(id.to_owned(), doc);
    }

    pub fn set_max_content_length(&self, n: usize) {
        self.state.lock().expect("lock").max_content_length = n;
    }

    /// Stored documents by index and `_id`.
    pub fn store(&self) -> BTreeMap<String, BTreeMap<String, Value>> {
        self.state.lock().expect("lock").store.clone()
    }

    pub fn stored_count(&self) -> usize {
        self.state
            .lock()
            .expect("lock")
            .store
            .values()
            .map(BTreeMap::len)
            .sum()
    }

    /// How often each `index/_id` was created (201).
    pub fn created(&self) -> BTreeMap<String, u32> {
        self.state.lock().expect("lock").created.clone()
    }

    pub fn requests(&self) -> Vec<BulkRequest> {
        self.state.lock().expect("lock").requests.clone()
    }

    pub async fn stop(&self) {
        self.listener.stop().await;
    }

    pub async fn restart(&self) {
        self.listener.restart().await;
    }
}
