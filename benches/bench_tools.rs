//! Not a benchmark: the small peers that `benches/pipeline.sh` runs beside the agent, in Rust
//! so that they are never the bottleneck (a Python counter tops out far below 250k frames/s).
//!
//! ```text
//! bench-tools count-tcp  EXPECT [octet|newline]   syslog over TCP: counts RFC 6587 frames
//! bench-tools count-udp  EXPECT                   syslog over UDP: counts datagrams
//! bench-tools count-http EXPECT                   webhook: counts the elements of POSTed JSON arrays
//! bench-tools fetch URL KEY STREAM CONNS [SAVE]   the baseline: fetches every page of a stream
//! ```
//!
//! Each counter binds 127.0.0.1:0 and prints `port=P`, then `reached=N unix_ns=T` once N ≥
//! EXPECT, then keeps counting; after 3 s without input (once EXPECT is reached, or once
//! anything arrived on UDP, where datagrams may be lost) it prints `final=N bytes=B unix_ns=T`
//! with T the time of the last input, and exits. `fetch` pages `?count=100&startIndex=i` over
//! CONNS keep-alive connections until a short page, prints `pages= rows= bytes= secs=
//! cpu_secs=` (its own CPU), and with SAVE writes every row as one JSON line.
//!
//! `cargo bench` runs this with `--bench` and no command: it then only says what it is.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Counts {
    events: AtomicU64,
    bytes: AtomicU64,
    last_ns: AtomicU64,
    any: AtomicBool,
}

impl Counts {
    fn add(&self, events: u64, bytes: u64) {
        self.events.fetch_add(events, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.last_ns.store(unix_ns(), Ordering::Relaxed);
        self.any.store(true, Ordering::Relaxed);
    }
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = args.first().map(String::as_str).unwrap_or("");
    let arg = |i: usize| args.get(i).map(String::as_str);
    let expect = || -> u64 { arg(1).and_then(|s| s.parse().ok()).expect("EXPECT") };
    match cmd {
        "count-tcp" => {
            let newline = arg(2) == Some("newline");
            serve_counter(expect(), false, move |counts, listener| {
                for conn in listener.incoming().flatten() {
                    let counts = counts.clone();
                    std::thread::spawn(move || count_tcp(conn, newline, &counts));
                }
            })
        }
        "count-http" => serve_counter(expect(), false, |counts, listener| {
            for conn in listener.incoming().flatten() {
                let counts = counts.clone();
                std::thread::spawn(move || {
                    let _ = count_http(conn, &counts);
                });
            }
        }),
        "count-udp" => count_udp(expect()),
        "fetch" => fetch(
            arg(1).expect("URL"),
            arg(2).expect("KEY"),
            arg(3).expect("STREAM"),
            arg(4).and_then(|s| s.parse().ok()).unwrap_or(4),
            arg(5),
        ),
        _ => {
            println!(
                "bench-tools: counting receivers and the page client of benches/pipeline.sh (not a benchmark)"
            );
        }
    }
}

/// Binds a TCP listener, runs `accept` on a thread, and reports progress until done.
fn serve_counter(
    expect: u64,
    udp_style: bool,
    accept: impl FnOnce(Arc<Counts>, TcpListener) + Send + 'static,
) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let counts = Arc::new(Counts {
        events: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        last_ns: AtomicU64::new(0),
        any: AtomicBool::new(false),
    });
    println!("port={port}");
    let c = counts.clone();
    std::thread::spawn(move || accept(c, listener));
    report(&counts, expect, udp_style);
}

/// Prints `reached` once, then `final` after 3 s of silence, and returns.
fn report(counts: &Counts, expect: u64, udp_style: bool) {
    let mut reached = false;
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let n = counts.events.load(Ordering::Relaxed);
        if !reached && n >= expect {
            reached = true;
            println!(
                "reached={n} unix_ns={}",
                counts.last_ns.load(Ordering::Relaxed)
            );
        }
        let quiet =
            unix_ns().saturating_sub(counts.last_ns.load(Ordering::Relaxed)) > 3_000_000_000;
        if quiet && (reached || (udp_style && counts.any.load(Ordering::Relaxed))) {
            println!(
                "final={n} bytes={} unix_ns={}",
                counts.bytes.load(Ordering::Relaxed),
                counts.last_ns.load(Ordering::Relaxed)
            );
            let _ = std::io::stdout().flush();
            std::process::exit(0);
        }
    }
}

/// RFC 6587 octet counting (`LEN SP MSG`) or newline framing, across reads.
fn count_tcp(mut conn: TcpStream, newline: bool, counts: &Counts) {
    let mut buf = vec![0u8; 1 << 20];
    // Octet counting state: digits of the length so far, or bytes of MSG still to skip.
    let mut len: usize = 0;
    let mut skip: usize = 0;
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut frames = 0u64;
        if newline {
            frames = buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        } else {
            let mut i = 0;
            while i < n {
                if skip > 0 {
                    let take = skip.min(n - i);
                    skip -= take;
                    i += take;
                    if skip == 0 {
                        frames += 1;
                    }
                    continue;
                }
                match buf[i] {
                    b'0'..=b'9' => len = len * 10 + usize::from(buf[i] - b'0'),
                    b' ' => {
                        skip = len;
                        len = 0;
                        if skip == 0 {
                            frames += 1;
                        }
                    }
                    other => {
                        eprintln!("count-tcp: bad framing byte {other:#x}");
                        return;
                    }
                }
                i += 1;
            }
        }
        counts.add(frames, n as u64);
    }
}

/// HTTP/1.1 keep-alive POSTs with Content-Length; counts top-level array elements.
fn count_http(conn: TcpStream, counts: &Counts) -> std::io::Result<()> {
    let mut out = conn.try_clone()?;
    let mut r = BufReader::with_capacity(1 << 20, conn);
    let mut line = String::new();
    let mut body = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let head_only = line.starts_with("HEAD ");
        let mut length = 0usize;
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        body.resize(length, 0);
        r.read_exact(&mut body)?;
        if !head_only {
            counts.add(array_elements(&body), length as u64);
        }
        out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")?;
    }
}

/// Elements of a top-level JSON array: commas at depth 1 outside strings, plus one.
fn array_elements(body: &[u8]) -> u64 {
    let (mut depth, mut in_str, mut esc) = (0u32, false, false);
    let (mut commas, mut any) = (0u64, false);
    for &b in body {
        if in_str {
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => {
                in_str = true;
                any |= depth == 1;
            }
            b'[' | b'{' => {
                any |= depth == 1;
                depth += 1;
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => commas += 1,
            b' ' | b'\n' | b'\r' | b'\t' => {}
            _ => any |= depth == 1,
        }
    }
    if any { commas + 1 } else { 0 }
}

fn count_udp(expect: u64) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let s2 = socket2::SockRef::from(&sock);
    let _ = s2.set_recv_buffer_size(64 << 20);
    let port = sock.local_addr().expect("addr").port();
    println!("port={port} rcvbuf={}", s2.recv_buffer_size().unwrap_or(0));
    let counts = Arc::new(Counts {
        events: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        last_ns: AtomicU64::new(0),
        any: AtomicBool::new(false),
    });
    let c = counts.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        loop {
            if let Ok(n) = sock.recv(&mut buf) {
                c.add(1, n as u64);
            }
        }
    });
    report(&counts, expect, true);
}

/// A page body kept for `fetch … SAVE`, by page number.
type SavedPage = (u64, Vec<u8>);

/// The baseline client: every page of `stream`, `conns` keep-alive connections at once.
fn fetch(url: &str, key: &str, stream: &str, conns: usize, save: Option<&str>) {
    let hostport = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let path = match stream {
        "login" => "/api/2.0/security/audit/login/filter",
        _ => "/api/2.0/security/audit/events/filter",
    };
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let pages = Arc::new(AtomicU64::new(0));
    let rows = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let saved: Arc<std::sync::Mutex<Vec<SavedPage>>> = Default::default();
    let started = Instant::now();
    let workers: Vec<_> = (0..conns.max(1))
        .map(|_| {
            let (hostport, key, path) = (hostport.clone(), key.to_owned(), path.to_owned());
            let (next, done, pages, rows, bytes, saved) = (
                next.clone(),
                done.clone(),
                pages.clone(),
                rows.clone(),
                bytes.clone(),
                saved.clone(),
            );
            let keep = save.is_some();
            std::thread::spawn(move || {
                let conn = TcpStream::connect(&hostport).expect("connect");
                let _ = conn.set_nodelay(true);
                let mut w = conn.try_clone().expect("clone");
                let mut r = BufReader::with_capacity(1 << 18, conn);
                let mut body = Vec::new();
                let mut line = String::new();
                while !done.load(Ordering::Relaxed) {
                    let page = next.fetch_add(1, Ordering::Relaxed);
                    let req = format!(
                        "GET {path}?count=100&startIndex={} HTTP/1.1\r\nHost: {hostport}\r\nAuthorization: Bearer {key}\r\nAccept: application/json\r\n\r\n",
                        page * 100
                    );
                    w.write_all(req.as_bytes()).expect("write");
                    let mut length = 0usize;
                    line.clear();
                    r.read_line(&mut line).expect("status");
                    assert!(line.contains(" 200 "), "page {page}: {line}");
                    loop {
                        line.clear();
                        r.read_line(&mut line).expect("header");
                        let l = line.trim_end();
                        if l.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = l.split_once(':')
                            && k.eq_ignore_ascii_case("content-length")
                        {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    body.resize(length, 0);
                    r.read_exact(&mut body).expect("body");
                    let n = envelope_count(&body);
                    pages.fetch_add(1, Ordering::Relaxed);
                    rows.fetch_add(n, Ordering::Relaxed);
                    bytes.fetch_add(length as u64, Ordering::Relaxed);
                    if keep {
                        saved.lock().expect("lock").push((page, body.clone()));
                    }
                    if n < 100 {
                        done.store(true, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "pages={} rows={} bytes={} secs={secs:.3} cpu_secs={:.3}",
        pages.load(Ordering::Relaxed),
        rows.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed),
        self_cpu_secs()
    );
    if let Some(file) = save {
        let mut pages = std::mem::take(&mut *saved.lock().expect("lock"));
        pages.sort_by_key(|(i, _)| *i);
        let mut out = std::io::BufWriter::new(std::fs::File::create(file).expect("create"));
        let mut all: Vec<serde_json::Value> = Vec::new();
        for (_, body) in pages {
            let v: serde_json::Value = serde_json::from_slice(&body).expect("json page");
            if let Some(rows) = v["response"].as_array() {
                all.extend(rows.iter().cloned());
            }
        }
        // Oldest first, as a log file grows.
        for row in all.iter().rev() {
            serde_json::to_writer(&mut out, row).expect("write");
            out.write_all(b"\n").expect("write");
        }
    }
}

/// `"count":N` of the envelope (searched from the end: it follows the rows).
fn envelope_count(body: &[u8]) -> u64 {
    let needle = b"\"count\":";
    let Some(at) = body.windows(needle.len()).rposition(|w| w == needle) else {
        return 0;
    };
    body[at + needle.len()..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u64, |n, b| n * 10 + u64::from(b - b'0'))
}

/// utime + stime of this process, from /proc/self/stat.
fn self_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}
