//! Many portals (issue 20): `include = ["portals.d/*.toml"]`, SIGHUP adding, removing and
//! refusing portal files while the others go on, `validate` naming the file and key, and the
//! rate-limit warning of portals sharing one API key.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use docspace_siem::simulator::{SimServer, SimStream, SimZone};
use serde_json::Value;

use crate::support::scenario::{hours, minutes, seconds};
use crate::support::{Agent, HttpCollector, KEY, Workdir, eventually, free_port, portal, run_cli};

/// A portal file for the simulated portal at `url`: login only, polled every second.
fn portal_file(name: &str, url: &str) -> String {
    Workdir::portal_toml(name, url, "streams = [\"login\"]\nstart_from = \"1d\"")
}

/// The main file: state directory, the include, `[api]` on `port` (or off), an ECS webhook.
fn main_file(w: &Workdir, hook: &str, port: Option<u16>) -> std::path::PathBuf {
    std::fs::create_dir_all(w.path().join("portals.d")).expect("portals.d");
    let api = match port {
        Some(p) => format!("address = \"127.0.0.1:{p}\""),
        None => "enabled = false".to_owned(),
    };
    w.config(&format!(
        "state_dir = \"{{state}}\"\nshutdown_timeout = \"5s\"\ninclude = [\"portals.d/*.toml\"]\n[api]\n{api}\n[sinks.hook]\ntype = \"webhook\"\nformat = \"ecs\"\nurl = \"{hook}\"\n"
    ))
}

/// The portal names `/health` lists, and whether `/metrics` names `portal`.
async fn health_portals(port: u16, portal: &str) -> (Vec<String>, bool) {
    let health: Value = reqwest::get(format!("http://127.0.0.1:{port}/health"))
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    let names = health["portals"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    (names, metrics.contains(&format!("portal=\"{portal}\"")))
}

/// The ids the hook received from the portal at `server` (ECS `docspace.unique_id` starts with
/// its host and port).
fn ids_from(hook: &HttpCollector, server: &SimServer) -> BTreeSet<String> {
    let host = server
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/');
    hook.events()
        .iter()
        .filter_map(|e| e.pointer("/docspace/unique_id").and_then(Value::as_str))
        .filter(|id| id.starts_with(&format!("{host}:")))
        .map(str::to_owned)
        .collect()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_removes_and_refuses_portal_files_while_the_others_go_on() {
    let hook = HttpCollector::start().await;
    let (sim_a, server_a) = portal(SimZone::Utc).await;
    let (sim_b, server_b) = portal(SimZone::Utc).await;
    let now = time::OffsetDateTime::now_utc();
    sim_a.generate(SimStream::Login, 40, now - hours(3), now - minutes(2));
    sim_b.generate(SimStream::Login, 30, now - hours(3), now - minutes(2));
    let w = Workdir::new();
    let port = free_port();
    let cfg = main_file(&w, &hook.url, Some(port));
    let dir = w.path().join("portals.d");
    write(
        &dir.join("alpha.toml"),
        &portal_file("alpha", &server_a.url),
    );
    let mut agent = Agent::start(&cfg, w.path(), "a");
    eventually(Duration::from_secs(20), "alpha's events", || {
        ids_from(&hook, &server_a).len() >= 40
    })
    .await;
    assert!(ids_from(&hook, &server_b).is_empty());

    // A second file and SIGHUP: beta starts, alpha goes on.
    write(&dir.join("beta.toml"), &portal_file("beta", &server_b.url));
    agent.signal("HUP");
    let cursor_b = w.state().join("cursors").join("beta.login.json");
    eventually(Duration::from_secs(20), "beta's events and cursor", || {
        ids_from(&hook, &server_b).len() >= 30 && cursor_b.is_file()
    })
    .await;
    let log = agent.stderr_text();
    assert!(
        log.contains("configuration reloaded: portals changed"),
        "{log}"
    );
    assert!(log.contains("added=[\"beta\"]"), "{log}");
    let (names, _) = health_portals(port, "alpha").await;
    assert_eq!(names, ["alpha", "beta"]);

    // Alpha's file removed and SIGHUP: alpha stops (its cursor stays), beta goes on.
    std::fs::remove_file(dir.join("alpha.toml")).expect("rm");
    agent.signal("HUP");
    eventually(Duration::from_secs(20), "alpha to stop", || {
        agent
            .stderr_text()
            .contains("portals stopped; their cursors are saved")
    })
    .await;
    let stopped_at = sim_a.request_count();
    assert!(w.state().join("cursors").join("alpha.login.json").is_file());
    let (names, alpha_in_metrics) = health_portals(port, "alpha").await;
    assert_eq!(names, ["beta"]);
    assert!(!alpha_in_metrics, "/metrics still names the removed portal");
    let later = time::OffsetDateTime::now_utc();
    sim_a.generate(SimStream::Login, 5, later, later + seconds(1));
    sim_b.generate(SimStream::Login, 5, later, later + seconds(1));
    eventually(Duration::from_secs(20), "beta's new events", || {
        ids_from(&hook, &server_b).len() >= 35
    })
    .await;

    // Beta's settings changed and SIGHUP: it restarts from its saved cursor, nothing resent.
    write(
        &dir.join("beta.toml"),
        &portal_file("beta", &server_b.url).replace("error_retry = \"2s\"", "error_retry = \"3s\""),
    );
    agent.signal("HUP");
    eventually(Duration::from_secs(20), "beta to restart", || {
        agent.stderr_text().contains("restarted=[\"beta\"]")
    })
    .await;
    let again = time::OffsetDateTime::now_utc();
    sim_b.generate(SimStream::Login, 5, again, again + seconds(1));
    eventually(
        Duration::from_secs(20),
        "beta's events after its restart",
        || ids_from(&hook, &server_b).len() >= 40,
    )
    .await;

    // A broken file and SIGHUP: an error naming the file and key, the previous set runs on.
    let broken = dir.join("gamma.toml");
    write(
        &broken,
        &format!("[portals.gamma]\nurl = \"ftp://docspace.example.com\"\napi_key = \"{KEY}\"\n"),
    );
    agent.signal("HUP");
    eventually(Duration::from_secs(20), "the refused reload", || {
        agent
            .stderr_text()
            .contains("the new configuration is invalid; still running with the previous one")
    })
    .await;
    let log = agent.stderr_text();
    assert!(
        log.contains(&format!("{}: portals.gamma.url: ", broken.display())),
        "{log}"
    );
    let more = time::OffsetDateTime::now_utc();
    sim_b.generate(SimStream::Login, 5, more, more + seconds(1));
    eventually(Duration::from_secs(20), "beta still delivering", || {
        ids_from(&hook, &server_b).len() >= 45
    })
    .await;
    // A portal whose cursor is corrupt is not started (named in an ERROR); the rest runs on.
    std::fs::remove_file(&broken).expect("rm");
    write(
        &w.state().join("cursors").join("delta.login.json"),
        "not a cursor",
    );
    write(
        &dir.join("delta.toml"),
        &portal_file("delta", &server_a.url),
    );
    agent.signal("HUP");
    eventually(Duration::from_secs(20), "delta refused", || {
        agent
            .stderr_text()
            .contains("the portal is not started; fix it and send SIGHUP again")
    })
    .await;
    assert!(agent.stderr_text().contains("not_started=[\"delta\"]"));
    // Alpha (and delta, on alpha's portal) never asked it again after it stopped.
    assert_eq!(sim_a.request_count(), stopped_at);
    assert_eq!(ids_from(&hook, &server_a).len(), 40);

    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(20)), Some(0));
    assert!(!agent.stderr_text().contains("panicked"));
    // Every row of beta once: stopping and restarting it resent nothing.
    let sent = hook
        .events()
        .iter()
        .filter_map(|e| e.pointer("/docspace/unique_id").and_then(Value::as_str))
        .filter(|id| ids_from(&hook, &server_b).contains(*id))
        .count();
    assert_eq!((sent, ids_from(&hook, &server_b).len()), (45, 45));
}

#[test]
fn validate_names_the_included_file_and_the_key() {
    let w = Workdir::new();
    let cfg = main_file(&w, "https://collector.example.com/x", None);
    let dir = w.path().join("portals.d");
    write(
        &dir.join("good.toml"),
        &portal_file("good", "https://good.example.com"),
    );
    let bad = dir.join("acme.toml");
    write(
        &bad,
        "[portals.acme]\nurl = \"https://acme.example.com/api/2.0\"\napi_key = \"sk-a\"\n[sinks.more]\ntype = \"stdout\"\n",
    );
    let (code, out, err) = run_cli(&["validate", "--config", cfg.to_str().expect("utf8")], None);
    assert_eq!(code, 78, "{out}{err}");
    let shown = bad.display();
    assert!(
        err.contains(&format!("{shown}: portals.acme.url: has the path")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{shown}: sinks: an included file holds [portals.NAME] tables only"
        )),
        "{err}"
    );
    assert!(!err.contains("good"), "{err}");
}

/// `n` portal files on one URL and API key, polled every second (both streams).
fn shared_key_dir(n: usize, extra: &str) -> (i32, String, String) {
    let w = Workdir::new();
    let cfg = main_file(&w, "https://collector.example.com/x", None);
    for i in 0..n {
        write(
            &w.path().join("portals.d").join(format!("p{i:02}.toml")),
            &format!(
                "[portals.p{i:02}]\nurl = \"https://docspace.example.com\"\napi_key = \"{KEY}\"\npoll_interval = \"1s\"\n{extra}\n"
            ),
        );
    }
    run_cli(&["validate", "--config", cfg.to_str().expect("utf8")], None)
}

#[test]
fn validate_warns_when_portals_sharing_a_key_outrun_the_rate_limit() {
    let (code, out, err) = shared_key_dir(40, "max_requests_per_second = 0.5");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("config is valid: 40 portal(s)"), "{out}");
    assert!(
        err.contains(
            "warning: portals sharing the API key of https://docspace.example.com (p00, p01,"
        ),
        "{err}"
    );
    assert!(
        err.contains("need at least 9600 requests a minute"),
        "{err}"
    );
    assert!(err.contains("Raise poll_interval"), "{err}");
    assert!(!err.contains(KEY), "the key leaked: {err}");

    let (code, out, err) = shared_key_dir(2, "max_requests_per_second = 12");
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains("warning"), "{err}");
}
