//! Alerts: a stateful engine that judges DocSpace events against rules and raises [`Alert`]s
//! (brute force, lockout, success after failures, new country or IP address, sensitive audit
//! actions, custom matches). This file is the seam: what the rest of the crate uses. The rules
//! and their config parser are in `rules`, the alert model in `model`, the engine in `engine`
//! and its persisted state in `state`. Renderers (chat messages, the ECS document) live with
//! the sinks and encoders that ship alerts; nothing here does network IO.
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
//! - Nothing here panics on input. State lives under the directory given to
//!   [`RuleEngine::with_state`] and is written only by [`RuleEngine::save`] or
//!   [`RuleEngine::save_off_thread`] (temp file, fsync, rename, fsync of the directory), which
//!   the sink loop calls after it delivered the alerts, so a crash replays (at least once)
//!   instead of losing an alert.
//! - Alert text ([`Alert::summary`] and every field) is plain and unescaped: every formatter
//!   escapes it for its service. Identities in alert text are cut to [`MAX_SHOWN_CHARS`].

mod engine;
mod model;
mod rules;
mod state;

pub use engine::{MAX_KEYS, RuleEngine};
pub use model::{
    Alert, Fact, MAX_ALERT_EVENTS, MAX_KEY_BYTES, MAX_RELATED, MAX_SHOWN_CHARS, Part, shown,
};
pub use rules::{
    By, DEFAULT_SENSITIVE_ACTIONS, MAX_THRESHOLD, Match, Problem, RuleConfig, RuleKind, SinkRules,
    parse_rules, select,
};

#[cfg(test)]
mod tests;
