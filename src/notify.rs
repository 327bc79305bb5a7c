//! systemd notifications (`Type=notify`): `READY=1` once the pipeline runs, `STOPPING=1` on a
//! stop, `RELOADING=1` on SIGHUP, and `WATCHDOG=1` while every poller shows life.
//!
//! Invariant: a no-op outside systemd (no `$NOTIFY_SOCKET`); never fails the agent.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::pipeline::{Registry, now_millis};

/// Sends one notification (e.g. `"READY=1"`) to `$NOTIFY_SOCKET`, if set.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    #[cfg(target_os = "linux")]
    {
        use std::os::linux::net::SocketAddrExt as _;
        let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
            return;
        };
        let bytes = path.as_encoded_bytes();
        let res = if let Some(name) = bytes.strip_prefix(b"@") {
            std::os::unix::net::SocketAddr::from_abstract_name(name)
                .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
        } else {
            sock.send_to(state.as_bytes(), std::path::Path::new(&path))
        };
        if let Err(e) = res {
            warn!(error = %e, "cannot notify systemd");
        }
    }
}

/// The watchdog period systemd asked for (`WatchdogSec=`), if it is meant for this process.
pub fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// When systemd asked for a watchdog: the task that feeds it every half period while every
/// poller has shown life within the period, and stops feeding (so systemd restarts the agent)
/// when one has stalled. It runs until `cancel` (the agent spawns and watches it).
pub fn watchdog(
    registry: Arc<Registry>,
    cancel: CancellationToken,
) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
    let period = watchdog_period()?;
    Some(async move {
        let mut tick = tokio::time::interval(period / 2);
        let mut warned = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = cancel.cancelled() => return,
            }
            let now = now_millis();
            let stalled: Vec<String> = registry
                .streams
                .iter()
                .filter(|(_, s)| {
                    now.saturating_sub(s.alive.load(Ordering::Relaxed)) > period.as_millis() as u64
                })
                .map(|((p, st), _)| format!("{p}/{st}"))
                .collect();
            if stalled.is_empty() {
                notify("WATCHDOG=1");
                warned = false;
            } else if !warned {
                warn!(stalled = ?stalled, "a poller has stalled; no longer feeding the systemd watchdog");
                warned = true;
            }
        }
    })
}
