//! ECS 9.x JSON: one object per event, valid against the official schema
//! (`shared/ecs/validate_ecs.py --auth --strict`).
//!
//! Invariants: built with serde_json (never by concatenation), so every control character is
//! escaped; `source.ip` and `related.ip` only ever hold valid addresses (DocSpace cuts IPv6 to
//! its first group; that raw value goes to `source.address`); `event.category`/`event.type`
//! are arrays whose types are expected for their category; unset values are omitted, never
//! `null`; DocSpace's own fields go under `docspace.*` in snake_case.

use std::borrow::Cow;
use std::io::Write as _;

use serde_json::Value;

use super::ECS_VERSION;
use crate::event::{Event, Outcome, Stream};

/// Appends one ECS document as compact JSON, keys in sorted order at every level.
///
/// Written straight into `out` (no intermediate tree): string values go through serde_json's
/// escaper, keys are constants.
pub fn encode(ev: &Event, out: &mut Vec<u8>) {
    let sem = ev.semantics();
    let ip = ev.valid_ip();
    let mut doc = Obj::open(out);
    doc.key("@timestamp");
    doc.out.push(b'"');
    crate::event::write_utc_millis(doc.out, ev.time);
    doc.out.push(b'"');

    doc.key("docspace");
    {
        let mut ds = Obj::open(doc.out);
        ds.opt_str("action", ev.action_text());
        ds.int("action_id", ev.action_id);
        ds.str("action_name", &ev.action_name());
        if let Some(v) = ev.action_type {
            ds.int("action_type", v);
        }
        ds.opt_str("browser", ev.browser());
        ds.opt_str("city", ev.city());
        ds.opt_str("context", ev.context());
        ds.opt_str("country", ev.country());
        ds.str("date", ev.date_text());
        if ev.stream == Stream::Audit {
            ds.key("entries");
            ds.out.push(b'[');
            for (i, e) in ev.entries.iter().enumerate() {
                if i > 0 {
                    ds.out.push(b',');
                }
                push_int(ds.out, *e);
            }
            ds.out.push(b']');
        }
        ds.int("id", ev.id);
        ds.opt_str("ip", ev.ip());
        if let Some(v) = ev.location {
            ds.int("location", v);
        }
        ds.opt_str("login", ev.login());
        ds.opt_str("page", ev.page());
        ds.opt_str("platform", ev.platform());
        ds.str("portal", &ev.portal.name);
        ds.str("portal_url", &ev.portal.url);
        if let Some(v) = ev.product {
            ds.int("product", v);
        }
        ds.str("stream", ev.stream.as_str());
        if !ev.target.is_empty() {
            ds.key("target");
            ds.out.push(b'[');
            for (i, t) in ev.target.iter().enumerate() {
                if i > 0 {
                    ds.out.push(b',');
                }
                json_str(ds.out, t);
            }
            ds.out.push(b']');
        }
        ds.str("unique_id", &ev.unique_id());
        ds.opt_str("user", ev.user());
        ds.opt_str("user_id", ev.user_id());
        ds.close();
    }

    doc.key("ecs");
    doc.out.extend_from_slice(b"{\"version\":\"");
    doc.out.extend_from_slice(ECS_VERSION.as_bytes());
    doc.out.extend_from_slice(b"\"}");

    doc.key("event");
    {
        let mut e = Obj::open(doc.out);
        e.str("action", &ev.action_kebab());
        e.str_array("category", sem.category);
        e.key("code");
        e.out.push(b'"');
        push_int(e.out, ev.action_id);
        e.out.push(b'"');
        e.key("dataset");
        e.out.extend_from_slice(b"\"docspace.");
        e.out.extend_from_slice(ev.stream.as_str().as_bytes());
        e.out.push(b'"');
        e.key("id");
        e.out.push(b'"');
        push_int(e.out, ev.id);
        e.out.push(b'"');
        e.str("kind", "event");
        e.str("module", "docspace");
        e.str("outcome", sem.outcome.as_str());
        e.str("provider", ev.stream.as_str());
        if sem.outcome == Outcome::Failure {
            e.keyword("reason", ev.action_text());
        }
        e.int("severity", i64::from(sem.severity));
        e.str_array("type", sem.kind);
        e.close();
    }

    doc.opt_str("message", ev.action_text());

    let host = keyword(&ev.portal.host);
    doc.key("observer");
    {
        let mut o = Obj::open(doc.out);
        o.str("hostname", &host);
        o.str("name", &ev.portal.name);
        o.str("product", "DocSpace");
        o.str("type", "application");
        o.str("vendor", "ONLYOFFICE");
        o.close();
    }
    doc.key("organization");
    {
        let mut o = Obj::open(doc.out);
        o.str("id", &host);
        o.str("name", &ev.portal.name);
        o.close();
    }

    let mut related_user: [Option<&str>; 3] = [None; 3];
    let mut n = 0;
    for u in [ev.login(), ev.user(), ev.actor_id()].into_iter().flatten() {
        if !related_user[..n].contains(&Some(u)) {
            related_user[n] = Some(u);
            n += 1;
        }
    }
    if n > 0 || ip.is_some() {
        doc.key("related");
        let mut r = Obj::open(doc.out);
        if let Some(ip) = ip {
            r.key("ip");
            r.out.extend_from_slice(b"[\"");
            let _ = write!(r.out, "{ip}");
            r.out.extend_from_slice(b"\"]");
        }
        if n > 0 {
            r.key("user");
            r.out.push(b'[');
            for (i, u) in related_user[..n].iter().flatten().enumerate() {
                if i > 0 {
                    r.out.push(b',');
                }
                json_str(r.out, &keyword(u));
            }
            r.out.push(b']');
        }
        r.close();
    }

    if ip.is_some() || ev.ip().is_some() || ev.country().is_some() || ev.city().is_some() {
        doc.key("source");
        let mut src = Obj::open(doc.out);
        src.keyword("address", ev.ip());
        if ev.country().is_some() || ev.city().is_some() {
            src.key("geo");
            let mut g = Obj::open(src.out);
            g.keyword("city_name", ev.city());
            g.keyword("country_name", ev.country());
            g.close();
        }
        if let Some(ip) = ip {
            src.key("ip");
            src.out.push(b'"');
            let _ = write!(src.out, "{ip}");
            src.out.push(b'"');
        }
        src.close();
    }

    if let Some(p) = ev.page() {
        doc.key("url");
        let mut u = Obj::open(doc.out);
        u.str("original", p);
        u.close();
    }

    if ev.actor_id().is_some() || ev.login().is_some() || ev.user().is_some() {
        doc.key("user");
        let mut u = Obj::open(doc.out);
        u.keyword("full_name", ev.user());
        u.keyword("id", ev.actor_id());
        u.keyword("name", ev.login().or(ev.user()));
        u.close();
    }

    if ev.browser().is_some() || ev.platform().is_some() {
        doc.key("user_agent");
        let mut ua = Obj::open(doc.out);
        let (name, version) = match ev.browser() {
            Some(b) => {
                let (n, v) = split_version(b);
                (Some(n), v)
            }
            None => (None, None),
        };
        ua.keyword("name", name);
        if let Some(p) = ev.platform() {
            ua.key("os");
            let mut os = Obj::open(ua.out);
            os.str("full", &keyword(p));
            os.close();
        }
        ua.keyword("version", version);
        ua.close();
    }
    doc.close();
}

/// Builds the ECS document of an event as a JSON value (tests and tools; the agent writes
/// [`encode`]'s bytes directly).
pub fn document(ev: &Event) -> Value {
    let mut out = Vec::with_capacity(1024);
    encode(ev, &mut out);
    serde_json::from_slice(&out).unwrap_or(Value::Null)
}

/// A JSON object being written: keys are constants (no escaping), values are escaped.
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    fn open(out: &'a mut Vec<u8>) -> Obj<'a> {
        out.push(b'{');
        Obj { out, first: true }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        json_str(self.out, v);
    }

    /// Only when present and not empty (unset values are omitted, never `null`).
    fn opt_str(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            self.str(k, v);
        }
    }

    /// A keyword field: cut at [`IGNORE_ABOVE`] characters.
    fn keyword(&mut self, k: &str, v: Option<&str>) {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            self.str(k, &keyword(v));
        }
    }

    fn int(&mut self, k: &str, v: i64) {
        self.key(k);
        push_int(self.out, v);
    }

    fn str_array(&mut self, k: &str, items: &[&str]) {
        self.key(k);
        self.out.push(b'[');
        for (i, v) in items.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            json_str(self.out, v);
        }
        self.out.push(b']');
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

/// serde_json's escaping, and the line separators NEL, U+2028 and U+2029 as `\\uXXXX`.
fn json_str(out: &mut Vec<u8>, v: &str) {
    // A str always serialises.
    let s = serde_json::to_string(v).unwrap_or_default();
    let s = s
        .replace('\u{85}', "\\u0085")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    out.extend_from_slice(s.as_bytes());
}

fn push_int(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
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
