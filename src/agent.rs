//! Start-up wiring: from a validated [`Config`] to running tasks, reloads, and the orderly
//! shutdown.
//!
//! Order of start: lock the state directory, load every cursor (a corrupt one stops the start
//! before anything is sent), build the sinks, spawn sink tasks, then each portal's committers
//! and pollers as a unit (`agent/portal.rs`). Order of stop: cancel → pollers return (dropping
//! their senders) → sinks drain and close → committers save the last acknowledged cursors →
//! return. The whole stop is bounded by `shutdown_timeout`; whatever was not acknowledged by
//! then is re-read on the next start.
//!
//! Reload ([`run_reloadable`], `agent/reload.rs`): a new config whose portals alone changed is
//! applied in place: removed and changed portals stop as a SIGTERM stops them (their pollers
//! first, then their committers save what the sinks acknowledged), then added and changed ones
//! start from their saved cursors; the other portals and the sinks go on untouched. A change
//! to sinks, rules, `[api]` or the timings drains the whole pipeline and starts it again.
//!
//! Supervision: every task the agent spawns (pollers, sink tasks, chat sinks among them,
//! committers, the `/health` listener, the lag monitor and the watchdog feeder) is watched,
//! each under the token whose cancellation lets it end. One that panics, or returns before
//! its token was cancelled, is a bug: `/health` turns 503 at once naming it, the pipeline stops
//! in order (what every sink acknowledged is saved), and [`run`] fails with
//! [`AgentError::TaskDied`], so the process exits 1 and systemd restarts it
//! (`Restart=on-failure`) instead of running on as a zombie that delivers nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{Config, SinkKind};
use crate::cursor::{CursorError, StateDir};
use crate::event::PortalInfo;
use crate::pipeline::{DeadLetter, Registry, SINK_QUEUE, SinkStats};
use crate::sink::{self, AnySink};
use crate::source::docspace::Client;

mod portal;
mod reload;

use portal::{Shared, SinkLane, Starts, Unit};
pub use reload::run_with_reloads;

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

/// How a [`run_reloadable`] ended.
#[derive(Debug)]
pub struct Ended {
    /// What it did.
    pub summary: Summary,
    /// A reloaded config that changed more than portals: the pipeline drained and stopped, and
    /// the caller starts it again with this config (from the cursors just saved).
    pub restart: Option<Box<Config>>,
}

/// Runs the agent until `cancel` fires, then drains and saves cursors.
pub async fn run(
    cfg: Config,
    cancel: CancellationToken,
    opts: RunOptions,
) -> Result<Summary, AgentError> {
    let (_none, reloads) = mpsc::channel(1);
    run_reloadable(cfg, cancel, opts, reloads)
        .await
        .map(|ended| ended.summary)
}

/// [`run`], applying each validated config that arrives on `reloads` (see the module doc).
pub async fn run_reloadable(
    cfg: Config,
    cancel: CancellationToken,
    opts: RunOptions,
    mut reloads: mpsc::Receiver<Config>,
) -> Result<Ended, AgentError> {
    let state = Arc::new(StateDir::open(&cfg.state_dir)?);
    let now = OffsetDateTime::now_utc();
    let sink_names: Vec<String> = cfg.sinks.iter().map(|s| s.name.clone()).collect();

    // Cursors first: a corrupt one stops everything before a single event is sent.
    let mut starts = Vec::with_capacity(cfg.portals.len());
    for p in &cfg.portals {
        starts.push(Starts::load(&state, p, &sink_names, now)?);
    }

    // The pipeline's own stop: a reload that changes more than portals cancels it alone.
    let stop = cancel.child_token();
    let mut tasks: Tasks = Tasks::default();
    let mut sinks = Vec::new();
    for s in &cfg.sinks {
        let built = match (&s.kind, opts.stdout_limit) {
            (SinkKind::Stdout, Some(n)) => {
                AnySink::Stdout(sink::stdout::StdoutSink::with_limit(n, stop.clone()))
            }
            (SinkKind::Stdout, None) => {
                AnySink::Stdout(sink::stdout::StdoutSink::stopping(stop.clone()))
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
        sinks.push(SinkLane {
            name: s.name.clone(),
            tx,
            stats: stats.clone(),
        });
        let dl = DeadLetter::new(&cfg.state_dir, &s.name);
        // A sink ends once every queue sender is gone, after the stop.
        tasks.spawn(
            format!("sink {}", s.name),
            None,
            &stop,
            sink::run(built, s.clone(), rx, stats, dl),
        );
    }

    let shared = Shared {
        state,
        sinks,
        state_dir: cfg.state_dir.clone(),
        progress_interval: cfg.progress_interval,
    };
    let mut units = BTreeMap::new();
    for (p, start) in cfg.portals.iter().zip(starts) {
        units.insert(
            p.name.clone(),
            portal::start(&shared, p, start, &mut tasks, &stop)?,
        );
    }
    let (current, _) = watch::channel(Arc::new(Registry::default()));
    let mut run = Running {
        monitors: stop.child_token(),
        stop,
        shared,
        tasks,
        units,
        current,
        cfg,
        died: None,
    };
    run.publish();
    if let Some(api) = &run.cfg.api {
        match crate::api::bind(
            api.address,
            run.current.subscribe(),
            api.token.clone(),
            run.stop.clone(),
        )
        .await
        {
            Ok((addr, serve)) => {
                info!(address = %addr, "serving /health and /metrics");
                run.tasks.spawn(
                    "the /health and /metrics listener".to_owned(),
                    None,
                    &run.stop,
                    serve,
                );
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
        portals = run.cfg.portals.len(),
        sinks = run.cfg.sinks.len(),
        "docspace-siem running"
    );
    crate::notify::notify("READY=1");

    // Until the stop: a task that ends first is a bug (see the module doc).
    let mut restart = None;
    while run.died.is_none() {
        tokio::select! {
            () = run.stop.cancelled() => break,
            Some(ended) = run.tasks.join_next() => {
                if let Some(why) = run.tasks.death(ended) {
                    run.task_died(why);
                }
            }
            Some(new) = reloads.recv() => {
                if let Some(next) = run.reload(new).await {
                    restart = Some(Box::new(next));
                    break;
                }
            }
        }
    }
    if let Some(why) = &run.died {
        error!("{why}; stopping the pipeline");
    }
    run.stop.cancel();
    let Running {
        mut tasks,
        shared,
        current,
        cfg,
        mut died,
        ..
    } = run;
    // Only pollers hold queue senders now: when they stop, the sink queues close.
    drop(shared);
    let registry = current.borrow().clone();
    info!(timeout = %crate::retry::Secs(cfg.shutdown_timeout), "stopping: draining sinks and saving cursors");
    // Every task ends by itself once cancelled (pollers first, then sinks as their queues
    // close, then committers); the listener closes before a reload binds it again.
    let drain = async {
        while let Some(ended) = tasks.join_next().await {
            if let Some(why) = tasks.death(ended) {
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
        None => Ok(Ended {
            summary: Summary { registry },
            restart,
        }),
    }
}

/// The running pipeline: what a reload changes.
struct Running {
    /// The pipeline's stop (a child of the caller's token).
    stop: CancellationToken,
    /// The lag monitor's and the watchdog feeder's: started again for each new set of portals.
    monitors: CancellationToken,
    shared: Shared,
    tasks: Tasks,
    /// The started portals, by name.
    units: BTreeMap<String, Unit>,
    /// The registry `/health` and `/metrics` read: replaced when the portals change.
    current: watch::Sender<Arc<Registry>>,
    /// The config running now.
    cfg: Config,
    /// The first task that died: the pipeline stops.
    died: Option<String>,
}

impl Running {
    /// Records a task's death: `/health` turns 503 and the pipeline stops.
    fn task_died(&mut self, why: String) {
        self.current.borrow().task_died(&why);
        self.died.get_or_insert(why);
        self.stop.cancel();
    }

    /// Publishes the registry of the running portals, and starts the lag monitor and the
    /// watchdog feeder again over it.
    fn publish(&mut self) {
        let mut reg = Registry::default();
        for (name, u) in &self.units {
            for (stream, stats) in &u.streams {
                reg.streams.insert((name.clone(), *stream), stats.clone());
            }
            reg.requests.insert(name.clone(), u.requests.clone());
        }
        for s in &self.shared.sinks {
            reg.sinks.insert(s.name.clone(), s.stats.clone());
        }
        for why in self.current.borrow().dead_tasks() {
            reg.task_died(&why);
        }
        let reg = Arc::new(reg);
        self.current.send_replace(reg.clone());
        self.monitors.cancel();
        self.monitors = self.stop.child_token();
        if let Some(watchdog) = crate::notify::watchdog(reg.clone(), self.monitors.clone()) {
            self.tasks.spawn(
                "the watchdog feeder".to_owned(),
                None,
                &self.monitors,
                watchdog,
            );
        }
        self.tasks.spawn(
            "the lag monitor".to_owned(),
            None,
            &self.monitors,
            crate::pipeline::lag_monitor(reg, self.cfg.progress_interval, self.monitors.clone()),
        );
    }
}

/// One task: its name for the error that reports its death, the portal it belongs to, and the
/// token whose cancellation makes its end orderly.
struct Meta {
    name: String,
    portal: Option<String>,
    token: CancellationToken,
    abort: AbortHandle,
}

/// The agent's tasks.
#[derive(Default)]
struct Tasks {
    set: JoinSet<()>,
    meta: HashMap<tokio::task::Id, Meta>,
    /// Tasks still running, by portal (a reload waits for a stopped portal's to reach 0).
    per_portal: HashMap<String, usize>,
}

impl Tasks {
    /// Spawns `task`, part of `portal` (or of the whole pipeline), which may end once `token`
    /// is cancelled.
    fn spawn(
        &mut self,
        name: String,
        portal: Option<&str>,
        token: &CancellationToken,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let abort = self.set.spawn(task);
        if let Some(p) = portal {
            *self.per_portal.entry(p.to_owned()).or_default() += 1;
        }
        self.meta.insert(
            abort.id(),
            Meta {
                name,
                portal: portal.map(str::to_owned),
                token: token.clone(),
                abort,
            },
        );
    }

    /// The next task to end, with its id.
    async fn join_next(&mut self) -> Option<Result<tokio::task::Id, tokio::task::JoinError>> {
        self.set
            .join_next_with_id()
            .await
            .map(|r| r.map(|(id, ())| id))
    }

    /// Tasks of `portal` still running.
    fn remaining(&self, portal: &str) -> usize {
        self.per_portal.get(portal).copied().unwrap_or(0)
    }

    /// Forgets an ended task, returning what was known of it.
    fn ended(&mut self, id: tokio::task::Id) -> Option<Meta> {
        let meta = self.meta.remove(&id)?;
        if let Some(p) = &meta.portal
            && let Some(n) = self.per_portal.get_mut(p)
        {
            *n -= 1;
            if *n == 0 {
                self.per_portal.remove(p);
            }
        }
        Some(meta)
    }

    /// Aborts the tasks of `portal` still running.
    fn abort_portal(&self, portal: &str) {
        for m in self.meta.values() {
            if m.portal.as_deref() == Some(portal) {
                m.abort.abort();
            }
        }
    }

    /// Why a task's end is a failure: it panicked, or it returned before its token was
    /// cancelled; `None` for an orderly end.
    fn death(&mut self, ended: Result<tokio::task::Id, tokio::task::JoinError>) -> Option<String> {
        let (id, panic) = match ended {
            Ok(id) => (id, None),
            Err(e) if e.is_cancelled() => {
                self.ended(e.id());
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
        let meta = self.ended(id);
        if panic.is_none() && meta.as_ref().is_none_or(|m| m.token.is_cancelled()) {
            return None;
        }
        let name = meta.map_or_else(|| "a task".to_owned(), |m| m.name);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A task's end is orderly only once its own token was cancelled: stopping one portal
    /// never hides the death of another task.
    #[tokio::test]
    async fn a_task_may_end_only_after_its_own_token() {
        let mut tasks = Tasks::default();
        let (stopped, running) = (CancellationToken::new(), CancellationToken::new());
        stopped.cancel();
        tasks.spawn("stopped".into(), Some("a"), &stopped, async {});
        tasks.spawn("early".into(), Some("b"), &running, async {});
        tasks.spawn("panics".into(), None, &stopped, async {
            panic!("boom");
        });
        let mut deaths = Vec::new();
        while let Some(ended) = tasks.join_next().await {
            deaths.extend(tasks.death(ended));
        }
        deaths.sort();
        assert_eq!(
            deaths,
            [
                "early ended while the agent was running",
                "panics panicked: boom"
            ]
        );
        assert_eq!(tasks.remaining("a") + tasks.remaining("b"), 0);
    }

    /// Aborting a portal's tasks ends them as cancelled, not as deaths, and leaves the others.
    #[tokio::test]
    async fn aborting_a_portal_ends_its_tasks_alone() {
        let mut tasks = Tasks::default();
        let token = CancellationToken::new();
        let other = token.clone();
        tasks.spawn("stuck".into(), Some("a"), &token, std::future::pending());
        tasks.spawn("waits".into(), Some("b"), &token, async move {
            other.cancelled().await;
        });
        assert_eq!((tasks.remaining("a"), tasks.remaining("b")), (1, 1));
        tasks.abort_portal("a");
        let ended = tasks.join_next().await.expect("one ends");
        assert_eq!(tasks.death(ended), None);
        assert_eq!((tasks.remaining("a"), tasks.remaining("b")), (0, 1));
        token.cancel();
        let ended = tasks.join_next().await.expect("the other ends");
        assert_eq!(tasks.death(ended), None);
    }
}
