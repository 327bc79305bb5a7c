//! The rule engine: judges events against rules by the events' own time and raises
//! [`Alert`]s, one function per kind of rule state (windowed counters, success after failures,
//! novelty). Its state is in memory here; [`super::state`] reads and writes it.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::model::{
    Alert, MAX_ALERT_EVENTS, MAX_KEY_BYTES, MAX_RELATED, distinct, from_millis, identity, ip_of,
    is_login_failure, is_login_start, millis, new_alert, norm, portal_key, push_distinct, shown,
};
use super::rules::{By, RuleConfig, RuleKind};
use crate::event::{Event, GUEST_USER_ID, Stream};

/// Most keys one rule tracks; beyond it the least recently active key is forgotten.
pub const MAX_KEYS: usize = 100_000;
/// Countries remembered per user by `new_country`.
const MAX_COUNTRIES_PER_USER: usize = 64;
/// Addresses remembered per user by `new_ip`.
const MAX_IPS_PER_USER: usize = 256;

/// One recorded event of a key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(super) struct Hit {
    /// Event time, unix milliseconds.
    pub(super) t: i64,
    /// DocSpace id.
    pub(super) id: i64,
    /// The other dimension (the address for a user key, the login for an address key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) o: Option<String>,
}

/// The state of one key of one rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct KeyState {
    /// Hits, sorted by (time, id).
    pub(super) h: VecDeque<Hit>,
    /// Time of the event that last fired (unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) f: Option<i64>,
    /// Newest hit or firing time (unix ms), for pruning and eviction.
    pub(super) n: i64,
    /// The identity as first seen (not lower-cased), where the key alone cannot show it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) d: Option<String>,
}

/// Keys of one rule.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Table {
    pub(super) keys: HashMap<String, KeyState>,
}

impl Table {
    /// The state of `key`, created when absent (evicting first if the table is full).
    pub(super) fn entry(
        &mut self,
        key: &str,
        t: i64,
        window: i64,
        max_keys: usize,
    ) -> &mut KeyState {
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
    pub(super) fn evict(&mut self, now: i64, window: i64, max_keys: usize) {
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
    pub(super) fn prune(&mut self, now: i64, window: i64) {
        let horizon = now.saturating_sub(window);
        self.keys.retain(|_, s| s.n >= horizon);
    }
}

impl KeyState {
    /// Inserts a hit in order; false when it is already there (a replay).
    pub(super) fn insert(&mut self, hit: Hit, window: i64, cap: usize) -> Option<usize> {
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
    pub(super) fn run_through(&self, pos: usize, n: usize, window: i64) -> Option<usize> {
        let n = n.max(1);
        let lo = pos.saturating_sub(n - 1);
        (lo..=pos).find(|&s| {
            let e = s + n - 1;
            e < self.h.len() && self.h[e].t.saturating_sub(self.h[s].t) <= window
        })
    }

    pub(super) fn silenced(&self, t: i64, window: i64) -> bool {
        self.f
            .is_some_and(|f| t.abs_diff(f) < window.max(1).unsigned_abs())
    }
}

/// Values seen per user (novelty rules).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Seen {
    pub(super) users: HashMap<String, SeenUser>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SeenUser {
    /// Values in the order first seen (oldest dropped past the cap).
    pub(super) v: Vec<String>,
    /// Newest login time (unix ms), for eviction.
    pub(super) l: i64,
}

#[derive(Debug)]
pub(super) enum State {
    /// brute_force, lockout, sensitive_audit, custom.
    Counter(Table),
    /// success_after_failures: failures per login/address, and the firing state per user.
    AfterFailures { failures: Table, fired: Table },
    /// new_country, new_ip.
    Novelty(Seen),
}

#[derive(Debug)]
pub(super) struct Rule {
    pub(super) cfg: RuleConfig,
    pub(super) state: State,
}

/// Judges events against a set of rules and raises alerts.
#[derive(Debug)]
pub struct RuleEngine {
    pub(super) rules: Vec<Rule>,
    pub(super) dir: Option<PathBuf>,
    /// State files that could not be read: set aside by the first save, not by the load, so
    /// that building a sink (as `check` does) changes nothing on disk.
    pub(super) damaged: Vec<PathBuf>,
    pub(super) max_keys: usize,
    /// Newest event time seen (unix ms).
    pub(super) watermark: i64,
    pub(super) observed: u64,
    pub(super) windows_dirty: bool,
    pub(super) seen_dirty: bool,
    pub(super) last_window_save: Option<std::time::Instant>,
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
        let mut out = Judged::default();
        for ev in sorted {
            let t = millis(ev.time);
            self.watermark = self.watermark.max(t);
            self.observed += 1;
            for i in 0..self.rules.len() {
                self.judge(i, ev, &mut out);
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
        self.windows_dirty |= out.windows_changed;
        self.seen_dirty |= out.seen_changed;
        let mut alerts = out.alerts;
        for a in &mut alerts {
            a.user_count = a.related_users.len();
            a.ip_count = distinct(a.ip.iter().chain(a.related_ips.iter())).len();
            a.related_users.truncate(MAX_RELATED);
            a.related_ips.truncate(MAX_RELATED);
            a.describe();
        }
        alerts
    }

    fn judge(&mut self, i: usize, ev: &Event, out: &mut Judged) {
        let max_keys = self.max_keys;
        let rule = &mut self.rules[i];
        let cfg = &rule.cfg;
        match &mut rule.state {
            State::Counter(table) => counter(cfg, i, table, ev, max_keys, out),
            State::AfterFailures { failures, fired } => {
                after_failures(cfg, failures, fired, ev, max_keys, out);
            }
            State::Novelty(seen) => novelty(cfg, seen, ev, max_keys, out),
        }
    }
}

/// What judging a batch produced: the alerts in firing order, the alerts still open for
/// absorbing later events of their key, and which kind of state changed.
#[derive(Debug, Default)]
struct Judged {
    alerts: Vec<Alert>,
    open: Open,
    windows_changed: bool,
    seen_changed: bool,
}

/// `brute_force`, `lockout`, `sensitive_audit` and `custom`: a windowed counter per key that
/// fires at `threshold` hits within the window, then absorbs the key's events for a window.
fn counter(
    cfg: &RuleConfig,
    i: usize,
    table: &mut Table,
    ev: &Event,
    max_keys: usize,
    out: &mut Judged,
) {
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
    out.windows_changed = true;
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
        if let Some(&ai) = out.open.get(&(i, key.clone())) {
            out.alerts[ai].absorb(ev.time, ev.id, user, ip);
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
    out.open.insert((i, key), out.alerts.len());
    out.alerts.push(a);
}

/// `success_after_failures`: failures are counted per login and per address; a successful
/// login after `threshold` of them within the window fires once per user and window.
fn after_failures(
    cfg: &RuleConfig,
    failures: &mut Table,
    fired: &mut Table,
    ev: &Event,
    max_keys: usize,
    out: &mut Judged,
) {
    if ev.stream != Stream::Login {
        return;
    }
    let w = cfg.window_ms();
    let t = millis(ev.time);
    let cap = cfg.hits_kept();
    if is_login_failure(ev) {
        out.windows_changed = true;
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
    out.windows_changed = true;
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
    out.alerts.push(a);
}

/// `new_country` and `new_ip`: a user's first value is the baseline; a successful login with a
/// value not seen before for that user fires.
fn novelty(cfg: &RuleConfig, seen: &mut Seen, ev: &Event, max_keys: usize, out: &mut Judged) {
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
            out.seen_changed = true;
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
            out.seen_changed = true;
            out.alerts.push(a);
        }
    }
}
