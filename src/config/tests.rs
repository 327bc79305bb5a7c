//! Tests of loading and validating the configuration.

use super::*;
use std::io::Write as _;
use time::OffsetDateTime;

/// See: issue 15. `start_from = "100000y"` panicked the start (`now - d` overflowed).
#[test]
fn start_from_far_back_starts_at_1970_without_a_panic() {
    let now = OffsetDateTime::now_utc();
    let year = Duration::from_secs(31_557_600);
    for d in [year * 100_000, Duration::MAX, year * 60] {
        assert_eq!(
            StartFrom::Ago(d).resolve(now),
            OffsetDateTime::UNIX_EPOCH,
            "{d:?}"
        );
    }
    let day = Duration::from_secs(86_400);
    assert_eq!(StartFrom::Ago(day).resolve(now), now - day);
}

fn write(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("c.toml");
    let mut f = std::fs::File::create(&p).expect("create");
    f.write_all(body.as_bytes()).expect("write");
    p
}

fn load_str(body: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(dir.path(), body);
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    load(&Sources { file, env })
}

const GOOD: &str = r#"
state_dir = "/tmp/x"
[portals.main]
url = "https://docspace.example.com"
api_key = "sk-abc"
poll_interval = "1s"
start_from = "2d"
[sinks.console]
type = "stdout"
format = "ecs"
"#;

#[test]
fn good_config_loads() {
    let c = load_str(GOOD, &[]).expect("valid");
    assert_eq!(c.portals.len(), 1);
    assert_eq!(c.portals[0].poll_interval, Duration::from_secs(1));
    assert_eq!(
        c.portals[0].start_from,
        StartFrom::Ago(Duration::from_secs(2 * 86_400))
    );
    assert_eq!(c.portals[0].streams, vec![Stream::Login, Stream::Audit]);
}

#[test]
fn catch_up_limits_default_and_bounds() {
    let c = load_str(GOOD, &[]).expect("valid");
    assert_eq!(c.portals[0].concurrency, 6);
    assert_eq!(c.portals[0].max_requests_per_second, 24.8);
    for (rps, ok) in [
        ("0", true),
        ("12.5", true),
        ("100000", true),
        ("100001", false),
        ("-1", false),
        ("0.001", false),
    ] {
        let body = GOOD.replace(
            "poll_interval = \"1s\"",
            &format!("poll_interval = \"1s\"\nmax_requests_per_second = {rps}"),
        );
        match load_str(&body, &[]) {
            Ok(c) => {
                assert!(ok, "{rps} accepted");
                assert_eq!(c.portals[0].max_requests_per_second.to_string(), rps);
            }
            Err(e) => {
                assert!(!ok, "{rps} rejected: {e}");
                assert!(e.to_string().contains("max_requests_per_second"), "{e}");
            }
        }
    }
    for n in ["0", "17"] {
        let body = GOOD.replace(
            "poll_interval = \"1s\"",
            &format!("poll_interval = \"1s\"\nconcurrency = {n}"),
        );
        let e = load_str(&body, &[]).expect_err("out of range");
        assert!(e.to_string().contains("concurrency"), "{e}");
    }
}

#[test]
fn threads_default_to_one_and_are_bounded() {
    assert_eq!(load_str(GOOD, &[]).expect("valid").threads, 1);
    let body = GOOD.replace(
        "state_dir = \"/tmp/x\"",
        "state_dir = \"/tmp/x\"\nthreads = 4",
    );
    assert_eq!(load_str(&body, &[]).expect("valid").threads, 4);
    let c = load_str(GOOD, &[("DOCSPACE_SIEM_THREADS", "2")]).expect("valid");
    assert_eq!(c.threads, 2);
    for n in ["0", "65", "two", "1.5"] {
        let e = load_str(GOOD, &[("DOCSPACE_SIEM_THREADS", n)]).expect_err("out of range");
        assert!(
            e.to_string()
                .contains("threads: must be a whole number between 1 and 64, got "),
            "{e}"
        );
    }
}

#[test]
fn env_overrides_the_file() {
    let c = load_str(
        GOOD,
        &[
            ("DOCSPACE_SIEM_PORTALS__MAIN__API_KEY", "sk-from-env"),
            ("DOCSPACE_SIEM_PORTALS__MAIN__POLL_INTERVAL", "5s"),
        ],
    )
    .expect("valid");
    assert_eq!(c.portals[0].api_key.expose_secret(), "sk-from-env");
    assert_eq!(c.portals[0].poll_interval, Duration::from_secs(5));
}

#[test]
fn every_problem_is_reported_with_key_and_env_var() {
    let err = load_str(
        r#"
state_dir = "relative"
[portals.main]
url = "http://docspace.example.com"
poll_interval = "soon"
[sinks.a]
type = "syslog"
address = "nohost"
protocol = "carrier-pigeon"
url = "https://x"
"#,
        &[],
    )
    .unwrap_err();
    let text = err.to_string();
    for expect in [
        "state_dir: must be an absolute path",
        "portals.main.url: \"http://docspace.example.com\" must use https",
        "(env DOCSPACE_SIEM_PORTALS__MAIN__URL)",
        "portals.main.poll_interval: \"soon\" is not a duration",
        "portals.main.api_key_file: no API key",
        "sinks.a.address: \"nohost\" is not host:port",
        "sinks.a.protocol: unknown protocol",
        "sinks.a.url: is not a key of a \"syslog\" sink",
    ] {
        assert!(text.contains(expect), "missing {expect:?} in:\n{text}");
    }
}

#[test]
fn a_portal_url_with_a_path_or_query_and_a_log_level_typo_are_refused() {
    for (url, expect) in [
        (
            "https://docspace.example.com/api/2.0",
            "the agent adds /api/2.0/",
        ),
        ("https://docspace.example.com/portal", "without a path"),
        ("https://docspace.example.com/?x=1", "query or fragment"),
    ] {
        let err = load_str(&GOOD.replace("https://docspace.example.com", url), &[])
            .expect_err(url)
            .to_string();
        assert!(
            err.contains("portals.main.url") && err.contains(expect),
            "{url}: {err}"
        );
    }
    assert!(
        load_str(
            &GOOD.replace(
                "https://docspace.example.com",
                "https://docspace.example.com/"
            ),
            &[]
        )
        .is_ok()
    );
    for (level, ok) in [
        ("warning", false),
        ("verbose", false),
        ("warn", true),
        ("INFO", true),
        ("info,docspace_siem=debug", true),
        ("docspace_siem=trace", true),
    ] {
        let r = load_str(&format!("{GOOD}\n[log]\nlevel = \"{level}\"\n"), &[]);
        assert_eq!(r.is_ok(), ok, "{level}: {r:?}");
        if let Err(e) = r {
            assert!(e.to_string().contains("log.level"), "{e}");
        }
    }
}

#[test]
fn a_state_dir_that_is_a_file_or_under_one_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("plain");
    std::fs::write(&file, b"x").expect("write");
    for (dir, expect) in [
        (file.clone(), "is not a directory"),
        (file.join("state"), "cannot be created"),
    ] {
        let err = load_str(&GOOD.replace("/tmp/x", dir.to_str().expect("utf8")), &[])
            .expect_err("refused")
            .to_string();
        assert!(err.contains("state_dir") && err.contains(expect), "{err}");
    }
    let fine = tmp.path().join("new/state");
    assert!(load_str(&GOOD.replace("/tmp/x", fine.to_str().expect("utf8")), &[]).is_ok());
    assert!(!fine.exists(), "validate creates nothing");
}

#[test]
fn one_wrong_type_hides_no_other_problem() {
    let err = load_str(
        r#"
state_dir = "/tmp/x"
[portals.main]
url = "https://docspace.example.com"
api_key = "sk-abc"
poll_interval = 30
overlap = true
bogus = 1
[sinks.a]
type = "syslog"
address = "127.0.0.1:514"
max_datagram = "big"
colour = "red"
"#,
        &[],
    )
    .unwrap_err()
    .to_string();
    for expect in [
        "portals.main.poll_interval: invalid type: an integer, expected a string",
        "portals.main.overlap: invalid type: a boolean",
        "portals.main.bogus: unknown key",
        "sinks.a.max_datagram: invalid type: a string",
        "sinks.a.colour: unknown key",
    ] {
        assert!(err.contains(expect), "missing {expect:?} in:\n{err}");
    }
}

#[test]
fn unknown_keys_are_rejected() {
    let err = load_str(&format!("{GOOD}\nbogus = 1\n"), &[]).unwrap_err();
    assert!(err.to_string().contains("unknown field `bogus`"), "{err}");
    let err = load_str(&GOOD.replace("poll_interval", "pol_interval"), &[]).unwrap_err();
    assert!(err.to_string().contains("pol_interval"), "{err}");
}

#[test]
fn loopback_http_is_accepted_and_secrets_stay_hidden() {
    let c = load_str(
        &GOOD.replace("https://docspace.example.com", "http://127.0.0.1:8080"),
        &[],
    )
    .expect("loopback http ok");
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("sk-abc"), "secret leaked into Debug: {dbg}");
}

/// See: issue 16. A secret in each kind of config error: a wrong-type value, a TOML
/// syntax error on the secret's line, credentials in sink endpoint URLs, a wrong-type
/// environment value. Each error names the key and the problem, never the value.
#[test]
fn config_errors_never_quote_a_secret() {
    // (config text, environment, the secret, what the error must say instead)
    type Case = (
        String,
        Vec<(&'static str, &'static str)>,
        &'static str,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            format!(
                "{GOOD}[sinks.hook]\ntype = \"webhook\"\nurl = \"https://c.example.com/in\"\nheaders = \"Authorization: Bearer HDRSECRET-1111\"\n"
            ),
            vec![],
            "HDRSECRET-1111",
            "sinks.hook.headers: invalid type: a string, expected a map",
        ),
        (
            format!(
                "{GOOD}[sinks.hec]\ntype = \"splunk_hec\"\nendpoint = \"https://splunk.example.com:8088\"\ntoken = \"HECSECRET-2222\n"
            ),
            vec![],
            "HECSECRET-2222",
            "sinks.hec.token: TOML syntax error at line 14, column",
        ),
        (
            format!(
                "{GOOD}[sinks.es]\ntype = \"elasticsearch\"\nendpoint = \"https://elastic:ESPASS-3333@es.example.com:9200\"\n"
            ),
            vec![],
            "ESPASS-3333",
            "sinks.es.endpoint: https://es.example.com:9200/… must not hold credentials",
        ),
        (
            format!(
                "{GOOD}[sinks.hec]\ntype = \"splunk_hec\"\nendpoint = \"http://admin:HECPASS-4444@splunk.example.com:8088\"\ntoken = \"t0k3n-abcd\"\n"
            ),
            vec![],
            "HECPASS-4444",
            "sinks.hec.endpoint: http://splunk.example.com:8088/… must use https",
        ),
        (
            GOOD.replace(
                "https://docspace.example.com",
                "http://user:PORTALPASS-5555@docspace.example.com",
            ),
            vec![],
            "PORTALPASS-5555",
            "portals.main.url: http://docspace.example.com/… must use https",
        ),
        (
            format!("{GOOD}[sinks.hook]\ntype = \"webhook\"\nurl = \"https://c.example.com/in\"\n"),
            vec![(
                "DOCSPACE_SIEM_SINKS__HOOK__HEADERS",
                "Bearer ENVSECRET-6666",
            )],
            "ENVSECRET-6666",
            "sinks.hook.headers: invalid type: a string, expected a map",
        ),
        (
            format!("{GOOD}[api]\naddress = 12345\n"),
            vec![("DOCSPACE_SIEM_PORTALS__MAIN__API_KEY", "sk-ENVKEY-7777")],
            "12345",
            "api: invalid type: an integer, expected a string",
        ),
    ];
    for (body, env, secret, expect) in cases {
        let err = load_str(&body, &env).expect_err("invalid").to_string();
        assert!(!err.contains(secret), "{secret} leaked:\n{err}");
        assert!(err.contains(expect), "missing {expect:?} in:\n{err}");
    }
    // Structural, not only the scrubber: the serde and TOML rewrites drop the value.
    assert_eq!(
        without_values("invalid type: string \"Authorization: x\", expected a map"),
        "invalid type: a string, expected a map"
    );
    let (key, problem) = toml_problem(
            "TOML parse error at line 2, column 9\n  |\n2 | token = \"abc\n  |         ^\ninvalid basic string\n",
            Path::new("/nonexistent"),
        )
        .expect("parsed");
    assert_eq!(key, "");
    assert_eq!(
        problem,
        "TOML syntax error at line 2, column 9: invalid basic string"
    );
}

/// See: issue 16. Secret files readable or writable by others: world-writable is refused,
/// readable by every user (or a group the agent does not run as) is a warning.
#[cfg(unix)]
#[test]
fn secret_files_open_to_others_warn_or_fail() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tmp");
    let key = dir.path().join("main.key");
    std::fs::write(&key, "sk-from-file-8888").expect("write");
    let body = GOOD.replace(
        "api_key = \"sk-abc\"",
        &format!("api_key_file = {:?}", key.display().to_string()),
    );
    for (mode, fails, warns) in [
        (0o600, false, false),
        (0o604, false, true),
        (0o622, true, false),
    ] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).expect("chmod");
        match load_str(&body, &[]) {
            Ok(c) => {
                assert!(!fails, "{mode:o} accepted");
                assert_eq!(!c.warnings.is_empty(), warns, "{mode:o}: {:?}", c.warnings);
                if warns {
                    assert!(
                        c.warnings[0]
                            .to_string()
                            .contains("portals.main.api_key_file")
                    );
                }
            }
            Err(e) => {
                assert!(fails, "{mode:o} refused: {e}");
                assert!(e.to_string().contains("writable by every user"), "{e}");
            }
        }
    }
}

#[test]
fn proxy_is_none_by_default_and_parsed_per_portal_and_sink() {
    let c = load_str(GOOD, &[]).expect("valid");
    assert!(matches!(c.portals[0].tls.proxy, crate::http::Proxy::None));
    let body = GOOD.replace(
        "poll_interval = \"1s\"",
        "poll_interval = \"1s\"\nproxy = \"env\"",
    );
    let c = load_str(&body, &[]).expect("valid");
    assert!(matches!(c.portals[0].tls.proxy, crate::http::Proxy::Env));
    let body = format!(
        "{GOOD}[sinks.hook]\ntype = \"webhook\"\nurl = \"https://c.example.com/in\"\nproxy = \"http://proxy.example.com:3128\"\n"
    );
    let c = load_str(&body, &[]).expect("valid");
    let hook = c.sinks.iter().find(|s| s.name == "hook").expect("hook");
    let SinkKind::Webhook(w) = &hook.kind else {
        panic!("webhook")
    };
    assert!(matches!(w.tls.proxy, crate::http::Proxy::Url(_)));
    let e = load_str(&body.replace("http://proxy", "ftp://proxy"), &[]).expect_err("bad");
    assert!(e.to_string().contains("sinks.hook.proxy"), "{e}");
}

#[test]
fn missing_file_is_an_error() {
    let err = load(&Sources {
        file: PathBuf::from("/nonexistent/x.toml"),
        env: vec![],
    })
    .unwrap_err();
    assert!(err.to_string().contains("does not exist"));
}
