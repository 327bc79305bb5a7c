use super::*;
use crate::event::{GUEST_USER_ID, Outcome, decoders_agree, scan_decodes};
use proptest::prelude::*;
use serde_json::json;

/// A JSON string literal of `s`, escaped one of three ways: minimally (serde_json), as
/// DocSpace does (every non-ASCII char and `+<>&'` as `\uXXXX`, surrogate pairs for
/// astral chars), or with every char escaped.
fn literal(s: &str, style: u8) -> String {
    match style % 4 {
        0 => serde_json::to_string(s).unwrap(),
        // Not JSON when `s` holds a control character: serde_json must refuse it.
        3 => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
        _ => {
            let mut out = String::from("\"");
            for c in s.chars() {
                let all = style % 4 == 2;
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    c if all || !c.is_ascii() || c.is_ascii_control() || "+<>&'".contains(c) => {
                        let mut buf = [0u16; 2];
                        for unit in c.encode_utf16(&mut buf) {
                            out.push_str(&format!("\\u{unit:04X}"));
                        }
                    }
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
    }
}

fn json_value() -> impl Strategy<Value = String> {
    let text = prop_oneof![
        "[a-zA-Z0-9 .@:/-]{0,40}",
        any::<String>(),
        "[|=\\\\\"\n\r\u{2028}<>+&'é€😀]{0,12}",
        Just("2025-01-15T14:32:07.0000000+01:00".to_owned()),
    ];
    let leaf = prop_oneof![
        4 => (text, any::<u8>()).prop_map(|(s, style)| literal(&s, style)),
        2 => any::<u32>().prop_map(|n| n.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => prop_oneof![
            Just("-0"), Just("1.5"), Just("1e3"), Just("2.0"), Just("01"), Just("null"),
            Just("true"), Just("false"), Just("\"\\uD83D\""), Just("\"\\uDE00x\""),
            Just("\"12\""), Just("[]"), Just("{}"), Just("1."), Just("\"\u{1}\""),
        ]
        .prop_map(str::to_owned),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("[a-z]{1,6}", inner), 0..3).prop_map(|v| {
                let fields: Vec<String> =
                    v.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

/// Rows shaped like DocSpace's, with every key sometimes missing, duplicated, mistyped or
/// oddly spaced, and now and then a byte cut or changed.
fn json_row() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "id",
            "date",
            "actionId",
            "action",
            "user",
            "userId",
            "login",
            "ip",
            "country",
            "city",
            "browser",
            "platform",
            "page",
            "actionType",
            "product",
            "location",
            "target",
            "entries",
            "context",
            "links",
            "i\\u0064",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z]{1,8}",
    ];
    let date = (0u32..3, any::<u8>()).prop_map(|(k, style)| {
        let d = [
            "2025-01-15T14:32:07.0000000+01:00",
            "2025-03-30T01:59:59.1234567Z",
            "2024-02-29T23:00:00-05:30",
        ][k as usize];
        literal(d, style)
    });
    let string_key = prop::sample::select(vec![
        "action", "user", "userId", "login", "ip", "country", "city", "browser", "platform",
        "page", "context",
    ])
    .prop_map(str::to_owned);
    let int_key =
        prop::sample::select(vec!["actionType", "product", "location"]).prop_map(str::to_owned);
    let text = prop_oneof![
        "[a-zA-Z0-9 .@:/-]{0,40}",
        any::<String>(),
        "[|=\\\\\"\n\r\t\u{8}\u{c}/\u{2028}<>+&'é€😀]{0,12}",
        "[a-z]{0,20}[\u{0}\u{1f}\u{7f}\n][a-z]{0,20}",
    ];
    let pair = prop_oneof![
        6 => (string_key, text, any::<u8>()).prop_map(|(k, s, style)| (k, literal(&s, style))),
        2 => (int_key, any::<u32>()).prop_map(|(k, n)| (k, n.to_string())),
        1 => prop::collection::vec(("[a-z0-9 ]{0,5}", any::<u8>()), 0..3).prop_map(|v| {
            let items: Vec<String> = v.iter().map(|(s, st)| literal(s, *st)).collect();
            ("target".to_owned(), format!("[{}]", items.join(",")))
        }),
        1 => prop::collection::vec(0u32..40, 0..3).prop_map(|v| {
            let items: Vec<String> = v.iter().map(u32::to_string).collect();
            ("entries".to_owned(), format!("[{}]", items.join(",")))
        }),
        2 => (key, json_value()),
        1 => prop_oneof![
            date.clone().prop_map(|d| ("date".to_owned(), d)),
            any::<u32>().prop_map(|n| ("id".to_owned(), n.to_string())),
            (1000u32..3000).prop_map(|n| ("actionId".to_owned(), n.to_string())),
        ],
    ];
    let ws = prop::sample::select(vec!["", " ", "\n  ", "\t"]);
    (
        any::<u32>(),
        date,
        1000u32..3000,
        prop::collection::vec((pair, ws.clone()), 0..6),
        ws,
        any::<u16>(),
        any::<u8>(),
    )
        .prop_map(|(id, date, action, extra, sp, at, mutation)| {
            let mut fields = vec![
                format!("\"id\":{id}"),
                format!("\"date\"{sp}:{sp}{date}"),
                format!("\"actionId\": {action}"),
            ];
            for ((k, v), w) in extra {
                fields.push(format!("{w}\"{k}\"{w}:{w}{v}{w}"));
            }
            let mut row = format!("{sp}{{{}}}{sp}", fields.join(","));
            match mutation % 12 {
                0 => row.truncate(floor(&row, at as usize % (row.len() + 1))),
                1 => {
                    let at = floor(&row, at as usize % (row.len() + 1));
                    row.insert(
                        at,
                        ['"', '\\', ',', '}', ']', '\u{0}'][mutation as usize % 6],
                    );
                }
                _ => {}
            }
            row
        })
}

fn floor(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Whatever the scan path decodes, serde_json decodes to the same event; whatever it
    /// gives up on, `from_row_text` still decodes or names, as before.
    #[test]
    fn the_scan_path_agrees_with_serde_json(row in json_row()) {
        prop_assert_eq!(decoders_agree(&row), Ok(()));
        if std::env::var_os("SCAN_COVERAGE").is_some() {
            eprintln!("scan={}", scan_decodes(&row));
        }
        let portal = portal();
        let text = Event::from_row_text(portal.clone(), None, &row).map(|e| e.raw().to_owned());
        let serde = Event::from_row_serde(portal, None, &row).map(|e| e.raw().to_owned());
        prop_assert_eq!(text, serde);
    }
}

#[test]
fn docspace_shaped_rows_take_the_scan_path() {
    let text = include_str!("../../../tests/fixtures/login-filter.json");
    let v: Value = serde_json::from_str(text).unwrap();
    for row in v["response"].as_array().unwrap() {
        for style in 0..3 {
            // As DocSpace writes them: compact, non-ASCII and `+` escaped.
            let mut obj = Vec::new();
            for (k, v) in row.as_object().unwrap() {
                let v = match v {
                    Value::String(s) => literal(s, style),
                    other => other.to_string(),
                };
                obj.push(format!("\"{k}\":{v}"));
            }
            let compact = format!("{{{}}}", obj.join(","));
            assert!(scan_decodes(&compact), "{compact}");
            assert_eq!(decoders_agree(&compact), Ok(()));
        }
        let pretty = serde_json::to_string_pretty(row).unwrap();
        assert!(scan_decodes(&pretty), "{pretty}");
    }
    let audit = json!({"id": 7, "date": "2025-01-15T14:32:07.0000000+01:00", "actionId": 5002,
        "actionType": 12, "product": 2, "location": 1, "target": ["123", "x"],
        "entries": [2, 1], "context": "My room", "user": "A"});
    assert!(scan_decodes(&audit.to_string()));
    assert_eq!(decoders_agree(&audit.to_string()), Ok(()));
}

fn portal() -> Arc<PortalInfo> {
    Arc::new(PortalInfo::new("main", "https://docspace.example.com"))
}

#[test]
fn decodes_a_fixture_row_and_omitted_nulls() {
    let ev = Event::from_json(
        portal(),
        None,
        json!({"id": 48212, "date": "2025-01-15T13:58:12.0000000+01:00", "user": "bob",
               "userId": GUEST_USER_ID, "login": "bob@example.com", "action": "Login Fail",
               "actionId": 1023, "ip": "2a02", "country": "", "browser": "Firefox 133"}),
    )
    .expect("valid row");
    assert_eq!(ev.stream, Stream::Login);
    assert_eq!(ev.id, 48212);
    assert_eq!(ev.country(), None, "empty strings mean unknown");
    assert_eq!(ev.valid_ip(), None, "a truncated IPv6 is not an address");
    assert_eq!(ev.semantics().outcome, Outcome::Failure);
    assert_eq!(ev.semantics().severity, 7);
    assert_eq!(ev.epoch_millis(), 1_736_945_892_000);
}

#[test]
fn bad_rows_name_the_field() {
    let p = portal();
    let err = |v| {
        Event::from_json(p.clone(), None, v)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(err(json!([])), "event is not a JSON object");
    assert_eq!(err(json!({"date": "x"})), "event has no `id` field");
    assert!(err(json!({"id": 1, "date": 5})).contains("`date`"));
    assert!(err(json!({"id": "x1", "date": "2025-01-01T00:00:00Z"})).contains("`id`"));
    assert!(err(json!({"id": "7", "date": "2025-01-01T00:00:00Z"})).contains("actionId"));
}

#[test]
fn huge_fields_are_capped_at_a_char_boundary() {
    let long = "é".repeat(MAX_FIELD_BYTES);
    let capped = cap(&long);
    assert!(capped.len() <= MAX_FIELD_BYTES);
    assert!(capped.ends_with(TRUNCATED_MARK));
}
