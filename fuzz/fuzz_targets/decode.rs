//! Fuzz target `decode`: any bytes → the agent's two readers of DocSpace JSON.
//!
//! The byte scanner (`docspace_siem::scan`) reads pages and rows on the hot path and gives up on
//! anything it does not fully understand; serde_json then decides. Checked: whatever the scanner
//! reads, as a whole page (envelope split, rows decoded in the same pass) or as one row (event,
//! id and date), is exactly what serde_json reads from the same text, and neither panics.

#![no_main]

use docspace_siem::event::decoders_agree;
use docspace_siem::source::docspace::envelope_paths_agree;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = decoders_agree(text) {
        panic!("row {text:?}: {e}");
    }
    if let Err(e) = envelope_paths_agree(text) {
        panic!("page {text:?}: {e}");
    }
    // The same text as the only row of a page.
    let page = format!(r#"{{"response":[{text}],"count":1,"status":0}}"#);
    if let Err(e) = envelope_paths_agree(&page) {
        panic!("page {page:?}: {e}");
    }
});
