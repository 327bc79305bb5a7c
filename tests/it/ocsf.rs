//! OCSF output (issue 21), met the way a user meets it: the binary's `encode --format ocsf` and
//! a running agent's sinks, every line checked by a real third-party validator
//! (`tests/ocsf/validate_ocsf.py`: ocsf-emitter's OCSF 1.5.0 models and invariants, pinned, and
//! no attribute the schema does not define outside `unmapped`).
//!
//! - The fixtures of tests/fixtures and ../shared/docs/fixtures, both streams: valid, with the
//!   DocSpace id in `metadata.uid`, `time` the row's UTC instant in epoch milliseconds, and the
//!   class and activity of each action code.
//! - One row per code of the action table, read as a login and as an audit event: valid.
//! - Hostile rows (control characters, forged separators and records, huge strings, invalid
//!   addresses, missing fields): one line each, valid, the values unchanged.
//! - End to end: a stdout sink and a webhook sink with `format = "ocsf"` against the simulated
//!   portal deliver every event once, valid.
//!
//! A missing validator fails these tests (it is installed by tests/run.sh), never skips them.

use std::collections::BTreeSet;
use std::time::Duration;

use docspace_siem::actions::ACTIONS;
use docspace_siem::event::{GUEST_USER_ID, Stream, TRUNCATED_MARK};
use docspace_siem::simulator::{SimStream, SimZone};
use docspace_siem::transform::ocsf::classes;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::scenario::{days, minutes};
use crate::support::{HttpCollector, Scenario, run_cli, shared};

/// Runs the OCSF validator over NDJSON; panics with its report unless every line is valid.
fn validate_ocsf(ndjson: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ocsf/validate_ocsf.py");
    let out = crate::support::run_with_stdin("python3", &[script], ndjson.as_bytes());
    assert!(
        out.status.success(),
        "OCSF validator failed (install it with tests/run.sh):\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    let n = ndjson.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(
        summary.contains(&format!("{n} events valid")),
        "the validator did not read every line: {summary}"
    );
}

/// `encode --format ocsf` over `input`; panics unless it exits 0.
fn encode(input: &str, stream: Option<&str>) -> String {
    let mut args = vec!["encode", "--format", "ocsf"];
    if let Some(s) = stream {
        args.extend(["--stream", s]);
    }
    args.push("-");
    let (code, out, err) = run_cli(&args, Some(input.as_bytes()));
    assert_eq!(code, 0, "encode failed:\n{err}");
    out
}

/// The rows of a DocSpace envelope file.
fn rows_of(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("fixture");
    let v: Value = serde_json::from_str(&text).expect("fixture is JSON");
    v["response"].as_array().expect("rows").clone()
}

/// Epoch milliseconds of a DocSpace date, read independently of the agent (RFC 3339 by the
/// `time` crate).
fn epoch_ms(date: &str) -> i64 {
    let t = OffsetDateTime::parse(date, &Rfc3339).unwrap_or_else(|e| panic!("{date}: {e}"));
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).expect("fits")
}

/// Every line of `out` as JSON, paired with the row it came from (same order).
fn documents(out: &str, rows: &[Value]) -> Vec<Value> {
    let docs: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(docs.len(), rows.len(), "one line per row:\n{out}");
    docs
}

/// The start of a document, for failure messages (a hostile one may be megabytes long).
fn short(doc: &Value) -> String {
    doc.to_string().chars().take(400).collect()
}

/// The key fields of one event against its row: the id, the time, the class and activity.
fn assert_keys(doc: &Value, row: &Value, stream: Stream) {
    let what = short(doc);
    let id = row["id"].as_i64().expect("id");
    assert_eq!(doc["metadata"]["uid"], id.to_string(), "{what}");
    assert_eq!(
        doc["time"].as_i64(),
        Some(epoch_ms(row["date"].as_str().expect("date"))),
        "{what}"
    );
    let code = row["actionId"].as_i64().expect("actionId");
    let m = classes::mapping(stream, code);
    assert_eq!(doc["class_uid"], m.class.uid(), "{code}: {what}");
    assert_eq!(doc["activity_id"], m.activity, "{code}: {what}");
    assert_eq!(doc["type_uid"], m.type_uid(), "{code}: {what}");
    if stream == Stream::Login {
        assert_eq!(
            doc["class_uid"], 3002,
            "a login is an Authentication: {what}"
        );
    }
    assert_eq!(doc["metadata"]["log_name"], stream.as_str(), "{what}");
    assert_eq!(doc["metadata"]["version"], "1.5.0");
    let raw: Value =
        serde_json::from_str(doc["raw_data"].as_str().expect("raw_data")).expect("row");
    assert_eq!(&raw, row, "raw_data is the row");
}

/// The fixtures of both streams, from this repository and from ../shared/docs: valid, and
/// every key field as the row says.
#[test]
fn fixtures_of_both_streams_validate_with_their_key_fields() {
    let local = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let docs_dir = shared().join("docs/fixtures");
    let mut all = String::new();
    for dir in [local, docs_dir] {
        for (file, stream) in [
            ("login-filter.json", Stream::Login),
            ("events-filter.json", Stream::Audit),
        ] {
            let rows = rows_of(&dir.join(file));
            let input: String = rows.iter().map(|r| format!("{r}\n")).collect();
            let out = encode(&input, Some(stream.as_str()));
            for (doc, row) in documents(&out, &rows).iter().zip(&rows) {
                assert_keys(doc, row, stream);
            }
            all.push_str(&out);
        }
    }
    validate_ocsf(&all);

    // The brute-force lockout of tests/fixtures, field by field.
    let rows = rows_of(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/login-filter.json"),
    );
    let row = rows.iter().find(|r| r["id"] == 48212).expect("row 48212");
    let doc: Value = serde_json::from_str(encode(&row.to_string(), None).trim()).expect("JSON");
    assert_eq!(doc["status_id"], 2);
    assert_eq!(doc["status_detail"], "LoginFailBruteForce");
    assert_eq!(doc["user"]["name"], "bob@example.com");
    assert!(
        doc["user"].get("uid").is_none(),
        "no Guest id as a user: {doc}"
    );
    assert_eq!(doc["unmapped"]["user_id"], GUEST_USER_ID);
    assert_eq!(doc["src_endpoint"]["ip"], "192.0.2.66");
}

/// DocSpace's mapping of each audit action (tests/fixtures/audit-actions.json).
fn audit_mapping() -> Map<String, Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/audit-actions.json"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture"))
        .expect("fixture is JSON");
    v["actions"].as_object().expect("actions").clone()
}

/// One row per code of the action table, each read as a login and as an audit event (with the
/// server's own mapping in the audit rows): every line valid, each in its table's class.
#[test]
fn every_action_code_validates_in_its_class() {
    let mapping = audit_mapping();
    let rows: Vec<Value> = ACTIONS
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let code = i64::from(a.code);
            let mut row = json!({"id": 1 + i as i64, "date": "2025-01-15T13:58:12.0000000+01:00",
                "action": a.name, "actionId": code, "ip": "203.0.113.45", "country": "Germany",
                "city": "Berlin", "browser": "Chrome 131", "platform": "Windows 10",
                "page": "https://docspace.example.com/", "user": "Alice Johnson",
                "userId": "9b1e4f7a-2c3d-4e5f-8a6b-7c8d9e0f1a2b"});
            if let (Some(m), Value::Object(r)) = (mapping.get(&code.to_string()), &mut row) {
                for k in ["actionType", "product", "location", "entries"] {
                    r.insert(k.into(), m[k].clone());
                }
                r.insert("target".into(), json!(["15432"]));
                r.insert("context".into(), json!("Rooms: Finance"));
            }
            row
        })
        .collect();
    let input: String = rows.iter().map(|r| format!("{r}\n")).collect();
    let mut all = String::new();
    let mut classes_seen = BTreeSet::new();
    for stream in [Stream::Login, Stream::Audit] {
        let out = encode(&input, Some(stream.as_str()));
        for (doc, row) in documents(&out, &rows).iter().zip(&rows) {
            assert_keys(doc, row, stream);
            classes_seen.insert(doc["class_uid"].as_u64().expect("class_uid"));
        }
        all.push_str(&out);
    }
    assert_eq!(all.lines().count(), 2 * ACTIONS.len());
    validate_ocsf(&all);
    assert_eq!(
        classes_seen,
        BTreeSet::from([3001, 3002, 3004, 3005, 3006, 6003, 6006]),
        "every class is used"
    );
}

/// What an attacker types, and the shapes a broken or newer server may send.
const HOSTILE: &[&str] = &[
    "\r\n",
    "a\nb",
    "\0\u{1}\u{1b}[31m\u{7f}",
    "\u{85}\u{2028}\u{2029}\u{feff}",
    "\"},{\"class_uid\":3002,\"x\":\"",
    "\\\"\\\\",
    "CEF:0|ONLYOFFICE|DocSpace|1.0|1000|LoginSuccess|3| suser=admin",
    "<13>1 2025-01-01T00:00:00Z host app - - - ",
    "日本語 😀 \u{301} \u{10ffff}",
    "",
    " ",
];

/// Hostile strings in every string field, huge values, invalid addresses and bare rows: one
/// line per row, every line valid, the hostile values unchanged where OCSF carries them.
#[test]
fn hostile_rows_stay_valid_one_line_each() {
    let huge = "x".repeat(70_000);
    let mut values: Vec<String> = HOSTILE.iter().map(|s| (*s).to_owned()).collect();
    values.push(huge.clone());
    values.push(format!("{}\n{}", "é".repeat(5000), "\u{2028}".repeat(3000)));
    let mut rows = Vec::new();
    for v in &values {
        for code in [1002, 1000, 4000, 5011, 6009, 6035, 9908] {
            let mut row = json!({"id": 1000 + rows.len() as i64, "date": "2025-07-01T08:00:00.1234567+05:45",
                "actionId": code, "context": v, "target": [v, "2"], "entries": [1]});
            for field in [
                "user", "userId", "login", "action", "ip", "country", "city", "browser",
                "platform", "page",
            ] {
                row[field] = Value::String(v.clone());
            }
            rows.push(row);
        }
    }
    // Addresses that are not, or not quite, addresses.
    for ip in [
        "999.1.2.3",
        "2a02",
        "1.2.3.4\n",
        "01.2.3.4",
        "::ffff:1.2.3.4",
        "fe80::1%eth0",
        "1.2.3",
        "",
    ] {
        rows.push(
            json!({"id": 2000 + rows.len() as i64, "date": "2025-03-30T03:30:00Z",
            "actionId": 1000, "ip": ip, "user": "u"}),
        );
    }
    // Bare rows: only what a row must have, for a code of every class and unknown codes.
    for code in [
        1000, 1006, 1999, 4000, 4026, 4999, 5011, 6009, 6027, 6999, 7005, 9999, 123_456, -1,
    ] {
        rows.push(
            json!({"id": 3000 + rows.len() as i64, "date": "1999-12-31T23:59:59.999-03:30",
            "actionId": code}),
        );
    }
    let input: String = rows.iter().map(|r| format!("{r}\n")).collect();
    let out = encode(&input, None);
    assert!(
        !out.contains(['\r', '\u{85}', '\u{2028}', '\u{2029}']),
        "a raw line break"
    );
    let docs = documents(&out, &rows);
    validate_ocsf(&out);
    for (doc, row) in docs.iter().zip(&rows) {
        let code = row["actionId"].as_i64().expect("actionId");
        assert_keys(doc, row, Stream::for_action(code));
        if let Some(ip) = doc["src_endpoint"].get("ip") {
            let ip = ip.as_str().expect("ip");
            assert!(
                ip.parse::<std::net::IpAddr>().is_ok(),
                "{ip:?} is not an address"
            );
        } else if let Some(raw) = row["ip"].as_str().filter(|s| !s.is_empty()) {
            // Kept as DocSpace wrote it (a value past the 8 KiB field cap is cut and marked).
            let kept = doc["unmapped"]["ip"].as_str().unwrap_or_default();
            assert!(
                kept == raw || (raw.len() > 8192 && kept.ends_with(TRUNCATED_MARK)),
                "the raw address is kept: {}",
                short(doc)
            );
        }
    }
    // A hostile value reads back exactly (the 8 KiB cap of a field aside).
    let row = rows
        .iter()
        .position(|r| r["login"] == "\"},{\"class_uid\":3002,\"x\":\"")
        .expect("row");
    assert_eq!(
        docs[row]["user"]["name"],
        "\"},{\"class_uid\":3002,\"x\":\""
    );
    assert_eq!(docs[row]["message"], "\"},{\"class_uid\":3002,\"x\":\"");
}

/// End to end: a stdout sink and a webhook sink with `format = "ocsf"`, against the simulated
/// portal: every event once in each, every line valid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_and_webhook_sinks_deliver_valid_ocsf() {
    let hook = HttpCollector::start().await;
    let mut s = Scenario::new(SimZone::EuropeBerlin)
        .await
        .events(SimStream::Login, 150, days(1), minutes(5))
        .events(SimStream::Audit, 150, days(1), minutes(5))
        .portal("start_from = \"2d\"")
        .sink(&format!(
            "[sinks.console]\ntype = \"stdout\"\nformat = \"ocsf\"\n[sinks.hook]\ntype = \"webhook\"\nformat = \"ocsf\"\nurl = \"{}\"\n",
            hook.url
        ));
    s.start();
    let want = s.sim.ids(SimStream::Login).len() + s.sim.ids(SimStream::Audit).len();
    s.until(Duration::from_secs(60), "every event in both sinks", || {
        s.agent().stdout_lines().len() >= want && hook.events().len() >= want
    })
    .await;
    s.drain();
    let uid = |d: &Value| -> (String, i64) {
        let id = d["metadata"]["uid"].as_str().expect("metadata.uid");
        (
            d["metadata"]["log_name"]
                .as_str()
                .expect("log_name")
                .to_owned(),
            id.parse().expect("a number"),
        )
    };
    let lines = s.agent().stdout_lines();
    let docs: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    for (what, docs) in [("stdout", docs), ("webhook", hook.events())] {
        let ids: Vec<(String, i64)> = docs.iter().map(uid).collect();
        let unique: BTreeSet<&(String, i64)> = ids.iter().collect();
        assert_eq!(ids.len(), want, "{what}: every event");
        assert_eq!(unique.len(), want, "{what}: once each");
        let ids: BTreeSet<i64> = ids.iter().map(|(_, id)| *id).collect();
        assert_eq!(ids, s.all_ids(), "{what}: the simulator's ids");
        let ndjson: String = docs.iter().map(|d| format!("{d}\n")).collect();
        validate_ocsf(&ndjson);
    }
}
