//! Tests of the chat renderers (shape, limits, neutralising) and the chat client (answers,
//! pacing, Retry-After, errors), and of a chat sink in the generic delivery loop.

use std::sync::atomic::Ordering;

use serde_json::json;

use super::render::*;
use super::*;
use crate::alert::{RuleEngine, RuleKind, select};
use crate::event::Event;
use crate::event::{GUEST_USER_ID, PortalInfo};
use crate::pipeline::{DeadLetter, SinkStats};
use crate::retry::Backoff;
use crate::sink::{AnySink, Ledger, deliver_batch};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use time::format_description::well_known::Rfc3339;
use time::macros::{datetime, offset};

/// Everything an attacker might type to ping, link or break a message, and then 64 KiB.
fn hostile() -> String {
    format!(
        "<!channel> @everyone @here [x](http://evil) <users/all> <@123> `tick` *b* ~s~ \r\nINJECT\u{202E}www.evil.example{}",
        "A".repeat(64 * 1024)
    )
}

fn portal() -> Arc<PortalInfo> {
    Arc::new(PortalInfo::new("main", "https://docspace.example.com"))
}

fn ev(id: i64, secs: i64, action: i64, fields: Value) -> Event {
    let t = datetime!(2025-01-15 13:00:00 UTC) + time::Duration::seconds(secs);
    let mut v = json!({"id": id, "date": t.to_offset(offset!(+1)).format(&Rfc3339).expect("date"), "actionId": action});
    for (k, x) in fields.as_object().expect("object") {
        v[k] = x.clone();
    }
    Event::from_json(portal(), None, v).expect("row")
}

fn fail(id: i64, secs: i64, login: &str) -> Event {
    ev(
        id,
        secs,
        1013,
        json!({"login": login, "user": login, "userId": GUEST_USER_ID,
        "ip": "192.0.2.66", "country": hostile(), "action": hostile()}),
    )
}

fn all_rules() -> Vec<RuleConfig> {
    let names: Vec<String> = RuleKind::BUILTIN
        .iter()
        .map(|k| k.as_str().to_owned())
        .collect();
    select(&names, &[]).expect("rules")
}

/// One alert of every built-in rule, all about the hostile login.
fn one_of_each() -> Vec<Alert> {
    let h = hostile();
    let mut evs: Vec<Event> = (0..10).map(|i| fail(i, i, &h)).collect();
    evs.push(ev(
        20,
        20,
        1023,
        json!({"login": h, "userId": GUEST_USER_ID, "ip": "192.0.2.66"}),
    ));
    let success = |id, secs, country: &str| {
        ev(
            id,
            secs,
            1029,
            json!({"user": h, "userId": "9b1e4f7a-2c3d-4e5f-8a6b-7c8d9e0f1a2b",
            "ip": "192.0.2.66", "country": country, "city": h}),
        )
    };
    evs.push(success(30, 30, "Germany"));
    evs.push(ev(
        35,
        35,
        1029,
        json!({"user": h, "userId": "9b1e4f7a-2c3d-4e5f-8a6b-7c8d9e0f1a2b",
        "ip": "198.51.100.4", "country": h}),
    ));
    evs.push(ev(
        40,
        40,
        6035,
        json!({"user": h, "userId": "9b1e4f7a-2c3d-4e5f-8a6b-7c8d9e0f1a2b",
        "ip": "203.0.113.45", "action": h}),
    ));
    let mut e = RuleEngine::new(all_rules());
    let alerts = e.observe_batch(&evs.iter().collect::<Vec<_>>());
    let kinds: Vec<RuleKind> = alerts.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        vec![
            RuleKind::BruteForce,
            RuleKind::Lockout,
            RuleKind::SuccessAfterFailures,
            RuleKind::NewCountry,
            RuleKind::NewIp,
            RuleKind::SensitiveAudit
        ]
    );
    alerts
}

/// 500 brute-force alerts about 500 hostile logins, in one batch.
fn storm() -> Vec<Alert> {
    let evs: Vec<Event> = (0..5000)
        .map(|i| fail(i, i / 10, &format!("{}{}", i / 10, hostile())))
        .collect();
    let alerts = RuleEngine::new(all_rules()).observe_batch(&evs.iter().collect::<Vec<_>>());
    assert_eq!(alerts.len(), 500);
    alerts
}

fn len(v: &Value, ptr: &str) -> usize {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .map_or(0, |s| s.encode_utf16().count())
}

fn arr<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}

/// The documented schema and limits of each service (docs/formats.md §4.3), checked
/// independently of the code that sizes the messages.
fn check_documented(kind: ChatKind, p: &Value) {
    let bytes = serde_json::to_vec(p).expect("json").len();
    match kind {
        ChatKind::Slack => {
            assert!(len(p, "/text") > 0, "Slack needs fallback text");
            let blocks = arr(p, "/blocks");
            assert!(
                !blocks.is_empty() && blocks.len() <= 50,
                "{} blocks",
                blocks.len()
            );
            let mut ids = std::collections::BTreeSet::new();
            for b in blocks {
                if let Some(id) = b["block_id"].as_str() {
                    assert!(
                        id.len() <= 255 && ids.insert(id.to_owned()),
                        "block_id {id}"
                    );
                }
                match b["type"].as_str().expect("block type") {
                    "header" => {
                        assert_eq!(b["text"]["type"], "plain_text");
                        assert!(len(b, "/text/text") <= 150);
                    }
                    "section" => {
                        assert_eq!(b["text"]["type"], "mrkdwn");
                        assert!(len(b, "/text/text") <= 3000);
                        let fields = arr(b, "/fields");
                        assert!(fields.len() <= 10);
                        assert!(fields.iter().all(|f| len(f, "/text") <= 2000));
                    }
                    "context" => {
                        let el = arr(b, "/elements");
                        assert!(!el.is_empty() && el.len() <= 10);
                    }
                    other => panic!("unexpected block {other}"),
                }
            }
        }
        ChatKind::Teams => {
            assert_eq!(p["type"], "message");
            let att = &p["attachments"][0];
            assert_eq!(
                att["contentType"],
                "application/vnd.microsoft.card.adaptive"
            );
            assert_eq!(att["content"]["type"], "AdaptiveCard");
            assert_eq!(att["content"]["version"], "1.4");
            assert_eq!(
                att["content"]["$schema"],
                "http://adaptivecards.io/schemas/adaptive-card.json"
            );
            assert!(p.get("@type").is_none(), "never the retired MessageCard");
            let body = arr(p, "/attachments/0/content/body");
            assert!(!body.is_empty());
            assert!(body.iter().all(|b| b["type"].is_string()));
            assert!(bytes <= 28 * 1024, "{bytes} bytes");
        }
        ChatKind::Mattermost => {
            assert!(len(p, "/text") > 0 && len(p, "/text") <= 16_383);
            for a in arr(p, "/attachments") {
                assert!(len(a, "/fallback") > 0);
            }
        }
        ChatKind::Discord => {
            assert_eq!(p["allowed_mentions"], json!({"parse": []}));
            assert!(len(p, "/content") <= 2000);
            let embeds = arr(p, "/embeds");
            assert!(embeds.len() <= 10);
            let mut total = 0;
            for e in embeds {
                assert!(len(e, "/title") <= 256 && len(e, "/description") <= 4096);
                assert!(len(e, "/footer/text") <= 2048);
                total += len(e, "/title") + len(e, "/description") + len(e, "/footer/text");
                let fields = arr(e, "/fields");
                assert!(fields.len() <= 25);
                for f in fields {
                    assert!(len(f, "/name") <= 256 && len(f, "/value") <= 1024);
                    total += len(f, "/name") + len(f, "/value");
                }
            }
            assert!(total <= 6000, "{total} characters in embeds");
        }
        ChatKind::GoogleChat => {
            assert!(bytes <= 32_000, "{bytes} bytes");
            let card = &p["cardsV2"][0];
            assert!(card["cardId"].as_str().is_some_and(|s| !s.is_empty()));
            let sections = arr(card, "/card/sections");
            assert!(!sections.is_empty());
            for s in sections {
                for w in arr(s, "/widgets") {
                    let keys: Vec<&String> = w.as_object().expect("widget").keys().collect();
                    assert_eq!(keys.len(), 1, "one widget kind per widget: {keys:?}");
                    assert!(
                        ["textParagraph", "decoratedText", "buttonList"]
                            .contains(&keys[0].as_str())
                    );
                }
            }
        }
    }
}

/// Nothing an attacker typed can ping, link, or break a line, in any service.
fn check_neutralised(kind: ChatKind, p: &Value) {
    let s = serde_json::to_string(p).expect("json");
    for bad in [
        "<!channel>",
        "<!here>",
        "http://evil",
        "<users/all>",
        "<@123>",
        "\\r",
        "\u{202E}",
        "www.evil",
    ] {
        assert!(
            !s.contains(bad),
            "{kind}: {bad:?} survived in {}",
            &s[..s.len().min(3000)]
        );
    }
    if let Some(at) = s.find("INJECT") {
        assert!(
            s[..at].ends_with("\u{FFFD}\u{FFFD}"),
            "{kind}: CR LF not neutralised"
        );
    }
    match kind {
        ChatKind::Slack => {
            assert!(
                s.contains("&lt;!channel&gt; @everyone @here [x](http:\u{200B}//evil)"),
                "{kind}"
            );
            assert!(
                !s.contains("`tick`"),
                "backticks inside a value are replaced"
            );
        }
        ChatKind::Discord | ChatKind::Mattermost => {
            for m in ["@everyone", "@here", "@channel", "@all"] {
                assert!(!s.contains(m), "{kind}: {m} could ping");
            }
            assert!(
                s.contains("‹!channel› @\u{200B}everyone @\u{200B}here"),
                "{kind}"
            );
        }
        ChatKind::Teams => {
            assert!(
                !s.contains("[x]") && !s.contains("@everyone"),
                "{kind}: markdown link or mention survived"
            );
            assert!(
                s.contains("‹!channel› @\u{200B}everyone @\u{200B}here ［x］(http:\u{200B}//evil)"),
                "{kind}"
            );
        }
        ChatKind::GoogleChat => {
            assert!(
                s.contains("&lt;!channel&gt; @everyone"),
                "card text is HTML-escaped"
            );
            assert!(
                p["text"]
                    .as_str()
                    .is_none_or(|t| !t.contains('<') || t.contains("‹"))
            );
        }
    }
}

#[test]
fn every_service_gets_its_native_shape_within_limits_and_neutralised() {
    let alerts = one_of_each();
    for kind in ChatKind::ALL {
        for a in &alerts {
            let p = build(kind, std::slice::from_ref(a), 1, true, 120);
            assert!(fits(kind, &p), "{kind}: one hostile alert fits in detail");
        }
    }
    for kind in ChatKind::ALL {
        for a in &alerts {
            let p = payload(kind, std::slice::from_ref(a));
            check_documented(kind, &p);
            check_neutralised(kind, &p);
        }
        let p = payload(kind, &alerts);
        check_documented(kind, &p);
        check_neutralised(kind, &p);
    }
    // The single Slack message says what, who, from where, when (UTC and portal time),
    // how many and links to the portal.
    let p = payload(ChatKind::Slack, &alerts[..1]);
    let s = serde_json::to_string(&p).expect("json");
    for want in [
        "Brute-force login attempts on main",
        "11 failed logins for",
        "192.0.2.66",
        "UTC (portal time 14:00:00 – 14:00:20 +01:00)",
        "*Events*\\n11",
        "<https://docspace.example.com/|Open main>",
    ] {
        assert!(s.contains(want), "missing {want:?} in {s}");
    }
    assert_eq!(payload(ChatKind::Slack, &[]), Value::Null);
}

#[test]
fn a_storm_becomes_one_digest_within_limits() {
    let alerts = storm();
    for kind in ChatKind::ALL {
        let p = payload(kind, &alerts);
        check_documented(kind, &p);
        check_neutralised(kind, &p);
        let s = serde_json::to_string(&p).expect("json");
        assert!(
            s.contains("500 alerts on main"),
            "{kind}: no digest heading"
        );
        assert!(s.contains("more: "), "{kind}: the rest is counted");
        assert!(
            s.contains(" brute_force"),
            "{kind}: the rest is counted by rule"
        );
    }
    // Slack shows the block ids of the alerts it lists, one per alert.
    let p = payload(ChatKind::Slack, &alerts);
    let shown = arr(&p, "/blocks")
        .iter()
        .filter(|b| {
            b["block_id"]
                .as_str()
                .is_some_and(|s| s.starts_with("alert:brute_force:"))
        })
        .count();
    assert!(shown >= 5, "{shown}");
    let p = payload(ChatKind::Discord, &alerts);
    assert_eq!(arr(&p, "/embeds").len(), 10);
}

#[test]
fn neutralising_keeps_ordinary_text_readable() {
    assert_eq!(
        Style::Slack.value("bob@example.com", 120),
        "`bob@example.com`"
    );
    assert_eq!(Style::Slack.value("a&b<c>", 120), "`a&amp;b&lt;c&gt;`");
    assert_eq!(Style::Teams.value("Zürich", 120), "Zürich");
    assert_eq!(
        Style::ChatHtml.value("<b>x</b>", 120),
        "&lt;b&gt;x&lt;/b&gt;"
    );
    assert_eq!(Style::Discord.value("", 120), "–");
    assert_eq!(Style::Plain.value(&"x".repeat(500), 10).chars().count(), 10);
    assert_eq!(
        clean("see https://a.b and WWW.c.d"),
        "see https:\u{200B}//a.b and WWW\u{200B}.c.d"
    );
    assert_eq!(
        safe_url("https://p.example.com/a|b(c)"),
        Some("https://p.example.com/a%7Cb%28c%29".to_owned())
    );
    assert_eq!(safe_url("javascript:alert(1)"), None);
}

// -----------------------------------------------------------------------------------------
// Against mock services

/// A scripted answer: status, headers, body.
type Answer = (u16, Vec<(&'static str, String)>, String);

#[derive(Clone, Default)]
struct Mock {
    url: String,
    got: Arc<Mutex<Vec<(std::time::Instant, String, Value)>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    default: (u16, &'static str),
}

impl Mock {
    async fn start(default: (u16, &'static str)) -> Mock {
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::IntoResponse;
        async fn handle(
            axum::extract::State(m): axum::extract::State<Mock>,
            headers: HeaderMap,
            body: axum::body::Bytes,
        ) -> axum::response::Response {
            let ct = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let next = m.script.lock().expect("lock").pop_front();
            let (status, hdrs, text) =
                next.unwrap_or((m.default.0, vec![], m.default.1.to_owned()));
            if (200..300).contains(&status) && !body.is_empty() {
                let v: Value = serde_json::from_slice(&body).expect("the message is JSON");
                m.got
                    .lock()
                    .expect("lock")
                    .push((std::time::Instant::now(), ct, v));
            }
            let mut resp = (StatusCode::from_u16(status).expect("status"), text).into_response();
            for (k, v) in hdrs {
                resp.headers_mut().insert(k, v.parse().expect("header"));
            }
            resp
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let m = Mock {
            url: format!("http://{addr}/services/T000/B000/s3cr3tt0ken99"),
            default,
            ..Mock::default()
        };
        let app = axum::Router::new()
            .route(
                "/services/T000/B000/s3cr3tt0ken99",
                axum::routing::post(handle).get(handle).head(handle),
            )
            .with_state(m.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        m
    }

    fn then(&self, status: u16, headers: Vec<(&'static str, String)>, body: &str) {
        self.script
            .lock()
            .expect("lock")
            .push_back((status, headers, body.to_owned()));
    }

    fn received(&self) -> Vec<(std::time::Instant, String, Value)> {
        self.got.lock().expect("lock").clone()
    }
}

fn sink(kind: ChatKind, url: &str, rate: f64, dir: &std::path::Path) -> ChatSink {
    ChatSink::new(
        "chat",
        ChatConfig {
            kind,
            url: SecretString::from(url.to_owned()),
            rules: all_rules(),
            rate,
            timeout: Duration::from_secs(5),
            tls: HttpTls::default(),
            state_dir: dir.to_path_buf(),
        },
    )
    .expect("sink")
}

#[tokio::test]
async fn each_service_answers_as_documented_and_success_is_recognised() {
    let dir = tempfile::tempdir().expect("tmp");
    let alerts = one_of_each();
    for (kind, answer) in [
        (ChatKind::Slack, (200, "ok")),
        (ChatKind::Mattermost, (200, "ok")),
        (ChatKind::Teams, (202, "")),
        (ChatKind::Discord, (204, "")),
        (
            ChatKind::GoogleChat,
            (200, "{\"name\":\"spaces/AAA/messages/BBB\"}"),
        ),
    ] {
        let m = Mock::start(answer).await;
        let mut s = sink(kind, &m.url, 100.0, dir.path());
        s.post(&payload(kind, &alerts)).await.expect("posted");
        let got = m.received();
        assert_eq!(got.len(), 1);
        let want_ct = if kind == ChatKind::GoogleChat {
            "application/json; charset=UTF-8"
        } else {
            "application/json"
        };
        assert_eq!(got[0].1, want_ct);
        check_documented(kind, &got[0].2);
        // The health check posts nothing.
        s.healthcheck().await.expect("reachable");
        assert_eq!(
            m.received().len(),
            1,
            "{kind}: the health check posted a message"
        );
    }
}

/// See: issue 15. A 429 asking for an absurd wait (`Retry-After: 1e20`, Discord's
/// `retry_after: 1e300`, NaN, negative) panicked the sink task in
/// `Duration::from_secs_f64`; now the wait is clamped to the sink backoff or ignored.
#[tokio::test]
async fn absurd_retry_after_values_are_clamped_not_a_panic() {
    let dir = tempfile::tempdir().expect("tmp");
    let msg = json!({"text": "x", "blocks": []});
    let m = Mock::start((204, "")).await;
    type Headers = Vec<(&'static str, String)>;
    let cases: [(Headers, &str, Option<u64>); 6] = [
        (vec![("retry-after", "1e20".into())], "", Some(60)),
        (vec![], r#"{"retry_after":1e300}"#, Some(60)),
        (
            vec![("x-ratelimit-reset-after", "1e300".into())],
            "",
            Some(60),
        ),
        (
            vec![("retry-after", "NaN".into())],
            r#"{"retry_after":-1}"#,
            None,
        ),
        (vec![("retry-after", "inf".into())], "", None),
        (vec![("retry-after", "-1".into())], "", None),
    ];
    for (headers, body, want) in cases {
        let shown = format!("{headers:?} {body}");
        m.then(429, headers, body);
        let mut s = sink(ChatKind::Discord, &m.url, 100.0, dir.path());
        let e = s.post(&msg).await.expect_err("429");
        assert!(e.retryable, "{shown}: {e:?}");
        assert_eq!(e.retry_after, want, "{shown}");
    }
}

#[tokio::test]
async fn rate_limits_and_retry_after_are_honoured_and_errors_hide_the_url() {
    let dir = tempfile::tempdir().expect("tmp");
    let msg = json!({"text": "x", "blocks": []});
    // Slack: 429 + Retry-After.
    let m = Mock::start((200, "ok")).await;
    m.then(429, vec![("retry-after", "2".into())], "rate_limited");
    let mut s = sink(ChatKind::Slack, &m.url, 100.0, dir.path());
    let e = s.post(&msg).await.expect_err("429");
    assert!(e.retryable && !e.operator, "{e:?}");
    assert_eq!(e.retry_after, Some(2));
    assert!(
        e.message.contains("HTTP 429 (rate_limited)"),
        "{}",
        e.message
    );
    // The bucket is held for the Retry-After: the next post waits.
    let start = std::time::Instant::now();
    s.post(&msg).await.expect("ok");
    assert!(
        start.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        start.elapsed()
    );
    // Discord: the wait is in the JSON body, in float seconds.
    let m = Mock::start((204, "")).await;
    m.then(
        429,
        vec![],
        r#"{"message":"You are being rate limited.","retry_after":0.53,"global":false}"#,
    );
    let mut s = sink(ChatKind::Discord, &m.url, 100.0, dir.path());
    let e = s.post(&msg).await.expect_err("429");
    assert_eq!(e.retry_after, Some(1));
    let start = std::time::Instant::now();
    s.post(&msg).await.expect("ok");
    assert!(start.elapsed() >= Duration::from_millis(500));
    // The client-side limit: 5 messages/s → 3 posts take at least 400 ms.
    let m = Mock::start((200, "ok")).await;
    let mut s = sink(ChatKind::Slack, &m.url, 5.0, dir.path());
    for _ in 0..3 {
        s.post(&msg).await.expect("ok");
    }
    let got = m.received();
    assert!(
        got[2].0 - got[0].0 >= Duration::from_millis(390),
        "{:?}",
        got[2].0 - got[0].0
    );
    // Status mapping; no message names the secret path.
    m.then(404, vec![], "no_service");
    m.then(410, vec![], "channel_is_archived");
    m.then(400, vec![], "invalid_payload");
    m.then(503, vec![], "");
    m.then(
        403,
        vec![],
        "invalid_token for /services/T000/B000/s3cr3tt0ken99",
    );
    let mut s = sink(ChatKind::Slack, &m.url, 100.0, dir.path());
    let mut results = Vec::new();
    for _ in 0..5 {
        results.push(s.post(&msg).await.expect_err("error"));
    }
    assert!(results[0].operator && results[0].message.contains("(no_service)"));
    assert!(results[1].operator);
    assert!(!results[2].retryable && results[2].message.contains("(invalid_payload)"));
    assert!(results[3].retryable && !results[3].operator);
    assert!(results[4].operator);
    for e in &results {
        assert!(
            !e.message.contains("s3cr3t") && !e.message.contains("T000"),
            "{}",
            e.message
        );
        assert!(e.message.contains("http://127.0.0.1:"), "{}", e.message);
    }
}

/// One batch through the generic sink loop's per-batch step, as `sink::run` delivers it.
async fn batch(s: &mut AnySink, engine: &mut RuleEngine, events: &[&Event], ledger: &Ledger<'_>) {
    let mut backoff = Backoff::new(Duration::from_millis(500), MAX_SINK_BACKOFF);
    deliver_batch(
        s,
        crate::transform::Format::Ecs,
        events,
        Some(engine),
        &mut backoff,
        ledger,
    )
    .await;
}

#[tokio::test]
async fn deliver_posts_only_alerts_retries_429_and_dead_letters_rejections() {
    let dir = tempfile::tempdir().expect("tmp");
    let m = Mock::start((200, "ok")).await;
    let mut s = AnySink::Chat(Box::new(sink(ChatKind::Slack, &m.url, 100.0, dir.path())));
    let mut engine = RuleEngine::with_state(all_rules(), dir.path().join("alerts/chat"));
    let stats = SinkStats::default();
    let dl = DeadLetter::new(dir.path(), "chat");
    let ledger = Ledger {
        name: "chat",
        stats: &stats,
        dead_letter: &dl,
    };
    // Normal events: nothing is posted.
    let normal: Vec<Event> = (0..20)
        .map(|i| ev(i, i, 1029, json!({"user": "Alice Johnson", "userId": "9b1e4f7a-2c3d-4e5f-8a6b-7c8d9e0f1a2b", "ip": "203.0.113.45", "country": "Germany"})))
        .collect();
    batch(
        &mut s,
        &mut engine,
        &normal.iter().collect::<Vec<_>>(),
        &ledger,
    )
    .await;
    assert!(m.received().is_empty());
    assert_eq!(stats.delivered.load(Ordering::Relaxed), 20);
    // An attack: one message, after a 429 with Retry-After.
    m.then(429, vec![("retry-after", "1".into())], "rate_limited");
    let attack: Vec<Event> = (0..12)
        .map(|i| fail(100 + i, 100 + i, "bob@example.com"))
        .collect();
    let start = std::time::Instant::now();
    batch(
        &mut s,
        &mut engine,
        &attack.iter().collect::<Vec<_>>(),
        &ledger,
    )
    .await;
    assert!(start.elapsed() >= Duration::from_secs(1));
    let got = m.received();
    assert_eq!(got.len(), 1);
    assert_eq!(stats.retries.load(Ordering::Relaxed), 1);
    assert!(
        serde_json::to_string(&got[0].2)
            .expect("json")
            .contains("12 failed logins for")
    );
    // A rejection for good goes to the dead-letter file as ECS alerts, with the reason.
    m.then(400, vec![], "invalid_payload");
    let more: Vec<Event> = (0..10)
        .map(|i| fail(200 + i, 1000 + i, "eve@example.com"))
        .collect();
    batch(
        &mut s,
        &mut engine,
        &more.iter().collect::<Vec<_>>(),
        &ledger,
    )
    .await;
    let dead = std::fs::read_to_string(dl.path()).expect("dead letters");
    let line: Value = serde_json::from_str(dead.lines().next().expect("line")).expect("json");
    assert_eq!(line["event"]["event"]["kind"], "alert");
    assert!(
        line["reason"]
            .as_str()
            .expect("reason")
            .contains("invalid_payload")
    );
    // The state was saved after posting.
    assert!(
        dir.path().join("alerts/chat/seen.json").exists()
            || dir.path().join("alerts/chat/windows.json").exists()
    );
}
