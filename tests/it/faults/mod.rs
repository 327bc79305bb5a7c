//! Fault injection with figures (issue 6, ../shared/docs/reliability.md §5).
//!
//! Every test injects one fault (or one family of faults) into a real run of the agent binary
//! against the simulated portal, then an oracle compares the simulator's ids with what the
//! sinks received:
//!
//! - `lost`  = ids the portal holds that no sink received (and no dead-letter file holds);
//! - `dups`  = events received minus distinct events received;
//! - `extra` = ids received that the portal never held (must always be 0).
//!
//! Each test prints one line `FIGURE fault=<name> lost=N dups=N ...` (run with `--nocapture`);
//! RELIABILITY.md quotes them. Faults that other modules already cover are referenced there,
//! not repeated here. Duplicate budget: one in-flight batch ([`BATCH_EVENTS`]) per fault.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use docspace_siem::pipeline::BATCH_EVENTS;
use docspace_siem::simulator::{
    SimEvent, SimFault, SimMode, SimRequest, SimServer, SimStream, SimZone, Simulator,
};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::support::mocks::Hec;
use crate::support::scenario::{settle, watch_polls};
use crate::support::{
    Agent, HttpCollector, KEY, Workdir, bin, eventually, ids_of, portal, try_until,
};

/// 1–2: `kill -9` at random moments; crash points inside the cursor write.
mod crash;
/// 8: one failing sink never holds back the others (detach, catch-up from DocSpace, rejoin).
mod detach;
/// 3: disk full on `state_dir`, and the bound on unsaved progress.
mod disk;
/// 6: every DocSpace error shape, odd rows, inserts while paging, late rows and zones.
mod docspace;
/// 7: SIGTERM under load, secrets at trace level.
mod process;
/// 4–5: slow sinks, receivers that never read or reset, HTTP sink statuses.
mod sinks;

// ---------------------------------------------------------------------------------------------
// Harness: configs, agent processes, /proc readings, the oracle, figures
// ---------------------------------------------------------------------------------------------

fn ago(d: time::Duration) -> OffsetDateTime {
    OffsetDateTime::now_utc() - d
}

fn secs(s: i64) -> time::Duration {
    time::Duration::seconds(s)
}

/// A portal table with the test defaults (fast polling, 1 s settle, 2 min overlap re-read in
/// full every 5 s, 2 s error_retry, start 1 day back); `overrides` are raw TOML values that replace or add keys.
fn portal_cfg(name: &str, url: &str, overrides: &[(&str, &str)]) -> String {
    let mut kv: Vec<(String, String)> = [
        ("url", format!("\"{url}\"")),
        ("api_key", format!("\"{KEY}\"")),
        ("poll_interval", "\"1s\"".to_owned()),
        ("settle", "\"1s\"".to_owned()),
        ("overlap", "\"2m\"".to_owned()),
        ("overlap_every", "\"5s\"".to_owned()),
        ("error_retry", "\"2s\"".to_owned()),
        ("start_from", "\"1d\"".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in overrides {
        match kv.iter_mut().find(|(kk, _)| kk == k) {
            Some(e) => e.1 = (*v).to_owned(),
            None => kv.push(((*k).to_owned(), (*v).to_owned())),
        }
    }
    let mut out = format!("[portals.{name}]\n");
    for (k, v) in kv {
        out.push_str(&format!("{k} = {v}\n"));
    }
    out
}

fn hook_sink(name: &str, url: &str, format: &str, extra: &str) -> String {
    format!("[sinks.{name}]\ntype = \"webhook\"\nformat = \"{format}\"\nurl = \"{url}\"\n{extra}\n")
}

/// `config.toml` with the state directory, top-level keys, no /health listener (tests run in
/// parallel), then the portal and sink tables.
fn config(w: &Workdir, top: &str, tables: &str) -> PathBuf {
    w.config(&format!(
        "state_dir = \"{{state}}\"\n{top}\n[api]\nenabled = false\n{tables}"
    ))
}

/// Starts the agent with extra environment variables, optionally under a wrapper command
/// (`nsenter …`); output goes to `<tag>.stdout` / `<tag>.stderr` in `dir`.
fn spawn_agent(cfg: &Path, dir: &Path, tag: &str, env: &[(&str, &str)], wrap: &[&str]) -> Agent {
    let stdout = dir.join(format!("{tag}.stdout"));
    let stderr = dir.join(format!("{tag}.stderr"));
    let mut cmd = match wrap.split_first() {
        None => Command::new(bin()),
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin());
            c
        }
    };
    cmd.args(["run", "--config"])
        .arg(cfg)
        .env("DOCSPACE_SIEM_LOG", "info")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr).expect("stderr file"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("agent starts");
    Agent {
        child,
        stdout,
        stderr,
    }
}

/// A `/proc/<pid>/status` value in KiB (`VmRSS`, `VmHWM`), 0 when the process is gone.
fn status_kib(pid: i32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(key)?
                .strip_prefix(':')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn alive(a: &mut Agent) -> bool {
    a.child.try_wait().expect("try_wait").is_none()
}

/// SIGTERM, then exit 0 within 20 s (the documented promise).
fn stop(a: &mut Agent) -> Duration {
    let t = Instant::now();
    a.signal("TERM");
    assert_eq!(
        a.wait(Duration::from_secs(20)),
        Some(0),
        "{}",
        a.stderr_text()
    );
    t.elapsed()
}

fn no_panic(a: &Agent) {
    let err = a.stderr_text();
    assert!(
        !err.contains("panicked"),
        "the agent panicked:\n{}",
        tail(&err, 3000)
    );
}

fn tail(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

/// The oracle's verdict for one run.
#[derive(Debug, Clone, Copy)]
struct Tally {
    lost: usize,
    dups: usize,
    extra: usize,
}

fn tally<T: Ord + Clone>(want: &BTreeSet<T>, got: &[T]) -> Tally {
    let uniq: BTreeSet<T> = got.iter().cloned().collect();
    Tally {
        lost: want.difference(&uniq).count(),
        dups: got.len() - uniq.len(),
        extra: uniq.difference(want).count(),
    }
}

/// Prints the figure line RELIABILITY.md quotes.
fn figure(fault: &str, t: Tally, rest: &str) {
    eprintln!(
        "FIGURE fault={fault} lost={} dups={} extra={} {rest}",
        t.lost, t.dups, t.extra
    );
}

fn all_ids(sim: &Simulator) -> BTreeSet<i64> {
    let mut s: BTreeSet<i64> = sim.ids(SimStream::Login).into_iter().collect();
    s.extend(sim.ids(SimStream::Audit));
    s
}

fn login_ids(sim: &Simulator) -> BTreeSet<i64> {
    sim.ids(SimStream::Login).into_iter().collect()
}

fn audit_ids(sim: &Simulator) -> BTreeSet<i64> {
    sim.ids(SimStream::Audit).into_iter().collect()
}

fn posts(hook: &HttpCollector) -> usize {
    hook.bodies.lock().expect("lock").len()
}

fn received(hook: &HttpCollector) -> Vec<i64> {
    ids_of(&hook.events())
}

fn delivered_all(hook: &HttpCollector, want: &BTreeSet<i64>) -> bool {
    let got: BTreeSet<i64> = received(hook).into_iter().collect();
    want.is_subset(&got)
}

/// Timestamps the simulator's requests (it records them without a time) by sampling its log
/// every 20 ms.
struct RequestClock {
    log: Arc<Mutex<Vec<(Instant, SimRequest)>>>,
    stop: Arc<AtomicBool>,
}

impl RequestClock {
    fn start(sim: &Simulator) -> RequestClock {
        let log: Arc<Mutex<Vec<(Instant, SimRequest)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s, sim) = (log.clone(), stop.clone(), sim.clone());
        tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                let all = sim.requests();
                {
                    let mut g = l.lock().expect("lock");
                    let now = Instant::now();
                    let n = g.len();
                    for r in all.into_iter().skip(n) {
                        g.push((now, r));
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        RequestClock { log, stop }
    }

    /// Filter requests (login/filter, events/filter) as (time, path, status).
    fn filters(&self) -> Vec<(Instant, String, u16)> {
        self.log
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, r)| r.path.ends_with("/filter"))
            .map(|(t, r)| (*t, r.path.clone(), r.status))
            .collect()
    }
}

impl Drop for RequestClock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn median(v: &mut [usize]) -> usize {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// Temp files left in the cursors directory (crash and disk-full tests).
fn tmp_leftovers(cursors: &Path) -> usize {
    std::fs::read_dir(cursors)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().contains(".json.tmp-"))
                .count()
        })
        .unwrap_or(0)
}

fn watermark_of(bytes: &[u8]) -> OffsetDateTime {
    let v: Value = serde_json::from_slice(bytes).expect("the cursor file parses");
    assert_eq!(v["version"], 1, "{v}");
    docspace_siem::event::parse_date(v["watermark"].as_str().expect("watermark")).expect("date")
}
