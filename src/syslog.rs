//! Syslog formatting (RFC 5424 and RFC 3164) and TCP/TLS framing (RFC 6587 / RFC 5425): pure
//! functions and a `tokio_util` codec, no IO.
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

use bytes::{BufMut, BytesMut};
use serde_json::Value;
use time::OffsetDateTime;

use crate::config::{Framing, Rfc};

/// The private SD-ID the agent writes (32473 is the documentation PEN of RFC 5612).
pub const SD_ID: &str = "docspace@32473";
/// Appended to a UDP message cut to fit a datagram.
pub const UDP_TRUNCATED_MARK: &str = "...[truncated]";

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

/// `<PRI>1 YYYY-MM-DDTHH:MM:SS.ffffffZ` (RFC 5424) or `<PRI>Mmm dd HH:MM:SS` (RFC 3164, the day
/// padded with a space), in UTC, digits written directly.
fn put_pri_time(out: &mut BytesMut, rfc: Rfc, facility: u8, severity: u8, time: OffsetDateTime) {
    let pri = u16::from(facility) * 8 + u16::from(severity.min(7));
    let t = crate::event::to_utc(time);
    let (year, month, day) = t.to_calendar_date();
    let (hour, minute, second, micro) = t.to_hms_micro();
    out.put_u8(b'<');
    out.put_slice(itoa::Buffer::new().format(pri).as_bytes());
    match rfc {
        Rfc::Rfc5424 => {
            out.put_slice(b">1 ");
            if (0..=9999).contains(&year) {
                put_digits(out, year.unsigned_abs(), 4);
            } else {
                // Outside four digits, as `{:04}` writes it (a sign, or a fifth digit).
                out.put_slice(format!("{year:04}").as_bytes());
            }
            out.put_u8(b'-');
            put_digits(out, u32::from(u8::from(month)), 2);
            out.put_u8(b'-');
            put_digits(out, u32::from(day), 2);
            out.put_u8(b'T');
            put_clock(out, hour, minute, second);
            out.put_u8(b'.');
            put_digits(out, micro, 6);
            out.put_u8(b'Z');
        }
        Rfc::Rfc3164 => {
            const MONTHS: [&[u8; 3]; 12] = [
                b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct",
                b"Nov", b"Dec",
            ];
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
}
