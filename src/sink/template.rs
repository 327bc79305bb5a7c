//! Templates in a sink's routing settings (the Elasticsearch index, the HEC index, source and
//! sourcetype, the Sentinel stream): `{portal}` is the portal's table name, `{stream}` is
//! `login` or `audit`, `{label.KEY}` is the portal's label KEY. A provider running one agent for
//! many customers routes each customer's events to its own index this way.
//!
//! Parsed once when the config is read, so a typo (`{portl}`) is an error naming the setting,
//! not an index named after a typo; rendered per batch, not per event.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::event::{Event, PortalInfo, Stream};

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Portal,
    Stream,
    Label(String),
}

impl Template {
    /// Parses `text`. `{{` and `}}` stand for literal braces. The error names the placeholder
    /// that is not one of `{portal}`, `{stream}`, `{label.KEY}`, or the brace left open.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}']) {
            lit.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(after) = tail.strip_prefix("{{") {
                lit.push('{');
                rest = after;
                continue;
            }
            if let Some(after) = tail.strip_prefix("}}") {
                lit.push('}');
                rest = after;
                continue;
            }
            if tail.starts_with('}') {
                return Err("has a `}` without its `{` (write `}}` for a literal brace)".into());
            }
            let Some(end) = tail.find('}') else {
                return Err(
                    "has a `{` that is never closed (write `{{` for a literal brace)".into(),
                );
            };
            let name = &tail[1..end];
            let part = match name {
                "portal" => Part::Portal,
                "stream" => Part::Stream,
                _ => match name.strip_prefix("label.") {
                    Some(key) if valid_label_key(key) => Part::Label(key.to_owned()),
                    _ => {
                        return Err(format!(
                            "names `{{{name}}}`, which is not a placeholder: use `{{portal}}`, `{{stream}}` or `{{label.KEY}}`"
                        ));
                    }
                },
            };
            if !lit.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut lit)));
            }
            parts.push(part);
            rest = &tail[end + 1..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Ok(Template {
            source: text.to_owned(),
            parts,
        })
    }

    /// The text as configured.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when it has no placeholder: the same for every portal and stream.
    pub fn is_static(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Text(_)))
    }

    /// The label keys it names, so the config check can require them of every portal.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Label(k) => Some(k.as_str()),
            _ => None,
        })
    }

    /// The text for one portal and stream. A label the portal lacks renders empty (the config
    /// check refuses such a config, so this is for tools that render ad hoc).
    pub fn render(&self, portal: &PortalInfo, stream: Stream) -> Cow<'_, str> {
        if let [Part::Text(t)] = self.parts.as_slice() {
            return Cow::Borrowed(t);
        }
        let mut out = String::with_capacity(self.source.len() + 16);
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Portal => out.push_str(&portal.name),
                Part::Stream => out.push_str(stream.as_str()),
                Part::Label(k) => out.push_str(portal.label(k).unwrap_or("")),
            }
        }
        Cow::Owned(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// A label key: what a `[portals.NAME.labels]` key and a `{label.KEY}` may be (ASCII letters,
/// digits, `_` and `-`, starting with a letter), so it is a valid ECS `labels.*` field, a CEF
/// label and a JSON key without escaping.
pub fn valid_label_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && key.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// What a sink rendered from its templates for the portal and stream of its last event. A
/// batch comes from one portal and stream, so the templates render once per batch, not once
/// per event. It holds the portal, so the allocation it compares by address stays alive and
/// cannot be reused by another portal.
#[derive(Debug)]
pub struct Route<T> {
    last: Option<(Arc<PortalInfo>, Stream, T)>,
}

impl<T> Default for Route<T> {
    fn default() -> Self {
        Route { last: None }
    }
}

impl<T> Route<T> {
    /// The value for `ev`'s portal and stream: the last one, or `make`'s when they changed.
    pub fn get(&mut self, ev: &Event, make: impl FnOnce(&PortalInfo, Stream) -> T) -> &T {
        let same =
            matches!(&self.last, Some((p, s, _)) if Arc::ptr_eq(p, &ev.portal) && *s == ev.stream);
        if !same {
            self.last = None;
        }
        let (_, _, value) = self
            .last
            .get_or_insert_with(|| (ev.portal.clone(), ev.stream, make(&ev.portal, ev.stream)));
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn portal() -> PortalInfo {
        PortalInfo::new("acme-main", "https://acme.example.com")
            .with_labels([("customer".to_owned(), "acme".to_owned())])
    }

    #[test]
    fn placeholders_are_replaced_per_portal_and_stream() {
        let t = Template::parse("logs-docspace.{stream}-{label.customer}_{portal}").unwrap();
        assert!(!t.is_static());
        assert_eq!(
            t.render(&portal(), Stream::Audit),
            "logs-docspace.audit-acme_acme-main"
        );
        assert_eq!(t.labels().collect::<Vec<_>>(), ["customer"]);
        assert_eq!(
            t.to_string(),
            "logs-docspace.{stream}-{label.customer}_{portal}"
        );
    }

    #[test]
    fn text_without_placeholders_is_static_and_borrowed() {
        let t = Template::parse("main").unwrap();
        assert!(t.is_static());
        assert!(matches!(
            t.render(&portal(), Stream::Login),
            Cow::Borrowed("main")
        ));
        let t = Template::parse("a{{b}}").unwrap();
        assert!(t.is_static());
        assert_eq!(t.render(&portal(), Stream::Login), "a{b}");
    }

    #[test]
    fn a_missing_label_renders_empty() {
        let t = Template::parse("x-{label.region}").unwrap();
        assert_eq!(t.render(&portal(), Stream::Login), "x-");
    }

    #[test]
    fn typos_and_open_braces_are_errors_that_name_them() {
        let e = Template::parse("logs-{portl}").unwrap_err();
        assert!(e.contains("`{portl}`"), "{e}");
        assert!(
            Template::parse("logs-{portal")
                .unwrap_err()
                .contains("never closed")
        );
        assert!(
            Template::parse("logs-}")
                .unwrap_err()
                .contains("without its")
        );
        assert!(Template::parse("{label.}").is_err());
        assert!(Template::parse("{label.9x}").is_err());
        assert!(Template::parse("{label.a b}").is_err());
    }

    #[test]
    fn label_keys_are_plain_identifiers() {
        assert!(valid_label_key("customer_id"));
        assert!(valid_label_key("tier-1"));
        assert!(!valid_label_key(""));
        assert!(!valid_label_key("1st"));
        assert!(!valid_label_key("a.b"));
        assert!(!valid_label_key("a=b"));
        assert!(!valid_label_key(&"a".repeat(65)));
    }

    #[test]
    fn a_route_renders_again_only_when_the_portal_or_stream_changes() {
        let mut ev = crate::transform::fixtures::all().swap_remove(0);
        let acme = Arc::new(portal());
        let other = Arc::new(PortalInfo::new("acme-main", "https://acme.example.com"));
        let t = Template::parse("{label.customer}-{stream}").unwrap();
        let mut route = Route::default();
        let mut made = 0;
        let mut get = |ev: &Event| {
            route
                .get(ev, |p, s| {
                    made += 1;
                    t.render(p, s).into_owned()
                })
                .clone()
        };
        ev.portal = acme.clone();
        let stream = ev.stream.as_str();
        assert_eq!(get(&ev), format!("acme-{stream}"));
        assert_eq!(get(&ev), format!("acme-{stream}"));
        // Same name and URL, another portal (another allocation): rendered again.
        ev.portal = other;
        assert_eq!(get(&ev), format!("-{stream}"));
        ev.portal = acme;
        ev.stream = match ev.stream {
            Stream::Login => Stream::Audit,
            Stream::Audit => Stream::Login,
        };
        let flipped = ev.stream.as_str();
        assert_eq!(get(&ev), format!("acme-{flipped}"));
        assert_eq!(made, 3);
    }
}
