//! docspace-siem: ships ONLYOFFICE DocSpace login history and audit trail into SIEMs.
//!
//! Code map (see ARCHITECTURE.md for the seams and invariants):
//!
//! - [`agent`]: start-up wiring and orderly shutdown; [`api`]: `/health` and `/metrics`.
//! - [`config`]: figment layering (TOML file ← `DOCSPACE_SIEM_*` env) → raw → validated [`config::Config`].
//! - [`event`]: the canonical [`event::Event`], built only by the source, read by encoders.
//! - [`actions`]: the DocSpace `MessageAction` code table and the classification of each code.
//! - [`source`]: the DocSpace client, the window walker and the poll loop of one portal/stream.
//! - [`cursor`]: the durable, atomically written cursor of each portal/stream, and the state lock.
//! - [`transform`]: pure encoders (ECS, CEF, raw JSON) and per-sink filters.
//! - [`syslog`]: the RFC 5424 / 3164 formatter and the RFC 6587 framing codec (pure, no IO).
//! - [`alert`]: alert rules judged by event time (brute force, lockout, success after failures,
//!   new country or IP, sensitive audit actions, custom), their ECS form, and the chat sinks
//!   (Slack, Teams, Mattermost, Discord, Google Chat) that post them.
//! - [`sink`]: the delivery targets (stdout, syslog UDP/TCP/TLS, webhook) and their retry policy.
//! - [`pipeline`]: bounded channels, fan-out, acknowledgements → cursor commits, shutdown.
//! - [`simulator`]: an in-process DocSpace with every quirk of the real one (tests and `demo`).
//! - [`notify`]: systemd `READY=1`, `STOPPING=1` and the watchdog fed by the pollers' heartbeats.
//! - [`retry`]: backoff policies shared by sources and sinks.
//! - [`scan`]: the strict byte-level JSON scanner the hot path reads pages and rows with; it
//!   gives up (and serde_json decides) on anything it does not fully understand.
//! - [`tls`]: rustls client configuration from PEM files.
//! - [`http`]: what every HTTP client shares: the `proxy` setting, the cap on every answer read,
//!   and the scrubbing of secrets from quoted remote text.

pub mod actions;
pub mod agent;
pub mod alert;
pub mod api;
pub mod config;
pub mod cursor;
pub mod event;
pub mod http;
pub mod notify;
pub mod pipeline;
pub mod ratelimit;
pub mod retry;
pub mod scan;
#[cfg(feature = "simulator")]
pub use docspace_sim as simulator;
pub mod sink;
pub mod source;
pub mod syslog;
pub mod tls;
pub mod transform;
