//! One page of a window: a filtered answer (or the answers read around a row the server
//! cannot return) decoded into events, rejected rows and holes, with dates an hour late
//! repaired, and the ids and dates of its rows as served, which the walker checks page edges
//! with.

use serde_json::Value;
use time::OffsetDateTime;
use tracing::debug;

use super::envelope::{PageRow, page_rows};
use super::error::SourceError;
use super::narrow::{Part, Unreadable};
use super::{Client, PAGE_SIZE, dates};
use crate::event::{Event, EventError, Stream};

/// One decoded page.
#[derive(Debug, Default)]
pub struct Page {
    /// Rows that decoded.
    pub events: Vec<Event>,
    /// Rows that did not, with the reason (they go to the dead-letter file).
    pub rejected: Vec<(Value, EventError)>,
    /// Ids of the rows in the order served (rows without a readable id left out).
    pub(super) ids: Vec<i64>,
    /// Id and date of the last row served, when both are readable.
    pub(super) last: Option<(i64, OffsetDateTime)>,
    /// Id and date of each row in the order served, when readable.
    pub(super) served: Vec<(Option<i64>, Option<OffsetDateTime>)>,
    /// Rows the server could not return (read around).
    pub holes: Vec<Unreadable>,
}

/// A row of a page as read: decoded, undecodable (its text), or not returned at all.
#[allow(clippy::large_enum_variant)] // nearly every row is an `Event`: boxing would cost an allocation each
enum Got<'a> {
    Event(Event),
    Bad(EventError, &'a str),
    Hole(usize),
}

impl Page {
    pub(super) fn rows(&self) -> usize {
        self.events.len() + self.rejected.len() + self.holes.len()
    }

    /// Records the id of the next row served (`last`: it is the last one).
    pub(super) fn note_id(&mut self, id: Option<i64>, date: Option<OffsetDateTime>, last: bool) {
        if let Some(id) = id {
            self.ids.push(id);
        }
        self.served.push((id, date));
        if last {
            self.last = id.zip(date);
        }
    }

    /// The date of the first row served, when readable.
    pub(super) fn first_date(&self) -> Option<OffsetDateTime> {
        self.served.first().and_then(|r| r.1)
    }

    /// Rows dated `second`, and the index of the first of them.
    pub(super) fn of_second(&self, second: OffsetDateTime) -> (usize, Option<usize>) {
        let mut first = None;
        let mut n = 0;
        for (i, r) in self.served.iter().enumerate() {
            if r.1 == Some(second) {
                first.get_or_insert(i);
                n += 1;
            }
        }
        (n, first)
    }

    /// Rows dated `second` other than `id`.
    pub(super) fn others_of_second(&self, second: OffsetDateTime, id: i64) -> usize {
        self.served
            .iter()
            .filter(|r| r.1 == Some(second) && r.0 != Some(id))
            .count()
    }
}

/// A row that could not be decoded, as a JSON value for the dead-letter file.
pub(super) fn raw_value(row: &str) -> Value {
    serde_json::from_str(row).unwrap_or_else(|_| Value::String(row.to_owned()))
}

impl Client {
    /// One page of a window, decoded; read around rows the server cannot return
    /// (`narrow.rs`); more rows than asked for is the no-audit-plan fallback.
    pub async fn page(
        &self,
        stream: Stream,
        from: OffsetDateTime,
        to: OffsetDateTime,
        start_index: usize,
    ) -> Result<Page, SourceError> {
        let parts = self
            .read(stream, Some((from, to)), start_index, PAGE_SIZE)
            .await?;
        let answered = OffsetDateTime::now_utc();
        // Each row decoded, or its text and why not, or a hole, with its date (an hour late
        // repaired below when that is certain; nothing else about a row's date is an error:
        // the server filtered on the true instant, §14.2).
        let mut got: Vec<Got<'_>> = Vec::new();
        let mut dates = Vec::new();
        for part in &parts {
            let body = match part {
                Part::Body(body) => body,
                Part::Hole(at) => {
                    got.push(Got::Hole(*at));
                    dates.push(None);
                    continue;
                }
            };
            let rows = page_rows(body, &self.portal, stream)?;
            if rows.len() > PAGE_SIZE {
                return Err(SourceError::NoAuditPlan(format!(
                    "{} rows for count={PAGE_SIZE}",
                    rows.len()
                )));
            }
            for row in rows {
                let g = match row {
                    PageRow::Event(ev) => Got::Event(ev),
                    PageRow::Text(row) => {
                        match Event::from_row_text(self.portal.clone(), Some(stream), row) {
                            Ok(ev) => Got::Event(ev),
                            Err(e) => Got::Bad(e, row),
                        }
                    }
                };
                dates.push(match &g {
                    Got::Event(ev) => Some(ev.time),
                    Got::Bad(_, row) => crate::event::row_id_and_date(row).1,
                    Got::Hole(_) => None,
                });
                got.push(g);
            }
        }
        let late = dates::repair(&mut dates, answered, Some(to));
        if late > 0 {
            debug!(portal = %self.portal.name, stream = %stream, rows = late, "rows dated an hour late (the DST fall-back hour) were given their true instant");
        }
        let n = got.len();
        let mut page = Page {
            events: Vec::with_capacity(n),
            ..Page::default()
        };
        for (i, g) in got.into_iter().enumerate() {
            let last = i + 1 == n;
            match g {
                Got::Event(mut ev) => {
                    if let Some(date) = dates[i] {
                        ev.time = date;
                    }
                    page.note_id(Some(ev.id), Some(ev.time), last);
                    page.events.push(ev);
                }
                Got::Bad(e, row) => {
                    let (id, _) = crate::event::row_id_and_date(row);
                    page.note_id(id, dates[i], last);
                    page.rejected.push((raw_value(row), e));
                }
                Got::Hole(at) => {
                    page.note_id(None, None, last);
                    page.holes.push(Unreadable {
                        stream,
                        position: at,
                        window: Some((from, to)),
                        newer: dates[..i].iter().rev().find_map(|d| *d),
                        older: dates[i + 1..].iter().find_map(|d| *d),
                    });
                }
            }
        }
        Ok(page)
    }
}
