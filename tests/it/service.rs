//! Running as a service: systemd notifications and the watchdog, journald-friendly JSON logs,
//! and `/health` naming a failing sink.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use docspace_siem::simulator::{SimStream, SimZone};
use serde_json::Value;
use time::OffsetDateTime;

use crate::support::{Agent, HttpCollector, Workdir, bin, eventually, free_port, portal};

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
    let (sim, server) = portal(SimZone::Utc).await;
    let now = OffsetDateTime::now_utc();
    sim.generate(
        SimStream::Audit,
        20,
        now - time::Duration::hours(1),
        now - time::Duration::minutes(5),
    );
    let port = free_port();
    let w = Workdir::new();
    let cfg = w.config(&format!(
        "state_dir = \"{{state}}\"\n[api]\naddress = \"127.0.0.1:{port}\"\n{}\n[sinks.good]\ntype = \"webhook\"\nurl = \"{}\"\n[sinks.bad]\ntype = \"webhook\"\nurl = \"{}\"\n",
        Workdir::portal_toml("main", &server.url, "streams = [\"audit\"]\nstart_from = \"1d\""),
        good.url,
        bad.url
    ));
    let mut agent = Agent::start(&cfg, w.path(), "a");
    eventually(Duration::from_secs(30), "the good sink to deliver", || {
        good.events().len() >= 20
    })
    .await;
    eventually(Duration::from_secs(30), "the bad sink's error", || {
        agent.stderr_text().contains("HTTP 401")
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
    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(20)), Some(0));
    assert!(
        !w.state().join("dead-letter/bad.ndjson").exists(),
        "credential errors do not dead-letter"
    );
}
