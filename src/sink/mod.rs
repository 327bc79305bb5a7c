//! Sinks: where events go. A closed enum ([`AnySink`]) dispatches to each kind; the generic
//! [`run`] loop does batching, filtering, encoding, retries and acknowledgements for all of them.
//!
//! Invariants:
//! - A delivery is acknowledged only after the sink confirmed it (stdout flushed, syslog bytes
//!   written and flushed, HTTP 2xx) or after it was written to the dead-letter file because the
//!   target rejected it for good. Nothing else acknowledges.
//! - Retryable failures are retried forever with capped, jittered backoff (≤ 60 s), honouring
//!   `Retry-After`: the queue fills and the pollers wait; nothing is dropped.
//! - Error messages never carry a secret (webhook URLs are shown as scheme://host/…).

pub mod stdout;
pub mod syslog;
pub mod webhook;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{error, warn};

use crate::config::{Format, MAX_SINK_BACKOFF, SinkConfig, SinkKind};
use crate::event::Event;
use crate::pipeline::{DeadLetter, Delivery, SinkStats};
use crate::retry::{Backoff, retry_after};
use crate::transform;

/// A delivery failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    /// Whether trying again may succeed.
    pub retryable: bool,
    /// `Retry-After` from the target, if any.
    pub retry_after: Option<u64>,
    /// What happened and what to do, without secrets.
    pub message: String,
}

impl SinkError {
    /// A failure worth retrying.
    pub fn retryable(message: impl Into<String>) -> SinkError {
        SinkError {
            retryable: true,
            retry_after: None,
            message: message.into(),
        }
    }

    /// A rejection for good (the events go to the dead-letter file).
    pub fn fatal(message: impl Into<String>) -> SinkError {
        SinkError {
            retryable: false,
            retry_after: None,
            message: message.into(),
        }
    }
}

/// Every kind of sink.
#[derive(Debug)]
pub enum AnySink {
    /// Standard output.
    Stdout(stdout::StdoutSink),
    /// Syslog over UDP, TCP or TLS.
    Syslog(Box<syslog::SyslogSink>),
    /// HTTP POST of JSON arrays.
    Webhook(webhook::WebhookSink),
}

impl AnySink {
    /// Builds a sink from its config (no IO yet: connections are made on first use).
    pub fn build(cfg: &SinkConfig) -> Result<AnySink, String> {
        Ok(match &cfg.kind {
            SinkKind::Stdout => AnySink::Stdout(stdout::StdoutSink::new()),
            SinkKind::Syslog(s) => AnySink::Syslog(Box::new(syslog::SyslogSink::new(s.clone())?)),
            SinkKind::Webhook(w) => {
                AnySink::Webhook(webhook::WebhookSink::new(w.clone(), cfg.format)?)
            }
        })
    }

    /// One record for one event (the sink adds framing when it sends).
    pub fn record(&self, format: Format, ev: &Event, stats: &SinkStats) -> Bytes {
        match self {
            AnySink::Syslog(s) => s.record(format, ev, stats),
            AnySink::Webhook(w) => w.record(ev),
            AnySink::Stdout(_) => {
                let mut out = Vec::with_capacity(512);
                transform::encode(format, ev, &mut out);
                out.into()
            }
        }
    }

    /// Sends records, in order.
    pub async fn send(&mut self, records: &[Bytes]) -> Result<(), SinkError> {
        match self {
            AnySink::Stdout(s) => s.send(records).await,
            AnySink::Syslog(s) => s.send(records).await,
            AnySink::Webhook(w) => w.send(records).await,
        }
    }

    /// Checks that the target is reachable (for `check`).
    pub async fn healthcheck(&mut self) -> Result<String, SinkError> {
        match self {
            AnySink::Stdout(_) => Ok("stdout".to_owned()),
            AnySink::Syslog(s) => s.healthcheck().await,
            AnySink::Webhook(w) => w.healthcheck().await,
        }
    }

    /// Most records per send.
    fn max_batch(&self) -> usize {
        match self {
            AnySink::Webhook(w) => w.max_events(),
            _ => 1000,
        }
    }

    /// How long a partial batch waits for more events.
    fn linger(&self) -> Duration {
        match self {
            AnySink::Webhook(w) => w.linger(),
            _ => Duration::ZERO,
        }
    }
}

/// The delivery loop of one sink: runs until every poller is gone and the queue is drained.
pub async fn run(
    mut sink: AnySink,
    cfg: SinkConfig,
    mut rx: mpsc::Receiver<Delivery>,
    stats: Arc<SinkStats>,
    dead_letter: DeadLetter,
) {
    let max = sink.max_batch();
    let linger = sink.linger();
    let mut backoff = Backoff::new(Duration::from_millis(500), MAX_SINK_BACKOFF);
    while let Some(first) = rx.recv().await {
        let mut items = vec![first];
        let mut count = items[0].events.len();
        let deadline = tokio::time::Instant::now() + linger;
        while count < max {
            let next = if linger.is_zero() {
                rx.try_recv().ok()
            } else {
                tokio::time::timeout_at(deadline, rx.recv())
                    .await
                    .ok()
                    .flatten()
            };
            match next {
                Some(d) => {
                    count += d.events.len();
                    items.push(d);
                }
                None => break,
            }
        }
        let mut records: Vec<(Bytes, &Event)> = Vec::with_capacity(count);
        for item in &items {
            for ev in item.events.iter() {
                if transform::accepts(&cfg.filter, ev) {
                    records.push((sink.record(cfg.format, ev, &stats), ev));
                } else {
                    stats.filtered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        for chunk in records.chunks(max) {
            let bytes: Vec<Bytes> = chunk.iter().map(|(b, _)| b.clone()).collect();
            loop {
                match sink.send(&bytes).await {
                    Ok(()) => {
                        stats
                            .delivered
                            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                        stats.set_error(None);
                        backoff.reset();
                        break;
                    }
                    Err(e) if e.retryable => {
                        stats.retries.fetch_add(1, Ordering::Relaxed);
                        stats.set_error(Some(e.message.clone()));
                        let delay = match e.retry_after {
                            Some(s) => retry_after(Some(s), MAX_SINK_BACKOFF),
                            None => backoff.next_delay(),
                        };
                        warn!(sink = %cfg.name, retry_in = ?delay, "{e}");
                        tokio::time::sleep(delay).await;
                    }
                    Err(e) => {
                        let dead: Vec<_> = chunk
                            .iter()
                            .map(|(_, ev)| {
                                let mut raw = Vec::new();
                                transform::json::encode(ev, &mut raw);
                                let v = serde_json::from_slice(&raw).unwrap_or_default();
                                (v, e.message.clone())
                            })
                            .collect();
                        error!(sink = %cfg.name, events = dead.len(), file = %dead_letter.path().display(), "{e}; events written to the dead-letter file");
                        stats
                            .dead_lettered
                            .fetch_add(dead.len() as u64, Ordering::Relaxed);
                        stats.set_error(Some(e.message.clone()));
                        // A dead letter that cannot be written must not be acknowledged.
                        let mut wait = Backoff::new(Duration::from_secs(1), MAX_SINK_BACKOFF);
                        while let Err(io) = dead_letter.append(&dead) {
                            error!(sink = %cfg.name, error = %io, "cannot write the dead-letter file; retrying");
                            tokio::time::sleep(wait.next_delay()).await;
                        }
                        break;
                    }
                }
            }
        }
        drop(records);
        for item in items {
            let _ = item.done.send(());
        }
    }
}
