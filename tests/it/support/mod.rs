//! Test support: the agent binary as a child process, a simulated portal, loopback collectors
//! (octet-counted TCP syslog, UDP, HTTP), and the real third-party checkers in ../shared.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use docspace_siem::simulator::{SimConfig, SimServer, SimZone, Simulator};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// The API key every simulated portal accepts.
pub const KEY: &str = "sk-test-0123456789abcdef";

/// The agent binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_docspace-siem"))
}

/// `../shared` beside the checkout (CI has a copy there too).
pub fn shared() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    assert!(
        p.join("SPEC.md").is_file(),
        "../shared is missing beside the checkout ({})",
        p.display()
    );
    p
}

/// The DocSpace client of the agent for the simulated portal at `url`, with `key` (redirects
/// not followed, as the agent's own client).
pub fn docspace_client(url: &str, key: &str) -> docspace_siem::source::docspace::Client {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    docspace_siem::source::docspace::Client::new(
        http,
        url.parse().expect("url"),
        secrecy::SecretString::from(key.to_owned()),
        Arc::new(docspace_siem::event::PortalInfo::new("main", url)),
    )
}

/// A simulated portal on 127.0.0.1:0.
pub async fn portal(zone: SimZone) -> (Simulator, SimServer) {
    let sim = Simulator::new(SimConfig {
        api_key: KEY.to_owned(),
        zone,
        seed: 7,
    });
    let server = sim
        .serve("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("simulator binds");
    (sim, server)
}

/// A temporary directory with a config file and a state directory.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Workdir {
        Workdir {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Writes `config.toml`; `{state}` is replaced by the state directory.
    pub fn config(&self, toml: &str) -> PathBuf {
        let p = self.dir.path().join("config.toml");
        let body = toml.replace("{state}", &self.state().display().to_string());
        std::fs::write(&p, body).expect("write config");
        p
    }

    /// A portal table for a simulator URL (fast polling, small settle for tests).
    /// Tests insert rows dated behind a caught-up agent's watermark and expect them within
    /// seconds, so the full re-read of the overlap comes every 5 s (unless `extra` sets it).
    pub fn portal_toml(name: &str, url: &str, extra: &str) -> String {
        let every = if extra.contains("overlap_every") {
            ""
        } else {
            "overlap_every = \"5s\"\n"
        };
        format!(
            "[portals.{name}]\nurl = \"{url}\"\napi_key = \"{KEY}\"\npoll_interval = \"1s\"\nsettle = \"1s\"\noverlap = \"2m\"\n{every}error_retry = \"2s\"\nmax_requests_per_second = 200\n{extra}\n"
        )
    }
}

/// A running agent process; killed on drop.
pub struct Agent {
    pub child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Agent {
    /// Starts `docspace-siem run --config FILE`, output to files in `dir`.
    pub fn start(config: &Path, dir: &Path, tag: &str) -> Agent {
        let stdout = dir.join(format!("{tag}.stdout"));
        let stderr = dir.join(format!("{tag}.stderr"));
        let child = Command::new(bin())
            .args(["run", "--config"])
            .arg(config)
            .env("DOCSPACE_SIEM_LOG", "info")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("agent starts");
        Agent {
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for exit up to `limit`; returns the code (None when killed by a signal).
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let mut code = None;
        let (child, stderr) = (&mut self.child, &self.stderr);
        eventually_blocking(
            limit,
            "the agent to exit",
            || match child.try_wait().expect("try_wait") {
                Some(status) => {
                    code = Some(status.code());
                    true
                }
                None => false,
            },
            || {
                format!(
                    "stderr:\n{}",
                    std::fs::read_to_string(stderr).unwrap_or_default()
                )
            },
        );
        code.flatten()
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.stdout)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `program` with `args` to completion, `input` on its stdin: how the tests feed the real
/// third-party checkers (Python validators and parsers) what the agent wrote.
pub fn run_with_stdin(program: &str, args: &[&str], input: &[u8]) -> std::process::Output {
    use std::io::Write as _;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// Runs the binary to completion with args and optional stdin.
pub fn run_cli(args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    if let Some(input) = stdin {
        use std::io::Write as _;
        let mut s = child.stdin.take().expect("stdin");
        s.write_all(input).expect("write stdin");
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A TCP syslog collector that splits octet-counted frames (RFC 6587) and records messages.
/// It can be stopped (listener and connections closed) and restarted on the same port.
#[derive(Clone)]
pub struct TcpCollector {
    pub addr: SocketAddr,
    pub messages: Arc<Mutex<Vec<String>>>,
    stop: Arc<Mutex<Option<tokio::sync::watch::Sender<bool>>>>,
}

impl TcpCollector {
    pub async fn start() -> TcpCollector {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let c = TcpCollector {
            addr,
            messages: Arc::new(Mutex::new(Vec::new())),
            stop: Arc::new(Mutex::new(None)),
        };
        c.serve(listener);
        c
    }

    fn serve(&self, listener: TcpListener) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        *self.stop.lock().expect("lock") = Some(tx);
        let messages = self.messages.clone();
        tokio::spawn(async move {
            let mut stop = rx.clone();
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    acc = listener.accept() => {
                        let Ok((mut sock, _)) = acc else { return };
                        let messages = messages.clone();
                        let mut stop = rx.clone();
                        tokio::spawn(async move {
                            let mut buf = Vec::new();
                            let mut chunk = [0u8; 65536];
                            loop {
                                tokio::select! {
                                    _ = stop.changed() => { let _ = sock.shutdown().await; return; }
                                    r = sock.read(&mut chunk) => {
                                        let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                                        buf.extend_from_slice(&chunk[..n]);
                                        while let Some(msg) = take_frame(&mut buf) {
                                            messages.lock().expect("lock").push(msg);
                                        }
                                    }
                                }
                            }
                        });
                    }
                }
            }
        });
    }

    /// Closes the listener and every connection.
    pub fn stop(&self) {
        if let Some(tx) = self.stop.lock().expect("lock").take() {
            let _ = tx.send(true);
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&self) {
        let addr = self.addr;
        let listener = retry_until(Duration::from_secs(10), "rebind", || {
            TcpListener::bind(addr)
        })
        .await;
        self.serve(listener);
    }

    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().expect("lock").clone()
    }
}

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

/// A UDP collector: one message per datagram.
pub struct UdpCollector {
    pub addr: SocketAddr,
    pub messages: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl UdpCollector {
    /// Reads on a dedicated thread, so that the socket buffer is drained however busy the test
    /// runtime is (UDP itself gives no backpressure).
    pub async fn start() -> UdpCollector {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        // UDP has no backpressure; give the burst of a catch-up room (capped by rmem_max).
        let _ = socket2::SockRef::from(&sock).set_recv_buffer_size(4 * 1024 * 1024);
        let addr = sock.local_addr().expect("addr");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let m = messages.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 70_000];
            while let Ok(n) = sock.recv(&mut buf) {
                m.lock().expect("lock").push(buf[..n].to_vec());
            }
        });
        UdpCollector { addr, messages }
    }
}

/// A scripted answer: HTTP status and optional `Retry-After` seconds.
pub type Step = (u16, Option<u64>);

/// An HTTP collector: records each POST body (parsed JSON) and answers with scripted statuses
/// (then 200).
#[derive(Clone)]
pub struct HttpCollector {
    pub url: String,
    pub bodies: Arc<Mutex<Vec<Value>>>,
    pub headers: Arc<Mutex<Vec<BTreeMap<String, String>>>>,
    script: Arc<Mutex<Vec<Step>>>,
    pub delay: Arc<Mutex<Duration>>,
}

impl HttpCollector {
    pub async fn start() -> HttpCollector {
        Self::start_on(0).await
    }

    /// A collector on a given loopback port (0: any), e.g. a receiver that comes up late at the
    /// address a sink was configured with.
    pub async fn start_on(port: u16) -> HttpCollector {
        use axum::extract::State;
        use axum::http::{HeaderMap, StatusCode};
        use axum::response::IntoResponse;
        let c = HttpCollector {
            url: String::new(),
            bodies: Arc::new(Mutex::new(Vec::new())),
            headers: Arc::new(Mutex::new(Vec::new())),
            script: Arc::new(Mutex::new(Vec::new())),
            delay: Arc::new(Mutex::new(Duration::ZERO)),
        };
        async fn handle(
            State(c): State<HttpCollector>,
            headers: HeaderMap,
            body: axum::body::Bytes,
        ) -> axum::response::Response {
            let delay = *c.delay.lock().expect("lock");
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let next = {
                let mut s = c.script.lock().expect("lock");
                if s.is_empty() {
                    None
                } else {
                    Some(s.remove(0))
                }
            };
            if let Some((status, retry_after)) = next {
                let mut resp = StatusCode::from_u16(status)
                    .expect("status")
                    .into_response();
                if let Some(s) = retry_after {
                    resp.headers_mut()
                        .insert("retry-after", s.to_string().parse().expect("hv"));
                }
                return resp;
            }
            let v: Value = serde_json::from_slice(&body).expect("webhook body is JSON");
            c.bodies.lock().expect("lock").push(v);
            c.headers.lock().expect("lock").push(
                headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                    .collect(),
            );
            StatusCode::OK.into_response()
        }
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let c = HttpCollector {
            url: format!("http://{addr}/ingest"),
            ..c
        };
        let app = axum::Router::new()
            .route("/ingest", axum::routing::post(handle))
            .with_state(c.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        c
    }

    /// The next responses (status, Retry-After), before normal 200s resume.
    pub fn script(&self, steps: &[(u16, Option<u64>)]) {
        self.script.lock().expect("lock").extend_from_slice(steps);
    }

    /// Scripted answers not given yet.
    pub fn script_left(&self) -> usize {
        self.script.lock().expect("lock").len()
    }

    /// Every event received, in order.
    pub fn events(&self) -> Vec<Value> {
        self.bodies
            .lock()
            .expect("lock")
            .iter()
            .flat_map(|b| b.as_array().cloned().unwrap_or_default())
            .collect()
    }
}

/// Event ids in ECS documents (`event.id`) or raw JSON (`id`).
pub fn ids_of(events: &[Value]) -> Vec<i64> {
    events
        .iter()
        .map(|e| {
            e.pointer("/event/id")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
                .or_else(|| e.get("id").and_then(Value::as_i64))
                .expect("event has an id")
        })
        .collect()
}

/// Runs the official ECS validator on NDJSON; panics with its report on failure.
pub fn validate_ecs(ndjson: &str) {
    let mut child = Command::new("python3")
        .arg(shared().join("ecs/validate_ecs.py"))
        .args(["--auth", "--strict", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    {
        use std::io::Write as _;
        let mut s = child.stdin.take().expect("stdin");
        s.write_all(ndjson.as_bytes()).expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "ECS validator failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Parses CEF lines with the real parsers of shared/cef (cefp, pycef, vrl when built) and
/// returns each line's cefp result `{"header":…, "ext":…}`; panics when cefp is missing or a
/// line does not parse.
pub fn parse_cef(lines: &[String]) -> Vec<Value> {
    let mut child = Command::new("python3")
        .arg(shared().join("cef/cef_parsers.py"))
        .args(["--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    {
        use std::io::Write as _;
        let mut s = child.stdin.take().expect("stdin");
        for l in lines {
            s.write_all(l.as_bytes()).expect("write");
            s.write_all(b"\n").expect("write");
        }
    }
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read");
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let _ = child.wait();
    let reports: Vec<Value> = BufReader::new(stdout.as_bytes())
        .lines()
        .map_while(Result::ok)
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(&l).expect("cef_parsers --json line"))
        .collect();
    assert_eq!(
        reports.len(),
        lines.len(),
        "cef_parsers.py answered {} reports for {} lines; stderr:\n{stderr}",
        reports.len(),
        lines.len()
    );
    reports
        .into_iter()
        .map(|r| {
            let cefp = r
                .pointer("/results/cefp")
                .cloned()
                .unwrap_or_else(|| panic!("cefp is not installed (pip install cefp==0.0.2): {r}"));
            assert!(
                cefp.get("error").is_none(),
                "cefp failed on {}: {cefp}",
                r["input"]
            );
            if let Some(vrl) = r.pointer("/results/vrl-strict") {
                assert!(
                    vrl.get("error").is_none(),
                    "vrl strict failed on {}: {vrl}",
                    r["input"]
                );
                // vrl trims trailing spaces and strips wrapping quotes; cefp keeps the bytes, so
                // values are compared with cefp only.
            }
            cefp
        })
        .collect()
}

/// Starts the real rsyslog receiver from shared/receivers on free loopback ports.
pub struct Rsyslog {
    pub dir: tempfile::TempDir,
    pub udp: u16,
    pub tcp: u16,
    pub tls: u16,
    pid: i32,
    /// Whether it runs with the certificate its script makes (see [`Rsyslog::start_self_signed`]).
    self_signed: bool,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl Rsyslog {
    pub fn start() -> Rsyslog {
        let dir = tempfile::tempdir().expect("tempdir");
        let (udp, tcp, tls) = (free_port(), free_port(), free_port());
        make_pki(&dir.path().join("pki"));
        let pid = Self::launch(dir.path(), udp, tcp, tls, false);
        Rsyslog {
            dir,
            udp,
            tcp,
            tls,
            pid,
            self_signed: false,
        }
    }

    /// The receiver exactly as its README sets it up: TLS with the certificate its script makes
    /// by the usual recipe (`openssl req -x509 … -subj /CN=localhost -addext
    /// subjectAltName=DNS:localhost,IP:127.0.0.1`: self-signed, `CA:TRUE`), which clients are
    /// told to trust as their CA ([`Rsyslog::self_signed_cert`]).
    pub fn start_self_signed() -> Rsyslog {
        let dir = tempfile::tempdir().expect("tempdir");
        let (udp, tcp, tls) = (free_port(), free_port(), free_port());
        let pid = Self::launch(dir.path(), udp, tcp, tls, true);
        Rsyslog {
            dir,
            udp,
            tcp,
            tls,
            pid,
            self_signed: true,
        }
    }

    /// The certificate the receiver presents when started by [`Rsyslog::start_self_signed`].
    pub fn self_signed_cert(&self) -> PathBuf {
        self.dir.path().join("tls/cert.pem")
    }

    /// Stops the receiver (SIGTERM) and waits until it is gone.
    pub fn stop(&self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
        let proc = format!("/proc/{}", self.pid);
        eventually_blocking(
            Duration::from_secs(10),
            "rsyslog to stop",
            || !Path::new(&proc).exists(),
            String::new,
        );
    }

    /// Starts it again on the same ports and output file.
    pub fn restart(&mut self) {
        self.pid = Self::launch(
            self.dir.path(),
            self.udp,
            self.tcp,
            self.tls,
            self.self_signed,
        );
    }

    fn launch(dir: &Path, udp: u16, tcp: u16, tls: u16, self_signed: bool) -> i32 {
        let pki = dir.join("pki");
        let mut cmd = Command::new("bash");
        if self_signed {
            cmd.env_remove("RECEIVER_CERT").env_remove("RECEIVER_KEY");
        } else {
            cmd.env("RECEIVER_CERT", pki.join("server.pem"))
                .env("RECEIVER_KEY", pki.join("server.key"));
        }
        let out = cmd
            .arg(shared().join("receivers/rsyslog-receiver.sh"))
            .arg(dir)
            .args([udp.to_string(), tcp.to_string(), tls.to_string()])
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "rsyslog receiver did not start (apt-get install rsyslog rsyslog-gnutls): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("receiver prints its pid")
    }

    /// The CA that signed the receiver's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("pki/ca.pem")
    }

    pub fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("messages.ndjson"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}

/// A private CA and a server certificate it signed (CN/SAN localhost and 127.0.0.1), as a
/// deployment with its own CA has. (A receiver's self-signed certificate given as `ca_file` is
/// trusted too: see [`Rsyslog::start_self_signed`].)
pub fn make_pki(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir pki");
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .expect("ext");
    let steps: [&[&str]; 3] = [
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            "/CN=docspace-siem test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
    ];
    run_openssl(dir, &steps);
}

/// What a CEF parser reads back for a value the agent encoded, per the documented sanitising:
/// every line break (CR, CRLF, NEL, U+2028, U+2029) becomes LF, other control characters except
/// TAB become U+FFFD.
pub fn cef_sanitised(value: &str) -> String {
    value
        .replace("\r\n", "\n")
        .replace(['\r', '\u{85}', '\u{2028}', '\u{2029}'], "\n")
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

/// The syslog-ng binary the receiver script will run, as the environment for that script:
/// `$SYSLOG_NG_ROOT` (Debian's syslog-ng-core unpacked there by tests/run.sh, since the package
/// conflicts with rsyslog) or `syslog-ng` on PATH. Panics with the fix when there is neither:
/// CI installs it, so a missing syslog-ng is a broken set-up, never a reason to skip.
pub fn syslog_ng_env() -> Vec<(String, String)> {
    if let Some(root) = std::env::var_os("SYSLOG_NG_ROOT").filter(|r| !r.is_empty()) {
        let bin = Path::new(&root).join("usr/sbin/syslog-ng");
        assert!(
            bin.is_file(),
            "SYSLOG_NG_ROOT={} holds no usr/sbin/syslog-ng; run `bash ../shared/receivers/install-syslog-ng-local.sh {}` (as root) or `bash tests/run.sh`",
            Path::new(&root).display(),
            Path::new(&root).display()
        );
        return vec![(
            "SYSLOG_NG_ROOT".to_owned(),
            root.to_string_lossy().into_owned(),
        )];
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("syslog-ng").is_file()))
        .unwrap_or(false);
    assert!(
        on_path,
        "syslog-ng is missing: the receiver tests need it. Install it with \
         `bash ../shared/receivers/install-syslog-ng-local.sh /opt/syslog-ng-local` (as root) and \
         `export SYSLOG_NG_ROOT=/opt/syslog-ng-local`, or run `bash tests/run.sh`, which does both"
    );
    Vec::new()
}

/// `n` distinct free loopback ports.
pub fn free_ports(n: usize) -> Vec<u16> {
    let mut ports: Vec<u16> = Vec::new();
    while ports.len() < n {
        let p = free_port();
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    ports
}

/// The real syslog-ng 3.38 receiver of shared/receivers on free loopback ports: RFC 5424 over
/// UDP, TCP octet-counted, TCP LF-framed and TLS (server certificate from a private CA,
/// [`make_pki`]), every message one JSON line in `rx/messages.ndjson`. Runs with TZ=UTC, so
/// that timestamps without a zone (RFC 3164) are read as UTC. Killed on drop.
pub struct SyslogNg {
    pub dir: tempfile::TempDir,
    pub udp: u16,
    pub tcp: u16,
    pub tcp_lf: u16,
    pub tls: u16,
    pid: i32,
}

impl SyslogNg {
    /// Runs shared/receivers/syslog-ng-receiver.sh as shipped.
    pub fn start() -> SyslogNg {
        SyslogNg::launch(None)
    }

    /// Runs a copy of the receiver whose configuration template went through `patch`, which is
    /// given the text of syslog-ng-receiver.conf.in and the PKI directory (ca.pem, ca.key,
    /// server.pem, server.key).
    pub fn start_patched(patch: impl FnOnce(&str, &Path) -> String) -> SyslogNg {
        SyslogNg::launch(Some(Box::new(patch)))
    }

    #[allow(clippy::type_complexity)]
    fn launch(patch: Option<Box<dyn FnOnce(&str, &Path) -> String + '_>>) -> SyslogNg {
        let env = syslog_ng_env();
        let dir = tempfile::tempdir().expect("tempdir");
        let pki = dir.path().join("pki");
        make_pki(&pki);
        let shipped = shared().join("receivers/syslog-ng-receiver.sh");
        let script = match patch {
            None => shipped,
            Some(patch) => {
                // The script reads its template from its own directory: copy both.
                let copy = dir.path().join("receiver");
                std::fs::create_dir_all(&copy).expect("mkdir");
                std::fs::copy(&shipped, copy.join("syslog-ng-receiver.sh")).expect("copy script");
                let conf =
                    std::fs::read_to_string(shared().join("receivers/syslog-ng-receiver.conf.in"))
                        .expect("read conf.in");
                std::fs::write(copy.join("syslog-ng-receiver.conf.in"), patch(&conf, &pki))
                    .expect("write conf.in");
                copy.join("syslog-ng-receiver.sh")
            }
        };
        let ports = free_ports(4);
        let out = Command::new("bash")
            .envs(env)
            .env("TZ", "UTC")
            .env("RECEIVER_CERT", pki.join("server.pem"))
            .env("RECEIVER_KEY", pki.join("server.key"))
            .arg(script)
            .arg(dir.path().join("rx"))
            .args(ports.iter().map(u16::to_string))
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "syslog-ng receiver did not start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.path().join("rx/config-check.log")).unwrap_or_default()
        );
        let pid: i32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("receiver prints its pid");
        SyslogNg {
            dir,
            udp: ports[0],
            tcp: ports[1],
            tcp_lf: ports[2],
            tls: ports[3],
            pid,
        }
    }

    /// The CA that signed the receiver's certificate (and signs client certificates).
    pub fn ca(&self) -> PathBuf {
        self.pki().join("ca.pem")
    }

    pub fn pki(&self) -> PathBuf {
        self.dir.path().join("pki")
    }

    /// syslog-ng's own output (-e: its internal messages, e.g. TLS errors).
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rx/syslog-ng.stderr")).unwrap_or_default()
    }

    /// Every complete line written so far; panics on a line that is not JSON.
    pub fn messages(&self) -> Vec<Value> {
        let bytes = std::fs::read(self.dir.path().join("rx/messages.ndjson")).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let complete = match text.rfind('\n') {
            Some(i) => &text[..i],
            None => "",
        };
        complete
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!("syslog-ng wrote a line that is not JSON ({e}): {l}")
                })
            })
            .collect()
    }
}

impl Drop for SyslogNg {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.pid.to_string()).status();
    }
}

/// Issues a client certificate (`CN=docspace-siem agent`, extendedKeyUsage clientAuth) from the
/// CA that [`make_pki`] made in `dir`; returns (certificate, key) paths.
pub fn make_client_cert(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::write(
        dir.join("client-ext.cnf"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
    )
    .expect("ext");
    let steps: [&[&str]; 2] = [
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=docspace-siem agent",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            "client-ext.cnf",
            "-out",
            "client.pem",
        ],
    ];
    run_openssl(dir, &steps);
    (dir.join("client.pem"), dir.join("client.key"))
}

/// Entra ID token endpoint and Logs Ingestion API stand-in (Microsoft Sentinel).
pub mod azure;
/// Splunk HEC and Elasticsearch `_bulk` mocks (docs/formats.md §4.1, §4.2).
pub mod mocks;
/// An HTTP receiver of raw bodies (NDJSON webhooks).
pub mod raw_http;
/// One agent against one simulated portal: events, config, start, drain, exactly-once checks.
pub mod scenario;
/// The one wait-until of the tests.
pub mod wait;

pub use scenario::Scenario;
pub use wait::{eventually, eventually_blocking, retry_until, try_until};

/// Runs each `openssl` command line in `dir`, failing the test with openssl's own message.
fn run_openssl(dir: &Path, steps: &[&[&str]]) {
    for args in steps {
        let out = Command::new("openssl")
            .args(*args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
