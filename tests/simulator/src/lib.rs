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

mod catalog;
mod data;
mod http;
mod query;
mod select;
mod store;
mod wire;
mod zones;

#[cfg(test)]
mod tests;

#[allow(unused_imports)]
pub(crate) use catalog::*;
#[allow(unused_imports)]
pub(crate) use data::*;
#[allow(unused_imports)]
pub(crate) use http::*;
#[allow(unused_imports)]
pub(crate) use query::*;
#[allow(unused_imports)]
pub(crate) use select::*;
#[allow(unused_imports)]
pub(crate) use store::*;
#[allow(unused_imports)]
pub(crate) use wire::*;
pub use zones::SimZone;
#[allow(unused_imports)]
pub(crate) use zones::*;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use time::{OffsetDateTime, UtcOffset};
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
pub(crate) fn is_unmapped(code: i32) -> bool {
    UNMAPPED_AUDIT_ACTIONS.contains(&code)
}

/// First id handed out in `login_events` (the real table is global, so ids are large).
pub(crate) const LOGIN_FIRST_ID: i64 = 48_101;
/// First id handed out in `audit_events`.
pub(crate) const AUDIT_FIRST_ID: i64 = 91_501;
/// Number of rows returned by `*/last` and by the no-audit-plan fallback.
pub(crate) const LAST_COUNT: usize = 20;
/// Portal base URL used in generated `page` values.
pub(crate) const PORTAL: &str = "https://docspace.example.com";

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
    pub(crate) shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub(crate) task: Option<tokio::task::JoinHandle<()>>,
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
// Simulator
// ---------------------------------------------------------------------------------------------

/// The mock portal: an in-memory `login_events`/`audit_events` store plus an HTTP front end.
/// Cheap to clone (shared state).
#[derive(Clone)]
pub struct Simulator {
    pub(crate) inner: Arc<Mutex<Inner>>,
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
            latency_max: Duration::ZERO,
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

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
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
        self.set_latency_range(latency, latency);
    }

    /// Adds a latency drawn uniformly from `[min, max]` to every answer, each request its own
    /// draw (a real portal whose answers take 5–50 ms); `max` below `min` counts as `min`.
    pub fn set_latency_range(&self, min: Duration, max: Duration) {
        let mut g = self.lock();
        g.latency = min;
        g.latency_max = max.max(min);
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

    pub(crate) fn insert_live_event(&self) {
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

    pub(crate) fn record(&self, req: SimRequest) {
        self.lock().requests.push(req);
    }
}
