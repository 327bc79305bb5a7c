//! The `json` format: the DocSpace row exactly as received, plus `portal`, `stream` and, when
//! the portal has labels, `labels` (an object of strings).
//!
//! Invariant: one line of JSON text per row. Raw CR and LF can only lie between tokens and are
//! dropped with the whitespace around them; the line separators NEL, U+2028 and U+2029, which
//! JSON allows raw inside strings but line readers split on, are written as `\u0085`, `\u2028`
//! and `\u2029` (the same string to any JSON parser).

use serde_json::Value;

use crate::event::{Event, compact_json};

/// Appends the row as one JSON object (the row's own compact text; serde escapes the portal
/// name), with the line separators escaped.
pub fn encode(ev: &Event, out: &mut Vec<u8>) {
    let start = out.len();
    encode_row(ev, out);
    crate::transform::escape_separators_from(out, start);
}

fn encode_row(ev: &Event, out: &mut Vec<u8>) {
    // Raw CR/LF can only lie between tokens (inside strings they are escaped): drop that
    // whitespace so that the record stays one line.
    let compacted;
    let mut raw = ev.raw();
    if raw.contains(['\n', '\r']) {
        compacted = compact_json(raw);
        raw = &compacted;
    }
    let raw = raw.trim_end();
    let labels = &ev.portal.labels;
    // Unless the row might already name `portal`, `stream` or `labels` (then the map path
    // replaces them), the keys are appended before its closing brace.
    if raw.len() >= 2
        && raw.ends_with('}')
        && !raw.contains("\\u")
        && !raw.contains("\"portal\"")
        && !raw.contains("\"stream\"")
        && (labels.is_empty() || !raw.contains("\"labels\""))
    {
        out.extend_from_slice(&raw.as_bytes()[..raw.len() - 1]);
        if !raw[..raw.len() - 1].trim_end().ends_with('{') {
            out.push(b',');
        }
        out.extend_from_slice(b"\"portal\":");
        let _ = serde_json::to_writer(&mut *out, &ev.portal.name);
        out.extend_from_slice(b",\"stream\":\"");
        out.extend_from_slice(ev.stream.as_str().as_bytes());
        out.push(b'"');
        if !labels.is_empty() {
            // `,"labels":{…}`, rendered once per portal (serde_json's escaping, as here).
            crate::transform::with_portal(&ev.portal, |p| out.extend_from_slice(&p.ecs_labels));
        }
        out.push(b'}');
        return;
    }
    let mut obj = ev.raw_map();
    obj.insert("portal".into(), Value::String(ev.portal.name.clone()));
    obj.insert("stream".into(), Value::String(ev.stream.as_str().into()));
    if !labels.is_empty() {
        obj.insert("labels".into(), labels_object(labels));
    }
    // Serialising a Map of Values into a Vec cannot fail.
    let _ = serde_json::to_writer(out, &obj);
}

/// The portal's labels as a JSON object (sorted by key, as the portal holds them).
fn labels_object(labels: &[(String, String)]) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::fixtures;

    #[test]
    fn keeps_the_row_and_adds_portal_and_stream() {
        let ev = &fixtures::all()[2];
        let mut out = Vec::new();
        encode(ev, &mut out);
        let v: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["portal"], "main");
        assert_eq!(v["stream"], "login");
        assert_eq!(v["login"], "bob@example.com");
        assert_eq!(v["date"], "2025-01-15T13:58:12.0000000+01:00");
        assert!(!out.contains(&b'\n'));
    }

    #[test]
    fn a_row_naming_portal_or_stream_gets_the_agents_values_once() {
        let p = std::sync::Arc::new(crate::event::PortalInfo::new("main", "https://x"));
        let row = serde_json::json!({"id": 1, "date": "2025-01-01T00:00:00Z", "actionId": 5011,
            "portal": "forged", "stream": "login"});
        let ev = Event::from_json(p, None, row).expect("row");
        let mut out = Vec::new();
        encode(&ev, &mut out);
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(text.matches("\"portal\"").count(), 1, "{text}");
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["portal"], "main");
        assert_eq!(v["stream"], "audit");
    }

    /// See: issue 17. Raw line separators in the row (DocSpace escapes non-ASCII, but a row
    /// may come as any JSON) are written escaped: the same strings, one line for every reader.
    #[test]
    fn line_separators_are_escaped() {
        let p = std::sync::Arc::new(crate::event::PortalInfo::new("ma\u{2028}in", "https://x"));
        let row = "{\"id\":1,\"date\":\"2025-01-01T00:00:00Z\",\"actionId\":1013,\"login\":\"a\u{85}b\u{2028}c\u{2029}d\\u2028 é€\"}";
        let ev = Event::from_row_text(p, None, row).expect("row");
        let mut out = b"prefix ".to_vec();
        encode(&ev, &mut out);
        let text = std::str::from_utf8(&out[7..]).expect("UTF-8");
        assert!(!text.contains(['\u{85}', '\u{2028}', '\u{2029}']), "{text}");
        assert_eq!(text.lines().count(), 1);
        let v: Value = serde_json::from_str(text).expect("json");
        assert_eq!(v["login"], "a\u{85}b\u{2028}c\u{2029}d\u{2028} é€");
        assert_eq!(v["portal"], "ma\u{2028}in");
        assert_eq!(&out[..7], b"prefix ");
    }

    #[test]
    fn pretty_rows_become_one_line() {
        let p = std::sync::Arc::new(crate::event::PortalInfo::new("main", "https://x"));
        let row = "{\n  \"id\": 1,\r\n\t\"date\": \"2025-01-01T00:00:00Z\",\n  \"actionId\": 1000, \"user\": \"a b\\n\"\n}";
        let ev = Event::from_row_text(p, None, row).expect("row");
        let mut out = Vec::new();
        encode(&ev, &mut out);
        assert!(!out.contains(&b'\n') && !out.contains(&b'\r'));
        let v: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["user"], "a b\n");
        assert_eq!(v["stream"], "login");
    }

    #[test]
    fn portal_labels_are_an_object_beside_portal_and_stream() {
        let p = std::sync::Arc::new(
            crate::event::PortalInfo::new("acme", "https://x").with_labels([
                ("customer".to_owned(), "Acme \"Corp\"".to_owned()),
                ("customer_id".to_owned(), "42".to_owned()),
            ]),
        );
        let expect = serde_json::json!({"customer": "Acme \"Corp\"", "customer_id": "42"});
        // The appended path, and the map path of a row that names `labels` itself.
        for row in [
            "{\"id\":1,\"date\":\"2025-01-01T00:00:00Z\",\"actionId\":1013}",
            "{\"id\":1,\"date\":\"2025-01-01T00:00:00Z\",\"actionId\":1013,\"labels\":{\"customer\":\"forged\"}}",
        ] {
            let ev = Event::from_row_text(p.clone(), None, row).expect("row");
            let mut out = Vec::new();
            encode(&ev, &mut out);
            let text = String::from_utf8(out).expect("utf-8");
            assert_eq!(text.matches("\"labels\"").count(), 1, "{text}");
            let v: Value = serde_json::from_str(&text).expect("json");
            assert_eq!(v["labels"], expect, "{text}");
            assert_eq!(v["portal"], "acme");
        }
    }
}
