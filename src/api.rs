//! The `[api]` listener: `GET /health` (200 when every portal and sink is healthy, 503 with the
//! reasons otherwise) and `GET /metrics` (Prometheus text format).
//!
//! Invariant: read-only, loopback by default, and never shows a secret (only table names,
//! counters and error messages, which are secret-free by construction).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::pipeline::Registry;

/// Binds and serves until `cancel`.
pub async fn spawn(
    addr: SocketAddr,
    registry: Arc<Registry>,
    cancel: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(registry);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
    });
    Ok((local, task))
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
        let err = s.error();
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
    let mut sinks: Map<String, Value> = Map::new();
    for (name, s) in &reg.sinks {
        let err = s.error();
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
            }),
        );
    }
    (
        ok,
        json!({ "status": if ok { "ok" } else { "degraded" }, "portals": portals, "sinks": sinks }),
    )
}

async fn health(State(reg): State<Arc<Registry>>) -> impl IntoResponse {
    let (ok, doc) = health_doc(&reg);
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(doc))
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
        "# HELP docspace_siem_watermark_seconds Cursor watermark (unix seconds)\n# TYPE docspace_siem_watermark_seconds gauge"
    );
    for ((portal, stream), s) in &reg.streams {
        let _ = writeln!(
            out,
            "docspace_siem_watermark_seconds{{portal=\"{}\",stream=\"{}\"}} {}",
            label(portal),
            stream,
            s.watermark.load(Ordering::Relaxed)
        );
    }
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
    out
}

async fn metrics(State(reg): State<Arc<Registry>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics_text(&reg),
    )
}
