//! ECS 9.x JSON: one object per event, valid against the official schema
//! (`shared/ecs/validate_ecs.py --auth --strict`).
//!
//! Invariants: every string goes through serde_json's escaping (`transform::put_json_str`, byte
//! for byte, never by concatenation), so every control character is escaped, and so are the
//! line separators NEL, U+2028 and U+2029 (`\u0085`, `\u2028`, `\u2029`), which JSON allows raw
//! but line readers split on; `source.ip` and `related.ip` only ever hold valid addresses
//! (DocSpace cuts IPv6 to its first group; that raw value goes to `source.address`);
//! `event.category`/`event.type` are arrays whose types are expected for every category given;
//! `user.id` and `related.user` never hold DocSpace's Guest placeholder (failed and anonymous
//! attempts), which stays in `docspace.user_id`; `docspace.unique_id` (portal, stream, id) tells
//! apart the login and audit events that share a DocSpace `id`; unset values are omitted, never
//! `null`; DocSpace's own fields go under `docspace.*` in snake_case.

use std::borrow::Cow;

use serde_json::Value;
#[cfg(test)]
use serde_json::json;

use crate::event::{Event, Outcome, PortalInfo, Stream};
use crate::transform::{
    Output, action, opt_str, put_ip, put_json_str, put_str_array, put_utc_millis, with_portal,
};

/// `,"ecs":{"version":"…"},"event":{"action":`: the constant text between `docspace` and
/// `event.action`.
const ECS_AND_EVENT: &str = concat!(
    ",\"ecs\":{\"version\":\"",
    crate::transform::ecs_version!(),
    "\"},\"event\":{\"action\":"
);

/// `observer` after its host name and portal name: constants.
const OBSERVER_REST: &[u8] =
    b",\"product\":\"DocSpace\",\"type\":\"application\",\"vendor\":\"ONLYOFFICE\"}";

/// Appends one ECS document as compact JSON, keys in sorted order at every level.
///
/// Written straight into `out` (no intermediate tree, no serde): keys and the constant runs
/// between them are literals, string values go through `transform::put_json_str` (serde_json's
/// escaping, byte for byte).
pub fn encode<O: Output + ?Sized>(ev: &Event, out: &mut O) {
    let sem = ev.semantics();
    let ip = crate::transform::valid_ip(ev);
    let mut num = itoa::Buffer::new();
    let action_text = ev.action_text();
    let (login, user, user_id) = (ev.login(), ev.user(), ev.user_id());
    // The actor's id: never the Guest placeholder, which only `docspace.user_id` keeps.
    let actor_id = ev.actor_id();
    let (country, city) = (ev.country(), ev.city());
    let (browser, platform, page) = (ev.browser(), ev.platform(), ev.page());
    let raw_ip = ev.ip();

    out.put(b"{\"@timestamp\":\"");
    put_utc_millis(out, ev.time);
    out.put(b"\",\"docspace\":{");
    // `action` is the only key before `action_id`, which is always there: every later key is
    // written with its comma.
    if let Some(a) = action_text.filter(|v| !v.is_empty()) {
        out.put(b"\"action\":");
        put_json_str(out, a);
        out.put(b",");
    }
    out.put(b"\"action_id\":");
    out.put(num.format(ev.action_id).as_bytes());
    out.put(b",\"action_name\":");
    let names = action(ev.action_id);
    match names {
        Some(a) => out.put(&a.json_name),
        // `Action<code>`, as `Event::action_name` writes it: nothing to escape.
        None => {
            out.put(b"\"Action");
            out.put(num.format(ev.action_id).as_bytes());
            out.put(b"\"");
        }
    }
    if let Some(v) = ev.action_type {
        out.put(b",\"action_type\":");
        out.put(num.format(v).as_bytes());
    }
    opt_str(out, b",\"browser\":", browser);
    opt_str(out, b",\"city\":", city);
    opt_str(out, b",\"context\":", ev.context());
    opt_str(out, b",\"country\":", country);
    out.put(b",\"date\":");
    put_json_str(out, ev.date_text());
    if ev.stream == Stream::Audit {
        out.put(b",\"entries\":[");
        for (i, e) in ev.entries.iter().enumerate() {
            if i > 0 {
                out.put(b",");
            }
            out.put(num.format(*e).as_bytes());
        }
        out.put(b"]");
    }
    out.put(b",\"id\":");
    out.put(num.format(ev.id).as_bytes());
    opt_str(out, b",\"ip\":", raw_ip);
    if let Some(v) = ev.location {
        out.put(b",\"location\":");
        out.put(num.format(v).as_bytes());
    }
    opt_str(out, b",\"login\":", login);
    opt_str(out, b",\"page\":", page);
    opt_str(out, b",\"platform\":", platform);
    with_portal(&ev.portal, |p| out.put(&p.ecs_portal));
    if let Some(v) = ev.product {
        out.put(b",\"product\":");
        out.put(num.format(v).as_bytes());
    }
    out.put(b",\"stream\":\"");
    out.put(ev.stream.as_str().as_bytes());
    out.put(b"\"");
    if !ev.target.is_empty() {
        put_str_array(out, b",\"target\":", &ev.target);
    }
    with_portal(&ev.portal, |p| out.put(&p.ecs_unique_id));
    out.put(ev.stream.as_str().as_bytes());
    out.put(b":");
    out.put(num.format(ev.id).as_bytes());
    out.put(b"\"");
    opt_str(out, b",\"user\":", user);
    opt_str(out, b",\"user_id\":", user_id);
    out.put(b"}");

    out.put(ECS_AND_EVENT.as_bytes());
    match names {
        Some(a) => out.put(&a.json_kebab),
        // `action-<code>`, as `Event::action_kebab` writes it: nothing to escape.
        None => {
            out.put(b"\"action-");
            out.put(num.format(ev.action_id).as_bytes());
            out.put(b"\"");
        }
    }
    out.put(b",\"category\":");
    str_array(out, sem.category);
    out.put(b",\"code\":\"");
    out.put(num.format(ev.action_id).as_bytes());
    out.put(b"\",\"dataset\":\"docspace.");
    out.put(ev.stream.as_str().as_bytes());
    out.put(b"\",\"id\":\"");
    out.put(num.format(ev.id).as_bytes());
    out.put(b"\",\"kind\":\"event\",\"module\":\"docspace\",\"outcome\":\"");
    out.put(sem.outcome.as_str().as_bytes());
    out.put(b"\",\"provider\":\"");
    out.put(ev.stream.as_str().as_bytes());
    out.put(b"\"");
    if sem.outcome == Outcome::Failure {
        opt_keyword(out, b",\"reason\":", action_text);
    }
    out.put(b",\"severity\":");
    out.put(num.format(sem.severity).as_bytes());
    out.put(b",\"type\":");
    str_array(out, sem.kind);
    out.put(b"}");

    if !ev.portal.labels.is_empty() {
        with_portal(&ev.portal, |p| out.put(&p.ecs_labels));
    }

    opt_str(out, b",\"message\":", action_text);

    with_portal(&ev.portal, |p| out.put(&p.ecs_observer));

    let mut related_user: [&str; 3] = [""; 3];
    let mut n = 0;
    for u in [login, user, actor_id].into_iter().flatten() {
        if !related_user[..n].contains(&u) {
            related_user[n] = u;
            n += 1;
        }
    }
    if n > 0 || ip.is_some() {
        out.put(b",\"related\":{");
        if let Some(ip) = ip {
            out.put(b"\"ip\":[\"");
            put_ip(out, ip);
            out.put(b"\"]");
            if n > 0 {
                out.put(b",");
            }
        }
        if n > 0 {
            out.put(b"\"user\":[");
            for (i, u) in related_user[..n].iter().enumerate() {
                if i > 0 {
                    out.put(b",");
                }
                put_json_str(out, &keyword(u));
            }
            out.put(b"]");
        }
        out.put(b"}");
    }

    if ip.is_some() || raw_ip.is_some() || country.is_some() || city.is_some() {
        out.put(b",\"source\":");
        let mut src = Obj::open(out);
        src.keyword(b"address", raw_ip);
        if country.is_some() || city.is_some() {
            src.key(b"geo");
            let mut g = Obj::open(src.out);
            g.keyword(b"city_name", city);
            g.keyword(b"country_name", country);
            g.close();
        }
        if let Some(ip) = ip {
            src.key(b"ip");
            src.out.put(b"\"");
            put_ip(src.out, ip);
            src.out.put(b"\"");
        }
        src.close();
    }

    if let Some(p) = page {
        out.put(b",\"url\":{\"original\":");
        put_json_str(out, p);
        out.put(b"}");
    }

    if actor_id.is_some() || login.is_some() || user.is_some() {
        out.put(b",\"user\":");
        let mut u = Obj::open(out);
        u.keyword(b"full_name", user);
        u.keyword(b"id", actor_id);
        u.keyword(b"name", login.or(user));
        u.close();
    }

    if browser.is_some() || platform.is_some() {
        out.put(b",\"user_agent\":");
        let mut ua = Obj::open(out);
        let (name, version) = match browser {
            Some(b) => {
                let (n, v) = split_version(b);
                (Some(n), v)
            }
            None => (None, None),
        };
        ua.keyword(b"name", name);
        if let Some(p) = platform {
            ua.key(b"os");
            ua.out.put(b"{\"full\":");
            put_json_str(ua.out, &keyword(p));
            ua.out.put(b"}");
        }
        ua.keyword(b"version", version);
        ua.close();
    }
    out.put(b"}");
}

/// `,"portal":…,"portal_url":…` of a portal (rendered once per portal by [`with_portal`]).
pub(crate) fn portal_text(portal: &PortalInfo) -> Vec<u8> {
    let mut out = Vec::new();
    out.put(b",\"portal\":");
    put_json_str(&mut out, &portal.name);
    out.put(b",\"portal_url\":");
    put_json_str(&mut out, &portal.url);
    out
}

/// `,"observer":{…},"organization":{…}` of a portal (rendered once per portal by
/// [`with_portal`]).
pub(crate) fn observer_text(portal: &PortalInfo) -> Vec<u8> {
    let mut out = Vec::new();
    let host = keyword(&portal.host);
    out.put(b",\"observer\":{\"hostname\":");
    put_json_str(&mut out, &host);
    out.put(b",\"name\":");
    put_json_str(&mut out, &portal.name);
    out.put(OBSERVER_REST);
    out.put(b",\"organization\":{\"id\":");
    put_json_str(&mut out, &host);
    out.put(b",\"name\":");
    put_json_str(&mut out, &portal.name);
    out.put(b"}");
    out
}

/// `,"unique_id":"<portal key>:` of a portal (rendered once per portal by [`with_portal`]):
/// `docspace.unique_id` up to the stream, as `Event::unique_id` writes it.
pub(crate) fn unique_id_text(portal: &PortalInfo) -> Vec<u8> {
    let mut out = Vec::new();
    out.put(b",\"unique_id\":");
    put_json_str(&mut out, &portal.key);
    // Reopen the string: the stream and the id follow.
    out.pop();
    out.put(b":");
    out
}

/// `,"labels":{"KEY":"value",…}` of a portal (rendered once per portal by [`with_portal`]), or
/// nothing when it has no labels. ECS `labels` holds flat keyword values; the keys are plain
/// identifiers (`sink::template::valid_label_key`) and the values short (at most 256
/// characters, below `ignore_above`), so nothing is cut.
pub(crate) fn labels_text(portal: &PortalInfo) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (k, v)) in portal.labels.iter().enumerate() {
        out.put(if i == 0 { b",\"labels\":{" } else { b"," });
        put_json_str(&mut out, k);
        out.put(b":");
        put_json_str(&mut out, v);
    }
    if !out.is_empty() {
        out.put(b"}");
    }
    out
}

/// As [`opt_str`], for a keyword field: cut at [`IGNORE_ABOVE`] characters.
#[inline]
fn opt_keyword<O: Output + ?Sized>(out: &mut O, key: &[u8], v: Option<&str>) {
    if let Some(v) = v.filter(|v| !v.is_empty()) {
        out.put(key);
        put_json_str(out, &keyword(v));
    }
}

fn str_array<O: Output + ?Sized>(out: &mut O, items: &[&str]) {
    out.put(b"[");
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.put(b",");
        }
        put_json_str(out, v);
    }
    out.put(b"]");
}

/// Builds the ECS document of an event as a JSON value (tests and tools; the agent writes
/// [`encode`]'s bytes directly).
pub fn document(ev: &Event) -> Value {
    let mut out = Vec::with_capacity(1024);
    encode(ev, &mut out);
    serde_json::from_slice(&out).unwrap_or(Value::Null)
}

/// A JSON object whose keys depend on what the event has: keys are constants (no escaping),
/// values are escaped.
struct Obj<'a, O: ?Sized> {
    out: &'a mut O,
    first: bool,
}

impl<'a, O: Output + ?Sized> Obj<'a, O> {
    fn open(out: &'a mut O) -> Obj<'a, O> {
        out.put(b"{");
        Obj { out, first: true }
    }

    fn key(&mut self, k: &[u8]) {
        if self.first {
            self.out.put(b"\"");
        } else {
            self.out.put(b",\"");
        }
        self.first = false;
        self.out.put(k);
        self.out.put(b"\":");
    }

    /// A keyword field, only when present and not empty: cut at [`IGNORE_ABOVE`] characters.
    fn keyword(&mut self, k: &[u8], v: Option<&str>) {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            self.key(k);
            put_json_str(self.out, &keyword(v));
        }
    }

    fn close(self) {
        self.out.put(b"}");
    }
}

/// ECS keyword fields are not indexed past `ignore_above` (1024 characters): cut longer values
/// and mark the cut, so the field stays searchable. The full value stays under `docspace.*`.
pub const IGNORE_ABOVE: usize = 1024;

fn keyword(v: &str) -> Cow<'_, str> {
    // Bytes ≥ characters: most values need no count at all.
    if v.len() <= IGNORE_ABOVE || v.chars().count() <= IGNORE_ABOVE {
        return Cow::Borrowed(v);
    }
    let mut s: String = v.chars().take(IGNORE_ABOVE - 3).collect();
    s.push_str("...");
    Cow::Owned(s)
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
        // See: issue 17. The Guest placeholder names no user: only docspace.user_id keeps it.
        assert_eq!(d["docspace"]["user_id"], crate::event::GUEST_USER_ID);
        assert!(d["user"].get("id").is_none(), "{d}");
        assert_eq!(d["related"]["user"], json!(["bob@example.com"]));
        assert_eq!(
            d["docspace"]["unique_id"],
            "docspace.example.com:login:48212"
        );
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

    /// See: issue 17. A real actor's id is `user.id` and in `related.user`.
    #[test]
    fn a_real_actor_keeps_its_id() {
        let events = fixtures::all();
        let d = document(events.iter().find(|e| e.id == 48213).expect("row"));
        assert_eq!(d["user"]["id"], "9b1e4f7a-2c3d-4e5f-8a6b-7c8d9e0f1a2b");
        assert_eq!(
            d["related"]["user"],
            json!(["Alice Johnson", "9b1e4f7a-2c3d-4e5f-8a6b-7c8d9e0f1a2b"])
        );
    }

    /// See: issue 17. NEL, U+2028 and U+2029 are escaped wherever a string goes, so that a
    /// reader splitting lines on them still reads one document; the values are unchanged.
    #[test]
    fn line_separators_are_escaped() {
        let ev = fixtures::all()[0].with_row_field(
            "login",
            serde_json::Value::String("a\u{85}b\u{2028}c\u{2029}d €".into()),
        );
        let mut out = Vec::new();
        encode(&ev, &mut out);
        let text = String::from_utf8(out).expect("UTF-8");
        assert!(!text.contains(['\u{85}', '\u{2028}', '\u{2029}']), "{text}");
        assert!(text.contains(r#""a\u0085b\u2028c\u2029d €""#), "{text}");
        assert_eq!(text.lines().count(), 1);
        let d: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(d["user"]["name"], "a\u{85}b\u{2028}c\u{2029}d €");
    }

    #[test]
    fn audit_categories() {
        let events = fixtures::all();
        let by_id = |id| document(events.iter().find(|e| e.id == id).expect("row"));
        assert_eq!(by_id(91540)["event"]["category"], json!(["iam"]));
        assert_eq!(by_id(91540)["event"]["type"], json!(["user", "creation"]));
        assert_eq!(
            by_id(91540)["docspace"]["unique_id"],
            "docspace.example.com:audit:91540"
        );
        assert_eq!(by_id(91544)["event"]["category"], json!(["configuration"]));
        assert_eq!(by_id(91537)["event"]["category"], json!(["file"]));
        assert_eq!(by_id(91537)["docspace"]["target"], json!(["15432"]));
    }

    /// A fixture row of a portal with labels, one of whose values needs escaping.
    fn labelled() -> Event {
        let mut ev = fixtures::all().swap_remove(0);
        ev.portal = std::sync::Arc::new(
            crate::event::PortalInfo::new("acme", "https://acme.example.com").with_labels([
                ("customer_id".to_owned(), "42".to_owned()),
                ("customer".to_owned(), "Acme = \\ \"Corp\" ^|]".to_owned()),
            ]),
        );
        ev
    }

    #[test]
    fn portal_labels_are_an_ecs_labels_object_in_key_order() {
        let ev = labelled();
        let mut out = Vec::new();
        encode(&ev, &mut out);
        let text = String::from_utf8(out).expect("utf-8");
        let d: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            d["labels"],
            json!({"customer": "Acme = \\ \"Corp\" ^|]", "customer_id": "42"})
        );
        // Keys stay sorted at the top level: `labels` between `event` and `message`.
        let (event, labels, message) = (
            text.find(",\"event\":").expect("event"),
            text.find(",\"labels\":").expect("labels"),
            text.find(",\"message\":").expect("message"),
        );
        assert!(event < labels && labels < message, "{text}");
        let mut bare = Vec::new();
        encode(&fixtures::all()[0], &mut bare);
        assert!(
            !String::from_utf8(bare)
                .expect("utf-8")
                .contains("\"labels\"")
        );
    }
}
