//! Faults 1–2 (reliability.md §5): `kill -9` at random moments, crashes inside the cursor write.

use super::*;

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
    settle(&sim, &last).await;
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
        settle(&sim, &a).await;
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
        settle(&sim, &c).await;
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
