//! Test oracles of the row decoders, compiled only for tests and fuzzing: whether the scan path
//! and the serde path agree on a row, and whether the scan path takes it at all.

use std::sync::Arc;

use super::decode::{row_id_and_date_scan, row_id_and_date_serde};
use super::{Event, FIELDS, PortalInfo, Stream};

/// Decodes `row` by both paths, [`crate::scan`] and serde_json, for every stream hint, and
/// names the first difference: the scan path may give up, but whatever it decodes must be
/// exactly what serde_json decodes. For the differential tests and the `decode` fuzz target.
#[doc(hidden)]
pub fn decoders_agree(row: &str) -> Result<(), String> {
    let portal = Arc::new(PortalInfo::new("p", "https://p.example"));
    for stream in [None, Some(Stream::Login), Some(Stream::Audit)] {
        let Some(fast) = Event::from_row_scan(&portal, stream, row) else {
            continue;
        };
        let slow = Event::from_row_serde(portal.clone(), stream, row)
            .map_err(|e| format!("scan decoded a row serde_json refuses ({e})"))?;
        let view = |e: &Event| {
            format!(
                "{:?} {} {} {} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {}",
                e.stream,
                e.id,
                e.time,
                e.offset,
                e.action_id,
                e.action_type,
                e.product,
                e.location,
                e.target,
                e.entries,
                (0..FIELDS).map(|f| e.field(f)).collect::<Vec<_>>(),
                e.raw()
            )
        };
        let (f, s) = (view(&fast), view(&slow));
        if f != s {
            return Err(format!("scan: {f}\nserde: {s}"));
        }
    }
    if let Some(fast) = row_id_and_date_scan(row) {
        let slow = row_id_and_date_serde(row);
        if fast != slow {
            return Err(format!("id and date: scan {fast:?}, serde {slow:?}"));
        }
    }
    Ok(())
}

/// Whether the scan path decodes `row` (the hot path is taken), for tests.
#[doc(hidden)]
pub fn scan_decodes(row: &str) -> bool {
    let portal = Arc::new(PortalInfo::new("p", "https://p.example"));
    Event::from_row_scan(&portal, None, row).is_some() && row_id_and_date_scan(row).is_some()
}
