//! Alert rules: a stateful engine that judges DocSpace events and raises [`Alert`]s (brute
//! force, lockout, success after failures, new country or IP address, sensitive audit actions,
//! custom matches), the `[rules.NAME]` config parser, and the ECS form of an alert
//! (`event.kind = "alert"`). [`chat`] renders alerts for chat services and posts them.
//!
//! Invariants:
//! - Rules judge by the event's own time, never by arrival: a batch is judged in (time, id)
//!   order and every window slides over event time, so a backlog is judged as it happened.
//! - A rule fires at most once per key per window: once it fired, events of that key that lie
//!   within one window of the firing event (on either side) are absorbed. Absorbed events of
//!   the same batch are added to the alert of that batch (count, time span, ids), never raise
//!   another.
//! - Replayed events (same DocSpace id and time, as after a restart) are never counted twice.
//! - Memory is bounded: each rule tracks at most [`MAX_KEYS`] keys (stale keys pruned by
//!   window, then the least recently active evicted), each key at most
//!   `max(threshold, 100)` hits; identities longer than [`MAX_KEY_BYTES`] are cut and hashed.
//! - Keys include the portal: `admin` on two portals is two keys.
//! - Nothing here does network IO or panics on input. State lives under the directory given
//!   to [`RuleEngine::with_state`] and is written only by [`RuleEngine::save`] (temp file,
//!   fsync, rename, fsync of the directory), which the sink calls after it posted the alerts,
//!   so a crash replays (at least once) instead of losing an alert.
//! - Alert text ([`Alert::summary`] and every field) is plain and unescaped: every formatter
//!   escapes it for its service. Identities in alert text are cut to [`MAX_SHOWN_CHARS`].

pub mod chat;

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::{OffsetDateTime, UtcOffset};
use tracing::warn;

use crate::actions;
use crate::event::{Event, GUEST_USER_ID, Outcome, Stream, format_utc_millis};
use crate::transform::ECS_VERSION;

/// Most keys one rule tracks; beyond it the least recently active key is forgotten.
pub const MAX_KEYS: usize = 100_000;
/// Most event ids an alert lists.
pub const MAX_ALERT_EVENTS: usize = 20;
/// Largest `threshold` a rule accepts.
pub const MAX_THRESHOLD: usize = 1000;
/// Identities longer than this (bytes) are cut and suffixed with a hash of the whole value.
pub const MAX_KEY_BYTES: usize = 256;
/// Identities and values in alert text are cut to this many characters.
pub const MAX_SHOWN_CHARS: usize = 120;
/// Most related users or addresses an alert names.
pub const MAX_RELATED: usize = 5;
/// Fewest hits a key keeps (more when the threshold is higher), so counts stay exact.
const MIN_HITS_KEPT: usize = 100;
/// Countries remembered per user by `new_country`.
const MAX_COUNTRIES_PER_USER: usize = 64;
/// Addresses remembered per user by `new_ip`.
const MAX_IPS_PER_USER: usize = 256;
/// Version of the state files.
const STATE_VERSION: u32 = 1;
/// Window state is written at most this often (novelty baselines are written at once).
const WINDOW_SAVE_INTERVAL: Duration = Duration::from_secs(30);

/// Default `sensitive_audit` actions: audit settings, admin rights, user types, the owner,
/// deletions of users, and two-factor authentication switched off.
pub const DEFAULT_SENSITIVE_ACTIONS: &[i64] = &[
    6035, // AuditSettingsUpdated
    6009, // AdministratorAdded
    6010, // AdministratorOpenedFullAccess
    6016, // ProductAddedAdministrator
    6022, // OwnerUpdated
    4019, // UsersUpdatedType (e.g. a user made DocSpace admin)
    4018, // UserDeleted
    4022, // UsersDeleted
    6036, // TwoFactorAuthenticationDisabled
];

// ---------------------------------------------------------------------------------------------
// Configuration

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// Failed logins ≥ threshold within the window, per login or per IP.
    BruteForce,
    /// A `LoginFailBruteForce` (1023) event.
    Lockout,
    /// A successful login after ≥ threshold failures within the window (same login or IP).
    SuccessAfterFailures,
    /// A user's first successful login from a country not seen before for that user.
    NewCountry,
    /// A user's first successful login from an IP address not seen before for that user.
    NewIp,
    /// Any of a list of audit actions.
    SensitiveAudit,
    /// Events matching `match` ≥ threshold within the window.
    Custom,
}

impl RuleKind {
    /// The built-in rules, which a sink may name without a `[rules.NAME]` table.
    pub const BUILTIN: [RuleKind; 6] = [
        RuleKind::BruteForce,
        RuleKind::Lockout,
        RuleKind::SuccessAfterFailures,
        RuleKind::NewCountry,
        RuleKind::NewIp,
        RuleKind::SensitiveAudit,
    ];

    /// The config spelling (`brute_force`, …, `custom`).
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::BruteForce => "brute_force",
            RuleKind::Lockout => "lockout",
            RuleKind::SuccessAfterFailures => "success_after_failures",
            RuleKind::NewCountry => "new_country",
            RuleKind::NewIp => "new_ip",
            RuleKind::SensitiveAudit => "sensitive_audit",
            RuleKind::Custom => "custom",
        }
    }

    /// Parses the config spelling.
    pub fn parse(s: &str) -> Option<RuleKind> {
        RuleKind::BUILTIN
            .into_iter()
            .chain([RuleKind::Custom])
            .find(|k| k.as_str() == s)
    }

    /// A short human title.
    pub fn title(self) -> &'static str {
        match self {
            RuleKind::BruteForce => "Brute-force login attempts",
            RuleKind::Lockout => "Login locked out",
            RuleKind::SuccessAfterFailures => "Login succeeded after failures",
            RuleKind::NewCountry => "Login from a new country",
            RuleKind::NewIp => "Login from a new IP address",
            RuleKind::SensitiveAudit => "Sensitive audit action",
            RuleKind::Custom => "Rule matched",
        }
    }

    /// Severity on the CEF scale (0–10) unless the rule sets `severity`.
    fn default_severity(self) -> u8 {
        match self {
            RuleKind::SuccessAfterFailures => 9,
            RuleKind::BruteForce | RuleKind::Lockout => 7,
            RuleKind::NewCountry | RuleKind::SensitiveAudit => 6,
            RuleKind::Custom => 5,
            RuleKind::NewIp => 4,
        }
    }

    fn keys(self) -> &'static [&'static str] {
        match self {
            RuleKind::BruteForce | RuleKind::SuccessAfterFailures => {
                &["kind", "threshold", "window", "by", "severity"]
            }
            RuleKind::Lockout => &["kind", "window", "by", "severity"],
            RuleKind::NewCountry | RuleKind::NewIp => &["kind", "severity"],
            RuleKind::SensitiveAudit => &["kind", "actions", "window", "severity"],
            RuleKind::Custom => &["kind", "match", "threshold", "window", "by", "severity"],
        }
    }
}

impl std::fmt::Display for RuleKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum By {
    /// The login name as typed (failed logins), else the display name, else the user id.
    User,
    /// The client address.
    Ip,
    /// `success_after_failures` only: failures of the same login or from the same address.
    Any,
}

impl By {
    /// `user`, `ip` or `any`.
    pub fn as_str(self) -> &'static str {
        match self {
            By::User => "user",
            By::Ip => "ip",
            By::Any => "any",
        }
    }
}

/// The `match` of a custom rule: every listed criterion must hold (empty = any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Match {
    /// Streams.
    pub streams: Vec<Stream>,
    /// Action codes.
    pub actions: Vec<i64>,
    /// Outcomes.
    pub outcomes: Vec<Outcome>,
    /// Logins, display names or user ids, compared case-insensitively.
    pub users: Vec<String>,
}

impl Match {
    /// Whether an event matches.
    pub fn accepts(&self, ev: &Event) -> bool {
        (self.streams.is_empty() || self.streams.contains(&ev.stream))
            && (self.actions.is_empty() || self.actions.contains(&ev.action_id))
            && (self.outcomes.is_empty() || self.outcomes.contains(&ev.semantics().outcome))
            && (self.users.is_empty()
                || [ev.login(), ev.user(), ev.user_id()]
                    .into_iter()
                    .flatten()
                    .any(|u| self.users.iter().any(|m| m.eq_ignore_ascii_case(u.trim()))))
    }
}

/// One validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleConfig {
    /// The `[rules.NAME]` table name (or the built-in name).
    pub name: String,
    /// What it does.
    pub kind: RuleKind,
    /// Events needed within the window (1 for rules that fire on one event).
    pub threshold: usize,
    /// Sliding window, and the silence after a firing.
    pub window: Duration,
    /// What it counts by.
    pub by: By,
    /// `sensitive_audit`: the action codes.
    pub actions: Vec<i64>,
    /// `custom`: which events count.
    pub matcher: Match,
    /// Severity (0–10).
    pub severity: u8,
}

impl RuleConfig {
    /// The defaults of a rule kind, under `name`.
    pub fn defaults(name: &str, kind: RuleKind) -> RuleConfig {
        let (threshold, window, by) = match kind {
            RuleKind::BruteForce => (10, 300, By::User),
            RuleKind::SuccessAfterFailures => (5, 600, By::Any),
            RuleKind::NewCountry | RuleKind::NewIp => (1, 0, By::User),
            RuleKind::Lockout | RuleKind::SensitiveAudit | RuleKind::Custom => (1, 300, By::User),
        };
        RuleConfig {
            name: name.to_owned(),
            kind,
            threshold,
            window: Duration::from_secs(window),
            by,
            actions: if kind == RuleKind::SensitiveAudit {
                DEFAULT_SENSITIVE_ACTIONS.to_vec()
            } else {
                Vec::new()
            },
            matcher: Match::default(),
            severity: kind.default_severity(),
        }
    }

    /// A built-in rule with its defaults, by name.
    pub fn builtin(name: &str) -> Option<RuleConfig> {
        RuleKind::BUILTIN
            .into_iter()
            .find(|k| k.as_str() == name)
            .map(|k| RuleConfig::defaults(name, k))
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX / 4)
    }

    fn hits_kept(&self) -> usize {
        self.threshold.max(MIN_HITS_KEPT)
    }
}

/// A config problem: the dotted key (`rules.bf.threshold`) and what is wrong with it.
pub type Problem = (String, String);

/// Validates every `[rules.NAME]` table (the map under `rules`). Unknown keys are errors; the
/// kind is the table name when it is a built-in name, else `kind`, else `custom` when the
/// table has a `match`.
pub fn parse_rules(raw: &Map<String, Value>) -> Result<Vec<RuleConfig>, Vec<Problem>> {
    let mut errs = Vec::new();
    let mut out = Vec::new();
    for (name, value) in raw {
        let key = format!("rules.{name}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            errs.push((
                key,
                "rule names may hold only lowercase ASCII letters, digits and `_`".to_owned(),
            ));
            continue;
        }
        let Some(table) = value.as_object() else {
            errs.push((
                key,
                "must be a table, e.g. [rules.NAME] with threshold = 10".to_owned(),
            ));
            continue;
        };
        if let Some(rule) = parse_rule(name, table, &mut errs) {
            out.push(rule);
        }
    }
    if errs.is_empty() { Ok(out) } else { Err(errs) }
}

fn kind_list() -> String {
    RuleKind::BUILTIN
        .iter()
        .chain([RuleKind::Custom].iter())
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn parse_rule(name: &str, t: &Map<String, Value>, errs: &mut Vec<Problem>) -> Option<RuleConfig> {
    let key = format!("rules.{name}");
    let before = errs.len();
    let builtin = RuleKind::BUILTIN.into_iter().find(|k| k.as_str() == name);
    let kind = match (builtin, t.get("kind")) {
        (Some(b), None) => b,
        (Some(b), Some(v)) if v.as_str() == Some(b.as_str()) => b,
        (Some(b), Some(_)) => {
            errs.push((
                format!("{key}.kind"),
                format!("the built-in rule {name} is always kind = \"{b}\"; give a rule of another kind its own table name"),
            ));
            return None;
        }
        (None, Some(v)) => match v.as_str().and_then(RuleKind::parse) {
            Some(k) => k,
            None => {
                errs.push((
                    format!("{key}.kind"),
                    format!("{v} is not a rule kind; use one of {}", kind_list()),
                ));
                return None;
            }
        },
        (None, None) if t.contains_key("match") => RuleKind::Custom,
        (None, None) => {
            errs.push((
                key,
                format!(
                    "is not a built-in rule ({}): set kind = \"…\", or match = {{ streams = […], actions = […], outcome = \"…\" }} for a custom rule",
                    RuleKind::BUILTIN.map(RuleKind::as_str).join(", ")
                ),
            ));
            return None;
        }
    };
    let allowed = kind.keys();
    for k in t.keys() {
        if !allowed.contains(&k.as_str()) {
            errs.push((
                format!("{key}.{k}"),
                format!(
                    "unknown key; a {kind} rule takes {}",
                    allowed
                        .iter()
                        .filter(|a| **a != "kind")
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    let mut rule = RuleConfig::defaults(name, kind);
    if let Some(v) = t.get("threshold") {
        match int_value(v) {
            Some(n) if (1..=MAX_THRESHOLD as i64).contains(&n) => rule.threshold = n as usize,
            _ => errs.push((
                format!("{key}.threshold"),
                format!("{v} is not a whole number between 1 and {MAX_THRESHOLD}"),
            )),
        }
    }
    if let Some(v) = t.get("window") {
        match v.as_str().map(|s| humantime::parse_duration(s.trim())) {
            Some(Ok(d)) if d >= Duration::from_secs(1) && d <= Duration::from_secs(30 * 86_400) => {
                rule.window = d;
            }
            Some(Ok(_)) => errs.push((
                format!("{key}.window"),
                "must be between 1s and 30d".to_owned(),
            )),
            _ => errs.push((
                format!("{key}.window"),
                format!("{v} is not a duration such as \"5m\" or \"1h\""),
            )),
        }
    }
    if let Some(v) = t.get("by") {
        let any_ok = kind == RuleKind::SuccessAfterFailures;
        match v.as_str() {
            Some("user") => rule.by = By::User,
            Some("ip") => rule.by = By::Ip,
            Some("any") if any_ok => rule.by = By::Any,
            _ => errs.push((
                format!("{key}.by"),
                if any_ok {
                    format!("{v} is not \"user\", \"ip\" or \"any\"")
                } else {
                    format!("{v} is not \"user\" or \"ip\"")
                },
            )),
        }
    }
    if let Some(v) = t.get("severity") {
        match int_value(v) {
            Some(n) if (0..=10).contains(&n) => rule.severity = n as u8,
            _ => errs.push((
                format!("{key}.severity"),
                format!("{v} is not a whole number between 0 and 10"),
            )),
        }
    }
    if let Some(v) = t.get("actions") {
        let list = action_list(errs, &format!("{key}.actions"), v);
        if list.is_empty() {
            errs.push((
                format!("{key}.actions"),
                "is empty; list action ids or names, e.g. [6035, \"AdministratorAdded\"]"
                    .to_owned(),
            ));
        }
        rule.actions = list;
    }
    if kind == RuleKind::Custom {
        match t.get("match") {
            Some(Value::Object(m)) => rule.matcher = parse_match(errs, &format!("{key}.match"), m),
            Some(other) => errs.push((
                format!("{key}.match"),
                format!("{other} is not a table such as {{ streams = [\"audit\"], actions = [\"FileDownloaded\"] }}"),
            )),
            None => errs.push((
                format!("{key}.match"),
                "missing: a custom rule needs match = { streams = […], actions = […], outcome = \"…\", users = […] }".to_owned(),
            )),
        }
    }
    (errs.len() == before).then_some(rule)
}

fn parse_match(errs: &mut Vec<Problem>, key: &str, m: &Map<String, Value>) -> Match {
    let mut out = Match::default();
    for k in m.keys() {
        if !["streams", "actions", "outcome", "users"].contains(&k.as_str()) {
            errs.push((
                format!("{key}.{k}"),
                "unknown key; match takes streams, actions, outcome, users".to_owned(),
            ));
        }
    }
    for v in list_of(m.get("streams")) {
        match v.as_str().and_then(Stream::parse) {
            Some(s) if !out.streams.contains(&s) => out.streams.push(s),
            Some(_) => {}
            None => errs.push((
                format!("{key}.streams"),
                format!("{v} is not \"login\" or \"audit\""),
            )),
        }
    }
    if let Some(v) = m.get("actions") {
        out.actions = action_list(errs, &format!("{key}.actions"), v);
    }
    for v in list_of(m.get("outcome")) {
        match v.as_str().and_then(Outcome::parse) {
            Some(o) => out.outcomes.push(o),
            None => errs.push((
                format!("{key}.outcome"),
                format!("{v} is not \"success\", \"failure\" or \"unknown\""),
            )),
        }
    }
    for v in list_of(m.get("users")) {
        match v.as_str().map(str::trim).filter(|s| !s.is_empty()) {
            Some(s) => out.users.push(s.to_owned()),
            None => errs.push((
                format!("{key}.users"),
                format!("{v} is not a login, display name or user id"),
            )),
        }
    }
    if out == Match::default() {
        errs.push((
            key.to_owned(),
            "is empty: it would alert on every event; name at least one of streams, actions, outcome, users".to_owned(),
        ));
    }
    out
}

/// A value or a list of values (environment overrides give scalars or strings).
fn list_of(v: Option<&Value>) -> Vec<Value> {
    match v {
        None => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(other) => vec![other.clone()],
    }
}

fn int_value(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Action ids or names (`6035`, `"6035"`, `"AuditSettingsUpdated"`, `"audit-settings-updated"`).
fn action_list(errs: &mut Vec<Problem>, key: &str, v: &Value) -> Vec<i64> {
    let mut out = Vec::new();
    for a in list_of(Some(v)) {
        let code = match &a {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok().or_else(|| {
                actions::by_name(s)
                    .or_else(|| {
                        let kebab = s.trim().to_ascii_lowercase();
                        actions::ACTIONS
                            .iter()
                            .find(|a| actions::kebab_case(a.name) == kebab)
                    })
                    .map(|a| i64::from(a.code))
            }),
            _ => None,
        };
        match code {
            Some(c) if !out.contains(&c) => out.push(c),
            Some(_) => {}
            None => errs.push((
                key.to_owned(),
                format!("{a} is not a DocSpace MessageAction name or code"),
            )),
        }
    }
    out
}

/// The rules a sink names, in its order: each a `[rules.NAME]` table or a built-in rule with
/// its defaults. Each problem is a sentence for the sink's `rules` key.
pub fn select(names: &[String], defined: &[RuleConfig]) -> Result<Vec<RuleConfig>, Vec<String>> {
    if names.is_empty() {
        return Err(vec![format!(
            "is empty: name the rules that raise alerts on this sink, e.g. [\"brute_force\", \"lockout\"] (built-in: {})",
            RuleKind::BUILTIN.map(RuleKind::as_str).join(", ")
        )]);
    }
    let mut out: Vec<RuleConfig> = Vec::new();
    let mut errs = Vec::new();
    for n in names {
        if out.iter().any(|r| &r.name == n) {
            continue;
        }
        match defined
            .iter()
            .find(|r| &r.name == n)
            .cloned()
            .or_else(|| RuleConfig::builtin(n))
        {
            Some(r) => out.push(r),
            None => errs.push(format!(
                "unknown rule {n:?}: define [rules.{n}] or use a built-in rule ({})",
                RuleKind::BUILTIN.map(RuleKind::as_str).join(", ")
            )),
        }
    }
    if errs.is_empty() { Ok(out) } else { Err(errs) }
}

// ---------------------------------------------------------------------------------------------
// Alerts

/// A piece of alert text: our own words, or a value taken from an event (attacker-controlled:
/// formatters show it literally, neutralising markup, mentions and links).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text written by this program.
    Text(String),
    /// A value from an event (a login, a name, an address, DocSpace's text).
    Value(String),
}

/// One label/value pair of an alert, for fact lists and fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// The label (our words).
    pub label: &'static str,
    /// The value.
    pub value: String,
    /// Whether the value comes from an event (attacker-controlled).
    pub untrusted: bool,
}

/// One alert: a rule fired for a key (a login, a user or an address).
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// The rule's name.
    pub rule: String,
    /// The rule's kind.
    pub kind: RuleKind,
    /// What `key` is: a user (login) or an address.
    pub by: By,
    /// The login, user or address the alert is about (as seen, cut to [`MAX_SHOWN_CHARS`]).
    pub key: String,
    /// Events that make up the alert (failures counted, lockouts, matches).
    pub count: usize,
    /// Time of the first of them.
    pub first: OffsetDateTime,
    /// Time of the last of them (the firing event or a later absorbed one).
    pub last: OffsetDateTime,
    /// DocSpace ids of the events, at most [`MAX_ALERT_EVENTS`], oldest first.
    pub events: Vec<i64>,
    /// The portal's table name.
    pub portal: String,
    /// The portal's base URL.
    pub portal_url: String,
    /// Stream of the firing event.
    pub stream: Stream,
    /// One plain-text sentence: what happened, to whom, from where (unescaped).
    pub summary: String,
    /// The same sentence in pieces, our words apart from event values.
    pub parts: Vec<Part>,
    /// Severity (0–10).
    pub severity: u8,
    /// The user involved (login as typed or display name).
    pub user: Option<String>,
    /// The address of the firing event.
    pub ip: Option<String>,
    /// Its country.
    pub country: Option<String>,
    /// Its city.
    pub city: Option<String>,
    /// Action code and `MessageAction` name of the firing event.
    pub action: (i64, String),
    /// Outcome of the firing event.
    pub outcome: Outcome,
    /// ECS categories of the firing event.
    pub category: &'static [&'static str],
    /// DocSpace's own sentence for the firing event, or what was known before (new country).
    pub detail: Option<String>,
    /// Other users involved (distinct, at most [`MAX_RELATED`]).
    pub related_users: Vec<String>,
    /// Other addresses involved (distinct, at most [`MAX_RELATED`]).
    pub related_ips: Vec<String>,
    /// How many distinct users (logins) the alert's events involve.
    pub user_count: usize,
    /// How many distinct addresses the alert's events involve.
    pub ip_count: usize,
    /// The portal's UTC offset at the firing event, when its `date` carried one.
    pub local_offset: Option<UtcOffset>,
    /// Earlier values for novelty rules (countries or addresses seen before).
    pub known: Vec<String>,
}

impl Alert {
    /// A stable id: the same rule, portal, key and first event give the same id, so a replayed
    /// alert can be recognised downstream.
    pub fn id(&self) -> String {
        let first = self.events.first().copied().unwrap_or_default();
        format!(
            "{:016x}",
            fnv64(
                format!(
                    "{}\u{1f}{}\u{1f}{}\u{1f}{first}",
                    self.portal,
                    self.rule,
                    self.key.to_lowercase()
                )
                .as_bytes()
            )
        )
    }

    /// `last − first`.
    pub fn span(&self) -> Duration {
        let d = self.last - self.first;
        Duration::try_from(d).unwrap_or(Duration::ZERO)
    }

    /// A human title: the rule kind's, or the rule name for a custom rule.
    pub fn title(&self) -> String {
        match self.kind {
            RuleKind::Custom => format!("Rule {} matched", self.rule),
            k => k.title().to_owned(),
        }
    }

    /// When, in UTC and (if known) in the portal's local time:
    /// `2025-01-15 13:30:15 – 13:32:07 UTC (portal 14:30:15 – 14:32:07 +01:00)`.
    pub fn when(&self) -> String {
        let range = |a: OffsetDateTime, b: OffsetDateTime| {
            let fa = hms(a);
            if a == b {
                format!("{} {fa}", a.date())
            } else if a.date() == b.date() {
                format!("{} {fa} – {}", a.date(), hms(b))
            } else {
                format!("{} {fa} – {} {}", a.date(), b.date(), hms(b))
            }
        };
        let utc = range(self.first, self.last);
        // The portal's view of an instant at the edge of the calendar may not exist (an event
        // at 9999-12-31T23:59Z seen from +01:00): then only UTC is shown.
        let local = self
            .local_offset
            .filter(|off| *off != UtcOffset::UTC)
            .and_then(|off| {
                Some((
                    off,
                    self.first.checked_to_offset(off)?,
                    self.last.checked_to_offset(off)?,
                ))
            });
        match local {
            Some((off, a, b)) => {
                let local = if a == b {
                    hms(a)
                } else if a.date() == b.date() {
                    format!("{} – {}", hms(a), hms(b))
                } else {
                    format!("{} {} – {} {}", a.date(), hms(a), b.date(), hms(b))
                };
                let local = if a.date() != self.first.date() && a == b {
                    format!("{} {local}", a.date())
                } else {
                    local
                };
                format!("{utc} UTC (portal time {local} {})", fmt_offset(off))
            }
            None => format!("{utc} UTC"),
        }
    }

    /// Label/value pairs a formatter shows (plain text; the formatter escapes).
    pub fn facts(&self) -> Vec<Fact> {
        let mut f = Vec::new();
        let mut put = |label: &'static str, value: String, untrusted: bool| {
            f.push(Fact {
                label,
                value,
                untrusted,
            })
        };
        match self.by {
            By::Ip => put("Address", self.key.clone(), true),
            _ => put(
                if self.stream == Stream::Login
                    && !matches!(self.kind, RuleKind::NewCountry | RuleKind::NewIp)
                {
                    "Login"
                } else {
                    "User"
                },
                self.key.clone(),
                true,
            ),
        }
        if self.by != By::Ip
            && let Some(ip) = &self.ip
        {
            put("Address", ip.clone(), true);
        }
        if self.by == By::Ip
            && let Some(u) = &self.user
        {
            put("Login", u.clone(), true);
        }
        let place = match (&self.country, &self.city) {
            (Some(c), Some(city)) => Some(format!("{c}, {city}")),
            (Some(c), None) => Some(c.clone()),
            (None, Some(city)) => Some(city.clone()),
            (None, None) => None,
        };
        if let Some(p) = place {
            put("Location", p, true);
        }
        if !self.known.is_empty() {
            put("Seen before", self.known.join(", "), true);
        }
        let others = |v: &[String], skip: &str| -> Option<String> {
            let rest: Vec<&str> = v
                .iter()
                .map(String::as_str)
                .filter(|s| *s != skip)
                .collect();
            (!rest.is_empty()).then(|| rest.join(", "))
        };
        let main_ip = match self.by {
            By::Ip => self.key.as_str(),
            _ => self.ip.as_deref().unwrap_or_default(),
        };
        if let Some(o) = others(&self.related_ips, main_ip) {
            put("Other addresses", o, true);
        }
        let main_user = match self.by {
            By::Ip => self.user.as_deref().unwrap_or_default(),
            _ => self.key.as_str(),
        };
        if let Some(o) = others(&self.related_users, main_user) {
            put("Logins tried", o, true);
        }
        put("Events", self.count.to_string(), false);
        put("When", self.when(), false);
        put(
            "Action",
            format!("{} ({})", self.action.1, self.action.0),
            false,
        );
        if let Some(d) = &self.detail {
            put("Detail", d.clone(), true);
        }
        put("Rule", self.rule.clone(), false);
        f
    }

    /// Rebuilds `summary` and `parts` from the fields (after absorbed events changed them).
    fn describe(&mut self) {
        let mut p: Vec<Part> = Vec::new();
        let t = |p: &mut Vec<Part>, s: &str| p.push(Part::Text(s.to_owned()));
        let v = |p: &mut Vec<Part>, s: &str| p.push(Part::Value(s.to_owned()));
        let who = self.key.clone();
        let span = fmt_span(self.span());
        let n = self.count;
        let ips: Vec<String> = distinct(self.ip.iter().chain(self.related_ips.iter()))
            .into_iter()
            .map(str::to_owned)
            .collect();
        let users: Vec<String> = distinct(self.related_users.iter())
            .into_iter()
            .map(str::to_owned)
            .collect();
        let (n_ips, n_users) = (
            self.ip_count.max(ips.len()),
            self.user_count.max(users.len()),
        );
        let from = |p: &mut Vec<Part>| match (n_ips, ips.first()) {
            (1, Some(one)) => {
                t(p, " from ");
                v(p, one);
            }
            (0 | 1, _) => {}
            (k, _) => t(p, &format!(" from {k} addresses")),
        };
        match (self.kind, self.by) {
            (RuleKind::BruteForce, By::Ip) => {
                t(&mut p, &format!("{n} failed logins from "));
                v(&mut p, &who);
                match (n_users, users.first()) {
                    (1, Some(one)) => {
                        t(&mut p, " for ");
                        v(&mut p, one);
                    }
                    (0 | 1, _) => {}
                    (k, _) => t(&mut p, &format!(" for {k} logins")),
                }
                t(&mut p, &format!(" within {span}"));
            }
            (RuleKind::BruteForce, _) => {
                t(&mut p, &format!("{n} failed logins for "));
                v(&mut p, &who);
                from(&mut p);
                t(&mut p, &format!(" within {span}"));
            }
            (RuleKind::Lockout, By::Ip) => {
                t(&mut p, "logins from ");
                v(&mut p, &who);
                t(&mut p, " locked out after too many attempts");
                if n > 1 {
                    t(&mut p, &format!(" ({n} attempts refused)"));
                }
            }
            (RuleKind::Lockout, _) => {
                v(&mut p, &who);
                t(&mut p, " locked out after too many failed attempts");
                from(&mut p);
                if n > 1 {
                    t(&mut p, &format!(" ({n} attempts refused)"));
                }
            }
            (RuleKind::SuccessAfterFailures, _) => {
                v(&mut p, &who);
                t(&mut p, " logged in successfully");
                if let Some(i) = &self.ip {
                    t(&mut p, " from ");
                    v(&mut p, i);
                }
                t(
                    &mut p,
                    &format!(
                        " after {} failed attempts within {span}",
                        n.saturating_sub(1)
                    ),
                );
                match (n_users, users.first()) {
                    (1, Some(one)) if !one.eq_ignore_ascii_case(&who) => {
                        t(&mut p, " for ");
                        v(&mut p, one);
                    }
                    (0 | 1, _) => {}
                    (k, _) => t(&mut p, &format!(" for {k} logins")),
                }
            }
            (RuleKind::NewCountry, _) => {
                v(&mut p, &who);
                t(
                    &mut p,
                    " logged in from a country not seen before for this user: ",
                );
                v(&mut p, self.country.as_deref().unwrap_or("?"));
                if let Some(i) = &self.ip {
                    t(&mut p, " (");
                    v(&mut p, i);
                    t(&mut p, ")");
                }
            }
            (RuleKind::NewIp, _) => {
                v(&mut p, &who);
                t(
                    &mut p,
                    " logged in from an address not seen before for this user: ",
                );
                v(&mut p, self.ip.as_deref().unwrap_or("?"));
                if let Some(c) = &self.country {
                    t(&mut p, " (");
                    v(&mut p, c);
                    t(&mut p, ")");
                }
            }
            (RuleKind::SensitiveAudit, _) => {
                v(&mut p, &who);
                t(&mut p, &format!(": {}", self.action.1));
                if let Some(d) = &self.detail {
                    t(&mut p, " (");
                    v(&mut p, d);
                    t(&mut p, ")");
                }
                if n > 1 {
                    t(&mut p, &format!(", {n} times within {span}"));
                }
            }
            (RuleKind::Custom, _) => {
                t(
                    &mut p,
                    &format!("rule {}: {n} × {} by ", self.rule, self.action.1),
                );
                v(&mut p, &who);
                from(&mut p);
                if n > 1 {
                    t(&mut p, &format!(" within {span}"));
                }
            }
        }
        self.summary = p
            .iter()
            .map(|x| match x {
                Part::Text(s) | Part::Value(s) => s.as_str(),
            })
            .collect();
        self.parts = p;
    }

    fn absorb(&mut self, t: OffsetDateTime, id: i64, user: Option<&str>, ip: Option<&str>) {
        self.count += 1;
        if t < self.first {
            self.first = t;
        }
        if t > self.last {
            self.last = t;
        }
        if self.events.len() < MAX_ALERT_EVENTS && !self.events.contains(&id) {
            self.events.push(id);
        }
        if let Some(u) = user {
            push_distinct(&mut self.related_users, u);
        }
        if let Some(i) = ip {
            push_distinct(&mut self.related_ips, i);
        }
    }
}

fn distinct<'a>(it: impl Iterator<Item = &'a String>) -> Vec<&'a str> {
    let mut v: Vec<&str> = Vec::new();
    for s in it {
        if !v.contains(&s.as_str()) {
            v.push(s);
        }
    }
    v
}

/// Distinct values collected while a batch is judged, before they are counted and cut to
/// [`MAX_RELATED`].
const MAX_COLLECTED: usize = 1000;

fn push_distinct(v: &mut Vec<String>, s: &str) {
    if v.len() < MAX_COLLECTED && !v.iter().any(|x| x == s) {
        v.push(shown(s));
    }
}

fn hms(t: OffsetDateTime) -> String {
    format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
}

fn fmt_offset(off: UtcOffset) -> String {
    let (h, m, _) = off.as_hms();
    let sign = if off.is_negative() { '-' } else { '+' };
    format!("{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
}

fn fmt_span(d: Duration) -> String {
    let secs = d.as_secs().max(1);
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// Cuts a value for display to [`MAX_SHOWN_CHARS`] characters.
pub fn shown(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() <= MAX_SHOWN_CHARS {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(MAX_SHOWN_CHARS - 1).collect();
    out.push('…');
    out
}

/// FNV-1a, 64 bit: a stable hash for ids and cut keys (not for security).
fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A map key for an identity: trimmed, lower-case, cut to [`MAX_KEY_BYTES`] with a hash of
/// the whole value.
fn norm(s: &str) -> String {
    let lower = s.trim().to_lowercase();
    if lower.len() <= MAX_KEY_BYTES {
        return lower;
    }
    let mut end = MAX_KEY_BYTES - 20;
    while !lower.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}#{:016x}", &lower[..end], fnv64(lower.as_bytes()))
}

fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The identity of the actor: the login as typed, else the display name, else the user id
/// (never the shared Guest id).
fn identity(ev: &Event) -> Option<&str> {
    ev.login()
        .or(ev.user())
        .or(ev.user_id().filter(|u| *u != GUEST_USER_ID))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn ip_of(ev: &Event) -> Option<&str> {
    ev.ip().map(str::trim).filter(|s| !s.is_empty())
}

fn portal_key(ev: &Event, k: &str) -> String {
    format!("{}\u{1f}{}", ev.portal.name, norm(k))
}

fn is_login_start(ev: &Event) -> bool {
    let sem = ev.semantics();
    ev.stream == Stream::Login && sem.outcome == Outcome::Success && sem.kind.contains(&"start")
}

fn is_login_failure(ev: &Event) -> bool {
    ev.stream == Stream::Login && ev.semantics().outcome == Outcome::Failure
}

fn local_offset(ev: &Event) -> Option<UtcOffset> {
    Some(ev.offset)
}

/// A new alert for `ev` (the firing event), before `describe`.
fn new_alert(rule: &RuleConfig, by: By, key: &str, ev: &Event) -> Alert {
    let sem = ev.semantics();
    Alert {
        rule: rule.name.clone(),
        kind: rule.kind,
        by,
        key: shown(key),
        count: 1,
        first: ev.time,
        last: ev.time,
        events: vec![ev.id],
        portal: ev.portal.name.clone(),
        portal_url: ev.portal.url.clone(),
        stream: ev.stream,
        summary: String::new(),
        parts: Vec::new(),
        severity: rule.severity,
        user: identity(ev).map(shown),
        ip: ip_of(ev).map(shown),
        country: ev.country().map(shown),
        city: ev.city().map(shown),
        action: (ev.action_id, ev.action_name().into_owned()),
        outcome: sem.outcome,
        category: sem.category,
        detail: ev.action_text().map(shown),
        related_users: identity(ev).map(shown).into_iter().collect(),
        related_ips: ip_of(ev).map(shown).into_iter().collect(),
        user_count: 0,
        ip_count: 0,
        local_offset: local_offset(ev),
        known: Vec::new(),
    }
}

/// The ECS document of an alert (`event.kind = "alert"`), valid under
/// `validate_ecs.py --strict`.
pub fn to_ecs(a: &Alert) -> Value {
    let mut event = Map::new();
    event.insert("kind".into(), json!("alert"));
    event.insert("category".into(), json!(a.category));
    event.insert("type".into(), json!(["info"]));
    event.insert("action".into(), json!(a.kind.as_str().replace('_', "-")));
    event.insert("outcome".into(), json!(a.outcome.as_str()));
    event.insert("id".into(), json!(a.id()));
    event.insert("code".into(), json!(a.action.0.to_string()));
    event.insert("dataset".into(), json!("docspace.alert"));
    event.insert("module".into(), json!("docspace"));
    event.insert("provider".into(), json!("docspace-siem"));
    event.insert("severity".into(), json!(a.severity));
    event.insert("start".into(), json!(format_utc_millis(a.first)));
    event.insert("end".into(), json!(format_utc_millis(a.last)));
    let nanos = (a.last - a.first).whole_nanoseconds();
    event.insert(
        "duration".into(),
        json!(i64::try_from(nanos).unwrap_or(i64::MAX)),
    );
    event.insert("reason".into(), json!(keyword(&a.summary)));
    event.insert(
        "created".into(),
        json!(format_utc_millis(OffsetDateTime::now_utc())),
    );

    let mut doc = Map::new();
    doc.insert("@timestamp".into(), json!(format_utc_millis(a.last)));
    doc.insert("ecs".into(), json!({ "version": ECS_VERSION }));
    doc.insert("event".into(), Value::Object(event));
    doc.insert("message".into(), json!(a.summary));
    doc.insert(
        "rule".into(),
        json!({
            "name": a.rule,
            "category": a.kind.as_str(),
            "description": a.title(),
            "ruleset": "docspace-siem",
        }),
    );
    let user = match a.by {
        By::Ip => a.user.as_deref(),
        _ => Some(a.key.as_str()),
    };
    if let Some(u) = user {
        doc.insert("user".into(), json!({ "name": keyword(u) }));
    }
    let addr = match a.by {
        By::Ip => Some(a.key.as_str()),
        _ => a.ip.as_deref(),
    };
    let mut source = Map::new();
    if let Some(ip) = addr.and_then(|s| s.parse::<std::net::IpAddr>().ok()) {
        source.insert("ip".into(), json!(ip.to_string()));
    }
    if let Some(s) = addr {
        source.insert("address".into(), json!(keyword(s)));
    }
    let mut geo = Map::new();
    if let Some(c) = &a.country {
        geo.insert("country_name".into(), json!(keyword(c)));
    }
    if let Some(c) = &a.city {
        geo.insert("city_name".into(), json!(keyword(c)));
    }
    if !geo.is_empty() {
        source.insert("geo".into(), Value::Object(geo));
    }
    if !source.is_empty() {
        doc.insert("source".into(), Value::Object(source));
    }
    let mut related = Map::new();
    let mut users: Vec<String> = Vec::new();
    for u in user
        .into_iter()
        .chain(a.related_users.iter().map(String::as_str))
    {
        let k = keyword(u);
        if !users.contains(&k) {
            users.push(k);
        }
    }
    if !users.is_empty() {
        related.insert("user".into(), json!(users));
    }
    let mut ips: Vec<String> = Vec::new();
    for i in addr
        .into_iter()
        .chain(a.related_ips.iter().map(String::as_str))
    {
        if let Ok(ip) = i.parse::<std::net::IpAddr>() {
            let s = ip.to_string();
            if !ips.contains(&s) {
                ips.push(s);
            }
        }
    }
    if !ips.is_empty() {
        related.insert("ip".into(), json!(ips));
    }
    if !related.is_empty() {
        doc.insert("related".into(), Value::Object(related));
    }
    let host = url::Url::parse(&a.portal_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| a.portal_url.clone());
    doc.insert(
        "observer".into(),
        json!({
            "vendor": "ONLYOFFICE",
            "product": "DocSpace",
            "type": "application",
            "hostname": keyword(&host),
            "name": a.portal,
        }),
    );
    doc.insert(
        "organization".into(),
        json!({ "id": keyword(&host), "name": a.portal }),
    );
    let mut alert = Map::new();
    alert.insert("rule".into(), json!(a.rule));
    alert.insert("kind".into(), json!(a.kind.as_str()));
    alert.insert("by".into(), json!(a.by.as_str()));
    alert.insert("key".into(), json!(a.key));
    alert.insert("count".into(), json!(a.count));
    alert.insert("event_ids".into(), json!(a.events));
    if !a.known.is_empty() {
        alert.insert("known".into(), json!(a.known));
    }
    if let Some(d) = &a.detail {
        alert.insert("detail".into(), json!(d));
    }
    doc.insert(
        "docspace".into(),
        json!({
            "portal": a.portal,
            "portal_url": a.portal_url,
            "stream": a.stream.as_str(),
            "action_id": a.action.0,
            "action_name": a.action.1,
            "alert": alert,
        }),
    );
    Value::Object(doc)
}

/// The rules whose alerts a stdout or webhook sink (`format = "ecs"`) receives as ECS
/// documents beside its events, and where their state lives.
#[derive(Debug, Clone)]
pub struct SinkRules {
    /// The rules, resolved.
    pub rules: Vec<RuleConfig>,
    /// The engine's state directory (`state_dir/alerts/<sink name>`).
    pub state: PathBuf,
}

/// The alerts `events` raise, each as a compact ECS document (`event.kind = "alert"`) with the
/// index in `events` of the event that fired it (whose dead letter it shares).
pub fn ecs_records(engine: &mut RuleEngine, events: &[&Event]) -> Vec<(Vec<u8>, usize)> {
    engine
        .observe_batch(events)
        .iter()
        .map(|a| {
            let at = a
                .events
                .last()
                .and_then(|id| {
                    events
                        .iter()
                        .rposition(|e| e.id == *id && e.portal.name == a.portal)
                })
                .unwrap_or(events.len().saturating_sub(1));
            (serde_json::to_vec(&to_ecs(a)).unwrap_or_default(), at)
        })
        .collect()
}

/// ECS keyword fields are not indexed past 1024 characters.
fn keyword(v: &str) -> String {
    if v.chars().count() <= 1024 {
        return v.to_owned();
    }
    let mut s: String = v.chars().take(1021).collect();
    s.push_str("...");
    s
}

// ---------------------------------------------------------------------------------------------
// The engine

/// One recorded event of a key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Hit {
    /// Event time, unix milliseconds.
    t: i64,
    /// DocSpace id.
    id: i64,
    /// The other dimension (the address for a user key, the login for an address key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    o: Option<String>,
}

/// The state of one key of one rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct KeyState {
    /// Hits, sorted by (time, id).
    h: VecDeque<Hit>,
    /// Time of the event that last fired (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    f: Option<i64>,
    /// Newest hit or firing time (unix ms), for pruning and eviction.
    n: i64,
    /// The identity as first seen (not lower-cased), where the key alone cannot show it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    d: Option<String>,
}

/// Keys of one rule.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Table {
    keys: HashMap<String, KeyState>,
}

impl Table {
    /// The state of `key`, created when absent (evicting first if the table is full).
    fn entry(&mut self, key: &str, t: i64, window: i64, max_keys: usize) -> &mut KeyState {
        if !self.keys.contains_key(key) && self.keys.len() >= max_keys {
            self.evict(t, window, max_keys);
        }
        self.keys.entry(key.to_owned()).or_insert_with(|| KeyState {
            h: VecDeque::new(),
            f: None,
            n: t,
            d: None,
        })
    }

    /// Drops keys idle for longer than a window; if still over 90 % of `max_keys`, the least
    /// recently active ones.
    fn evict(&mut self, now: i64, window: i64, max_keys: usize) {
        self.prune(now, window);
        let target = max_keys - max_keys / 10;
        if self.keys.len() > target {
            let mut ages: Vec<(i64, String)> =
                self.keys.iter().map(|(k, s)| (s.n, k.clone())).collect();
            ages.sort();
            let excess = self.keys.len() - target;
            for (_, k) in ages.into_iter().take(excess) {
                self.keys.remove(&k);
            }
        }
    }

    /// Drops keys whose newest activity is more than a window before `now`.
    fn prune(&mut self, now: i64, window: i64) {
        let horizon = now.saturating_sub(window);
        self.keys.retain(|_, s| s.n >= horizon);
    }
}

impl KeyState {
    /// Inserts a hit in order; false when it is already there (a replay).
    fn insert(&mut self, hit: Hit, window: i64, cap: usize) -> Option<usize> {
        let pos = self.h.partition_point(|h| (h.t, h.id) < (hit.t, hit.id));
        if self
            .h
            .get(pos)
            .is_some_and(|h| h.t == hit.t && h.id == hit.id)
        {
            return None;
        }
        self.n = self.n.max(hit.t);
        self.h.insert(pos, hit);
        // Prune by window relative to the newest hit, then by count (oldest first).
        let horizon = self.n.saturating_sub(window);
        let mut pos = pos;
        while self.h.front().is_some_and(|h| h.t < horizon) && pos > 0 {
            self.h.pop_front();
            pos -= 1;
        }
        while self.h.len() > cap && pos > 0 {
            self.h.pop_front();
            pos -= 1;
        }
        Some(pos)
    }

    /// Whether the hit at `pos` completes `n` hits within `window`: the index of the first hit
    /// of such a run.
    fn run_through(&self, pos: usize, n: usize, window: i64) -> Option<usize> {
        let n = n.max(1);
        let lo = pos.saturating_sub(n - 1);
        (lo..=pos).find(|&s| {
            let e = s + n - 1;
            e < self.h.len() && self.h[e].t.saturating_sub(self.h[s].t) <= window
        })
    }

    fn silenced(&self, t: i64, window: i64) -> bool {
        self.f
            .is_some_and(|f| t.abs_diff(f) < window.max(1).unsigned_abs())
    }
}

/// Values seen per user (novelty rules).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Seen {
    users: HashMap<String, SeenUser>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SeenUser {
    /// Values in the order first seen (oldest dropped past the cap).
    v: Vec<String>,
    /// Newest login time (unix ms), for eviction.
    l: i64,
}

#[derive(Debug)]
enum State {
    /// brute_force, lockout, sensitive_audit, custom.
    Counter(Table),
    /// success_after_failures: failures per login/address, and the firing state per user.
    AfterFailures { failures: Table, fired: Table },
    /// new_country, new_ip.
    Novelty(Seen),
}

#[derive(Debug)]
struct Rule {
    cfg: RuleConfig,
    state: State,
}

/// Saved window state of one rule.
#[derive(Debug, Serialize, Deserialize)]
struct SavedRule {
    kind: String,
    window_ms: i64,
    by: String,
    tables: Vec<Table>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedWindows {
    version: u32,
    rules: HashMap<String, SavedRule>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedSeen {
    version: u32,
    /// rule name → (kind, users).
    rules: HashMap<String, (String, Seen)>,
}

/// Judges events against a set of rules and raises alerts.
#[derive(Debug)]
pub struct RuleEngine {
    rules: Vec<Rule>,
    dir: Option<PathBuf>,
    /// State files that could not be read: set aside by the first save, not by the load, so
    /// that building a sink (as `check` does) changes nothing on disk.
    damaged: Vec<PathBuf>,
    max_keys: usize,
    /// Newest event time seen (unix ms).
    watermark: i64,
    observed: u64,
    windows_dirty: bool,
    seen_dirty: bool,
    last_window_save: Option<std::time::Instant>,
}

/// An alert raised during the current batch, for absorbing later events into it.
type Open = HashMap<(usize, String), usize>;

impl RuleEngine {
    /// An engine that keeps its state in memory only.
    pub fn new(rules: Vec<RuleConfig>) -> RuleEngine {
        RuleEngine {
            rules: rules
                .into_iter()
                .map(|cfg| {
                    let state = match cfg.kind {
                        RuleKind::SuccessAfterFailures => State::AfterFailures {
                            failures: Table::default(),
                            fired: Table::default(),
                        },
                        RuleKind::NewCountry | RuleKind::NewIp => State::Novelty(Seen::default()),
                        _ => State::Counter(Table::default()),
                    };
                    Rule { cfg, state }
                })
                .collect(),
            dir: None,
            damaged: Vec::new(),
            max_keys: MAX_KEYS,
            watermark: i64::MIN,
            observed: 0,
            windows_dirty: false,
            seen_dirty: false,
            last_window_save: None,
        }
    }

    /// An engine whose state (novelty baselines in `seen.json`, windows in `windows.json`)
    /// lives in `dir`. Reading never writes: a missing directory is an empty state; a file
    /// that cannot be read is ignored with a warning, and set aside as `*.corrupt-<unix time>`
    /// by the first [`RuleEngine::save`] (before the new state replaces it).
    pub fn with_state(rules: Vec<RuleConfig>, dir: PathBuf) -> RuleEngine {
        let mut e = RuleEngine::new(rules);
        e.load(&dir);
        e.dir = Some(dir);
        e
    }

    /// Caps the keys per rule (tests).
    pub fn set_max_keys(&mut self, n: usize) {
        self.max_keys = n.max(1);
    }

    /// The names of the rules, in order.
    pub fn rule_names(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.cfg.name.as_str()).collect()
    }

    /// Keys tracked by each rule (memory bound checks).
    pub fn tracked_keys(&self) -> usize {
        self.rules
            .iter()
            .map(|r| match &r.state {
                State::Counter(t) => t.keys.len(),
                State::AfterFailures { failures, fired } => failures.keys.len() + fired.keys.len(),
                State::Novelty(s) => s.users.len(),
            })
            .sum()
    }

    /// Judges one event.
    pub fn observe(&mut self, ev: &Event) -> Vec<Alert> {
        self.observe_batch(&[ev])
    }

    /// Judges a batch in event-time order; events of a key that already fired in this batch
    /// are added to that alert. Returns the alerts in the order they fired.
    pub fn observe_batch(&mut self, events: &[&Event]) -> Vec<Alert> {
        let mut sorted: Vec<&Event> = events.to_vec();
        sorted.sort_by_key(|e| (e.time, e.id));
        let mut alerts = Vec::new();
        let mut open = Open::new();
        for ev in sorted {
            let t = millis(ev.time);
            self.watermark = self.watermark.max(t);
            self.observed += 1;
            for i in 0..self.rules.len() {
                self.judge(i, ev, &mut alerts, &mut open);
            }
            if self.observed.is_multiple_of(4096) {
                let wm = self.watermark;
                for r in &mut self.rules {
                    let w = r.cfg.window_ms();
                    match &mut r.state {
                        State::Counter(t) => t.prune(wm, w),
                        State::AfterFailures { failures, fired } => {
                            failures.prune(wm, w);
                            fired.prune(wm, w);
                        }
                        State::Novelty(_) => {}
                    }
                }
            }
        }
        for a in &mut alerts {
            a.user_count = a.related_users.len();
            a.ip_count = distinct(a.ip.iter().chain(a.related_ips.iter())).len();
            a.related_users.truncate(MAX_RELATED);
            a.related_ips.truncate(MAX_RELATED);
            a.describe();
        }
        alerts
    }

    fn judge(&mut self, i: usize, ev: &Event, alerts: &mut Vec<Alert>, open: &mut Open) {
        let max_keys = self.max_keys;
        let rule = &mut self.rules[i];
        let cfg = &rule.cfg;
        match &mut rule.state {
            State::Counter(table) => {
                let wanted = match cfg.kind {
                    RuleKind::BruteForce => is_login_failure(ev),
                    RuleKind::Lockout => ev.action_id == 1023,
                    RuleKind::SensitiveAudit => cfg.actions.contains(&ev.action_id),
                    RuleKind::Custom => cfg.matcher.accepts(ev),
                    _ => false,
                };
                if !wanted {
                    return;
                }
                let (key, display, other) = match cfg.by {
                    By::Ip => match ip_of(ev) {
                        Some(ip) => (portal_key(ev, ip), ip, identity(ev)),
                        None => return,
                    },
                    _ => match identity(ev) {
                        Some(u) => {
                            let mut k = portal_key(ev, u);
                            if cfg.kind == RuleKind::SensitiveAudit {
                                k.push_str(&format!("\u{1f}{}", ev.action_id));
                            }
                            (k, u, ip_of(ev))
                        }
                        None => return,
                    },
                };
                self.windows_dirty = true;
                let w = cfg.window_ms();
                let t = millis(ev.time);
                let st = table.entry(&key, t, w, max_keys);
                let hit = Hit {
                    t,
                    id: ev.id,
                    o: other.map(shown),
                };
                let Some(pos) = st.insert(hit, w, cfg.hits_kept()) else {
                    return; // a replay
                };
                let (user, ip) = match cfg.by {
                    By::Ip => (identity(ev), ip_of(ev)),
                    _ => (None, ip_of(ev)),
                };
                if st.silenced(t, w) {
                    if let Some(&ai) = open.get(&(i, key.clone())) {
                        alerts[ai].absorb(ev.time, ev.id, user, ip);
                    }
                    return;
                }
                let Some(start) = st.run_through(pos, cfg.threshold, w) else {
                    return;
                };
                st.f = Some(t);
                let from = st.h[start].t;
                let run: Vec<&Hit> =
                    st.h.iter()
                        .skip(start)
                        .take_while(|h| h.t <= from.saturating_add(w))
                        .collect();
                let mut a = new_alert(cfg, cfg.by, display, ev);
                a.count = run.len();
                a.first = from_millis(from);
                a.last = from_millis(run.last().map_or(t, |h| h.t).max(t));
                a.events = run.iter().map(|h| h.id).take(MAX_ALERT_EVENTS).collect();
                for h in &run {
                    if let Some(o) = &h.o {
                        match cfg.by {
                            By::Ip => push_distinct(&mut a.related_users, o),
                            _ => push_distinct(&mut a.related_ips, o),
                        }
                    }
                }
                if cfg.by == By::Ip {
                    a.user = identity(ev).map(shown);
                }
                open.insert((i, key), alerts.len());
                alerts.push(a);
            }
            State::AfterFailures { failures, fired } => {
                if ev.stream != Stream::Login {
                    return;
                }
                let w = cfg.window_ms();
                let t = millis(ev.time);
                let cap = cfg.hits_kept();
                if is_login_failure(ev) {
                    self.windows_dirty = true;
                    if cfg.by != By::Ip {
                        let mut keys: Vec<String> = Vec::new();
                        if let Some(u) = identity(ev) {
                            keys.push(portal_key(ev, u));
                        }
                        if let Some(uid) = ev.user_id().filter(|u| *u != GUEST_USER_ID) {
                            let k = portal_key(ev, uid);
                            if !keys.contains(&k) {
                                keys.push(k);
                            }
                        }
                        for k in keys {
                            let st = failures.entry(&k, t, w, max_keys);
                            if st.d.is_none() {
                                st.d = identity(ev).map(shown);
                            }
                            let _ = st.insert(
                                Hit {
                                    t,
                                    id: ev.id,
                                    o: ip_of(ev).map(shown),
                                },
                                w,
                                cap,
                            );
                        }
                    }
                    if cfg.by != By::User
                        && let Some(ip) = ip_of(ev)
                    {
                        let _ = failures
                            .entry(&format!("ip\u{1f}{}", portal_key(ev, ip)), t, w, max_keys)
                            .insert(
                                Hit {
                                    t,
                                    id: ev.id,
                                    o: identity(ev).map(shown),
                                },
                                w,
                                cap,
                            );
                    }
                    return;
                }
                if !is_login_start(ev) {
                    return;
                }
                // Candidate keys: every identity of the success, and its address.
                let mut cands: Vec<(String, bool)> = Vec::new();
                if cfg.by != By::Ip {
                    for u in [
                        ev.login(),
                        ev.user(),
                        ev.user_id().filter(|u| *u != GUEST_USER_ID),
                    ]
                    .into_iter()
                    .flatten()
                    {
                        let k = portal_key(ev, u);
                        if !cands.iter().any(|(c, _)| *c == k) {
                            cands.push((k, false));
                        }
                    }
                }
                if cfg.by != By::User
                    && let Some(ip) = ip_of(ev)
                {
                    cands.push((format!("ip\u{1f}{}", portal_key(ev, ip)), true));
                }
                let mut best: Option<(usize, String, bool)> = None;
                for (k, is_ip) in cands {
                    let Some(st) = failures.keys.get(&k) else {
                        continue;
                    };
                    let n =
                        st.h.iter()
                            .filter(|h| h.t <= t && h.t >= t.saturating_sub(w))
                            .count();
                    if n >= cfg.threshold && best.as_ref().is_none_or(|b| n > b.0) {
                        best = Some((n, k, is_ip));
                    }
                }
                let Some((n, fkey, is_ip)) = best else {
                    return;
                };
                let Some(who) = identity(ev).or(ev.user_id()) else {
                    return;
                };
                self.windows_dirty = true;
                let skey = portal_key(ev, ev.user_id().unwrap_or(who));
                let st = fired.entry(&skey, t, w, max_keys);
                if st.silenced(t, w) {
                    return;
                }
                st.f = Some(t);
                st.n = st.n.max(t);
                let mut a = new_alert(cfg, By::User, who, ev);
                if let Some(fst) = failures.keys.get_mut(&fkey) {
                    let run: Vec<Hit> = fst
                        .h
                        .iter()
                        .filter(|h| h.t <= t && h.t >= t.saturating_sub(w))
                        .cloned()
                        .collect();
                    // Consumed: the next success needs fresh failures.
                    fst.h.retain(|h| h.t > t);
                    a.count = n + 1;
                    if let Some(h) = run.first() {
                        a.first = from_millis(h.t);
                    }
                    a.events = run
                        .iter()
                        .map(|h| h.id)
                        .take(MAX_ALERT_EVENTS - 1)
                        .chain([ev.id])
                        .collect();
                    a.related_users.clear();
                    for h in &run {
                        match (&h.o, is_ip) {
                            (Some(o), true) => push_distinct(&mut a.related_users, o),
                            (Some(o), false) => push_distinct(&mut a.related_ips, o),
                            _ => {}
                        }
                    }
                    if !is_ip && let Some(d) = &fst.d {
                        // The failures' login as typed.
                        push_distinct(&mut a.related_users, d);
                    }
                }
                // DocSpace's "Login success" adds nothing: the summary says it all.
                a.detail = None;
                alerts.push(a);
            }
            State::Novelty(seen) => {
                if !is_login_start(ev) {
                    return;
                }
                let value = match cfg.kind {
                    RuleKind::NewCountry => ev.country(),
                    _ => ip_of(ev),
                };
                let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
                    return;
                };
                let id = ev
                    .user_id()
                    .filter(|u| *u != GUEST_USER_ID)
                    .or(identity(ev));
                let Some(id) = id else {
                    return;
                };
                let key = portal_key(ev, id);
                let t = millis(ev.time);
                let value = if value.len() > MAX_KEY_BYTES {
                    norm(value)
                } else {
                    value.to_owned()
                };
                if !seen.users.contains_key(&key) && seen.users.len() >= max_keys {
                    let target = max_keys - max_keys / 10;
                    let mut ages: Vec<(i64, String)> =
                        seen.users.iter().map(|(k, u)| (u.l, k.clone())).collect();
                    ages.sort();
                    let excess = seen.users.len().saturating_sub(target);
                    for (_, k) in ages.into_iter().take(excess) {
                        seen.users.remove(&k);
                    }
                }
                let cap = if cfg.kind == RuleKind::NewCountry {
                    MAX_COUNTRIES_PER_USER
                } else {
                    MAX_IPS_PER_USER
                };
                match seen.users.get_mut(&key) {
                    None => {
                        // The first value ever seen for a user is the baseline.
                        seen.users.insert(
                            key,
                            SeenUser {
                                v: vec![value],
                                l: t,
                            },
                        );
                        self.seen_dirty = true;
                    }
                    Some(u) if u.v.iter().any(|v| v.eq_ignore_ascii_case(&value)) => {
                        if t > u.l {
                            u.l = t;
                        }
                    }
                    Some(u) => {
                        let who = identity(ev).unwrap_or(id);
                        let mut a = new_alert(cfg, By::User, who, ev);
                        a.known =
                            u.v.iter()
                                .rev()
                                .take(MAX_RELATED)
                                .map(|v| shown(v))
                                .collect();
                        u.v.push(value);
                        if u.v.len() > cap {
                            u.v.remove(0);
                        }
                        u.l = u.l.max(t);
                        self.seen_dirty = true;
                        alerts.push(a);
                    }
                }
            }
        }
    }

    /// Writes changed state to the state directory: novelty baselines at once, windows at
    /// most every 30 s unless `force` (on shutdown). No-op for an in-memory engine.
    pub fn save(&mut self, force: bool) -> std::io::Result<()> {
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        for path in std::mem::take(&mut self.damaged) {
            let moved = path.with_extension(format!(
                "json.corrupt-{}",
                OffsetDateTime::now_utc().unix_timestamp()
            ));
            if fs::rename(&path, &moved).is_ok() {
                warn!(file = %path.display(), moved_to = %moved.display(), "damaged alert state set aside");
            }
        }
        if self.seen_dirty {
            let saved = SavedSeen {
                version: STATE_VERSION,
                rules: self
                    .rules
                    .iter()
                    .filter_map(|r| match &r.state {
                        State::Novelty(s) => Some((
                            r.cfg.name.clone(),
                            (r.cfg.kind.as_str().to_owned(), s.clone()),
                        )),
                        _ => None,
                    })
                    .collect(),
            };
            write_atomic(&dir, "seen.json", &serde_json::to_vec(&saved)?)?;
            self.seen_dirty = false;
        }
        let due = force
            || self
                .last_window_save
                .is_none_or(|t| t.elapsed() >= WINDOW_SAVE_INTERVAL);
        if self.windows_dirty && due {
            let wm = self.watermark;
            let mut saved = SavedWindows {
                version: STATE_VERSION,
                rules: HashMap::new(),
            };
            for r in &mut self.rules {
                let w = r.cfg.window_ms();
                let tables = match &mut r.state {
                    State::Counter(t) => {
                        t.prune(wm, w);
                        vec![t.clone()]
                    }
                    State::AfterFailures { failures, fired } => {
                        failures.prune(wm, w);
                        fired.prune(wm, w);
                        vec![failures.clone(), fired.clone()]
                    }
                    State::Novelty(_) => continue,
                };
                saved.rules.insert(
                    r.cfg.name.clone(),
                    SavedRule {
                        kind: r.cfg.kind.as_str().to_owned(),
                        window_ms: w,
                        by: r.cfg.by.as_str().to_owned(),
                        tables,
                    },
                );
            }
            write_atomic(&dir, "windows.json", &serde_json::to_vec(&saved)?)?;
            self.windows_dirty = false;
            self.last_window_save = Some(std::time::Instant::now());
        }
        Ok(())
    }

    fn load(&mut self, dir: &Path) {
        if let Some(saved) = read_state::<SavedSeen>(&dir.join("seen.json"), &mut self.damaged) {
            for r in &mut self.rules {
                if let (State::Novelty(s), Some((kind, seen))) =
                    (&mut r.state, saved.rules.get(&r.cfg.name))
                    && kind == r.cfg.kind.as_str()
                {
                    *s = seen.clone();
                }
            }
        }
        if let Some(saved) =
            read_state::<SavedWindows>(&dir.join("windows.json"), &mut self.damaged)
        {
            for r in &mut self.rules {
                let Some(s) = saved.rules.get(&r.cfg.name) else {
                    continue;
                };
                // A changed rule starts afresh: old hits were counted under other terms.
                if s.kind != r.cfg.kind.as_str()
                    || s.window_ms != r.cfg.window_ms()
                    || s.by != r.cfg.by.as_str()
                {
                    continue;
                }
                match (&mut r.state, s.tables.as_slice()) {
                    (State::Counter(t), [one]) => *t = one.clone(),
                    (State::AfterFailures { failures, fired }, [a, b]) => {
                        *failures = a.clone();
                        *fired = b.clone();
                    }
                    _ => {}
                }
            }
            for r in &self.rules {
                let newest = match &r.state {
                    State::Counter(t) => t.keys.values().map(|k| k.n).max(),
                    State::AfterFailures { failures, .. } => {
                        failures.keys.values().map(|k| k.n).max()
                    }
                    State::Novelty(_) => None,
                };
                if let Some(n) = newest {
                    self.watermark = self.watermark.max(n);
                }
            }
        }
    }
}

/// Reads a state file; a damaged one is named in `damaged` with a warning (the engine then
/// starts without it: alerts may repeat, nothing is lost). Never writes.
fn read_state<T: serde::de::DeserializeOwned>(
    path: &Path,
    damaged: &mut Vec<PathBuf>,
) -> Option<T> {
    // Never through a link planted in the state directory (see cursor::PrivateDir).
    let read = || {
        let dir = path.parent().unwrap_or(Path::new("/"));
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        crate::cursor::PrivateDir::open_below(dir, 2, false)?.read(&name)
    };
    let bytes = match read() {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            warn!(file = %path.display(), error = %e, "cannot read alert state; starting without it");
            return None;
        }
    };
    #[derive(Deserialize)]
    struct Version {
        version: u32,
    }
    let problem = match serde_json::from_slice::<Version>(&bytes) {
        Ok(v) if v.version == STATE_VERSION => match serde_json::from_slice::<T>(&bytes) {
            Ok(t) => return Some(t),
            Err(e) => e.to_string(),
        },
        Ok(v) => format!("version {} is not {STATE_VERSION}", v.version),
        Err(e) => e.to_string(),
    };
    warn!(file = %path.display(), %problem, "alert state is damaged; starting without it (baselines are learned again); it is set aside at the next save");
    damaged.push(path.to_path_buf());
    None
}

/// Writes `dir/name` atomically: temp file, fsync, rename, fsync of the directory (0600).
/// `dir` is `state_dir/alerts/<sink>`: both levels are created (0700) and used through their
/// descriptor, never through a link, and the temp file is created exclusively under an
/// unpredictable name (see cursor::PrivateDir).
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    crate::cursor::PrivateDir::open_below(dir, 2, true)?.write_atomic(name, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::PortalInfo;
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
        evs.extend(
            (0..10).map(|i| fail(200 + i, fired_at + 180 + i, "bob@example.com", "192.0.2.66")),
        );
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
        assert!(
            bad("lockout", json!({"kind": "new_country"}))[0].starts_with("rules.lockout.kind:")
        );
        assert!(
            bad("mine", json!({"threshold": 3}))[0]
                .starts_with("rules.mine: is not a built-in rule")
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
}
