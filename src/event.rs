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

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::actions;

/// Longest string kept in a typed field; longer values are cut and end in [`TRUNCATED_MARK`].
pub const MAX_FIELD_BYTES: usize = 8 * 1024;
/// Appended to a string field that was cut to [`MAX_FIELD_BYTES`].
pub const TRUNCATED_MARK: &str = "…[truncated]";
/// The user id DocSpace gives failed and anonymous attempts.
pub const GUEST_USER_ID: &str = "712d9ec3-5d2b-4b13-824f-71f00191dcca";

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
}

impl PortalInfo {
    /// Builds the info from a name and base URL.
    pub fn new(name: &str, url: &str) -> PortalInfo {
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| url.to_owned());
        PortalInfo {
            name: name.to_owned(),
            url: url.trim_end_matches('/').to_owned(),
            host,
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
#[derive(Debug, Clone)]
pub struct Event {
    /// The portal it came from.
    pub portal: Arc<PortalInfo>,
    /// The log it came from.
    pub stream: Stream,
    /// DocSpace's row id (unique per table, not ordered by date).
    pub id: i64,
    /// When it happened, in UTC.
    pub time: OffsetDateTime,
    /// The `MessageAction` code.
    pub action_id: i64,
    /// The localized sentence DocSpace renders (`action`); never parsed.
    pub action_text: Option<String>,
    /// Display name, login or "Anonymous" (`user`).
    pub user: Option<String>,
    /// Actor GUID (`userId`), the Guest GUID for failed attempts.
    pub user_id: Option<String>,
    /// The login name as typed on failed attempts (`login`); attacker-controlled.
    pub login: Option<String>,
    /// Client address as DocSpace stores it (IPv6 cut to its first group).
    pub ip: Option<String>,
    /// Geolocated country name.
    pub country: Option<String>,
    /// Geolocated city.
    pub city: Option<String>,
    /// `"{UA family} {major}"`.
    pub browser: Option<String>,
    /// OS and device.
    pub platform: Option<String>,
    /// Full URL of the page (referer) or API endpoint.
    pub page: Option<String>,
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
    /// Audit: localized module name or room title.
    pub context: Option<String>,
    /// The row exactly as received.
    pub raw: Map<String, Value>,
}

/// Outcome of an event, as ECS and CEF name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The action succeeded.
    Success,
    /// The action failed (failed login).
    Failure,
    /// Not known (an action code this build has no table entry for).
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
    /// CEF severity: 3 success, 5 failure, 6 security settings, 7 lockout.
    pub severity: u8,
}

/// Login codes the server itself counts as successes (`GetLastSuccessEventAsync`).
const LOGIN_SUCCESS: &[i64] = &[
    1000, 1001, 1007, 1010, 1011, 1012, 1015, 1019, 1021, 1024, 1027, 1028, 1029,
];

impl Event {
    /// Decodes one DocSpace row. `stream` is the log it was read from; when `None` it is
    /// derived from the action code (SPEC: 1000–1999 are logins).
    pub fn from_json(
        portal: Arc<PortalInfo>,
        stream: Option<Stream>,
        value: Value,
    ) -> Result<Event, EventError> {
        let Value::Object(raw) = value else {
            return Err(EventError::NotAnObject);
        };
        let id = int_field(&raw, "id")?.ok_or(EventError::Missing("id"))?;
        let date = match raw.get("date") {
            None | Some(Value::Null) => return Err(EventError::Missing("date")),
            Some(Value::String(s)) => parse_date(s).map_err(|problem| EventError::Invalid {
                field: "date",
                problem,
            })?,
            Some(other) => {
                return Err(EventError::Invalid {
                    field: "date",
                    problem: format!("expected a string, got {}", type_name(other)),
                });
            }
        };
        let action_id = int_field(&raw, "actionId")?.ok_or(EventError::Missing("actionId"))?;
        let stream = stream.unwrap_or_else(|| Stream::for_action(action_id));
        Ok(Event {
            portal,
            stream,
            id,
            time: date,
            action_id,
            action_text: str_field(&raw, "action"),
            user: str_field(&raw, "user"),
            user_id: str_field(&raw, "userId"),
            login: str_field(&raw, "login"),
            ip: str_field(&raw, "ip"),
            country: str_field(&raw, "country"),
            city: str_field(&raw, "city"),
            browser: str_field(&raw, "browser"),
            platform: str_field(&raw, "platform"),
            page: str_field(&raw, "page"),
            action_type: int_field(&raw, "actionType").ok().flatten(),
            product: int_field(&raw, "product").ok().flatten(),
            location: int_field(&raw, "location").ok().flatten(),
            target: match raw.get("target") {
                Some(Value::Array(items)) => items.iter().filter_map(scalar_string).collect(),
                Some(v) => scalar_string(v).into_iter().collect(),
                None => Vec::new(),
            },
            entries: match raw.get("entries") {
                Some(Value::Array(items)) => items.iter().filter_map(Value::as_i64).collect(),
                _ => Vec::new(),
            },
            context: str_field(&raw, "context"),
            raw,
        })
    }

    /// The `MessageAction` member name, or `Action<code>` for a code this build does not know.
    pub fn action_name(&self) -> String {
        match actions::lookup(self.action_id) {
            Some(a) => a.name.to_owned(),
            None => format!("Action{}", self.action_id),
        }
    }

    /// The action name in kebab case (`login-fail-via-api`), as ECS `event.action` wants it.
    pub fn action_kebab(&self) -> String {
        match actions::lookup(self.action_id) {
            Some(a) => actions::kebab_case(a.name),
            None => format!("action-{}", self.action_id),
        }
    }

    /// The best human identity: the typed login, else the display name, else the user id.
    pub fn actor(&self) -> Option<&str> {
        self.login
            .as_deref()
            .or(self.user.as_deref())
            .or(self.user_id.as_deref())
    }

    /// `ip` when it is a valid IPv4/IPv6 address (DocSpace cuts IPv6 to `2a02`).
    pub fn valid_ip(&self) -> Option<std::net::IpAddr> {
        self.ip.as_deref().and_then(|s| s.parse().ok())
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
        classify(self.stream, self.action_id, self.action_type, self.product)
    }
}

/// Classifies an action code (see docs/docspace-api.md §5 and §7).
pub fn classify(
    stream: Stream,
    action_id: i64,
    action_type: Option<i64>,
    product: Option<i64>,
) -> Semantics {
    const AUTH: &[&str] = &["authentication"];
    if stream == Stream::Login {
        return match action_id {
            1006 | 1017 => Semantics {
                outcome: Outcome::Success,
                category: AUTH,
                kind: &["end"],
                severity: 3,
            },
            1016 => Semantics {
                outcome: Outcome::Success,
                category: AUTH,
                kind: &["start"],
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
    // Audit: ActionType 1 Create, 2 Update, 3 Delete, 11 UpdateAccess, 12 Download, 13 Upload,
    // 14 Copy, 15 Move, 19 Logout; ProductType 2 Documents, 7 Settings, 8 Contacts.
    let verb: &'static [&'static str] = match action_type {
        Some(1) | Some(9) | Some(13) | Some(14) => &["creation"],
        Some(3) => &["deletion"],
        Some(12) | Some(10) => &["access"],
        Some(0) | None => &["info"],
        _ => &["change"],
    };
    match product {
        Some(8) => Semantics {
            outcome: Outcome::Success,
            category: &["iam"],
            kind: match action_type {
                Some(1) => &["user", "creation"],
                Some(3) => &["user", "deletion"],
                Some(0) | None | Some(12) | Some(10) => &["user", "info"],
                _ => &["user", "change"],
            },
            severity: 5,
        },
        Some(7) => Semantics {
            outcome: Outcome::Success,
            category: &["configuration"],
            kind: verb,
            severity: 6,
        },
        Some(2) => Semantics {
            outcome: Outcome::Success,
            category: &["file"],
            kind: verb,
            severity: 3,
        },
        _ => Semantics {
            outcome: Outcome::Success,
            category: &["web"],
            kind: &["info"],
            severity: 4,
        },
    }
}

/// Parses a DocSpace `date` (RFC 3339 with any fraction length, `Z` or an offset) into UTC.
pub fn parse_date(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s.trim(), &Rfc3339)
        .map(|d| d.to_offset(time::UtcOffset::UTC))
        .map_err(|e| format!("{s:?} is not an RFC 3339 date-time with an offset ({e})"))
}

/// Formats a UTC instant as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_utc_millis(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
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

/// Formats a UTC instant as `YYYY-MM-DDTHH:MM:SSZ` (whole seconds, as the API wants `from`/`to`).
pub fn format_utc_seconds(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
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

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An integer field that may arrive as a number or a numeric string.
fn int_field(raw: &Map<String, Value>, field: &'static str) -> Result<Option<i64>, EventError> {
    match raw.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| EventError::Invalid {
            field,
            problem: format!("{n} is not an integer"),
        }),
        Some(Value::String(s)) => {
            s.trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| EventError::Invalid {
                    field,
                    problem: format!("{s:?} is not an integer"),
                })
        }
        Some(other) => Err(EventError::Invalid {
            field,
            problem: format!("expected an integer, got {}", type_name(other)),
        }),
    }
}

/// A string field: absent, null and empty all mean "not known"; numbers are stringified.
fn str_field(raw: &Map<String, Value>, field: &str) -> Option<String> {
    raw.get(field)
        .and_then(scalar_string)
        .filter(|s| !s.is_empty())
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(cap(s)),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        }
        assert!(parse_date("2025-07-01T08:00:00").is_err());
        assert!(parse_date("yesterday").is_err());
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
        assert_eq!(ev.country, None, "empty strings mean unknown");
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
}
