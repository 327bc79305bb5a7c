//! Start-up wiring: from a validated [`Config`] to running tasks, and the orderly shutdown.
//!
//! Order of start: lock the state directory, load every cursor (a corrupt one stops the start
//! before anything is sent), build the sinks, spawn sink tasks, committers and pollers.
//! Order of stop: cancel → pollers return (dropping their senders) → sinks drain and close →
//! committers save the last acknowledged cursors → return. The whole stop is bounded by
//! `shutdown_timeout`; whatever was not acknowledged by then is re-read on the next start.
//!
//! Supervision: every task the agent spawns (pollers, sink tasks, chat sinks among them,
//! committers, the `/health` listener, the lag monitor and the watchdog feeder) is watched. One
//! that panics, or returns while the agent is not stopping, is a bug: `/health` turns 503 at
//! once naming it, the pipeline stops in order (what every sink acknowledged is saved), and
//! [`run`] fails with [`AgentError::TaskDied`], so the process exits 1 and systemd restarts it
//! (`Restart=on-failure`) instead of running on as a zombie that delivers nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{Config, SinkKind};
use crate::cursor::{Cursor, CursorError, StateDir};
use crate::event::PortalInfo;
use crate::pipeline::{
    COMMIT_QUEUE, CommitLane, DeadLetter, Lane, Outlet, Registry, SINK_QUEUE, SinkStats,
    StreamStats, run_committer,
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
    /// A task of the pipeline ended unexpectedly (a panic, or a return while not stopping).
    #[error(
        "{0}; the agent stopped so that its service manager restarts it (a bug: please report it with the log above)"
    )]
    TaskDied(String),
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

    // Cursors first: a corrupt one stops everything before a single event is sent. Each sink
    // has its own cursor per portal/stream; one without a file (an upgrade) starts from the
    // stream's cursor of the release before, so an upgrade re-sends at most one batch.
    let mut starts = BTreeMap::new();
    let mut lane_starts: BTreeMap<(String, crate::event::Stream), Vec<Option<Cursor>>> =
        BTreeMap::new();
    // Which sinks had a file of their own.
    let mut lane_files: BTreeMap<(String, crate::event::Stream), Vec<bool>> = BTreeMap::new();
    for p in &cfg.portals {
        for &stream in &p.streams {
            let mut own = Vec::with_capacity(cfg.sinks.len());
            for s in &cfg.sinks {
                own.push(state.load_lane(&p.name, stream, Some(&s.name))?);
            }
            let legacy = state.load(&p.name, stream)?;
            lane_files.insert(
                (p.name.clone(), stream),
                own.iter().map(Option::is_some).collect::<Vec<bool>>(),
            );
            // One sink keeps the stream's file (a file of its own is left from a config that had
            // more sinks: the newer of the two counts).
            let single = cfg.sinks.len() == 1;
            let own: Vec<Option<Cursor>> = own
                .into_iter()
                .map(|c| match (c, &legacy) {
                    (Some(c), Some(l)) if single && l.watermark > c.watermark => Some(l.clone()),
                    (c, l) => c.or_else(|| l.clone()),
                })
                .collect();
            // The live poller reads from the newest of its sinks' cursors.
            let newest = own
                .iter()
                .flatten()
                .max_by_key(|c| c.watermark)
                .cloned()
                .or(legacy.clone());
            lane_starts.insert((p.name.clone(), stream), own);
            let c = match newest {
                Some(c) => {
                    info!(portal = %p.name, stream = %stream, watermark = %crate::event::format_utc_seconds(c.watermark), "resuming from cursor");
                    if c.watermark > now {
                        // Not corrupt: the clock was set back, or a cursor was restored from
                        // another machine. The poller waits until the clock passes it.
                        warn!(portal = %p.name, stream = %stream, watermark = %crate::event::format_utc_seconds(c.watermark), now = %crate::event::format_utc_seconds(now), "the cursor lies ahead of the clock: nothing is read until the clock passes it (check the system time, or move it with `cursor set`)");
                    }
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
    // Every task, and what to call it if it dies.
    let mut tasks: Tasks = Tasks::default();
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
            SinkKind::AzureLogs(a) => Some(&a.tls),
            _ => None,
        };
        if http_tls.is_some_and(|t| t.insecure_skip_verify) {
            warn!(sink = %s.name, "tls.insecure_skip_verify = true: the receiver's certificate is NOT checked");
        }
        let (tx, rx) = mpsc::channel(SINK_QUEUE);
        let stats = Arc::new(SinkStats::default());
        senders.push((s.name.clone(), tx, stats.clone()));
        registry.sinks.insert(s.name.clone(), stats.clone());
        let dl = DeadLetter::new(&cfg.state_dir, &s.name);
        tasks.spawn(
            format!("sink {}", s.name),
            sink::run(built, s.clone(), rx, stats, dl),
        );
    }

    for p in &cfg.portals {
        if p.tls.insecure_skip_verify {
            warn!(portal = %p.name, "tls.insecure_skip_verify = true: the portal's certificate is NOT checked");
        }
        let http = crate::http::client(&p.tls, p.timeout, &p.url)
            .map_err(|e| AgentError::Setup(format!("portals.{}: {e}", p.name)))?;
        let info = Arc::new(PortalInfo::new(&p.name, p.url.as_str()).with_labels(p.labels.clone()));
        let limiter = Arc::new(crate::source::docspace::RateLimiter::new(
            p.max_requests_per_second,
        ));
        let classes = Arc::new(crate::pipeline::RequestClasses::default());
        registry.requests.insert(p.name.clone(), classes.clone());
        let client = Client::new(http, p.url.clone(), p.api_key.clone(), info)
            .with_limits(limiter, p.concurrency)
            .with_max_response(p.max_response_mib)
            .with_request_classes(classes);
        let pcfg = Arc::new(p.clone());
        for &stream in &p.streams {
            let stats = Arc::new(StreamStats::default());
            stats.beat();
            registry
                .streams
                .insert((p.name.clone(), stream), stats.clone());
            let cursor = starts
                .remove(&(p.name.clone(), stream))
                .unwrap_or_else(|| Cursor::at(now));
            let own = lane_starts
                .remove(&(p.name.clone(), stream))
                .unwrap_or_default();
            let peers: Vec<Arc<SinkStats>> = senders.iter().map(|(_, _, st)| st.clone()).collect();
            let mut lanes = Vec::with_capacity(senders.len());
            for (i, (name, tx, sink_stats)) in senders.iter().enumerate() {
                // One committer per portal × stream × sink: each sink's progress is its own.
                let (ctx, crx) = mpsc::channel(COMMIT_QUEUE);
                let lane = CommitLane {
                    sink: Some((name.clone(), sink_stats.clone())),
                    peers: peers.clone(),
                    own_file: senders.len() > 1,
                };
                let committer = run_committer(
                    state.clone(),
                    p.name.clone(),
                    stream,
                    lane,
                    crx,
                    stats.clone(),
                );
                tasks.spawn(
                    format!("committer {}/{stream}/{name}", p.name),
                    async move {
                        committer.await;
                    },
                );
                // A sink whose cursor is behind the live start catches up on its own.
                let mine = own.get(i).cloned().flatten();
                // With several sinks, a sink's file is written before it starts: from then on
                // the stream's file (which follows the sink furthest ahead) never stands in for
                // it, so a sink that never acknowledged anything keeps its place.
                let had_file = lane_files
                    .get(&(p.name.clone(), stream))
                    .and_then(|f| f.get(i).copied())
                    .unwrap_or(false);
                if senders.len() > 1 && !had_file {
                    let at = mine.clone().unwrap_or_else(|| cursor.clone());
                    state.save_lane(&p.name, stream, Some(name), &at)?;
                }
                let behind = mine.filter(|c| c.watermark < cursor.watermark);
                let at = behind.as_ref().map_or(cursor.watermark, |c| c.watermark);
                sink_stats.acked_progress(&p.name, stream, 0, Some(at));
                lanes.push((
                    Lane {
                        name: name.clone(),
                        tx: tx.clone(),
                        commits: ctx,
                        stats: sink_stats.clone(),
                    },
                    behind,
                ));
            }
            stats.set_watermark(
                own.iter()
                    .flatten()
                    .map(|c| c.watermark)
                    .min()
                    .unwrap_or(cursor.watermark)
                    .min(cursor.watermark),
            );
            let outlet = Outlet::live(&p.name, stream, lanes, &cursor);
            let poller = Poller {
                client: client.clone(),
                cfg: pcfg.clone(),
                stream,
                cursor,
                outlet,
                dead_letter: DeadLetter::new(&cfg.state_dir, &format!("portal.{}", p.name)),
                stats,
                progress_interval: cfg.progress_interval,
                rejected_seen: Default::default(),
                chase: None,
            };
            tasks.spawn(
                format!("poller {}/{stream}", p.name),
                poller.run(cancel.clone()),
            );
        }
    }
    // Only pollers hold senders now: when they stop, the sink queues close.
    drop(senders);
    let registry = Arc::new(registry);
    if let Some(api) = &cfg.api {
        match crate::api::bind(
            api.address,
            registry.clone(),
            api.token.clone(),
            cancel.clone(),
        )
        .await
        {
            Ok((addr, serve)) => {
                info!(address = %addr, "serving /health and /metrics");
                tasks.spawn("the /health and /metrics listener".to_owned(), serve);
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
    if let Some(watchdog) = crate::notify::watchdog(registry.clone(), cancel.clone()) {
        tasks.spawn("the watchdog feeder".to_owned(), watchdog);
    }
    tasks.spawn(
        "the lag monitor".to_owned(),
        crate::pipeline::lag_monitor(registry.clone(), cfg.progress_interval, cancel.clone()),
    );

    // Until the stop: a task that ends first is a bug (see the module doc).
    let ended = tokio::select! {
        () = cancel.cancelled() => None,
        Some(ended) = tasks.join_next() => Some(ended),
    };
    let mut died = ended.and_then(|ended| tasks.death(ended, cancel.is_cancelled()));
    if let Some(why) = &died {
        error!("{why}; stopping the pipeline");
        registry.task_died(why);
        cancel.cancel();
    }
    info!(timeout = %crate::retry::Secs(cfg.shutdown_timeout), "stopping: draining sinks and saving cursors");
    // Every task ends by itself once cancelled (pollers first, then sinks as their queues
    // close, then committers); the listener closes before a reload binds it again.
    let drain = async {
        while let Some(ended) = tasks.join_next().await {
            if let Some(why) = tasks.death(ended, true) {
                error!("{why}");
                registry.task_died(&why);
                died.get_or_insert(why);
            }
        }
    };
    if tokio::time::timeout(cfg.shutdown_timeout, drain)
        .await
        .is_err()
    {
        warn!(
            "shutdown_timeout reached with deliveries still pending; unacknowledged events will be re-sent on the next start"
        );
        tasks.set.abort_all();
        // Let the aborted tasks drop what they hold (the listener, before a reload binds it).
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while tasks.set.join_next().await.is_some() {}
        })
        .await;
    }
    match died {
        Some(why) => Err(AgentError::TaskDied(why)),
        None => Ok(Summary { registry }),
    }
}

/// The agent's tasks, each with a name for the error that reports its death.
#[derive(Default)]
struct Tasks {
    set: JoinSet<()>,
    names: HashMap<tokio::task::Id, String>,
}

impl Tasks {
    fn spawn(
        &mut self,
        name: String,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let id = self.set.spawn(task).id();
        self.names.insert(id, name);
    }

    /// The next task to end, with its id.
    async fn join_next(&mut self) -> Option<Result<tokio::task::Id, tokio::task::JoinError>> {
        self.set
            .join_next_with_id()
            .await
            .map(|r| r.map(|(id, ())| id))
    }

    /// Why a task's end is a failure: it panicked, or it returned while the agent was not
    /// `stopping`; `None` for an orderly end.
    fn death(
        &mut self,
        ended: Result<tokio::task::Id, tokio::task::JoinError>,
        stopping: bool,
    ) -> Option<String> {
        let (id, panic) = match ended {
            Ok(id) if stopping => {
                self.names.remove(&id);
                return None;
            }
            Ok(id) => (id, None),
            Err(e) if e.is_cancelled() => {
                self.names.remove(&e.id());
                return None;
            }
            Err(e) => {
                let id = e.id();
                let payload = e.into_panic();
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".to_owned());
                (id, Some(msg))
            }
        };
        let name = self
            .names
            .remove(&id)
            .unwrap_or_else(|| "a task".to_owned());
        Some(match panic {
            Some(msg) => format!("{name} panicked: {msg}"),
            None => format!("{name} ended while the agent was running"),
        })
    }
}

/// A line per target for `check`: `(name, Ok(detail) | Err(reason))`.
/// Checks every portal and sink once: `Ok(detail)` (a detail starting with
/// [`crate::sink::UNVERIFIED`] when the target cannot be verified), or `Err(reason)`.
pub async fn check(cfg: &Config) -> Vec<(String, Result<String, String>)> {
    let mut out = Vec::new();
    for p in &cfg.portals {
        let name = format!("portal {}", p.name);
        let res = match crate::http::client(&p.tls, p.timeout.min(Duration::from_secs(30)), &p.url)
        {
            Err(e) => Err(e.to_string()),
            Ok(http) => {
                let info = Arc::new(
                    PortalInfo::new(&p.name, p.url.as_str()).with_labels(p.labels.clone()),
                );
                // The same cap on answers as `run` (max_response_mib).
                let client = Client::new(http, p.url.clone(), p.api_key.clone(), info)
                    .with_max_response(p.max_response_mib);
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
    // Every line is printed: scrub it of every configured secret once more, whatever a
    // remote answer put into it.
    out.into_iter()
        .map(|(name, res)| {
            let res = match res {
                Ok(d) => Ok(crate::http::scrub(&d)),
                Err(e) => Err(crate::http::scrub(&e)),
            };
            (name, res)
        })
        .collect()
}
