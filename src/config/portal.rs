//! The validator of one `[portals.NAME]` table into a [`PortalConfig`].

use super::*;

/// A portal URL is its base, `https://host[:port]`: the agent adds `/api/2.0/…` itself, so a
/// path (often `…/api/2.0` copied from the API docs), a query or a fragment would make every
/// request a 404.
pub(super) fn portal_base(errs: &mut Vec<ConfigProblem>, key: &str, u: Url) -> Option<Url> {
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

pub(super) fn portal(
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
    let labels = labels(errs, &format!("{key}.labels"), rp.labels);
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
        labels,
    })
}

/// Longest label value, in characters: a customer's name or id, short enough for an index
/// name built from it and for every format's field limits.
pub(super) const MAX_LABEL_VALUE: usize = 256;
/// Longest label key: an RFC 5424 SD-NAME, which the syslog sink writes each key as, is at most
/// 32 characters.
pub(super) const MAX_LABEL_KEY: usize = 32;

/// A portal's `labels`: a table of short strings under plain keys, sorted by key. Whole numbers
/// are taken as their digits, since an environment override (`…__LABELS__CUSTOMER_ID=42`)
/// arrives as a number.
pub(super) fn labels(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    raw: Option<Value>,
) -> Vec<(String, String)> {
    let map = match raw {
        None => return Vec::new(),
        Some(Value::Object(m)) => m,
        Some(other) => {
            errs.push(ConfigProblem::new(
                key,
                format!("must be a table of strings, e.g. {{ customer = \"acme\" }}, got {other}"),
            ));
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(map.len());
    for (k, v) in map {
        let at = format!("{key}.{k}");
        if !crate::sink::template::valid_label_key(&k) || k.len() > MAX_LABEL_KEY {
            errs.push(ConfigProblem::new(
                at,
                format!(
                    "is not a label key: ASCII letters, digits, `_` and `-`, starting with a letter, at most {MAX_LABEL_KEY} characters"
                ),
            ));
            continue;
        }
        let value = match v {
            Value::String(s) => s,
            Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
            other => {
                errs.push(ConfigProblem::new(
                    at,
                    format!("must be a string, got {other}"),
                ));
                continue;
            }
        };
        if value.is_empty() {
            errs.push(ConfigProblem::new(
                at,
                "is empty: remove the label or give it a value",
            ));
        } else if value.chars().count() > MAX_LABEL_VALUE {
            errs.push(ConfigProblem::new(
                at,
                format!("is longer than {MAX_LABEL_VALUE} characters"),
            ));
        } else if value
            .chars()
            .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
        {
            errs.push(ConfigProblem::new(
                at,
                "holds control characters or line separators (line breaks, tabs, …)",
            ));
        } else {
            out.push((k, value));
        }
    }
    out.sort();
    out
}
