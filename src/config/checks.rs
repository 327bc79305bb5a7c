//! Checks shared by the portal and sink validators: names, durations and bounds, URLs, files,
//! the state directory, batches, TLS and proxy settings, stream lists.

use super::*;

/// `batch.max_events` and `batch.timeout`.
pub(super) fn batch(
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

pub(super) fn check_name(errs: &mut Vec<ConfigProblem>, key: &str, name: &str) {
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
pub(super) fn within(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    d: Duration,
    min: Duration,
    max: Duration,
) {
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

pub(super) fn duration(
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

pub(super) fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Checks an http(s) URL: https, or http on loopback only; no credentials in it for portals.
pub(super) fn check_url(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    s: &str,
    secret: bool,
) -> Option<Url> {
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
pub(super) fn no_credentials(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    u: Url,
    instead: &str,
) -> Option<Url> {
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
pub(super) fn state_dir_problem(dir: &Path) -> Option<String> {
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

/// A `[log] level`: a level, or comma-separated directives such as `docspace_siem=debug`; a
/// bare word that is not a level (`warning`) would silently turn every log line off.
pub(super) fn check_log_level(level: &str) -> Result<(), String> {
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

pub(super) fn check_file(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    path: &Option<String>,
) -> Option<PathBuf> {
    let p = PathBuf::from(path.as_ref()?);
    if !p.is_file() {
        errs.push(ConfigProblem::new(
            key,
            format!("{} does not exist or is not a file", p.display()),
        ));
    }
    Some(p)
}

pub(super) fn http_tls(
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

pub(super) fn streams(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    raw: Option<Vec<String>>,
) -> Vec<Stream> {
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
