//! TLS client configuration from PEM files: the syslog sink's rustls config (tokio-rustls), the
//! PEM errors the HTTP clients report too ([`crate::http`] builds those), and how a TLS failure is named.
//!
//! Invariants: certificate verification is on unless `insecure_skip_verify` is set (which the
//! caller logs loudly); TLS 1.2 is the floor; a PEM problem is an error naming the file, never a
//! silent fallback to the system store or to plain TCP.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls;

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

/// A TLS set-up problem.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {problem}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// rustls refused the configuration.
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// reqwest refused the configuration.
    #[error("http client: {0}")]
    Http(String),
}

pub(crate) fn pem_err(path: &Path, problem: impl ToString) -> TlsError {
    TlsError::Pem {
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
}

/// Reads every certificate of a PEM file (at least one).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_err(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(path, e))?;
    if certs.is_empty() {
        return Err(pem_err(path, "holds no PEM certificate"));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| pem_err(path, format!("no usable private key ({e})")))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The rustls client config of a syslog TLS sink.
pub fn syslog_client_config(tls: &SyslogTls) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
    } else {
        match &tls.ca_file {
            Some(path) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(CaFileVerifier::new(path)?)),
            None => {
                let mut roots = rustls::RootCertStore::empty();
                let native = rustls_native_certs::load_native_certs();
                for cert in native.certs {
                    let _ = roots.add(cert);
                }
                builder.with_root_certificates(roots)
            }
        }
    };
    let config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            builder.with_client_auth_cert(read_certs(cert)?, read_key(key)?)?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The verifier of a syslog sink with a `ca_file`: rustls' WebPKI verifier over the file's
/// certificates, which also trusts a receiver that presents one of those very certificates as
/// its own.
///
/// The usual recipe for a receiver's certificate, `openssl req -x509 -newkey rsa:2048 -nodes
/// -subj /CN=… -addext subjectAltName=…`, makes a self-signed certificate with `CA:TRUE`, and
/// the guides for rsyslog and syslog-ng hand that same file to the clients as their CA. WebPKI
/// refuses a CA certificate in the end-entity position (`CaUsedAsEndEntity`); GnuTLS and OpenSSL
/// clients accept it, since the file pins exactly that certificate. So when WebPKI refuses the
/// presented certificate as a CA used as an end entity, or as issued by no certificate it knows,
/// and that certificate is byte for byte one of `ca_file`, it is trusted as pinned:
/// - its validity period is still checked against the clock ([`check_validity`]);
/// - the server name is still checked against its subjectAltName (rustls' `verify_server_name`);
/// - the handshake's own signatures are still verified (delegated to WebPKI), so the peer holds
///   that certificate's private key.
///
/// Anything else (another certificate, any other WebPKI error) is WebPKI's answer unchanged.
#[derive(Debug)]
struct CaFileVerifier {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    /// Every certificate of `ca_file`, as DER.
    pinned: Vec<CertificateDer<'static>>,
}

impl CaFileVerifier {
    fn new(path: &Path) -> Result<CaFileVerifier, TlsError> {
        let pinned = read_certs(path)?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in &pinned {
            roots.add(cert.clone()).map_err(|e| pem_err(path, e))?;
        }
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .map_err(|e| pem_err(path, e))?;
        Ok(CaFileVerifier { webpki, pinned })
    }

    /// Whether WebPKI refused `error` only for where the certificate stands (a CA certificate
    /// presented by the server itself, or one no anchor issued), which pinning answers.
    fn pinning_answers(error: &rustls::Error) -> bool {
        use rustls::CertificateError;
        match error {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => true,
            // rustls passes webpki's `CaUsedAsEndEntity` on as an opaque `Other`; its Debug
            // form names the variant (a unit test holds this to the real error).
            rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
                format!("{other:?}").contains("CaUsedAsEndEntity")
            }
            _ => false,
        }
    }
}

impl rustls::client::danger::ServerCertVerifier for CaFileVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let refused = match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(e) => e,
        };
        let pinned = self
            .pinned
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref());
        if !pinned || !CaFileVerifier::pinning_answers(&refused) {
            return Err(refused);
        }
        check_validity(end_entity, now)?;
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, server_name)?;
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.webpki.root_hint_subjects()
    }
}

/// Refuses a certificate outside its validity period (RFC 5280 §4.1.2.5), as WebPKI would:
/// `NotValidYet` before `notBefore`, `Expired` after `notAfter`, `BadEncoding` when the period
/// cannot be read.
fn check_validity(cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    use rustls::CertificateError;
    let (not_before, not_after) =
        der::validity(cert.as_ref()).ok_or(CertificateError::BadEncoding)?;
    let now = now.as_secs() as i64;
    if now < not_before {
        return Err(CertificateError::NotValidYet.into());
    }
    if now > not_after {
        return Err(CertificateError::Expired.into());
    }
    Ok(())
}

/// Just enough DER to read a certificate's validity period (RFC 5280 §4.1): total on any input.
mod der {
    /// The next TLV of `input` with tag `tag`: (its contents, what follows).
    fn take(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&t, rest) = input.split_first()?;
        if t != tag {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[n..])
        };
        (rest.len() >= len).then(|| rest.split_at(len))
    }

    /// Any one TLV: what follows it.
    fn skip(input: &[u8]) -> Option<&[u8]> {
        let tag = *input.first()?;
        take(input, tag).map(|(_, rest)| rest)
    }

    /// `(notBefore, notAfter)` in Unix seconds.
    pub(super) fn validity(cert: &[u8]) -> Option<(i64, i64)> {
        let (cert, _) = take(cert, 0x30)?;
        let (tbs, _) = take(cert, 0x30)?;
        // version [0] EXPLICIT, absent in v1 certificates.
        let tbs = match take(tbs, 0xa0) {
            Some((_, rest)) => rest,
            None => tbs,
        };
        // serialNumber, signature, issuer.
        let tbs = skip(skip(skip(tbs)?)?)?;
        let (validity, _) = take(tbs, 0x30)?;
        let (not_before, rest) = time(validity)?;
        let (not_after, _) = time(rest)?;
        Some((not_before, not_after))
    }

    /// A UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
    fn time(input: &[u8]) -> Option<(i64, &[u8])> {
        let (digits, year, rest) = match take(input, 0x17) {
            Some((t, rest)) => {
                let yy = num(t.get(..2)?)?;
                (
                    t.get(2..)?,
                    if yy < 50 { 2000 + yy } else { 1900 + yy },
                    rest,
                )
            }
            None => {
                let (t, rest) = take(input, 0x18)?;
                (t.get(4..)?, num(t.get(..4)?)?, rest)
            }
        };
        if digits.len() != 11 || digits[10] != b'Z' {
            return None;
        }
        let month = time::Month::try_from(u8::try_from(num(&digits[0..2])?).ok()?).ok()?;
        let field = |i: usize| num(&digits[i..i + 2]).and_then(|v| u8::try_from(v).ok());
        let date =
            time::Date::from_calendar_date(i32::try_from(year).ok()?, month, field(2)?).ok()?;
        let at = date
            .with_hms(field(4)?, field(6)?, field(8)?)
            .ok()?
            .assume_utc();
        Some((at.unix_timestamp(), rest))
    }

    /// ASCII digits as a number.
    fn num(digits: &[u8]) -> Option<u32> {
        digits.iter().try_fold(0u32, |acc, b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    }
}

/// Accepts any server certificate (`insecure_skip_verify = true`), still checking signatures
/// of the handshake itself.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A reqwest error without its URL (whose path or query may carry a token): only the kind and
/// the source chain, which describe the connection, never the request.
pub fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier as _;

    /// Two certificates made by the usual recipe (`openssl req -x509 -newkey rsa:2048 -nodes
    /// -days 3650 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1`): each
    /// self-signed with `CA:TRUE`, each with its own key.
    fn fixture() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/self-signed-receivers.pem")
    }

    fn name(s: &str) -> ServerName<'static> {
        ServerName::try_from(s.to_owned()).expect("a valid server name")
    }

    fn at(secs: i64) -> UnixTime {
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs as u64))
    }

    /// A verifier over only the first certificate of the fixture.
    fn first_only() -> (tempfile::TempDir, CaFileVerifier) {
        let text = std::fs::read_to_string(fixture()).expect("fixture");
        const END: &str = "-----END CERTIFICATE-----\n";
        let first = &text[..text.find(END).expect("a PEM block") + END.len()];
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, first).expect("write");
        let v = CaFileVerifier::new(&path).expect("verifier");
        (dir, v)
    }

    /// See: issue 17. A receiver whose certificate is the self-signed `CA:TRUE` one given as
    /// `ca_file` was refused ("presents a CA certificate as its own"); GnuTLS and OpenSSL
    /// clients accept it. Pinned by its bytes, it is trusted; the name and the validity period
    /// are still checked, and any other certificate still meets WebPKI unchanged.
    #[test]
    fn a_self_signed_certificate_from_ca_file_is_trusted_for_its_names_and_period_only() {
        let certs = read_certs(&fixture()).expect("fixture");
        let (not_before, not_after) = der::validity(certs[0].as_ref()).expect("validity");
        assert!(not_after - not_before > 3000 * 86_400, "about ten years");
        let during = at(not_before + 86_400);
        let v = CaFileVerifier::new(&fixture()).expect("verifier");

        // Plain WebPKI refuses it, with the error the verifier answers by pinning.
        let refused = v
            .webpki
            .verify_server_cert(&certs[0], &[], &name("localhost"), &[], during)
            .expect_err("WebPKI refuses a CA certificate as an end entity");
        assert!(CaFileVerifier::pinning_answers(&refused), "{refused:?}");

        for cert in &certs {
            for n in ["localhost", "127.0.0.1"] {
                v.verify_server_cert(cert, &[], &name(n), &[], during)
                    .unwrap_or_else(|e| panic!("{n}: {e:?}"));
            }
            let wrong = v
                .verify_server_cert(cert, &[], &name("siem.example.com"), &[], during)
                .expect_err("another name is refused");
            assert!(
                format!("{wrong:?}").contains("NotValidForName"),
                "{wrong:?}"
            );
            for (when, want) in [
                (at(not_after + 1), "Expired"),
                (at(not_before - 1), "NotValidYet"),
            ] {
                let e = v
                    .verify_server_cert(cert, &[], &name("localhost"), &[], when)
                    .expect_err("outside its period");
                assert!(format!("{e:?}").contains(want), "{e:?}");
            }
        }

        // A certificate that is not in ca_file: the same subject, another key.
        let (_dir, first) = first_only();
        first
            .verify_server_cert(&certs[0], &[], &name("localhost"), &[], during)
            .expect("the pinned one");
        let other = first
            .verify_server_cert(&certs[1], &[], &name("localhost"), &[], during)
            .expect_err("a certificate that is not byte for byte in ca_file is refused");
        assert!(!format!("{other:?}").is_empty());
    }

    #[test]
    fn check_validity_reads_both_time_forms_and_refuses_garbage() {
        let certs = read_certs(&fixture()).expect("fixture");
        let (nb, na) = der::validity(certs[0].as_ref()).expect("validity");
        assert!(check_validity(&certs[0], at(nb)).is_ok());
        assert!(check_validity(&certs[0], at(na)).is_ok());
        assert!(check_validity(&certs[0], at(na + 1)).is_err());
        assert!(check_validity(&certs[0], at(nb - 1)).is_err());
        // openssl prints the same period.
        assert_eq!(na - nb, 3650 * 86_400);

        // GeneralizedTime (years from 2050 on) and a UTCTime of the last century.
        let tlv = |tag: u8, s: &str| {
            let mut v = vec![tag, s.len() as u8];
            v.extend_from_slice(s.as_bytes());
            v
        };
        let mut validity = tlv(0x17, "991231235959Z");
        validity.extend(tlv(0x18, "20600101000000Z"));
        let seq = |tag: u8, body: &[u8]| {
            let mut v = vec![tag, 0x82, (body.len() >> 8) as u8, body.len() as u8];
            v.extend_from_slice(body);
            v
        };
        let mut tbs = seq(0xa0, &[2, 1, 2]);
        tbs.extend([2, 1, 1]); // serialNumber
        tbs.extend([0x30, 0]); // signature
        tbs.extend([0x30, 0]); // issuer
        tbs.extend(seq(0x30, &validity));
        let cert = seq(0x30, &seq(0x30, &tbs));
        assert_eq!(der::validity(&cert), Some((946_684_799, 2_840_140_800)));

        for bad in [
            &b""[..],
            &[0x30],
            &[0x30, 0x85, 1, 1, 1, 1, 1],
            &cert[..cert.len() - 1],
        ] {
            assert_eq!(der::validity(bad), None, "{bad:?}");
        }
        let mut month13 = cert.clone();
        let at = month13
            .windows(4)
            .position(|w| w == b"2060")
            .expect("the GeneralizedTime");
        month13[at + 4..at + 6].copy_from_slice(b"13");
        assert_eq!(der::validity(&month13), None);
    }
}
