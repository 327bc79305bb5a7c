//! SIGHUP: the config loaded again ([`run_with_reloads`]) and applied to the running pipeline.
//!
//! Invariant: stopping a portal on reload is as safe as SIGTERM is for it. Its token is
//! cancelled, so its pollers stop between units of work and drop their senders; its committers
//! then wait for the sinks' acknowledgements of what was queued (the sinks keep running) and
//! save them; only then is the portal started again, from the cursors just saved. Whatever is
//! not acknowledged within `shutdown_timeout` is aborted unsaved and read again at its next
//! start: duplicates, never loss.

use std::path::PathBuf;
use std::time::Instant;

use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{AgentError, RunOptions, Running, Starts, portal, run_reloadable};
use crate::config::{self, Changes, Config};

/// The agent until `stop`, the config at `path` loaded again at each SIGHUP: a valid one goes
/// to the running pipeline, which starts added portals, stops removed ones and restarts changed
/// ones while the rest goes on, or, when sinks, rules or `[api]` changed, drains, saves its
/// cursors and returns, and a new pipeline starts from them. An invalid one is logged, every
/// problem named, and changes nothing.
pub async fn run_with_reloads(
    path: PathBuf,
    first: Config,
    stop: CancellationToken,
) -> Result<(), AgentError> {
    let (reload_tx, mut reloads) = mpsc::channel::<Config>(1);
    let hup = tokio::spawn(watch_hangups(path, first.clone(), reload_tx));
    let mut cfg = first;
    let result = loop {
        let (tx, rx) = mpsc::channel(1);
        // Reloads go to the running pipeline through its own channel: one that arrives while a
        // pipeline restarts waits for the next.
        let forward = async {
            while let Some(c) = reloads.recv().await {
                if tx.send(c).await.is_err() {
                    break;
                }
            }
            // No more reloads (no SIGHUP handler): the pipeline runs on.
            std::future::pending::<std::convert::Infallible>().await
        };
        let ended = tokio::select! {
            r = run_reloadable(cfg, stop.clone(), RunOptions::default(), rx) => r,
            never = forward => match never {},
        };
        match ended {
            Ok(ended) => match ended.restart {
                Some(c) if !stop.is_cancelled() => {
                    info!("configuration reloaded; restarting the pipeline from the saved cursors");
                    cfg = *c;
                }
                _ => break Ok(()),
            },
            Err(e) => break Err(e),
        }
    };
    hup.abort();
    result
}

/// Loads the config again at each SIGHUP and sends it on when valid. What a running process
/// cannot change (`state_dir`, `log`, `threads`) is warned about and kept: `state_dir` is
/// pinned to the running one, so every path derived from it stays.
async fn watch_hangups(path: PathBuf, first: Config, reloads: mpsc::Sender<Config>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            info!(config = %path.display(), "SIGHUP: reloading the configuration");
            crate::notify::notify("RELOADING=1");
            match load_again(&path, &first) {
                Ok(c) => {
                    for w in &c.warnings {
                        warn!("{w}");
                    }
                    if reloads.send(c).await.is_err() {
                        return;
                    }
                }
                Err(errs) => {
                    for p in &errs.0 {
                        error!("{p}");
                    }
                    error!(
                        problems = errs.0.len(),
                        "the new configuration is invalid; still running with the previous one"
                    );
                }
            }
            crate::notify::notify("READY=1");
        }
    }
    #[cfg(not(unix))]
    let _ = (path, first, reloads);
}

/// The config at `path` again, with what only a restart changes warned about and
/// `state_dir` kept as in `first`.
fn load_again(path: &std::path::Path, first: &Config) -> Result<Config, config::ConfigErrors> {
    let mut sources = config::Sources::from_process(path.to_path_buf());
    let loaded = config::load(&sources)?;
    let later = Changes::between(first, &loaded).at_restart;
    for key in &later {
        warn!(
            key,
            "{key} changed: it takes effect when the agent restarts, not on reload"
        );
    }
    if !later.contains(&"state_dir") {
        return Ok(loaded);
    }
    sources.env.push((
        format!("{}STATE_DIR", config::ENV_PREFIX),
        first.state_dir.display().to_string(),
    ));
    config::load(&sources)
}

impl Running {
    /// Applies `new`: in place when only portals changed; `Some(new)` when the whole pipeline
    /// must drain and start again (sinks, rules, `[api]` or the timings changed).
    pub(super) async fn reload(&mut self, mut new: Config) -> Option<Config> {
        let changes = Changes::between(&self.cfg, &new);
        if changes.pipeline {
            info!(
                added = ?changes.added,
                removed = ?changes.removed,
                restarted = ?changes.changed,
                "configuration reloaded: sinks, rules, [api] or timings changed, so the whole pipeline drains and starts again from its saved cursors"
            );
            return Some(new);
        }
        if !changes.portals() {
            info!("configuration reloaded: no portal changed");
            self.cfg = new;
            return None;
        }
        let stopping: Vec<String> = changes
            .removed
            .iter()
            .chain(&changes.changed)
            .cloned()
            .collect();
        self.stop_portals(&stopping).await;
        if self.died.is_some() {
            return None;
        }
        let sinks: Vec<String> = self.shared.sinks.iter().map(|s| s.name.clone()).collect();
        let mut started = Vec::new();
        let mut failed = Vec::new();
        let now = OffsetDateTime::now_utc();
        for name in changes.added.iter().chain(&changes.changed) {
            let Some(p) = new.portals.iter().find(|p| &p.name == name) else {
                continue;
            };
            let unit = Starts::load(&self.shared.state, p, &sinks, now)
                .map_err(super::AgentError::from)
                .and_then(|s| portal::start(&self.shared, p, s, &mut self.tasks, &self.stop));
            match unit {
                Ok(u) => {
                    self.units.insert(name.clone(), u);
                    started.push(name.clone());
                }
                Err(e) => {
                    error!(portal = %name, "{e}: the portal is not started; fix it and send SIGHUP again");
                    failed.push(name.clone());
                }
            }
        }
        // A portal that did not start is not running: the next reload tries it again.
        for name in &failed {
            new.forget_portal(name);
        }
        self.cfg = new;
        self.publish();
        info!(
            added = ?changes.added.iter().filter(|n| started.contains(n)).collect::<Vec<_>>(),
            removed = ?changes.removed,
            restarted = ?changes.changed.iter().filter(|n| started.contains(n)).collect::<Vec<_>>(),
            not_started = ?failed,
            portals = self.units.len(),
            "configuration reloaded: portals changed; the others and the sinks went on"
        );
        None
    }

    /// Stops `names` together, as SIGTERM would (see the module doc), within
    /// `shutdown_timeout`.
    async fn stop_portals(&mut self, names: &[String]) {
        for n in names {
            if let Some(u) = self.units.get(n) {
                u.token.cancel();
            }
        }
        let deadline = Instant::now() + self.cfg.shutdown_timeout;
        let left = |tasks: &super::Tasks| names.iter().any(|n| tasks.remaining(n) > 0);
        while left(&self.tasks) {
            let wait = tokio::time::timeout_at(deadline.into(), self.tasks.join_next()).await;
            match wait {
                Ok(Some(ended)) => {
                    if let Some(why) = self.tasks.death(ended) {
                        self.task_died(why);
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    warn!(portals = ?names, "shutdown_timeout reached while stopping portals: what their sinks did not acknowledge is read again when they start");
                    for n in names {
                        self.tasks.abort_portal(n);
                    }
                    while left(&self.tasks) {
                        match self.tasks.join_next().await {
                            Some(ended) => {
                                if let Some(why) = self.tasks.death(ended) {
                                    self.task_died(why);
                                }
                            }
                            None => break,
                        }
                    }
                }
            }
        }
        for n in names {
            self.units.remove(n);
            portal::forget(&self.shared.sinks, n);
        }
        info!(portals = ?names, "portals stopped; their cursors are saved");
    }
}
