//! Fault 8 (issue 19): one failing sink never holds back the others. A healthy syslog sink
//! into the real rsyslog, a Slack sink whose URL answers 404 to every POST, and a webhook whose
//! receiver is down: the healthy sink gets every row, live ones within seconds; once the
//! webhook's receiver starts, the webhook gets every row; the agent never exits.

use super::*;
use crate::support::Rsyslog;

/// The DocSpace ids rsyslog received (`[docspace@32473 id="N"]`).
fn rsyslog_ids(rs: &Rsyslog) -> Vec<i64> {
    rs.messages()
        .iter()
        .filter_map(|m| {
            m["rfc5424-sd"]["docspace@32473"]["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
        })
        .collect()
}

fn has_all(got: &[i64], want: &BTreeSet<i64>) -> bool {
    let got: BTreeSet<i64> = got.iter().copied().collect();
    want.is_subset(&got)
}

// See: issue 19, "Done when" (first item).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_chat_url_and_a_dead_webhook_never_hold_back_a_healthy_syslog_sink() {
    let rs = Rsyslog::start();
    let (sim, server) = portal(SimZone::Utc).await;
    // Slack: every POST answers 404 (the URL was revoked).
    let slack = HttpCollector::start().await;
    slack.script(&vec![(404, None); 100_000]);
    // The webhook's receiver is down: nothing listens on its port until later.
    let hook_port = crate::support::free_port();
    let hook_url = format!("http://127.0.0.1:{hook_port}/ingest");
    sim.generate(
        SimStream::Audit,
        1_500,
        ago(time::Duration::hours(5)),
        ago(time::Duration::minutes(3)),
    );
    sim.generate(
        SimStream::Login,
        1_500,
        ago(time::Duration::hours(5)),
        ago(time::Duration::minutes(3)),
    );
    // A brute force an hour ago: the Slack sink has an alert to post, and its POST is refused.
    let start = ago(time::Duration::hours(1));
    for i in 0..15 {
        sim.insert(SimEvent::login(start + secs(i * 5), 1013));
    }
    let w = Workdir::new();
    let cfg = config(
        &w,
        "shutdown_timeout = \"5s\"",
        &(portal_cfg("main", &server.url, &[("start_from", "\"1d\"")])
            + &format!(
                "[sinks.siem]\ntype = \"syslog\"\nformat = \"cef\"\naddress = \"127.0.0.1:{}\"\nprotocol = \"tcp\"\napp_name = \"ds\"\n\n",
                rs.tcp
            )
            + &format!(
                "[sinks.chat]\ntype = \"slack\"\nurl = \"{}\"\nrules = [\"brute_force\"]\n\n",
                slack.url
            )
            + &hook_sink("hook", &hook_url, "json", "")
            + "[rules.brute_force]\nthreshold = 10\nwindow = \"5m\"\n"),
    );
    let mut a = Agent::start(&cfg, w.path(), "a");

    // The backlog reaches the healthy sink although the other two hold nothing.
    let backlog = all_ids(&sim);
    eventually(
        Duration::from_secs(240),
        "the backlog at the healthy syslog sink",
        || has_all(&rsyslog_ids(&rs), &backlog),
    )
    .await;
    assert!(alive(&mut a), "{}", a.stderr_text());
    assert!(
        posts(&slack) == 0 && !slack_posted(&slack),
        "the slack mock takes nothing"
    );

    // Live rows reach it within seconds.
    let live_at = ago(time::Duration::seconds(2));
    for i in 0..20 {
        sim.insert(SimEvent::audit(live_at + secs(i % 2), 5011));
    }
    let live = all_ids(&sim);
    let t0 = Instant::now();
    eventually(
        Duration::from_secs(60),
        "live rows at the healthy sink",
        || has_all(&rsyslog_ids(&rs), &live),
    )
    .await;
    let live_after = t0.elapsed();
    assert!(alive(&mut a), "{}", a.stderr_text());

    // The webhook's receiver starts: it gets every row.
    let hook = HttpCollector::start_on(hook_port).await;
    eventually(
        Duration::from_secs(240),
        "every row at the webhook once its receiver is up",
        || delivered_all(&hook, &live),
    )
    .await;
    // Still live afterwards: new rows reach both.
    sim.insert(SimEvent::audit(ago(time::Duration::seconds(2)), 5011));
    let last = all_ids(&sim);
    eventually(Duration::from_secs(60), "a later row at both sinks", || {
        has_all(&rsyslog_ids(&rs), &last) && delivered_all(&hook, &last)
    })
    .await;
    assert!(alive(&mut a), "{}", a.stderr_text());
    let err = a.stderr_text();
    stop(&mut a);
    let syslog = tally(&last, &rsyslog_ids(&rs));
    let webhook = tally(&last, &received(&hook));
    figure(
        "detach-syslog",
        syslog,
        &format!("live_rows_after_s={:.1}", live_after.as_secs_f64()),
    );
    figure("detach-webhook", webhook, "");
    assert_eq!(syslog.lost, 0);
    assert_eq!(webhook.lost, 0);
    assert!(err.contains("sink detached"), "{}", tail(&err, 4000));
    assert!(err.contains("rejoin"), "{}", tail(&err, 4000));
    assert!(
        slack.script_left() < 100_000,
        "the chat sink tried its revoked URL"
    );
}

/// Whether the Slack mock accepted anything (it must not: its URL is revoked).
fn slack_posted(slack: &HttpCollector) -> bool {
    !slack.bodies.lock().expect("lock").is_empty()
}

/// Kills the agent with SIGKILL and waits for it.
fn kill_9(a: &mut Agent) {
    a.signal("KILL");
    let _ = a.wait(Duration::from_secs(10));
}

// See: issue 19, "Done when" (second item). kill -9 while a sink is detached, then while it
// catches up: lost 0 at every sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_a_sink_is_detached_or_catching_up_loses_nothing() {
    let good = HttpCollector::start().await;
    let late_port = crate::support::free_port();
    let late_url = format!("http://127.0.0.1:{late_port}/ingest");
    let (sim, server) = portal(SimZone::Utc).await;
    sim.generate(
        SimStream::Audit,
        3_000,
        ago(time::Duration::hours(5)),
        ago(time::Duration::minutes(3)),
    );
    let want = audit_ids(&sim);
    let w = Workdir::new();
    let cfg = config(
        &w,
        "shutdown_timeout = \"5s\"",
        &(portal_cfg("main", &server.url, &[("streams", "[\"audit\"]")])
            + &hook_sink("good", &good.url, "json", "")
            + &hook_sink(
                "late",
                &late_url,
                "json",
                "batch = { max_events = 50, timeout = \"10ms\" }",
            )),
    );

    // 1. The late sink's receiver is down: it is detached; kill -9.
    let mut a = Agent::start(&cfg, w.path(), "a");
    eventually(
        Duration::from_secs(120),
        "the backlog at the good sink",
        || delivered_all(&good, &want),
    )
    .await;
    eventually(Duration::from_secs(60), "the late sink detached", || {
        a.stderr_text().contains("sink detached")
    })
    .await;
    kill_9(&mut a);

    // 2. Its receiver comes up, slow: the restarted agent catches it up; kill -9 midway.
    let late = HttpCollector::start_on(late_port).await;
    *late.delay.lock().expect("lock") = Duration::from_millis(100);
    let mut b = Agent::start(&cfg, w.path(), "b");
    eventually(Duration::from_secs(120), "part of the catch-up", || {
        late.events().len() >= 600
    })
    .await;
    assert!(
        b.stderr_text().contains("catches up on its own")
            || b.stderr_text().contains("sink detached"),
        "{}",
        tail(&b.stderr_text(), 4000)
    );
    kill_9(&mut b);

    // 3. Restarted with a fast receiver: every row at both sinks, and live rows after.
    *late.delay.lock().expect("lock") = Duration::ZERO;
    let mut c = Agent::start(&cfg, w.path(), "c");
    eventually(
        Duration::from_secs(180),
        "the backlog at the late sink",
        || delivered_all(&late, &want),
    )
    .await;
    sim.insert(SimEvent::audit(ago(time::Duration::seconds(2)), 5011));
    let all = audit_ids(&sim);
    eventually(Duration::from_secs(60), "a live row at both sinks", || {
        delivered_all(&late, &all) && delivered_all(&good, &all)
    })
    .await;
    stop(&mut c);
    let g = tally(&all, &received(&good));
    let l = tally(&all, &received(&late));
    figure("detach-kill9-good", g, "kills=2");
    figure("detach-kill9-late", l, "kills=2");
    assert_eq!(g.lost, 0);
    assert_eq!(l.lost, 0);
    // At most a batch per sink per fault, and the overlap re-read of a restart.
    assert!(g.dups <= 2 * BATCH_EVENTS, "{} duplicates at good", g.dups);
    assert!(l.dups <= 2 * BATCH_EVENTS, "{} duplicates at late", l.dups);
}
