//! The DocSpace client against the simulator: paging quirks, time zones, the plan fallback and
//! every error shape.

use std::collections::BTreeSet;
use std::sync::Arc;

use docspace_siem::event::{PortalInfo, Stream};
use docspace_siem::simulator::{SimEvent, SimFault, SimMode, SimStream, SimZone};
use docspace_siem::source::docspace::{Client, ErrorClass, SourceError};
use secrecy::SecretString;
use time::{Duration, OffsetDateTime};

use crate::support::{KEY, portal};

fn client(url: &str, key: &str) -> Client {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Client::new(
        http,
        url.parse().expect("url"),
        SecretString::from(key.to_owned()),
        Arc::new(PortalInfo::new("main", url)),
    )
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
    let r = sim.requests().into_iter().last().expect("a request");
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
