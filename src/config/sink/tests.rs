//! Tests of the routing keys: portal labels, `filter.portals` and `filter.labels`, the
//! templates of the Elasticsearch and Splunk HEC sinks, and the webhook `body`.

use super::*;
use crate::sink::webhook::Body;

fn load_str(body: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("c.toml");
    std::fs::write(&file, body).expect("write");
    let env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    load(&Sources { file, env })
}

/// Two portals of two customers and a sink per test.
fn two_portals(sink: &str) -> String {
    format!(
        r#"
state_dir = "/tmp/x"
[portals.acme]
url = "https://acme.example.com"
api_key = "sk-a"
labels = {{ customer = "acme", customer_id = "42" }}
[portals.globex]
url = "https://globex.example.com"
api_key = "sk-g"
labels = {{ customer = "globex" }}
[sinks.out]
{sink}
"#
    )
}

fn errors(body: &str) -> String {
    load_str(body, &[])
        .map(|_| ())
        .expect_err("the config is refused")
        .to_string()
}

#[test]
fn labels_are_sorted_strings_on_the_portal() {
    let c = load_str(&two_portals("type = \"stdout\""), &[]).expect("valid");
    let acme = c.portals.iter().find(|p| p.name == "acme").expect("acme");
    assert_eq!(
        acme.labels,
        [
            ("customer".to_owned(), "acme".to_owned()),
            ("customer_id".to_owned(), "42".to_owned())
        ]
    );
    // An environment override arrives as a number: its digits are the label.
    let c = load_str(
        &two_portals("type = \"stdout\""),
        &[("DOCSPACE_SIEM_PORTALS__GLOBEX__LABELS__CUSTOMER_ID", "7")],
    )
    .expect("valid");
    let globex = c
        .portals
        .iter()
        .find(|p| p.name == "globex")
        .expect("globex");
    assert_eq!(globex.labels[1], ("customer_id".to_owned(), "7".to_owned()));
}

#[test]
fn bad_labels_are_errors_naming_the_dotted_path() {
    for (labels, key, problem) in [
        (
            "{ \"1st\" = \"x\" }",
            "portals.acme.labels.1st",
            "not a label key",
        ),
        (
            "{ \"a.b\" = \"x\" }",
            "portals.acme.labels.a.b",
            "not a label key",
        ),
        (
            "{ tier = true }",
            "portals.acme.labels.tier",
            "must be a string",
        ),
        (
            "{ tier = [\"a\"] }",
            "portals.acme.labels.tier",
            "must be a string",
        ),
        ("{ tier = \"\" }", "portals.acme.labels.tier", "is empty"),
        (
            "{ tier = \"a\\nb\" }",
            "portals.acme.labels.tier",
            "control characters",
        ),
        (
            "{ tier = \"a\u{2028}b\" }",
            "portals.acme.labels.tier",
            "line separators",
        ),
        ("\"acme\"", "portals.acme.labels", "must be a table"),
    ] {
        let body = two_portals("type = \"stdout\"").replace(
            "labels = { customer = \"acme\", customer_id = \"42\" }",
            &format!("labels = {labels}"),
        );
        let e = errors(&body);
        assert!(
            e.contains(&format!("{key}: ")) && e.contains(problem),
            "{labels}: {e}"
        );
    }
    let long =
        two_portals("type = \"stdout\"").replace("\"42\"", &format!("\"{}\"", "x".repeat(257)));
    assert!(errors(&long).contains("portals.acme.labels.customer_id: is longer than 256"));
    let key33 = two_portals("type = \"stdout\"").replace("customer_id", &"k".repeat(33));
    assert!(errors(&key33).contains("at most 32 characters"));
}

#[test]
fn filter_portals_and_labels_are_checked() {
    let c = load_str(
        &two_portals(
            "type = \"stdout\"\nfilter.portals = [\"globex\"]\nfilter.labels = { customer = \"globex\" }",
        ),
        &[],
    )
    .expect("valid");
    assert_eq!(c.sinks[0].filter.portals, ["globex"]);
    assert_eq!(
        c.sinks[0].filter.labels,
        [("customer".to_owned(), "globex".to_owned())]
    );
    let e = errors(&two_portals(
        "type = \"stdout\"\nfilter.portals = [\"acme\", \"initech\"]",
    ));
    assert!(
        e.contains("sinks.out.filter.portals: \"initech\" is not a [portals.NAME] table; the portals are acme, globex"),
        "{e}"
    );
    for filter in [
        "filter.labels = { customer = \"acm\" }",
        "filter.portals = [\"globex\"]\nfilter.labels = { customer = \"acme\" }",
    ] {
        let e = errors(&two_portals(&format!("type = \"stdout\"\n{filter}")));
        assert!(
            e.contains("sinks.out.filter.labels: matches no portal"),
            "{e}"
        );
    }
    let e = errors(&two_portals(
        "type = \"stdout\"\nfilter.labels = { customer = 1.5 }",
    ));
    assert!(
        e.contains("sinks.out.filter.labels.customer: must be a string"),
        "{e}"
    );
}

#[test]
fn templates_render_per_portal_and_need_every_label_they_name() {
    let hec =
        "type = \"splunk_hec\"\nendpoint = \"https://splunk.example.com:8088\"\ntoken = \"t\"";
    let c = load_str(
        &two_portals(&format!(
            "{hec}\nindex = \"{{label.customer}}_{{stream}}\"\nsourcetype = \"docspace:{{portal}}\"\nsource = \"static\""
        )),
        &[],
    )
    .expect("valid");
    let SinkKind::SplunkHec(h) = &c.sinks[0].kind else {
        panic!("a HEC sink")
    };
    let acme = crate::event::PortalInfo::new("acme", "https://acme.example.com")
        .with_labels([("customer".to_owned(), "acme".to_owned())]);
    let index = h.index.as_ref().expect("index");
    assert_eq!(index.render(&acme, Stream::Audit), "acme_audit");
    assert!(h.source.as_ref().expect("source").is_static());

    // globex has no customer_id: an error naming the sink's key and the portal...
    let e = errors(&two_portals(&format!(
        "{hec}\nindex = \"c{{label.customer_id}}\""
    )));
    assert!(
        e.contains("sinks.out.index: names {label.customer_id}, but portals.globex has no label \"customer_id\""),
        "{e}"
    );
    assert!(!e.contains("portals.acme has"), "{e}");
    // ...unless the sink leaves that portal out.
    for filter in [
        "filter.portals = [\"acme\"]",
        "filter.labels = { customer = \"acme\" }",
    ] {
        load_str(
            &two_portals(&format!(
                "{hec}\nindex = \"c{{label.customer_id}}\"\n{filter}"
            )),
            &[],
        )
        .unwrap_or_else(|e| panic!("{filter}: {e}"));
    }
    // A typo is an error naming the key.
    let e = errors(&two_portals(&format!("{hec}\nsourcetype = \"{{portl}}\"")));
    assert!(e.contains("sinks.out.sourcetype: names `{portl}`"), "{e}");
    // A rendered index that Splunk cannot hold names the portal and stream.
    let upper = two_portals(&format!("{hec}\nindex = \"{{label.customer}}\""))
        .replace("customer = \"globex\"", "customer = \"Globex\"");
    let e = errors(&upper);
    assert!(
        e.contains("sinks.out.index: renders to \"Globex\" for portals.globex (login): is not a Splunk index name"),
        "{e}"
    );
}

#[test]
fn elasticsearch_index_templates_are_checked_per_portal() {
    let es = "type = \"elasticsearch\"\nendpoint = \"https://es.example.com:9200\"";
    let c = load_str(
        &two_portals(&format!(
            "{es}\nindex = \"logs-docspace.{{stream}}-{{label.customer}}\""
        )),
        &[],
    )
    .expect("valid");
    let SinkKind::Elasticsearch(e) = &c.sinks[0].kind else {
        panic!("an Elasticsearch sink")
    };
    assert_eq!(e.index.as_str(), "logs-docspace.{stream}-{label.customer}");
    // The default stays the data stream of each stream.
    let c = load_str(&two_portals(es), &[]).expect("valid");
    let SinkKind::Elasticsearch(e) = &c.sinks[0].kind else {
        panic!("an Elasticsearch sink")
    };
    assert_eq!(e.index.as_str(), "logs-docspace.{stream}-default");
    let bad = two_portals(&format!("{es}\nindex = \"logs-{{label.customer}}\""))
        .replace("customer = \"globex\"", "customer = \"Globex Inc\"");
    let e = errors(&bad);
    assert!(
        e.contains("sinks.out.index: renders to \"logs-Globex Inc\" for portals.globex"),
        "{e}"
    );
    let e = errors(&two_portals(&format!("{es}\nindex = \"Logs\"")));
    assert!(
        e.contains("sinks.out.index: \"Logs\" is not a valid index"),
        "{e}"
    );
}

#[test]
fn webhook_body_is_array_or_ndjson() {
    let hook = "type = \"webhook\"\nurl = \"https://hooks.example.com/x\"";
    let body_of = |extra: &str| {
        let c = load_str(&two_portals(&format!("{hook}\n{extra}")), &[]).expect("valid");
        match &c.sinks[0].kind {
            SinkKind::Webhook(w) => w.body,
            other => panic!("a webhook sink, not {other:?}"),
        }
    };
    assert_eq!(body_of(""), Body::Array);
    assert_eq!(body_of("body = \"array\""), Body::Array);
    assert_eq!(body_of("body = \"ndjson\""), Body::Ndjson);
    let e = errors(&two_portals(&format!("{hook}\nbody = \"lines\"")));
    assert!(
        e.contains("sinks.out.body: \"lines\" is not \"array\""),
        "{e}"
    );
    let e = errors(&two_portals("type = \"stdout\"\nbody = \"ndjson\""));
    assert!(
        e.contains("sinks.out.body: is not a key of a \"stdout\" sink"),
        "{e}"
    );
}
