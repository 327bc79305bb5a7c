//! The sink filter: which events a sink takes (`[sinks.NAME.filter]`), owned by the sink layer
//! because the delivery loop applies it before encoding.

use crate::event::{Event, Outcome, Stream};

/// Which events a sink takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Empty = every stream.
    pub streams: Vec<Stream>,
    /// Empty = every action.
    pub actions: Vec<i64>,
    /// Empty = every outcome.
    pub outcomes: Vec<Outcome>,
}

/// Whether a sink with this filter takes the event.
pub fn accepts(filter: &Filter, ev: &Event) -> bool {
    (filter.streams.is_empty() || filter.streams.contains(&ev.stream))
        && (filter.actions.is_empty() || filter.actions.contains(&ev.action_id))
        && (filter.outcomes.is_empty() || filter.outcomes.contains(&ev.semantics().outcome))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::fixtures;

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
