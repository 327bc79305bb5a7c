//! The integration tests: one binary (STYLE.md), one module per area.
//!
//! Every test drives real code against loopback peers: the simulated DocSpace of
//! `docspace_siem::simulator` (every quirk of docs/docspace-api.md), the agent binary as a child
//! process, the real rsyslog receiver, and the official ECS and real CEF checkers of ../shared.

mod support;

/// Alert rules and chat sinks: an attack through the agent into mock Slack and Teams webhooks.
mod alerts;
/// Microsoft Sentinel (`azure_logs`) end to end against a stand-in for Entra ID and the Logs
/// Ingestion API: columns, token expiry, 429 storms, the 1 MB limit, refused credentials.
mod azure;
/// Command line: `validate`, `encode`, exit codes, every file in config/.
mod cli;
/// End to end through the binary into stdout, syslog (collector, UDP, real rsyslog), webhooks.
mod delivery;
/// Fault injection with figures (issue 6): kill -9, cursor-write crashes, disk full, slow and
/// stalled sinks, resets, HTTP and DocSpace errors, clock skew, secrets at trace level.
mod faults;
/// Hostile strings in every field: one record per event, exact round trips (reliability.md §5 row 22).
mod hostile;
/// Splunk HEC and Elasticsearch `_bulk` end to end against wire-faithful mocks.
mod http_sinks;
/// OCSF output (issue 21): `encode --format ocsf` and the sinks, checked by a real OCSF
/// 1.5.0 validator (tests/ocsf/validate_ocsf.py): fixtures, every action code, hostile rows.
mod ocsf;
/// What the output says (issue 17): no Guest placeholder as a user id, cut addresses kept,
/// line separators escaped, every action code valid ECS, ids unique across streams and portals.
mod output;
/// Many portals: `include` (portals.d), SIGHUP adding and removing portals, the rate-limit
/// warning.
mod portals_d;
/// Real syslog receivers (syslog-ng, rsyslog): every transport, mutual TLS, RFC 3164, header limits.
mod receivers;
/// Restarts, kill -9, SIGTERM, corrupt cursors and the state lock.
mod restart;
/// One agent for many customers: portal labels, filter.portals and filter.labels, routing
/// templates, NDJSON webhooks.
mod routing;
/// Security hardening (issue 16): the state directory, secrets in output, proxies, the API
/// listener, unbounded answers.
mod security;
/// The DocSpace server as it really behaves (docs/docspace-api.md §14): fallback, DST, ties,
/// unreadable rows.
mod server;
/// Running as a service: systemd notify and watchdog, JSON logs under journald, /health and /metrics.
mod service;
/// The DocSpace client and window walker against the simulator's quirks.
mod source;
