//! The access token of the Sentinel sink: OAuth 2.0 client credentials against Microsoft Entra
//! ID (`POST {authority_host}/{tenant_id}/oauth2/v2.0/token`, form-encoded `grant_type`,
//! `client_id`, `client_secret`, `scope`), cached and fetched again before it expires.
//!
//! Invariants:
//! - Neither the client secret nor a token is ever formatted: both are `SecretString`, the
//!   `Debug` of [`TokenSource`] shows neither, and text quoted from the token endpoint has the
//!   secret removed before it reaches an error.
//! - A token is used until 5 minutes before it expires, or until half its life for a token
//!   that lives less than 10 minutes, so a request never carries one that expires on the way.
//! - An answer refusing the credentials (`invalid_client`, `unauthorized_client`, …, or a
//!   401/403/404) is an operator error: the sink waits and `/health` names it; a 429, a 5xx or
//!   a network failure is retried like any other.

use std::fmt;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

use crate::sink::SinkError;

/// Where and how the sink gets its tokens.
pub(super) struct TokenSource {
    http: reqwest::Client,
    /// `{authority_host}/{tenant_id}/oauth2/v2.0/token`.
    url: url::Url,
    /// scheme://host/… of the authority, for messages.
    shown: String,
    client_id: String,
    secret: SecretString,
    scope: String,
    cached: Option<Cached>,
}

struct Cached {
    token: SecretString,
    refresh_at: Instant,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("authority", &self.shown)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("token", &self.cached.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

/// The token endpoint's error codes that say the request itself (credentials, tenant, scope)
/// is wrong: retrying the same request cannot help, its operator must fix the settings.
const REFUSALS: &[&str] = &[
    "invalid_client",
    "unauthorized_client",
    "invalid_grant",
    "invalid_request",
    "invalid_scope",
    "invalid_resource",
    "unsupported_grant_type",
];

/// When a token that lives `life` should be fetched again: 5 minutes before it expires, or at
/// half its life when that is shorter.
pub(super) fn refresh_after(life: Duration) -> Duration {
    let margin = Duration::from_secs(300).min(life / 2);
    life - margin
}

impl TokenSource {
    pub(super) fn new(
        http: reqwest::Client,
        url: url::Url,
        client_id: String,
        secret: SecretString,
        scope: String,
    ) -> TokenSource {
        let shown = crate::http::redact_url(url.as_str());
        TokenSource {
            http,
            url,
            shown,
            client_id,
            secret,
            scope,
            cached: None,
        }
    }

    /// Forgets the cached token (the ingestion endpoint refused it).
    pub(super) fn invalidate(&mut self) {
        self.cached = None;
    }

    /// A token that is good for a while yet: the cached one, or a new one.
    pub(super) async fn bearer(&mut self) -> Result<SecretString, SinkError> {
        if let Some(c) = &self.cached
            && Instant::now() < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        self.cached = None;
        let (token, life) = self.fetch().await?;
        self.cached = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + refresh_after(life),
        });
        tracing::debug!(authority = %self.shown, expires_in = life.as_secs(), "azure access token acquired");
        Ok(token)
    }

    /// Text of the token endpoint made fit to quote: the client secret removed even when the
    /// configuration's registry of secrets does not hold it, then `http::quote`.
    fn quote(&self, text: &str) -> String {
        let secret = self.secret.expose_secret();
        let text = if secret.is_empty() {
            text.to_owned()
        } else {
            text.replace(secret, "[redacted]")
        };
        crate::http::quote(text.as_bytes())
    }

    async fn fetch(&self) -> Result<(SecretString, Duration), SinkError> {
        // The body holds the secret: built here and handed to the request, never formatted.
        let form = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", self.secret.expose_secret())
            .append_pair("scope", &self.scope)
            .finish();
        let resp = self
            .http
            .post(self.url.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .send()
            .await
            .map_err(|e| crate::sink::transport_error("azure token endpoint", &self.shown, &e))?;
        let status = resp.status().as_u16();
        let retry_after = crate::sink::retry_after_header(&resp);
        let body = crate::http::read_capped(resp, crate::http::SMALL_ANSWER)
            .await
            .unwrap_or_default();
        let doc: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            let token = doc
                .get("access_token")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty());
            let Some(token) = token else {
                return Err(SinkError::retryable(format!(
                    "azure token endpoint {} answered HTTP {status} without an access_token",
                    self.shown
                )));
            };
            // `expires_in` is a number of seconds (the v1 endpoint wrote it as a string).
            let secs = match doc.get("expires_in") {
                Some(Value::Number(n)) => n.as_u64(),
                Some(Value::String(s)) => s.trim().parse().ok(),
                _ => None,
            }
            .unwrap_or(300)
            .clamp(1, 86_400);
            return Ok((
                SecretString::from(token.to_owned()),
                Duration::from_secs(secs),
            ));
        }
        let code = doc.get("error").and_then(Value::as_str).unwrap_or("");
        let why = doc
            .get("error_description")
            .and_then(Value::as_str)
            .map(|d| d.lines().next().unwrap_or(d).to_owned())
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        let what = format!(
            "azure token endpoint {} answered HTTP {status}{} ({})",
            self.shown,
            if code.is_empty() {
                String::new()
            } else {
                format!(" {}", self.quote(code))
            },
            self.quote(&why)
        );
        match status {
            429 | 500..=599 => Err(SinkError {
                retry_after,
                ..SinkError::retryable(what)
            }),
            _ if code == "temporarily_unavailable" => Err(SinkError {
                retry_after,
                ..SinkError::retryable(what)
            }),
            _ if REFUSALS.contains(&code) || matches!(status, 400 | 401 | 403) => {
                Err(SinkError::operator(format!(
                    "{what}: the credentials of client_id {} were refused; check tenant_id, client_id, client_secret and audience (events wait meanwhile)",
                    self.client_id
                )))
            }
            404 => Err(SinkError::operator(format!(
                "{what}: no token endpoint there; check authority_host and tenant_id (events wait meanwhile)"
            ))),
            300..=399 => Err(SinkError::operator(format!(
                "{what}: redirects are not followed; set authority_host to the final address (events wait meanwhile)"
            ))),
            _ => Err(SinkError::retryable(what)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_refreshed_early_and_short_ones_at_half_life() {
        assert_eq!(
            refresh_after(Duration::from_secs(3599)),
            Duration::from_secs(3299)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(4)),
            Duration::from_secs(2)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(600)),
            Duration::from_secs(300)
        );
    }

    #[test]
    fn debug_shows_neither_secret_nor_token() {
        let mut t = TokenSource::new(
            reqwest::Client::new(),
            "https://login.microsoftonline.com/t/oauth2/v2.0/token"
                .parse()
                .expect("url"),
            "client-1".into(),
            SecretString::from("s3cr3t-value-xyz".to_owned()),
            "https://monitor.azure.com//.default".into(),
        );
        t.cached = Some(Cached {
            token: SecretString::from("eyJ-token-value".to_owned()),
            refresh_at: Instant::now(),
        });
        let shown = format!("{t:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("eyJ"),
            "{shown}"
        );
        assert!(t.quote("bad s3cr3t-value-xyz").contains("[redacted]"));
    }
}
