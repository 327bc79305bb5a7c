//! Why a portal request or a window failed: [`SourceError`], how the poll loop reacts to each
//! ([`ErrorClass`]), and the reading of an error answer (status, `{"error":{"message":…}}`
//! envelope or a proxy's HTML) into one, quoted without secrets.

use serde_json::Value;

/// Longest error-body excerpt kept in an error message.
const SNIPPET: usize = 200;

/// Why a request or a window failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// 429: the portal's rate limiter said wait.
    #[error("rate limited by the portal (HTTP 429, Retry-After {})", retry_after.map_or("absent".to_owned(), |s| format!("{s}s")))]
    RateLimited {
        /// Seconds from `Retry-After`.
        retry_after: Option<u64>,
    },
    /// 401: missing, wrong, expired or revoked key.
    #[error(
        "the portal rejected the API key (HTTP 401): check api_key_file holds a valid, unexpired `sk-…` key"
    )]
    Unauthorized,
    /// 403: the key's user is not an owner/admin, or the key lacks `*:read`.
    #[error(
        "access denied (HTTP 403: {0}): the API key must belong to the portal owner or a DocSpace admin and have the *:read scope"
    )]
    Forbidden(String),
    /// 403 from the portal's IP restriction (`IpSecurityFilter`): the key is fine, the agent's
    /// address is not allowed.
    #[error(
        "the portal refuses this host's IP address (HTTP 403: {0}): add the agent's outgoing address to the portal's IP security list (Settings → Security → IP Security)"
    )]
    IpRestricted(String),
    /// 402 with an error envelope: the plan lacks the feature asked for.
    #[error(
        "the portal's plan does not include the audit trail / login history (HTTP 402: {0}); upgrade the plan or enable the Login History section"
    )]
    PaymentRequired(String),
    /// A bare 402 with no body (`PaymentFilter`): the portal itself is unpaid or blocked, for
    /// every API call, not only the audit ones.
    #[error(
        "the portal is unpaid or suspended (HTTP 402 with no body, on every API call): renew its subscription; the cursor was not moved"
    )]
    Unpaid,
    /// The silent "latest 20 rows" fallback of the filter endpoints (docs/docspace-api.md §14.1).
    #[error(
        "the portal answers its latest events whatever was asked ({0}), so events cannot be read completely; the cursor was not moved and every event since it will be delivered once the portal answers for real"
    )]
    NoAuditPlan(String),
    /// 5xx or 408.
    #[error("portal server error (HTTP {status}): {snippet}")]
    Server {
        /// HTTP status.
        status: u16,
        /// Start of the body.
        snippet: String,
    },
    /// 3xx: not followed, so the key is not sent elsewhere.
    #[error(
        "the portal redirected (HTTP {status}) to {location}; the redirect was not followed: set url to the final https address"
    )]
    Redirect {
        /// HTTP status.
        status: u16,
        /// Where to (scheme and host only).
        location: String,
    },
    /// Another 4xx.
    #[error("the portal refused the request (HTTP {status}): {snippet}")]
    Client {
        /// HTTP status.
        status: u16,
        /// Start of the body.
        snippet: String,
    },
    /// Connection, DNS, TLS or timeout.
    #[error("cannot reach the portal: {0}")]
    Transport(String),
    /// Truncated or malformed body.
    #[error("malformed response from the portal: {0}")]
    Malformed(String),
    /// A body larger than `max_response_mib`.
    #[error(
        "the portal's answer is larger than max_response_mib ({mib} MiB){}; a page of 100 events is normally well under 1 MiB: if this portal's rows are really that large, raise max_response_mib",
        length.map_or(String::new(), |l| format!(": Content-Length {l}"))
    )]
    TooLarge {
        /// The limit.
        mib: u64,
        /// What the server announced, if it did.
        length: Option<u64>,
    },
    /// Rows were inserted faster than a window could be read; read again later.
    #[error("the portal's log changed faster than the window could be read: {0}")]
    Unsettled(String),
}

/// How the poll loop should react to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Retry with exponential backoff.
    Transient,
    /// Retry after the given seconds.
    RateLimited(Option<u64>),
    /// Needs an operator: retry slowly, never a storm.
    NeedsOperator,
}

impl SourceError {
    /// Classifies the error.
    pub fn class(&self) -> ErrorClass {
        match self {
            SourceError::RateLimited { retry_after } => ErrorClass::RateLimited(*retry_after),
            SourceError::Server { .. }
            | SourceError::Transport(_)
            | SourceError::Malformed(_)
            | SourceError::Unsettled(_) => ErrorClass::Transient,
            _ => ErrorClass::NeedsOperator,
        }
    }

    /// The error of a non-2xx answer that is not a redirect or a 429 (those carry headers),
    /// from its status and body.
    pub(super) fn of_answer(status: u16, body: &[u8]) -> SourceError {
        let message = error_message(body);
        match status {
            401 => SourceError::Unauthorized,
            402 if body.is_empty() => SourceError::Unpaid,
            402 => SourceError::PaymentRequired(message),
            403 if ip_restricted(body) => SourceError::IpRestricted(message),
            403 => SourceError::Forbidden(message),
            408 | 500..=599 => SourceError::Server {
                status,
                snippet: message,
            },
            s => SourceError::Client {
                status: s,
                snippet: message,
            },
        }
    }
}

/// The start of a remote text, fit to quote: every configured secret removed (an error page
/// or proxy may echo the request's `Authorization` header), control characters blanked, cut
/// short ([`crate::http::quote`]).
pub(super) fn snippet(body: &[u8]) -> String {
    let mut s = crate::http::quote(body);
    if s.chars().count() > SNIPPET {
        s = s.chars().take(SNIPPET).collect();
        s.push('…');
    }
    s
}

/// The `error.message` of an error envelope, or the start of the body.
fn error_message(body: &[u8]) -> String {
    if body.is_empty() {
        return "empty body".to_owned();
    }
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.pointer("/response/title"))
                .and_then(Value::as_str)
                .map(|s| snippet(s.as_bytes()))
        })
        .unwrap_or_else(|| snippet(body))
}

/// Whether a 403 body is the IP restriction's (`IpSecurityFilter` answers
/// `Resource.ErrorIpSecurity`, "The access to the portal is restricted", as a bare string or in
/// an envelope).
fn ip_restricted(body: &[u8]) -> bool {
    const TEXT: &[u8] = b"access to the portal is restricted";
    body.windows(TEXT.len())
        .any(|w| w.eq_ignore_ascii_case(TEXT))
}
