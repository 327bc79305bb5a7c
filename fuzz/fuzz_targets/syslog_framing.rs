//! Fuzz target `syslog_framing`: arbitrary messages → `syslog::frame`, `format_message` and
//! `truncate_for_datagram`.
//!
//! Input: two bytes of datagram budget, then messages separated by 0xFF (a byte UTF-8 never
//! uses). Empty messages are skipped: the sinks never frame one (a message always has a
//! header), and RFC 6587's MSG-LEN is NONZERO-DIGIT *DIGIT, so `0 ` is not a valid frame.
//!
//! Checked:
//! - octet counting: the stream of all frames splits back (strict RFC 6587 splitter) into
//!   exactly the messages sent, byte for byte, whatever they hold (LF, CR, digits, spaces);
//! - newline framing: each message is exactly one line, CR and LF inside replaced by a space;
//! - RFC 5424 (UTF-8 messages): with the message as SD value, MSGID, HOSTNAME and MSG, the
//!   result parses with `syslog_rfc5424` as one message with one SD element, the SD value and
//!   MSG exact, the header fields PRINTUSASCII;
//! - UDP truncation: valid UTF-8, within the budget, a prefix of the message plus the marker, an
//!   even run of backslashes before the marker, and never more than 4 bytes below the budget.

#![no_main]

use bytes::BytesMut;
use docspace_siem::config::{Framing, Rfc};
use docspace_siem::syslog::{self, Header, SD_ID, UDP_TRUNCATED_MARK};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let budget = usize::from(u16::from_le_bytes([data[0], data[1]]));
    let messages: Vec<&[u8]> = data[2..]
        .split(|b| *b == 0xFF)
        .filter(|m| !m.is_empty())
        .collect();

    // Octet counting.
    let mut stream = BytesMut::new();
    for m in &messages {
        syslog::frame(Framing::OctetCounting, m, &mut stream);
    }
    let split = split_octet_counted(&stream).expect("the octet-counted stream splits");
    assert_eq!(split, messages, "octet counting gives back the messages");

    // Newline framing.
    for m in &messages {
        let mut line = BytesMut::new();
        syslog::frame(Framing::Newline, m, &mut line);
        let (last, body) = line.split_last().expect("a framed message is not empty");
        assert_eq!(*last, b'\n');
        assert!(
            !body.contains(&b'\n') && !body.contains(&b'\r'),
            "LF inside a line"
        );
        assert_eq!(body.len(), m.len());
        for (got, sent) in body.iter().zip(m.iter()) {
            let want = if matches!(*sent, b'\n' | b'\r') {
                b' '
            } else {
                *sent
            };
            assert_eq!(*got, want);
        }
    }

    for m in &messages {
        let Ok(text) = std::str::from_utf8(m) else {
            continue;
        };
        rfc5424(text);
        truncation(m, budget);
    }
});

fn rfc5424(text: &str) {
    let header = Header::new(Rfc::Rfc5424, 4, text, text, text);
    let mut out = BytesMut::new();
    let sd = [("portal", "main"), ("login", text)];
    let time = time_of_day();
    syslog::format_message(&mut out, &header, 5, time, text, &sd, text.as_bytes());
    let line = std::str::from_utf8(&out).expect("UTF-8 in, UTF-8 out");
    let parsed = syslog_rfc5424::parse_message(line)
        .unwrap_or_else(|e| panic!("RFC 5424 does not parse ({e}): {line:?}"));
    assert_eq!(parsed.sd.len(), 1, "one SD element: {line:?}");
    assert_eq!(
        parsed.sd.find_tuple(SD_ID, "login").map(String::as_str),
        Some(text)
    );
    assert_eq!(
        parsed.sd.find_tuple(SD_ID, "portal").map(String::as_str),
        Some("main")
    );
    assert_eq!(parsed.msg, text, "MSG: {line:?}");
    for field in [&parsed.hostname, &parsed.appname, &parsed.msgid] {
        if let Some(f) = field {
            assert!(
                f.bytes().all(|b| (33..=126).contains(&b)),
                "{f:?} in {line:?}"
            );
        }
    }
}

fn truncation(msg: &[u8], budget: usize) {
    let header_len = budget % 512;
    let max = header_len + UDP_TRUNCATED_MARK.len() + budget % (msg.len() + 20);
    let slack = max - header_len - UDP_TRUNCATED_MARK.len();
    let mut m = msg.to_vec();
    let cut = syslog::truncate_for_datagram(&mut m, header_len, max);
    assert_eq!(cut, header_len + msg.len() > max);
    assert!(
        std::str::from_utf8(&m).is_ok(),
        "invalid UTF-8 after the cut"
    );
    if !cut {
        assert_eq!(m, msg);
        return;
    }
    assert!(header_len + m.len() <= max, "over budget");
    let kept = m
        .strip_suffix(UDP_TRUNCATED_MARK.as_bytes())
        .expect("a cut message ends in the marker");
    assert!(msg.starts_with(kept), "the kept part is a prefix");
    let backslashes = kept.iter().rev().take_while(|b| **b == b'\\').count();
    assert_eq!(
        backslashes % 2,
        0,
        "an escaping backslash before the marker"
    );
    assert!(
        kept.len() + 4 >= slack.min(msg.len()),
        "cut more than needed"
    );
}

fn time_of_day() -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(1_736_945_892).expect("a valid instant")
}

/// RFC 6587 §3.4.1: `MSG-LEN SP MSG`, MSG-LEN = NONZERO-DIGIT *DIGIT.
fn split_octet_counted(mut buf: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let sp = buf
            .iter()
            .position(|b| *b == b' ')
            .ok_or("no SP after MSG-LEN")?;
        let digits = &buf[..sp];
        if digits.is_empty()
            || digits[0] == b'0'
            || digits.len() > 9
            || !digits.iter().all(u8::is_ascii_digit)
        {
            return Err(format!("bad MSG-LEN {digits:?}"));
        }
        let len: usize = std::str::from_utf8(digits)
            .map_err(|e| e.to_string())?
            .parse()
            .map_err(|e: std::num::ParseIntError| e.to_string())?;
        let rest = &buf[sp + 1..];
        if rest.len() < len {
            return Err(format!("MSG-LEN {len} but {} bytes left", rest.len()));
        }
        out.push(&rest[..len]);
        buf = &rest[len..];
    }
    Ok(out)
}
