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
        let text = std::fs::read_to_string(&path)
            .expect("read")
            .replace("/run/credentials/", &format!("{root}/run/credentials/"))
            .replace("/etc/docspace-siem/", &format!("{root}/etc/docspace-siem/"))
            .replace("/var/lib/docspace-siem", &format!("{root}/state"));
        // Create every referenced file under the temp root.
        for word in text.split('"') {
            if word.starts_with(&root) && !word.ends_with("/state") {
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
