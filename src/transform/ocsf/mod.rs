//! OCSF 1.5.0 JSON: one object per event, in the class its action belongs to ([`classes`]):
//! logins as Authentication (3002), audit events as Account Change (3001), Entity Management
//! (3004), User Access Management (3005), Group Management (3006), API Activity (6003) or File
//! Hosting Activity (6006). Checked by a real third-party validator (`tests/ocsf/`).
//!
//! Invariants: every string goes through `transform::put_json_str` (serde_json's escaping, the
//! line separators NEL, U+2028 and U+2029 too), so one event is one line whatever its fields
//! hold; `metadata.uid` is the DocSpace id (a string), `time` the event's UTC time in epoch
//! milliseconds, `type_uid` = `class_uid * 100 + activity_id`; every field each class requires
//! is written; `src_endpoint.ip` only ever holds a valid address (the raw value goes to
//! `unmapped.ip`); no user id is ever DocSpace's Guest placeholder (it stays in
//! `unmapped.user_id`); `raw_data` is the row as received, so nothing is lost; what OCSF has no
//! field for goes under `unmapped`; unset values are omitted, never `null`.

pub mod classes;

use std::rc::Rc;
use std::sync::Arc;

use crate::event::{Event, Outcome, PortalInfo};
use crate::transform::{
    Output, epoch_millis, opt_str, put_ip, put_json_str, put_str_array, valid_ip,
};
use classes::{Class, Mapping, OTHER};

/// The OCSF schema version the output claims (`metadata.version`).
pub const OCSF_VERSION: &str = "1.5.0";

/// `metadata.product`: DocSpace by ONLYOFFICE, the vendor name the CEF and LEEF headers and
/// ECS `observer.vendor` already carry, so one SIEM sees one vendor whatever the format.
const PRODUCT: &[u8] = b",\"product\":{\"name\":\"DocSpace\",\"vendor_name\":\"ONLYOFFICE\"}";

/// Appends one OCSF event as compact JSON.
///
/// Written straight into `out` (no intermediate tree, no serde), as the ECS encoder writes:
/// keys and constant runs are literals, string values go through `put_json_str`.
pub fn encode<O: Output + ?Sized>(ev: &Event, out: &mut O) {
    let m = classes::mapping(ev.stream, ev.action_id);
    let sem = ev.semantics();
    let names = crate::actions::lookup(ev.action_id);
    let mut num = itoa::Buffer::new();

    // Identity: activity, category, class, type.
    out.put(b"{\"activity_id\":");
    out.put(num.format(m.activity).as_bytes());
    out.put(b",\"activity_name\":");
    if m.activity == OTHER {
        // Other: the source's own name for what happened.
        put_action_name(out, ev.action_id, names.map(|a| a.name));
    } else {
        put_json_str(out, m.class.activity_name(m.activity).unwrap_or("Unknown"));
    }
    out.put(b",\"category_name\":\"");
    out.put(m.class.category_name().as_bytes());
    out.put(b"\",\"category_uid\":");
    out.put(num.format(m.class.category_uid()).as_bytes());
    out.put(b",\"class_name\":\"");
    out.put(m.class.name().as_bytes());
    out.put(b"\",\"class_uid\":");
    out.put(num.format(m.class.uid()).as_bytes());
    out.put(b",\"type_name\":\"");
    out.put(m.class.name().as_bytes());
    out.put(b": ");
    out.put(
        m.class
            .activity_name(m.activity)
            .unwrap_or("Unknown")
            .as_bytes(),
    );
    out.put(b"\",\"type_uid\":");
    out.put(num.format(m.type_uid()).as_bytes());

    // When, how bad, how it went.
    out.put(b",\"time\":");
    out.put(num.format(epoch_millis(ev.time)).as_bytes());
    out.put(b",\"timezone_offset\":");
    out.put(num.format(ev.offset.whole_minutes()).as_bytes());
    let (severity_id, severity) = severity(sem.severity);
    out.put(b",\"severity\":\"");
    out.put(severity.as_bytes());
    out.put(b"\",\"severity_id\":");
    out.put(num.format(severity_id).as_bytes());
    let (status_id, status) = match sem.outcome {
        Outcome::Success => (1, "Success"),
        Outcome::Failure => (2, "Failure"),
        Outcome::Unknown => (0, "Unknown"),
    };
    out.put(b",\"status\":\"");
    out.put(status.as_bytes());
    out.put(b"\",\"status_id\":");
    out.put(num.format(status_id).as_bytes());
    out.put(b",\"status_detail\":");
    put_action_name(out, ev.action_id, names.map(|a| a.name));
    if let Some(text) = ev.action_text().filter(|t| !t.is_empty()) {
        out.put(b",\"message\":");
        put_json_str(out, text);
    }

    // metadata: the DocSpace id, the stream, the portal (tenant) and its labels.
    out.put(b",\"metadata\":{\"event_code\":\"");
    out.put(num.format(ev.action_id).as_bytes());
    out.put(b"\"");
    with_portal(&ev.portal, |p| out.put(&p.labels));
    out.put(b",\"log_name\":\"");
    out.put(ev.stream.as_str().as_bytes());
    out.put(b"\",\"original_time\":");
    put_json_str(out, ev.date_text());
    out.put(PRODUCT);
    with_portal(&ev.portal, |p| out.put(&p.tenant));
    out.put(b",\"uid\":\"");
    out.put(num.format(ev.id).as_bytes());
    out.put(b"\",\"version\":\"");
    out.put(OCSF_VERSION.as_bytes());
    out.put(b"\"}");

    // Who, on what.
    class_fields(ev, m, names.map(|a| a.name), out);

    // Where from, through what.
    let ip = valid_ip(ev);
    let (country, city, platform) = (ev.country(), ev.city(), ev.platform());
    out.put(b",\"src_endpoint\":");
    let mut src = Obj::open(out);
    if let Some(ip) = ip {
        src.key(b"ip");
        src.out.put(b"\"");
        put_ip(src.out, ip);
        src.out.put(b"\"");
    }
    if nonempty(country).is_some() || nonempty(city).is_some() {
        src.key(b"location");
        let mut loc = Obj::open(src.out);
        loc.str(b"city", city);
        // OCSF's `country` is an ISO 3166-1 alpha-2 code; DocSpace writes the country's name,
        // which goes to `desc` unless it is such a code.
        match nonempty(country) {
            Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()) => {
                loc.str(b"country", Some(c));
            }
            c => loc.str(b"desc", c),
        }
        loc.close();
    }
    if let Some(p) = nonempty(platform) {
        let (type_id, kind) = os_type(p);
        src.key(b"os");
        src.out.put(b"{\"name\":");
        put_json_str(src.out, p);
        src.out.put(b",\"type\":\"");
        src.out.put(kind.as_bytes());
        src.out.put(b"\",\"type_id\":");
        src.out.put(num.format(type_id).as_bytes());
        src.out.put(b"}");
    }
    src.close();
    if matches!(
        m.class,
        Class::Authentication | Class::ApiActivity | Class::FileHosting
    ) {
        with_portal(&ev.portal, |p| out.put(&p.dst_endpoint));
    }
    let (browser, page) = (nonempty(ev.browser()), nonempty(ev.page()));
    let has_http_request = m.class != Class::FileHosting;
    if has_http_request && (browser.is_some() || page.is_some()) {
        out.put(b",\"http_request\":");
        let mut req = Obj::open(out);
        if let Some(p) = page {
            req.key(b"url");
            req.out.put(b"{\"url_string\":");
            put_json_str(req.out, p);
            req.out.put(b"}");
        }
        req.str(b"user_agent", browser);
        req.close();
    }
    if m.class == Class::Authentication && is_mfa(ev.action_id) {
        out.put(b",\"is_mfa\":true");
    }

    // Nothing lost: the row as received, and what OCSF has no field for.
    out.put(b",\"raw_data\":");
    put_json_str(out, ev.raw());
    out.put(b",\"unmapped\":{\"action_id\":");
    out.put(num.format(ev.action_id).as_bytes());
    out.put(b",\"action_name\":");
    put_action_name(out, ev.action_id, names.map(|a| a.name));
    if let Some(v) = ev.action_type {
        out.put(b",\"action_type\":");
        out.put(num.format(v).as_bytes());
    }
    if !has_http_request {
        opt_str(out, b",\"browser\":", browser);
    }
    opt_str(out, b",\"context\":", ev.context());
    if !ev.entries.is_empty() {
        out.put(b",\"entries\":[");
        for (i, e) in ev.entries.iter().enumerate() {
            if i > 0 {
                out.put(b",");
            }
            out.put(num.format(*e).as_bytes());
        }
        out.put(b"]");
    }
    if ip.is_none() {
        // DocSpace cuts IPv6 to its first group: kept here, never as an address.
        opt_str(out, b",\"ip\":", ev.ip());
    }
    if let Some(v) = ev.location {
        out.put(b",\"location\":");
        out.put(num.format(v).as_bytes());
    }
    if !has_http_request {
        opt_str(out, b",\"page\":", page);
    }
    with_portal(&ev.portal, |p| out.put(&p.unmapped));
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
    out.put(b",\"unique_id\":");
    with_portal(&ev.portal, |p| out.put(&p.unique_id));
    out.put(ev.stream.as_str().as_bytes());
    out.put(b":");
    out.put(num.format(ev.id).as_bytes());
    out.put(b"\"");
    opt_str(out, b",\"user_id\":", ev.user_id());
    out.put(b"}}");
}

/// The fields of the event's class: the user or the object acted on, and the actor.
fn class_fields<O: Output + ?Sized>(ev: &Event, m: Mapping, name: Option<&str>, out: &mut O) {
    let target = ev
        .target
        .first()
        .map(String::as_str)
        .filter(|t| !t.is_empty());
    let (actor_id, display) = (ev.actor_id(), nonempty(ev.user()));
    match m.class {
        Class::Authentication => {
            // Who tried: the login as typed, else the display name.
            let login = nonempty(ev.login());
            out.put(b",\"user\":");
            let mut u = Obj::open(out);
            if let Some(l) = login.filter(|l| looks_like_email(l)) {
                u.str(b"email_addr", Some(l));
            }
            if login.is_some() && display != login {
                u.str(b"full_name", display);
            }
            u.str(b"name", login.or(display));
            u.str(b"uid", actor_id);
            u.close();
        }
        Class::AccountChange | Class::UserAccess => {
            // The account acted on: the row's target, else (acting on oneself) the actor.
            out.put(b",\"user\":");
            let mut u = Obj::open(out);
            match target {
                Some(t) => u.str(b"uid", Some(t)),
                None => {
                    u.str(b"name", display);
                    u.str(b"uid", actor_id);
                }
            }
            u.close();
            if m.class == Class::UserAccess {
                out.put(b",\"privileges\":[");
                put_json_str(out, classes::privilege(ev.action_id));
                out.put(b"]");
            }
        }
        Class::GroupManagement => {
            out.put(b",\"group\":");
            let mut g = Obj::open(out);
            g.str(b"uid", target);
            g.close();
            if m.activity == 1 || m.activity == 2 {
                out.put(b",\"privileges\":[");
                put_json_str(out, classes::privilege(ev.action_id));
                out.put(b"]");
            }
        }
        Class::EntityManagement => {
            out.put(b",\"entity\":");
            let mut e = Obj::open(out);
            e.str(b"name", nonempty(ev.context()));
            e.str(
                b"type",
                Some(classes::entity_type(name.unwrap_or_default())),
            );
            e.str(b"uid", target);
            e.close();
        }
        Class::ApiActivity => {
            out.put(b",\"api\":{\"operation\":");
            put_action_name(out, ev.action_id, name);
            out.put(b",\"service\":{\"name\":\"DocSpace\"}}");
        }
        Class::FileHosting => {
            let (type_id, kind) = classes::file_type(&ev.entries, name.unwrap_or_default());
            let mut num = itoa::Buffer::new();
            // DocSpace's row names the object by its id only (its name is inside the localized
            // sentence, `message`): the id is `name` too, which the class requires.
            out.put(b",\"file\":{\"name\":");
            put_json_str(out, target.unwrap_or("unknown"));
            out.put(b",\"type\":\"");
            out.put(kind.as_bytes());
            out.put(b"\",\"type_id\":");
            out.put(num.format(type_id).as_bytes());
            if let Some(t) = target {
                out.put(b",\"uid\":");
                put_json_str(out, t);
            }
            out.put(b"}");
        }
    }
    if m.class != Class::Authentication {
        // The actor, which API Activity and File Hosting Activity require.
        out.put(b",\"actor\":{\"user\":");
        let mut u = Obj::open(out);
        u.str(b"name", display);
        u.str(b"uid", actor_id);
        u.close();
        out.put(b"}");
    }
}

/// The action's `MessageAction` name as a JSON string, or `Action<code>` for a code this build
/// does not know (as `Event::action_name` writes it).
fn put_action_name<O: Output + ?Sized>(out: &mut O, code: i64, name: Option<&str>) {
    match name {
        Some(n) => put_json_str(out, n),
        None => {
            out.put(b"\"Action");
            out.put(itoa::Buffer::new().format(code).as_bytes());
            out.put(b"\"");
        }
    }
}

/// The agent's severity (the CEF scale, 0–10) as OCSF `severity_id` and its name.
fn severity(cef: u8) -> (u8, &'static str) {
    match cef {
        0..=3 => (1, "Informational"),
        4 | 5 => (2, "Low"),
        6 => (3, "Medium"),
        7 | 8 => (4, "High"),
        _ => (5, "Critical"),
    }
}

/// Whether a login action used a second factor (SMS or an authenticator app). The others do
/// not say, so `is_mfa` is then left out rather than written false.
fn is_mfa(code: i64) -> bool {
    matches!(code, 1007 | 1008 | 1012 | 1014 | 1021 | 1022 | 1024 | 1025)
}

/// OCSF `os.type_id` and `os.type` of DocSpace's `platform` text ("Windows 10", "Mac OS X",
/// "Android 14", "Other").
fn os_type(platform: &str) -> (u16, &'static str) {
    let has = |w: &str| platform.contains(w);
    if has("Windows Phone") || has("Windows Mobile") {
        (101, "Windows Mobile")
    } else if has("Windows") {
        (100, "Windows")
    } else if has("Android") {
        (201, "Android")
    } else if has("iPad") {
        (302, "iPadOS")
    } else if has("iOS") || has("iPhone") {
        (301, "iOS")
    } else if has("Mac OS") || has("macOS") {
        (300, "macOS")
    } else if has("Linux") || has("Ubuntu") || has("Debian") || has("Fedora") || has("Chrome OS") {
        (200, "Linux")
    } else if platform == "Other" {
        (99, "Other")
    } else {
        (0, "Unknown")
    }
}

/// A login that an e-mail field may carry: one `@` between a local part and a dotted domain,
/// no spaces or control characters, at most 254 bytes (RFC 5321's path limit).
fn looks_like_email(v: &str) -> bool {
    let Some((local, domain)) = v.split_once('@') else {
        return false;
    };
    v.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !v.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn nonempty(v: Option<&str>) -> Option<&str> {
    v.filter(|v| !v.is_empty())
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
        self.out
            .put(if self.first { b"\"" as &[u8] } else { b",\"" });
        self.first = false;
        self.out.put(k);
        self.out.put(b"\":");
    }

    /// A string member, only when present and not empty.
    fn str(&mut self, k: &[u8], v: Option<&str>) {
        if let Some(v) = nonempty(v) {
            self.key(k);
            put_json_str(self.out, v);
        }
    }

    fn close(self) {
        self.out.put(b"}");
    }
}

/// What the encoder writes for a portal, rendered once per portal.
struct PortalText {
    /// `,"labels":["key:value",…]`, or nothing for a portal without labels.
    labels: Vec<u8>,
    /// `,"tenant_uid":"<portal key>"`.
    tenant: Vec<u8>,
    /// `,"dst_endpoint":{"hostname":…,"name":…}`: the portal the request reached.
    dst_endpoint: Vec<u8>,
    /// `,"portal":…,"portal_url":…` inside `unmapped`.
    unmapped: Vec<u8>,
    /// `"<portal key>:`, the start of `unmapped.unique_id` (as `Event::unique_id` writes it).
    unique_id: Vec<u8>,
}

impl PortalText {
    fn of(portal: &PortalInfo) -> PortalText {
        let mut labels = Vec::new();
        if !portal.labels.is_empty() {
            labels.put(b",\"labels\":[");
            for (i, (k, v)) in portal.labels.iter().enumerate() {
                if i > 0 {
                    labels.put(b",");
                }
                put_json_str(&mut labels, &format!("{k}:{v}"));
            }
            labels.put(b"]");
        }
        let mut tenant = b",\"tenant_uid\":".to_vec();
        put_json_str(&mut tenant, &portal.key);
        let mut dst_endpoint = b",\"dst_endpoint\":{\"hostname\":".to_vec();
        put_json_str(&mut dst_endpoint, &portal.host);
        dst_endpoint.put(b",\"name\":");
        put_json_str(&mut dst_endpoint, &portal.name);
        dst_endpoint.put(b"}");
        let mut unmapped = b",\"portal\":".to_vec();
        put_json_str(&mut unmapped, &portal.name);
        unmapped.put(b",\"portal_url\":");
        put_json_str(&mut unmapped, &portal.url);
        let mut unique_id = Vec::new();
        put_json_str(&mut unique_id, &portal.key);
        // Reopen the string: the stream and the id follow.
        unique_id.pop();
        unique_id.put(b":");
        PortalText {
            labels,
            tenant,
            dst_endpoint,
            unmapped,
            unique_id,
        }
    }
}

/// Calls `f` with the rendered text of `portal`. Each thread keeps the text of the last portal
/// it saw, with a reference to that portal, so the allocation it compares by address stays
/// alive and cannot be reused by another portal.
fn with_portal<R>(portal: &Arc<PortalInfo>, f: impl FnOnce(&PortalText) -> R) -> R {
    type Cached = Option<(Arc<PortalInfo>, Rc<PortalText>)>;
    thread_local! {
        static LAST: std::cell::RefCell<Cached> = const { std::cell::RefCell::new(None) };
    }
    let text = LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((p, text)) if Arc::ptr_eq(p, portal) => text.clone(),
            _ => {
                let text = Rc::new(PortalText::of(portal));
                *last = Some((portal.clone(), text.clone()));
                text
            }
        }
    });
    f(&text)
}

/// The OCSF event of `ev` as a JSON value (tests and tools; the agent writes [`encode`]'s
/// bytes directly).
pub fn document(ev: &Event) -> serde_json::Value {
    let mut out = Vec::with_capacity(2048);
    encode(ev, &mut out);
    serde_json::from_slice(&out).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests;
