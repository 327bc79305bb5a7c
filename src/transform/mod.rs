//! Transform: pure encoders from [`Event`] to bytes (ECS, CEF, LEEF, raw JSON), and per-sink
//! filters.
//!
//! Invariants: nothing here does IO, returns an error on any input or panics; every encoder
//! writes exactly one record per event with no raw CR or LF in it (JSON through serde, CEF with
//! its escaping), so an attacker-typed login name can never split or forge a record. Framing
//! (newlines, octet counts, JSON arrays) is the sink's job.

pub mod cef;
pub mod ecs;
pub mod json;
pub mod leef;

use crate::config::{Filter, Format};
use crate::event::Event;

/// The ECS version the output claims (the schema in shared/ecs/ecs_flat.yml).
pub const ECS_VERSION: &str = "9.4.0";

/// Encodes one event in `format`, appending to `out` (no trailing newline).
pub fn encode(format: Format, ev: &Event, out: &mut Vec<u8>) {
    match format {
        Format::Ecs => ecs::encode(ev, out),
        Format::Cef => cef::encode(ev, out),
        Format::Json => json::encode(ev, out),
        Format::Leef => leef::encode(ev, out),
    }
}

/// Whether a sink with this filter takes the event.
pub fn accepts(filter: &Filter, ev: &Event) -> bool {
    (filter.streams.is_empty() || filter.streams.contains(&ev.stream))
        && (filter.actions.is_empty() || filter.actions.contains(&ev.action_id))
        && (filter.outcomes.is_empty() || filter.outcomes.contains(&ev.semantics().outcome))
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Events decoded from the DocSpace fixtures in tests/fixtures.
    use std::sync::Arc;

    use crate::event::{Event, PortalInfo, Stream};

    pub fn load(name: &str, stream: Stream) -> Vec<Event> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("fixture exists");
        let v: serde_json::Value = serde_json::from_str(&text).expect("fixture is JSON");
        let portal = Arc::new(PortalInfo::new("main", "https://docspace.example.com"));
        v["response"]
            .as_array()
            .expect("envelope")
            .iter()
            .map(|row| Event::from_json(portal.clone(), Some(stream), row.clone()).expect("row"))
            .collect()
    }

    pub fn all() -> Vec<Event> {
        let mut v = load("login-filter.json", Stream::Login);
        v.extend(load("events-filter.json", Stream::Audit));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Outcome, Stream};

    #[test]
    fn filters_combine_with_and() {
        let events = fixtures::all();
        let f = Filter {
            streams: vec![Stream::Login],
            actions: vec![],
            outcomes: vec![Outcome::Failure],
        };
        let ids: Vec<i64> = events
            .iter()
            .filter(|e| accepts(&f, e))
            .map(|e| e.id)
            .collect();
        assert_eq!(ids, vec![48212, 48211, 48199]);
        assert_eq!(
            events
                .iter()
                .filter(|e| accepts(&Filter::default(), e))
                .count(),
            11
        );
    }
}
