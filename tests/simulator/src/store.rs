//! The store: rows, tables in `date DESC, id DESC` order, the rate window, the shared state.

use std::collections::VecDeque;
use std::time::Duration;

use time::{OffsetDateTime, UtcOffset};

use crate::*;

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) id: i64,
    pub(crate) ev: SimEvent,
    /// The `ip` column is NULL (the login conversion cannot render the row, §14.4).
    pub(crate) null_ip: bool,
}

#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) rows: Vec<Row>,
    pub(crate) next_id: i64,
    /// Indices into `rows` ordered `date DESC, id DESC` (the order every page is cut from),
    /// kept up to date on single inserts and rebuilt once after a bulk load, so that a page of
    /// a large backlog costs O(page) instead of a sort of the whole table.
    pub(crate) order: Vec<u32>,
    /// Whether `order` describes every row.
    pub(crate) ordered: bool,
    /// Rows whose action is in [`UNMAPPED_AUDIT_ACTIONS`] (audit only): while there are none, a
    /// date range of `order` is exactly what the API can return.
    pub(crate) unmapped: usize,
}

impl Table {
    pub(crate) fn new(next_id: i64) -> Table {
        Table {
            rows: Vec::new(),
            next_id,
            order: Vec::new(),
            ordered: true,
            unmapped: 0,
        }
    }

    pub(crate) fn row(&self, index: u32) -> &Row {
        &self.rows[index as usize]
    }

    /// Whether row `a` comes before row `b` in `date DESC, id DESC` order.
    pub(crate) fn before(a: &Row, b: &Row) -> bool {
        (a.ev.date, a.id) > (b.ev.date, b.id)
    }

    pub(crate) fn push(&mut self, row: Row) {
        let index = u32::try_from(self.rows.len()).expect("fewer than 2^32 rows");
        if self.ordered {
            let at = self
                .order
                .partition_point(|&i| Table::before(&self.rows[i as usize], &row));
            self.order.insert(at, index);
        }
        if row.ev.stream == SimStream::Audit && is_unmapped(row.ev.action_id) {
            self.unmapped += 1;
        }
        self.rows.push(row);
    }

    /// Rebuilds `order` if a bulk load left it stale.
    pub(crate) fn ensure_ordered(&mut self) {
        if self.ordered {
            return;
        }
        let rows = &self.rows;
        let mut order: Vec<u32> = (0..rows.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            let (a, b) = (&rows[a as usize], &rows[b as usize]);
            (b.ev.date, b.id).cmp(&(a.ev.date, a.id))
        });
        self.order = order;
        self.ordered = true;
    }
}

/// A DocSpace-like sliding-window rate limiter (1,500 requests a minute per user when the
/// portal enables it): requests beyond `per_minute` within the last 60 s get a 429 with an
/// empty body and a truncated `Retry-After`; rejected requests do not count.
#[derive(Debug)]
pub(crate) struct RateWindow {
    pub(crate) per_minute: u32,
    pub(crate) admitted: VecDeque<std::time::Instant>,
}

/// An ongoing brute-force burst of the generator.
#[derive(Debug)]
pub(crate) struct Burst {
    pub(crate) remaining: u32,
    pub(crate) failures_before_lockout: u32,
    pub(crate) attacker: &'static Attacker,
    pub(crate) login: String,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) cfg: SimConfig,
    /// The server process zone for zone-less `from`/`to` (the pre-3.7.1 reading); `None` answers
    /// them with 400 like v3.7.1+.
    pub(crate) local_offset: Option<UtcOffset>,
    pub(crate) mode: SimMode,
    /// Render dates like v3.7.2 around a DST fall-back (§14.2).
    pub(crate) fall_back_bug: bool,
    /// Order rows of the same second at random in every answer (§14.3).
    pub(crate) random_ties: bool,
    pub(crate) login: Table,
    pub(crate) audit: Table,
    pub(crate) faults: VecDeque<(SimFault, u32)>,
    pub(crate) live_login: VecDeque<(usize, u32)>,
    pub(crate) live_audit: VecDeque<(usize, u32)>,
    pub(crate) requests: Vec<SimRequest>,
    pub(crate) rng: fastrand::Rng,
    pub(crate) burst: Option<Burst>,
    /// Added to every answer (network round trip plus server time).
    pub(crate) latency: Duration,
    /// With `latency_max > latency`, each answer waits a uniform draw from the range.
    pub(crate) latency_max: Duration,
    /// The portal's rate limiter, when on.
    pub(crate) rate: Option<RateWindow>,
    /// Requests answered 429 by the rate limiter.
    pub(crate) rate_limited: u64,
}

impl Inner {
    pub(crate) fn table(&self, stream: SimStream) -> &Table {
        match stream {
            SimStream::Login => &self.login,
            SimStream::Audit => &self.audit,
        }
    }

    pub(crate) fn insert(&mut self, ev: SimEvent) -> i64 {
        self.insert_row(ev, false)
    }

    pub(crate) fn insert_row(&mut self, mut ev: SimEvent, null_ip: bool) -> i64 {
        ev.date = normalize_date(ev.date);
        // Other tenants write to the same global table: per-tenant ids have gaps.
        let gap = if self.rng.u8(..) < 20 {
            self.rng.i64(1..4)
        } else {
            0
        };
        let table = match ev.stream {
            SimStream::Login => &mut self.login,
            SimStream::Audit => &mut self.audit,
        };
        table.next_id += gap;
        let id = table.next_id;
        table.next_id += 1;
        table.push(Row { id, ev, null_ip });
        id
    }

    pub(crate) fn generate_one(&mut self, stream: SimStream, date: OffsetDateTime) -> SimEvent {
        match stream {
            SimStream::Login => gen_login(&mut self.rng, &mut self.burst, date),
            SimStream::Audit => gen_audit(&mut self.rng, date),
        }
    }

    /// Applies a pending `insert_during_paging` order for `stream`.
    pub(crate) fn apply_live_inserts(&mut self, stream: SimStream) {
        let queue = match stream {
            SimStream::Login => &mut self.live_login,
            SimStream::Audit => &mut self.live_audit,
        };
        let Some(front) = queue.front_mut() else {
            return;
        };
        let n = front.0;
        front.1 = front.1.saturating_sub(1);
        if front.1 == 0 {
            queue.pop_front();
        }
        let now = OffsetDateTime::now_utc();
        for _ in 0..n {
            let ev = self.generate_one(stream, now);
            self.insert(ev);
        }
    }

    pub(crate) fn next_fault(&mut self) -> Option<SimFault> {
        let front = self.faults.front_mut()?;
        let fault = front.0.clone();
        front.1 = front.1.saturating_sub(1);
        if front.1 == 0 {
            self.faults.pop_front();
        }
        Some(fault)
    }

    /// Rows of `stream` ordered `date DESC, id DESC`, as indices into its `rows`.
    #[cfg(test)]
    pub(crate) fn sorted(&mut self, stream: SimStream) -> &Table {
        let table = match stream {
            SimStream::Login => &mut self.login,
            SimStream::Audit => &mut self.audit,
        };
        table.ensure_ordered();
        table
    }

    /// The rate limiter's verdict on a request arriving now: `Some(retry_after)` rejects it.
    pub(crate) fn rate_check(&mut self) -> Option<u32> {
        let w = self.rate.as_mut()?;
        let now = std::time::Instant::now();
        let window = Duration::from_secs(60);
        while w
            .admitted
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            w.admitted.pop_front();
        }
        if w.admitted.len() < w.per_minute as usize {
            w.admitted.push_back(now);
            return None;
        }
        let oldest = w.admitted.front().copied().unwrap_or(now);
        self.rate_limited += 1;
        // Whole seconds, truncated (so possibly 0), as RedisRateLimiting writes it.
        let wait = (oldest + window).saturating_duration_since(now);
        Some(u32::try_from(wait.as_secs()).unwrap_or(60))
    }
}

pub(crate) fn normalize_date(d: OffsetDateTime) -> OffsetDateTime {
    d.checked_to_offset(UtcOffset::UTC)
        .unwrap_or(d)
        .truncate_to_second()
}
