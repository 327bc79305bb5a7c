//! One portal's tasks as a unit: its cursors loaded, then a committer per stream × sink and a
//! poller per stream, all under the portal's own cancellation token, so that a reload can stop
//! one portal (as SIGTERM stops them all) and start another while the sinks go on.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{AgentError, Tasks};
use crate::config::PortalConfig;
use crate::cursor::{Cursor, CursorError, StateDir};
use crate::event::{PortalInfo, Stream, format_utc_seconds};
use crate::pipeline::{
    COMMIT_QUEUE, CommitLane, DeadLetter, Delivery, Lane, Outlet, RequestClasses, SinkStats,
    StreamStats, run_committer,
};
use crate::source::Poller;
use crate::source::docspace::{Client, RateLimiter};

/// A running sink, as every portal's lanes reach it.
pub(super) struct SinkLane {
    pub(super) name: String,
    pub(super) tx: mpsc::Sender<Delivery>,
    pub(super) stats: Arc<SinkStats>,
}

/// What every portal's tasks attach to.
pub(super) struct Shared {
    pub(super) state: Arc<StateDir>,
    /// In the config's order of sinks (each portal's cursors are loaded in that order).
    pub(super) sinks: Vec<SinkLane>,
    pub(super) state_dir: PathBuf,
    pub(super) progress_interval: Duration,
}

/// Where one stream starts: the live poller's cursor, each sink's own, and which sinks had a
/// file of their own.
struct StreamStart {
    cursor: Cursor,
    own: Vec<Option<Cursor>>,
    had_file: Vec<bool>,
}

/// Where each stream of a portal starts.
pub(super) struct Starts(BTreeMap<Stream, StreamStart>);

impl Starts {
    /// Loads a portal's cursors (a corrupt one is an error, before anything is started). Each
    /// sink has its own cursor per stream; one without a file (an upgrade) starts from the
    /// stream's cursor of the release before, so an upgrade re-sends at most one batch.
    pub(super) fn load(
        state: &StateDir,
        p: &PortalConfig,
        sinks: &[String],
        now: OffsetDateTime,
    ) -> Result<Starts, CursorError> {
        let mut out = BTreeMap::new();
        for &stream in &p.streams {
            let mut own = Vec::with_capacity(sinks.len());
            for s in sinks {
                own.push(state.load_lane(&p.name, stream, Some(s))?);
            }
            let legacy = state.load(&p.name, stream)?;
            let had_file = own.iter().map(Option::is_some).collect();
            // One sink keeps the stream's file (a file of its own is left from a config that
            // had more sinks: the newer of the two counts).
            let single = sinks.len() == 1;
            let own: Vec<Option<Cursor>> = own
                .into_iter()
                .map(|c| match (c, &legacy) {
                    (Some(c), Some(l)) if single && l.watermark > c.watermark => Some(l.clone()),
                    (c, l) => c.or_else(|| l.clone()),
                })
                .collect();
            // The live poller reads from the newest of its sinks' cursors.
            let newest = own
                .iter()
                .flatten()
                .max_by_key(|c| c.watermark)
                .cloned()
                .or(legacy);
            let cursor = match newest {
                Some(c) => {
                    info!(portal = %p.name, stream = %stream, watermark = %format_utc_seconds(c.watermark), "resuming from cursor");
                    if c.watermark > now {
                        // Not corrupt: the clock was set back, or a cursor was restored from
                        // another machine. The poller waits until the clock passes it.
                        warn!(portal = %p.name, stream = %stream, watermark = %format_utc_seconds(c.watermark), now = %format_utc_seconds(now), "the cursor lies ahead of the clock: nothing is read until the clock passes it (check the system time, or move it with `cursor set`)");
                    }
                    c
                }
                None => {
                    let t = p.start_from.resolve(now);
                    info!(portal = %p.name, stream = %stream, from = %format_utc_seconds(t), "first run: starting from start_from");
                    Cursor::at(t)
                }
            };
            out.insert(
                stream,
                StreamStart {
                    cursor,
                    own,
                    had_file,
                },
            );
        }
        Ok(Starts(out))
    }
}

/// A started portal: its token (cancelled to stop it) and its stats.
pub(super) struct Unit {
    pub(super) token: CancellationToken,
    pub(super) streams: Vec<(Stream, Arc<StreamStats>)>,
    pub(super) requests: Arc<RequestClasses>,
}

/// Starts a portal's committers and pollers into `tasks`, under a child token of `parent`.
pub(super) fn start(
    shared: &Shared,
    p: &PortalConfig,
    starts: Starts,
    tasks: &mut Tasks,
    parent: &CancellationToken,
) -> Result<Unit, AgentError> {
    if p.tls.insecure_skip_verify {
        warn!(portal = %p.name, "tls.insecure_skip_verify = true: the portal's certificate is NOT checked");
    }
    let http = crate::http::client(&p.tls, p.timeout, &p.url)
        .map_err(|e| AgentError::Setup(format!("portals.{}: {e}", p.name)))?;
    let token = parent.child_token();
    let info = Arc::new(PortalInfo::new(&p.name, p.url.as_str()).with_labels(p.labels.clone()));
    let limiter = Arc::new(RateLimiter::new(p.max_requests_per_second));
    let requests = Arc::new(RequestClasses::default());
    let client = Client::new(http, p.url.clone(), p.api_key.clone(), info)
        .with_limits(limiter, p.concurrency)
        .with_max_response(p.max_response_mib)
        .with_request_classes(requests.clone());
    let pcfg = Arc::new(p.clone());
    let unit_name = Some(p.name.as_str());
    let mut streams = Vec::new();
    let peers: Vec<Arc<SinkStats>> = shared.sinks.iter().map(|s| s.stats.clone()).collect();
    let several = shared.sinks.len() > 1;
    for (stream, start) in starts.0 {
        let StreamStart {
            cursor,
            own,
            had_file,
        } = start;
        let stats = Arc::new(StreamStats::default());
        stats.beat();
        streams.push((stream, stats.clone()));
        let mut lanes = Vec::with_capacity(shared.sinks.len());
        for (i, sink) in shared.sinks.iter().enumerate() {
            // One committer per portal × stream × sink: each sink's progress is its own.
            let (ctx, crx) = mpsc::channel(COMMIT_QUEUE);
            let lane = CommitLane {
                sink: Some((sink.name.clone(), sink.stats.clone())),
                peers: peers.clone(),
                own_file: several,
            };
            let committer = run_committer(
                shared.state.clone(),
                p.name.clone(),
                stream,
                lane,
                crx,
                stats.clone(),
            );
            tasks.spawn(
                format!("committer {}/{stream}/{}", p.name, sink.name),
                unit_name,
                &token,
                async move {
                    committer.await;
                },
            );
            // A sink whose cursor is behind the live start catches up on its own.
            let mine = own.get(i).cloned().flatten();
            // With several sinks, a sink's file is written before it starts: from then on the
            // stream's file (which follows the sink furthest ahead) never stands in for it, so
            // a sink that never acknowledged anything keeps its place.
            if several && !had_file.get(i).copied().unwrap_or(false) {
                let at = mine.clone().unwrap_or_else(|| cursor.clone());
                if let Err(e) = shared
                    .state
                    .save_lane(&p.name, stream, Some(&sink.name), &at)
                {
                    // The committers spawned so far end with their lanes, in order.
                    token.cancel();
                    return Err(e.into());
                }
            }
            let behind = mine.filter(|c| c.watermark < cursor.watermark);
            let at = behind.as_ref().map_or(cursor.watermark, |c| c.watermark);
            sink.stats.acked_progress(&p.name, stream, 0, Some(at));
            lanes.push((
                Lane {
                    name: sink.name.clone(),
                    tx: sink.tx.clone(),
                    commits: ctx,
                    stats: sink.stats.clone(),
                },
                behind,
            ));
        }
        stats.set_watermark(
            own.iter()
                .flatten()
                .map(|c| c.watermark)
                .min()
                .unwrap_or(cursor.watermark)
                .min(cursor.watermark),
        );
        let outlet = Outlet::live(&p.name, stream, lanes, &cursor);
        let poller = Poller {
            client: client.clone(),
            cfg: pcfg.clone(),
            stream,
            cursor,
            outlet,
            dead_letter: DeadLetter::new(&shared.state_dir, &format!("portal.{}", p.name)),
            stats,
            progress_interval: shared.progress_interval,
            rejected_seen: Default::default(),
            chase: None,
        };
        tasks.spawn(
            format!("poller {}/{stream}", p.name),
            unit_name,
            &token,
            poller.run(token.clone()),
        );
    }
    Ok(Unit {
        token,
        streams,
        requests,
    })
}

/// Forgets a stopped portal in each sink's stats: its lag and its delivered counts.
pub(super) fn forget(sinks: &[SinkLane], portal: &str) {
    for s in sinks {
        if let Ok(mut m) = s.stats.acked.lock() {
            m.retain(|(p, _), _| p != portal);
        }
        if let Ok(mut m) = s.stats.delivered_by.lock() {
            m.retain(|(p, _), _| p != portal);
        }
    }
}
