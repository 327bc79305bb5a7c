//! Alert rules and chat sinks end to end: a simulated portal under attack, the agent binary, and
//! mock Slack and Teams webhooks that answer like the services (Slack `200 ok` after a `429`
//! with `Retry-After`; Teams Workflows `202 Accepted`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use docspace_siem::simulator::{SimEvent, SimZone};
use serde_json::Value;
use time::OffsetDateTime;

use crate::support::{Scenario, Workdir, eventually, run_cli};

/// What an attacker typed as the login name: a Slack broadcast, a mention and a markdown link.
const HOSTILE_LOGIN: &str = "<!channel> @everyone [x](http://evil) mallory@example.com";
/// The path of the mock webhooks: the token that must never show in logs.
const SECRET_PATH: &str = "/services/T0ALERT/B0ALERT/hunter2tokenXYZ";

/// One request a mock webhook received.
#[derive(Debug, Clone)]
struct Request {
    at: Instant,
    status: u16,
    body: Value,
}

/// A scripted answer: HTTP status and optional `Retry-After` seconds.
type Step = (u16, Option<u64>);

/// A chat webhook on 127.0.0.1:0: answers the scripted statuses first, then `ok_status`.
#[derive(Clone)]
struct ChatMock {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    script: Arc<Mutex<Vec<Step>>>,
    ok: (u16, &'static str),
}

impl ChatMock {
    async fn start(ok: (u16, &'static str)) -> ChatMock {
        use axum::extract::State;
        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        async fn handle(
            State(m): State<ChatMock>,
            body: axum::body::Bytes,
        ) -> axum::response::Response {
            let next = {
                let mut s = m.script.lock().expect("lock");
                (!s.is_empty()).then(|| s.remove(0))
            };
            let (status, retry_after) = next.unwrap_or((m.ok.0, None));
            let body: Value = serde_json::from_slice(&body).expect("the message is JSON");
            m.requests.lock().expect("lock").push(Request {
                at: Instant::now(),
                status,
                body,
            });
            let text = if status == m.ok.0 {
                m.ok.1
            } else {
                "rate_limited"
            };
            let mut resp = (StatusCode::from_u16(status).expect("status"), text).into_response();
            if let Some(s) = retry_after {
                resp.headers_mut()
                    .insert("retry-after", s.to_string().parse().expect("header"));
            }
            resp
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let m = ChatMock {
            url: format!("http://{addr}{SECRET_PATH}"),
            requests: Arc::new(Mutex::new(Vec::new())),
            script: Arc::new(Mutex::new(Vec::new())),
            ok,
        };
        let app = axum::Router::new()
            .route(SECRET_PATH, axum::routing::post(handle))
            .with_state(m.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        m
    }

    fn script(&self, steps: &[Step]) {
        self.script.lock().expect("lock").extend_from_slice(steps);
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }

    /// Accepted messages only.
    fn accepted(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.status == self.ok.0)
            .map(|r| r.body)
            .collect()
    }
}

/// Rules named by the Slack blocks of accepted messages (`block_id = alert:<rule>:<id>:<n>`),
/// with how often each alert id arrived.
fn slack_alerts(messages: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in messages {
        for b in m["blocks"].as_array().expect("Slack blocks") {
            if let Some(id) = b["block_id"].as_str()
                && let Some(rest) = id.strip_prefix("alert:")
            {
                let mut it = rest.split(':');
                let rule = it.next().expect("rule").to_owned();
                let alert = it.next().expect("alert id").to_owned();
                out.entry(rule).or_default().push(alert);
            }
        }
    }
    out
}

/// A failed login (wrong password) by the attacker.
fn attempt(at: OffsetDateTime, code: i32) -> SimEvent {
    let mut ev = SimEvent::login(at, code);
    ev.login = Some(HOSTILE_LOGIN.to_owned());
    ev.user = HOSTILE_LOGIN.to_owned();
    ev.ip = "192.0.2.66".to_owned();
    ev
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attack_raises_each_alert_once_and_nothing_else_is_ever_posted() {
    let s = Scenario::new(SimZone::EuropeBerlin).await;
    let sim = s.sim.clone();
    let slack = ChatMock::start((200, "ok")).await;
    let teams = ChatMock::start((202, "")).await;
    let now = OffsetDateTime::now_utc();
    // Normal traffic an hour ago: successful logins, a logout, everyday audit events.
    let minute = time::Duration::minutes(1);
    let mut normal = 0;
    for i in 0..6 {
        sim.insert(SimEvent::login(now - minute * (60 - i), 1029));
        normal += 1;
    }
    sim.insert(SimEvent::login(now - minute * 50, 1006));
    sim.insert(SimEvent::audit(now - minute * 45, 5000));
    sim.insert(SimEvent::audit(now - minute * 44, 5011));
    normal += 3;

    let mut s = s.portal("start_from = \"1d\"").sink(&format!(
        r#"[sinks.console]
type = "stdout"
format = "ecs"

[sinks.chat]
type = "slack"
url = "{slack}"
rules = ["brute_force", "lockout", "success_after_failures"]

[sinks.ops]
type = "teams"
url = "{teams}"
rules = ["lockout"]

[rules.brute_force]
threshold = 10
window = "5m"
"#,
        slack = slack.url,
        teams = teams.url,
    ));
    s.start();

    // Phase 1: start-up and normal events post nothing.
    eventually(
        Duration::from_secs(60),
        "the normal events on stdout",
        || s.agent().stdout_lines().len() >= normal,
    )
    .await;
    s.watch_polls(3, || {}).await;
    assert!(
        slack.requests().is_empty() && teams.requests().is_empty(),
        "a chat sink posted without an alert: {:?} {:?}",
        slack.requests(),
        teams.requests()
    );

    // Phase 2: the attack, dated within the poller's overlap: 15 failed logins for one login
    // within 2 minutes, a lockout, then Alice logs in from the attacker's address.
    slack.script(&[(429, Some(1))]);
    let start = OffsetDateTime::now_utc() - time::Duration::seconds(100);
    for i in 0..15 {
        sim.insert(attempt(start + time::Duration::seconds(i * 5), 1013));
    }
    sim.insert(attempt(start + time::Duration::seconds(75), 1023));
    let mut success = SimEvent::login(start + time::Duration::seconds(80), 1029);
    success.ip = "192.0.2.66".to_owned();
    sim.insert(success);

    eventually(Duration::from_secs(60), "the three Slack alerts", || {
        slack_alerts(&slack.accepted()).len() >= 3
    })
    .await;
    eventually(Duration::from_secs(30), "the Teams alert", || {
        !teams.accepted().is_empty()
    })
    .await;
    // Anything still coming would arrive now.
    s.watch_polls(4, || {}).await;
    s.drain();

    // Exactly these alerts, once each.
    let messages = slack.accepted();
    let alerts = slack_alerts(&messages);
    let once: BTreeMap<&str, usize> = alerts
        .iter()
        .map(|(r, ids)| (r.as_str(), ids.len()))
        .collect();
    assert_eq!(
        once,
        BTreeMap::from([
            ("brute_force", 1),
            ("lockout", 1),
            ("success_after_failures", 1)
        ]),
        "{messages:#?}"
    );
    // The 429 was honoured: the message came again after its Retry-After, and nothing was lost.
    let reqs = slack.requests();
    assert_eq!(reqs[0].status, 429);
    assert!(
        reqs[1].at - reqs[0].at >= Duration::from_millis(950),
        "{:?}",
        reqs[1].at - reqs[0].at
    );
    assert_eq!(reqs[0].body, reqs[1].body, "the same message is sent again");
    // The login is named, neutralised: no broadcast, no link.
    let text = serde_json::to_string(&messages).expect("json");
    assert!(!text.contains("<!channel>"), "{text}");
    assert!(!text.contains("http://evil"), "{text}");
    assert!(
        text.contains("&lt;!channel&gt; @everyone [x](http:\u{200B}//evil) mallory@example.com"),
        "{text}"
    );
    assert!(
        text.contains("192.0.2.66") && text.contains("Alice Johnson"),
        "{text}"
    );
    assert!(text.contains("failed logins for"), "{text}");
    assert!(text.contains("UTC (portal time"), "{text}");
    // Teams got its one lockout alert as an Adaptive Card in a Workflows message.
    let cards = teams.accepted();
    assert_eq!(cards.len(), 1, "{cards:#?}");
    assert_eq!(cards[0]["type"], "message");
    assert_eq!(
        cards[0]["attachments"][0]["content"]["type"],
        "AdaptiveCard"
    );
    assert!(
        serde_json::to_string(&cards[0])
            .expect("json")
            .contains("Login locked out")
    );
    // The webhook tokens never reach the logs; the rule state was saved at the stop.
    let logs = s.agent().stderr_text();
    assert!(
        !logs.contains("hunter2") && !logs.contains("T0ALERT"),
        "{logs}"
    );
    assert!(s.work.state().join("alerts/chat/windows.json").is_file());
    drop(s);
}

#[test]
fn rules_and_chat_sinks_are_validated_with_keys_and_env_vars() {
    let w = Workdir::new();
    let cfg = w.config(
        r#"state_dir = "{state}"
[portals.main]
url = "https://docspace.example.com"
api_key = "sk-abc"
[sinks.chat]
type = "discord"
url = "https://discord.com/api/webhooks/1/tok"
rules = ["brute_force", "nosuch"]
format = "ecs"
[sinks.quiet]
type = "slack"
url = "https://hooks.slack.com/services/T/B/x"
[rules.brute_force]
threshold = 0
by = "host"
[rules.mine]
threshold = 3
"#,
    );
    let (code, out, err) = run_cli(&["validate", "--config", cfg.to_str().expect("utf8")], None);
    assert_eq!(code, 78, "{out}{err}");
    let all = format!("{out}{err}");
    for want in [
        "rules.brute_force.threshold: 0 is not a whole number between 1 and 1000 (env DOCSPACE_SIEM_RULES__BRUTE_FORCE__THRESHOLD)",
        "rules.brute_force.by: \"host\" is not \"user\" or \"ip\"",
        "rules.mine: is not a built-in rule",
        "sinks.chat.format: chat sinks post alert messages",
        "sinks.quiet.rules: missing",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
    assert!(
        !all.contains("tok") && !all.contains("/B/x"),
        "a webhook URL leaked:\n{all}"
    );
    // Valid, with rules from the environment.
    let cfg = w.config(
        r#"state_dir = "{state}"
[portals.main]
url = "https://docspace.example.com"
api_key = "sk-abc"
[sinks.chat]
type = "google_chat"
url = "https://chat.googleapis.com/v1/spaces/AAA/messages?key=k&token=t"
rules = ["spray"]
[rules.spray]
kind = "brute_force"
by = "ip"
"#,
    );
    let (code, out, err) = run_cli(&["validate", "--config", cfg.to_str().expect("utf8")], None);
    assert_eq!(code, 0, "{out}{err}");
    let status = std::process::Command::new(crate::support::bin())
        .args(["validate", "--config", cfg.to_str().expect("utf8")])
        .env("DOCSPACE_SIEM_SINKS__CHAT__RULES", "spray,nosuch")
        .output()
        .expect("runs");
    assert_eq!(status.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&status.stderr).contains("unknown rule \"nosuch\""));
}

/// Needs the optional wiring of `rules` on stdout and webhook sinks (alerts as ECS documents).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_also_reach_other_sinks_as_ecs_documents() {
    let s = Scenario::new(SimZone::EuropeBerlin).await;
    let sim = s.sim.clone();
    let start = OffsetDateTime::now_utc() - time::Duration::hours(1);
    for i in 0..12 {
        sim.insert(attempt(start + time::Duration::seconds(i * 3), 1013));
    }
    sim.insert(attempt(start + time::Duration::seconds(40), 1023));
    for i in 0..5 {
        sim.insert(SimEvent::login(
            start + time::Duration::minutes(5 + i),
            1029,
        ));
    }
    let events = 12 + 1 + 5;
    let mut s = s.portal("start_from = \"1d\"").sink(
        "[sinks.console]\ntype = \"stdout\"\nformat = \"ecs\"\nrules = [\"brute_force\", \"lockout\", \"new_country\"]",
    );
    s.start();
    eventually(
        Duration::from_secs(60),
        "events and alerts on stdout",
        || s.agent().stdout_lines().len() >= events + 2,
    )
    .await;
    s.settle().await;
    s.drain();
    let lines = s.agent().stdout_lines();
    let (alerts, plain): (Vec<&String>, Vec<&String>) =
        lines.iter().partition(|l| l.contains("\"kind\":\"alert\""));
    assert_eq!(plain.len(), events);
    let rules: Vec<String> = alerts
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("json");
            v["rule"]["name"].as_str().expect("rule.name").to_owned()
        })
        .collect();
    assert_eq!(rules, vec!["brute_force", "lockout"], "{alerts:#?}");
    crate::support::validate_ecs(
        &plain
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
    );
    // Alerts are not authentication events: the validator's --strict mode, without --auth.
    let mut child = std::process::Command::new("python3")
        .arg(crate::support::shared().join("ecs/validate_ecs.py"))
        .args(["--strict", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        for l in &alerts {
            writeln!(stdin, "{l}").expect("write");
        }
    }
    let out = child.wait_with_output().expect("validator");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    drop(s);
}
