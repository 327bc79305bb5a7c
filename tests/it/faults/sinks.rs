//! Faults 4–5 (reliability.md §5 rows 7–11): slow sinks, receivers that never read or reset, HTTP statuses.

use super::*;

// 4. Slow sink
// ---------------------------------------------------------------------------------------------

/// reliability.md §5 row 7. A webhook that takes 200 ms per POST of 50 events while a 20,000
/// event backlog waits: memory stays flat (bounded queues stop the poller), nothing is lost
/// once the sink is fast again. The poller holds one window of at most `max_window_events`
/// (here 2,000, so that several windows pass during the slow phase) plus the sink queue
/// (`SINK_QUEUE` × 500 events): that, not the backlog, bounds memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_sink_keeps_memory_flat_and_loses_nothing() {
    let hook = HttpCollector::start().await;
    *hook.delay.lock().expect("lock") = Duration::from_millis(200);
    let (sim, server) = portal(SimZone::Utc).await;
    sim.generate(
        SimStream::Audit,
        20_000,
        ago(time::Duration::hours(30)),
        ago(time::Duration::minutes(3)),
    );
    let want = audit_ids(&sim);
    let w = Workdir::new();
    let cfg = config(
        &w,
        "shutdown_timeout = \"5s\"",
        &(portal_cfg(
            "main",
            &server.url,
            &[
                ("streams", "[\"audit\"]"),
                ("start_from", "\"2d\""),
                ("max_window_events", "2000"),
            ],
        ) + &hook_sink(
            "hook",
            &hook.url,
            "json",
            "batch = { max_events = 50, timeout = \"10ms\" }",
        )),
    );
    let mut a = Agent::start(&cfg, w.path(), "a");
    let pid = a.pid();
    let t0 = Instant::now();
    let mut early_max = 0;
    let mut late_max = 0;
    let mut fds = (usize::MAX, 0);
    while t0.elapsed() < Duration::from_secs(16) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let rss = status_kib(pid, "VmRSS");
        let n = open_fds(pid);
        fds = (fds.0.min(n), fds.1.max(n));
        if t0.elapsed() < Duration::from_secs(2) {
            continue;
        } else if t0.elapsed() < Duration::from_secs(8) {
            early_max = early_max.max(rss);
        } else {
            late_max = late_max.max(rss);
        }
    }
    let slow_delivered = hook.events().len();
    *hook.delay.lock().expect("lock") = Duration::ZERO;
    let fast_at = Instant::now();
    eventually(
        Duration::from_secs(120),
        "the backlog after the slow phase",
        || delivered_all(&hook, &want),
    )
    .await;
    let drain = fast_at.elapsed();
    let hwm = status_kib(pid, "VmHWM");
    stop(&mut a);
    let t = tally(&want, &received(&hook));
    figure(
        "slow-sink",
        t,
        &format!(
            "backlog=20000 sink=200ms/50ev throughput_while_slow_ev_s={:.0} max_window_events=2000 rss_max_2_8s_kib={early_max} rss_max_8_16s_kib={late_max} peak_rss_kib={hwm} open_fds_min={} open_fds_max={} drain_after_s={:.1}",
            slow_delivered as f64 / 16.0,
            fds.0,
            fds.1,
            drain.as_secs_f64()
        ),
    );
    assert_eq!(t.lost, 0);
    assert_eq!(t.dups, 0, "a slow sink causes no duplicates");
    // Buffering the backlog would cost tens of MiB (20,000 events of a few KiB each); the
    // 16 MiB tolerance is allocator noise between windows, not growth with the stall.
    assert!(
        late_max <= early_max + 16 * 1024,
        "memory grew while the sink was slow: {early_max} KiB then {late_max} KiB"
    );
    assert!(hwm < 256 * 1024, "peak RSS {hwm} KiB");
}

// ---------------------------------------------------------------------------------------------
// Raw TCP receivers: accept-and-never-read, reset mid-stream
// ---------------------------------------------------------------------------------------------

/// Takes one octet-counted frame off the front of `buf`.
fn take_frame(buf: &mut Vec<u8>) -> Option<String> {
    let sp = buf.iter().position(|b| *b == b' ')?;
    let len: usize = std::str::from_utf8(&buf[..sp]).ok()?.parse().ok()?;
    if buf.len() < sp + 1 + len {
        return None;
    }
    let msg = String::from_utf8_lossy(&buf[sp + 1..sp + 1 + len]).into_owned();
    buf.drain(..sp + 1 + len);
    Some(msg)
}

/// The DocSpace id in a syslog message's structured data (`[docspace@32473 portal=… id="N"`).
fn syslog_id(msg: &str) -> Option<i64> {
    let i = msg.find(" id=\"")? + 5;
    let end = msg[i..].find('"')? + i;
    msg[i..end].parse().ok()
}

/// Reads octet-counted frames from `sock` until EOF or an error; `limit` stops reading after
/// that many bytes (and returns).
fn read_frames(sock: &mut std::net::TcpStream, frames: &Mutex<Vec<String>>, limit: Option<usize>) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 65536];
    let mut total = 0usize;
    loop {
        let want = match limit {
            Some(l) if total >= l => return,
            Some(l) => chunk.len().min(l - total),
            None => chunk.len(),
        };
        match sock.read(&mut chunk[..want]) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                total += n;
                buf.extend_from_slice(&chunk[..n]);
                while let Some(m) = take_frame(&mut buf) {
                    frames.lock().expect("lock").push(m);
                }
            }
        }
    }
}

/// A syslog TCP receiver on a plain std listener: every accepted connection is held without
/// being read until `reading` is set (an accept-and-never-read sink), then read to EOF.
struct HoldingReceiver {
    addr: SocketAddr,
    frames: Arc<Mutex<Vec<String>>>,
    reading: Arc<AtomicBool>,
    accepts: Arc<Mutex<Vec<Instant>>>,
}

impl HoldingReceiver {
    fn start() -> HoldingReceiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let r = HoldingReceiver {
            addr: listener.local_addr().expect("addr"),
            frames: Arc::default(),
            reading: Arc::new(AtomicBool::new(false)),
            accepts: Arc::default(),
        };
        let (frames, reading, accepts) = (r.frames.clone(), r.reading.clone(), r.accepts.clone());
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(mut sock) = sock else { return };
                accepts.lock().expect("lock").push(Instant::now());
                let (frames, reading) = (frames.clone(), reading.clone());
                std::thread::spawn(move || {
                    while !reading.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    read_frames(&mut sock, &frames, None);
                });
            }
        });
        r
    }

    fn ids(&self) -> Vec<i64> {
        self.frames
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|m| syslog_id(m))
            .collect()
    }
}

/// Send and receive queues (bytes) of the loopback TCP connections on `port`, from
/// /proc/net/tcp: (the receiver's unread bytes, the sender's unacknowledged bytes).
fn tcp_queues(port: u16) -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let mut rx = 0;
    let mut tx = 0;
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 || f[3] != "01" {
            continue; // only ESTABLISHED
        }
        let port_of = |a: &str| {
            a.rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
        };
        let Some((txq, rxq)) = f[4].split_once(':').map(|(t, r)| {
            (
                u64::from_str_radix(t, 16).unwrap_or(0),
                u64::from_str_radix(r, 16).unwrap_or(0),
            )
        }) else {
            continue;
        };
        if port_of(f[1]) == Some(port) {
            rx += rxq; // the receiver's side of the connection
        } else if port_of(f[2]) == Some(port) {
            tx += txq; // the agent's side
        }
    }
    (rx, tx)
}

fn syslog_sink(addr: SocketAddr, extra: &str) -> String {
    format!(
        "[sinks.siem]\ntype = \"syslog\"\nformat = \"json\"\nprotocol = \"tcp\"\naddress = \"{addr}\"\n{extra}\n"
    )
}

/// reliability.md §5 row 8. A receiver that accepts and never reads, with `write_timeout =
/// "2s"`: the agent's writes stall, each stall drops the connection after the timeout and the
/// batch is re-sent on a new one (with backoff); memory stays bounded; once the receiver reads
/// again, every event arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_accepts_and_never_reads_costs_no_events_and_bounded_memory() {
    let rx = HoldingReceiver::start();
    let (sim, server) = portal(SimZone::Utc).await;
    sim.generate(
        SimStream::Audit,
        20_000,
        ago(time::Duration::hours(30)),
        ago(time::Duration::minutes(3)),
    );
    let want = audit_ids(&sim);
    let w = Workdir::new();
    let cfg = config(
        &w,
        "shutdown_timeout = \"5s\"",
        &(portal_cfg(
            "main",
            &server.url,
            &[("streams", "[\"audit\"]"), ("start_from", "\"2d\"")],
        ) + &syslog_sink(rx.addr, "write_timeout = \"2s\"")),
    );
    let mut a = Agent::start(&cfg, w.path(), "a");
    let pid = a.pid();
    let t0 = Instant::now();
    let mut rss_max = 0;
    let mut inflight_max = 0;
    while t0.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        rss_max = rss_max.max(status_kib(pid, "VmRSS"));
        let (r, t) = tcp_queues(rx.addr.port());
        inflight_max = inflight_max.max(r + t);
    }
    let accepts: Vec<Instant> = rx.accepts.lock().expect("lock").clone();
    let err = a.stderr_text();
    // The stall is named by whichever deadline fires first: the write deadline ("write made no
    // progress for 2s"), the wait for the receiver's TCP to acknowledge the batch ("the
    // receiver acknowledged nothing of the last N bytes"), or the kernel's TCP_USER_TIMEOUT
    // (set to write_timeout: "Connection timed out (os error 110)").
    let stall_text = if err.contains("write made no progress for 2s") {
        "write-deadline"
    } else if err.contains("acknowledged nothing of the last") {
        "unacknowledged-send-queue"
    } else if err.contains("Connection timed out (os error 110)") {
        "tcp-user-timeout"
    } else {
        "none"
    };
    assert!(
        stall_text != "none" && err.contains("reconnecting and re-sending the batch"),
        "the stall is named:\n{}",
        tail(&err, 2000)
    );
    assert!(accepts.len() >= 2, "the agent reconnected after the stall");
    let gaps: Vec<f64> = accepts
        .windows(2)
        .map(|p| (p[1] - p[0]).as_secs_f64())
        .collect();
    // Each reconnect follows a stall of at least write_timeout.
    assert!(gaps.iter().all(|g| *g >= 1.9), "{gaps:?}");

    rx.reading.store(true, Ordering::Relaxed);
    let read_at = Instant::now();
    let complete = try_until(Duration::from_secs(45), || {
        let got: BTreeSet<i64> = rx.ids().into_iter().collect();
        want.is_subset(&got)
    })
    .await;
    let recovery = read_at.elapsed();
    let hwm = status_kib(pid, "VmHWM");
    stop(&mut a);
    let t = tally(&want, &rx.ids());
    figure(
        "sink-accepts-never-reads",
        t,
        &format!(
            "write_timeout_s=2 stall_detected_by={stall_text} connections_while_stalled={} reconnect_gap_s_min={:.1} inflight_bytes_max={inflight_max} rss_max_while_stalled_kib={rss_max} peak_rss_kib={hwm} recovery_s={:.1}",
            accepts.len(),
            gaps.iter().copied().fold(f64::INFINITY, f64::min),
            recovery.as_secs_f64()
        ),
    );
    if !complete {
        let got: BTreeSet<i64> = rx.ids().into_iter().collect();
        let missing: Vec<i64> = want.difference(&got).copied().collect();
        eprintln!(
            "never-read: {} missing, first {:?} last {:?}; stderr:\n{}",
            missing.len(),
            missing.first(),
            missing.last(),
            tail(&a.stderr_text(), 3000)
        );
    }
    assert_eq!(t.lost, 0);
    assert_eq!(t.extra, 0);
    assert!(rss_max < 256 * 1024, "RSS {rss_max} KiB while stalled");
}

/// What the resetting receiver saw when it reset the first connection.
#[derive(Debug, Clone, Copy, Default)]
struct ResetInfo {
    read_bytes: usize,
    rx_unread: u64,
    tx_unacked: u64,
}

/// reliability.md §5 row 9. The receiver reads 256 KiB of the first connection, stops reading
/// until the kernel buffers are full, then resets it (SO_LINGER 0 → RST). Plain TCP syslog has
/// no application acknowledgement, but the agent acknowledges a batch only once the receiver's
/// TCP has acknowledged all of it (its send queue, `TIOCOUTQ`, is empty). So what can be lost
/// is the receiver's own unread buffer at the reset, read from /proc/net/tcp just before it:
/// the bound is those bytes divided by the smallest frame seen. The agent's unacknowledged send
/// queue is reported too; none of it may be lost. The loss must be one contiguous run, and
/// every event after it (including 200 created after the reset) must arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_reset_mid_stream_loses_at_most_the_kernel_buffer_window() {
    const READ_FIRST: usize = 256 * 1024;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let frames: Arc<Mutex<Vec<String>>> = Arc::default();
    let info: Arc<Mutex<Option<ResetInfo>>> = Arc::default();
    {
        let (frames, info) = (frames.clone(), info.clone());
        std::thread::spawn(move || {
            let mut first = true;
            for sock in listener.incoming() {
                let Ok(mut sock) = sock else { return };
                if first {
                    first = false;
                    read_frames(&mut sock, &frames, Some(READ_FIRST));
                    // Let the buffers fill (the agent blocks in write), then reset.
                    let mut last = (0, 0);
                    for _ in 0..40 {
                        std::thread::sleep(Duration::from_millis(100));
                        let q = tcp_queues(addr.port());
                        if q == last && q.0 > 0 {
                            break;
                        }
                        last = q;
                    }
                    let (rx_unread, tx_unacked) = tcp_queues(addr.port());
                    socket2::SockRef::from(&sock)
                        .set_linger(Some(Duration::ZERO))
                        .expect("SO_LINGER 0");
                    *info.lock().expect("lock") = Some(ResetInfo {
                        read_bytes: READ_FIRST,
                        rx_unread,
                        tx_unacked,
                    });
                    drop(sock);
                } else {
                    let frames = frames.clone();
                    std::thread::spawn(move || read_frames(&mut sock, &frames, None));
                }
            }
        });
    }
    let (sim, server) = portal(SimZone::Utc).await;
    sim.generate(
        SimStream::Audit,
        20_000,
        ago(time::Duration::hours(30)),
        ago(time::Duration::minutes(3)),
    );
    let w = Workdir::new();
    let cfg = config(
        &w,
        "shutdown_timeout = \"5s\"",
        &(portal_cfg(
            "main",
            &server.url,
            &[("streams", "[\"audit\"]"), ("start_from", "\"2d\"")],
        ) + &syslog_sink(addr, "write_timeout = \"10s\"")),
    );
    let mut a = Agent::start(&cfg, w.path(), "a");
    eventually(Duration::from_secs(60), "the reset", || {
        info.lock().expect("lock").is_some()
    })
    .await;
    let reset_at = Instant::now();
    // Events created after the reset must all arrive.
    let t = OffsetDateTime::now_utc();
    sim.generate(SimStream::Audit, 200, t + secs(1), t + secs(3));
    let after_reset: BTreeSet<i64> = audit_ids(&sim).into_iter().rev().take(200).collect();
    let ids = || -> Vec<i64> {
        frames
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|m| syslog_id(m))
            .collect()
    };
    eventually(
        Duration::from_secs(120),
        "the events after the reset",
        || {
            let got: BTreeSet<i64> = ids().into_iter().collect();
            after_reset.is_subset(&got)
        },
    )
    .await;
    let recovery = reset_at.elapsed();
    settle(&sim, &a).await;
    stop(&mut a);
    let info = info.lock().expect("lock").expect("reset info");
    let want = audit_ids(&sim);
    let got = ids();
    let t = tally(&want, &got);
    let min_frame = frames
        .lock()
        .expect("lock")
        .iter()
        .map(String::len)
        .min()
        .unwrap_or(1)
        .max(1);
    let window_bytes = info.rx_unread;
    let window_events = (window_bytes as usize).div_ceil(min_frame);
    // Emit order is (date, id); the simulator's ids ascend with date within this corpus.
    let order: Vec<i64> = want.iter().copied().collect();
    let got_set: BTreeSet<i64> = got.iter().copied().collect();
    let missing: Vec<usize> = order
        .iter()
        .enumerate()
        .filter(|(_, id)| !got_set.contains(id))
        .map(|(i, _)| i)
        .collect();
    let contiguous = missing.windows(2).all(|p| p[1] == p[0] + 1);
    figure(
        "receiver-reset-mid-stream",
        t,
        &format!(
            "transport=tcp read_before_reset_bytes={} rx_unread_bytes={} tx_unacked_bytes={} bound_events={window_events} lost_contiguous={contiguous} recovery_s={:.1}",
            info.read_bytes,
            info.rx_unread,
            info.tx_unacked,
            recovery.as_secs_f64()
        ),
    );
    assert!(
        err_mentions_reconnect(&a),
        "the reset is logged:\n{}",
        tail(&a.stderr_text(), 2000)
    );
    assert!(
        t.lost <= window_events,
        "lost {} events, more than the receiver's unread buffer held ({window_bytes} bytes ≈ {window_events} events; the agent's own send queue held {} bytes)",
        t.lost,
        info.tx_unacked
    );
    assert!(contiguous, "the loss is one run of what the buffers held");
    assert!(after_reset.iter().all(|id| got_set.contains(id)));
    assert!(t.dups <= 2 * BATCH_EVENTS, "{} duplicates", t.dups);
    assert_eq!(t.extra, 0);
}

fn err_mentions_reconnect(a: &Agent) -> bool {
    let err = a.stderr_text();
    err.contains("reconnecting and re-sending the batch") || err.contains("reset")
}

// ---------------------------------------------------------------------------------------------
// 5. HTTP sink statuses: the request rate while failing
// ---------------------------------------------------------------------------------------------

/// A webhook receiver whose answer is switched by the test; it logs every request (time,
/// status, events in the body) and keeps the ids of the 2xx ones.
#[derive(Clone)]
struct SwitchHook {
    url: String,
    answer: Arc<Mutex<(u16, Option<u64>)>>,
    once: Arc<Mutex<Vec<u16>>>,
    log: Arc<Mutex<Vec<(Instant, u16, usize)>>>,
    ids: Arc<Mutex<Vec<i64>>>,
}

impl SwitchHook {
    async fn start() -> SwitchHook {
        use axum::extract::State;
        use axum::http::StatusCode;
        use axum::response::IntoResponse;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let h = SwitchHook {
            url: format!("http://{}/ingest", listener.local_addr().expect("addr")),
            answer: Arc::new(Mutex::new((200, None))),
            once: Arc::default(),
            log: Arc::default(),
            ids: Arc::default(),
        };
        async fn handle(
            State(h): State<SwitchHook>,
            body: axum::body::Bytes,
        ) -> axum::response::Response {
            let v: Value = serde_json::from_slice(&body).expect("JSON array");
            let events = v.as_array().cloned().unwrap_or_default();
            let (status, retry_after) = {
                let mut once = h.once.lock().expect("lock");
                if once.is_empty() {
                    *h.answer.lock().expect("lock")
                } else {
                    (once.remove(0), None)
                }
            };
            h.log
                .lock()
                .expect("lock")
                .push((Instant::now(), status, events.len()));
            if status == 200 {
                h.ids.lock().expect("lock").extend(ids_of(&events));
            }
            let mut resp = StatusCode::from_u16(status)
                .expect("status")
                .into_response();
            if let Some(s) = retry_after {
                resp.headers_mut()
                    .insert("retry-after", s.to_string().parse().expect("hv"));
            }
            resp
        }
        let app = axum::Router::new()
            .route("/ingest", axum::routing::post(handle))
            .with_state(h.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        h
    }

    fn set(&self, status: u16, retry_after: Option<u64>) {
        *self.answer.lock().expect("lock") = (status, retry_after);
    }

    fn log(&self) -> Vec<(Instant, u16, usize)> {
        self.log.lock().expect("lock").clone()
    }

    fn ids(&self) -> Vec<i64> {
        self.ids.lock().expect("lock").clone()
    }
}

/// reliability.md §5 row 11, the part the other modules do not measure: how often the agent
/// knocks while a webhook keeps failing. 429 + `Retry-After: 2` for 10 s (every retry waits
/// ≥ 2 s), then 503 for 16 s (backoff: ≤ 1 request/s once it has grown), then a single 413
/// (the batch is split in two halves) and 200s. Retries of 500/503/429 and the 400 dead letter
/// are covered by delivery.rs and http_sinks.rs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_http_sink_is_retried_at_a_bounded_rate() {
    let hook = SwitchHook::start().await;
    hook.set(429, Some(2));
    let (sim, server) = portal(SimZone::Utc).await;
    sim.generate(
        SimStream::Login,
        300,
        ago(time::Duration::hours(5)),
        ago(time::Duration::hours(4)),
    );
    let want = login_ids(&sim);
    let w = Workdir::new();
    let cfg = config(
        &w,
        "shutdown_timeout = \"5s\"",
        &(portal_cfg("main", &server.url, &[("streams", "[\"login\"]")])
            + &hook_sink(
                "hook",
                &hook.url,
                "json",
                "batch = { max_events = 50, timeout = \"10ms\" }",
            )),
    );
    let mut a = Agent::start(&cfg, w.path(), "a");
    eventually(Duration::from_secs(30), "the first request", || {
        !hook.log().is_empty()
    })
    .await;
    let t429 = hook.log()[0].0;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let l429: Vec<Instant> = hook
        .log()
        .iter()
        .filter(|(_, s, _)| *s == 429)
        .map(|(t, _, _)| *t)
        .collect();
    let gaps429: Vec<f64> = l429
        .windows(2)
        .map(|p| (p[1] - p[0]).as_secs_f64())
        .collect();
    let rate429 = l429.len() as f64 / (Instant::now() - t429).as_secs_f64();

    hook.set(503, None);
    let t503 = Instant::now();
    tokio::time::sleep(Duration::from_secs(16)).await;
    let l503: Vec<Instant> = hook
        .log()
        .iter()
        .filter(|(t, s, _)| *s == 503 && *t >= t503)
        .map(|(t, _, _)| *t)
        .collect();
    let steady_from = t503 + Duration::from_secs(6);
    let steady = l503.iter().filter(|t| **t >= steady_from).count();

    hook.once.lock().expect("lock").push(413);
    hook.set(200, None);
    let ok_at = Instant::now();
    eventually(
        Duration::from_secs(90),
        "delivery after the failures",
        || {
            let got: BTreeSet<i64> = hook.ids().into_iter().collect();
            want.is_subset(&got)
        },
    )
    .await;
    let log = hook.log();
    let first_ok = log
        .iter()
        .find(|(t, s, _)| *s == 200 && *t >= ok_at)
        .map(|(t, _, _)| *t - ok_at)
        .expect("a 200");
    stop(&mut a);
    let i413 = log.iter().position(|(_, s, _)| *s == 413).expect("a 413");
    let n413 = log[i413].2;
    let (h1, h2) = (log[i413 + 1].2, log[i413 + 2].2);
    let t = tally(&want, &hook.ids());
    figure(
        "http-sink-statuses",
        t,
        &format!(
            "r429_retry_after_2s_min_gap_s={:.2} r429_rate_req_s={rate429:.2} r503_requests_16s={} r503_steady_rate_req_s={:.2} after_413_split={n413}->{h1}+{h2} recovery_s={:.1}",
            gaps429.iter().copied().fold(f64::INFINITY, f64::min),
            l503.len(),
            steady as f64 / 10.0,
            first_ok.as_secs_f64()
        ),
    );
    assert!(
        gaps429.iter().all(|g| *g >= 1.95),
        "Retry-After: 2 honoured: {gaps429:?}"
    );
    assert!(
        steady <= 10,
        "{steady} requests in the last 10 s of a 503 outage (≤ 1/s expected)"
    );
    assert_eq!(
        (h1 + h2, h1.abs_diff(h2) <= 1),
        (n413, true),
        "413 splits the batch in two"
    );
    assert_eq!(t.lost, 0);
    assert_eq!(
        t.dups, 0,
        "a refused request delivers nothing, so it duplicates nothing"
    );
    assert!(!w.state().join("dead-letter/hook.ndjson").exists());
}

// ---------------------------------------------------------------------------------------------
