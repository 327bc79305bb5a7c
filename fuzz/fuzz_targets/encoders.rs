//! Fuzz target `encoders`: any bytes → a DocSpace row → `Event::from_json` → every format.
//!
//! The bytes are read as JSON when they are JSON (an object is the row; any other value becomes
//! the `login` of a row), else lossily as the login name of a failed login. Missing `id`, `date`
//! and `actionId` are filled in, so that most inputs reach the encoders; a row that still does
//! not decode must be an error, never a panic.
//!
//! Checked for each stream (none, login, audit):
//! - every format writes one non-empty line of UTF-8 with no CR, LF, NEL, U+2028 or U+2029
//!   (issue 17); LEEF none of the control characters it promises to remove either;
//! - ECS and JSON parse back with serde_json; `json` is the row plus `portal` and `stream`
//!   (floats up to a few ULP apart: serde_json's default float parsing is not exact);
//! - CEF, split back the way cefp does (the header on unescaped `|`, the extension at the last
//!   space before each unescaped `=`, `\n` `\r` `\\` `\=` unescaped), has the exact header, no
//!   duplicate or malformed key, and each attacker-controlled value reads back as the
//!   documented sanitising of the (cut) field: so no value can forge or swallow a key.

#![no_main]

use std::sync::Arc;

use docspace_siem::config::Format;
use docspace_siem::event::{Event, PortalInfo, Stream};
use docspace_siem::transform;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

fuzz_target!(|data: &[u8]| {
    let mut row = match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(m)) => m,
        Ok(other) => Map::from_iter([("login".to_owned(), other)]),
        Err(_) => Map::from_iter([(
            "login".to_owned(),
            Value::String(String::from_utf8_lossy(data).into_owned()),
        )]),
    };
    row.entry("id").or_insert(json!(1));
    row.entry("date")
        .or_insert(json!("2025-01-15T13:58:12.0000000+01:00"));
    row.entry("actionId").or_insert(json!(1005));
    let portal = Arc::new(PortalInfo::new("main", "https://docspace.example.com"));
    for stream in [None, Some(Stream::Login), Some(Stream::Audit)] {
        let Ok(ev) = Event::from_json(portal.clone(), stream, Value::Object(row.clone())) else {
            return;
        };
        check(&ev, &row);
    }
});

fn check(ev: &Event, row: &Map<String, Value>) {
    for format in [
        Format::Ecs,
        Format::Cef,
        Format::Json,
        Format::Leef,
        Format::Ocsf,
    ] {
        let mut out = Vec::new();
        transform::encode(format, ev, &mut out);
        assert!(!out.is_empty(), "{format:?} wrote nothing");
        let text = std::str::from_utf8(&out).expect("encoders write UTF-8");
        assert!(
            !text.contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']),
            "{format:?} wrote a line break: {text:?}"
        );
        match format {
            Format::Ecs => {
                let v: Value = serde_json::from_str(text).expect("ECS is one JSON document");
                assert!(v.is_object());
            }
            Format::Json => {
                let v: Value = serde_json::from_str(text).expect("json is one JSON document");
                let mut want = row.clone();
                want.insert("portal".into(), json!("main"));
                want.insert("stream".into(), json!(ev.stream.as_str()));
                let want = Value::Object(want);
                assert!(
                    same_json(&v, &want),
                    "json is the row plus portal and stream: {v} != {want}"
                );
            }
            Format::Leef => {
                let bad = text
                    .chars()
                    .find(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'));
                assert!(bad.is_none(), "LEEF wrote {bad:?}: {text:?}");
            }
            Format::Ocsf => {
                let v: Value = serde_json::from_str(text).expect("OCSF is one JSON document");
                assert_eq!(v["metadata"]["uid"], json!(ev.id.to_string()), "{text}");
                assert_eq!(
                    v["time"],
                    json!(ev.time.unix_timestamp_nanos() / 1_000_000),
                    "{text}"
                );
            }
            Format::Cef => check_cef(ev, text),
        }
    }
}

fn check_cef(ev: &Event, line: &str) {
    let (header, ext) =
        split_cef(line).unwrap_or_else(|e| panic!("CEF does not split ({e}): {line:?}"));
    // Device Version is the agent's own version, which this crate cannot name: any
    // non-empty field will do.
    assert!(!header[3].is_empty(), "CEF device version: {line:?}");
    let want_header = [
        "CEF:0".to_owned(),
        "ONLYOFFICE".to_owned(),
        "DocSpace".to_owned(),
        header[3].clone(),
        ev.action_id.to_string(),
        ev.action_name().into_owned(),
        ev.semantics().severity.to_string(),
    ];
    assert_eq!(header, want_header, "CEF header: {line:?}");
    let mut seen = std::collections::BTreeMap::new();
    for (k, v) in &ext {
        assert!(
            !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "CEF key {k:?}: {line:?}"
        );
        assert!(
            seen.insert(k.as_str(), v.as_str()).is_none(),
            "CEF key {k} twice: {line:?}"
        );
    }
    let want = |key: &str, value: Option<&str>, max: usize| {
        let want = value
            .filter(|v| !v.is_empty())
            .map(|v| sanitised(&limit(v, max)));
        assert_eq!(
            seen.get(key).copied(),
            want.as_deref(),
            "CEF {key}: {line:?}"
        );
    };
    want("act", Some(ev.action_name().as_ref()), 63);
    want("externalId", Some(&ev.id.to_string()), 40);
    want("suser", ev.login().or(ev.user()), 1023);
    // Never DocSpace's Guest placeholder (issue 17).
    want("suid", ev.actor_id(), 1023);
    want("requestClientApplication", ev.browser(), 1023);
    want("request", ev.page(), 1023);
    want("msg", ev.action_text(), 1023);
    want("cs1", ev.country(), 4000);
    want("cs2", ev.city(), 4000);
    want("cs3", ev.platform(), 4000);
    let target = ev.target.join(",");
    want("cs4", Some(&target), 4000);
    want("cs5", ev.context(), 4000);
    want("cs6", ev.login().and(ev.user()), 4000);
}

/// JSON equality, except that floats may differ in the last bit or two: serde_json without its
/// `float_roundtrip` feature parses long decimals up to 1 ULP off, so a float read from the row
/// and the same float read back from our output can differ (see README.md).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => {
                    x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
                }
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// The CEF cut: at most `max` characters, ending in `...` when cut.
fn limit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(max - 3).collect();
    t.push_str("...");
    t
}

/// What a parser reads back: every line break (CR, CRLF, NEL, U+2028, U+2029) becomes LF,
/// other controls except TAB become U+FFFD.
fn sanitised(s: &str) -> String {
    s.replace("\r\n", "\n")
        .replace(['\r', '\u{85}', '\u{2028}', '\u{2029}'], "\n")
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

/// Splits a CEF line the way cefp 0.0.2 does: seven header fields on unescaped `|` (any `\x`
/// is `x`), then the extension, where a key is the text between the last unescaped space and
/// an unescaped `=`, and `\n`, `\r`, `\\`, `\=` are unescaped in values. Stricter than cefp: an
/// unknown escape, a dangling backslash or a key without a space before it is an error.
fn split_cef(line: &str) -> Result<(Vec<String>, Vec<(String, String)>), String> {
    let mut header = Vec::new();
    let mut buf = String::new();
    let mut chars = line.chars();
    while header.len() < 7 {
        match chars.next() {
            None => return Err("fewer than 8 fields".into()),
            Some('\\') => match chars.next() {
                Some(c @ ('\\' | '|')) => buf.push(c),
                other => return Err(format!("header escape {other:?}")),
            },
            Some('|') => header.push(std::mem::take(&mut buf)),
            Some(c) => buf.push(c),
        }
    }
    let mut pairs = Vec::new();
    let mut key: Option<String> = None;
    let mut buf: Vec<char> = Vec::new();
    let mut last_space: Option<usize> = None;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => buf.push('\n'),
                Some('r') => buf.push('\r'),
                Some(c @ ('\\' | '=')) => buf.push(c),
                other => return Err(format!("extension escape {other:?}")),
            },
            ' ' => {
                last_space = Some(buf.len());
                buf.push(' ');
            }
            '=' => {
                match key.take() {
                    None if pairs.is_empty() => key = Some(buf.iter().collect()),
                    None => return Err("two keys in a row".into()),
                    Some(k) => {
                        let sp = last_space.ok_or("a key with no space before it")?;
                        pairs.push((k, buf[..sp].iter().collect::<String>()));
                        key = Some(buf[sp + 1..].iter().collect());
                    }
                }
                buf.clear();
                last_space = None;
            }
            c => buf.push(c),
        }
    }
    match key {
        Some(k) => pairs.push((k, buf.iter().collect())),
        None if buf.is_empty() => {}
        None => return Err("trailing text with no key".into()),
    }
    Ok((header, pairs))
}
