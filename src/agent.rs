//! Start-up wiring: from a validated [`Config`] to running tasks, and the orderly shutdown.
//!
//! Order of start: lock the state directory, load every cursor (a corrupt one stops the start
//! before anything is sent), build the sinks, spawn sink tasks, committers and pollers.
//! Order of stop: cancel → pollers return (dropping their senders) → sinks drain and close →
//! committers save the last acknowledged cursors → return. The whole stop is bounded by
//! `shutdown_timeout`; whatever was not acknowledged by then is re-read on the next start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Config, SinkKind};
use crate::cursor::{Cursor, CursorError, StateDir};
use crate::event::PortalInfo;
use crate::pipeline::{
    COMMIT_QUEUE, DeadLetter, Outlet, Registry, SINK_QUEUE, SinkStats, StreamStats, run_committer,
};
use crate::sink::{self, AnySink};
use crate::source::Poller;
use crate::source::docspace::Client;

/// Why the agent could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// State directory or cursor problem.
    #[error(transparent)]
    State(#[from] CursorError),
    /// A sink or client could not be built.
    #[error("{0}")]
    Setup(String),
}

impl AgentError {
    /// Whether this is a problem of configuration or state an operator must fix (exit 78).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            AgentError::State(CursorError::Corrupt { .. }) | AgentError::Setup(_)
        )
    }
}

/// Knobs that are not part of the config file (used by `demo`).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Print at most this many events on stdout sinks, then stop.
    pub stdout_limit: Option<u64>,
}

/// What a finished run did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Stats of every portal/stream and sink.
    pub registry: Arc<Registry>,
}

/// Runs the agent until `cancel` fires, then drains and saves cursors.
pub async fn run(
    cfg: Config,
    cancel: CancellationToken,
    opts: RunOptions,
) -> Result<Summary, AgentError> {
    let state = Arc::new(StateDir::open(&cfg.state_dir)?);
    let now = OffsetDateTime::now_utc();

    // Cursors first: a corrupt one stops everything before a single event is sent.
    let mut starts = BTreeMap::new();
    for p in &cfg.portals {
        for &stream in &p.streams {
            let c = match state.load(&p.name, stream)? {
                Some(c) => {
                    info!(portal = %p.name, stream = %stream, watermark = %crate::event::format_utc_seconds(c.watermark), "resuming from cursor");
                    c
                }
                None => {
                    let t = p.start_from.resolve(now);
                    info!(portal = %p.name, stream = %stream, from = %crate::event::format_utc_seconds(t), "first run: starting from start_from");
                    Cursor::at(t)
                }
            };
            starts.insert((p.name.clone(), stream), c);
        }
    }

    let mut registry = Registry::default();
    let mut sink_tasks = JoinSet::new();
    let mut senders = Vec::new();
    for s in &cfg.sinks {
        let built = match (&s.kind, opts.stdout_limit) {
            (SinkKind::Stdout, Some(n)) => {
                AnySink::Stdout(sink::stdout::StdoutSink::with_limit(n, cancel.clone()))
            }
            (SinkKind::Stdout, None) => {
                AnySink::Stdout(sink::stdout::StdoutSink::stopping(cancel.clone()))
            }
            _ => AnySink::build(s)
                .map_err(|e| AgentError::Setup(format!("sinks.{}: {e}", s.name)))?,
        };
        if let SinkKind::Syslog(sc) = &s.kind
            && sc.tls.insecure_skip_verify
        {
            warn!(sink = %s.name, "tls.insecure_skip_verify = true: the receiver's certificate is NOT checked");
        }
        let http_tls = match &s.kind {
            SinkKind::Webhook(w) => Some(&w.tls),
            SinkKind::SplunkHec(h) => Some(&h.tls),
            SinkKind::Elasticsearch(e) => Some(&e.tls),
            SinkKind::Chat(c) => Some(&c.tls),
            _ => None,
        };
        if http_tls.is_some_and(|t| t.insecure_skip_verify) {
            warn!(sink = %s.name, "tls.insecure_skip_verify = true: the receiver's certificate is NOT checked");
        }
        let (tx, rx) = mpsc::channel(SINK_QUEUE);
        senders.push(tx);
        let stats = Arc::new(SinkStats::default());
        registry.sinks.insert(s.name.clone(), stats.clone());
        let dl = DeadLetter::new(&cfg.state_dir, &s.name);
        sink_tasks.spawn(sink::run(built, s.clone(), rx, stats, dl));
    }

    let mut pollers = JoinSet::new();
    let mut committers = JoinSet::new();
    for p in &cfg.portals {
        if p.tls.insecure_skip_verify {
            warn!(portal = %p.name, "tls.insecure_skip_verify = true: the portal's certificate is NOT checked");
        }
        let http = crate::tls::http_client(&p.tls, p.timeout)
            .map_err(|e| AgentError::Setup(format!("portals.{}: {e}", p.name)))?;
        let info = Arc::new(PortalInfo::new(&p.name, p.url.as_str()));
        let limiter = Arc::new(crate::source::docspace::RateLimiter::new(
            p.max_requests_per_second,
        ));
        let client = Client::new(http, p.url.clone(), p.api_key.clone(), info)
            .with_limits(limiter, p.concurrency)
            .with_max_response(p.max_response_mib);
        let pcfg = Arc::new(p.clone());
        for &stream in &p.streams {
            let stats = Arc::new(StreamStats::default());
            stats.beat();
            registry
                .streams
                .insert((p.name.clone(), stream), stats.clone());
            let (ctx, crx) = mpsc::channel(COMMIT_QUEUE);
            committers.spawn(run_committer(
                state.clone(),
                p.name.clone(),
                stream,
                crx,
                stats.clone(),
            ));
            let cursor = starts
                .remove(&(p.name.clone(), stream))
                .unwrap_or_else(|| Cursor::at(now));
            let poller = Poller {
                client: client.clone(),
                cfg: pcfg.clone(),
                stream,
                cursor,
                outlet: Outlet::new(senders.clone(), ctx),
                dead_letter: DeadLetter::new(&cfg.state_dir, &format!("portal.{}", p.name)),
                stats,
                progress_interval: cfg.progress_interval,
                rejected_seen: Default::default(),
            };
            pollers.spawn(poller.run(cancel.clone()));
        }
    }
    // Only pollers hold senders now: when they stop, the sink queues close.
    drop(senders);
    let registry = Arc::new(registry);
    let mut api_task = None;
    if let Some(api) = &cfg.api {
        match crate::api::spawn(api.address, registry.clone(), cancel.clone()).await {
            Ok((addr, task)) => {
                info!(address = %addr, "serving /health and /metrics");
                api_task = Some(task);
            }
            Err(e) if api.explicit => {
                return Err(AgentError::Setup(format!(
                    "api.address {}: cannot listen: {e}",
                    api.address
                )));
            }
            Err(e) => {
                warn!(address = %api.address, error = %e, "cannot serve /health and /metrics on the default address; set [api] address or enabled = false")
            }
        }
    }
    info!(
        portals = cfg.portals.len(),
        sinks = cfg.sinks.len(),
        "docspace-siem running"
    );
    crate::notify::notify("READY=1");
    crate::notify::spawn_watchdog(registry.clone(), cancel.clone());
    crate::pipeline::spawn_lag_monitor(registry.clone(), cfg.progress_interval, cancel.clone());

    cancel.cancelled().await;
    info!(timeout = ?cfg.shutdown_timeout, "stopping: draining sinks and saving cursors");
    let drain = async {
        while pollers.join_next().await.is_some() {}
        while sink_tasks.join_next().await.is_some() {}
        while committers.join_next().await.is_some() {}
    };
    if tokio::time::timeout(cfg.shutdown_timeout, drain)
        .await
        .is_err()
    {
        warn!(
            "shutdown_timeout reached with deliveries still pending; unacknowledged events will be re-sent on the next start"
        );
    }
    // The listener must be closed before a reload binds it again.
    if let Some(task) = api_task {
        let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    }
    Ok(Summary { registry })
}

/// A line per target for `check`: `(name, Ok(detail) | Err(reason))`.
pub async fn check(cfg: &Config) -> Vec<(String, Result<String, String>)> {
    let mut out = Vec::new();
    for p in &cfg.portals {
        let name = format!("portal {}", p.name);
        let res = match crate::tls::http_client(&p.tls, p.timeout.min(Duration::from_secs(30))) {
            Err(e) => Err(e.to_string()),
            Ok(http) => {
                let info = Arc::new(PortalInfo::new(&p.name, p.url.as_str()));
                let client = Client::new(http, p.url.clone(), p.api_key.clone(), info);
                client
                    .check()
                    .await
                    .map(|()| format!("{} answered; audit and login history readable", p.url))
                    .map_err(|e| e.to_string())
            }
        };
        out.push((name, res));
    }
    for s in &cfg.sinks {
        let name = format!("sink {}", s.name);
        let res = match AnySink::build(s) {
            Err(e) => Err(e),
            Ok(mut sink) => {
                match tokio::time::timeout(Duration::from_secs(30), sink.healthcheck()).await {
                    Ok(r) => r.map_err(|e| e.message),
                    Err(_) => Err("timed out after 30s".to_owned()),
                }
            }
        };
        out.push((name, res));
    }
    out
}
