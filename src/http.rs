//! What every HTTP client of the agent shares (portals, HTTP sinks, chat sinks, `check`): how a
//! client reaches its target (the `proxy` setting), the one cap on every answer read, and the
//! quoting of text from a remote answer.
//!
//! Invariants:
//! - A loopback target never goes through a proxy. Otherwise the proxy is exactly what the
//!   config says: none by default, the `HTTP(S)_PROXY`/`ALL_PROXY`/`NO_PROXY` variables only
//!   with `proxy = "env"`, or one URL. A credential is sent only where the operator said.
//! - No answer is read past its cap: the announced length is checked first, then the length
//!   read so far as the body streams in ([`read_capped`]).
//! - Text quoted from a remote answer ([`quote`]) is scrubbed of every secret the configuration
//!   holds ([`remember_secret`]), stripped of control characters and cut short before it
//!   reaches a log, an error, `check`'s output or `/health`: a portal, proxy or error page that
//!   echoes the request (its `Authorization` header) cannot make the agent print its key.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use url::Url;

use crate::tls::TlsError;

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

/// Most characters of remote text quoted in an error or a log line.
pub const QUOTE_CHARS: usize = 300;
/// Cap of the answers whose content the agent only inspects (sink replies, chat answers,
/// health checks, the portal's settings): far above any real one.
pub const SMALL_ANSWER: u64 = 1 << 20;
/// Cap of a bulk reply that lists a result per document (Elasticsearch `_bulk`): 10,000
/// documents with an error each stay far below it.
pub const BULK_ANSWER: u64 = 32 << 20;

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
    /// here with the rest of the client's connection settings ([`client`]).
    pub proxy: Proxy,
}

/// How a client reaches its target (`proxy` of a portal or an HTTP sink).
#[derive(Debug, Clone, Default)]
pub enum Proxy {
    /// Straight to the target, whatever the environment says (the default).
    #[default]
    None,
    /// As `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` say (read at start).
    Env,
    /// Through this proxy (`http://` or `https://`; it may carry `user:password@`, hence
    /// secret).
    Url(SecretString),
}

impl Proxy {
    /// Parses a `proxy` value: `"none"`, `"env"`, or an `http(s)://` URL.
    pub fn parse(s: &str) -> Result<Proxy, String> {
        match s.trim() {
            "" | "none" => Ok(Proxy::None),
            "env" => Ok(Proxy::Env),
            other => match Url::parse(other) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                    if let Some(p) = u.password() {
                        remember_secret(p);
                    }
                    Ok(Proxy::Url(SecretString::from(other.to_owned())))
                }
                Ok(u) => Err(format!(
                    "a proxy URL must be http:// or https:// with a host, not {}://",
                    u.scheme()
                )),
                Err(e) => Err(format!(
                    "is neither \"none\", \"env\" nor a proxy URL such as http://proxy.example.com:3128 ({e})"
                )),
            },
        }
    }
}

/// A reqwest client builder for a portal or an HTTP sink: rustls, TLS ≥ 1.2, no redirects (a
/// redirect would carry the credential elsewhere), the given timeout; [`client`] adds the proxy.
fn client_builder(tls: &HttpTls, timeout: Duration) -> Result<reqwest::ClientBuilder, TlsError> {
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("docspace-siem/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10).min(timeout))
        .tls_version_min(reqwest::tls::Version::TLS_1_2);
    if let Some(path) = &tls.ca_file {
        let pem = std::fs::read(path).map_err(|e| crate::tls::pem_err(path, e))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| crate::tls::pem_err(path, e))?;
        if certs.is_empty() {
            return Err(crate::tls::pem_err(path, "holds no PEM certificate"));
        }
        b = b.tls_certs_merge(certs);
    }
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        let mut pem = std::fs::read(cert).map_err(|e| crate::tls::pem_err(cert, e))?;
        pem.extend(std::fs::read(key).map_err(|e| crate::tls::pem_err(key, e))?);
        b = b
            .identity(reqwest::Identity::from_pem(&pem).map_err(|e| crate::tls::pem_err(cert, e))?);
    }
    if tls.insecure_skip_verify {
        b = b.tls_danger_accept_invalid_certs(true);
    }
    Ok(b)
}

/// Whether `url` names this machine (`localhost`, 127.0.0.0/8, `::1`).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The reqwest client of a portal or an HTTP sink aimed at `target`: TLS as
/// `client_builder` sets it up, and the proxy as `tls.proxy` says (never one
/// for a loopback target).
pub fn client(tls: &HttpTls, timeout: Duration, target: &Url) -> Result<reqwest::Client, TlsError> {
    let b = client_builder(tls, timeout)?;
    let b = match &tls.proxy {
        _ if is_loopback(target) => b.no_proxy(),
        Proxy::None => b.no_proxy(),
        // reqwest reads the variables itself when no proxy is configured on the builder.
        Proxy::Env => b,
        Proxy::Url(u) => b.proxy(
            reqwest::Proxy::all(u.expose_secret())
                .map_err(|_| TlsError::Http("proxy: not a usable proxy URL".to_owned()))?,
        ),
    };
    b.build().map_err(|e| TlsError::Http(e.to_string()))
}

/// A header value that carries a credential (`Authorization`, tokens, configured header
/// values), marked sensitive so hyper never logs it and HTTP/2 never indexes it. Config
/// validation already refused values a header cannot carry; such a value would be sent empty.
pub fn sensitive(value: &str) -> reqwest::header::HeaderValue {
    let mut v = reqwest::header::HeaderValue::from_str(value)
        .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static(""));
    v.set_sensitive(true);
    v
}

/// Why a body was not read whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The answer is larger than the cap (announced, or as read).
    #[error(
        "the answer is larger than {cap} bytes{}; it was not read",
        announced.map_or(String::new(), |l| format!(" (Content-Length {l})"))
    )]
    TooLarge {
        /// The cap.
        cap: u64,
        /// What the server announced, if it did.
        announced: Option<u64>,
    },
    /// The connection failed while reading.
    #[error("the body ended early: {0}")]
    Broken(String),
}

/// Reads the body of `resp`, at most `cap` bytes of it: an answer announcing more is refused
/// before a byte is read, and one that streams past the cap is dropped at that point, so memory
/// never grows past `cap` whatever the peer sends.
pub async fn read_capped(mut resp: reqwest::Response, cap: u64) -> Result<Vec<u8>, BodyError> {
    if let Some(len) = resp.content_length()
        && len > cap
    {
        return Err(BodyError::TooLarge {
            cap,
            announced: Some(len),
        });
    }
    let mut body = Vec::with_capacity(
        resp.content_length()
            .map_or(64 * 1024, |l| l as usize)
            .min(cap as usize),
    );
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                if (body.len() + chunk.len()) as u64 > cap {
                    return Err(BodyError::TooLarge {
                        cap,
                        announced: None,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => return Err(BodyError::Broken(crate::tls::describe_reqwest(&e))),
        }
    }
}

/// Reads at most `cap` bytes of a body for quoting: what came before the cap, or before the
/// connection broke (never an error: the caller only quotes it).
pub async fn read_prefix(mut resp: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = cap.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= cap {
            break;
        }
    }
    body
}

fn registry() -> &'static Mutex<Vec<SecretString>> {
    static SECRETS: OnceLock<Mutex<Vec<SecretString>>> = OnceLock::new();
    SECRETS.get_or_init(Mutex::default)
}

/// Adds a configured secret to those [`quote`] and [`scrub`] remove. Called by the config
/// loader for every secret it reads (keys, tokens, passwords, header values, secret URLs and
/// their parts), so every quoting site is covered, whichever client made the request. Values
/// shorter than 4 characters are not remembered: they would blank ordinary words.
pub fn remember_secret(secret: &str) {
    let s = secret.trim();
    if s.chars().count() < 4 {
        return;
    }
    if let Ok(mut all) = registry().lock()
        && !all.iter().any(|k| k.expose_secret() == s)
    {
        all.push(SecretString::from(s.to_owned()));
        // Longest first, so a secret that contains another is removed whole.
        all.sort_by_key(|k| std::cmp::Reverse(k.expose_secret().len()));
    }
}

/// `text` with every remembered secret replaced by `[redacted]`, and any tail that is the
/// start of one (a quote cut inside a secret) cut off.
pub fn scrub(text: &str) -> String {
    let Ok(all) = registry().lock() else {
        return "[remote text withheld]".to_owned();
    };
    let mut out = text.to_owned();
    for k in all.iter() {
        let k = k.expose_secret();
        if out.contains(k) {
            out = out.replace(k, "[redacted]");
        }
    }
    // A quote cut in the middle of a secret leaves its first characters at the end.
    for k in all.iter() {
        let k = k.expose_secret();
        for len in (4..k.len()).rev() {
            if k.is_char_boundary(len) && out.ends_with(&k[..len]) {
                out.truncate(out.len() - len);
                out.push_str("[redacted]");
                break;
            }
        }
    }
    out
}

/// Remote text made fit to quote: secrets removed (before the cut, so no part of one
/// survives), control characters turned into spaces, at most [`QUOTE_CHARS`] characters (a
/// cut is marked with `…`).
pub fn quote(body: &[u8]) -> String {
    // Only the start is ever shown; a secret cut at this point is caught by `scrub`'s tail rule.
    let text = String::from_utf8_lossy(&body[..body.len().min(16 * 1024)]);
    let clean = scrub(&text);
    let mut out: String = clean
        .chars()
        .take(QUOTE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() > QUOTE_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_removes_secrets_whole_or_cut_and_bounds_the_length() {
        remember_secret("sk-quote-test-0123456789abcdef");
        let body = b"{\"error\":\"bad auth: Bearer sk-quote-test-0123456789abcdef\"}";
        let q = quote(body);
        assert!(!q.contains("sk-quote-test"), "{q}");
        assert!(q.contains("[redacted]"), "{q}");
        // A quote that ends inside the secret loses that part too.
        let cut = scrub("echo: sk-quote-test-01234");
        assert!(!cut.contains("sk-quote"), "{cut}");
        let long = vec![b'a'; 5000];
        assert_eq!(quote(&long).chars().count(), QUOTE_CHARS + 1);
        assert_eq!(quote(b"a\nb\rc"), "a b c");
    }

    #[test]
    fn proxy_values_parse_and_loopback_is_recognised() {
        assert!(matches!(Proxy::parse("none"), Ok(Proxy::None)));
        assert!(matches!(Proxy::parse("env"), Ok(Proxy::Env)));
        assert!(matches!(
            Proxy::parse("http://u:pw-proxy-secret@proxy.example.com:3128"),
            Ok(Proxy::Url(_))
        ));
        assert!(Proxy::parse("socks5://proxy:1080").is_err());
        assert!(Proxy::parse("nonsense").is_err());
        assert!(scrub("pw-proxy-secret").contains("[redacted]"));
        for u in [
            "http://127.0.0.1:8080/",
            "http://localhost/",
            "http://[::1]:1/",
        ] {
            assert!(is_loopback(&Url::parse(u).unwrap()), "{u}");
        }
        assert!(!is_loopback(
            &Url::parse("https://docspace.example.com/").unwrap()
        ));
    }
}
