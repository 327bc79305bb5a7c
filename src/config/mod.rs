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
use url::Url;

use crate::actions;
use crate::event::{Outcome, Stream};
pub use crate::http::HttpTls;
pub use crate::http::redact_url;
pub use crate::retry::MAX_SINK_BACKOFF;
use crate::sink::chat::{ChatConfig, ChatKind};
pub use crate::sink::syslog::{Protocol, SyslogConfig, UDP_EVENTS_PER_SECOND};
pub use crate::sink::webhook::WebhookConfig;
pub use crate::sink::{Filter, SinkConfig, SinkKind};
pub use crate::source::{PortalConfig, StartFrom};
pub use crate::syslog::{Framing, Rfc};
pub use crate::tls::SyslogTls;
pub use crate::transform::Format;

mod checks;
mod diff;
mod include;
mod portal;
mod problem;
mod ratecheck;
mod raw;
mod secrets;
mod sink;
#[cfg(test)]
mod tests;

use checks::*;
pub use diff::{Changes, Fingerprint};
use portal::*;
use problem::*;
pub use problem::{ConfigErrors, ConfigProblem};
use raw::*;
use secrets::*;
use sink::*;

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
    "include",
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
    /// Problems that do not stop the agent (a secret file readable by others, more requests
    /// than DocSpace's rate limit allows): `validate` prints them, `run` logs them.
    pub warnings: Vec<ConfigProblem>,
    /// What a reload compares: each portal's settings and everything else, as hashes.
    pub fingerprint: Fingerprint,
    /// Portal name → the included file (`include`) that defines it.
    pub origin: BTreeMap<String, PathBuf>,
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

    pub(super) fn get_env(&self, key: &str) -> Option<&str> {
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
    // The main file alone first: its `include` and its own portals (a portal an included file
    // defines again is an error, an environment variable for it is an override).
    let main_root: Value = match Figment::new()
        .merge(Toml::file_exact(&sources.file))
        .extract::<Value>()
    {
        Ok(v) => v,
        Err(errors) => return Err(figment_errors(errors, &env, &sources.file)),
    };
    let overlay = env_overlay(&env);
    let patterns = overlay
        .iter()
        .find(|(k, _)| k == "include")
        .and_then(|(_, v)| serde_json::to_value(v).ok())
        .or_else(|| main_root.get("include").cloned());
    let included = include::read(&sources.file, &main_root, patterns.as_ref());
    let mut figment = Figment::new().merge(Toml::file_exact(&sources.file));
    // Every included portal in one layer: hundreds of files cost one merge.
    if !included.tables.is_empty() {
        figment = figment.merge(figment::providers::Serialized::default(
            "portals",
            &included.tables,
        ));
    }
    // Overlay the environment ourselves (same rules as figment's `Env::prefixed(..).split("__")`),
    // so that tests can inject variables without touching the process environment.
    for (key, value) in overlay {
        figment = figment.merge(figment::providers::Serialized::default(&key, value));
    }
    let root: Value = match figment.extract::<Value>() {
        Ok(v) => v,
        Err(errors) => return Err(figment_errors(errors, &env, &sources.file)),
    };
    remember_secrets(false, &root);
    WARNINGS.with(|w| w.borrow_mut().clear());
    let result = validate(root.clone(), sources);
    let warnings: Vec<ConfigProblem> = WARNINGS
        .with(|w| std::mem::take(&mut *w.borrow_mut()))
        .into_iter()
        .map(|p| included.attribute(p))
        .collect();
    // Every message once more through the scrubber: whatever a check quoted, no secret value
    // of the configuration leaves in an error.
    let scrubbed = |problems: Vec<ConfigProblem>| {
        ConfigErrors(
            problems
                .into_iter()
                .map(|p| ConfigProblem {
                    problem: crate::http::scrub(&p.problem),
                    ..included.attribute(p)
                })
                .collect(),
        )
    };
    match result {
        Ok(_) if !included.problems.is_empty() => Err(scrubbed(included.problems.clone())),
        Ok(mut cfg) => {
            cfg.warnings = warnings;
            cfg.warnings.extend(ratecheck::warnings(&cfg.portals));
            cfg.fingerprint = diff::Fingerprint::of(&root, &cfg, sources);
            cfg.origin = included.origin.clone();
            Ok(cfg)
        }
        Err(ConfigErrors(problems)) => {
            let mut all = included.problems.clone();
            all.extend(problems);
            Err(scrubbed(all))
        }
    }
}

/// The environment's `DOCSPACE_SIEM_*` variables as `(dotted key, value)`: only keys that are
/// numbers, booleans or lists are parsed; everything else (secrets above all) stays the exact
/// string that was given.
fn env_overlay(env: &[(String, String)]) -> Vec<(String, figment::value::Value)> {
    env.iter()
        .map(|(k, v)| {
            let key = k[ENV_PREFIX.len()..]
                .to_ascii_lowercase()
                .replace("__", ".");
            let last = key.rsplit('.').next().unwrap_or_default();
            let value: figment::value::Value = if TYPED_KEYS.contains(&last) {
                v.parse::<figment::value::Value>()
                    .unwrap_or_else(|_| figment::value::Value::from(v.clone()))
            } else {
                figment::value::Value::from(v.clone())
            };
            (key, value)
        })
        .collect()
}

/// Figment's errors (TOML syntax, mostly) as problems, after remembering every secret the
/// environment holds, so that no message can quote one.
fn figment_errors(errors: figment::Error, env: &[(String, String)], file: &Path) -> ConfigErrors {
    for (k, v) in env {
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
    ConfigErrors(
        errors
            .into_iter()
            .map(|e| {
                let (key, msg) = figment_problem(&e, file);
                let msg = match &e.metadata {
                    Some(md) => format!("{msg} (in {})", md.name),
                    None => msg,
                };
                ConfigProblem::new(key, crate::http::scrub(&msg))
            })
            .collect(),
    )
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
    let portal_names: Vec<String> = raw.portals.keys().cloned().collect();
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
                    portal_names: &portal_names,
                    portals: &portals,
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
                        portal_names: &portal_names,
                        portals: &portals,
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
            fingerprint: Fingerprint::default(),
            origin: BTreeMap::new(),
        })
    } else {
        Err(ConfigErrors(errs))
    }
}
