//! A loopback stand-in for Microsoft Entra ID's token endpoint and the Azure Monitor Logs
//! Ingestion API (axum on 127.0.0.1:0, both on one port), following Microsoft's documented
//! contract, and recording everything it receives:
//!
//! - `POST /{tenant}/oauth2/v2.0/token`: form-encoded `grant_type=client_credentials`,
//!   `client_id`, `client_secret`, `scope`; a wrong secret is 401 `invalid_client`
//!   (AADSTS7000215), an unknown tenant 400 `invalid_request` (AADSTS90002), a missing or
//!   wrong field 400; success is `{"token_type":"Bearer","expires_in":N,"access_token":…}`.
//!   A token may be announced with one lifetime and really expire after another (a revoked
//!   token, or clocks apart).
//! - `POST /dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01`: a bearer token
//!   it issued and that has not expired (else 401), `Content-Type: application/json`, gzip
//!   decoded when `Content-Encoding: gzip` is set, at most 1 MB per call compressed or not
//!   (else 413), an unknown DCR 404, a stream the DCR does not declare 400 `InvalidStream`, a
//!   body that is not a JSON array of objects 400; then 204 No Content. Scripted answers
//!   (429/503 with `Retry-After`) come after the token check.

use std::collections::{BTreeMap, VecDeque};
use std::io::Read as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The service's documented limit per call: 1 MB, compressed or not.
pub const MAX_CALL: usize = 1024 * 1024;

/// One upload request, as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct Upload {
    pub at: Instant,
    pub stream: String,
    pub status: u16,
    /// Bytes on the wire, and after gzip decoding.
    pub wire_len: usize,
    pub decoded_len: usize,
    pub gzip: bool,
    pub records: usize,
}

struct Issued {
    expires: Instant,
}

struct AzState {
    tenant: String,
    client_id: String,
    secret: String,
    dcr: String,
    streams: Vec<String>,
    announced: u64,
    real_life: Duration,
    max_call: usize,
    script: VecDeque<(u16, Option<u64>)>,
    tokens: BTreeMap<String, Issued>,
    token_requests: Vec<u16>,
    uploads: Vec<Upload>,
    /// Uploads refused because their token had expired.
    expired: usize,
    accepted: Vec<(String, Value)>,
    next: u64,
}

type Shared = Arc<Mutex<AzState>>;

/// The stand-in: token endpoint and ingestion endpoint.
#[derive(Clone)]
pub struct Azure {
    state: Shared,
    url: String,
}

fn aad_error(status: u16, error: &str, description: &str) -> Response {
    (
        StatusCode::from_u16(status).expect("status"),
        axum::Json(json!({
            "error": error,
            "error_description": description,
            "error_codes": [],
            "timestamp": "2026-01-01 00:00:00Z",
            "trace_id": "00000000-0000-0000-0000-000000000000",
            "correlation_id": "00000000-0000-0000-0000-000000000000",
        })),
    )
        .into_response()
}

async fn token(
    State(s): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = s.lock().expect("lock");
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let answer = |st: &mut AzState, r: Response| {
        st.token_requests.push(r.status().as_u16());
        r
    };
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return answer(
            &mut st,
            aad_error(
                400,
                "invalid_request",
                "AADSTS900144: The request body must contain the following parameter: 'grant_type'.",
            ),
        );
    }
    if tenant != st.tenant {
        return answer(
            &mut st,
            aad_error(400, "invalid_request", "AADSTS90002: Tenant not found."),
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return answer(
            &mut st,
            aad_error(
                400,
                "unsupported_grant_type",
                "AADSTS70003: The app requested an unsupported grant type.",
            ),
        );
    }
    if form.get("scope").map(String::as_str) != Some("https://monitor.azure.com//.default") {
        return answer(
            &mut st,
            aad_error(
                400,
                "invalid_scope",
                "AADSTS70011: The provided value for the input parameter 'scope' is not valid.",
            ),
        );
    }
    if form.get("client_id") != Some(&st.client_id) {
        return answer(
            &mut st,
            aad_error(
                400,
                "unauthorized_client",
                "AADSTS700016: Application not found in the directory.",
            ),
        );
    }
    if form.get("client_secret") != Some(&st.secret) {
        return answer(
            &mut st,
            aad_error(
                401,
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            ),
        );
    }
    st.next += 1;
    let token = format!(
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.standin-token-{:06}-{:x}",
        st.next,
        fastrand::u64(..)
    );
    let expires = Instant::now() + st.real_life;
    st.tokens.insert(token.clone(), Issued { expires });
    let announced = st.announced;
    answer(
        &mut st,
        axum::Json(json!({
            "token_type": "Bearer",
            "expires_in": announced,
            "ext_expires_in": announced,
            "access_token": token,
        }))
        .into_response(),
    )
}

fn ingestion_error(status: u16, code: &str, message: &str) -> Response {
    let mut r = (
        StatusCode::from_u16(status).expect("status"),
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response();
    r.headers_mut()
        .insert("x-ms-error-code", code.parse().expect("header value"));
    r
}

async fn upload(
    State(s): State<Shared>,
    Path((dcr, stream)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = s.lock().expect("lock");
    let gzip = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let mut rec = Upload {
        at: Instant::now(),
        stream: stream.clone(),
        status: 0,
        wire_len: body.len(),
        decoded_len: 0,
        gzip,
        records: 0,
    };
    let resp = upload_answer(
        &mut st,
        &dcr,
        &stream,
        query.as_deref(),
        &headers,
        &body,
        &mut rec,
    );
    rec.status = resp.status().as_u16();
    st.uploads.push(rec);
    resp
}

fn upload_answer(
    st: &mut AzState,
    dcr: &str,
    stream: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    rec: &mut Upload,
) -> Response {
    let version = query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .any(|(k, v)| k == "api-version" && v == "2023-01-01")
        })
        .unwrap_or(false);
    if !version {
        return ingestion_error(
            400,
            "InvalidApiVersion",
            "The api-version query parameter is missing or not supported.",
        );
    }
    let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return ingestion_error(
            401,
            "InvalidToken",
            "The request does not carry a bearer token.",
        );
    };
    match st.tokens.get(token) {
        None => return ingestion_error(401, "InvalidToken", "The token is not valid."),
        Some(t) if Instant::now() >= t.expires => {
            st.expired += 1;
            return ingestion_error(401, "TokenExpired", "The access token has expired.");
        }
        Some(_) => {}
    }
    if dcr != st.dcr {
        return ingestion_error(404, "NotFound", "Data collection rule not found.");
    }
    if !st.streams.iter().any(|s| s == stream) {
        return ingestion_error(
            400,
            "InvalidStream",
            "The stream is not declared in the data collection rule.",
        );
    }
    if let Some((status, retry_after)) = st.script.pop_front() {
        let mut r = ingestion_error(status, "Throttled", "Scripted answer.");
        if let Some(s) = retry_after {
            r.headers_mut()
                .insert("retry-after", s.to_string().parse().expect("header value"));
        }
        return r;
    }
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        return ingestion_error(
            415,
            "UnsupportedMediaType",
            "Content-Type must be application/json.",
        );
    }
    if body.len() > st.max_call {
        return ingestion_error(
            413,
            "ContentLengthLimitExceeded",
            "The request is larger than 1 MB.",
        );
    }
    let decoded = if rec.gzip {
        let mut out = Vec::new();
        let limited = flate2::read::GzDecoder::new(body).take(st.max_call as u64 + 1);
        if std::io::BufReader::new(limited)
            .read_to_end(&mut out)
            .is_err()
        {
            return ingestion_error(400, "InvalidContentEncoding", "The body is not valid gzip.");
        }
        out
    } else {
        body.to_vec()
    };
    rec.decoded_len = decoded.len();
    if decoded.len() > st.max_call {
        return ingestion_error(
            413,
            "ContentLengthLimitExceeded",
            "The request is larger than 1 MB.",
        );
    }
    let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(&decoded) else {
        return ingestion_error(400, "InvalidDataFormat", "The body must be a JSON array.");
    };
    if !items.iter().all(Value::is_object) {
        return ingestion_error(
            400,
            "InvalidDataFormat",
            "Every record must be a JSON object.",
        );
    }
    rec.records = items.len();
    st.accepted
        .extend(items.into_iter().map(|v| (stream.to_owned(), v)));
    StatusCode::NO_CONTENT.into_response()
}

impl Azure {
    /// Tenant, client id and secret it accepts; the DCR id and the streams the DCR declares.
    pub async fn start(
        tenant: &str,
        client_id: &str,
        secret: &str,
        dcr: &str,
        streams: &[&str],
    ) -> Azure {
        let state = Arc::new(Mutex::new(AzState {
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            secret: secret.to_owned(),
            dcr: dcr.to_owned(),
            streams: streams.iter().map(|s| (*s).to_owned()).collect(),
            announced: 3599,
            real_life: Duration::from_secs(3599),
            max_call: MAX_CALL,
            script: VecDeque::new(),
            tokens: BTreeMap::new(),
            token_requests: Vec::new(),
            uploads: Vec::new(),
            expired: 0,
            accepted: Vec::new(),
            next: 0,
        }));
        let app = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/dataCollectionRules/{dcr}/streams/{stream}", post(upload))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Azure {
            state,
            url: format!("http://{addr}"),
        }
    }

    /// The base URL (both the authority host and the ingestion endpoint).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Tokens announce `announced` seconds of life and really expire after `real`.
    pub fn token_life(&self, announced: u64, real: Duration) {
        let mut st = self.state.lock().expect("lock");
        st.announced = announced;
        st.real_life = real;
    }

    /// The largest call it takes (default: the documented 1 MB).
    pub fn set_max_call(&self, n: usize) {
        self.state.lock().expect("lock").max_call = n;
    }

    /// Answers the next uploads (after the token check) with these statuses and Retry-After.
    pub fn script(&self, steps: &[(u16, Option<u64>)]) {
        self.state
            .lock()
            .expect("lock")
            .script
            .extend(steps.iter().copied());
    }

    pub fn script_left(&self) -> usize {
        self.state.lock().expect("lock").script.len()
    }

    /// Records it took, with the stream each was posted to.
    pub fn accepted(&self) -> Vec<(String, Value)> {
        self.state.lock().expect("lock").accepted.clone()
    }

    /// `(Stream, EventId)` of every record it took, in order.
    pub fn keys(&self) -> Vec<(String, i64)> {
        self.accepted()
            .iter()
            .map(|(_, r)| {
                (
                    r["Stream"].as_str().unwrap_or("").to_owned(),
                    r["EventId"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    }

    /// EventIds it took of one DocSpace stream (`login` or `audit`).
    pub fn ids(&self, stream: &str) -> Vec<i64> {
        self.keys()
            .into_iter()
            .filter(|(s, _)| s == stream)
            .map(|(_, id)| id)
            .collect()
    }

    pub fn uploads(&self) -> Vec<Upload> {
        self.state.lock().expect("lock").uploads.clone()
    }

    /// Status of every token request.
    pub fn token_requests(&self) -> Vec<u16> {
        self.state.lock().expect("lock").token_requests.clone()
    }

    /// Every token it issued.
    pub fn tokens(&self) -> Vec<String> {
        self.state
            .lock()
            .expect("lock")
            .tokens
            .keys()
            .cloned()
            .collect()
    }

    /// Uploads refused because their token had expired.
    pub fn expired_refusals(&self) -> usize {
        self.state.lock().expect("lock").expired
    }

    /// Whether every token issued so far has expired.
    pub fn all_tokens_expired(&self) -> bool {
        let st = self.state.lock().expect("lock");
        let now = Instant::now();
        !st.tokens.is_empty() && st.tokens.values().all(|t| now >= t.expires)
    }
}
