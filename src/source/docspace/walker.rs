//! The window walker: reads every event of a time window despite the API's paging quirks.
//! Pages overlap by a row and each must repeat the last row of the one before, so rows
//! inserted while the walker pages are seen, never silently skipped; pages are fetched ahead
//! during a catch-up, and a window too dense to finish is stopped early for the caller to
//! split. Login windows start where the locator (`locator.rs`) found them.

use std::sync::atomic::Ordering;
use std::time::Instant;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesOrdered;
use rustc_hash::FxHashSet;
use serde_json::Value;
use time::OffsetDateTime;
use tracing::debug;

use super::error::SourceError;
use super::locator::Guess;
use super::narrow::Unreadable;
use super::page::Page;
use super::{Client, PAGE_SIZE, dates};
use crate::event::{Event, EventError, Stream, format_utc_seconds};

/// All events of a window.
#[derive(Debug, Default)]
pub struct Window {
    /// Decoded events, unsorted, possibly with duplicates at page edges.
    pub events: Vec<Event>,
    /// Rows that could not be decoded.
    pub rejected: Vec<(Value, EventError)>,
    /// Rows the server could not return: every answer holding one fails (§14.4).
    pub unreadable: Vec<Unreadable>,
    /// Requests made.
    pub requests: u32,
    /// The window held more than the caller's limit (the caller splits it).
    pub too_many: bool,
}

/// `startIndex` step between consecutive pages: one row less than a page, so that each page
/// repeats the last row of the page before (see [`Client::window`]).
pub(super) const STRIDE: usize = PAGE_SIZE - 1;
/// Rows a window is read to before its density may say it is too dense to finish.
const EARLY_ROWS: usize = 500;
/// Times a window may start again below its last row read (rows inserted faster than it is
/// read) before it fails and is retried later.
const MAX_ANCHORS: usize = 32;

impl Client {
    /// One filtered page, with the moments it was asked for and answered.
    async fn fetch(
        &self,
        stream: Stream,
        from: OffsetDateTime,
        to: OffsetDateTime,
        offset: usize,
    ) -> Result<Fetched, SourceError> {
        let issued = Instant::now();
        let page = self.page(stream, from, to, offset).await?;
        Ok(Fetched {
            page,
            issued,
            answered: Instant::now(),
        })
    }

    /// Reads every event of `[from, to]` (both inclusive). Stops early with `too_many` when
    /// more than `limit` rows arrive, so that memory stays bounded.
    ///
    /// - Pages are requested with `startIndex` steps of 99, so each page after a full one
    ///   repeats that page's last row. The first page of a window is fetched alone (a live
    ///   poll needs one). Once the window goes on, up to `concurrency` requests are kept in
    ///   flight and their pages used strictly in order; pages are not requested past where the
    ///   density read so far puts the end, and any fetched past the end are dropped.
    /// - A page that does not repeat that row was shifted by rows inserted above it: served
    ///   before the page above it (pages in flight together are served in any order), it
    ///   starts past rows that neither holds; served after, by 100 rows or more, it holds
    ///   nothing of the run yet. The first kind is fetched again; for the second the walker
    ///   starts again just below the last row read (`to` lowered to its date; duplicates of
    ///   that second are removed downstream). A short page that does repeat it ends the run.
    /// - Login pages the whole log before filtering, so the start of the window's run of rows
    ///   is located with unfiltered slices (`Client::locate_login`): at offset 0 alone when
    ///   the previous window gave no hint that the run lies further back (a live poll), else
    ///   around where the hint puts it.
    /// - Every window read in full ends with [`Client::probe_plan`], before any of its rows is
    ///   used: the "latest 20 rows" fallback is told apart for certain (§14.1).
    pub async fn window(
        &self,
        stream: Stream,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: usize,
    ) -> Result<Window, SourceError> {
        self.window_skipping(stream, from, to, limit, FxHashSet::default())
            .await
    }

    /// [`Client::window`], dropping events whose id is in `skip` as each page arrives (the
    /// poller's already-emitted ids: a re-read of the overlap then holds only new events).
    pub async fn window_skipping(
        &self,
        stream: Stream,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: usize,
        skip: FxHashSet<i64>,
    ) -> Result<Window, SourceError> {
        let began = Instant::now();
        let mut walk = Walk {
            skip,
            ..Walk::default()
        };
        if self.plan_lost.load(Ordering::Relaxed) {
            // Gone at the last look: while it stays gone, one request per retry.
            walk.w.requests += 1;
            self.probe_plan(stream).await?;
        }
        self.walk(stream, from, to, limit, &mut walk).await?;
        if stream == Stream::Login && !walk.w.too_many {
            let near = {
                let mut zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
                // Pages come newest first: the oldest and the newest row tell a change.
                let ends = [walk.w.events.last(), walk.w.events.first()];
                zones.note(
                    ends.into_iter()
                        .flatten()
                        .filter_map(|e| dates::offset_secs(e.date_text()).map(|o| (o, e.time))),
                );
                zones.near(from, to)
            };
            if near {
                self.read_by_position(from, to, &mut walk).await?;
            }
        }
        if !walk.w.too_many {
            let mut ties = std::mem::take(&mut walk.ties);
            ties.sort_unstable();
            ties.dedup_by_key(|t| t.0);
            for (second, at) in ties {
                self.read_second(stream, second, at, &mut walk).await?;
            }
        }
        if !walk.w.too_many {
            // After the last read and before any row is used: a window read while the plan
            // was gone is never used (§14.1).
            walk.w.requests += 1;
            self.probe_plan(stream).await?;
        }
        debug!(
            portal = %self.portal.name,
            stream = %stream,
            from = %format_utc_seconds(from),
            to = %format_utc_seconds(to),
            rows = walk.count(),
            requests = walk.w.requests,
            start = ?walk.start,
            too_many = walk.w.too_many,
            ms = began.elapsed().as_millis() as u64,
            "window read"
        );
        if stream == Stream::Login {
            self.remember_start(from, to, &walk);
        }
        Ok(walk.w)
    }

    async fn walk(
        &self,
        stream: Stream,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: usize,
        walk: &mut Walk,
    ) -> Result<(), SourceError> {
        // Rows newer than `top` were read already (or lie outside the window).
        let mut top = to;
        // Offset of the next page to use.
        let mut index = 0usize;
        // Whether the window goes on past its first page: then pages are fetched ahead.
        let mut ahead = false;
        // The last row of the last full page used.
        let mut prev: Option<Prev> = None;
        let mut anchors = 0usize;
        let mut refetched = false;
        if stream == Stream::Login {
            let guess = self.guess_start(to).map(|(guess, rate)| {
                walk.prior_rate = Some(rate);
                walk.guess = Some(guess.at);
                guess
            });
            let Some(after) = self.start_login(from, top, guess, walk).await? else {
                walk.w.too_many = walk.count() > limit;
                return Ok(());
            };
            if walk.count() > limit {
                walk.w.too_many = true;
                return Ok(());
            }
            (index, prev, ahead) = (after.index, after.prev, true);
        }
        let mut queue = FuturesOrdered::new();
        let mut next = index;
        loop {
            if queue.is_empty() {
                queue.push_back(self.fetch(stream, from, top, index));
                walk.w.requests += 1;
                next = index + STRIDE;
            }
            if ahead {
                let remaining = walk.remaining(from);
                while queue.len() < self.concurrency
                    && walk.count() + STRIDE * queue.len() <= limit
                    && remaining.is_none_or(|r| {
                        // The page at `next` is needed if the run reaches it. Rather one page
                        // too many (one request) than one too few (a round trip of waiting).
                        let margin = r.sqrt() + r / 10.0 + 10.0;
                        next as f64 <= index as f64 + r + margin
                    })
                {
                    queue.push_back(self.fetch(stream, from, top, next));
                    walk.w.requests += 1;
                    next += STRIDE;
                }
            }
            let f = queue.next().await.expect("the queue is not empty")?;
            // Starting again below a row of the second the walk restarted at would not move it
            // on (rows of one second may come in a different order in another answer): such a
            // page is used as it is.
            // A page that starts inside the second its predecessor ended in (ties, in any
            // order) is no shift: that second is read whole afterwards.
            if let Some(p) = prev
                && !f.page.ids.contains(&p.id)
                && f.page.first_date() != Some(p.date)
                && (p.date < top || (f.issued < p.answered && !refetched))
            {
                queue = FuturesOrdered::new();
                if f.issued < p.answered && !refetched {
                    // Fetched ahead, and maybe served before the page above it.
                    debug!(portal = %self.portal.name, stream = %stream, offset = index, "a page fetched ahead does not repeat the last row of the page before it; fetching it again");
                    refetched = true;
                    continue;
                }
                anchors += 1;
                if anchors > MAX_ANCHORS {
                    return Err(SourceError::Unsettled(format!(
                        "{MAX_ANCHORS} restarts of the {stream} window below rows shifted by inserts"
                    )));
                }
                debug!(portal = %self.portal.name, stream = %stream, offset = index, "rows inserted above the window shifted it by a page or more; reading on below the last row read");
                refetched = false;
                top = p.date;
                prev = None;
                match stream {
                    // Filtered first: offset 0 of `[from, top]` is the row below.
                    Stream::Audit => index = 0,
                    Stream::Login => {
                        let guess = Guess {
                            at: index,
                            spread: None,
                        };
                        let Some(after) = self.start_login(from, top, Some(guess), walk).await?
                        else {
                            walk.w.too_many = walk.count() > limit;
                            return Ok(());
                        };
                        (index, prev) = (after.index, after.prev);
                    }
                }
                if walk.count() > limit {
                    walk.w.too_many = true;
                    return Ok(());
                }
                continue;
            }
            refetched = false;
            let n = f.page.rows();
            if let Some(p) = prev
                && p.tie_with(&f.page)
            {
                walk.ties.push((p.date, p.tied_at));
            }
            // Rows this page repeats from above (the previous page's last row and any shifted
            // in with it, or the rows of the second it ended in), and how many rows of the run
            // are known down to its last row.
            let (repeated, run) = match prev {
                Some(p) => {
                    let at = match f.page.ids.iter().position(|id| *id == p.id) {
                        Some(i) => i + 1,
                        None => f
                            .page
                            .served
                            .iter()
                            .take_while(|r| r.1.is_some_and(|d| d >= p.date))
                            .count()
                            .max(1),
                    };
                    (at, p.run.saturating_add(n.saturating_sub(at)))
                }
                None => (0, n),
            };
            // A short page ends the run (login matches are contiguous in the log, audit rows
            // are filtered first), unless it may have been short only because rows from above
            // the run's start were shifted into it: it repeats every row of the run read so
            // far. Then the next page tells.
            let ends =
                n < PAGE_SIZE && (stream == Stream::Audit || prev.is_none_or(|p| repeated < p.run));
            prev = (n == PAGE_SIZE || (n > 0 && !ends))
                .then(|| Prev::of(&f.page, index, f.answered, run))
                .flatten();
            walk.take(f.page);
            if walk.count() > limit || (!ends && walk.will_overflow(from, to, limit)) {
                walk.w.too_many = true;
                return Ok(());
            }
            if ends || (n < PAGE_SIZE && prev.is_none()) {
                return Ok(());
            }
            ahead = true;
            index += STRIDE;
        }
    }
}

/// A filtered page and when it was asked for and answered.
struct Fetched {
    page: Page,
    issued: Instant,
    answered: Instant,
}

/// The last row of the last full page (or slice) used, which the next page must repeat.
#[derive(Debug, Clone, Copy)]
pub(super) struct Prev {
    pub(super) id: i64,
    pub(super) date: OffsetDateTime,
    /// When that page was answered.
    pub(super) answered: Instant,
    /// Rows of the run read down to this one since the run's start was located (login).
    pub(super) run: usize,
    /// Rows of that page dated `date` (a second of ties when more than one).
    pub(super) tied: usize,
    /// Login: the offset in the log of the first of them.
    pub(super) tied_at: usize,
}

impl Prev {
    /// The last row of `page`, read at `offset`, when its id and date are readable.
    pub(super) fn of(page: &Page, offset: usize, answered: Instant, run: usize) -> Option<Prev> {
        let (id, date) = page.last?;
        let (tied, first) = page.of_second(date);
        Some(Prev {
            id,
            date,
            answered,
            run,
            tied,
            tied_at: offset + first.unwrap_or(0),
        })
    }

    /// Whether the edge between its page and `next` lies inside a second of several rows:
    /// rows of one second come in any order (§14.3), so neither page proves it read them all.
    fn tie_with(&self, next: &Page) -> bool {
        self.tied >= 2 || next.others_of_second(self.date, self.id) > 0
    }
}

/// A window being read.
#[derive(Default)]
pub(super) struct Walk {
    pub(super) w: Window,
    /// Login: offset of the window's first row, roughly.
    pub(super) start: Option<usize>,
    /// Rows read, and the newest and oldest date among them.
    pub(super) rows: usize,
    pub(super) newest: Option<OffsetDateTime>,
    pub(super) oldest: Option<OffsetDateTime>,
    /// Rows per second of the previous window, until this one has enough of its own.
    pub(super) prior_rate: Option<f64>,
    /// Login: where the hint put the start.
    pub(super) guess: Option<usize>,
    /// Ids not to keep (already emitted).
    pub(super) skip: FxHashSet<i64>,
    /// Seconds of several rows that a page edge fell inside, and (login) where in the log the
    /// first of their rows was seen: each is read whole once the window is (§14.3).
    pub(super) ties: Vec<(OffsetDateTime, usize)>,
}

impl Walk {
    pub(super) fn take(&mut self, page: Page) {
        self.rows += page.rows();
        for ev in &page.events {
            self.newest = Some(self.newest.map_or(ev.time, |t| t.max(ev.time)));
            self.oldest = Some(self.oldest.map_or(ev.time, |t| t.min(ev.time)));
        }
        if self.skip.is_empty() {
            self.w.events.extend(page.events);
        } else {
            let skip = &self.skip;
            self.w
                .events
                .extend(page.events.into_iter().filter(|e| !skip.contains(&e.id)));
        }
        self.w.rejected.extend(page.rejected);
        self.w.unreadable.extend(page.holes);
    }

    pub(super) fn count(&self) -> usize {
        self.w.events.len() + self.w.rejected.len()
    }

    /// Whether the window clearly holds more than `limit` rows at the density read so far
    /// (`EARLY_ROWS` at least, a quarter more than allowed): it is split then, not after
    /// `limit` rows, each page of which would be a request under the portal's rate limit
    /// spent for nothing (a dense window is read again in parts). Never for a window of a
    /// second or two, which cannot be split.
    fn will_overflow(&self, from: OffsetDateTime, to: OffsetDateTime, limit: usize) -> bool {
        if self.rows < EARLY_ROWS || to - from <= time::Duration::seconds(2) {
            return false;
        }
        self.remaining(from)
            .is_some_and(|r| self.count() as f64 + r > limit as f64 * 1.25)
    }

    /// Rows expected between the oldest one read and `from`, at the density read so far.
    fn remaining(&self, from: OffsetDateTime) -> Option<f64> {
        let oldest = self.oldest?;
        let measured = self.newest.and_then(|newest| {
            let span = (newest - oldest).as_seconds_f64();
            (self.rows >= 2 && span > 0.0).then(|| (self.rows - 1) as f64 / span)
        });
        let rate = if self.rows >= 50 {
            measured
        } else {
            self.prior_rate.filter(|r| *r > 0.0).or(measured)
        }?;
        Some((oldest - from).as_seconds_f64().max(0.0) * rate)
    }
}
