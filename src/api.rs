//! The `[api]` listener: `GET /health` (200 when every portal and sink is healthy, 503 with the
//! reasons otherwise, and 503 for good once a task of the agent has died) and `GET /metrics` (Prometheus text format).
//!
//! Invariants:
//! - Read-only, loopback by default (a warning at start when bound beyond it), and never shows
//!   a secret: only table names, counters and error messages, which are scrubbed of every
//!   configured secret once more on the way out.
//! - With `[api] token_file`, both endpoints answer only a request carrying
//!   `Authorization: Bearer <token>` (401 otherwise).
//! - Nobody who can connect can starve it or the agent: at most [`MAX_CONNECTIONS`]
//!   connections are held (a new one evicts the one idle longest, so a client that sends its
//!   request is always served), a connection must send its request headers within
//!   [`HEADER_TIMEOUT`] and is closed after [`IDLE_TIMEOUT`] without a byte. So idle
//!   connections cannot use up the process's file descriptors (cursor saves need them).

use std::fmt::Write as _;
use std::future::Future as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::warn;

use crate::pipeline::Registry;

/// Most connections the listener holds at once.
pub const MAX_CONNECTIONS: usize = 64;
/// A new connection must send (the start of) its request within this.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection that sends nothing for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the handlers share.
struct ApiState {
    /// The registry of the running portals (replaced on reload).
    registry: tokio::sync::watch::Receiver<Arc<Registry>>,
    /// `[api] token_file`: the bearer token both endpoints require.
    token: Option<SecretString>,
}

/// Binds, and returns the address and the task that serves until `cancel` (the agent spawns
/// and watches it; it ends, closing the listener, once `cancel` fires). `token` (from
/// `[api] token_file`) makes both endpoints require `Authorization: Bearer <token>`.
pub async fn bind(
    addr: SocketAddr,
    registry: tokio::sync::watch::Receiver<Arc<Registry>>,
    token: Option<SecretString>,
    cancel: CancellationToken,
) -> std::io::Result<(
    SocketAddr,
    impl std::future::Future<Output = ()> + Send + 'static,
)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        if token.is_some() {
            warn!(address = %local, "[api] listens beyond this machine; /health and /metrics require the bearer token of api.token_file");
        } else {
            warn!(address = %local, "[api] listens beyond this machine without a token: anyone who can reach it reads /health and /metrics; set api.token_file, or bind to 127.0.0.1");
        }
    }
    let app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(Arc::new(ApiState { registry, token }));
    let listener = Capped {
        tcp: listener,
        slots: Vec::new(),
        epoch: Instant::now(),
    };
    let serve = async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
    };
    Ok((local, serve))
}

/// One held connection: when it last sent a byte, and how to close it from the listener.
#[derive(Debug)]
struct Slot {
    /// Milliseconds since the listener's epoch.
    last: AtomicU64,
    evict: CancellationToken,
}

/// The TCP listener with a cap on held connections (see the module doc).
struct Capped {
    tcp: TcpListener,
    /// Connections handed out; an entry whose connection is gone has no other owner.
    slots: Vec<Arc<Slot>>,
    epoch: Instant,
}

impl axum::serve::Listener for Capped {
    type Io = Guarded;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Guarded, SocketAddr) {
        loop {
            match self.tcp.accept().await {
                Ok((tcp, addr)) => {
                    self.slots
                        .retain(|s| Arc::strong_count(s) > 1 && !s.evict.is_cancelled());
                    if self.slots.len() >= MAX_CONNECTIONS
                        && let Some(i) = (0..self.slots.len())
                            .min_by_key(|&i| self.slots[i].last.load(Ordering::Relaxed))
                    {
                        self.slots.swap_remove(i).evict.cancel();
                    }
                    let slot = Arc::new(Slot {
                        last: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
                        evict: CancellationToken::new(),
                    });
                    self.slots.push(slot.clone());
                    return (Guarded::new(tcp, slot, self.epoch), addr);
                }
                // EMFILE, ENFILE, ECONNABORTED…: the connection is lost, the listener is not.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// A connection that fails its reads and writes once its deadline passes (headers at first,
/// idle afterwards) or the listener evicts it; hyper then drops it, closing the socket.
struct Guarded {
    tcp: TcpStream,
    slot: Arc<Slot>,
    evicted: Pin<Box<WaitForCancellationFutureOwned>>,
    deadline: Pin<Box<Sleep>>,
    epoch: Instant,
}

impl Guarded {
    fn new(tcp: TcpStream, slot: Arc<Slot>, epoch: Instant) -> Guarded {
        Guarded {
            tcp,
            evicted: Box::pin(slot.evict.clone().cancelled_owned()),
            slot,
            deadline: Box::pin(tokio::time::sleep(HEADER_TIMEOUT)),
            epoch,
        }
    }

    /// An error once the connection must go.
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<std::io::Error> {
        if self.evicted.as_mut().poll(cx).is_ready() {
            return Some(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "evicted: too many connections",
            ));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Some(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "idle connection",
            ));
        }
        None
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(e) = self.expired(cx) {
            return Poll::Ready(Err(e));
        }
        let before = buf.filled().len();
        let me = &mut *self;
        let res = Pin::new(&mut me.tcp).poll_read(cx, buf);
        if matches!(res, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            me.slot
                .last
                .store(me.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
            me.deadline.as_mut().reset(Instant::now() + IDLE_TIMEOUT);
        }
        res
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(e) = self.expired(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// Whether the request carries the configured bearer token (or none is configured). The
/// comparison takes the same time whatever bytes differ.
fn authorized(state: &ApiState, headers: &HeaderMap) -> bool {
    let Some(token) = &state.token else {
        return true;
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .as_bytes();
    let want = token.expose_secret().as_bytes();
    given.len() == want.len()
        && given
            .iter()
            .zip(want)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "a bearer token is required (api.token_file)\n",
    )
        .into_response()
}

/// Seconds from a unix-seconds watermark to now (0 when unknown).
fn lag(watermark: u64) -> u64 {
    if watermark == 0 {
        return 0;
    }
    (crate::pipeline::now_millis() / 1000).saturating_sub(watermark)
}

/// The health document and whether everything is healthy.
pub fn health_doc(reg: &Registry) -> (bool, Value) {
    let mut ok = true;
    let mut portals: Map<String, Value> = Map::new();
    for ((portal, stream), s) in &reg.streams {
        let err = s.error().map(|e| crate::http::scrub(&e));
        ok &= err.is_none();
        let entry = portals
            .entry(portal.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(
                stream.as_str().to_owned(),
                json!({
                    "state": if err.is_some() { "error" } else { "ok" },
                    "error": err,
                    "watermark": s.watermark.load(Ordering::Relaxed),
                    "cursor_lag_seconds": lag(s.watermark.load(Ordering::Relaxed)),
                    "last_success": s.last_success.load(Ordering::Relaxed),
                    "events_polled": s.polled.load(Ordering::Relaxed),
                    "events_committed": s.committed.load(Ordering::Relaxed),
                }),
            );
        }
    }
    let dead = reg.dead_tasks();
    ok &= dead.is_empty();
    let mut sinks: Map<String, Value> = Map::new();
    for (name, s) in &reg.sinks {
        let err = s.error().map(|e| crate::http::scrub(&e));
        ok &= err.is_none();
        sinks.insert(
            name.clone(),
            json!({
                "state": if err.is_some() { "error" } else { "ok" },
                "error": err,
                "events_delivered": s.delivered.load(Ordering::Relaxed),
                "events_dead_lettered": s.dead_lettered.load(Ordering::Relaxed),
                "last_success": s.last_success.load(Ordering::Relaxed),
                "queued_batches": s.queued.load(Ordering::Relaxed),
                // live, catching_up (a chaser feeds it) or failed (detached, retried slowly).
                "delivery": s.state(),
                "lag_seconds": s.lag(&reg.streams),
            }),
        );
    }
    let mut doc =
        json!({ "status": if ok { "ok" } else { "degraded" }, "portals": portals, "sinks": sinks });
    if !dead.is_empty() {
        // The process is stopping (it exits non-zero): say why.
        doc["status"] = json!("failed");
        doc["dead_tasks"] = json!(dead);
    }
    (ok, doc)
}

async fn health(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let registry = state.registry.borrow().clone();
    let (ok, doc) = health_doc(&registry);
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(doc)).into_response()
}

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A counter: name, help text, and how to read it.
type Counter<S> = (&'static str, &'static str, fn(&S) -> u64);

/// The metrics in Prometheus text format.
pub fn metrics_text(reg: &Registry) -> String {
    let mut out = String::new();
    let stream_counters: [Counter<crate::pipeline::StreamStats>; 6] = [
        (
            "docspace_siem_events_polled_total",
            "Events read from DocSpace and emitted",
            |s| s.polled.load(Ordering::Relaxed),
        ),
        (
            "docspace_siem_events_committed_total",
            "Events acknowledged by every sink and covered by a saved cursor",
            |s| s.committed.load(Ordering::Relaxed),
        ),
        (
            "docspace_siem_cursor_saves_total",
            "Cursor saves attempted (at most one per stream every 250 ms)",
            |s| s.saves.load(Ordering::Relaxed),
        ),
        (
            "docspace_siem_requests_total",
            "Requests made to DocSpace",
            |s| s.requests.load(Ordering::Relaxed),
        ),
        (
            "docspace_siem_rows_rejected_total",
            "DocSpace rows that could not be decoded (dead-lettered)",
            |s| s.rejected.load(Ordering::Relaxed),
        ),
        (
            "docspace_siem_rows_unreadable_total",
            "DocSpace rows the portal fails every answer for (read around, named in an ERROR)",
            |s| s.unreadable.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, f) in stream_counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for ((portal, stream), s) in &reg.streams {
            let _ = writeln!(
                out,
                "{name}{{portal=\"{}\",stream=\"{}\"}} {}",
                label(portal),
                stream,
                f(s)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP docspace_siem_watermark_timestamp_seconds Cursor watermark (unix seconds)\n# TYPE docspace_siem_watermark_timestamp_seconds gauge"
    );
    for ((portal, stream), s) in &reg.streams {
        let _ = writeln!(
            out,
            "docspace_siem_watermark_timestamp_seconds{{portal=\"{}\",stream=\"{}\"}} {}",
            label(portal),
            stream,
            s.watermark.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP docspace_siem_last_success_timestamp_seconds When a window was last read from the portal (unix seconds; 0 = never)\n# TYPE docspace_siem_last_success_timestamp_seconds gauge"
    );
    for ((portal, stream), s) in &reg.streams {
        let _ = writeln!(
            out,
            "docspace_siem_last_success_timestamp_seconds{{portal=\"{}\",stream=\"{}\"}} {}",
            label(portal),
            stream,
            s.last_success.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP docspace_siem_portal_up Whether the last read of a portal's stream succeeded (1) or is failing (0; /health names why)\n# TYPE docspace_siem_portal_up gauge"
    );
    for ((portal, stream), s) in &reg.streams {
        let _ = writeln!(
            out,
            "docspace_siem_portal_up{{portal=\"{}\",stream=\"{}\"}} {}",
            label(portal),
            stream,
            u8::from(s.error().is_none())
        );
    }
    let _ = writeln!(
        out,
        "# HELP docspace_siem_sink_up Whether a sink's last delivery succeeded (1) or is failing (0)\n# TYPE docspace_siem_sink_up gauge"
    );
    for (sink, s) in &reg.sinks {
        let _ = writeln!(
            out,
            "docspace_siem_sink_up{{sink=\"{}\"}} {}",
            label(sink),
            u8::from(s.error().is_none())
        );
    }
    let _ = writeln!(
        out,
        "# HELP docspace_siem_sink_state A sink's delivery state: 1 for the current one of live, catching_up (detached, a chaser feeds it) and failed\n# TYPE docspace_siem_sink_state gauge"
    );
    for (sink, s) in &reg.sinks {
        let now = s.state();
        for state in ["live", "catching_up", "failed"] {
            let _ = writeln!(
                out,
                "docspace_siem_sink_state{{sink=\"{}\",state=\"{state}\"}} {}",
                label(sink),
                u8::from(now == state)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP docspace_siem_sink_lag_seconds How far a sink's saved progress trails the newest event read, at worst over its portals and streams\n# TYPE docspace_siem_sink_lag_seconds gauge"
    );
    for (sink, s) in &reg.sinks {
        let _ = writeln!(
            out,
            "docspace_siem_sink_lag_seconds{{sink=\"{}\"}} {}",
            label(sink),
            s.lag(&reg.streams)
        );
    }
    let _ = writeln!(
        out,
        "# HELP docspace_siem_build_info The agent's version (always 1)\n# TYPE docspace_siem_build_info gauge\ndocspace_siem_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    let _ = writeln!(
        out,
        "# HELP docspace_siem_cursor_lag_seconds How far the delivered cursor trails now\n# TYPE docspace_siem_cursor_lag_seconds gauge"
    );
    for ((portal, stream), s) in &reg.streams {
        let _ = writeln!(
            out,
            "docspace_siem_cursor_lag_seconds{{portal=\"{}\",stream=\"{}\"}} {}",
            label(portal),
            stream,
            lag(s.watermark.load(Ordering::Relaxed))
        );
    }
    let _ = writeln!(
        out,
        "# HELP docspace_siem_sink_queue_batches Batches waiting in a sink's queue\n# TYPE docspace_siem_sink_queue_batches gauge"
    );
    for (sink, s) in &reg.sinks {
        let _ = writeln!(
            out,
            "docspace_siem_sink_queue_batches{{sink=\"{}\"}} {}",
            label(sink),
            s.queued.load(Ordering::Relaxed)
        );
    }
    let sink_counters: [Counter<crate::pipeline::SinkStats>; 5] = [
        (
            "docspace_siem_events_delivered_total",
            "Events a sink delivered",
            |s| s.delivered.load(Ordering::Relaxed),
        ),
        (
            "docspace_siem_events_filtered_total",
            "Events a sink's filter skipped",
            |s| s.filtered.load(Ordering::Relaxed),
        ),
        (
            "docspace_siem_events_dead_lettered_total",
            "Events a sink rejected for good",
            |s| s.dead_lettered.load(Ordering::Relaxed),
        ),
        (
            "docspace_siem_sink_retries_total",
            "Failed deliveries that were retried",
            |s| s.retries.load(Ordering::Relaxed),
        ),
        (
            "docspace_siem_events_truncated_total",
            "UDP messages cut to fit a datagram",
            |s| s.truncated.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, f) in sink_counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (sink, s) in &reg.sinks {
            let _ = writeln!(out, "{name}{{sink=\"{}\"}} {}", label(sink), f(s));
        }
    }
    let _ = writeln!(
        out,
        "# HELP docspace_siem_portal_requests_total Requests to a portal by the class of their answer (none: no answer: connection, TLS, timeout)\n# TYPE docspace_siem_portal_requests_total counter"
    );
    for (portal, c) in &reg.requests {
        for (class, n) in crate::pipeline::RequestClasses::LABELS
            .iter()
            .zip(&c.counts)
        {
            let _ = writeln!(
                out,
                "docspace_siem_portal_requests_total{{portal=\"{}\",class=\"{class}\"}} {}",
                label(portal),
                n.load(Ordering::Relaxed)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP docspace_siem_events_delivered_by_stream_total Events a sink delivered, by the portal and stream they came from\n# TYPE docspace_siem_events_delivered_by_stream_total counter"
    );
    for (sink, s) in &reg.sinks {
        let by = s.delivered_by.lock().map(|g| g.clone()).unwrap_or_default();
        for ((portal, stream), n) in by {
            let _ = writeln!(
                out,
                "docspace_siem_events_delivered_by_stream_total{{sink=\"{}\",portal=\"{}\",stream=\"{}\"}} {n}",
                label(sink),
                label(&portal),
                stream
            );
        }
    }
    out
}

async fn metrics(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics_text(&state.registry.borrow().clone()),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// See: issue 15. Once a task of the agent has died, `/health` is never ok again (the
    /// process is stopping to be restarted), and names the task.
    #[test]
    fn health_is_not_ok_while_a_task_is_dead() {
        let reg = Registry::default();
        assert!(health_doc(&reg).0);
        reg.task_died("sink chat panicked: boom");
        let (ok, doc) = health_doc(&reg);
        assert!(!ok);
        assert_eq!(doc["status"], "failed", "{doc}");
        assert_eq!(doc["dead_tasks"][0], "sink chat panicked: boom", "{doc}");
    }

    #[test]
    fn metrics_name_instants_as_timestamps_and_say_what_is_up() {
        let mut reg = Registry::default();
        let failing = Arc::new(crate::pipeline::StreamStats::default());
        failing.set_error(Some("HTTP 500".to_owned()));
        reg.streams
            .insert(("main".to_owned(), crate::event::Stream::Login), failing);
        reg.streams.insert(
            ("main".to_owned(), crate::event::Stream::Audit),
            Arc::default(),
        );
        let siem = Arc::new(crate::pipeline::SinkStats::default());
        siem.count_delivered("main", crate::event::Stream::Login, 3);
        siem.count_delivered("main", crate::event::Stream::Login, 2);
        reg.sinks.insert("siem".to_owned(), siem);
        let classes = Arc::new(crate::pipeline::RequestClasses::default());
        classes.count(Some(200));
        classes.count(Some(429));
        classes.count(None);
        reg.requests.insert("main".to_owned(), classes);
        let text = metrics_text(&reg);
        for line in [
            "docspace_siem_watermark_timestamp_seconds{portal=\"main\",stream=\"login\"} 0",
            "docspace_siem_last_success_timestamp_seconds{portal=\"main\",stream=\"audit\"} 0",
            "docspace_siem_portal_up{portal=\"main\",stream=\"login\"} 0",
            "docspace_siem_portal_up{portal=\"main\",stream=\"audit\"} 1",
            "docspace_siem_sink_up{sink=\"siem\"} 1",
            "docspace_siem_portal_requests_total{portal=\"main\",class=\"2xx\"} 1",
            "docspace_siem_portal_requests_total{portal=\"main\",class=\"4xx\"} 1",
            "docspace_siem_portal_requests_total{portal=\"main\",class=\"none\"} 1",
            "docspace_siem_portal_requests_total{portal=\"main\",class=\"5xx\"} 0",
            "docspace_siem_events_delivered_by_stream_total{sink=\"siem\",portal=\"main\",stream=\"login\"} 5",
            "docspace_siem_events_delivered_total{sink=\"siem\"} 5",
            concat!(
                "docspace_siem_build_info{version=\"",
                env!("CARGO_PKG_VERSION"),
                "\"} 1"
            ),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
        // Every sample's metric has its HELP and TYPE.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap_or_default();
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} has no TYPE"
            );
        }
    }

    #[test]
    fn each_sink_shows_its_delivery_state_and_lag() {
        use crate::event::Stream;
        let mut reg = Registry::default();
        let stream = Arc::new(crate::pipeline::StreamStats::default());
        stream.read.store(1_000, Ordering::Relaxed);
        reg.streams
            .insert(("main".to_owned(), Stream::Login), stream);
        let live = Arc::new(crate::pipeline::SinkStats::default());
        live.acked_progress(
            "main",
            Stream::Login,
            1,
            time::OffsetDateTime::from_unix_timestamp(1_000).ok(),
        );
        let behind = Arc::new(crate::pipeline::SinkStats::default());
        behind.acked_progress(
            "main",
            Stream::Login,
            1,
            time::OffsetDateTime::from_unix_timestamp(400).ok(),
        );
        behind.detached.store(1, Ordering::Relaxed);
        let failed = Arc::new(crate::pipeline::SinkStats::default());
        failed.failed.store(true, Ordering::Relaxed);
        reg.sinks.insert("live".to_owned(), live);
        reg.sinks.insert("behind".to_owned(), behind);
        reg.sinks.insert("failed".to_owned(), failed);
        let (_, doc) = health_doc(&reg);
        assert_eq!(doc["sinks"]["live"]["delivery"], "live");
        assert_eq!(doc["sinks"]["live"]["lag_seconds"], 0);
        assert_eq!(doc["sinks"]["behind"]["delivery"], "catching_up");
        assert_eq!(doc["sinks"]["behind"]["lag_seconds"], 600);
        assert_eq!(doc["sinks"]["failed"]["delivery"], "failed");
        let text = metrics_text(&reg);
        for line in [
            "docspace_siem_sink_state{sink=\"behind\",state=\"catching_up\"} 1",
            "docspace_siem_sink_state{sink=\"behind\",state=\"live\"} 0",
            "docspace_siem_sink_state{sink=\"failed\",state=\"failed\"} 1",
            "docspace_siem_sink_lag_seconds{sink=\"behind\"} 600",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
    }
}
