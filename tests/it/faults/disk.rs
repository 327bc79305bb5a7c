//! Fault 3 (reliability.md §5 rows 5, §4): disk full on `state_dir`.

use super::*;

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
        let mountinfo = format!("/proc/{}/mountinfo", holder.id());
        crate::support::eventually_blocking(
            Duration::from_secs(10),
            "the tmpfs mount",
            || {
                if let Some(status) = holder.try_wait().expect("try_wait") {
                    let mut err = String::new();
                    if let Some(mut e) = holder.stderr.take() {
                        let _ = e.read_to_string(&mut err);
                    }
                    panic!(
                        "`unshare -m` + `mount -t tmpfs` is not permitted here ({status}): {err}. This test needs root (CAP_SYS_ADMIN), as CI has."
                    );
                }
                std::fs::read_to_string(&mountinfo)
                    .unwrap_or_default()
                    .lines()
                    .any(|l| l.contains(&format!(" {} ", dir.display())) && l.contains("tmpfs"))
            },
            String::new,
        );
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
    settle(sim, &a).await;

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
    settle(sim, &b).await;
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
