//! IBM QRadar LEEF 2.0:
//! `LEEF:2.0|ONLYOFFICE|DocSpace|<version>|<actionId>|^|key=value^key=value...`.
//!
//! Spec: IBM "Log Event Extended Format (LEEF) Version 2" (QRadar DSM guide, topics
//! `c_LEEF_Format_Guide_LEEFeventcomps`, `_predefinedAttrrs`, `_customkeys`, `_bestpractices`,
//! `_dateformat`; mirrored verbatim in tenzir/skills `skills/tenzir-leef/`).
//!
//! Delimiter: `^`, written as the literal character in the 6th header field. LEEF 1.0 hard-codes
//! tab; LEEF 2.0 names the attribute delimiter in the header ("a single character or the hex
//! value ... prefix `0x` or `x`"). IBM's own LEEF 2.0 examples use `^`
//! (`LEEF:2.0|Lancope|StealthWatch|1.0|41|^|`). Tab is a control character, and syslog relays
//! rewrite it: rsyslog's `$EscapeControlCharactersOnReceive` is on by default and turns it into
//! `#011`, which would glue all attributes into one. A literal single character is read the same
//! way by every parser checked. The `x09` form is not: the OpenTelemetry collector's `parse_leef`
//! only decodes the `0x` prefix.
//!
//! Escaping. The LEEF guide defines **no** escape sequences for attribute values. It says only
//! that keys cannot contain `=` and to "avoid tab, pipe, or caret delimiters in ... keys and
//! values". So values are sanitised, not escaped:
//! - header fields: `\` → `\\`, `|` → `\|` (the CEF convention, which LEEF does not define: it is
//!   what AxoSyslog's `format_leef` writes and what AxoSyslog's and Tenzir's parsers read). Our
//!   header fields are constants and digits, so this never fires in practice;
//! - values: the delimiter `^`, tab, CR, LF, CRLF (as one), NEL, U+2028 and U+2029 → one space.
//!   Nothing splits the line or the attribute list any more;
//! - everywhere: other C0 and C1 control characters and DEL → U+FFFD;
//! - values keep `=`, `\` and `|` as they are. The parsers split the attributes on the delimiter
//!   first and then at the **first** `=` of each pair, so an `=` inside a value cannot start a key:
//!   IBM documents `key=([^<delimiter>]+)` as the custom-property regex for a LEEF key;
//!   opentelemetry-collector-contrib `func_parse_leef.go` uses `strings.Cut` on the first `=`
//!   ("the spec defines a value as everything up to the delimiter"); Tenzir's `leef.cpp` splits
//!   on the delimiter, then at the first `=`. AxoSyslog's `parse_leef` has read a value up to
//!   the next pair separator since axoflow/axosyslog#699. IBM documents no unescaping and OTel
//!   does none, so a `\=` escape would reach the analyst as a literal `\=`; none is written. `|`
//!   needs no escape after the header, since the parsers split the header by field count (and
//!   IBM even documents `|` as a possible attribute delimiter);
//! - values are cut to 1023 characters (`usrName` to 255, its documented QRadar limit) and end in
//!   `...` when cut. The cut happens after sanitising, so the cap is exact;
//! - empty values are omitted.
//!
//! Keys: the QRadar predefined ones where they exist: `devTime` (epoch milliseconds; IBM: "If the
//! devTime value is an epoch value of 10 or 13 digits, a devTimeFormat string is not required".
//! Outside the 13-digit range it falls back to `MMM dd yyyy HH:mm:ss.SSS z` in GMT with
//! `devTimeFormat`), `cat` (stream, a static, untranslated value as the spec requires), `sev`
//! (1–10), `usrName`, `src` (a valid IPv4 or IPv6 address only) and `url` (page). The rest are
//! custom keys that collide with no predefined one: `externalId`, `action`, `outcome`, `portal`,
//! `portalHost`, `userId`, `userDisplayName`, `sourceAddress`, `country`, `city`, `browser`,
//! `platform`, `message`, `target`, `context`. `identSrc` is not sent: QRadar feeds it into its
//! asset identity model, and on failed logins the user name is whatever an attacker typed.
//! `userId` is the actor's id, never DocSpace's Guest placeholder of failed and anonymous
//! attempts (`Event::actor_id`). `sourceAddress` keeps an `ip` that is no valid address (DocSpace
//! cuts IPv6 to its first group, `2a02`), which `src` cannot carry.
//!
//! Order: keys whose values the agent or DocSpace derives come first, and free text an end user
//! controls (`usrName` onwards) comes last. So an unanchored `key=([^^]+)` custom-property regex,
//! the form IBM suggests, meets a genuine trusted key before any look-alike text in a value.
//!
//! Invariants: one event is exactly one line, with no CR, LF, NEL, U+2028, U+2029 or other
//! control character anywhere. Splitting the line back on `^` and then at the first `=` yields
//! exactly the keys written here, whatever an attacker typed as a login name. No IO, no panics.
//!
//! Not covered (other parsers, not QRadar): Tenzir's parser is quote-aware (a `"` in a value can
//! hide the delimiters that follow) and unescapes `\n`, `\t`, `\=` and `\\`; AxoSyslog's kv-scanner
//! before #699 also started a new key at ` word=` inside a value. IBM documents neither.

use std::fmt::Write as _;

use time::OffsetDateTime;

use crate::event::{Event, PortalInfo};
use crate::transform::{
    Fields, Marks, Output, REPLACEMENT, cut_written, is_c1, put_ip, replace_marked, with_portal,
};

/// The attribute delimiter, written literally in the header's delimiter field.
pub const DELIMITER: char = '^';

/// Longest attribute value, in characters (cut values end in `...`).
pub const MAX_VALUE_CHARS: usize = 1023;

/// Longest `usrName`: QRadar's documented limit for the predefined key.
pub const MAX_USER_NAME_CHARS: usize = 255;

/// `devTimeFormat` for the fallback when the epoch does not have 13 digits.
const DEV_TIME_FORMAT: &str = "MMM dd yyyy HH:mm:ss.SSS z";

/// `LEEF:2.0|Vendor|Product|Version|`: constants that the header escaping leaves as they are
/// (a unit test checks this against [`escape_header`]).
const PREFIX: &str = concat!(
    "LEEF:2.0|ONLYOFFICE|DocSpace|",
    env!("CARGO_PKG_VERSION"),
    "|"
);

/// Appends one LEEF 2.0 line for `ev` to `out` (no newline).
pub fn encode<O: Output + ?Sized>(ev: &Event, out: &mut O) {
    let f = Fields::of(ev);
    let sem = ev.semantics();
    let mut num = itoa::Buffer::new();
    out.put(PREFIX.as_bytes());
    // The EventID: at most 20 digits and `-`, below the LEEF guide's limit of 255 characters,
    // and nothing to escape.
    out.put(num.format(f.action_id).as_bytes());
    out.put(b"|^|");

    // Agent- or DocSpace-derived values first (see the module doc on ordering). `devTime` is
    // always the first attribute; every later key is written as `^key=`.
    let mut attrs = Attrs { out };
    let millis = crate::transform::epoch_millis(f.time);
    if (1_000_000_000_000..10_000_000_000_000).contains(&millis) {
        attrs.raw("devTime=", num.format(millis));
    } else {
        attrs.put("devTime=", &format_dev_time(f.time), MAX_VALUE_CHARS);
        attrs.put("^devTimeFormat=", DEV_TIME_FORMAT, MAX_VALUE_CHARS);
    }
    // Constants and digits below: nothing to sanitise or cut.
    attrs.raw("^cat=", f.stream.as_str());
    attrs.raw("^sev=", num.format(sem.severity.clamp(1, 10)));
    attrs.raw("^externalId=", num.format(f.id));
    match f.action() {
        Some(a) => attrs.out.put(&a.leef),
        // `Action<code>`, as `Event::action_name` writes it, without allocating.
        None => {
            attrs.raw("^action=Action", num.format(f.action_id));
        }
    }
    attrs.raw("^outcome=", sem.outcome.as_str());
    with_portal(&ev.portal, |p| attrs.out.put(&p.leef));
    if let Some(ip) = crate::transform::valid_ip(ev) {
        // As `Display` writes it: nothing to sanitise, far below the limit.
        attrs.out.put(b"^src=");
        put_ip(attrs.out, ip);
    }
    attrs.opt("^userId=", f.user_id);
    attrs.opt("^country=", f.country);
    attrs.opt("^city=", f.city);
    // Free text an end user controls.
    if let Some(actor) = f.login.or(f.user) {
        attrs.put("^usrName=", actor, MAX_USER_NAME_CHARS);
    }
    // The display name, when `usrName` carries the typed login instead.
    attrs.opt("^userDisplayName=", f.login.and(f.user));
    // An `ip` that is no address (DocSpace cuts IPv6 to its first group): `src` is typed.
    if crate::transform::valid_ip(ev).is_none() {
        attrs.opt("^sourceAddress=", ev.ip());
    }
    attrs.opt("^browser=", f.browser);
    attrs.opt("^platform=", f.platform);
    attrs.opt("^url=", f.page);
    attrs.opt("^message=", f.action_text);
    attrs.target("^target=", f.target);
    attrs.opt("^context=", f.context);
}

/// `^portal=…^portalHost=…` of a portal, then `^labels.KEY=…` for each of its labels
/// (rendered once per portal by [`with_portal`]). Labels are custom keys, as LEEF expects of
/// anything beyond its predefined ones; `labels.` keeps them apart from those and gives them
/// the names they have in ECS and CEF. The keys are plain identifiers (no `=`, no delimiter).
pub(crate) fn portal_text(portal: &PortalInfo) -> Vec<u8> {
    let mut out = Vec::new();
    let mut attrs = Attrs { out: &mut out };
    attrs.put("^portal=", &portal.name, MAX_VALUE_CHARS);
    attrs.put("^portalHost=", &portal.host, MAX_VALUE_CHARS);
    for (k, v) in &portal.labels {
        attrs.put(&format!("^labels.{k}="), v, MAX_VALUE_CHARS);
    }
    out
}

/// `^action=<name>` of a known action (rendered once per process by
/// [`crate::transform::action`]).
pub(crate) fn action_text(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    Attrs { out: &mut out }.put("^action=", name, MAX_VALUE_CHARS);
    out
}

/// The attributes. Keys are written with the delimiter before them and `=` (`^usrName=`).
struct Attrs<'o, O: ?Sized> {
    out: &'o mut O,
}

impl<O: Output + ?Sized> Attrs<'_, O> {
    /// A value the agent formatted itself (digits, a constant): no sanitising needed.
    fn raw(&mut self, key: &str, value: &str) {
        self.out.put(key.as_bytes());
        self.out.put(value.as_bytes());
    }

    fn put(&mut self, key: &str, value: &str, max_chars: usize) {
        if value.is_empty() {
            return;
        }
        self.out.put(key.as_bytes());
        let start = self.out.written().len();
        sanitize_into(self.out, value.as_bytes());
        // Sanitising never adds characters, so a value of at most `max_chars` bytes fits.
        if value.len() > max_chars {
            cut_written(self.out, start, max_chars);
        }
    }

    fn opt(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.put(key, v, MAX_VALUE_CHARS);
        }
    }

    /// The target items joined with `,`, as [`Attrs::put`]: sanitised one by one (`,` needs
    /// nothing, and a CR at the end of an item is followed by `,`, not by LF), then cut.
    fn target(&mut self, key: &str, items: &[String]) {
        let len = items.iter().map(String::len).sum::<usize>() + items.len().saturating_sub(1);
        if len == 0 {
            return;
        }
        self.out.put(key.as_bytes());
        let start = self.out.written().len();
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.out.put(b",");
            }
            sanitize_into(self.out, item.as_bytes());
        }
        if len > MAX_VALUE_CHARS {
            cut_written(self.out, start, MAX_VALUE_CHARS);
        }
    }
}

/// Attribute values: control characters and TAB, the delimiter, and the lead bytes of NEL
/// (0xC2, as the C1 controls) and of U+2028 and U+2029 (0xE2).
static VALUE_MARKS: Marks = Marks::new([DELIMITER as u8, DELIMITER as u8], true, &[0xc2, 0xe2]);

/// The value sanitising of [`sanitize_value`], without the cut.
fn sanitize_into<O: Output + ?Sized>(out: &mut O, v: &[u8]) {
    replace_marked(out, v, &VALUE_MARKS, |v, i| match v[i] {
        // CRLF is one line break.
        b'\r' => Some((b" ", if v.get(i + 1) == Some(&b'\n') { 2 } else { 1 })),
        b'\n' | b'\t' => Some((b" ", 1)),
        b if b == DELIMITER as u8 => Some((b" ", 1)),
        // NEL (U+0085) is a line break; the other C1 controls become U+FFFD.
        0xc2 if v.get(i + 1) == Some(&0x85) => Some((b" ", 2)),
        0xc2 if is_c1(v, i) => Some((REPLACEMENT, 2)),
        0xc2 => None,
        // U+2028 and U+2029.
        0xe2 if matches!(v.get(i + 1..i + 3), Some([0x80, 0xa8 | 0xa9])) => Some((b" ", 3)),
        0xe2 => None,
        _ => Some((REPLACEMENT, 1)),
    });
}

/// Line breaks that some consumer treats as the end of a record.
fn is_line_break(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// Control characters other than the line breaks and tab, which are handled separately.
fn is_bad_control(c: char) -> bool {
    c.is_control() || c == '\u{7f}'
}

/// Appends `value` as an attribute value: the delimiter, tab and line breaks (CRLF counting as
/// one) become a space, other control characters U+FFFD; `=`, `\\` and `|` stay. The result is
/// cut to `max_chars` characters, ending in `...` when cut.
pub fn sanitize_value(out: &mut String, value: &str, max_chars: usize) {
    let mut b = Vec::with_capacity(value.len() + 8);
    sanitize_into(&mut b, value.as_bytes());
    cut_written(&mut b, 0, max_chars);
    // Sanitising replaces whole characters by ASCII or U+FFFD and the cut falls between
    // characters, so the bytes are UTF-8 and nothing is replaced here.
    out.push_str(&String::from_utf8_lossy(&b));
}

/// Appends a header field: `\` → `\\`, `|` → `\|`, line breaks and tab → space, other control
/// characters → U+FFFD, cut to `max_chars` characters (the cut counts the input characters).
pub fn escape_header(out: &mut String, value: &str, max_chars: usize) {
    let mut clean = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            c if c == '\t' || is_line_break(c) => clean.push(' '),
            c if is_bad_control(c) => clean.push('\u{FFFD}'),
            c => clean.push(c),
        }
    }
    let mut cut = String::with_capacity(clean.len());
    push_limited(&mut cut, &clean, max_chars);
    for c in cut.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            c => out.push(c),
        }
    }
}

/// Appends `s`, or its first `max - 3` characters and `...` when it is longer than `max`.
fn push_limited(out: &mut String, s: &str, max: usize) {
    if s.chars().count() <= max {
        out.push_str(s);
        return;
    }
    out.extend(s.chars().take(max.saturating_sub(3)));
    out.push_str("...");
}

/// `MMM dd yyyy HH:mm:ss.SSS GMT` with English month names (Java `SimpleDateFormat` style).
fn format_dev_time(t: OffsetDateTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = crate::event::to_utc(t);
    let month = MONTHS
        .get(usize::from(u8::from(t.month())).saturating_sub(1))
        .copied()
        .unwrap_or("Jan");
    let mut s = String::with_capacity(32);
    let _ = write!(
        s,
        "{month} {:02} {:04} {:02}:{:02}:{:02}.{:03} GMT",
        t.day(),
        t.year(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    );
    s
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

    /// A reference splitter written from the spec alone: six header fields split on `|` (our
    /// header carries no escaped pipes), then the attributes on the delimiter named in the
    /// header, then each pair at its first `=`.
    fn split(line: &str) -> (Vec<&str>, Vec<(&str, &str)>) {
        let fields: Vec<&str> = line.splitn(7, '|').collect();
        assert_eq!(fields.len(), 7, "header of {line:?}");
        assert_eq!(fields[0], "LEEF:2.0");
        assert_eq!(fields[5], "^");
        let attrs = fields[6]
            .split('^')
            .map(|pair| pair.split_once('=').expect("pair has ="))
            .collect();
        (fields[..6].to_vec(), attrs)
    }

    #[test]
    fn the_constant_prefix_is_the_escaped_header() {
        use crate::transform::cef::{PRODUCT, VENDOR};
        let mut h = String::from("LEEF:2.0|");
        escape_header(&mut h, VENDOR, MAX_VALUE_CHARS);
        h.push('|');
        escape_header(&mut h, PRODUCT, MAX_VALUE_CHARS);
        h.push('|');
        escape_header(&mut h, env!("CARGO_PKG_VERSION"), MAX_VALUE_CHARS);
        h.push('|');
        assert_eq!(PREFIX, h);
    }

    #[test]
    fn brute_force_row() {
        let events = fixtures::all();
        let ev = events.iter().find(|e| e.id == 48212).expect("fixture row");
        let expect = format!(
            "LEEF:2.0|ONLYOFFICE|DocSpace|{}|1023|^|devTime=1736945892000^cat=login^sev=7^externalId=48212^action=LoginFailBruteForce^outcome=failure^portal=main^portalHost=docspace.example.com^src=192.0.2.66^usrName=bob@example.com^userDisplayName=bob@example.com^browser=Firefox 133^platform=Ubuntu^url=https://docspace.example.com/login^message=Login Fail. Too many attempts",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(line(ev), expect);
    }

    /// See: issue 17. A cut IPv6 address is kept as `sourceAddress` (`src` is typed), and the
    /// Guest placeholder of a failed login is no `userId`; a real actor's id is.
    #[test]
    fn cut_addresses_are_kept_and_the_guest_is_no_user_id() {
        let ev = fixtures::all()
            .into_iter()
            .find(|e| e.id == 48212)
            .expect("fixture row")
            .with_row_field("ip", serde_json::Value::String("2a02".into()));
        let got = line(&ev);
        let (_, attrs) = split(&got);
        let get = |key: &str| attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        assert_eq!(get("sourceAddress"), Some("2a02"), "{got}");
        assert_eq!(get("src"), None, "{got}");
        assert_eq!(get("userId"), None, "{got}");
        assert_eq!(get("usrName"), Some("bob@example.com"), "{got}");
        let ev = ev.with_row_field("ip", serde_json::Value::String("2001:db8::1".into()));
        let got = line(&ev);
        let (_, attrs) = split(&got);
        let get = |key: &str| attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        assert_eq!(
            (get("src"), get("sourceAddress")),
            (Some("2001:db8::1"), None)
        );
        let ev = ev.with_row_field(
            "userId",
            serde_json::Value::String("9b1e4f7a-2c3d-4e5f-8a6b-7c8d9e0f1a2b".into()),
        );
        let got = line(&ev);
        let (_, attrs) = split(&got);
        let get = |key: &str| attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        assert_eq!(get("userId"), Some("9b1e4f7a-2c3d-4e5f-8a6b-7c8d9e0f1a2b"));
    }

    #[test]
    fn every_fixture_row_splits_into_unique_keys() {
        for ev in fixtures::all() {
            let got = line(&ev);
            let (_, attrs) = split(&got);
            let mut keys: Vec<&str> = attrs.iter().map(|(k, _)| *k).collect();
            let n = keys.len();
            keys.sort_unstable();
            keys.dedup();
            assert_eq!(keys.len(), n, "duplicate key in {got:?}");
            assert!(attrs.iter().all(|(_, v)| !v.is_empty()), "{got:?}");
        }
    }

    #[test]
    fn escaping_table() {
        let value = |input: &str| {
            let mut s = String::new();
            sanitize_value(&mut s, input, MAX_VALUE_CHARS);
            s
        };
        let table: &[(&str, &str)] = &[
            ("a=b", "a=b"),
            ("x usrName=admin", "x usrName=admin"),
            ("c:\\dir\\n", "c:\\dir\\n"),
            ("pipe|ok", "pipe|ok"),
            ("x^sev=10", "x sev=10"),
            ("tab\there", "tab here"),
            ("l1\nl2\r\nl3\rl4", "l1 l2 l3 l4"),
            ("ls\u{2028}ps\u{2029}nel\u{85}", "ls ps nel "),
            (
                "nul\0esc\u{1b}del\u{7f}csi\u{9b}",
                "nul\u{FFFD}esc\u{FFFD}del\u{FFFD}csi\u{FFFD}",
            ),
            ("Zoë ✓", "Zoë ✓"),
        ];
        for (input, expect) in table {
            assert_eq!(value(input), *expect, "value {input:?}");
        }
        let mut h = String::new();
        escape_header(&mut h, "a|b\\c\r\nd^e\0", 255);
        assert_eq!(h, "a\\|b\\\\c  d^e\u{FFFD}");
    }

    #[test]
    fn hostile_login_stays_one_line_and_cannot_forge_keys() {
        let mut ev = fixtures::all()
            .into_iter()
            .find(|e| e.id == 48212)
            .expect("fixture row");
        let prefix = "evil\r\nLEEF:2.0|x|y|1|2|^|sev=10^outcome=success\n|a=b\\c\0d\u{2028}e\r";
        ev = ev.with_row_field(
            "login",
            serde_json::Value::String(format!("{prefix}{}", "A".repeat(10 * 1024))),
        );
        let got = line(&ev);

        assert!(!got.chars().any(|c| c.is_control() || is_line_break(c)));
        assert_eq!(got.lines().count(), 1);

        // The documented sanitised value: CRLF, LF, CR, U+2028 and `^` → space, NUL → U+FFFD,
        // `|`, `=` and `\` kept; cut to 255 characters ending in `...`.
        let clean_prefix = "evil LEEF:2.0|x|y|1|2| |sev=10 outcome=success |a=b\\c\u{FFFD}d e ";
        let mut expect_user: String = clean_prefix
            .chars()
            .chain(std::iter::repeat('A'))
            .take(252)
            .collect();
        expect_user.push_str("...");
        assert_eq!(expect_user.chars().count(), MAX_USER_NAME_CHARS);

        let (header, attrs) = split(&got);
        assert_eq!(header[4], "1023");
        let keys: Vec<&str> = attrs.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "devTime",
                "cat",
                "sev",
                "externalId",
                "action",
                "outcome",
                "portal",
                "portalHost",
                "src",
                "usrName",
                "userDisplayName",
                "browser",
                "platform",
                "url",
                "message",
            ]
        );
        let get = |key: &str| attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
        assert_eq!(get("usrName"), Some(expect_user.as_str()));
        assert_eq!(get("sev"), Some("7"));
        assert_eq!(get("outcome"), Some("failure"));
    }

    #[test]
    fn long_values_are_cut() {
        let mut ev = fixtures::all()[0].clone();
        ev = ev.with_row_field("browser", serde_json::Value::String("B".repeat(5000)));
        let got = line(&ev);
        let (_, attrs) = split(&got);
        let browser = attrs
            .iter()
            .find(|(k, _)| *k == "browser")
            .map(|(_, v)| *v)
            .expect("key present");
        assert_eq!(browser.chars().count(), MAX_VALUE_CHARS);
        assert!(browser.ends_with("..."));
    }

    #[test]
    fn dev_time_outside_the_13_digit_epoch_gets_a_format() {
        let mut ev = fixtures::all()[0].clone();
        ev.time = time::macros::datetime!(1999-12-31 23:59:59.5 UTC);
        let got = line(&ev);
        assert!(
            got.contains(
                "|^|devTime=Dec 31 1999 23:59:59.500 GMT^devTimeFormat=MMM dd yyyy HH:mm:ss.SSS z^cat="
            ),
            "{got}"
        );
        ev.time = time::macros::datetime!(-0001-03-01 00:00 UTC);
        let got = line(&ev);
        assert!(
            got.contains("devTime=Mar 01 -001 00:00:00.000 GMT^"),
            "{got}"
        );
    }

    #[test]
    fn severity_is_clamped_and_ipv6_is_kept() {
        let mut ev = fixtures::all()[0].clone();
        ev = ev.with_row_field("ip", serde_json::Value::String("2001:db8::1".into()));
        let got = line(&ev);
        let (_, attrs) = split(&got);
        assert!(attrs.contains(&("src", "2001:db8::1")));
        let sev: u8 = attrs
            .iter()
            .find(|(k, _)| *k == "sev")
            .and_then(|(_, v)| v.parse().ok())
            .expect("sev");
        assert!((1..=10).contains(&sev));
        ev = ev.with_row_field("ip", serde_json::Value::String("2a02".into()));
        assert!(!line(&ev).contains("^src="));
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
    fn portal_labels_are_custom_keys_with_the_delimiter_sanitised() {
        let ev = labelled();
        let got = line(&ev);
        let (_, attrs) = split(&got);
        assert!(
            attrs.contains(&("labels.customer", "Acme = \\ \"Corp\"  |]")),
            "{got}"
        );
        assert!(attrs.contains(&("labels.customer_id", "42")), "{got}");
    }
}
