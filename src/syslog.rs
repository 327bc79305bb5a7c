//! Syslog formatting (RFC 5424 and RFC 3164), TCP/TLS framing (RFC 6587 / RFC 5425) and
//! fitting an event into a UDP datagram (RFC 5426): pure functions and a `tokio_util` codec,
//! no IO.
//!
//! Why our own and not the `syslog` crate: that crate is blocking, has no TLS, writes TCP
//! messages with no framing at all (two messages run together), stamps "now" instead of the
//! event's own time and does not NIL or bound header fields. See ARCHITECTURE.md.
//!
//! Digits are written directly rather than through `format!`, and a [`Prefix`] holds the part
//! of a sink's header that never changes (host name, APP-NAME, PROCID, MSGID), rendered once,
//! so that a sink can build each record in place.
//!
//! Invariants:
//! - Header fields are PRINTUSASCII (`%d33-126`) and within their RFC 5424 length limits; an
//!   empty field becomes the NILVALUE `-`.
//! - SD-PARAM values escape `"`, `\` and `]`, so no value can close an element early.
//! - The timestamp is the event's own time in UTC, never the time of sending.
//! - Octet counting counts bytes, exactly; newline framing can never be split by the message
//!   because CR/LF in MSG are replaced.
//! - A UDP message over its budget is not cut as bytes but encoded again with its longest
//!   values cut ([`fit_datagram`]): it stays one record its format's parsers read, and says
//!   that it was cut. Only a budget too small for any record of the format cuts bytes.

use bytes::{BufMut, BytesMut};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::event::{Event, TRUNCATED_MARK};
use crate::transform::Format;

/// TCP/TLS framing (RFC 6587).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `LEN SP MSG` (default; the only framing of RFC 5425).
    OctetCounting,
    /// `MSG LF`.
    Newline,
}

/// Syslog header flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rfc {
    /// RFC 5424 (default).
    Rfc5424,
    /// RFC 3164 (BSD), for old receivers.
    Rfc3164,
}

/// The private SD-ID the agent writes (32473 is the documentation PEN of RFC 5612).
pub const SD_ID: &str = "docspace@32473";
/// Appended to a UDP message whose bytes had to be cut to fit a datagram (the last resort of
/// [`fit_datagram`]).
pub const UDP_TRUNCATED_MARK: &str = "...[truncated]";
/// The SD-PARAM a sink adds to the `docspace@32473` element of a message whose values were cut
/// to fit its datagram (RFC 5424; RFC 3164 has no structured data).
pub const SD_TRUNCATED: SdParam<'static> = ("truncated", "true");
/// The SD-ID of the element that carries a portal's labels (RFC 5424), after the
/// `docspace@32473` element: `[labels@32473 customer="acme"]`.
pub const LABELS_SD_ID: &str = "labels@32473";
/// The `tags` entry of an ECS or JSON record whose values were cut to fit its datagram.
pub const TRUNCATED_TAG: &str = "truncated";

/// Parses a facility given by name (`auth`, `local4`) or number (0–23).
pub fn parse_facility(v: &Value) -> Option<u8> {
    if let Some(n) = v.as_u64() {
        return (n <= 23).then_some(n as u8);
    }
    let s = v.as_str()?.trim();
    if let Ok(n) = s.parse::<u8>() {
        return (n <= 23).then_some(n);
    }
    const NAMES: [&str; 16] = [
        "kern",
        "user",
        "mail",
        "daemon",
        "auth",
        "syslog",
        "lpr",
        "news",
        "uucp",
        "cron",
        "authpriv",
        "ftp",
        "ntp",
        "security",
        "console",
        "solaris-cron",
    ];
    if let Some(i) = NAMES.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Some(i as u8);
    }
    if s.eq_ignore_ascii_case("audit") {
        return Some(13);
    }
    let rest = s.strip_prefix("local")?;
    let n: u8 = rest.parse().ok()?;
    (n <= 7).then_some(16 + n)
}

/// Syslog severity for a CEF-style severity 0–10 (formats.md §1.5).
pub fn severity_for(cef_severity: u8) -> u8 {
    match cef_severity {
        0..=3 => 6,
        4..=5 => 5,
        6 => 4,
        7..=8 => 3,
        _ => 2,
    }
}

/// The fixed parts of every header a sink writes.
#[derive(Debug, Clone)]
pub struct Header {
    /// RFC 5424 or 3164.
    pub rfc: Rfc,
    /// Facility 0–23.
    pub facility: u8,
    /// HOSTNAME (sanitised on construction).
    pub hostname: String,
    /// APP-NAME / TAG (sanitised on construction).
    pub app_name: String,
    /// PROCID.
    pub procid: String,
}

impl Header {
    /// Builds a header, sanitising each field to PRINTUSASCII within its length limit.
    pub fn new(rfc: Rfc, facility: u8, hostname: &str, app_name: &str, procid: &str) -> Header {
        Header {
            rfc,
            facility: facility.min(23),
            hostname: printusascii(hostname, 255),
            app_name: printusascii(app_name, 48),
            procid: printusascii(procid, 128),
        }
    }
}

/// The header of every message that one sink writes under one MSGID, with all but PRI and the
/// timestamp rendered once: a sink keeps one per stream instead of formatting the host name,
/// APP-NAME, PROCID and MSGID again for every event.
#[derive(Debug, Clone)]
pub struct Prefix {
    rfc: Rfc,
    facility: u8,
    /// ` HOSTNAME APP-NAME PROCID MSGID ` (RFC 5424) or ` host tag[procid]: ` (RFC 3164).
    fixed: Box<[u8]>,
}

impl Prefix {
    /// Renders the fixed part of `header` with `msgid` (which only RFC 5424 writes).
    pub fn new(header: &Header, msgid: &str) -> Prefix {
        let mut fixed = BytesMut::with_capacity(64);
        put_fixed(&mut fixed, header, msgid);
        Prefix {
            rfc: header.rfc,
            facility: header.facility,
            fixed: fixed.to_vec().into_boxed_slice(),
        }
    }

    /// Appends `<PRI>`, the timestamp and the fixed part. An RFC 5424 message continues with its
    /// STRUCTURED-DATA, an RFC 3164 message with its MSG.
    pub fn write(&self, out: &mut BytesMut, severity: u8, time: OffsetDateTime) {
        put_pri_time(out, self.rfc, self.facility, severity, time);
        out.put_slice(&self.fixed);
    }
}

/// One structured-data parameter.
pub type SdParam<'a> = (&'a str, &'a str);

/// Appends one syslog message (no framing) to `out`.
///
/// `msgid` goes in MSGID (5424) and is ignored by 3164; `sd` becomes one `[docspace@32473 …]`
/// element (5424 only); `msg` is the encoded event.
pub fn format_message(
    out: &mut BytesMut,
    header: &Header,
    severity: u8,
    time: OffsetDateTime,
    msgid: &str,
    sd: &[SdParam<'_>],
    msg: &[u8],
) {
    put_pri_time(out, header.rfc, header.facility, severity, time);
    put_fixed(out, header, msgid);
    match header.rfc {
        Rfc::Rfc5424 => {
            if sd.is_empty() {
                out.put_u8(b'-');
            } else {
                out.put_u8(b'[');
                out.put_slice(SD_ID.as_bytes());
                for (name, value) in sd {
                    out.put_u8(b' ');
                    put_sd_name(out, name);
                    out.put_slice(b"=\"");
                    escape_sd_value(out, value);
                    out.put_u8(b'"');
                }
                out.put_u8(b']');
            }
            if !msg.is_empty() {
                out.put_u8(b' ');
                out.put_slice(msg);
            }
        }
        Rfc::Rfc3164 => out.put_slice(msg),
    }
}

/// `<PRI>1 YYYY-MM-DDTHH:MM:SS.ffffffZ` (RFC 5424, by the agent's one timestamp writer) or
/// `<PRI>Mmm dd HH:MM:SS` (RFC 3164, the day padded with a space), in UTC.
fn put_pri_time(out: &mut BytesMut, rfc: Rfc, facility: u8, severity: u8, time: OffsetDateTime) {
    let pri = u16::from(facility) * 8 + u16::from(severity.min(7));
    out.put_u8(b'<');
    out.put_slice(itoa::Buffer::new().format(pri).as_bytes());
    match rfc {
        Rfc::Rfc5424 => {
            out.put_slice(b">1 ");
            out.put_slice(
                crate::event::timestamp(time, crate::event::Precision::Micros).as_bytes(),
            );
        }
        Rfc::Rfc3164 => {
            const MONTHS: [&[u8; 3]; 12] = [
                b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct",
                b"Nov", b"Dec",
            ];
            let t = crate::event::to_utc(time);
            let (_, month, day) = t.to_calendar_date();
            let (hour, minute, second) = t.to_hms();
            out.put_u8(b'>');
            out.put_slice(MONTHS[usize::from(u8::from(month)) - 1]);
            out.put_u8(b' ');
            if day < 10 {
                out.put_u8(b' ');
                put_digits(out, u32::from(day), 1);
            } else {
                put_digits(out, u32::from(day), 2);
            }
            out.put_u8(b' ');
            put_clock(out, hour, minute, second);
        }
    }
}

/// `HH:MM:SS`.
fn put_clock(out: &mut BytesMut, hour: u8, minute: u8, second: u8) {
    put_digits(out, u32::from(hour), 2);
    out.put_u8(b':');
    put_digits(out, u32::from(minute), 2);
    out.put_u8(b':');
    put_digits(out, u32::from(second), 2);
}

/// The last `width` decimal digits of `v`, zero-padded (callers pass values that fit).
fn put_digits(out: &mut BytesMut, mut v: u32, width: usize) {
    let mut digits = [b'0'; 10];
    for d in digits[..width].iter_mut().rev() {
        // `v % 10` is a single digit.
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.put_slice(&digits[..width]);
}

/// ` HOSTNAME APP-NAME PROCID MSGID ` (RFC 5424) or ` host tag[procid]: ` (RFC 3164).
fn put_fixed(out: &mut BytesMut, header: &Header, msgid: &str) {
    match header.rfc {
        Rfc::Rfc5424 => {
            for field in [&header.hostname, &header.app_name, &header.procid] {
                out.put_u8(b' ');
                out.put_slice(nil(field).as_bytes());
            }
            out.put_u8(b' ');
            let start = out.len();
            out.extend(msgid.bytes().filter(|b| (33..=126).contains(b)).take(32));
            if out.len() == start {
                out.put_u8(b'-');
            }
            out.put_u8(b' ');
        }
        Rfc::Rfc3164 => {
            // RFC 3164 HOSTNAME carries no domain; TAG is alphanumeric-ish, at most 32 chars.
            let host = header.hostname.split('.').next().unwrap_or("-");
            let tag: String = header
                .app_name
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .take(32)
                .collect();
            out.put_u8(b' ');
            out.put_slice(nil(host).as_bytes());
            out.put_u8(b' ');
            out.put_slice(nil(&tag).as_bytes());
            out.put_u8(b'[');
            out.put_slice(header.procid.as_bytes());
            out.put_slice(b"]: ");
        }
    }
}

/// How [`fit_datagram`] made a message fit its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// It fitted as it was.
    Whole,
    /// Values were cut (each ends in [`TRUNCATED_MARK`]), and if that was not enough, whole
    /// row members dropped: still one well-formed record (JSON, CEF or LEEF), and marked (ECS
    /// and JSON carry the `tags` entry [`TRUNCATED_TAG`]).
    Shortened,
    /// Not even the event with every value cut and every member dropped fits (a budget of a few
    /// hundred bytes for ECS): its bytes were cut instead and end in [`UDP_TRUNCATED_MARK`], so
    /// the record is no longer well formed.
    Cut,
}

/// Row members never cut or dropped: the event is decoded again from the cut row, and these
/// identify it and carry its time.
const KEPT: [&str; 3] = ["id", "date", "actionId"];

/// Encodes `ev` in `format` into `out` (cleared first) in at most `budget` bytes.
///
/// A message that does not fit is not cut as bytes, which leaves invalid JSON or a half CEF
/// key behind: the event is encoded again from its row with its longest string values cut to
/// a common length, each ending in [`TRUNCATED_MARK`], the longest length that fits (found by
/// bisection, so a few encodings at most). The encoder then writes a record as well formed as
/// any other (escaping, ECS field types), and ECS and JSON records are tagged
/// [`TRUNCATED_TAG`]. Identifying members (`id`, `date`, `actionId`) are never cut. If the
/// event does not fit even with every value cut, the largest members are dropped; only when
/// even that fails are the bytes cut ([`Fit::Cut`]). `out` never ends longer than `budget`.
pub fn fit_datagram(format: Format, ev: &Event, budget: usize, out: &mut Vec<u8>) -> Fit {
    out.clear();
    crate::transform::encode(format, ev, out);
    if out.len() <= budget {
        return Fit::Whole;
    }
    let mut row = ev.raw_map();
    loop {
        if let Some(fit) = fit_values(format, ev, &row, budget, out) {
            return fit;
        }
        // Not even with every value cut: drop the largest member of the row, and cut the rest
        // again, no shorter than needed.
        let largest = row
            .iter()
            .filter(|(k, _)| !KEPT.contains(&k.as_str()))
            .max_by_key(|(_, v)| v.to_string().len())
            .map(|(k, _)| k.clone());
        let Some(key) = largest else { break };
        row.remove(&key);
    }
    cut_bytes(out, budget);
    Fit::Cut
}

/// [`fit_datagram`] for one row: the longest length its values can keep so that the record
/// fits, found by bisection; `None` when even every value cut to nothing does not fit.
fn fit_values(
    format: Format,
    ev: &Event,
    row: &Map<String, Value>,
    budget: usize,
    out: &mut Vec<u8>,
) -> Option<Fit> {
    let fits_at = |limit: usize, out: &mut Vec<u8>| {
        encode_cut(format, ev, cut_row(row, limit), out);
        out.len() <= budget
    };
    if !fits_at(0, out) {
        return None;
    }
    let longest = row
        .iter()
        .filter(|(k, _)| !KEPT.contains(&k.as_str()))
        .map(|(_, v)| longest_string(v))
        .max()
        .unwrap_or(0);
    // fits_at(lo) holds; fits_at(longest) is not needed: nothing is cut there.
    let (mut lo, mut hi) = (0, longest + 1);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits_at(mid, out) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    if fits_at(lo, out) {
        Some(Fit::Shortened)
    } else {
        // Not reached: the same row encodes the same way. Never send more than the budget.
        cut_bytes(out, budget);
        Some(Fit::Cut)
    }
}

/// Encodes the event decoded again from `row` (with `ev`'s own time, which the source may have
/// corrected), tagging ECS and JSON; the unchanged event when `row` no longer decodes.
fn encode_cut(format: Format, ev: &Event, row: Map<String, Value>, out: &mut Vec<u8>) {
    out.clear();
    match Event::from_json(ev.portal.clone(), Some(ev.stream), Value::Object(row)) {
        Ok(mut cut) => {
            cut.time = ev.time;
            crate::transform::encode(format, &cut, out);
        }
        Err(_) => crate::transform::encode(format, ev, out),
    }
    if matches!(format, Format::Ecs | Format::Json) {
        tag_truncated(out);
    }
}

/// Adds [`TRUNCATED_TAG`] to the `tags` of the JSON object in `doc`: appended as a member when
/// there is none (the encoder's bytes stay as they are), else added to the array (the document
/// written again, with U+0085, U+2028 and U+2029 escaped as `\u` sequences).
fn tag_truncated(doc: &mut Vec<u8>) {
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(doc) else {
        return;
    };
    match map.get_mut("tags") {
        None if doc.last() == Some(&b'}') => {
            doc.pop();
            if !map.is_empty() {
                doc.push(b',');
            }
            doc.extend_from_slice(b"\"tags\":[\"");
            doc.extend_from_slice(TRUNCATED_TAG.as_bytes());
            doc.extend_from_slice(b"\"]}");
            return;
        }
        None => {
            map.insert("tags".to_owned(), Value::from(vec![TRUNCATED_TAG]));
        }
        Some(Value::Array(tags)) => {
            if !tags.iter().any(|t| t == TRUNCATED_TAG) {
                tags.push(Value::from(TRUNCATED_TAG));
            }
        }
        Some(other) => *other = Value::from(vec![other.take(), Value::from(TRUNCATED_TAG)]),
    }
    // A map of values always serialises.
    let text = serde_json::to_string(&map).unwrap_or_default();
    doc.clear();
    for c in text.chars() {
        match c {
            '\u{85}' | '\u{2028}' | '\u{2029}' => {
                doc.extend_from_slice(format!("\\u{:04x}", u32::from(c)).as_bytes());
            }
            c => doc.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
}

/// The most characters of any string in `v`.
fn longest_string(v: &Value) -> usize {
    match v {
        Value::String(s) => s.chars().count(),
        Value::Array(a) => a.iter().map(longest_string).max().unwrap_or(0),
        Value::Object(o) => o.values().map(longest_string).max().unwrap_or(0),
        _ => 0,
    }
}

/// `row` with every string longer than `limit` characters (plus the mark's own length, so a
/// cut never lengthens a value) cut to `limit` and marked; [`KEPT`] members as they are.
fn cut_row(row: &Map<String, Value>, limit: usize) -> Map<String, Value> {
    row.iter()
        .map(|(k, v)| {
            let v = if KEPT.contains(&k.as_str()) {
                v.clone()
            } else {
                cut_value(v, limit)
            };
            (k.clone(), v)
        })
        .collect()
}

fn cut_value(v: &Value, limit: usize) -> Value {
    match v {
        Value::String(s) => match s.char_indices().nth(limit) {
            Some((end, _))
                if s[end..]
                    .chars()
                    .nth(TRUNCATED_MARK.chars().count())
                    .is_some() =>
            {
                Value::String(format!("{}{TRUNCATED_MARK}", &s[..end]))
            }
            _ => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(|x| cut_value(x, limit)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), cut_value(x, limit)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The last resort: cuts `msg` as bytes to fit `budget` with [`UDP_TRUNCATED_MARK`], as
/// [`truncate_for_datagram`] does, and never past `budget` even when the mark alone is longer.
fn cut_bytes(msg: &mut Vec<u8>, budget: usize) {
    truncate_for_datagram(msg, 0, budget);
    msg.truncate(budget);
}

/// Cuts an encoded message so that the whole datagram fits `max` bytes, at a UTF-8 boundary,
/// never leaving a dangling escape backslash, and marks the cut. Returns whether it cut.
pub fn truncate_for_datagram(msg: &mut Vec<u8>, header_len: usize, max: usize) -> bool {
    match datagram_cut(msg, header_len, max) {
        Some(keep) => {
            msg.truncate(keep);
            msg.extend_from_slice(UDP_TRUNCATED_MARK.as_bytes());
            true
        }
        None => false,
    }
}

/// How many bytes of `msg` [`truncate_for_datagram`] keeps before [`UDP_TRUNCATED_MARK`], or
/// `None` when the datagram fits as it is.
pub fn datagram_cut(msg: &[u8], header_len: usize, max: usize) -> Option<usize> {
    if header_len + msg.len() <= max {
        return None;
    }
    let budget = max
        .saturating_sub(header_len)
        .saturating_sub(UDP_TRUNCATED_MARK.len());
    let mut end = budget.min(msg.len());
    // Step back to a char boundary (continuation bytes are 0b10xx_xxxx).
    while end > 0 && (msg[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    // An odd run of trailing backslashes would escape the marker; drop one.
    let trailing = msg[..end].iter().rev().take_while(|b| **b == b'\\').count();
    if trailing % 2 == 1 {
        end -= 1;
    }
    Some(end)
}

fn nil(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

/// Keeps PRINTUSASCII characters, up to `max` of them.
fn printusascii(s: &str, max: usize) -> String {
    s.bytes()
        .filter(|b| (33..=126).contains(b))
        .take(max)
        .map(char::from)
        .collect()
}

/// SD-NAME: PRINTUSASCII except `=`, SP, `]`, `"`; 1–32 chars (`x` when none is left).
fn put_sd_name(out: &mut BytesMut, s: &str) {
    let start = out.len();
    out.extend(
        s.bytes()
            .filter(|b| (33..=126).contains(b) && !matches!(b, b'=' | b']' | b'"'))
            .take(32),
    );
    if out.len() == start {
        out.put_u8(b'x');
    }
}

/// Appends the `[labels@32473 KEY="value" …]` element of a portal's labels, or nothing when it
/// has none. The keys are SD-NAMEs as they are: the config holds them to ASCII letters, digits,
/// `_` and `-`, at most 32 characters; the values are escaped.
pub fn put_labels_sd(out: &mut BytesMut, labels: &[(String, String)]) {
    if labels.is_empty() {
        return;
    }
    out.put_u8(b'[');
    out.put_slice(LABELS_SD_ID.as_bytes());
    for (name, value) in labels {
        out.put_u8(b' ');
        put_sd_name(out, name);
        out.put_slice(b"=\"");
        escape_sd_value(out, value);
        out.put_u8(b'"');
    }
    out.put_u8(b']');
}

/// RFC 5424 §6.3.3: `"`, `\` and `]` must be escaped in PARAM-VALUE.
pub fn escape_sd_value(out: &mut BytesMut, value: &str) {
    let mut rest = value.as_bytes();
    while let Some(i) = rest.iter().position(|b| matches!(b, b'"' | b'\\' | b']')) {
        out.put_slice(&rest[..i]);
        out.put_u8(b'\\');
        out.put_u8(rest[i]);
        rest = &rest[i + 1..];
    }
    out.put_slice(rest);
}

/// RFC 6587 framing as a `tokio_util` encoder: each item is one complete syslog message.
#[derive(Debug, Clone, Copy)]
pub struct FramingCodec(pub Framing);

impl tokio_util::codec::Encoder<bytes::Bytes> for FramingCodec {
    type Error = std::io::Error;

    fn encode(&mut self, msg: bytes::Bytes, dst: &mut BytesMut) -> Result<(), Self::Error> {
        frame(self.0, &msg, dst);
        Ok(())
    }
}

/// Appends one framed message to `dst`.
pub fn frame(framing: Framing, msg: &[u8], dst: &mut BytesMut) {
    match framing {
        Framing::OctetCounting => {
            dst.reserve(msg.len() + 8);
            dst.put_slice(itoa::Buffer::new().format(msg.len()).as_bytes());
            dst.put_u8(b' ');
            dst.put_slice(msg);
        }
        Framing::Newline => {
            dst.reserve(msg.len() + 1);
            for &b in msg {
                dst.put_u8(if b == b'\n' || b == b'\r' { b' ' } else { b });
            }
            dst.put_u8(b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn header(rfc: Rfc) -> Header {
        Header::new(rfc, 10, "agent.example.com", "docspace-siem", "4242")
    }

    fn render(rfc: Rfc, sd: &[SdParam<'_>], msg: &str) -> String {
        let mut out = BytesMut::new();
        format_message(
            &mut out,
            &header(rfc),
            5,
            datetime!(2025-01-15 13:32:07.123456 UTC),
            "login",
            sd,
            msg.as_bytes(),
        );
        String::from_utf8(out.to_vec()).expect("utf8")
    }

    #[test]
    fn rfc5424_layout() {
        let got = render(Rfc::Rfc5424, &[("portal", "main"), ("id", "7")], "CEF:0|x");
        assert_eq!(
            got,
            "<85>1 2025-01-15T13:32:07.123456Z agent.example.com docspace-siem 4242 login [docspace@32473 portal=\"main\" id=\"7\"] CEF:0|x"
        );
        let parsed = syslog_rfc5424::parse_message(&got).expect("parses as RFC 5424");
        assert_eq!(parsed.msgid.as_deref(), Some("login"));
        assert_eq!(parsed.appname.as_deref(), Some("docspace-siem"));
        assert_eq!(parsed.msg, "CEF:0|x");
    }

    #[test]
    fn sd_values_cannot_break_out() {
        let hostile = "a\"] [evil@1 x=\"y\\";
        let got = render(Rfc::Rfc5424, &[("user", hostile)], "m");
        let parsed = syslog_rfc5424::parse_message(&got).expect("parses");
        let sd = parsed.sd.find_tuple(SD_ID, "user").expect("param present");
        assert_eq!(sd, hostile);
        assert_eq!(parsed.sd.len(), 1, "no forged element");
    }

    #[test]
    fn rfc3164_pads_the_day_and_drops_the_domain() {
        let mut out = BytesMut::new();
        format_message(
            &mut out,
            &header(Rfc::Rfc3164),
            6,
            datetime!(2025-01-05 03:04:05 UTC),
            "login",
            &[],
            b"CEF:0|x",
        );
        assert_eq!(
            &out[..],
            b"<86>Jan  5 03:04:05 agent docspace-siem[4242]: CEF:0|x"
        );
    }

    #[test]
    fn header_fields_are_sanitised_and_nil() {
        let h = Header::new(Rfc::Rfc5424, 4, "", "bad name\n", "");
        assert_eq!(h.app_name, "badname");
        let mut out = BytesMut::new();
        format_message(
            &mut out,
            &h,
            6,
            datetime!(2025-01-05 03:04:05 UTC),
            "",
            &[],
            b"",
        );
        assert_eq!(
            &out[..],
            b"<38>1 2025-01-05T03:04:05.000000Z - badname - - -"
        );
    }

    #[test]
    fn framing_counts_bytes_and_newline_cannot_split() {
        let mut dst = BytesMut::new();
        frame(Framing::OctetCounting, "é\nx".as_bytes(), &mut dst);
        assert_eq!(&dst[..], "4 é\nx".as_bytes());
        let mut dst = BytesMut::new();
        frame(Framing::Newline, b"a\nb\rc", &mut dst);
        assert_eq!(&dst[..], b"a b c\n");
    }

    #[test]
    fn datagram_truncation_respects_utf8_and_escapes() {
        let mut m = "é".repeat(20).into_bytes();
        assert!(truncate_for_datagram(
            &mut m,
            0,
            5 + UDP_TRUNCATED_MARK.len()
        ));
        assert!(String::from_utf8(m.clone()).is_ok());
        let mut m = b"abc\\=defghijklmnopqrstuvwxyz".to_vec();
        assert!(truncate_for_datagram(
            &mut m,
            0,
            4 + UDP_TRUNCATED_MARK.len()
        ));
        assert_eq!(m, format!("abc{UDP_TRUNCATED_MARK}").as_bytes());
        let mut short = b"ok".to_vec();
        assert!(!truncate_for_datagram(&mut short, 10, 480));
    }

    #[test]
    fn facilities_by_name_and_number() {
        use serde_json::json;
        assert_eq!(parse_facility(&json!("auth")), Some(4));
        assert_eq!(parse_facility(&json!("authpriv")), Some(10));
        assert_eq!(parse_facility(&json!("local4")), Some(20));
        assert_eq!(parse_facility(&json!(13)), Some(13));
        assert_eq!(parse_facility(&json!("local9")), None);
        assert_eq!(parse_facility(&json!(24)), None);
    }

    /// Fixture events, and the same made long and hostile: every string field of the row a
    /// few hundred to 1,500 characters of `é\r\n=|"]\^` and line separators.
    fn events() -> Vec<Event> {
        let mut v = crate::transform::fixtures::all();
        for base in crate::transform::fixtures::all() {
            let mut ev = base.clone();
            for (key, n) in [
                ("login", 1500),
                ("user", 700),
                ("page", 900),
                ("browser", 300),
                ("platform", 300),
                ("country", 200),
                ("city", 200),
                ("action", 400),
                ("context", 300),
            ] {
                let text: String = "é\r\n=|\"]\\^\u{2028}x".chars().cycle().take(n).collect();
                ev = ev.with_row_field(key, Value::String(text));
            }
            ev.time = base.time + time::Duration::milliseconds(1);
            v.push(ev);
        }
        v
    }

    /// Whether `line` is one CEF record: 7 header fields (`\|` and `\\` escaped), then
    /// ` key=value` pairs with alphanumeric keys and no unescaped `=` in a value.
    fn well_formed_cef(line: &str) -> Result<Vec<(String, String)>, String> {
        if line.contains(['\r', '\n']) {
            return Err("a line break".into());
        }
        let mut fields = 0;
        let mut chars = line.char_indices();
        let mut ext_at = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '|' => {
                    fields += 1;
                    if fields == 7 {
                        ext_at = Some(i + 1);
                        break;
                    }
                }
                _ => {}
            }
        }
        let ext = &line[ext_at.ok_or("fewer than 7 header fields")?..];
        let mut pairs = Vec::new();
        let mut rest = ext;
        while !rest.is_empty() {
            let eq = rest.find('=').ok_or("a key without =")?;
            let key = &rest[..eq];
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!("bad key {key:?}"));
            }
            // The value ends at the next ` key=` whose `=` is not escaped.
            let v = &rest[eq + 1..];
            let mut end = v.len();
            let b = v.as_bytes();
            let mut j = 0;
            while j < b.len() {
                match b[j] {
                    b'\\' => j += 1,
                    b'=' => {
                        let start = v[..j].rfind(' ').ok_or("an unescaped = in a value")?;
                        if !v[start + 1..j].bytes().all(|c| c.is_ascii_alphanumeric()) {
                            return Err(format!("an unescaped = in {v:?}"));
                        }
                        end = start;
                        break;
                    }
                    _ => {}
                }
                j += 1;
            }
            pairs.push((key.to_owned(), v[..end].to_owned()));
            rest = v[end..].strip_prefix(' ').unwrap_or(&v[end..]);
        }
        Ok(pairs)
    }

    /// Whether `line` is one LEEF 2.0 record: 6 header fields with `^` as the delimiter, then
    /// `key=value` attributes split on `^`.
    fn well_formed_leef(line: &str) -> Result<Vec<(String, String)>, String> {
        if line.contains(['\r', '\n', '\u{2028}', '\u{2029}', '\u{85}']) {
            return Err("a line break".into());
        }
        let parts: Vec<&str> = line.splitn(7, '|').collect();
        if parts.len() != 7 || parts[0] != "LEEF:2.0" || parts[5] != "^" {
            return Err(format!("header {parts:?}"));
        }
        parts[6]
            .split('^')
            .map(|kv| {
                let (k, v) = kv.split_once('=').ok_or(format!("no = in {kv:?}"))?;
                if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(format!("bad key {k:?}"));
                }
                Ok((k.to_owned(), v.to_owned()))
            })
            .collect()
    }

    /// See: issue 17. ECS over UDP cut at `max_datagram` was invalid JSON (13 of 2,150 records
    /// unparsable). Whatever the budget a record can fit in, it fits and stays one well-formed
    /// record of its format: the longest values cut and marked, ECS and JSON tagged, the id
    /// kept.
    #[test]
    fn fitted_records_stay_well_formed_within_their_budget() {
        let mut shortened = [0; 5];
        for ev in events() {
            for (k, format) in [
                Format::Ecs,
                Format::Json,
                Format::Cef,
                Format::Leef,
                Format::Ocsf,
            ]
            .into_iter()
            .enumerate()
            {
                let mut whole = Vec::new();
                crate::transform::encode(format, &ev, &mut whole);
                for budget in [1200, 1500, 2048, 4096, 65_507] {
                    let mut out = Vec::new();
                    let fit = fit_datagram(format, &ev, budget, &mut out);
                    let what = format!("{format:?} event {} budget {budget}: {fit:?}", ev.id);
                    assert!(out.len() <= budget, "{what}: {} bytes", out.len());
                    if whole.len() <= budget {
                        assert_eq!(fit, Fit::Whole, "{what}");
                        assert_eq!(out, whole, "{what}");
                        continue;
                    }
                    assert_eq!(fit, Fit::Shortened, "{what}");
                    shortened[k] += 1;
                    let text = std::str::from_utf8(&out).expect("UTF-8");
                    // Cutting every value suffices for the long rows from 2 KiB on (below, the
                    // largest members may go instead, leaving the tag and the SD mark).
                    if budget >= 2048 && ev.login().is_some_and(|l| l.len() > 1000) {
                        assert!(
                            text.contains(TRUNCATED_MARK),
                            "{what}: no value marked\n{text}"
                        );
                    }
                    let id = ev.id.to_string();
                    match format {
                        Format::Ecs | Format::Json => {
                            let doc: Value = serde_json::from_str(text)
                                .unwrap_or_else(|e| panic!("{what}: {e}\n{text}"));
                            assert!(
                                doc["tags"]
                                    .as_array()
                                    .is_some_and(|t| t.iter().any(|t| t == TRUNCATED_TAG)),
                                "{what}: tags {}",
                                doc["tags"]
                            );
                            let got = if format == Format::Ecs {
                                doc["event"]["id"].as_str().map(str::to_owned)
                            } else {
                                doc["id"].as_i64().map(|i| i.to_string())
                            };
                            assert_eq!(got.as_deref(), Some(id.as_str()), "{what}");
                        }
                        Format::Cef => {
                            let pairs = well_formed_cef(text)
                                .unwrap_or_else(|e| panic!("{what}: {e}\n{text}"));
                            assert!(pairs.contains(&("externalId".into(), id.clone())), "{what}");
                        }
                        Format::Leef => {
                            let pairs = well_formed_leef(text)
                                .unwrap_or_else(|e| panic!("{what}: {e}\n{text}"));
                            assert!(pairs.contains(&("externalId".into(), id.clone())), "{what}");
                        }
                        // OCSF has no top-level `tags`: the marks in the cut values tell.
                        Format::Ocsf => {
                            let doc: Value = serde_json::from_str(text)
                                .unwrap_or_else(|e| panic!("{what}: {e}\n{text}"));
                            assert_eq!(doc["metadata"]["uid"], id.as_str(), "{what}");
                        }
                    }
                    // The longest length that fits: one character more for every cut value
                    // would not (bisection), so nothing was cut harder than needed by more
                    // than the marks.
                    assert!(
                        out.len() + 200 > budget,
                        "{what}: {} of {budget} bytes",
                        out.len()
                    );
                }
            }
        }
        assert!(shortened.iter().all(|n| *n > 0), "{shortened:?}");
    }

    #[test]
    fn a_budget_too_small_for_any_record_cuts_bytes_and_stays_within_it() {
        let ev = &events()[0];
        for budget in [0, 5, 40, 120] {
            let mut out = Vec::new();
            assert_eq!(fit_datagram(Format::Ecs, ev, budget, &mut out), Fit::Cut);
            assert!(out.len() <= budget, "{budget}: {}", out.len());
            assert!(std::str::from_utf8(&out).is_ok());
        }
    }

    #[test]
    fn the_truncated_tag_joins_existing_tags_and_line_separators_stay_escaped() {
        let tag = |doc: &str| {
            let mut d = doc.as_bytes().to_vec();
            tag_truncated(&mut d);
            String::from_utf8(d).expect("utf8")
        };
        assert_eq!(tag("{}"), r#"{"tags":["truncated"]}"#);
        assert_eq!(tag(r#"{"a":1}"#), r#"{"a":1,"tags":["truncated"]}"#);
        assert_eq!(tag(r#"{"tags":["x"]}"#), r#"{"tags":["x","truncated"]}"#);
        assert_eq!(
            tag(r#"{"tags":["truncated"]}"#),
            r#"{"tags":["truncated"]}"#
        );
        assert_eq!(
            tag(r#"{"tags":"x","u":"\u2028\u2029\u0085"}"#),
            r#"{"tags":["x","truncated"],"u":"\u2028\u2029\u0085"}"#
        );
        assert_eq!(tag("[1]"), "[1]", "not an object: left as it is");
    }

    #[test]
    fn portal_labels_are_a_second_sd_element_that_strict_parsers_read() {
        let labels = [
            ("customer".to_owned(), "Acme \"Corp\" ] \\ x".to_owned()),
            ("customer_id".to_owned(), "42".to_owned()),
        ];
        let mut out = BytesMut::new();
        let time = datetime!(2025-01-15 13:32:07.123456 UTC);
        format_message(
            &mut out,
            &header(Rfc::Rfc5424),
            5,
            time,
            "login",
            &[("portal", "acme")],
            b"",
        );
        put_labels_sd(&mut out, &labels);
        out.put_slice(b" CEF:0|x");
        let text = std::str::from_utf8(&out).expect("UTF-8");
        assert!(
            text.ends_with(
                "[docspace@32473 portal=\"acme\"][labels@32473 customer=\"Acme \\\"Corp\\\" \\] \\\\ x\" customer_id=\"42\"] CEF:0|x"
            ),
            "{text}"
        );
        let parsed = syslog_rfc5424::parse_message(text).expect("RFC 5424");
        let got = parsed.sd.find_sdid(LABELS_SD_ID).expect("labels element");
        assert_eq!(
            got.get("customer").map(String::as_str),
            Some("Acme \"Corp\" ] \\ x")
        );
        assert_eq!(got.get("customer_id").map(String::as_str), Some("42"));
        assert_eq!(parsed.msg, "CEF:0|x");
        let mut none = BytesMut::new();
        put_labels_sd(&mut none, &[]);
        assert!(none.is_empty());
    }
}
