//! Dates that DocSpace rendered an hour late (docs/docspace-api.md §14.2).
//!
//! The server turns a row's stored UTC instant into portal wall time and back to an offset
//! for output, and .NET reads an ambiguous wall time as standard time: rows written in the
//! first pass of the hour repeated at a DST fall-back come back one hour later than they
//! happened. The server still filters and sorts on the true instant. So within one answer
//! (rows newest first, by true instant) a row is *certainly* late when
//! - it is dated after the `to` the server filtered it by;
//! - it is dated after the moment it was served (allowing [`CLOCK_SKEW`]);
//! - it is dated after a row served above it, which truly happened no earlier.
//!
//! Such a row is given its true instant (its date minus [`FALL_BACK`]) when that is consistent
//! with what proved it late; the `date` DocSpace wrote stays in the row (`docspace.date` in
//! ECS, the raw row in `json`). A late row that nothing proves late keeps DocSpace's date.

use time::{Duration, OffsetDateTime};
use tracing::debug;

use super::walker::{STRIDE, Walk};
use super::{Client, SourceError};
use crate::event::{Stream, format_utc_seconds};

/// How much later than true the server dates a row of the first pass of a repeated hour: the
/// DST shift, one hour in every zone that observes DST but Lord Howe Island (30 min).
pub const FALL_BACK: Duration = Duration::HOUR;
/// How far the portal's clock may run ahead of the agent's before a row dated in the future
/// is taken for a late one.
pub const CLOCK_SKEW: Duration = Duration::minutes(2);
/// Dates are whole seconds; a filter bound compares whole seconds of the stored value.
const GRAIN: Duration = Duration::SECOND;

/// Corrects the dates of one answer's rows, in the order served (newest first; `None` for a
/// row whose date is unreadable), that are certainly late (see the module doc). `to` is the
/// upper bound the server filtered by, if any. Returns how many were corrected.
pub fn repair(
    dates: &mut [Option<OffsetDateTime>],
    answered: OffsetDateTime,
    to: Option<OffsetDateTime>,
) -> usize {
    let mut fixed = 0;
    // The earliest true date served so far: every row below it happened no later.
    let mut floor: Option<OffsetDateTime> = None;
    let future = answered.checked_add(CLOCK_SKEW);
    let ceiling = to.and_then(|t| t.checked_add(GRAIN));
    for slot in dates.iter_mut() {
        let Some(d) = *slot else { continue };
        let late = ceiling.is_some_and(|c| d > c)
            || future.is_some_and(|f| d > f)
            || floor.is_some_and(|f| d > f);
        let mut date = d;
        if late && let Some(c) = d.checked_sub(FALL_BACK) {
            // Only when the hour explains it: the corrected row fits under what proved it late.
            let fits = ceiling.is_none_or(|t| c <= t)
                && floor.is_none_or(|f| c <= f)
                && future.is_none_or(|f| c <= f);
            if fits {
                date = c;
                *slot = Some(c);
                fixed += 1;
            }
        }
        floor = Some(floor.map_or(date, |f| f.min(date)));
    }
    fixed
}

/// The UTC offset at the end of a DocSpace date (`Z` or `±hh:mm`), in seconds.
pub fn offset_secs(date: &str) -> Option<i32> {
    let b = date.trim().as_bytes();
    if b.last() == Some(&b'Z') || b.last() == Some(&b'z') {
        return Some(0);
    }
    let tail = b.get(b.len().checked_sub(6)?..)?;
    let sign = match tail[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digit = |c: u8| c.is_ascii_digit().then(|| i32::from(c - b'0'));
    if tail[3] != b':' {
        return None;
    }
    let h = digit(tail[1])? * 10 + digit(tail[2])?;
    let m = digit(tail[4])? * 10 + digit(tail[5])?;
    Some(sign * (h * 3600 + m * 60))
}

impl Client {
    /// Reads the login rows of `[from, to]` by position, with filtered pages (the server
    /// filters on the true instant), between where the rows dated up to `to` + [`FALL_BACK`]
    /// start and where those dated from `from` − [`FALL_BACK`] end: every row truly in the
    /// window lies between, whatever DocSpace dated it. For a window near a fall-back of the
    /// portal's zone (rows of two UTC offsets seen around it), where the dates in the log
    /// are not in the order of its rows and the walker's search by date can miss some.
    pub(super) async fn read_by_position(
        &self,
        from: OffsetDateTime,
        to: OffsetDateTime,
        walk: &mut Walk,
    ) -> Result<(), SourceError> {
        let (Some(top), Some(bottom)) = (to.checked_add(FALL_BACK), from.checked_sub(FALL_BACK))
        else {
            return Ok(());
        };
        let (slices, at) = self
            .locate_login(top, 0, None, &mut walk.w.requests)
            .await?;
        let first = slices.first().map_or(0, |s| s.offset + at);
        let (slices, at) = self
            .locate_login(bottom, first, None, &mut walk.w.requests)
            .await?;
        let last = slices.first().map_or(first, |s| s.offset + at);
        debug!(portal = %self.portal.name, from = %format_utc_seconds(from), to = %format_utc_seconds(to), first, last, "near a fall-back of the zone: reading the window by position");
        let mut index = first.saturating_sub(1);
        while index <= last {
            let page = self.page(Stream::Login, from, to, index).await?;
            walk.w.requests += 1;
            walk.take(page);
            index += STRIDE;
        }
        Ok(())
    }
}

/// Instants around which the portal's zone changed its offset (rows of two offsets were seen
/// in one answer, or in two windows in a row): windows within [`SUSPECT`] of one are read by
/// position too (see [`Client::read_by_position`]).
#[derive(Debug, Default)]
pub struct ZoneChanges {
    /// The offset of the newest row of the last login window, and the changes seen.
    last: Option<i32>,
    seen: Vec<OffsetDateTime>,
}

/// How near a zone change a window must be to be read by position.
const SUSPECT: Duration = Duration::hours(3);

impl ZoneChanges {
    /// Notes the offsets of rows dated `at` (one answer, or one window).
    pub fn note(&mut self, offsets: impl IntoIterator<Item = (i32, OffsetDateTime)>) {
        for (offset, at) in offsets {
            if let Some(last) = self.last
                && last != offset
                && !self.seen.iter().any(|t| (*t - at).abs() < SUSPECT)
            {
                self.seen.push(at);
                if self.seen.len() > 8 {
                    self.seen.remove(0);
                }
            }
            self.last = Some(offset);
        }
    }

    /// Whether `[from, to]` lies near a change.
    pub fn near(&self, from: OffsetDateTime, to: OffsetDateTime) -> bool {
        self.seen
            .iter()
            .any(|t| *t >= from - SUSPECT && *t <= to + SUSPECT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn rows_after_to_in_the_future_or_above_their_elders_are_an_hour_early() {
        let now = datetime!(2025-10-26 00:31 UTC);
        // First pass of the Berlin repeated hour, served at 00:31Z: rendered 01:30Z, 01:10Z.
        let mut d = vec![
            Some(datetime!(2025-10-26 01:30 UTC)),
            Some(datetime!(2025-10-26 01:10 UTC)),
            Some(datetime!(2025-10-25 23:59 UTC)),
        ];
        assert_eq!(repair(&mut d, now, None), 2);
        assert_eq!(d[0], Some(datetime!(2025-10-26 00:30 UTC)));
        assert_eq!(d[1], Some(datetime!(2025-10-26 00:10 UTC)));
        assert_eq!(d[2], Some(datetime!(2025-10-25 23:59 UTC)));
    }

    #[test]
    fn the_second_pass_above_the_first_proves_it_late() {
        // Served at 01:40Z: second pass (true) above first pass (rendered an hour late).
        let now = datetime!(2025-10-26 01:40 UTC);
        let mut d = vec![
            Some(datetime!(2025-10-26 01:05 UTC)),
            Some(datetime!(2025-10-26 01:50 UTC)),
            None,
            Some(datetime!(2025-10-26 01:20 UTC)),
            Some(datetime!(2025-10-26 01:01 UTC)),
        ];
        assert_eq!(repair(&mut d, now, None), 3);
        assert_eq!(d[1], Some(datetime!(2025-10-26 00:50 UTC)));
        assert_eq!(d[3], Some(datetime!(2025-10-26 00:20 UTC)));
        // Dated after 00:20, which truly happened no earlier: late as well.
        assert_eq!(d[4], Some(datetime!(2025-10-26 00:01 UTC)));
    }

    #[test]
    fn ordinary_answers_and_ties_are_left_alone() {
        let now = datetime!(2025-06-01 12:00 UTC);
        let mut d = vec![
            Some(datetime!(2025-06-01 11:59 UTC)),
            Some(datetime!(2025-06-01 11:59 UTC)),
            Some(datetime!(2025-06-01 11:58 UTC)),
        ];
        let before = d.clone();
        assert_eq!(
            repair(&mut d, now, Some(datetime!(2025-06-01 11:59 UTC))),
            0
        );
        assert_eq!(d, before);
    }

    #[test]
    fn a_row_after_to_by_more_than_the_hour_is_not_guessed_at() {
        let now = datetime!(2025-06-01 12:00 UTC);
        let mut d = vec![Some(datetime!(2025-06-01 14:00 UTC))];
        assert_eq!(
            repair(&mut d, now, Some(datetime!(2025-06-01 11:00 UTC))),
            0
        );
    }

    #[test]
    fn offsets_are_read_from_the_end_of_the_date() {
        assert_eq!(offset_secs("2025-10-26T02:30:00.0000000+01:00"), Some(3600));
        assert_eq!(
            offset_secs("2025-10-26T02:30:00.0000000-03:30"),
            Some(-12600)
        );
        assert_eq!(offset_secs("2025-10-26T02:30:00.0000000Z"), Some(0));
        assert_eq!(offset_secs("2025-10-26T02:30:00"), None);
        assert_eq!(offset_secs(""), None);
        assert_eq!(offset_secs("+1:000"), None);
    }

    #[test]
    fn dates_at_the_edge_of_the_calendar_do_not_panic() {
        let max = time::Date::MAX.with_hms(23, 59, 59).unwrap().assume_utc();
        let min = time::Date::MIN.with_hms(0, 0, 0).unwrap().assume_utc();
        let mut d = vec![Some(max), Some(min), Some(max)];
        repair(&mut d, max, Some(max));
        repair(&mut d, min, Some(min));
    }
}
