//! The alert model: what an [`Alert`] says (its facts, its sentence in trusted and untrusted
//! [`Part`]s, its times) and how it is built from the event that fired it. Alert text is plain
//! and unescaped: every renderer escapes it for its service.

use std::time::Duration;

use time::{OffsetDateTime, UtcOffset};

use super::rules::{By, RuleConfig, RuleKind};
use crate::event::{Event, GUEST_USER_ID, Outcome, Stream};

/// Most event ids an alert lists.
pub const MAX_ALERT_EVENTS: usize = 20;
/// Identities longer than this (bytes) are cut and suffixed with a hash of the whole value.
pub const MAX_KEY_BYTES: usize = 256;
/// Identities and values in alert text are cut to this many characters.
pub const MAX_SHOWN_CHARS: usize = 120;
/// Most related users or addresses an alert names.
pub const MAX_RELATED: usize = 5;

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
    /// The portal's labels (a customer's name or id, …), so an alert is routed and read like
    /// the events it is about.
    pub labels: Vec<(String, String)>,
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
    pub(super) fn describe(&mut self) {
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

    pub(super) fn absorb(
        &mut self,
        t: OffsetDateTime,
        id: i64,
        user: Option<&str>,
        ip: Option<&str>,
    ) {
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

pub(super) fn distinct<'a>(it: impl Iterator<Item = &'a String>) -> Vec<&'a str> {
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
pub(super) const MAX_COLLECTED: usize = 1000;

pub(super) fn push_distinct(v: &mut Vec<String>, s: &str) {
    if v.len() < MAX_COLLECTED && !v.iter().any(|x| x == s) {
        v.push(shown(s));
    }
}

pub(super) fn hms(t: OffsetDateTime) -> String {
    format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
}

pub(super) fn fmt_offset(off: UtcOffset) -> String {
    let (h, m, _) = off.as_hms();
    let sign = if off.is_negative() { '-' } else { '+' };
    format!("{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
}

pub(super) fn fmt_span(d: Duration) -> String {
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
pub(super) fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A map key for an identity: trimmed, lower-case, cut to [`MAX_KEY_BYTES`] with a hash of
/// the whole value.
pub(super) fn norm(s: &str) -> String {
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

pub(super) fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(super) fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The identity of the actor: the login as typed, else the display name, else the user id
/// (never the shared Guest id).
pub(super) fn identity(ev: &Event) -> Option<&str> {
    ev.login()
        .or(ev.user())
        .or(ev.user_id().filter(|u| *u != GUEST_USER_ID))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

pub(super) fn ip_of(ev: &Event) -> Option<&str> {
    ev.ip().map(str::trim).filter(|s| !s.is_empty())
}

pub(super) fn portal_key(ev: &Event, k: &str) -> String {
    format!("{}\u{1f}{}", ev.portal.name, norm(k))
}

pub(super) fn is_login_start(ev: &Event) -> bool {
    let sem = ev.semantics();
    ev.stream == Stream::Login && sem.outcome == Outcome::Success && sem.kind.contains(&"start")
}

pub(super) fn is_login_failure(ev: &Event) -> bool {
    ev.stream == Stream::Login && ev.semantics().outcome == Outcome::Failure
}

pub(super) fn local_offset(ev: &Event) -> Option<UtcOffset> {
    Some(ev.offset)
}

/// A new alert for `ev` (the firing event), before `describe`.
pub(super) fn new_alert(rule: &RuleConfig, by: By, key: &str, ev: &Event) -> Alert {
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
        labels: ev.portal.labels.clone(),
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
