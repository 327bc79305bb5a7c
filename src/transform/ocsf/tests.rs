//! Unit tests of the OCSF encoder: documents of the fixture rows, hostile values, labels.

use serde_json::{Value, json};

use super::*;
use crate::event::{GUEST_USER_ID, Stream};
use crate::transform::fixtures;

fn by_id(id: i64) -> Value {
    let events = fixtures::all();
    document(events.iter().find(|e| e.id == id).expect("row"))
}

#[test]
fn login_failure_document() {
    let d = by_id(48212);
    assert_eq!(d["class_uid"], 3002);
    assert_eq!(d["category_uid"], 3);
    assert_eq!(d["activity_id"], 1);
    assert_eq!(d["activity_name"], "Logon");
    assert_eq!(d["type_uid"], 300_201);
    assert_eq!(d["type_name"], "Authentication: Logon");
    assert_eq!(d["status_id"], 2);
    assert_eq!(d["status"], "Failure");
    assert_eq!(d["status_detail"], "LoginFailBruteForce");
    // 2025-01-15T12:58:12Z.
    assert_eq!(d["time"], 1_736_945_892_000_i64);
    assert_eq!(d["severity_id"], 4);
    assert_eq!(d["metadata"]["uid"], "48212");
    assert_eq!(d["metadata"]["version"], OCSF_VERSION);
    assert_eq!(d["metadata"]["log_name"], "login");
    assert_eq!(d["metadata"]["event_code"], "1023");
    assert_eq!(d["metadata"]["tenant_uid"], "docspace.example.com");
    assert_eq!(d["metadata"]["product"]["name"], "DocSpace");
    assert_eq!(d["user"]["name"], "bob@example.com");
    assert_eq!(d["user"]["email_addr"], "bob@example.com");
    // See: issue 17. The Guest placeholder names no user: only unmapped.user_id keeps it.
    assert!(d["user"].get("uid").is_none(), "{d}");
    assert_eq!(d["unmapped"]["user_id"], GUEST_USER_ID);
    assert_eq!(d["src_endpoint"]["ip"], "192.0.2.66");
    assert_eq!(d["dst_endpoint"]["hostname"], "docspace.example.com");
    assert_eq!(
        d["unmapped"]["unique_id"],
        "docspace.example.com:login:48212"
    );
    let raw: Value = serde_json::from_str(d["raw_data"].as_str().expect("string")).expect("row");
    assert_eq!(raw["id"], 48212);
}

#[test]
fn a_successful_login_has_its_user_and_place() {
    let d = by_id(48213);
    assert_eq!(d["status_id"], 1);
    assert_eq!(d["severity_id"], 1);
    assert_eq!(d["user"]["uid"], "9b1e4f7a-2c3d-4e5f-8a6b-7c8d9e0f1a2b");
    assert_eq!(d["src_endpoint"]["location"]["city"], "Berlin");
    assert_eq!(d["src_endpoint"]["location"]["desc"], "Germany");
    assert_eq!(d["src_endpoint"]["os"]["type_id"], 100);
    assert_eq!(d["http_request"]["user_agent"], "Chrome 131");
    assert_eq!(
        d["http_request"]["url"]["url_string"],
        "https://docspace.example.com/login"
    );
    assert_eq!(d["timezone_offset"], 60);
}

#[test]
fn audit_classes() {
    let d = by_id(91540);
    assert_eq!(
        (d["class_uid"].clone(), d["activity_id"].clone()),
        (json!(3001), json!(1))
    );
    assert_eq!(d["user"]["uid"], "c4e7a0d2-5b8f-4c1e-9d3a-6f2b1e8c7d90");
    assert_eq!(d["actor"]["user"]["name"], "Alice Johnson");
    let d = by_id(91537);
    assert_eq!(d["class_uid"], 6006);
    assert_eq!(d["activity_name"], "Upload");
    assert_eq!(d["file"]["uid"], "15432");
    assert_eq!(d["file"]["type_id"], 1);
    assert_eq!(
        d["unmapped"]["page"],
        "https://docspace.example.com/rooms/shared/4821/filter?folder=4821"
    );
    assert!(
        d.get("http_request").is_none(),
        "File Hosting has no http_request: {d}"
    );
    let d = by_id(91544);
    assert_eq!(d["class_uid"], 3004);
    assert_eq!(d["entity"]["type"], "Setting");
    assert_eq!(d["metadata"]["log_name"], "audit");
}

#[test]
fn other_activities_carry_the_action_name() {
    let ev = fixtures::all()[0].with_row_field("actionId", json!(99_999));
    let d = document(&ev);
    assert_eq!(d["class_uid"], 3002, "a login row stays an authentication");
    assert_eq!(d["activity_id"], 99);
    assert_eq!(d["activity_name"], "Action99999");
    assert_eq!(d["type_name"], "Authentication: Other");
    assert_eq!(d["type_uid"], 300_299);
}

#[test]
fn labels_are_key_colon_value() {
    let portal = Arc::new(
        PortalInfo::new("acme", "https://acme.example.com:8443").with_labels([
            ("customer".to_owned(), "acme \"corp\"".to_owned()),
            ("tier".to_owned(), "gold".to_owned()),
        ]),
    );
    let row = json!({"id": 7, "date": "2025-01-15T14:32:07.0000000+01:00", "actionId": 1000});
    let ev = Event::from_json(portal, Some(Stream::Login), row).expect("event");
    let d = document(&ev);
    assert_eq!(
        d["metadata"]["labels"],
        json!(["customer:acme \"corp\"", "tier:gold"])
    );
    assert_eq!(d["metadata"]["tenant_uid"], "acme.example.com:8443");
    assert_eq!(d["unmapped"]["unique_id"], "acme.example.com:8443:login:7");
    // No labels, no key.
    assert!(by_id(48212)["metadata"].get("labels").is_none());
}

/// Control characters, line separators, forged JSON and invalid addresses stay inside their
/// strings: one line, one object, the values unchanged.
#[test]
fn hostile_values_stay_one_record() {
    let nasty = "a\"b\\c\n{\"x\":1}\r\u{0}\u{1b}[31m\u{85}\u{2028}\u{2029}\u{7f} €";
    let mut ev = fixtures::all()[0].clone();
    for field in [
        "login", "user", "city", "country", "browser", "platform", "page", "action", "userId",
    ] {
        ev = ev.with_row_field(field, Value::String(nasty.into()));
    }
    ev = ev.with_row_field("ip", Value::String("999.1.2.3\n".into()));
    let mut out = Vec::new();
    encode(&ev, &mut out);
    let text = String::from_utf8(out).expect("UTF-8");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        !text.contains(['\u{85}', '\u{2028}', '\u{2029}', '\r']),
        "{text}"
    );
    let d: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(d["user"]["name"], nasty);
    assert_eq!(d["user"]["uid"], nasty);
    assert!(d["user"].get("email_addr").is_none());
    assert_eq!(d["message"], nasty);
    assert!(d["src_endpoint"].get("ip").is_none());
    assert_eq!(d["unmapped"]["ip"], "999.1.2.3\n");
    assert_eq!(d["src_endpoint"]["os"]["type_id"], 0);
}

#[test]
fn a_bare_row_has_every_required_field() {
    let portal = Arc::new(PortalInfo::new("main", "https://docspace.example.com"));
    for code in [1000, 4000, 4026, 5011, 6009, 6027, 6035, 7000] {
        let row = json!({"id": 1, "date": "2025-01-15T14:32:07.0000000+01:00", "actionId": code});
        let ev = Event::from_json(portal.clone(), None, row).expect("event");
        let d = document(&ev);
        for key in [
            "activity_id",
            "category_uid",
            "class_uid",
            "type_uid",
            "time",
            "severity_id",
            "metadata",
            "src_endpoint",
        ] {
            assert!(d.get(key).is_some(), "{code}: {key} missing in {d}");
        }
        match d["class_uid"].as_u64() {
            Some(3001 | 3002 | 3005) => assert!(d["user"].is_object(), "{d}"),
            Some(3004) => assert!(d["entity"].is_object(), "{d}"),
            Some(3006) => assert!(d["group"].is_object(), "{d}"),
            Some(6003) => assert!(d["api"]["operation"].is_string(), "{d}"),
            Some(6006) => assert!(d["file"]["name"].is_string(), "{d}"),
            other => panic!("{code}: class {other:?}"),
        }
    }
}

#[test]
fn emails_and_platforms() {
    assert!(looks_like_email("bob@example.com"));
    assert!(!looks_like_email("bob"));
    assert!(!looks_like_email("bob@localhost"));
    assert!(!looks_like_email("a b@example.com"));
    assert!(!looks_like_email("a@b@example.com"));
    assert_eq!(os_type("Mac OS X 10 Apple Mac").0, 300);
    assert_eq!(os_type("Android 14").0, 201);
    assert_eq!(os_type("Other").0, 99);
    assert_eq!(os_type("PlayStation").0, 0);
}
