//! Reading around rows the server cannot return (docs/docspace-api.md §14.4).
//!
//! The login conversion dereferences a row's ip without a null check, so one login row with a
//! NULL ip makes every answer that holds it a 500, forever. Retrying the page never helps. On a
//! 500, [`Client::read`] first asks whether the server answers at all (the plan probe, which
//! holds no row): if it does not, the 500 is the server's trouble and is returned as it is, to
//! be retried with backoff. If it does, the request is split in halves, each read the same way,
//! down to single rows; a single row that still fails three times while the server answers is
//! a [`Part::Hole`]: it is named (its position and the dates around it) and the walk goes on
//! with every other row.
//!
//! The halves are read one after the other. Rows inserted meanwhile only shift offsets towards
//! older rows, so a later half repeats rows (removed downstream by id), never skips one.

use std::future::Future;
use std::pin::Pin;

use time::OffsetDateTime;
use tracing::warn;

use super::{Client, PAGE_SIZE, SourceError};
use crate::event::{Stream, format_utc_seconds};

/// Tries of a single row before it is taken for unreadable.
const ROW_TRIES: usize = 3;

/// One answer of a read split around unreadable rows.
#[derive(Debug)]
pub(super) enum Part {
    /// The body of a 2xx answer.
    Body(String),
    /// The row at this `startIndex` makes every answer that holds it fail.
    Hole(usize),
}

/// A row the server could not return, as the walker reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// Which log.
    pub stream: Stream,
    /// Its `startIndex`: in the whole login log (newest first), or among the audit rows of
    /// the window asked for.
    pub position: usize,
    /// The window asked for, when the request was filtered.
    pub window: Option<(OffsetDateTime, OffsetDateTime)>,
    /// Dates of the rows served just above (newer) and below (older) it, when known.
    pub newer: Option<OffsetDateTime>,
    /// See `newer`.
    pub older: Option<OffsetDateTime>,
}

impl Unreadable {
    /// The time range it lies in, as precisely as known.
    pub fn range(&self) -> String {
        let fmt = |d: Option<OffsetDateTime>| d.map_or_else(|| "?".to_owned(), format_utc_seconds);
        match (self.newer, self.older, self.window) {
            (None, None, Some((from, to))) => {
                format!("{}..{}", format_utc_seconds(from), format_utc_seconds(to))
            }
            (newer, older, _) => format!("{}..{}", fmt(older), fmt(newer)),
        }
    }
}

impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the portal fails every answer that holds the {} row at startIndex {} (dated between {}): DocSpace cannot convert it (a login row with no ip makes a 500, docs/docspace-api.md §14.4); every other row is delivered",
            self.stream,
            self.position,
            self.range()
        )
    }
}

type Boxed<'a> = Pin<Box<dyn Future<Output = Result<Vec<Part>, SourceError>> + Send + 'a>>;

impl Client {
    /// `count` rows from `offset` of `stream` (filtered by `bounds` when given), as one answer
    /// or, around rows the server cannot return, as several (see the module doc).
    pub(super) fn read(
        &self,
        stream: Stream,
        bounds: Option<(OffsetDateTime, OffsetDateTime)>,
        offset: usize,
        count: usize,
    ) -> Boxed<'_> {
        Box::pin(async move {
            let q = query(bounds, offset, count);
            let first = match self.get_body(stream, &q).await {
                Ok(body) => return Ok(vec![Part::Body(body)]),
                Err(e @ SourceError::Server { status: 500, .. }) => e,
                Err(e) => return Err(e),
            };
            // A server in trouble fails the probe too: then it is not a row's fault.
            if self.probe_plan(stream).await.is_err() {
                return Err(first);
            }
            if count >= PAGE_SIZE {
                warn!(portal = %self.portal.name, stream = %stream, start_index = offset, "{first}; the portal answers other requests, so the page is read in parts (a row the server cannot convert fails every answer that holds it)");
            }
            if count <= 1 {
                for _ in 1..ROW_TRIES {
                    match self.get_body(stream, &q).await {
                        Ok(body) => return Ok(vec![Part::Body(body)]),
                        Err(SourceError::Server { status: 500, .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                warn!(portal = %self.portal.name, stream = %stream, start_index = offset, "a single row keeps failing with HTTP 500 while the portal answers other requests: reading around it");
                return Ok(vec![Part::Hole(offset)]);
            }
            let half = count / 2;
            let mut parts = self.read(stream, bounds, offset, half).await?;
            parts.extend(
                self.read(stream, bounds, offset + half, count - half)
                    .await?,
            );
            Ok(parts)
        })
    }
}

fn query(
    bounds: Option<(OffsetDateTime, OffsetDateTime)>,
    offset: usize,
    count: usize,
) -> Vec<(&'static str, String)> {
    let mut q = Vec::with_capacity(4);
    if let Some((from, to)) = bounds {
        q.push(("from", format_utc_seconds(from)));
        q.push(("to", format_utc_seconds(to)));
    }
    q.push(("count", count.min(PAGE_SIZE).to_string()));
    if offset > 0 {
        q.push(("startIndex", offset.to_string()));
    }
    q
}
