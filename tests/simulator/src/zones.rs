//! Portal time zones and how DocSpace renders dates in them (the DST fall-back bug included).

use std::fmt::Write as _;

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Portal time zone used to render `date` (the real API renders in the portal's zone with that
/// instant's offset).
#[derive(Debug, Clone, Copy)]
pub enum SimZone {
    /// UTC: dates end in `Z`.
    Utc,
    /// A fixed offset in minutes east of UTC (e.g. `-300` for UTC-05:00). Out-of-range values
    /// fall back to UTC.
    Fixed {
        /// Minutes east of UTC.
        minutes: i32,
    },
    /// Europe/Berlin: CET +01:00, CEST +02:00 from the last Sunday of March 01:00 UTC to the last
    /// Sunday of October 01:00 UTC.
    EuropeBerlin,
    /// A zone that falls back from `minutes + 60` to `minutes` east of UTC at the UTC instant
    /// `at` (and never springs forward), so that a test can put the repeated hour around "now".
    FallBackAt {
        /// The instant of the fall-back (whole seconds).
        at: OffsetDateTime,
        /// The standard offset after it, in minutes east of UTC.
        minutes: i32,
    },
}

impl SimZone {
    /// The offset of this zone at the UTC instant `at`.
    pub fn offset_at(&self, at: OffsetDateTime) -> UtcOffset {
        match *self {
            SimZone::Utc => UtcOffset::UTC,
            SimZone::Fixed { minutes } => minutes
                .checked_mul(60)
                .and_then(|s| UtcOffset::from_whole_seconds(s).ok())
                .unwrap_or(UtcOffset::UTC),
            SimZone::EuropeBerlin => {
                let utc = at.checked_to_offset(UtcOffset::UTC).unwrap_or(at);
                let year = utc.year();
                let summer = match (
                    eu_dst_switch(year, Month::March),
                    eu_dst_switch(year, Month::October),
                ) {
                    (Some(start), Some(end)) => utc >= start && utc < end,
                    _ => false,
                };
                let hours = if summer { 2 } else { 1 };
                UtcOffset::from_hms(hours, 0, 0).unwrap_or(UtcOffset::UTC)
            }
            SimZone::FallBackAt { at: back, minutes } => {
                let m = if at < back { minutes + 60 } else { minutes };
                m.checked_mul(60)
                    .and_then(|s| UtcOffset::from_whole_seconds(s).ok())
                    .unwrap_or(UtcOffset::UTC)
            }
        }
    }

    /// Renders `at` the way DocSpace's `ApiDateTime` does: `yyyy-MM-ddTHH:mm:ss.fffffff` in this
    /// zone followed by `+hh:mm`/`-hh:mm`, or `Z` when the offset is zero.
    pub fn format(&self, at: OffsetDateTime) -> String {
        let offset = self.offset_at(at);
        render_wall(at.checked_to_offset(offset).unwrap_or(at), offset)
    }

    /// Renders `at` as DocSpace v3.7.2 really does (§14.2): the instant becomes portal wall time,
    /// and a wall time that is *ambiguous* (inside the hour repeated after a DST fall-back) is
    /// read back as standard time. So the first pass of that hour comes out one hour late: in
    /// Europe/Berlin, `2025-10-26T00:30:00Z` (02:30 CEST) renders as
    /// `2025-10-26T02:30:00.0000000+01:00`, the instant 01:30Z. Every other instant renders as
    /// [`SimZone::format`] does.
    pub fn format_with_fall_back_bug(&self, at: OffsetDateTime) -> String {
        let offset = self.offset_at(at);
        let wall = at.checked_to_offset(offset).unwrap_or(at);
        render_wall(wall, self.ambiguous_standard_offset(at).unwrap_or(offset))
    }

    /// The standard offset when `at` falls in the first pass of a repeated wall-clock hour
    /// (daylight time, one hour before the fall-back), else `None`.
    pub(crate) fn ambiguous_standard_offset(&self, at: OffsetDateTime) -> Option<UtcOffset> {
        match *self {
            SimZone::Utc | SimZone::Fixed { .. } => None,
            SimZone::EuropeBerlin => {
                let utc = at.checked_to_offset(UtcOffset::UTC).unwrap_or(at);
                let back = eu_dst_switch(utc.year(), Month::October)?;
                let first_pass = utc >= back.checked_sub(time::Duration::HOUR)? && utc < back;
                first_pass
                    .then(|| UtcOffset::from_hms(1, 0, 0).ok())
                    .flatten()
            }
            SimZone::FallBackAt { at: back, minutes } => {
                let first_pass = at >= back.checked_sub(time::Duration::HOUR)? && at < back;
                first_pass
                    .then(|| UtcOffset::from_whole_seconds(minutes.checked_mul(60)?).ok())
                    .flatten()
            }
        }
    }
}

/// `ApiDateTime.ToRoundTripString`: the wall-clock fields of `local` followed by `offset`
/// (`Z` when zero). The two differ only when the server pairs a wall time with the wrong offset.
pub(crate) fn render_wall(local: OffsetDateTime, offset: UtcOffset) -> String {
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}",
        local.year(),
        u8::from(local.month()),
        local.day(),
        local.hour(),
        local.minute(),
        local.second(),
        local.nanosecond() / 100
    );
    let secs = offset.whole_seconds();
    if secs == 0 {
        out.push('Z');
    } else {
        let sign = if secs < 0 { '-' } else { '+' };
        let minutes = secs.unsigned_abs() / 60;
        let _ = write!(out, "{sign}{:02}:{:02}", minutes / 60, minutes % 60);
    }
    out
}

/// 01:00 UTC on the last Sunday of `month` (March or October) of `year`: the EU DST switch.
pub(crate) fn eu_dst_switch(year: i32, month: Month) -> Option<OffsetDateTime> {
    let last = Date::from_calendar_date(year, month, 31).ok()?;
    let back = i64::from(last.weekday().number_days_from_sunday());
    let sunday = last.checked_sub(time::Duration::days(back))?;
    Some(PrimitiveDateTime::new(sunday, Time::from_hms(1, 0, 0).ok()?).assume_utc())
}
