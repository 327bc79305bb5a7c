//! ArcSight CEF: `CEF:0|ONLYOFFICE|DocSpace|<version>|<actionId>|<name>|<severity>|<extension>`.
//!
//! Escaping, exactly per the CEF spec (docs/formats.md §1.2):
//! - header fields: `\` → `\\`, `|` → `\|`; line breaks become a space (they are not allowed);
//! - extension values: `\` → `\\`, `=` → `\=`, line breaks → `\n` (real parsers disagree on
//!   `\r`, so only `\n` is written); pipes are not escaped in the extension;
//! - line breaks are LF, CR, CRLF (as one), NEL (U+0085) and the Unicode line and paragraph
//!   separators U+2028 and U+2029: a reader that splits lines on any of them (Python's
//!   `str.splitlines`, Java's `\R`) must still see one event per line;
//! - other C0 control characters, DEL and the other C1 controls (U+0080–U+009F) become U+FFFD
//!   everywhere (TAB stays);
//! - values are cut to their dictionary length (characters) and end in `...` when cut;
//! - empty values are omitted (parsers disagree on `key= `).
//!
//! So one event is always exactly one line, whatever an attacker typed as a login name.
//!
//! The encoder works on bytes and writes straight into the output: it copies each run of bytes
//! that needs no escaping at once and counts characters only for values whose byte length could
//! exceed their limit. Every byte it escapes or replaces is ASCII, a whole C1 control character
//! or a whole separator, so the output stays valid UTF-8.
//!
//! `suid` is the actor's user id, never DocSpace's Guest placeholder of failed and anonymous
//! attempts (`Event::actor_id`). `src` holds a valid IPv4 address and labelled `c6a1` a valid
//! IPv6 one; any other `ip` (DocSpace cuts IPv6 to its first group, `2a02`) is kept in
//! `flexString2` labelled `sourceAddress`, since the address keys are typed.

use std::net::IpAddr;

use crate::event::{Event, PortalInfo};
use crate::transform::{
    Fields, Marks, Output, REPLACEMENT, epoch_millis, is_c1, limit, put_ip, replace_marked,
    with_portal,
};

/// Device Vendor.
pub const VENDOR: &str = "ONLYOFFICE";
/// Device Product.
pub const PRODUCT: &str = "DocSpace";

/// `CEF:0|Vendor|Product|Version|`: constants that the header escaping leaves as they are (a
/// unit test checks this against [`header`]).
const PREFIX: &str = concat!("CEF:0|ONLYOFFICE|DocSpace|", env!("CARGO_PKG_VERSION"), "|");

/// Appends one CEF line (no newline).
pub fn encode<O: Output + ?Sized>(ev: &Event, out: &mut O) {
    let f = Fields::of(ev);
    let sem = ev.semantics();
    let mut num = itoa::Buffer::new();
    out.put(PREFIX.as_bytes());
    let action = f.action();
    match action {
        Some(a) => out.put(&a.cef_head),
        None => {
            out.put(num.format(f.action_id).as_bytes());
            out.put(b"|");
            unknown_action(out, f.action_id);
            out.put(b"|");
        }
    }
    out.put(num.format(sem.severity).as_bytes());
    // `rt` is always the first extension key; every later key is written as ` key=`.
    out.put(b"|rt=");
    out.put(num.format(epoch_millis(f.time)).as_bytes());

    let mut ext = Ext { out };
    // Digits: at most 20 characters, below the limit of 40, and nothing to escape.
    ext.num(" externalId=", f.id);
    match action {
        Some(a) => ext.out.put(&a.cef_act),
        None => {
            ext.out.put(b" act=");
            unknown_action(ext.out, f.action_id);
        }
    }
    ext.put(" outcome=", sem.outcome.as_str(), 63);
    ext.put(" cat=", f.stream.as_str(), 1023);
    if let Some(actor) = f.login.or(f.user) {
        ext.put(" suser=", actor, 1023);
    }
    if let Some(uid) = f.user_id {
        ext.put(" suid=", uid, 1023);
    }
    // Addresses are written as `Display` does: at most 15 (IPv4) or 45 (IPv6) characters, the
    // limits of `src` and `c6a1`, and nothing to escape.
    match crate::transform::valid_ip(ev) {
        Some(ip @ IpAddr::V4(_)) => {
            ext.out.put(b" src=");
            put_ip(ext.out, ip);
        }
        Some(ip @ IpAddr::V6(_)) => {
            ext.out.put(b" c6a1=");
            put_ip(ext.out, ip);
            ext.out.put(b" c6a1Label=sourceAddress");
        }
        // Not an address (an IPv6 address cut to its first group): kept as text.
        None => {
            if let Some(raw) = ev.ip() {
                ext.put(" flexString2Label=sourceAddress flexString2=", raw, 1023);
            }
        }
    }
    if let Some(b) = f.browser {
        ext.put(" requestClientApplication=", b, 1023);
    }
    if let Some(p) = f.page {
        ext.put(" request=", p, 1023);
    }
    if let Some(m) = f.action_text {
        ext.put(" msg=", m, 1023);
    }
    with_portal(&ev.portal, |p| ext.out.put(&p.cef));
    ext.labelled(" cs1Label=country cs1=", f.country);
    ext.labelled(" cs2Label=city cs2=", f.city);
    ext.labelled(" cs3Label=platform cs3=", f.platform);
    ext.target(" cs4Label=target cs4=", f.target);
    ext.labelled(" cs5Label=context cs5=", f.context);
    // Audit classification numbers (ActionType, ProductType, LocationType) and entry types.
    for (label_and_key, v) in [
        (" cn1Label=actionType cn1=", f.action_type),
        (" cn2Label=product cn2=", f.product),
        (" cn3Label=location cn3=", f.location),
    ] {
        if let Some(v) = v {
            ext.num(label_and_key, v);
        }
    }
    if !f.entries.is_empty() {
        ext.out.put(b" flexString1Label=entries flexString1=");
        // Digits, `-` and `,`: one byte per character and nothing to escape, so the cut to
        // 1023 characters is a cut to 1023 bytes.
        let start = ext.out.written().len();
        for (i, e) in f.entries.iter().enumerate() {
            if i > 0 {
                ext.out.put(b",");
            }
            ext.out.put(num.format(*e).as_bytes());
        }
        if ext.out.written().len() - start > 1023 {
            ext.out.cut(start + 1020);
            ext.out.put(b"...");
        }
    }
    // The display name, when `suser` carries the typed login instead.
    let display = f.login.and(f.user);
    ext.labelled(" cs6Label=userDisplayName cs6=", display);
}

/// ` deviceExternalId=… dvchost=…` of a portal, then ` labels.KEY=…` for each of its labels
/// (rendered once per portal by [`with_portal`]).
///
/// Labels are custom extension keys: the six `csN` slots already carry fixed meanings, and a
/// label moved between slots from one event to the next would defeat every consumer that maps
/// `cs1` to a column. The CEF standard allows custom keys; VRL, cefp and pycef keep them as
/// named, and the dictionary check marks them advisory. The keys are plain identifiers
/// (`sink::template::valid_label_key`: nothing to escape); `labels.` keeps them apart from the
/// dictionary and gives them the names they have in ECS.
pub(crate) fn portal_text(portal: &PortalInfo) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ext = Ext { out: &mut out };
    ext.put(" deviceExternalId=", &portal.name, 255);
    ext.put(" dvchost=", &portal.host, 100);
    for (k, v) in &portal.labels {
        ext.put(&format!(" labels.{k}="), v, 1023);
    }
    out
}

/// `<code>|<name>|` and ` act=<name>` of a known action (rendered once per process by
/// [`crate::transform::action`]).
pub(crate) fn action_text(code: i64, name: &str) -> (Vec<u8>, Vec<u8>) {
    let mut head = Vec::new();
    head.put(itoa::Buffer::new().format(code).as_bytes());
    head.put(b"|");
    header_into(&mut head, name, 512);
    head.put(b"|");
    let mut act = Vec::new();
    Ext { out: &mut act }.put(" act=", name, 63);
    (head, act)
}

/// `Action<code>`, the name of a code this build does not know (as `Event::action_name` writes
/// it): at most 26 characters, below every limit it is written under, and nothing to escape.
fn unknown_action<O: Output + ?Sized>(out: &mut O, code: i64) {
    out.put(b"Action");
    out.put(itoa::Buffer::new().format(code).as_bytes());
}

/// The extension. Keys are written with their leading space and `=` (` suser=`).
struct Ext<'o, O: ?Sized> {
    out: &'o mut O,
}

impl<O: Output + ?Sized> Ext<'_, O> {
    fn num(&mut self, key: &str, v: i64) {
        self.out.put(key.as_bytes());
        self.out.put(itoa::Buffer::new().format(v).as_bytes());
    }

    /// `key=value`, escaped and cut to `max_chars`; nothing when the value is empty.
    fn put(&mut self, key: &str, value: &str, max_chars: usize) {
        if value.is_empty() {
            return;
        }
        self.out.put(key.as_bytes());
        let (v, cut) = limit(value, max_chars);
        escape_value_into(self.out, v.as_bytes());
        if cut {
            self.out.put(b"...");
        }
    }

    /// ` csNLabel=label csN=value` (cut to 4000 characters), when the value is not empty.
    fn labelled(&mut self, label_and_key: &str, value: Option<&str>) {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            self.put(label_and_key, v, 4000);
        }
    }

    /// The target items joined with `,`, as [`Ext::labelled`]. The items are escaped one by one
    /// (`,` needs no escaping, and a CR at the end of an item is followed by `,` in the joined
    /// value, not by LF); only a joined value that may be too long is joined first.
    fn target(&mut self, label_and_key: &str, items: &[String]) {
        let len = items.iter().map(String::len).sum::<usize>() + items.len().saturating_sub(1);
        if len == 0 {
            return;
        }
        if len > 4000 {
            self.put(label_and_key, &items.join(","), 4000);
            return;
        }
        self.out.put(label_and_key.as_bytes());
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.put(b",");
            }
            escape_value_into(self.out, item.as_bytes());
        }
    }
}

/// Extension values: control characters, `\\`, `=`, CR and LF, and the lead bytes of the C1
/// controls with NEL (0xC2) and of U+2028 and U+2029 (0xE2).
static VALUE_MARKS: Marks = Marks::new([b'\\', b'='], false, &[0xc2, 0xe2]);

/// Header fields: control characters, `\\`, `|`, CR and LF, and the same lead bytes.
static HEADER_MARKS: Marks = Marks::new([b'\\', b'|'], false, &[0xc2, 0xe2]);

/// Whether `v[i..]` starts with U+2028 or U+2029 (`E2 80 A8`/`A9`).
#[inline]
fn is_separator(v: &[u8], i: usize) -> bool {
    matches!(v.get(i + 1..i + 3), Some([0x80, 0xa8 | 0xa9]))
}

/// Extension value escaping into `out`, without the cut: `\\`, `=`, and line breaks as `\n`.
fn escape_value_into<O: Output + ?Sized>(out: &mut O, v: &[u8]) {
    replace_marked(out, v, &VALUE_MARKS, |v, i| match v[i] {
        b'\\' => Some((b"\\\\", 1)),
        b'=' => Some((b"\\=", 1)),
        b'\n' => Some((b"\\n", 1)),
        // CRLF is one line break.
        b'\r' => Some((b"\\n", if v.get(i + 1) == Some(&b'\n') { 2 } else { 1 })),
        // NEL is a line break; the other C1 controls become U+FFFD.
        0xc2 if v.get(i + 1) == Some(&0x85) => Some((b"\\n", 2)),
        0xc2 if !is_c1(v, i) => None,
        0xc2 => Some((REPLACEMENT, 2)),
        0xe2 if is_separator(v, i) => Some((b"\\n", 3)),
        0xe2 => None,
        _ => Some((REPLACEMENT, 1)),
    });
}

/// Header escaping into `out`, cut to `max_chars` first.
fn header_into<O: Output + ?Sized>(out: &mut O, value: &str, max_chars: usize) {
    let (v, cut) = limit(value, max_chars);
    replace_marked(out, v.as_bytes(), &HEADER_MARKS, |v, i| match v[i] {
        b'\\' => Some((b"\\\\", 1)),
        b'|' => Some((b"\\|", 1)),
        // CR and LF each (so CRLF is two spaces).
        b'\r' | b'\n' => Some((b" ", 1)),
        0xc2 if v.get(i + 1) == Some(&0x85) => Some((b" ", 2)),
        0xc2 if !is_c1(v, i) => None,
        0xc2 => Some((REPLACEMENT, 2)),
        0xe2 if is_separator(v, i) => Some((b" ", 3)),
        0xe2 => None,
        _ => Some((REPLACEMENT, 1)),
    });
    if cut {
        out.put(b"...");
    }
}

/// Appends `bytes`, which the escaping produced from a `&str`, to a `String`.
fn push_escaped(out: &mut String, bytes: &[u8]) {
    // The escaping copies whole characters and writes ASCII or U+FFFD in place of whole
    // characters, so the bytes are UTF-8 and nothing is replaced here.
    out.push_str(&String::from_utf8_lossy(bytes));
}

/// Header escaping: `\` and `|`; line breaks → space.
pub fn header(out: &mut String, value: &str, max_chars: usize) {
    let mut b = Vec::with_capacity(value.len().min(max_chars) + 8);
    header_into(&mut b, value, max_chars);
    push_escaped(out, &b);
}

/// Extension value escaping: `\`, `=`, and line breaks as `\n`.
pub fn escape_value(out: &mut String, value: &str) {
    let mut b = Vec::with_capacity(value.len() + 8);
    escape_value_into(&mut b, value.as_bytes());
    push_escaped(out, &b);
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
            "CEF:0|ONLYOFFICE|DocSpace|{}|1023|LoginFailBruteForce|7|rt=1736945892000 externalId=48212 act=LoginFailBruteForce outcome=failure cat=login suser=bob@example.com src=192.0.2.66 requestClientApplication=Firefox 133 request=https://docspace.example.com/login msg=Login Fail. Too many attempts deviceExternalId=main dvchost=docspace.example.com cs3Label=platform cs3=Ubuntu cs6Label=userDisplayName cs6=bob@example.com",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(got, expect);
    }

    #[test]
    fn the_constant_prefix_is_the_escaped_header() {
        let mut h = String::from("CEF:0|");
        header(&mut h, VENDOR, 63);
        h.push('|');
        header(&mut h, PRODUCT, 63);
        h.push('|');
        header(&mut h, env!("CARGO_PKG_VERSION"), 31);
        h.push('|');
        assert_eq!(PREFIX, h);
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
        // Every line break a reader may split on: NEL, U+2028, U+2029 too (issue 17); the
        // other C1 controls are replaced, and other characters led by 0xC2 or 0xE2 kept.
        check(
            "nel\u{85}ls\u{2028}ps\u{2029}csi\u{9b}",
            "nel\\nls\\nps\\ncsi\u{FFFD}",
        );
        check("\u{a0}\u{2027}\u{202a}€…–", "\u{a0}\u{2027}\u{202a}€…–");
        let mut h = String::new();
        header(&mut h, "a|b\\c\nd", 512);
        assert_eq!(h, "a\\|b\\\\c d");
        let mut h = String::new();
        header(&mut h, "a\u{85}b\u{2028}c\u{2029}d€", 512);
        assert_eq!(h, "a b c d€");
    }

    /// See: issue 17. A cut IPv6 address (`2a02`) is kept as `flexString2`, labelled; the Guest
    /// placeholder of a failed login is no `suid`.
    #[test]
    fn cut_addresses_are_kept_and_the_guest_is_no_suid() {
        let ev = fixtures::all()
            .into_iter()
            .find(|e| e.id == 48212)
            .expect("fixture row")
            .with_row_field("ip", serde_json::Value::String("2a02".into()));
        let got = line(&ev);
        assert!(
            got.contains(" flexString2Label=sourceAddress flexString2=2a02 "),
            "{got}"
        );
        assert!(!got.contains(" src=") && !got.contains(" suid="), "{got}");
        assert!(got.contains(" suser=bob@example.com "), "{got}");
        let ev = ev.with_row_field("ip", serde_json::Value::String("2001:db8::1".into()));
        let got = line(&ev);
        assert!(
            got.contains(" c6a1=2001:db8::1 c6a1Label=sourceAddress"),
            "{got}"
        );
        assert!(!got.contains("flexString2"), "{got}");
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
    fn portal_labels_are_custom_keys_escaped_as_values() {
        let got = line(&labelled());
        assert!(
            got.contains(
                " dvchost=acme.example.com labels.customer=Acme \\= \\\\ \"Corp\" ^|] labels.customer_id=42 "
            ),
            "{got}"
        );
        assert!(!line(&fixtures::all()[0]).contains("labels."));
    }
}
