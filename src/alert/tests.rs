//! Tests of the rules, the engine, its state and the alert model.

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::engine::{Hit, KeyState};
use super::model::norm;
use super::*;
use crate::event::{Event, GUEST_USER_ID, PortalInfo};
// The ECS form of an alert is an encoder's; these tests check it on the alerts they raise.
use crate::transform::alert::to_ecs;
use std::io::Write as _;
use std::sync::Arc;
use time::format_description::well_known::Rfc3339;
use time::macros::{datetime, offset};

const ALICE_ID: &str = "9b1e4f7a-2c3d-4e5f-8a6b-7c8d9e0f1a2b";
const T0: OffsetDateTime = datetime!(2025-01-15 13:00:00 UTC);

fn portal() -> Arc<PortalInfo> {
    Arc::new(PortalInfo::new("main", "https://docspace.example.com"))
}

fn at(secs: i64) -> OffsetDateTime {
    T0 + time::Duration::seconds(secs)
}

/// A row as the portal renders it: the date in the portal's zone (+01:00).
fn row(id: i64, t: OffsetDateTime, action: i64, fields: Value) -> Event {
    let mut v = json!({
        "id": id,
        "date": t.to_offset(offset!(+1)).format(&Rfc3339).expect("date"),
        "actionId": action,
    });
    for (k, x) in fields.as_object().expect("object") {
        v[k] = x.clone();
    }
    Event::from_json(portal(), None, v).expect("row")
}

/// A failed login (wrong password) of `login` from `ip`.
fn fail(id: i64, secs: i64, login: &str, ip: &str) -> Event {
    row(
        id,
        at(secs),
        1013,
        json!({"login": login, "user": login, "userId": GUEST_USER_ID, "ip": ip,
               "action": "Failed Login via API"}),
    )
}

/// A successful login of Alice Johnson (no `login`, as the server writes it).
fn ok(id: i64, secs: i64, ip: &str, country: &str) -> Event {
    row(
        id,
        at(secs),
        1029,
        json!({"user": "Alice Johnson", "userId": ALICE_ID, "ip": ip, "country": country,
               "city": "Somewhere", "action": "Login success"}),
    )
}

fn audit(id: i64, secs: i64, action: i64) -> Event {
    row(
        id,
        at(secs),
        action,
        json!({"user": "Alice Johnson", "userId": ALICE_ID, "ip": "203.0.113.45",
               "action": "Something happened", "product": 8, "actionType": 3}),
    )
}

fn engine(names: &[&str]) -> RuleEngine {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    RuleEngine::new(select(&names, &[]).expect("built-in rules"))
}

fn feed_one_by_one(e: &mut RuleEngine, evs: &[Event]) -> Vec<Alert> {
    evs.iter().flat_map(|ev| e.observe(ev)).collect()
}

fn refs(evs: &[Event]) -> Vec<&Event> {
    evs.iter().collect()
}

fn rule(name: &str, table: Value) -> Result<Vec<RuleConfig>, Vec<Problem>> {
    let mut m = Map::new();
    m.insert(name.to_owned(), table);
    parse_rules(&m)
}

#[test]
fn a_brute_force_burst_fires_exactly_once_per_key_per_window() {
    // 15 failures for bob within 2 minutes, then 10 more 3 minutes after the firing (still
    // within the window of the firing event: silent), then 10 more after it (fires again).
    let mut evs: Vec<Event> = (0..15)
        .map(|i| fail(100 + i, i * 8, "bob@example.com", "192.0.2.66"))
        .collect();
    let fired_at = 9 * 8;
    evs.extend((0..10).map(|i| fail(200 + i, fired_at + 180 + i, "bob@example.com", "192.0.2.66")));
    let mut e = engine(&["brute_force"]);
    let alerts = feed_one_by_one(&mut e, &evs);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(
        (a.rule.as_str(), a.key.as_str(), a.count),
        ("brute_force", "bob@example.com", 10)
    );
    assert_eq!((a.first, a.last), (at(0), at(fired_at)));
    assert_eq!(a.events, (100..110).collect::<Vec<_>>());
    assert_eq!(
        a.summary,
        "10 failed logins for bob@example.com from 192.0.2.66 within 1m 12s"
    );
    assert_eq!(a.local_offset, Some(offset!(+1)));
    assert!(
        a.when()
            .contains("(portal time 14:00:00 – 14:01:12 +01:00)"),
        "{}",
        a.when()
    );
    // Once the window of the firing event has passed, the attack still going on (the
    // silenced failures count) fires again at the next failure, once.
    let later: Vec<Event> = (0..10)
        .map(|i| fail(300 + i, fired_at + 301 + i, "bob@example.com", "192.0.2.66"))
        .collect();
    let again = feed_one_by_one(&mut e, &later);
    assert_eq!(again.len(), 1, "{again:#?}");
    assert_eq!(again[0].last, at(fired_at + 301));
    assert_eq!(again[0].events.last(), Some(&300));

    // The same burst as one batch: one alert that counts every failure of the batch.
    let mut e = engine(&["brute_force"]);
    let alerts = e.observe_batch(&refs(&evs[..15]));
    assert_eq!(alerts.len(), 1);
    assert_eq!((alerts[0].count, alerts[0].last), (15, at(14 * 8)));
    assert_eq!(
        alerts[0].summary,
        "15 failed logins for bob@example.com from 192.0.2.66 within 1m 52s"
    );
}

/// See: issue 15. An attack dated at the very end of the calendar: the firing event's
/// portal offset (+14:00) cannot show a later failure of the same alert (10:03Z on
/// 9999-12-31 is past the year 9999 there), which panicked `when()`; it now shows UTC only.
#[test]
fn an_alert_at_the_edge_of_the_calendar_is_rendered_without_a_panic() {
    let edge = |id: i64, date: &str| {
        Event::from_json(
            portal(),
            None,
            json!({"id": id, "date": date, "actionId": 1013, "login": "bob",
                   "userId": GUEST_USER_ID, "ip": "192.0.2.66"}),
        )
        .expect("a date inside the calendar")
    };
    let mut evs: Vec<Event> = (0..9)
        .map(|i| edge(i, &format!("9999-12-31T09:59:5{i}Z")))
        .collect();
    evs.push(edge(9, "9999-12-31T23:59:59.0000000+14:00"));
    evs.push(edge(10, "9999-12-31T10:03:00Z"));
    evs.push(edge(11, "9999-12-31T23:59:59.9999999Z"));
    let mut e = engine(&["brute_force"]);
    let alerts = e.observe_batch(&refs(&evs));
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(a.local_offset, Some(offset!(+14)));
    assert_eq!(a.when(), "9999-12-31 09:59:50 – 10:03:00 UTC");
    let doc = to_ecs(a);
    assert_eq!(doc["event"]["end"], "9999-12-31T10:03:00.000Z");
    // Times read back from a damaged state file cannot overflow the window arithmetic.
    let mut st = KeyState {
        h: VecDeque::from([
            Hit {
                t: i64::MIN,
                id: 1,
                o: None,
            },
            Hit {
                t: i64::MAX,
                id: 2,
                o: None,
            },
        ]),
        f: Some(i64::MIN),
        n: i64::MAX,
        d: None,
    };
    assert!(!st.silenced(i64::MAX, 300_000));
    assert_eq!(st.run_through(1, 2, 300_000), None);
    assert!(
        st.insert(
            Hit {
                t: 0,
                id: 3,
                o: None
            },
            300_000,
            10
        )
        .is_some()
    );
}

#[test]
fn a_slow_trickle_below_the_threshold_never_fires() {
    // One failure every 40 s: never 10 within 5 minutes, for hours.
    let evs: Vec<Event> = (0..300)
        .map(|i| fail(1000 + i, i * 40, "carol@example.com", "198.51.100.7"))
        .collect();
    let mut e = engine(&["brute_force", "success_after_failures"]);
    assert!(feed_one_by_one(&mut e, &evs).is_empty());
    let mut e = engine(&["brute_force"]);
    assert!(e.observe_batch(&refs(&evs)).is_empty());
}

#[test]
fn by_ip_catches_password_spraying_that_by_user_misses() {
    let evs: Vec<Event> = (0..12)
        .map(|i| {
            fail(
                10 + i,
                i * 5,
                &format!("user{i}@example.com"),
                "198.51.100.9",
            )
        })
        .collect();
    assert!(
        engine(&["brute_force"])
            .observe_batch(&refs(&evs))
            .is_empty()
    );
    let rules = rule(
        "spray",
        json!({"kind": "brute_force", "by": "ip", "threshold": 10, "window": "2m"}),
    )
    .expect("valid");
    let alerts = RuleEngine::new(rules).observe_batch(&refs(&evs));
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(
        (a.by, a.key.as_str(), a.count, a.user_count),
        (By::Ip, "198.51.100.9", 12, 12)
    );
    assert_eq!(a.related_users.len(), MAX_RELATED);
    assert_eq!(
        a.summary,
        "12 failed logins from 198.51.100.9 for 12 logins within 55s"
    );
    // And per user, a single login from many addresses (a botnet) is one key.
    let evs: Vec<Event> = (0..10)
        .map(|i| fail(50 + i, i, "Admin@Example.com ", &format!("203.0.113.{i}")))
        .collect();
    let alerts = engine(&["brute_force"]).observe_batch(&refs(&evs));
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].ip_count, 10);
    assert!(
        alerts[0].summary.contains("from 10 addresses"),
        "{}",
        alerts[0].summary
    );
}

#[test]
fn success_after_failures_from_the_same_address_or_for_the_same_login() {
    // Failures typed as an e-mail address, success as the display name: linked by address.
    let mut evs: Vec<Event> = (0..6)
        .map(|i| fail(i, i * 10, "alice.johnson@example.com", "192.0.2.66"))
        .collect();
    evs.push(ok(100, 70, "192.0.2.66", "Germany"));
    evs.push(ok(101, 80, "192.0.2.66", "Germany"));
    let mut e = engine(&["success_after_failures"]);
    let alerts = feed_one_by_one(&mut e, &evs);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = &alerts[0];
    assert_eq!(
        (a.key.as_str(), a.count, a.severity),
        ("Alice Johnson", 7, 9)
    );
    assert_eq!(a.events, vec![0, 1, 2, 3, 4, 5, 100]);
    assert_eq!(
        a.summary,
        "Alice Johnson logged in successfully from 192.0.2.66 after 6 failed attempts within 1m 10s for alice.johnson@example.com"
    );
    // Linked by login: the display name typed as the login, from other addresses.
    let mut evs: Vec<Event> = (0..5)
        .map(|i| fail(i, i, "alice johnson", &format!("198.51.100.{i}")))
        .collect();
    evs.push(ok(100, 30, "203.0.113.45", "Germany"));
    let alerts = engine(&["success_after_failures"]).observe_batch(&refs(&evs));
    assert_eq!(alerts.len(), 1);
    // Too few failures, or too long ago: nothing.
    let mut evs: Vec<Event> = (0..4)
        .map(|i| fail(i, i, "alice.johnson@example.com", "192.0.2.66"))
        .collect();
    evs.push(ok(100, 10, "192.0.2.66", "Germany"));
    evs.extend((0..5).map(|i| fail(200 + i, 1000 + i, "x@example.com", "192.0.2.77")));
    evs.push(ok(300, 1000 + 601, "192.0.2.77", "Germany"));
    assert!(
        engine(&["success_after_failures"])
            .observe_batch(&refs(&evs))
            .is_empty()
    );
}

#[test]
fn lockout_fires_once_per_login_per_window() {
    let lock = |id, secs, login: &str| {
        row(
            id,
            at(secs),
            1023,
            json!({"login": login, "user": login, "userId": GUEST_USER_ID,
             "ip": "192.0.2.66", "action": "Login Fail. Too many attempts"}),
        )
    };
    let evs = vec![
        lock(1, 0, "bob@example.com"),
        lock(2, 20, "bob@example.com"),
        lock(3, 40, "BOB@example.com"),
        lock(4, 50, "eve@example.com"),
    ];
    let alerts = engine(&["lockout"]).observe_batch(&refs(&evs));
    let keys: Vec<(&str, usize)> = alerts.iter().map(|a| (a.key.as_str(), a.count)).collect();
    assert_eq!(keys, vec![("bob@example.com", 3), ("eve@example.com", 1)]);
    assert_eq!(
        alerts[0].summary,
        "bob@example.com locked out after too many failed attempts from 192.0.2.66 (3 attempts refused)"
    );
    let mut e = engine(&["lockout"]);
    assert_eq!(feed_one_by_one(&mut e, &evs).len(), 2);
    assert_eq!(
        e.observe(&lock(5, 400, "bob@example.com")).len(),
        1,
        "a new window"
    );
}

#[test]
fn new_country_after_a_baseline_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let state = dir.path().join("alerts").join("chat");
    let rules = select(&["new_country".to_owned(), "new_ip".to_owned()], &[]).expect("rules");
    let mut e = RuleEngine::with_state(rules.clone(), state.clone());
    // The first country ever seen for a user is the baseline, not an alert.
    assert!(e.observe(&ok(1, 0, "203.0.113.45", "Germany")).is_empty());
    assert!(e.observe(&ok(2, 60, "203.0.113.45", "germany")).is_empty());
    let a = e.observe(&ok(3, 120, "198.51.100.23", "Brazil"));
    let kinds: Vec<RuleKind> = a.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, vec![RuleKind::NewCountry, RuleKind::NewIp]);
    assert_eq!(a[0].key, "Alice Johnson");
    assert_eq!(a[0].known, vec!["Germany".to_owned()]);
    assert_eq!(
        a[0].summary,
        "Alice Johnson logged in from a country not seen before for this user: Brazil (198.51.100.23)"
    );
    e.save(false).expect("save");
    assert!(state.join("seen.json").is_file());
    drop(e);
    // After a restart: Brazil is known now, France is new.
    let mut e = RuleEngine::with_state(rules.clone(), state.clone());
    assert!(e.observe(&ok(4, 200, "198.51.100.23", "Brazil")).is_empty());
    let a = e.observe(&ok(5, 300, "192.0.2.10", "France"));
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].known, vec!["Brazil".to_owned(), "Germany".to_owned()]);
    // Failed logins and unlocated addresses teach nothing.
    assert!(
        e.observe(&fail(6, 310, "alice@example.com", "192.0.2.99"))
            .is_empty()
    );
    assert!(
        e.observe(&ok(7, 320, "10.0.0.1", ""))
            .iter()
            .all(|a| a.kind == RuleKind::NewIp)
    );
    // A damaged state file is not fatal. Loading it changes nothing on disk (`check`
    // builds sinks); the first save sets it aside before writing the new state.
    std::fs::write(state.join("seen.json"), b"{not json").expect("write");
    let set_aside = || {
        std::fs::read_dir(&state).expect("dir").any(|f| {
            f.expect("entry")
                .file_name()
                .to_string_lossy()
                .contains("corrupt")
        })
    };
    let mut e = RuleEngine::with_state(rules, state.clone());
    assert!(!set_aside(), "loading wrote nothing");
    assert_eq!(
        std::fs::read(state.join("seen.json")).expect("still there"),
        b"{not json"
    );
    assert!(
        e.observe(&ok(8, 400, "198.51.100.23", "Brazil")).is_empty(),
        "baseline again"
    );
    e.save(true).expect("save");
    assert!(set_aside());
    assert!(
        std::fs::read_to_string(state.join("seen.json"))
            .expect("new state")
            .contains("Brazil")
    );
}

#[test]
fn window_state_survives_a_restart_so_no_alert_repeats() {
    let dir = tempfile::tempdir().expect("tmp");
    let rules = select(&["brute_force".to_owned()], &[]).expect("rules");
    let evs: Vec<Event> = (0..12).map(|i| fail(i, i, "bob", "192.0.2.66")).collect();
    let mut e = RuleEngine::with_state(rules.clone(), dir.path().to_path_buf());
    assert_eq!(e.observe_batch(&refs(&evs[..6])).len(), 0);
    e.save(true).expect("save");
    // The burst straddles the restart: 6 before, 6 after.
    let mut e = RuleEngine::with_state(rules.clone(), dir.path().to_path_buf());
    assert_eq!(e.observe_batch(&refs(&evs[6..])).len(), 1);
    e.save(true).expect("save");
    // Replayed after an unclean stop: neither counted twice nor alerted again.
    let mut e = RuleEngine::with_state(rules, dir.path().to_path_buf());
    assert!(e.observe_batch(&refs(&evs)).is_empty());
}

#[test]
fn sensitive_audit_actions_fire_and_others_do_not() {
    let evs = vec![
        audit(1, 0, 6035),
        audit(2, 1, 5000),
        audit(3, 2, 4018),
        audit(4, 3, 4018),
        audit(5, 4, 4018),
    ];
    let alerts = engine(&["sensitive_audit"]).observe_batch(&refs(&evs));
    let got: Vec<(&str, usize)> = alerts
        .iter()
        .map(|a| (a.action.1.as_str(), a.count))
        .collect();
    assert_eq!(got, vec![("AuditSettingsUpdated", 1), ("UserDeleted", 3)]);
    assert_eq!(
        alerts[1].summary,
        "Alice Johnson: UserDeleted (Something happened), 3 times within 2s"
    );
    // Actions by name, id or kebab case.
    let r = rule("admins", json!({"kind": "sensitive_audit", "actions": ["AdministratorAdded", 6035, "user-deleted", "4022"]}))
        .expect("valid");
    assert_eq!(r[0].actions, vec![6009, 6035, 4018, 4022]);
}

#[test]
fn a_backlog_is_judged_by_event_time_not_arrival() {
    // 12 failures spread over 3 hours arrive at once, newest first: a trickle, no alert.
    let mut evs: Vec<Event> = (0..12)
        .map(|i| fail(i, i * 900, "bob@example.com", "192.0.2.66"))
        .collect();
    evs.reverse();
    assert!(
        engine(&["brute_force"])
            .observe_batch(&refs(&evs))
            .is_empty()
    );
    let mut e = engine(&["brute_force"]);
    assert!(feed_one_by_one(&mut e, &evs).is_empty());
    // 10 failures within a minute arrive shuffled over two batches: exactly one alert
    // spanning the burst as it happened.
    let evs: Vec<Event> = [7, 2, 9, 0, 5, 1, 8, 3, 6, 4]
        .iter()
        .map(|&i| fail(i, i * 6, "eve@example.com", "192.0.2.70"))
        .collect();
    let mut e = engine(&["brute_force"]);
    let mut alerts = e.observe_batch(&refs(&evs[..5]));
    alerts.extend(e.observe_batch(&refs(&evs[5..])));
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(
        (alerts[0].first, alerts[0].last, alerts[0].count),
        (at(0), at(54), 10)
    );
}

#[test]
fn replays_are_not_counted_twice() {
    let evs: Vec<Event> = (0..6).map(|i| fail(i, i, "bob", "192.0.2.66")).collect();
    let mut e = engine(&["brute_force"]);
    for _ in 0..5 {
        assert!(e.observe_batch(&refs(&evs)).is_empty());
    }
}

#[test]
fn custom_rules_match_streams_actions_outcomes_and_users() {
    let rules = rule(
        "downloads",
        json!({"match": {"streams": ["audit"], "actions": ["FileDownloaded"], "outcome": "success",
                         "users": ["alice johnson"]}, "threshold": 3, "window": "10m", "severity": 8}),
    )
    .expect("valid");
    assert_eq!(rules[0].kind, RuleKind::Custom);
    let evs: Vec<Event> = (0..4).map(|i| audit(i, i * 60, 5009)).collect();
    let alerts = RuleEngine::new(rules).observe_batch(&refs(&evs));
    assert_eq!(alerts.len(), 1);
    assert_eq!((alerts[0].count, alerts[0].severity), (4, 8));
    assert_eq!(
        alerts[0].summary,
        "rule downloads: 4 × FileDownloaded by Alice Johnson from 203.0.113.45 within 3m"
    );
}

#[test]
fn memory_is_bounded_by_max_keys_and_hostile_identities_are_cut() {
    let mut e = engine(&["brute_force", "success_after_failures", "new_ip"]);
    e.set_max_keys(1000);
    let evs: Vec<Event> = (0..5000)
        .map(|i| {
            fail(
                i,
                i,
                &format!("user{i}@example.com"),
                &format!("10.0.{}.{}", i / 256, i % 256),
            )
        })
        .collect();
    for chunk in evs.chunks(500) {
        e.observe_batch(&chunk.iter().collect::<Vec<_>>());
    }
    assert!(e.tracked_keys() <= 3 * 1000, "{}", e.tracked_keys());
    // A 64 KiB login (the event keeps 8 KiB) is one key, shown cut.
    let huge = format!("<!channel>{}", "A".repeat(64 * 1024));
    let evs: Vec<Event> = (0..10)
        .map(|i| fail(9000 + i, 6000 + i, &huge, "192.0.2.1"))
        .collect();
    let alerts = engine(&["brute_force"]).observe_batch(&refs(&evs));
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].key.chars().count(), MAX_SHOWN_CHARS);
    assert!(norm(&huge).len() <= MAX_KEY_BYTES);
}

#[test]
fn rule_tables_are_validated_like_the_rest_of_the_config() {
    let bad = |name: &str, table: Value| -> Vec<String> {
        rule(name, table)
            .expect_err("invalid")
            .into_iter()
            .map(|(k, p)| format!("{k}: {p}"))
            .collect()
    };
    let e = bad(
        "brute_force",
        json!({"threshold": 0, "window": "soon", "by": "host", "bogus": 1}),
    );
    assert!(
        e.iter()
            .any(|s| s.starts_with("rules.brute_force.threshold: 0 is not a whole number")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|s| s.starts_with("rules.brute_force.window: \"soon\" is not a duration")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|s| s.starts_with("rules.brute_force.by: \"host\" is not \"user\" or \"ip\"")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|s| s.starts_with("rules.brute_force.bogus: unknown key")),
        "{e:?}"
    );
    assert!(bad("lockout", json!({"kind": "new_country"}))[0].starts_with("rules.lockout.kind:"));
    assert!(
        bad("mine", json!({"threshold": 3}))[0].starts_with("rules.mine: is not a built-in rule")
    );
    assert!(bad("mine", json!({"kind": "brute-force"}))[0].contains("is not a rule kind"));
    assert!(bad("mine", json!({"match": {}}))[0].starts_with("rules.mine.match: is empty"));
    assert!(
        bad("mine", json!({"match": {"streams": ["logins"]}}))[0]
            .starts_with("rules.mine.match.streams:")
    );
    assert!(
        bad("new_country", json!({"window": "5m"}))[0]
            .starts_with("rules.new_country.window: unknown key")
    );
    assert!(
        bad("sensitive_audit", json!({"actions": ["NoSuchAction"]}))[0]
            .contains("is not a DocSpace MessageAction")
    );
    assert!(bad("Bad-Name", json!({}))[0].starts_with("rules.Bad-Name: rule names"));
    // Environment overrides arrive as strings.
    let r = rule(
        "brute_force",
        json!({"threshold": "5", "window": "90s", "by": "ip"}),
    )
    .expect("valid");
    assert_eq!(
        (r[0].threshold, r[0].window, r[0].by),
        (5, Duration::from_secs(90), By::Ip)
    );
    // Sinks name rules: tables first, built-ins with their defaults, unknown names fail.
    let chosen = select(
        &["brute_force".into(), "lockout".into(), "brute_force".into()],
        &r,
    )
    .expect("ok");
    assert_eq!(chosen.len(), 2);
    assert_eq!(chosen[0].threshold, 5);
    assert_eq!(
        chosen[1],
        RuleConfig::defaults("lockout", RuleKind::Lockout)
    );
    let err = select(&["nope".into()], &r).expect_err("unknown");
    assert!(
        err[0].starts_with("unknown rule \"nope\": define [rules.nope]"),
        "{err:?}"
    );
    assert!(select(&[], &r).is_err());
    assert_eq!(
        RuleConfig::builtin("brute_force").map(|r| (r.threshold, r.window)),
        Some((10, Duration::from_secs(300)))
    );
}

#[test]
fn alerts_as_ecs_documents_pass_the_official_validator() {
    let mut alerts = Vec::new();
    let mut evs: Vec<Event> = (0..12)
        .map(|i| fail(i, i, "bob@example.com", "192.0.2.66"))
        .collect();
    evs.push(row(
        50,
        at(20),
        1023,
        json!({"login": "bob@example.com", "userId": GUEST_USER_ID, "ip": "2a02"}),
    ));
    evs.push(ok(60, 30, "192.0.2.66", "Germany"));
    evs.push(ok(61, 40, "198.51.100.1", "Brazil"));
    evs.push(audit(70, 50, 6035));
    alerts.extend(
        engine(&[
            "brute_force",
            "lockout",
            "success_after_failures",
            "new_country",
            "sensitive_audit",
        ])
        .observe_batch(&refs(&evs)),
    );
    let kinds: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "brute_force",
            "lockout",
            "success_after_failures",
            "new_country",
            "sensitive_audit"
        ]
    );
    let mut ndjson = String::new();
    for a in &alerts {
        let d = to_ecs(a);
        assert_eq!(d["event"]["kind"], "alert");
        assert_eq!(d["rule"]["name"], a.rule.as_str());
        assert_eq!(d["event"]["id"], a.id());
        ndjson.push_str(&serde_json::to_string(&d).expect("json"));
        ndjson.push('\n');
    }
    assert_eq!(to_ecs(&alerts[0])["user"]["name"], "bob@example.com");
    assert_eq!(to_ecs(&alerts[0])["source"]["ip"], "192.0.2.66");
    // The lockout is a failed login too: the brute-force alert of the batch absorbed it.
    assert_eq!((alerts[0].count, alerts[0].events.last()), (13, Some(&50)));
    assert_eq!(to_ecs(&alerts[0])["event"]["duration"], 20_000_000_000_i64);
    assert!(
        to_ecs(&alerts[1])["source"].get("ip").is_none(),
        "truncated IPv6 is no ip"
    );
    let validator = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/ecs/validate_ecs.py");
    let mut child = std::process::Command::new("python3")
        .arg(&validator)
        .args(["--strict", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(ndjson.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("validator");
    assert!(
        out.status.success(),
        "{}\n{}\n{ndjson}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_alert_carries_its_portal_labels_into_ecs() {
    let labelled = Arc::new(
        PortalInfo::new("acme", "https://acme.example.com")
            .with_labels([("customer".to_owned(), "acme".to_owned())]),
    );
    let evs: Vec<Event> = (0..10)
        .map(|i| {
            let mut e = fail(i, i, "bob@example.com", "192.0.2.66");
            e.portal = labelled.clone();
            e
        })
        .collect();
    let alerts = engine(&["brute_force"]).observe_batch(&refs(&evs));
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(
        alerts[0].labels,
        [("customer".to_owned(), "acme".to_owned())]
    );
    let doc = to_ecs(&alerts[0]);
    assert_eq!(doc["labels"], json!({ "customer": "acme" }));
    assert_eq!(doc["organization"]["name"], "acme");
    // An unlabelled portal's alert has no `labels` object at all.
    let plain: Vec<Event> = (0..10)
        .map(|i| fail(i, i, "bob@example.com", "192.0.2.66"))
        .collect();
    let alerts = engine(&["brute_force"]).observe_batch(&refs(&plain));
    assert!(to_ecs(&alerts[0]).get("labels").is_none());
}
