//! The `[rules.NAME]` configuration: rule kinds, their defaults, the table parser with its
//! problems for the config loader, and the selection of a sink's rules by name. No state, no IO.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::actions;
use crate::event::{Event, Outcome, Stream};

/// Largest `threshold` a rule accepts.
pub const MAX_THRESHOLD: usize = 1000;
/// Fewest hits a key keeps (more when the threshold is higher), so counts stay exact.
const MIN_HITS_KEPT: usize = 100;

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

    pub(super) fn window_ms(&self) -> i64 {
        i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX / 4)
    }

    pub(super) fn hits_kept(&self) -> usize {
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

/// The rules whose alerts a stdout or webhook sink (`format = "ecs"`) receives as ECS
/// documents beside its events, and where their state lives.
#[derive(Debug, Clone)]
pub struct SinkRules {
    /// The rules, resolved.
    pub rules: Vec<RuleConfig>,
    /// The engine's state directory (`state_dir/alerts/<sink name>`).
    pub state: PathBuf,
}
