//! Restarts: SIGTERM drains and saves, kill -9 loses nothing, a corrupt cursor stops the start,
//! a second agent cannot share a state directory.

use std::collections::BTreeSet;
use std::time::Duration;

use docspace_siem::simulator::{SimStream, SimZone};
use time::OffsetDateTime;

use crate::support::scenario::{days, hours, minutes, seconds};
use crate::support::{Agent, HttpCollector, Scenario, Workdir, eventually, ids_of, portal};

fn hook_sink(hook: &str, extra_sink: &str) -> String {
    format!("[sinks.hook]\ntype = \"webhook\"\nformat = \"json\"\nurl = \"{hook}\"\n{extra_sink}\n")
}

/// A portal (from two days back) and a `json` webhook to `hook`, with a 10 s drain limit.
async fn scenario(zone: SimZone, hook: &str, extra_sink: &str) -> Scenario {
    Scenario::new(zone)
        .await
        .top("shutdown_timeout = \"10s\"")
        .portal("start_from = \"2d\"")
        .sink(&hook_sink(hook, extra_sink))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_saves_cursors_and_a_restart_sends_only_new_events() {
    let hook = HttpCollector::start().await;
    let mut s = scenario(
        SimZone::EuropeBerlin,
        &hook.url,
        "batch = { max_events = 50 }",
    )
    .await
    .events(SimStream::Login, 300, days(1), minutes(3))
    .events(SimStream::Audit, 100, days(1), minutes(3));
    s.start();
    s.until(Duration::from_secs(60), "first run delivers", || {
        hook.events().len() >= 400
    })
    .await;
    s.settle().await;
    // The drain's own limit (20 s) is the bound on a clean stop.
    s.drain();
    assert!(s.work.state().join("cursors/main.login.json").is_file());
    assert!(s.work.state().join("cursors/main.audit.json").is_file());
    let first: BTreeSet<i64> = ids_of(&hook.events()).into_iter().collect();
    assert_eq!(first.len(), 400);

    s.more_events(SimStream::Login, 25, seconds(60), seconds(3));
    s.start_as("b");
    s.until(
        Duration::from_secs(60),
        "second run delivers the new events",
        || hook.events().len() >= 425,
    )
    .await;
    s.settle().await;
    s.drain();
    let ids = ids_of(&hook.events());
    assert_eq!(ids.len(), 425, "no event sent twice across a clean restart");
    s.assert_all_once(&ids, "across a clean restart");
    assert!(s.agent().stderr_text().contains("resuming from cursor"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_nothing() {
    let hook = HttpCollector::start().await;
    *hook.delay.lock().expect("lock") = Duration::from_millis(150);
    let mut s = scenario(
        SimZone::Utc,
        &hook.url,
        "batch = { max_events = 20, timeout = \"10ms\" }",
    )
    .await
    .events(SimStream::Login, 1200, days(1), minutes(3));
    let want = s.ids(SimStream::Login);
    let mut kills = 0;
    for round in 0..3 {
        s.start_as(&format!("run{round}"));
        let before = hook.events().len();
        s.until(Duration::from_secs(60), "progress before the kill", || {
            hook.events().len() >= before + 100
        })
        .await;
        let a = s.agent_mut();
        a.signal("KILL");
        assert_eq!(a.wait(Duration::from_secs(10)), None, "killed by a signal");
        kills += 1;
    }
    *hook.delay.lock().expect("lock") = Duration::ZERO;
    s.start_as("final");
    s.until(
        Duration::from_secs(90),
        "every event after the kills",
        || ids_of(&hook.events()).into_iter().collect::<BTreeSet<_>>() == want,
    )
    .await;
    s.drain();
    let total = hook.events().len();
    let dups = total - want.len();
    eprintln!(
        "kill -9 x{kills}: lost 0, duplicates {dups} ({:.1} per kill)",
        dups as f64 / kills as f64
    );
    // At most what was in flight per kill: the sink queue plus the batch being sent.
    assert!(
        dups <= kills
            * (docspace_siem::pipeline::SINK_QUEUE + 2)
            * docspace_siem::pipeline::BATCH_EVENTS
    );
}

#[test]
fn a_corrupt_cursor_is_set_aside_and_stops_the_start_with_exit_78() {
    let w = Workdir::new();
    let cfg = w.config(&format!(
        "state_dir = \"{{state}}\"\n{}\n[sinks.c]\ntype = \"stdout\"\n",
        Workdir::portal_toml("main", "http://127.0.0.1:9", "streams = [\"login\"]")
    ));
    std::fs::create_dir_all(w.state().join("cursors")).expect("mkdir");
    let cursor = w.state().join("cursors/main.login.json");
    std::fs::write(&cursor, [0u8; 512]).expect("write");
    let mut a = Agent::start(&cfg, w.path(), "a");
    assert_eq!(a.wait(Duration::from_secs(20)), Some(78));
    let err = a.stderr_text();
    assert!(
        err.contains("is corrupt") && err.contains("moved to"),
        "{err}"
    );
    assert!(!cursor.exists());
    let aside: Vec<_> = std::fs::read_dir(w.state().join("cursors"))
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("corrupt"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert!(a.stdout_lines().is_empty(), "nothing sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_cannot_share_the_state_directory() {
    let (_sim, server) = portal(SimZone::Utc).await;
    let w = Workdir::new();
    let cfg = w.config(&format!(
        "state_dir = \"{{state}}\"\n{}\n[sinks.c]\ntype = \"stdout\"\n",
        Workdir::portal_toml("main", &server.url, "")
    ));
    let first = Agent::start(&cfg, w.path(), "a");
    eventually(Duration::from_secs(20), "first agent running", || {
        first.stderr_text().contains("running")
    })
    .await;
    let mut second = Agent::start(&cfg, w.path(), "b");
    assert_eq!(second.wait(Duration::from_secs(20)), Some(1));
    assert!(
        second
            .stderr_text()
            .contains("already uses state directory"),
        "{}",
        second.stderr_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_config_and_credentials_without_losing_events() {
    let a = HttpCollector::start().await;
    let b = HttpCollector::start().await;
    let (sim, server) = portal(SimZone::Utc).await;
    let now = OffsetDateTime::now_utc();
    sim.generate(
        SimStream::Login,
        200,
        now - time::Duration::hours(5),
        now - time::Duration::minutes(3),
    );
    let w = Workdir::new();
    let key = w.path().join("api.key");
    std::fs::write(&key, "sk-wrong-key").expect("key");
    let body = |hooks: &str| {
        format!(
            "state_dir = \"{{state}}\"\n[portals.main]\nurl = \"{}\"\napi_key_file = \"{}\"\npoll_interval = \"1s\"\nsettle = \"1s\"\noverlap_every = \"5s\"\nerror_retry = \"1s\"\nstart_from = \"1d\"\nstreams = [\"login\"]\n{hooks}",
            server.url,
            key.display()
        )
    };
    let sink = |name: &str, url: &str| {
        format!("[sinks.{name}]\ntype = \"webhook\"\nformat = \"json\"\nurl = \"{url}\"\n")
    };
    let cfg = w.config(&body(&sink("a", &a.url)));
    let mut agent = Agent::start(&cfg, w.path(), "a");
    eventually(Duration::from_secs(20), "a 401 with the wrong key", || {
        agent.stderr_text().contains("HTTP 401")
    })
    .await;

    // Fix the credential file and add a sink; a broken config first must change nothing.
    std::fs::write(&cfg, "this is not toml [").expect("write");
    agent.signal("HUP");
    eventually(Duration::from_secs(20), "the reload to be refused", || {
        agent
            .stderr_text()
            .contains("still running with the previous one")
    })
    .await;
    std::fs::write(&key, crate::support::KEY).expect("key");
    w.config(&(body(&sink("a", &a.url)) + &sink("b", &b.url)));
    agent.signal("HUP");
    eventually(
        Duration::from_secs(30),
        "both sinks to get every event",
        || a.events().len() >= 200 && b.events().len() >= 200,
    )
    .await;
    assert!(agent.stderr_text().contains("configuration reloaded"));
    let later = OffsetDateTime::now_utc();
    sim.generate(
        SimStream::Login,
        10,
        later - time::Duration::seconds(30),
        later - time::Duration::seconds(3),
    );
    eventually(
        Duration::from_secs(30),
        "new events after the reload",
        || b.events().len() >= 210,
    )
    .await;
    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(20)), Some(0));
    let want: BTreeSet<i64> = sim.ids(SimStream::Login).into_iter().collect();
    assert_eq!(
        ids_of(&a.events()).into_iter().collect::<BTreeSet<_>>(),
        want
    );
    assert_eq!(
        ids_of(&b.events()).into_iter().collect::<BTreeSet<_>>(),
        want
    );
    assert!(
        !agent.stderr_text().contains(crate::support::KEY),
        "the key leaked"
    );
}

/// See: issue 15. A cursor ahead of the clock (the clock was set back, or the state came from
/// another machine) was called corrupt by `run` and even by `cursor show`, and renamed, so the
/// next start re-sent everything from `start_from`. It is shown, kept, and `run` waits for the
/// clock with one warning naming the cursor's time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_ahead_of_the_clock_is_shown_kept_and_waited_for() {
    let (sim, server) = portal(SimZone::Utc).await;
    let now = OffsetDateTime::now_utc();
    sim.generate(
        SimStream::Login,
        10,
        now - time::Duration::hours(1),
        now - time::Duration::minutes(5),
    );
    let w = Workdir::new();
    let cfg = w.config(&format!(
        "state_dir = \"{{state}}\"\n{}\n[sinks.c]\ntype = \"stdout\"\n",
        Workdir::portal_toml(
            "main",
            &server.url,
            "streams = [\"login\"]\nstart_from = \"1d\""
        )
    ));
    let ahead = now + time::Duration::hours(1);
    let shown = docspace_siem::event::format_utc_seconds(ahead);
    std::fs::create_dir_all(w.state().join("cursors")).expect("mkdir");
    let cursor = w.state().join("cursors/main.login.json");
    std::fs::write(
        &cursor,
        format!(
            "{{\"version\":1,\"portal\":\"main\",\"stream\":\"login\",\"watermark\":\"{}\",\"seen\":[],\"updated_at\":\"{}\"}}",
            docspace_siem::event::format_utc_millis(ahead),
            docspace_siem::event::format_utc_millis(now)
        ),
    )
    .expect("write");

    let (code, out, err) = crate::support::run_cli(
        &["cursor", "show", "--config", cfg.to_str().expect("utf8")],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&shown) && out.contains("ahead"), "{out}");

    let mut a = Agent::start(&cfg, w.path(), "a");
    eventually(Duration::from_secs(20), "the warning", || {
        a.stderr_text()
            .contains("the cursor lies ahead of the clock")
    })
    .await;
    // Polls come every second: nothing is read before the cursor's time.
    tokio::time::sleep(Duration::from_secs(3)).await;
    a.signal("TERM");
    assert_eq!(
        a.wait(Duration::from_secs(20)),
        Some(0),
        "{}",
        a.stderr_text()
    );
    let err = a.stderr_text();
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("the cursor lies ahead of the clock"))
        .collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains(&shown), "{}", warnings[0]);
    assert!(
        a.stdout_lines().is_empty(),
        "events before the cursor were sent"
    );
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cursor).expect("the cursor is kept")).expect("json");
    assert_eq!(
        kept["watermark"].as_str(),
        Some(docspace_siem::event::format_utc_millis(ahead).as_str())
    );
    let aside = std::fs::read_dir(w.state().join("cursors"))
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains("corrupt"))
        .count();
    assert_eq!(aside, 0, "the cursor was set aside");
}

/// `cursor show` beside a running agent (which holds the state lock): it reads the saved
/// cursors and exits 0, and the agent goes on delivering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_show_works_while_the_agent_runs() {
    let hook = HttpCollector::start().await;
    let mut s = scenario(SimZone::Utc, &hook.url, "").await.events(
        SimStream::Login,
        50,
        hours(2),
        minutes(5),
    );
    s.start();
    let saved = s.work.state().join("cursors/main.login.json");
    s.until(Duration::from_secs(30), "a saved cursor", || saved.exists())
        .await;
    let path = s.write_config().to_str().expect("utf8").to_owned();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        crate::support::run_cli(&["cursor", "show", "--config", &path], None)
    })
    .await
    .expect("join");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("main") && out.contains("login"), "{out}");
    s.more_events(SimStream::Login, 10, seconds(3), seconds(0));
    s.until(Duration::from_secs(30), "the agent goes on", || {
        ids_of(&hook.events()).len() >= 60
    })
    .await;
    s.drain();
}
