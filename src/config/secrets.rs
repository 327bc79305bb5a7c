//! Secrets in the configuration: reading credential files (and refusing ones others can read),
//! and remembering every secret value so that [`crate::http::scrub`] hides it from any log line.

use super::*;

/// Checks who may read and write a file that holds a secret (a key, token, password or
/// client key): writable by every user is an error (anyone could swap the credential); readable
/// by every user, or by a group the agent does not run as, is a warning (the secret is shared
/// with those users). `root:docspace-siem 0640` read by the service is fine.
pub(super) fn check_secret_mode(errs: &mut Vec<ConfigProblem>, key: &str, path: &Path) {
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
pub(super) fn is_secret_key(key: &str) -> bool {
    matches!(
        key,
        "api_key" | "token" | "password" | "client_secret" | "headers" | "proxy"
    )
}

/// Remembers every secret value of the merged tree for [`crate::http::scrub`]: values of
/// secret keys whatever their type (a wrong-type value is still a secret), each header value,
/// and the parts of secret URLs (user info, query values, long path segments: webhook tokens).
pub(super) fn remember_secrets(in_sinks: bool, v: &Value) {
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

pub(super) fn remember_all(v: &Value) {
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

/// A secret from `NAME_file` (wins, relative paths in `$CREDENTIALS_DIRECTORY`) or `NAME`.
pub(super) fn secret(
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

/// Resolves a credential path: relative paths live in `$CREDENTIALS_DIRECTORY`.
pub(super) fn credential_path(path: &str, sources: &Sources) -> PathBuf {
    let p = Path::new(path);
    match (p.is_relative(), sources.get_env("CREDENTIALS_DIRECTORY")) {
        (true, Some(dir)) => Path::new(dir).join(p),
        _ => p.to_path_buf(),
    }
}

pub(super) fn read_secret_file(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    path: &Path,
) -> Option<SecretString> {
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
