//! The syslog sink: RFC 5424 (or 3164) messages over UDP (one datagram per event, RFC 5426),
//! TCP (RFC 6587 octet counting or newline framing) or TLS (RFC 5425, rustls).
//!
//! Connection behaviour (after vector's `sinks/util/tcp.rs`): connect lazily; before each batch
//! check whether the peer closed (a FIN is seen as EOF); write the whole batch under
//! `write_timeout`; on any error drop the connection and report a retryable error, so the
//! generic loop re-sends the whole batch on a fresh connection (duplicates possible, no loss
//! beyond what the kernel had accepted on a plain TCP connection that then died: plain TCP has
//! no application acknowledgement, which the README states).
//!
//! Pacing: with `max_events_per_second` (by default 2,000 on UDP, off on TCP and TLS) the sink
//! sends on a schedule (`Pacer`) and sleeps on a tokio timer when ahead of it. UDP has no
//! backpressure: unpaced, a catch-up overflows a stock receiver's socket buffer and the kernel
//! drops the rest (issue 17). Waiting happens between messages, never inside a write.

use std::sync::atomic::Ordering;

use bytes::{BufMut as _, Bytes, BytesMut};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Duration, Instant};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tracing::warn;

use super::SinkError;
use crate::event::{Event, Stream};
use crate::pipeline::SinkStats;
use crate::syslog::{Fit, Header, Prefix, SD_ID, SD_TRUNCATED, fit_datagram, severity_for};
use crate::syslog::{Framing, Rfc};
use crate::tls::SyslogTls;
use crate::transform::Format;
use crate::transform::{self, Fields};

/// Syslog transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// One datagram per event (RFC 5426), lossy.
    Udp,
    /// Plain TCP (RFC 6587).
    Tcp,
    /// TLS (RFC 5425).
    Tls,
}

/// Default pace of a UDP syslog sink, in messages per second: what a stock rsyslog on the same
/// host, with its default socket buffer, keeps up with during a catch-up (README, "UDP").
pub const UDP_EVENTS_PER_SECOND: f64 = 2000.0;

/// Settings of a syslog sink.
#[derive(Debug, Clone)]
pub struct SyslogConfig {
    /// `host:port`.
    pub address: String,
    /// Transport.
    pub protocol: Protocol,
    /// TCP/TLS framing.
    pub framing: Framing,
    /// Header flavour.
    pub rfc: Rfc,
    /// APP-NAME (RFC 5424) / TAG (RFC 3164).
    pub app_name: String,
    /// Facility number 0–23.
    pub facility: u8,
    /// HOSTNAME field; the machine's host name by default.
    pub hostname: Option<String>,
    /// UDP payload cap (RFC 5426); a longer message has its longest values cut, and is marked.
    pub max_datagram: usize,
    /// Most messages sent per second (0: no limit). UDP has no backpressure, so by default
    /// it is paced at [`UDP_EVENTS_PER_SECOND`]; TCP and TLS default to no limit.
    pub max_events_per_second: f64,
    /// A write that makes no progress this long drops the connection.
    pub write_timeout: Duration,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// TLS settings (protocol = "tls").
    pub tls: SyslogTls,
}

enum Conn {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A syslog sink.
pub struct SyslogSink {
    cfg: SyslogConfig,
    header: Header,
    /// The header up to the structured data, per stream (in [`Stream::ALL`] order: the stream
    /// is the MSGID).
    prefixes: [Prefix; 2],
    /// Where records are built, one after the other, in chunks of [`CHUNK`] bytes. Each record
    /// is split off as a `Bytes` that shares its chunk, so a batch costs an allocation per
    /// chunk, not per event.
    buf: BytesMut,
    /// ECS and JSON are encoded here first (their serde encoders want a `Vec`).
    scratch: Vec<u8>,
    /// Digits of the last octet count: the next record's header starts after as many, and
    /// moves only when its own count has another number of digits.
    count_digits: usize,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    conn: Option<Conn>,
    udp: Option<UdpSocket>,
    /// Spaces the sends to `max_events_per_second` (none when 0).
    pacer: Option<Pacer>,
    /// Whether a record's bytes had to be cut already (warned once).
    warned_cut: bool,
}

/// Size of each chunk of [`SyslogSink::buf`].
const CHUNK: usize = 64 * 1024;
/// Room made before each record, so that most records are written without growing a chunk.
const RECORD_ROOM: usize = 2048;

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
        let prefixes = Stream::ALL.map(|stream| Prefix::new(&header, stream.as_str()));
        let pacer = Pacer::new(cfg.max_events_per_second);
        Ok(SyslogSink {
            cfg,
            header,
            prefixes,
            buf: BytesMut::with_capacity(CHUNK),
            scratch: Vec::new(),
            count_digits: 3,
            tls,
            conn: None,
            udp: None,
            pacer,
            warned_cut: false,
        })
    }

    /// What goes on the wire for one event: the syslog message in its RFC 6587 frame on TCP and
    /// TLS (octet count or trailing LF), one datagram of at most `max_datagram` bytes on UDP.
    ///
    /// The message is built in place: the header from the sink's [`Prefix`], the message
    /// encoded right after it, and the octet count written in front without copying the
    /// message again. The bytes are exactly those of [`crate::syslog::format_message`] and
    /// [`crate::syslog::frame`]. A UDP message over `max_datagram` is built again by
    /// [`crate::syslog::fit_datagram`] (its longest values cut, the record still well formed),
    /// with [`SD_TRUNCATED`] in its structured data, and counted.
    pub fn record(&mut self, format: Format, ev: &Event, stats: &SinkStats) -> Bytes {
        let f = Fields::of(ev);
        let udp = self.cfg.protocol == Protocol::Udp;
        let octets = !udp && self.cfg.framing == Framing::OctetCounting;
        let buf = &mut self.buf;
        buf.reserve(RECORD_ROOM);
        let frame_start = buf.len();
        if octets {
            buf.put_bytes(b'0', self.count_digits);
            buf.put_u8(b' ');
        }
        let start = buf.len();
        let prefix = match f.stream {
            Stream::Login => &self.prefixes[0],
            Stream::Audit => &self.prefixes[1],
        };
        let severity = severity_for(ev.semantics().severity);
        put_header(
            buf,
            prefix,
            self.header.rfc,
            severity,
            &f,
            &ev.portal.labels,
            false,
        );
        transform::encode_into(format, ev, buf, &mut self.scratch);
        if udp {
            if buf.len() - start > self.cfg.max_datagram {
                buf.truncate(start);
                put_header(
                    buf,
                    prefix,
                    self.header.rfc,
                    severity,
                    &f,
                    &ev.portal.labels,
                    true,
                );
                let budget = self.cfg.max_datagram.saturating_sub(buf.len() - start);
                let fit = fit_datagram(format, ev, budget, &mut self.scratch);
                buf.put_slice(&self.scratch);
                stats.truncated.fetch_add(1, Ordering::Relaxed);
                if fit == Fit::Cut && !self.warned_cut {
                    self.warned_cut = true;
                    warn!(
                        address = %self.cfg.address,
                        event = ev.id,
                        max_datagram = self.cfg.max_datagram,
                        "a record does not fit max_datagram even with every value cut, so its bytes were cut and it is not well formed; raise max_datagram"
                    );
                }
            }
        } else if octets {
            let mut num = itoa::Buffer::new();
            let count = num.format(buf.len() - start).as_bytes();
            if count.len() != self.count_digits {
                // Another number of digits than the room left: move the message.
                let end = buf.len();
                let to = frame_start + count.len() + 1;
                if to > start {
                    buf.resize(end + (to - start), 0);
                }
                buf.copy_within(start..end, to);
                buf.truncate(to + (end - start));
                self.count_digits = count.len();
            }
            buf[frame_start..frame_start + count.len()].copy_from_slice(count);
            buf[frame_start + count.len()] = b' ';
        } else {
            // Newline framing: a CR or LF in the message would end it early.
            for b in &mut buf[start..] {
                if *b == b'\n' || *b == b'\r' {
                    *b = b' ';
                }
            }
            buf.put_u8(b'\n');
        }
        buf.split().freeze()
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

    /// Sends the records in order: records from [`SyslogSink::record`], which on TCP and TLS
    /// carry their frame already; no faster than `max_events_per_second` when it is set.
    pub async fn send(&mut self, records: &[Bytes]) -> Result<(), SinkError> {
        if self.cfg.protocol == Protocol::Udp {
            if self.udp.is_none() {
                self.connect().await?;
            }
            let addr = &self.cfg.address;
            if let Some(sock) = &self.udp {
                for r in records {
                    if let Some(pacer) = self.pacer.as_mut() {
                        pacer.wait(1).await;
                    }
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
        // The records are framed already (see `record`). TCP: one gathering write (`writev`)
        // straight from the records; TLS: one write of the batch, so that rustls seals it into
        // full TLS records rather than one per event. Paced, the batch goes in groups of what
        // the pace lets through at once.
        let timeout = self.cfg.write_timeout;
        let addr = self.cfg.address.clone();
        let group = self
            .pacer
            .as_ref()
            .map_or(records.len(), Pacer::group)
            .max(1);
        let mut result = Ok(());
        for records in records.chunks(group) {
            if let Some(pacer) = self.pacer.as_mut() {
                pacer.wait(records.len()).await;
            }
            result = match self.conn.as_mut() {
                Some(Conn::Tcp(s)) => write_all_records(s, records, timeout).await,
                Some(Conn::Tls(s)) => {
                    let buf = match records {
                        [one] => one.clone(),
                        _ => {
                            let mut buf =
                                BytesMut::with_capacity(records.iter().map(Bytes::len).sum());
                            for r in records {
                                buf.extend_from_slice(r);
                            }
                            buf.freeze()
                        }
                    };
                    write_all(s.as_mut(), &buf, timeout).await
                }
                None => Err("not connected".to_owned()),
            };
            if result.is_err() {
                break;
            }
        }
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

    /// Connects once, for `check`. UDP has no connection to prove: a datagram to a port
    /// nobody listens on vanishes, so `check` says it cannot tell
    /// ([`super::UNVERIFIED`]).
    pub async fn healthcheck(&mut self) -> Result<String, SinkError> {
        self.connect().await?;
        if self.cfg.protocol == Protocol::Udp {
            return Ok(format!(
                "{}syslog over UDP to {} has no acknowledgement: the address resolves and a socket is open, but whether a receiver listens shows only on the receiver's side",
                super::UNVERIFIED,
                self.cfg.address
            ));
        }
        Ok(format!(
            "syslog {} {:?} connected",
            self.cfg.address, self.cfg.protocol
        ))
    }
}

/// Writes `<PRI>`, the timestamp and the fixed header, then (RFC 5424) the structured data
/// `[docspace@32473 portal="…" id="…" action="…"]`, with [`SD_TRUNCATED`] when the message was
/// cut to fit, and `[labels@32473 …]` when the portal has labels, and the space before MSG.
fn put_header(
    buf: &mut BytesMut,
    prefix: &Prefix,
    rfc: Rfc,
    severity: u8,
    f: &Fields<'_>,
    labels: &[(String, String)],
    truncated: bool,
) {
    prefix.write(buf, severity, f.time);
    if rfc == Rfc::Rfc5424 {
        // Names and digits need no escaping.
        let mut num = itoa::Buffer::new();
        buf.put_u8(b'[');
        buf.put_slice(SD_ID.as_bytes());
        buf.put_slice(b" portal=\"");
        crate::syslog::escape_sd_value(buf, f.portal_name);
        buf.put_slice(b"\" id=\"");
        buf.put_slice(num.format(f.id).as_bytes());
        buf.put_slice(b"\" action=\"");
        buf.put_slice(num.format(f.action_id).as_bytes());
        if truncated {
            let (name, value) = SD_TRUNCATED;
            buf.put_slice(b"\" ");
            buf.put_slice(name.as_bytes());
            buf.put_slice(b"=\"");
            buf.put_slice(value.as_bytes());
        }
        buf.put_slice(b"\"]");
        crate::syslog::put_labels_sd(buf, labels);
        buf.put_u8(b' ');
    }
}

/// Spaces sends to a rate (the generic cell rate algorithm): a schedule advances by
/// `1 / rate` per message, and a send waits while the schedule runs more than [`Pacer::BURST`]
/// ahead of the clock. So no more than `rate × BURST` messages ever leave back to back, the
/// long-run rate is exactly `rate`, and the task sleeps on a tokio timer, waking about every
/// `BURST / 2` (never a busy loop).
#[derive(Debug)]
struct Pacer {
    /// Time per message.
    interval: Duration,
    /// When the schedule's next message is due; `None` before the first.
    due: Option<Instant>,
}

impl Pacer {
    /// How far the schedule may run ahead of the clock: the largest burst, as time. 20 ms at
    /// the UDP default of 2,000/s is 40 datagrams, about 90 KiB of a receiver's default
    /// 208 KiB socket buffer (each datagram costs its size plus about 1 KiB there).
    const BURST: Duration = Duration::from_millis(20);

    /// A pacer for `rate` messages a second; none for 0 (or anything not above 0).
    fn new(rate: f64) -> Option<Pacer> {
        (rate > 0.0 && rate.is_finite()).then(|| Pacer {
            interval: Duration::from_secs_f64(1.0 / rate),
            due: None,
        })
    }

    /// Messages to send at once (a TCP or TLS write): what the pace lets through per wake-up.
    fn group(&self) -> usize {
        let per_burst = Pacer::BURST.as_secs_f64() / 2.0 / self.interval.as_secs_f64();
        (per_burst as usize).max(1)
    }

    /// Books `n` messages at `now` on the schedule; returns when they may go (`None`: now).
    fn book(&mut self, n: usize, now: Instant) -> Option<Instant> {
        let start = self.due.map_or(now, |due| due.max(now));
        let due = start
            + self
                .interval
                .saturating_mul(u32::try_from(n).unwrap_or(u32::MAX));
        self.due = Some(due);
        // Wait once the schedule runs more than BURST ahead, and then until it is only half
        // that ahead, so that each wake-up lets a group of messages through.
        (due > now + Pacer::BURST).then(|| due - Pacer::BURST / 2)
    }

    /// Waits until `n` more messages may go.
    async fn wait(&mut self, n: usize) {
        if let Some(at) = self.book(n, Instant::now()) {
            tokio::time::sleep_until(at).await;
        }
    }
}

async fn write_all<W: AsyncWrite + Unpin>(
    w: &mut W,
    buf: &[u8],
    timeout: std::time::Duration,
) -> Result<(), String> {
    timed(timeout, async {
        w.write_all(buf).await?;
        w.flush().await
    })
    .await
}

/// A write (and flush) bounded by `timeout`, its failure in words an operator can act on.
async fn timed(
    timeout: std::time::Duration,
    write: impl std::future::Future<Output = std::io::Result<()>>,
) -> Result<(), String> {
    match tokio::time::timeout(timeout, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(describe_write_error(&e)),
        Err(_) => Err(format!(
            "write made no progress for {}",
            humantime::format_duration(timeout)
        )),
    }
}

/// Writes `records` in order with gathering writes (`writev`, up to 1,024 records a call),
/// then flushes.
async fn write_all_records<W: AsyncWrite + Unpin>(
    w: &mut W,
    records: &[Bytes],
    timeout: std::time::Duration,
) -> Result<(), String> {
    let mut slices: Vec<std::io::IoSlice<'_>> = records
        .iter()
        .filter(|r| !r.is_empty())
        .map(|r| std::io::IoSlice::new(r))
        .collect();
    timed(timeout, async {
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = w.write_vectored(rest).await?;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::WriteZero));
            }
            std::io::IoSlice::advance_slices(&mut rest, n);
        }
        w.flush().await
    })
    .await
}

/// A write error on an established connection, in words an operator can act on: the kernel
/// reports a peer that stopped acknowledging (`TCP_USER_TIMEOUT`) as `ETIMEDOUT`, which reads
/// like a failed connect.
fn describe_write_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::TimedOut => format!(
            "the receiver stopped acknowledging data on an open connection ({e}): is it overloaded or not reading?"
        ),
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe => {
            format!("the receiver closed the connection ({e})")
        }
        _ => e.to_string(),
    }
}

/// Bytes written to `tcp` that its peer has not acknowledged yet (Linux `TIOCOUTQ`).
#[allow(unsafe_code)] // the one libc call below; see its SAFETY comment
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
                "the receiver presents a CA certificate as its own that tls.ca_file does not hold; put that very certificate (a self-signed one) in tls.ca_file, or give the receiver a server certificate signed by the CA in it".to_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_stall_timeout_is_not_worded_as_a_failed_connect() {
        let e = std::io::Error::from_raw_os_error(libc::ETIMEDOUT);
        let text = describe_write_error(&e);
        assert!(text.contains("stopped acknowledging"), "{text}");
        assert!(text.contains("os error 110"), "{text}");
    }
    use crate::syslog::{format_message, frame};
    use crate::transform::fixtures;

    fn sink(rfc: Rfc, protocol: Protocol, framing: Framing, max_datagram: usize) -> SyslogSink {
        SyslogSink::new(SyslogConfig {
            address: "127.0.0.1:514".to_owned(),
            protocol,
            framing,
            rfc,
            app_name: "docspace-siem".to_owned(),
            facility: 10,
            hostname: Some("collector.example.com".to_owned()),
            max_datagram,
            max_events_per_second: 0.0,
            write_timeout: std::time::Duration::from_secs(30),
            connect_timeout: std::time::Duration::from_secs(10),
            tls: SyslogTls::default(),
        })
        .expect("a plain TCP or UDP sink builds")
    }

    /// What `record` must write: the message as `format_message` composes it, cut by
    /// `truncate_for_datagram` on UDP or framed by `frame` on TCP; and whether it was cut.
    fn reference(sink: &SyslogSink, format: Format, ev: &Event) -> (Vec<u8>, bool) {
        let mut msg = Vec::new();
        transform::encode(format, ev, &mut msg);
        let id = ev.id.to_string();
        let action = ev.action_id.to_string();
        let mut sd = vec![
            ("portal", ev.portal.name.as_str()),
            ("id", id.as_str()),
            ("action", action.as_str()),
        ];
        let severity = severity_for(ev.semantics().severity);
        let msgid = ev.stream.as_str();
        let header = |sd: &[(&str, &str)]| {
            let mut out = BytesMut::new();
            format_message(&mut out, &sink.header, severity, ev.time, msgid, sd, b"");
            if sink.header.rfc == Rfc::Rfc5424 {
                out.put_u8(b' ');
            }
            out
        };
        let mut out = header(&sd);
        if sink.cfg.protocol == Protocol::Udp {
            let max = sink.cfg.max_datagram;
            if out.len() + msg.len() <= max {
                out.extend_from_slice(&msg);
                return (out.to_vec(), false);
            }
            sd.push(SD_TRUNCATED);
            let mut out = header(&sd);
            fit_datagram(format, ev, max - out.len(), &mut msg);
            out.extend_from_slice(&msg);
            return (out.to_vec(), true);
        }
        out.extend_from_slice(&msg);
        let mut framed = BytesMut::new();
        frame(sink.cfg.framing, &out, &mut framed);
        (framed.to_vec(), false)
    }

    #[test]
    fn records_are_the_composed_message_framed_or_cut() {
        let mut events = fixtures::all();
        // Long and hostile: records with octet counts of 3, 4 and 5 digits follow each other,
        // so the message moves both ways behind its count; CR and LF for newline framing.
        let mut long = events[2].clone();
        long = long.with_row_field(
            "login",
            serde_json::Value::String("é\r\n=|\"]\\".repeat(2000)),
        );
        long.portal = std::sync::Arc::new(crate::event::PortalInfo::new(
            "a\"]\\b",
            "https://docspace.example.com",
        ));
        events.insert(3, long);
        let mut old = events[0].clone();
        old.time = time::macros::datetime!(-0001-03-01 00:00:00.5 UTC);
        events.push(old);
        for (rfc, protocol, framing, max) in [
            (Rfc::Rfc5424, Protocol::Tcp, Framing::OctetCounting, 2048),
            (Rfc::Rfc5424, Protocol::Tcp, Framing::Newline, 2048),
            (Rfc::Rfc3164, Protocol::Tcp, Framing::OctetCounting, 2048),
            (Rfc::Rfc5424, Protocol::Udp, Framing::OctetCounting, 480),
            (Rfc::Rfc3164, Protocol::Udp, Framing::OctetCounting, 1024),
        ] {
            let mut sink = sink(rfc, protocol, framing, max);
            let stats = SinkStats::default();
            let mut cuts = 0;
            for format in [
                Format::Cef,
                Format::Leef,
                Format::Ecs,
                Format::Json,
                Format::Ocsf,
            ] {
                for ev in &events {
                    let (want, cut) = reference(&sink, format, ev);
                    cuts += u64::from(cut);
                    let got = sink.record(format, ev, &stats);
                    assert!(
                        got[..] == want[..],
                        "{rfc:?} {protocol:?} {framing:?} {format:?} event {}:\n got {:?}\nwant {:?}",
                        ev.id,
                        String::from_utf8_lossy(&got),
                        String::from_utf8_lossy(&want)
                    );
                }
            }
            assert!(
                protocol != Protocol::Udp || cuts > 0,
                "{rfc:?}: nothing was cut"
            );
            assert_eq!(stats.truncated.load(Ordering::Relaxed), cuts);
        }
    }

    /// See: issue 17. A 2,150-row catch-up over UDP lost 57 % of the rows in a stock rsyslog on
    /// the same host: the agent sent them back to back. Paced, the schedule holds the rate
    /// exactly, never lets more than `rate × BURST` go back to back, and sleeps in steps of
    /// about `BURST / 2` (a timer per group, not per message, and never a busy loop).
    #[test]
    fn the_pacer_holds_the_rate_and_bounds_every_burst() {
        for rate in [50.0, 2000.0, 10_000.0] {
            let mut p = Pacer::new(rate).expect("a rate");
            let t0 = Instant::now();
            let mut now = t0;
            let mut sent = Vec::new();
            let mut sleeps = 0;
            let n = 2150;
            for _ in 0..n {
                if let Some(at) = p.book(1, now) {
                    assert!(at > now, "a wait is in the future");
                    now = at;
                    sleeps += 1;
                }
                sent.push(now - t0);
            }
            let burst = (rate * Pacer::BURST.as_secs_f64()) as usize;
            let took = sent[n - 1].as_secs_f64();
            let want = (n - burst) as f64 / rate;
            assert!(
                (took - want).abs() <= 2.0 / rate + Pacer::BURST.as_secs_f64(),
                "{rate}/s: {n} messages took {took} s, want about {want} s"
            );
            // Any window of one BURST holds at most one burst plus what the rate adds.
            for (i, t) in sent.iter().enumerate() {
                let within = sent[i..]
                    .iter()
                    .take_while(|u| **u - *t < Pacer::BURST)
                    .count();
                assert!(
                    within <= 2 * burst + 2,
                    "{rate}/s: {within} within {:?}",
                    Pacer::BURST
                );
            }
            let groups = took / (Pacer::BURST.as_secs_f64() / 2.0);
            assert!(
                (sleeps as f64) <= groups + 2.0 && (sleeps as f64) <= n as f64,
                "{rate}/s: {sleeps} sleeps for {took} s"
            );
        }
        assert!(Pacer::new(0.0).is_none(), "0 is no limit");
        // An idle spell earns no credit beyond one burst.
        let mut p = Pacer::new(1000.0).expect("a rate");
        let t0 = Instant::now();
        assert!(p.book(1, t0).is_none());
        let later = t0 + Duration::from_secs(60);
        let free = (0..100).take_while(|_| p.book(1, later).is_none()).count();
        assert_eq!(free, 20, "one BURST (20 ms) of messages at 1,000/s");
        // TCP and TLS write a group per wake-up.
        assert_eq!(Pacer::new(2000.0).expect("a rate").group(), 20);
        assert_eq!(Pacer::new(10.0).expect("a rate").group(), 1);
    }

    /// The UDP sink books every datagram with its pacer, and every one arrives, in order.
    /// (The pacer's timing is the test above; on paused time the schedule is exact here.)
    #[tokio::test(start_paused = true)]
    async fn a_paced_udp_sink_books_every_datagram() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let _ = socket2::SockRef::from(&rx).set_recv_buffer_size(4 * 1024 * 1024);
        let mut sink = sink(Rfc::Rfc5424, Protocol::Udp, Framing::OctetCounting, 2048);
        sink.cfg.address = rx.local_addr().expect("addr").to_string();
        sink.pacer = Pacer::new(10_000.0);
        let records: Vec<Bytes> = (0..500).map(|i| Bytes::from(format!("m{i}"))).collect();
        let start = Instant::now();
        sink.send(&records).await.expect("sent");
        let due = sink.pacer.as_ref().and_then(|p| p.due).expect("booked");
        // 500 messages at 10,000/s: the schedule ran 50 ms from the start.
        let booked = due.duration_since(start);
        assert_eq!(booked, Duration::from_millis(50));
        rx.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 64];
        let got: Vec<String> = std::iter::from_fn(|| {
            rx.recv(&mut buf)
                .ok()
                .map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
        })
        .collect();
        let want: Vec<String> = (0..500).map(|i| format!("m{i}")).collect();
        assert_eq!(got, want);
    }
}
