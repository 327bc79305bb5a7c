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
use crate::support::{Agent, HttpCollector, KEY, Workdir, bin, eventually, ids_of, portal};

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

/// Polls `f` until it returns true (true) or `limit` passes (false), for tests that report
/// their figure before they assert.
async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

fn median(v: &mut [usize]) -> usize {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// 1. kill -9 at random moments
// ---------------------------------------------------------------------------------------------

/// reliability.md §5 row 1. 24 `kill -9` at seeded random moments of a catch-up (0–900 ms after
/// the run's first POST), each followed by a restart, then a clean run. `restart_to_first_post`
/// is measured on the restarts (not the first start). The webhook collector
/// is slowed (20 ms per POST of 10 events) so that the kills land mid-batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_nothing() {
    const KILLS: usize = 24;
    let hook = HttpCollector::start().await;
    *hook.delay.lock().expect("lock") = Duration::from_millis(20);
    let (sim, server) = portal(SimZone::Utc).await;
    sim.generate(
        SimStream::Audit,
        10_000,
        ago(time::Duration::hours(48)),
        ago(time::Duration::minutes(3)),
    );
    let want = audit_ids(&sim);
    let w = Workdir::new();
    // One-hour windows of ~200 events, so that each window is one commit and a run of a few
    // hundred milliseconds makes progress. The audit stream pages without probes, so a restart
    // reaches its first POST quickly.
    let cfg = config(
        &w,
        "shutdown_timeout = \"5s\"",
        &(portal_cfg(
            "main",
            &server.url,
            &[
                ("streams", "[\"audit\"]"),
                ("start_from", "\"49h\""),
                ("catchup_window", "\"1h\""),
                ("max_window_events", "400"),
            ],
        ) + &hook_sink(
            "hook",
            &hook.url,
            "json",
            "batch = { max_events = 10, timeout = \"10ms\" }",
        )),
    );
    let mut rng = fastrand::Rng::with_seed(0x0006_5eed);
    let mut per_run_dups: Vec<usize> = Vec::new();
    let mut resume_ms: Vec<usize> = Vec::new();
    let mut kills = 0;
    let run_dups = |before: &[i64], after: &[i64]| -> usize {
        let seen: BTreeSet<i64> = before.iter().copied().collect();
        after[before.len()..]
            .iter()
            .filter(|i| seen.contains(i))
            .count()
    };
    while kills < KILLS {
        let before = received(&hook);
        let posts_before = posts(&hook);
        let started = Instant::now();
        let mut a = Agent::start(&cfg, w.path(), &format!("run{kills}"));
        eventually(Duration::from_secs(30), "a POST after the restart", || {
            posts(&hook) > posts_before
        })
        .await;
        if kills > 0 {
            resume_ms.push(started.elapsed().as_millis() as usize);
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(0..900))).await;
        a.signal("KILL");
        assert_eq!(a.wait(Duration::from_secs(10)), None, "killed by SIGKILL");
        kills += 1;
        if kills > 1 {
            per_run_dups.push(run_dups(&before, &received(&hook)));
        } else {
            assert_eq!(run_dups(&before, &received(&hook)), 0);
        }
        assert!(
            !delivered_all(&hook, &want),
            "the corpus ran out after {kills} kills: the kills must land mid-stream"
        );
    }
    // The clean run.
    *hook.delay.lock().expect("lock") = Duration::ZERO;
    let before = received(&hook);
    let started = Instant::now();
    let mut last = Agent::start(&cfg, w.path(), "final");
    eventually(
        Duration::from_secs(120),
        "every event after the kills",
        || delivered_all(&hook, &want),
    )
    .await;
    let drain = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop(&mut last);
    per_run_dups.push(run_dups(&before, &received(&hook)));
    no_panic(&last);

    let t = tally(&want, &received(&hook));
    let max = per_run_dups.iter().copied().max().unwrap_or(0);
    let p50 = median(&mut per_run_dups.clone());
    let resume_max = resume_ms.iter().copied().max().unwrap_or(0);
    let resume_p50 = median(&mut resume_ms.clone());
    figure(
        "kill-9",
        t,
        &format!(
            "kills={kills} dups_per_kill_max={max} dups_per_kill_p50={p50} restart_to_first_post_ms_p50={resume_p50} restart_to_first_post_ms_max={resume_max} final_drain_s={:.1}",
            drain.as_secs_f64()
        ),
    );
    assert_eq!(t.lost, 0, "lost events after {kills} kills");
    assert_eq!(t.extra, 0);
    assert_eq!(per_run_dups.len(), kills);
    assert!(
        max <= BATCH_EVENTS,
        "a kill replayed {max} events, more than one batch ({BATCH_EVENTS}): {per_run_dups:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Crash points inside the cursor write
// ---------------------------------------------------------------------------------------------

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

/// reliability.md §5 row 2. With `DOCSPACE_SIEM_FAILPOINT` (debug builds) the agent aborts
/// inside its first cursor save: after the write (before fsync), before the rename, after the
/// rename (before the directory fsync). The next start must find the old or the new cursor,
/// never a torn one, and deliver everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_inside_the_cursor_write_leaves_the_old_or_the_new_cursor() {
    for fp in [
        "cursor-after-write",
        "cursor-before-rename",
        "cursor-after-rename",
    ] {
        let hook = HttpCollector::start().await;
        let (sim, server) = portal(SimZone::Utc).await;
        sim.generate(
            SimStream::Login,
            150,
            ago(time::Duration::hours(20)),
            ago(time::Duration::hours(19)),
        );
        let w = Workdir::new();
        let cfg = config(
            &w,
            "shutdown_timeout = \"5s\"",
            &(portal_cfg("main", &server.url, &[("streams", "[\"login\"]")])
                + &hook_sink("hook", &hook.url, "json", "")),
        );
        let cursor = w.state().join("cursors/main.login.json");
        // A: a clean run leaves a cursor.
        let mut a = Agent::start(&cfg, w.path(), "a");
        eventually(Duration::from_secs(60), "run A caught up", || {
            a.stderr_text().contains("caught up") && hook.events().len() >= 150
        })
        .await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop(&mut a);
        let old = std::fs::read(&cursor).expect("run A saved a cursor");
        let old_wm = watermark_of(&old);
        // New events after A's watermark, already older than `now - settle` when B starts.
        tokio::time::sleep(Duration::from_secs(3)).await;
        sim.generate(SimStream::Login, 150, ago(secs(3)), ago(secs(2)));
        let want = login_ids(&sim);

        // B: aborts at the failpoint during its first save.
        let mut b = spawn_agent(&cfg, w.path(), "b", &[("DOCSPACE_SIEM_FAILPOINT", fp)], &[]);
        let code = b.wait(Duration::from_secs(60));
        assert_eq!(
            code,
            None,
            "{fp}: the agent should abort at the failpoint, it exited with {code:?}:\n{}",
            tail(&b.stderr_text(), 2000)
        );
        assert!(
            b.stderr_text()
                .contains(&format!("failpoint {fp}: aborting")),
            "{}",
            b.stderr_text()
        );
        let after = std::fs::read(&cursor).expect("a cursor file is still there");
        let wm = watermark_of(&after);
        let state = if after == old { "old" } else { "new" };
        let leftovers = tmp_leftovers(&w.state().join("cursors"));
        match fp {
            "cursor-after-rename" => {
                assert_eq!(state, "new", "{fp}: the rename happened");
                assert!(wm > old_wm);
                assert_eq!(leftovers, 0);
            }
            _ => {
                assert_eq!(state, "old", "{fp}: the old cursor must be intact");
                assert_eq!(leftovers, 1, "{fp}: the interrupted temp file");
            }
        }

        // C: starts normally from that cursor, removes the temp file, delivers everything.
        let before = received(&hook);
        let mut c = Agent::start(&cfg, w.path(), "c");
        eventually(Duration::from_secs(60), "run C delivers everything", || {
            delivered_all(&hook, &want)
        })
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop(&mut c);
        assert_eq!(tmp_leftovers(&w.state().join("cursors")), 0);
        let t = tally(&want, &received(&hook));
        let replayed = received(&hook).len() - before.len();
        figure(
            &format!("crash-at-{fp}"),
            t,
            &format!(
                "cursor_after_crash={state} tmp_left={leftovers} replayed_after_restart={replayed}"
            ),
        );
        assert_eq!(t.lost, 0, "{fp}");
        assert_eq!(t.extra, 0, "{fp}");
        assert!(t.dups <= BATCH_EVENTS, "{fp}: {} duplicates", t.dups);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Disk full on state_dir
// ---------------------------------------------------------------------------------------------

/// A private mount namespace, kept alive by a `sleep`, with a small tmpfs on `dir`. The agent
/// runs inside it (`nsenter`); the test reaches the tmpfs through `/proc/<pid>/root`.
struct TmpfsNamespace {
    holder: std::process::Child,
    dir: PathBuf,
}

impl TmpfsNamespace {
    fn new(dir: &Path, size: &str) -> TmpfsNamespace {
        std::fs::create_dir_all(dir).expect("mkdir");
        let mut holder = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs -o size={size},mode=0700 tmpfs '{}' && exec sleep 3600",
                dir.display()
            ))
            .stderr(Stdio::piped())
            .spawn()
            .expect("unshare runs");
        let start = Instant::now();
        loop {
            if let Some(status) = holder.try_wait().expect("try_wait") {
                let mut err = String::new();
                if let Some(mut e) = holder.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!(
                    "`unshare -m` + `mount -t tmpfs` is not permitted here ({status}): {err}. This test needs root (CAP_SYS_ADMIN), as CI has."
                );
            }
            let mounts = std::fs::read_to_string(format!("/proc/{}/mountinfo", holder.id()))
                .unwrap_or_default();
            if mounts
                .lines()
                .any(|l| l.contains(&format!(" {} ", dir.display())) && l.contains("tmpfs"))
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "tmpfs not mounted"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        TmpfsNamespace {
            holder,
            dir: dir.to_path_buf(),
        }
    }

    fn pid(&self) -> u32 {
        self.holder.id()
    }

    /// A path inside the tmpfs, as the test process can reach it.
    fn inside(&self, rel: &str) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/root{}/{rel}",
            self.pid(),
            self.dir.display()
        ))
    }

    fn wrapper(&self) -> Vec<String> {
        vec![
            "nsenter".to_owned(),
            "-t".to_owned(),
            self.pid().to_string(),
            "-m".to_owned(),
        ]
    }

    /// Writes a filler file until the tmpfs is full; returns the bytes written.
    fn fill(&self) -> usize {
        let mut f = std::fs::File::create(self.inside("filler")).expect("filler");
        let chunk = [0u8; 4096];
        let mut n = 0;
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(28), "ENOSPC expected: {e}");
                    break;
                }
            }
        }
        n
    }

    fn free(&self) {
        std::fs::remove_file(self.inside("filler")).expect("remove filler");
    }
}

impl Drop for TmpfsNamespace {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// What the disk-full tests share: `events` login rows 4–5 h old, a webhook collector, and an
/// agent config (with /health) whose state_dir is a 256 KiB tmpfs in a private mount namespace.
struct FullDiskRig {
    hook: HttpCollector,
    sim: Simulator,
    _server: SimServer,
    // Before `w`: the namespace goes before the directory it is mounted on.
    ns: TmpfsNamespace,
    w: Workdir,
    api: u16,
    cfg: PathBuf,
}

impl FullDiskRig {
    async fn new(events: usize) -> FullDiskRig {
        let hook = HttpCollector::start().await;
        let (sim, server) = portal(SimZone::Utc).await;
        sim.generate(
            SimStream::Login,
            events,
            ago(time::Duration::hours(5)),
            ago(time::Duration::hours(4)),
        );
        let w = Workdir::new();
        let ns = TmpfsNamespace::new(&w.state(), "256k");
        let api = crate::support::free_port();
        let cfg = w.config(&format!(
            "state_dir = \"{{state}}\"\nshutdown_timeout = \"5s\"\n[api]\naddress = \"127.0.0.1:{api}\"\n{}{}",
            portal_cfg("main", &server.url, &[("streams", "[\"login\"]")]),
            hook_sink("hook", &hook.url, "json", "")
        ));
        FullDiskRig {
            hook,
            sim,
            _server: server,
            ns,
            w,
            api,
            cfg,
        }
    }

    /// The agent, run inside the namespace.
    fn spawn(&self, tag: &str) -> Agent {
        let wrap = self.ns.wrapper();
        let wrap: Vec<&str> = wrap.iter().map(String::as_str).collect();
        spawn_agent(&self.cfg, self.w.path(), tag, &[], &wrap)
    }
}

/// reliability.md §5 row 5. state_dir is a 256 KiB tmpfs in a private mount namespace. Fill it:
/// cursor saves fail with ENOSPC, the agent says so and keeps delivering (a failed save means
/// a replay after a crash, never a loss); a kill -9 while full replays what was delivered since
/// the disk filled; freeing the space lets the next save succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_on_state_dir_means_replays_not_losses() {
    let rig = FullDiskRig::new(300).await;
    let (hook, sim, ns, api) = (&rig.hook, &rig.sim, &rig.ns, rig.api);
    let cursor = ns.inside("cursors/main.login.json");
    let mut a = rig.spawn("a");
    eventually(
        Duration::from_secs(60),
        "the first 300 and a cursor",
        || hook.events().len() >= 300 && cursor.is_file() && a.stderr_text().contains("caught up"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Fill the disk, and new events come: the cursor save after their delivery fails (a poll
    // that finds nothing does not save at once; QUIET_SAVE_GAP).
    let filled = ns.fill();
    let full_at = Instant::now();
    let before_full = std::fs::read(&cursor).expect("cursor");
    let t = OffsetDateTime::now_utc();
    sim.generate(SimStream::Login, 20, t + secs(1), t + secs(2));
    eventually(Duration::from_secs(20), "the named error", || {
        a.stderr_text().contains("cannot save cursor")
    })
    .await;
    let detect = full_at.elapsed();
    // /health, sampled 20 times over 5 s while the disk stays full.
    let mut health_hits = 0;
    let mut health_sample = String::new();
    for _ in 0..20 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{api}/health")).await {
            let status = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            if status == 503 && body.contains("cannot save cursor") {
                health_hits += 1;
                health_sample = body;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // 600 new events while the disk is full.
    let t = OffsetDateTime::now_utc();
    sim.generate(SimStream::Login, 600, t + secs(1), t + secs(4));
    let want_full = login_ids(sim);
    eventually(
        Duration::from_secs(60),
        "delivery goes on with a full disk",
        || delivered_all(hook, &want_full),
    )
    .await;
    let err = a.stderr_text();
    if let Some(line) = err.lines().find(|l| l.contains("cannot save cursor")) {
        eprintln!("EVIDENCE disk-full log: {line}");
    }
    if !health_sample.is_empty() {
        eprintln!("EVIDENCE disk-full /health: {health_sample}");
    }
    assert!(
        err.contains("No space left on device"),
        "the error names ENOSPC:\n{}",
        tail(&err, 2000)
    );
    assert!(alive(&mut a), "the agent runs on with a full disk");
    assert_eq!(
        std::fs::read(&cursor).expect("cursor"),
        before_full,
        "the saved cursor is untouched (no torn file)"
    );
    assert_eq!(
        tmp_leftovers(&ns.inside("cursors")),
        0,
        "failed temp files removed"
    );

    // kill -9 while the disk is still full: the restart replays from the last saved cursor.
    a.signal("KILL");
    a.wait(Duration::from_secs(10));
    let before_crash = received(hook);
    let mut b = rig.spawn("b");
    let replay_target = before_crash.len() + 600;
    eventually(
        Duration::from_secs(60),
        "the replay after the crash",
        || received(hook).len() >= replay_target,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let replayed = received(hook).len() - before_crash.len();

    // Space returns: the next save succeeds.
    ns.free();
    let freed_at = Instant::now();
    let t = OffsetDateTime::now_utc();
    sim.generate(SimStream::Login, 100, t + secs(1), t + secs(3));
    let want = login_ids(sim);
    let newest = t + secs(3) - secs(1);
    eventually(
        Duration::from_secs(60),
        "a saved cursor past the new events",
        || {
            std::fs::read(&cursor)
                .ok()
                .is_some_and(|b| watermark_of(&b) >= newest)
        },
    )
    .await;
    let recovery = freed_at.elapsed();
    eventually(Duration::from_secs(30), "everything delivered", || {
        delivered_all(hook, &want)
    })
    .await;
    stop(&mut b);
    no_panic(&a);
    no_panic(&b);
    let t = tally(&want, &received(hook));
    figure(
        "disk-full-state-dir",
        t,
        &format!(
            "tmpfs_kib=256 filler_bytes={filled} detect_s={:.1} health_503_while_full={health_hits}/20 replayed_after_kill_while_full={replayed} delivered_since_full={} recovery_s={:.1}",
            detect.as_secs_f64(),
            want_full.len() - 300,
            recovery.as_secs_f64()
        ),
    );
    assert_eq!(t.lost, 0);
    assert_eq!(t.extra, 0);
    assert_eq!(
        health_hits, 20,
        "/health must report the failing cursor saves for as long as the disk is full"
    );
}

/// reliability.md §4: while cursor saves fail, what a crash would replay must stay bounded.
/// Past `UNSAVED_EVENTS_MAX` (10,000) delivered-but-unsaved events the poller holds, says so in
/// the log and /health, and resumes once a save succeeds, losing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_pauses_polling_past_ten_thousand_unsaved_events() {
    let rig = FullDiskRig::new(100).await;
    let (hook, sim, ns, api) = (&rig.hook, &rig.sim, &rig.ns, rig.api);
    let mut a = rig.spawn("a");
    eventually(Duration::from_secs(60), "the first 100", || {
        hook.events().len() >= 100 && a.stderr_text().contains("caught up")
    })
    .await;
    ns.fill();
    // 12,000 events while the disk is full: delivered, but past 10,000 unsaved the poller holds.
    let t = OffsetDateTime::now_utc();
    sim.generate(SimStream::Login, 12_000, t + secs(1), t + secs(3));
    eventually(Duration::from_secs(90), "the hold", || {
        a.stderr_text().contains("polling paused")
    })
    .await;
    // The window being read when the hold began is still emitted; then nothing more.
    let mut delivered_before_hold = received(hook).len();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let n = received(hook).len();
        if n == delivered_before_hold {
            break;
        }
        delivered_before_hold = n;
    }
    // 500 more: not read while the hold lasts.
    let old = login_ids(sim);
    let t2 = OffsetDateTime::now_utc();
    sim.generate(SimStream::Login, 500, t2 + secs(1), t2 + secs(2));
    tokio::time::sleep(Duration::from_secs(8)).await;
    let during_hold = received(hook).iter().filter(|id| !old.contains(id)).count();
    let health = reqwest::get(format!("http://127.0.0.1:{api}/health"))
        .await
        .expect("health")
        .text()
        .await
        .unwrap_or_default();
    assert!(alive(&mut a), "the agent runs on while holding");
    ns.free();
    let freed = Instant::now();
    let want = login_ids(sim);
    eventually(
        Duration::from_secs(60),
        "everything after the space returns",
        || delivered_all(hook, &want),
    )
    .await;
    let resume = freed.elapsed();
    stop(&mut a);
    no_panic(&a);
    let t = tally(&want, &received(hook));
    figure(
        "disk-full-hold",
        t,
        &format!(
            "delivered_before_hold={delivered_before_hold} delivered_during_hold={during_hold} resume_after_free_s={:.1}",
            resume.as_secs_f64()
        ),
    );
    assert_eq!(t.lost, 0);
    assert_eq!(
        during_hold, 0,
        "nothing is read while saves fail past the bound"
    );
    assert!(
        health.contains("polling paused") || health.contains("cannot save cursor"),
        "/health names the cause: {health}"
    );
    assert!(a.stderr_text().contains("cursor saved again"));
}

// ---------------------------------------------------------------------------------------------
// 4. Slow sink
// ---------------------------------------------------------------------------------------------

/// reliability.md §5 row 7. A webhook that takes 200 ms per POST of 50 events while a 20,000
/// event backlog waits: memory stays flat (bounded queues stop the poller), nothing is lost
/// once the sink is fast again. The poller holds one window of at most `max_window_events`
/// (here 2,000, so that several windows pass during the slow phase) plus the sink queue
/// (`SINK_QUEUE` × 500 events): that, not the backlog, bounds memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_sink_keeps_memory_flat_and_loses_nothing() {
    let hook = HttpCollector::start().await;
    *hook.delay.lock().expect("lock") = Duration::from_millis(200);
    let (sim, server) = portal(SimZone::Utc).await;
    sim.generate(
        SimStream::Audit,
        20_000,
        ago(time::Duration::hours(30)),
        ago(time::Duration::minutes(3)),
    );
    let want = audit_ids(&sim);
    let w = Workdir::new();
    let cfg = config(
        &w,
        "shutdown_timeout = \"5s\"",
        &(portal_cfg(
            "main",
            &server.url,
            &[
                ("streams", "[\"audit\"]"),
                ("start_from", "\"2d\""),
                ("max_window_events", "2000"),
            ],
        ) + &hook_sink(
            "hook",
            &hook.url,
            "json",
            "batch = { max_events = 50, timeout = \"10ms\" }",
        )),
    );
    let mut a = Agent::start(&cfg, w.path(), "a");
    let pid = a.pid();
    let t0 = Instant::now();
    let mut early_max = 0;
    let mut late_max = 0;
    let mut fds = (usize::MAX, 0);
    while t0.elapsed() < Duration::from_secs(16) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let rss = status_kib(pid, "VmRSS");
        let n = open_fds(pid);
        fds = (fds.0.min(n), fds.1.max(n));
        if t0.elapsed() < Duration::from_secs(2) {
            continue;
        } else if t0.elapsed() < Duration::from_secs(8) {
            early_max = early_max.max(rss);
        } else {
            late_max = late_max.max(rss);
        }
    }
    let slow_delivered = hook.events().len();
    *hook.delay.lock().expect("lock") = Duration::ZERO;
    let fast_at = Instant::now();
    eventually(
        Duration::from_secs(120),
        "the backlog after the slow phase",
        || delivered_all(&hook, &want),
    )
    .await;
    let drain = fast_at.elapsed();
    let hwm = status_kib(pid, "VmHWM");
    stop(&mut a);
    let t = tally(&want, &received(&hook));
    figure(
        "slow-sink",
        t,
        &format!(
            "backlog=20000 sink=200ms/50ev throughput_while_slow_ev_s={:.0} max_window_events=2000 rss_max_2_8s_kib={early_max} rss_max_8_16s_kib={late_max} peak_rss_kib={hwm} open_fds_min={} open_fds_max={} drain_after_s={:.1}",
            slow_delivered as f64 / 16.0,
            fds.0,
            fds.1,
            drain.as_secs_f64()
        ),
    );
    assert_eq!(t.lost, 0);
    assert_eq!(t.dups, 0, "a slow sink causes no duplicates");
    // Buffering the backlog would cost tens of MiB (20,000 events of a few KiB each); the
    // 16 MiB tolerance is allocator noise between windows, not growth with the stall.
    assert!(
        late_max <= early_max + 16 * 1024,
        "memory grew while the sink was slow: {early_max} KiB then {late_max} KiB"
    );
    assert!(hwm < 256 * 1024, "peak RSS {hwm} KiB");
}

// ---------------------------------------------------------------------------------------------
// Raw TCP receivers: accept-and-never-read, reset mid-stream
// ---------------------------------------------------------------------------------------------

/// Takes one octet-counted frame off the front of `buf`.
fn take_frame(buf: &mut Vec<u8>) -> Option<String> {
    let sp = buf.iter().position(|b| *b == b' ')?;
    let len: usize = std::str::from_utf8(&buf[..sp]).ok()?.parse().ok()?;
    if buf.len() < sp + 1 + len {
        return None;
    }
    let msg = String::from_utf8_lossy(&buf[sp + 1..sp + 1 + len]).into_owned();
    buf.drain(..sp + 1 + len);
    Some(msg)
}

/// The DocSpace id in a syslog message's structured data (`[docspace@32473 portal=… id="N"`).
fn syslog_id(msg: &str) -> Option<i64> {
    let i = msg.find(" id=\"")? + 5;
    let end = msg[i..].find('"')? + i;
    msg[i..end].parse().ok()
}

/// Reads octet-counted frames from `sock` until EOF or an error; `limit` stops reading after
/// that many bytes (and returns).
fn read_frames(sock: &mut std::net::TcpStream, frames: &Mutex<Vec<String>>, limit: Option<usize>) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 65536];
    let mut total = 0usize;
    loop {
        let want = match limit {
            Some(l) if total >= l => return,
            Some(l) => chunk.len().min(l - total),
            None => chunk.len(),
        };
        match sock.read(&mut chunk[..want]) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                total += n;
                buf.extend_from_slice(&chunk[..n]);
                while let Some(m) = take_frame(&mut buf) {
                    frames.lock().expect("lock").push(m);
                }
            }
        }
    }
}

/// A syslog TCP receiver on a plain std listener: every accepted connection is held without
/// being read until `reading` is set (an accept-and-never-read sink), then read to EOF.
struct HoldingReceiver {
    addr: SocketAddr,
    frames: Arc<Mutex<Vec<String>>>,
    reading: Arc<AtomicBool>,
    accepts: Arc<Mutex<Vec<Instant>>>,
}

impl HoldingReceiver {
    fn start() -> HoldingReceiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let r = HoldingReceiver {
            addr: listener.local_addr().expect("addr"),
            frames: Arc::default(),
            reading: Arc::new(AtomicBool::new(false)),
            accepts: Arc::default(),
        };
        let (frames, reading, accepts) = (r.frames.clone(), r.reading.clone(), r.accepts.clone());
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(mut sock) = sock else { return };
                accepts.lock().expect("lock").push(Instant::now());
                let (frames, reading) = (frames.clone(), reading.clone());
                std::thread::spawn(move || {
                    while !reading.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    read_frames(&mut sock, &frames, None);
                });
            }
        });
        r
    }

    fn ids(&self) -> Vec<i64> {
        self.frames
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|m| syslog_id(m))
            .collect()
    }
}

/// Send and receive queues (bytes) of the loopback TCP connections on `port`, from
/// /proc/net/tcp: (the receiver's unread bytes, the sender's unacknowledged bytes).
fn tcp_queues(port: u16) -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let mut rx = 0;
    let mut tx = 0;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 || f[3] != "01" {
            continue; // only ESTABLISHED
        }
        let port_of = |a: &str| {
            a.rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
        };
        let Some((txq, rxq)) = f[4].split_once(':').map(|(t, r)| {
            (
                u64::from_str_radix(t, 16).unwrap_or(0),
                u64::from_str_radix(r, 16).unwrap_or(0),
            )
        }) else {
            continue;
        };
        if port_of(f[1]) == Some(port) {
            rx += rxq; // the receiver's side of the connection
        } else if port_of(f[2]) == Some(port) {
            tx += txq; // the agent's side
        }
    }
    (rx, tx)
}

fn syslog_sink(addr: SocketAddr, extra: &str) -> String {
    format!(
        "[sinks.siem]\ntype = \"syslog\"\nformat = \"json\"\nprotocol = \"tcp\"\naddress = \"{addr}\"\n{extra}\n"
    )
}

/// reliability.md §5 row 8. A receiver that accepts and never reads, with `write_timeout =
/// "2s"`: the agent's writes stall, each stall drops the connection after the timeout and the
/// batch is re-sent on a new one (with backoff); memory stays bounded; once the receiver reads
/// again, every event arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_accepts_and_never_reads_costs_no_events_and_bounded_memory() {
    let rx = HoldingReceiver::start();
    let (sim, server) = portal(SimZone::Utc).await;
    sim.generate(
        SimStream::Audit,
        20_000,
        ago(time::Duration::hours(30)),
        ago(time::Duration::minutes(3)),
    );
    let want = audit_ids(&sim);
    let w = Workdir::new();
    let cfg = config(
        &w,
        "shutdown_timeout = \"5s\"",
        &(portal_cfg(
            "main",
            &server.url,
            &[("streams", "[\"audit\"]"), ("start_from", "\"2d\"")],
        ) + &syslog_sink(rx.addr, "write_timeout = \"2s\"")),
    );
    let mut a = Agent::start(&cfg, w.path(), "a");
    let pid = a.pid();
    let t0 = Instant::now();
    let mut rss_max = 0;
    let mut inflight_max = 0;
    while t0.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        rss_max = rss_max.max(status_kib(pid, "VmRSS"));
        let (r, t) = tcp_queues(rx.addr.port());
        inflight_max = inflight_max.max(r + t);
    }
    let accepts: Vec<Instant> = rx.accepts.lock().expect("lock").clone();
    let err = a.stderr_text();
    // The stall is named by whichever deadline fires first: the write deadline ("write made no
    // progress for 2s"), the wait for the receiver's TCP to acknowledge the batch ("the
    // receiver acknowledged nothing of the last N bytes"), or the kernel's TCP_USER_TIMEOUT
    // (set to write_timeout: "Connection timed out (os error 110)").
    let stall_text = if err.contains("write made no progress for 2s") {
        "write-deadline"
    } else if err.contains("acknowledged nothing of the last") {
        "unacknowledged-send-queue"
    } else if err.contains("Connection timed out (os error 110)") {
        "tcp-user-timeout"
    } else {
        "none"
    };
    assert!(
        stall_text != "none" && err.contains("reconnecting and re-sending the batch"),
        "the stall is named:\n{}",
        tail(&err, 2000)
    );
    assert!(accepts.len() >= 2, "the agent reconnected after the stall");
    let gaps: Vec<f64> = accepts
        .windows(2)
        .map(|p| (p[1] - p[0]).as_secs_f64())
        .collect();
    // Each reconnect follows a stall of at least write_timeout.
    assert!(gaps.iter().all(|g| *g >= 1.9), "{gaps:?}");

    rx.reading.store(true, Ordering::Relaxed);
    let read_at = Instant::now();
    let complete = wait_until(Duration::from_secs(45), || {
        let got: BTreeSet<i64> = rx.ids().into_iter().collect();
        want.is_subset(&got)
    })
    .await;
    let recovery = read_at.elapsed();
    let hwm = status_kib(pid, "VmHWM");
    stop(&mut a);
    let t = tally(&want, &rx.ids());
    figure(
        "sink-accepts-never-reads",
        t,
        &format!(
            "write_timeout_s=2 stall_detected_by={stall_text} connections_while_stalled={} reconnect_gap_s_min={:.1} inflight_bytes_max={inflight_max} rss_max_while_stalled_kib={rss_max} peak_rss_kib={hwm} recovery_s={:.1}",
            accepts.len(),
            gaps.iter().copied().fold(f64::INFINITY, f64::min),
            recovery.as_secs_f64()
        ),
    );
    if !complete {
        let got: BTreeSet<i64> = rx.ids().into_iter().collect();
        let missing: Vec<i64> = want.difference(&got).copied().collect();
        eprintln!(
            "never-read: {} missing, first {:?} last {:?}; stderr:\n{}",
            missing.len(),
            missing.first(),
            missing.last(),
            tail(&a.stderr_text(), 3000)
        );
    }
    assert_eq!(t.lost, 0);
    assert_eq!(t.extra, 0);
    assert!(rss_max < 256 * 1024, "RSS {rss_max} KiB while stalled");
}

/// What the resetting receiver saw when it reset the first connection.
#[derive(Debug, Clone, Copy, Default)]
struct ResetInfo {
    read_bytes: usize,
    rx_unread: u64,
    tx_unacked: u64,
}

/// reliability.md §5 row 9. The receiver reads 256 KiB of the first connection, stops reading
/// until the kernel buffers are full, then resets it (SO_LINGER 0 → RST). Plain TCP syslog has
/// no application acknowledgement, but the agent acknowledges a batch only once the receiver's
/// TCP has acknowledged all of it (its send queue, `TIOCOUTQ`, is empty). So what can be lost
/// is the receiver's own unread buffer at the reset, read from /proc/net/tcp just before it:
/// the bound is those bytes divided by the smallest frame seen. The agent's unacknowledged send
/// queue is reported too; none of it may be lost. The loss must be one contiguous run, and
/// every event after it (including 200 created after the reset) must arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_reset_mid_stream_loses_at_most_the_kernel_buffer_window() {
    const READ_FIRST: usize = 256 * 1024;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let frames: Arc<Mutex<Vec<String>>> = Arc::default();
    let info: Arc<Mutex<Option<ResetInfo>>> = Arc::default();
    {
        let (frames, info) = (frames.clone(), info.clone());
        std::thread::spawn(move || {
            let mut first = true;
            for sock in listener.incoming() {
                let Ok(mut sock) = sock else { return };
                if first {
                    first = false;
                    read_frames(&mut sock, &frames, Some(READ_FIRST));
                    // Let the buffers fill (the agent blocks in write), then reset.
                    let mut last = (0, 0);
                    for _ in 0..40 {
                        std::thread::sleep(Duration::from_millis(100));
                        let q = tcp_queues(addr.port());
                        if q == last && q.0 > 0 {
                            break;
                        }
                        last = q;
                    }
                    let (rx_unread, tx_unacked) = tcp_queues(addr.port());
                    socket2::SockRef::from(&sock)
                        .set_linger(Some(Duration::ZERO))
                        .expect("SO_LINGER 0");
                    *info.lock().expect("lock") = Some(ResetInfo {
                        read_bytes: READ_FIRST,
                        rx_unread,
                        tx_unacked,
                    });
                    drop(sock);
                } else {
                    let frames = frames.clone();
                    std::thread::spawn(move || read_frames(&mut sock, &frames, None));
                }
            }
        });
    }
    let (sim, server) = portal(SimZone::Utc).await;
    sim.generate(
        SimStream::Audit,
        20_000,
        ago(time::Duration::hours(30)),
        ago(time::Duration::minutes(3)),
    );
    let w = Workdir::new();
    let cfg = config(
        &w,
        "shutdown_timeout = \"5s\"",
        &(portal_cfg(
            "main",
            &server.url,
            &[("streams", "[\"audit\"]"), ("start_from", "\"2d\"")],
        ) + &syslog_sink(addr, "write_timeout = \"10s\"")),
    );
    let mut a = Agent::start(&cfg, w.path(), "a");
    eventually(Duration::from_secs(60), "the reset", || {
        info.lock().expect("lock").is_some()
    })
    .await;
    let reset_at = Instant::now();
    // Events created after the reset must all arrive.
    let t = OffsetDateTime::now_utc();
    sim.generate(SimStream::Audit, 200, t + secs(1), t + secs(3));
    let after_reset: BTreeSet<i64> = audit_ids(&sim).into_iter().rev().take(200).collect();
    let ids = || -> Vec<i64> {
        frames
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|m| syslog_id(m))
            .collect()
    };
    eventually(
        Duration::from_secs(120),
        "the events after the reset",
        || {
            let got: BTreeSet<i64> = ids().into_iter().collect();
            after_reset.is_subset(&got)
        },
    )
    .await;
    let recovery = reset_at.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop(&mut a);
    let info = info.lock().expect("lock").expect("reset info");
    let want = audit_ids(&sim);
    let got = ids();
    let t = tally(&want, &got);
    let min_frame = frames
        .lock()
        .expect("lock")
        .iter()
        .map(String::len)
        .min()
        .unwrap_or(1)
        .max(1);
    let window_bytes = info.rx_unread;
    let window_events = (window_bytes as usize).div_ceil(min_frame);
    // Emit order is (date, id); the simulator's ids ascend with date within this corpus.
    let order: Vec<i64> = want.iter().copied().collect();
    let got_set: BTreeSet<i64> = got.iter().copied().collect();
    let missing: Vec<usize> = order
        .iter()
        .enumerate()
        .filter(|(_, id)| !got_set.contains(id))
        .map(|(i, _)| i)
        .collect();
    let contiguous = missing.windows(2).all(|p| p[1] == p[0] + 1);
    figure(
        "receiver-reset-mid-stream",
        t,
        &format!(
            "transport=tcp read_before_reset_bytes={} rx_unread_bytes={} tx_unacked_bytes={} bound_events={window_events} lost_contiguous={contiguous} recovery_s={:.1}",
            info.read_bytes,
            info.rx_unread,
            info.tx_unacked,
            recovery.as_secs_f64()
        ),
    );
    assert!(
        err_mentions_reconnect(&a),
        "the reset is logged:\n{}",
        tail(&a.stderr_text(), 2000)
    );
    assert!(
        t.lost <= window_events,
        "lost {} events, more than the receiver's unread buffer held ({window_bytes} bytes ≈ {window_events} events; the agent's own send queue held {} bytes)",
        t.lost,
        info.tx_unacked
    );
    assert!(contiguous, "the loss is one run of what the buffers held");
    assert!(after_reset.iter().all(|id| got_set.contains(id)));
    assert!(t.dups <= 2 * BATCH_EVENTS, "{} duplicates", t.dups);
    assert_eq!(t.extra, 0);
}

fn err_mentions_reconnect(a: &Agent) -> bool {
    let err = a.stderr_text();
    err.contains("reconnecting and re-sending the batch") || err.contains("reset")
}

// ---------------------------------------------------------------------------------------------
// 5. HTTP sink statuses: the request rate while failing
// ---------------------------------------------------------------------------------------------

/// A webhook receiver whose answer is switched by the test; it logs every request (time,
/// status, events in the body) and keeps the ids of the 2xx ones.
#[derive(Clone)]
struct SwitchHook {
    url: String,
    answer: Arc<Mutex<(u16, Option<u64>)>>,
    once: Arc<Mutex<Vec<u16>>>,
    log: Arc<Mutex<Vec<(Instant, u16, usize)>>>,
    ids: Arc<Mutex<Vec<i64>>>,
}

impl SwitchHook {
    async fn start() -> SwitchHook {
        use axum::extract::State;
        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let h = SwitchHook {
            url: format!("http://{}/ingest", listener.local_addr().expect("addr")),
            answer: Arc::new(Mutex::new((200, None))),
            once: Arc::default(),
            log: Arc::default(),
            ids: Arc::default(),
        };
        async fn handle(
            State(h): State<SwitchHook>,
            body: axum::body::Bytes,
        ) -> axum::response::Response {
            let v: Value = serde_json::from_slice(&body).expect("JSON array");
            let events = v.as_array().cloned().unwrap_or_default();
            let (status, retry_after) = {
                let mut once = h.once.lock().expect("lock");
                if once.is_empty() {
                    *h.answer.lock().expect("lock")
                } else {
                    (once.remove(0), None)
                }
            };
            h.log
                .lock()
                .expect("lock")
                .push((Instant::now(), status, events.len()));
            if status == 200 {
                h.ids.lock().expect("lock").extend(ids_of(&events));
            }
            let mut resp = StatusCode::from_u16(status)
                .expect("status")
                .into_response();
            if let Some(s) = retry_after {
                resp.headers_mut()
                    .insert("retry-after", s.to_string().parse().expect("hv"));
            }
            resp
        }
        let app = axum::Router::new()
            .route("/ingest", axum::routing::post(handle))
            .with_state(h.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        h
    }

    fn set(&self, status: u16, retry_after: Option<u64>) {
        *self.answer.lock().expect("lock") = (status, retry_after);
    }

    fn log(&self) -> Vec<(Instant, u16, usize)> {
        self.log.lock().expect("lock").clone()
    }

    fn ids(&self) -> Vec<i64> {
        self.ids.lock().expect("lock").clone()
    }
}

/// reliability.md §5 row 11, the part the other modules do not measure: how often the agent
/// knocks while a webhook keeps failing. 429 + `Retry-After: 2` for 10 s (every retry waits
/// ≥ 2 s), then 503 for 16 s (backoff: ≤ 1 request/s once it has grown), then a single 413
/// (the batch is split in two halves) and 200s. Retries of 500/503/429 and the 400 dead letter
/// are covered by delivery.rs and http_sinks.rs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_http_sink_is_retried_at_a_bounded_rate() {
    let hook = SwitchHook::start().await;
    hook.set(429, Some(2));
    let (sim, server) = portal(SimZone::Utc).await;
    sim.generate(
        SimStream::Login,
        300,
        ago(time::Duration::hours(5)),
        ago(time::Duration::hours(4)),
    );
    let want = login_ids(&sim);
    let w = Workdir::new();
    let cfg = config(
        &w,
        "shutdown_timeout = \"5s\"",
        &(portal_cfg("main", &server.url, &[("streams", "[\"login\"]")])
            + &hook_sink(
                "hook",
                &hook.url,
                "json",
                "batch = { max_events = 50, timeout = \"10ms\" }",
            )),
    );
    let mut a = Agent::start(&cfg, w.path(), "a");
    eventually(Duration::from_secs(30), "the first request", || {
        !hook.log().is_empty()
    })
    .await;
    let t429 = hook.log()[0].0;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let l429: Vec<Instant> = hook
        .log()
        .iter()
        .filter(|(_, s, _)| *s == 429)
        .map(|(t, _, _)| *t)
        .collect();
    let gaps429: Vec<f64> = l429
        .windows(2)
        .map(|p| (p[1] - p[0]).as_secs_f64())
        .collect();
    let rate429 = l429.len() as f64 / (Instant::now() - t429).as_secs_f64();

    hook.set(503, None);
    let t503 = Instant::now();
    tokio::time::sleep(Duration::from_secs(16)).await;
    let l503: Vec<Instant> = hook
        .log()
        .iter()
        .filter(|(t, s, _)| *s == 503 && *t >= t503)
        .map(|(t, _, _)| *t)
        .collect();
    let steady_from = t503 + Duration::from_secs(6);
    let steady = l503.iter().filter(|t| **t >= steady_from).count();

    hook.once.lock().expect("lock").push(413);
    hook.set(200, None);
    let ok_at = Instant::now();
    eventually(
        Duration::from_secs(90),
        "delivery after the failures",
        || {
            let got: BTreeSet<i64> = hook.ids().into_iter().collect();
            want.is_subset(&got)
        },
    )
    .await;
    let log = hook.log();
    let first_ok = log
        .iter()
        .find(|(t, s, _)| *s == 200 && *t >= ok_at)
        .map(|(t, _, _)| *t - ok_at)
        .expect("a 200");
    stop(&mut a);
    let i413 = log.iter().position(|(_, s, _)| *s == 413).expect("a 413");
    let n413 = log[i413].2;
    let (h1, h2) = (log[i413 + 1].2, log[i413 + 2].2);
    let t = tally(&want, &hook.ids());
    figure(
        "http-sink-statuses",
        t,
        &format!(
            "r429_retry_after_2s_min_gap_s={:.2} r429_rate_req_s={rate429:.2} r503_requests_16s={} r503_steady_rate_req_s={:.2} after_413_split={n413}->{h1}+{h2} recovery_s={:.1}",
            gaps429.iter().copied().fold(f64::INFINITY, f64::min),
            l503.len(),
            steady as f64 / 10.0,
            first_ok.as_secs_f64()
        ),
    );
    assert!(
        gaps429.iter().all(|g| *g >= 1.95),
        "Retry-After: 2 honoured: {gaps429:?}"
    );
    assert!(
        steady <= 10,
        "{steady} requests in the last 10 s of a 503 outage (≤ 1/s expected)"
    );
    assert_eq!(
        (h1 + h2, h1.abs_diff(h2) <= 1),
        (n413, true),
        "413 splits the batch in two"
    );
    assert_eq!(t.lost, 0);
    assert_eq!(
        t.dups, 0,
        "a refused request delivers nothing, so it duplicates nothing"
    );
    assert!(!w.state().join("dead-letter/hook.ndjson").exists());
}

// ---------------------------------------------------------------------------------------------
// 6. DocSpace errors
// ---------------------------------------------------------------------------------------------

/// reliability.md §5 rows 14 and 17: 401, 403, 402 and the silent no-audit-plan fallback each
/// for 9 s, with `error_retry = "3s"` and two streams. Each is named in the log, requests stay
/// at ≤ one per stream per error_retry, and once the portal is fixed everything arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docspace_operator_errors_are_named_and_retried_slowly() {
    let hook = HttpCollector::start().await;
    let (sim, server) = portal(SimZone::Utc).await;
    sim.generate(
        SimStream::Login,
        200,
        ago(time::Duration::hours(5)),
        ago(time::Duration::hours(4)),
    );
    sim.generate(
        SimStream::Audit,
        200,
        ago(time::Duration::hours(5)),
        ago(time::Duration::hours(4)),
    );
    let want = all_ids(&sim);
    sim.set_mode(SimMode::Unauthorized);
    let w = Workdir::new();
    let cfg = config(
        &w,
        "shutdown_timeout = \"5s\"",
        &(portal_cfg("main", &server.url, &[("error_retry", "\"3s\"")])
            + &hook_sink("hook", &hook.url, "json", "")),
    );
    let filters = |sim: &Simulator| {
        sim.requests()
            .iter()
            .filter(|r| r.path.ends_with("/filter"))
            .count()
    };
    let mut a = Agent::start(&cfg, w.path(), "a");
    let mut rates = Vec::new();
    for (mode, name, text) in [
        (SimMode::Unauthorized, "401", "HTTP 401"),
        (SimMode::Forbidden, "403", "HTTP 403"),
        (SimMode::PaymentRequired, "402", "HTTP 402"),
        (
            SimMode::NoAuditPlan,
            "no-audit-plan",
            "plan lacks the audit feature",
        ),
    ] {
        sim.set_mode(mode);
        let n0 = filters(&sim);
        tokio::time::sleep(Duration::from_secs(9)).await;
        let n = filters(&sim) - n0;
        assert!(
            a.stderr_text().contains(text),
            "{name} is named (`{text}`):\n{}",
            tail(&a.stderr_text(), 2000)
        );
        // Two streams, one try per error_retry each, plus one in flight at the switch.
        assert!(n <= 2 * (9 / 3 + 1) + 2, "{name}: {n} requests in 9 s");
        rates.push(format!("{name}={:.2}", n as f64 / 9.0));
    }
    assert!(
        hook.events().is_empty(),
        "nothing delivered while the portal refuses"
    );
    assert!(
        !w.state().join("cursors/main.login.json").exists(),
        "the cursor did not move"
    );
    sim.set_mode(SimMode::Normal);
    let fixed = Instant::now();
    eventually(Duration::from_secs(60), "everything after the fix", || {
        delivered_all(&hook, &want)
    })
    .await;
    let recovery = fixed.elapsed();
    stop(&mut a);
    let t = tally(&want, &received(&hook));
    figure(
        "docspace-401-403-402-fallback",
        t,
        &format!(
            "error_retry_s=3 streams=2 filter_req_s: {} recovery_s={:.1}",
            rates.join(" "),
            recovery.as_secs_f64()
        ),
    );
    assert_eq!(t.lost, 0);
    assert_eq!(t.dups, 0);
    assert!(!a.stderr_text().contains(KEY), "the key leaked");
}

/// reliability.md §5 rows 15 and 16: 429 with `Retry-After: 3` (the next request of that
/// stream waits ≥ 3 s), 500, 503, a 502 HTML page, a truncated body, a non-JSON body and a
/// request slower than the portal `timeout` ("2s"), one at a time while new events arrive.
/// A failed request moves nothing: no loss and no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docspace_transient_errors_and_timeouts_move_nothing() {
    let hook = HttpCollector::start().await;
    let (sim, server) = portal(SimZone::Fixed { minutes: 345 }).await;
    sim.generate(
        SimStream::Login,
        100,
        ago(time::Duration::hours(5)),
        ago(time::Duration::hours(4)),
    );
    sim.generate(
        SimStream::Audit,
        100,
        ago(time::Duration::hours(5)),
        ago(time::Duration::hours(4)),
    );
    let clock = RequestClock::start(&sim);
    let w = Workdir::new();
    let cfg = config(
        &w,
        "shutdown_timeout = \"5s\"",
        &(portal_cfg("main", &server.url, &[("timeout", "\"2s\"")])
            + &hook_sink("hook", &hook.url, "json", "")),
    );
    let mut a = Agent::start(&cfg, w.path(), "a");
    eventually(Duration::from_secs(60), "the first 200", || {
        hook.events().len() >= 200
    })
    .await;
    let faults: Vec<(&str, SimFault)> = vec![
        (
            "429-retry-after-3",
            SimFault::TooManyRequests {
                retry_after: Some(3),
            },
        ),
        ("500", SimFault::ServerError(500)),
        ("503", SimFault::ServerError(503)),
        ("502-html", SimFault::BadGatewayHtml),
        ("truncated", SimFault::Truncated),
        ("malformed", SimFault::Malformed),
        ("timeout", SimFault::Delay(Duration::from_secs(4))),
    ];
    let mut recov = Vec::new();
    for (name, fault) in faults {
        let n0 = clock.filters().len();
        sim.inject(fault, 1);
        let t = OffsetDateTime::now_utc();
        sim.generate(SimStream::Login, 10, t + secs(1), t + secs(2));
        sim.generate(SimStream::Audit, 10, t + secs(1), t + secs(2));
        let want = all_ids(&sim);
        let at = Instant::now();
        eventually(Duration::from_secs(60), name, || {
            delivered_all(&hook, &want)
        })
        .await;
        recov.push(format!("{name}={:.1}", at.elapsed().as_secs_f64()));
        eventually(Duration::from_secs(10), "the fault was consumed", || {
            clock.filters().len() >= n0 + 3
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop(&mut a);
    let want = all_ids(&sim);
    let t = tally(&want, &received(&hook));
    // The 429: the next request on the same endpoint came ≥ 3 s later.
    let log = clock.filters();
    let i = log
        .iter()
        .position(|(_, _, s)| *s == 429)
        .expect("a 429 was served");
    let next = log[i + 1..]
        .iter()
        .find(|(_, p, _)| *p == log[i].1)
        .expect("a retry");
    let gap = (next.0 - log[i].0).as_secs_f64();
    let err = a.stderr_text();
    figure(
        "docspace-transient",
        t,
        &format!(
            "retry_after_3_gap_s={gap:.2} fault_to_delivered_s: {}",
            recov.join(" ")
        ),
    );
    for text in [
        "HTTP 429",
        "HTTP 500",
        "HTTP 503",
        "HTTP 502",
        "malformed response",
        "timed out",
    ] {
        assert!(
            err.contains(text),
            "`{text}` is logged:\n{}",
            tail(&err, 3000)
        );
    }
    assert!(
        gap >= 2.9,
        "Retry-After: 3 honoured, next try after {gap:.2} s"
    );
    assert_eq!(t.lost, 0);
    assert_eq!(t.dups, 0);
}

/// A portal front end that serves fixed rows whose fields have the wrong types; each row has
/// a true date (for the from/to filter) and is rendered as given.
async fn odd_portal(rows: Vec<(OffsetDateTime, Value)>) -> String {
    use axum::extract::{RawQuery, State};
    use axum::http::Uri;
    type Rows = Arc<Vec<(OffsetDateTime, Value)>>;
    async fn handle(
        State(rows): State<Rows>,
        uri: Uri,
        RawQuery(q): RawQuery,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let q: BTreeMap<String, String> =
            url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.to_lowercase(), v.into_owned()))
                .collect();
        let path = uri.path().to_lowercase();
        let parse = |k: &str| {
            q.get(k).and_then(|v| {
                OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).ok()
            })
        };
        let body = if path.ends_with("/security/audit/events/filter") {
            let from = parse("from").unwrap_or(OffsetDateTime::UNIX_EPOCH);
            let to = parse("to").unwrap_or(OffsetDateTime::now_utc());
            let start: usize = q
                .get("startindex")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let count: usize = q.get("count").and_then(|v| v.parse().ok()).unwrap_or(100);
            let mut hits: Vec<&(OffsetDateTime, Value)> = rows
                .iter()
                .filter(|(d, _)| *d >= from && *d <= to)
                .collect();
            hits.sort_by_key(|h| std::cmp::Reverse(h.0));
            hits.into_iter()
                .skip(start)
                .take(count)
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
        } else if path.ends_with("/security/audit/login/filter") {
            Vec::new()
        } else {
            return axum::http::StatusCode::NOT_FOUND.into_response();
        };
        axum::Json(json!({"response": body, "count": body.len(), "status": 0, "statusCode": 200}))
            .into_response()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(Arc::new(rows));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

fn dead_letters(w: &Workdir, name: &str) -> Vec<Value> {
    std::fs::read_to_string(w.state().join(format!("dead-letter/{name}.ndjson")))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("dead letter is JSON"))
        .collect()
}

/// reliability.md §5 row 16 (wrong types) with a tiny mock portal, since the simulator renders
/// typed rows only: ids and action ids as strings, null/number/array/object where strings are
/// expected, and rows no agent can place (no id, a date that is a number or not a date, not an
/// object). Every row is either delivered or in the dead-letter file with its raw copy; a bad
/// row inside the overlap must be dead-lettered once, not at every poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_with_wrong_field_types_are_delivered_or_dead_lettered_never_dropped() {
    let base = ago(time::Duration::hours(3));
    let d = |i: i64| base + time::Duration::minutes(i);
    let date = |t: OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .expect("fmt")
    };
    let mut rows: Vec<(OffsetDateTime, Value)> = Vec::new();
    // Rows the agent can use, each with a marker.
    let good = [
        json!({"id": 7001, "actionId": 5011, "action": "fine", "user": "Alice"}),
        json!({"id": "7002", "actionId": 5011}),
        json!({"id": 7003, "actionId": "5011"}),
        json!({"id": 7004, "actionId": 5011, "user": null, "ip": 3_232_235_777_u64, "target": {"x": 1},
               "entries": ["a", 1], "country": ["DE"], "actionType": "x", "page": false, "userId": 12}),
        json!({"id": 7005, "actionId": 5011, "nested": {"deep": [1, {"z": null}]}, "date2": 5}),
    ];
    for (i, mut v) in good.into_iter().enumerate() {
        v["date"] = json!(date(d(i as i64)));
        v["marker"] = json!(format!("good-{i}"));
        rows.push((d(i as i64), v));
    }
    let bad = [
        json!({"id": 7101, "actionId": 5011, "date": 1_735_689_600}),
        json!({"id": 7102, "actionId": 5011, "date": "yesterday"}),
        json!({"actionId": 5011, "date": date(d(12))}),
        json!({"id": 7.5, "actionId": 5011, "date": date(d(13))}),
        json!({"id": "abc", "actionId": 5011, "date": date(d(14))}),
        json!({"id": 1e20, "actionId": 5011, "date": date(d(15))}),
        json!({"id": 7107, "actionId": 5011, "date": null}),
        json!({"id": 7108, "date": date(d(17))}),
    ];
    let n_bad = bad.len() + 1;
    for (i, mut v) in bad.into_iter().enumerate() {
        v["marker"] = json!(format!("bad-{i}"));
        rows.push((d(10 + i as i64), v));
    }
    rows.push((d(20), json!(42)));
    // Plenty of ordinary rows.
    for i in 0..30 {
        rows.push((
            d(30 + i),
            json!({"id": 8000 + i, "actionId": 5011, "date": date(d(30 + i)), "marker": format!("plain-{i}")}),
        ));
    }
    // A bad row dated inside the overlap of a caught-up agent, re-read by every poll.
    let live = ago(secs(20));
    rows.push((
        live,
        json!({"id": "not-a-number", "actionId": 5011, "date": date(live), "marker": "bad-live"}),
    ));
    let good_markers: BTreeSet<String> = rows
        .iter()
        .filter_map(|(_, v)| v.get("marker").and_then(Value::as_str))
        .filter(|m| m.starts_with("good") || m.starts_with("plain"))
        .map(str::to_owned)
        .collect();
    let url = odd_portal(rows).await;
    let hook = HttpCollector::start().await;
    let w = Workdir::new();
    let cfg = config(
        &w,
        "shutdown_timeout = \"5s\"",
        &(portal_cfg("main", &url, &[("streams", "[\"audit\"]")])
            + &hook_sink("hook", &hook.url, "json", "")),
    );
    let mut a = Agent::start(&cfg, w.path(), "a");
    eventually(Duration::from_secs(60), "the good rows", || {
        hook.events().len() >= good_markers.len()
    })
    .await;
    // Ten more polls over the overlap.
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop(&mut a);
    no_panic(&a);
    let got: Vec<String> = hook
        .events()
        .iter()
        .filter_map(|e| e["marker"].as_str().map(str::to_owned))
        .collect();
    // The agent writes `portal.<name>.ndjson` (config/docspace-siem.example.toml says
    // `portal-<name>.ndjson`).
    let dl = dead_letters(&w, "portal.main");
    let dl_markers: Vec<String> = dl
        .iter()
        .map(|l| {
            l["event"]["marker"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| l["event"].to_string())
        })
        .collect();
    let mut want: BTreeSet<String> = good_markers.clone();
    want.extend((0..n_bad - 1).map(|i| format!("bad-{i}")));
    want.insert("42".to_owned());
    want.insert("bad-live".to_owned());
    let mut all: Vec<String> = got.clone();
    let dl_unique: BTreeSet<String> = dl_markers.iter().cloned().collect();
    all.extend(dl_unique.iter().cloned());
    let t = tally(
        &want.iter().map(String::as_str).collect(),
        &all.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let live_copies = dl_markers.iter().filter(|m| *m == "bad-live").count();
    figure(
        "docspace-wrong-types",
        t,
        &format!(
            "rows={} delivered={} dead_lettered={} dead_letter_lines={} bad_live_row_copies={live_copies}",
            want.len(),
            got.len(),
            dl_unique.len(),
            dl.len()
        ),
    );
    assert_eq!(t.lost, 0, "every row is delivered or dead-lettered");
    assert_eq!(t.extra, 0);
    assert_eq!(t.dups, 0);
    assert!(
        got.iter().all(|m| good_markers.contains(m)),
        "only usable rows delivered: {got:?}"
    );
    let reasons: Vec<&str> = dl.iter().filter_map(|l| l["reason"].as_str()).collect();
    assert!(
        reasons.iter().all(|r| r.contains("undecodable audit row")),
        "{reasons:?}"
    );
    assert_eq!(
        live_copies, 1,
        "a bad row inside the overlap was dead-lettered {live_copies} times (once per poll)"
    );
}

/// reliability.md §5 row 16 (huge bodies): 30 rows with a 1 MiB field (the action text, or the
/// login name of a failed attempt), in one page of ~30 MiB among ordinary rows. Every event
/// arrives, each ECS document stays small (fields are capped at 8 KiB), peak memory reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_fields_are_capped_and_delivered() {
    let hook = HttpCollector::start().await;
    let (sim, server) = portal(SimZone::Utc).await;
    sim.generate(
        SimStream::Login,
        100,
        ago(time::Duration::hours(5)),
        ago(time::Duration::hours(4)),
    );
    let big = "A".repeat(1 << 20);
    for i in 0..30 {
        let at = ago(time::Duration::hours(4)) + time::Duration::minutes(i);
        let mut ev = SimEvent::login(at, if i % 2 == 0 { 1010 } else { 1013 });
        if i % 2 == 0 {
            ev.action_text = big.clone();
        } else {
            ev.login = Some(big.clone());
        }
        sim.insert(ev);
    }
    let want = login_ids(&sim);
    let w = Workdir::new();
    let cfg = config(
        &w,
        "shutdown_timeout = \"5s\"",
        &(portal_cfg("main", &server.url, &[("streams", "[\"login\"]")])
            + &hook_sink(
                "hook",
                &hook.url,
                "ecs",
                "batch = { max_events = 20, timeout = \"10ms\" }",
            )),
    );
    let mut a = Agent::start(&cfg, w.path(), "a");
    let pid = a.pid();
    eventually(Duration::from_secs(120), "every event", || {
        delivered_all(&hook, &want)
    })
    .await;
    let hwm = status_kib(pid, "VmHWM");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop(&mut a);
    no_panic(&a);
    let docs = hook.events();
    let largest = docs.iter().map(|d| d.to_string().len()).max().unwrap_or(0);
    let t = tally(&want, &ids_of(&docs));
    figure(
        "docspace-huge-fields",
        t,
        &format!("rows_with_1MiB_field=30 largest_ecs_doc_bytes={largest} peak_rss_kib={hwm}"),
    );
    assert_eq!(t.lost, 0);
    assert_eq!(t.dups, 0);
    assert!(largest <= 64 * 1024, "an ECS document of {largest} bytes");
}

/// A DocSpace answer larger than `max_response_mib` is refused while it is read (never held
/// whole), with an error that names the key; raising it (SIGHUP) delivers everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_over_max_response_mib_is_refused_by_name_and_nothing_is_lost() {
    let hook = HttpCollector::start().await;
    let (sim, server) = portal(SimZone::Utc).await;
    sim.generate(
        SimStream::Login,
        50,
        ago(time::Duration::hours(5)),
        ago(time::Duration::hours(4)),
    );
    let big = "A".repeat(1 << 20);
    for i in 0..3 {
        let mut ev = SimEvent::login(ago(time::Duration::hours(4)) + secs(i), 1010);
        ev.action_text = big.clone();
        sim.insert(ev);
    }
    let want = login_ids(&sim);
    let w = Workdir::new();
    let body = |mib: u32| {
        config(
            &w,
            "shutdown_timeout = \"5s\"",
            &(portal_cfg(
                "main",
                &server.url,
                &[
                    ("streams", "[\"login\"]"),
                    ("max_response_mib", &mib.to_string()),
                ],
            ) + &hook_sink("hook", &hook.url, "json", "")),
        )
    };
    let cfg = body(1);
    let mut a = Agent::start(&cfg, w.path(), "a");
    eventually(Duration::from_secs(30), "the named error", || {
        a.stderr_text()
            .contains("larger than max_response_mib (1 MiB)")
    })
    .await;
    assert!(alive(&mut a));
    assert!(
        hook.events().is_empty(),
        "the window waits; nothing is skipped"
    );
    body(8);
    a.signal("HUP");
    eventually(
        Duration::from_secs(60),
        "every event after raising it",
        || delivered_all(&hook, &want),
    )
    .await;
    stop(&mut a);
    no_panic(&a);
    let t = tally(&want, &received(&hook));
    assert_eq!(t.lost, 0);
}

/// reliability.md §5 row 18, end to end: rows inserted between page requests (5 per request
/// for the next 40 requests of each stream) shift the offsets of a catch-up; the window walker
/// and the id dedupe give neither a miss nor a duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_inserted_during_paging_give_no_miss_and_no_duplicate() {
    let hook = HttpCollector::start().await;
    let (sim, server) = portal(SimZone::Fixed { minutes: -210 }).await;
    for stream in [SimStream::Login, SimStream::Audit] {
        sim.generate(
            stream,
            1200,
            ago(time::Duration::hours(3)),
            ago(time::Duration::hours(2)),
        );
        sim.insert_during_paging(stream, 5, 40);
    }
    let w = Workdir::new();
    let cfg = config(
        &w,
        "shutdown_timeout = \"5s\"",
        &(portal_cfg("main", &server.url, &[]) + &hook_sink("hook", &hook.url, "json", "")),
    );
    let mut a = Agent::start(&cfg, w.path(), "a");
    let clock = RequestClock::start(&sim);
    eventually(Duration::from_secs(60), "the backlog", || {
        hook.events().len() >= 2400
    })
    .await;
    // The insert orders apply to the next 40 filter requests of each stream (the catch-up's
    // pages, then one poll a second); once they are used up, the inserted rows (dated "now")
    // arrive after `settle`.
    eventually(Duration::from_secs(90), "the insert orders used up", || {
        let f = clock.filters();
        ["/login/filter", "/events/filter"]
            .iter()
            .all(|p| f.iter().filter(|(_, path, _)| path.ends_with(p)).count() >= 45)
    })
    .await;
    let want = all_ids(&sim);
    eventually(Duration::from_secs(60), "every inserted row too", || {
        delivered_all(&hook, &want)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop(&mut a);
    let t = tally(&want, &received(&hook));
    figure(
        "docspace-inserts-during-paging",
        t,
        &format!(
            "rows=2400 inserted_while_paging={} filter_requests={}",
            want.len() - 2400,
            clock.filters().len()
        ),
    );
    assert!(want.len() > 2400, "rows were inserted while paging");
    assert_eq!(t.lost, 0);
    assert_eq!(t.dups, 0);
    assert_eq!(t.extra, 0);
}

/// reliability.md §5 row 19: late rows and clock skew, emulated by dating rows relative to the
/// agent's clock (the test cannot move the system clock). A caught-up agent, `settle = 1s`,
/// `overlap = 2m`, then rows dated:
/// - 60 s ago (a late row, written after the agent passed its time): caught by the overlap;
/// - 100 s ago (the portal's clock 100 s behind the agent's): caught by the overlap;
/// - 20 s ahead (the portal's clock ahead): delivered once the agent's clock passes it;
/// - 5 min ago (lateness or skew beyond the overlap): missed, as README documents.
///
/// The agent trusts its own clock: `to = now − settle`, and the full re-read (every
/// `overlap_every`, 5 s here) reaches `overlap` back. Lateness or skew up to `overlap` costs
/// nothing but up to `overlap_every` of delay; beyond it, rows are missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_rows_and_clock_skew_within_the_overlap_are_caught() {
    let hook = HttpCollector::start().await;
    let (sim, server) = portal(SimZone::EuropeBerlin).await;
    sim.generate(
        SimStream::Login,
        50,
        ago(time::Duration::hours(2)),
        ago(time::Duration::hours(1)),
    );
    let w = Workdir::new();
    let cfg = config(
        &w,
        "shutdown_timeout = \"5s\"",
        &(portal_cfg(
            "main",
            &server.url,
            &[("streams", "[\"login\"]"), ("overlap_every", "\"5s\"")],
        ) + &hook_sink("hook", &hook.url, "json", "")),
    );
    let mut a = Agent::start(&cfg, w.path(), "a");
    eventually(Duration::from_secs(60), "caught up", || {
        hook.events().len() >= 50 && a.stderr_text().contains("caught up")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now = OffsetDateTime::now_utc();
    let late = sim.insert(SimEvent::login(now - secs(60), 1010));
    let behind = sim.insert(SimEvent::login(now - secs(100), 1010));
    let ahead = sim.insert(SimEvent::login(now + secs(20), 1010));
    let beyond = sim.insert(SimEvent::login(now - time::Duration::minutes(5), 1010));
    let inserted = Instant::now();
    let has = |id: i64| received(&hook).contains(&id);
    eventually(Duration::from_secs(20), "the late row", || {
        has(late) && has(behind)
    })
    .await;
    let late_s = inserted.elapsed();
    eventually(Duration::from_secs(40), "the row from the future", || {
        has(ahead)
    })
    .await;
    let ahead_s = inserted.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop(&mut a);
    let want: BTreeSet<i64> = login_ids(&sim)
        .into_iter()
        .filter(|i| *i != beyond)
        .collect();
    let t = tally(&want, &received(&hook));
    figure(
        "late-rows-and-clock-skew",
        t,
        &format!(
            "overlap_s=120 settle_s=1 late_60s=delivered_after_{:.1}s skew_behind_100s=delivered skew_ahead_20s=delivered_after_{:.1}s beyond_overlap_5min={}",
            late_s.as_secs_f64(),
            ahead_s.as_secs_f64(),
            if has(beyond) {
                "delivered"
            } else {
                "missed(documented)"
            }
        ),
    );
    assert_eq!(t.lost, 0);
    assert_eq!(t.dups, 0);
}

/// The most recent EU DST switch (01:00 UTC on the last Sunday of March or October) at least
/// 6 hours ago.
fn last_dst_switch() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    let mut best = None;
    for year in [now.year() - 1, now.year()] {
        for month in [time::Month::March, time::Month::October] {
            let last = time::Date::from_calendar_date(year, month, 31).expect("date");
            let back = i64::from(last.weekday().number_days_from_sunday());
            let sunday = last - time::Duration::days(back);
            let at =
                time::PrimitiveDateTime::new(sunday, time::Time::from_hms(1, 0, 0).expect("t"))
                    .assume_utc();
            if at < now - time::Duration::hours(6) && best.is_none_or(|b| at > b) {
                best = Some(at);
            }
        }
    }
    best.expect("a DST switch")
}

/// reliability.md §5 row 19, portal zones end to end: one agent, three portals rendering dates
/// at +05:45, −03:30 and Europe/Berlin with a catch-up across the last DST switch. Every event
/// arrives once, in order per portal and stream, with its UTC time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_zones_and_a_dst_change_lose_nothing() {
    let hook = HttpCollector::start().await;
    let (kat, kat_srv) = portal(SimZone::Fixed { minutes: 345 }).await;
    let (nfl, nfl_srv) = portal(SimZone::Fixed { minutes: -210 }).await;
    let (ber, ber_srv) = portal(SimZone::EuropeBerlin).await;
    for sim in [&kat, &nfl] {
        for s in [SimStream::Login, SimStream::Audit] {
            sim.generate(
                s,
                200,
                ago(time::Duration::hours(30)),
                ago(time::Duration::hours(1)),
            );
        }
    }
    let switch = last_dst_switch();
    for s in [SimStream::Login, SimStream::Audit] {
        ber.generate(
            s,
            150,
            switch - time::Duration::hours(2),
            switch + time::Duration::hours(2),
        );
    }
    let start = (switch - time::Duration::hours(3))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("fmt");
    let w = Workdir::new();
    let cfg = config(
        &w,
        "shutdown_timeout = \"5s\"",
        &(portal_cfg("kathmandu", &kat_srv.url, &[("start_from", "\"2d\"")])
            + &portal_cfg("newfoundland", &nfl_srv.url, &[("start_from", "\"2d\"")])
            + &portal_cfg(
                "berlin",
                &ber_srv.url,
                &[
                    ("start_from", &format!("\"{start}\"")),
                    ("catchup_window", "\"1h\""),
                ],
            )
            + &hook_sink("hook", &hook.url, "json", "")),
    );
    type Key = (String, String, i64);
    let mut want: BTreeSet<Key> = BTreeSet::new();
    for (name, sim) in [
        ("kathmandu", &kat),
        ("newfoundland", &nfl),
        ("berlin", &ber),
    ] {
        for (s, st) in [(SimStream::Login, "login"), (SimStream::Audit, "audit")] {
            want.extend(
                sim.ids(s)
                    .into_iter()
                    .map(|i| (name.to_owned(), st.to_owned(), i)),
            );
        }
    }
    let keys = |docs: &[Value]| -> Vec<Key> {
        docs.iter()
            .map(|d| {
                (
                    d["portal"].as_str().unwrap_or("").to_owned(),
                    d["stream"].as_str().unwrap_or("").to_owned(),
                    d["id"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    };
    let mut a = Agent::start(&cfg, w.path(), "a");
    eventually(Duration::from_secs(90), "every portal's events", || {
        let got: BTreeSet<Key> = keys(&hook.events()).into_iter().collect();
        want.is_subset(&got)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop(&mut a);
    let docs = hook.events();
    let t = tally(&want, &keys(&docs));
    // In order per portal/stream, dates carry the portal's offsets, times are the simulator's.
    let mut last: BTreeMap<(String, String), OffsetDateTime> = BTreeMap::new();
    let mut offsets: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for d in &docs {
        let raw = d["date"].as_str().expect("date");
        let at = docspace_siem::event::parse_date(raw).expect("parses");
        let key = (
            d["portal"].as_str().expect("portal").to_owned(),
            d["stream"].as_str().expect("stream").to_owned(),
        );
        if let Some(prev) = last.get(&key) {
            assert!(*prev <= at, "{key:?} out of order: {prev} then {raw}");
        }
        last.insert(key.clone(), at);
        offsets
            .entry(key.0)
            .or_default()
            .insert(raw[raw.len() - 6..].to_owned());
    }
    figure(
        "portal-zones-and-dst",
        t,
        &format!(
            "portals=3 dst_switch={} catchup_from={start} offsets={:?}",
            switch
                .format(&time::format_description::well_known::Rfc3339)
                .expect("fmt"),
            offsets
        ),
    );
    assert_eq!(t.lost, 0);
    assert_eq!(t.dups, 0);
    assert_eq!(offsets["kathmandu"], BTreeSet::from(["+05:45".to_owned()]));
    assert_eq!(
        offsets["newfoundland"],
        BTreeSet::from(["-03:30".to_owned()])
    );
    assert_eq!(
        offsets["berlin"],
        BTreeSet::from(["+01:00".to_owned(), "+02:00".to_owned()]),
        "the Berlin catch-up crosses the DST switch"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. SIGTERM under load, secrets at trace level
// ---------------------------------------------------------------------------------------------

/// reliability.md §5 row 24: SIGTERM while a 3,000-event backlog drains into a slowed webhook
/// and the portal gets 200 new events a second. The agent drains and exits 0 within 20 s; the
/// restart re-sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_exits_in_time_and_the_restart_resends_nothing() {
    let hook = HttpCollector::start().await;
    *hook.delay.lock().expect("lock") = Duration::from_millis(30);
    let (sim, server) = portal(SimZone::Utc).await;
    sim.generate(
        SimStream::Login,
        3000,
        ago(time::Duration::hours(20)),
        ago(time::Duration::minutes(3)),
    );
    let cancel = tokio_util::sync::CancellationToken::new();
    let live = sim.spawn_live(200.0, cancel.clone());
    let w = Workdir::new();
    // The live audit writer dates some rows up to 3 min back: overlap 5 min.
    let cfg = config(
        &w,
        "shutdown_timeout = \"15s\"",
        &(portal_cfg("main", &server.url, &[("overlap", "\"5m\"")])
            + &hook_sink(
                "hook",
                &hook.url,
                "json",
                "batch = { max_events = 50, timeout = \"10ms\" }",
            )),
    );
    let mut a = Agent::start(&cfg, w.path(), "a");
    eventually(Duration::from_secs(60), "mid catch-up", || {
        hook.events().len() >= 800
    })
    .await;
    let in_flight = hook.events().len();
    let shutdown = stop(&mut a);
    cancel.cancel();
    let _ = live.await;
    let first_run = received(&hook);
    *hook.delay.lock().expect("lock") = Duration::ZERO;
    let want = all_ids(&sim);
    let mut b = Agent::start(&cfg, w.path(), "b");
    eventually(
        Duration::from_secs(90),
        "the rest after the restart",
        || delivered_all(&hook, &want),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop(&mut b);
    let all = received(&hook);
    let seen: BTreeSet<i64> = first_run.iter().copied().collect();
    let resent = all[first_run.len()..]
        .iter()
        .filter(|i| seen.contains(i))
        .count();
    let t = tally(&want, &all);
    figure(
        "sigterm-under-load",
        t,
        &format!(
            "live_ev_s=200 delivered_at_sigterm={in_flight} shutdown_s={:.1} resent_after_restart={resent}",
            shutdown.as_secs_f64()
        ),
    );
    assert!(shutdown < Duration::from_secs(20));
    assert_eq!(t.lost, 0);
    assert_eq!(resent, 0, "a clean stop saves what was delivered");
    assert_eq!(t.dups, 0);
}

/// reliability.md §5 row 26: the API key, a webhook URL token, a webhook Authorization header
/// and a Splunk HEC token, with `DOCSPACE_SIEM_LOG=trace`, through a 401, a 503, a 400 (dead
/// letter) and a HEC 503. None of them may appear in stdout, stderr or any file of state_dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_output_at_trace_level() {
    const URL_TOKEN: &str = "urltoken-3c9f1a7e55";
    const BEARER: &str = "whsecret-51d2e8b07a";
    const HEC_TOKEN: &str = "5b1f9d7e-6c2a-4e8b-9f0d-3a7c1e2b4d6f";
    let hook = HttpCollector::start().await;
    hook.script(&[(503, None), (400, None)]);
    let hec = Hec::start(HEC_TOKEN).await;
    hec.script(&[(503, Some(9), None)]);
    let (sim, server) = portal(SimZone::Utc).await;
    sim.generate(
        SimStream::Login,
        120,
        ago(time::Duration::hours(5)),
        ago(time::Duration::hours(4)),
    );
    sim.set_mode(SimMode::Unauthorized);
    let want = login_ids(&sim);
    let w = Workdir::new();
    let cfg = config(
        &w,
        "shutdown_timeout = \"5s\"",
        &(portal_cfg("main", &server.url, &[("streams", "[\"login\"]")])
            + &hook_sink(
                "hook",
                &format!("{}?token={URL_TOKEN}", hook.url),
                "json",
                &format!(
                    "headers = {{ Authorization = \"Bearer {BEARER}\" }}\nbatch = {{ max_events = 50, timeout = \"10ms\" }}"
                ),
            )
            + &format!(
                "[sinks.hec]\ntype = \"splunk_hec\"\nformat = \"ecs\"\nendpoint = \"{}\"\ntoken = \"{HEC_TOKEN}\"\n",
                hec.url()
            )),
    );
    let mut a = spawn_agent(&cfg, w.path(), "a", &[("DOCSPACE_SIEM_LOG", "trace")], &[]);
    eventually(Duration::from_secs(30), "the 401", || {
        a.stderr_text().contains("HTTP 401")
    })
    .await;
    sim.set_mode(SimMode::Normal);
    eventually(Duration::from_secs(60), "delivery to both sinks", || {
        let hec_ids: BTreeSet<i64> = hec.ids().into_iter().collect();
        want.is_subset(&hec_ids) && hook.events().len() + 50 >= want.len()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop(&mut a);
    assert!(
        w.state().join("dead-letter/hook.ndjson").is_file(),
        "the 400 made a dead letter"
    );
    // Every output: stdout, stderr, every file under state_dir.
    let mut files = vec![a.stdout.clone(), a.stderr.clone()];
    let mut stack = vec![w.state()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    let mut bytes = 0;
    let mut hits = Vec::new();
    for f in &files {
        let text = String::from_utf8_lossy(&std::fs::read(f).expect("read")).into_owned();
        bytes += text.len();
        for secret in [KEY, URL_TOKEN, BEARER, HEC_TOKEN] {
            let n = text.matches(secret).count();
            if n > 0 {
                hits.push(format!("{} holds {secret:?} {n}×", f.display()));
            }
        }
    }
    let trace_lines = a
        .stderr_text()
        .lines()
        .filter(|l| l.contains("TRACE"))
        .count();
    figure(
        "secrets-at-trace",
        tally(&want, &hec.ids()),
        &format!(
            "files_scanned={} bytes_scanned={bytes} trace_lines={trace_lines} secret_hits={}",
            files.len(),
            hits.len()
        ),
    );
    assert!(trace_lines > 0, "the run logged at trace level");
    assert!(hits.is_empty(), "secrets leaked:\n{}", hits.join("\n"));
}
