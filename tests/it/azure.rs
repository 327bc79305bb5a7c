//! Microsoft Sentinel (`type = "azure_logs"`) end to end: the agent binary, a simulated
//! portal, and a stand-in for Entra ID's token endpoint and the Logs Ingestion API that follows
//! Microsoft's documented contract (`support::azure`): the records and their columns, tokens
//! that expire mid-run, a storm of 429/503 with `Retry-After`, the 1 MB limit per call, refused
//! credentials in `/health`, and no secret or token in the agent's log.

use std::collections::BTreeSet;
use std::time::Duration;

use docspace_siem::simulator::{SimStream, SimZone};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::Scenario;
use crate::support::azure::{Azure, MAX_CALL};
use crate::support::scenario::assert_exactly_once;

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "0b3f5c1e-1111-2222-3333-444455556666";
const SECRET: &str = "Zq8~azure-client-secret.0123456789abcdef";
const DCR: &str = "dcr-0123456789abcdef0123456789abcdef";
const STREAM: &str = "Custom-DocSpace_CL";

fn minutes(n: i64) -> time::Duration {
    time::Duration::minutes(n)
}

async fn stand_in(streams: &[&str]) -> Azure {
    Azure::start(TENANT, CLIENT, SECRET, DCR, streams).await
}

/// A sink table aimed at the stand-in (as both authority and endpoint); `extra` adds the
/// secret, the stream and anything else.
fn sink(name: &str, az: &Azure, extra: &str) -> String {
    let url = az.url();
    format!(
        "[sinks.{name}]\ntype = \"azure_logs\"\ntenant_id = \"{TENANT}\"\nclient_id = \"{CLIENT}\"\nendpoint = \"{url}\"\nauthority_host = \"{url}\"\ndcr_immutable_id = \"{DCR}\"\n{extra}\n"
    )
}

fn with_secret(stream: &str) -> String {
    format!("client_secret = \"{SECRET}\"\nstream = \"{stream}\"")
}

/// Every id of both streams arrived.
fn has_all(s: &Scenario, az: &Azure) -> bool {
    let have = |st: &str| az.ids(st).into_iter().collect::<BTreeSet<i64>>();
    have("login").is_superset(&s.ids(SimStream::Login))
        && have("audit").is_superset(&s.ids(SimStream::Audit))
}

fn assert_all_once(s: &Scenario, az: &Azure, what: &str) {
    assert_exactly_once(&az.ids("login"), &s.ids(SimStream::Login), what);
    assert_exactly_once(&az.ids("audit"), &s.ids(SimStream::Audit), what);
}

/// Neither the client secret nor any token the stand-in issued is in the agent's log.
fn assert_no_secrets(log: &str, az: &Azure, extra: &[&str]) {
    assert!(!log.contains(SECRET), "the client secret is in the log");
    for s in extra {
        assert!(!log.contains(s), "{s} is in the log");
    }
    for t in az.tokens() {
        assert!(!log.contains(&t), "a bearer token is in the log");
        let sig = t.rsplit('.').next().expect("token");
        assert!(!log.contains(sig), "part of a bearer token is in the log");
    }
}

fn dead_letters(s: &Scenario, sink: &str) -> usize {
    std::fs::read_to_string(s.work.state().join(format!("dead-letter/{sink}.ndjson")))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Epoch milliseconds of an RFC 3339 instant.
fn millis(ts: &str) -> i64 {
    let t = OffsetDateTime::parse(ts, &Rfc3339).unwrap_or_else(|e| panic!("{ts}: {e}"));
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_gets_every_event_once_with_its_own_time_and_columns() {
    let per_stream = stand_in(&["Custom-DocSpace_login_CL", "Custom-DocSpace_audit_CL"]).await;
    let plain = stand_in(&[STREAM]).await;
    let mut s = Scenario::new(SimZone::EuropeBerlin)
        .await
        .events(SimStream::Login, 150, time::Duration::days(2), minutes(5))
        .events(SimStream::Audit, 80, time::Duration::days(2), minutes(5))
        .portal("start_from = \"3d\"\ncatchup_window = \"6h\"");
    let secret_file = s.work.path().join("azure.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("secret file");
    let sinks = format!(
        "{}{}",
        sink(
            "sentinel",
            &per_stream,
            &format!(
                "{}\nbatch = {{ max_events = 100, timeout = \"200ms\" }}",
                with_secret("Custom-DocSpace_{stream}_CL")
            )
        ),
        sink(
            "plain",
            &plain,
            &format!(
                "client_secret_file = \"{}\"\nstream = \"{STREAM}\"\ncompression = \"none\"",
                secret_file.display()
            )
        )
    );
    s = s.sink(&sinks);
    s.start();
    s.until(
        Duration::from_secs(60),
        "both stand-ins to get every event",
        || has_all(&s, &per_stream) && has_all(&s, &plain),
    )
    .await;
    s.settle().await;
    s.drain();

    for (az, what, gzip) in [(&per_stream, "sentinel", true), (&plain, "plain", false)] {
        assert_all_once(&s, az, what);
        let uploads = az.uploads();
        assert!(
            uploads.iter().all(|u| u.status == 204 && u.gzip == gzip),
            "{what}: {uploads:?}"
        );
        assert!(uploads.iter().all(|u| u.decoded_len <= MAX_CALL));
        assert_eq!(az.token_requests(), vec![200], "{what}: one token, cached");
        for (posted_to, r) in az.accepted() {
            let stream = r["Stream"].as_str().expect("Stream");
            if what == "sentinel" {
                assert_eq!(posted_to, format!("Custom-DocSpace_{stream}_CL"), "{r}");
                assert!(r["UniqueId"].as_str().expect("UniqueId").contains(stream));
            }
            assert_eq!(r["Portal"], "main", "{r}");
            assert_eq!(r["EventId"], r["RawData"]["id"], "{r}");
            let tg = r["TimeGenerated"].as_str().expect("TimeGenerated");
            assert!(tg.ends_with('Z'), "{tg} is UTC");
            let own = millis(r["RawData"]["date"].as_str().expect("the row's date"));
            assert_eq!(
                millis(tg),
                own,
                "TimeGenerated is the event's own time: {r}"
            );
            assert!(r["ActionId"].is_i64() && r["ActionName"].is_string(), "{r}");
            assert!(
                ["Success", "Failure", "NA"].contains(&r["Outcome"].as_str().expect("Outcome")),
                "{r}"
            );
        }
    }
    assert_no_secrets(&s.agent().stderr_text(), &per_stream, &[]);
    assert_no_secrets(&s.agent().stderr_text(), &plain, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_that_expire_mid_run_are_replaced_and_nothing_is_lost() {
    // `early` announces its tokens' short life (4 s): the sink replaces them at half-life.
    // `revoked` announces an hour and expires them after 2 s: the sink learns it from a 401.
    let early = stand_in(&[STREAM]).await;
    early.token_life(4, Duration::from_secs(4));
    let revoked = stand_in(&[STREAM]).await;
    revoked.token_life(3599, Duration::from_secs(2));
    let mut s = Scenario::new(SimZone::Utc)
        .await
        .events(SimStream::Login, 60, time::Duration::hours(6), minutes(5))
        .portal("streams = [\"login\"]\nstart_from = \"1d\"");
    s = s.sink(&format!(
        "{}{}",
        sink("early", &early, &with_secret(STREAM)),
        sink("revoked", &revoked, &with_secret(STREAM))
    ));
    s.start();
    s.until(Duration::from_secs(60), "the first events", || {
        has_all(&s, &early) && has_all(&s, &revoked)
    })
    .await;
    // Rows keep landing for two token lifetimes, so the sink posts every second or so while
    // its tokens expire under it.
    for _ in 0..16 {
        s.more_events(
            SimStream::Login,
            3,
            time::Duration::milliseconds(900),
            time::Duration::milliseconds(500),
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    s.until(Duration::from_secs(60), "the later events", || {
        has_all(&s, &early) && has_all(&s, &revoked)
    })
    .await;
    s.settle().await;
    s.drain();

    for (az, what) in [(&early, "early"), (&revoked, "revoked")] {
        assert_exactly_once(&az.ids("login"), &s.ids(SimStream::Login), what);
        assert_eq!(dead_letters(&s, what), 0, "{what}: nothing dead-lettered");
        let fetched = az.token_requests().iter().filter(|c| **c == 200).count();
        assert!(
            fetched >= 2,
            "{what}: the token was replaced ({fetched} fetched)"
        );
        assert_no_secrets(&s.agent().stderr_text(), az, &[]);
    }
    assert_eq!(
        early.expired_refusals(),
        0,
        "a token announced as short-lived is replaced before it expires"
    );
    assert!(
        revoked.expired_refusals() >= 1,
        "the expired token was refused with 401 and replaced"
    );
    let after_refusal = revoked.uploads();
    assert!(
        after_refusal
            .windows(2)
            .all(|w| w[0].status != 401 || w[1].status == 204),
        "each 401 is followed by a success with a new token: {:?}",
        after_refusal.iter().map(|u| u.status).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_429_and_503_honours_retry_after_and_loses_nothing() {
    let az = stand_in(&[STREAM]).await;
    az.script(&[
        (429, Some(1)),
        (429, Some(1)),
        (503, Some(1)),
        (429, Some(2)),
        (503, Some(1)),
        (429, Some(1)),
    ]);
    let mut s = Scenario::new(SimZone::Utc)
        .await
        .events(SimStream::Login, 120, time::Duration::hours(6), minutes(5))
        .events(SimStream::Audit, 60, time::Duration::hours(6), minutes(5))
        .portal("start_from = \"1d\"")
        .sink(&sink("sentinel", &az, &with_secret(STREAM)));
    s.start();
    s.until(
        Duration::from_secs(60),
        "every event through the storm",
        || has_all(&s, &az),
    )
    .await;
    s.settle().await;
    s.drain();

    assert_eq!(az.script_left(), 0, "every scripted refusal was met");
    // A refused call stored nothing: every event exactly once.
    assert_all_once(&s, &az, "sentinel");
    assert_eq!(dead_letters(&s, "sentinel"), 0);
    let uploads = az.uploads();
    for w in uploads.windows(2) {
        if matches!(w[0].status, 429 | 503) {
            let gap = w[1].at.duration_since(w[0].at);
            assert!(
                gap >= Duration::from_millis(950),
                "the next call came {gap:?} after a {} with Retry-After",
                w[0].status
            );
        }
    }
    assert_no_secrets(&s.agent().stderr_text(), &az, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_over_the_limit_are_split_before_sending_or_after_a_413() {
    // `big` takes the documented 1 MB: a batch of thousands of events goes out in calls under
    // it. `small` takes 40 kB: its 413s split each batch until the halves fit.
    let big = stand_in(&[STREAM]).await;
    let small = stand_in(&[STREAM]).await;
    small.set_max_call(40_000);
    let mut s = Scenario::new(SimZone::Utc)
        .await
        .events(
            SimStream::Login,
            2500,
            time::Duration::hours(12),
            minutes(5),
        )
        .portal("streams = [\"login\"]\nstart_from = \"1d\"");
    s = s.sink(&format!(
        "{}{}",
        sink(
            "big",
            &big,
            &format!(
                "{}\ncompression = \"none\"\nbatch = {{ max_events = 5000, timeout = \"3s\" }}",
                with_secret(STREAM)
            )
        ),
        sink(
            "small",
            &small,
            &format!("{}\ncompression = \"none\"", with_secret(STREAM))
        )
    ));
    s.start();
    s.until(Duration::from_secs(90), "every event in both", || {
        has_all(&s, &big) && has_all(&s, &small)
    })
    .await;
    s.settle().await;
    s.drain();

    for (az, what) in [(&big, "big"), (&small, "small")] {
        assert_exactly_once(&az.ids("login"), &s.ids(SimStream::Login), what);
        assert_eq!(dead_letters(&s, what), 0, "{what}: nothing dead-lettered");
    }
    let ups = big.uploads();
    assert!(ups.iter().all(|u| u.status == 204), "big: no 413");
    assert!(
        ups.iter().all(|u| u.wire_len <= 1_000_000),
        "big: every call under 1 MB"
    );
    let largest = ups.iter().map(|u| u.wire_len).max().unwrap_or(0);
    assert!(
        largest > 800_000,
        "big: calls are filled up to the limit ({largest} bytes at most), so a batch larger than 1 MB was split"
    );
    let ups = small.uploads();
    assert!(
        ups.iter().any(|u| u.status == 413),
        "small: the stand-in refused large calls"
    );
    assert!(
        ups.iter()
            .filter(|u| u.status == 204)
            .all(|u| u.wire_len <= 40_000),
        "small: only calls under its limit were taken"
    );
}

/// The sink's entry in `/health`, and the status code.
async fn health(port: u16) -> Option<(u16, Value)> {
    let r = reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await
        .ok()?;
    let code = r.status().as_u16();
    Some((code, r.json().await.ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_secret_is_named_in_health_and_a_fixed_one_delivers_everything() {
    let az = stand_in(&[STREAM]).await;
    let port = crate::support::free_port();
    let wrong = "wrong-secret-Zq8~00000000000000";
    let mut s = Scenario::new(SimZone::Utc)
        .await
        .events(SimStream::Login, 80, time::Duration::hours(6), minutes(5))
        .top(&format!("[api]\naddress = \"127.0.0.1:{port}\""))
        .portal("streams = [\"login\"]\nstart_from = \"1d\"");
    let secret_file = s.work.path().join("azure.secret");
    std::fs::write(&secret_file, wrong).expect("secret file");
    s = s.sink(&sink(
        "sentinel",
        &az,
        &format!(
            "client_secret_file = \"{}\"\nstream = \"{STREAM}\"",
            secret_file.display()
        ),
    ));
    s.start();
    let mut seen = None;
    for _ in 0..300 {
        if let Some((503, doc)) = health(port).await
            && doc["sinks"]["sentinel"]["delivery"] == "failed"
        {
            seen = Some(doc);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let doc = seen.unwrap_or_else(|| {
        panic!(
            "/health never named the failed sink; log:\n{}",
            s.agent().stderr_text()
        )
    });
    let err = doc["sinks"]["sentinel"]["error"].as_str().expect("error");
    assert!(
        err.contains("invalid_client") && err.contains("client_secret"),
        "{err}"
    );
    assert!(
        az.ids("login").is_empty(),
        "nothing was sent without a token"
    );
    assert!(az.token_requests().iter().all(|c| *c == 401));
    assert_eq!(dead_letters(&s, "sentinel"), 0, "the events wait");
    let first_log = s.agent().stderr_text();
    assert!(first_log.contains("invalid_client"), "the error is logged");
    assert_no_secrets(&first_log, &az, &[wrong]);

    // The operator fixes the secret and restarts the agent: everything arrives.
    std::fs::write(&secret_file, SECRET).expect("secret file");
    s.start_as("b");
    s.until(Duration::from_secs(60), "every event after the fix", || {
        has_all(&s, &az)
    })
    .await;
    let mut healthy = false;
    for _ in 0..100 {
        if let Some((200, _)) = health(port).await {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "/health is 200 again");
    s.settle().await;
    s.drain();
    assert_exactly_once(&az.ids("login"), &s.ids(SimStream::Login), "sentinel");
    assert_no_secrets(&s.agent().stderr_text(), &az, &[wrong]);
}

/// `check` fetches a token and uploads an empty batch: OK with the right secret, a named
/// failure with a wrong one, and neither secret nor token in its output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_signs_in_and_probes_the_stream() {
    let az = stand_in(&[STREAM]).await;
    let wrong = "wrong-secret-Zq8~11111111111111";
    let s = Scenario::new(SimZone::Utc)
        .await
        .portal("streams = [\"login\"]")
        .sink(&sink("good", &az, &with_secret(STREAM)))
        .sink(&sink(
            "bad",
            &az,
            &format!("client_secret = \"{wrong}\"\nstream = \"{STREAM}\""),
        ));
    let path = s.write_config().to_str().expect("utf8").to_owned();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        crate::support::run_cli(&["check", "--config", &path], None)
    })
    .await
    .expect("join");
    assert_ne!(code, 0, "{out}{err}");
    assert!(out.contains("sink good: OK"), "{out}{err}");
    let bad = out
        .lines()
        .find(|l| l.contains("sink bad"))
        .unwrap_or_else(|| panic!("no line for the bad sink:\n{out}"));
    assert!(bad.contains("invalid_client"), "{bad}");
    assert!(
        az.uploads()
            .iter()
            .any(|u| u.status == 204 && u.records == 0),
        "the empty probe reached the stream"
    );
    assert_no_secrets(&format!("{out}{err}"), &az, &[wrong]);
}
