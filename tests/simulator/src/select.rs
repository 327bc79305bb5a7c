//! Row selection: paging before or after filtering, ties, rows the server cannot convert.

use time::OffsetDateTime;

use crate::*;

// ---- row selection ---------------------------------------------------------------------------

/// The rows (indices into `table.rows`) an answer holds, in answer order. `filter = None` is
/// the latest 20; `ties` shuffles the rows of each second the page touches (§14.3).
pub(crate) fn select_rows(
    table: &Table,
    stream: SimStream,
    filter: Option<&FilterParams>,
    ties: Option<&mut fastrand::Rng>,
) -> Vec<u32> {
    let date = |i: u32| table.row(i).ev.date;
    let order = table.order.as_slice();
    let (skip, count) = filter.map_or((0, LAST_COUNT), |p| (p.start_index, p.count));
    if stream == SimStream::Login {
        // Window first, then filters: short or empty pages while older matches exist.
        let mut rows = page(order, skip, count, date, ties);
        if let Some(p) = filter {
            rows.retain(|&i| p.matches(&table.row(i).ev));
        }
        return rows;
    }
    // Audit: filters first, then Skip/Take (normal paging). Rows within [from, to] are
    // contiguous in date order, so the range is found by binary search; when nothing but the
    // dates can reject a row, `startIndex` indexes the range directly.
    let range = filter.map_or(order, |p| date_range(table, p));
    if table.unmapped == 0 && filter.is_none_or(FilterParams::dates_only) {
        return page(range, skip, count, date, ties);
    }
    // Without `action`, only codes known to the action mappers (`AuditEventsRepository`).
    let by_action = filter.is_some_and(|p| p.action.is_some());
    let visible = |i: &u32| {
        let ev = &table.row(*i).ev;
        filter.is_none_or(|p| p.matches(ev)) && (by_action || !is_unmapped(ev.action_id))
    };
    let end = skip.saturating_add(count);
    let head = prefix(range.iter().copied().filter(visible), end, date);
    page(&head, skip, count, date, ties)
}

/// The rows of `table.order` dated within `[p.from, p.to]`.
pub(crate) fn date_range<'a>(table: &'a Table, p: &FilterParams) -> &'a [u32] {
    let order = table.order.as_slice();
    let lo = p.to.map_or(0, |to| {
        order.partition_point(|&i| table.row(i).ev.date > to)
    });
    let hi = p.from.map_or(order.len(), |from| {
        order.partition_point(|&i| table.row(i).ev.date >= from)
    });
    &order[lo..hi.max(lo)]
}

/// The first `n` of `rows` (in date order) plus the rest of the second the last of them falls
/// in, so that a page ending there can be shuffled with its whole second.
pub(crate) fn prefix(
    rows: impl Iterator<Item = u32>,
    n: usize,
    date: impl Fn(u32) -> OffsetDateTime,
) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    for i in rows {
        if out.len() >= n && out.last().is_none_or(|&last| date(last) != date(i)) {
            break;
        }
        out.push(i);
    }
    out
}

/// `seq[skip..skip + count]`, clamped. With `ties`, the seconds the page touches are each put
/// in a fresh random order first and the page is cut from that order, as MySQL does with
/// `ORDER BY date` only. Seconds the page does not touch cannot reach it, so only the touched
/// ones are shuffled (groups of equal dates are contiguous in `seq`).
pub(crate) fn page(
    seq: &[u32],
    skip: usize,
    count: usize,
    date: impl Fn(u32) -> OffsetDateTime,
    ties: Option<&mut fastrand::Rng>,
) -> Vec<u32> {
    let start = skip.min(seq.len());
    let end = skip.saturating_add(count).min(seq.len());
    let Some(rng) = ties.filter(|_| start < end) else {
        return seq[start..end].to_vec();
    };
    let (first, last) = (date(seq[start]), date(seq[end - 1]));
    let lo = seq[..start]
        .iter()
        .rposition(|&i| date(i) != first)
        .map_or(0, |p| p + 1);
    let hi = seq[end..]
        .iter()
        .position(|&i| date(i) != last)
        .map_or(seq.len(), |p| end + p);
    let mut touched = seq[lo..hi].to_vec();
    for second in touched.chunk_by_mut(|&a, &b| date(a) == date(b)) {
        rng.shuffle(second);
    }
    touched.drain(..start - lo);
    touched.truncate(end - start);
    touched
}

/// Stack frames of the `NullReferenceException` the server hits converting `rows`, if any:
/// a login row with a NULL ip (`EventTypeConverter` splits it unchecked), or an audit row
/// whose action no mapper knows (`AuditEventDto` reads the missing mapping).
pub(crate) fn unconvertible(stream: SimStream, rows: &[&Row]) -> Option<&'static str> {
    match stream {
        SimStream::Login => rows.iter().any(|r| r.null_ip).then_some(NULL_IP_FRAMES),
        SimStream::Audit => rows
            .iter()
            .any(|r| is_unmapped(r.ev.action_id))
            .then_some(UNMAPPED_ACTION_FRAMES),
    }
}

/// How `date` values are rendered: the portal zone, with or without the v3.7.2 fall-back bug.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DateStyle {
    pub(crate) zone: SimZone,
    pub(crate) fall_back_bug: bool,
}

impl DateStyle {
    pub(crate) fn render(self, at: OffsetDateTime) -> String {
        if self.fall_back_bug {
            self.zone.format_with_fall_back_bug(at)
        } else {
            self.zone.format(at)
        }
    }
}
