//! One agent against one simulated portal, the set-up most end-to-end tests share: events
//! generated into the portal, the portal's TOML and the sink tables, start, wait, drain (TERM and
//! a clean exit) and the exactly-once check against the simulator's ids.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use docspace_siem::simulator::{SimServer, SimStream, SimZone, Simulator};
use time::OffsetDateTime;

use super::wait::{eventually_or, tail};
use super::{Agent, Workdir, portal};

/// The filter endpoints the agent polls, one per stream.
const FILTERS: [&str; 2] = [
    "/api/2.0/security/audit/login/filter",
    "/api/2.0/security/audit/events/filter",
];

/// A portal named `main` with its events, the config around it and, once started, the agent.
pub struct Scenario {
    // First, so that it is dropped (killed) first: before its portal and its directory go.
    agent: Option<Agent>,
    pub sim: Simulator,
    pub server: SimServer,
    pub work: Workdir,
    top: String,
    portal: String,
    sinks: String,
}

impl Scenario {
    /// A simulated portal in `zone`, no events yet, no sinks.
    pub async fn new(zone: SimZone) -> Scenario {
        let (sim, server) = portal(zone).await;
        Scenario {
            agent: None,
            sim,
            server,
            work: Workdir::new(),
            top: String::new(),
            portal: String::new(),
            sinks: String::new(),
        }
    }

    /// Generates `n` events of `stream` dated between `from` ago and `to` ago.
    pub fn events(
        self,
        stream: SimStream,
        n: usize,
        from: time::Duration,
        to: time::Duration,
    ) -> Self {
        self.more_events(stream, n, from, to);
        self
    }

    /// [`Scenario::events`] once the agent runs (rows that arrive while it polls).
    pub fn more_events(
        &self,
        stream: SimStream,
        n: usize,
        from: time::Duration,
        to: time::Duration,
    ) {
        let now = OffsetDateTime::now_utc();
        self.sim.generate(stream, n, now - from, now - to);
    }

    /// Top-level keys of the config besides `state_dir` (e.g. `threads = 2`).
    pub fn top(mut self, toml: &str) -> Self {
        self.top.push_str(toml);
        self.top.push('\n');
        self
    }

    /// Keys of the portal table besides those of [`Workdir::portal_toml`].
    pub fn portal(mut self, toml: &str) -> Self {
        self.portal.push_str(toml);
        self.portal.push('\n');
        self
    }

    /// A sink table (or any tables after the portal's).
    pub fn sink(mut self, toml: &str) -> Self {
        self.sinks.push_str(toml);
        self.sinks.push('\n');
        self
    }

    /// The config text: state directory, top-level keys, the portal, the sinks.
    pub fn config_text(&self) -> String {
        format!(
            "state_dir = \"{{state}}\"\n{}{}\n{}",
            self.top,
            Workdir::portal_toml("main", &self.server.url, self.portal.trim_end()),
            self.sinks
        )
    }

    /// Writes `config.toml` in the work directory.
    pub fn write_config(&self) -> PathBuf {
        self.work.config(&self.config_text())
    }

    /// Writes the config and starts the agent (output files `a.stdout`, `a.stderr`).
    pub fn start(&mut self) -> &mut Agent {
        self.start_as("a")
    }

    /// Writes the config and starts an agent with output files `TAG.stdout`, `TAG.stderr`, in
    /// place of the one before (a restart on the same state directory; the old one, if still
    /// running, is killed).
    pub fn start_as(&mut self, tag: &str) -> &mut Agent {
        // Dropping kills and reaps it, so that the state lock is free for the next one.
        self.agent = None;
        let cfg = self.write_config();
        self.agent.insert(Agent::start(&cfg, self.work.path(), tag))
    }

    /// The started agent.
    pub fn agent(&self) -> &Agent {
        self.agent.as_ref().expect("the scenario was started")
    }

    /// The started agent, to signal or wait for.
    pub fn agent_mut(&mut self) -> &mut Agent {
        self.agent.as_mut().expect("the scenario was started")
    }

    /// Checks `f` until it holds; fails with the end of the agent's log after `limit`.
    pub async fn until(&self, limit: Duration, what: &str, f: impl FnMut() -> bool) {
        until(self.agent(), limit, what, f).await;
    }

    /// Waits until every stream the agent has polled so far was polled twice more (a caught-up
    /// poll is one filter request): whatever a later poll would deliver again is then on its
    /// way, and [`Scenario::drain`] flushes it. A positive signal instead of a fixed sleep, so
    /// that a slow machine only waits longer.
    pub async fn settle(&self) {
        settle(&self.sim, self.agent()).await;
    }

    /// Runs `check` (which asserts) every [`super::wait::EVERY`] until every stream the agent
    /// has polled so far was polled `polls` more times: "nothing happens meanwhile" is watched
    /// over a count of the agent's own cycles, not over a span of wall-clock time.
    pub async fn watch_polls(&self, polls: usize, check: impl FnMut()) {
        watch_polls(&self.sim, self.agent(), polls, check).await;
    }

    /// SIGTERM, then a clean exit (code 0) within 20 s; the failure carries the agent's log.
    pub fn drain(&mut self) {
        let agent = self.agent_mut();
        agent.signal("TERM");
        let code = agent.wait(Duration::from_secs(20));
        assert_eq!(code, Some(0), "{}", agent.stderr_text());
    }

    /// The portal's ids of one stream.
    pub fn ids(&self, stream: SimStream) -> BTreeSet<i64> {
        self.sim.ids(stream).into_iter().collect()
    }

    /// The portal's ids of both streams.
    pub fn all_ids(&self) -> BTreeSet<i64> {
        all_ids(&self.sim)
    }

    /// `got` holds every id of the portal (both streams) exactly once.
    pub fn assert_all_once(&self, got: &[i64], what: &str) {
        assert_exactly_once(got, &self.all_ids(), what);
    }

    /// `got` holds every id of `stream` exactly once.
    pub fn assert_stream_once(&self, stream: SimStream, got: &[i64], what: &str) {
        assert_exactly_once(got, &self.ids(stream), what);
    }
}

/// [`Scenario::settle`] for a test that runs its agent itself.
pub async fn settle(sim: &Simulator, agent: &Agent) {
    watch_polls(sim, agent, 2, || {}).await;
}

/// [`Scenario::watch_polls`] for a test that runs its agent itself.
pub async fn watch_polls(sim: &Simulator, agent: &Agent, polls: usize, mut check: impl FnMut()) {
    let before = poll_counts(sim);
    assert!(!before.is_empty(), "watching polls before the agent polled");
    let what = format!("{polls} more polls of every stream");
    until(
        agent,
        Duration::from_secs(60 + 10 * polls as u64),
        &what,
        || {
            check();
            let now = poll_counts(sim);
            before
                .iter()
                .all(|(path, n)| now.get(path).copied().unwrap_or(0) >= n + polls)
        },
    )
    .await;
}

/// Filter requests the portal has answered so far, per stream endpoint.
fn poll_counts(sim: &Simulator) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in sim.requests() {
        if FILTERS.contains(&r.path.as_str()) {
            *m.entry(r.path).or_insert(0) += 1;
        }
    }
    m
}

/// Checks `f` until it holds; fails with the end of `agent`'s log after `limit`.
pub async fn until(agent: &Agent, limit: Duration, what: &str, f: impl FnMut() -> bool) {
    eventually_or(limit, what, f, || {
        format!("the agent's log ends:\n{}", tail(&agent.stderr_text(), 40))
    })
    .await;
}

/// `n` days, for event spans given as time ago.
pub fn days(n: i64) -> time::Duration {
    time::Duration::days(n)
}

/// `n` hours, for event spans given as time ago.
pub fn hours(n: i64) -> time::Duration {
    time::Duration::hours(n)
}

/// `n` minutes, for event spans given as time ago.
pub fn minutes(n: i64) -> time::Duration {
    time::Duration::minutes(n)
}

/// `n` seconds, for event spans given as time ago.
pub fn seconds(n: i64) -> time::Duration {
    time::Duration::seconds(n)
}

/// The ids of both streams of a simulated portal.
pub fn all_ids(sim: &Simulator) -> BTreeSet<i64> {
    let mut s: BTreeSet<i64> = sim.ids(SimStream::Login).into_iter().collect();
    s.extend(sim.ids(SimStream::Audit));
    s
}

/// Counts per id.
pub fn counts(ids: &[i64]) -> BTreeMap<i64, usize> {
    let mut m = BTreeMap::new();
    for id in ids {
        *m.entry(*id).or_insert(0) += 1;
    }
    m
}

/// `ids` holds each of `want` exactly once and nothing else; the failure names duplicates,
/// missing and unexpected ids.
pub fn assert_exactly_once(ids: &[i64], want: &BTreeSet<i64>, what: &str) {
    let c = counts(ids);
    let dups: Vec<_> = c.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "{what}: duplicates {dups:?}");
    let got: BTreeSet<i64> = c.keys().copied().collect();
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: missing {missing:?}, unexpected {extra:?}"
    );
    assert_eq!(ids.len(), want.len(), "{what}: no duplicates");
}
