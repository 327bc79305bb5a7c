//! The `json` format: the DocSpace row exactly as received, plus `portal` and `stream`.

use serde_json::Value;

use crate::event::Event;

/// Appends the row as one JSON object (serde escapes every control character).
pub fn encode(ev: &Event, out: &mut Vec<u8>) {
    let mut obj = ev.raw.clone();
    obj.insert("portal".into(), Value::String(ev.portal.name.clone()));
    obj.insert("stream".into(), Value::String(ev.stream.as_str().into()));
    // Serialising a Map of Values into a Vec cannot fail.
    let _ = serde_json::to_writer(out, &obj);
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
}
