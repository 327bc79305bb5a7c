//! Running as a service: systemd notifications and the watchdog, journald-friendly JSON logs,
//! and `/health` naming a failing sink.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use docspace_siem::simulator::{SimStream, SimZone};
use serde_json::Value;
use time::OffsetDateTime;

use crate::support::{HttpCollector, Scenario, Workdir, bin, eventually, free_port, portal};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_gets_ready_watchdog_and_stopping_and_journald_gets_json() {
    let (sim, server) = portal(SimZone::Utc).await;
    let now = OffsetDateTime::now_utc();
    sim.generate(
        SimStream::Login,
        5,
        now - time::Duration::hours(1),
        now - time::Duration::minutes(5),
    );
    let w = Workdir::new();
    let cfg = w.config(&format!(
        "state_dir = \"{{state}}\"\n[api]\nenabled = false\n{}\n[sinks.c]\ntype = \"stdout\"\n",
        Workdir::portal_toml("main", &server.url, "start_from = \"1d\"")
    ));
    let sock_path = w.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let stderr = w.path().join("agent.stderr");
    let mut child = Command::new(bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "1000000")
        .env("JOURNAL_STREAM", "8:12345")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("stderr"))
        .spawn()
        .expect("agent");
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got
        .iter()
        .filter(|m: &&String| m.as_str() == "WATCHDOG=1")
        .count()
        < 3
    {
        let n = sock.recv(&mut buf).expect("a notification within 10 s");
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(got.first().map(String::as_str), Some("READY=1"), "{got:?}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    loop {
        let n = sock.recv(&mut buf).expect("STOPPING=1 after SIGTERM");
        if &buf[..n] == b"STOPPING=1" {
            break;
        }
    }
    assert_eq!(child.wait().expect("wait").code(), Some(0));
    let text = std::fs::read_to_string(&stderr).expect("stderr");
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines.is_empty());
    for l in lines {
        let v: Value = serde_json::from_str(l)
            .unwrap_or_else(|e| panic!("not JSON under journald ({e}): {l}"));
        assert!(v.get("level").is_some() && v.get("fields").is_some(), "{l}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_names_a_failing_sink_and_metrics_count_per_sink() {
    let good = HttpCollector::start().await;
    let bad = HttpCollector::start().await;
    bad.script(&[(401, None); 50]);
    let port = free_port();
    let mut s = Scenario::new(SimZone::Utc)
        .await
        .events(
            SimStream::Audit,
            20,
            time::Duration::hours(1),
            time::Duration::minutes(5),
        )
        .top(&format!("[api]\naddress = \"127.0.0.1:{port}\""))
        .portal("streams = [\"audit\"]\nstart_from = \"1d\"")
        .sink(&format!(
            "[sinks.good]\ntype = \"webhook\"\nurl = \"{}\"\n[sinks.bad]\ntype = \"webhook\"\nurl = \"{}\"",
            good.url, bad.url
        ));
    s.start();
    eventually(Duration::from_secs(30), "the good sink to deliver", || {
        good.events().len() >= 20
    })
    .await;
    eventually(Duration::from_secs(30), "the bad sink's error", || {
        s.agent().stderr_text().contains("HTTP 401")
    })
    .await;
    let resp = reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await
        .expect("health");
    assert_eq!(resp.status().as_u16(), 503);
    let doc: Value = resp.json().await.expect("json");
    assert_eq!(doc["sinks"]["good"]["state"], "ok", "{doc}");
    assert_eq!(doc["sinks"]["bad"]["state"], "error", "{doc}");
    assert!(
        doc["sinks"]["bad"]["error"]
            .as_str()
            .expect("error")
            .contains("401"),
        "{doc}"
    );
    assert_eq!(doc["portals"]["main"]["audit"]["state"], "ok", "{doc}");
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("docspace_siem_events_delivered_total{sink=\"good\"} 20"),
        "{metrics}"
    );
    assert!(
        metrics.contains("docspace_siem_events_delivered_total{sink=\"bad\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("docspace_siem_events_polled_total{portal=\"main\",stream=\"audit\"} 20"),
        "{metrics}"
    );
    assert!(
        metrics.contains("docspace_siem_cursor_lag_seconds{portal=\"main\",stream=\"audit\"}"),
        "{metrics}"
    );
    // The bad sink holds the cursor: nothing was acknowledged by every sink yet.
    assert!(
        metrics
            .contains("docspace_siem_events_committed_total{portal=\"main\",stream=\"audit\"} 0"),
        "{metrics}"
    );
    s.drain();
    assert!(
        !s.work.state().join("dead-letter/bad.ndjson").exists(),
        "credential errors do not dead-letter"
    );
}

/// A chat webhook on 127.0.0.1:0 that answers every post with a 429 asking for an absurd wait
/// (`Retry-After: 1e20`, Discord's `retry_after: 1e300` in the body); returns its URL and the
/// count of posts.
async fn absurd_chat_service() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let posts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = posts.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut resp = (
                    StatusCode::TOO_MANY_REQUESTS,
                    r#"{"message":"You are being rate limited.","retry_after":1e300,"global":false}"#,
                )
                    .into_response();
                resp.headers_mut()
                    .insert("retry-after", "1e20".parse().expect("header"));
                resp
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, posts)
}

/// See: issue 15. A chat service answering `Retry-After: 1e20` (and `retry_after: 1e300`)
/// panicked the sink task in `Duration::from_secs_f64`; the agent ran on delivering nothing
/// while `/health` said ok. Now the wait is clamped to the sink backoff: no panic, the agent
/// keeps running, `/health` names the rate limit, and SIGTERM still stops it with 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_429_asking_for_an_absurd_wait_is_clamped_not_a_dead_task() {
    let (chat, posts) = absurd_chat_service().await;
    let port = free_port();
    let mut s = Scenario::new(SimZone::Utc)
        .await
        .top(&format!(
            "shutdown_timeout = \"3s\"\n[api]\naddress = \"127.0.0.1:{port}\""
        ))
        .portal("streams = [\"login\"]\nstart_from = \"1d\"")
        .sink(&format!(
            "[sinks.chat]\ntype = \"discord\"\nurl = \"{chat}\"\nrules = [\"lockout\"]"
        ));
    s.sim.insert(docspace_siem::simulator::SimEvent::login(
        OffsetDateTime::now_utc() - time::Duration::minutes(5),
        1023,
    ));
    s.start();
    eventually(Duration::from_secs(30), "the 429 to be answered", || {
        s.agent().stderr_text().contains("HTTP 429")
    })
    .await;
    // A panicking task would have shown by now; the agent is still running.
    s.settle().await;
    let err = s.agent().stderr_text();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        s.agent_mut().child.try_wait().expect("try_wait"),
        None,
        "{err}"
    );
    assert_eq!(posts.load(std::sync::atomic::Ordering::Relaxed), 1);
    let retry_in = err
        .lines()
        .find(|l| l.contains("HTTP 429"))
        .and_then(|l| l.split("retry_in=").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .expect("the retry delay is logged")
        .to_owned();
    let resp = reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await
        .expect("health");
    assert_eq!(resp.status().as_u16(), 503);
    let doc: Value = resp.json().await.expect("json");
    assert!(
        doc["sinks"]["chat"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("rate limited")),
        "{doc}"
    );
    s.drain();
    eprintln!(
        "chat 429 with Retry-After 1e20 and retry_after 1e300: no panic, retry_in={retry_in}"
    );
}

/// A task that dies (a panic, forced by the debug-only failpoint `sink-task-panic`, as any bug
/// would) stops the agent with exit 1, so that systemd restarts it (`Restart=on-failure`),
/// instead of leaving a process that delivers nothing; nothing unacknowledged is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_dies_stops_the_agent_with_exit_1() {
    let hook = HttpCollector::start().await;
    let (sim, server) = portal(SimZone::Utc).await;
    let now = OffsetDateTime::now_utc();
    sim.generate(
        SimStream::Login,
        20,
        now - time::Duration::hours(1),
        now - time::Duration::minutes(5),
    );
    let w = Workdir::new();
    let cfg = w.config(&format!(
        "state_dir = \"{{state}}\"\nshutdown_timeout = \"5s\"\n[api]\nenabled = false\n{}\n[sinks.hook]\ntype = \"webhook\"\nurl = \"{}\"\n",
        Workdir::portal_toml("main", &server.url, "streams = [\"login\"]\nstart_from = \"1d\""),
        hook.url
    ));
    let stderr = w.path().join("agent.stderr");
    let mut child = Command::new(bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .env("DOCSPACE_SIEM_FAILPOINT", "sink-task-panic")
        .current_dir(w.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("stderr"))
        .spawn()
        .expect("agent");
    let start = std::time::Instant::now();
    let mut exited = None;
    crate::support::try_until(Duration::from_secs(30), || {
        exited = child.try_wait().expect("try_wait");
        exited.is_some()
    })
    .await;
    let Some(status) = exited else {
        let _ = child.kill();
        panic!(
            "the agent ran on after its sink task died:\n{}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
    };
    let err = std::fs::read_to_string(&stderr).expect("stderr");
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("sink hook panicked: failpoint sink-task-panic")
            && err.contains("the agent stopped so that its service manager restarts it"),
        "{err}"
    );
    assert!(hook.events().is_empty());
    // A cursor may have been saved for windows that held no event, never past one: a restart
    // sends all 20.
    if let Ok(text) = std::fs::read_to_string(w.state().join("cursors/main.login.json")) {
        let v: Value = serde_json::from_str(&text).expect("cursor");
        let watermark = v["watermark"].as_str().expect("watermark");
        let watermark = docspace_siem::event::parse_date(watermark).expect("date");
        assert!(
            watermark < now - time::Duration::hours(1),
            "a cursor was saved past events no sink acknowledged: {text}"
        );
    }
    eprintln!(
        "sink task panic: agent exited 1 after {:.1} s",
        start.elapsed().as_secs_f64()
    );
}
