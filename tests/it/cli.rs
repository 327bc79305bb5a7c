//! The command line: `validate`, `encode`, exit codes, and every shipped config file.

use std::path::Path;

use crate::support::{Workdir, parse_cef, run_cli, shared, validate_ecs};

#[test]
fn validate_reports_every_problem_with_key_and_env_var_exit_78() {
    let w = Workdir::new();
    let cfg = w.config(
        r#"
state_dir = "{state}"
[portals.main]
url = "http://docspace.example.com"
api_key = "sk-secret-value"
poll_interval = "often"
[sinks.siem]
type = "syslog"
address = "siem.example.com"
framing = "sideways"
[sinks.hook]
type = "webhook"
"#,
    );
    let (code, out, err) = run_cli(&["validate", "--config", cfg.to_str().expect("utf8")], None);
    assert_eq!(code, 78, "stdout {out} stderr {err}");
    for needle in [
        "portals.main.url:",
        "DOCSPACE_SIEM_PORTALS__MAIN__URL",
        "portals.main.poll_interval:",
        "sinks.siem.address:",
        "sinks.siem.framing:",
        "sinks.hook.url: missing",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    assert!(!err.contains("sk-secret-value"), "secret leaked:\n{err}");
}

#[test]
fn unknown_keys_and_missing_files_are_config_errors() {
    let w = Workdir::new();
    let cfg = w.config(
        "state_dir = \"{state}\"\n[portals.main]\nurl = \"https://d.example.com\"\napi_key_file = \"/nonexistent/key\"\nbogus_key = 1\n[sinks.c]\ntype = \"stdout\"\n",
    );
    let (code, _, err) = run_cli(&["validate", "--config", cfg.to_str().expect("utf8")], None);
    assert_eq!(code, 78);
    assert!(err.contains("bogus_key"), "{err}");
    let (code, _, err) = run_cli(&["validate", "--config", "/nonexistent/c.toml"], None);
    assert_eq!(code, 78);
    assert!(err.contains("does not exist"), "{err}");
    let (code, _, err) = run_cli(&["run", "--config", "/nonexistent/c.toml"], None);
    assert_eq!(code, 78, "{err}");
}

/// Every file in config/ validates once the secret files it names exist.
#[test]
fn every_shipped_config_file_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("config/ exists") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let w = Workdir::new();
        let root = w.path().display().to_string();
        let rewrite = |text: &str| {
            text.replace("/run/credentials/", &format!("{root}/run/credentials/"))
                .replace("/etc/docspace-siem/", &format!("{root}/etc/docspace-siem/"))
                .replace("/var/lib/docspace-siem", &format!("{root}/state"))
        };
        let text = rewrite(&std::fs::read_to_string(&path).expect("read"));
        let mut referenced = text.clone();
        // An example that includes /etc/docspace-siem/portals.d/ gets config/portals.d/ there.
        if text.contains("portals.d/") {
            let into = w.path().join("etc/docspace-siem/portals.d");
            std::fs::create_dir_all(&into).expect("mkdir");
            for entry in std::fs::read_dir(dir.join("portals.d")).expect("config/portals.d") {
                let p = entry.expect("entry").path();
                let body = rewrite(&std::fs::read_to_string(&p).expect("read"));
                std::fs::write(into.join(p.file_name().expect("name")), &body).expect("write");
                referenced.push_str(&body);
            }
        }
        // Create every referenced file under the temp root (glob patterns are not files).
        for word in referenced.split('"') {
            if word.starts_with(&root) && !word.ends_with("/state") && !word.contains('*') {
                let p = Path::new(word);
                std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
                let body = if word.ends_with(".pem") {
                    std::fs::read_to_string(crate::delivery::test_ca()).expect("pem")
                } else {
                    "https://collector.example.com/x".to_owned()
                };
                std::fs::write(p, body).expect("write");
            }
        }
        let cfg = w.config(&text);
        let (code, out, err) =
            run_cli(&["validate", "--config", cfg.to_str().expect("utf8")], None);
        assert_eq!(code, 0, "{} does not validate:\n{out}{err}", path.display());
        checked += 1;
    }
    assert!(checked >= 1, "no config files found in {}", dir.display());
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .expect("fixture")
}

#[test]
fn encode_ecs_from_envelopes_passes_the_official_ecs_validator() {
    let mut all = String::new();
    for f in ["login-filter.json", "events-filter.json"] {
        let (code, out, err) = run_cli(
            &[
                "encode",
                "--format",
                "ecs",
                "--portal",
                "https://docspace.example.com",
                "-",
            ],
            Some(fixture(f).as_bytes()),
        );
        assert_eq!(code, 0, "{err}");
        all.push_str(&out);
    }
    assert_eq!(all.lines().count(), 11);
    validate_ecs(&all);
}

#[test]
fn encode_accepts_arrays_and_ndjson_and_names_the_bad_line() {
    let v: serde_json::Value = serde_json::from_str(&fixture("login-filter.json")).expect("json");
    let rows = v["response"].as_array().expect("rows");
    let array = serde_json::to_string(rows).expect("ser");
    let (code, out, _) = run_cli(&["encode", "--format", "json"], Some(array.as_bytes()));
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 7);
    let first: serde_json::Value =
        serde_json::from_str(out.lines().next().expect("line")).expect("json");
    assert_eq!(first["stream"], "login");
    assert_eq!(first["id"], 48215);

    let mut ndjson: String = rows.iter().map(|r| format!("{r}\n")).collect();
    ndjson.push_str("{\"id\": 1, \"date\": \"not a date\", \"actionId\": 1010}\n");
    let (code, out, err) = run_cli(&["encode", "--format", "cef"], Some(ndjson.as_bytes()));
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("line 8") && err.contains("date"), "{err}");
    assert_eq!(
        out.lines().count(),
        7,
        "the good lines before it were printed"
    );

    let (code, _, err) = run_cli(&["encode", "--format", "cef"], Some(b"{not json\n"));
    assert_eq!(code, 65);
    assert!(err.contains("line 1"), "{err}");
}

/// Attacker-typed login names survive CEF encoding as exactly one record with the same value.
#[test]
fn hostile_login_names_round_trip_through_real_cef_parsers() {
    let hostile = [
        "plain@example.com",
        "pipe|user",
        "eq=admin act=LoginSuccess",
        "back\\slash\\",
        "line\nbreak",
        "crlf\r\nCEF:0|forged|x|1|2|3|4|suser=root",
        "tab\tinside",
        "quote\"d] bracket",
        "uni\u{2028}code ✓ ДокСпейс",
        "#\u{0}nul",
    ];
    let mut ndjson = String::new();
    for (i, name) in hostile.iter().enumerate() {
        let row = serde_json::json!({
            "id": 1000 + i, "date": "2025-01-15T13:58:12.0000000+01:00", "user": "Guest",
            "userId": "712d9ec3-5d2b-4b13-824f-71f00191dcca", "login": name,
            "action": "Failed Login via API", "actionId": 1013, "ip": "192.0.2.66",
            "browser": "Firefox 133", "platform": "Ubuntu", "page": "https://d.example.com/login"
        });
        ndjson.push_str(&format!("{row}\n"));
    }
    let (code, out, err) = run_cli(&["encode", "--format", "cef"], Some(ndjson.as_bytes()));
    assert_eq!(code, 0, "{err}");
    let lines: Vec<String> = out.lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), hostile.len(), "one line per event:\n{out}");
    let parsed = parse_cef(&lines);
    for (name, p) in hostile.iter().zip(&parsed) {
        // Documented sanitising: CR/CRLF → LF, other control characters (not TAB) → U+FFFD.
        let want: String = crate::support::cef_sanitised(name);
        assert_eq!(p["ext"]["suser"].as_str(), Some(want.as_str()), "{p}");
        assert_eq!(p["ext"]["act"], "LoginFailViaApi");
        assert_eq!(p["header"]["signature_id"], "1013");
    }
    let (code, out, _) = run_cli(&["encode", "--format", "ecs"], Some(ndjson.as_bytes()));
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), hostile.len());
    validate_ecs(&out);
    let _ = shared();
}

/// See: issue 15. A DocSpace date at the edge of the calendar made `encode` exit 101 (a panic
/// converting it to UTC); now it is bad input (65) naming the line and the problem, and the
/// edges inside the calendar encode in every format.
#[test]
fn encode_names_a_date_outside_the_calendar_with_65_never_a_panic() {
    for date in [
        "9999-12-31T23:59:59.0000000-01:00",
        "0000-01-01T00:00:00.0000000+14:00",
    ] {
        let row = format!("{{\"id\":1,\"date\":\"{date}\",\"actionId\":1000}}\n");
        for format in ["ecs", "cef", "leef", "json"] {
            let (code, _, err) = run_cli(&["encode", "--format", format], Some(row.as_bytes()));
            assert_eq!(code, 65, "{date} {format}: {err}");
            assert!(
                err.contains("event #1")
                    && err.contains("`date`")
                    && err.contains("outside the years 0000-9999"),
                "{date} {format}: {err}"
            );
            assert!(!err.contains("panicked"), "{err}");
        }
    }
    let edges = "{\"id\":1,\"date\":\"9999-12-31T23:59:59.9999999Z\",\"actionId\":1000}\n\
                 {\"id\":2,\"date\":\"0000-01-01T00:00:00.0000000-14:00\",\"actionId\":1000}\n";
    for format in ["ecs", "cef", "leef", "json"] {
        let (code, out, err) = run_cli(&["encode", "--format", format], Some(edges.as_bytes()));
        assert_eq!(code, 0, "{format}: {err}");
        assert_eq!(out.lines().count(), 2, "{format}: {out}");
    }
}

/// A config whose portal points nowhere (only the cursor commands and `validate` use it).
fn cursor_config(w: &Workdir) -> std::path::PathBuf {
    w.config(
        "state_dir = \"{state}\"\n[portals.main]\nurl = \"http://127.0.0.1:9\"\napi_key = \"sk-x\"\nstreams = [\"login\"]\n[sinks.c]\ntype = \"stdout\"\n",
    )
}

/// Files under `dir` (recursively) with their bytes and mode: what a read-only command must
/// leave exactly as it was.
fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, u32, Vec<u8>)> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut out = Vec::new();
    let Ok(meta) = std::fs::metadata(dir) else {
        return out;
    };
    out.push((dir.to_path_buf(), meta.permissions().mode(), Vec::new()));
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            out.extend(snapshot(&p));
        } else {
            let mode = std::fs::metadata(&p).expect("meta").permissions().mode();
            out.push((p.clone(), mode, std::fs::read(&p).expect("read")));
        }
    }
    out
}

/// See: issue 15. `cursor set --to` an instant in the future exited 0, and the next start
/// called that cursor corrupt. It is refused with 65, saying why, and changes nothing; a
/// duration too long for the calendar is refused too (it panicked).
#[test]
fn cursor_set_to_the_future_is_refused_with_65_and_changes_nothing() {
    let w = Workdir::new();
    let cfg = cursor_config(&w);
    let cfg = cfg.to_str().expect("utf8");
    // On a fresh state directory: not even the directory is created.
    let (code, _, err) = run_cli(
        &[
            "cursor",
            "set",
            "--portal",
            "main",
            "--to",
            "2999-01-01T00:00:00Z",
            "--config",
            cfg,
        ],
        None,
    );
    assert_eq!(code, 65, "{err}");
    assert!(
        err.contains("lies in the future") && err.contains("Nothing was changed"),
        "{err}"
    );
    assert!(!w.state().exists(), "the state directory was created");
    // Over an existing cursor: the file stays byte for byte.
    let (code, out, err) = run_cli(
        &[
            "cursor", "set", "--portal", "main", "--to", "2d", "--config", cfg,
        ],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    let path = w.state().join("cursors/main.login.json");
    let before = snapshot(&w.state());
    for to in ["2999-01-01T00:00:00Z", "-1h", "100000y", "soon"] {
        let to_arg = format!("--to={to}");
        let (code, _, err) = run_cli(
            &[
                "cursor", "set", "--portal", "main", &to_arg, "--config", cfg,
            ],
            None,
        );
        assert_eq!(code, 65, "{to}: {err}");
        assert!(!err.contains("panicked"), "{to}: {err}");
        assert_eq!(snapshot(&w.state()), before, "{to}: the state changed");
    }
    assert!(path.is_file());
    // A minute ago is fine.
    let (code, _, err) = run_cli(
        &[
            "cursor", "set", "--portal", "main", "--to", "1m", "--config", cfg,
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
}

/// See: issue 15. `cursor show` (read only) renamed a corrupt cursor to `.corrupt-…`. It
/// reports it (exit 78) and leaves it where it is; `validate` and `check` change nothing
/// either: no file or directory created, nothing renamed, no mode changed (a damaged alert
/// state of a chat sink included).
#[test]
fn read_only_commands_leave_a_corrupt_cursor_and_all_state_as_it_was() {
    use std::os::unix::fs::PermissionsExt as _;
    let w = Workdir::new();
    let cfg = w.config(
        "state_dir = \"{state}\"\n[portals.main]\nurl = \"http://127.0.0.1:9\"\napi_key = \"sk-x\"\nstreams = [\"login\"]\n[sinks.chat]\ntype = \"slack\"\nurl = \"http://127.0.0.1:9/hook\"\nrules = [\"new_country\"]\n",
    );
    let cfg = cfg.to_str().expect("utf8");
    // First on a state directory that does not exist yet: none is created.
    for args in [
        &["cursor", "show", "--config", cfg][..],
        &["validate", "--config", cfg][..],
        &["check", "--config", cfg][..],
    ] {
        let (code, out, err) = run_cli(args, None);
        assert!(code == 0 || code == 1, "{args:?}: {code} {out}{err}");
        assert!(!w.state().exists(), "{args:?} created the state directory");
    }
    std::fs::create_dir_all(w.state().join("cursors")).expect("mkdir");
    std::fs::create_dir_all(w.state().join("alerts/chat")).expect("mkdir");
    std::fs::set_permissions(w.state(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let cursor = w.state().join("cursors/main.login.json");
    std::fs::write(&cursor, b"{\"version\":1,\"portal\":\"main\"").expect("write");
    std::fs::write(w.state().join("alerts/chat/seen.json"), b"{not json").expect("write");
    let before = snapshot(&w.state());
    let (code, out, err) = run_cli(&["cursor", "show", "--config", cfg], None);
    assert_eq!(code, 78, "{out}{err}");
    assert!(out.contains("(corrupt)"), "{out}");
    assert!(
        err.contains("is corrupt") && err.contains(&cursor.display().to_string()),
        "{err}"
    );
    assert_eq!(
        snapshot(&w.state()),
        before,
        "cursor show changed the state"
    );
    let (code, _, err) = run_cli(&["validate", "--config", cfg], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(snapshot(&w.state()), before, "validate changed the state");
    let (code, _, _) = run_cli(&["check", "--config", cfg], None);
    assert_eq!(code, 1, "nothing listens on port 9");
    assert_eq!(snapshot(&w.state()), before, "check changed the state");
}

/// `check` is honest: syslog over UDP cannot be verified (UNVERIFIED, not OK), and a webhook
/// whose URL answers 404 (a revoked hook) is FAILED, with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_udp_cannot_be_verified_and_a_404_webhook_failed() {
    let (_sim, server) = crate::support::portal(docspace_siem::simulator::SimZone::Utc).await;
    // A receiver with nothing at the hook's path: axum answers 404.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, axum::Router::new()).await;
    });
    let udp = crate::support::free_port();
    let w = crate::support::Workdir::new();
    let cfg = w.config(&format!(
        "state_dir = \"{{state}}\"\n{}\n[sinks.gone]\ntype = \"webhook\"\nurl = \"http://{addr}/hooks/revoked\"\n[sinks.siem]\ntype = \"syslog\"\nprotocol = \"udp\"\naddress = \"127.0.0.1:{udp}\"\n",
        crate::support::Workdir::portal_toml("main", &server.url, ""),
    ));
    let path = cfg.to_str().expect("utf8").to_owned();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        crate::support::run_cli(&["check", "--config", &path], None)
    })
    .await
    .expect("join");
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("portal main: OK"), "{out}");
    assert!(
        out.contains("sink gone: FAILED") && out.contains("HTTP 404") && out.contains("revoked"),
        "{out}"
    );
    assert!(
        out.contains("sink siem: UNVERIFIED") && !out.contains("sink siem: OK"),
        "{out}"
    );
}

/// Each command's help lists its exit codes, as the README's table does.
#[test]
fn each_commands_help_lists_its_exit_codes() {
    for cmd in ["run", "validate", "check", "encode", "cursor", "demo"] {
        let (code, out, err) = run_cli(&[cmd, "--help"], None);
        assert_eq!(code, 0, "{cmd}: {err}");
        assert!(out.contains("Exit codes: 0"), "{cmd} --help:\n{out}");
    }
}

/// `validate` as a new user meets it: one run names every problem by key (a wrong type, an
/// unknown key, a portal URL copied with its /api/2.0 path, a log level typo, a state_dir that
/// is a file), none hiding another, and exits 78.
#[test]
fn validate_names_every_problem_at_once_wrong_types_included() {
    let w = Workdir::new();
    let file = w.path().join("not-a-dir");
    std::fs::write(&file, b"x").expect("write");
    let cfg = w.config(&format!(
        "state_dir = \"{}\"\n[log]\nlevel = \"warning\"\n[portals.main]\nurl = \"https://docspace.example.com/api/2.0\"\napi_key = \"sk-abc\"\npoll_interval = 30\nbogus = 1\n[sinks.c]\ntype = \"stdout\"\n",
        file.display()
    ));
    let (code, out, err) = run_cli(&["validate", "--config", cfg.to_str().expect("utf8")], None);
    assert_eq!(code, 78, "{out}{err}");
    let text = format!("{out}{err}");
    for expect in [
        "state_dir:",
        "log.level:",
        "portals.main.url:",
        "portals.main.poll_interval: invalid type",
        "portals.main.bogus: unknown key",
    ] {
        assert!(text.contains(expect), "missing {expect:?} in:\n{text}");
    }
    assert!(!text.contains("sk-abc"), "{text}");
}
