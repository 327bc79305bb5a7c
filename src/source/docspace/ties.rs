//! Reading a second of ties whole (docs/docspace-api.md §14.3).
//!
//! Both logs are sorted by date only, in whole seconds, with no tie-breaker: the rows of one
//! second come back in a different order from one answer to the next, so two pages whose edge
//! falls inside such a second may each miss a row that the other holds in another place, and
//! overlapping pages by a row proves nothing there. The walker notes every such second
//! ([`super::walker::Prev::tie_with`]) and, once the window is read, reads each one whole here: its
//! rows are counted in answers that see where it begins and ends, and read again until as
//! many distinct rows were seen (a second of more rows than a page included).

use rustc_hash::FxHashSet;
use time::OffsetDateTime;
use tracing::debug;

use super::page::{Page, raw_value};
use super::walker::{STRIDE, Walk};
use super::{Client, PAGE_SIZE, SourceError, Unreadable};
use crate::event::{Event, Stream, format_utc_seconds};

/// Passes over a second before its rows are given up on (retried with the window later).
const PASSES: usize = 8;
/// Slices a login second's start is looked for above where it was seen.
const CLIMB: usize = 20;

impl Client {
    /// Reads every row of `second` into `walk`; `at` is where (login: in the whole log) the
    /// first of them was seen.
    pub(super) async fn read_second(
        &self,
        stream: Stream,
        second: OffsetDateTime,
        at: usize,
        walk: &mut Walk,
    ) -> Result<(), SourceError> {
        let mut seen = FxHashSet::default();
        let mut start = at;
        for pass in 0..PASSES {
            let (rows, holes) = match stream {
                Stream::Audit => self.audit_second(second, walk, &mut seen).await?,
                Stream::Login => {
                    let (rows, holes, first) =
                        self.login_second(second, start, walk, &mut seen).await?;
                    start = first;
                    (rows, holes)
                }
            };
            if seen.len() + holes >= rows {
                debug!(portal = %self.portal.name, stream = %stream, second = %format_utc_seconds(second), rows, passes = pass + 1, "a second of ties read whole");
                return Ok(());
            }
        }
        Err(SourceError::Unsettled(format!(
            "the {stream} rows of {} (a second of ties, in a new order in every answer) were not all seen after {PASSES} passes",
            format_utc_seconds(second)
        )))
    }

    /// One pass over an audit second (filtered first, so `[second, second]` pages it alone):
    /// how many rows it holds and how many of them the server could not return.
    async fn audit_second(
        &self,
        second: OffsetDateTime,
        walk: &mut Walk,
        seen: &mut FxHashSet<i64>,
    ) -> Result<(usize, usize), SourceError> {
        let (mut rows, mut holes, mut offset) = (0, 0, 0);
        loop {
            let page = self.page(Stream::Audit, second, second, offset).await?;
            walk.w.requests += 1;
            let n = page.rows();
            rows += n;
            holes += page.holes.len();
            seen.extend(page.ids.iter().copied());
            walk.take(page);
            if n < PAGE_SIZE {
                return Ok((rows, holes));
            }
            offset += PAGE_SIZE;
        }
    }

    /// One pass over a login second, with unfiltered slices of the log (login pages the whole
    /// log before filtering): from a slice that shows the row above the second's first one, to
    /// one that shows the row below its last. Returns how many rows it spans, how many of
    /// them could not be returned, and where it starts.
    async fn login_second(
        &self,
        second: OffsetDateTime,
        at: usize,
        walk: &mut Walk,
        seen: &mut FxHashSet<i64>,
    ) -> Result<(usize, usize, usize), SourceError> {
        let mut offset = at;
        let mut climbs = 0;
        let mut first: Option<usize> = None;
        let mut last = 0usize;
        let mut holes = 0usize;
        loop {
            let mut slice = self.login_slice(offset).await?;
            walk.w.requests += 1;
            let n = slice.len();
            let of_second = |i: usize| slice.dates[i] == Some(second);
            let lead = (0..n).find(|&i| of_second(i));
            if first.is_none() {
                // Rows only move towards older offsets as rows are inserted, so the second
                // starts at or below where it was seen: climb when this slice starts inside it
                // or lies below it, step down when it lies above it.
                let head = slice.dates.iter().flatten().next().copied();
                let step = match (lead, head) {
                    (Some(0), _) | (None, Some(_))
                        if offset > 0 && head.is_some_and(|d| d <= second) =>
                    {
                        -1
                    }
                    (None, Some(d)) if d > second && n == PAGE_SIZE => 1,
                    (Some(i), _) => {
                        first = Some(offset + i);
                        0
                    }
                    _ => 0,
                };
                if first.is_none() {
                    climbs += 1;
                    if step == 0 || climbs > CLIMB {
                        // Not (or no longer) in the log around here: nothing more to read.
                        return Ok((0, 0, at));
                    }
                    offset = if step < 0 {
                        offset.saturating_sub(STRIDE)
                    } else {
                        offset + STRIDE
                    };
                    continue;
                }
            }
            let mut page = Page::default();
            for i in 0..n {
                if slice.holes.contains(&i) {
                    // Within the second when rows of it lie on both sides.
                    let newer = slice.dates[..i].iter().rev().find_map(|d| *d);
                    let older = slice.dates[i + 1..].iter().find_map(|d| *d);
                    if newer == Some(second) && older == Some(second) {
                        holes += 1;
                        page.holes.push(Unreadable {
                            stream: Stream::Login,
                            position: offset + i,
                            window: None,
                            newer,
                            older,
                        });
                    }
                    continue;
                }
                if !of_second(i) {
                    continue;
                }
                last = last.max(offset + i);
                if let Some(id) = slice.ids[i] {
                    seen.insert(id);
                }
                page.note_id(slice.ids[i], slice.dates[i], false);
                match slice.events[i].take() {
                    Some(ev) => page.events.push(ev),
                    None => {
                        let row = slice.row(i);
                        match Event::from_row_text(self.portal.clone(), Some(Stream::Login), row) {
                            Ok(mut ev) => {
                                ev.time = second;
                                page.events.push(ev);
                            }
                            Err(e) => page.rejected.push((raw_value(row), e)),
                        }
                    }
                }
            }
            walk.take(page);
            let ends = slice.dates.iter().flatten().any(|d| *d < second) || n < PAGE_SIZE;
            let start = first.unwrap_or(offset);
            if ends {
                // Holes were counted as rows of the second only between two of its rows.
                let span = (last + 1).saturating_sub(start);
                return Ok((span, holes, start));
            }
            offset += STRIDE;
        }
    }
}
