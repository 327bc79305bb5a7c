//! The login locator. `login/filter` pages the whole log before filtering (docs/docspace-api.md),
//! so a window's rows may start anywhere below the head: this finds where, with unfiltered
//! slices of the log sent a few at a time (seeded by where the previous window started), and
//! proves the start from a single answer, which shows both the last row newer than the
//! window and the first one not newer. It then hands the walker the window's first rows.

use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::Value;
use time::OffsetDateTime;

use super::envelope::{PageRow, page_rows};
use super::error::SourceError;
use super::narrow::{Part, Unreadable};
use super::page::{Page, raw_value};
use super::walker::{Prev, STRIDE, Walk};
use super::{Client, PAGE_SIZE, dates};
use crate::event::{Event, Stream, format_utc_seconds};

/// Rounds of probes before the search for a login window's start gives up.
const MAX_PROBE_ROUNDS: usize = 64;

/// Where the last login window started, to seed the search for the next one (see
/// [`Client::window`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct LoginHint {
    /// The window's `to`.
    to: OffsetDateTime,
    /// Offset of its first row not newer than `to`, when it was read.
    start: usize,
    /// Rows per second in it.
    rate: f64,
    /// How far off the guesses from earlier hints were, in rows (smoothed).
    error: Option<f64>,
}

/// Where the run of a login window probably starts, give or take `spread` rows.
#[derive(Debug, Clone, Copy)]
pub(super) struct Guess {
    pub(super) at: usize,
    pub(super) spread: Option<usize>,
}

/// Where a window goes on after the slice that located its start.
pub(super) struct After {
    /// Offset of the next page.
    pub(super) index: usize,
    /// The slice's last row.
    pub(super) prev: Option<Prev>,
}

impl Client {
    /// One page of the whole login log (no filters) at `offset`: the dates of up to 100
    /// consecutive rows, all from one answer, so one consistent view of the log.
    pub(super) async fn login_slice(&self, offset: usize) -> Result<Slice, SourceError> {
        let parts = self.read(Stream::Login, None, offset, PAGE_SIZE).await?;
        // One answer, the usual case: its rows stay where they are in its body. Parts read
        // around an unreadable row are joined into one text.
        let joined = !matches!(parts.as_slice(), [Part::Body(_)]);
        let mut text = String::new();
        let mut slice = Slice {
            offset,
            body: String::new(),
            spans: Vec::with_capacity(PAGE_SIZE),
            ids: Vec::with_capacity(PAGE_SIZE),
            dates: Vec::with_capacity(PAGE_SIZE),
            events: Vec::with_capacity(PAGE_SIZE),
            holes: Vec::new(),
            done: Instant::now(),
        };
        for part in &parts {
            let body = match part {
                Part::Body(body) => body,
                Part::Hole(_) => {
                    slice.holes.push(slice.spans.len());
                    slice.spans.push((0, 0));
                    slice.ids.push(None);
                    slice.dates.push(None);
                    slice.events.push(None);
                    continue;
                }
            };
            // Decoded in the one pass that splits the answer: a slice that starts the window
            // is emitted from, and its rows are not read again.
            let found = page_rows(body, &self.portal, Stream::Login)?;
            let n = found.len();
            if n > PAGE_SIZE {
                return Err(SourceError::NoAuditPlan(format!(
                    "{n} rows for count={PAGE_SIZE}"
                )));
            }
            let base = body.as_ptr() as usize;
            for row in found {
                match row {
                    PageRow::Event(ev) => {
                        slice.spans.push((0, 0));
                        slice.ids.push(Some(ev.id));
                        slice.dates.push(Some(ev.time));
                        slice.events.push(Some(ev));
                    }
                    PageRow::Text(row) => {
                        let span = if joined {
                            let start = text.len();
                            text.push_str(row);
                            (start, text.len())
                        } else {
                            let start = row.as_ptr() as usize - base;
                            (start, start + row.len())
                        };
                        slice.spans.push(span);
                        let (id, date) = crate::event::row_id_and_date(row);
                        slice.ids.push(id);
                        slice.dates.push(date);
                        slice.events.push(None);
                    }
                }
            }
        }
        // Moving the one body keeps its bytes where the spans point.
        slice.body = match parts.into_iter().next() {
            Some(Part::Body(body)) if !joined => body,
            _ => text,
        };
        if dates::repair(&mut slice.dates, OffsetDateTime::now_utc(), None) > 0 {
            for (ev, date) in slice.events.iter_mut().zip(&slice.dates) {
                if let (Some(ev), Some(date)) = (ev.as_mut(), date) {
                    ev.time = *date;
                }
            }
        }
        Ok(slice)
    }

    /// How many probes to send at once: as many as the rate limiter lets through during one
    /// round trip (more would only wait for their slots), at most `concurrency`.
    fn probe_width(&self) -> usize {
        let interval = self.limiter.interval();
        if interval.is_zero() {
            return self.concurrency;
        }
        let rtt = self.latency_us.load(Ordering::Relaxed) as f64;
        let k = (rtt / interval.as_micros().max(1) as f64).ceil();
        (k as usize).clamp(1, self.concurrency)
    }

    /// Where the run of login rows not newer than `to` starts. Rows at offsets below `lo` are
    /// known to be newer than `to`; `guess` is where the run probably starts.
    ///
    /// Each round sends `probe_width` unfiltered slices at once: first a block of adjacent
    /// slices around the guess, then galloping away from what the slices showed, then k-ary
    /// splits of the bracket, and finally slices that cover it. It ends when one slice holds a
    /// row newer than `to` followed by one that is not: a single answer is a consistent view
    /// of the log, so rows inserted between answers cannot fake the start. Returns that slice,
    /// followed by the adjacent slices after it from the same round (they hold the run's next
    /// rows), and the index of the start in it (its length when the log ends before any such
    /// row).
    pub(super) async fn locate_login(
        &self,
        to: OffsetDateTime,
        mut lo: usize,
        mut guess: Option<Guess>,
        requests: &mut u32,
    ) -> Result<(Vec<Slice>, usize), SourceError> {
        let mut hi: Option<usize> = None;
        let mut up: Option<usize> = None;
        let mut down: Option<usize> = None;
        for round in 0..MAX_PROBE_ROUNDS {
            // Known after the first answer of a run.
            let k = self.probe_width();
            let guessed = guess.is_some();
            let offsets = match (guess.take(), hi) {
                // No idea where: the head first, alone (a live window starts there).
                (None, None) if round == 0 && lo == 0 => vec![0],
                (_, Some(h)) if h.saturating_sub(lo.saturating_sub(1)) <= STRIDE * k => {
                    cover(lo, h)
                }
                (Some(g), _) => {
                    // Wide enough for the usual error of the guesses, at most `k`.
                    let n = g
                        .spread
                        .map_or(k, |s| (2 * s + 1).div_ceil(STRIDE))
                        .clamp(1, k);
                    block(g.at, n, lo, hi)
                }
                (None, None) => {
                    let step = up.unwrap_or(STRIDE * k);
                    up = Some(step.saturating_mul(1 << k));
                    gallop(lo.saturating_sub(1), step, k, true)
                }
                (None, Some(h)) => match down {
                    Some(step) => {
                        down = Some(step.saturating_mul(1 << k));
                        let v: Vec<usize> = gallop(h, step, k, false)
                            .into_iter()
                            .filter(|&o| o >= lo)
                            .collect();
                        if v.is_empty() { split(lo, h, k) } else { v }
                    }
                    None => split(lo, h, k),
                },
            };
            *requests += offsets.len() as u32;
            let slices =
                futures_util::future::try_join_all(offsets.iter().map(|&o| self.login_slice(o)))
                    .await?;
            if let Some(i) = slices.iter().position(|s| s.start(to).is_some()) {
                let at = slices[i].start(to).expect("checked");
                // The slices right after it hold the run's next rows.
                let mut run: Vec<Slice> = slices.into_iter().skip(i).collect();
                let adjacent = run
                    .windows(2)
                    .take_while(|w| w[1].offset == w[0].offset + STRIDE)
                    .count();
                run.truncate(adjacent + 1);
                return Ok((run, at));
            }
            let lo_before = lo;
            for s in &slices {
                let (l, h) = s.bounds(to);
                lo = lo.max(l);
                if let Some(h) = h {
                    hi = Some(hi.map_or(h, |x| x.min(h)));
                }
            }
            // Answers taken at different moments can disagree (rows were inserted between
            // them): look around `lo` then.
            if let Some(h) = hi
                && h < lo
            {
                hi = Some(lo);
            }
            if guessed && lo == lo_before && hi.is_some() {
                // The whole block lies past the start: gallop back towards the head.
                down = Some(STRIDE * k);
            } else if lo != lo_before {
                down = None;
            }
        }
        Err(SourceError::Unsettled(format!(
            "no start of the login rows up to {} after {MAX_PROBE_ROUNDS} rounds of probes (rows inserted faster than the search converges, or rows without a readable date)",
            format_utc_seconds(to)
        )))
    }

    /// Takes the window's first rows from the slice that located their start (`at`), and
    /// from the adjacent slices after it while each repeats the last row of the one before
    /// (they were answered in any order), filtered to `[from, to]` here. Returns where the
    /// next page goes when the run of matches may go on past them.
    fn start_from_slices(
        &self,
        slices: Vec<Slice>,
        at: usize,
        from: OffsetDateTime,
        to: OffsetDateTime,
        walk: &mut Walk,
    ) -> Option<After> {
        let mut prev: Option<Prev> = None;
        let mut index = 0;
        let mut run = 0usize;
        for mut slice in slices {
            let skip = match prev {
                None => {
                    walk.start.get_or_insert(slice.offset + at);
                    at
                }
                Some(p) => match slice.ids.iter().position(|id| *id == Some(p.id)) {
                    Some(i) => {
                        let others = (0..slice.len())
                            .filter(|&j| {
                                slice.dates[j] == Some(p.date) && slice.ids[j] != Some(p.id)
                            })
                            .count();
                        if p.tied >= 2 || others > 0 {
                            walk.ties.push((p.date, p.tied_at));
                        }
                        i + 1
                    }
                    None => break,
                },
            };
            let n = slice.len();
            let mut ended = n < PAGE_SIZE;
            let mut page = Page::default();
            for i in skip..n {
                let date = slice.dates[i];
                if slice.holes.contains(&i) {
                    page.note_id(None, None, i + 1 == n);
                    page.holes.push(Unreadable {
                        stream: Stream::Login,
                        position: slice.offset + i,
                        window: None,
                        newer: slice.dates[..i].iter().rev().find_map(|d| *d),
                        older: slice.dates[i + 1..].iter().find_map(|d| *d),
                    });
                    continue;
                }
                match date {
                    Some(d) if d < from => {
                        ended = true;
                        break;
                    }
                    // Not in one sorted answer; kept out all the same.
                    Some(d) if d > to => {}
                    _ => {
                        page.note_id(slice.ids[i], date, i + 1 == n);
                        if let Some(ev) = slice.events[i].take() {
                            page.events.push(ev);
                            continue;
                        }
                        let row = slice.row(i);
                        match Event::from_row_text(self.portal.clone(), Some(Stream::Login), row) {
                            Ok(mut ev) => {
                                if let Some(d) = date {
                                    ev.time = d;
                                }
                                page.events.push(ev)
                            }
                            Err(e) => page.rejected.push((raw_value(row), e)),
                        }
                    }
                }
            }
            run += page.rows();
            prev = Prev::of(&page, slice.offset + skip, slice.done, run);
            index = slice.offset + STRIDE;
            walk.take(page);
            if ended {
                return None;
            }
            if prev.is_none() {
                // A last row without a readable id or date: go on with pages, unchecked.
                break;
            }
        }
        Some(After { index, prev })
    }

    /// Locates where the login rows not newer than `top` start and takes the first of them.
    pub(super) async fn start_login(
        &self,
        from: OffsetDateTime,
        top: OffsetDateTime,
        guess: Option<Guess>,
        walk: &mut Walk,
    ) -> Result<Option<After>, SourceError> {
        let (slices, at) = self
            .locate_login(top, 0, guess, &mut walk.w.requests)
            .await?;
        // Rows of two UTC offsets around the start: the zone changed near this window, and
        // dates may be an hour late and out of order there (§14.2).
        if let Some(first) = slices.first() {
            let mut zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
            zones.note(
                (0..first.len())
                    .rev()
                    .filter_map(|i| first.offset_secs(i).zip(first.dates[i])),
            );
        }
        Ok(self.start_from_slices(slices, at, from, top, walk))
    }

    /// A rough place to start looking for the run of login rows up to `to`, from where the
    /// last window started and its density (catch-up walks windows oldest first, so the next
    /// one starts nearer the head). `None` when the run probably begins in the first page.
    pub(super) fn guess_start(&self, to: OffsetDateTime) -> Option<(Guess, f64)> {
        let h = (*self.hint.lock().unwrap_or_else(|e| e.into_inner()))?;
        let between = (to - h.to).as_seconds_f64() * h.rate;
        let at = h.start as f64 - between;
        let spread = h.error.map(|e| e as usize + 20);
        (at >= PAGE_SIZE as f64).then_some((
            Guess {
                at: at as usize,
                spread,
            },
            h.rate,
        ))
    }

    /// Keeps where this login window started and how dense it was: the next window's search
    /// for its start is seeded from it ([`Client::guess_start`]).
    pub(super) fn remember_start(&self, from: OffsetDateTime, to: OffsetDateTime, walk: &Walk) {
        let Some(start) = walk.start else {
            return;
        };
        let covered = if walk.w.too_many {
            walk.oldest.unwrap_or(from).max(from)
        } else {
            from
        };
        let secs = (to - covered).as_seconds_f64().max(1.0);
        let mut hint = self.hint.lock().unwrap_or_else(|e| e.into_inner());
        let error = match (walk.guess, hint.and_then(|h| h.error)) {
            (Some(g), Some(e)) => Some((e + start.abs_diff(g) as f64) / 2.0),
            (Some(g), None) => Some(start.abs_diff(g) as f64),
            (None, e) => e,
        };
        *hint = Some(LoginHint {
            to,
            start,
            rate: walk.rows as f64 / secs,
            error,
        });
    }
}

/// Up to 100 consecutive rows of the whole login log, from one answer.
pub(super) struct Slice {
    pub(super) offset: usize,
    /// The answer's body; each row the scan path left undecoded is
    /// `body[spans[i].0..spans[i].1]`.
    pub(super) body: String,
    pub(super) spans: Vec<(usize, usize)>,
    /// Each row as the scan path decoded it while splitting the answer (taken when emitted).
    pub(super) events: Vec<Option<Event>>,
    /// Each row's id, `None` when unreadable.
    pub(super) ids: Vec<Option<i64>>,
    /// Each row's date, `None` when unreadable.
    pub(super) dates: Vec<Option<OffsetDateTime>>,
    /// Indices of rows the server could not return (read around, §14.4).
    pub(super) holes: Vec<usize>,
    /// When the answer arrived.
    pub(super) done: Instant,
}

impl Slice {
    pub(super) fn len(&self) -> usize {
        self.spans.len()
    }

    pub(super) fn row(&self, i: usize) -> &str {
        let (a, b) = self.spans[i];
        self.body.get(a..b).unwrap_or_default()
    }

    /// The UTC offset DocSpace wrote in row `i`'s date, in seconds.
    fn offset_secs(&self, i: usize) -> Option<i32> {
        match self.events.get(i)? {
            Some(ev) => dates::offset_secs(ev.date_text()),
            None => {
                let row = serde_json::from_str::<Value>(self.row(i)).ok()?;
                dates::offset_secs(row.get("date")?.as_str()?)
            }
        }
    }
    /// The index of the first row not newer than `to`, when this answer alone proves it: a
    /// row newer than `to` comes before it (or the slice starts the log). Rows with an
    /// unreadable date between the two count as not newer, so they are read, never skipped.
    /// The slice's length when it ends the log and all its rows are newer than `to`.
    fn start(&self, to: OffsetDateTime) -> Option<usize> {
        let first_older = self.dates.iter().position(|d| d.is_some_and(|d| d <= to));
        let end = first_older.unwrap_or(self.len());
        let last_newer = self.dates[..end]
            .iter()
            .rposition(|d| d.is_some_and(|d| d > to));
        match (first_older, last_newer) {
            (Some(_), Some(j)) => Some(j + 1),
            (Some(_), None) if self.offset == 0 => Some(0),
            (None, Some(j)) if self.len() < PAGE_SIZE && j + 1 == self.len() => Some(self.len()),
            (None, None) if self.offset == 0 && (self.len() == 0) => Some(0),
            _ => None,
        }
    }

    /// What this slice says otherwise: rows below `.0` are newer than `to`, and the row at
    /// `.1` is not (or lies past the end of the log).
    fn bounds(&self, to: OffsetDateTime) -> (usize, Option<usize>) {
        let first_older = self.dates.iter().position(|d| d.is_some_and(|d| d <= to));
        let end = first_older.unwrap_or(self.len());
        let lo = self.dates[..end]
            .iter()
            .rposition(|d| d.is_some_and(|d| d > to))
            .map_or(0, |j| self.offset + j + 1);
        let hi = match first_older {
            Some(i) => Some(self.offset + i),
            None if self.len() < PAGE_SIZE => Some(self.offset + self.len()),
            None => None,
        };
        (lo, hi)
    }
}

/// Slices that cover every possible start in `[lo, hi]`: adjacent ones overlap by a row, so
/// the start falls inside one of them.
fn cover(lo: usize, hi: usize) -> Vec<usize> {
    let first = lo.saturating_sub(1);
    let n = hi.saturating_sub(first).div_ceil(STRIDE).max(1);
    (0..n).map(|j| first + STRIDE * j).collect()
}

/// `k` adjacent slices centred on `center`, within the bracket.
fn block(center: usize, k: usize, lo: usize, hi: Option<usize>) -> Vec<usize> {
    let span = STRIDE * k;
    let floor = lo.saturating_sub(1);
    let mut first = center.saturating_sub(span / 2).max(floor);
    if let Some(h) = hi {
        first = first.min(h.saturating_sub(span)).max(floor);
    }
    (0..k).map(|j| first + STRIDE * j).collect()
}

/// `k` slices splitting `(lo, hi)` evenly.
fn split(lo: usize, hi: usize, k: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..k).map(|j| lo + (hi - lo) * (j + 1) / (k + 1)).collect();
    v.dedup();
    v
}

/// `k` slices at `step`, 2 × `step`, 4 × `step`… from `anchor`, upwards or downwards.
fn gallop(anchor: usize, step: usize, k: usize, up: bool) -> Vec<usize> {
    let mut v: Vec<usize> = (0..k)
        .map(|j| {
            let d = step.saturating_mul(1 << j);
            if up {
                anchor.saturating_add(d)
            } else {
                anchor.saturating_sub(d)
            }
        })
        .collect();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    fn slice(offset: usize, dates: &[Option<OffsetDateTime>], full: bool) -> Slice {
        let mut dates = dates.to_vec();
        if full {
            let last = dates.last().copied().flatten();
            dates.resize(PAGE_SIZE, last);
        }
        let mut body = String::new();
        let mut spans = Vec::new();
        for i in 0..dates.len() {
            let start = body.len();
            body.push_str(&json!({ "id": 1000 - i as i64 }).to_string());
            spans.push((start, body.len()));
        }
        Slice {
            offset,
            body,
            ids: (0..spans.len()).map(|i| Some(1000 - i as i64)).collect(),
            events: (0..spans.len()).map(|_| None).collect(),
            spans,
            dates,
            holes: Vec::new(),
            done: Instant::now(),
        }
    }

    #[test]
    fn a_slice_proves_a_start_only_with_a_newer_row_before_it() {
        let to = datetime!(2025-01-01 12:00 UTC);
        let newer = Some(to + time::Duration::minutes(1));
        let older = Some(to - time::Duration::minutes(1));
        // Newer, newer, unreadable, older…: the start is the unreadable row (read, not skipped).
        let s = slice(500, &[newer, newer, None, older], true);
        assert_eq!(s.start(to), Some(2));
        // Older from the first row on: not proven here (rows above may be older too)…
        let s = slice(500, &[older], true);
        assert_eq!(s.start(to), None);
        assert_eq!(s.bounds(to), (0, Some(500)));
        // … unless the slice starts the log.
        assert_eq!(slice(0, &[older], true).start(to), Some(0));
        // All newer and full: the start lies further on.
        let s = slice(500, &[newer], true);
        assert_eq!(s.start(to), None);
        assert_eq!(s.bounds(to), (600, None));
        // All newer and the log ends: no row is old enough; the start is the end.
        let s = slice(500, &[newer, newer, newer], false);
        assert_eq!(s.start(to), Some(3));
        // Past the end.
        let s = slice(900, &[], false);
        assert_eq!(s.start(to), None);
        assert_eq!(s.bounds(to), (0, Some(900)));
    }

    #[test]
    fn probe_layouts_cover_what_they_must() {
        // Every start in [lo, hi] falls strictly inside one covering slice.
        for (lo, hi) in [(0, 0), (1, 1), (100, 100), (100, 150), (100, 496), (7, 300)] {
            let v = cover(lo, hi);
            for s in lo.max(1)..=hi {
                assert!(
                    v.iter().any(|&o| o < s && s <= o + STRIDE),
                    "{s} in [{lo}, {hi}]: {v:?}"
                );
            }
        }
        assert_eq!(block(1000, 4, 0, None), vec![802, 901, 1000, 1099]);
        assert_eq!(block(50, 4, 0, None), vec![0, 99, 198, 297]);
        assert_eq!(split(0, 1000, 4), vec![200, 400, 600, 800]);
        assert_eq!(gallop(99, 396, 3, true), vec![495, 891, 1683]);
        assert_eq!(gallop(1000, 396, 3, false), vec![604, 208, 0]);
    }
}
