//! The `json` format: the DocSpace row exactly as received, plus `portal` and `stream`.

use serde_json::Value;

use crate::event::{Event, compact_json};

/// Appends the row as one JSON object (the row's own compact text; serde escapes the portal
/// name).
pub fn encode(ev: &Event, out: &mut Vec<u8>) {
    // Raw CR/LF can only lie between tokens (inside strings they are escaped): drop that
    // whitespace so that the record stays one line.
    let compacted;
    let mut raw = ev.raw();
    if raw.contains(['\n', '\r']) {
        compacted = compact_json(raw);
        raw = &compacted;
    }
    let raw = raw.trim_end();
    // Unless the row might already name `portal` or `stream` (then the map path replaces
    // them), the two keys are appended before its closing brace.
    if raw.len() >= 2
        && raw.ends_with('}')
        && !raw.contains("\\u")
        && !raw.contains("\"portal\"")
        && !raw.contains("\"stream\"")
    {
        out.extend_from_slice(&raw.as_bytes()[..raw.len() - 1]);
        if !raw[..raw.len() - 1].trim_end().ends_with('{') {
            out.push(b',');
        }
        out.extend_from_slice(b"\"portal\":");
        let _ = serde_json::to_writer(&mut *out, &ev.portal.name);
        out.extend_from_slice(b",\"stream\":\"");
        out.extend_from_slice(ev.stream.as_str().as_bytes());
        out.extend_from_slice(b"\"}");
        return;
    }
    let mut obj = ev.raw_map();
    obj.insert("portal".into(), Value::String(ev.portal.name.clone()));
    obj.insert("stream".into(), Value::String(ev.stream.as_str().into()));
    // Serialising a Map of Values into a Vec cannot fail.
    let _ = serde_json::to_writer(out, &obj);
}
