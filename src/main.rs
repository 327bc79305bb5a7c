//! The `docspace-siem` binary: command line, logging, signals and exit codes (SPEC.md).
//!
//! Exit codes: 0 clean stop / success; 1 other fatal error (a pipeline task that died among
//! them), failed check, or a cursor command while the agent runs; 65 (`EX_DATAERR`) input
//! `encode` cannot read, or a `cursor set --to` that is unreadable or in the future; 78
//! (`EX_CONFIG`) bad configuration or corrupt state.

use std::io::{BufRead as _, Read as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use docspace_siem::agent::{self, RunOptions};
use docspace_siem::config::{self, Config, Format};
use docspace_siem::event::{Event, PortalInfo, Stream};
#[cfg(feature = "simulator")]
use docspace_siem::simulator::{SimConfig, SimStream, SimZone, Simulator};
use docspace_siem::transform;

const EX_DATAERR: u8 = 65;
const EX_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(
    name = "docspace-siem",
    version,
    about = "Ships ONLYOFFICE DocSpace login history and audit trail into SIEMs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent until SIGTERM/SIGINT, then drain and save cursors.
    #[command(
        after_help = "Exit codes: 0 clean stop; 78 bad config or corrupt cursor; 1 any other fatal error (a pipeline task that died among them)."
    )]
    Run {
        /// Config file [env: DOCSPACE_SIEM_CONFIG; default /etc/docspace-siem/docspace-siem.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Load and check the config without network; print every problem as `key: problem`.
    #[command(after_help = "Exit codes: 0 valid; 78 invalid.")]
    Validate {
        /// Config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// One real request to each portal and a connection to each sink.
    #[command(
        after_help = "Exit codes: 0 every target OK or UNVERIFIED (syslog over UDP); 1 any FAILED; 78 bad config."
    )]
    Check {
        /// Config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Encode DocSpace API output (envelope, array or one object per line) to stdout.
    #[command(after_help = "Exit codes: 0 encoded; 65 unreadable input, naming the line.")]
    Encode {
        /// Output format.
        #[arg(long, value_enum)]
        format: FormatArg,
        /// Stream of the input (default: by actionId, 1000–1999 = login).
        #[arg(long, value_enum)]
        stream: Option<StreamArg>,
        /// Portal URL the events came from.
        #[arg(long, default_value = "https://docspace.invalid")]
        portal: String,
        /// Input file, or - for stdin.
        #[arg(default_value = "-")]
        file: String,
    },
    /// Show the saved cursors (read only), or change them (with the agent stopped: the state lock is taken).
    #[command(
        after_help = "Exit codes: 0 done; 1 set/reset found the agent running; 65 a --to in the future or unreadable; 78 show found a corrupt cursor, or a bad config."
    )]
    Cursor {
        #[command(subcommand)]
        action: CursorAction,
        /// Config file.
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
    },
    /// The whole pipeline against a built-in DocSpace simulator, printing to stdout.
    #[command(
        after_help = "Exit codes: 0 done; 64 a build without the simulator; 1 the simulator could not start."
    )]
    Demo {
        /// Output format.
        #[arg(long, value_enum, default_value = "ecs")]
        format: FormatArg,
        /// Stop after this many events (default: run until Ctrl-C).
        #[arg(long)]
        events: Option<u64>,
    },
}

#[derive(Subcommand)]
enum CursorAction {
    /// Print every portal/stream cursor: watermark, lag and file.
    Show,
    /// Move a cursor to an instant (RFC 3339) or a duration ago ("2d"); events after it are
    /// (re-)sent at the next start. An instant in the future is refused (exit 65).
    Set {
        /// Portal table name.
        #[arg(long)]
        portal: String,
        /// Stream (default: both).
        #[arg(long, value_enum)]
        stream: Option<StreamArg>,
        /// RFC 3339 instant or a duration ago.
        #[arg(long)]
        to: String,
    },
    /// Delete cursors: the next start begins again from the portal's start_from.
    Reset {
        /// Portal table name.
        #[arg(long)]
        portal: String,
        /// Stream (default: both).
        #[arg(long, value_enum)]
        stream: Option<StreamArg>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Ecs,
    Cef,
    Leef,
    Json,
    Ocsf,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Ecs => Format::Ecs,
            FormatArg::Cef => Format::Cef,
            FormatArg::Json => Format::Json,
            FormatArg::Leef => Format::Leef,
            FormatArg::Ocsf => Format::Ocsf,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum StreamArg {
    Login,
    Audit,
}

fn main() -> ExitCode {
    not_dumpable();
    docspace_siem::pipeline::limit_malloc_arenas();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run { .. }) {
        init_tracing(None);
    }
    match cli.command {
        Command::Validate { config } => match load(config) {
            Ok(cfg) => {
                for w in &cfg.warnings {
                    eprintln!("warning: {w}");
                }
                println!(
                    "config is valid: {} portal(s), {} sink(s), state_dir {}",
                    cfg.portals.len(),
                    cfg.sinks.len(),
                    cfg.state_dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run { config } => {
            let path = config_path(config);
            let cfg = match load_path(&path) {
                Ok(c) => c,
                Err(code) => return code,
            };
            init_tracing(Some(&cfg.log));
            for w in &cfg.warnings {
                warn!("{w}");
            }
            runtime(Some(cfg.threads), |cancel| {
                run_until_stopped(path, cfg, cancel)
            })
        }
        Command::Check { config } => {
            let cfg = match load(config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            runtime(Some(1), |_cancel| async move {
                let mut failed = false;
                for (target, res) in agent::check(&cfg).await {
                    match res {
                        Ok(detail) => match detail.strip_prefix(docspace_siem::sink::UNVERIFIED) {
                            Some(why) => println!("{target}: UNVERIFIED ({why})"),
                            None => println!("{target}: OK ({detail})"),
                        },
                        Err(reason) => {
                            failed = true;
                            println!("{target}: FAILED: {reason}");
                        }
                    }
                }
                if failed {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            })
        }
        Command::Encode {
            format,
            stream,
            portal,
            file,
        } => encode(format.into(), stream, &portal, &file),
        Command::Demo { format, events } => demo(format.into(), events),
        Command::Cursor { action, config } => match load(config) {
            Ok(cfg) => cursor_command(&cfg, action),
            Err(code) => code,
        },
    }
}

/// `cursor show|set|reset`. `show` only reads (no lock, nothing created, renamed or chmod'ed,
/// so it also works beside a running agent); `set` and `reset` take the state lock.
fn cursor_command(cfg: &Config, action: CursorAction) -> ExitCode {
    use docspace_siem::cursor::{self, Cursor, CursorError, StateDir};
    use docspace_siem::event::format_utc_seconds;
    let streams = |s: Option<StreamArg>| match s {
        Some(StreamArg::Login) => vec![Stream::Login],
        Some(StreamArg::Audit) => vec![Stream::Audit],
        None => Stream::ALL.to_vec(),
    };
    let known = |portal: &str| {
        let found = cfg.portals.iter().any(|p| p.name == portal);
        if !found {
            eprintln!("docspace-siem cursor: no portal named {portal:?} in the config");
        }
        found
    };
    let open = || {
        StateDir::open(&cfg.state_dir).map_err(|e| {
            eprintln!("docspace-siem cursor: {e}");
            ExitCode::FAILURE
        })
    };
    let now = time::OffsetDateTime::now_utc();
    match action {
        CursorAction::Show => {
            println!(
                "{:<16} {:<6} {:<22} {:>12} {:>6}  file",
                "portal", "stream", "watermark", "lag", "seen"
            );
            let mut corrupt = false;
            for p in &cfg.portals {
                for &stream in &p.streams {
                    // Each sink's cursor (the stream's own file of an older release stands in
                    // for a sink that has none yet); the stream's row is where the live poller
                    // reads from: the newest of them.
                    let legacy = cursor::read_only(&cfg.state_dir, &p.name, stream);
                    let mut rows = Vec::new();
                    for s in &cfg.sinks {
                        let path =
                            cursor::lane_path(&cfg.state_dir, &p.name, stream, Some(&s.name));
                        let c = match cursor::read_only_lane(
                            &cfg.state_dir,
                            &p.name,
                            stream,
                            Some(&s.name),
                        ) {
                            Ok(None) => match &legacy {
                                Ok(Some(c)) => Ok(Some(c.clone())),
                                _ => Ok(None),
                            },
                            other => other,
                        };
                        rows.push((format!("{stream}/{}", s.name), c, path));
                    }
                    let newest = rows
                        .iter()
                        .filter_map(|(_, c, _)| c.as_ref().ok().and_then(|c| c.as_ref()))
                        .max_by_key(|c| c.watermark)
                        .cloned();
                    let path = cursor::cursor_path(&cfg.state_dir, &p.name, stream);
                    let own = match newest {
                        Some(c) => Ok(Some(c)),
                        None => legacy,
                    };
                    rows.insert(0, (stream.to_string(), own, path));
                    for (label, c, path) in rows {
                        match c {
                            Ok(Some(c)) => {
                                let behind = (now - c.watermark).whole_seconds();
                                let lag = humantime::format_duration(Duration::from_secs(
                                    behind.unsigned_abs(),
                                ))
                                .to_string();
                                // A watermark ahead of the clock is not corrupt: `run` waits.
                                let lag = if behind < 0 {
                                    format!("ahead {lag}")
                                } else {
                                    lag
                                };
                                println!(
                                    "{:<16} {:<6} {:<22} {:>12} {:>6}  {}{}",
                                    p.name,
                                    label,
                                    format_utc_seconds(c.watermark),
                                    lag,
                                    c.seen.len(),
                                    path.display(),
                                    if behind < 0 {
                                        " (ahead of the clock: run waits until the clock passes it)"
                                    } else {
                                        ""
                                    }
                                );
                            }
                            Ok(None) => println!(
                                "{:<16} {:<6} {:<22} {:>12} {:>6}  {} (none yet: starts from start_from)",
                                p.name,
                                label,
                                "-",
                                "-",
                                "-",
                                path.display()
                            ),
                            Err(e @ CursorError::Damaged { .. }) => {
                                println!(
                                    "{:<16} {:<6} {:<22} {:>12} {:>6}  {} (corrupt)",
                                    p.name,
                                    label,
                                    "?",
                                    "?",
                                    "?",
                                    path.display()
                                );
                                eprintln!("docspace-siem cursor: {e}");
                                corrupt = true;
                            }
                            Err(e) => {
                                eprintln!("docspace-siem cursor: {e}");
                                return ExitCode::FAILURE;
                            }
                        }
                    }
                }
            }
            if corrupt {
                ExitCode::from(EX_CONFIG)
            } else {
                ExitCode::SUCCESS
            }
        }
        CursorAction::Set { portal, stream, to } => {
            if !known(&portal) {
                return ExitCode::from(EX_CONFIG);
            }
            // Checked before the state directory is touched: a refused --to changes nothing.
            let at = match docspace_siem::event::parse_date(&to) {
                Ok(t) => t,
                Err(date_problem) => match humantime::parse_duration(to.trim()) {
                    Ok(d) => match time::Duration::try_from(d)
                        .ok()
                        .and_then(|d| now.checked_sub(d))
                        .filter(|t| t.year() >= 0)
                    {
                        Some(t) => t,
                        None => {
                            eprintln!(
                                "docspace-siem cursor: --to {to:?} reaches back before the year 0"
                            );
                            return ExitCode::from(EX_DATAERR);
                        }
                    },
                    Err(_) => {
                        eprintln!(
                            "docspace-siem cursor: --to {to:?} is neither an RFC 3339 instant nor a duration such as \"2d\" ({date_problem})"
                        );
                        return ExitCode::from(EX_DATAERR);
                    }
                },
            };
            if at > now {
                eprintln!(
                    "docspace-siem cursor: --to {} lies in the future (now is {}): nothing would be read until then, and events of the time between would never be sent; give an instant in the past or a duration ago such as \"2d\". Nothing was changed",
                    format_utc_seconds(at),
                    format_utc_seconds(now)
                );
                return ExitCode::from(EX_DATAERR);
            }
            let state = match open() {
                Ok(s) => s,
                Err(code) => return code,
            };
            for s in streams(stream) {
                // The stream's cursor and every sink's: they all start from there (a stream
                // with one sink has only the stream's file).
                let several = cfg.sinks.len() > 1;
                let lanes = std::iter::once(None).chain(
                    cfg.sinks
                        .iter()
                        .filter(|_| several)
                        .map(|k| Some(k.name.as_str())),
                );
                for lane in lanes {
                    if let Err(e) = state.save_lane(&portal, s, lane, &Cursor::at(at)) {
                        eprintln!("docspace-siem cursor: {e}");
                        return ExitCode::FAILURE;
                    }
                }
                println!("{portal} {s}: cursor set to {}", format_utc_seconds(at));
            }
            ExitCode::SUCCESS
        }
        CursorAction::Reset { portal, stream } => {
            if !known(&portal) {
                return ExitCode::from(EX_CONFIG);
            }
            let state = match open() {
                Ok(s) => s,
                Err(code) => return code,
            };
            for s in streams(stream) {
                let mut sinks_removed = false;
                for k in &cfg.sinks {
                    match state.remove_lane(&portal, s, Some(&k.name)) {
                        Ok(removed) => sinks_removed |= removed,
                        Err(e) => {
                            eprintln!("docspace-siem cursor: cannot remove: {e}");
                            return ExitCode::FAILURE;
                        }
                    }
                }
                match state.remove(&portal, s).map(|r| r || sinks_removed) {
                    Ok(true) => println!(
                        "{portal} {s}: cursor removed; the next start begins at start_from"
                    ),
                    Ok(false) => println!("{portal} {s}: no cursor"),
                    Err(e) => {
                        eprintln!("docspace-siem cursor: cannot remove: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
    }
}

/// Makes the process non-dumpable: no core file (which would hold the API keys and tokens in
/// memory), and no `ptrace` or `/proc/PID/mem` reading by other processes of the same user.
/// The unit adds `LimitCORE=0`; this covers a start by hand too.
#[allow(unsafe_code)] // the one libc call below; see its SAFETY comment
fn not_dumpable() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl(2) with PR_SET_DUMPABLE takes plain integers, reads and writes no memory
    // of this process and only clears a flag of it; no Rust invariant depends on that flag.
    // The one unsafe call of main.rs. A failure (a seccomp filter) leaves the process as it
    // was, which is not worth stopping for.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// Logs go to stderr (stdout carries events for stdout sinks). `DOCSPACE_SIEM_LOG` sets the
/// filter (default `info`), `DOCSPACE_SIEM_LOG_FORMAT=json` gives JSON lines.
fn init_tracing(log: Option<&config::LogConfig>) {
    use tracing_subscriber::EnvFilter;
    let configured = log
        .and_then(|l| l.level.clone())
        .unwrap_or_else(|| "info".to_owned());
    let filter =
        EnvFilter::try_from_env("DOCSPACE_SIEM_LOG").unwrap_or_else(|_| EnvFilter::new(configured));
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let json = match std::env::var("DOCSPACE_SIEM_LOG_FORMAT").ok().as_deref() {
        Some("json") => true,
        Some("text") => false,
        _ => match log.map(|l| l.format).unwrap_or_default() {
            config::LogFormat::Json => true,
            config::LogFormat::Text => false,
            config::LogFormat::Auto => under_journald,
        },
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false);
    if json {
        builder.json().init();
    } else if under_journald {
        // journald stamps its own time.
        builder.without_time().init();
    } else {
        builder.init();
    }
}

fn config_path(explicit: Option<PathBuf>) -> PathBuf {
    explicit
        .or_else(|| std::env::var_os("DOCSPACE_SIEM_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_CONFIG_PATH))
}

fn load(explicit: Option<PathBuf>) -> Result<Config, ExitCode> {
    load_path(&config_path(explicit))
}

fn load_path(path: &std::path::Path) -> Result<Config, ExitCode> {
    let path = path.to_path_buf();
    config::load(&config::Sources::from_process(path.clone())).map_err(|errs| {
        eprintln!("{}: invalid configuration:", path.display());
        for p in &errs.0 {
            eprintln!("{p}");
        }
        ExitCode::from(EX_CONFIG)
    })
}

/// `run`: the agent until SIGTERM/SIGINT, SIGHUP reloading it ([`agent::run_with_reloads`]).
async fn run_until_stopped(path: PathBuf, first: Config, stop: CancellationToken) -> ExitCode {
    match agent::run_with_reloads(path, first, stop).await {
        Ok(()) => {
            info!("stopped cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!("{e:#}");
            eprintln!("docspace-siem: {e:#}");
            if e.is_config() {
                ExitCode::from(EX_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Runs `f` with SIGTERM/SIGINT wired to the cancellation token, on the calling thread alone
/// (`threads` 1), on that many worker threads, or (`None`) on one per core.
fn runtime<F, Fut>(threads: Option<usize>, f: F) -> ExitCode
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ExitCode>,
{
    let mut builder = match threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let rt = match builder
        .enable_all()
        // Cursor saves run on the blocking pool, one per stream per poll: with tokio's default
        // 10 s keep-alive an idle agent would start and tear down a thread (stack, malloc
        // arena cleanup) at nearly every poll.
        .thread_keep_alive(std::time::Duration::from_secs(600))
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("docspace-siem: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = rt.block_on(async {
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            info!("signal received");
            docspace_siem::notify::notify("STOPPING=1");
            c.cancel();
        });
        f(cancel).await
    });
    // Do not wait for blocked stdin readers or lingering connections.
    rt.shutdown_timeout(Duration::from_secs(1));
    code
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `encode`: reads rows, prints one encoded event per line; 65 naming the line on bad input.
fn encode(format: Format, stream: Option<StreamArg>, portal_url: &str, file: &str) -> ExitCode {
    let mut input = String::new();
    let read = if file == "-" {
        std::io::stdin().read_to_string(&mut input)
    } else {
        std::fs::File::open(file).and_then(|mut f| f.read_to_string(&mut input))
    };
    if let Err(e) = read {
        eprintln!("docspace-siem encode: cannot read {file}: {e}");
        return ExitCode::from(EX_DATAERR);
    }
    let stream = stream.map(|s| match s {
        StreamArg::Login => Stream::Login,
        StreamArg::Audit => Stream::Audit,
    });
    let name = url::Url::parse(portal_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| portal_url.to_owned());
    let portal = Arc::new(PortalInfo::new(&name, portal_url));
    let rows = match rows_of(&input) {
        Ok(rows) => rows,
        Err(msg) => {
            eprintln!("docspace-siem encode: {file}: {msg}");
            return ExitCode::from(EX_DATAERR);
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut buf = Vec::new();
    for (where_, row) in rows {
        match Event::from_json(portal.clone(), stream, row) {
            Ok(ev) => {
                buf.clear();
                transform::encode(format, &ev, &mut buf);
                buf.push(b'\n');
                if out.write_all(&buf).is_err() {
                    return ExitCode::SUCCESS;
                }
            }
            Err(e) => {
                let _ = out.flush();
                eprintln!("docspace-siem encode: {file}: {where_}: {e}");
                return ExitCode::from(EX_DATAERR);
            }
        }
    }
    let _ = out.flush();
    ExitCode::SUCCESS
}

/// Splits input into rows: an envelope, a bare array, one object, or one object per line.
fn rows_of(input: &str) -> Result<Vec<(String, serde_json::Value)>, String> {
    use serde_json::Value;
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        let items = match v {
            Value::Array(a) => a,
            Value::Object(ref o) if o.contains_key("response") => match o.get("response") {
                Some(Value::Array(a)) => a.clone(),
                _ => return Err("the envelope's `response` is not an array of events".into()),
            },
            Value::Object(_) => vec![v],
            _ => return Err("expected a JSON object or array of DocSpace events".into()),
        };
        return Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("event #{}", i + 1), v))
            .collect());
    }
    let mut rows = Vec::new();
    for (i, line) in std::io::Cursor::new(input).lines().enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| format!("line {}: not a JSON object ({e})", i + 1))?;
        rows.push((format!("line {}", i + 1), v));
    }
    Ok(rows)
}

#[cfg(feature = "simulator")]
/// A new directory of an unpredictable name under the temporary directory, created
/// exclusively with mode 0700 (an existing path, a planted link included, is never reused).
fn private_temp_dir() -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt as _;
    let mut last = None;
    for _ in 0..16 {
        let dir =
            std::env::temp_dir().join(format!("docspace-siem-demo-{:016x}", fastrand::u64(..)));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no name left")))
}

#[cfg(feature = "simulator")]
/// Writes a new file, created exclusively with mode 0600, never through a link.
fn private_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?
        .write_all(bytes)
}

/// `demo` in a build without the simulator.
#[cfg(not(feature = "simulator"))]
fn demo(_format: Format, _events: Option<u64>) -> ExitCode {
    eprintln!(
        "docspace-siem demo: this build has no simulated portal (it was built without the `simulator` feature)"
    );
    ExitCode::from(64)
}

/// `demo`: a simulated portal with a day of history plus live traffic, through the real
/// pipeline, into a stdout sink.
#[cfg(feature = "simulator")]
fn demo(format: Format, events: Option<u64>) -> ExitCode {
    runtime(None, |cancel| async move {
        let sim = Simulator::new(SimConfig {
            api_key: "sk-demo".to_owned(),
            zone: SimZone::EuropeBerlin,
            seed: 42,
        });
        let now = time::OffsetDateTime::now_utc();
        sim.generate(
            SimStream::Login,
            300,
            now - time::Duration::hours(24),
            now - time::Duration::seconds(5),
        );
        sim.generate(
            SimStream::Audit,
            120,
            now - time::Duration::hours(24),
            now - time::Duration::seconds(5),
        );
        let server = match sim.serve(([127, 0, 0, 1], 0).into()).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("docspace-siem demo: cannot start the simulator: {e}");
                return ExitCode::FAILURE;
            }
        };
        let live = sim.spawn_live(2.0, cancel.clone());
        // A private directory of an unpredictable name, created exclusively (0700): nobody
        // else can plant or read the demo's config and state (tempfile's recipe).
        let private = match private_temp_dir() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("docspace-siem demo: cannot create a private temporary directory: {e}");
                return ExitCode::FAILURE;
            }
        };
        let state_dir = private.join("state");
        let fmt = match format {
            Format::Ecs => "ecs",
            Format::Cef => "cef",
            Format::Json => "json",
            Format::Leef => "leef",
            Format::Ocsf => "ocsf",
        };
        let toml = format!(
            "state_dir = {state:?}\nshutdown_timeout = \"5s\"\n[portals.demo]\nurl = {url:?}\napi_key = \"sk-demo\"\npoll_interval = \"1s\"\nstart_from = \"1d\"\nsettle = \"1s\"\noverlap = \"1m\"\n[sinks.console]\ntype = \"stdout\"\nformat = \"{fmt}\"\n{rules}",
            state = state_dir.display().to_string(),
            url = server.url,
            // The simulator's brute-force bursts show alerts firing, as ECS documents.
            rules = if fmt == "ecs" {
                "rules = [\"brute_force\", \"lockout\", \"success_after_failures\", \"new_country\", \"sensitive_audit\"]\n"
            } else {
                ""
            },
        );
        let cfg_path = private.join("demo.toml");
        let cfg = private_file(&cfg_path, toml.as_bytes())
            .map_err(|e| e.to_string())
            .and_then(|()| {
                config::load(&config::Sources {
                    file: cfg_path.clone(),
                    env: Vec::new(),
                })
                .map_err(|e| e.to_string())
            });
        let _ = std::fs::remove_file(&cfg_path);
        let cfg = match cfg {
            Ok(c) => c,
            Err(e) => {
                eprintln!("docspace-siem demo: {e}");
                return ExitCode::FAILURE;
            }
        };
        info!(portal = %server.url, "demo: simulated DocSpace portal with a day of history and live traffic");
        let res = agent::run(
            cfg,
            cancel.clone(),
            RunOptions {
                stdout_limit: events,
            },
        )
        .await;
        cancel.cancel();
        let _ = live.await;
        let _ = std::fs::remove_dir_all(&private);
        match res {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("docspace-siem demo: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}
