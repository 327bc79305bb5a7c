//! The syslog sink: RFC 5424 (or 3164) messages over UDP (one datagram per event, RFC 5426),
//! TCP (RFC 6587 octet counting or newline framing) or TLS (RFC 5425, rustls).
//!
//! Connection behaviour (after vector's `sinks/util/tcp.rs`): connect lazily; before each batch
//! check whether the peer closed (a FIN is seen as EOF); write the whole batch under
//! `write_timeout`; on any error drop the connection and report a retryable error, so the
//! generic loop re-sends the whole batch on a fresh connection (duplicates possible, no loss
//! beyond what the kernel had accepted on a plain TCP connection that then died: plain TCP has
//! no application acknowledgement, which the README states).

use std::sync::atomic::Ordering;

use bytes::{Bytes, BytesMut};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::SinkError;
use crate::config::{Format, Protocol, SyslogConfig};
use crate::event::Event;
use crate::pipeline::SinkStats;
use crate::syslog::{Header, format_message, frame, severity_for, truncate_for_datagram};
use crate::transform;

enum Conn {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A syslog sink.
pub struct SyslogSink {
    cfg: SyslogConfig,
    header: Header,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    conn: Option<Conn>,
    udp: Option<UdpSocket>,
}

impl std::fmt::Debug for SyslogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogSink")
            .field("address", &self.cfg.address)
            .field("protocol", &self.cfg.protocol)
            .field("connected", &(self.conn.is_some() || self.udp.is_some()))
            .finish_non_exhaustive()
    }
}

/// The machine's host name, for the HOSTNAME field.
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

impl SyslogSink {
    /// Prepares the sink (reads TLS files; connects later).
    pub fn new(cfg: SyslogConfig) -> Result<SyslogSink, String> {
        let hostname = cfg.hostname.clone().unwrap_or_else(local_hostname);
        let header = Header::new(
            cfg.rfc,
            cfg.facility,
            &hostname,
            &cfg.app_name,
            &std::process::id().to_string(),
        );
        let tls = if cfg.protocol == Protocol::Tls {
            let config = crate::tls::syslog_client_config(&cfg.tls).map_err(|e| e.to_string())?;
            let name = cfg
                .tls
                .server_name
                .clone()
                .unwrap_or_else(|| host_of(&cfg.address).to_owned());
            let server_name = ServerName::try_from(name.clone())
                .map_err(|_| format!("{name:?} is not a valid TLS server name"))?;
            Some((TlsConnector::from(config), server_name))
        } else {
            None
        };
        Ok(SyslogSink {
            cfg,
            header,
            tls,
            conn: None,
            udp: None,
        })
    }

    /// One syslog message (unframed) for an event.
    pub fn record(&self, format: Format, ev: &Event, stats: &SinkStats) -> Bytes {
        let mut msg = Vec::with_capacity(512);
        transform::encode(format, ev, &mut msg);
        let id = ev.id.to_string();
        let action = ev.action_id.to_string();
        let sd = [
            ("portal", ev.portal.name.as_str()),
            ("id", id.as_str()),
            ("action", action.as_str()),
        ];
        let severity = severity_for(ev.semantics().severity);
        let mut out = BytesMut::with_capacity(msg.len() + 160);
        format_message(
            &mut out,
            &self.header,
            severity,
            ev.time,
            ev.stream.as_str(),
            &sd,
            b"",
        );
        if self.header.rfc == crate::config::Rfc::Rfc5424 {
            out.extend_from_slice(b" ");
        }
        if self.cfg.protocol == Protocol::Udp
            && truncate_for_datagram(&mut msg, out.len(), self.cfg.max_datagram)
        {
            stats.truncated.fetch_add(1, Ordering::Relaxed);
        }
        out.extend_from_slice(&msg);
        out.freeze()
    }

    async fn connect(&mut self) -> Result<(), SinkError> {
        let addr = self.cfg.address.clone();
        let timeout = self.cfg.connect_timeout;
        if self.cfg.protocol == Protocol::Udp {
            let sock = UdpSocket::bind(if addr.starts_with('[') {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            })
            .await
            .map_err(|e| SinkError::retryable(format!("syslog udp: cannot bind: {e}")))?;
            sock.connect(&addr)
                .await
                .map_err(|e| SinkError::retryable(format!("syslog udp {addr}: {e}")))?;
            self.udp = Some(sock);
            return Ok(());
        }
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(&addr))
            .await
            .map_err(|_| SinkError::retryable(format!("syslog {addr}: connect timed out")))?
            .map_err(|e| SinkError::retryable(format!("syslog {addr}: cannot connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        // Detect a dead peer: keepalive probes on an idle connection, and TCP_USER_TIMEOUT so
        // that data the peer never acknowledges fails the connection after `write_timeout`.
        let sock = socket2::SockRef::from(&tcp);
        let _ = sock.set_tcp_keepalive(
            &socket2::TcpKeepalive::new()
                .with_time(std::time::Duration::from_secs(30))
                .with_interval(std::time::Duration::from_secs(10))
                .with_retries(3),
        );
        #[cfg(target_os = "linux")]
        let _ = sock.set_tcp_user_timeout(Some(self.cfg.write_timeout));
        self.conn = Some(match &self.tls {
            None => Conn::Tcp(tcp),
            Some((connector, name)) => {
                let tls = tokio::time::timeout(timeout, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| {
                        SinkError::retryable(format!("syslog tls {addr}: handshake timed out"))
                    })?
                    .map_err(|e| {
                        SinkError::retryable(format!(
                            "syslog tls {addr}: handshake failed: {}",
                            describe_tls(&e, &name.to_str())
                        ))
                    })?;
                let mut tls = tls;
                // With TLS 1.3 a server that refuses the client certificate says so only after
                // the client's handshake is done, in an alert: wait briefly for it, so that a
                // refused connection is an error now rather than a batch silently lost later.
                let mut probe = [0u8; 1];
                match tokio::time::timeout(
                    std::time::Duration::from_millis(300),
                    tokio::io::AsyncReadExt::read(&mut tls, &mut probe),
                )
                .await
                {
                    Err(_) => {}
                    Ok(Ok(0)) => {
                        return Err(SinkError::retryable(format!(
                            "syslog tls {addr}: the receiver closed the connection right after the handshake (does it require a client certificate? set tls.cert_file and tls.key_file)"
                        )));
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        return Err(SinkError::retryable(format!(
                            "syslog tls {addr}: handshake failed: {}",
                            describe_tls(&e, &name.to_str())
                        )));
                    }
                }
                Conn::Tls(Box::new(tls))
            }
        });
        Ok(())
    }

    /// Whether a plain TCP peer has closed its side (or reset) since the last write.
    ///
    /// A syslog receiver never sends anything, so any readable byte (a FIN, a TLS alert or
    /// close_notify) means the connection is finished. The check peeks at the TCP socket under
    /// TLS too, without consuming TLS records.
    fn peer_closed(&self) -> bool {
        let tcp = match &self.conn {
            Some(Conn::Tcp(s)) => s,
            Some(Conn::Tls(t)) => t.get_ref().0,
            None => return false,
        };
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        // The socket is non-blocking (tokio), so an idle connection answers WouldBlock.
        match socket2::SockRef::from(tcp).peek(&mut buf) {
            Ok(_) => true,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        }
    }

    /// Sends the records in order.
    pub async fn send(&mut self, records: &[Bytes]) -> Result<(), SinkError> {
        if self.cfg.protocol == Protocol::Udp {
            if self.udp.is_none() {
                self.connect().await?;
            }
            let addr = &self.cfg.address;
            if let Some(sock) = &self.udp {
                for r in records {
                    if let Err(e) = sock.send(r).await {
                        self.udp = None;
                        return Err(SinkError::retryable(format!("syslog udp {addr}: {e}")));
                    }
                }
            }
            return Ok(());
        }
        if self.peer_closed() {
            self.conn = None;
        }
        if self.conn.is_none() {
            self.connect().await?;
        }
        let mut buf = BytesMut::with_capacity(records.iter().map(|r| r.len() + 8).sum());
        for r in records {
            frame(self.cfg.framing, r, &mut buf);
        }
        let timeout = self.cfg.write_timeout;
        let addr = self.cfg.address.clone();
        let result = match self.conn.as_mut() {
            Some(Conn::Tcp(s)) => write_all(s, &buf, timeout).await,
            Some(Conn::Tls(s)) => write_all(s.as_mut(), &buf, timeout).await,
            None => Err("not connected".to_owned()),
        };
        let result = match result {
            Ok(()) => self.wait_until_acknowledged(timeout).await,
            Err(e) => Err(e),
        };
        result.map_err(|e| {
            self.conn = None;
            SinkError::retryable(format!(
                "syslog {addr}: {e}; reconnecting and re-sending the batch"
            ))
        })
    }

    /// Waits until the receiver's TCP stack has acknowledged every byte written (the socket's
    /// send queue, `TIOCOUTQ`, is empty), so that a batch is acknowledged only once it has left
    /// this host: a receiver that stops reading, or dies, then costs a re-send instead of the
    /// contents of our send buffer. What is left is the receiver's own buffer (its kernel
    /// acknowledged, its process did not read), which plain TCP syslog cannot confirm.
    async fn wait_until_acknowledged(&self, timeout: std::time::Duration) -> Result<(), String> {
        let tcp = match &self.conn {
            Some(Conn::Tcp(s)) => s,
            Some(Conn::Tls(t)) => t.get_ref().0,
            None => return Err("not connected".to_owned()),
        };
        let start = std::time::Instant::now();
        let mut pause = std::time::Duration::from_micros(200);
        loop {
            let queued =
                unacked_bytes(tcp).map_err(|e| format!("cannot read the send queue: {e}"))?;
            if queued == 0 {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                return Err(format!(
                    "the receiver acknowledged nothing of the last {queued} bytes for {} (not reading?)",
                    humantime::format_duration(timeout)
                ));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(50));
        }
    }

    /// Connects once, for `check`.
    pub async fn healthcheck(&mut self) -> Result<String, SinkError> {
        self.connect().await?;
        Ok(format!(
            "syslog {} {:?} connected",
            self.cfg.address, self.cfg.protocol
        ))
    }
}

async fn write_all<W: AsyncWrite + Unpin>(
    w: &mut W,
    buf: &[u8],
    timeout: std::time::Duration,
) -> Result<(), String> {
    match tokio::time::timeout(timeout, async {
        w.write_all(buf).await?;
        w.flush().await
    })
    .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "write made no progress for {}",
            humantime::format_duration(timeout)
        )),
    }
}

/// Bytes written to `tcp` that its peer has not acknowledged yet (Linux `TIOCOUTQ`).
#[cfg(target_os = "linux")]
fn unacked_bytes(tcp: &TcpStream) -> std::io::Result<i32> {
    use std::os::fd::AsRawFd as _;
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ writes one c_int through the pointer, which points to a live local; the
    // descriptor is owned by `tcp`, which outlives the call.
    let rc = unsafe { libc::ioctl(tcp.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n)
}

/// Elsewhere the send queue cannot be read: trust the write.
#[cfg(not(target_os = "linux"))]
fn unacked_bytes(_tcp: &TcpStream) -> std::io::Result<i32> {
    Ok(0)
}

/// Names a TLS handshake failure in an operator's words.
fn describe_tls(e: &std::io::Error, server_name: &str) -> String {
    use tokio_rustls::rustls::{CertificateError, Error};
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<Error>());
    match inner {
        Some(Error::InvalidCertificate(c)) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the receiver's certificate has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the receiver's certificate is not valid yet (check both clocks)".to_owned()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the receiver's certificate is not valid for {server_name:?}; set tls.server_name to a name the certificate holds"
                )
            }
            CertificateError::UnknownIssuer => {
                "the receiver's certificate is signed by an unknown CA; set tls.ca_file to the CA that signed it".to_owned()
            }
            CertificateError::Revoked => "the receiver's certificate is revoked".to_owned(),
            other if format!("{other:?}").contains("CaUsedAsEndEntity") => {
                "the receiver presents a CA certificate as its own; give it a server certificate signed by that CA".to_owned()
            }
            other => format!("invalid receiver certificate: {other:?}"),
        },
        Some(Error::AlertReceived(alert)) => format!(
            "the receiver refused the connection ({alert:?}); if it requires a client certificate, set tls.cert_file and tls.key_file"
        ),
        Some(other) => format!("{other}"),
        None => format!("{e} (is the receiver speaking TLS on this port?)"),
    }
}

/// `host` of `host:port` / `[v6]:port`.
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}
