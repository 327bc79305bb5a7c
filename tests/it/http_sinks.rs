//! Splunk HEC and Elasticsearch `_bulk` end to end: the agent binary, a simulated portal, and
//! loopback mocks that implement the wire behaviour of docs/formats.md §4.1 and §4.2 (auth,
//! concatenated HEC envelopes, HEC codes, indexer acknowledgement, NDJSON `_bulk` with `create`
//! and per-item statuses, 413 limits) and record everything they receive.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use docspace_siem::simulator::{SimStream, SimZone};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::scenario::{all_ids, assert_exactly_once, counts, until};
use crate::support::{Agent, Scenario, Workdir, portal, validate_ecs};

use crate::support::mocks::{self, AckMode, Bulk, BulkAuth, Hec};

const HEC_TOKEN: &str = "11111111-2222-4333-8444-hec-t0ken-one";
const HEC_TOKEN_2: &str = "99999999-8888-4777-8666-hec-t0ken-two";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn ago(d: time::Duration) -> OffsetDateTime {
    OffsetDateTime::now_utc() - d
}

fn stop(agent: &mut Agent) {
    agent.signal("TERM");
    assert_eq!(
        agent.wait(Duration::from_secs(20)),
        Some(0),
        "{}",
        agent.stderr_text()
    );
}

/// Epoch milliseconds of an RFC 3339 instant.
fn millis(ts: &str) -> i64 {
    let t = OffsetDateTime::parse(ts, &Rfc3339).unwrap_or_else(|e| panic!("{ts}: {e}"));
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The cursor file of a portal/stream: watermark and the ids it has seen.
fn cursor(w: &Workdir, stream: &str) -> Option<(OffsetDateTime, BTreeSet<i64>)> {
    let text =
        std::fs::read_to_string(w.state().join(format!("cursors/main.{stream}.json"))).ok()?;
    let v: Value = serde_json::from_str(&text).expect("cursor is JSON");
    let wm = OffsetDateTime::parse(v["watermark"].as_str().expect("watermark"), &Rfc3339)
        .expect("watermark is RFC 3339");
    let seen = v["seen"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p[0].as_i64()).collect())
        .unwrap_or_default();
    Some((wm, seen))
}

/// Dead-letter lines of a sink.
fn dead_letters(w: &Workdir, sink: &str) -> Vec<Value> {
    std::fs::read_to_string(w.state().join(format!("dead-letter/{sink}.ndjson")))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("dead letter is JSON"))
        .collect()
}

fn hec_sink(name: &str, hec: &Hec, extra: &str) -> String {
    format!(
        "[sinks.{name}]\ntype = \"splunk_hec\"\nformat = \"ecs\"\nendpoint = \"{}\"\n{extra}\n",
        hec.url()
    )
}

fn bulk_sink(name: &str, es: &Bulk, extra: &str) -> String {
    format!(
        "[sinks.{name}]\ntype = \"elasticsearch\"\nformat = \"ecs\"\nendpoint = \"{}\"\n{extra}\n",
        es.url()
    )
}

fn config(w: &Workdir, server_url: &str, portal_extra: &str, sinks: &str) -> std::path::PathBuf {
    w.config(&format!(
        "state_dir = \"{{state}}\"\n{}\n{sinks}",
        Workdir::portal_toml("main", server_url, portal_extra)
    ))
}

/// The epoch-seconds text HEC's `time` must carry for an ECS `@timestamp`.
fn hec_time(ts: &str) -> String {
    let ms = millis(ts);
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

// ---------------------------------------------------------------------------------------------
// Splunk HEC
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splunk_hec_delivers_every_event_once_with_metadata() {
    let mut s = Scenario::new(SimZone::EuropeBerlin).await;
    s.more_events(
        SimStream::Login,
        180,
        time::Duration::days(2),
        time::Duration::minutes(5),
    );
    s.more_events(
        SimStream::Audit,
        90,
        time::Duration::days(2),
        time::Duration::minutes(5),
    );
    let hec = Hec::start(HEC_TOKEN).await;
    let plain = Hec::start(HEC_TOKEN_2).await;
    let token_file = s.work.path().join("hec-token");
    std::fs::write(&token_file, format!("{HEC_TOKEN_2}\n")).expect("token file");
    let sinks = format!(
        "{}{}",
        hec_sink(
            "hec",
            &hec,
            &format!(
                "token = \"{HEC_TOKEN}\"\nindex = \"security\"\nsourcetype = \"docspace:ecs\"\nsource = \"docspace-prod\"\nhost = \"dshost-01\"\nbatch = {{ max_events = 100, timeout = \"200ms\" }}"
            )
        ),
        hec_sink(
            "hec_defaults",
            &plain,
            &format!("token_file = \"{}\"", token_file.display())
        )
    );
    s = s
        .portal("start_from = \"3d\"\ncatchup_window = \"6h\"")
        .sink(&sinks);
    s.start();
    let want = s.all_ids();
    s.until(
        Duration::from_secs(90),
        "both HEC mocks to get every event",
        || hec.ids().len() >= want.len() && plain.ids().len() >= want.len(),
    )
    .await;
    s.settle().await;
    s.drain();

    for (mock, what) in [(&hec, "hec"), (&plain, "hec_defaults")] {
        assert_exactly_once(&mock.ids(), &want, what);
        let reqs = mock.requests();
        assert!(
            reqs.iter().all(|r| r.status == 200),
            "{what}: non-200 answers {:?}",
            reqs.iter().map(|r| (r.status, r.code)).collect::<Vec<_>>()
        );
        assert!(reqs.iter().all(|r| {
            r.headers
                .get("content-type")
                .is_some_and(|c| c.starts_with("application/json"))
        }));
    }
    assert!(
        hec.requests().iter().all(|r| r.events <= 100),
        "batch.max_events is honoured"
    );

    // Configured metadata, exactly as configured; time is the event's own time.
    let envelopes = hec.accepted();
    for (env, raw_time) in &envelopes {
        assert_eq!(env["host"], "dshost-01", "{env}");
        assert_eq!(env["source"], "docspace-prod", "{env}");
        assert_eq!(env["sourcetype"], "docspace:ecs", "{env}");
        assert_eq!(env["index"], "security", "{env}");
        let ts = env["event"]["@timestamp"].as_str().expect("@timestamp");
        let t = env["time"].as_f64().expect("time is a number");
        assert_eq!(format!("{t:.3}"), hec_time(ts), "time of {env}");
        let decimals = raw_time.split_once('.').map_or(0, |(_, f)| f.len());
        assert!(
            decimals <= 3 && !raw_time.contains(['e', 'E']),
            "time {raw_time} is epoch seconds with at most millisecond digits"
        );
    }
    // Defaults: sourcetype per stream, source docspace-siem, host = portal host, no index.
    for (env, _) in plain.accepted() {
        let ds = env["event"]["event"]["dataset"].as_str().expect("dataset");
        let st = match ds {
            "docspace.login" => "docspace:login",
            "docspace.audit" => "docspace:audit",
            other => panic!("dataset {other}"),
        };
        assert_eq!(env["sourcetype"], st, "{env}");
        assert_eq!(env["host"], "127.0.0.1", "{env}");
        assert_eq!(env["source"], "docspace-siem", "{env}");
        assert!(
            env.get("index").is_none(),
            "no index unless configured: {env}"
        );
    }
    let ndjson: Vec<String> = envelopes
        .iter()
        .map(|(e, _)| e["event"].to_string())
        .collect();
    validate_ecs(&ndjson.join("\n"));

    let err = s.agent().stderr_text();
    assert!(
        !err.contains(HEC_TOKEN) && !err.contains(HEC_TOKEN_2),
        "HEC token in the log:\n{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splunk_hec_retries_busy_and_rate_limits_and_honours_retry_after() {
    let mut s = Scenario::new(SimZone::Utc).await;
    s.more_events(
        SimStream::Audit,
        40,
        time::Duration::hours(3),
        time::Duration::hours(2),
    );
    let hec = Hec::start(HEC_TOKEN).await;
    hec.script(&[
        (503, Some(9), None),
        (500, Some(8), None),
        (429, None, Some(3)),
    ]);
    let sinks = hec_sink(
        "hec",
        &hec,
        &format!("token = \"{HEC_TOKEN}\"\nbatch = {{ max_events = 100, timeout = \"300ms\" }}"),
    );
    s = s
        .portal("streams = [\"audit\"]\nstart_from = \"1d\"")
        .sink(&sinks);
    s.start();
    let want = s.all_ids();
    s.until(
        Duration::from_secs(60),
        "every event after the retries",
        || hec.ids().len() >= want.len(),
    )
    .await;
    s.settle().await;
    s.drain();

    assert_exactly_once(&hec.ids(), &want, "hec");
    let reqs = hec.requests();
    let answers: Vec<u16> = reqs.iter().map(|r| r.status).collect();
    assert_eq!(&answers[..3], &[503, 500, 429], "{answers:?}");
    assert!(answers[3..].iter().all(|s| *s == 200), "{answers:?}");
    // Each retry re-sent the same events.
    assert_eq!(reqs[0].ids, reqs[1].ids);
    assert_eq!(reqs[1].ids, reqs[2].ids);
    assert_eq!(reqs[2].ids, reqs[3].ids);
    let waited = reqs[3].at - reqs[2].at;
    assert!(
        waited >= Duration::from_millis(2900),
        "Retry-After: 3 was not honoured (next try after {waited:?})"
    );
    // Not longer either: the wait the agent planned for the 429 is Retry-After plus its jitter
    // (at most a fifth), read from its log rather than timed, which a loaded machine stretches.
    let planned = s
        .agent()
        .stderr_text()
        .lines()
        .find(|l| l.contains("HTTP 429"))
        .and_then(|l| l.split("retry_in=").nth(1))
        .and_then(|v| v.split('s').next())
        .and_then(|v| v.parse::<f64>().ok())
        .expect("the 429 retry is logged with retry_in");
    assert!((3.0..=3.61).contains(&planned), "planned {planned}s");
    assert!(dead_letters(&s.work, "hec").is_empty());
    let err = s.agent().stderr_text();
    assert!(
        err.contains("HTTP 503") && err.contains("HTTP 500") && err.contains("HTTP 429"),
        "{err}"
    );
    assert!(!err.contains(HEC_TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splunk_hec_code_6_dead_letters_only_the_bad_event() {
    let mut s = Scenario::new(SimZone::Utc).await;
    s.more_events(
        SimStream::Audit,
        60,
        time::Duration::hours(3),
        time::Duration::hours(2),
    );
    let ids = s.sim.ids(SimStream::Audit);
    let bad = ids[31];
    let hec = Hec::start(HEC_TOKEN).await;
    hec.reject_id(bad);
    let sinks = hec_sink(
        "hec",
        &hec,
        &format!("token = \"{HEC_TOKEN}\"\nbatch = {{ max_events = 25, timeout = \"300ms\" }}"),
    );
    s = s
        .portal("streams = [\"audit\"]\nstart_from = \"1d\"")
        .sink(&sinks);
    s.start();
    let mut want = s.all_ids();
    want.remove(&bad);
    s.until(
        Duration::from_secs(60),
        "every good event and the dead letter",
        || hec.ids().len() >= want.len() && !dead_letters(&s.work, "hec").is_empty(),
    )
    .await;
    s.settle().await;
    s.drain();

    assert_exactly_once(&hec.ids(), &want, "hec");
    let reqs = hec.requests();
    let k = reqs
        .iter()
        .position(|r| r.code == Some(6))
        .expect("a code 6 answer");
    let n = reqs[k]
        .ids
        .iter()
        .position(|i| *i == bad)
        .expect("bad id sent");
    assert_eq!(reqs[k].accepted, n, "events before N were accepted");
    // Only the events after N are sent again, in order.
    let after: Vec<i64> = reqs[k].ids[n + 1..].to_vec();
    if !after.is_empty() {
        let next = &reqs[k + 1];
        assert_eq!(
            next.ids, after,
            "the re-send holds exactly the events after N"
        );
    }
    assert_eq!(
        reqs.iter().filter(|r| r.ids.contains(&bad)).count(),
        1,
        "the bad event is never re-sent"
    );

    let dl = dead_letters(&s.work, "hec");
    assert_eq!(dl.len(), 1, "{dl:?}");
    assert_eq!(dl[0]["event"]["id"].as_i64(), Some(bad), "{}", dl[0]);
    let reason = dl[0]["reason"].as_str().expect("reason");
    assert!(reason.contains("code 6"), "{reason}");
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(s.work.state().join("dead-letter/hec.ndjson"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splunk_hec_413_splits_the_batch() {
    let mut s = Scenario::new(SimZone::Utc).await;
    s.more_events(
        SimStream::Login,
        160,
        time::Duration::hours(3),
        time::Duration::hours(2),
    );
    let hec = Hec::start(HEC_TOKEN).await;
    let limit = 40_000;
    hec.set_max_content_length(limit);
    let sinks = hec_sink(
        "hec",
        &hec,
        &format!("token = \"{HEC_TOKEN}\"\nbatch = {{ max_events = 200, timeout = \"500ms\" }}"),
    );
    s = s
        .portal("streams = [\"login\"]\nstart_from = \"1d\"")
        .sink(&sinks);
    s.start();
    let want = s.all_ids();
    s.until(
        Duration::from_secs(60),
        "every event in smaller batches",
        || hec.ids().len() >= want.len(),
    )
    .await;
    s.settle().await;
    s.drain();

    assert_exactly_once(&hec.ids(), &want, "hec");
    let reqs = hec.requests();
    assert!(reqs.iter().any(|r| r.status == 413), "a 413 happened");
    assert!(
        reqs.iter()
            .filter(|r| r.status == 200)
            .all(|r| r.body_len <= limit)
    );
    // Order kept: the accepted stream is in time order.
    let ts: Vec<String> = hec
        .accepted()
        .iter()
        .map(|(e, _)| e["event"]["@timestamp"].as_str().expect("ts").to_owned())
        .collect();
    assert!(
        ts.windows(2).all(|p| p[0] <= p[1]),
        "out of order after splits"
    );
    assert!(dead_letters(&s.work, "hec").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splunk_hec_ack_polls_until_indexed_and_the_cursor_advances() {
    let mut s = Scenario::new(SimZone::Utc).await;
    s.more_events(
        SimStream::Login,
        80,
        time::Duration::hours(3),
        time::Duration::hours(2),
    );
    let hec = Hec::start(HEC_TOKEN).await;
    hec.require_ack(AckMode::AfterPolls(2));
    let sinks = hec_sink(
        "hec",
        &hec,
        &format!(
            "token = \"{HEC_TOKEN}\"\nack = true\nbatch = {{ max_events = 30, timeout = \"300ms\" }}"
        ),
    );
    s = s
        .portal("streams = [\"login\"]\nstart_from = \"1d\"")
        .sink(&sinks);
    s.start();
    let want = s.all_ids();
    s.until(Duration::from_secs(60), "every event", || {
        hec.ids().len() >= want.len()
    })
    .await;
    cursor_reaches(s.agent(), &s.work, sim_newest(&hec)).await;
    s.drain();

    assert_exactly_once(&hec.ids(), &want, "hec");
    let reqs = hec.requests();
    let channels: BTreeSet<String> = reqs
        .iter()
        .map(|r| {
            r.headers
                .get("x-splunk-request-channel")
                .cloned()
                .expect("every request carries a channel")
        })
        .collect();
    assert_eq!(channels.len(), 1, "one channel per sink: {channels:?}");
    let channel = channels.into_iter().next().expect("channel");
    assert!(mocks::is_guid(&channel), "{channel}");
    // Every ackId handed out was polled on that channel until it turned true.
    let polls = hec.ack_polls();
    assert!(polls.iter().all(|p| p.channel == channel));
    for r in reqs.iter().filter(|r| r.status == 200) {
        let id = r.ack_id.expect("ackId");
        let n = polls.iter().filter(|p| p.ids.contains(&id)).count();
        assert!(n >= 2, "ack {id} was polled {n} times");
    }
    assert!(
        reqs.iter().all(|r| r.status == 200),
        "no re-send while acks confirm"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splunk_hec_unconfirmed_acks_resend_the_batch_and_hold_the_cursor() {
    let mut s = Scenario::new(SimZone::Utc).await;
    s.more_events(
        SimStream::Login,
        30,
        time::Duration::hours(3),
        time::Duration::hours(2),
    );
    let hec = Hec::start(HEC_TOKEN).await;
    hec.require_ack(AckMode::Never);
    let sinks = hec_sink(
        "hec",
        &hec,
        &format!(
            "token = \"{HEC_TOKEN}\"\nack = true\nack_timeout = \"2s\"\nbatch = {{ max_events = 100, timeout = \"300ms\" }}"
        ),
    );
    s = s
        .portal("streams = [\"login\"]\nstart_from = \"1d\"")
        .sink(&sinks);
    s.start();
    let want = s.all_ids();
    s.until(
        Duration::from_secs(60),
        "every event re-sent at least once",
        || {
            let c = counts(&hec.ids());
            c.len() >= want.len() && c.values().all(|n| *n >= 2)
        },
    )
    .await;
    // While no ack is confirmed, the cursor stays before the first unconfirmed event.
    let first_event = hec
        .accepted()
        .iter()
        .map(|(e, _)| millis(e["event"]["@timestamp"].as_str().expect("ts")))
        .min()
        .expect("events");
    if let Some((wm, seen)) = cursor(&s.work, "login") {
        assert!(
            ((wm.unix_timestamp_nanos() / 1_000_000) as i64) < first_event,
            "cursor {wm} moved past unconfirmed events"
        );
        assert!(seen.is_disjoint(&want), "cursor remembers unconfirmed ids");
    }
    assert!(dead_letters(&s.work, "hec").is_empty());
    // Now the indexer catches up.
    hec.set_ack_mode(AckMode::AfterPolls(1));
    cursor_reaches(s.agent(), &s.work, sim_newest(&hec)).await;
    s.drain();

    let c = counts(&hec.ids());
    assert_eq!(
        c.keys().copied().collect::<BTreeSet<_>>(),
        want,
        "none lost"
    );
    assert!(
        c.values().all(|n| *n >= 2),
        "duplicates appear, as documented"
    );
    assert!(dead_letters(&s.work, "hec").is_empty());
    let err = s.agent().stderr_text();
    assert!(err.contains("not confirmed within"), "{err}");
    assert!(!err.contains(HEC_TOKEN));
}

/// Watches the cursor `file` (`login`: the stream's; `login.<sink>`: one sink's) for `secs`
/// seconds: it never goes backwards and never passes the first undelivered event (`first_new`,
/// epoch ms) nor remembers an undelivered id.
async fn cursor_holds(
    w: &Workdir,
    file: &str,
    secs: u64,
    first_new: i64,
    undelivered: &BTreeSet<i64>,
) {
    let until = Instant::now() + Duration::from_secs(secs);
    let (mut last, _) = cursor(w, file).expect("cursor");
    while Instant::now() < until {
        let (wm, seen) = cursor(w, file).expect("cursor");
        assert!(wm >= last, "cursor went backwards: {last} → {wm}");
        assert!(
            ((wm.unix_timestamp_nanos() / 1_000_000) as i64) < first_new,
            "cursor {wm} moved past undelivered events (first at {first_new} ms)"
        );
        assert!(
            seen.is_disjoint(undelivered),
            "cursor remembers undelivered ids"
        );
        last = wm;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn cursor_reaches(agent: &Agent, w: &Workdir, ms: i64) {
    cursor_file_reaches(agent, w, "login", ms).await;
}

/// The cursor `file` (see [`cursor_holds`]) reaches `ms`.
async fn cursor_file_reaches(agent: &Agent, w: &Workdir, file: &str, ms: i64) {
    until(
        agent,
        Duration::from_secs(60),
        "the cursor past the newest event",
        || {
            cursor(w, file)
                .is_some_and(|(wm, _)| (wm.unix_timestamp_nanos() / 1_000_000) as i64 >= ms)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_sink_outage_loses_nothing_and_holds_the_cursor() {
    let mut s = Scenario::new(SimZone::Utc).await;
    s.more_events(
        SimStream::Login,
        100,
        time::Duration::hours(5),
        time::Duration::hours(2),
    );
    let hec = Hec::start(HEC_TOKEN).await;
    let es = Bulk::start(BulkAuth::None).await;
    let sinks = [
        hec_sink(
            "hec",
            &hec,
            &format!("token = \"{HEC_TOKEN}\"\nbatch = {{ max_events = 50, timeout = \"200ms\" }}"),
        ),
        bulk_sink(
            "es",
            &es,
            "batch = { max_events = 50, timeout = \"200ms\" }",
        ),
    ]
    .concat();
    s = s
        .portal("streams = [\"login\"]\nstart_from = \"1d\"")
        .sink(&sinks);
    s.start();
    let first: BTreeSet<i64> = s.all_ids();
    s.until(Duration::from_secs(60), "the first 100 events", || {
        hec.ids().len() >= first.len() && es.stored_count() >= first.len()
    })
    .await;
    let newest_first = sim_newest(&hec);
    cursor_file_reaches(s.agent(), &s.work, "login.es", newest_first).await;
    cursor_file_reaches(s.agent(), &s.work, "login.hec", newest_first).await;

    // 1. Elasticsearch is down, HEC is up: new events reach HEC, but the Elasticsearch sink's
    //    cursor waits for it (each sink's progress is its own: issue 19).
    es.stop().await;
    let t = OffsetDateTime::now_utc();
    s.sim.generate(
        SimStream::Login,
        60,
        t + time::Duration::seconds(2),
        t + time::Duration::seconds(5),
    );
    let second: BTreeSet<i64> = s.all_ids().difference(&first).copied().collect();
    assert_eq!(second.len(), 60);
    let first_new = (t + time::Duration::seconds(2)).unix_timestamp() * 1000;
    // The new events were polled: they reach the healthy sink (at least the first batch; the
    // pipeline's bounded queues then push back on the poller, as designed).
    s.until(Duration::from_secs(30), "HEC to get new events", || {
        hec.ids().iter().any(|i| second.contains(i))
    })
    .await;
    cursor_holds(&s.work, "login.es", 8, first_new, &second).await;
    assert_eq!(es.stored_count(), first.len(), "nothing stored while down");

    es.restart().await;
    let newest_second = (t + time::Duration::seconds(5)).unix_timestamp() * 1000;
    s.until(Duration::from_secs(90), "Elasticsearch to catch up", || {
        es.stored_count() >= first.len() + second.len()
    })
    .await;
    cursor_file_reaches(s.agent(), &s.work, "login.es", newest_second).await;
    cursor_file_reaches(s.agent(), &s.work, "login.hec", newest_second).await;

    // 2. HEC is down: nothing reaches it, the cursor holds, and it catches up afterwards.
    hec.stop().await;
    let t = OffsetDateTime::now_utc();
    s.sim.generate(
        SimStream::Login,
        40,
        t + time::Duration::seconds(2),
        t + time::Duration::seconds(4),
    );
    let all = s.all_ids();
    let third: BTreeSet<i64> = all
        .iter()
        .filter(|i| !first.contains(i) && !second.contains(i))
        .copied()
        .collect();
    assert_eq!(third.len(), 40);
    let first_new = (t + time::Duration::seconds(2)).unix_timestamp() * 1000;
    s.until(
        Duration::from_secs(30),
        "Elasticsearch to get new events",
        || es.stored_count() > first.len() + second.len(),
    )
    .await;
    cursor_holds(&s.work, "login.hec", 8, first_new, &third).await;
    assert!(
        hec.ids().iter().all(|i| !third.contains(i)),
        "nothing arrived while the mock was down"
    );
    let err = s.agent().stderr_text();
    assert!(
        err.contains("splunk hec") && err.contains("elasticsearch"),
        "the failures are logged:\n{err}"
    );

    hec.restart().await;
    s.until(Duration::from_secs(90), "HEC to catch up", || {
        hec.ids().len() >= all.len()
    })
    .await;
    let newest_third = (t + time::Duration::seconds(4)).unix_timestamp() * 1000;
    cursor_file_reaches(s.agent(), &s.work, "login.hec", newest_third).await;
    cursor_file_reaches(s.agent(), &s.work, "login.es", newest_third).await;
    s.drain();
    assert_exactly_once(&hec.ids(), &all, "hec");
    assert_eq!(es.stored_count(), all.len());
    assert!(es.created().values().all(|n| *n == 1));
    assert!(dead_letters(&s.work, "hec").is_empty() && dead_letters(&s.work, "es").is_empty());
}

/// Epoch ms of the newest event a HEC mock accepted.
fn sim_newest(hec: &Hec) -> i64 {
    hec.accepted()
        .iter()
        .map(|(e, _)| millis(e["event"]["@timestamp"].as_str().expect("ts")))
        .max()
        .expect("events")
}

// ---------------------------------------------------------------------------------------------
// Elasticsearch `_bulk`
// ---------------------------------------------------------------------------------------------

const LOGIN_DS: &str = "logs-docspace.login-default";
const AUDIT_DS: &str = "logs-docspace.audit-default";

/// The `_id` of an event (`Event::unique_id`): the portal's host and port, stream, id.
fn doc_id(portal_url: &str, stream: &str, id: i64) -> String {
    let host = portal_url
        .trim_start_matches("http://")
        .trim_end_matches('/');
    format!("{host}:{stream}:{id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_bulk_creates_each_event_once_into_data_streams() {
    let (sim, server) = portal(SimZone::EuropeBerlin).await;
    sim.generate(
        SimStream::Login,
        150,
        ago(time::Duration::days(1)),
        ago(time::Duration::minutes(5)),
    );
    sim.generate(
        SimStream::Audit,
        70,
        ago(time::Duration::days(1)),
        ago(time::Duration::minutes(5)),
    );
    let es = Bulk::start(BulkAuth::None).await;
    let total = all_ids(&sim).len();
    let run = |w: &Workdir| {
        config(
            w,
            &server.url,
            "start_from = \"2d\"\ncatchup_window = \"6h\"",
            &bulk_sink(
                "es",
                &es,
                "batch = { max_events = 80, timeout = \"200ms\" }",
            ),
        )
    };
    let w = Workdir::new();
    let mut agent = Agent::start(&run(&w), w.path(), "a");
    until(
        &agent,
        Duration::from_secs(90),
        "every event stored",
        || es.stored_count() >= total,
    )
    .await;
    crate::support::scenario::settle(&sim, &agent).await;
    stop(&mut agent);

    let store = es.store();
    assert_eq!(
        store.keys().map(String::as_str).collect::<Vec<_>>(),
        vec![AUDIT_DS, LOGIN_DS],
        "default data stream names per stream"
    );
    for (index, stream, ids) in [
        (LOGIN_DS, "login", sim.ids(SimStream::Login)),
        (AUDIT_DS, "audit", sim.ids(SimStream::Audit)),
    ] {
        let docs = &store[index];
        let want: BTreeSet<String> = ids
            .iter()
            .map(|i| doc_id(&server.url, stream, *i))
            .collect();
        assert_eq!(
            docs.keys().cloned().collect::<BTreeSet<_>>(),
            want,
            "{index}"
        );
        for (id, doc) in docs {
            assert_eq!(
                doc_id(
                    &server.url,
                    stream,
                    doc["event"]["id"]
                        .as_str()
                        .expect("event.id")
                        .parse()
                        .expect("n")
                ),
                *id
            );
            assert_eq!(
                doc["data_stream"],
                json!({"type": "logs", "dataset": format!("docspace.{stream}"), "namespace": "default"}),
                "{doc}"
            );
            assert!(doc["@timestamp"].is_string());
        }
    }
    let reqs = es.requests();
    assert!(reqs.iter().all(|r| r.path == "/_bulk"));
    assert!(reqs.iter().all(|r| r.actions.iter().all(|a| a == "create")));
    assert!(reqs.iter().all(|r| r.docs <= 80));
    assert!(
        es.created().values().all(|n| *n == 1),
        "each document was created once"
    );
    let ndjson: Vec<String> = store
        .values()
        .flat_map(|m| m.values().map(Value::to_string))
        .collect();
    validate_ecs(&ndjson.join("\n"));

    // Again from an empty state_dir over the same events: only 409s, nothing new.
    let before = es.requests().len();
    let w2 = Workdir::new();
    let mut agent = Agent::start(&run(&w2), w2.path(), "b");
    until(
        &agent,
        Duration::from_secs(90),
        "every event offered again",
        || {
            es.requests()[before..]
                .iter()
                .map(|r| r.statuses.iter().filter(|s| **s == 409).count())
                .sum::<usize>()
                >= total
        },
    )
    .await;
    crate::support::scenario::settle(&sim, &agent).await;
    stop(&mut agent);
    let again = &es.requests()[before..];
    assert!(
        again.iter().all(|r| r.statuses.iter().all(|s| *s == 409)),
        "{:?}",
        again.iter().map(|r| &r.statuses).collect::<Vec<_>>()
    );
    assert_eq!(es.stored_count(), total, "no duplicates in the store");
    assert_eq!(es.store(), store, "documents unchanged");
    assert!(es.created().values().all(|n| *n == 1));
    assert!(
        dead_letters(&w2, "es").is_empty(),
        "a 409 is not a dead letter"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_partial_failures_retry_429_items_alone_and_dead_letter_the_400() {
    let mut s = Scenario::new(SimZone::Utc).await;
    s.more_events(
        SimStream::Audit,
        60,
        time::Duration::hours(3),
        time::Duration::hours(2),
    );
    let ids = s.sim.ids(SimStream::Audit);
    let es = Bulk::start(BulkAuth::None).await;
    // Already stored (a 409 means "have it").
    let preseeded: Vec<i64> = vec![ids[2], ids[25], ids[41]];
    for id in &preseeded {
        es.preseed(
            AUDIT_DS,
            &doc_id(&s.server.url, "audit", *id),
            json!({"preseeded": true}),
        );
    }
    // Busy for some documents, twice each.
    let busy: BTreeSet<i64> = [ids[5], ids[6], ids[33]].into_iter().collect();
    for id in &busy {
        es.fail_item(&doc_id(&s.server.url, "audit", *id), &[429, 429]);
    }
    let bad = ids[12];
    es.reject_item(&doc_id(&s.server.url, "audit", bad));
    let sinks = bulk_sink(
        "es",
        &es,
        "batch = { max_events = 20, timeout = \"300ms\" }",
    );
    s = s
        .portal("streams = [\"audit\"]\nstart_from = \"1d\"")
        .sink(&sinks);
    s.start();
    s.until(
        Duration::from_secs(90),
        "every good event stored and the 400 dead-lettered",
        || es.stored_count() >= ids.len() - 1 && !dead_letters(&s.work, "es").is_empty(),
    )
    .await;
    s.settle().await;
    s.drain();

    let store = es.store();
    let docs = &store[AUDIT_DS];
    let want: BTreeSet<String> = ids
        .iter()
        .filter(|i| **i != bad)
        .map(|i| doc_id(&s.server.url, "audit", *i))
        .collect();
    assert_eq!(docs.keys().cloned().collect::<BTreeSet<_>>(), want);
    for id in &preseeded {
        assert_eq!(
            docs[&doc_id(&s.server.url, "audit", *id)],
            json!({"preseeded": true})
        );
    }
    let created = es.created();
    assert!(created.values().all(|n| *n == 1), "{created:?}");
    assert_eq!(created.len(), ids.len() - 1 - preseeded.len());

    // Mixed statuses came back, and 429 items were retried alone.
    let reqs = es.requests();
    let statuses: BTreeSet<u16> = reqs.iter().flat_map(|r| r.statuses.clone()).collect();
    assert!(
        [201, 409, 429, 400].iter().all(|s| statuses.contains(s)),
        "{statuses:?}"
    );
    let busy_ids: BTreeSet<String> = busy
        .iter()
        .map(|i| doc_id(&s.server.url, "audit", *i))
        .collect();
    for id in &busy_ids {
        let tries: Vec<&mocks::BulkRequest> = reqs.iter().filter(|r| r.ids.contains(id)).collect();
        assert_eq!(tries.len(), 3, "{id}: two 429s, then created");
        for retry in &tries[1..] {
            assert!(
                retry.ids.iter().all(|i| busy_ids.contains(i)),
                "a retry of {id} re-sent other documents: {:?}",
                retry.ids
            );
        }
    }
    let bad_id = doc_id(&s.server.url, "audit", bad);
    assert_eq!(
        reqs.iter().filter(|r| r.ids.contains(&bad_id)).count(),
        1,
        "a 400 is never retried"
    );

    let dl = dead_letters(&s.work, "es");
    assert_eq!(dl.len(), 1, "only the 400 is a dead letter: {dl:?}");
    assert_eq!(dl[0]["event"]["id"].as_i64(), Some(bad));
    let reason = dl[0]["reason"].as_str().expect("reason");
    assert!(
        reason.contains("document_parsing_exception")
            && reason.contains("failed to parse field [source.ip]"),
        "ES's reason is kept: {reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_whole_request_503_and_429_are_retried_and_413_splits() {
    let mut s = Scenario::new(SimZone::Utc).await;
    s.more_events(
        SimStream::Login,
        150,
        time::Duration::hours(3),
        time::Duration::hours(2),
    );
    let es = Bulk::start(BulkAuth::None).await;
    es.script(&[(503, None), (429, Some(2))]);
    let limit = 50_000;
    es.set_max_content_length(limit);
    let sinks = bulk_sink(
        "es",
        &es,
        "batch = { max_events = 200, timeout = \"500ms\" }",
    );
    s = s
        .portal("streams = [\"login\"]\nstart_from = \"1d\"")
        .sink(&sinks);
    s.start();
    let total = s.all_ids().len();
    s.until(Duration::from_secs(90), "every event stored", || {
        es.stored_count() >= total
    })
    .await;
    s.settle().await;
    s.drain();

    let reqs = es.requests();
    let answers: Vec<u16> = reqs.iter().map(|r| r.status).collect();
    assert_eq!(&answers[..2], &[503, 429], "{answers:?}");
    assert!(answers.contains(&413), "{answers:?}");
    assert!(
        reqs.iter()
            .filter(|r| r.status == 200)
            .all(|r| r.body_len <= limit)
    );
    let waited = reqs[2].at - reqs[1].at;
    assert!(
        waited >= Duration::from_millis(1900),
        "Retry-After: 2 was not honoured ({waited:?})"
    );
    assert_eq!(es.stored_count(), total);
    assert!(es.created().values().all(|n| *n == 1));
    assert!(dead_letters(&s.work, "es").is_empty());
    assert!(s.agent().stderr_text().contains("HTTP 503"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_api_key_basic_auth_and_opensearch_flavor() {
    let mut s = Scenario::new(SimZone::Utc).await;
    s.more_events(
        SimStream::Audit,
        30,
        time::Duration::hours(3),
        time::Duration::hours(2),
    );
    let api_key = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw==";
    let es_key = Bulk::start(BulkAuth::ApiKey(api_key.to_owned())).await;
    let es_basic = Bulk::start(BulkAuth::Basic("elastic".into(), "s3cret-Pa55".into())).await;
    let os = Bulk::start(BulkAuth::Basic("admin".into(), "Adm1n-os-pw".into())).await;
    let wrong = Bulk::start(BulkAuth::ApiKey("the-right-one".into())).await;
    let pw = s.work.path().join("es-password");
    std::fs::write(&pw, "s3cret-Pa55\n").expect("password file");
    let sinks = [
        bulk_sink("es_key", &es_key, &format!("api_key = \"{api_key}\"")),
        bulk_sink(
            "es_basic",
            &es_basic,
            &format!("username = \"elastic\"\npassword_file = \"{}\"", pw.display()),
        ),
        bulk_sink(
            "os",
            &os,
            "flavor = \"opensearch\"\nusername = \"admin\"\npassword = \"Adm1n-os-pw\"\npipeline = \"docspace geoip\"",
        ),
        bulk_sink("es_wrong", &wrong, "api_key = \"a-stale-k3y\""),
    ]
    .concat();
    s = s
        .portal("streams = [\"audit\"]\nstart_from = \"1d\"")
        .sink(&sinks);
    s.start();
    let total = s.all_ids().len();
    s.until(Duration::from_secs(60), "every event in each store", || {
        es_key.stored_count() >= total
            && es_basic.stored_count() >= total
            && os.stored_count() >= total
            && s.agent().stderr_text().contains("HTTP 401")
    })
    .await;
    s.settle().await;
    s.drain();

    let auth_of = |b: &Bulk| -> BTreeSet<String> {
        b.requests()
            .iter()
            .map(|r| r.headers.get("authorization").cloned().unwrap_or_default())
            .collect()
    };
    assert_eq!(
        auth_of(&es_key),
        BTreeSet::from([format!("ApiKey {api_key}")])
    );
    assert_eq!(
        auth_of(&es_basic),
        BTreeSet::from([format!("Basic {}", mocks::base64("elastic:s3cret-Pa55"))])
    );
    assert_eq!(
        auth_of(&os),
        BTreeSet::from([format!("Basic {}", mocks::base64("admin:Adm1n-os-pw"))])
    );
    assert!(
        os.requests()
            .iter()
            .all(|r| r.query.get("pipeline").map(String::as_str) == Some("docspace geoip")),
        "pipeline is passed as a query parameter"
    );
    for b in [&es_key, &es_basic, &os] {
        assert_eq!(b.stored_count(), total);
        assert!(b.requests().iter().all(|r| r.status == 200));
    }
    // Refused credentials: nothing stored, and the log names the problem. (Whether the events
    // then wait or go to the dead-letter file is the sink loop's policy, not checked here.)
    assert!(!wrong.requests().is_empty());
    assert!(wrong.requests().iter().all(|r| r.status == 401));
    assert_eq!(wrong.stored_count(), 0);
    let err = s.agent().stderr_text();
    assert!(
        err.lines()
            .any(|l| l.contains("HTTP 401") && l.contains("api_key") && l.contains("es_wrong")),
        "a named credential error:\n{err}"
    );
    for secret in [api_key, "s3cret-Pa55", "Adm1n-os-pw", "a-stale-k3y"] {
        assert!(!err.contains(secret), "{secret} in the log:\n{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reaches_the_hec_health_endpoint_and_the_cluster() {
    let (_sim, server) = portal(SimZone::Utc).await;
    let hec = Hec::start(HEC_TOKEN).await;
    let es = Bulk::start(BulkAuth::ApiKey("k3y".into())).await;
    let w = Workdir::new();
    let cfg = config(
        &w,
        &server.url,
        "",
        &[
            hec_sink("hec", &hec, &format!("token = \"{HEC_TOKEN}\"")),
            bulk_sink("es", &es, "api_key = \"k3y\""),
        ]
        .concat(),
    );
    let path = cfg.to_str().expect("utf8").to_owned();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        crate::support::run_cli(&["check", "--config", &path], None)
    })
    .await
    .expect("join");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("sink hec: OK"), "{out}");
    assert!(out.contains("sink es: OK"), "{out}");
    assert!(!out.contains(HEC_TOKEN) && !err.contains(HEC_TOKEN));
}

/// The mocks themselves answer as docs/formats.md §4.1 and §4.2 say (so the tests above judge
/// the agent against the documented wire behaviour, not against the mocks' own ideas).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mocks_follow_the_documented_wire_behaviour() {
    let http = reqwest::Client::new();
    // HEC: auth, concatenated envelopes, code 6 with invalid-event-number, acks, health.
    let hec = Hec::start(HEC_TOKEN).await;
    let post = |path: &str, auth: Option<&str>, body: &str| {
        let mut r = http
            .post(format!("{}{path}", hec.url()))
            .body(body.to_owned());
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r
    };
    let answer = |r: reqwest::Response| async move {
        let s = r.status().as_u16();
        (s, r.json::<Value>().await.unwrap_or(Value::Null))
    };
    let ok = format!("Splunk {HEC_TOKEN}");
    let (s, v) = answer(
        post("/services/collector/event", None, "{}")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!((s, v["code"].as_i64()), (401, Some(2)));
    let (s, v) = answer(
        post("/services/collector/event", Some("Splunk nope"), "{}")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(
        (s, v["code"].as_i64(), v["text"].as_str()),
        (403, Some(4), Some("Invalid token"))
    );
    let two = r#"{"time":1779268502.123,"event":{"a":1}}{"time":"x","event":"b"}{"event":"c"}"#;
    let (s, v) = answer(
        post("/services/collector/event", Some(&ok), two)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!((s, v["code"].as_i64()), (400, Some(6)));
    assert_eq!(v["invalid-event-number"], 1);
    assert_eq!(hec.accepted().len(), 1, "events before N are accepted");
    assert_eq!(hec.accepted()[0].1, "1779268502.123");
    let (s, v) = answer(
        post("/services/collector/event", Some(&ok), r#"{"event":""}"#)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!((s, v["code"].as_i64()), (400, Some(13)));
    let (s, v) = answer(
        post(
            "/services/collector/event",
            Some(&format!(
                "Basic {}",
                mocks::base64(&format!("any:{HEC_TOKEN}"))
            )),
            "{\"event\":\"x\"}\n{\"event\":\"y\"}",
        )
        .send()
        .await
        .expect("send"),
    )
    .await;
    assert_eq!((s, v["code"].as_i64()), (200, Some(0)));
    let health = http
        .get(format!("{}/services/collector/health", hec.url()))
        .send()
        .await
        .expect("health");
    assert_eq!(health.status().as_u16(), 200);
    assert_eq!(health.json::<Value>().await.expect("json")["code"], 17);
    hec.require_ack(AckMode::AfterPolls(2));
    let (s, v) = answer(
        post("/services/collector/event", Some(&ok), r#"{"event":"x"}"#)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(
        (s, v["code"].as_i64()),
        (400, Some(10)),
        "a channel is required"
    );
    let ch = "0a1b2c3d-1111-4222-8333-444455556666";
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (s, v) = answer(
            post("/services/collector/event", Some(&ok), r#"{"event":"x"}"#)
                .header("x-splunk-request-channel", ch)
                .send()
                .await
                .expect("send"),
        )
        .await;
        assert_eq!(s, 200);
        ids.push(v["ackId"].as_u64().expect("ackId"));
    }
    assert!(ids[1] > ids[0], "ackIds increase per channel");
    let poll = || async {
        answer(
            post(
                "/services/collector/ack",
                Some(&ok),
                &json!({"acks": ids}).to_string(),
            )
            .header("x-splunk-request-channel", ch)
            .send()
            .await
            .expect("send"),
        )
        .await
    };
    let (_, first) = poll().await;
    assert_eq!(first["acks"][ids[0].to_string()], false);
    let (_, second) = poll().await;
    assert_eq!(second["acks"][ids[0].to_string()], true);
    assert_eq!(second["acks"][ids[1].to_string()], true);

    // _bulk: content type, trailing newline, create/409 per index+id, data streams, items.
    let es = Bulk::start(BulkAuth::ApiKey("k".into())).await;
    let bulk = |body: &str, ct: &str, auth: &str| {
        http.post(format!("{}/_bulk", es.url()))
            .header("content-type", ct.to_owned())
            .header("authorization", auth.to_owned())
            .body(body.to_owned())
    };
    let nd = "application/x-ndjson";
    let doc = |index: &str, id: &str| {
        format!(
            "{{\"create\":{{\"_index\":\"{index}\",\"_id\":\"{id}\"}}}}\n{{\"@timestamp\":\"2026-05-20T09:15:02.123Z\"}}\n"
        )
    };
    let r = bulk(&doc(LOGIN_DS, "a"), nd, "ApiKey wrong")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 401);
    let r = bulk(&doc(LOGIN_DS, "a"), "application/json", "ApiKey k")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 406);
    let r = bulk(doc(LOGIN_DS, "a").trim_end(), nd, "ApiKey k")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 400, "the body must end with a newline");
    let body = [
        doc(LOGIN_DS, "a"),
        doc(LOGIN_DS, "a"),
        doc(AUDIT_DS, "a"),
        format!("{{\"index\":{{\"_index\":\"{LOGIN_DS}\",\"_id\":\"b\"}}}}\n{{\"@timestamp\":\"x\"}}\n"),
        format!("{{\"create\":{{\"_index\":\"{LOGIN_DS}\",\"_id\":\"c\"}}}}\n{{\"no\":\"timestamp\"}}\n"),
        format!("{{\"create\":{{\"_index\":\"{LOGIN_DS}\",\"_id\":\"d\"}}}}\n{{\"@timestamp\":\"x\",\"data_stream\":{{\"dataset\":\"other\"}}}}\n"),
    ]
    .concat();
    let r = bulk(&body, nd, "ApiKey k").send().await.expect("send");
    assert_eq!(r.status().as_u16(), 200, "HTTP 200 even when items fail");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["errors"], true);
    let statuses: Vec<u64> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            i.as_object().expect("o").values().next().expect("v")["status"]
                .as_u64()
                .expect("s")
        })
        .collect();
    assert_eq!(statuses, vec![201, 409, 201, 400, 400, 400]);
    assert_eq!(
        v["items"][1]["create"]["error"]["type"],
        "version_conflict_engine_exception"
    );
    assert_eq!(es.stored_count(), 2);
}
