//! ArcSight CEF: `CEF:0|ONLYOFFICE|DocSpace|<version>|<actionId>|<name>|<severity>|<extension>`.
//!
//! Escaping, exactly per the CEF spec (docs/formats.md §1.2):
//! - header fields: `\` → `\\`, `|` → `\|`; CR and LF become a space (they are not allowed);
//! - extension values: `\` → `\\`, `=` → `\=`, LF, CR and CRLF → `\n` (real parsers disagree
//!   on `\r`, so only `\n` is written); pipes are not escaped in the extension;
//! - other C0 control characters and DEL become U+FFFD everywhere;
//! - values are cut to their dictionary length (characters) and end in `...` when cut;
//! - empty values are omitted (parsers disagree on `key= `).
//!
//! So one event is always exactly one line, whatever an attacker typed as a login name.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::event::Event;

/// Device Vendor.
pub const VENDOR: &str = "ONLYOFFICE";
/// Device Product.
pub const PRODUCT: &str = "DocSpace";

/// Appends one CEF line (no newline).
pub fn encode(ev: &Event, out: &mut Vec<u8>) {
    let sem = ev.semantics();
    let mut s = String::with_capacity(512);
    s.push_str("CEF:0|");
    header(&mut s, VENDOR, 63);
    s.push('|');
    header(&mut s, PRODUCT, 63);
    s.push('|');
    header(&mut s, env!("CARGO_PKG_VERSION"), 31);
    s.push('|');
    let _ = write!(s, "{}", ev.action_id);
    s.push('|');
    header(&mut s, &ev.action_name(), 512);
    s.push('|');
    let _ = write!(s, "{}", sem.severity);
    s.push('|');

    let mut ext = Ext {
        out: &mut s,
        first: true,
    };
    ext.num("rt", ev.epoch_millis());
    ext.put("externalId", &ev.id.to_string(), 40);
    ext.put("act", &ev.action_name(), 63);
    ext.put("outcome", sem.outcome.as_str(), 63);
    ext.put("cat", ev.stream.as_str(), 1023);
    if let Some(actor) = ev.login().or(ev.user()) {
        ext.put("suser", actor, 1023);
    }
    if let Some(uid) = ev.user_id() {
        ext.put("suid", uid, 1023);
    }
    match ev.valid_ip() {
        Some(IpAddr::V4(ip)) => ext.put("src", &ip.to_string(), 15),
        Some(IpAddr::V6(ip)) => {
            ext.put("c6a1", &ip.to_string(), 45);
            ext.put("c6a1Label", "sourceAddress", 1023);
        }
        None => {}
    }
    if let Some(b) = ev.browser() {
        ext.put("requestClientApplication", b, 1023);
    }
    if let Some(p) = ev.page() {
        ext.put("request", p, 1023);
    }
    if let Some(m) = ev.action_text() {
        ext.put("msg", m, 1023);
    }
    ext.put("deviceExternalId", &ev.portal.name, 255);
    ext.put("dvchost", &ev.portal.host, 100);
    ext.labelled("cs1", "country", ev.country());
    ext.labelled("cs2", "city", ev.city());
    ext.labelled("cs3", "platform", ev.platform());
    let target = ev.target.join(",");
    ext.labelled(
        "cs4",
        "target",
        (!target.is_empty()).then_some(target.as_str()),
    );
    ext.labelled("cs5", "context", ev.context());
    // Audit classification numbers (ActionType, ProductType, LocationType) and entry types.
    for (key, label, v) in [
        ("cn1", "actionType", ev.action_type),
        ("cn2", "product", ev.product),
        ("cn3", "location", ev.location),
    ] {
        if let Some(v) = v {
            ext.put(&format!("{key}Label"), label, 1023);
            ext.num(key, v);
        }
    }
    if !ev.entries.is_empty() {
        let entries: Vec<String> = ev.entries.iter().map(i64::to_string).collect();
        ext.put("flexString1Label", "entries", 128);
        ext.put("flexString1", &entries.join(","), 1023);
    }
    // The display name, when `suser` carries the typed login instead.
    let display = ev.login().and(ev.user());
    ext.labelled("cs6", "userDisplayName", display);
    out.extend_from_slice(s.as_bytes());
}

struct Ext<'a> {
    out: &'a mut String,
    first: bool,
}

impl Ext<'_> {
    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(' ');
        }
        self.first = false;
        self.out.push_str(key);
        self.out.push('=');
    }

    fn num(&mut self, key: &str, v: i64) {
        self.key(key);
        let _ = write!(self.out, "{v}");
    }

    fn put(&mut self, key: &str, value: &str, max_chars: usize) {
        if value.is_empty() {
            return;
        }
        self.key(key);
        escape_value(self.out, &limit(value, max_chars));
    }

    fn labelled(&mut self, key: &str, label: &str, value: Option<&str>) {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            self.put(&format!("{key}Label"), label, 1023);
            self.put(key, v, 4000);
        }
    }
}

/// Cuts to `max` characters, ending in `...` when cut.
fn limit(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if s.chars().count() <= max {
        return s.into();
    }
    let mut cut: String = s.chars().take(max.saturating_sub(3)).collect();
    cut.push_str("...");
    cut.into()
}

fn is_bad_control(c: char) -> bool {
    (c.is_control() && c != '\t' && c != '\n' && c != '\r') || c == '\u{7f}'
}

/// Header escaping: `\` and `|`; CR/LF → space.
pub fn header(out: &mut String, value: &str, max_chars: usize) {
    for c in limit(value, max_chars).chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\r' | '\n' => out.push(' '),
            c if is_bad_control(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

/// Extension value escaping: `\`, `=`, and line breaks as `\n`.
pub fn escape_value(out: &mut String, value: &str) {
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push_str("\\n");
            }
            c if is_bad_control(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::fixtures;

    fn line(ev: &Event) -> String {
        let mut out = Vec::new();
        encode(ev, &mut out);
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn brute_force_row() {
        let events = fixtures::all();
        let ev = events.iter().find(|e| e.id == 48212).expect("fixture row");
        let got = line(ev);
        let expect = format!(
            "CEF:0|ONLYOFFICE|DocSpace|{}|1023|LoginFailBruteForce|7|rt=1736945892000 externalId=48212 act=LoginFailBruteForce outcome=failure cat=login suser=bob@example.com suid=712d9ec3-5d2b-4b13-824f-71f00191dcca src=192.0.2.66 requestClientApplication=Firefox 133 request=https://docspace.example.com/login msg=Login Fail. Too many attempts deviceExternalId=main dvchost=docspace.example.com cs3Label=platform cs3=Ubuntu cs6Label=userDisplayName cs6=bob@example.com",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(got, expect);
    }

    #[test]
    fn escaping_table() {
        let check = |input: &str, expect: &str| {
            let mut s = String::new();
            escape_value(&mut s, input);
            assert_eq!(s, expect, "value {input:?}");
        };
        check("a=b", "a\\=b");
        check("c:\\dir", "c:\\\\dir");
        check("l1\nl2\r\nl3\rl4", "l1\\nl2\\nl3\\nl4");
        check("pipe|ok", "pipe|ok");
        check("nul\0esc\u{1b}", "nul\u{FFFD}esc\u{FFFD}");
        check("x suser=admin", "x suser\\=admin");
        let mut h = String::new();
        header(&mut h, "a|b\\c\nd", 512);
        assert_eq!(h, "a\\|b\\\\c d");
    }

    #[test]
    fn hostile_login_stays_one_line_and_cannot_forge_keys() {
        let mut ev = fixtures::all()[2].clone();
        ev = ev.with_row_field(
            "login",
            serde_json::Value::String(
                "evil\nCEF:0|x|y|1|2|3|4|suser=admin act=LoginSuccess \\".into(),
            ),
        );
        let got = line(&ev);
        assert!(!got.contains('\n') && !got.contains('\r'));
        assert_eq!(got.matches(" act=").count(), 1);
        assert!(
            got.contains("suser=evil\\nCEF:0|x|y|1|2|3|4|suser\\=admin act\\=LoginSuccess \\\\ ")
        );
    }

    #[test]
    fn long_values_are_cut_to_the_dictionary_length() {
        let mut ev = fixtures::all()[0].clone();
        ev = ev.with_row_field("browser", serde_json::Value::String("B".repeat(5000)));
        let got = line(&ev);
        let v = got
            .split(" requestClientApplication=")
            .nth(1)
            .and_then(|r| r.split(" request=").next())
            .expect("key present");
        assert_eq!(v.chars().count(), 1023);
        assert!(v.ends_with("..."));
    }
}
