//! Security hardening (issue 16): each finding of the review injected against the binary.
//!
//! - the state directory: a planted `lock` symlink, cursor links, a shared `state_dir`, a
//!   root-run command on another user's directory;
//! - a portal that echoes the request's `Authorization` header in its error bodies;
//! - proxy variables with a loopback portal;
//! - thousands of idle connections to the `[api]` listener;
//! - an endless `settings/lifetime` body.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use docspace_siem::simulator::{SimStream, SimZone};
use time::OffsetDateTime;

use crate::support::{Agent, KEY, Scenario, Workdir, bin, eventually, free_port, portal, run_cli};

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|r| r.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn cursor_config(w: &Workdir, url: &str) -> std::path::PathBuf {
    w.config(&format!(
        "state_dir = \"{{state}}\"\n[portals.main]\nurl = \"{url}\"\napi_key = \"{KEY}\"\n[sinks.console]\ntype = \"stdout\"\n"
    ))
}

/// See: issue 16, finding 1. A `lock` symlink planted in the state directory (by the service
/// user, who owns it) must not make `cursor set`, `cursor reset`, `cursor show` or `run`
/// create or truncate its target, nor may a link in place of a cursor file or of `cursors/`
/// redirect a save. Run as root in CI, where following the link would write anywhere.
#[test]
fn a_planted_lock_symlink_creates_and_truncates_nothing() {
    let w = Workdir::new();
    let cfg = cursor_config(&w, "https://docspace.example.com");
    let state = w.state();
    std::fs::create_dir_all(state.join("cursors")).expect("state");
    let outside = w.path().join("outside");
    std::fs::create_dir(&outside).expect("outside");
    let existing = outside.join("precious");
    std::fs::write(&existing, b"root's file").expect("write");
    let missing = outside.join("created-by-root");
    let cfg_s = cfg.to_str().expect("utf-8");
    for target in [&existing, &missing] {
        let _ = std::fs::remove_file(state.join("lock"));
        std::os::unix::fs::symlink(target, state.join("lock")).expect("plant");
        for args in [
            vec![
                "cursor", "set", "--portal", "main", "--to", "1d", "--config", cfg_s,
            ],
            vec!["cursor", "reset", "--portal", "main", "--config", cfg_s],
            vec!["cursor", "show", "--config", cfg_s],
        ] {
            let (code, out, err) = run_cli(&args, None);
            if args[1] != "show" {
                assert_ne!(code, 0, "{args:?} followed the link: {out}{err}");
                assert!(err.contains("symbolic link"), "{args:?}: {err}");
            }
            assert_eq!(
                std::fs::read(&existing).expect("still there"),
                b"root's file",
                "{args:?} truncated the target"
            );
            assert!(!missing.exists(), "{args:?} created the link's target");
        }
        let mut agent = Agent::start(&cfg, w.path(), "planted");
        assert_ne!(agent.wait(Duration::from_secs(20)), Some(0));
        assert!(
            agent.stderr_text().contains("symbolic link"),
            "{}",
            agent.stderr_text()
        );
        assert_eq!(std::fs::read(&existing).expect("kept"), b"root's file");
        assert!(!missing.exists());
    }
    std::fs::remove_file(state.join("lock")).expect("unplant");

    // A link in place of the cursor file is replaced by the rename, never written through.
    std::os::unix::fs::symlink(&existing, state.join("cursors/main.login.json")).expect("plant");
    let (code, out, err) = run_cli(
        &[
            "cursor", "set", "--portal", "main", "--stream", "login", "--to", "1d", "--config",
            cfg_s,
        ],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(std::fs::read(&existing).expect("kept"), b"root's file");
    let md = std::fs::symlink_metadata(state.join("cursors/main.login.json")).expect("cursor");
    assert!(
        md.file_type().is_file(),
        "the link was replaced by the cursor"
    );
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(md.permissions().mode() & 0o777, 0o600);
    // No temp file left, and none of a predictable name was ever used.
    let names: Vec<String> = std::fs::read_dir(state.join("cursors"))
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["main.login.json".to_owned()], "{names:?}");

    // `cursors/` itself swapped for a link to another directory: refused.
    std::fs::remove_dir_all(state.join("cursors")).expect("rm");
    std::os::unix::fs::symlink(&outside, state.join("cursors")).expect("plant dir");
    let (code, _, err) = run_cli(
        &[
            "cursor", "set", "--portal", "main", "--to", "1d", "--config", cfg_s,
        ],
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("symbolic link"), "{err}");
    let listed: Vec<_> = std::fs::read_dir(&outside).expect("dir").collect();
    assert_eq!(listed.len(), 1, "only `precious` is there: {listed:?}");
}

/// See: issue 16, finding 1. `state_dir = "/tmp"`-like directories (writable by every user)
/// are refused and never chmod'ed; a root-run cursor command on a state directory another
/// user owns refuses, saying how to run it as that user.
#[test]
fn a_shared_or_foreign_state_dir_is_refused_and_never_chmod() {
    use std::os::unix::fs::PermissionsExt as _;
    let w = Workdir::new();
    let cfg = cursor_config(&w, "https://docspace.example.com");
    let cfg_s = cfg.to_str().expect("utf-8");
    let state = w.state();
    std::fs::create_dir(&state).expect("state");
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let (code, _, err) = run_cli(
        &[
            "cursor", "set", "--portal", "main", "--to", "1d", "--config", cfg_s,
        ],
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("writable by every user"), "{err}");
    let mode = std::fs::metadata(&state).expect("md").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o1777, "the shared directory was chmod'ed");
    assert!(!state.join("lock").exists() && !state.join("cursors").exists());

    if !is_root() {
        eprintln!("not root: the foreign-owner refusal is checked in CI, which runs as root");
        return;
    }
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    let status = Command::new("chown")
        .args(["65534:65534"])
        .arg(&state)
        .status()
        .expect("chown");
    assert!(status.success());
    for args in [
        vec![
            "cursor", "set", "--portal", "main", "--to", "1d", "--config", cfg_s,
        ],
        vec!["cursor", "reset", "--portal", "main", "--config", cfg_s],
    ] {
        let (code, _, err) = run_cli(&args, None);
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains("sudo -u docspace-siem"), "{args:?}: {err}");
    }
    assert!(!state.join("lock").exists() && !state.join("cursors").exists());
}

/// A portal (or a proxy or error page in front of it) that echoes the request: every answer
/// is a 500 or a 403 whose body holds the request's `Authorization` header.
async fn echoing_portal(status: StatusCode) -> String {
    async fn echo(State(status): State<StatusCode>, headers: HeaderMap) -> Response {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = format!(
            "{{\"error\":{{\"message\":\"request rejected; you sent Authorization: {auth}\"}}}}"
        );
        (status, body).into_response()
    }
    let app = axum::Router::new().fallback(echo).with_state(status);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// See: issue 16, finding 3. A portal echoing the Authorization header in its 500 and 403
/// bodies: the key appears neither in `check`'s output, nor in the log, nor in /health.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echoing_portal_never_gets_the_key_printed() {
    for status in [StatusCode::INTERNAL_SERVER_ERROR, StatusCode::FORBIDDEN] {
        let url = echoing_portal(status).await;
        let w = Workdir::new();
        let port = free_port();
        let cfg = w.config(&format!(
            "state_dir = \"{{state}}\"\n[api]\naddress = \"127.0.0.1:{port}\"\n{}\n[sinks.console]\ntype = \"stdout\"\n",
            Workdir::portal_toml("main", &url, "streams = [\"login\"]")
        ));
        let cfg_s = cfg.to_str().expect("utf-8").to_owned();
        let (code, out, err) =
            tokio::task::spawn_blocking(move || run_cli(&["check", "--config", &cfg_s], None))
                .await
                .expect("check");
        assert_eq!(code, 1, "{out}{err}");
        assert!(out.contains("portal main: FAILED"), "{out}");
        assert!(
            out.contains("[redacted]"),
            "the echo is quoted, scrubbed: {out}"
        );
        assert!(
            !out.contains(KEY) && !err.contains(KEY),
            "key in check: {out}{err}"
        );

        let mut agent = Agent::start(&cfg, w.path(), "echo");
        eventually(
            Duration::from_secs(30),
            "the portal error in the log",
            || agent.stderr_text().contains("redacted"),
        )
        .await;
        let health = reqwest::get(format!("http://127.0.0.1:{port}/health"))
            .await
            .expect("health")
            .text()
            .await
            .expect("text");
        assert!(health.contains("redacted"), "{health}");
        assert!(!health.contains(KEY), "key in /health: {health}");
        agent.signal("TERM");
        assert_eq!(agent.wait(Duration::from_secs(20)), Some(0));
        let log = agent.stderr_text();
        assert!(!log.contains(KEY), "key in the log: {log}");
        // Not even its start (a quote cut inside the key).
        assert!(
            !log.contains(&KEY[..12]),
            "part of the key in the log: {log}"
        );
    }
}

/// A TCP listener standing in for a proxy: counts the connections it gets.
async fn counting_proxy() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            h.fetch_add(1, Ordering::SeqCst);
            drop(s);
        }
    });
    (format!("http://{addr}"), hits)
}

/// See: issue 16, finding 4. With HTTP_PROXY / HTTPS_PROXY / ALL_PROXY pointing at a listening
/// "proxy", a loopback portal is reached directly (the key never goes to the proxy), whether
/// the portal says nothing (the default, none), `proxy = "env"`, or names that proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_variables_never_carry_a_loopback_portals_key() {
    let (proxy, hits) = counting_proxy().await;
    let (sim, server) = portal(SimZone::Utc).await;
    let now = OffsetDateTime::now_utc();
    sim.generate(
        SimStream::Login,
        5,
        now - time::Duration::hours(1),
        now - time::Duration::minutes(5),
    );
    for setting in ["", "proxy = \"env\"", &format!("proxy = \"{proxy}\"")] {
        let w = Workdir::new();
        let cfg = w.config(&format!(
            "state_dir = \"{{state}}\"\n{}\n[sinks.console]\ntype = \"stdout\"\n",
            Workdir::portal_toml("main", &server.url, setting)
        ));
        let out = Command::new(bin())
            .args(["check", "--config"])
            .arg(&cfg)
            .env("HTTP_PROXY", &proxy)
            .env("http_proxy", &proxy)
            .env("HTTPS_PROXY", &proxy)
            .env("ALL_PROXY", &proxy)
            .env("all_proxy", &proxy)
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .output()
            .expect("check runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{setting:?}: {text}");
        assert!(text.contains("portal main: OK"), "{text}");
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "{setting:?} went through the proxy"
        );
    }
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|r| r.split_whitespace().next().and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// See: issue 16, finding 5. 2,000 idle connections to /health (the agent limited to 512
/// descriptors): /health still answers at once, and cursor saves keep working (no EMFILE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_api_connections_starve_nothing() {
    let (sim, server) = portal(SimZone::Utc).await;
    let now = OffsetDateTime::now_utc();
    sim.generate(
        SimStream::Login,
        10,
        now - time::Duration::hours(1),
        now - time::Duration::minutes(5),
    );
    let w = Workdir::new();
    let port = free_port();
    let cfg = w.config(&format!(
        "state_dir = \"{{state}}\"\n[api]\naddress = \"127.0.0.1:{port}\"\n{}\n[sinks.console]\ntype = \"stdout\"\n",
        Workdir::portal_toml("main", &server.url, "streams = [\"login\"]\nstart_from = \"1d\"")
    ));
    let stderr = w.path().join("idle.stderr");
    let stdout = w.path().join("idle.stdout");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 512 && exec \"$0\" run --config \"$1\"")
        .arg(bin())
        .arg(&cfg)
        .current_dir(w.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).expect("stdout"))
        .stderr(std::fs::File::create(&stderr).expect("stderr"))
        .spawn()
        .expect("agent");
    let cursor = w.state().join("cursors/main.login.json");
    eventually(Duration::from_secs(30), "the first cursor save", || {
        cursor.exists()
    })
    .await;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut idle = Vec::new();
    for _ in 0..2000 {
        if let Ok(s) = tokio::net::TcpStream::connect(addr).await {
            idle.push(s);
        }
    }
    let opened = idle.len();
    assert!(opened >= 1900, "only {opened} connections opened");
    let start = std::time::Instant::now();
    let health = tokio::time::timeout(
        Duration::from_secs(5),
        reqwest::get(format!("http://127.0.0.1:{port}/health")),
    )
    .await
    .expect("/health answered within 5 s")
    .expect("health");
    assert_eq!(health.status().as_u16(), 200);
    eprintln!(
        "idle connections: {opened} open; /health answered in {} ms",
        start.elapsed().as_millis()
    );
    // Cursor saves keep working: new rows are delivered and their cursor saved.
    let before = std::fs::read_to_string(&cursor).expect("cursor");
    let now = OffsetDateTime::now_utc();
    sim.generate(
        SimStream::Login,
        5,
        now - time::Duration::seconds(40),
        now - time::Duration::seconds(20),
    );
    eventually(Duration::from_secs(30), "a new cursor save", || {
        std::fs::read_to_string(&cursor).is_ok_and(|c| c != before)
    })
    .await;
    let log = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(!log.contains("Too many open files"), "{log}");
    let fds = std::fs::read_dir(format!("/proc/{}/fd", child.id()))
        .map(|d| d.count())
        .unwrap_or(0);
    eprintln!("agent descriptors with {opened} idle connections: {fds}");
    drop(idle);
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let code = child.wait().expect("wait").code();
    assert_eq!(code, Some(0), "{log}");
}

/// A portal that forwards every request to the simulator, except `settings/lifetime`, which
/// answers 200 with a body that never ends.
async fn endless_retention_portal(upstream: String) -> String {
    async fn forward(State(upstream): State<String>, uri: Uri, headers: HeaderMap) -> Response {
        if uri.path().ends_with("/audit/settings/lifetime") {
            let chunk = bytes::Bytes::from(vec![b' '; 64 * 1024]);
            let stream =
                futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
            return Response::builder()
                .header("content-type", "application/json")
                .body(Body::from_stream(stream))
                .expect("response");
        }
        let url = format!(
            "{upstream}{}",
            uri.path_and_query().map_or("", |p| p.as_str())
        );
        let mut req = reqwest::Client::new().get(url);
        if let Some(a) = headers.get("authorization") {
            req = req.header("authorization", a.as_bytes());
        }
        match req.send().await {
            Ok(r) => {
                let status = StatusCode::from_u16(r.status().as_u16()).expect("status");
                (status, r.bytes().await.unwrap_or_default()).into_response()
            }
            Err(_) => StatusCode::BAD_GATEWAY.into_response(),
        }
    }
    let app = axum::Router::new().fallback(forward).with_state(upstream);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// See: issue 16, finding 6. The retention request answered by an endless body: the agent
/// refuses it by name, its RSS stays flat, and it keeps delivering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_retention_body_is_refused_by_name() {
    let (sim, server) = portal(SimZone::Utc).await;
    let now = OffsetDateTime::now_utc();
    sim.generate(
        SimStream::Login,
        20,
        now - time::Duration::hours(1),
        now - time::Duration::minutes(5),
    );
    let url = endless_retention_portal(server.url.clone()).await;
    let w = Workdir::new();
    let cfg = w.config(&format!(
        "state_dir = \"{{state}}\"\n{}\n[sinks.console]\ntype = \"stdout\"\nformat = \"json\"\n",
        Workdir::portal_toml("main", &url, "streams = [\"login\"]\nstart_from = \"1d\"")
    ));
    let mut agent = Agent::start(&cfg, w.path(), "endless");
    eventually(Duration::from_secs(30), "the refusal, by name", || {
        agent.stderr_text().contains("audit/settings/lifetime")
    })
    .await;
    eventually(Duration::from_secs(30), "every row delivered", || {
        agent.stdout_lines().len() >= 20
    })
    .await;
    let rss = rss_kib(agent.pid());
    eprintln!("RSS with an endless retention body: {} KiB", rss);
    assert!(rss < 100 * 1024, "RSS {rss} KiB");
    assert!(
        agent.child.try_wait().expect("wait").is_none(),
        "the agent stays up"
    );
    agent.signal("TERM");
    assert_eq!(agent.wait(Duration::from_secs(20)), Some(0));
}

/// See: issue 16, finding 5. With `[api] token_file`, /health and /metrics answer 401 without
/// the bearer token and 200 with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_token_guards_health_and_metrics() {
    let port = free_port();
    let s = Scenario::new(SimZone::Utc).await;
    let token = s.work.path().join("api.token");
    std::fs::write(&token, "api-token-0123456789\n").expect("token");
    set_mode(&token, 0o600);
    let mut s = s
        .top(&format!(
            "[api]\naddress = \"127.0.0.1:{port}\"\ntoken_file = \"{}\"",
            token.display()
        ))
        .portal("streams = [\"login\"]")
        .sink("[sinks.console]\ntype = \"stdout\"");
    s.start_as("token");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    s.until(Duration::from_secs(20), "the listener", || {
        std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_ok()
    })
    .await;
    for path in ["/health", "/metrics"] {
        let r = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status().as_u16(), 401, "{path}");
        let r = client
            .get(format!("{base}{path}"))
            .bearer_auth("wrong-token-0123456789")
            .send()
            .await
            .expect("get");
        assert_eq!(r.status().as_u16(), 401, "{path}");
        let r = client
            .get(format!("{base}{path}"))
            .bearer_auth("api-token-0123456789")
            .send()
            .await
            .expect("get");
        assert_ne!(r.status().as_u16(), 401, "{path}");
    }
    s.drain();
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// See: issue 16, finding 7. `demo` keeps nothing at a predictable path in the temporary
/// directory: its config and state live in a private directory of a random name, removed at
/// the end.
#[test]
fn demo_uses_a_private_temporary_directory() {
    let tmp = tempfile::tempdir().expect("tmp");
    let out = Command::new(bin())
        .args(["demo", "--events", "3", "--format", "json"])
        .env("TMPDIR", tmp.path())
        .output()
        .expect("demo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).expect("dir").collect();
    assert!(left.is_empty(), "demo left {left:?}");
    let mut text = String::new();
    out.stdout
        .as_slice()
        .read_to_string(&mut text)
        .expect("utf-8");
    assert!(text.lines().count() >= 3, "{text}");
}

/// See: issue 16, finding 7. A webhook answering 302 (never followed) holds the batch as an
/// operator error, shown in /health, and delivers it once the receiver answers 2xx again;
/// nothing is dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirecting_webhook_holds_the_batch_instead_of_dead_lettering() {
    let hook = crate::support::HttpCollector::start().await;
    hook.script(&[(302, None); 3]);
    let mut s = Scenario::new(SimZone::Utc)
        .await
        .events(
            SimStream::Audit,
            10,
            time::Duration::hours(1),
            time::Duration::minutes(5),
        )
        .portal("streams = [\"audit\"]\nstart_from = \"1d\"")
        .sink(&format!(
            "[sinks.hook]\ntype = \"webhook\"\nurl = \"{}\"",
            hook.url
        ));
    s.start_as("redirect");
    s.until(
        Duration::from_secs(60),
        "delivery after the redirects",
        || hook.events().len() >= 10,
    )
    .await;
    let log = s.agent().stderr_text();
    assert!(log.contains("HTTP 302"), "{log}");
    assert!(log.contains("events wait meanwhile"), "{log}");
    assert!(
        !s.work.state().join("dead-letter/hook.ndjson").exists(),
        "a redirect is not the content's fault"
    );
    s.drain();
}
