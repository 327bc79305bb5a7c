//! Applying a reloaded config to the running pipeline (SIGHUP).
//!
//! Invariant: stopping a portal on reload is as safe as SIGTERM is for it. Its token is
//! cancelled, so its pollers stop between units of work and drop their senders; its committers
//! then wait for the sinks' acknowledgements of what was queued (the sinks keep running) and
//! save them; only then is the portal started again, from the cursors just saved. Whatever is
//! not acknowledged within `shutdown_timeout` is aborted unsaved and read again at its next
//! start: duplicates, never loss.

use std::time::Instant;

use time::OffsetDateTime;
use tracing::{error, info, warn};

use super::{Running, Starts, portal};
use crate::config::{Changes, Config};

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
