//! ArcSight CEF: `CEF:0|ONLYOFFICE|DocSpace|<version>|<actionId>|<name>|<severity>|<extension>`.
//!
//! Escaping, exactly per the CEF spec (docs/formats.md §1.2):
//! - header fields: `\` → `\\`, `|` → `\|`; CR and LF become a space (they are not allowed);
//! - extension values: `\` → `\\`, `=` → `\=`, LF, CR and CRLF → `\n` (real parsers disagree
//!   on `\r`, so only `\n` is written); pipes are not escaped in the extension;
//! - other C0 control characters, DEL and the C1 controls (U+0080–U+009F) become U+FFFD
//!   everywhere (TAB stays);
//! - values are cut to their dictionary length (characters) and end in `...` when cut;
//! - empty values are omitted (parsers disagree on `key= `).
//!
//! So one event is always exactly one line, whatever an attacker typed as a login name.
//!
//! The encoder works on bytes and writes straight into the output: it copies each run of bytes
//! that needs no escaping at once and counts characters only for values whose byte length could
//! exceed their limit. Every byte it escapes or replaces is ASCII or a whole C1 control
//! character, so the output stays valid UTF-8.

use std::net::IpAddr;

use super::{Fields, Marks, Output, REPLACEMENT, is_c1, limit, put_ip, replace_marked};
use crate::event::Event;

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
    out.put(num.format(f.action_id).as_bytes());
    out.put(b"|");
    let action = f.action_name();
    match action {
        Some(name) => header_into(out, name, 512),
        None => unknown_action(out, f.action_id),
    }
    out.put(b"|");
    out.put(num.format(sem.severity).as_bytes());
    // `rt` is always the first extension key; every later key is written as ` key=`.
    out.put(b"|rt=");
    out.put(num.format(ev.epoch_millis()).as_bytes());

    let mut ext = Ext { out };
    // Digits: at most 20 characters, below the limit of 40, and nothing to escape.
    ext.num(" externalId=", f.id);
    match action {
        Some(name) => ext.put(" act=", name, 63),
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
    match ev.valid_ip() {
        Some(ip @ IpAddr::V4(_)) => {
            ext.out.put(b" src=");
            put_ip(ext.out, ip);
        }
        Some(ip @ IpAddr::V6(_)) => {
            ext.out.put(b" c6a1=");
            put_ip(ext.out, ip);
            ext.out.put(b" c6a1Label=sourceAddress");
        }
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
    ext.put(" deviceExternalId=", f.portal_name, 255);
    ext.put(" dvchost=", f.portal_host, 100);
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

/// Extension values: control characters, `\\`, `=`, CR and LF, and the lead bytes 0xC2 (C1
/// controls, NEL) and 0xE2 (U+2028, U+2029).
static VALUE_MARKS: Marks = Marks::new([b'\\', b'='], false, &[0xc2, 0xe2]);

/// Header fields: control characters, `\\`, `|`, CR and LF, and the same lead bytes.
static HEADER_MARKS: Marks = Marks::new([b'\\', b'|'], false, &[0xc2, 0xe2]);

/// The length of the line separator (NEL, U+2028, U+2029) that starts at `v[i]`, if one does.
fn separator_len(v: &[u8], i: usize) -> Option<usize> {
    let rest = &v[i..];
    if rest.starts_with("\u{85}".as_bytes()) {
        Some(2)
    } else if rest.starts_with("\u{2028}".as_bytes()) || rest.starts_with("\u{2029}".as_bytes()) {
        Some(3)
    } else {
        None
    }
}

/// Extension value escaping into `out`, without the cut: `\\`, `=`, and line breaks as `\n`.
fn escape_value_into<O: Output + ?Sized>(out: &mut O, v: &[u8]) {
    replace_marked(out, v, &VALUE_MARKS, |v, i| match v[i] {
        b'\\' => Some((b"\\\\", 1)),
        b'=' => Some((b"\\=", 1)),
        b'\n' => Some((b"\\n", 1)),
        // CRLF is one line break.
        b'\r' => Some((b"\\n", if v.get(i + 1) == Some(&b'\n') { 2 } else { 1 })),
        0xc2 | 0xe2 if separator_len(v, i).is_some() => {
            separator_len(v, i).map(|n| (&b"\\n"[..], n))
        }
        0xc2 if !is_c1(v, i) => None,
        0xc2 => Some((REPLACEMENT, 2)),
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
        0xc2 | 0xe2 if separator_len(v, i).is_some() => separator_len(v, i).map(|n| (&b" "[..], n)),
        0xc2 if !is_c1(v, i) => None,
        0xc2 => Some((REPLACEMENT, 2)),
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

/// Header escaping: `\` and `|`; CR/LF → space.
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
