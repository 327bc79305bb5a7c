//! Sinks: where events and alerts go. A closed enum ([`AnySink`]) dispatches to each kind; the
//! generic [`run`] loop does batching, filtering, judging (a sink's alert rules), encoding,
//! retries and acknowledgements for all of them: an event or an alert becomes a record, and
//! every record is delivered the same way.
//!
//! Invariants:
//! - A delivery is acknowledged only after the sink confirmed it (stdout flushed, syslog bytes
//!   written and flushed, HTTP 2xx) or after it was written to the dead-letter file because the
//!   target rejected it for good. Nothing else acknowledges.
//! - Retryable failures are retried forever with capped, jittered backoff (≤ 60 s), honouring
//!   `Retry-After`: the queue fills and the pollers wait; nothing is dropped.
//! - Error messages never carry a secret (webhook URLs are shown as scheme://host/…).

pub mod azure;
pub mod chat;
pub mod elastic;
pub mod filter;
pub mod splunk;
pub mod stdout;
pub mod syslog;
pub mod template;
pub mod webhook;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::alert::{Alert, RuleEngine, SinkRules};
use crate::event::Event;
use crate::pipeline::{DeadLetter, Delivery, SinkStats};
use crate::retry::MAX_SINK_BACKOFF;
use crate::retry::{Backoff, retry_after};
use crate::transform;
use crate::transform::Format;
pub use filter::{Filter, accepts};

/// One `[sinks.NAME]`.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Table name.
    pub name: String,
    /// Encoding of each event.
    pub format: Format,
    /// Which events it takes.
    pub filter: Filter,
    /// Type-specific settings.
    pub kind: SinkKind,
    /// stdout and webhook sinks: rules whose alerts it also receives, as ECS documents.
    pub alerts: Option<crate::alert::SinkRules>,
}

/// Type-specific sink settings.
#[derive(Debug, Clone)]
pub enum SinkKind {
    /// Newline-delimited on standard output.
    Stdout,
    /// Syslog over UDP, TCP or TLS.
    Syslog(syslog::SyslogConfig),
    /// HTTP POST of JSON arrays.
    Webhook(webhook::WebhookConfig),
    /// Splunk HTTP Event Collector.
    SplunkHec(crate::sink::splunk::SplunkConfig),
    /// Elasticsearch / OpenSearch `_bulk`.
    Elasticsearch(crate::sink::elastic::ElasticConfig),
    /// A chat webhook that posts the alerts of its rules.
    Chat(chat::ChatConfig),
    /// Microsoft Sentinel through the Azure Monitor Logs Ingestion API.
    AzureLogs(azure::AzureConfig),
}

/// Where a sink's records are encoded, one after the other in shared chunks: a record is a
/// slice of a chunk (no allocation of its own), and a chunk is freed when its last record is.
#[derive(Debug)]
pub struct Records {
    buf: bytes::BytesMut,
    scratch: Vec<u8>,
}

impl Default for Records {
    fn default() -> Records {
        Records {
            buf: bytes::BytesMut::with_capacity(Records::CHUNK),
            scratch: Vec::new(),
        }
    }
}

impl Records {
    /// Bytes per chunk.
    const CHUNK: usize = 64 * 1024;
    /// Room made before each record, so that most are written without growing a chunk.
    const ROOM: usize = 4096;

    /// One event in `format`.
    pub fn encode(&mut self, format: Format, ev: &Event) -> Bytes {
        self.buf.reserve(Records::ROOM);
        transform::encode_into(format, ev, &mut self.buf, &mut self.scratch);
        self.buf.split().freeze()
    }

    /// Bytes as they are (a record built elsewhere).
    pub fn put(&mut self, bytes: &[u8]) -> Bytes {
        self.buf.reserve(bytes.len().max(Records::ROOM));
        self.buf.extend_from_slice(bytes);
        self.buf.split().freeze()
    }
}

/// What starts a `check` detail that could not be verified either way (syslog over UDP,
/// which has no acknowledgement): `check` reports it as UNVERIFIED, neither OK nor FAILED.
pub const UNVERIFIED: &str = "cannot be verified: ";

/// A delivery failure.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    /// Whether trying again may succeed.
    pub retryable: bool,
    /// The target refused the request as too large (413): split the batch and retry.
    pub too_large: bool,
    /// Only an operator can fix it (credentials, index, URL): retried with backoff and logged
    /// as an error; the events wait, they are not dead-lettered.
    pub operator: bool,
    /// `Retry-After` from the target, if any.
    pub retry_after: Option<u64>,
    /// What happened and what to do, without secrets.
    pub message: String,
}

impl SinkError {
    /// A failure worth retrying.
    pub fn retryable(message: impl Into<String>) -> SinkError {
        SinkError {
            retryable: true,
            too_large: false,
            operator: false,
            retry_after: None,
            message: message.into(),
        }
    }

    /// A failure only an operator can fix (wrong credentials, missing index): the events wait
    /// (retried with capped backoff, health shows the error) instead of being dead-lettered.
    pub fn operator(message: impl Into<String>) -> SinkError {
        SinkError {
            operator: true,
            ..SinkError::retryable(message)
        }
    }

    /// A rejection for good (the events go to the dead-letter file).
    pub fn fatal(message: impl Into<String>) -> SinkError {
        SinkError {
            retryable: false,
            too_large: false,
            operator: false,
            retry_after: None,
            message: message.into(),
        }
    }
}

/// Whole seconds (rounded up) of a `Retry-After` header: delay-seconds or an HTTP-date, read by
/// [`crate::retry::parse_retry_after`] (absurd values ignored, huge ones clamped).
pub fn retry_after_header(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::retry::retry_after_header_secs)
}

/// A failed HTTP request as a retryable error naming the target (never its URL path or query).
pub fn transport_error(what: &str, shown: &str, e: &reqwest::Error) -> SinkError {
    SinkError::retryable(format!(
        "{what} {shown}: {}",
        crate::tls::describe_reqwest(e)
    ))
}

/// Every kind of sink.
#[derive(Debug)]
pub enum AnySink {
    /// Standard output.
    Stdout(stdout::StdoutSink),
    /// Syslog over UDP, TCP or TLS.
    Syslog(Box<syslog::SyslogSink>),
    /// HTTP POST of JSON arrays.
    Webhook(webhook::WebhookSink),
    /// Splunk HEC.
    Splunk(splunk::SplunkSink),
    /// Elasticsearch / OpenSearch `_bulk`.
    Elastic(elastic::ElasticSink),
    /// A chat webhook: posts only the alerts of its rules, one message per batch.
    Chat(Box<chat::ChatSink>),
    /// Microsoft Sentinel (Logs Ingestion API).
    Azure(Box<azure::AzureSink>),
}

impl AnySink {
    /// Builds a sink from its config (no IO yet: connections are made on first use).
    pub fn build(cfg: &SinkConfig) -> Result<AnySink, String> {
        Ok(match &cfg.kind {
            SinkKind::Stdout => AnySink::Stdout(stdout::StdoutSink::new()),
            SinkKind::Syslog(s) => AnySink::Syslog(Box::new(syslog::SyslogSink::new(s.clone())?)),
            SinkKind::Webhook(w) => {
                AnySink::Webhook(webhook::WebhookSink::new(w.clone(), cfg.format)?)
            }
            SinkKind::SplunkHec(h) => {
                AnySink::Splunk(splunk::SplunkSink::new(h.clone(), cfg.format)?)
            }
            SinkKind::Elasticsearch(e) => {
                AnySink::Elastic(elastic::ElasticSink::new(e.clone(), cfg.format)?)
            }
            SinkKind::Chat(c) => {
                AnySink::Chat(Box::new(chat::ChatSink::new(&cfg.name, c.clone())?))
            }
            SinkKind::AzureLogs(a) => AnySink::Azure(Box::new(azure::AzureSink::new(a.clone())?)),
        })
    }

    /// One record for one event, as the sink's `send` takes it; `None` for a sink that ships
    /// no events (chat). Syslog frames it here, so that the octet count is written without
    /// copying the message again; the other sinks add their framing (lines, JSON arrays, bulk
    /// actions) when they send.
    pub fn record(&mut self, format: Format, ev: &Event, stats: &SinkStats) -> Option<Bytes> {
        Some(match self {
            AnySink::Syslog(s) => s.record(format, ev, stats),
            AnySink::Webhook(w) => w.record(ev),
            AnySink::Splunk(h) => h.record(ev),
            AnySink::Elastic(e) => e.record(ev),
            AnySink::Azure(a) => a.record(ev),
            AnySink::Chat(_) => return None,
            AnySink::Stdout(s) => s.records.encode(format, ev),
        })
    }

    /// Whether the sink ships events: a chat sink ships only alerts, so its events are done
    /// when their batch is (see [`deliver_batch`]).
    fn ships_events(&self) -> bool {
        !matches!(self, AnySink::Chat(_))
    }

    /// The records of the alerts a batch raised, after its events: a chat sink's one message
    /// (a single alert or a digest), else each alert's ECS document, which shares the dead
    /// letter of the event that fired it.
    fn alert_records<'a>(
        &self,
        alerts: &'a [Alert],
        events: &[&'a Event],
    ) -> Vec<(Bytes, Origin<'a>)> {
        match self {
            AnySink::Chat(c) => c
                .render(alerts)
                .map(|message| (message, Origin::Alerts(alerts)))
                .into_iter()
                .collect(),
            _ => transform::alert::ecs_records(alerts, events)
                .into_iter()
                .filter_map(|(doc, at)| Some((doc.into(), Origin::Event(events.get(at)?))))
                .collect(),
        }
    }

    /// Sends records, in order. `Ok` may still report records to retry or reject.
    pub async fn send(&mut self, records: &[Bytes]) -> Result<Partial, SinkError> {
        match self {
            AnySink::Stdout(s) => s.send(records).await.map(|()| Partial::default()),
            AnySink::Syslog(s) => s.send(records).await.map(|()| Partial::default()),
            AnySink::Webhook(w) => w.send(records).await.map(|()| Partial::default()),
            AnySink::Splunk(h) => h.send(records).await,
            AnySink::Elastic(e) => e.send(records).await,
            AnySink::Azure(a) => a.send(records).await,
            AnySink::Chat(c) => c.send(records).await.map(|()| Partial::default()),
        }
    }

    /// Checks that the target is reachable (for `check`).
    pub async fn healthcheck(&mut self) -> Result<String, SinkError> {
        match self {
            AnySink::Stdout(_) => Ok("stdout".to_owned()),
            AnySink::Syslog(s) => s.healthcheck().await,
            AnySink::Webhook(w) => w.healthcheck().await,
            AnySink::Splunk(h) => h.healthcheck().await,
            AnySink::Elastic(e) => e.healthcheck().await,
            AnySink::Azure(a) => a.healthcheck().await,
            AnySink::Chat(c) => c.healthcheck().await,
        }
    }

    /// Most records per send.
    fn max_batch(&self) -> usize {
        match self {
            AnySink::Webhook(w) => w.max_events(),
            AnySink::Splunk(h) => h.max_events(),
            AnySink::Elastic(e) => e.max_events(),
            AnySink::Azure(a) => a.max_events(),
            _ => 1000,
        }
    }

    /// Largest request body: below the receivers' default limits (HEC `max_content_length`
    /// 1,000,000 bytes; Elasticsearch `http.max_content_length` 100 MB, but 5–15 MB bulks are
    /// the recommended size); a 413 still splits a batch.
    fn max_bytes(&self) -> usize {
        match self {
            AnySink::Splunk(_) => 900_000,
            AnySink::Elastic(_) => 10 * 1024 * 1024,
            AnySink::Webhook(_) => 5 * 1024 * 1024,
            // Each record also carries its stream and a newline, at least the comma and
            // brackets of the JSON array: the body stays under the service's 1 MB.
            AnySink::Azure(_) => azure::MAX_BODY,
            _ => usize::MAX,
        }
    }

    /// How long a partial batch waits for more events.
    fn linger(&self) -> Duration {
        match self {
            AnySink::Webhook(w) => w.linger(),
            AnySink::Splunk(h) => h.linger(),
            AnySink::Elastic(e) => e.linger(),
            AnySink::Azure(a) => a.linger(),
            _ => Duration::ZERO,
        }
    }
}

/// The rules a sink judges its events with, and where their state lives: a chat sink's own
/// (`state_dir/alerts/<sink name>`), or the `rules` of a stdout or webhook sink.
fn alert_rules(cfg: &SinkConfig) -> Option<SinkRules> {
    match &cfg.kind {
        SinkKind::Chat(c) => Some(SinkRules {
            rules: c.rules.clone(),
            state: c.state_dir.join("alerts").join(&cfg.name),
        }),
        _ => cfg.alerts.clone(),
    }
}

/// The delivery loop of one sink: runs until every poller is gone and the queue is drained.
pub async fn run(
    mut sink: AnySink,
    cfg: SinkConfig,
    mut rx: mpsc::Receiver<Delivery>,
    stats: Arc<SinkStats>,
    dead_letter: DeadLetter,
) {
    let max = sink.max_batch();
    let linger = sink.linger();
    let mut rules = alert_rules(&cfg).map(|a| RuleEngine::with_state(a.rules, a.state));
    let mut backoff = Backoff::new(Duration::from_millis(500), MAX_SINK_BACKOFF);
    let ledger = Ledger {
        name: &cfg.name,
        stats: &stats,
        dead_letter: &dead_letter,
    };
    while let Some(first) = rx.recv().await {
        failpoint_panic("sink-task-panic");
        stats.queued.store(rx.len() as u64, Ordering::Relaxed);
        let mut items = vec![first];
        let mut count = items[0].events.len();
        let deadline = tokio::time::Instant::now() + linger;
        while count < max {
            let next = if linger.is_zero() {
                rx.try_recv().ok()
            } else {
                tokio::time::timeout_at(deadline, rx.recv())
                    .await
                    .ok()
                    .flatten()
            };
            match next {
                Some(d) => {
                    count += d.events.len();
                    items.push(d);
                }
                None => break,
            }
        }
        let events: Vec<&Event> = items
            .iter()
            .flat_map(|d| d.events.iter())
            .filter(|ev| {
                let take = accepts(&cfg.filter, ev);
                if !take {
                    stats.filtered.fetch_add(1, Ordering::Relaxed);
                }
                take
            })
            .collect();
        deliver_batch(
            &mut sink,
            cfg.format,
            &events,
            rules.as_mut(),
            &mut backoff,
            &ledger,
        )
        .await;
        drop(events);
        for item in items {
            let _ = item.done.send(());
        }
    }
    if let Some(engine) = rules.as_mut()
        && let Err(e) = engine.save_off_thread(true).await
    {
        warn!(sink = %cfg.name, error = %e, "cannot save alert rule state; alerts may repeat after a restart");
    }
}

/// Where a sink's deliveries are accounted: its name (in logs), its stats and its dead-letter
/// file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ledger<'a> {
    pub(crate) name: &'a str,
    pub(crate) stats: &'a SinkStats,
    pub(crate) dead_letter: &'a DeadLetter,
}

/// What a record stands for: what is counted when the target takes it, and what the
/// dead-letter file keeps when the target rejects it for good.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// An event; or an alert's ECS document, which shares the dead letter of the event that
    /// fired it.
    Event(&'a Event),
    /// A message carrying alerts (a chat message): it counts no event, and its dead letter is
    /// each alert's ECS document.
    Alerts(&'a [Alert]),
}

/// Delivers one batch of (filtered) events: the events a sink ships and the alerts its rules
/// raise become records, in that order, delivered in requests of the sink's size; then the
/// rule state is saved (after the alerts were delivered, so a crash repeats an alert rather
/// than losing it). Events a sink does not ship are done with their batch: counted delivered,
/// and the sink's last success stamped. Returns once every record is delivered or
/// dead-lettered.
pub(crate) async fn deliver_batch(
    sink: &mut AnySink,
    format: Format,
    events: &[&Event],
    mut rules: Option<&mut RuleEngine>,
    backoff: &mut Backoff,
    ledger: &Ledger<'_>,
) {
    let Ledger {
        name,
        stats,
        dead_letter,
    } = *ledger;
    let alerts = match rules.as_deref_mut() {
        Some(engine) => engine.observe_batch(events),
        None => Vec::new(),
    };
    let mut records: Vec<(Bytes, Origin)> = Vec::with_capacity(events.len() + alerts.len());
    for &ev in events {
        if let Some(r) = sink.record(format, ev, stats) {
            records.push((r, Origin::Event(ev)));
        }
    }
    records.extend(sink.alert_records(&alerts, events));
    for chunk in chunks(&records, sink.max_batch(), sink.max_bytes()) {
        deliver(sink, name, chunk, stats, dead_letter, backoff).await;
    }
    drop(records);
    if let Some(engine) = rules
        && let Err(e) = engine.save_off_thread(false).await
    {
        warn!(sink = %name, error = %e, "cannot save alert rule state; alerts may repeat after a restart");
    }
    if !sink.ships_events() {
        stats
            .delivered
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        stats
            .last_success
            .store(crate::pipeline::now_millis() / 1000, Ordering::Relaxed);
    }
}

/// Test hook (debug builds only): when `$DOCSPACE_SIEM_FAILPOINT` names this point, the task
/// panics here, as a bug would; the integration test `a_task_that_dies_stops_the_agent_with_exit_1`
/// shows that the agent then stops and exits 1 instead of running on. Release builds compile
/// it away.
#[inline]
fn failpoint_panic(name: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("DOCSPACE_SIEM_FAILPOINT").is_ok_and(|v| v == name) {
        panic!("failpoint {name}: a sink task panics (test hook)");
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

/// Splits records into requests of at most `max` records and `max_bytes` bytes (at least one
/// record each), in order.
fn chunks<T>(records: &[(Bytes, T)], max: usize, max_bytes: usize) -> Vec<&[(Bytes, T)]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0usize;
    for (i, (r, _)) in records.iter().enumerate() {
        let full = i - start >= max || (i > start && bytes + r.len() > max_bytes);
        if full {
            out.push(&records[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += r.len();
    }
    if start < records.len() {
        out.push(&records[start..]);
    }
    out
}

/// What a send achieved when the target answered per record (Elasticsearch `_bulk`, HEC
/// code 6): indices are into the slice that was sent.
#[derive(Debug, Default)]
pub struct Partial {
    /// Records rejected for good, with the reason (they go to the dead-letter file).
    pub rejected: Vec<(usize, String)>,
    /// Records to send again (alone), after a backoff.
    pub retry: Vec<usize>,
    /// `Retry-After` for the retry, if the target gave one.
    pub retry_after: Option<u64>,
}

/// Longest wait between two tries of a failed sink (one that needs its operator): a fix is
/// noticed within it.
pub const FAILED_RETRY: Duration = Duration::from_secs(10);

/// Delivers one chunk: retries what is retryable, splits what is too large, dead-letters
/// what is rejected for good. Returns once every record is delivered or dead-lettered.
async fn deliver(
    sink: &mut AnySink,
    name: &str,
    chunk: &[(Bytes, Origin<'_>)],
    stats: &SinkStats,
    dead_letter: &DeadLetter,
    backoff: &mut Backoff,
) {
    // Work list of index ranges into `chunk` still to send; a 413 splits a range in two.
    let mut work: Vec<Vec<usize>> = vec![(0..chunk.len()).collect()];
    while let Some(pending) = work.pop() {
        if pending.is_empty() {
            continue;
        }
        let bytes: Vec<Bytes> = pending.iter().map(|&i| chunk[i].0.clone()).collect();
        match sink.send(&bytes).await {
            Ok(partial) => {
                count_delivered(stats, chunk, &pending, &partial);
                log_posted(name, chunk, &pending, &partial);
                if !partial.rejected.is_empty() {
                    let dead: Vec<(Origin, String)> = partial
                        .rejected
                        .iter()
                        .filter_map(|(j, why)| pending.get(*j).map(|&i| (chunk[i].1, why.clone())))
                        .collect();
                    write_dead(name, &dead, stats, dead_letter).await;
                }
                if partial.retry.is_empty() {
                    // Only events are "delivered again": a chat message says it was posted.
                    let events_sent = pending
                        .iter()
                        .any(|&i| matches!(chunk[i].1, Origin::Event(_)));
                    if events_sent && let Some(was) = stats.error() {
                        info!(sink = %name, after = %was, "the sink recovered: delivering again");
                    }
                    if stats.failed.swap(false, Ordering::Relaxed) {
                        info!(sink = %name, "the sink recovered from its failure: it catches up, then rejoins the live pollers");
                    }
                    stats.set_error(None);
                    stats
                        .last_success
                        .store(crate::pipeline::now_millis() / 1000, Ordering::Relaxed);
                    backoff.reset();
                } else {
                    stats.retries.fetch_add(1, Ordering::Relaxed);
                    let delay = match partial.retry_after {
                        Some(s) => retry_after(Some(s), MAX_SINK_BACKOFF),
                        None => backoff.next_delay(),
                    };
                    warn!(sink = %name, events = partial.retry.len(), retry_in = %crate::retry::Secs(delay), "the receiver asked to retry some events");
                    tokio::time::sleep(delay).await;
                    work.push(
                        partial
                            .retry
                            .iter()
                            .filter_map(|&j| pending.get(j).copied())
                            .collect(),
                    );
                }
            }
            Err(e) if e.too_large && pending.len() > 1 => {
                let (a, b) = pending.split_at(pending.len() / 2);
                warn!(sink = %name, events = pending.len(), "{e}; splitting the batch");
                // Keep order: the first half is popped first.
                work.push(b.to_vec());
                work.push(a.to_vec());
            }
            Err(e) if e.retryable && !e.too_large => {
                stats.retries.fetch_add(1, Ordering::Relaxed);
                stats.set_error(Some(e.message.clone()));
                let mut delay = match e.retry_after {
                    Some(s) => retry_after(Some(s), MAX_SINK_BACKOFF),
                    None => backoff.next_delay(),
                };
                if e.operator {
                    // Failed: the pollers detach it, so it holds nothing else; it is tried
                    // again often enough that a fix is noticed within FAILED_RETRY.
                    delay = delay.min(FAILED_RETRY);
                    if !stats.failed.swap(true, Ordering::Relaxed) {
                        warn!(sink = %name, "the sink failed (only its operator can fix this): the pollers detach it and feed the other sinks");
                    }
                    error!(sink = %name, retry_in = %crate::retry::Secs(delay), "{e}");
                } else {
                    warn!(sink = %name, retry_in = %crate::retry::Secs(delay), "{e}");
                }
                tokio::time::sleep(delay).await;
                work.push(pending);
            }
            Err(e) => {
                let dead: Vec<(Origin, String)> = pending
                    .iter()
                    .map(|&i| (chunk[i].1, e.message.clone()))
                    .collect();
                stats.set_error(Some(e.message.clone()));
                write_dead(name, &dead, stats, dead_letter).await;
            }
        }
    }
}

/// Counts the events of `pending` that the receiver took (not asked again, not refused), by
/// the portal and stream they came from (a batch comes from one, so runs are long).
fn count_delivered(
    stats: &SinkStats,
    chunk: &[(Bytes, Origin<'_>)],
    pending: &[usize],
    partial: &Partial,
) {
    let mut not_taken = vec![false; pending.len()];
    for &j in partial
        .retry
        .iter()
        .chain(partial.rejected.iter().map(|(j, _)| j))
    {
        if let Some(x) = not_taken.get_mut(j) {
            *x = true;
        }
    }
    let mut run: Option<(&str, crate::event::Stream, u64)> = None;
    for (j, &i) in pending.iter().enumerate() {
        // A chat message counts no event: its events are counted with their batch.
        let Origin::Event(ev) = chunk[i].1 else {
            continue;
        };
        if not_taken[j] {
            continue;
        }
        match &mut run {
            Some((portal, stream, n))
                if *portal == ev.portal.name.as_str() && *stream == ev.stream =>
            {
                *n += 1;
            }
            _ => {
                if let Some((portal, stream, n)) = run.take() {
                    stats.count_delivered(portal, stream, n);
                }
                run = Some((ev.portal.name.as_str(), ev.stream, 1));
            }
        }
    }
    if let Some((portal, stream, n)) = run {
        stats.count_delivered(portal, stream, n);
    }
}

/// Logs each alert message the receiver took (alert messages are logged one by one; events
/// are counted, not logged).
fn log_posted(name: &str, chunk: &[(Bytes, Origin<'_>)], pending: &[usize], partial: &Partial) {
    for (j, &i) in pending.iter().enumerate() {
        let Origin::Alerts(alerts) = chunk[i].1 else {
            continue;
        };
        let refused = partial.retry.contains(&j) || partial.rejected.iter().any(|(r, _)| *r == j);
        if !refused {
            info!(sink = %name, alerts = alerts.len(), rules = %chat::tally(alerts), "alert message posted");
        }
    }
}

/// Writes rejected records to the dead-letter file (an event as its JSON, an alert message as
/// each alert's ECS document); retries until it succeeds, because a record whose dead letter
/// is not written must not be acknowledged.
async fn write_dead(
    name: &str,
    dead: &[(Origin<'_>, String)],
    stats: &SinkStats,
    dead_letter: &DeadLetter,
) {
    let mut events: Vec<(serde_json::Value, String)> = Vec::new();
    let mut alerts: Vec<(serde_json::Value, String)> = Vec::new();
    for (origin, why) in dead {
        match origin {
            Origin::Event(ev) => {
                let mut raw = Vec::new();
                transform::json::encode(ev, &mut raw);
                events.push((
                    serde_json::from_slice(&raw).unwrap_or_default(),
                    why.clone(),
                ));
            }
            Origin::Alerts(list) => {
                alerts.extend(
                    list.iter()
                        .map(|a| (transform::alert::to_ecs(a), why.clone())),
                );
            }
        }
    }
    if let Some((_, why)) = events.first() {
        error!(sink = %name, events = events.len(), file = %dead_letter.path().display(), "{why}; events written to the dead-letter file");
    }
    if let Some((_, why)) = alerts.first() {
        error!(sink = %name, alerts = alerts.len(), file = %dead_letter.path().display(), "{why}; alerts written to the dead-letter file");
    }
    events.append(&mut alerts);
    let records = events;
    stats
        .dead_lettered
        .fetch_add(records.len() as u64, Ordering::Relaxed);
    let mut wait = Backoff::new(Duration::from_secs(1), MAX_SINK_BACKOFF);
    while let Err(io) = dead_letter.append(&records) {
        error!(sink = %name, error = %io, "cannot write the dead-letter file; retrying");
        tokio::time::sleep(wait.next_delay()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_count_and_bytes_and_keep_order() {
        let recs: Vec<(Bytes, usize)> =
            (0..10).map(|i| (Bytes::from(vec![b'x'; 100]), i)).collect();
        let by_count = chunks(&recs, 4, usize::MAX);
        assert_eq!(
            by_count.iter().map(|c| c.len()).collect::<Vec<_>>(),
            vec![4, 4, 2]
        );
        let by_bytes = chunks(&recs, 100, 250);
        assert_eq!(
            by_bytes.iter().map(|c| c.len()).collect::<Vec<_>>(),
            vec![2, 2, 2, 2, 2]
        );
        let one_big = chunks(&recs[..1], 100, 10);
        assert_eq!(
            one_big.len(),
            1,
            "a record larger than the cap still goes, alone"
        );
        let order: Vec<usize> = by_bytes
            .iter()
            .flat_map(|c| c.iter().map(|(_, i)| *i))
            .collect();
        assert_eq!(order, (0..10).collect::<Vec<_>>());
    }
}
