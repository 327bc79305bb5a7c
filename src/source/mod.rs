//! The source: the poll loop of one portal and stream.
//!
//! Each poll pins `to = now − settle`, re-reads part of what it read before, drops the ids it
//! already emitted, sorts the window oldest first and emits it in batches. How far back it
//! re-reads: during a catch-up, every window starts `overlap` before the watermark; once caught
//! up, a full re-read happens every `overlap_every`, reaching `overlap` before where the
//! *previous* full read ended, and the polls in between re-read only one `poll_interval`. So a
//! row that lands up to `settle + overlap` late is still read, at the cost of reading each row
//! a few times instead of once per poll during the whole overlap. A catch-up walks
//! windows of `catchup_window` (halved when a window holds more than `max_window_events`,
//! doubled when it is sparse), oldest window first, so memory stays bounded whatever the
//! backlog.
//!
//! Invariants:
//! - The in-memory cursor only describes what was *emitted*; the durable cursor moves later,
//!   in the committer, once every sink acknowledged (see [`crate::pipeline`]).
//! - A failed request or page moves nothing: the same window is read again after a delay that
//!   depends on the error (backoff with jitter, `Retry-After`, or a slow `error_retry` for
//!   errors only an operator can fix). There is never a retry storm.
//! - Cancellation happens only between requests and between batches.

pub mod docspace;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rustc_hash::FxHashSet;
use secrecy::SecretString;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};
use url::Url;

use crate::cursor::{Cursor, MAX_SEEN};
use crate::event::{Event, Stream, format_utc_seconds};
use crate::http::HttpTls;
use crate::pipeline::{BATCH_EVENTS, DeadLetter, Outlet, StreamStats};
use crate::retry::{Backoff, retry_after};
use docspace::{Client, ErrorClass};

/// Where a portal's first run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// This long before the first start.
    Ago(Duration),
    /// A fixed instant.
    At(OffsetDateTime),
}

impl StartFrom {
    /// The instant, relative to `now`. Total: a duration reaching back before 1970 (such as
    /// `"100000y"`, which panicked the start) starts at 1970-01-01, older than any DocSpace row.
    pub fn resolve(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            StartFrom::Ago(d) => time::Duration::try_from(d)
                .ok()
                .and_then(|d| now.checked_sub(d))
                .filter(|t| *t >= OffsetDateTime::UNIX_EPOCH)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            StartFrom::At(t) => t,
        }
    }
}

/// One `[portals.NAME]`.
#[derive(Debug, Clone)]
pub struct PortalConfig {
    /// Table name.
    pub name: String,
    /// Base URL, no trailing slash.
    pub url: Url,
    /// The `sk-…` API key, sent as `Authorization: Bearer`.
    pub api_key: SecretString,
    /// Streams to poll.
    pub streams: Vec<Stream>,
    /// Pause between polls once caught up.
    pub poll_interval: Duration,
    /// First run only: where to start.
    pub start_from: StartFrom,
    /// Each poll reads up to `now − settle`, so rows still being written are not missed.
    pub settle: Duration,
    /// Re-read before the watermark to catch late and out-of-order rows.
    pub overlap: Duration,
    /// How often the whole `overlap` is re-read once caught up (the polls between re-read only
    /// since the previous poll).
    pub overlap_every: Duration,
    /// Initial span of a catch-up window (adapts to the event density).
    pub catchup_window: Duration,
    /// A window holding more events than this is split in half (bounds memory).
    pub max_window_events: usize,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Largest answer body read from the portal, in MiB.
    pub max_response_mib: u64,
    /// Retry interval after errors only an operator can fix (401, 403, 402, plan fallback).
    pub error_retry: Duration,
    /// Requests of one window kept in flight at once during a catch-up.
    pub concurrency: usize,
    /// Requests per second to this portal, all streams together (0: no client-side limit).
    pub max_requests_per_second: f64,
    /// TLS for the portal connection.
    pub tls: HttpTls,
    /// `labels` (a customer's name or id, …), sorted by key: carried on every event's
    /// [`PortalInfo`](crate::event::PortalInfo).
    pub labels: Vec<(String, String)>,
}

/// Longest catch-up window after doubling.
const MAX_SPAN: Duration = Duration::from_secs(30 * 86_400);
/// Events read (by all pollers together) before a caught-up poller returns free heap to the
/// system: counted process-wide, since 500 portals of 30 events each free as much as one of
/// 15,000, and no poller of theirs would reach the count alone.
const TRIM_AFTER_EVENTS: usize = 5_000;

/// Events read by every poller since the last trim (see [`TRIM_AFTER_EVENTS`]).
static UNTRIMMED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// How long a caught-up poller lets its last batches drain before the trim.
const TRIM_DELAY: Duration = Duration::from_secs(2);

/// Returns free heap to the system, once per [`TRIM_AFTER_EVENTS`] read by all pollers.
fn trim_free_memory() {
    let read = UNTRIMMED.swap(0, Ordering::Relaxed);
    if read >= TRIM_AFTER_EVENTS {
        crate::pipeline::release_free_memory();
    } else {
        // Another poller trimmed first: what was read since then still counts.
        UNTRIMMED.fetch_add(read, Ordering::Relaxed);
    }
}

/// Shortest window after halving.
const MIN_SPAN: Duration = Duration::from_secs(1);

/// The poll loop of one portal/stream.
pub struct Poller {
    /// The portal's client.
    pub client: Client,
    /// The portal's settings.
    pub cfg: Arc<PortalConfig>,
    /// Which log.
    pub stream: Stream,
    /// What was emitted so far (starts at the durable cursor).
    pub cursor: Cursor,
    /// Where batches go.
    pub outlet: Outlet,
    /// Where undecodable rows go.
    pub dead_letter: DeadLetter,
    /// Counters.
    pub stats: Arc<StreamStats>,
    /// How often a catch-up logs its progress.
    pub progress_interval: Duration,
    /// Fingerprints of undecodable rows already dead-lettered (in memory; a restart may write
    /// one again, never lose one).
    pub rejected_seen: HashSet<u64>,
    /// `Some` for a chaser: a poller that feeds one detached sink until it rejoins the live one.
    pub chase: Option<Chase>,
}

/// What makes a poller a chaser (see [`crate::pipeline::Outlet`]): it reads the portal again
/// from a detached sink's cursor, through the same client (so the portal's rate limiter), into
/// that sink's queue and committer only, and stops once it has read up to the fence the live
/// poller gave it.
#[derive(Debug)]
pub struct Chase {
    /// The sink.
    pub sink: String,
    /// Its lane in the live outlet.
    pub lane: usize,
    /// Where it asks the live poller to rejoin.
    pub rejoin: tokio::sync::mpsc::Sender<crate::pipeline::Rejoin>,
    /// The fence it reads up to, once the live poller answered.
    pub fence: Option<crate::pipeline::Fence>,
}

/// What a chaser does at the top of its loop.
enum ChaseStep {
    /// Read on (up to this instant at most, when a fence is set).
    Read(Option<OffsetDateTime>),
    /// Rejoined, or the pipeline is stopping.
    Stop,
}

/// A stable fingerprint of a raw row (its JSON text).
fn row_fingerprint(row: &serde_json::Value) -> u64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    row.to_string().hash(&mut h);
    h.finish()
}

/// Sleeps unless cancelled first; returns false when cancelled.
async fn pause(cancel: &CancellationToken, d: Duration, stats: &StreamStats) -> bool {
    tokio::select! {
        _ = beating(tokio::time::sleep(d), stats) => true,
        _ = cancel.cancelled() => false,
    }
}

/// How often a waiting poller marks itself alive: a quarter of the systemd watchdog period
/// (`WatchdogSec=`; 100 ms to 15 s), or never when no watchdog reads the heartbeats, so that
/// an idle agent does not wake for them.
fn beat_period() -> Option<Duration> {
    static PERIOD: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    *PERIOD.get_or_init(|| {
        crate::notify::watchdog_period()
            .map(|p| (p / 4).clamp(Duration::from_millis(100), Duration::from_secs(15)))
    })
}

/// Runs `fut`, marking the poller alive every [`beat_period`] meanwhile: waiting on DocSpace,
/// on a full sink queue or on a timer is life; only a task that stops being polled (a stall)
/// goes quiet, which is what the systemd watchdog is fed from.
async fn beating<F: std::future::Future>(fut: F, stats: &StreamStats) -> F::Output {
    let Some(period) = beat_period() else {
        return fut.await;
    };
    tokio::pin!(fut);
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            r = &mut fut => return r,
            _ = tick.tick() => stats.beat(),
        }
    }
}

impl Poller {
    /// Runs until cancelled or until the pipeline closes; a live poller then waits for its
    /// chasers (a chaser that panicked panics the poller, which the agent watches).
    pub async fn run(self, cancel: CancellationToken) {
        let mut chasers = Vec::new();
        self.run_loop(&cancel, &mut chasers).await;
        for h in chasers {
            if let Err(e) = h.await
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }

    /// Boxed, so that the live poller can spawn chasers, which are pollers too.
    fn run_boxed(
        self,
        cancel: CancellationToken,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            let mut none = Vec::new();
            self.run_loop(&cancel, &mut none).await;
        })
    }

    /// Starts a chaser for each sink the live outlet detached; reaps chasers that ended.
    fn start_chasers(
        &mut self,
        cancel: &CancellationToken,
        chasers: &mut Vec<tokio::task::JoinHandle<()>>,
    ) {
        let mut i = 0;
        while i < chasers.len() {
            if chasers[i].is_finished() {
                let h = chasers.swap_remove(i);
                // Finished: this does not wait.
                if let Some(Err(e)) = futures_now(h)
                    && e.is_panic()
                {
                    std::panic::resume_unwind(e.into_panic());
                }
            } else {
                i += 1;
            }
        }
        for d in self.outlet.take_detached() {
            let rejoin = self.outlet.rejoin_sender();
            let chaser = Poller {
                client: self.client.clone(),
                cfg: self.cfg.clone(),
                stream: self.stream,
                cursor: (*d.from).clone(),
                outlet: Outlet::chaser(&self.cfg.name, self.stream, d.sink.clone(), d.from),
                dead_letter: self.dead_letter.clone(),
                stats: Arc::new(StreamStats::default()),
                progress_interval: self.progress_interval,
                rejected_seen: HashSet::new(),
                chase: Some(Chase {
                    sink: d.sink.name.clone(),
                    lane: d.lane,
                    rejoin,
                    fence: None,
                }),
            };
            chasers.push(tokio::spawn(chaser.run_boxed(cancel.clone())));
        }
    }

    /// A chaser's step at the top of its loop: past its fence, it tells the live poller and
    /// stops; caught up without one, it asks for one (and waits for the live poller's next
    /// batch boundary).
    async fn chase_step(&mut self, cancel: &CancellationToken, caught_up: bool) -> ChaseStep {
        let portal = self.cfg.name.clone();
        let stream = self.stream;
        let watermark = self.cursor.watermark;
        let Some(chase) = self.chase.as_mut() else {
            return ChaseStep::Read(None);
        };
        if let Some(fence) = chase.fence.take() {
            let at = fence.cursor.watermark;
            if watermark < at {
                let ceiling = Some(at);
                chase.fence = Some(fence);
                return ChaseStep::Read(ceiling);
            }
            if fence.done.send(()).is_ok() {
                info!(portal = %portal, stream = %stream, sink = %chase.sink, watermark = %format_utc_seconds(watermark), "caught up: the sink rejoins the live poller");
                return ChaseStep::Stop;
            }
            // The live poller gave up waiting: chase on, and ask again.
            return ChaseStep::Read(None);
        }
        if !caught_up {
            return ChaseStep::Read(None);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let asked = crate::pipeline::Rejoin {
            lane: chase.lane,
            fence: tx,
        };
        let answered = tokio::select! {
            r = async {
                chase.rejoin.send(asked).await.ok()?;
                rx.await.ok()
            } => r,
            _ = cancel.cancelled() => None,
        };
        match answered {
            Some(fence) => {
                chase.fence = Some(fence);
                // Decided at once if the fence is not ahead.
                Box::pin(self.chase_step(cancel, caught_up)).await
            }
            None => ChaseStep::Stop,
        }
    }

    /// The poll loop (see the module doc); a chaser's ends when it rejoins.
    async fn run_loop(
        mut self,
        cancel: &CancellationToken,
        chasers: &mut Vec<tokio::task::JoinHandle<()>>,
    ) {
        let cancel = cancel.clone();
        let portal = self.cfg.name.clone();
        let stream = self.stream;
        let settle = time::Duration::try_from(self.cfg.settle).unwrap_or(time::Duration::MINUTE);
        let overlap =
            time::Duration::try_from(self.cfg.overlap).unwrap_or(time::Duration::minutes(10));
        let mut span = self.cfg.catchup_window;
        // Where the last full read ended (`to`; the watermark while catching up), and when it
        // started. A row it missed showed up after it started, so one at most settle +
        // overlap late is dated after anchor − overlap: the next full re-read starts there.
        let mut anchor = self.cursor.watermark;
        let mut last_full: Option<Instant> = None;
        let mut live = false;
        // When the last window read began (wall clock), in this process.
        let mut prev_read: Option<OffsetDateTime> = None;
        let tail = overlap.min(
            time::Duration::try_from(self.cfg.poll_interval).unwrap_or(time::Duration::SECOND),
        );
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        let mut report = Progress::new(self.progress_interval);
        // Only login history is ever deleted: audit-trail deletion has been off in DocSpace
        // since 513b155f9f (docs/docspace-api.md §14.5), whatever its lifetime setting says.
        let retention = match stream {
            Stream::Login => self
                .client
                .lifetime_days(stream)
                .await
                .map(|d| Duration::from_secs(d.saturating_mul(86_400))),
            Stream::Audit => None,
        };
        self.stats
            .retention
            .store(retention.map_or(0, |r| r.as_secs()), Ordering::Relaxed);
        if let Some(r) = retention {
            let age = (OffsetDateTime::now_utc() - self.cursor.watermark)
                .whole_seconds()
                .max(0) as u64;
            if age > r.as_secs() {
                warn!(portal = %portal, stream = %stream, retention_days = r.as_secs() / 86_400, "the cursor is older than the portal's retention: events between them may already be deleted");
            }
        }
        // (The stream's watermark is its sinks' saved progress, set by the agent and the
        // committers; `read` is where the live poller is.)
        if self.chase.is_none() {
            self.stats.read.store(
                self.cursor.watermark.unix_timestamp().max(0) as u64,
                Ordering::Relaxed,
            );
        }
        info!(portal = %portal, stream = %stream, watermark = %format_utc_seconds(self.cursor.watermark), "polling");
        loop {
            self.stats.beat();
            if cancel.is_cancelled() {
                break;
            }
            if self.stats.held.load(Ordering::Relaxed) {
                // The committer cannot save cursors: reading on would only grow what a crash
                // replays. It clears the hold once a save succeeds.
                self.stats.set_error(Some(
                    "polling paused: cursor saves keep failing (is state_dir full or read-only?)"
                        .to_owned(),
                ));
                if !pause(&cancel, Duration::from_secs(1), &self.stats).await {
                    break;
                }
                continue;
            }
            if self.chase.is_none() {
                self.start_chasers(&cancel, chasers);
            }
            let now = OffsetDateTime::now_utc();
            let mut target = now - settle;
            if self.chase.is_some() {
                match self.chase_step(&cancel, live).await {
                    ChaseStep::Stop => break,
                    ChaseStep::Read(Some(ceiling)) => target = target.min(ceiling),
                    ChaseStep::Read(None) => {}
                }
            }
            if self.cursor.watermark >= target {
                if !pause(&cancel, self.cfg.poll_interval, &self.stats).await {
                    break;
                }
                continue;
            }
            let watermark = self.cursor.watermark;
            let full = !live || last_full.is_none_or(|t| t.elapsed() >= self.cfg.overlap_every);
            let from = match (full, live) {
                (false, _) => watermark - tail,
                (true, true) => anchor.min(watermark) - overlap,
                // The last window (read at `prev_read`, in this process) ended at the
                // watermark: a row it missed showed up after it was read, so it is later than
                // prev_read − watermark. Past settle + overlap that is beyond the promise, and
                // a catch-up far behind `now` skips the re-read.
                (true, false) if prev_read.is_some_and(|t| t - watermark > settle + overlap) => {
                    watermark
                }
                (true, false) => watermark - overlap,
            };
            let started = Instant::now();
            let skip: FxHashSet<i64> = if from < watermark {
                self.cursor.seen.iter().map(|(id, _)| *id).collect()
            } else {
                FxHashSet::default()
            };
            let span_t = time::Duration::try_from(span).unwrap_or(time::Duration::HOUR);
            let to = (self.cursor.watermark + span_t).min(target);
            let result = tokio::select! {
                r = beating(self.client.window_skipping(stream, from, to, self.cfg.max_window_events, skip), &self.stats) => r,
                _ = cancel.cancelled() => break,
            };
            let window = match result {
                Ok(w) => w,
                Err(e) => {
                    self.stats.set_error(Some(e.to_string()));
                    let delay = match e.class() {
                        ErrorClass::Transient => backoff.next_delay(),
                        ErrorClass::RateLimited(s) => retry_after(s, Duration::from_secs(600)),
                        ErrorClass::NeedsOperator => self.cfg.error_retry,
                    };
                    match e.class() {
                        ErrorClass::NeedsOperator => {
                            error!(portal = %portal, stream = %stream, retry_in = %crate::retry::Secs(delay), "{e}")
                        }
                        _ => {
                            warn!(portal = %portal, stream = %stream, retry_in = %crate::retry::Secs(delay), "{e}")
                        }
                    }
                    if !pause(&cancel, delay, &self.stats).await {
                        break;
                    }
                    continue;
                }
            };
            backoff.reset();
            if let Some(was) = self.stats.error.lock().ok().and_then(|g| g.clone()) {
                info!(portal = %portal, stream = %stream, after = %was, "the portal answers again: reading on from the cursor");
            }
            self.stats.set_error(None);
            self.stats
                .last_success
                .store(crate::pipeline::now_millis() / 1000, Ordering::Relaxed);
            self.stats
                .requests
                .fetch_add(u64::from(window.requests), Ordering::Relaxed);
            if window.too_many && span > MIN_SPAN {
                // Pages come newest first, so what was read covers [oldest read, to]: size the
                // next span from that density (with room to spare), at most half the last one.
                let oldest = window.events.iter().map(|e| e.time).min().unwrap_or(to);
                let covered = (to - oldest).whole_seconds().max(1) as f64;
                let read = (window.events.len() + window.rejected.len()).max(1) as f64;
                let fit = covered * self.cfg.max_window_events as f64 / read * 0.8;
                span = Duration::from_secs_f64(fit).min(span / 2).max(MIN_SPAN);
                debug!(portal = %portal, stream = %stream, span = %crate::retry::Secs(span), "window too dense; splitting");
                continue;
            }
            if window.too_many {
                warn!(portal = %portal, stream = %stream, "more than max_window_events events within one second; emitting what was read");
            }
            // The overlap re-reads an unreadable row at every poll: name each one once.
            for hole in &window.unreadable {
                let key = row_fingerprint(&serde_json::Value::String(format!(
                    "unreadable {stream} {:?} {:?}",
                    hole.newer, hole.older
                )));
                if self.rejected_seen.insert(key) {
                    self.stats.unreadable.fetch_add(1, Ordering::Relaxed);
                    error!(portal = %portal, stream = %stream, position = hole.position, range = %hole.range(), "{hole}");
                }
            }
            // The overlap re-reads a bad row at every poll: dead-letter each one once.
            let fresh_rejects: Vec<&(serde_json::Value, crate::event::EventError)> = window
                .rejected
                .iter()
                .filter(|(row, _)| {
                    let key = row_fingerprint(row);
                    if self.rejected_seen.len() > 100_000 {
                        self.rejected_seen.clear();
                    }
                    self.rejected_seen.insert(key)
                })
                .collect();
            if !fresh_rejects.is_empty() {
                let records: Vec<_> = fresh_rejects
                    .iter()
                    .map(|(row, e)| (row.clone(), format!("undecodable {stream} row: {e}")))
                    .collect();
                warn!(portal = %portal, stream = %stream, rows = records.len(), file = %self.dead_letter.path().display(), "rows the agent cannot decode were written to the dead-letter file");
                self.stats
                    .rejected
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                if let Err(e) = self.dead_letter.append(&records) {
                    error!(error = %e, "cannot write the dead-letter file; retrying the window");
                    if !pause(&cancel, backoff.next_delay(), &self.stats).await {
                        break;
                    }
                    continue;
                }
            }
            let dense = window.events.len();
            UNTRIMMED.fetch_add(dense, Ordering::Relaxed);
            let events = fresh_sorted(window.events, &self.cursor.seen);
            // Ids are remembered back to where the next read may start. Live, that is the next
            // full re-read (`anchor`). In a catch-up, it is the overlap before the watermark:
            // the next window's re-read, or a restart's from the watermark saved with a batch.
            // So each batch may forget ids older than its own watermark − overlap
            // (`trailing`), and a cursor does not carry a whole window of ids.
            let (keep_from, trailing) = if live {
                (anchor.min(watermark) - overlap, None)
            } else {
                (watermark - overlap, Some(overlap))
            };
            if full {
                anchor = if to >= target { to } else { watermark };
                last_full = Some(started);
            }
            prev_read = Some(now);
            // A stop while sinks are full (a receiver is down) must not wait for them: what was
            // not handed to every sink is not committed, and is read again on the next start.
            let stats = self.stats.clone();
            let emitted = tokio::select! {
                r = beating(self.emit_window(events, to, keep_from, trailing, &mut report), &stats) => r,
                _ = cancel.cancelled() => break,
            };
            if emitted.is_err() {
                break;
            }
            if self.chase.is_none() {
                self.stats.read.store(
                    self.cursor.watermark.unix_timestamp().max(0) as u64,
                    Ordering::Relaxed,
                );
                self.start_chasers(&cancel, chasers);
            }
            if dense < self.cfg.max_window_events / 4 && to < target {
                span = (span * 2).min(MAX_SPAN);
            }
            let caught_up = to >= target;
            live = caught_up;
            report.maybe_log(
                &portal,
                stream,
                &self.stats,
                self.cursor.watermark,
                caught_up,
            );
            // Caught up: the next poll is due one poll_interval from now, not at once (the
            // watermark trails `now − settle` by mere milliseconds by then). After a catch-up,
            // once its batches had TRIM_DELAY to drain, the heap it used goes back to the
            // system (glibc keeps freed memory otherwise: idle RSS would stay at the peak).
            let trim = caught_up && UNTRIMMED.load(Ordering::Relaxed) >= TRIM_AFTER_EVENTS;
            if caught_up && self.chase.is_none() {
                let first = if trim {
                    TRIM_DELAY.min(self.cfg.poll_interval)
                } else {
                    self.cfg.poll_interval
                };
                if !pause(&cancel, first, &self.stats).await {
                    break;
                }
                if trim {
                    trim_free_memory();
                    let rest = self.cfg.poll_interval.saturating_sub(first);
                    if !pause(&cancel, rest, &self.stats).await {
                        break;
                    }
                }
            } else if trim {
                trim_free_memory();
            }
        }
        info!(portal = %portal, stream = %stream, "poller stopped");
    }

    /// Emits a window's new events in batches; the last batch carries the watermark `to`. Ids
    /// of events at or after `keep_from` stay in the cursor (the next re-read reaches there);
    /// with `trailing`, only those at or after each batch's watermark − `trailing`.
    async fn emit_window(
        &mut self,
        events: Vec<Event>,
        to: OffsetDateTime,
        keep_from: OffsetDateTime,
        trailing: Option<time::Duration>,
        report: &mut Progress,
    ) -> Result<(), crate::pipeline::Closed> {
        let total = events.len();
        let mut rest = events.into_iter();
        let mut sent = 0;
        loop {
            let batch: Vec<Event> = rest.by_ref().take(BATCH_EVENTS).collect();
            sent += batch.len();
            let last = sent >= total;
            for ev in &batch {
                self.cursor.seen.push((ev.id, ev.time.unix_timestamp()));
            }
            // Never past `to`: a row DocSpace dated an hour late and nothing proved late
            // (§14.2) may sort after it.
            let watermark = if last {
                to
            } else {
                batch.last().map_or(to, |e| e.time.min(to))
            };
            self.cursor.watermark = self.cursor.watermark.max(watermark);
            let floor = match trailing {
                Some(t) => keep_from.max(self.cursor.watermark - t),
                None => keep_from,
            };
            prune(&mut self.cursor, floor);
            let n = batch.len();
            self.outlet.emit(batch, self.cursor.clone()).await?;
            self.stats.polled.fetch_add(n as u64, Ordering::Relaxed);
            report.count(n);
            if last {
                return Ok(());
            }
        }
    }
}

/// The result of a task known to have finished.
fn futures_now(h: tokio::task::JoinHandle<()>) -> Option<Result<(), tokio::task::JoinError>> {
    use std::future::Future as _;
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut h = h;
    match std::pin::Pin::new(&mut h).poll(&mut cx) {
        std::task::Poll::Ready(r) => Some(r),
        std::task::Poll::Pending => None,
    }
}

/// Drops events already emitted (ids in `seen`) and duplicates within the window, then sorts
/// oldest first (ties by id).
pub fn fresh_sorted(events: Vec<Event>, seen: &[(i64, i64)]) -> Vec<Event> {
    let mut known: FxHashSet<i64> = seen.iter().map(|(id, _)| *id).collect();
    let mut out = events;
    // `retain` moves no event while none is dropped (a 280-byte move each otherwise).
    out.retain(|e| known.insert(e.id));
    out.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
    out
}

/// Forgets ids of events older than `keep_from` (no re-read reaches them any more), and caps
/// the set.
fn prune(cursor: &mut Cursor, keep_from: OffsetDateTime) {
    let floor = (keep_from - time::Duration::seconds(1)).unix_timestamp();
    cursor.seen.retain(|(_, t)| *t >= floor);
    if cursor.seen.len() > MAX_SEEN {
        cursor.seen.sort_by_key(|(_, t)| *t);
        let excess = cursor.seen.len() - MAX_SEEN;
        cursor.seen.drain(..excess);
    }
}

/// Progress of a catch-up, logged at a steady cadence.
struct Progress {
    every: Duration,
    last: Instant,
    since: u64,
    caught_up_logged: bool,
}

impl Progress {
    fn new(every: Duration) -> Progress {
        Progress {
            every,
            last: Instant::now(),
            since: 0,
            caught_up_logged: false,
        }
    }

    fn count(&mut self, n: usize) {
        self.since += n as u64;
    }

    fn maybe_log(
        &mut self,
        portal: &str,
        stream: Stream,
        stats: &StreamStats,
        watermark: OffsetDateTime,
        caught_up: bool,
    ) {
        let elapsed = self.last.elapsed();
        if caught_up {
            if !self.caught_up_logged {
                info!(portal = %portal, stream = %stream, events = stats.polled.load(Ordering::Relaxed), watermark = %format_utc_seconds(watermark), "caught up");
                self.caught_up_logged = true;
            }
        } else {
            self.caught_up_logged = false;
        }
        // Progress lines are for a catch-up; once caught up, the metrics tell the rest.
        if elapsed < self.every || caught_up {
            return;
        }
        let lag = (OffsetDateTime::now_utc() - watermark).whole_seconds();
        let rate = self.since as f64 / elapsed.as_secs_f64();
        info!(
            portal = %portal,
            stream = %stream,
            events = stats.polled.load(Ordering::Relaxed),
            delivered = stats.committed.load(Ordering::Relaxed),
            rate = format!("{rate:.0}/s"),
            lag = %humantime::format_duration(Duration::from_secs(lag.max(0) as u64)),
            watermark = %format_utc_seconds(watermark),
            "{}", if caught_up { "progress" } else { "catching up" }
        );
        self.last = Instant::now();
        self.since = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::PortalInfo;
    use serde_json::json;

    fn ev(id: i64, date: &str) -> Event {
        Event::from_json(
            Arc::new(PortalInfo::new("p", "https://x")),
            Some(Stream::Audit),
            json!({"id": id, "date": date, "actionId": 5011}),
        )
        .expect("valid")
    }

    #[test]
    fn dedupes_and_sorts_oldest_first() {
        let events = vec![
            ev(3, "2025-01-01T10:00:02Z"),
            ev(1, "2025-01-01T10:00:01+01:00"),
            ev(2, "2025-01-01T10:00:00Z"),
            ev(3, "2025-01-01T10:00:02Z"),
            ev(9, "2025-01-01T10:00:00Z"),
        ];
        let out = fresh_sorted(events, &[(2, 0)]);
        let ids: Vec<i64> = out.iter().map(|e| e.id).collect();
        assert_eq!(ids, vec![1, 9, 3]);
    }

    #[test]
    fn prune_keeps_the_overlap() {
        let mut c = Cursor {
            watermark: time::macros::datetime!(2025-01-01 10:00 UTC),
            seen: vec![(1, 1_735_725_600 - 700), (2, 1_735_725_600 - 100)],
        };
        let keep_from = c.watermark - time::Duration::minutes(10);
        prune(&mut c, keep_from);
        assert_eq!(c.seen, vec![(2, 1_735_725_600 - 100)]);
    }
}
