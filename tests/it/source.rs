//! The DocSpace client against the simulator: paging quirks, time zones, the plan fallback and
//! every error shape.

use std::collections::BTreeSet;
use std::sync::Arc;

use docspace_siem::event::Stream;
use docspace_siem::simulator::{SimEvent, SimFault, SimMode, SimStream, SimZone};
use docspace_siem::source::docspace::{Client, ErrorClass, RateLimiter, SourceError};
use time::{Duration, OffsetDateTime};

use crate::support::{KEY, portal};

fn client(url: &str, key: &str) -> Client {
    crate::support::docspace_client(url, key)
}

#[tokio::test]
async fn login_history_window_is_read_completely_despite_window_before_filter_paging() {
    let (sim, server) = portal(SimZone::EuropeBerlin).await;
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).expect("ns");
    // Old rows inside the window, and 950 newer rows the login endpoint pages through first.
    sim.generate(
        SimStream::Login,
        230,
        now - Duration::hours(10),
        now - Duration::hours(6),
    );
    sim.generate(SimStream::Login, 950, now - Duration::hours(5), now);
    let c = client(&server.url, KEY);
    let from = now - Duration::hours(10) - Duration::seconds(1);
    let to = now - Duration::hours(6) + Duration::seconds(1);
    let w = c
        .window(Stream::Login, from, to, 10_000)
        .await
        .expect("window");
    let got: BTreeSet<i64> = w.events.iter().map(|e| e.id).collect();
    let want: BTreeSet<i64> = sim.ids(SimStream::Login).into_iter().take(230).collect();
    assert_eq!(
        got, want,
        "every row of the historical window, nothing else"
    );
    assert!(w.events.iter().all(|e| e.time >= from && e.time <= to));
    // Probes find the window's start instead of paging through all 950 newer rows.
    assert!(w.requests < 25, "{} requests", w.requests);
}

#[tokio::test]
async fn empty_historical_login_window_terminates() {
    let (sim, server) = portal(SimZone::Utc).await;
    let now = OffsetDateTime::now_utc();
    sim.generate(SimStream::Login, 500, now - Duration::hours(2), now);
    sim.generate(
        SimStream::Login,
        50,
        now - Duration::days(3),
        now - Duration::days(2),
    );
    let c = client(&server.url, KEY);
    let w = c
        .window(
            Stream::Login,
            now - Duration::days(1),
            now - Duration::hours(12),
            10_000,
        )
        .await
        .expect("window");
    assert!(w.events.is_empty());
    assert!(w.requests < 25, "{} requests", w.requests);
}

#[tokio::test]
async fn live_inserts_while_paging_cause_no_miss() {
    let (sim, server) = portal(SimZone::Fixed { minutes: 345 }).await;
    let now = OffsetDateTime::now_utc();
    sim.generate(
        SimStream::Login,
        480,
        now - Duration::minutes(50),
        now - Duration::minutes(2),
    );
    sim.generate(
        SimStream::Audit,
        480,
        now - Duration::minutes(50),
        now - Duration::minutes(2),
    );
    let before_login: BTreeSet<i64> = sim.ids(SimStream::Login).into_iter().collect();
    let before_audit: BTreeSet<i64> = sim.ids(SimStream::Audit).into_iter().collect();
    sim.insert_during_paging(SimStream::Login, 7, 10);
    sim.insert_during_paging(SimStream::Audit, 7, 10);
    let c = client(&server.url, KEY);
    for (stream, before) in [(Stream::Login, before_login), (Stream::Audit, before_audit)] {
        let w = c
            .window(
                stream,
                now - Duration::hours(1),
                now + Duration::minutes(1),
                10_000,
            )
            .await
            .expect("window");
        let got: BTreeSet<i64> = w.events.iter().map(|e| e.id).collect();
        let missing: Vec<_> = before.difference(&got).collect();
        assert!(missing.is_empty(), "{stream}: missed {missing:?}");
    }
}

#[tokio::test]
async fn portal_time_zones_and_dst_become_utc() {
    let (sim, server) = portal(SimZone::EuropeBerlin).await;
    // Either side of the 2025-03-30 01:00 UTC switch to CEST, and of 2025-10-26 01:00 UTC back.
    let instants = [
        time::macros::datetime!(2025-03-30 00:59:59 UTC),
        time::macros::datetime!(2025-03-30 01:00:01 UTC),
        time::macros::datetime!(2025-10-26 00:59:59 UTC),
        time::macros::datetime!(2025-10-26 01:00:01 UTC),
    ];
    for t in instants {
        sim.insert(SimEvent::audit(t, 5011));
    }
    let c = client(&server.url, KEY);
    let w = c
        .window(
            Stream::Audit,
            time::macros::datetime!(2025-03-01 0:00 UTC),
            time::macros::datetime!(2025-11-01 0:00 UTC),
            1000,
        )
        .await
        .expect("window");
    let mut got: Vec<OffsetDateTime> = w.events.iter().map(|e| e.time).collect();
    got.sort();
    assert_eq!(got, instants.to_vec());
    let raw: Vec<&str> = w.events.iter().map(|e| e.date_text()).collect();
    assert!(
        raw.iter().any(|d| d.ends_with("+01:00")) && raw.iter().any(|d| d.ends_with("+02:00")),
        "{raw:?}"
    );
}

#[tokio::test]
async fn plan_without_audit_is_detected_not_taken_for_data() {
    let (sim, server) = portal(SimZone::Utc).await;
    let now = OffsetDateTime::now_utc();
    sim.generate(SimStream::Login, 200, now - Duration::days(2), now);
    sim.set_mode(SimMode::NoAuditPlan);
    let c = client(&server.url, KEY);
    let err = c
        .window(
            Stream::Login,
            now - Duration::days(30),
            now - Duration::days(29),
            1000,
        )
        .await
        .expect_err("fallback must be an error");
    assert!(matches!(err, SourceError::NoAuditPlan(_)), "{err}");
    assert_eq!(err.class(), ErrorClass::NeedsOperator);
    assert!(
        err.to_string().contains("plan lacks the audit feature"),
        "{err}"
    );
}

#[tokio::test]
async fn every_error_shape_is_named_and_classified() {
    let (sim, server) = portal(SimZone::Utc).await;
    let now = OffsetDateTime::now_utc();
    sim.generate(SimStream::Audit, 10, now - Duration::hours(1), now);
    let c = client(&server.url, KEY);
    let get = || c.window(Stream::Audit, now - Duration::hours(2), now, 1000);

    sim.inject(
        SimFault::TooManyRequests {
            retry_after: Some(3),
        },
        1,
    );
    let e = get().await.expect_err("429");
    assert_eq!(e.class(), ErrorClass::RateLimited(Some(3)), "{e}");
    sim.inject(
        SimFault::TooManyRequests {
            retry_after: Some(0),
        },
        1,
    );
    assert_eq!(
        get().await.expect_err("429").class(),
        ErrorClass::RateLimited(Some(0))
    );
    sim.inject(SimFault::ServerError(503), 1);
    assert!(matches!(
        get().await.expect_err("503"),
        SourceError::Server { status: 503, .. }
    ));
    sim.inject(SimFault::BadGatewayHtml, 1);
    assert_eq!(get().await.expect_err("502").class(), ErrorClass::Transient);
    sim.inject(SimFault::Truncated, 1);
    assert!(matches!(
        get().await.expect_err("truncated"),
        SourceError::Malformed(_)
    ));
    sim.inject(SimFault::Malformed, 1);
    assert!(matches!(
        get().await.expect_err("malformed"),
        SourceError::Malformed(_)
    ));
    assert_eq!(get().await.expect("recovers").events.len(), 10);

    sim.set_mode(SimMode::Forbidden);
    let e = get().await.expect_err("403");
    assert!(
        matches!(e, SourceError::Forbidden(_)) && e.to_string().contains("admin"),
        "{e}"
    );
    sim.set_mode(SimMode::PaymentRequired);
    let e = get().await.expect_err("402");
    assert!(e.to_string().contains("plan"), "{e}");
    sim.set_mode(SimMode::Normal);

    let bad = client(&server.url, "sk-wrong");
    let e = bad
        .window(Stream::Audit, now - Duration::hours(2), now, 1000)
        .await
        .expect_err("401");
    assert!(matches!(e, SourceError::Unauthorized));
    assert!(
        !e.to_string().contains("sk-wrong"),
        "the key must not leak: {e}"
    );
    assert!(sim.requests().iter().any(|r| !r.authorized));
}

#[tokio::test]
async fn requests_send_utc_with_z_and_full_pages() {
    let (sim, server) = portal(SimZone::Fixed { minutes: -210 }).await;
    let now = OffsetDateTime::now_utc();
    sim.generate(SimStream::Audit, 5, now - Duration::hours(1), now);
    let c = client(&server.url, KEY);
    c.window(Stream::Audit, now - Duration::hours(2), now, 1000)
        .await
        .expect("window");
    // The window's page, then the plan probe (a second of the year 2000, count 1).
    let requests = sim.requests();
    let probe = requests.last().expect("the probe");
    assert!(
        probe.query.contains("from=2000-01-01") && probe.query.contains("count=1"),
        "{}",
        probe.query
    );
    let r = requests.iter().rev().nth(1).expect("the page").clone();
    assert!(
        r.path.ends_with("/api/2.0/security/audit/events/filter"),
        "{}",
        r.path
    );
    assert!(r.query.contains("count=100"), "{}", r.query);
    let from = r
        .query
        .split('&')
        .find(|p| p.starts_with("from="))
        .expect("from");
    let from = from.replace("%3A", ":");
    assert!(
        from.ends_with('Z') && from.len() == "from=2025-01-01T00:00:00Z".len(),
        "{from}"
    );
}

/// A window far denser than `max_window_events` is given up after a few pages, when its
/// density shows it cannot fit, not after `max_window_events` rows: under DocSpace's rate limit
/// each page read of a window that is then read again in parts is a request lost. A window
/// just over the limit is read to the limit (the density may be uneven); either way the rows
/// read are the newest of the window and none is past it.
#[tokio::test]
async fn a_far_too_dense_window_is_given_up_after_a_few_pages() {
    let (sim, server) = portal(SimZone::Utc).await;
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).expect("ns");
    sim.generate(
        SimStream::Login,
        6000,
        now - Duration::hours(6),
        now - Duration::minutes(1),
    );
    let c = limited_client(&server.url, 0, 4);
    let (from, to) = (now - Duration::hours(7), now);
    let dense = c
        .window(Stream::Login, from, to, 3000)
        .await
        .expect("window");
    assert!(dense.too_many);
    assert!(
        dense.requests <= 12,
        "twice the limit: given up after {} requests (reading to the limit takes 31)",
        dense.requests
    );
    assert!(
        dense.events.len() < 3000,
        "{} rows read",
        dense.events.len()
    );
    assert!(dense.events.iter().all(|e| e.time >= from && e.time <= to));
    // 6000 rows spread evenly over the window, 9 % over the limit.
    let from = now - Duration::hours(6) - Duration::seconds(1);
    let near = c
        .window(Stream::Login, from, to, 5500)
        .await
        .expect("window");
    assert!(near.too_many);
    assert!(near.events.len() > 5500, "{} rows read", near.events.len());
    assert!(near.events.iter().all(|e| e.time >= from && e.time <= to));
}

fn limited_client(url: &str, per_second: u32, concurrency: usize) -> Client {
    client(url, KEY).with_limits(
        Arc::new(RateLimiter::new(f64::from(per_second))),
        concurrency,
    )
}

fn assert_same(got: &BTreeSet<i64>, want: &BTreeSet<i64>, what: &str) {
    let missing: Vec<_> = want.difference(got).collect();
    let extra: Vec<_> = got.difference(want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} missing {missing:?}, {} extra {extra:?}",
        missing.len(),
        extra.len()
    );
}

/// Ids in the order the window read them, each kept at its first reading.
fn first_readings(w: &docspace_siem::source::docspace::Window) -> Vec<(i64, OffsetDateTime)> {
    let mut seen = BTreeSet::new();
    w.events
        .iter()
        .filter(|e| seen.insert(e.id))
        .map(|e| (e.id, e.time))
        .collect()
}

/// Pages in flight together (concurrency 6, no client-side limit, 10 ms per answer), every
/// other one held back 80 ms by the portal so that pages are served out of order, and rows
/// inserted at the head before each answer: the window still holds every row that was there
/// before, read newest first (pages used strictly in order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_pages_keep_order_and_lose_nothing_while_rows_are_inserted() {
    let mut failures = Vec::new();
    for stream in [Stream::Login, Stream::Audit] {
        let (sim, server) = portal(SimZone::Fixed { minutes: 120 }).await;
        sim.set_latency(std::time::Duration::from_millis(10));
        let now = OffsetDateTime::now_utc();
        let sim_stream = match stream {
            Stream::Login => SimStream::Login,
            Stream::Audit => SimStream::Audit,
        };
        // Login: a historical window behind 700 newer rows (the walker probes for its start);
        // audit: a live window, which the inserted rows (dated now) fall into and shift.
        let (from, to) = match stream {
            Stream::Login => {
                sim.generate(
                    sim_stream,
                    2400,
                    now - Duration::hours(30),
                    now - Duration::hours(6),
                );
                sim.generate(sim_stream, 700, now - Duration::hours(5), now);
                (
                    now - Duration::hours(31),
                    now - Duration::hours(5) - Duration::minutes(30),
                )
            }
            Stream::Audit => {
                sim.generate(
                    sim_stream,
                    2400,
                    now - Duration::hours(30),
                    now - Duration::minutes(1),
                );
                (now - Duration::hours(31), now + Duration::minutes(1))
            }
        };
        let before: BTreeSet<i64> = sim.ids(sim_stream).into_iter().collect();
        let historical: BTreeSet<i64> = match stream {
            Stream::Login => sim.ids(sim_stream).into_iter().take(2400).collect(),
            Stream::Audit => before.clone(),
        };
        // 2 rows before each of the next 45 answers (fewer than a page in all, so the inserted
        // rows stay above every page but the first), and every other answer held back.
        sim.insert_during_paging(sim_stream, 2, 45);
        for _ in 0..30 {
            sim.inject(SimFault::Delay(std::time::Duration::ZERO), 1);
            sim.inject(SimFault::Delay(std::time::Duration::from_millis(80)), 1);
        }
        let c = limited_client(&server.url, 0, 6);
        let w = c.window(stream, from, to, 100_000).await.expect("window");
        let read = first_readings(&w);
        let got: BTreeSet<i64> = read.iter().map(|(id, _)| *id).collect();
        let missing: Vec<_> = historical.difference(&got).collect();
        if !missing.is_empty() {
            failures.push(format!(
                "{stream}: missed {} rows: {missing:?}",
                missing.len()
            ));
        }
        if !read.windows(2).all(|p| p[0].1 >= p[1].1) {
            failures.push(format!("{stream}: rows not read newest first"));
        }
        assert!(sim.len(sim_stream) > before.len(), "rows were inserted");
        assert!(w.events.iter().all(|e| e.time >= from && e.time <= to));
        println!("FIGURE pipelined_{stream} requests={}", w.requests);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// A catch-up of a week of login history in 12 h windows (10 min overlap), oldest first, read
/// three ways: a fresh client per window (no hint: offset-0 page, probes from scratch), one
/// client throughout (each window's search seeded by where the last one started), and one
/// client throughout while rows are inserted at the head (the hints are off by hundreds of
/// rows). Every window holds exactly the same events all three ways; then a window far from
/// the last hint is read again, with the same result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hinted_login_search_reads_exactly_what_the_unhinted_one_reads() {
    let (sim, server) = portal(SimZone::EuropeBerlin).await;
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).expect("ns");
    let start = now - Duration::days(7) - Duration::hours(2);
    sim.generate(
        SimStream::Login,
        6000,
        now - Duration::days(7),
        now - Duration::hours(2),
    );
    sim.generate(SimStream::Login, 400, now - Duration::minutes(110), now);
    let history: BTreeSet<i64> = sim.ids(SimStream::Login).into_iter().take(6000).collect();
    let windows: Vec<(OffsetDateTime, OffsetDateTime)> = (0..14)
        .map(|i| {
            let wm = start + Duration::hours(12 * i);
            (wm - Duration::minutes(10), wm + Duration::hours(12))
        })
        .collect();
    let read = |c: &Client, (from, to): (OffsetDateTime, OffsetDateTime)| {
        let c = c.clone();
        async move {
            let w = c
                .window(Stream::Login, from, to, 100_000)
                .await
                .expect("window");
            assert!(!w.too_many);
            let ids: BTreeSet<i64> = w.events.iter().map(|e| e.id).collect();
            (ids, w.requests)
        }
    };

    let mut unhinted = Vec::new();
    let mut unhinted_requests = 0;
    for &win in &windows {
        let (ids, n) = read(&limited_client(&server.url, 0, 6), win).await;
        unhinted.push(ids);
        unhinted_requests += n;
    }
    let all: BTreeSet<i64> = unhinted.iter().flatten().copied().collect();
    assert_same(&all, &history, "the windows against the history");

    let hinted = limited_client(&server.url, 0, 6);
    let mut hinted_requests = 0;
    for (i, &win) in windows.iter().enumerate() {
        let (ids, n) = read(&hinted, win).await;
        assert_same(&ids, &unhinted[i], &format!("window {i}"));
        hinted_requests += n;
    }

    sim.insert_during_paging(SimStream::Login, 40, 200);
    let drifting = limited_client(&server.url, 0, 6);
    for (i, &win) in windows.iter().enumerate() {
        let (ids, _) = read(&drifting, win).await;
        assert_same(
            &ids,
            &unhinted[i],
            &format!("window {i} with rows inserted while paging"),
        );
    }
    // The last hint points near the head; the first window lies 6,000 rows further back.
    let (ids, _) = read(&drifting, windows[0]).await;
    assert_same(&ids, &unhinted[0], "a window far from the hint");
    println!(
        "FIGURE hinted_login_search windows={} requests_unhinted={unhinted_requests} requests_hinted={hinted_requests}",
        windows.len()
    );
    assert!(
        hinted_requests < unhinted_requests,
        "hinted {hinted_requests} vs unhinted {unhinted_requests} requests"
    );
}
