//! The sink filter: which events a sink takes (`[sinks.NAME.filter]`), owned by the sink layer
//! because the delivery loop applies it before encoding.

use crate::event::{Event, Outcome, PortalInfo, Stream};

/// Which events a sink takes. Every list that is not empty must match (they combine with AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Empty = every stream.
    pub streams: Vec<Stream>,
    /// Empty = every action.
    pub actions: Vec<i64>,
    /// Empty = every outcome.
    pub outcomes: Vec<Outcome>,
    /// `[portals.NAME]` table names; empty = every portal.
    pub portals: Vec<String>,
    /// Labels a portal must carry, each with this value; empty = every portal.
    pub labels: Vec<(String, String)>,
}

impl Filter {
    /// Whether the sink takes events of this portal at all (its name and labels): what the
    /// config check asks of each portal before it requires the labels a template names.
    pub fn takes_portal(&self, name: &str, labels: &[(String, String)]) -> bool {
        (self.portals.is_empty() || self.portals.iter().any(|p| p == name))
            && self
                .labels
                .iter()
                .all(|want| labels.iter().any(|have| have == want))
    }

    fn takes(&self, portal: &PortalInfo) -> bool {
        // Most sinks filter on neither: skip the portal's strings.
        (self.portals.is_empty() && self.labels.is_empty())
            || self.takes_portal(&portal.name, &portal.labels)
    }
}

/// Whether a sink with this filter takes the event.
pub fn accepts(filter: &Filter, ev: &Event) -> bool {
    (filter.streams.is_empty() || filter.streams.contains(&ev.stream))
        && (filter.actions.is_empty() || filter.actions.contains(&ev.action_id))
        && (filter.outcomes.is_empty() || filter.outcomes.contains(&ev.semantics().outcome))
        && filter.takes(&ev.portal)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::transform::fixtures;

    #[test]
    fn filters_combine_with_and() {
        let events = fixtures::all();
        let f = Filter {
            streams: vec![Stream::Login],
            outcomes: vec![Outcome::Failure],
            ..Filter::default()
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

    fn on(portal: PortalInfo) -> Event {
        let mut ev = fixtures::all().swap_remove(0);
        ev.portal = Arc::new(portal);
        ev
    }

    fn labelled(name: &str, customer: &str) -> PortalInfo {
        PortalInfo::new(name, "https://docspace.example.com").with_labels([
            ("customer".to_owned(), customer.to_owned()),
            ("tier".to_owned(), "gold".to_owned()),
        ])
    }

    #[test]
    fn portals_are_matched_by_table_name() {
        let f = Filter {
            portals: vec!["acme".into(), "globex".into()],
            ..Filter::default()
        };
        assert!(accepts(&f, &on(labelled("acme", "a"))));
        assert!(accepts(&f, &on(labelled("globex", "g"))));
        assert!(!accepts(&f, &on(labelled("initech", "i"))));
        // The name, not a prefix of it.
        assert!(!accepts(&f, &on(labelled("acme2", "a"))));
    }

    #[test]
    fn every_given_label_must_match() {
        let one = Filter {
            labels: vec![("customer".into(), "acme".into())],
            ..Filter::default()
        };
        assert!(accepts(&one, &on(labelled("p1", "acme"))));
        assert!(!accepts(&one, &on(labelled("p2", "globex"))));
        assert!(!accepts(
            &one,
            &on(PortalInfo::new("bare", "https://x.example"))
        ));
        let both = Filter {
            labels: vec![
                ("customer".into(), "acme".into()),
                ("tier".into(), "silver".into()),
            ],
            ..Filter::default()
        };
        assert!(!accepts(&both, &on(labelled("p1", "acme"))));
        let and_portal = Filter {
            portals: vec!["p2".into()],
            labels: vec![("customer".into(), "acme".into())],
            ..Filter::default()
        };
        assert!(!accepts(&and_portal, &on(labelled("p1", "acme"))));
        assert!(and_portal.takes_portal("p2", &labelled("p2", "acme").labels));
    }
}
