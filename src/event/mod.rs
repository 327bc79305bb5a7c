//! The canonical event: one DocSpace login or audit row, decoded once by the source and read by
//! every encoder. This file is the model (the event, its stream, portal and outcome, and what
//! an encoder reads of it); the row decoders live in `decode`, dates in and timestamps out in
//! `dates`, the action table's meaning in `classify`.
//!
//! Invariants:
//! - `time` is always UTC; the portal's offset is parsed away here (7-digit fractions, `Z`,
//!   `±hh:mm`, DST) and never leaks into a cursor.
//! - Decoding never panics on input: a row without a usable `id` or `date` is an [`EventError`]
//!   naming the field, every other field is optional and tolerant of odd types.
//! - String fields are capped at [`MAX_FIELD_BYTES`] (cut at a UTF-8 boundary, marked), so one
//!   hostile row cannot blow up a datagram or a SIEM field.
//! - `raw` keeps the row exactly as received, for the `json` format.

mod classify;
mod dates;
mod decode;
#[cfg(any(test, fuzzing))]
mod oracles;

pub use classify::{Semantics, classify};
pub use dates::{
    Precision, Timestamp, format_utc_millis, format_utc_seconds, parse_date, timestamp, to_utc,
    write_utc_millis,
};
pub use decode::{cap, compact_json, row_id_and_date};
#[cfg(any(test, fuzzing))]
pub use oracles::{decoders_agree, scan_decodes};

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};
use time::{OffsetDateTime, UtcOffset};

use crate::actions;

/// Longest string kept in a typed field; longer values are cut and end in [`TRUNCATED_MARK`].
pub const MAX_FIELD_BYTES: usize = 8 * 1024;
/// Appended to a string field that was cut to [`MAX_FIELD_BYTES`].
pub const TRUNCATED_MARK: &str = "…[truncated]";
/// The user id DocSpace gives failed and anonymous attempts: a placeholder, not an actor
/// (docs/docspace-api.md §5, `Constants.Guest`). The encoders keep it out of every user id
/// field (ECS `user.id`, CEF `suid`, LEEF `userId`), so that a SIEM's user analytics does not
/// see one user behind every failure; the raw value stays in ECS `docspace.user_id` and `json`.
pub const GUEST_USER_ID: &str = "712d9ec3-5d2b-4b13-824f-71f00191dcca";

/// Whether `id` is DocSpace's Guest placeholder ([`GUEST_USER_ID`], in any ASCII case).
pub fn is_guest_id(id: &str) -> bool {
    id.eq_ignore_ascii_case(GUEST_USER_ID)
}

/// Which DocSpace log an event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// `GET /api/2.0/security/audit/login/filter` (action codes 1000–1999).
    Login,
    /// `GET /api/2.0/security/audit/events/filter` (action codes ≥ 2000).
    Audit,
}

impl Stream {
    /// Both streams, in the order the agent polls them.
    pub const ALL: [Stream; 2] = [Stream::Login, Stream::Audit];

    /// `login` or `audit`, as used in config, file names and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Login => "login",
            Stream::Audit => "audit",
        }
    }

    /// Parses `login` / `audit`.
    pub fn parse(s: &str) -> Option<Stream> {
        match s {
            "login" => Some(Stream::Login),
            "audit" => Some(Stream::Audit),
            _ => None,
        }
    }

    /// The stream an action code belongs to when nothing else says (SPEC: 1000–1999 are logins).
    pub fn for_action(action_id: i64) -> Stream {
        if (1000..2000).contains(&action_id) {
            Stream::Login
        } else {
            Stream::Audit
        }
    }

    /// The API path of this stream's filter endpoint.
    pub fn filter_path(self) -> &'static str {
        match self {
            Stream::Login => "/api/2.0/security/audit/login/filter",
            Stream::Audit => "/api/2.0/security/audit/events/filter",
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The portal an event came from, shared by all its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalInfo {
    /// The `[portals.NAME]` table name.
    pub name: String,
    /// The portal's base URL as configured (no credentials ever live in it).
    pub url: String,
    /// Host part of the URL, used as the observer/device host name.
    pub host: String,
    /// The portal's part of every id the agent derives ([`Event::unique_id`], the
    /// Elasticsearch `_id`): the host, with `:port` when the URL names a port other than its
    /// scheme's default, so two portals on one host do not share ids.
    pub key: String,
    /// The portal's `labels` (a customer's name or id, …), sorted by key: carried into every
    /// output format, matched by sink filters and named by `{label.KEY}` templates.
    pub labels: Vec<(String, String)>,
}

impl PortalInfo {
    /// Builds the info from a name and base URL.
    pub fn new(name: &str, url: &str) -> PortalInfo {
        let parsed = url::Url::parse(url).ok();
        let host = parsed
            .as_ref()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| url.to_owned());
        let key = match parsed.as_ref().and_then(url::Url::port) {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        PortalInfo {
            name: name.to_owned(),
            url: url.trim_end_matches('/').to_owned(),
            host,
            key,
            labels: Vec::new(),
        }
    }

    /// The same portal with these labels (sorted by key, so every output lists them in one order).
    pub fn with_labels(mut self, labels: impl IntoIterator<Item = (String, String)>) -> PortalInfo {
        self.labels = labels.into_iter().collect();
        self.labels.sort();
        self
    }

    /// The value of one label, if the portal has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Why a row could not become an [`Event`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The row is not a JSON object.
    #[error("event is not a JSON object")]
    NotAnObject,
    /// A required field is absent.
    #[error("event has no `{0}` field")]
    Missing(&'static str),
    /// The row is not valid JSON.
    #[error("event is not valid JSON: {0}")]
    Malformed(String),
    /// A field has a value that cannot be used.
    #[error("event field `{field}` is invalid: {problem}")]
    Invalid {
        /// The DocSpace field name.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

/// One login or audit event.
///
/// Decoded once, read by every encoder and sink: the string fields and then the row's own JSON
/// text (`raw`) live in one buffer (`text`, addressed by spans), so an event costs one heap
/// block of its own (audit rows add their `target` and `entries`) instead of one per field.
#[derive(Clone)]
pub struct Event {
    /// The portal it came from.
    pub portal: Arc<PortalInfo>,
    /// The log it came from.
    pub stream: Stream,
    /// DocSpace's row id: unique per table only, so a login and an audit event of one portal
    /// may share it (see [`Event::unique_id`]); not ordered by date.
    pub id: i64,
    /// When it happened, in UTC.
    pub time: OffsetDateTime,
    /// The portal's UTC offset as the row's `date` carried it.
    pub offset: UtcOffset,
    /// The `MessageAction` code.
    pub action_id: i64,
    /// Audit: `ActionType`.
    pub action_type: Option<i64>,
    /// Audit: `ProductType`.
    pub product: Option<i64>,
    /// Audit: `LocationType` (module).
    pub location: Option<i64>,
    /// Audit: raw target items.
    pub target: Vec<String>,
    /// Audit: `EntryType` values.
    pub entries: Vec<i64>,
    /// The string fields, then the row's own text (`raw`): one allocation per event.
    text: String,
    spans: [Span; FIELDS],
    raw: Span,
}

/// Where a string field lies in `Event::text`; `len == u32::MAX` means absent.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    const NONE: Span = Span {
        start: 0,
        len: u32::MAX,
    };

    /// What was appended to `text` since it was `start` bytes long.
    fn since(start: usize, text: &str) -> Span {
        Span {
            start: start as u32,
            len: (text.len() - start) as u32,
        }
    }
}

/// Appends `s` to `text` and returns where it lies.
fn push_span(text: &mut String, s: &str) -> Span {
    let start = text.len();
    text.push_str(s);
    Span::since(start, text)
}

/// The string fields kept in `Event::text`, by index.
const FIELDS: usize = 12;
const F_ACTION: usize = 0;
const F_USER: usize = 1;
const F_USER_ID: usize = 2;
const F_LOGIN: usize = 3;
const F_IP: usize = 4;
const F_COUNTRY: usize = 5;
const F_CITY: usize = 6;
const F_BROWSER: usize = 7;
const F_PLATFORM: usize = 8;
const F_PAGE: usize = 9;
const F_CONTEXT: usize = 10;
const F_DATE: usize = 11;

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("portal", &self.portal.name)
            .field("stream", &self.stream)
            .field("id", &self.id)
            .field("time", &self.time)
            .field("action_id", &self.action_id)
            .field("raw", &self.raw())
            .finish_non_exhaustive()
    }
}

/// Outcome of an event, as ECS and CEF name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The action succeeded.
    Success,
    /// The action failed (failed login).
    Failure,
    /// Not known: a login code this build has no table entry for, or a detection
    /// (SuspiciousLoginDetected) that does not say how the login went.
    Unknown,
}

impl Outcome {
    /// `success`, `failure` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Unknown => "unknown",
        }
    }

    /// Parses the config spelling.
    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            "unknown" => Some(Outcome::Unknown),
            _ => None,
        }
    }
}

impl Event {
    fn field(&self, f: usize) -> Option<&str> {
        let s = self.spans[f];
        if s.len == u32::MAX {
            return None;
        }
        self.text
            .get(s.start as usize..s.start as usize + s.len as usize)
    }

    /// The localized sentence DocSpace renders (`action`); never parsed.
    pub fn action_text(&self) -> Option<&str> {
        self.field(F_ACTION)
    }

    /// Display name, login or "Anonymous" (`user`).
    pub fn user(&self) -> Option<&str> {
        self.field(F_USER)
    }

    /// Actor GUID (`userId`) as DocSpace wrote it: the Guest GUID for failed and anonymous
    /// attempts (see [`Event::actor_id`]).
    pub fn user_id(&self) -> Option<&str> {
        self.field(F_USER_ID)
    }

    /// The actor's user id as the identity fields carry it: `userId`, unless it is DocSpace's
    /// Guest placeholder ([`GUEST_USER_ID`]), which names no user.
    pub fn actor_id(&self) -> Option<&str> {
        self.user_id().filter(|u| !is_guest_id(u))
    }

    /// The login name as typed on failed attempts (`login`); attacker-controlled.
    pub fn login(&self) -> Option<&str> {
        self.field(F_LOGIN)
    }

    /// Client address as DocSpace stores it (IPv6 cut to its first group).
    pub fn ip(&self) -> Option<&str> {
        self.field(F_IP)
    }

    /// Geolocated country name.
    pub fn country(&self) -> Option<&str> {
        self.field(F_COUNTRY)
    }

    /// Geolocated city.
    pub fn city(&self) -> Option<&str> {
        self.field(F_CITY)
    }

    /// `"{UA family} {major}"`.
    pub fn browser(&self) -> Option<&str> {
        self.field(F_BROWSER)
    }

    /// OS and device.
    pub fn platform(&self) -> Option<&str> {
        self.field(F_PLATFORM)
    }

    /// Full URL of the page (referer) or API endpoint.
    pub fn page(&self) -> Option<&str> {
        self.field(F_PAGE)
    }

    /// Audit: localized module name or room title.
    pub fn context(&self) -> Option<&str> {
        self.field(F_CONTEXT)
    }

    /// The row's `date` exactly as DocSpace wrote it (portal time zone, 7-digit fraction).
    pub fn date_text(&self) -> &str {
        self.field(F_DATE).unwrap_or_default()
    }

    /// The row exactly as received: valid JSON text of one object, possibly with whitespace
    /// (even line breaks) between tokens; see [`compact_json`].
    pub fn raw(&self) -> &str {
        let Span { start, len } = self.raw;
        self.text
            .get(start as usize..start as usize + len as usize)
            .unwrap_or_default()
    }

    /// A copy with one row field replaced (`Value::Null` removes it), decoded again; when the
    /// result no longer decodes, an unchanged copy. For tests.
    #[cfg(test)]
    pub fn with_row_field(&self, key: &str, value: Value) -> Event {
        let mut row = self.raw_map();
        if value.is_null() {
            row.remove(key);
        } else {
            row.insert(key.to_owned(), value);
        }
        Event::from_json(self.portal.clone(), Some(self.stream), Value::Object(row))
            .unwrap_or_else(|_| self.clone())
    }

    /// The row as a JSON object (allocates; for the rare paths that edit the row).
    pub fn raw_map(&self) -> Map<String, Value> {
        serde_json::from_str(self.raw()).unwrap_or_default()
    }

    /// The `MessageAction` member name, or `Action<code>` for a code this build does not know.
    pub fn action_name(&self) -> Cow<'static, str> {
        match actions::lookup(self.action_id) {
            Some(a) => Cow::Borrowed(a.name),
            None => Cow::Owned(format!("Action{}", self.action_id)),
        }
    }

    /// The action name in kebab case (`login-fail-via-api`), as ECS `event.action` wants it.
    pub fn action_kebab(&self) -> Cow<'static, str> {
        match actions::kebab(self.action_id) {
            Some(k) => Cow::Borrowed(k),
            None => Cow::Owned(format!("action-{}", self.action_id)),
        }
    }

    /// The best human identity: the typed login, else the display name, else the user id
    /// (never the Guest placeholder).
    pub fn actor(&self) -> Option<&str> {
        self.login().or(self.user()).or(self.actor_id())
    }

    /// What identifies this event among every event the agent ever ships:
    /// `<portal host[:port]>:<stream>:<id>`. DocSpace's `id` alone does not (login and audit
    /// rows are numbered by separate tables, and portals number their own). ECS carries it as
    /// `docspace.unique_id`, and it is the Elasticsearch `_id`.
    pub fn unique_id(&self) -> String {
        format!("{}:{}:{}", self.portal.key, self.stream.as_str(), self.id)
    }

    /// `ip` when it is a valid IPv4/IPv6 address (DocSpace cuts IPv6 to `2a02`).
    pub fn valid_ip(&self) -> Option<std::net::IpAddr> {
        self.ip().and_then(|s| s.parse().ok())
    }

    /// The UTC time as RFC 3339 with milliseconds and `Z`.
    pub fn time_rfc3339(&self) -> String {
        format_utc_millis(self.time)
    }

    /// Epoch milliseconds of the event time.
    pub fn epoch_millis(&self) -> i64 {
        (self.time.unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// What the action means.
    pub fn semantics(&self) -> Semantics {
        classify(
            self.stream,
            self.action_id,
            self.action_type,
            self.product,
            self.location,
            &self.entries,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn portal() -> Arc<PortalInfo> {
        Arc::new(PortalInfo::new("main", "https://docspace.example.com"))
    }

    /// See: issue 17 (login and audit ids collide). The unique id names the portal (with a
    /// port that is not the scheme's default), the stream and the id.
    #[test]
    fn unique_ids_tell_streams_and_portals_apart() {
        let ev = |url: &str, stream| {
            Event::from_json(
                Arc::new(PortalInfo::new("p", url)),
                Some(stream),
                json!({"id": 7, "date": "2025-01-15T14:32:07Z", "actionId": 1000}),
            )
            .expect("row")
            .unique_id()
        };
        assert_eq!(
            ev("https://d.example.com", Stream::Login),
            "d.example.com:login:7"
        );
        assert_eq!(
            ev("https://d.example.com/", Stream::Audit),
            "d.example.com:audit:7"
        );
        assert_eq!(
            ev("https://d.example.com:443", Stream::Login),
            "d.example.com:login:7"
        );
        assert_eq!(
            ev("https://d.example.com:8443", Stream::Login),
            "d.example.com:8443:login:7"
        );
        assert_eq!(
            ev("http://127.0.0.1:41234", Stream::Audit),
            "127.0.0.1:41234:audit:7"
        );
    }

    #[test]
    fn the_guest_placeholder_is_no_actor() {
        let ev = |uid: &str| {
            Event::from_json(
                portal(),
                None,
                json!({"id": 1, "date": "2025-01-15T14:32:07Z", "actionId": 1013, "userId": uid}),
            )
            .expect("row")
        };
        assert_eq!(ev(GUEST_USER_ID).actor_id(), None);
        assert_eq!(ev(&GUEST_USER_ID.to_ascii_uppercase()).actor_id(), None);
        assert_eq!(ev(GUEST_USER_ID).user_id(), Some(GUEST_USER_ID));
        assert_eq!(ev(GUEST_USER_ID).actor(), None);
        let other = "9b1e4f7a-2c3d-4e5f-8a6b-7c8d9e0f1a2b";
        assert_eq!(ev(other).actor_id(), Some(other));
    }
}
