//! The canonical event: one DocSpace login or audit row, decoded once by the source and read by
//! every encoder.
//!
//! Invariants:
//! - `time` is always UTC; the portal's offset is parsed away here (7-digit fractions, `Z`,
//!   `±hh:mm`, DST) and never leaks into a cursor.
//! - Decoding never panics on input: a row without a usable `id` or `date` is an [`EventError`]
//!   naming the field, every other field is optional and tolerant of odd types.
//! - String fields are capped at [`MAX_FIELD_BYTES`] (cut at a UTF-8 boundary, marked), so one
//!   hostile row cannot blow up a datagram or a SIEM field.
//! - `raw` keeps the row exactly as received, for the `json` format.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
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
        }
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

/// What an action means: outcome, ECS category/type and a CEF severity (0–10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Semantics {
    /// Success or failure.
    pub outcome: Outcome,
    /// ECS `event.category` values.
    pub category: &'static [&'static str],
    /// ECS `event.type` values (each expected for every category above).
    pub kind: &'static [&'static str],
    /// CEF severity: 3 a successful login, logout or document action, 4 an action this build
    /// cannot place, 5 a failed login, a change of people or groups, or a failed audit
    /// action, 6 a setting, 7 a lockout or a suspicious login.
    pub severity: u8,
}

/// Login codes the server itself counts as successes (`GetLastSuccessEventAsync`).
const LOGIN_SUCCESS: &[i64] = &[
    1000, 1001, 1007, 1010, 1011, 1012, 1015, 1019, 1021, 1024, 1027, 1028, 1029,
];

impl Event {
    /// Decodes one DocSpace row given as a JSON value (tests, `encode`, fuzzing). `stream` is
    /// the log it was read from; when `None` it is derived from the action code (SPEC:
    /// 1000–1999 are logins).
    pub fn from_json(
        portal: Arc<PortalInfo>,
        stream: Option<Stream>,
        value: Value,
    ) -> Result<Event, EventError> {
        if !value.is_object() {
            return Err(EventError::NotAnObject);
        }
        // A Value always serialises.
        let text = serde_json::to_string(&value).unwrap_or_default();
        Event::from_row_text(portal, stream, &text)
    }

    /// Decodes one row from its JSON text, as it lies in a page (the hot path: strings are
    /// borrowed from the text, nothing is built but the event itself).
    pub fn from_row_text(
        portal: Arc<PortalInfo>,
        stream: Option<Stream>,
        row: &str,
    ) -> Result<Event, EventError> {
        if let Some(ev) = Event::from_row_scan(&portal, stream, row) {
            return Ok(ev);
        }
        Event::from_row_serde(portal, stream, row)
    }

    /// The hot path of [`Event::from_row_text`]: the row read by [`crate::scan`] in one pass,
    /// strings unescaped straight into the event's buffer. `None` for anything it leaves to
    /// [`Event::from_row_serde`] (a number or `null` where a string is usual, a string where
    /// an integer is usual, a duplicate key, a surrogate escape, a missing or unreadable `id`,
    /// `date` or `actionId`, malformed JSON): that path then decides, so both always agree.
    fn from_row_scan(portal: &Arc<PortalInfo>, stream: Option<Stream>, row: &str) -> Option<Event> {
        let mut sc = crate::scan::Scanner::new(row);
        let mut ev = Event::scan_row(portal, stream, &mut sc)?;
        if !sc.at_end() {
            return None;
        }
        if ev.raw.len as usize != row.len() {
            // Whitespace around the object: `raw` is the text as given.
            ev.raw = push_span(&mut ev.text, row);
        }
        Some(ev)
    }

    /// Decodes the row object that comes next in `sc` (after whitespace) and moves past it, as
    /// [`Event::from_row_text`] would decode its text; `None` (with `sc` somewhere inside the
    /// row) for what the scan path leaves to serde_json. The source reads a whole page this
    /// way in one pass.
    pub fn scan_row(
        portal: &Arc<PortalInfo>,
        stream: Option<Stream>,
        sc: &mut crate::scan::Scanner<'_>,
    ) -> Option<Event> {
        sc.ws();
        let row_start = sc.pos();
        // Unescaped values are never longer than the row, and the row itself follows them.
        let mut text = String::with_capacity(if sc.row_hint == 0 {
            1024
        } else {
            2 * sc.row_hint + 64
        });
        let mut spans = [Span::NONE; FIELDS];
        let mut seen = 0u32;
        let (mut id, mut action_id) = (None, None);
        let (mut action_type, mut product, mut location) = (None, None, None);
        let mut date = None;
        let mut target = Vec::new();
        let mut entries = Vec::new();
        sc.object(|sc, key| {
            let Some(k) = key_index(key) else {
                return sc.skip_value(1);
            };
            if seen & (1 << k) != 0 {
                return None;
            }
            seen |= 1 << k;
            match k {
                K_ID => id = Some(sc.uint()?),
                K_ACTION_ID => action_id = Some(sc.uint()?),
                K_ACTION_TYPE => action_type = Some(sc.uint()?),
                K_PRODUCT => product = Some(sc.uint()?),
                K_LOCATION => location = Some(sc.uint()?),
                K_DATE => {
                    let start = text.len();
                    sc.string_into(&mut text)?;
                    let d = parse_date_keep_offset(text.get(start..)?).ok()?;
                    date = Some(d);
                    spans[F_DATE] = Span::since(start, &text);
                }
                K_TARGET => {
                    sc.ws();
                    if sc.peek() == Some(b'[') {
                        sc.array(|sc| {
                            target.push(scan_capped(sc)?);
                            Some(())
                        })?;
                    } else {
                        target.push(scan_capped(sc)?);
                    }
                }
                K_ENTRIES => sc.array(|sc| {
                    entries.push(sc.uint()?);
                    Some(())
                })?,
                _ => {
                    let field = match k {
                        K_ACTION => F_ACTION,
                        K_USER => F_USER,
                        K_USER_ID => F_USER_ID,
                        K_LOGIN => F_LOGIN,
                        K_IP => F_IP,
                        K_COUNTRY => F_COUNTRY,
                        K_CITY => F_CITY,
                        K_BROWSER => F_BROWSER,
                        K_PLATFORM => F_PLATFORM,
                        K_PAGE => F_PAGE,
                        K_CONTEXT => F_CONTEXT,
                        _ => return None,
                    };
                    let start = text.len();
                    sc.string_into(&mut text)?;
                    cap_from(&mut text, start);
                    if text.len() > start {
                        spans[field] = Span::since(start, &text);
                    }
                }
            }
            Some(())
        })?;
        let row = sc.since(row_start)?;
        sc.row_hint = row.len();
        let raw = push_span(&mut text, row);
        let (id, date, action_id) = (id?, date?, action_id?);
        // A date over the cap is not a date: parsing it above failed already.
        Some(Event {
            portal: portal.clone(),
            stream: stream.unwrap_or_else(|| Stream::for_action(action_id)),
            id,
            time: to_utc(date),
            offset: date.offset(),
            action_id,
            action_type,
            product,
            location,
            target,
            entries,
            text,
            spans,
            raw,
        })
    }

    /// The general path of [`Event::from_row_text`]: serde_json over the row into loose
    /// values, every odd type tolerated or named.
    fn from_row_serde(
        portal: Arc<PortalInfo>,
        stream: Option<Stream>,
        row: &str,
    ) -> Result<Event, EventError> {
        let mut de = serde_json::Deserializer::from_str(row);
        let fields = match RowFields::deserialize(&mut de).and_then(|f| de.end().map(|()| f)) {
            Ok(Some(f)) => f,
            Ok(None) => return Err(EventError::NotAnObject),
            Err(e) => return Err(EventError::Malformed(e.to_string())),
        };
        let id = fields.int(K_ID, "id")?.ok_or(EventError::Missing("id"))?;
        let (date_text, date) = match fields.get(K_DATE) {
            None => return Err(EventError::Missing("date")),
            Some(Loose::Str(s)) => {
                let s: &str = s;
                let t = parse_date_keep_offset(s).map_err(|problem| EventError::Invalid {
                    field: "date",
                    problem,
                })?;
                (s, t)
            }
            Some(other) => {
                return Err(EventError::Invalid {
                    field: "date",
                    problem: format!("expected a string, got {}", other.type_name()),
                });
            }
        };
        let action_id = fields
            .int(K_ACTION_ID, "actionId")?
            .ok_or(EventError::Missing("actionId"))?;
        let stream = stream.unwrap_or_else(|| Stream::for_action(action_id));
        let mut text = String::with_capacity(row.len() + row.len() / 2 + 48);
        let mut spans = [Span::NONE; FIELDS];
        for (field, key) in [
            (F_ACTION, K_ACTION),
            (F_USER, K_USER),
            (F_USER_ID, K_USER_ID),
            (F_LOGIN, K_LOGIN),
            (F_IP, K_IP),
            (F_COUNTRY, K_COUNTRY),
            (F_CITY, K_CITY),
            (F_BROWSER, K_BROWSER),
            (F_PLATFORM, K_PLATFORM),
            (F_PAGE, K_PAGE),
            (F_CONTEXT, K_CONTEXT),
        ] {
            if let Some(v) = fields.get(key) {
                let start = text.len();
                if v.push_scalar(&mut text) && text.len() > start {
                    spans[field] = Span::since(start, &text);
                } else {
                    text.truncate(start);
                }
            }
        }
        let start = text.len();
        push_capped(&mut text, date_text);
        spans[F_DATE] = Span::since(start, &text);
        let target = match fields.get(K_TARGET) {
            Some(Loose::Seq(items)) => items.iter().filter_map(Loose::scalar_string).collect(),
            Some(v) => v.scalar_string().into_iter().collect(),
            None => Vec::new(),
        };
        let entries = match fields.get(K_ENTRIES) {
            Some(Loose::Seq(items)) => items.iter().filter_map(Loose::as_i64).collect(),
            _ => Vec::new(),
        };
        let raw = push_span(&mut text, row);
        Ok(Event {
            portal,
            stream,
            id,
            time: to_utc(date),
            offset: date.offset(),
            action_id,
            action_type: fields.int(K_ACTION_TYPE, "actionType").ok().flatten(),
            product: fields.int(K_PRODUCT, "product").ok().flatten(),
            location: fields.int(K_LOCATION, "location").ok().flatten(),
            target,
            entries,
            text,
            spans,
            raw,
        })
    }

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
    /// result no longer decodes, an unchanged copy. For tests and tools.
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

/// Classifies an action (docs/docspace-api.md §5 and §7). Login events by their code; audit
/// events by what DocSpace's own mapper put in the row (`product`, `location`, `entries`,
/// `actionType`), corrected for the actions whose mapping would mislead an ECS reader, and by
/// their code when the row carries no mapping (actions the mapper does not list, and codes this
/// build does not know). Every `event.type` is one that ECS expects for every `event.category`
/// given (`expected_event_types` in ecs_flat.yml); a unit test checks each code of
/// [`crate::actions::ACTIONS`] in both streams, an integration test runs the official validator
/// over them.
pub fn classify(
    stream: Stream,
    action_id: i64,
    action_type: Option<i64>,
    product: Option<i64>,
    location: Option<i64>,
    entries: &[i64],
) -> Semantics {
    const AUTH: &[&str] = &["authentication"];
    const SESSION: &[&str] = &["authentication", "session"];
    if stream == Stream::Login {
        return match action_id {
            1006 => Semantics {
                outcome: Outcome::Success,
                category: AUTH,
                kind: &["end"],
                severity: 3,
            },
            1016 => Semantics {
                outcome: Outcome::Success,
                category: SESSION,
                kind: &["start"],
                severity: 3,
            },
            1017 => Semantics {
                outcome: Outcome::Success,
                category: SESSION,
                kind: &["end"],
                severity: 3,
            },
            1023 => Semantics {
                outcome: Outcome::Failure,
                category: AUTH,
                kind: &["start"],
                severity: 7,
            },
            code if LOGIN_SUCCESS.contains(&code) => Semantics {
                outcome: Outcome::Success,
                category: AUTH,
                kind: &["start"],
                severity: 3,
            },
            1002..=1026 => Semantics {
                outcome: Outcome::Failure,
                category: AUTH,
                kind: &["start"],
                severity: 5,
            },
            _ => Semantics {
                outcome: Outcome::Unknown,
                category: AUTH,
                kind: &["info"],
                severity: 5,
            },
        };
    }
    classify_audit(action_id, action_type, product, location, entries)
}

/// What an audit action acts on: the ECS `event.category` (and for IAM the first `event.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Object {
    /// `iam`, `user`: people (ProductType 8 Contacts), admin rights and product access.
    User,
    /// `iam`, `group`: groups (Contacts with EntryType 24 Group).
    Group,
    /// `file`: files, folders, rooms, tags and agents (ProductType 2 Documents).
    File,
    /// `configuration`: portal settings (ProductType 7) and Documents settings (LocationType 3).
    Config,
    /// `web`: an action this build cannot place.
    Web,
}

/// What happened to it: the ECS `event.type` verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Creation,
    Change,
    Deletion,
    Access,
    Info,
}

/// DocSpace's `ActionType` as an ECS verb: 1 Create, 9 Import, 13 Upload and 14 Copy make
/// something new; 2 Update, 4–7 Link/Unlink/Attach/Detach, 11 UpdateAccess, 15 Move,
/// 16 Reassigns and 17/18 Follow/Unfollow change it; 3 Delete deletes; 10 Export and
/// 12 Download read it; 0 None, 8 Send and anything newer change nothing ECS can name.
fn verb_of(action_type: i64) -> Verb {
    match action_type {
        1 | 9 | 13 | 14 => Verb::Creation,
        2 | 4..=7 | 11 | 15..=18 => Verb::Change,
        3 => Verb::Deletion,
        10 | 12 => Verb::Access,
        _ => Verb::Info,
    }
}

/// Audit actions whose DocSpace mapping would mislead an ECS reader: what they act on
/// (`None`: as the row says) and what happened instead of what `actionType` says.
fn reclassified(code: i64) -> Option<(Option<Object>, Verb)> {
    Some(match code {
        // UserDeletedAvatar, UserDisconnectedTfaApp: mapped as Delete, but the user stays.
        4009 | 4033 => (None, Verb::Change),
        // UsersSentActivationInstructions, OwnerSentPortalDeactivationInstructions: mapped as
        // Update, but only a mail was sent.
        4021 | 6023 => (None, Verb::Info),
        // AdministratorAdded, AdministratorOpenedFullAccess, AdministratorDeleted,
        // UsersOpenedProductAccess, ProductAddedAdministrator, ProductDeletedAdministrator,
        // OwnerUpdated: mapped as portal settings (Create/Delete of nothing ECS names), but a
        // person's rights changed.
        6009..=6012 | 6016 | 6017 | 6022 => (Some(Object::User), Verb::Change),
        // GroupsOpenedProductAccess: a group's rights changed.
        6013 => (Some(Object::Group), Verb::Change),
        // FileMovedToTrash, FolderMovedToTrash: mapped as Move; deleted, for the owner.
        5017 | 5026 => (None, Verb::Deletion),
        // File/FolderExternalLinkCreated/Deleted: mapped as Create/Delete of the file; a link
        // to it was made or removed.
        5091 | 5093 | 5122 | 5124 => (None, Verb::Change),
        // FileOpenedForChange, FileReaded, FormOpenedForFilling: mapped as Update; opened.
        5054 | 5064 | 6047 => (None, Verb::Access),
        // FileChangeOwner, DocumentSignComplete: mapped as Send; the file changed hands or
        // was signed.
        5043 | 5046 => (None, Verb::Change),
        _ => return None,
    })
}

/// Actions that DocSpace's audit mapper (master ed2994e74f) does not list, so that their rows
/// may come without `actionType` and `product`: what they act on and what happened.
fn unmapped(code: i64) -> Option<(Object, Verb)> {
    use Object::{Config, File, User};
    Some(match code {
        // DocumentsKeepNewFileNameSettingsUpdated, DocumentsDisplayFileExtensionUpdated,
        // DocumentsShowQuickActionsUpdated.
        5083 | 5101 | 5207 => (Config, Verb::Change),
        // RoomExternalLinkRenamed, RoomColorChanged, RoomCoverChanged, RoomIndexingChanged,
        // RoomDenyDownloadChanged.
        5098 | 5102..=5105 => (File, Verb::Change),
        // PrivacyRoomKeyCreated, Updated, Deleted.
        5161 => (Config, Verb::Creation),
        5162 => (Config, Verb::Change),
        5163 => (Config, Verb::Deletion),
        // FileSavedButTenantQuotaExceeded, FileNotSavedDueToTenantQuota.
        5205 | 5206 => (File, Verb::Change),
        // SubscriptionBalanceMovedToWallet, DocsCloudConfigUpdated.
        6100 | 6101 => (Config, Verb::Change),
        // DocsCloudQuotaReportDownloaded.
        6102 => (Config, Verb::Access),
        // AiProfileCreated, Updated, Deleted, Assigned, Unassigned, AiAgentProfileAssigned,
        // UpdatedServerOfAgent.
        6103 => (Config, Verb::Creation),
        6104 | 6106..=6109 => (Config, Verb::Change),
        6105 => (Config, Verb::Deletion),
        // RoomInviteLinkUsed: someone joined a room by its link.
        7001 => (User, Verb::Change),
        // UserCreatedAndAddedToRoom, GuestCreatedAndAddedToRoom.
        7002 | 7003 => (User, Verb::Creation),
        // ContactSalesMailSent.
        7004 => (Config, Verb::Info),
        // MetadataTemplate/FieldCreated, Updated, Deleted.
        9910 | 9913 => (Config, Verb::Creation),
        9911 | 9914 => (Config, Verb::Change),
        9912 | 9915 => (Config, Verb::Deletion),
        // MetadataTemplateAssigned, Unassigned, MetadataValuesUpdated, MetadataCascadeStarted:
        // metadata of files.
        9916..=9919 => (File, Verb::Change),
        _ => return None,
    })
}

/// What an audit action acts on when neither its row nor this build says: by the family of
/// its code (4xxx people, 5xxx documents, 6xxx and 99xx settings).
fn family(code: i64) -> Object {
    match code {
        4000..=4999 => Object::User,
        5000..=5999 => Object::File,
        6000..=6999 | 9900..=9999 => Object::Config,
        _ => Object::Web,
    }
}

/// Audit actions that report a failure: BackupFailed, ScheduledBackupFailed and the files not
/// saved for a quota (user, room, tenant).
const AUDIT_FAILURES: &[i64] = &[5126, 5129, 5202, 5204, 5206];

fn classify_audit(
    action_id: i64,
    action_type: Option<i64>,
    product: Option<i64>,
    location: Option<i64>,
    entries: &[i64],
) -> Semantics {
    // SuspiciousLoginDetected: DocSpace's own detection, of a login whose outcome it does not
    // say.
    if action_id == 7005 {
        return Semantics {
            outcome: Outcome::Unknown,
            category: &["authentication", "intrusion_detection"],
            kind: &["info"],
            severity: 7,
        };
    }
    // ActionType 19 Logout (UserLogoutActiveConnections and its kin): sessions ended.
    if action_type == Some(19) {
        return Semantics {
            outcome: Outcome::Success,
            category: &["session"],
            kind: &["end"],
            severity: 5,
        };
    }
    let from_row = match product {
        Some(8) if entries.contains(&24) => Some(Object::Group),
        Some(8) => Some(Object::User),
        Some(7) => Some(Object::Config),
        Some(2) if location == Some(3) => Some(Object::Config),
        Some(2) => Some(Object::File),
        _ => None,
    };
    let (mut object, mut verb) = match (from_row, unmapped(action_id)) {
        (Some(o), _) => (o, action_type.map_or(Verb::Info, verb_of)),
        (None, Some(known)) => known,
        (None, None) => (family(action_id), action_type.map_or(Verb::Info, verb_of)),
    };
    if let Some((o, v)) = reclassified(action_id) {
        object = o.unwrap_or(object);
        verb = v;
    }
    let (category, kind, severity): (&'static [&'static str], &'static [&'static str], u8) =
        match object {
            Object::User => (
                &["iam"],
                match verb {
                    Verb::Creation => &["user", "creation"],
                    Verb::Change => &["user", "change"],
                    Verb::Deletion => &["user", "deletion"],
                    // IAM has no `access`.
                    Verb::Access | Verb::Info => &["user", "info"],
                },
                5,
            ),
            Object::Group => (
                &["iam"],
                match verb {
                    Verb::Creation => &["group", "creation"],
                    Verb::Change => &["group", "change"],
                    Verb::Deletion => &["group", "deletion"],
                    Verb::Access | Verb::Info => &["group", "info"],
                },
                5,
            ),
            Object::File => (&["file"], verb_kind(verb), 3),
            Object::Config => (&["configuration"], verb_kind(verb), 6),
            // `web` expects access, error and info only.
            Object::Web => (
                &["web"],
                if verb == Verb::Access {
                    &["access"]
                } else {
                    &["info"]
                },
                4,
            ),
        };
    let failed = AUDIT_FAILURES.contains(&action_id);
    Semantics {
        outcome: if failed {
            Outcome::Failure
        } else {
            Outcome::Success
        },
        category,
        kind,
        severity: if failed { severity.max(5) } else { severity },
    }
}

/// `event.type` of a verb for `file` and `configuration`, which expect all five.
fn verb_kind(verb: Verb) -> &'static [&'static str] {
    match verb {
        Verb::Creation => &["creation"],
        Verb::Change => &["change"],
        Verb::Deletion => &["deletion"],
        Verb::Access => &["access"],
        Verb::Info => &["info"],
    }
}

/// The `id` (a number or a string of digits) and `date` of a row's JSON text, each when
/// readable, without decoding the rest (the login walker reads them for every row it skims).
pub fn row_id_and_date(row: &str) -> (Option<i64>, Option<OffsetDateTime>) {
    if let Some(found) = row_id_and_date_scan(row) {
        return found;
    }
    row_id_and_date_serde(row)
}

/// [`row_id_and_date`] by [`crate::scan`]; `None` for what it leaves to serde_json.
fn row_id_and_date_scan(row: &str) -> Option<(Option<i64>, Option<OffsetDateTime>)> {
    let mut sc = crate::scan::Scanner::new(row);
    let (mut id, mut date) = (None, None);
    let mut buf = String::new();
    sc.object(|sc, key| {
        match key {
            "id" if id.is_none() => id = Some(sc.uint()?),
            "date" if date.is_none() => {
                let (text, escaped) = sc.string_raw()?;
                let text = if escaped {
                    crate::scan::unescape_into(text, &mut buf)?;
                    buf.as_str()
                } else {
                    text
                };
                date = Some(parse_date(text).ok());
            }
            "id" | "date" => return None,
            _ => sc.skip_value(1)?,
        }
        Some(())
    })?;
    sc.at_end().then_some((id, date.flatten()))
}

fn row_id_and_date_serde(row: &str) -> (Option<i64>, Option<OffsetDateTime>) {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = (Option<Loose<'de>>, Option<Loose<'de>>);
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let (mut id, mut date) = (None, None);
            while let Some(key) = map.next_key::<Key<'de>>()? {
                match &*key.0 {
                    "id" => id = Some(map.next_value()?),
                    "date" => date = Some(map.next_value()?),
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok((id, date))
        }
    }
    let mut de = serde_json::Deserializer::from_str(row);
    let Ok((id, date)) = de::Deserializer::deserialize_map(&mut de, V) else {
        return (None, None);
    };
    let mut fields = RowFields {
        vals: Default::default(),
    };
    fields.vals[K_ID] = id;
    fields.vals[K_DATE] = date;
    let id = fields.int(K_ID, "id").ok().flatten();
    let date = match fields.get(K_DATE) {
        Some(Loose::Str(s)) => parse_date(s).ok(),
        _ => None,
    };
    (id, date)
}

/// Parses a DocSpace `date` (RFC 3339 with any fraction length, `Z` or an offset) into UTC.
/// Total: anything else, including an instant outside the years 0000–9999 in UTC, is an error
/// that names the problem.
pub fn parse_date(s: &str) -> Result<OffsetDateTime, String> {
    parse_date_keep_offset(s).map(to_utc)
}

/// Parses a DocSpace `date`, keeping the portal's offset. The instant must lie within the
/// years 0000–9999 in UTC, where every format can write it (RFC 3339, syslog, ECS, LEEF): a
/// date at the edge of the calendar with an offset that carries it past (such as
/// `9999-12-31T23:59:59-01:00`) is refused here rather than written as a year no SIEM reads.
fn parse_date_keep_offset(s: &str) -> Result<OffsetDateTime, String> {
    let t = s.trim();
    let d = match parse_date_fast(t.as_bytes()) {
        Some(d) => d,
        None => OffsetDateTime::parse(t, &Rfc3339)
            .map_err(|e| format!("{s:?} is not an RFC 3339 date-time with an offset ({e})"))?,
    };
    match d.checked_to_offset(UtcOffset::UTC) {
        Some(u) if (0..=9999).contains(&u.year()) => Ok(d),
        _ => Err(format!(
            "{s:?} lies outside the years 0000-9999 once in UTC, which no timestamp format can write"
        )),
    }
}

/// `t` in UTC, for the writers of timestamps: the identity for an event's time (UTC by
/// construction), and total for any other instant (one with no UTC form in range is written
/// as the nearest one that has).
pub fn to_utc(t: OffsetDateTime) -> OffsetDateTime {
    t.checked_to_offset(UtcOffset::UTC).unwrap_or_else(|| {
        if t.year() > 0 {
            time::PrimitiveDateTime::MAX.assume_utc()
        } else {
            time::PrimitiveDateTime::MIN.assume_utc()
        }
    })
}

/// The shape DocSpace writes, `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±hh:mm)`, parsed by hand;
/// `None` for anything else (then the general RFC 3339 parser decides, and names the problem).
fn parse_date_fast(b: &[u8]) -> Option<OffsetDateTime> {
    fn num(b: &[u8]) -> Option<u32> {
        let mut n = 0u32;
        for &c in b {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u32::from(c - b'0');
        }
        Some(n)
    }
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = num(&b[0..4])? as i32;
    let month = time::Month::try_from(num(&b[5..7])? as u8).ok()?;
    let day = num(&b[8..10])? as u8;
    let (hour, minute, second) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    let mut i = 19;
    let mut nanos = 0u32;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..9 {
            nanos *= 10;
        }
    }
    let offset = match &b[i..] {
        [b'Z' | b'z'] => UtcOffset::UTC,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let h = num(&[*h1, *h2])? as i8;
            let m = num(&[*m1, *m2])? as i8;
            let (h, m) = if *sign == b'-' { (-h, -m) } else { (h, m) };
            UtcOffset::from_hms(h, m, 0).ok()?
        }
        _ => return None,
    };
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let tod = time::Time::from_hms_nano(hour as u8, minute as u8, second as u8, nanos).ok()?;
    Some(time::PrimitiveDateTime::new(date, tod).assume_offset(offset))
}

/// Formats a UTC instant as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_utc_millis(t: OffsetDateTime) -> String {
    let t = to_utc(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Appends a UTC instant as `YYYY-MM-DDTHH:MM:SS.mmmZ` (as [`format_utc_millis`], without
/// allocating; years outside 0–9999 fall back to the formatter).
pub fn write_utc_millis(out: &mut Vec<u8>, t: OffsetDateTime) {
    let t = to_utc(t);
    let year = t.year();
    if !(0..=9999).contains(&year) {
        out.extend_from_slice(format_utc_millis(t).as_bytes());
        return;
    }
    let two = |out: &mut Vec<u8>, v: u32| {
        out.push(b'0' + (v / 10) as u8);
        out.push(b'0' + (v % 10) as u8);
    };
    let y = year as u32;
    two(out, y / 100);
    two(out, y % 100);
    out.push(b'-');
    two(out, u32::from(u8::from(t.month())));
    out.push(b'-');
    two(out, u32::from(t.day()));
    out.push(b'T');
    two(out, u32::from(t.hour()));
    out.push(b':');
    two(out, u32::from(t.minute()));
    out.push(b':');
    two(out, u32::from(t.second()));
    out.push(b'.');
    let ms = u32::from(t.millisecond());
    out.push(b'0' + (ms / 100) as u8);
    two(out, ms % 100);
    out.push(b'Z');
}

/// Formats a UTC instant as `YYYY-MM-DDTHH:MM:SSZ` (whole seconds, as the API wants `from`/`to`).
pub fn format_utc_seconds(t: OffsetDateTime) -> String {
    let t = to_utc(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

// The row decoder: one pass of serde over the row's text into `Loose` values, strings
// borrowed wherever the JSON has no escapes. Tolerance rules (what each field accepts) are those
// of DocSpace rows seen in the wild: ints as numbers or numeric strings, strings as strings,
// numbers or booleans, null meaning absent; the last of duplicate keys wins, as in a JSON map.

const K_ID: usize = 0;
const K_DATE: usize = 1;
const K_ACTION_ID: usize = 2;
const K_ACTION: usize = 3;
const K_USER: usize = 4;
const K_USER_ID: usize = 5;
const K_LOGIN: usize = 6;
const K_IP: usize = 7;
const K_COUNTRY: usize = 8;
const K_CITY: usize = 9;
const K_BROWSER: usize = 10;
const K_PLATFORM: usize = 11;
const K_PAGE: usize = 12;
const K_ACTION_TYPE: usize = 13;
const K_PRODUCT: usize = 14;
const K_LOCATION: usize = 15;
const K_TARGET: usize = 16;
const K_ENTRIES: usize = 17;
const K_CONTEXT: usize = 18;
const KEYS: usize = 19;

fn key_index(k: &str) -> Option<usize> {
    Some(match k {
        "id" => K_ID,
        "date" => K_DATE,
        "actionId" => K_ACTION_ID,
        "action" => K_ACTION,
        "user" => K_USER,
        "userId" => K_USER_ID,
        "login" => K_LOGIN,
        "ip" => K_IP,
        "country" => K_COUNTRY,
        "city" => K_CITY,
        "browser" => K_BROWSER,
        "platform" => K_PLATFORM,
        "page" => K_PAGE,
        "actionType" => K_ACTION_TYPE,
        "product" => K_PRODUCT,
        "location" => K_LOCATION,
        "target" => K_TARGET,
        "entries" => K_ENTRIES,
        "context" => K_CONTEXT,
        _ => return None,
    })
}

/// Any JSON value, as loosely as the decoder needs it.
#[derive(Debug)]
enum Loose<'a> {
    Null,
    Bool(bool),
    I(i64),
    U(u64),
    F(f64),
    Str(Cow<'a, str>),
    Seq(Vec<Loose<'a>>),
    Map,
}

impl Loose<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Loose::Null => "null",
            Loose::Bool(_) => "a boolean",
            Loose::I(_) | Loose::U(_) | Loose::F(_) => "a number",
            Loose::Str(_) => "a string",
            Loose::Seq(_) => "an array",
            Loose::Map => "an object",
        }
    }

    /// The number as JSON writes it.
    fn number_text(&self) -> Option<String> {
        match *self {
            Loose::I(n) => Some(n.to_string()),
            Loose::U(n) => Some(n.to_string()),
            Loose::F(f) => serde_json::Number::from_f64(f).map(|n| n.to_string()),
            _ => None,
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match *self {
            Loose::I(n) => Some(n),
            Loose::U(n) => i64::try_from(n).ok(),
            _ => None,
        }
    }

    /// Appends the value as text (strings capped, numbers and booleans written out); false
    /// for anything else.
    fn push_scalar(&self, out: &mut String) -> bool {
        match self {
            Loose::Str(s) => {
                push_capped(out, s);
                true
            }
            Loose::Bool(b) => {
                out.push_str(if *b { "true" } else { "false" });
                true
            }
            Loose::I(_) | Loose::U(_) | Loose::F(_) => match self.number_text() {
                Some(t) => {
                    out.push_str(&t);
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    fn scalar_string(&self) -> Option<String> {
        let mut s = String::new();
        self.push_scalar(&mut s).then_some(s)
    }
}

impl<'de> Deserialize<'de> for Loose<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Loose<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Loose<'de>, E> {
                Ok(Loose::Null)
            }
            fn visit_none<E>(self) -> Result<Loose<'de>, E> {
                Ok(Loose::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Loose<'de>, E> {
                Ok(Loose::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Loose<'de>, E> {
                Ok(Loose::I(n))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Loose<'de>, E> {
                Ok(Loose::U(n))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Loose<'de>, E> {
                Ok(Loose::F(n))
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Loose<'de>, E> {
                Ok(Loose::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Loose<'de>, E> {
                Ok(Loose::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Loose<'de>, E> {
                Ok(Loose::Str(Cow::Owned(s)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Loose<'de>, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Loose::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Loose<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Loose::Map)
            }
        }
        d.deserialize_any(V)
    }
}

/// A key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// The fields of a row the agent reads (`None` when the row is not an object).
struct RowFields<'a> {
    vals: [Option<Loose<'a>>; KEYS],
}

impl<'a> RowFields<'a> {
    fn deserialize(
        de: &mut serde_json::Deserializer<serde_json::de::StrRead<'a>>,
    ) -> Result<Option<RowFields<'a>>, serde_json::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Option<RowFields<'de>>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut vals: [Option<Loose<'de>>; KEYS] = Default::default();
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    match key_index(&key.0) {
                        Some(i) => vals[i] = Some(map.next_value()?),
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Some(RowFields { vals }))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(None)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(None)
            }
        }
        de::Deserializer::deserialize_any(de, V)
    }

    /// The value of a key; JSON `null` counts as absent.
    fn get(&self, k: usize) -> Option<&Loose<'a>> {
        match &self.vals[k] {
            None | Some(Loose::Null) => None,
            Some(v) => Some(v),
        }
    }

    /// An integer field that may arrive as a number or a numeric string.
    fn int(&self, k: usize, field: &'static str) -> Result<Option<i64>, EventError> {
        let Some(v) = self.get(k) else {
            return Ok(None);
        };
        match v {
            Loose::I(_) | Loose::U(_) | Loose::F(_) => {
                v.as_i64().map(Some).ok_or_else(|| EventError::Invalid {
                    field,
                    problem: format!("{} is not an integer", v.number_text().unwrap_or_default()),
                })
            }
            Loose::Str(s) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| EventError::Invalid {
                    field,
                    problem: format!("{s:?} is not an integer"),
                }),
            other => Err(EventError::Invalid {
                field,
                problem: format!("expected an integer, got {}", other.type_name()),
            }),
        }
    }
}

/// The JSON text without the whitespace between tokens (a pretty-printed row must still be
/// one line in the `json` format).
pub fn compact_json(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut in_str = false;
    let mut esc = false;
    for &c in b {
        if in_str {
            out.push(c);
            if esc {
                esc = false;
            } else if c == b'\\' {
                esc = true;
            } else if c == b'"' {
                in_str = false;
            }
        } else if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
            if c == b'"' {
                in_str = true;
            }
            out.push(c);
        }
    }
    // Only ASCII whitespace outside strings was removed: still UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Appends `s`, cut to [`MAX_FIELD_BYTES`] at a char boundary and marked when longer.
fn push_capped(out: &mut String, s: &str) {
    if s.len() <= MAX_FIELD_BYTES {
        out.push_str(s);
        return;
    }
    let mut end = MAX_FIELD_BYTES - TRUNCATED_MARK.len();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.push_str(&s[..end]);
    out.push_str(TRUNCATED_MARK);
}

/// Caps what was appended to `text` since `start` as [`push_capped`] would have.
fn cap_from(text: &mut String, start: usize) {
    if text.len() - start <= MAX_FIELD_BYTES {
        return;
    }
    let mut end = start + MAX_FIELD_BYTES - TRUNCATED_MARK.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(TRUNCATED_MARK);
}

/// One string of a row's `target`, capped (`None`: not a string, left to serde_json).
fn scan_capped(sc: &mut crate::scan::Scanner<'_>) -> Option<String> {
    let mut s = String::new();
    sc.string_into(&mut s)?;
    cap_from(&mut s, 0);
    Some(s)
}

/// Cuts a string to [`MAX_FIELD_BYTES`] at a char boundary and marks the cut.
pub fn cap(s: &str) -> String {
    if s.len() <= MAX_FIELD_BYTES {
        return s.to_owned();
    }
    let mut end = MAX_FIELD_BYTES - TRUNCATED_MARK.len();
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(MAX_FIELD_BYTES);
    out.push_str(&s[..end]);
    out.push_str(TRUNCATED_MARK);
    out
}

/// Decodes `row` by both paths, [`crate::scan`] and serde_json, for every stream hint, and
/// names the first difference: the scan path may give up, but whatever it decodes must be
/// exactly what serde_json decodes. For the differential tests and the `decode` fuzz target.
#[doc(hidden)]
pub fn decoders_agree(row: &str) -> Result<(), String> {
    let portal = Arc::new(PortalInfo::new("p", "https://p.example"));
    for stream in [None, Some(Stream::Login), Some(Stream::Audit)] {
        let Some(fast) = Event::from_row_scan(&portal, stream, row) else {
            continue;
        };
        let slow = Event::from_row_serde(portal.clone(), stream, row)
            .map_err(|e| format!("scan decoded a row serde_json refuses ({e})"))?;
        let view = |e: &Event| {
            format!(
                "{:?} {} {} {} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {}",
                e.stream,
                e.id,
                e.time,
                e.offset,
                e.action_id,
                e.action_type,
                e.product,
                e.location,
                e.target,
                e.entries,
                (0..FIELDS).map(|f| e.field(f)).collect::<Vec<_>>(),
                e.raw()
            )
        };
        let (f, s) = (view(&fast), view(&slow));
        if f != s {
            return Err(format!("scan: {f}\nserde: {s}"));
        }
    }
    if let Some(fast) = row_id_and_date_scan(row) {
        let slow = row_id_and_date_serde(row);
        if fast != slow {
            return Err(format!("id and date: scan {fast:?}, serde {slow:?}"));
        }
    }
    Ok(())
}

/// Whether the scan path decodes `row` (the hot path is taken), for tests.
#[doc(hidden)]
pub fn scan_decodes(row: &str) -> bool {
    let portal = Arc::new(PortalInfo::new("p", "https://p.example"));
    Event::from_row_scan(&portal, None, row).is_some() && row_id_and_date_scan(row).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
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
                        c if all
                            || !c.is_ascii()
                            || c.is_ascii_control()
                            || "+<>&'".contains(c) =>
                        {
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
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
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
        let text = include_str!("../tests/fixtures/login-filter.json");
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
    fn dates_with_offsets_become_utc() {
        let cases = [
            (
                "2025-01-15T14:32:07.0000000+01:00",
                "2025-01-15T13:32:07.000Z",
            ),
            ("2025-07-01T08:00:00.0000000Z", "2025-07-01T08:00:00.000Z"),
            (
                "2025-03-30T03:30:00.0000000+02:00",
                "2025-03-30T01:30:00.000Z",
            ),
            (
                "2025-07-01T08:00:00.1234567+05:45",
                "2025-07-01T02:15:00.123Z",
            ),
            ("2025-07-01T08:00:00-03:30", "2025-07-01T11:30:00.000Z"),
        ];
        for (input, expect) in cases {
            let t = parse_date(input).expect(input);
            assert_eq!(format_utc_millis(t), expect, "{input}");
            let mut w = Vec::new();
            write_utc_millis(&mut w, t);
            assert_eq!(String::from_utf8(w).expect("ascii"), expect, "{input}");
        }
        assert!(parse_date("2025-07-01T08:00:00").is_err());
        assert!(parse_date("2025-07-01T08:00:00.Z").is_err());
        assert!(parse_date("2025-02-30T08:00:00Z").is_err());
        assert!(parse_date("2025-07-01T24:00:00Z").is_err());
        assert!(parse_date("2025-07-01T08:00:00+5:45").is_err());
        assert!(parse_date("yesterday").is_err());
    }

    /// See: issue 15 (`encode` exited 101 on `9999-12-31T23:59:59.0000000-01:00`). A date whose
    /// instant falls outside the years 0000–9999 in UTC is an error naming the problem, by both
    /// decoders and every date reader; the edges inside are events every encoder writes.
    #[test]
    fn dates_at_the_edge_of_the_calendar_are_errors_not_panics() {
        let outside = [
            "9999-12-31T23:59:59.0000000-01:00",
            "9999-12-31T23:59:30-00:01",
            "9999-12-31T23:59:59.9999999-23:59",
            "0000-01-01T00:00:00.0000000+14:00",
            "0000-01-01T00:00:00+00:01",
            "0000-01-01T00:00:00.0000000+23:59",
            "0000-01-01t00:00:00.5+01:00",
        ];
        for s in outside {
            let e = parse_date(s).expect_err(s);
            assert!(e.contains("outside the years 0000-9999"), "{s}: {e}");
            let row = format!(r#"{{"id":1,"date":"{s}","actionId":1000}}"#);
            let e = Event::from_row_text(portal(), None, &row).expect_err(s);
            assert!(e.to_string().contains("`date`"), "{s}: {e}");
            assert_eq!(decoders_agree(&row), Ok(()), "{s}");
            assert_eq!(row_id_and_date(&row), (Some(1), None), "{s}");
        }
        let inside = [
            ("9999-12-31T23:59:59.9999999Z", "9999-12-31T23:59:59.999Z"),
            (
                "9999-12-31T23:59:59.0000000+14:00",
                "9999-12-31T09:59:59.000Z",
            ),
            ("0000-01-01T00:00:00.0000000Z", "0000-01-01T00:00:00.000Z"),
            (
                "0000-01-01T00:00:00.0000000-14:00",
                "0000-01-01T14:00:00.000Z",
            ),
            ("0000-03-01T00:00:00+01:00", "0000-02-29T23:00:00.000Z"),
        ];
        for (s, utc) in inside {
            let row = format!(r#"{{"id":1,"date":"{s}","actionId":1000}}"#);
            let ev = Event::from_row_text(portal(), None, &row).expect(s);
            assert_eq!(ev.time_rfc3339(), utc, "{s}");
            assert_eq!(decoders_agree(&row), Ok(()), "{s}");
            for format in [
                crate::transform::Format::Ecs,
                crate::transform::Format::Cef,
                crate::transform::Format::Leef,
                crate::transform::Format::Json,
            ] {
                let mut out = Vec::new();
                crate::transform::encode(format, &ev, &mut out);
                assert!(!out.is_empty(), "{s} {format:?}");
            }
        }
        // Every writer is total, even for an instant that is not in UTC and has none there.
        let far = time::PrimitiveDateTime::MAX.assume_offset(time::macros::offset!(-1));
        assert_eq!(format_utc_millis(far), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_utc_seconds(far), "9999-12-31T23:59:59Z");
        let near = time::PrimitiveDateTime::MIN.assume_offset(time::macros::offset!(+1));
        let mut w = Vec::new();
        write_utc_millis(&mut w, near);
        assert_eq!(w, b"-9999-01-01T00:00:00.000Z");
    }

    /// The hand parser agrees with the general RFC 3339 parser on every shape it accepts.
    #[test]
    fn the_fast_date_parser_agrees_with_rfc3339() {
        for s in [
            "2025-01-15T14:32:07.0000000+01:00",
            "2025-01-15T14:32:07.1234567+05:45",
            "2025-01-15T14:32:07.9999999999-03:30",
            "2025-01-15t14:32:07z",
            "2024-02-29T23:59:59.5Z",
            "1999-12-31T00:00:00-00:00",
            "2025-07-01T08:00:00.123+14:00",
        ] {
            let fast = parse_date_fast(s.as_bytes()).expect(s);
            let slow = OffsetDateTime::parse(s, &Rfc3339).expect(s);
            assert_eq!(fast, slow, "{s}");
            assert_eq!(fast.offset(), slow.offset(), "{s}");
        }
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

    /// ECS 9.4.0 `expected_event_types` of the categories the agent writes (ecs_flat.yml;
    /// the integration test `output::every_action_code_validates_as_ecs` runs the real file).
    const EXPECTED_TYPES: &[(&str, &[&str])] = &[
        ("authentication", &["start", "end", "info"]),
        (
            "configuration",
            &["access", "change", "creation", "deletion", "info"],
        ),
        (
            "file",
            &["access", "change", "creation", "deletion", "info"],
        ),
        (
            "iam",
            &[
                "admin", "change", "creation", "deletion", "group", "info", "user",
            ],
        ),
        ("intrusion_detection", &["allowed", "denied", "info"]),
        ("session", &["start", "end", "info"]),
        ("web", &["access", "error", "info"]),
    ];

    /// Every type is expected for every category given (stricter than the validator, which
    /// takes the union), none is repeated, and IAM names what changed (user or group) and how.
    fn ecs_combination_problem(sem: &Semantics) -> Option<String> {
        if sem.category.is_empty() || sem.kind.is_empty() {
            return Some("empty category or type".into());
        }
        for c in sem.category {
            let Some((_, types)) = EXPECTED_TYPES.iter().find(|(name, _)| name == c) else {
                return Some(format!("category {c} is not one the agent should write"));
            };
            if let Some(t) = sem.kind.iter().find(|t| !types.contains(t)) {
                return Some(format!("type {t} is not expected for category {c}"));
            }
        }
        let mut kinds = sem.kind.to_vec();
        kinds.sort_unstable();
        kinds.dedup();
        if kinds.len() != sem.kind.len() {
            return Some("a type twice".into());
        }
        if sem.category.contains(&"iam")
            && (sem.kind.len() != 2 || !matches!(sem.kind[0], "user" | "group"))
        {
            return Some("iam without `user`/`group` and a verb".into());
        }
        None
    }

    /// DocSpace's own mapping of each audit action (tests/fixtures/audit-actions.json, read
    /// from the server's Mappers/*.cs): `actionType`, `product`, `location`, `entries`.
    fn audit_mapping() -> std::collections::BTreeMap<i64, (i64, i64, i64, Vec<i64>)> {
        let v: Value =
            serde_json::from_str(include_str!("../tests/fixtures/audit-actions.json")).unwrap();
        v["actions"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(code, m)| {
                let n = |k: &str| m[k].as_i64().unwrap();
                let entries = m["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e.as_i64().unwrap())
                    .collect();
                (
                    code.parse().unwrap(),
                    (n("actionType"), n("product"), n("location"), entries),
                )
            })
            .collect()
    }

    /// See: issue 17 ("Review the action → ECS event.category/event.type table ... Test every
    /// code in the table, not samples"). Every code of the action table, in both streams, as
    /// DocSpace maps it and without a mapping; then every code with every `actionType`,
    /// `product`, `location` and `entries` a row may hold: always a combination ECS expects.
    #[test]
    fn every_action_code_gets_a_combination_ecs_expects() {
        let mapping = audit_mapping();
        let mut checked = 0;
        for a in crate::actions::ACTIONS {
            let code = i64::from(a.code);
            for stream in Stream::ALL {
                let mapped = mapping.get(&code);
                let sem = match mapped {
                    Some((t, p, l, e)) => classify(stream, code, Some(*t), Some(*p), Some(*l), e),
                    None => classify(stream, code, None, None, None, &[]),
                };
                if let Some(problem) = ecs_combination_problem(&sem) {
                    panic!("{code} {} in {stream}: {sem:?}: {problem}", a.name);
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 2 * crate::actions::ACTIONS.len());
        let codes = crate::actions::ACTIONS
            .iter()
            .map(|a| i64::from(a.code))
            .chain([
                0, -1, 999, 1030, 1999, 2000, 4999, 5999, 6999, 8000, 9920, 99_999,
            ]);
        for code in codes {
            for stream in Stream::ALL {
                for t in [None].into_iter().chain((-1..=25).map(Some)) {
                    for p in [None, Some(0), Some(2), Some(3), Some(7), Some(8), Some(99)] {
                        for l in [None, Some(3), Some(27)] {
                            for e in [&[][..], &[24], &[1, 2], &[23]] {
                                let sem = classify(stream, code, t, p, l, e);
                                if let Some(problem) = ecs_combination_problem(&sem) {
                                    panic!("{code} {t:?} {p:?} {l:?} {e:?}: {sem:?}: {problem}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The review's decisions, by code, as DocSpace maps each action.
    #[test]
    fn actions_are_classified_by_what_they_act_on() {
        let mapping = audit_mapping();
        let sem = |code: i64| match mapping.get(&code) {
            Some((t, p, l, e)) => classify(Stream::Audit, code, Some(*t), Some(*p), Some(*l), e),
            None => classify(Stream::for_action(code), code, None, None, None, &[]),
        };
        let check = |code: i64, category: &[&str], kind: &[&str], outcome: Outcome| {
            let s = sem(code);
            assert_eq!(
                (s.category, s.kind, s.outcome),
                (category, kind, outcome),
                "{code}"
            );
        };
        use Outcome::{Failure, Success, Unknown};
        // Groups are groups (GroupCreated was `user, creation`).
        check(4026, &["iam"], &["group", "creation"], Success);
        check(4027, &["iam"], &["group", "change"], Success);
        check(4028, &["iam"], &["group", "deletion"], Success);
        check(4000, &["iam"], &["user", "creation"], Success);
        check(4024, &["iam"], &["user", "creation"], Success);
        check(4018, &["iam"], &["user", "deletion"], Success);
        // The user stays when their avatar or 2FA app goes.
        check(4009, &["iam"], &["user", "change"], Success);
        check(4033, &["iam"], &["user", "change"], Success);
        check(4015, &["iam"], &["user", "info"], Success);
        check(4034, &["session"], &["end"], Success);
        // Admin rights are people's, not portal settings.
        check(6009, &["iam"], &["user", "change"], Success);
        check(6013, &["iam"], &["group", "change"], Success);
        check(6014, &["configuration"], &["change"], Success);
        check(6027, &["configuration"], &["access"], Success);
        check(6035, &["configuration"], &["change"], Success);
        check(5031, &["configuration"], &["change"], Success);
        check(5126, &["configuration"], &["change"], Failure);
        check(5011, &["file"], &["creation"], Success);
        check(5009, &["file"], &["access"], Success);
        check(5017, &["file"], &["deletion"], Success);
        check(5064, &["file"], &["access"], Success);
        check(5091, &["file"], &["change"], Success);
        check(5070, &["file"], &["creation"], Success);
        check(5202, &["file"], &["change"], Failure);
        // Not in DocSpace's mapper: by code.
        check(9919, &["file"], &["change"], Success);
        check(7002, &["iam"], &["user", "creation"], Success);
        check(
            7005,
            &["authentication", "intrusion_detection"],
            &["info"],
            Unknown,
        );
        // Logins.
        check(1023, &["authentication"], &["start"], Failure);
        check(1029, &["authentication"], &["start"], Success);
        check(1006, &["authentication"], &["end"], Success);
        check(1016, &["authentication", "session"], &["start"], Success);
        check(1017, &["authentication", "session"], &["end"], Success);
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

    #[test]
    fn huge_fields_are_capped_at_a_char_boundary() {
        let long = "é".repeat(MAX_FIELD_BYTES);
        let capped = cap(&long);
        assert!(capped.len() <= MAX_FIELD_BYTES);
        assert!(capped.ends_with(TRUNCATED_MARK));
    }
}
