//! Configuration: figment layering (TOML file ← `DOCSPACE_SIEM_*` environment, `__` = nesting)
//! into raw serde structs, then validation into [`Config`].
//!
//! Invariants:
//! - Unknown keys are errors, at every level (`deny_unknown_fields`, plus per-sink-type checks).
//! - Validation reports every problem it can find at once, each as `key: problem`, naming the
//!   environment variable that would set the key too ([`ConfigErrors`]).
//! - Secrets (API keys, webhook URLs, header values) are [`SecretString`]s from the moment they
//!   are read: they never appear in `Debug`, in errors or in logs.
//! - Validation does no network IO; it reads only the credential and TLS files it names.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format as _, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use url::Url;

use crate::actions;
use crate::event::{Outcome, Stream};
use crate::sink::chat::{ChatConfig, ChatKind};

/// Prefix of every environment override.
pub const ENV_PREFIX: &str = "DOCSPACE_SIEM_";
/// Variables with the prefix that configure the command line, not the agent.
pub const CLI_ENV: &[&str] = &[
    "DOCSPACE_SIEM_CONFIG",
    "DOCSPACE_SIEM_FAILPOINT",
    "DOCSPACE_SIEM_LOG",
    "DOCSPACE_SIEM_LOG_FORMAT",
];
/// Keys whose environment values are parsed as TOML-like values (numbers, booleans, lists).
const TYPED_KEYS: &[&str] = &[
    "threads",
    "max_window_events",
    "concurrency",
    "max_requests_per_second",
    "max_response_mib",
    "max_datagram",
    "max_events_per_second",
    "max_events",
    "rfc",
    "facility",
    "insecure_skip_verify",
    "enabled",
    "gzip",
    "streams",
    "actions",
    "outcome",
    "rules",
    "rate",
    "threshold",
    "severity",
];
/// Where the config lives when neither `--config` nor `$DOCSPACE_SIEM_CONFIG` says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/docspace-siem/docspace-siem.toml";
/// Default state directory, used when neither `state_dir` nor systemd's `$STATE_DIRECTORY` says.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/docspace-siem";
/// Longest sink reconnect/retry backoff (SPEC: a recovered sink is used within a minute).
pub const MAX_SINK_BACKOFF: Duration = Duration::from_secs(60);

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key path, e.g. `portals.main.url`.
    pub key: String,
    /// What is wrong, lowercase, no trailing period.
    pub problem: String,
}

impl ConfigProblem {
    fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        ConfigProblem {
            key: key.into(),
            problem: problem.into(),
        }
    }

    /// The environment variable that sets this key.
    pub fn env_var(&self) -> String {
        let path: Vec<String> = self
            .key
            .split('.')
            .map(|part| part.to_ascii_uppercase().replace('-', "_"))
            .collect();
        format!("{ENV_PREFIX}{}", path.join("__"))
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.problem)
        } else {
            write!(f, "{}: {} (env {})", self.key, self.problem, self.env_var())
        }
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where cursors, the lock and dead letters live.
    pub state_dir: PathBuf,
    /// Every portal, sorted by name.
    pub portals: Vec<PortalConfig>,
    /// Every sink, sorted by name.
    pub sinks: Vec<SinkConfig>,
    /// How long a shutdown may drain before giving up (below systemd's `TimeoutStopSec`).
    pub shutdown_timeout: Duration,
    /// How often a catch-up reports progress.
    pub progress_interval: Duration,
    /// `[api]`: health and metrics listener, if enabled.
    pub api: Option<ApiConfig>,
    /// `[log]`: how the agent logs.
    pub log: LogConfig,
    /// Worker threads of the async runtime: 1 runs every task on the main thread.
    pub threads: usize,
    /// Problems that do not stop the agent (a secret file readable by others): `validate`
    /// prints them, `run` logs them.
    pub warnings: Vec<ConfigProblem>,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// JSON under journald (`$JOURNAL_STREAM`), text otherwise.
    #[default]
    Auto,
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, Default)]
pub struct LogConfig {
    /// Line format.
    pub format: LogFormat,
    /// `tracing` filter, e.g. `info` or `docspace_siem=debug`.
    pub level: Option<String>,
}

/// `[api]`.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Listen address of `/health` and `/metrics`.
    pub address: std::net::SocketAddr,
    /// Whether the address was configured (a bind failure is then fatal, not a warning).
    pub explicit: bool,
    /// `token_file`: the bearer token `/health` and `/metrics` then require.
    pub token: Option<SecretString>,
}

/// Where a portal's first run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// This long before the first start.
    Ago(Duration),
    /// A fixed instant.
    At(OffsetDateTime),
}

impl StartFrom {
    /// The instant, relative to `now`. Total: a duration reaching back before 1970 (such as
    /// `"100000y"`, which panicked the start) starts at 1970-01-01, older than any DocSpace row.
    pub fn resolve(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            StartFrom::Ago(d) => time::Duration::try_from(d)
                .ok()
                .and_then(|d| now.checked_sub(d))
                .filter(|t| *t >= OffsetDateTime::UNIX_EPOCH)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            StartFrom::At(t) => t,
        }
    }
}

/// TLS settings of an HTTP client (portal or HTTP sink).
#[derive(Debug, Clone, Default)]
pub struct HttpTls {
    /// Extra trusted CA certificates (PEM).
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM), for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// Client private key (PEM), for mutual TLS.
    pub key_file: Option<PathBuf>,
    /// Turns certificate checks off (logs a warning at start).
    pub insecure_skip_verify: bool,
    /// How the client reaches its target: the `proxy` key of the portal or sink table, kept
    /// here with the rest of the client's connection settings ([`crate::http::client`]).
    pub proxy: crate::http::Proxy,
}

/// One `[portals.NAME]`.
#[derive(Debug, Clone)]
pub struct PortalConfig {
    /// Table name.
    pub name: String,
    /// Base URL, no trailing slash.
    pub url: Url,
    /// The `sk-…` API key, sent as `Authorization: Bearer`.
    pub api_key: SecretString,
    /// Streams to poll.
    pub streams: Vec<Stream>,
    /// Pause between polls once caught up.
    pub poll_interval: Duration,
    /// First run only: where to start.
    pub start_from: StartFrom,
    /// Each poll reads up to `now − settle`, so rows still being written are not missed.
    pub settle: Duration,
    /// Re-read before the watermark to catch late and out-of-order rows.
    pub overlap: Duration,
    /// How often the whole `overlap` is re-read once caught up (the polls between re-read only
    /// since the previous poll).
    pub overlap_every: Duration,
    /// Initial span of a catch-up window (adapts to the event density).
    pub catchup_window: Duration,
    /// A window holding more events than this is split in half (bounds memory).
    pub max_window_events: usize,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Largest answer body read from the portal, in MiB.
    pub max_response_mib: u64,
    /// Retry interval after errors only an operator can fix (401, 403, 402, plan fallback).
    pub error_retry: Duration,
    /// Requests of one window kept in flight at once during a catch-up.
    pub concurrency: usize,
    /// Requests per second to this portal, all streams together (0: no client-side limit).
    pub max_requests_per_second: f64,
    /// TLS for the portal connection.
    pub tls: HttpTls,
}

/// Output format of a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ECS 9.x JSON.
    Ecs,
    /// ArcSight CEF.
    Cef,
    /// The DocSpace row plus `portal` and `stream`.
    Json,
    /// IBM QRadar LEEF 2.0.
    Leef,
}

impl Format {
    /// Parses `ecs` / `cef` / `json`.
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "ecs" => Some(Format::Ecs),
            "cef" => Some(Format::Cef),
            "json" => Some(Format::Json),
            "leef" => Some(Format::Leef),
            _ => None,
        }
    }
}

/// Which events a sink takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Empty = every stream.
    pub streams: Vec<Stream>,
    /// Empty = every action.
    pub actions: Vec<i64>,
    /// Empty = every outcome.
    pub outcomes: Vec<Outcome>,
}

/// One `[sinks.NAME]`.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Table name.
    pub name: String,
    /// Encoding of each event.
    pub format: Format,
    /// Which events it takes.
    pub filter: Filter,
    /// Type-specific settings.
    pub kind: SinkKind,
    /// stdout and webhook sinks: rules whose alerts it also receives, as ECS documents.
    pub alerts: Option<crate::alert::SinkRules>,
}

/// Type-specific sink settings.
#[derive(Debug, Clone)]
pub enum SinkKind {
    /// Newline-delimited on standard output.
    Stdout,
    /// Syslog over UDP, TCP or TLS.
    Syslog(SyslogConfig),
    /// HTTP POST of JSON arrays.
    Webhook(WebhookConfig),
    /// Splunk HTTP Event Collector.
    SplunkHec(crate::sink::splunk::SplunkConfig),
    /// Elasticsearch / OpenSearch `_bulk`.
    Elasticsearch(crate::sink::elastic::ElasticConfig),
    /// A chat webhook that posts the alerts of its rules.
    Chat(ChatConfig),
}

/// Syslog transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// One datagram per event (RFC 5426), lossy.
    Udp,
    /// Plain TCP (RFC 6587).
    Tcp,
    /// TLS (RFC 5425).
    Tls,
}

/// TCP/TLS framing (RFC 6587).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `LEN SP MSG` (default; the only framing of RFC 5425).
    OctetCounting,
    /// `MSG LF`.
    Newline,
}

/// Syslog header flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rfc {
    /// RFC 5424 (default).
    Rfc5424,
    /// RFC 3164 (BSD), for old receivers.
    Rfc3164,
}

/// Default pace of a UDP syslog sink, in messages per second: what a stock rsyslog on the same
/// host, with its default socket buffer, keeps up with during a catch-up (README, "UDP").
pub const UDP_EVENTS_PER_SECOND: f64 = 2000.0;

/// Settings of a syslog sink.
#[derive(Debug, Clone)]
pub struct SyslogConfig {
    /// `host:port`.
    pub address: String,
    /// Transport.
    pub protocol: Protocol,
    /// TCP/TLS framing.
    pub framing: Framing,
    /// Header flavour.
    pub rfc: Rfc,
    /// APP-NAME (RFC 5424) / TAG (RFC 3164).
    pub app_name: String,
    /// Facility number 0–23.
    pub facility: u8,
    /// HOSTNAME field; the machine's host name by default.
    pub hostname: Option<String>,
    /// UDP payload cap (RFC 5426); a longer message has its longest values cut, and is marked.
    pub max_datagram: usize,
    /// Most messages sent per second (0: no limit). UDP has no backpressure, so by default
    /// it is paced at [`UDP_EVENTS_PER_SECOND`]; TCP and TLS default to no limit.
    pub max_events_per_second: f64,
    /// A write that makes no progress this long drops the connection.
    pub write_timeout: Duration,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// TLS settings (protocol = "tls").
    pub tls: SyslogTls,
}

/// TLS settings of a syslog sink.
#[derive(Debug, Clone, Default)]
pub struct SyslogTls {
    /// Trusted CA certificates (PEM); the system store when absent.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS.
    pub key_file: Option<PathBuf>,
    /// Name checked against the server certificate; the address host by default.
    pub server_name: Option<String>,
    /// Turns certificate checks off (logs a warning at start).
    pub insecure_skip_verify: bool,
}

/// Settings of a webhook sink.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Target URL (may embed a token, hence secret).
    pub url: SecretString,
    /// Extra headers; values may be tokens.
    pub headers: Vec<(String, SecretString)>,
    /// Most events in one POST.
    pub max_events: usize,
    /// How long a partial batch waits for more events.
    pub batch_timeout: Duration,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// TLS settings.
    pub tls: HttpTls,
    /// Compress request bodies (`Content-Encoding: gzip`).
    pub gzip: bool,
}

impl WebhookConfig {
    /// The URL with any user info, query and path tokens hidden, for logs.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose_secret())
    }
}

/// Shows only scheme, host and port of a URL (paths and queries of webhooks carry tokens).
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("?");
            match u.port() {
                Some(p) => format!("{}://{host}:{p}/…", u.scheme()),
                None => format!("{}://{host}/…", u.scheme()),
            }
        }
        Err(_) => "<invalid url>".to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Raw layer: exactly what the TOML/env may hold.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoot {
    state_dir: Option<String>,
    shutdown_timeout: Option<String>,
    progress_interval: Option<String>,
    threads: Option<Value>,
    #[serde(default)]
    portals: BTreeMap<String, Value>,
    #[serde(default)]
    sinks: BTreeMap<String, Value>,
    api: Option<Value>,
    log: Option<Value>,
    rules: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    format: Option<String>,
    level: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApi {
    address: Option<String>,
    enabled: Option<bool>,
    token_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPortal {
    url: Option<String>,
    api_key: Option<SecretString>,
    api_key_file: Option<String>,
    streams: Option<Vec<String>>,
    poll_interval: Option<String>,
    start_from: Option<String>,
    settle: Option<String>,
    overlap: Option<String>,
    overlap_every: Option<String>,
    catchup_window: Option<String>,
    max_window_events: Option<u64>,
    timeout: Option<String>,
    max_response_mib: Option<u64>,
    error_retry: Option<String>,
    concurrency: Option<u64>,
    max_requests_per_second: Option<f64>,
    tls: Option<RawHttpTls>,
    proxy: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttpTls {
    ca_file: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    server_name: Option<String>,
    #[serde(default)]
    insecure_skip_verify: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSink {
    #[serde(rename = "type")]
    kind: Option<String>,
    format: Option<String>,
    filter: Option<RawFilter>,
    // syslog
    address: Option<String>,
    protocol: Option<String>,
    framing: Option<String>,
    rfc: Option<Value>,
    app_name: Option<String>,
    facility: Option<Value>,
    hostname: Option<String>,
    max_datagram: Option<u64>,
    max_events_per_second: Option<f64>,
    write_timeout: Option<String>,
    connect_timeout: Option<String>,
    tls: Option<RawHttpTls>,
    // webhook
    url: Option<SecretString>,
    url_file: Option<String>,
    headers: Option<BTreeMap<String, SecretString>>,
    batch: Option<RawBatch>,
    timeout: Option<String>,
    // splunk_hec and elasticsearch
    endpoint: Option<String>,
    token: Option<SecretString>,
    token_file: Option<String>,
    index: Option<String>,
    sourcetype: Option<String>,
    source: Option<String>,
    host: Option<String>,
    ack: Option<bool>,
    ack_timeout: Option<String>,
    api_key: Option<SecretString>,
    api_key_file: Option<String>,
    username: Option<String>,
    password: Option<SecretString>,
    password_file: Option<String>,
    flavor: Option<String>,
    pipeline: Option<String>,
    // webhook
    gzip: Option<bool>,
    // chat sinks
    rules: Option<Value>,
    rate: Option<Value>,
    // every HTTP sink
    proxy: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatch {
    max_events: Option<u64>,
    timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilter {
    streams: Option<Vec<String>>,
    actions: Option<Vec<Value>>,
    outcome: Option<Value>,
}

/// Keys of each sink type beyond `type`, `format`, `filter` (for "not a key of" errors).
const SYSLOG_KEYS: &[&str] = &[
    "address",
    "protocol",
    "framing",
    "rfc",
    "app_name",
    "facility",
    "hostname",
    "max_datagram",
    "max_events_per_second",
    "write_timeout",
    "connect_timeout",
    "tls",
];
const WEBHOOK_KEYS: &[&str] = &[
    "url", "url_file", "headers", "batch", "timeout", "tls", "rules", "gzip", "proxy",
];
const SPLUNK_KEYS: &[&str] = &[
    "endpoint",
    "token",
    "token_file",
    "index",
    "sourcetype",
    "source",
    "host",
    "ack",
    "ack_timeout",
    "batch",
    "timeout",
    "tls",
    "proxy",
];
const ELASTIC_KEYS: &[&str] = &[
    "endpoint",
    "index",
    "api_key",
    "api_key_file",
    "username",
    "password",
    "password_file",
    "flavor",
    "pipeline",
    "batch",
    "timeout",
    "tls",
    "proxy",
];
const CHAT_KEYS: &[&str] = &[
    "url", "url_file", "rules", "rate", "timeout", "tls", "proxy",
];
/// Every sink type, for error messages.
const SINK_TYPES: &str = "stdout, syslog, webhook, splunk_hec, elasticsearch, slack, teams, mattermost, discord or google_chat";

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The TOML file.
    pub file: PathBuf,
    /// Environment variables (injected in tests; `std::env::vars()` in the binary).
    pub env: Vec<(String, String)>,
}

impl Sources {
    /// The file plus the process environment.
    pub fn from_process(file: PathBuf) -> Sources {
        Sources {
            file,
            env: std::env::vars().collect(),
        }
    }

    fn get_env(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Loads and validates the configuration.
pub fn load(sources: &Sources) -> Result<Config, ConfigErrors> {
    let one = |key: &str, problem: String| ConfigErrors(vec![ConfigProblem::new(key, problem)]);
    if !sources.file.is_file() {
        return Err(one(
            "",
            format!(
                "config file {} does not exist or is not a file (pass --config FILE or set DOCSPACE_SIEM_CONFIG)",
                sources.file.display()
            ),
        ));
    }
    // Variables that configure the CLI, not the agent.
    let env: Vec<(String, String)> = sources
        .env
        .iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !CLI_ENV.contains(&k.as_str()))
        .cloned()
        .collect();
    // Overlay the environment ourselves (same rules as figment's `Env::prefixed(..).split("__")`),
    // so that tests can inject variables without touching the process environment.
    let mut figment = Figment::new().merge(Toml::file_exact(&sources.file));
    for (k, v) in &env {
        let key = k[ENV_PREFIX.len()..]
            .to_ascii_lowercase()
            .replace("__", ".");
        // Only keys that are numbers, booleans or lists are parsed; everything else (secrets
        // above all) stays the exact string that was given.
        let last = key.rsplit('.').next().unwrap_or_default();
        let value: figment::value::Value = if TYPED_KEYS.contains(&last) {
            v.parse::<figment::value::Value>()
                .unwrap_or_else(|_| figment::value::Value::from(v.clone()))
        } else {
            figment::value::Value::from(v.clone())
        };
        figment = figment.merge(figment::providers::Serialized::default(&key, value));
    }
    let root: Value = match figment.extract::<Value>() {
        Ok(v) => v,
        Err(errors) => {
            // Secrets the environment holds, so that no message can quote them.
            for (k, v) in &env {
                let last = k
                    .rsplit("__")
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if is_secret_key(&last)
                    || k.contains("__HEADERS__")
                    || (k.contains("SINKS__") && last == "url")
                {
                    crate::http::remember_secret(v);
                }
            }
            let problems = errors
                .into_iter()
                .map(|e| {
                    let (key, msg) = figment_problem(&e, &sources.file);
                    let msg = match &e.metadata {
                        Some(md) => format!("{msg} (in {})", md.name),
                        None => msg,
                    };
                    ConfigProblem::new(key, crate::http::scrub(&msg))
                })
                .collect();
            return Err(ConfigErrors(problems));
        }
    };
    remember_secrets(false, &root);
    WARNINGS.with(|w| w.borrow_mut().clear());
    let result = validate(root, sources);
    let warnings = WARNINGS.with(|w| std::mem::take(&mut *w.borrow_mut()));
    result
        .map(|mut cfg| {
            cfg.warnings = warnings;
            cfg
        })
        .map_err(|ConfigErrors(problems)| {
            // Every message once more through the scrubber: whatever a check quoted, no secret
            // value of the configuration leaves in an error.
            ConfigErrors(
                problems
                    .into_iter()
                    .map(|p| ConfigProblem::new(p.key, crate::http::scrub(&p.problem)))
                    .collect(),
            )
        })
}

thread_local! {
    /// Warnings of the validation under way on this thread (the checks that find them run deep
    /// inside it); [`load`] moves them into [`Config::warnings`].
    static WARNINGS: std::cell::RefCell<Vec<ConfigProblem>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Checks who may read and write a file that holds a secret (a key, token, password or
/// client key): writable by every user is an error (anyone could swap the credential); readable
/// by every user, or by a group the agent does not run as, is a warning (the secret is shared
/// with those users). `root:docspace-siem 0640` read by the service is fine.
fn check_secret_mode(errs: &mut Vec<ConfigProblem>, key: &str, path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        let Ok(md) = std::fs::metadata(path) else {
            return;
        };
        let mode = md.mode() & 0o777;
        let shown = path.display();
        if mode & 0o002 != 0 {
            errs.push(ConfigProblem::new(
                key,
                format!("{shown} is writable by every user (mode {mode:04o}): anyone could replace the secret; chmod o-w it, and make it 0600 or 0640"),
            ));
        } else if mode & 0o004 != 0 {
            WARNINGS.with(|w| {
                w.borrow_mut().push(ConfigProblem::new(
                    key,
                    format!("{shown} is readable by every user (mode {mode:04o}); chmod 0600 (or 0640 with the service's group)"),
                ))
            });
        } else if mode & 0o040 != 0
            && crate::cursor::effective_ids().is_none_or(|(_, gid)| gid != md.gid())
        {
            WARNINGS.with(|w| {
                w.borrow_mut().push(ConfigProblem::new(
                    key,
                    format!("{shown} is readable by its group (gid {}, mode {mode:04o}), which the agent does not run as; chmod g-r, or give it the service's group", md.gid()),
                ))
            });
        }
    }
    #[cfg(not(unix))]
    let _ = (errs, key, path);
}

/// Keys whose values are secrets wherever they appear (`url` only in sinks: a portal's URL
/// is not one).
fn is_secret_key(key: &str) -> bool {
    matches!(
        key,
        "api_key" | "token" | "password" | "client_secret" | "headers" | "proxy"
    )
}

/// Remembers every secret value of the merged tree for [`crate::http::scrub`]: values of
/// secret keys whatever their type (a wrong-type value is still a secret), each header value,
/// and the parts of secret URLs (user info, query values, long path segments: webhook tokens).
fn remember_secrets(in_sinks: bool, v: &Value) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                if is_secret_key(k) || (in_sinks && k == "url") {
                    remember_all(child);
                } else {
                    remember_secrets(in_sinks || k == "sinks", child);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|c| remember_secrets(in_sinks, c)),
        _ => {}
    }
}

fn remember_all(v: &Value) {
    match v {
        Value::String(s) => {
            crate::http::remember_secret(s);
            if let Ok(u) = Url::parse(s.trim()) {
                if let Some(p) = u.password() {
                    crate::http::remember_secret(p);
                }
                crate::http::remember_secret(u.username());
                for (_, value) in u.query_pairs() {
                    if value.len() >= 8 {
                        crate::http::remember_secret(&value);
                    }
                }
                for seg in u.path_segments().into_iter().flatten() {
                    if seg.len() >= 16 {
                        crate::http::remember_secret(seg);
                    }
                }
            }
        }
        Value::Object(m) => m.values().for_each(remember_all),
        Value::Array(a) => a.iter().for_each(remember_all),
        other => crate::http::remember_secret(&other.to_string()),
    }
}

/// A figment error as `(key, problem)` without any value from the configuration: a TOML
/// syntax error names the key of the line and the line and column, never the line's text (it
/// may be `token = "…` unterminated); other errors name only the kind of value found.
fn figment_problem(e: &figment::Error, file: &Path) -> (String, String) {
    use figment::error::Kind;
    let key = e.path.join(".");
    let problem = match &e.kind {
        Kind::Message(m) => return toml_problem(m, file).unwrap_or((key, "cannot be read".into())),
        Kind::InvalidType(actual, expected) => {
            format!(
                "invalid type: found {}, expected {expected}",
                kind_of(actual)
            )
        }
        Kind::InvalidValue(actual, expected) => {
            format!(
                "invalid value: found {}, expected {expected}",
                kind_of(actual)
            )
        }
        Kind::UnknownVariant(_, expected) => {
            format!("unknown variant, expected one of {}", expected.join(", "))
        }
        other => other.to_string(),
    };
    (key, problem)
}

/// The kind of a value, without the value.
fn kind_of(a: &figment::error::Actual) -> &'static str {
    use figment::error::Actual;
    match a {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a number",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Bytes(_) => "bytes",
        Actual::Seq => "a list",
        Actual::Map => "a table",
        _ => "another kind of value",
    }
}

/// A TOML parse error (`TOML parse error at line L, column C`, the quoted source line, then
/// the problem) as `(key, "TOML syntax error at line L, column C: problem")`, the key read from
/// the text before `=` on that line and the table header above it.
fn toml_problem(message: &str, file: &Path) -> Option<(String, String)> {
    let mut lines = message.lines();
    let first = lines.next()?;
    let at = first.find("line ")?;
    let pos = first[at..].trim();
    let mut nums = pos
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|n| n.parse::<usize>().ok());
    let (line, column) = (nums.next()?, nums.next().unwrap_or(0));
    // The snippet lines are `  |`, `3 | token = "…`, `  |     ^`: drop every one of them.
    let problem: Vec<&str> = lines
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with('|')
                || t.split_once('|')
                    .is_some_and(|(n, _)| n.trim().chars().all(|c| c.is_ascii_digit())))
        })
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let problem = if problem.is_empty() {
        "invalid TOML".to_owned()
    } else {
        problem.join("; ")
    };
    let key = std::fs::read_to_string(file)
        .ok()
        .map(|text| toml_key_at(&text, line))
        .unwrap_or_default();
    Some((
        key,
        format!("TOML syntax error at line {line}, column {column}: {problem}"),
    ))
}

/// The dotted key a TOML line sets (`[table]` above it, then the bare key before `=`), or ""
/// when that is not plain: no part of a value is ever returned.
fn toml_key_at(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(this) = lines.get(line.saturating_sub(1)) else {
        return String::new();
    };
    let bare = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    let Some((k, _)) = this.split_once('=') else {
        return String::new();
    };
    let k = k.trim();
    if !bare(k) {
        return String::new();
    }
    let table = lines[..line.saturating_sub(1)]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(['[', ']']).trim())
        .filter(|t| bare(t))
        .unwrap_or_default();
    if table.is_empty() {
        k.to_owned()
    } else {
        format!("{table}.{k}")
    }
}

/// Validates an already-merged config tree (also used by tests).
fn validate(root: Value, sources: &Sources) -> Result<Config, ConfigErrors> {
    let mut errs: Vec<ConfigProblem> = Vec::new();
    let raw: RawRoot = match serde_json::from_value(root.clone()) {
        Ok(r) => r,
        Err(e) => return Err(ConfigErrors(each_key::<RawRoot>("", &root, &[], &e))),
    };

    let state_dir = raw
        .state_dir
        .map(PathBuf::from)
        .or_else(|| sources.get_env("STATE_DIRECTORY").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    if !state_dir.is_absolute() {
        errs.push(ConfigProblem::new(
            "state_dir",
            "must be an absolute path (the agent writes nothing into its working directory)",
        ));
    } else if let Some(problem) = state_dir_problem(&state_dir) {
        errs.push(ConfigProblem::new("state_dir", problem));
    }
    let shutdown_timeout = duration(
        &mut errs,
        "shutdown_timeout",
        raw.shutdown_timeout.as_deref(),
        Duration::from_secs(15),
    );
    // SPEC: SIGTERM exits within 20 s.
    within(
        &mut errs,
        "shutdown_timeout",
        shutdown_timeout,
        Duration::from_secs(1),
        Duration::from_secs(19),
    );
    let threads = match &raw.threads {
        None => 1,
        Some(v) => match v.as_u64().filter(|n| (1..=64).contains(n)) {
            Some(n) => n,
            None => {
                errs.push(ConfigProblem::new(
                    "threads",
                    format!("must be a whole number between 1 and 64, got {v}"),
                ));
                1
            }
        },
    };
    let progress_interval = duration(
        &mut errs,
        "progress_interval",
        raw.progress_interval.as_deref(),
        Duration::from_secs(30),
    );
    within(
        &mut errs,
        "progress_interval",
        progress_interval,
        Duration::from_secs(1),
        Duration::from_secs(86_400),
    );
    let api = match serde_json::from_value::<RawApi>(
        raw.api.unwrap_or(Value::Object(Default::default())),
    ) {
        Ok(a) if a.enabled == Some(false) => None,
        Ok(a) => {
            let explicit = a.address.is_some();
            let addr = a.address.unwrap_or_else(|| "127.0.0.1:9898".to_owned());
            let token = a.token_file.as_deref().and_then(|f| {
                read_secret_file(&mut errs, "api.token_file", &credential_path(f, sources))
            });
            match addr.parse() {
                Ok(address) => Some(ApiConfig {
                    address,
                    explicit,
                    token,
                }),
                Err(_) => {
                    errs.push(ConfigProblem::new(
                        "api.address",
                        format!("{addr:?} is not an ip:port socket address"),
                    ));
                    None
                }
            }
        }
        Err(e) => {
            errs.push(serde_problem("api", &e));
            None
        }
    };

    let log = match raw.log.map(serde_json::from_value::<RawLog>) {
        None => LogConfig::default(),
        Some(Err(e)) => {
            errs.push(serde_problem("log", &e));
            LogConfig::default()
        }
        Some(Ok(l)) => {
            let format = match l.format.as_deref() {
                None | Some("auto") => LogFormat::Auto,
                Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    errs.push(ConfigProblem::new(
                        "log.format",
                        format!("{other:?} is not auto, text or json"),
                    ));
                    LogFormat::Auto
                }
            };
            if let Some(level) = &l.level
                && let Err(problem) = check_log_level(level)
            {
                errs.push(ConfigProblem::new("log.level", problem));
            }
            LogConfig {
                format,
                level: l.level,
            }
        }
    };

    if raw.portals.is_empty() {
        errs.push(ConfigProblem::new(
            "portals",
            "no portal configured: add a [portals.NAME] table with url and api_key_file",
        ));
    }
    let mut portals = Vec::new();
    for (name, value) in raw.portals {
        let key = format!("portals.{name}");
        check_name(&mut errs, &key, &name);
        match serde_json::from_value::<RawPortal>(value.clone()) {
            Ok(rp) => {
                if let Some(p) = portal(&mut errs, &key, &name, rp, sources) {
                    portals.push(p);
                }
            }
            Err(e) => {
                let problems = each_key::<RawPortal>(&key, &value, &[], &e);
                // The rest of the table is still checked: a bad key hides nothing else.
                if let Ok(rp) = serde_json::from_value::<RawPortal>(without(&value, &problems)) {
                    let _ = portal(&mut errs, &key, &name, rp, sources);
                }
                errs.extend(problems);
            }
        }
    }

    if raw.sinks.is_empty() {
        errs.push(ConfigProblem::new(
            "sinks",
            "no sink configured: add a [sinks.NAME] table (type = \"stdout\" | \"syslog\" | \"webhook\")",
        ));
    }
    // `[rules.NAME]`: None when a table is invalid (its problems are reported; sinks naming
    // rules are then not checked against them).
    let rules = match &raw.rules {
        None => Some(Vec::new()),
        Some(Value::Object(m)) => match crate::alert::parse_rules(m) {
            Ok(r) => Some(r),
            Err(problems) => {
                errs.extend(problems.into_iter().map(|(k, p)| ConfigProblem::new(k, p)));
                None
            }
        },
        Some(_) => {
            errs.push(ConfigProblem::new("rules", "must hold [rules.NAME] tables"));
            None
        }
    };
    let mut sinks = Vec::new();
    for (name, value) in raw.sinks {
        let key = format!("sinks.{name}");
        check_name(&mut errs, &key, &name);
        let present: Vec<String> = value
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        match serde_json::from_value::<RawSink>(value.clone()) {
            Ok(rs) => {
                let ctx = SinkContext {
                    sources,
                    rules: rules.as_deref(),
                    state_dir: &state_dir,
                };
                if let Some(s) = sink(&mut errs, &key, &name, rs, &present, &ctx) {
                    sinks.push(s);
                }
            }
            Err(e) => {
                let problems = each_key::<RawSink>(&key, &value, &["type"], &e);
                let rest = without(&value, &problems);
                let present: Vec<String> = rest
                    .as_object()
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
                if let Ok(rs) = serde_json::from_value::<RawSink>(rest) {
                    let ctx = SinkContext {
                        sources,
                        rules: rules.as_deref(),
                        state_dir: &state_dir,
                    };
                    let _ = sink(&mut errs, &key, &name, rs, &present, &ctx);
                }
                errs.extend(problems);
            }
        }
    }

    if errs.is_empty() {
        Ok(Config {
            state_dir,
            portals,
            sinks,
            shutdown_timeout,
            progress_interval,
            api,
            log,
            threads: threads as usize,
            warnings: Vec::new(),
        })
    } else {
        Err(ConfigErrors(errs))
    }
}

/// A problem from serde for the table at `key`: `unknown field `x`` and `invalid type` name the
/// field, so the problem is filed under `key.x` (and so names the right env var).
fn serde_problem(key: &str, e: &serde_json::Error) -> ConfigProblem {
    let msg = without_values(&e.to_string());
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((field, _)) = rest.split_once('`')
    {
        let full = if key.is_empty() {
            field.to_owned()
        } else {
            format!("{key}.{field}")
        };
        return ConfigProblem::new(full, format!("unknown key ({msg})"));
    }
    ConfigProblem::new(key, msg)
}

/// Every problem of a table that did not deserialize, key by key: serde stops at the first
/// one, and a wrong type must not hide the next problem (`poll_interval = 30` and an unknown
/// key in the same table are both named). Each key is tried alone, beside the `context` keys
/// that give it its meaning (a sink's `type`); `first` is the error of the whole table, used
/// when no single key explains it.
fn each_key<T: serde::de::DeserializeOwned>(
    prefix: &str,
    table: &Value,
    context: &[&str],
    first: &serde_json::Error,
) -> Vec<ConfigProblem> {
    let name = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    let Value::Object(m) = table else {
        return vec![serde_problem(prefix, first)];
    };
    let mut out = Vec::new();
    let mut base = serde_json::Map::new();
    for c in context {
        if let Some(v) = m.get(*c) {
            base.insert((*c).to_owned(), v.clone());
        }
    }
    if let Err(e) = serde_json::from_value::<T>(Value::Object(base.clone())) {
        out.push(serde_problem(prefix, &e));
        base.clear();
    }
    for (k, v) in m {
        if context.contains(&k.as_str()) {
            continue;
        }
        let mut one = base.clone();
        one.insert(k.clone(), v.clone());
        if let Err(e) = serde_json::from_value::<T>(Value::Object(one)) {
            let p = serde_problem(prefix, &e);
            // A type error names no key: it is this one's.
            let key = if p.key == prefix { name(k) } else { p.key };
            out.push(ConfigProblem::new(key, p.problem));
        }
    }
    if out.is_empty() {
        out.push(serde_problem(prefix, first));
    }
    out
}

/// `table` without the keys that `problems` name (the last segment of each key).
fn without(table: &Value, problems: &[ConfigProblem]) -> Value {
    let mut t = table.clone();
    if let Value::Object(m) = &mut t {
        for p in problems {
            if let Some(k) = p.key.rsplit('.').next() {
                m.remove(k);
            }
        }
    }
    t
}

/// A serde message without the value it quotes: `invalid type: string "Authorization: Bearer
/// …", expected a map` becomes `invalid type: a string, expected a map` (the value may be a
/// secret put under the wrong key or in the wrong shape); unknown variants lose their name.
fn without_values(msg: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, "?"));
            let kind = [
                ("string", "a string"),
                ("integer", "an integer"),
                ("floating point", "a number"),
                ("boolean", "a boolean"),
                ("char", "a string"),
                ("map", "a table"),
                ("sequence", "a list"),
                ("null", "nothing"),
            ]
            .iter()
            .find(|(w, _)| found.starts_with(w))
            .map_or("another kind of value", |(_, k)| k);
            return format!("{prefix}{kind}, expected {expected}");
        }
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `")
        && let Some((_, expected)) = rest.split_once("`, ")
    {
        return format!("unknown variant, {expected}");
    }
    msg.to_owned()
}

/// `batch.max_events` and `batch.timeout`.
fn batch(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    raw: Option<RawBatch>,
    default_events: u64,
) -> (usize, Duration) {
    let (max_events, timeout) = match raw {
        None => (default_events, Duration::from_secs(1)),
        Some(b) => (
            b.max_events.unwrap_or(default_events),
            duration(
                errs,
                &format!("{key}.batch.timeout"),
                b.timeout.as_deref(),
                Duration::from_secs(1),
            ),
        ),
    };
    if !(1..=10_000).contains(&max_events) {
        errs.push(ConfigProblem::new(
            format!("{key}.batch.max_events"),
            "must be between 1 and 10000",
        ));
    }
    (max_events as usize, timeout)
}

/// A secret from `NAME_file` (wins, relative paths in `$CREDENTIALS_DIRECTORY`) or `NAME`.
fn secret(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    name: &str,
    inline: Option<SecretString>,
    file: Option<&str>,
    sources: &Sources,
) -> Option<SecretString> {
    if let Some(f) = file {
        return read_secret_file(
            errs,
            &format!("{key}.{name}_file"),
            &credential_path(f, sources),
        );
    }
    match inline {
        Some(v) if !v.expose_secret().trim().is_empty() => {
            Some(SecretString::from(v.expose_secret().trim().to_owned()))
        }
        _ => {
            errs.push(ConfigProblem::new(
                format!("{key}.{name}"),
                format!("missing: set {name} or {name}_file"),
            ));
            None
        }
    }
}

fn check_name(errs: &mut Vec<ConfigProblem>, key: &str, name: &str) {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        errs.push(ConfigProblem::new(
            key,
            "table names may hold only lowercase ASCII letters, digits and `_` (they name files, metrics and environment variables)",
        ));
    }
}

/// Checks that a duration lies within `[min, max]`.
fn within(errs: &mut Vec<ConfigProblem>, key: &str, d: Duration, min: Duration, max: Duration) {
    if d < min || d > max {
        errs.push(ConfigProblem::new(
            key,
            format!(
                "must be between {} and {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ),
        ));
    }
}

fn duration(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    value: Option<&str>,
    default: Duration,
) -> Duration {
    match value {
        None => default,
        Some(s) => match humantime::parse_duration(s.trim()) {
            Ok(d) => d,
            Err(e) => {
                errs.push(ConfigProblem::new(
                    key,
                    format!("{s:?} is not a duration such as \"30s\", \"5m\" or \"7d\" ({e})"),
                ));
                default
            }
        },
    }
}

fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Checks an http(s) URL: https, or http on loopback only; no credentials in it for portals.
fn check_url(errs: &mut Vec<ConfigProblem>, key: &str, s: &str, secret: bool) -> Option<Url> {
    // A URL with user info (or what may be some: an `@` in a URL that does not parse) is shown
    // only as scheme and host, whatever key it came from.
    let shown = if secret || s.contains('@') {
        redact_url(s)
    } else {
        format!("{s:?}")
    };
    match Url::parse(s.trim()) {
        Ok(u) => match u.scheme() {
            "https" => Some(u),
            "http" if is_loopback_host(&u) => Some(u),
            "http" => {
                errs.push(ConfigProblem::new(
                    key,
                    format!(
                        "{shown} must use https (http is only accepted for loopback addresses)"
                    ),
                ));
                None
            }
            other => {
                errs.push(ConfigProblem::new(
                    key,
                    format!("{shown} has scheme {other:?}; use https://"),
                ));
                None
            }
        },
        Err(e) => {
            errs.push(ConfigProblem::new(
                key,
                format!("{shown} is not a valid URL ({e})"),
            ));
            None
        }
    }
}

/// Refuses a URL with `user:password@` (it would be printed and logged wherever the URL is),
/// naming the key and where the credential belongs instead.
fn no_credentials(errs: &mut Vec<ConfigProblem>, key: &str, u: Url, instead: &str) -> Option<Url> {
    if u.username().is_empty() && u.password().is_none() {
        return Some(u);
    }
    errs.push(ConfigProblem::new(
        key,
        format!(
            "{} must not hold credentials (user:password@); {instead}",
            redact_url(u.as_str())
        ),
    ));
    None
}

/// What stops `state_dir` from being used, checked without changing anything: it must be a
/// directory, or creatable (its nearest existing ancestor a directory), and not read-only.
fn state_dir_problem(dir: &Path) -> Option<String> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => Some(format!("{} exists and is not a directory", dir.display())),
        Ok(m) if m.permissions().readonly() => Some(format!(
            "{} is read-only: the agent keeps its cursors there",
            dir.display()
        )),
        Ok(_) => None,
        Err(_) => {
            let parent = dir.ancestors().skip(1).find(|a| a.exists())?;
            (!parent.is_dir()).then(|| {
                format!(
                    "{} cannot be created: {} is not a directory",
                    dir.display(),
                    parent.display()
                )
            })
        }
    }
}

/// A portal URL is its base, `https://host[:port]`: the agent adds `/api/2.0/…` itself, so a
/// path (often `…/api/2.0` copied from the API docs), a query or a fragment would make every
/// request a 404.
fn portal_base(errs: &mut Vec<ConfigProblem>, key: &str, u: Url) -> Option<Url> {
    let path = u.path().trim_end_matches('/');
    let problem = if path.to_ascii_lowercase().contains("/api") {
        Some(format!(
            "has the path {path:?}: give the portal's base URL only (e.g. https://{}); the agent adds /api/2.0/… itself",
            u.host_str().unwrap_or("docspace.example.com")
        ))
    } else if !path.is_empty() {
        Some(format!(
            "has the path {path:?}: give the portal's base URL only (e.g. https://{}), without a path",
            u.host_str().unwrap_or("docspace.example.com")
        ))
    } else if u.query().is_some() || u.fragment().is_some() {
        Some("has a query or fragment (?… or #…): give the portal's base URL only".to_owned())
    } else {
        None
    };
    match problem {
        Some(p) => {
            errs.push(ConfigProblem::new(key, p));
            None
        }
        None => Some(u),
    }
}

/// A `[log] level`: a level, or comma-separated directives such as `docspace_siem=debug`; a
/// bare word that is not a level (`warning`) would silently turn every log line off.
fn check_log_level(level: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    for directive in level.split(',').map(str::trim) {
        if directive.is_empty() || directive.contains('=') {
            continue;
        }
        if !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(directive)) {
            return Err(format!(
                "{directive:?} is not a level: use one of off, error, warn, info, debug, trace, or a filter such as \"docspace_siem=debug\""
            ));
        }
    }
    tracing_subscriber::EnvFilter::try_new(level).map(|_| ()).map_err(|e| {
        format!("{level:?} is not a level (error, warn, info, debug, trace) or a filter such as \"docspace_siem=debug\" ({e})")
    })
}

/// Resolves a credential path: relative paths live in `$CREDENTIALS_DIRECTORY`.
fn credential_path(path: &str, sources: &Sources) -> PathBuf {
    let p = Path::new(path);
    match (p.is_relative(), sources.get_env("CREDENTIALS_DIRECTORY")) {
        (true, Some(dir)) => Path::new(dir).join(p),
        _ => p.to_path_buf(),
    }
}

fn read_secret_file(errs: &mut Vec<ConfigProblem>, key: &str, path: &Path) -> Option<SecretString> {
    check_secret_mode(errs, key, path);
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let trimmed = s.trim();
            crate::http::remember_secret(trimmed);
            if trimmed.is_empty() {
                errs.push(ConfigProblem::new(
                    key,
                    format!("{} is empty", path.display()),
                ));
                None
            } else {
                Some(SecretString::from(trimmed.to_owned()))
            }
        }
        Err(e) => {
            errs.push(ConfigProblem::new(
                key,
                format!("cannot read {}: {e}", path.display()),
            ));
            None
        }
    }
}

fn check_file(errs: &mut Vec<ConfigProblem>, key: &str, path: &Option<String>) -> Option<PathBuf> {
    let p = PathBuf::from(path.as_ref()?);
    if !p.is_file() {
        errs.push(ConfigProblem::new(
            key,
            format!("{} does not exist or is not a file", p.display()),
        ));
    }
    Some(p)
}

fn http_tls(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    raw: Option<RawHttpTls>,
    proxy: Option<&str>,
) -> HttpTls {
    let proxy = match proxy.map(crate::http::Proxy::parse) {
        None => crate::http::Proxy::None,
        Some(Ok(p)) => p,
        Some(Err(problem)) => {
            errs.push(ConfigProblem::new(format!("{key}.proxy"), problem));
            crate::http::Proxy::None
        }
    };
    let raw = raw.unwrap_or_default();
    if raw.server_name.is_some() {
        errs.push(ConfigProblem::new(
            format!("{key}.tls.server_name"),
            "is only a key of syslog sinks; HTTP clients check the URL's host name",
        ));
    }
    if raw.cert_file.is_some() != raw.key_file.is_some() {
        errs.push(ConfigProblem::new(
            format!("{key}.tls"),
            "a client certificate needs both cert_file and key_file",
        ));
    }
    HttpTls {
        ca_file: check_file(errs, &format!("{key}.tls.ca_file"), &raw.ca_file),
        cert_file: check_file(errs, &format!("{key}.tls.cert_file"), &raw.cert_file),
        key_file: check_file(errs, &format!("{key}.tls.key_file"), &raw.key_file).inspect(|p| {
            check_secret_mode(errs, &format!("{key}.tls.key_file"), p);
        }),
        insecure_skip_verify: raw.insecure_skip_verify,
        proxy,
    }
}

fn streams(errs: &mut Vec<ConfigProblem>, key: &str, raw: Option<Vec<String>>) -> Vec<Stream> {
    let mut out = Vec::new();
    for s in raw.unwrap_or_default() {
        match Stream::parse(&s) {
            Some(st) if !out.contains(&st) => out.push(st),
            Some(_) => {}
            None => errs.push(ConfigProblem::new(
                key,
                format!("unknown stream {s:?}; use \"login\" and/or \"audit\""),
            )),
        }
    }
    out
}

fn portal(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    name: &str,
    rp: RawPortal,
    sources: &Sources,
) -> Option<PortalConfig> {
    let before = errs.len();
    let url = match rp.url.as_deref() {
        None => {
            errs.push(ConfigProblem::new(
                format!("{key}.url"),
                "missing: the portal's base URL, e.g. https://docspace.example.com",
            ));
            None
        }
        Some(u) => check_url(errs, &format!("{key}.url"), u, false)
            .and_then(|u| no_credentials(errs, &format!("{key}.url"), u, "use api_key_file"))
            .and_then(|u| portal_base(errs, &format!("{key}.url"), u)),
    };
    // The file wins over an inline key (SPEC), then systemd credentials named after the portal.
    let api_key = if let Some(f) = rp.api_key_file.as_deref() {
        read_secret_file(
            errs,
            &format!("{key}.api_key_file"),
            &credential_path(f, sources),
        )
    } else if let Some(k) = rp.api_key {
        if k.expose_secret().trim().is_empty() {
            errs.push(ConfigProblem::new(format!("{key}.api_key"), "is empty"));
            None
        } else {
            Some(SecretString::from(k.expose_secret().trim().to_owned()))
        }
    } else if let Some(dir) = sources.get_env("CREDENTIALS_DIRECTORY")
        && Path::new(dir).join(name).is_file()
    {
        read_secret_file(
            errs,
            &format!("{key}.api_key_file"),
            &Path::new(dir).join(name),
        )
    } else {
        errs.push(ConfigProblem::new(
            format!("{key}.api_key_file"),
            format!(
                "no API key: set api_key_file, api_key, the env var, or a systemd credential named {name:?}"
            ),
        ));
        None
    };
    if let Some(k) = &api_key
        && k.expose_secret()
            .chars()
            .any(|c| c.is_control() || c == ' ')
    {
        errs.push(ConfigProblem::new(
            format!("{key}.api_key"),
            "holds spaces or control characters; it must be the bare sk-… key",
        ));
    }
    let streams = match rp.streams {
        None => Stream::ALL.to_vec(),
        Some(v) => {
            let s = streams(errs, &format!("{key}.streams"), Some(v));
            if s.is_empty() {
                errs.push(ConfigProblem::new(
                    format!("{key}.streams"),
                    "is empty; list \"login\" and/or \"audit\"",
                ));
            }
            s
        }
    };
    let poll_interval = duration(
        errs,
        &format!("{key}.poll_interval"),
        rp.poll_interval.as_deref(),
        Duration::from_secs(30),
    );
    if poll_interval < Duration::from_secs(1) {
        errs.push(ConfigProblem::new(
            format!("{key}.poll_interval"),
            "must be at least 1s",
        ));
    }
    let start_from = match rp.start_from.as_deref() {
        None => StartFrom::Ago(Duration::from_secs(7 * 86_400)),
        Some(s) => match crate::event::parse_date(s) {
            Ok(t) => StartFrom::At(t),
            Err(_) => match humantime::parse_duration(s.trim()) {
                Ok(d) => StartFrom::Ago(d),
                Err(_) => {
                    errs.push(ConfigProblem::new(
                        format!("{key}.start_from"),
                        format!(
                            "{s:?} is neither a duration such as \"7d\" or \"12h\" nor an RFC 3339 instant such as \"2025-01-01T00:00:00Z\""
                        ),
                    ));
                    StartFrom::Ago(Duration::from_secs(7 * 86_400))
                }
            },
        },
    };
    let settle = duration(
        errs,
        &format!("{key}.settle"),
        rp.settle.as_deref(),
        Duration::from_secs(60),
    );
    let overlap = duration(
        errs,
        &format!("{key}.overlap"),
        rp.overlap.as_deref(),
        Duration::from_secs(600),
    );
    // Default: every 5 polls, at least a minute apart, at most overlap / 2 apart.
    let overlap_every = match rp.overlap_every.as_deref() {
        None => (poll_interval * 5)
            .max(Duration::from_secs(60))
            .min(overlap / 2)
            .max(poll_interval.min(overlap)),
        Some(s) => duration(
            errs,
            &format!("{key}.overlap_every"),
            Some(s),
            Duration::from_secs(60),
        ),
    };
    if rp.overlap_every.is_some() && overlap_every < Duration::from_secs(1) {
        errs.push(ConfigProblem::new(
            format!("{key}.overlap_every"),
            "must be at least 1s",
        ));
    }
    let catchup_window = duration(
        errs,
        &format!("{key}.catchup_window"),
        rp.catchup_window.as_deref(),
        Duration::from_secs(6 * 3600),
    );
    if catchup_window < Duration::from_secs(60) {
        errs.push(ConfigProblem::new(
            format!("{key}.catchup_window"),
            "must be at least 1m",
        ));
    }
    let max_window_events = rp.max_window_events.unwrap_or(10_000);
    if !(100..=1_000_000).contains(&max_window_events) {
        errs.push(ConfigProblem::new(
            format!("{key}.max_window_events"),
            "must be between 100 and 1000000",
        ));
    }
    let timeout = duration(
        errs,
        &format!("{key}.timeout"),
        rp.timeout.as_deref(),
        Duration::from_secs(60),
    );
    let max_response_mib = rp.max_response_mib.unwrap_or(64);
    if !(1..=4096).contains(&max_response_mib) {
        errs.push(ConfigProblem::new(
            format!("{key}.max_response_mib"),
            "must be between 1 and 4096",
        ));
    }
    let error_retry = duration(
        errs,
        &format!("{key}.error_retry"),
        rp.error_retry.as_deref(),
        Duration::from_secs(300),
    );
    const SEC: Duration = Duration::from_secs(1);
    within(
        errs,
        &format!("{key}.error_retry"),
        error_retry,
        SEC,
        Duration::from_secs(86_400),
    );
    within(
        errs,
        &format!("{key}.timeout"),
        timeout,
        SEC,
        Duration::from_secs(600),
    );
    within(
        errs,
        &format!("{key}.settle"),
        settle,
        Duration::ZERO,
        Duration::from_secs(3600),
    );
    within(
        errs,
        &format!("{key}.overlap"),
        overlap,
        Duration::ZERO,
        Duration::from_secs(7 * 86_400),
    );
    let concurrency = rp.concurrency.unwrap_or(6);
    if !(1..=16).contains(&concurrency) {
        errs.push(ConfigProblem::new(
            format!("{key}.concurrency"),
            "must be between 1 and 16",
        ));
    }
    // DocSpace's limiter (when on) allows 1,500 requests a minute: stay just below. 0 turns
    // the client-side limit off (self-hosted portals whose limiter is off).
    let max_rps = rp.max_requests_per_second.unwrap_or(24.8);
    if !(max_rps == 0.0 || (0.01..=100_000.0).contains(&max_rps)) {
        errs.push(ConfigProblem::new(
            format!("{key}.max_requests_per_second"),
            "must be 0 (no limit) or between 0.01 and 100000",
        ));
    }
    let tls = http_tls(errs, key, rp.tls, rp.proxy.as_deref());
    if errs.len() > before {
        return None;
    }
    Some(PortalConfig {
        error_retry,
        concurrency: concurrency as usize,
        max_requests_per_second: max_rps,
        name: name.to_owned(),
        url: url?,
        api_key: api_key?,
        streams,
        poll_interval,
        start_from,
        settle,
        overlap,
        overlap_every,
        catchup_window,
        max_window_events: max_window_events as usize,
        timeout,
        max_response_mib,
        tls,
    })
}

fn filter(errs: &mut Vec<ConfigProblem>, key: &str, raw: Option<RawFilter>) -> Filter {
    let Some(raw) = raw else {
        return Filter::default();
    };
    let streams = streams(errs, &format!("{key}.filter.streams"), raw.streams);
    let mut actions_out = Vec::new();
    for a in raw.actions.unwrap_or_default() {
        match &a {
            Value::Number(n) if n.as_i64().is_some() => actions_out.extend(n.as_i64()),
            Value::String(s) => match s.parse::<i64>() {
                Ok(n) => actions_out.push(n),
                Err(_) => match actions::by_name(s).or_else(|| {
                    actions::ACTIONS
                        .iter()
                        .find(|a| actions::kebab_case(a.name) == s.to_ascii_lowercase())
                }) {
                    Some(act) => actions_out.push(i64::from(act.code)),
                    None => errs.push(ConfigProblem::new(
                        format!("{key}.filter.actions"),
                        format!("{s:?} is not a DocSpace MessageAction name or code"),
                    )),
                },
            },
            other => errs.push(ConfigProblem::new(
                format!("{key}.filter.actions"),
                format!("{other} is not an action id or name"),
            )),
        }
    }
    let outcome_values: Vec<Value> = match raw.outcome {
        None => Vec::new(),
        Some(Value::Array(v)) => v,
        Some(v) => vec![v],
    };
    let mut outcomes = Vec::new();
    for v in outcome_values {
        match v.as_str().and_then(Outcome::parse) {
            Some(o) => outcomes.push(o),
            None => errs.push(ConfigProblem::new(
                format!("{key}.filter.outcome"),
                format!("{v} is not \"success\", \"failure\" or \"unknown\""),
            )),
        }
    }
    Filter {
        streams,
        actions: actions_out,
        outcomes,
    }
}

/// A sink's `rules`: rule names (a list, or `a,b` from the environment) resolved against the
/// `[rules.NAME]` tables and the built-in rules.
fn sink_rules(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    raw: &Value,
    defined: Option<&[crate::alert::RuleConfig]>,
) -> Vec<crate::alert::RuleConfig> {
    let names: Vec<String> = match raw {
        Value::Array(v) => v
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
            .collect(),
        Value::String(s) => s
            .split(',')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect(),
        other => {
            errs.push(ConfigProblem::new(
                format!("{key}.rules"),
                format!("{other} is not a list of rule names"),
            ));
            return Vec::new();
        }
    };
    // Invalid `[rules.NAME]` tables were reported already.
    let Some(defined) = defined else {
        return Vec::new();
    };
    crate::alert::select(&names, defined).unwrap_or_else(|problems| {
        errs.extend(
            problems
                .into_iter()
                .map(|p| ConfigProblem::new(format!("{key}.rules"), p)),
        );
        Vec::new()
    })
}

/// What a sink's validation needs beyond its own table.
struct SinkContext<'a> {
    sources: &'a Sources,
    /// The valid `[rules.NAME]` tables (None when some are invalid).
    rules: Option<&'a [crate::alert::RuleConfig]>,
    state_dir: &'a Path,
}

fn sink(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    name: &str,
    rs: RawSink,
    present: &[String],
    ctx: &SinkContext<'_>,
) -> Option<SinkConfig> {
    let sources = ctx.sources;
    let before = errs.len();
    let Some(kind) = rs.kind.as_deref() else {
        errs.push(ConfigProblem::new(
            format!("{key}.type"),
            format!("missing: one of {SINK_TYPES}"),
        ));
        return None;
    };
    let own: &[&str] = match kind {
        "stdout" => &["rules"],
        "syslog" => SYSLOG_KEYS,
        "webhook" => WEBHOOK_KEYS,
        "splunk_hec" => SPLUNK_KEYS,
        "elasticsearch" => ELASTIC_KEYS,
        other if ChatKind::parse(other).is_some() => {
            if rs.format.is_some() {
                errs.push(ConfigProblem::new(
                    format!("{key}.format"),
                    "chat sinks post alert messages in the service's own shape; remove format",
                ));
            }
            CHAT_KEYS
        }
        other => {
            errs.push(ConfigProblem::new(
                format!("{key}.type"),
                format!("unknown sink type {other:?}; use {SINK_TYPES}"),
            ));
            return None;
        }
    };
    for k in present {
        if !matches!(k.as_str(), "type" | "format" | "filter") && !own.contains(&k.as_str()) {
            errs.push(ConfigProblem::new(
                format!("{key}.{k}"),
                format!("is not a key of a {kind:?} sink"),
            ));
        }
    }
    let format = match rs.format.as_deref() {
        None => match kind {
            "syslog" => Format::Cef,
            _ => Format::Ecs,
        },
        Some(f) => Format::parse(f).unwrap_or_else(|| {
            errs.push(ConfigProblem::new(
                format!("{key}.format"),
                format!("unknown format {f:?}; use ecs, cef, leef or json"),
            ));
            Format::Ecs
        }),
    };
    let filter = filter(errs, key, rs.filter);
    let alerts = match (&rs.rules, kind) {
        (Some(v), "stdout" | "webhook") => {
            if format != Format::Ecs {
                errs.push(ConfigProblem::new(
                    format!("{key}.rules"),
                    "alerts reach stdout and webhook sinks as ECS documents: set format = \"ecs\"",
                ));
            }
            Some(crate::alert::SinkRules {
                rules: sink_rules(errs, key, v, ctx.rules),
                state: ctx.state_dir.join("alerts").join(name),
            })
        }
        _ => None,
    };
    let kind = match kind {
        "stdout" => SinkKind::Stdout,
        "syslog" => {
            let address = match rs.address {
                Some(a)
                    if a.rsplit_once(':')
                        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) =>
                {
                    a
                }
                Some(a) => {
                    errs.push(ConfigProblem::new(
                        format!("{key}.address"),
                        format!("{a:?} is not host:port"),
                    ));
                    String::new()
                }
                None => {
                    errs.push(ConfigProblem::new(
                        format!("{key}.address"),
                        "missing: the receiver as host:port, e.g. siem.example.com:6514",
                    ));
                    String::new()
                }
            };
            let protocol = match rs.protocol.as_deref().unwrap_or("tcp") {
                "udp" => Protocol::Udp,
                "tcp" => Protocol::Tcp,
                "tls" => Protocol::Tls,
                other => {
                    errs.push(ConfigProblem::new(
                        format!("{key}.protocol"),
                        format!("unknown protocol {other:?}; use udp, tcp or tls"),
                    ));
                    Protocol::Tcp
                }
            };
            let framing = match rs.framing.as_deref() {
                None | Some("octet_counting") => Framing::OctetCounting,
                Some("newline") => Framing::Newline,
                Some(other) => {
                    errs.push(ConfigProblem::new(
                        format!("{key}.framing"),
                        format!("unknown framing {other:?}; use octet_counting or newline"),
                    ));
                    Framing::OctetCounting
                }
            };
            if protocol == Protocol::Udp && rs.framing.is_some() {
                errs.push(ConfigProblem::new(
                    format!("{key}.framing"),
                    "only applies to tcp and tls; UDP sends one datagram per event",
                ));
            }
            if protocol == Protocol::Tls && framing == Framing::Newline {
                errs.push(ConfigProblem::new(
                    format!("{key}.framing"),
                    "RFC 5425 (syslog over TLS) requires octet_counting",
                ));
            }
            let rfc = match rs
                .rfc
                .as_ref()
                .map(|v| v.to_string().trim_matches('"').to_owned())
            {
                None => Rfc::Rfc5424,
                Some(s) if s == "5424" => Rfc::Rfc5424,
                Some(s) if s == "3164" => Rfc::Rfc3164,
                Some(s) => {
                    errs.push(ConfigProblem::new(
                        format!("{key}.rfc"),
                        format!("{s} is not 5424 or 3164"),
                    ));
                    Rfc::Rfc5424
                }
            };
            let app_name = rs.app_name.unwrap_or_else(|| "docspace-siem".to_owned());
            if app_name.is_empty()
                || app_name.len() > 48
                || !app_name.bytes().all(|b| (33..=126).contains(&b))
            {
                errs.push(ConfigProblem::new(
                    format!("{key}.app_name"),
                    "must be 1–48 printable ASCII characters without spaces (RFC 5424 APP-NAME)",
                ));
            }
            let facility = match &rs.facility {
                None => 10,
                Some(v) => match crate::syslog::parse_facility(v) {
                    Some(f) => f,
                    None => {
                        errs.push(ConfigProblem::new(
                            format!("{key}.facility"),
                            format!("{v} is not a facility name (auth, authpriv, local0…local7, …) or number 0–23"),
                        ));
                        10
                    }
                },
            };
            if let Some(h) = &rs.hostname
                && (h.is_empty() || h.len() > 255 || !h.bytes().all(|b| (33..=126).contains(&b)))
            {
                errs.push(ConfigProblem::new(
                    format!("{key}.hostname"),
                    "must be 1–255 printable ASCII characters without spaces",
                ));
            }
            let max_datagram = rs.max_datagram.unwrap_or(2048);
            if !(480..=65_507).contains(&max_datagram) {
                errs.push(ConfigProblem::new(
                    format!("{key}.max_datagram"),
                    "must be between 480 and 65507 (RFC 5426)",
                ));
            }
            let max_events_per_second = rs.max_events_per_second.unwrap_or(match protocol {
                Protocol::Udp => UDP_EVENTS_PER_SECOND,
                Protocol::Tcp | Protocol::Tls => 0.0,
            });
            if !(max_events_per_second == 0.0
                || (1.0..=1_000_000.0).contains(&max_events_per_second))
            {
                errs.push(ConfigProblem::new(
                    format!("{key}.max_events_per_second"),
                    "must be 0 (no limit) or between 1 and 1000000",
                ));
            }
            let raw_tls = rs.tls.unwrap_or_default();
            if protocol != Protocol::Tls
                && (raw_tls.ca_file.is_some()
                    || raw_tls.cert_file.is_some()
                    || raw_tls.key_file.is_some())
            {
                errs.push(ConfigProblem::new(
                    format!("{key}.tls"),
                    "tls settings need protocol = \"tls\"",
                ));
            }
            if raw_tls.cert_file.is_some() != raw_tls.key_file.is_some() {
                errs.push(ConfigProblem::new(
                    format!("{key}.tls"),
                    "mutual TLS needs both cert_file and key_file",
                ));
            }
            let tls = SyslogTls {
                ca_file: check_file(errs, &format!("{key}.tls.ca_file"), &raw_tls.ca_file),
                cert_file: check_file(errs, &format!("{key}.tls.cert_file"), &raw_tls.cert_file),
                key_file: check_file(errs, &format!("{key}.tls.key_file"), &raw_tls.key_file)
                    .inspect(|p| check_secret_mode(errs, &format!("{key}.tls.key_file"), p)),
                server_name: raw_tls.server_name,
                insecure_skip_verify: raw_tls.insecure_skip_verify,
            };
            SinkKind::Syslog(SyslogConfig {
                address,
                protocol,
                framing,
                rfc,
                app_name,
                facility,
                hostname: rs.hostname,
                max_datagram: max_datagram as usize,
                max_events_per_second,
                write_timeout: duration(
                    errs,
                    &format!("{key}.write_timeout"),
                    rs.write_timeout.as_deref(),
                    Duration::from_secs(30),
                ),
                connect_timeout: duration(
                    errs,
                    &format!("{key}.connect_timeout"),
                    rs.connect_timeout.as_deref(),
                    Duration::from_secs(10),
                ),
                tls,
            })
        }
        "webhook" => {
            let url = if let Some(f) = rs.url_file.as_deref() {
                read_secret_file(
                    errs,
                    &format!("{key}.url_file"),
                    &credential_path(f, sources),
                )
            } else if let Some(u) = rs.url {
                Some(u)
            } else {
                errs.push(ConfigProblem::new(
                    format!("{key}.url"),
                    "missing: set url or url_file",
                ));
                None
            };
            if let Some(u) = &url {
                check_url(errs, &format!("{key}.url"), u.expose_secret(), true);
            }
            let mut headers = Vec::new();
            for (h, v) in rs.headers.unwrap_or_default() {
                if reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err() {
                    errs.push(ConfigProblem::new(
                        format!("{key}.headers.{h}"),
                        "is not a valid HTTP header name",
                    ));
                } else if reqwest::header::HeaderValue::from_str(v.expose_secret()).is_err() {
                    errs.push(ConfigProblem::new(
                        format!("{key}.headers.{h}"),
                        "holds characters an HTTP header value cannot carry",
                    ));
                } else {
                    headers.push((h, v));
                }
            }
            let (max_events, batch_timeout) = batch(errs, key, rs.batch, 100);
            let timeout = duration(
                errs,
                &format!("{key}.timeout"),
                rs.timeout.as_deref(),
                Duration::from_secs(30),
            );
            let tls = http_tls(errs, key, rs.tls, rs.proxy.as_deref());
            SinkKind::Webhook(WebhookConfig {
                url: url.unwrap_or_else(|| SecretString::from(String::new())),
                headers,
                max_events,
                batch_timeout,
                timeout,
                tls,
                gzip: rs.gzip.unwrap_or(false),
            })
        }
        "splunk_hec" | "elasticsearch" => {
            if matches!(format, Format::Cef | Format::Leef) {
                errs.push(ConfigProblem::new(
                    format!("{key}.format"),
                    "must be ecs or json for this sink type",
                ));
            }
            let endpoint = match rs.endpoint.as_deref() {
                Some(u) => check_url(errs, &format!("{key}.endpoint"), u, false).and_then(|u| {
                    no_credentials(
                        errs,
                        &format!("{key}.endpoint"),
                        u,
                        if kind == "splunk_hec" {
                            "use token_file"
                        } else {
                            "use api_key_file, or username and password_file"
                        },
                    )
                }),
                None => {
                    errs.push(ConfigProblem::new(
                        format!("{key}.endpoint"),
                        "missing: the base URL, e.g. https://splunk.example.com:8088",
                    ));
                    None
                }
            };
            let (max_events, batch_timeout) = batch(errs, key, rs.batch, 500);
            let timeout = duration(
                errs,
                &format!("{key}.timeout"),
                rs.timeout.as_deref(),
                Duration::from_secs(30),
            );
            let tls = http_tls(errs, key, rs.tls, rs.proxy.as_deref());
            if kind == "splunk_hec" {
                let token = secret(
                    errs,
                    key,
                    "token",
                    rs.token,
                    rs.token_file.as_deref(),
                    sources,
                );
                let ack_timeout = duration(
                    errs,
                    &format!("{key}.ack_timeout"),
                    rs.ack_timeout.as_deref(),
                    Duration::from_secs(60),
                );
                SinkKind::SplunkHec(crate::sink::splunk::SplunkConfig {
                    endpoint: endpoint?,
                    token: token.unwrap_or_else(|| SecretString::from(String::new())),
                    index: rs.index,
                    sourcetype: rs.sourcetype,
                    source: rs.source,
                    host: rs.host,
                    ack: rs.ack.unwrap_or(false),
                    ack_timeout,
                    max_events,
                    batch_timeout,
                    timeout,
                    tls,
                })
            } else {
                use crate::sink::elastic::{EsAuth, Flavor};
                let flavor = match rs.flavor.as_deref() {
                    None | Some("elasticsearch") => Flavor::Elasticsearch,
                    Some("opensearch") => Flavor::Opensearch,
                    Some(other) => {
                        errs.push(ConfigProblem::new(
                            format!("{key}.flavor"),
                            format!("{other:?} is not elasticsearch or opensearch"),
                        ));
                        Flavor::Elasticsearch
                    }
                };
                let auth = if rs.api_key.is_some() || rs.api_key_file.is_some() {
                    if rs.username.is_some() {
                        errs.push(ConfigProblem::new(
                            format!("{key}.username"),
                            "give either api_key or username and password, not both",
                        ));
                    }
                    secret(
                        errs,
                        key,
                        "api_key",
                        rs.api_key,
                        rs.api_key_file.as_deref(),
                        sources,
                    )
                    .map_or(EsAuth::None, EsAuth::ApiKey)
                } else if let Some(username) = rs.username {
                    match secret(
                        errs,
                        key,
                        "password",
                        rs.password,
                        rs.password_file.as_deref(),
                        sources,
                    ) {
                        Some(password) => EsAuth::Basic { username, password },
                        None => EsAuth::None,
                    }
                } else {
                    EsAuth::None
                };
                let index = rs
                    .index
                    .unwrap_or_else(|| "logs-docspace.{stream}-default".to_owned());
                if index.is_empty()
                    || index.starts_with(['-', '_', '+'])
                    || index
                        .chars()
                        .any(|c| c.is_ascii_uppercase() || "\\/*?\"<>| ,#:".contains(c))
                {
                    errs.push(ConfigProblem::new(
                        format!("{key}.index"),
                        format!("{index:?} is not a valid index or data stream name (lowercase, no spaces or \\/*?\"<>|,#:)"),
                    ));
                }
                SinkKind::Elasticsearch(crate::sink::elastic::ElasticConfig {
                    endpoint: endpoint?,
                    index,
                    auth,
                    flavor,
                    pipeline: rs.pipeline,
                    max_events,
                    batch_timeout,
                    timeout,
                    tls,
                })
            }
        }
        other if ChatKind::parse(other).is_some() => {
            let url = secret(errs, key, "url", rs.url, rs.url_file.as_deref(), sources);
            if let Some(u) = &url {
                check_url(errs, &format!("{key}.url"), u.expose_secret(), true);
            }
            let chosen = match &rs.rules {
                Some(v) => sink_rules(errs, key, v, ctx.rules),
                None => {
                    errs.push(ConfigProblem::new(
                        format!("{key}.rules"),
                        "missing: the rules that raise alerts here, e.g. rules = [\"brute_force\", \"lockout\"] (a chat sink posts only alerts)",
                    ));
                    Vec::new()
                }
            };
            let rate = match &rs.rate {
                None => 1.0,
                Some(v) => match v
                    .as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                {
                    Some(r) if (0.01..=50.0).contains(&r) => r,
                    _ => {
                        errs.push(ConfigProblem::new(
                            format!("{key}.rate"),
                            format!(
                                "{v} is not a number of messages per second between 0.01 and 50"
                            ),
                        ));
                        1.0
                    }
                },
            };
            let timeout = duration(
                errs,
                &format!("{key}.timeout"),
                rs.timeout.as_deref(),
                Duration::from_secs(30),
            );
            within(
                errs,
                &format!("{key}.timeout"),
                timeout,
                Duration::from_secs(1),
                Duration::from_secs(300),
            );
            let tls = http_tls(errs, key, rs.tls, rs.proxy.as_deref());
            SinkKind::Chat(ChatConfig {
                kind: ChatKind::parse(other)?,
                url: url.unwrap_or_else(|| SecretString::from(String::new())),
                rules: chosen,
                rate,
                timeout,
                tls,
                state_dir: ctx.state_dir.to_path_buf(),
            })
        }
        _ => return None,
    };
    if errs.len() > before {
        return None;
    }
    Some(SinkConfig {
        name: name.to_owned(),
        format,
        filter,
        kind,
        alerts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// See: issue 15. `start_from = "100000y"` panicked the start (`now - d` overflowed).
    #[test]
    fn start_from_far_back_starts_at_1970_without_a_panic() {
        let now = OffsetDateTime::now_utc();
        let year = Duration::from_secs(31_557_600);
        for d in [year * 100_000, Duration::MAX, year * 60] {
            assert_eq!(
                StartFrom::Ago(d).resolve(now),
                OffsetDateTime::UNIX_EPOCH,
                "{d:?}"
            );
        }
        let day = Duration::from_secs(86_400);
        assert_eq!(StartFrom::Ago(day).resolve(now), now - day);
    }

    fn write(dir: &Path, body: &str) -> PathBuf {
        let p = dir.join("c.toml");
        let mut f = std::fs::File::create(&p).expect("create");
        f.write_all(body.as_bytes()).expect("write");
        p
    }

    fn load_str(body: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = write(dir.path(), body);
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        load(&Sources { file, env })
    }

    const GOOD: &str = r#"
state_dir = "/tmp/x"
[portals.main]
url = "https://docspace.example.com"
api_key = "sk-abc"
poll_interval = "1s"
start_from = "2d"
[sinks.console]
type = "stdout"
format = "ecs"
"#;

    #[test]
    fn good_config_loads() {
        let c = load_str(GOOD, &[]).expect("valid");
        assert_eq!(c.portals.len(), 1);
        assert_eq!(c.portals[0].poll_interval, Duration::from_secs(1));
        assert_eq!(
            c.portals[0].start_from,
            StartFrom::Ago(Duration::from_secs(2 * 86_400))
        );
        assert_eq!(c.portals[0].streams, vec![Stream::Login, Stream::Audit]);
    }

    #[test]
    fn catch_up_limits_default_and_bounds() {
        let c = load_str(GOOD, &[]).expect("valid");
        assert_eq!(c.portals[0].concurrency, 6);
        assert_eq!(c.portals[0].max_requests_per_second, 24.8);
        for (rps, ok) in [
            ("0", true),
            ("12.5", true),
            ("100000", true),
            ("100001", false),
            ("-1", false),
            ("0.001", false),
        ] {
            let body = GOOD.replace(
                "poll_interval = \"1s\"",
                &format!("poll_interval = \"1s\"\nmax_requests_per_second = {rps}"),
            );
            match load_str(&body, &[]) {
                Ok(c) => {
                    assert!(ok, "{rps} accepted");
                    assert_eq!(c.portals[0].max_requests_per_second.to_string(), rps);
                }
                Err(e) => {
                    assert!(!ok, "{rps} rejected: {e}");
                    assert!(e.to_string().contains("max_requests_per_second"), "{e}");
                }
            }
        }
        for n in ["0", "17"] {
            let body = GOOD.replace(
                "poll_interval = \"1s\"",
                &format!("poll_interval = \"1s\"\nconcurrency = {n}"),
            );
            let e = load_str(&body, &[]).expect_err("out of range");
            assert!(e.to_string().contains("concurrency"), "{e}");
        }
    }

    #[test]
    fn threads_default_to_one_and_are_bounded() {
        assert_eq!(load_str(GOOD, &[]).expect("valid").threads, 1);
        let body = GOOD.replace(
            "state_dir = \"/tmp/x\"",
            "state_dir = \"/tmp/x\"\nthreads = 4",
        );
        assert_eq!(load_str(&body, &[]).expect("valid").threads, 4);
        let c = load_str(GOOD, &[("DOCSPACE_SIEM_THREADS", "2")]).expect("valid");
        assert_eq!(c.threads, 2);
        for n in ["0", "65", "two", "1.5"] {
            let e = load_str(GOOD, &[("DOCSPACE_SIEM_THREADS", n)]).expect_err("out of range");
            assert!(
                e.to_string()
                    .contains("threads: must be a whole number between 1 and 64, got "),
                "{e}"
            );
        }
    }

    #[test]
    fn env_overrides_the_file() {
        let c = load_str(
            GOOD,
            &[
                ("DOCSPACE_SIEM_PORTALS__MAIN__API_KEY", "sk-from-env"),
                ("DOCSPACE_SIEM_PORTALS__MAIN__POLL_INTERVAL", "5s"),
            ],
        )
        .expect("valid");
        assert_eq!(c.portals[0].api_key.expose_secret(), "sk-from-env");
        assert_eq!(c.portals[0].poll_interval, Duration::from_secs(5));
    }

    #[test]
    fn every_problem_is_reported_with_key_and_env_var() {
        let err = load_str(
            r#"
state_dir = "relative"
[portals.main]
url = "http://docspace.example.com"
poll_interval = "soon"
[sinks.a]
type = "syslog"
address = "nohost"
protocol = "carrier-pigeon"
url = "https://x"
"#,
            &[],
        )
        .unwrap_err();
        let text = err.to_string();
        for expect in [
            "state_dir: must be an absolute path",
            "portals.main.url: \"http://docspace.example.com\" must use https",
            "(env DOCSPACE_SIEM_PORTALS__MAIN__URL)",
            "portals.main.poll_interval: \"soon\" is not a duration",
            "portals.main.api_key_file: no API key",
            "sinks.a.address: \"nohost\" is not host:port",
            "sinks.a.protocol: unknown protocol",
            "sinks.a.url: is not a key of a \"syslog\" sink",
        ] {
            assert!(text.contains(expect), "missing {expect:?} in:\n{text}");
        }
    }

    #[test]
    fn a_portal_url_with_a_path_or_query_and_a_log_level_typo_are_refused() {
        for (url, expect) in [
            (
                "https://docspace.example.com/api/2.0",
                "the agent adds /api/2.0/",
            ),
            ("https://docspace.example.com/portal", "without a path"),
            ("https://docspace.example.com/?x=1", "query or fragment"),
        ] {
            let err = load_str(&GOOD.replace("https://docspace.example.com", url), &[])
                .expect_err(url)
                .to_string();
            assert!(
                err.contains("portals.main.url") && err.contains(expect),
                "{url}: {err}"
            );
        }
        assert!(
            load_str(
                &GOOD.replace(
                    "https://docspace.example.com",
                    "https://docspace.example.com/"
                ),
                &[]
            )
            .is_ok()
        );
        for (level, ok) in [
            ("warning", false),
            ("verbose", false),
            ("warn", true),
            ("INFO", true),
            ("info,docspace_siem=debug", true),
            ("docspace_siem=trace", true),
        ] {
            let r = load_str(&format!("{GOOD}\n[log]\nlevel = \"{level}\"\n"), &[]);
            assert_eq!(r.is_ok(), ok, "{level}: {r:?}");
            if let Err(e) = r {
                assert!(e.to_string().contains("log.level"), "{e}");
            }
        }
    }

    #[test]
    fn a_state_dir_that_is_a_file_or_under_one_is_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let file = tmp.path().join("plain");
        std::fs::write(&file, b"x").expect("write");
        for (dir, expect) in [
            (file.clone(), "is not a directory"),
            (file.join("state"), "cannot be created"),
        ] {
            let err = load_str(&GOOD.replace("/tmp/x", dir.to_str().expect("utf8")), &[])
                .expect_err("refused")
                .to_string();
            assert!(err.contains("state_dir") && err.contains(expect), "{err}");
        }
        let fine = tmp.path().join("new/state");
        assert!(load_str(&GOOD.replace("/tmp/x", fine.to_str().expect("utf8")), &[]).is_ok());
        assert!(!fine.exists(), "validate creates nothing");
    }

    #[test]
    fn one_wrong_type_hides_no_other_problem() {
        let err = load_str(
            r#"
state_dir = "/tmp/x"
[portals.main]
url = "https://docspace.example.com"
api_key = "sk-abc"
poll_interval = 30
overlap = true
bogus = 1
[sinks.a]
type = "syslog"
address = "127.0.0.1:514"
max_datagram = "big"
colour = "red"
"#,
            &[],
        )
        .unwrap_err()
        .to_string();
        for expect in [
            "portals.main.poll_interval: invalid type: an integer, expected a string",
            "portals.main.overlap: invalid type: a boolean",
            "portals.main.bogus: unknown key",
            "sinks.a.max_datagram: invalid type: a string",
            "sinks.a.colour: unknown key",
        ] {
            assert!(err.contains(expect), "missing {expect:?} in:\n{err}");
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = load_str(&format!("{GOOD}\nbogus = 1\n"), &[]).unwrap_err();
        assert!(err.to_string().contains("unknown field `bogus`"), "{err}");
        let err = load_str(&GOOD.replace("poll_interval", "pol_interval"), &[]).unwrap_err();
        assert!(err.to_string().contains("pol_interval"), "{err}");
    }

    #[test]
    fn loopback_http_is_accepted_and_secrets_stay_hidden() {
        let c = load_str(
            &GOOD.replace("https://docspace.example.com", "http://127.0.0.1:8080"),
            &[],
        )
        .expect("loopback http ok");
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("sk-abc"), "secret leaked into Debug: {dbg}");
    }

    /// See: issue 16. A secret in each kind of config error: a wrong-type value, a TOML
    /// syntax error on the secret's line, credentials in sink endpoint URLs, a wrong-type
    /// environment value. Each error names the key and the problem, never the value.
    #[test]
    fn config_errors_never_quote_a_secret() {
        // (config text, environment, the secret, what the error must say instead)
        type Case = (
            String,
            Vec<(&'static str, &'static str)>,
            &'static str,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (
                format!(
                    "{GOOD}[sinks.hook]\ntype = \"webhook\"\nurl = \"https://c.example.com/in\"\nheaders = \"Authorization: Bearer HDRSECRET-1111\"\n"
                ),
                vec![],
                "HDRSECRET-1111",
                "sinks.hook.headers: invalid type: a string, expected a map",
            ),
            (
                format!(
                    "{GOOD}[sinks.hec]\ntype = \"splunk_hec\"\nendpoint = \"https://splunk.example.com:8088\"\ntoken = \"HECSECRET-2222\n"
                ),
                vec![],
                "HECSECRET-2222",
                "sinks.hec.token: TOML syntax error at line 14, column",
            ),
            (
                format!(
                    "{GOOD}[sinks.es]\ntype = \"elasticsearch\"\nendpoint = \"https://elastic:ESPASS-3333@es.example.com:9200\"\n"
                ),
                vec![],
                "ESPASS-3333",
                "sinks.es.endpoint: https://es.example.com:9200/… must not hold credentials",
            ),
            (
                format!(
                    "{GOOD}[sinks.hec]\ntype = \"splunk_hec\"\nendpoint = \"http://admin:HECPASS-4444@splunk.example.com:8088\"\ntoken = \"t0k3n-abcd\"\n"
                ),
                vec![],
                "HECPASS-4444",
                "sinks.hec.endpoint: http://splunk.example.com:8088/… must use https",
            ),
            (
                GOOD.replace(
                    "https://docspace.example.com",
                    "http://user:PORTALPASS-5555@docspace.example.com",
                ),
                vec![],
                "PORTALPASS-5555",
                "portals.main.url: http://docspace.example.com/… must use https",
            ),
            (
                format!(
                    "{GOOD}[sinks.hook]\ntype = \"webhook\"\nurl = \"https://c.example.com/in\"\n"
                ),
                vec![(
                    "DOCSPACE_SIEM_SINKS__HOOK__HEADERS",
                    "Bearer ENVSECRET-6666",
                )],
                "ENVSECRET-6666",
                "sinks.hook.headers: invalid type: a string, expected a map",
            ),
            (
                format!("{GOOD}[api]\naddress = 12345\n"),
                vec![("DOCSPACE_SIEM_PORTALS__MAIN__API_KEY", "sk-ENVKEY-7777")],
                "12345",
                "api: invalid type: an integer, expected a string",
            ),
        ];
        for (body, env, secret, expect) in cases {
            let err = load_str(&body, &env).expect_err("invalid").to_string();
            assert!(!err.contains(secret), "{secret} leaked:\n{err}");
            assert!(err.contains(expect), "missing {expect:?} in:\n{err}");
        }
        // Structural, not only the scrubber: the serde and TOML rewrites drop the value.
        assert_eq!(
            without_values("invalid type: string \"Authorization: x\", expected a map"),
            "invalid type: a string, expected a map"
        );
        let (key, problem) = toml_problem(
            "TOML parse error at line 2, column 9\n  |\n2 | token = \"abc\n  |         ^\ninvalid basic string\n",
            Path::new("/nonexistent"),
        )
        .expect("parsed");
        assert_eq!(key, "");
        assert_eq!(
            problem,
            "TOML syntax error at line 2, column 9: invalid basic string"
        );
    }

    /// See: issue 16. Secret files readable or writable by others: world-writable is refused,
    /// readable by every user (or a group the agent does not run as) is a warning.
    #[cfg(unix)]
    #[test]
    fn secret_files_open_to_others_warn_or_fail() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tmp");
        let key = dir.path().join("main.key");
        std::fs::write(&key, "sk-from-file-8888").expect("write");
        let body = GOOD.replace(
            "api_key = \"sk-abc\"",
            &format!("api_key_file = {:?}", key.display().to_string()),
        );
        for (mode, fails, warns) in [
            (0o600, false, false),
            (0o604, false, true),
            (0o622, true, false),
        ] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).expect("chmod");
            match load_str(&body, &[]) {
                Ok(c) => {
                    assert!(!fails, "{mode:o} accepted");
                    assert_eq!(!c.warnings.is_empty(), warns, "{mode:o}: {:?}", c.warnings);
                    if warns {
                        assert!(
                            c.warnings[0]
                                .to_string()
                                .contains("portals.main.api_key_file")
                        );
                    }
                }
                Err(e) => {
                    assert!(fails, "{mode:o} refused: {e}");
                    assert!(e.to_string().contains("writable by every user"), "{e}");
                }
            }
        }
    }

    #[test]
    fn proxy_is_none_by_default_and_parsed_per_portal_and_sink() {
        let c = load_str(GOOD, &[]).expect("valid");
        assert!(matches!(c.portals[0].tls.proxy, crate::http::Proxy::None));
        let body = GOOD.replace(
            "poll_interval = \"1s\"",
            "poll_interval = \"1s\"\nproxy = \"env\"",
        );
        let c = load_str(&body, &[]).expect("valid");
        assert!(matches!(c.portals[0].tls.proxy, crate::http::Proxy::Env));
        let body = format!(
            "{GOOD}[sinks.hook]\ntype = \"webhook\"\nurl = \"https://c.example.com/in\"\nproxy = \"http://proxy.example.com:3128\"\n"
        );
        let c = load_str(&body, &[]).expect("valid");
        let hook = c.sinks.iter().find(|s| s.name == "hook").expect("hook");
        let SinkKind::Webhook(w) = &hook.kind else {
            panic!("webhook")
        };
        assert!(matches!(w.tls.proxy, crate::http::Proxy::Url(_)));
        let e = load_str(&body.replace("http://proxy", "ftp://proxy"), &[]).expect_err("bad");
        assert!(e.to_string().contains("sinks.hook.proxy"), "{e}");
    }

    #[test]
    fn missing_file_is_an_error() {
        let err = load(&Sources {
            file: PathBuf::from("/nonexistent/x.toml"),
            env: vec![],
        })
        .unwrap_err();
        assert!(err.to_string().contains("does not exist"));
    }
}
