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

use std::collections::HashMap;
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

/// What makes two clients interchangeable: the files' contents (not their paths, so that a
/// changed CA file read again gets a new client), the proxy as it applies to the target, and
/// the timeout. Not `Debug`: it holds the client key and the proxy URL.
#[derive(PartialEq, Eq, Hash)]
struct ClientKey {
    ca_pem: Option<Vec<u8>>,
    identity_pem: Option<Vec<u8>>,
    insecure_skip_verify: bool,
    /// `None`: straight to the target; `Some(None)`: the environment's; `Some(Some(url))`.
    proxy: Option<Option<String>>,
    timeout: Duration,
}

impl ClientKey {
    /// Reads the TLS files `tls` names (errors name the file) and settles the proxy for `target`.
    fn new(tls: &HttpTls, timeout: Duration, target: &Url) -> Result<ClientKey, TlsError> {
        let ca_pem = match &tls.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| crate::tls::pem_err(path, e))?),
            None => None,
        };
        let identity_pem = match (&tls.cert_file, &tls.key_file) {
            (Some(cert), Some(key)) => {
                let mut pem = std::fs::read(cert).map_err(|e| crate::tls::pem_err(cert, e))?;
                pem.extend(std::fs::read(key).map_err(|e| crate::tls::pem_err(key, e))?);
                Some(pem)
            }
            _ => None,
        };
        let proxy = match &tls.proxy {
            _ if is_loopback(target) => None,
            Proxy::None => None,
            Proxy::Env => Some(None),
            Proxy::Url(u) => Some(Some(u.expose_secret().to_owned())),
        };
        Ok(ClientKey {
            ca_pem,
            identity_pem,
            insecure_skip_verify: tls.insecure_skip_verify,
            proxy,
            timeout,
        })
    }

    /// A reqwest client: rustls, TLS ≥ 1.2, no redirects (a redirect would carry the
    /// credential elsewhere), the timeout, the CA, identity and proxy of the key.
    fn build(&self, tls: &HttpTls) -> Result<reqwest::Client, TlsError> {
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("docspace-siem/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.timeout)
            .connect_timeout(Duration::from_secs(10).min(self.timeout))
            // Idle connections kept per host: a portal's two streams poll at the same time, an
            // HTTP sink sends one batch at a time. Each idle connection keeps its read buffer
            // (hyper grows it to the largest page read, tens of KiB); without a cap, the
            // connections of a catch-up's `concurrency` stay open to every portal, and polls
            // every 30 s keep them from the pool's 90 s idle timeout.
            .pool_max_idle_per_host(IDLE_PER_HOST)
            .tls_version_min(reqwest::tls::Version::TLS_1_2);
        if let (Some(pem), Some(path)) = (&self.ca_pem, &tls.ca_file) {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| crate::tls::pem_err(path, e))?;
            if certs.is_empty() {
                return Err(crate::tls::pem_err(path, "holds no PEM certificate"));
            }
            b = b.tls_certs_merge(certs);
        }
        if let (Some(pem), Some(cert)) = (&self.identity_pem, &tls.cert_file) {
            b = b.identity(
                reqwest::Identity::from_pem(pem).map_err(|e| crate::tls::pem_err(cert, e))?,
            );
        }
        if self.insecure_skip_verify {
            b = b.tls_danger_accept_invalid_certs(true);
        }
        let b = match &self.proxy {
            None => b.no_proxy(),
            // reqwest reads the variables itself when no proxy is configured on the builder.
            Some(None) => b,
            Some(Some(u)) => b.proxy(
                reqwest::Proxy::all(u.as_str())
                    .map_err(|_| TlsError::Http("proxy: not a usable proxy URL".to_owned()))?,
            ),
        };
        b.build().map_err(|e| TlsError::Http(e.to_string()))
    }
}

/// Idle connections a client keeps to one host (see [`ClientKey::build`]).
const IDLE_PER_HOST: usize = 2;

/// Distinct client settings kept for reuse; past this many the cache starts afresh (a client
/// handed out lives on with its holder), so reloads that keep changing a file cannot grow it.
const CLIENT_CACHE: usize = 32;

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

/// The reqwest client of a portal or an HTTP sink aimed at `target`: rustls, TLS ≥ 1.2, no
/// redirects, the timeout, and the proxy as `tls.proxy` says (never one for a loopback target).
///
/// Clients with the same settings are one client, shared: each reqwest client loads and parses
/// the system's CA certificates into its own root store (about 250 KiB and a few milliseconds
/// each), which made 500 portals cost 130 MiB. A shared client keeps one connection pool, in
/// which each host (a portal) still has its own connections.
pub fn client(tls: &HttpTls, timeout: Duration, target: &Url) -> Result<reqwest::Client, TlsError> {
    static CLIENTS: OnceLock<Mutex<HashMap<ClientKey, reqwest::Client>>> = OnceLock::new();
    let key = ClientKey::new(tls, timeout, target)?;
    let cache = CLIENTS.get_or_init(Mutex::default);
    if let Some(c) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(c.clone());
    }
    // Built outside the lock: two threads may build the same client; the later one is kept.
    let client = key.build(tls)?;
    let mut clients = cache.lock().unwrap_or_else(|e| e.into_inner());
    if clients.len() >= CLIENT_CACHE {
        clients.clear();
    }
    clients.insert(key, client.clone());
    Ok(client)
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

    #[test]
    fn clients_with_the_same_settings_share_one_key_and_a_changed_file_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::copy("tests/fixtures/test-ca.pem", &ca).unwrap();
        let tls = HttpTls {
            ca_file: Some(ca.clone()),
            ..HttpTls::default()
        };
        let t = Duration::from_secs(30);
        let a = Url::parse("https://a.example.com/").unwrap();
        let b = Url::parse("https://b.example.com:8443/").unwrap();
        let key = |tls: &HttpTls, t, u: &Url| ClientKey::new(tls, t, u).unwrap();
        // Two portals on different hosts with the same settings: one client.
        assert!(key(&tls, t, &a) == key(&tls, t, &b));
        assert!(key(&tls, t, &a) != key(&tls, Duration::from_secs(5), &a));
        let insecure = HttpTls {
            insecure_skip_verify: true,
            ..tls.clone()
        };
        assert!(key(&tls, t, &a) != key(&insecure, t, &a));
        // The proxy counts only where it applies: never for a loopback target.
        let env = HttpTls {
            proxy: Proxy::Env,
            ..tls.clone()
        };
        assert!(key(&tls, t, &a) != key(&env, t, &a));
        let local = Url::parse("http://127.0.0.1:8080/").unwrap();
        assert!(key(&tls, t, &local) == key(&env, t, &local));
        // A CA file changed on disk (a reload after a rotation) gets a new client.
        let before = key(&tls, t, &a);
        std::fs::write(&ca, b"-----BEGIN CERTIFICATE-----\n").unwrap();
        assert!(before != key(&tls, t, &a));
        // Building still names a bad file, and a missing one.
        let e = client(&tls, t, &a).unwrap_err().to_string();
        assert!(e.contains("ca.pem"), "{e}");
        std::fs::remove_file(&ca).unwrap();
        let e = client(&tls, t, &a).unwrap_err().to_string();
        assert!(e.contains("ca.pem"), "{e}");
    }
}
