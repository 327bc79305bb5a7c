//! Dates in and timestamps out: DocSpace's `date` texts parsed into UTC instants, and the one
//! writer of timestamps ([`timestamp`]) that every RFC 3339 text the agent writes goes through
//! (ECS `@timestamp`, the RFC 5424 header, cursors, alerts, the API's `from`/`to`, the logs).

use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Parses a DocSpace `date` (RFC 3339 with any fraction length, `Z` or an offset) into UTC.
/// Total: anything else, including an instant outside the years 0000–9999 in UTC, is an error
/// that names the problem.
pub fn parse_date(s: &str) -> Result<OffsetDateTime, String> {
    parse_date_keep_offset(s).map(to_utc)
}

/// Parses a DocSpace `date`, keeping the portal's offset. The instant must lie within the
/// years 0000–9999 in UTC, where every format can write it (RFC 3339, syslog, ECS, LEEF): a
/// date at the edge of the calendar with an offset that carries it past (such as
/// `9999-12-31T23:59:59-01:00`) is refused here rather than written as a year no SIEM reads.
pub(super) fn parse_date_keep_offset(s: &str) -> Result<OffsetDateTime, String> {
    let t = s.trim();
    let d = match parse_date_fast(t.as_bytes()) {
        Some(d) => d,
        None => OffsetDateTime::parse(t, &Rfc3339)
            .map_err(|e| format!("{s:?} is not an RFC 3339 date-time with an offset ({e})"))?,
    };
    match d.checked_to_offset(UtcOffset::UTC) {
        Some(u) if (0..=9999).contains(&u.year()) => Ok(d),
        _ => Err(format!(
            "{s:?} lies outside the years 0000-9999 once in UTC, which no timestamp format can write"
        )),
    }
}

/// `t` in UTC, for the writers of timestamps: the identity for an event's time (UTC by
/// construction), and total for any other instant (one with no UTC form in range is written
/// as the nearest one that has).
pub fn to_utc(t: OffsetDateTime) -> OffsetDateTime {
    t.checked_to_offset(UtcOffset::UTC).unwrap_or_else(|| {
        if t.year() > 0 {
            time::PrimitiveDateTime::MAX.assume_utc()
        } else {
            time::PrimitiveDateTime::MIN.assume_utc()
        }
    })
}

/// The shape DocSpace writes, `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±hh:mm)`, parsed by hand;
/// `None` for anything else (then the general RFC 3339 parser decides, and names the problem).
fn parse_date_fast(b: &[u8]) -> Option<OffsetDateTime> {
    fn num(b: &[u8]) -> Option<u32> {
        let mut n = 0u32;
        for &c in b {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u32::from(c - b'0');
        }
        Some(n)
    }
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = num(&b[0..4])? as i32;
    let month = time::Month::try_from(num(&b[5..7])? as u8).ok()?;
    let day = num(&b[8..10])? as u8;
    let (hour, minute, second) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    let mut i = 19;
    let mut nanos = 0u32;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..9 {
            nanos *= 10;
        }
    }
    let offset = match &b[i..] {
        [b'Z' | b'z'] => UtcOffset::UTC,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = num(&[*h1, *h2])? as i8;
            let m = num(&[*m1, *m2])? as i8;
            let (h, m) = if *sign == b'-' { (-h, -m) } else { (h, m) };
            UtcOffset::from_hms(h, m, 0).ok()?
        }
        _ => return None,
    };
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let tod = time::Time::from_hms_nano(hour as u8, minute as u8, second as u8, nanos).ok()?;
    Some(time::PrimitiveDateTime::new(date, tod).assume_offset(offset))
}

/// How much of the second a timestamp carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// `…:SSZ`: whole seconds, as the DocSpace API wants `from`/`to`.
    Seconds,
    /// `…:SS.mmmZ`: ECS `@timestamp`, cursors, alerts.
    Millis,
    /// `…:SS.ffffffZ`: the RFC 5424 header (TIME-SECFRAC holds at most six digits).
    Micros,
}

/// A timestamp as [`timestamp`] writes it: ASCII text held inline, so that the encoders' hot
/// path writes one without allocating.
#[derive(Clone, Copy)]
pub struct Timestamp {
    buf: [u8; Timestamp::CAP],
    len: usize,
}

impl Timestamp {
    /// Room for the longest text: a sign and ten digits of year, then
    /// `-MM-DDTHH:MM:SS.ffffffZ`.
    const CAP: usize = 40;

    /// The text's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever pushed.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    fn put(&mut self, bytes: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.len..self.len + bytes.len()) {
            dst.copy_from_slice(bytes);
            self.len += bytes.len();
        }
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    /// `v` in decimal, zero-padded to `width` digits (more when `v` needs them, as `{:0w}`).
    fn digits(&mut self, mut v: u32, width: usize) {
        let mut tmp = [b'0'; 10];
        let mut n = 0;
        for d in tmp.iter_mut() {
            if v == 0 && n >= width {
                break;
            }
            // `v % 10` is a single digit.
            *d = b'0' + (v % 10) as u8;
            v /= 10;
            n += 1;
        }
        for &d in tmp[..n].iter().rev() {
            self.push(d);
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The one writer of timestamps: `t` in UTC (see [`to_utc`]) as RFC 3339,
/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, the fraction cut (towards the past) to `precision`.
/// A year outside 0000–9999 (an instant built in code: a decoded date never has one) is
/// written as `{:04}` writes it, with a sign or a fifth digit, so that the writer is total.
#[inline]
pub fn timestamp(t: OffsetDateTime, precision: Precision) -> Timestamp {
    let t = to_utc(t);
    let (year, month, day) = t.to_calendar_date();
    let (hour, minute, second, nano) = t.to_hms_nano();
    let mut w = Timestamp {
        buf: [0; Timestamp::CAP],
        len: 0,
    };
    let (month, day, hour, minute, second) = (
        u32::from(u8::from(month)),
        u32::from(day),
        u32::from(hour),
        u32::from(minute),
        u32::from(second),
    );
    if let (Ok(y @ 0..=9999), Some(head)) = (u32::try_from(year), w.buf.get_mut(..19)) {
        // Every timestamp the encoders write takes this path, once or more per event: fixed
        // widths written in one go, not digit by digit.
        let d = |v: u32| b'0' + (v % 10) as u8;
        head.copy_from_slice(&[
            d(y / 1000),
            d(y / 100),
            d(y / 10),
            d(y),
            b'-',
            d(month / 10),
            d(month),
            b'-',
            d(day / 10),
            d(day),
            b'T',
            d(hour / 10),
            d(hour),
            b':',
            d(minute / 10),
            d(minute),
            b':',
            d(second / 10),
            d(second),
        ]);
        w.len = 19;
    } else {
        if year < 0 {
            w.push(b'-');
            w.digits(year.unsigned_abs(), 3);
        } else {
            w.digits(year.unsigned_abs(), 4);
        }
        w.push(b'-');
        w.digits(month, 2);
        w.push(b'-');
        w.digits(day, 2);
        w.push(b'T');
        w.digits(hour, 2);
        w.push(b':');
        w.digits(minute, 2);
        w.push(b':');
        w.digits(second, 2);
    }
    match precision {
        Precision::Seconds => {}
        Precision::Millis => {
            let ms = nano / 1_000_000;
            let d = |v: u32| b'0' + (v % 10) as u8;
            w.put(&[b'.', d(ms / 100), d(ms / 10), d(ms)]);
        }
        Precision::Micros => {
            w.push(b'.');
            w.digits(nano / 1_000, 6);
        }
    }
    w.push(b'Z');
    w
}

/// Formats an instant in UTC as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_utc_millis(t: OffsetDateTime) -> String {
    timestamp(t, Precision::Millis).as_str().to_owned()
}

/// Appends an instant in UTC as `YYYY-MM-DDTHH:MM:SS.mmmZ` (as [`format_utc_millis`], without
/// allocating).
pub fn write_utc_millis(out: &mut Vec<u8>, t: OffsetDateTime) {
    out.extend_from_slice(timestamp(t, Precision::Millis).as_bytes());
}

/// Formats an instant in UTC as `YYYY-MM-DDTHH:MM:SSZ` (whole seconds, as the API wants
/// `from`/`to`).
pub fn format_utc_seconds(t: OffsetDateTime) -> String {
    timestamp(t, Precision::Seconds).as_str().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, PortalInfo, decoders_agree, row_id_and_date};
    use std::sync::Arc;

    fn portal() -> Arc<PortalInfo> {
        Arc::new(PortalInfo::new("main", "https://docspace.example.com"))
    }

    #[test]
    fn dates_with_offsets_become_utc() {
        let cases = [
            (
                "2025-01-15T14:32:07.0000000+01:00",
                "2025-01-15T13:32:07.000Z",
            ),
            ("2025-07-01T08:00:00.0000000Z", "2025-07-01T08:00:00.000Z"),
            (
                "2025-03-30T03:30:00.0000000+02:00",
                "2025-03-30T01:30:00.000Z",
            ),
            (
                "2025-07-01T08:00:00.1234567+05:45",
                "2025-07-01T02:15:00.123Z",
            ),
            ("2025-07-01T08:00:00-03:30", "2025-07-01T11:30:00.000Z"),
        ];
        for (input, expect) in cases {
            let t = parse_date(input).expect(input);
            assert_eq!(format_utc_millis(t), expect, "{input}");
            let mut w = Vec::new();
            write_utc_millis(&mut w, t);
            assert_eq!(String::from_utf8(w).expect("ascii"), expect, "{input}");
        }
        assert!(parse_date("2025-07-01T08:00:00").is_err());
        assert!(parse_date("2025-07-01T08:00:00.Z").is_err());
        assert!(parse_date("2025-02-30T08:00:00Z").is_err());
        assert!(parse_date("2025-07-01T24:00:00Z").is_err());
        assert!(parse_date("2025-07-01T08:00:00+5:45").is_err());
        assert!(parse_date("yesterday").is_err());
    }

    /// See: issue 15 (`encode` exited 101 on `9999-12-31T23:59:59.0000000-01:00`). A date whose
    /// instant falls outside the years 0000–9999 in UTC is an error naming the problem, by both
    /// decoders and every date reader; the edges inside are events every encoder writes.
    #[test]
    fn dates_at_the_edge_of_the_calendar_are_errors_not_panics() {
        let outside = [
            "9999-12-31T23:59:59.0000000-01:00",
            "9999-12-31T23:59:30-00:01",
            "9999-12-31T23:59:59.9999999-23:59",
            "0000-01-01T00:00:00.0000000+14:00",
            "0000-01-01T00:00:00+00:01",
            "0000-01-01T00:00:00.0000000+23:59",
            "0000-01-01t00:00:00.5+01:00",
        ];
        for s in outside {
            let e = parse_date(s).expect_err(s);
            assert!(e.contains("outside the years 0000-9999"), "{s}: {e}");
            let row = format!(r#"{{"id":1,"date":"{s}","actionId":1000}}"#);
            let e = Event::from_row_text(portal(), None, &row).expect_err(s);
            assert!(e.to_string().contains("`date`"), "{s}: {e}");
            assert_eq!(decoders_agree(&row), Ok(()), "{s}");
            assert_eq!(row_id_and_date(&row), (Some(1), None), "{s}");
        }
        let inside = [
            ("9999-12-31T23:59:59.9999999Z", "9999-12-31T23:59:59.999Z"),
            (
                "9999-12-31T23:59:59.0000000+14:00",
                "9999-12-31T09:59:59.000Z",
            ),
            ("0000-01-01T00:00:00.0000000Z", "0000-01-01T00:00:00.000Z"),
            (
                "0000-01-01T00:00:00.0000000-14:00",
                "0000-01-01T14:00:00.000Z",
            ),
            ("0000-03-01T00:00:00+01:00", "0000-02-29T23:00:00.000Z"),
        ];
        for (s, utc) in inside {
            let row = format!(r#"{{"id":1,"date":"{s}","actionId":1000}}"#);
            let ev = Event::from_row_text(portal(), None, &row).expect(s);
            assert_eq!(ev.time_rfc3339(), utc, "{s}");
            assert_eq!(decoders_agree(&row), Ok(()), "{s}");
            for format in [
                crate::transform::Format::Ecs,
                crate::transform::Format::Cef,
                crate::transform::Format::Leef,
                crate::transform::Format::Json,
            ] {
                let mut out = Vec::new();
                crate::transform::encode(format, &ev, &mut out);
                assert!(!out.is_empty(), "{s} {format:?}");
            }
        }
        // Every writer is total, even for an instant that is not in UTC and has none there.
        let far = time::PrimitiveDateTime::MAX.assume_offset(time::macros::offset!(-1));
        assert_eq!(format_utc_millis(far), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_utc_seconds(far), "9999-12-31T23:59:59Z");
        let near = time::PrimitiveDateTime::MIN.assume_offset(time::macros::offset!(+1));
        let mut w = Vec::new();
        write_utc_millis(&mut w, near);
        assert_eq!(w, b"-9999-01-01T00:00:00.000Z");
    }

    /// The hand parser agrees with the general RFC 3339 parser on every shape it accepts.
    #[test]
    fn the_fast_date_parser_agrees_with_rfc3339() {
        for s in [
            "2025-01-15T14:32:07.0000000+01:00",
            "2025-01-15T14:32:07.1234567+05:45",
            "2025-01-15T14:32:07.9999999999-03:30",
            "2025-01-15t14:32:07z",
            "2024-02-29T23:59:59.5Z",
            "1999-12-31T00:00:00-00:00",
            "2025-07-01T08:00:00.123+14:00",
        ] {
            let fast = parse_date_fast(s.as_bytes()).expect(s);
            let slow = OffsetDateTime::parse(s, &Rfc3339).expect(s);
            assert_eq!(fast, slow, "{s}");
            assert_eq!(fast.offset(), slow.offset(), "{s}");
        }
    }

    /// The one writer writes, at each precision, what the five writers it replaced wrote: the
    /// `format!` of each field (the year as `{:04}`, with a sign or a fifth digit outside
    /// 0000-9999), in UTC.
    #[test]
    fn the_timestamp_writer_writes_what_format_writes() {
        use time::macros::datetime;
        let by_format = |t: OffsetDateTime, precision: Precision| {
            let t = to_utc(t);
            let fraction = match precision {
                Precision::Seconds => String::new(),
                Precision::Millis => format!(".{:03}", t.millisecond()),
                Precision::Micros => format!(".{:06}", t.microsecond()),
            };
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        };
        let mut instants = vec![
            datetime!(2025-01-15 14:32:07.123_456_789 +01:00),
            datetime!(0000-01-01 00:00:00 UTC),
            datetime!(0009-02-03 04:05:06.000_001 UTC),
            datetime!(9999-12-31 23:59:59.999_999_999 UTC),
            datetime!(-0005-06-07 08:09:10.5 UTC),
            datetime!(-0123-06-07 08:09:10 UTC),
            time::PrimitiveDateTime::MIN.assume_utc(),
            time::PrimitiveDateTime::MAX.assume_offset(time::macros::offset!(-1)),
            time::PrimitiveDateTime::MIN.assume_offset(time::macros::offset!(+1)),
        ];
        // A spread over the calendar, each with a fraction of its own.
        let mut x: i64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let secs = x.rem_euclid(253_402_300_800 + 62_167_219_200) - 62_167_219_200;
            let nanos = i128::from(x.rem_euclid(1_000_000_000));
            let t =
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(secs) * 1_000_000_000 + nanos)
                    .expect("in range");
            instants.push(t);
        }
        for t in instants {
            for precision in [Precision::Seconds, Precision::Millis, Precision::Micros] {
                assert_eq!(
                    timestamp(t, precision).as_str(),
                    by_format(t, precision),
                    "{t}"
                );
            }
            assert_eq!(format_utc_millis(t), by_format(t, Precision::Millis));
            assert_eq!(format_utc_seconds(t), by_format(t, Precision::Seconds));
            let mut w = Vec::new();
            write_utc_millis(&mut w, t);
            assert_eq!(w, by_format(t, Precision::Millis).as_bytes());
        }
    }
}
