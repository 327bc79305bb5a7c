//! Unit tests of the simulator, over real HTTP.

use crate::*;
use std::net::SocketAddr;
use std::time::Duration;

use time::OffsetDateTime;
use time::macros::datetime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const KEY: &str = "sk-test-0123456789abcdef";

fn sim(zone: SimZone) -> Simulator {
    Simulator::new(SimConfig {
        api_key: KEY.to_owned(),
        zone,
        seed: 7,
    })
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("json body")
    }
    fn items(&self) -> Vec<serde_json::Value> {
        self.json()["response"]
            .as_array()
            .cloned()
            .expect("response array")
    }
}

/// A raw HTTP/1.1 GET: the target is sent byte for byte (no client-side escaping).
async fn get_raw(addr: SocketAddr, target: &str, auth: Option<&str>) -> Resp {
    get_raw_with(addr, target, auth, &[]).await
}

/// [`get_raw`] with more request headers.
async fn get_raw_with(
    addr: SocketAddr,
    target: &str,
    auth: Option<&str>,
    extra: &[(&str, &str)],
) -> Resp {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(a) = auth {
        req.push_str(&format!("Authorization: {a}\r\n"));
    }
    for (name, value) in extra {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let text = String::from_utf8(buf).expect("utf8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("head/body");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_owned(),
    }
}

async fn get(addr: SocketAddr, target: &str) -> Resp {
    get_raw(addr, target, Some(&format!("Bearer {KEY}"))).await
}

const LOGIN: &str = "/api/2.0/security/audit/login/filter";
const EVENTS: &str = "/api/2.0/security/audit/events/filter";

#[tokio::test]
async fn envelope_shape_items_and_key_order() {
    let sim = sim(SimZone::EuropeBerlin);
    let mut ok = SimEvent::login(datetime!(2025-01-15 13:32:07 UTC), 1010);
    ok.user = "SIEM Service".into();
    ok.user_id = "3f8a1c52-7d4e-4b0a-9c61-2e5d8b7a9f10".into();
    ok.ip = "198.51.100.77".into();
    ok.country = "Netherlands".into();
    ok.city = "Amsterdam".into();
    ok.browser = "Python Requests 2".into();
    ok.platform = "Other".into();
    ok.page = "https://docspace.example.com/api/2.0/authentication".into();
    let id_ok = sim.insert(ok);
    let id_fail = sim.insert(SimEvent::login(datetime!(2025-01-15 12:58:12 UTC), 1023));
    let srv = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");

    let r = get(srv.addr, &format!("{LOGIN}?count=100&startIndex=0")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let expected_first = format!(
        "{{\"response\":[{{\"id\":{id_ok},\"date\":\"2025-01-15T14:32:07.0000000+01:00\",\"user\":\"SIEM Service\",\
         \"userId\":\"3f8a1c52-7d4e-4b0a-9c61-2e5d8b7a9f10\",\"action\":\"Successful Login via API\",\"actionId\":1010,\
         \"ip\":\"198.51.100.77\",\"country\":\"Netherlands\",\"city\":\"Amsterdam\",\"browser\":\"Python Requests 2\",\
         \"platform\":\"Other\",\"page\":\"https://docspace.example.com/api/2.0/authentication\"}},"
    );
    assert!(r.body.starts_with(&expected_first), "{}", r.body);
    let expected_second = format!(
        "{{\"id\":{id_fail},\"date\":\"2025-01-15T13:58:12.0000000+01:00\",\"user\":\"bob@example.com\",\
         \"userId\":\"{GUEST_USER_ID}\",\"login\":\"bob@example.com\",\"action\":\"Login Fail. Too many attempts\",\
         \"actionId\":1023,\"ip\":\"192.0.2.66\",\"country\":\"\",\"city\":\"\",\"browser\":\"Firefox 133\",\
         \"platform\":\"Ubuntu\",\"page\":\"https://docspace.example.com/login\"}}]"
    );
    assert!(r.body.contains(&expected_second), "{}", r.body);
    let tail = format!(
        "],\"count\":2,\"links\":[{{\"href\":\"http://{}{LOGIN}?count=100&startIndex=0\",\"action\":\"GET\"}}],\"status\":0,\"statusCode\":200}}",
        srv.addr
    );
    assert!(r.body.ends_with(&tail), "{}", r.body);
    assert!(!r.body.contains("\"total\""));

    // Audit: `target` omitted when None, `entries: []` kept, field order as in the fixture.
    sim.insert(SimEvent::audit(datetime!(2025-01-15 13:40:02 UTC), 6035));
    sim.insert(SimEvent::audit(datetime!(2025-01-15 12:31:18 UTC), 5011));
    let r = get(srv.addr, EVENTS).await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains(
        "\"page\":\"https://docspace.example.com/portal-settings/security/audit-trail\",\"actionType\":2,\"product\":7,\
         \"location\":29,\"entries\":[],\"context\":\"Settings\"}"
    ), "{}", r.body);
    assert!(
        r.body
            .contains("\"action\":\"File Uploaded: Q4-financials.xlsx\",\"actionId\":5011,")
    );
    assert!(r.body.contains("\"actionType\":13,\"product\":2,\"location\":1,\"target\":[\"15432\"],\"entries\":[1],\"context\":\"Rooms: Finance\"}"));
    let items = r.items();
    assert_eq!(items.len(), 2);
    assert!(items[0].get("target").is_none());
    assert!(items.iter().all(|i| i.get("login").is_none()));
    assert!(r.body.ends_with("\"status\":0,\"statusCode\":200}"));

    // Fixed endpoints.
    let r = get(srv.addr, "/api/2.0/security/audit/settings/lifetime").await;
    assert!(r.body.starts_with(
        "{\"response\":{\"loginHistoryLifeTime\":180,\"auditTrailLifeTime\":180,\"lastModified\":\"0001-01-01T00:00:00\"},\"count\":1,"
    ));
    let r = get(srv.addr, "/api/2.0/authentication").await;
    assert!(r.body.starts_with("{\"response\":true,\"count\":1,"));
    let r = get(srv.addr, "/api/2.0/nope").await;
    assert_eq!((r.status, r.body.as_str()), (404, ""));
}

/// 250 rows one minute apart, newest at `base`; returns (sim, dates newest first).
fn paged_fixture(stream: SimStream) -> (Simulator, Vec<OffsetDateTime>) {
    let sim = sim(SimZone::Utc);
    let base = datetime!(2025-06-01 12:00:00 UTC);
    let dates: Vec<OffsetDateTime> = (0..250)
        .map(|i| base - time::Duration::minutes(i))
        .collect();
    for d in dates.iter().rev() {
        let ev = match stream {
            SimStream::Login => SimEvent::login(*d, 1029),
            SimStream::Audit => SimEvent::audit(*d, 5011),
        };
        sim.insert(ev);
    }
    (sim, dates)
}

fn zulu(d: OffsetDateTime) -> String {
    SimZone::Utc.format(d).replace(".0000000", "")
}

#[tokio::test]
async fn login_filter_takes_the_window_before_filtering() {
    let (sim, dates) = paged_fixture(SimStream::Login);
    let srv = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    // `from` excludes the oldest 40 rows: 210 matches.
    let from = zulu(dates[209]);
    let mut sizes = Vec::new();
    for start in [0, 100, 200] {
        let r = get(
            srv.addr,
            &format!("{LOGIN}?from={from}&count=100&startIndex={start}"),
        )
        .await;
        assert_eq!(r.status, 200);
        sizes.push(r.items().len());
    }
    assert_eq!(sizes, vec![100, 100, 10]);

    // A narrow window in the past: the first page is EMPTY although matches exist further back.
    let (from, to) = (zulu(dates[160]), zulu(dates[150]));
    let first = get(srv.addr, &format!("{LOGIN}?from={from}&to={to}&count=100")).await;
    assert_eq!(first.items().len(), 0);
    let second = get(
        srv.addr,
        &format!("{LOGIN}?from={from}&to={to}&count=100&startIndex=100"),
    )
    .await;
    assert_eq!(second.items().len(), 11);
    // Negative startIndex is ignored.
    let neg = get(srv.addr, &format!("{LOGIN}?count=5&startIndex=-7")).await;
    assert_eq!(neg.items()[0]["date"], "2025-06-01T12:00:00.0000000Z");
}

#[tokio::test]
async fn audit_filter_pages_normally() {
    let (sim, dates) = paged_fixture(SimStream::Audit);
    let srv = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let from = zulu(dates[209]);
    let mut sizes = Vec::new();
    for start in [0, 100, 200] {
        let r = get(
            srv.addr,
            &format!("{EVENTS}?from={from}&count=100&startIndex={start}"),
        )
        .await;
        sizes.push(r.items().len());
    }
    assert_eq!(sizes, vec![100, 100, 10]);
    let (from, to) = (zulu(dates[160]), zulu(dates[150]));
    let first = get(srv.addr, &format!("{EVENTS}?from={from}&to={to}&count=100")).await;
    assert_eq!(first.items().len(), 11);
    // Newest first with the id as tie-breaker.
    let ids: Vec<i64> = first
        .items()
        .iter()
        .filter_map(|i| i["id"].as_i64())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]));
}

#[test]
fn dates_render_in_the_portal_zone() {
    let berlin = SimZone::EuropeBerlin;
    assert_eq!(
        berlin.format(datetime!(2025-03-30 00:59:59 UTC)),
        "2025-03-30T01:59:59.0000000+01:00"
    );
    assert_eq!(
        berlin.format(datetime!(2025-03-30 01:00:00 UTC)),
        "2025-03-30T03:00:00.0000000+02:00"
    );
    assert_eq!(
        berlin.format(datetime!(2025-10-26 00:59:59 UTC)),
        "2025-10-26T02:59:59.0000000+02:00"
    );
    assert_eq!(
        berlin.format(datetime!(2025-10-26 01:00:00 UTC)),
        "2025-10-26T02:00:00.0000000+01:00"
    );
    assert_eq!(
        berlin.format(datetime!(2024-03-31 01:00:00 UTC)),
        "2024-03-31T03:00:00.0000000+02:00"
    );
    assert_eq!(
        SimZone::Utc.format(datetime!(2025-07-01 08:00:00 UTC)),
        "2025-07-01T08:00:00.0000000Z"
    );
    assert_eq!(
        SimZone::Fixed { minutes: -330 }.format(datetime!(2025-07-01 08:00:00 UTC)),
        "2025-07-01T02:30:00.0000000-05:30"
    );
}

#[tokio::test]
async fn dates_over_http_across_dst_and_stored_at_second_precision() {
    let sim = sim(SimZone::EuropeBerlin);
    sim.insert(SimEvent::login(
        datetime!(2025-03-30 00:59:59.987 UTC),
        1029,
    ));
    sim.insert(SimEvent::login(datetime!(2025-03-30 03:00:00 +02:00), 1029));
    let srv = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let r = get(srv.addr, LOGIN).await;
    let dates: Vec<String> = r
        .items()
        .iter()
        .filter_map(|i| i["date"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        dates,
        vec![
            "2025-03-30T03:00:00.0000000+02:00",
            "2025-03-30T01:59:59.0000000+01:00"
        ]
    );
    let utc = self::sim(SimZone::Utc);
    utc.insert(SimEvent::audit(datetime!(2025-07-01 10:00:00 +02:00), 6035));
    let srv2 = utc
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let r = get(srv2.addr, EVENTS).await;
    assert_eq!(r.items()[0]["date"], "2025-07-01T08:00:00.0000000Z");
}

#[tokio::test]
async fn unauthorized_requests_get_401_with_empty_body() {
    let sim = sim(SimZone::Utc);
    sim.insert(SimEvent::login(datetime!(2025-01-01 00:00:00 UTC), 1029));
    let srv = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    for auth in [
        None,
        Some(KEY.to_owned()),
        Some("Bearer sk-wrong".to_owned()),
        Some(format!("Basic {KEY}")),
    ] {
        let r = get_raw(srv.addr, LOGIN, auth.as_deref()).await;
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(r.body, "");
    }
    let r = get_raw(srv.addr, "/api/2.0/authentication", Some(KEY)).await;
    assert!(r.body.starts_with("{\"response\":false,"));
    sim.set_mode(SimMode::Unauthorized);
    assert_eq!(get(srv.addr, EVENTS).await.status, 401);
    let reqs = sim.requests();
    assert_eq!(reqs.len(), 6);
    assert!(reqs.iter().all(|r| !r.authorized));
    assert_eq!(reqs[0].path, LOGIN);
}

#[tokio::test]
async fn modes_403_402_and_validation_order() {
    let sim = sim(SimZone::Utc);
    let srv = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    sim.set_mode(SimMode::Forbidden);
    let r = get(srv.addr, LOGIN).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["message"], "Access denied");
    assert_eq!(r.json()["statusCode"], 403);
    sim.set_mode(SimMode::PaymentRequired);
    let r = get(srv.addr, "/api/2.0/security/audit/events/last").await;
    assert_eq!(r.status, 402);
    assert_eq!(
        r.json()["error"]["message"],
        "Your pricing plan does not support this option"
    );
    assert_eq!(r.json()["status"], 1);
    // Model validation runs before the permission checks.
    assert_eq!(get(srv.addr, &format!("{LOGIN}?count=0")).await.status, 400);
    assert!(
        get(srv.addr, "/api/2.0/authentication")
            .await
            .body
            .contains("\"response\":true")
    );
}

#[tokio::test]
async fn count_out_of_range_is_a_400_inside_the_envelope() {
    let sim = sim(SimZone::Utc);
    let srv = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    for q in ["count=0", "count=101", "COUNT=500"] {
        let r = get(srv.addr, &format!("{LOGIN}?{q}")).await;
        assert_eq!(r.status, 400, "{q}");
        let j = r.json();
        assert_eq!(j["status"], 1);
        assert_eq!(j["statusCode"], 400);
        assert_eq!(j["count"], 1);
        assert_eq!(
            j["response"]["errors"]["count"][0],
            "The field Count must be between 1 and 100."
        );
        assert_eq!(
            j["response"]["title"],
            "One or more validation errors occurred."
        );
        assert_eq!(
            j["links"][0]["href"],
            format!("http://{}{LOGIN}?{q}", srv.addr)
        );
        assert!(r.body.starts_with("{\"response\":{\"type\":\"https://tools.ietf.org/html/rfc9110#section-15.5.1\",\"title\""));
    }
    assert_eq!(
        get(srv.addr, &format!("{EVENTS}?count=100")).await.status,
        200
    );
    assert_eq!(
        get(srv.addr, &format!("{EVENTS}?count=1")).await.status,
        200
    );
}

#[tokio::test]
async fn date_parameters_follow_api_date_time() {
    let sim = sim(SimZone::Utc);
    sim.insert(SimEvent::login(datetime!(2025-01-01 01:00:00 UTC), 1029));
    let srv = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let status = |q: &'static str| {
        let addr = srv.addr;
        async move { get(addr, &format!("{LOGIN}?from={q}")).await }
    };
    for ok in [
        "2025-01-01T00:00:00Z",
        "2025-01-01T00:00:00.000Z",
        "2025-01-01T00:00:00.0000000Z",
        "2025-01-01T01:00:00%2B01:00",
        "2025-01-01T00:00:00-01:00",
    ] {
        assert_eq!(status(ok).await.status, 200, "{ok}");
    }
    for bad in [
        "2025-01-01T00:00:00.000000Z",
        "2025-01-01T00:00:00+01:00",
        "2025-01-01T00:00:00.00Z",
        "01/01/2025",
        "2025-13-01T00:00:00Z",
        "yesterday",
    ] {
        let r = status(bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.json()["response"]["errors"]["from"].is_array(), "{bad}");
    }
    // v3.7.1+: a value without a zone is a 400 too.
    for zoneless in [
        "2025-01-01",
        "2025-01-01T00:00:00",
        "2025-01-01T02:00:00.000",
    ] {
        let r = status(zoneless).await;
        assert_eq!(r.status, 400, "{zoneless}");
        assert_eq!(
            r.json()["response"]["errors"]["from"][0],
            "The input was not valid.",
            "{zoneless}"
        );
    }
    // Before 3.7.1 it was read in the server's local zone (here UTC+03:00), not UTC: the
    // row at 01:00Z is >= "02:00 local" = 23:00Z the day before.
    sim.set_server_local_offset(DEFAULT_SERVER_LOCAL_OFFSET_MINUTES);
    assert_eq!(status("2025-01-01").await.status, 200);
    assert_eq!(status("2025-01-01T02:00:00").await.items().len(), 1);
    assert_eq!(status("2025-01-01T02:00:00Z").await.items().len(), 0);
    // Inclusive bounds.
    let r = get(
        srv.addr,
        &format!("{LOGIN}?from=2025-01-01T01:00:00Z&to=2025-01-01T01:00:00Z"),
    )
    .await;
    assert_eq!(r.items().len(), 1);
}

#[tokio::test]
async fn action_and_user_filters() {
    let sim = sim(SimZone::Utc);
    let base = datetime!(2025-02-01 00:00:00 UTC);
    sim.insert(SimEvent::login(base, 1029));
    sim.insert(SimEvent::login(base + time::Duration::minutes(1), 1023));
    sim.insert(SimEvent::login(base + time::Duration::minutes(2), 1013));
    let srv = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    for (q, n) in [
        ("action=1023", 1),
        ("action=LoginFailBruteForce", 1),
        ("ACTION=loginfailbruteforce", 1),
        ("action=-1", 3),
        ("action=None", 3),
        ("action=FileCreated", 0),
        ("userId=712D9EC3-5D2B-4B13-824F-71F00191DCCA", 2),
        ("userid=00000000-0000-0000-0000-000000000000", 3),
    ] {
        let r = get(srv.addr, &format!("{LOGIN}?{q}")).await;
        assert_eq!((r.status, r.items().len()), (200, n), "{q}");
    }
    for q in [
        "action=0",
        "action=1",
        "action=abc",
        "userId=nope",
        "startIndex=x",
    ] {
        assert_eq!(
            get(srv.addr, &format!("{LOGIN}?{q}")).await.status,
            400,
            "{q}"
        );
    }
}

#[tokio::test]
async fn no_audit_plan_returns_latest_20_regardless_of_params() {
    let sim = sim(SimZone::Utc);
    let from = datetime!(2025-01-01 00:00:00 UTC);
    sim.generate(SimStream::Audit, 100, from, from + time::Duration::days(10));
    let mut long = SimEvent::audit(from + time::Duration::days(20), 5011);
    long.action_text = format!("File Uploaded: {}.docx", "x".repeat(80));
    sim.insert(long);
    sim.set_mode(SimMode::NoAuditPlan);
    let srv = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let r = get(
        srv.addr,
        &format!("{EVENTS}?from=2030-01-01T00:00:00Z&count=100&startIndex=100"),
    )
    .await;
    assert_eq!(r.status, 200);
    let items = r.items();
    assert_eq!(items.len(), 20);
    assert_eq!(
        items[0]["action"],
        format!("File Uploaded: {}...", "x".repeat(47))
    );
    let dates: Vec<&str> = items.iter().filter_map(|i| i["date"].as_str()).collect();
    assert!(dates.windows(2).all(|w| w[0] >= w[1]));
    let r = get(srv.addr, "/api/2.0/security/audit/login/last").await;
    assert_eq!(r.items().len(), 0);
}

#[tokio::test]
async fn injected_faults_in_order() {
    let sim = sim(SimZone::Utc);
    sim.generate(
        SimStream::Login,
        30,
        datetime!(2025-01-01 00:00 UTC),
        datetime!(2025-01-02 00:00 UTC),
    );
    let srv = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    sim.inject(
        SimFault::TooManyRequests {
            retry_after: Some(0),
        },
        2,
    );
    sim.inject(SimFault::TooManyRequests { retry_after: None }, 1);
    sim.inject(SimFault::ServerError(503), 1);
    sim.inject(SimFault::BadGatewayHtml, 1);
    sim.inject(SimFault::Truncated, 1);
    sim.inject(SimFault::Malformed, 1);
    sim.inject(SimFault::Delay(Duration::from_millis(50)), 1);
    for _ in 0..2 {
        let r = get(srv.addr, LOGIN).await;
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), Some("0"));
        assert_eq!(r.header("x-ratelimit-limit"), Some("1500"));
        assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
        assert_eq!(r.body, "");
    }
    let r = get(srv.addr, EVENTS).await;
    assert_eq!((r.status, r.header("retry-after")), (429, None));
    let r = get(srv.addr, LOGIN).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["statusCode"], 503);
    assert!(r.json()["error"]["type"].is_null());
    let r = get(srv.addr, LOGIN).await;
    assert_eq!(r.status, 502);
    assert!(r.body.contains("<title>502 Bad Gateway</title>"));
    let r = get(srv.addr, LOGIN).await;
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with("{\"response\":[{"));
    assert!(serde_json::from_str::<serde_json::Value>(&r.body).is_err());
    let r = get(srv.addr, LOGIN).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert!(serde_json::from_str::<serde_json::Value>(&r.body).is_err());
    let started = std::time::Instant::now();
    let r = get(srv.addr, LOGIN).await;
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert_eq!(r.items().len(), 30);
    assert_eq!(get(srv.addr, LOGIN).await.status, 200);
    let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 429, 429, 503, 502, 200, 200, 200, 200]);
}

#[tokio::test]
async fn insert_during_paging_adds_rows_and_shifts_offsets() {
    let sim = sim(SimZone::Utc);
    sim.generate(
        SimStream::Login,
        150,
        datetime!(2025-01-01 00:00 UTC),
        datetime!(2025-01-05 00:00 UTC),
    );
    let before = sim.ids(SimStream::Login);
    sim.insert_during_paging(SimStream::Login, 3, 2);
    let srv = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let p1 = get(srv.addr, &format!("{LOGIN}?count=100")).await;
    assert_eq!(sim.len(SimStream::Login), 153);
    let p2 = get(srv.addr, &format!("{LOGIN}?count=100&startIndex=100")).await;
    assert_eq!(sim.len(SimStream::Login), 156);
    let _ = get(srv.addr, EVENTS).await;
    let _ = get(srv.addr, LOGIN).await;
    assert_eq!(sim.len(SimStream::Login), 156);
    // The first page starts with the 3 fresh rows; page two repeats 3 rows of page one.
    let ids1: Vec<i64> = p1.items().iter().filter_map(|i| i["id"].as_i64()).collect();
    let ids2: Vec<i64> = p2.items().iter().filter_map(|i| i["id"].as_i64()).collect();
    assert!(ids1[..3].iter().all(|id| !before.contains(id)));
    assert_eq!(ids2.iter().filter(|id| ids1.contains(id)).count(), 3);
    let all = sim.ids(SimStream::Login);
    assert!(all.windows(2).all(|w| w[0] < w[1]));
}

#[tokio::test]
async fn late_rows_get_larger_ids_and_sort_by_date() {
    let sim = sim(SimZone::Utc);
    let a = sim.insert(SimEvent::audit(datetime!(2025-01-01 10:00 UTC), 5011));
    let b = sim.insert(SimEvent::audit(datetime!(2025-01-01 09:00 UTC), 5009));
    assert!(b > a);
    let srv = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let ids: Vec<i64> = get(srv.addr, EVENTS)
        .await
        .items()
        .iter()
        .filter_map(|i| i["id"].as_i64())
        .collect();
    assert_eq!(ids, vec![a, b]);
    srv.shutdown();
}

#[test]
fn generated_data_is_realistic_and_hostile() {
    let sim = sim(SimZone::Utc);
    let from = datetime!(2025-01-01 00:00 UTC);
    let to = datetime!(2025-03-01 00:00 UTC);
    sim.generate(SimStream::Login, 3000, from, to);
    sim.generate(SimStream::Audit, 1000, from, to);
    assert_eq!(sim.len(SimStream::Login), 3000);
    assert_eq!(sim.len(SimStream::Audit), 1000);
    let g = sim.lock();
    let rows = &g.login.rows;
    assert!(
        rows.windows(2)
            .all(|w| w[0].ev.date <= w[1].ev.date && w[0].id < w[1].id)
    );
    assert!(rows.iter().all(|r| r.ev.date >= from && r.ev.date <= to));
    let has = |f: &dyn Fn(&SimEvent) -> bool| rows.iter().any(|r| f(&r.ev));
    assert!(has(&|e| e.action_id == 1023));
    assert!(has(&|e| e.action_id == 1029 && e.login.is_none()));
    assert!(has(&|e| render_ip(&e.ip).len() == 4 && !e.ip.contains('.')));
    assert!(has(&|e| e.country.is_empty() && e.ip.starts_with("10.")));
    for needle in [
        "|",
        "=",
        "\\",
        "\"",
        "]",
        "\r",
        "\n",
        "\0",
        "\u{2028}",
        "<!channel>",
    ] {
        assert!(
            has(&|e| e.login.as_deref().is_some_and(|l| l.contains(needle))),
            "{needle:?}"
        );
    }
    assert!(has(&|e| e.login.as_deref().is_some_and(|l| l.len() > 1000)));
    let failures = rows
        .iter()
        .filter(|r| is_login_failure(r.ev.action_id))
        .count();
    assert!(
        rows.iter()
            .filter(|r| is_login_failure(r.ev.action_id))
            .all(|r| r.ev.login.is_some())
    );
    assert!(failures > 100 && failures < 1500, "{failures}");
    let audit = &g.audit.rows;
    assert!(
        audit
            .iter()
            .any(|r| r.ev.action_id == 5011 && r.ev.action_text.starts_with("File Uploaded: "))
    );
    assert!(
        audit
            .iter()
            .filter(|r| r.ev.action_id == 6035)
            .all(|r| r.ev.target.is_none() && r.ev.entries.is_empty())
    );
    assert!(
        audit
            .iter()
            .filter(|r| r.ev.action_id == 4000)
            .all(|r| r.ev.location == 30 && r.ev.entries == [23])
    );
}

#[test]
fn limited_text_only_cuts_substituted_values() {
    let long = "Successful Login via API & authenticator application";
    let ev = SimEvent::login(datetime!(2025-01-01 00:00 UTC), 1024);
    assert_eq!(limited_action_text(&ev), long);
    let mut up = SimEvent::audit(datetime!(2025-01-01 00:00 UTC), 5017);
    up.action_text = render_template(
        "Files [{0}]. Moved To Trash Folder",
        &format!("{},b", "y".repeat(60)),
    );
    assert_eq!(
        limited_action_text(&up),
        format!("Files [{}..., b]. Moved To Trash Folder", "y".repeat(47))
    );
}

#[tokio::test]
async fn spawn_live_inserts_until_cancelled() {
    let sim = sim(SimZone::Utc);
    let cancel = CancellationToken::new();
    let task = sim.spawn_live(200.0, cancel.clone());
    let total = || sim.len(SimStream::Login) + sim.len(SimStream::Audit);
    // Until it has inserted a few (at 200/s, within milliseconds; the limit is for a loaded
    // machine).
    tokio::time::timeout(Duration::from_secs(30), async {
        while total() <= 5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("live inserts");
    cancel.cancel();
    task.await.expect("live task");
    // The task has ended, so what it inserted is final: nothing after the cancel.
    let n = total();
    assert!(n > 5, "{n}");
    tokio::task::yield_now().await;
    assert_eq!(total(), n);
}

/// The naive `ORDER BY date DESC, id DESC` of a table, as ids.
fn naive_order(sim: &Simulator, stream: SimStream) -> Vec<i64> {
    let g = sim.lock();
    let mut rows: Vec<&Row> = g.table(stream).rows.iter().collect();
    rows.sort_by(|a, b| b.ev.date.cmp(&a.ev.date).then(b.id.cmp(&a.id)));
    rows.iter().map(|r| r.id).collect()
}

fn cached_order(sim: &Simulator, stream: SimStream) -> Vec<i64> {
    let mut g = sim.lock();
    let t = g.sorted(stream);
    t.order.iter().map(|&i| t.rows[i as usize].id).collect()
}

#[tokio::test]
async fn cached_order_stays_exact_across_bulk_loads_and_late_rows() {
    let sim = sim(SimZone::Utc);
    let (a, b) = (
        datetime!(2025-01-01 00:00 UTC),
        datetime!(2025-01-02 00:00 UTC),
    );
    sim.generate(SimStream::Login, 300, a, b);
    sim.generate(SimStream::Audit, 300, a, b);
    for stream in [SimStream::Login, SimStream::Audit] {
        assert_eq!(cached_order(&sim, stream), naive_order(&sim, stream));
    }
    // Single inserts after the order is built: late rows, same-second rows, newest rows.
    for (i, date) in [
        datetime!(2025-01-01 12:00 UTC),
        datetime!(2025-01-01 12:00 UTC),
        datetime!(2024-12-31 00:00 UTC),
        datetime!(2025-01-03 00:00 UTC),
    ]
    .into_iter()
    .enumerate()
    {
        sim.insert(SimEvent::login(date, 1010));
        sim.insert(SimEvent::audit(date, 5011 + i as i32));
    }
    sim.generate(SimStream::Login, 50, a, b);
    for stream in [SimStream::Login, SimStream::Audit] {
        assert_eq!(cached_order(&sim, stream), naive_order(&sim, stream));
    }
    // Served pages follow it: login pages window first, audit pages filter first.
    let srv = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let order = naive_order(&sim, SimStream::Login);
    let p = get(srv.addr, &format!("{LOGIN}?count=100&startIndex=250")).await;
    let ids: Vec<i64> = p.items().iter().filter_map(|i| i["id"].as_i64()).collect();
    assert_eq!(ids, order[250..350]);
    let (from, to) = (
        datetime!(2025-01-01 06:00 UTC),
        datetime!(2025-01-01 18:00 UTC),
    );
    let expect: Vec<i64> = {
        let g = sim.lock();
        let mut rows: Vec<&Row> = g
            .audit
            .rows
            .iter()
            .filter(|r| r.ev.date >= from && r.ev.date <= to)
            .collect();
        rows.sort_by(|a, b| b.ev.date.cmp(&a.ev.date).then(b.id.cmp(&a.id)));
        rows.iter().map(|r| r.id).collect()
    };
    assert!(expect.len() > 120, "{}", expect.len());
    let mut got = Vec::new();
    for start in [0, 100] {
        let p = get(
            srv.addr,
            &format!(
                "{EVENTS}?from=2025-01-01T06:00:00Z&to=2025-01-01T18:00:00Z&count=100&startIndex={start}"
            ),
        )
        .await;
        got.extend(p.items().iter().filter_map(|i| i["id"].as_i64()));
    }
    assert_eq!(got, expect);
    // With another filter the fast path is off, and the filter still applies before paging.
    let p = get(
        srv.addr,
        &format!("{EVENTS}?from=2025-01-01T06:00:00Z&to=2025-01-01T18:00:00Z&actionType=2"),
    )
    .await;
    assert!(p.items().iter().all(|i| i["actionType"] == 2));
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_and_latency_delays() {
    let sim = sim(SimZone::Utc);
    sim.set_rate_limit(Some(3));
    sim.set_latency(Duration::from_millis(40));
    let srv = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve");
    let started = std::time::Instant::now();
    for _ in 0..3 {
        assert_eq!(get(srv.addr, LOGIN).await.status, 200);
    }
    assert!(started.elapsed() >= Duration::from_millis(120));
    let r = get(srv.addr, LOGIN).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body, "");
    assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
    let after: u32 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(after <= 60, "{after}");
    assert_eq!(sim.rate_limited(), 1);
    assert_eq!(sim.request_count(), 4);
    sim.set_rate_limit(None);
    assert_eq!(get(srv.addr, LOGIN).await.status, 200);
}

#[tokio::test]
async fn latency_range_delays_each_answer_at_least_its_minimum() {
    let sim = sim(SimZone::Utc);
    sim.set_latency_range(Duration::from_millis(20), Duration::from_millis(30));
    let srv = serve(&sim).await;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        assert_eq!(get(srv.addr, LOGIN).await.status, 200);
        assert!(started.elapsed() >= Duration::from_millis(20));
    }
    // A maximum below the minimum is the minimum: a fixed latency, not a panic.
    sim.set_latency_range(Duration::from_millis(25), Duration::from_millis(1));
    let started = std::time::Instant::now();
    assert_eq!(get(srv.addr, LOGIN).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(25));
}

const QUOTA: &str = "/api/2.0/portal/quota";

async fn serve(sim: &Simulator) -> SimServer {
    sim.serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("serve")
}

fn ids(r: &Resp) -> Vec<i64> {
    r.items().iter().filter_map(|i| i["id"].as_i64()).collect()
}

#[tokio::test]
async fn portal_quota_answers_the_tenant_quota() {
    let sim = sim(SimZone::Utc);
    let srv = serve(&sim).await;
    let r = get(srv.addr, "/API/2.0/Portal/Quota/").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert!(
        r.body.starts_with(
            "{\"response\":{\"tenantId\":-9,\"name\":\"admin\",\"price\":100,\"productId\":\"1006\",\
             \"visible\":true,\"wallet\":false,\"dueDate\":\""
        ),
        "{}",
        r.body
    );
    // Members in `TenantQuota.cs` declaration order.
    let keys = [
        "\"features\":",
        "\"maxFileSize\":1073741824,",
        "\"maxTotalSize\":1342177280000,",
        "\"countUser\":2147483647,",
        "\"countRoomAdmin\":5,",
        "\"audit\":true,",
        "\"ldap\":true,",
        "\"sso\":true,",
        "\"countFreeBackup\":2,",
        "\"countAIAgent\":2147483647,",
        "\"aiTools\":false}",
    ];
    let at: Vec<usize> = keys
        .iter()
        .map(|k| {
            r.body
                .find(k)
                .unwrap_or_else(|| panic!("{k} in {}", r.body))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{}", r.body);
    let j = r.json();
    assert_eq!(
        (j["count"].as_i64(), j["status"].as_i64()),
        (Some(1), Some(0))
    );
    let features = j["response"]["features"].as_str().expect("features");
    assert!(features.split(',').any(|f| f == "audit"), "{features}");
    assert!(j["response"].get("priceCurrencySymbol").is_none());

    // Without audit on the plan: the free "startup" plan.
    sim.set_mode(SimMode::NoAuditPlan);
    let j = get(srv.addr, QUOTA).await.json();
    assert_eq!(j["response"]["audit"], false);
    assert_eq!(j["response"]["name"], "startup");
    assert!(j["response"].get("productId").is_none());
    let features = j["response"]["features"].as_str().expect("features");
    assert!(!features.split(',').any(|f| f == "audit"), "{features}");
    // The hidden section and the 402 of the audit checks are invisible to the quota.
    for mode in [SimMode::HiddenLoginHistory, SimMode::PaymentRequired] {
        sim.set_mode(mode);
        let r = get(srv.addr, QUOTA).await;
        assert_eq!(
            (r.status, r.json()["response"]["audit"].as_bool()),
            (200, Some(true))
        );
    }
    // Same auth and permission as the audit routes.
    sim.set_mode(SimMode::Normal);
    for auth in [None, Some("Bearer sk-wrong")] {
        let r = get_raw(srv.addr, QUOTA, auth).await;
        assert_eq!((r.status, r.body.as_str()), (401, ""));
    }
    sim.set_mode(SimMode::Forbidden);
    let r = get(srv.addr, QUOTA).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["message"], "Access denied");
    assert_eq!(r.json()["statusCode"], 403);
    let stack = r.json()["error"]["stack"].as_str().unwrap_or("").to_owned();
    assert!(
        stack.ends_with("PortalController.GetPortalQuota()"),
        "{stack}"
    );
}

#[tokio::test]
async fn hidden_login_history_falls_back_while_the_quota_says_audit() {
    let sim = sim(SimZone::Utc);
    let from = datetime!(2025-01-01 00:00:00 UTC);
    sim.generate(SimStream::Login, 60, from, from + time::Duration::days(2));
    sim.generate(SimStream::Audit, 60, from, from + time::Duration::days(2));
    sim.set_mode(SimMode::HiddenLoginHistory);
    let srv = serve(&sim).await;
    assert_eq!(get(srv.addr, QUOTA).await.json()["response"]["audit"], true);
    for target in [LOGIN, EVENTS] {
        let last = get(srv.addr, &target.replace("/filter", "/last")).await;
        for q in [
            "count=1",
            "count=5&startIndex=40",
            "from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z",
        ] {
            let r = get(srv.addr, &format!("{target}?{q}")).await;
            assert_eq!(r.status, 200, "{target}?{q}");
            assert_eq!(ids(&r), ids(&last), "{target}?{q}");
            assert_eq!(r.items().len(), 20, "{target}?{q}");
        }
    }
    // A bad parameter is still a 400: binding runs before the action.
    assert_eq!(get(srv.addr, &format!("{LOGIN}?count=0")).await.status, 400);
}

#[tokio::test]
async fn unpaid_portal_answers_a_bare_402() {
    let sim = sim(SimZone::Utc);
    sim.insert(SimEvent::login(datetime!(2025-01-01 00:00:00 UTC), 1029));
    sim.set_mode(SimMode::Unpaid);
    let srv = serve(&sim).await;
    for target in [
        LOGIN,
        EVENTS,
        "/api/2.0/security/audit/login/last",
        "/api/2.0/security/audit/events/last",
        "/api/2.0/security/audit/settings/lifetime",
        // `PaymentFilter` runs before model binding: no 400.
        "/api/2.0/security/audit/login/filter?count=0",
    ] {
        let r = get(srv.addr, target).await;
        assert_eq!((r.status, r.body.as_str()), (402, ""), "{target}");
        assert_eq!(r.header("content-type"), None, "{target}");
    }
    // Authentication comes first.
    let r = get_raw(srv.addr, LOGIN, None).await;
    assert_eq!((r.status, r.body.as_str()), (401, ""));
    // `[AllowNotPayment]` routes still answer.
    let r = get(srv.addr, QUOTA).await;
    assert_eq!(
        (r.status, r.json()["response"]["audit"].as_bool()),
        (200, Some(true))
    );
    assert!(
        get(srv.addr, "/api/2.0/authentication")
            .await
            .body
            .starts_with("{\"response\":true,")
    );
    // `Payment-Info: false` skips the filter; `true` keeps it.
    let key = format!("Bearer {KEY}");
    let r = get_raw_with(srv.addr, LOGIN, Some(&key), &[("Payment-Info", "false")]).await;
    assert_eq!((r.status, r.items().len()), (200, 1));
    let r = get_raw_with(srv.addr, LOGIN, Some(&key), &[("Payment-Info", "True")]).await;
    assert_eq!(r.status, 402);
}

#[test]
fn fall_back_bug_renders_the_first_pass_an_hour_late() {
    let berlin = SimZone::EuropeBerlin;
    for (at, fixed, buggy) in [
        (
            datetime!(2025-10-25 23:59:59 UTC),
            "2025-10-26T01:59:59.0000000+02:00",
            "2025-10-26T01:59:59.0000000+02:00",
        ),
        (
            datetime!(2025-10-26 00:00:00 UTC),
            "2025-10-26T02:00:00.0000000+02:00",
            "2025-10-26T02:00:00.0000000+01:00",
        ),
        (
            datetime!(2025-10-26 00:30:00 UTC),
            "2025-10-26T02:30:00.0000000+02:00",
            "2025-10-26T02:30:00.0000000+01:00",
        ),
        (
            datetime!(2025-10-26 00:59:59 UTC),
            "2025-10-26T02:59:59.0000000+02:00",
            "2025-10-26T02:59:59.0000000+01:00",
        ),
        // The second pass is standard time anyway.
        (
            datetime!(2025-10-26 01:30:00 UTC),
            "2025-10-26T02:30:00.0000000+01:00",
            "2025-10-26T02:30:00.0000000+01:00",
        ),
        // Spring forward has no ambiguous wall time.
        (
            datetime!(2025-03-30 00:30:00 UTC),
            "2025-03-30T01:30:00.0000000+01:00",
            "2025-03-30T01:30:00.0000000+01:00",
        ),
        (
            datetime!(2024-10-27 00:15:00 UTC),
            "2024-10-27T02:15:00.0000000+02:00",
            "2024-10-27T02:15:00.0000000+01:00",
        ),
    ] {
        assert_eq!(berlin.format(at), fixed, "{at}");
        assert_eq!(berlin.format_with_fall_back_bug(at), buggy, "{at}");
    }
    let utc = datetime!(2025-10-26 00:30:00 UTC);
    assert_eq!(
        SimZone::Utc.format_with_fall_back_bug(utc),
        SimZone::Utc.format(utc)
    );
}

#[tokio::test]
async fn fall_back_bug_returns_a_row_dated_after_the_window() {
    let sim = sim(SimZone::EuropeBerlin);
    let first_pass = sim.insert(SimEvent::login(datetime!(2025-10-26 00:30:00 UTC), 1029));
    let second_pass = sim.insert(SimEvent::login(datetime!(2025-10-26 01:30:00 UTC), 1029));
    sim.insert(SimEvent::audit(datetime!(2025-10-26 00:45:00 UTC), 5011));
    let srv = serve(&sim).await;
    let window = "from=2025-10-26T00:00:00Z&to=2025-10-26T00:59:59Z";
    // Off by default: the true offset.
    let r = get(srv.addr, &format!("{LOGIN}?{window}")).await;
    assert_eq!(r.items()[0]["date"], "2025-10-26T02:30:00.0000000+02:00");

    sim.set_fall_back_bug(true);
    let r = get(srv.addr, &format!("{LOGIN}?{window}")).await;
    // The server filters on the stored instant (00:30Z), so the row is in the window ...
    assert_eq!(ids(&r), vec![first_pass]);
    let shown = r.items()[0]["date"].as_str().unwrap_or("").to_owned();
    assert_eq!(shown, "2025-10-26T02:30:00.0000000+01:00");
    // ... while its rendered date (01:30Z) lies after `to`.
    let rendered = OffsetDateTime::parse(&shown, &time::format_description::well_known::Rfc3339)
        .expect("rfc3339");
    assert!(rendered > datetime!(2025-10-26 00:59:59 UTC), "{rendered}");
    // Both passes of the hour now show the same date; the audit stream is affected alike.
    let r = get(srv.addr, LOGIN).await;
    assert_eq!(ids(&r), vec![second_pass, first_pass]);
    assert_eq!(r.items()[0]["date"], r.items()[1]["date"]);
    let r = get(srv.addr, &format!("{EVENTS}?{window}")).await;
    assert_eq!(r.items()[0]["date"], "2025-10-26T02:45:00.0000000+01:00");
    sim.set_fall_back_bug(false);
    let r = get(srv.addr, &format!("{EVENTS}?{window}")).await;
    assert_eq!(r.items()[0]["date"], "2025-10-26T02:45:00.0000000+02:00");
}

#[tokio::test]
async fn random_tie_order_reshuffles_every_answer() {
    let sim = sim(SimZone::Utc);
    let busy = datetime!(2025-05-05 10:00:00 UTC);
    let newer = sim.insert(SimEvent::login(busy + time::Duration::SECOND, 1029));
    let mut tied: Vec<i64> = (0..150)
        .map(|_| sim.insert(SimEvent::login(busy, 1013)))
        .collect();
    let older = sim.insert(SimEvent::login(busy - time::Duration::SECOND, 1029));
    for _ in 0..150 {
        sim.insert(SimEvent::audit(busy, 5011));
    }
    let srv = serve(&sim).await;
    let page1 = format!("{LOGIN}?count=100");
    let page2 = format!("{LOGIN}?count=100&startIndex=100");
    // Off by default: `date DESC, id DESC`, stable.
    let a = ids(&get(srv.addr, &page1).await);
    assert_eq!(a, ids(&get(srv.addr, &page1).await));
    tied.reverse();
    assert_eq!(a[0], newer);
    assert_eq!(a[1..], tied[..99]);

    sim.set_random_tie_order(true);
    let mut differ = 0;
    let mut lost = 0;
    for _ in 0..5 {
        let (x, y) = (
            ids(&get(srv.addr, &page1).await),
            ids(&get(srv.addr, &page1).await),
        );
        assert_eq!((x.len(), x[0]), (100, newer));
        differ += usize::from(x != y);
        // A walk of the busy second by offset: page two is cut from another order.
        let z = ids(&get(srv.addr, &page2).await);
        assert_eq!((z.len(), z[z.len() - 1]), (52, older));
        let mut seen: Vec<i64> = x.iter().chain(&z).copied().collect();
        seen.sort_unstable();
        seen.dedup();
        assert!(seen.len() <= 152);
        lost += 152 - seen.len();
    }
    assert!(differ >= 4, "{differ}");
    assert!(lost > 0, "offset paging across the second lost no row");
    // Filtered pages, the audit stream and `*/last` too.
    let q = format!("{EVENTS}?from=2025-05-05T10:00:00Z&to=2025-05-05T10:00:00Z&count=20");
    assert_ne!(ids(&get(srv.addr, &q).await), ids(&get(srv.addr, &q).await));
    let last = "/api/2.0/security/audit/login/last";
    let (x, y) = (
        ids(&get(srv.addr, last).await),
        ids(&get(srv.addr, last).await),
    );
    assert_eq!((x.len(), x[0]), (20, newer));
    assert_ne!(x, y);
}

#[test]
fn page_shuffles_only_the_seconds_it_touches() {
    let t = datetime!(2025-01-01 00:00:00 UTC);
    // Seconds: 3 rows at t+2, 4 rows at t+1, 3 rows at t (date desc).
    let dates: Vec<OffsetDateTime> = [2, 2, 2, 1, 1, 1, 1, 0, 0, 0]
        .iter()
        .map(|s| t + time::Duration::seconds(*s))
        .collect();
    let seq: Vec<u32> = (0..10).collect();
    let date = |i: u32| dates[i as usize];
    let mut rng = fastrand::Rng::with_seed(1);
    assert_eq!(page(&seq, 4, 2, date, None), vec![4, 5]);
    // The last row of the oldest second: any of that second's three rows.
    let p = page(&seq, 9, 5, date, Some(&mut rng));
    assert!(p.len() == 1 && (7..10).contains(&p[0]), "{p:?}");
    assert!(page(&seq, 10, 5, date, Some(&mut rng)).is_empty());
    for _ in 0..50 {
        let p = page(&seq, 4, 2, date, Some(&mut rng));
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(|i| (3..7).contains(i)), "{p:?}");
        let p = page(&seq, 2, 6, date, Some(&mut rng));
        assert!(
            p.iter().all(|i| (0..10).contains(i)) && p.len() == 6,
            "{p:?}"
        );
        assert!(p[1..5].iter().all(|i| (3..7).contains(i)), "{p:?}");
    }
    assert_eq!(
        prefix(seq.iter().copied(), 4, date),
        vec![0, 1, 2, 3, 4, 5, 6]
    );
    assert_eq!(prefix(seq.iter().copied(), 0, date), Vec::<u32>::new());
}

#[tokio::test]
async fn null_ip_login_poisons_only_the_answers_that_hold_it() {
    let sim = sim(SimZone::Utc);
    let base = datetime!(2025-06-01 12:00:00 UTC);
    for i in (0..30).rev() {
        sim.insert(SimEvent::login(base - time::Duration::minutes(i), 1029));
    }
    // Newer than the 12th row: position 11 of the log.
    let bad = sim.insert_null_ip_login(base - time::Duration::seconds(630));
    sim.insert(SimEvent::audit(base, 5011));
    let srv = serve(&sim).await;
    let poisoned = |r: &Resp| {
        let j = r.json();
        r.status == 500
            && j["status"] == 1
            && j["statusCode"] == 500
            && j["error"]["message"] == "Object reference not set to an instance of an object."
            && j["error"]["type"] == "System.NullReferenceException"
            && j["error"]["stack"]
                .as_str()
                .is_some_and(|s| s.contains("EventTypeConverter.Convert"))
    };
    for q in [
        "",
        "?count=100",
        "?count=12",
        "?count=1&startIndex=11",
        "?action=1028",
    ] {
        let r = get(srv.addr, &format!("{LOGIN}{q}")).await;
        assert!(poisoned(&r), "{q}: {} {}", r.status, r.body);
    }
    assert!(poisoned(
        &get(srv.addr, "/api/2.0/security/audit/login/last").await
    ));
    // Around it: a smaller page, the next pages, a window that filters it out.
    for (q, n) in [
        ("?count=11", 11),
        ("?count=10&startIndex=12", 10),
        ("?count=100&startIndex=12", 19),
        ("?from=2025-06-01T11:50:00Z", 11),
        ("?to=2025-06-01T11:49:00Z", 19),
        ("?count=100&action=1029", 30),
    ] {
        let r = get(srv.addr, &format!("{LOGIN}{q}")).await;
        assert_eq!((r.status, r.items().len()), (200, n), "{q}: {}", r.body);
        assert!(!ids(&r).contains(&bad), "{q}");
    }
    // The audit conversion has a null check; and the fallback holds the row too.
    assert_eq!(get(srv.addr, EVENTS).await.status, 200);
    sim.set_mode(SimMode::NoAuditPlan);
    assert!(poisoned(&get(srv.addr, &format!("{LOGIN}?count=1")).await));
}

#[tokio::test]
async fn unmapped_audit_actions_are_left_out_and_fail_when_asked_for() {
    assert_eq!(UNMAPPED_AUDIT_ACTIONS.len(), 11);
    for code in UNMAPPED_AUDIT_ACTIONS {
        assert!(message_action_defined(i64::from(*code)), "{code}");
        assert!(audit_map(*code).is_none(), "{code}");
    }
    let sim = sim(SimZone::Utc);
    let t = datetime!(2025-04-01 08:00:00 UTC);
    let at = |m: i64| t + time::Duration::minutes(m);
    let mut visible = Vec::new();
    for (m, code) in [
        (0, 5011),
        (1, 7001),
        (2, 6035),
        (3, 5102),
        (4, 7002),
        (5, 5000),
    ] {
        let id = sim.insert(SimEvent::audit(at(m), code));
        if !is_unmapped(code) {
            visible.push(id);
        }
    }
    visible.reverse();
    let srv = serve(&sim).await;
    let r = get(srv.addr, EVENTS).await;
    assert_eq!(ids(&r), visible);
    let r = get(srv.addr, "/api/2.0/security/audit/events/last").await;
    assert_eq!(ids(&r), visible);
    // Paging counts only what the API can return.
    let r = get(srv.addr, &format!("{EVENTS}?count=1&startIndex=1")).await;
    assert_eq!(ids(&r), visible[1..2]);
    let r = get(
        srv.addr,
        &format!("{EVENTS}?from=2025-04-01T08:00:00Z&to=2025-04-01T08:04:00Z&count=2"),
    )
    .await;
    assert_eq!(ids(&r), visible[1..3]);
    // Asking for one of them: the DTO dereferences the missing mapping.
    for q in [
        "action=7001",
        "action=RoomColorChanged",
        "action=7002&count=1",
    ] {
        let r = get(srv.addr, &format!("{EVENTS}?{q}")).await;
        assert_eq!(r.status, 500, "{q}");
        let j = r.json();
        assert_eq!(j["error"]["type"], "System.NullReferenceException", "{q}");
        let stack = j["error"]["stack"].as_str().unwrap_or("");
        assert!(stack.contains("AuditEventDto..ctor"), "{q}: {stack}");
    }
    // An answer without such a row is fine.
    for q in ["action=7001&to=2025-04-01T08:00:30Z", "action=7003"] {
        let r = get(srv.addr, &format!("{EVENTS}?{q}")).await;
        assert_eq!((r.status, r.items().len()), (200, 0), "{q}");
    }
    let r = get(srv.addr, &format!("{EVENTS}?action=6035")).await;
    assert_eq!((r.status, r.items().len()), (200, 1));
}
