//! The pipeline: one poller task per portal and stream, one task per sink, one committer per
//! portal and stream, joined by bounded channels.
//!
//! ```text
//! poller(portal, stream) ──Delivery──▶ sink task A ──ack──┐
//!            │          └─Delivery──▶ sink task B ──ack──┤
//!            └──Commit(cursor, acks)──▶ committer ◀──────┘ → StateDir::save
//! ```
//!
//! Invariants:
//! - Every channel is bounded: a slow or dead sink fills its queue, `emit` waits, the poller
//!   stops polling. Memory is bounded by queue capacity × batch size; nothing is dropped.
//! - A cursor is saved only after every sink acknowledged every event of its batch and of every
//!   batch before it (commits are awaited in order). A sink that dies drops its ack senders, so
//!   the committer stops without saving: at-least-once, never at-most-once.
//! - Saves are spaced by [`SAVE_GAP`]: batches acknowledged within it are covered by one save
//!   of the newest cursor, so a crash replays at most what was acknowledged within it (plus
//!   what was in flight). The first save after a quiet spell is not delayed. A cursor whose
//!   batches held no events waits up to [`QUIET_SAVE_GAP`] (a later save or shutdown saves it).
//! - Shutdown: cancelling stops the pollers at their next await; sinks drain their queues until
//!   the channels close; committers save what was acknowledged; then the process exits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, warn};

use crate::cursor::{Cursor, StateDir};
use crate::event::{Event, Stream};

mod outlet;
pub use outlet::{DETACH_GRACE, Detached, Fence, Lane, Outlet, Rejoin};

/// Batches each sink may have queued before the pollers wait.
pub const SINK_QUEUE: usize = 4;
/// Batches a committer may have waiting for acknowledgements.
pub const COMMIT_QUEUE: usize = 16;
/// Most events in one batch.
pub const BATCH_EVENTS: usize = 500;

/// A batch of events for one sink.
#[derive(Debug)]
pub struct Delivery {
    /// Events in order (oldest first) of one portal/stream.
    /// (An `Arc<Vec>`, not an `Arc<[Event]>`: turning the batch into a slice would copy it.)
    pub events: Arc<Vec<Event>>,
    /// Sent once every event was delivered or dead-lettered.
    pub done: oneshot::Sender<()>,
}

/// A cursor waiting for the acknowledgements of its batch, by one sink.
#[derive(Debug)]
pub struct Commit {
    /// The cursor after this batch (shared by the commits of every sink).
    pub cursor: Arc<Cursor>,
    /// The sink's acknowledgement (one; a vector so that a committer may fold several).
    pub acks: Vec<oneshot::Receiver<()>>,
    /// Events in the batch.
    pub events: usize,
}

/// The pipeline is shutting down (a receiver is gone).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("pipeline closed")]
pub struct Closed;

/// Whose progress a committer saves: one sink of a portal/stream (its own cursor file), or the
/// stream's own cursor (`sink: None`, the unit tests).
#[derive(Debug, Clone, Default)]
pub struct CommitLane {
    /// The sink, and its stats (where its acknowledged watermark is kept).
    pub sink: Option<(String, Arc<SinkStats>)>,
    /// Every sink of the stream: the stream's watermark and count are the least of theirs.
    pub peers: Vec<Arc<SinkStats>>,
    /// Whether the sink has a file of its own (`<portal>.<stream>.<sink>.json`): when the
    /// stream has several sinks. A stream with one sink keeps the stream's file, as before.
    pub own_file: bool,
}

impl CommitLane {
    /// Whether this sink is the first of those furthest ahead on `portal`'s `stream` (the one
    /// that also saves the stream's file).
    fn at_front(&self, portal: &str, stream: Stream) -> bool {
        let Some((_, me)) = &self.sink else {
            return false;
        };
        let key = (portal.to_owned(), stream);
        let marks: Vec<u64> = self
            .peers
            .iter()
            .map(|p| {
                p.acked
                    .lock()
                    .ok()
                    .and_then(|m| m.get(&key).map(|e| e.0))
                    .unwrap_or(0)
            })
            .collect();
        let Some(&front) = marks.iter().max() else {
            return false;
        };
        self.peers
            .iter()
            .zip(&marks)
            .find(|(_, w)| **w == front)
            .is_some_and(|(p, _)| Arc::ptr_eq(p, me))
    }

    /// Records acknowledged progress: the sink's, and the stream's (the least of its sinks').
    fn progress(
        &self,
        portal: &str,
        stream: Stream,
        stats: &StreamStats,
        events: u64,
        watermark: Option<time::OffsetDateTime>,
    ) {
        let Some((_, me)) = &self.sink else {
            stats.committed.fetch_add(events, Ordering::Relaxed);
            if let Some(w) = watermark {
                stats.set_watermark(w);
            }
            return;
        };
        me.acked_progress(portal, stream, events, watermark);
        let key = (portal.to_owned(), stream);
        let mut least: Option<(u64, u64)> = None;
        for peer in &self.peers {
            if let Some(&(w, c)) = peer.acked.lock().ok().as_ref().and_then(|m| m.get(&key)) {
                least = Some(least.map_or((w, c), |(lw, lc)| (lw.min(w), lc.min(c))));
            }
        }
        if let Some((w, c)) = least {
            stats.watermark.store(w, Ordering::Relaxed);
            stats.committed.store(c, Ordering::Relaxed);
        }
    }
}

/// Saves cursors in order as their batches are acknowledged. Returns the last saved cursor.
pub async fn run_committer(
    state: Arc<StateDir>,
    portal: String,
    stream: Stream,
    lane: CommitLane,
    mut commits: mpsc::Receiver<Commit>,
    stats: Arc<StreamStats>,
) -> Option<Arc<Cursor>> {
    let mut last = None;
    // The file it saves: the sink's own, or the stream's when the stream has one sink.
    let sink: Option<String> = lane
        .sink
        .as_ref()
        .filter(|_| lane.own_file)
        .map(|(n, _)| n.clone());
    // The newest acknowledged cursor that could not be saved, since when, and its events.
    let mut unsaved: Option<(Arc<Cursor>, std::time::Instant, u64)> = None;
    // A commit taken from the queue while coalescing, not fully acknowledged yet.
    let mut carried: Option<Commit> = None;
    // When the last save started (the first one is not delayed).
    let mut saved_at: Option<tokio::time::Instant> = None;
    // A cursor whose batches held no events, not saved yet (see QUIET_SAVE_GAP).
    let mut quiet: Option<Arc<Cursor>> = None;
    // The queue closed: what is left is saved at once.
    let mut closing = false;
    loop {
        let commit = match &unsaved {
            _ if carried.is_some() => carried.take(),
            // Saves are failing: try again every few seconds even when nothing new comes (the
            // poller may be holding, waiting for exactly this).
            Some((cursor, _, _)) => tokio::select! {
                c = commits.recv() => c,
                _ = tokio::time::sleep(SAVE_RETRY) => {
                    stats.saves.fetch_add(1, Ordering::Relaxed);
                    let st = state.clone();
                    let cursor = cursor.clone();
                    let p = portal.clone();
                    let k = sink.clone();
                    let saved = tokio::task::spawn_blocking(move || st.save_lane(&p, stream, k.as_deref(), &cursor)).await;
                    if let Ok(Ok(())) = saved
                        && let Some((cursor, _, events)) = unsaved.take()
                    {
                        lane.progress(&portal, stream, &stats, events, Some(cursor.watermark));
                        stats.held.store(false, Ordering::Relaxed);
                        stats.set_save_error(None);
                        tracing::info!(portal = %portal, stream = %stream, "cursor saved again");
                        last = Some(cursor);
                    }
                    continue;
                }
            },
            None => commits.recv().await,
        };
        let mut commit = match commit {
            Some(commit) => commit,
            None => match quiet.take() {
                // Shutdown: the quiet cursor is saved now.
                Some(cursor) => {
                    closing = true;
                    Commit {
                        cursor,
                        acks: Vec::new(),
                        events: 0,
                    }
                }
                None => break,
            },
        };
        for ack in commit.acks.drain(..) {
            if ack.await.is_err() {
                // A sink task ended without acknowledging: keep the old cursor (replay later).
                warn!(portal = %portal, stream = %stream, "a sink stopped before acknowledging; cursor not advanced");
                return last;
            }
        }
        // Coalesce: batches queued behind this one that every sink has acknowledged already
        // are covered by one save of the newest cursor (a fast catch-up otherwise pays one
        // fsync'd save per batch, and acknowledged progress waits in the queue unsaved).
        while let Ok(mut next) = commits.try_recv() {
            next.acks.retain_mut(|a| !matches!(a.try_recv(), Ok(())));
            if next.acks.is_empty() {
                commit.cursor = next.cursor;
                commit.events += next.events;
            } else {
                carried = Some(next);
                break;
            }
        }
        // Nothing new, only a later watermark: saved within QUIET_SAVE_GAP of the last save, by
        // a later save or at shutdown (not while saves are failing: that one is retried now).
        if commit.events == 0
            && !closing
            && unsaved.is_none()
            && saved_at.is_some_and(|at| at.elapsed() < QUIET_SAVE_GAP)
        {
            // What every sink has acknowledged: the lag that /health and /metrics show.
            lane.progress(&portal, stream, &stats, 0, Some(commit.cursor.watermark));
            quiet = Some(commit.cursor);
            continue;
        }
        quiet = None;
        // Space the saves: a catch-up acknowledges hundreds of batches a second, and each save
        // costs two fsyncs. Until SAVE_GAP has passed since the last one, later batches that
        // every sink acknowledges meanwhile are folded into this save.
        if let Some(at) = saved_at {
            let deadline = at + SAVE_GAP;
            if tokio::time::Instant::now() < deadline {
                absorb(deadline, &mut commit, &mut carried, &mut commits).await;
            }
        }
        saved_at = Some(tokio::time::Instant::now());
        stats.saves.fetch_add(1, Ordering::Relaxed);
        let st = state.clone();
        let cursor = commit.cursor.clone();
        let p = portal.clone();
        let k = sink.clone();
        let saved =
            tokio::task::spawn_blocking(move || st.save_lane(&p, stream, k.as_deref(), &cursor))
                .await;
        match saved {
            Ok(Ok(())) => {
                let before = unsaved.take().map_or(0, |(_, _, n)| n);
                if before > 0 {
                    tracing::info!(portal = %portal, stream = %stream, "cursor saved again");
                    stats.set_save_error(None);
                }
                stats.held.store(false, Ordering::Relaxed);
                lane.progress(
                    &portal,
                    stream,
                    &stats,
                    before + commit.events as u64,
                    Some(commit.cursor.watermark),
                );
                if sink.is_some() && lane.at_front(&portal, stream) {
                    // The stream's file follows the sink furthest ahead: what the live poller
                    // reads from after a restart, and what `cursor show` names first.
                    let st = state.clone();
                    let cursor = commit.cursor.clone();
                    let p = portal.clone();
                    if let Ok(Err(e)) =
                        tokio::task::spawn_blocking(move || st.save(&p, stream, &cursor)).await
                    {
                        warn!(portal = %portal, stream = %stream, error = %e, "cannot save the stream's cursor (each sink's own is saved)");
                    }
                }
                last = Some(commit.cursor);
            }
            Ok(Err(e)) => {
                // Delivered but not saved: a restart replays these events (duplicates, no loss).
                // Past a bound the poller holds, so that a crash cannot replay without limit.
                let (since, events) = unsaved
                    .take()
                    .map_or((std::time::Instant::now(), 0), |(_, t, n)| (t, n));
                let events = events + commit.events as u64;
                let hold = events >= UNSAVED_EVENTS_MAX || since.elapsed() >= UNSAVED_TIME_MAX;
                if hold && !stats.held.swap(true, Ordering::Relaxed) {
                    error!(portal = %portal, stream = %stream, unsaved_events = events, unsaved_for = %crate::retry::Secs(since.elapsed()), "cursor saves keep failing: polling paused until the state directory is writable again (free space or fix permissions on state_dir)");
                } else {
                    error!(portal = %portal, stream = %stream, error = %e, "cannot save cursor; events will be re-sent after a restart");
                }
                stats.set_save_error(Some(format!("cannot save cursor: {e}")));
                unsaved = Some((commit.cursor, since, events));
            }
            Err(e) => error!(error = %e, "cursor save task failed"),
        }
    }
    last
}

/// Waits until `deadline`, folding into `commit` each later commit whose batch every sink
/// acknowledges meanwhile (in order). Returns early when the queue closes (shutdown saves at
/// once) or a sink stopped without acknowledging; a commit still waiting for acknowledgements
/// at the deadline is left in `carried`.
async fn absorb(
    deadline: tokio::time::Instant,
    commit: &mut Commit,
    carried: &mut Option<Commit>,
    commits: &mut mpsc::Receiver<Commit>,
) {
    let sleep = tokio::time::sleep_until(deadline);
    tokio::pin!(sleep);
    loop {
        let mut next = match carried.take() {
            Some(next) => next,
            None => tokio::select! {
                biased;
                () = &mut sleep => return,
                next = commits.recv() => match next {
                    Some(next) => next,
                    None => return,
                },
            },
        };
        let acked = tokio::select! {
            biased;
            acked = std::future::poll_fn(|cx| poll_acks(&mut next.acks, cx)) => acked,
            () = &mut sleep => false,
        };
        if !acked {
            *carried = Some(next);
            return;
        }
        commit.cursor = next.cursor;
        commit.events += next.events;
    }
}

/// Ready(true) once every ack has arrived (each is dropped as it does, so polling again after
/// a timeout is safe); Ready(false) as soon as one sink dropped its sender (that receiver is
/// kept, and fails again when the committer awaits it).
fn poll_acks(
    acks: &mut Vec<oneshot::Receiver<()>>,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<bool> {
    use std::future::Future as _;
    let mut failed = false;
    acks.retain_mut(|a| match std::pin::Pin::new(a).poll(cx) {
        std::task::Poll::Ready(Ok(())) => false,
        std::task::Poll::Ready(Err(_)) => {
            failed = true;
            true
        }
        std::task::Poll::Pending => true,
    });
    if failed {
        std::task::Poll::Ready(false)
    } else if acks.is_empty() {
        std::task::Poll::Ready(true)
    } else {
        std::task::Poll::Pending
    }
}

/// Shortest time between two saves of one stream's cursor (two fsyncs each). A crash replays
/// at most the events acknowledged within it, beside those in flight; peers flush on a similar
/// clock (Vector's disk buffer every 500 ms, Filebeat's registry every 1 s).
pub const SAVE_GAP: std::time::Duration = std::time::Duration::from_millis(250);

/// Longest time a cursor that only moved its watermark (polls that found nothing new) waits
/// for its save: a caught-up agent would otherwise pay two fsyncs per stream at every poll for
/// nothing. It is saved at shutdown and covered by the next batch's save; a crash meanwhile
/// re-reads that quiet stretch, which emits nothing twice (the saved ids match the saved
/// watermark).
pub const QUIET_SAVE_GAP: std::time::Duration = std::time::Duration::from_secs(300);

/// How often a failed cursor save is tried again while nothing new arrives.
const SAVE_RETRY: std::time::Duration = std::time::Duration::from_secs(5);
/// Delivered events whose cursor could not be saved before polling pauses (reliability.md §4).
pub const UNSAVED_EVENTS_MAX: u64 = 10_000;
/// How long cursor saves may fail before polling pauses (reliability.md §4).
pub const UNSAVED_TIME_MAX: std::time::Duration = std::time::Duration::from_secs(600);

/// Counters and state of one portal/stream (read by progress logs, `/health`, `/metrics`).
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Events read from the portal and emitted.
    pub polled: AtomicU64,
    /// Events whose cursor was saved.
    pub committed: AtomicU64,
    /// Requests made.
    pub requests: AtomicU64,
    /// Rows that could not be decoded (dead-lettered).
    pub rejected: AtomicU64,
    /// Rows the portal could not return (every answer holding one fails; read around).
    pub unreadable: AtomicU64,
    /// Cursor saves attempted.
    pub saves: AtomicU64,
    /// Watermark as unix seconds.
    pub watermark: AtomicU64,
    /// The last error, cleared by a success.
    pub error: Mutex<Option<String>>,
    /// The committer's failing cursor save, kept apart from the poller's errors: a good window
    /// read must not hide a disk that is still full.
    pub save_error: Mutex<Option<String>>,
    /// When the poller last showed life (unix milliseconds), for the watchdog.
    pub alive: AtomicU64,
    /// When the last window was read successfully (unix seconds; 0 = never).
    pub last_success: AtomicU64,
    /// The portal's retention for this stream in seconds (0 = unknown).
    pub retention: AtomicU64,
    /// Cursor saves have failed past the bound: the poller holds until one succeeds.
    pub held: std::sync::atomic::AtomicBool,
    /// The watermark of the newest batch the live poller emitted (unix seconds): what each
    /// sink's lag is measured against.
    pub read: AtomicU64,
}

/// Warns when the delivered cursor of a stream falls behind by 50 % and then 80 % of the
/// portal's retention: past it, DocSpace deletes events the agent has not delivered yet. Runs
/// until `cancel` (the agent spawns and watches it).
pub async fn lag_monitor(
    registry: Arc<Registry>,
    every: std::time::Duration,
    cancel: tokio_util::sync::CancellationToken,
) {
    let mut warned: BTreeMap<(String, Stream), u8> = BTreeMap::new();
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cancel.cancelled() => return,
        }
        let now = now_millis() / 1000;
        for (key, s) in &registry.streams {
            let retention = s.retention.load(Ordering::Relaxed);
            let watermark = s.watermark.load(Ordering::Relaxed);
            if retention == 0 || watermark == 0 {
                continue;
            }
            let share = now.saturating_sub(watermark) * 100 / retention;
            let level = if share >= 80 {
                80
            } else if share >= 50 {
                50
            } else {
                0
            };
            let seen = warned.entry(key.clone()).or_default();
            if level > *seen {
                warn!(portal = %key.0, stream = %key.1, lag_seconds = now.saturating_sub(watermark), retention_days = retention / 86_400, "the undelivered backlog has reached {level}% of the portal's retention: DocSpace deletes older events, so fix the sinks before it reaches 100%");
            }
            *seen = level;
        }
    }
}

/// Returns freed heap to the system (glibc keeps it in its arenas otherwise, so an idle agent
/// would hold the peak of its last catch-up). A no-op elsewhere.
#[allow(unsafe_code)] // the one libc call below; see its SAFETY comment
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Caps glibc at two malloc arenas (it would make up to 8 per core, each keeping its own free
/// memory): the agent's threads mostly wait, and its idle RSS is what operators see. Call before
/// any thread starts; `MALLOC_ARENA_MAX` in the environment still wins. A no-op elsewhere.
#[allow(unsafe_code)] // the one libc call below; see its SAFETY comment
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; called before other threads exist.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// Now, in unix milliseconds.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl StreamStats {
    /// Marks the poller alive.
    pub fn beat(&self) {
        self.alive.store(now_millis(), Ordering::Relaxed);
    }

    /// Records the watermark.
    pub fn set_watermark(&self, t: time::OffsetDateTime) {
        self.watermark
            .store(t.unix_timestamp().max(0) as u64, Ordering::Relaxed);
    }

    /// Sets or clears the last error.
    pub fn set_error(&self, e: Option<String>) {
        if let Ok(mut g) = self.error.lock() {
            *g = e;
        }
    }

    /// Sets or clears the cursor-save error (the committer's).
    pub fn set_save_error(&self, e: Option<String>) {
        if let Ok(mut g) = self.save_error.lock() {
            *g = e;
        }
    }

    /// The error to show: a failing cursor save first, else the last error.
    pub fn error(&self) -> Option<String> {
        self.save_error
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .or_else(|| self.error.lock().ok().and_then(|g| g.clone()))
    }
}

/// Counters and state of one sink.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Events delivered.
    pub delivered: AtomicU64,
    /// Events the sink's filter skipped.
    pub filtered: AtomicU64,
    /// Events dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Delivery attempts that failed and were retried.
    pub retries: AtomicU64,
    /// UDP messages truncated to fit a datagram.
    pub truncated: AtomicU64,
    /// Batches waiting in the sink's queue (its depth, at most [`SINK_QUEUE`]).
    pub queued: AtomicU64,
    /// When the sink last delivered (unix seconds; 0 = never).
    pub last_success: AtomicU64,
    /// The last error, cleared by a success.
    pub error: Mutex<Option<String>>,
    /// Events delivered, by the portal and stream they came from.
    pub delivered_by: Mutex<BTreeMap<(String, Stream), u64>>,
    /// The sink refused for a reason only its operator can fix (credentials, a revoked URL):
    /// the pollers detach it; cleared by its next success.
    pub failed: std::sync::atomic::AtomicBool,
    /// Portal/streams whose live poller does not feed this sink (a chaser does).
    pub detached: AtomicU64,
    /// By portal and stream: the watermark (unix seconds) of the sink's saved cursor, and the
    /// events its committer saved.
    pub acked: Mutex<BTreeMap<(String, Stream), (u64, u64)>>,
}

impl SinkStats {
    /// Counts `n` events of `portal`'s `stream` as delivered.
    pub fn count_delivered(&self, portal: &str, stream: Stream, n: u64) {
        self.delivered.fetch_add(n, Ordering::Relaxed);
        if let Ok(mut by) = self.delivered_by.lock() {
            match by.get_mut(&(portal.to_owned(), stream)) {
                Some(c) => *c += n,
                None => {
                    by.insert((portal.to_owned(), stream), n);
                }
            }
        }
    }

    /// Sets or clears the last error.
    pub fn set_error(&self, e: Option<String>) {
        if let Ok(mut g) = self.error.lock() {
            *g = e;
        }
    }

    /// The last error.
    pub fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|g| g.clone())
    }

    /// Records the sink's saved progress on `portal`'s `stream`.
    pub fn acked_progress(
        &self,
        portal: &str,
        stream: Stream,
        events: u64,
        watermark: Option<time::OffsetDateTime>,
    ) {
        if let Ok(mut m) = self.acked.lock() {
            let e = m.entry((portal.to_owned(), stream)).or_default();
            if let Some(w) = watermark {
                e.0 = w.unix_timestamp().max(0) as u64;
            }
            e.1 += events;
        }
    }

    /// `live`, `catching_up` (some stream's live poller does not feed it) or `failed`.
    pub fn state(&self) -> &'static str {
        if self.failed.load(Ordering::Relaxed) {
            "failed"
        } else if self.detached.load(Ordering::Relaxed) > 0 {
            "catching_up"
        } else {
            "live"
        }
    }

    /// Seconds its saved progress trails the newest event read, at worst over its streams.
    pub fn lag(&self, streams: &BTreeMap<(String, Stream), Arc<StreamStats>>) -> u64 {
        let Ok(m) = self.acked.lock() else {
            return 0;
        };
        m.iter()
            .filter_map(|(k, (w, _))| {
                let read = streams.get(k)?.read.load(Ordering::Relaxed);
                Some(read.saturating_sub(*w))
            })
            .max()
            .unwrap_or(0)
    }
}

/// Requests to one portal by the class of their answer.
#[derive(Debug, Default)]
pub struct RequestClasses {
    /// 2xx, 3xx, 4xx (429 included), 5xx, and requests that got no answer (connection, TLS,
    /// timeout).
    pub counts: [AtomicU64; 5],
}

impl RequestClasses {
    /// The label of each count.
    pub const LABELS: [&'static str; 5] = ["2xx", "3xx", "4xx", "5xx", "none"];

    /// Counts an answer with `status`, or none (`None`).
    pub fn count(&self, status: Option<u16>) {
        let i = match status {
            Some(200..=299) => 0,
            Some(300..=399) => 1,
            Some(400..=499) => 2,
            Some(_) => 3,
            None => 4,
        };
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// Every stats object, by name.
#[derive(Debug, Default)]
pub struct Registry {
    /// `(portal, stream)` → stats.
    pub streams: BTreeMap<(String, Stream), Arc<StreamStats>>,
    /// portal → its requests by the class of their answer.
    pub requests: BTreeMap<String, Arc<RequestClasses>>,
    /// sink name → stats.
    pub sinks: BTreeMap<String, Arc<SinkStats>>,
    /// Tasks that died (a panic, or an end while the agent was running): `/health` is never
    /// ok again in this process, which exits non-zero once the pipeline has stopped.
    pub dead_tasks: Mutex<Vec<String>>,
}

impl Registry {
    /// Records a task's death, for `/health`.
    pub fn task_died(&self, why: &str) {
        if let Ok(mut dead) = self.dead_tasks.lock() {
            dead.push(why.to_owned());
        }
    }

    /// The tasks that died.
    pub fn dead_tasks(&self) -> Vec<String> {
        self.dead_tasks
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }
}

/// Largest dead-letter file before it is rotated to `.1` (two files at most per sink).
pub const DEAD_LETTER_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Appends rejected events to `<state_dir>/dead-letter/<name>.ndjson` (mode 0600), one JSON
/// object per event with the reason; rotated at [`DEAD_LETTER_MAX_BYTES`].
#[derive(Debug, Clone)]
pub struct DeadLetter {
    path: PathBuf,
}

impl DeadLetter {
    /// The dead-letter file of `name` under `state_dir`.
    pub fn new(state_dir: &Path, name: &str) -> DeadLetter {
        DeadLetter {
            path: state_dir.join("dead-letter").join(format!("{name}.ndjson")),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends records; each is `{"reason":…, "event":…}` plus `extra` fields.
    pub fn append(&self, records: &[(Value, String)]) -> std::io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        // `dead-letter/` (created 0700) through its descriptor, the file never through a link
        // (see cursor::PrivateDir): whoever can write to the state directory cannot point an
        // append elsewhere.
        let Some(dir) = self.path.parent() else {
            return Err(std::io::Error::other(
                "dead-letter path without a directory",
            ));
        };
        let dir = crate::cursor::PrivateDir::open_below(dir, 1, true)?;
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Size cap: past DEAD_LETTER_MAX_BYTES the file becomes `<name>.ndjson.1` (replacing
        // an older one) and a new file starts, so a sink rejecting everything cannot fill the
        // disk; the newest rejects are always kept.
        if dir.len(&name).is_some_and(|l| l >= DEAD_LETTER_MAX_BYTES) {
            dir.rename(&name, &format!("{name}.1"))?;
        }
        let mut buf = Vec::new();
        for (event, reason) in records {
            let line = json!({
                "time": crate::event::format_utc_millis(time::OffsetDateTime::now_utc()),
                "reason": reason,
                "event": event,
            });
            serde_json::to_writer(&mut buf, &line)?;
            buf.push(b'\n');
        }
        dir.append(&name, &buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    fn commit(t: i64, acked: bool) -> (Commit, Option<oneshot::Sender<()>>) {
        let (done, ack) = oneshot::channel();
        let done = if acked {
            let _ = done.send(());
            None
        } else {
            Some(done)
        };
        let cursor = Arc::new(Cursor::at(
            OffsetDateTime::from_unix_timestamp(t).expect("time"),
        ));
        let commit = Commit {
            cursor,
            acks: vec![ack],
            events: 10,
        };
        (commit, done)
    }

    type Committed = tokio::task::JoinHandle<Option<Arc<Cursor>>>;

    fn committer(
        dir: &Path,
    ) -> (
        Arc<StateDir>,
        Arc<StreamStats>,
        mpsc::Sender<Commit>,
        Committed,
    ) {
        let state = Arc::new(StateDir::open(dir).expect("state dir"));
        let stats = Arc::new(StreamStats::default());
        let (tx, rx) = mpsc::channel(COMMIT_QUEUE);
        let task = tokio::spawn(run_committer(
            state.clone(),
            "p".into(),
            Stream::Login,
            CommitLane::default(),
            rx,
            stats.clone(),
        ));
        (state, stats, tx, task)
    }

    fn saved_watermark(state: &StateDir) -> Option<i64> {
        let c = state.load("p", Stream::Login).expect("cursor loads")?;
        Some(c.watermark.unix_timestamp())
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_acknowledged_batches_costs_few_saves_and_the_newest_cursor_is_saved() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (state, stats, tx, task) = committer(dir.path());
        // A catch-up's pace: a batch every 4 ms for about 0.8 s, each acknowledged at once.
        for t in 1..=200 {
            tx.send(commit(t, true).0).await.expect("queued");
            tokio::time::sleep(std::time::Duration::from_millis(4)).await;
        }
        // Nothing new comes, and the queue stays open: the newest cursor is still saved
        // within one gap.
        let t0 = tokio::time::Instant::now();
        while saved_watermark(&state) != Some(200) {
            assert!(
                t0.elapsed() < SAVE_GAP * 8,
                "the newest cursor was not saved within {:?}",
                SAVE_GAP * 8
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let saves = stats.saves.load(Ordering::Relaxed);
        let most = (t0.elapsed() + 200 * std::time::Duration::from_millis(4)).as_millis()
            / SAVE_GAP.as_millis()
            + 2;
        assert!(
            saves as u128 <= most,
            "200 batches took {saves} saves (at most {most})"
        );
        drop(tx);
        let last = task.await.expect("committer ends");
        assert_eq!(last.map(|c| c.watermark.unix_timestamp()), Some(200));
        assert_eq!(stats.committed.load(Ordering::Relaxed), 2000);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_save_is_not_delayed_and_shutdown_saves_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (state, stats, tx, task) = committer(dir.path());
        let t0 = tokio::time::Instant::now();
        tx.send(commit(1, true).0).await.expect("queued");
        while saved_watermark(&state) != Some(1) {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        assert!(
            t0.elapsed() < SAVE_GAP,
            "the first save waited {:?}",
            t0.elapsed()
        );
        // The next batch falls within the gap; closing the queue saves it without waiting.
        tx.send(commit(2, true).0).await.expect("queued");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        drop(tx);
        let last = task.await.expect("committer ends");
        assert_eq!(last.map(|c| c.watermark.unix_timestamp()), Some(2));
        assert_eq!(saved_watermark(&state), Some(2));
        assert_eq!(stats.saves.load(Ordering::Relaxed), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_not_yet_acknowledged_is_never_folded_into_a_save() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (state, _stats, tx, task) = committer(dir.path());
        tx.send(commit(1, true).0).await.expect("queued");
        tx.send(commit(2, true).0).await.expect("queued");
        let (pending, done) = commit(3, false);
        tx.send(pending).await.expect("queued");
        // Two gaps later cursor 2 is saved, cursor 3 (unacknowledged) is not.
        tokio::time::sleep(SAVE_GAP * 3).await;
        assert_eq!(saved_watermark(&state), Some(2));
        // The sink dies without acknowledging: the committer stops at 2.
        drop(done);
        let last = task.await.expect("committer ends");
        assert_eq!(last.map(|c| c.watermark.unix_timestamp()), Some(2));
        assert_eq!(saved_watermark(&state), Some(2));
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn polls_that_find_nothing_are_saved_by_the_next_batch_or_at_shutdown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (state, stats, tx, task) = committer(dir.path());
        tx.send(commit(1, true).0).await.expect("queued");
        let quiet = |t| Commit {
            events: 0,
            ..commit(t, true).0
        };
        // Ten polls that found nothing, well after the first save's gap.
        tokio::time::sleep(SAVE_GAP * 2).await;
        for t in 2..=11 {
            tx.send(quiet(t)).await.expect("queued");
            tokio::time::sleep(SAVE_GAP / 5).await;
        }
        tokio::time::sleep(SAVE_GAP * 2).await;
        assert_eq!(saved_watermark(&state), Some(1), "quiet cursors wait");
        assert_eq!(stats.saves.load(Ordering::Relaxed), 1);
        assert_eq!(
            stats.watermark.load(Ordering::Relaxed),
            11,
            "/health and /metrics show the acknowledged watermark"
        );
        // A batch with events is saved as before, and covers them.
        tx.send(commit(12, true).0).await.expect("queued");
        tokio::time::sleep(SAVE_GAP * 2).await;
        assert_eq!(saved_watermark(&state), Some(12));
        // A quiet one again: saved at shutdown.
        tx.send(quiet(13)).await.expect("queued");
        tokio::time::sleep(SAVE_GAP * 2).await;
        assert_eq!(saved_watermark(&state), Some(12));
        drop(tx);
        let last = task.await.expect("committer ends");
        assert_eq!(last.map(|c| c.watermark.unix_timestamp()), Some(13));
        assert_eq!(saved_watermark(&state), Some(13));
        assert_eq!(stats.saves.load(Ordering::Relaxed), 3);
        assert_eq!(stats.committed.load(Ordering::Relaxed), 20);
    }
}
