//! The record of the Microsoft Sentinel sink: one flat JSON object per event, in the columns of
//! the custom table `DocSpace_CL` that `packaging/sentinel/` declares (the table schema, and the
//! DCR's stream declaration, which passes them through unchanged).
//!
//! This is the sink's own wire shape, not a general format: its columns are the contract with
//! the DCR, so it lives beside the sink. The column set is fixed: renaming or retyping one
//! breaks every workspace that deployed the shipped DCR, so a change means a new column.
//!
//! Invariants:
//! - `TimeGenerated` is the event's own time (RFC 3339, UTC, milliseconds), never the time of
//!   sending; `EventId`, `Stream` and `Portal` are always there.
//! - Every string goes through `transform::put_json_str` (serde_json's escaping, plus the line
//!   separators), so a hostile login name cannot break out of its column.
//! - Absent values are omitted, never `null`; `UserId` never holds DocSpace's Guest
//!   placeholder, `ClientIp` only a valid address (the raw value is in `ClientAddress`).
//! - `RawData` is the row as received (a JSON object), or, for a row longer than
//!   [`RAW_MAX`], its start as a string ending in the truncation mark: the service cuts any
//!   value over 64 KB, which would leave a `dynamic` column unreadable.

use crate::event::{Event, Outcome, TRUNCATED_MARK, compact_json};
use crate::transform::{Output, put_ip, put_json_str, put_utc_millis, valid_ip};

/// The longest row kept whole in `RawData`: under the 64 KB the Logs Ingestion API keeps of
/// any value, with room for the escaping a string needs.
pub const RAW_MAX: usize = 48 * 1024;

/// Every column, in the order written, with its Log Analytics type: the one list the shipped
/// table schema and DCR are checked against (a unit test reads them).
pub const COLUMNS: &[(&str, &str)] = &[
    ("TimeGenerated", "datetime"),
    ("EventId", "long"),
    ("UniqueId", "string"),
    ("Stream", "string"),
    ("Portal", "string"),
    ("PortalHost", "string"),
    ("ActionId", "int"),
    ("ActionName", "string"),
    ("Action", "string"),
    ("Outcome", "string"),
    ("Severity", "int"),
    ("EcsCategory", "dynamic"),
    ("EcsType", "dynamic"),
    ("Description", "string"),
    ("UserId", "string"),
    ("UserLogin", "string"),
    ("UserName", "string"),
    ("ClientIp", "string"),
    ("ClientAddress", "string"),
    ("Country", "string"),
    ("City", "string"),
    ("Browser", "string"),
    ("Platform", "string"),
    ("Page", "string"),
    ("Context", "string"),
    ("Target", "dynamic"),
    ("ActionType", "int"),
    ("Product", "int"),
    ("Location", "int"),
    ("Entries", "dynamic"),
    ("Labels", "dynamic"),
    ("RawData", "dynamic"),
];

/// Appends the record of one event (no trailing newline).
pub fn encode<O: Output + ?Sized>(ev: &Event, out: &mut O) {
    let sem = ev.semantics();
    let mut num = itoa::Buffer::new();
    out.put(b"{\"TimeGenerated\":\"");
    put_utc_millis(out, ev.time);
    out.put(b"\",\"EventId\":");
    out.put(num.format(ev.id).as_bytes());
    out.put(b",\"UniqueId\":");
    put_json_str(out, &ev.unique_id());
    out.put(b",\"Stream\":\"");
    out.put(ev.stream.as_str().as_bytes());
    out.put(b"\",\"Portal\":");
    put_json_str(out, &ev.portal.name);
    out.put(b",\"PortalHost\":");
    put_json_str(out, &ev.portal.host);
    out.put(b",\"ActionId\":");
    out.put(num.format(ev.action_id).as_bytes());
    out.put(b",\"ActionName\":");
    put_json_str(out, &ev.action_name());
    out.put(b",\"Action\":");
    put_json_str(out, &ev.action_kebab());
    out.put(b",\"Outcome\":\"");
    out.put(outcome(sem.outcome).as_bytes());
    out.put(b"\",\"Severity\":");
    out.put(num.format(sem.severity).as_bytes());
    out.put(b",\"EcsCategory\":");
    str_array(out, sem.category.iter().copied());
    out.put(b",\"EcsType\":");
    str_array(out, sem.kind.iter().copied());
    opt_str(out, b",\"Description\":", ev.action_text());
    opt_str(out, b",\"UserId\":", ev.actor_id());
    opt_str(out, b",\"UserLogin\":", ev.login());
    opt_str(out, b",\"UserName\":", ev.user());
    if let Some(ip) = valid_ip(ev) {
        out.put(b",\"ClientIp\":\"");
        put_ip(out, ip);
        out.put(b"\"");
    }
    opt_str(out, b",\"ClientAddress\":", ev.ip());
    opt_str(out, b",\"Country\":", ev.country());
    opt_str(out, b",\"City\":", ev.city());
    opt_str(out, b",\"Browser\":", ev.browser());
    opt_str(out, b",\"Platform\":", ev.platform());
    opt_str(out, b",\"Page\":", ev.page());
    opt_str(out, b",\"Context\":", ev.context());
    if !ev.target.is_empty() {
        out.put(b",\"Target\":");
        str_array(out, ev.target.iter().map(String::as_str));
    }
    opt_num(out, &mut num, b",\"ActionType\":", ev.action_type);
    opt_num(out, &mut num, b",\"Product\":", ev.product);
    opt_num(out, &mut num, b",\"Location\":", ev.location);
    if !ev.entries.is_empty() {
        out.put(b",\"Entries\":[");
        for (i, e) in ev.entries.iter().enumerate() {
            if i > 0 {
                out.put(b",");
            }
            out.put(num.format(*e).as_bytes());
        }
        out.put(b"]");
    }
    if !ev.portal.labels.is_empty() {
        out.put(b",\"Labels\":{");
        for (i, (k, v)) in ev.portal.labels.iter().enumerate() {
            if i > 0 {
                out.put(b",");
            }
            put_json_str(out, k);
            out.put(b":");
            put_json_str(out, v);
        }
        out.put(b"}");
    }
    out.put(b",\"RawData\":");
    raw_data(out, ev.raw());
    out.put(b"}");
}

/// The Sentinel spelling of an outcome: ASIM's `EventResult` values.
fn outcome(o: Outcome) -> &'static str {
    match o {
        Outcome::Success => "Success",
        Outcome::Failure => "Failure",
        Outcome::Unknown => "NA",
    }
}

/// The row as a JSON object, or its start as a string when it is too long to stay whole.
fn raw_data<O: Output + ?Sized>(out: &mut O, raw: &str) {
    let compacted;
    let mut raw = raw.trim();
    if raw.contains(['\n', '\r']) {
        compacted = compact_json(raw);
        raw = compacted.trim();
    }
    if raw.len() <= RAW_MAX && raw.starts_with('{') && raw.ends_with('}') {
        // The row's own text: valid JSON of one object (`Event::raw`).
        out.put(raw.as_bytes());
        return;
    }
    let mut end = raw.len().min(RAW_MAX);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = String::with_capacity(end + TRUNCATED_MARK.len());
    cut.push_str(&raw[..end]);
    cut.push_str(TRUNCATED_MARK);
    put_json_str(out, &cut);
}

fn opt_str<O: Output + ?Sized>(out: &mut O, key: &[u8], v: Option<&str>) {
    if let Some(v) = v.filter(|v| !v.is_empty()) {
        out.put(key);
        put_json_str(out, v);
    }
}

fn opt_num<O: Output + ?Sized>(out: &mut O, num: &mut itoa::Buffer, key: &[u8], v: Option<i64>) {
    if let Some(v) = v {
        out.put(key);
        out.put(num.format(v).as_bytes());
    }
}

fn str_array<'a, O: Output + ?Sized>(out: &mut O, items: impl Iterator<Item = &'a str>) {
    out.put(b"[");
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.put(b",");
        }
        put_json_str(out, s);
    }
    out.put(b"]");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Value, json};

    use super::*;
    use crate::event::{GUEST_USER_ID, PortalInfo, Stream};

    fn record(ev: &Event) -> Value {
        let mut out = Vec::new();
        encode(ev, &mut out);
        assert!(
            !out.contains(&b'\n') && !out.contains(&b'\r'),
            "one line: {}",
            String::from_utf8_lossy(&out)
        );
        serde_json::from_slice(&out)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)))
    }

    fn event(stream: Stream, row: Value) -> Event {
        let portal = PortalInfo::new("acme", "https://acme.example.com:8443")
            .with_labels([("customer".to_owned(), "Acme \"Q\"".to_owned())]);
        Event::from_json(Arc::new(portal), Some(stream), row).expect("row")
    }

    #[test]
    fn a_failed_login_has_the_required_columns_and_the_events_own_time() {
        let ev = event(
            Stream::Login,
            json!({"id": 4711, "date": "2025-01-15T14:32:07.1234567+01:00", "actionId": 1013,
                "action": "Login failed", "login": "bob@example.com", "userId": GUEST_USER_ID,
                "ip": "203.0.113.9", "browser": "Firefox 133", "platform": "Linux",
                "country": "Germany", "city": "Berlin", "page": "https://acme/login"}),
        );
        let r = record(&ev);
        assert_eq!(r["TimeGenerated"], "2025-01-15T13:32:07.123Z");
        assert_eq!(r["EventId"], 4711);
        assert_eq!(r["UniqueId"], "acme.example.com:8443:login:4711");
        assert_eq!(r["Stream"], "login");
        assert_eq!(r["Portal"], "acme");
        assert_eq!(r["ActionId"], 1013);
        assert_eq!(r["Outcome"], "Failure");
        assert_eq!(r["UserLogin"], "bob@example.com");
        assert!(r.get("UserId").is_none(), "no Guest placeholder: {r}");
        assert_eq!(r["ClientIp"], "203.0.113.9");
        assert_eq!(r["Labels"]["customer"], "Acme \"Q\"");
        assert_eq!(r["RawData"]["userId"], GUEST_USER_ID);
        assert_eq!(r["EcsCategory"][0], "authentication");
        let names: Vec<&str> = r
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        for n in &names {
            assert!(
                COLUMNS.iter().any(|(c, _)| c == n),
                "{n} is not a declared column"
            );
        }
    }

    #[test]
    fn an_audit_event_carries_target_entries_and_a_cut_address_only_as_written() {
        let ev = event(
            Stream::Audit,
            json!({"id": 9, "date": "2025-01-15T14:32:07Z", "actionId": 5011,
                "action": "Files uploaded", "target": ["doc.docx", "a\u{2028}b"],
                "entries": [1, 2], "actionType": 1, "product": 2, "module": 3,
                "context": "Room \"X\"", "ip": "2a02", "userId": "9b1e4f7a-2c3d-4e5f-8a6b-7c8d9e0f1a2b"}),
        );
        let r = record(&ev);
        assert_eq!(r["Stream"], "audit");
        assert_eq!(r["Target"][1], "a\u{2028}b");
        assert_eq!(r["Entries"], json!([1, 2]));
        assert!(r.get("ClientIp").is_none(), "{r}");
        assert_eq!(r["ClientAddress"], "2a02");
        assert_eq!(r["UserId"], "9b1e4f7a-2c3d-4e5f-8a6b-7c8d9e0f1a2b");
    }

    #[test]
    fn hostile_rows_stay_one_valid_record() {
        let nasty = "a\"b\\c\u{0}\u{1f}\r\n\u{85}\u{2029}}{],\"Portal\":\"forged\"";
        let ev = event(
            Stream::Login,
            json!({"id": 1, "date": "2025-01-15T14:32:07Z", "actionId": 1000,
                "login": nasty, "user": nasty, "browser": nasty, "page": nasty}),
        );
        let r = record(&ev);
        assert_eq!(r["Portal"], "acme", "a column cannot be forged");
        assert_eq!(r["UserLogin"], nasty);
        assert_eq!(r["RawData"]["login"], nasty);
    }

    #[test]
    fn a_huge_row_is_cut_in_raw_data_and_its_fields_are_capped() {
        let huge = "x".repeat(200 * 1024);
        let ev = event(
            Stream::Login,
            json!({"id": 2, "date": "2025-01-15T14:32:07Z", "actionId": 1000,
                "login": huge.clone(), "padding": "é".repeat(40 * 1024)}),
        );
        let mut out = Vec::new();
        encode(&ev, &mut out);
        assert!(out.len() < 200 * 1024, "{} bytes", out.len());
        let r: Value = serde_json::from_slice(&out).expect("valid JSON");
        let raw = r["RawData"].as_str().expect("a cut row is a string");
        assert!(raw.ends_with(TRUNCATED_MARK));
        assert!(
            r["UserLogin"]
                .as_str()
                .expect("login")
                .ends_with(TRUNCATED_MARK)
        );
    }

    /// The shipped table schema and DCR declare exactly these columns with these types.
    #[test]
    fn the_shipped_table_and_dcr_declare_every_column() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/sentinel");
        let read = |f: &str| -> Value {
            serde_json::from_str(&std::fs::read_to_string(dir.join(f)).expect(f)).expect(f)
        };
        let want: Vec<(String, String)> = COLUMNS
            .iter()
            .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
            .collect();
        let cols = |v: &Value| -> Vec<(String, String)> {
            v.as_array()
                .expect("columns")
                .iter()
                .map(|c| {
                    (
                        c["name"].as_str().expect("name").to_owned(),
                        c["type"].as_str().expect("type").to_owned(),
                    )
                })
                .collect()
        };
        let table = read("table.json");
        assert_eq!(cols(&table["properties"]["schema"]["columns"]), want);
        let dcr = read("dcr.json");
        let rule = dcr["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|r| r["type"] == "Microsoft.Insights/dataCollectionRules")
            .expect("the DCR resource");
        assert_eq!(
            cols(&rule["properties"]["streamDeclarations"]["Custom-DocSpace_CL"]["columns"]),
            want
        );
    }
}
