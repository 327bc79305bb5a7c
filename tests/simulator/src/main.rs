//! `docspace-sim`: serves a simulated DocSpace portal (for benchmarks and manual tests) until
//! Ctrl-C or SIGTERM, printing its URL on the first line and, at the end, what it served.

use std::process::ExitCode;

use clap::Parser;
use docspace_sim::{SimConfig, SimStream, SimZone, Simulator};
use tokio_util::sync::CancellationToken;

/// Serve a simulated DocSpace portal until Ctrl-C.
#[derive(Parser, Debug)]
#[command(name = "docspace-sim", version)]
struct Args {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// Login events to generate over the last `days`.
    #[arg(long, default_value_t = 1000)]
    login: usize,
    /// Audit events to generate over the last `days`.
    #[arg(long, default_value_t = 1000)]
    audit: usize,
    /// Days of history.
    #[arg(long, default_value_t = 30)]
    days: i64,
    /// API key the portal accepts.
    #[arg(long, default_value = "sk-bench")]
    key: String,
    /// Live events per second added after start.
    #[arg(long, default_value_t = 0.0)]
    live: f64,
    /// Added to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// With a value above `latency-ms`, each answer waits a uniform draw from
    /// [latency-ms, latency-max-ms] milliseconds instead.
    #[arg(long, default_value_t = 0)]
    latency_max_ms: u64,
    /// The portal's rate limit, requests a minute (0 = off).
    #[arg(long, default_value_t = 0)]
    rate_per_minute: u32,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let sim = Simulator::new(SimConfig {
        api_key: args.key,
        zone: SimZone::EuropeBerlin,
        seed: 1,
    });
    let now = time::OffsetDateTime::now_utc();
    let from = now - time::Duration::days(args.days.clamp(0, 36_500));
    let to = now - time::Duration::seconds(5);
    sim.generate(SimStream::Login, args.login, from, to);
    sim.generate(SimStream::Audit, args.audit, from, to);
    sim.set_latency_range(
        std::time::Duration::from_millis(args.latency_ms),
        std::time::Duration::from_millis(args.latency_max_ms),
    );
    sim.set_rate_limit(Some(args.rate_per_minute));
    let server = match sim.serve(args.listen).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("docspace-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", server.url);
    let cancel = CancellationToken::new();
    let _live = (args.live > 0.0).then(|| sim.spawn_live(args.live, cancel.clone()));
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("docspace-sim: cannot watch SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    cancel.cancel();
    drop(server);
    println!(
        "requests={} rate_limited={}",
        sim.request_count(),
        sim.rate_limited()
    );
    ExitCode::SUCCESS
}
