//! The raw layer: exactly what the TOML file and the environment may hold, before validation,
//! and the keys each sink type takes.

use super::*;

// ---------------------------------------------------------------------------------------------
// Raw layer: exactly what the TOML/env may hold.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoot {
    /// Read before validation (`include.rs`): only named here so that the key is known.
    #[serde(default, rename = "include")]
    pub(super) _include: Option<serde::de::IgnoredAny>,
    pub(super) state_dir: Option<String>,
    pub(super) shutdown_timeout: Option<String>,
    pub(super) progress_interval: Option<String>,
    pub(super) threads: Option<Value>,
    #[serde(default)]
    pub(super) portals: BTreeMap<String, Value>,
    #[serde(default)]
    pub(super) sinks: BTreeMap<String, Value>,
    pub(super) api: Option<Value>,
    pub(super) log: Option<Value>,
    pub(super) rules: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) format: Option<String>,
    pub(super) level: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApi {
    pub(super) address: Option<String>,
    pub(super) enabled: Option<bool>,
    pub(super) token_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPortal {
    pub(super) url: Option<String>,
    pub(super) api_key: Option<SecretString>,
    pub(super) api_key_file: Option<String>,
    pub(super) streams: Option<Vec<String>>,
    pub(super) poll_interval: Option<String>,
    pub(super) start_from: Option<String>,
    pub(super) settle: Option<String>,
    pub(super) overlap: Option<String>,
    pub(super) overlap_every: Option<String>,
    pub(super) catchup_window: Option<String>,
    pub(super) max_window_events: Option<u64>,
    pub(super) timeout: Option<String>,
    pub(super) max_response_mib: Option<u64>,
    pub(super) error_retry: Option<String>,
    pub(super) concurrency: Option<u64>,
    pub(super) max_requests_per_second: Option<f64>,
    pub(super) tls: Option<RawHttpTls>,
    pub(super) proxy: Option<String>,
    pub(super) labels: Option<Value>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttpTls {
    pub(super) ca_file: Option<String>,
    pub(super) cert_file: Option<String>,
    pub(super) key_file: Option<String>,
    pub(super) server_name: Option<String>,
    #[serde(default)]
    pub(super) insecure_skip_verify: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSink {
    #[serde(rename = "type")]
    pub(super) kind: Option<String>,
    pub(super) format: Option<String>,
    pub(super) filter: Option<RawFilter>,
    // syslog
    pub(super) address: Option<String>,
    pub(super) protocol: Option<String>,
    pub(super) framing: Option<String>,
    pub(super) rfc: Option<Value>,
    pub(super) app_name: Option<String>,
    pub(super) facility: Option<Value>,
    pub(super) hostname: Option<String>,
    pub(super) max_datagram: Option<u64>,
    pub(super) max_events_per_second: Option<f64>,
    pub(super) write_timeout: Option<String>,
    pub(super) connect_timeout: Option<String>,
    pub(super) tls: Option<RawHttpTls>,
    // webhook
    pub(super) url: Option<SecretString>,
    pub(super) url_file: Option<String>,
    pub(super) headers: Option<BTreeMap<String, SecretString>>,
    pub(super) batch: Option<RawBatch>,
    pub(super) timeout: Option<String>,
    // splunk_hec and elasticsearch
    pub(super) endpoint: Option<String>,
    pub(super) token: Option<SecretString>,
    pub(super) token_file: Option<String>,
    pub(super) index: Option<String>,
    pub(super) sourcetype: Option<String>,
    pub(super) source: Option<String>,
    pub(super) host: Option<String>,
    pub(super) ack: Option<bool>,
    pub(super) ack_timeout: Option<String>,
    pub(super) api_key: Option<SecretString>,
    pub(super) api_key_file: Option<String>,
    pub(super) username: Option<String>,
    pub(super) password: Option<SecretString>,
    pub(super) password_file: Option<String>,
    pub(super) flavor: Option<String>,
    pub(super) pipeline: Option<String>,
    // webhook
    pub(super) gzip: Option<bool>,
    pub(super) body: Option<String>,
    // chat sinks
    pub(super) rules: Option<Value>,
    pub(super) rate: Option<Value>,
    // azure_logs
    pub(super) tenant_id: Option<String>,
    pub(super) client_id: Option<String>,
    pub(super) client_secret: Option<SecretString>,
    pub(super) client_secret_file: Option<String>,
    pub(super) dcr_immutable_id: Option<String>,
    pub(super) stream: Option<String>,
    pub(super) authority_host: Option<String>,
    pub(super) audience: Option<String>,
    pub(super) compression: Option<String>,
    // every HTTP sink
    pub(super) proxy: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBatch {
    pub(super) max_events: Option<u64>,
    pub(super) timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFilter {
    pub(super) streams: Option<Vec<String>>,
    pub(super) actions: Option<Vec<Value>>,
    pub(super) outcome: Option<Value>,
    pub(super) portals: Option<Vec<String>>,
    pub(super) labels: Option<Value>,
}

/// Keys of each sink type beyond `type`, `format`, `filter` (for "not a key of" errors).
pub(super) const SYSLOG_KEYS: &[&str] = &[
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
pub(super) const WEBHOOK_KEYS: &[&str] = &[
    "url", "url_file", "headers", "batch", "timeout", "tls", "rules", "gzip", "proxy", "body",
];
pub(super) const SPLUNK_KEYS: &[&str] = &[
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
pub(super) const ELASTIC_KEYS: &[&str] = &[
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
pub(super) const CHAT_KEYS: &[&str] = &[
    "url", "url_file", "rules", "rate", "timeout", "tls", "proxy",
];
pub(super) const AZURE_KEYS: &[&str] = &[
    "tenant_id",
    "client_id",
    "client_secret",
    "client_secret_file",
    "endpoint",
    "dcr_immutable_id",
    "stream",
    "authority_host",
    "audience",
    "compression",
    "batch",
    "timeout",
    "tls",
    "proxy",
];
/// Every sink type, for error messages.
pub(super) const SINK_TYPES: &str = "stdout, syslog, webhook, splunk_hec, elasticsearch, azure_logs, slack, teams, mattermost, discord or google_chat";
