//! The envelope of a filter answer (`{"response":[…],"count":…,"status":…}`) split into its
//! rows and checked: by the strict byte scanner on the hot path (rows decoded in the same
//! pass when they can be), by serde_json when the scanner gives up, and the two compared for
//! the differential tests and the `decode` fuzz target.

use std::sync::Arc;

use serde_json::Value;
use serde_json::value::RawValue;

use super::PAGE_SIZE;
use super::error::{SourceError, snippet};
use crate::event::{Event, PortalInfo, Stream};

/// The envelope of a filter answer; rows stay unparsed slices of the body.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    response: Option<Vec<&'a RawValue>>,
    count: Option<Value>,
    status: Option<Value>,
}

/// The rows of a filter answer's envelope, each its own JSON text within `body`. A truncated
/// or malformed body, an error status inside a 200, or a `count` that disagrees with the rows
/// fails the whole page.
pub fn rows(body: &str) -> Result<Vec<&str>, SourceError> {
    let (rows, count, status) = match rows_scan(body) {
        Some(found) => found,
        None => rows_serde(body)?,
    };
    check_envelope(rows, count, status)
}

/// A row of a page read in one pass: decoded by the scan path, or its text, left to
/// [`Event::from_row_text`].
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // nearly every row is an `Event`: boxing would cost an allocation each
pub enum PageRow<'a> {
    /// Decoded as it was read.
    Event(Event),
    /// The row's JSON text, for the general decoder.
    Text(&'a str),
}

impl PageRow<'_> {
    /// The row's JSON text as it lies in the body.
    pub fn text(&self) -> &str {
        match self {
            PageRow::Event(ev) => ev.raw(),
            PageRow::Text(t) => t,
        }
    }
}

/// The rows of a filter answer, as [`rows`] finds them, each decoded in the same pass when
/// the scan path can (the page path: one read of the body instead of envelope + rows).
pub fn page_rows<'a>(
    body: &'a str,
    portal: &Arc<PortalInfo>,
    stream: Stream,
) -> Result<Vec<PageRow<'a>>, SourceError> {
    let (rows, count, status) = match page_rows_scan(body, portal, stream) {
        Some(found) => found,
        None => {
            let (rows, count, status) = rows_serde(body)?;
            (rows.into_iter().map(PageRow::Text).collect(), count, status)
        }
    };
    check_envelope(rows, count, status)
}

fn page_rows_scan<'a>(
    body: &'a str,
    portal: &Arc<PortalInfo>,
    stream: Stream,
) -> Option<EnvelopeParts<PageRow<'a>>> {
    envelope_scan(body, |sc| {
        let start = sc.pos();
        let mut probe = sc.clone();
        if let Some(ev) = Event::scan_row(portal, Some(stream), &mut probe) {
            *sc = probe;
            return Some(PageRow::Event(ev));
        }
        sc.skip_value(1)?;
        Some(PageRow::Text(sc.since(start)?))
    })
}

/// The checks every envelope passes: `status` 0, `count` (when given) the number of rows.
fn check_envelope<T>(rows: Vec<T>, count: Option<u64>, status: i64) -> Result<Vec<T>, SourceError> {
    if status != 0 {
        return Err(SourceError::Malformed(format!(
            "envelope status {status} with HTTP 200"
        )));
    }
    if let Some(count) = count
        && count as usize != rows.len()
    {
        return Err(SourceError::Malformed(format!(
            "envelope count {count} but {} rows",
            rows.len()
        )));
    }
    Ok(rows)
}

/// Rows, `count` and `status` of an envelope (`count` when it is an unsigned integer,
/// `status` 0 unless an integer says otherwise).
type EnvelopeParts<T> = (Vec<T>, Option<u64>, i64);

/// [`rows`] by [`crate::scan`], one byte pass over the body; `None` for anything it leaves to
/// [`rows_serde`] (which then decides and names the problem): a row that is not an object,
/// a `count` or `status` that is not a plain integer, a duplicate key, malformed JSON.
fn rows_scan(body: &str) -> Option<EnvelopeParts<&str>> {
    envelope_scan(body, |sc| {
        let start = sc.pos();
        sc.skip_value(1)?;
        sc.since(start)
    })
}

/// The envelope read by [`crate::scan`], each row (the scanner at its `{`) read by `row`,
/// which must consume exactly that object.
fn envelope_scan<'a, T>(
    body: &'a str,
    mut row: impl FnMut(&mut crate::scan::Scanner<'a>) -> Option<T>,
) -> Option<EnvelopeParts<T>> {
    let mut sc = crate::scan::Scanner::new(body);
    let (mut rows, mut count, mut status) = (None, None, None);
    sc.object(|sc, key| {
        match key {
            "response" if rows.is_none() => {
                // Rows are a few hundred bytes: no page-sized block for an empty answer.
                let mut found = Vec::with_capacity((body.len() / 256).min(PAGE_SIZE));
                sc.array(|sc| {
                    sc.ws();
                    if sc.peek() != Some(b'{') {
                        return None;
                    }
                    found.push(row(sc)?);
                    Some(())
                })?;
                rows = Some(found);
            }
            "count" if count.is_none() => count = Some(sc.uint()? as u64),
            "status" if status.is_none() => status = Some(sc.uint()?),
            "response" | "count" | "status" => return None,
            _ => sc.skip_value(1)?,
        }
        Some(())
    })?;
    if !sc.at_end() {
        return None;
    }
    Some((rows?, count, status.unwrap_or(0)))
}

/// Splits `body` by both paths, [`crate::scan`] and serde_json, and names the first
/// difference: the scan may give up, but what it finds must be what serde_json finds. For the
/// differential tests and the `decode` fuzz target.
#[doc(hidden)]
pub fn envelope_paths_agree(body: &str) -> Result<(), String> {
    let portal = Arc::new(PortalInfo::new("p", "https://p.example"));
    let paged = page_rows_scan(body, &portal, Stream::Login);
    let Some(fast) = rows_scan(body) else {
        return match paged {
            None => Ok(()),
            Some(_) => Err("the page scan read a body the row scan gives up on".into()),
        };
    };
    let paged = paged.ok_or("the page scan gave up on a body the row scan reads")?;
    let paged_text: Vec<&str> = paged.0.iter().map(PageRow::text).collect();
    if (&paged_text, paged.1, paged.2) != (&fast.0, fast.1, fast.2) {
        return Err(format!("page scan {paged_text:?}, row scan {fast:?}"));
    }
    match rows_serde(body) {
        Ok(slow) if slow == fast => Ok(()),
        Ok(slow) => Err(format!("scan {fast:?}, serde {slow:?}")),
        Err(e) => Err(format!("scan split a body serde_json refuses ({e})")),
    }
}

/// Whether the scan path splits `body` (the hot path is taken), for tests.
#[doc(hidden)]
pub fn scan_splits(body: &str) -> bool {
    rows_scan(body).is_some()
}

/// [`rows`] by serde_json: the reference, and the path that names what is wrong.
fn rows_serde(body: &str) -> Result<EnvelopeParts<&str>, SourceError> {
    let env: Envelope<'_> = serde_json::from_str(body).map_err(|e| {
        if e.is_data() {
            SourceError::Malformed(format!("the body is not a DocSpace envelope ({e})"))
        } else {
            SourceError::Malformed(format!(
                "{} bytes that are not complete JSON ({e}); starts with {:?}",
                body.len(),
                snippet(body.as_bytes())
            ))
        }
    })?;
    let status = env.status.as_ref().map_or(0, |s| s.as_i64().unwrap_or(0));
    let rows: Vec<&str> = env
        .response
        .ok_or_else(|| SourceError::Malformed("the envelope has no `response` array".into()))?
        .into_iter()
        .map(RawValue::get)
        .collect();
    Ok((rows, env.count.as_ref().and_then(Value::as_u64), status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Envelopes with keys in any order, missing, duplicated or mistyped, rows of any
        /// kind, odd spacing, and now and then a byte cut or changed: whatever the scan path
        /// splits, serde_json splits the same way.
        #[test]
        fn the_scan_path_splits_envelopes_as_serde_json_does(
            rows in prop::collection::vec(prop_oneof![
                4 => Just(r#"{"id":1,"date":"2025-01-15T14:32:07.0000000\u002B01:00","user":"a\"}b"}"#),
                1 => Just(r#"{ "nested": {"a": [1, {"b": "]"}]}, "x": -1.5e3 }"#),
                1 => Just("[]"),
                1 => Just("\"row\""),
                1 => Just("null"),
            ], 0..5),
            extra in prop::collection::vec(prop_oneof![
                Just(r#""count":2"#), Just(r#""count":"2""#), Just(r#""count":-1"#),
                Just(r#""status":0"#), Just(r#""status":1"#), Just(r#""status":null"#),
                Just(r#""statusCode":200"#), Just(r#""links":[{"href":"x"}]"#),
                Just(r#""response":null"#), Just(r#""response":[]"#), Just(r#""total":1.5"#),
            ], 0..4),
            ws in prop::sample::select(vec!["", " ", "\n  "]),
            cut in any::<u16>(),
            mutation in any::<u8>(),
        ) {
            let mut fields = vec![format!("\"response\":{ws}[{}]", rows.join(&format!(",{ws}")))];
            fields.extend(extra.iter().map(|s| s.to_string()));
            let n = fields.len();
            fields.rotate_left(mutation as usize % n);
            let mut body = format!("{ws}{{{}}}{ws}", fields.join(&format!("{ws},{ws}")));
            match mutation % 10 {
                0 => {
                    let mut at = cut as usize % (body.len() + 1);
                    while !body.is_char_boundary(at) {
                        at -= 1;
                    }
                    body.truncate(at);
                }
                1 => {
                    let at = cut as usize % (body.len() + 1);
                    if body.is_char_boundary(at) {
                        body.insert(at, ['"', ',', '}', ']', '\\'][mutation as usize % 5]);
                    }
                }
                _ => {}
            }
            prop_assert_eq!(envelope_paths_agree(&body), Ok(()));
            let via_rows = rows_scan(&body).map(|(r, _, _)| r);
            if let Some(found) = via_rows {
                prop_assert_eq!(rows_serde(&body).ok().map(|(r, _, _)| r), Some(found));
            }
        }
    }

    #[test]
    fn docspace_pages_take_the_scan_path() {
        let page = include_str!("../../../tests/fixtures/login-filter.json");
        assert!(scan_splits(page));
        assert_eq!(envelope_paths_agree(page), Ok(()));
        let compact: Value = serde_json::from_str(page).unwrap();
        assert!(scan_splits(&compact.to_string()));
        let found = rows(page).unwrap();
        assert!(found.iter().all(|r| crate::event::scan_decodes(r)));
        for bad in [
            "",
            "{",
            r#"{"response":[{"id":1}],"count":2}"#,
            r#"{"status":1,"response":[]}"#,
        ] {
            assert!(rows(bad).is_err(), "{bad}");
        }
    }
}
