//! ECS 9.x JSON: one object per event, valid against the official schema
//! (`shared/ecs/validate_ecs.py --auth --strict`).
//!
//! Invariants: built with serde_json (never by concatenation), so every control character is
//! escaped; `source.ip` and `related.ip` only ever hold valid addresses (DocSpace cuts IPv6 to
//! its first group; that raw value goes to `source.address`); `event.category`/`event.type`
//! are arrays whose types are expected for their category; unset values are omitted, never
//! `null`; DocSpace's own fields go under `docspace.*` in snake_case.

use serde_json::{Map, Value, json};

use crate::event::{Event, Outcome};
use crate::transform::ECS_VERSION;

/// Appends one ECS document as compact JSON.
pub fn encode(ev: &Event, out: &mut Vec<u8>) {
    // Serialising a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(out, &document(ev));
}

/// Builds the ECS document of an event.
pub fn document(ev: &Event) -> Value {
    let sem = ev.semantics();
    let mut event = Map::new();
    event.insert("kind".into(), json!("event"));
    event.insert("category".into(), json!(sem.category));
    event.insert("type".into(), json!(sem.kind));
    event.insert("action".into(), json!(ev.action_kebab()));
    event.insert("code".into(), json!(ev.action_id.to_string()));
    event.insert("outcome".into(), json!(sem.outcome.as_str()));
    event.insert("id".into(), json!(ev.id.to_string()));
    event.insert(
        "dataset".into(),
        json!(format!("docspace.{}", ev.stream.as_str())),
    );
    event.insert("module".into(), json!("docspace"));
    event.insert("provider".into(), json!(ev.stream.as_str()));
    event.insert("severity".into(), json!(sem.severity));
    if sem.outcome == Outcome::Failure
        && let Some(t) = ev.action_text()
    {
        event.insert("reason".into(), json!(keyword(t)));
    }

    let mut doc = Map::new();
    doc.insert("@timestamp".into(), json!(ev.time_rfc3339()));
    doc.insert("ecs".into(), json!({ "version": ECS_VERSION }));
    doc.insert("event".into(), Value::Object(event));
    if let Some(t) = ev.action_text() {
        doc.insert("message".into(), json!(t));
    }

    let mut user = Map::new();
    put(&mut user, "id", ev.user_id());
    put(&mut user, "name", ev.login().or(ev.user()));
    put(&mut user, "full_name", ev.user());
    if !user.is_empty() {
        doc.insert("user".into(), Value::Object(user));
    }

    let ip = ev.valid_ip();
    let mut source = Map::new();
    if let Some(ip) = ip {
        source.insert("ip".into(), json!(ip.to_string()));
    }
    put(&mut source, "address", ev.ip());
    let mut geo = Map::new();
    put(&mut geo, "country_name", ev.country());
    put(&mut geo, "city_name", ev.city());
    if !geo.is_empty() {
        source.insert("geo".into(), Value::Object(geo));
    }
    if !source.is_empty() {
        doc.insert("source".into(), Value::Object(source));
    }

    let mut ua = Map::new();
    if let Some(b) = ev.browser() {
        let (name, version) = split_version(b);
        put(&mut ua, "name", Some(name));
        put(&mut ua, "version", version);
    }
    if let Some(p) = ev.platform() {
        ua.insert("os".into(), json!({ "full": keyword(p) }));
    }
    if !ua.is_empty() {
        doc.insert("user_agent".into(), Value::Object(ua));
    }
    if let Some(p) = ev.page() {
        doc.insert("url".into(), json!({ "original": p }));
    }
    doc.insert(
        "observer".into(),
        json!({
            "vendor": "ONLYOFFICE",
            "product": "DocSpace",
            "type": "application",
            "hostname": keyword(&ev.portal.host),
            "name": ev.portal.name,
        }),
    );
    doc.insert(
        "organization".into(),
        json!({ "id": keyword(&ev.portal.host), "name": ev.portal.name }),
    );

    let mut related_user: Vec<&str> = Vec::new();
    for u in [ev.login(), ev.user(), ev.user_id()].into_iter().flatten() {
        if !related_user.contains(&u) {
            related_user.push(u);
        }
    }
    let mut related = Map::new();
    if !related_user.is_empty() {
        let users: Vec<String> = related_user.iter().map(|u| keyword(u)).collect();
        related.insert("user".into(), json!(users));
    }
    if let Some(ip) = ip {
        related.insert("ip".into(), json!([ip.to_string()]));
    }
    if !related.is_empty() {
        doc.insert("related".into(), Value::Object(related));
    }

    let mut ds = Map::new();
    ds.insert("portal".into(), json!(ev.portal.name));
    ds.insert("portal_url".into(), json!(ev.portal.url));
    ds.insert("stream".into(), json!(ev.stream.as_str()));
    ds.insert("id".into(), json!(ev.id));
    ds.insert("action_id".into(), json!(ev.action_id));
    ds.insert("action_name".into(), json!(ev.action_name()));
    let put = |m: &mut Map<String, Value>, k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            m.insert(k.into(), Value::String(v.to_owned()));
        }
    };
    put(&mut ds, "action", ev.action_text());
    put(&mut ds, "user", ev.user());
    put(&mut ds, "user_id", ev.user_id());
    put(&mut ds, "login", ev.login());
    put(&mut ds, "ip", ev.ip());
    put(&mut ds, "country", ev.country());
    put(&mut ds, "city", ev.city());
    put(&mut ds, "browser", ev.browser());
    put(&mut ds, "platform", ev.platform());
    put(&mut ds, "page", ev.page());
    ds.insert("date".into(), json!(ev.date_text()));
    for (k, v) in [
        ("action_type", ev.action_type),
        ("product", ev.product),
        ("location", ev.location),
    ] {
        if let Some(v) = v {
            ds.insert(k.into(), json!(v));
        }
    }
    if !ev.target.is_empty() {
        ds.insert("target".into(), json!(ev.target));
    }
    if ev.stream == crate::event::Stream::Audit {
        ds.insert("entries".into(), json!(ev.entries));
    }
    put(&mut ds, "context", ev.context());
    doc.insert("docspace".into(), Value::Object(ds));
    Value::Object(doc)
}

fn put(map: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        map.insert(key.into(), Value::String(keyword(v)));
    }
}

/// ECS keyword fields are not indexed past `ignore_above` (1024 characters): cut longer values
/// and mark the cut, so the field stays searchable. The full value stays under `docspace.*`.
pub const IGNORE_ABOVE: usize = 1024;

fn keyword(v: &str) -> String {
    if v.chars().count() <= IGNORE_ABOVE {
        return v.to_owned();
    }
    let mut s: String = v.chars().take(IGNORE_ABOVE - 3).collect();
    s.push_str("...");
    s
}

/// `"Chrome 131"` → (`Chrome`, `131`); `"Other"` → (`Other`, None).
fn split_version(browser: &str) -> (&str, Option<&str>) {
    match browser.rsplit_once(' ') {
        Some((name, v))
            if !name.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.') =>
        {
            (name, Some(v))
        }
        _ => (browser, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::fixtures;

    #[test]
    fn login_failure_document() {
        let events = fixtures::all();
        let ev = events.iter().find(|e| e.id == 48212).expect("row");
        let d = document(ev);
        assert_eq!(d["@timestamp"], "2025-01-15T12:58:12.000Z");
        assert_eq!(d["event"]["action"], "login-fail-brute-force");
        assert_eq!(d["event"]["code"], "1023");
        assert_eq!(d["event"]["id"], "48212");
        assert_eq!(d["event"]["outcome"], "failure");
        assert_eq!(d["event"]["category"], json!(["authentication"]));
        assert_eq!(d["event"]["dataset"], "docspace.login");
        assert_eq!(d["user"]["name"], "bob@example.com");
        assert_eq!(d["source"]["ip"], "192.0.2.66");
        assert_eq!(d["user_agent"]["name"], "Firefox");
        assert_eq!(d["user_agent"]["version"], "133");
        assert_eq!(d["docspace"]["action_id"], 1023);
        assert_eq!(d["docspace"]["user_id"], crate::event::GUEST_USER_ID);
        assert!(
            d["source"].get("geo").is_none(),
            "empty country/city omitted"
        );
    }

    #[test]
    fn truncated_ipv6_goes_to_address_only() {
        let mut ev = fixtures::all()[0].clone();
        ev = ev.with_row_field("ip", serde_json::Value::String("2a02".into()));
        let d = document(&ev);
        assert!(d["source"].get("ip").is_none());
        assert_eq!(d["source"]["address"], "2a02");
        assert!(d["related"].get("ip").is_none());
    }

    #[test]
    fn audit_categories() {
        let events = fixtures::all();
        let by_id = |id| document(events.iter().find(|e| e.id == id).expect("row"));
        assert_eq!(by_id(91540)["event"]["category"], json!(["iam"]));
        assert_eq!(by_id(91540)["event"]["type"], json!(["user", "creation"]));
        assert_eq!(by_id(91544)["event"]["category"], json!(["configuration"]));
        assert_eq!(by_id(91537)["event"]["category"], json!(["file"]));
        assert_eq!(by_id(91537)["docspace"]["target"], json!(["15432"]));
    }
}
