//! The DocSpace server as it really behaves (docs/docspace-api.md §14), each fact a mode of the
//! simulator: the "latest 20 rows" fallback and its two causes, the DST fall-back hour dated an
//! hour late, ties in no fixed order, a row that makes every answer holding it fail. Each test
//! counts what arrived against what the portal holds: lost 0 (the unreadable row aside, which
//! is named).

use std::collections::BTreeSet;
use std::time::Duration as StdDuration;

use docspace_siem::event::Stream;
use docspace_siem::simulator::{SimEvent, SimMode, SimStream, SimZone};
use docspace_siem::source::docspace::{Client, SourceError};
use serde_json::Value;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use crate::support::{HttpCollector, KEY, Scenario, Workdir, eventually, ids_of, portal};

fn client(url: &str) -> Client {
    crate::support::docspace_client(url, KEY)
}

/// Starts the agent of `s` (`portal_extra`: its portal keys) into a webhook collector of raw
/// rows, with `/health` on a free port; the port is returned.
fn agent_into_hook(s: Scenario, portal_extra: &str, hook: &HttpCollector) -> (Scenario, u16) {
    let port = crate::support::free_port();
    let mut s = s
        .top(&format!("[api]\naddress = \"127.0.0.1:{port}\""))
        .portal(portal_extra)
        .sink(&format!(
            "[sinks.hook]\ntype = \"webhook\"\nformat = \"json\"\nurl = \"{}\"",
            hook.url
        ));
    s.start();
    (s, port)
}

fn set(ids: impl IntoIterator<Item = i64>) -> BTreeSet<i64> {
    ids.into_iter().collect()
}

/// Reads `[start, end]` the way a catch-up does: windows of `span`, each starting `overlap`
/// before the last one's end, every window whole or the test fails.
async fn read_in_windows(
    c: &Client,
    stream: Stream,
    start: OffsetDateTime,
    end: OffsetDateTime,
    span: Duration,
    overlap: Duration,
) -> BTreeSet<i64> {
    let mut got = BTreeSet::new();
    let mut mark = start;
    let mut requests = 0;
    while mark < end {
        let to = (mark + span).min(end);
        let w = c
            .window(stream, mark - overlap, to, 100_000)
            .await
            .unwrap_or_else(|e| panic!("{stream} window to {to}: {e}"));
        assert!(!w.too_many);
        requests += w.requests;
        got.extend(w.events.iter().map(|e| e.id));
        mark = to;
    }
    // Figures for RELIABILITY.md (`--nocapture`).
    eprintln!(
        "{stream}: windows of {span}: {} rows, {requests} requests",
        got.len()
    );
    got
}

/// [`read_in_windows`] over `span` in windows of `minutes` (2-min overlap): every row of
/// `want` read, or the test fails naming the lost ones.
async fn assert_read_whole(
    c: &Client,
    stream: Stream,
    want: &BTreeSet<i64>,
    span: (OffsetDateTime, OffsetDateTime),
    minutes: i64,
) {
    let got = read_in_windows(
        c,
        stream,
        span.0,
        span.1,
        Duration::minutes(minutes),
        Duration::minutes(2),
    )
    .await;
    let missing: Vec<_> = want.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "{stream}, windows of {minutes} min: {} lost: {missing:?}",
        missing.len()
    );
}

// ---- §14.1: the fallback ---------------------------------------------------------------------

/// On a busy portal all 20 rows of the fallback lie inside the window asked for: rows prove
/// nothing, the probe does, and the quota names the cause.
#[tokio::test]
async fn the_fallback_is_told_apart_on_a_busy_portal_and_its_cause_named() {
    let (sim, server) = portal(SimZone::Utc).await;
    let now = OffsetDateTime::now_utc();
    sim.generate(
        SimStream::Login,
        561,
        now - Duration::hours(3),
        now - Duration::minutes(2),
    );
    sim.generate(
        SimStream::Audit,
        300,
        now - Duration::hours(3),
        now - Duration::minutes(2),
    );
    let c = client(&server.url);
    for (mode, words) in [
        (SimMode::NoAuditPlan, "audit: false"),
        (
            SimMode::HiddenLoginHistory,
            "hidden by the DocSpace server's configuration",
        ),
    ] {
        sim.set_mode(mode);
        for stream in [Stream::Login, Stream::Audit] {
            // A live window: every fallback row lies inside it.
            let e = c
                .window(
                    stream,
                    now - Duration::minutes(30),
                    now - Duration::minutes(1),
                    10_000,
                )
                .await
                .expect_err("the fallback is never a window");
            assert!(
                matches!(e, SourceError::NoAuditPlan(_)),
                "{mode:?} {stream}: {e}"
            );
            assert!(e.to_string().contains(words), "{mode:?} {stream}: {e}");
        }
    }
    sim.set_mode(SimMode::Unpaid);
    let e = c
        .window(Stream::Login, now - Duration::hours(1), now, 10_000)
        .await
        .expect_err("unpaid");
    assert!(matches!(e, SourceError::Unpaid), "{e}");
    assert!(e.to_string().contains("unpaid"), "{e}");
    sim.set_mode(SimMode::PaymentRequired);
    let e = c
        .window(Stream::Login, now - Duration::hours(1), now, 10_000)
        .await
        .expect_err("402 with an envelope");
    assert!(matches!(e, SourceError::PaymentRequired(_)), "{e}");
    sim.set_mode(SimMode::Normal);
    let w = c
        .window(Stream::Login, now - Duration::hours(4), now, 10_000)
        .await
        .expect("the real endpoint");
    assert_eq!(
        set(w.events.iter().map(|e| e.id)),
        set(sim.ids(SimStream::Login))
    );
}

fn watermark(w: &Workdir) -> Option<String> {
    let text = std::fs::read_to_string(w.state().join("cursors/main.login.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["watermark"].as_str().map(str::to_owned)
}

/// `start_from = "3h"` on a portal that falls back: nothing is sent, nothing saved, /health
/// says why; once the plan answers, every row since the cursor arrives. Then the plan is lost
/// again while the agent runs (the hidden section this time): the cursor stays where it was,
/// and every row written meanwhile arrives once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_lost_and_found_again_loses_nothing() {
    let s = Scenario::new(SimZone::Utc).await;
    let sim = s.sim.clone();
    let now = OffsetDateTime::now_utc();
    sim.generate(
        SimStream::Login,
        561,
        now - Duration::minutes(170),
        now - Duration::minutes(2),
    );
    sim.set_mode(SimMode::NoAuditPlan);
    let hook = HttpCollector::start().await;
    let (mut s, port) = agent_into_hook(s, "streams = [\"login\"]\nstart_from = \"3h\"", &hook);
    eventually(StdDuration::from_secs(30), "the named error", || {
        s.agent()
            .stderr_text()
            .contains("plan lacks the audit feature")
    })
    .await;
    let health = reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await
        .expect("health");
    assert_eq!(health.status().as_u16(), 503);
    s.watch_polls(3, || {}).await;
    assert!(
        hook.events().is_empty(),
        "fallback rows were taken for data"
    );
    assert_eq!(watermark(&s.work), None, "the cursor did not move");

    sim.set_mode(SimMode::Normal);
    eventually(StdDuration::from_secs(60), "all 561 rows", || {
        hook.events().len() >= 561
    })
    .await;
    assert_eq!(set(ids_of(&hook.events())), set(sim.ids(SimStream::Login)));

    // Lost again while running, with rows written meanwhile.
    eventually(StdDuration::from_secs(30), "a saved cursor", || {
        watermark(&s.work).is_some()
    })
    .await;
    sim.set_mode(SimMode::HiddenLoginHistory);
    eventually(
        StdDuration::from_secs(30),
        "the hidden section named",
        || {
            s.agent()
                .stderr_text()
                .contains("hidden by the DocSpace server")
        },
    )
    .await;
    let held = watermark(&s.work);
    let t = OffsetDateTime::now_utc();
    for i in 0..30 {
        sim.insert(SimEvent::login(t - Duration::seconds(i), 1010));
    }
    s.watch_polls(5, || {
        assert_eq!(
            watermark(&s.work),
            held,
            "the cursor moved while the plan was gone"
        );
    })
    .await;
    assert_eq!(
        watermark(&s.work),
        held,
        "the cursor moved while the plan was gone"
    );
    assert_eq!(hook.events().len(), 561, "fallback rows were sent");
    let health = reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await
        .expect("health");
    assert_eq!(health.status().as_u16(), 503);

    sim.set_mode(SimMode::Normal);
    eventually(StdDuration::from_secs(60), "all 591 rows", || {
        hook.events().len() >= 591
    })
    .await;
    s.drain();
    let got = ids_of(&hook.events());
    assert_eq!(
        set(got.iter().copied()),
        set(sim.ids(SimStream::Login)),
        "lost 0"
    );
    assert_eq!(got.len(), 591, "no duplicates");
}

// ---- §14.2: the DST fall-back hour -----------------------------------------------------------

/// Europe/Berlin, 26 October 2025: rows of 00:00–01:00Z (the first 02:00–03:00) come back dated
/// 01:00–02:00Z. Read in windows of several sizes that end inside that hour, every row arrives,
/// and those certainly late carry their true instant.
#[tokio::test]
async fn the_fall_back_hour_is_read_whole_in_windows_of_any_size() {
    let (sim, server) = portal(SimZone::EuropeBerlin).await;
    sim.set_fall_back_bug(true);
    let start = datetime!(2025-10-25 22:00 UTC);
    let end = datetime!(2025-10-26 03:00 UTC);
    sim.generate(SimStream::Login, 1500, start, end);
    sim.generate(SimStream::Audit, 1500, start, end);
    // The newest rows of both logs lie a day later, so every window is historical.
    sim.generate(
        SimStream::Login,
        200,
        end + Duration::days(1),
        end + Duration::days(1) + Duration::hours(1),
    );
    sim.generate(
        SimStream::Audit,
        200,
        end + Duration::days(1),
        end + Duration::days(1) + Duration::hours(1),
    );
    let c = client(&server.url);
    for (stream, table) in [
        (Stream::Login, SimStream::Login),
        (Stream::Audit, SimStream::Audit),
    ] {
        let want = set(sim.ids(table).into_iter().take(1500));
        for minutes in [7, 20, 45, 90] {
            let (from, to) = (start - Duration::minutes(1), end + Duration::minutes(1));
            assert_read_whole(&c, stream, &want, (from, to), minutes).await;
        }
    }
}

/// Live, on a portal whose zone falls back 15 s into the test: the rows of the hour before are
/// dated an hour late (many in the future), those after are not. 400 rows of history and 330
/// live ones across the fall-back all arrive, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_through_a_fall_back_every_row_arrives() {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).expect("ns");
    let zone = SimZone::FallBackAt {
        at: now + Duration::seconds(15),
        minutes: 60,
    };
    let s = Scenario::new(zone).await;
    let sim = s.sim.clone();
    sim.set_fall_back_bug(true);
    sim.generate(
        SimStream::Login,
        400,
        now - Duration::hours(2),
        now - Duration::seconds(2),
    );
    sim.generate(
        SimStream::Audit,
        400,
        now - Duration::hours(2),
        now - Duration::seconds(2),
    );
    let hook = HttpCollector::start().await;
    let (mut s, _port) = agent_into_hook(s, "start_from = \"3h\"", &hook);
    // 330 rows live, 11 a second for 30 s, across the fall-back.
    for i in 0..330 {
        let t = OffsetDateTime::now_utc();
        if i % 2 == 0 {
            sim.insert(SimEvent::login(t, 1010));
        } else {
            sim.insert(SimEvent::audit(t, 5011));
        }
        tokio::time::sleep(StdDuration::from_millis(90)).await;
    }
    let total = 800 + 330;
    eventually(StdDuration::from_secs(60), "every row", || {
        hook.events().len() >= total
    })
    .await;
    s.watch_polls(3, || {}).await;
    s.drain();
    let got = ids_of(&hook.events());
    let mut want: BTreeSet<(String, i64)> = BTreeSet::new();
    for (stream, table) in [("login", SimStream::Login), ("audit", SimStream::Audit)] {
        want.extend(sim.ids(table).into_iter().map(|id| (stream.to_owned(), id)));
    }
    let got_keys: BTreeSet<(String, i64)> = hook
        .events()
        .iter()
        .map(|e| {
            (
                e["stream"].as_str().unwrap_or("").to_owned(),
                e["id"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    let missing: Vec<_> = want.difference(&got_keys).collect();
    assert!(missing.is_empty(), "{} lost: {missing:?}", missing.len());
    eprintln!(
        "fall-back live: {} rows expected, {} received",
        want.len(),
        got.len()
    );
    assert_eq!(got.len(), want.len(), "no duplicates");
}

// ---- §14.3: ties -----------------------------------------------------------------------------

/// Bursts of 150, 40 and 260 rows in one second each, among ordinary rows, every answer in a
/// new order of ties: every row of every second arrives, whatever the window or page edges.
#[tokio::test]
async fn every_row_of_a_second_arrives_whatever_the_order_of_ties() {
    let (sim, server) = portal(SimZone::Fixed { minutes: 120 }).await;
    sim.set_random_tie_order(true);
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).expect("ns");
    let start = now - Duration::hours(2);
    for (stream, code) in [(SimStream::Login, 1010), (SimStream::Audit, 5011)] {
        sim.generate(stream, 700, start, now - Duration::minutes(5));
        for (at, n) in [(30, 150), (61, 40), (95, 260)] {
            let second = start + Duration::minutes(at);
            for _ in 0..n {
                let ev = match stream {
                    SimStream::Login => SimEvent::login(second, code),
                    SimStream::Audit => SimEvent::audit(second, code),
                };
                sim.insert(ev);
            }
        }
    }
    let c = client(&server.url);
    for (stream, table) in [
        (Stream::Login, SimStream::Login),
        (Stream::Audit, SimStream::Audit),
    ] {
        let want = set(sim.ids(table));
        for minutes in [13, 120] {
            let from = start - Duration::minutes(1);
            assert_read_whole(&c, stream, &want, (from, now), minutes).await;
        }
    }
}

/// The same through the agent: a catch-up and then live bursts, every answer in a new order
/// of ties; every row arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ties_through_the_agent_lose_nothing() {
    let s = Scenario::new(SimZone::Utc).await;
    let sim = s.sim.clone();
    sim.set_random_tie_order(true);
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).expect("ns");
    sim.generate(
        SimStream::Login,
        500,
        now - Duration::hours(1),
        now - Duration::minutes(3),
    );
    for (ago, n) in [(50, 180), (20, 120)] {
        for _ in 0..n {
            sim.insert(SimEvent::login(now - Duration::minutes(ago), 1010));
        }
    }
    let hook = HttpCollector::start().await;
    let (mut s, _port) = agent_into_hook(
        s,
        "streams = [\"login\"]\nstart_from = \"2h\"\ncatchup_window = \"7m\"",
        &hook,
    );
    eventually(StdDuration::from_secs(60), "the catch-up", || {
        hook.events().len() >= 800
    })
    .await;
    // Live: a burst of 230 rows in one second.
    let t = OffsetDateTime::now_utc().replace_nanosecond(0).expect("ns");
    for _ in 0..230 {
        sim.insert(SimEvent::login(t, 1013));
    }
    eventually(StdDuration::from_secs(30), "the live burst", || {
        hook.events().len() >= 1030
    })
    .await;
    s.settle().await;
    s.drain();
    let got = ids_of(&hook.events());
    assert_eq!(
        set(got.iter().copied()),
        set(sim.ids(SimStream::Login)),
        "lost 0"
    );
    assert_eq!(got.len(), 1030, "no duplicates");
}

// ---- §14.4: a row the server cannot convert --------------------------------------------------

/// One login row with a NULL ip in the middle of 2,150: every answer holding it is a 500. The
/// agent reads around it, delivers the 2,149 others, and names the row in an ERROR and a
/// metric; it never stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_the_server_cannot_convert_is_read_around_and_named() {
    let s = Scenario::new(SimZone::Utc).await;
    let (sim, server) = (s.sim.clone(), &s.server);
    let now = OffsetDateTime::now_utc();
    sim.generate(
        SimStream::Login,
        1100,
        now - Duration::hours(5),
        now - Duration::hours(3),
    );
    let bad = sim.insert_null_ip_login(now - Duration::hours(3) + Duration::seconds(30));
    sim.generate(
        SimStream::Login,
        1049,
        now - Duration::hours(3) + Duration::minutes(1),
        now - Duration::minutes(2),
    );
    let c = client(&server.url);
    let w = c
        .window(
            Stream::Login,
            now - Duration::hours(6),
            now - Duration::minutes(1),
            100_000,
        )
        .await
        .expect("read around the row");
    let want: BTreeSet<i64> = sim
        .ids(SimStream::Login)
        .into_iter()
        .filter(|id| *id != bad)
        .collect();
    assert_eq!(set(w.events.iter().map(|e| e.id)), want, "every other row");
    assert_eq!(w.unreadable.len(), 1, "{:?}", w.unreadable);

    let hook = HttpCollector::start().await;
    let (mut s, port) = agent_into_hook(
        s,
        "streams = [\"login\"]\nstart_from = \"6h\"\ncatchup_window = \"20m\"",
        &hook,
    );
    eventually(
        StdDuration::from_secs(90),
        "the 2,149 readable rows",
        || hook.events().len() >= 2149,
    )
    .await;
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("docspace_siem_rows_unreadable_total{portal=\"main\",stream=\"login\"} 1"),
        "{metrics}"
    );
    // Live rows after it still arrive.
    sim.insert(SimEvent::login(OffsetDateTime::now_utc(), 1010));
    eventually(StdDuration::from_secs(30), "a live row", || {
        hook.events().len() >= 2150
    })
    .await;
    s.drain();
    let log = s.agent().stderr_text();
    assert!(
        log.contains("ERROR") && log.contains("cannot convert") && log.contains("startIndex"),
        "{log}"
    );
    let got = ids_of(&hook.events());
    let mut want = want;
    want.extend(
        sim.ids(SimStream::Login)
            .into_iter()
            .filter(|id| *id != bad),
    );
    assert_eq!(
        set(got.iter().copied()),
        want,
        "lost 0 but the unreadable row"
    );
    assert!(!got.contains(&bad));
}

// ---- §14.5: audit actions the API never returns ----------------------------------------------

/// Rows of the 11 audit actions that the server writes but its action mappers do not know are
/// left out of every `events/filter` answer: the agent cannot forward them (README says so), and
/// they must not disturb the reading of the rows around them.
#[tokio::test]
async fn audit_actions_the_api_never_returns_leave_the_rest_whole() {
    use docspace_siem::simulator::UNMAPPED_AUDIT_ACTIONS;
    let (sim, server) = portal(SimZone::Utc).await;
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).expect("ns");
    sim.generate(
        SimStream::Audit,
        600,
        now - Duration::hours(2),
        now - Duration::minutes(2),
    );
    let mut hidden = BTreeSet::new();
    for (i, code) in UNMAPPED_AUDIT_ACTIONS.iter().cycle().take(150).enumerate() {
        let at = now - Duration::hours(2) + Duration::seconds(40 * i as i64);
        hidden.insert(sim.insert(SimEvent::audit(at, *code)));
    }
    let c = client(&server.url);
    let got = read_in_windows(
        &c,
        Stream::Audit,
        now - Duration::hours(2) - Duration::minutes(1),
        now - Duration::minutes(1),
        Duration::minutes(10),
        Duration::minutes(2),
    )
    .await;
    let want: BTreeSet<i64> = sim
        .ids(SimStream::Audit)
        .into_iter()
        .filter(|id| !hidden.contains(id))
        .collect();
    assert_eq!(got, want, "every row the API returns, none it hides");
}
