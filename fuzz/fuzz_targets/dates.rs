//! Fuzz target `dates`: any bytes → the DocSpace date parser, and every encoder and the alert
//! renderer over rows carrying those dates (issue 15: `9999-12-31T23:59:59.0000000-01:00`
//! panicked the decoder).
//!
//! Input: one or two date texts separated by 0xFF (a byte UTF-8 never uses), read lossily.
//!
//! Checked, without a panic anywhere:
//! - `parse_date` either fails or gives a UTC instant within the years 0000–9999, whose
//!   `format_utc_millis` / `format_utc_seconds` text parses back to that instant cut to the
//!   millisecond / second;
//! - a row `{"id", "date", "actionId"}` with that date decodes exactly when the date parses
//!   (an error naming `date` otherwise), the two decoders agree (`decoders_agree`), and
//!   `row_id_and_date` reads the same instant;
//! - every format (ECS, CEF, LEEF, JSON) writes one line for that event; ECS `@timestamp` is
//!   the event's UTC time, CEF `rt` its epoch milliseconds; the RFC 5424 and RFC 3164 syslog
//!   headers are written;
//! - the rule engine judges both events as lockouts of one login (so the second joins the
//!   alert the first raised, with the first's portal offset) and the alert renders: its
//!   `when`, its ECS document and every chat service's payload.

#![no_main]

use std::sync::Arc;

use bytes::BytesMut;
use docspace_siem::alert::{self, RuleConfig, RuleEngine};
use docspace_siem::config::{Format, Rfc};
use docspace_siem::event::{
    Event, PortalInfo, decoders_agree, format_utc_millis, format_utc_seconds, parse_date,
    row_id_and_date,
};
use docspace_siem::syslog::{self, Header};
use docspace_siem::transform;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let portal = Arc::new(PortalInfo::new("main", "https://docspace.example.com"));
    let mut events = Vec::new();
    for (i, part) in data.split(|b| *b == 0xFF).take(2).enumerate() {
        let text = String::from_utf8_lossy(part);
        if let Some(ev) = check_date(&portal, i as i64 + 1, &text) {
            check_encoders(&ev);
            events.push(ev);
        }
    }
    check_alerts(&events);
});

/// The parser and both row decoders on one date text; the event when it decodes.
fn check_date(portal: &Arc<PortalInfo>, id: i64, text: &str) -> Option<Event> {
    let parsed = parse_date(text);
    if let Ok(t) = parsed {
        assert!((0..=9999).contains(&t.year()), "{text:?} → {t}");
        assert!(t.offset().is_utc(), "{text:?} → {t}");
        // The writers cut to the millisecond / second (towards the past).
        let millis = format_utc_millis(t);
        let back = parse_date(&millis).expect("format_utc_millis parses back");
        let want = t
            .replace_millisecond(t.millisecond())
            .expect("a valid millisecond");
        assert_eq!(back, want, "{text:?} → {millis}");
        let seconds = format_utc_seconds(t);
        let back = parse_date(&seconds).expect("format_utc_seconds parses back");
        let want = t.replace_nanosecond(0).expect("0 is a valid nanosecond");
        assert_eq!(back, want, "{text:?} → {seconds}");
    }
    let row = json!({"id": id, "date": text, "actionId": 1023, "login": "bob",
                     "ip": "192.0.2.66"})
    .to_string();
    if let Err(e) = decoders_agree(&row) {
        panic!("the decoders disagree on {row}: {e}");
    }
    let (row_id, row_date) = row_id_and_date(&row);
    assert_eq!(row_id, Some(id));
    assert_eq!(row_date, parsed.as_ref().ok().copied(), "{row}");
    match (Event::from_row_text(portal.clone(), None, &row), parsed) {
        (Ok(ev), Ok(t)) => {
            assert_eq!(ev.time, t, "{row}");
            Some(ev)
        }
        (Err(e), Err(_)) => {
            assert!(e.to_string().contains("`date`"), "{row}: {e}");
            None
        }
        (ev, parsed) => panic!("{row}: the decoder says {ev:?}, the parser {parsed:?}"),
    }
}

fn check_encoders(ev: &Event) {
    for format in [Format::Ecs, Format::Cef, Format::Leef, Format::Json] {
        let mut out = Vec::new();
        transform::encode(format, ev, &mut out);
        let text = std::str::from_utf8(&out).expect("encoders write UTF-8");
        assert!(
            !text.is_empty() && !text.contains(['\n', '\r']),
            "{format:?}: {text:?}"
        );
        match format {
            Format::Ecs => {
                let v: Value = serde_json::from_str(text).expect("ECS is one JSON document");
                assert_eq!(
                    v["@timestamp"].as_str(),
                    Some(ev.time_rfc3339().as_str()),
                    "{text}"
                );
            }
            Format::Cef => {
                let rt = format!("|rt={} ", ev.epoch_millis());
                assert!(text.contains(&rt), "{text}");
            }
            _ => {}
        }
    }
    for rfc in [Rfc::Rfc5424, Rfc::Rfc3164] {
        let header = Header::new(rfc, 13, "host", "docspace-siem", "-");
        let mut out = BytesMut::new();
        syslog::format_message(&mut out, &header, 5, ev.time, "login", &[], b"x");
        assert!(!out.is_empty());
    }
}

/// Both events as lockouts of `bob`: the second joins the alert the first raised (one rule
/// window), so `when` shows the later instant in the first event's portal offset.
fn check_alerts(events: &[Event]) {
    if events.is_empty() {
        return;
    }
    let rules: Vec<RuleConfig> =
        alert::select(&["lockout".to_owned()], &[]).expect("a built-in rule");
    let mut engine = RuleEngine::new(rules);
    let refs: Vec<&Event> = events.iter().collect();
    for a in engine.observe_batch(&refs) {
        assert!(!a.when().is_empty());
        let doc = docspace_siem::transform::alert::to_ecs(&a);
        assert!(doc["@timestamp"].is_string(), "{doc}");
        for kind in docspace_siem::sink::chat::ChatKind::ALL {
            let payload = docspace_siem::sink::chat::payload(kind, std::slice::from_ref(&a));
            assert!(payload.is_object(), "{kind}: {payload}");
        }
    }
}
