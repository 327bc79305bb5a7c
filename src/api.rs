//! The `[api]` listener: `GET /health` (200 when every portal and sink is healthy, 503 with the
//! reasons otherwise, and 503 for good once a task of the agent has died) and `GET /metrics` (Prometheus text format).
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

/// Binds, and returns the address and the task that serves until `cancel` (the agent spawns
/// and watches it; it ends, closing the listener, once `cancel` fires).
pub async fn bind(
    addr: SocketAddr,
    registry: Arc<Registry>,
    cancel: CancellationToken,
) -> std::io::Result<(
    SocketAddr,
    impl std::future::Future<Output = ()> + Send + 'static,
)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(registry);
    let serve = async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
    };
    Ok((local, serve))
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
    let dead = reg.dead_tasks();
    ok &= dead.is_empty();
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
    let mut doc =
        json!({ "status": if ok { "ok" } else { "degraded" }, "portals": portals, "sinks": sinks });
    if !dead.is_empty() {
        // The process is stopping (it exits non-zero): say why.
        doc["status"] = json!("failed");
        doc["dead_tasks"] = json!(dead);
    }
    (ok, doc)
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
}
