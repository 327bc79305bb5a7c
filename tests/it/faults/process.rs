//! Fault 7 (reliability.md §5 rows 24, 26): SIGTERM under load, secrets at trace level.

use super::*;

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
    settle(&sim, &b).await;
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
    settle(&sim, &a).await;
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
