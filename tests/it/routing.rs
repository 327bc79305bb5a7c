//! One agent for many customers (issues 20 and 21): two portals with their own labels on one
//! simulated DocSpace, and the sinks that route them. HEC `index`, `sourcetype` and `source`
//! and the Elasticsearch index rendered per portal from `{portal}`, `{stream}` and
//! `{label.KEY}`; `filter.portals` and `filter.labels`; NDJSON webhook bodies; the labels in
//! ECS (the official validator), CEF (the real parsers), json and RFC 5424 structured data.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use docspace_siem::simulator::{SimStream, SimZone, Simulator};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::support::mocks::{Bulk, BulkAuth, Hec};
use crate::support::raw_http::RawHttp;
use crate::support::scenario::{all_ids, assert_exactly_once, settle, until};
use crate::support::{Agent, SyslogNg, TcpCollector, Workdir, parse_cef, portal, validate_ecs};

const HEC_TOKEN: &str = "11111111-2222-4333-8444-r0ute-t0ken";

/// The two customers: portal table name, `customer`, `customer_id`.
const CUSTOMERS: [(&str, &str, &str); 2] = [("acme", "acme", "42"), ("globex", "globex", "7")];

/// Login and audit events on the one simulated portal both `[portals.*]` tables read.
fn generate(sim: &Simulator) {
    let now = OffsetDateTime::now_utc();
    let h = time::Duration::hours;
    sim.generate(SimStream::Login, 60, now - h(5), now - h(2));
    sim.generate(SimStream::Audit, 40, now - h(5), now - h(2));
}

/// The config: both portals on `url`, each with its labels, then `sinks`.
fn config(w: &Workdir, url: &str, sinks: &str) -> std::path::PathBuf {
    let mut text = "state_dir = \"{state}\"\n".to_owned();
    for (name, customer, id) in CUSTOMERS {
        text.push_str(&Workdir::portal_toml(
            name,
            url,
            &format!(
                "start_from = \"1d\"\nlabels = {{ customer = \"{customer}\", customer_id = \"{id}\" }}"
            ),
        ));
    }
    text.push_str(sinks);
    w.config(&text)
}

fn stop(agent: &mut Agent) {
    agent.signal("TERM");
    assert_eq!(
        agent.wait(Duration::from_secs(20)),
        Some(0),
        "{}",
        agent.stderr_text()
    );
}

/// The ECS `labels` each portal's events must carry.
fn labels_of(portal: &str) -> Value {
    let (_, customer, id) = CUSTOMERS
        .iter()
        .find(|(name, ..)| *name == portal)
        .unwrap_or_else(|| panic!("portal {portal}"));
    json!({ "customer": customer, "customer_id": id })
}

fn ids_by_portal(events: &[(String, i64)]) -> BTreeMap<String, Vec<i64>> {
    let mut m: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (portal, id) in events {
        m.entry(portal.clone()).or_default().push(*id);
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hec_fields_and_elasticsearch_indices_are_rendered_per_portal() {
    let (sim, server) = portal(SimZone::Utc).await;
    generate(&sim);
    let hec = Hec::start(HEC_TOKEN).await;
    let es = Bulk::start(BulkAuth::None).await;
    let w = Workdir::new();
    let sinks = format!(
        r#"
[sinks.hec]
type = "splunk_hec"
endpoint = "{hec}"
token = "{HEC_TOKEN}"
index = "cust_{{label.customer_id}}"
sourcetype = "docspace:{{stream}}:{{portal}}"
source = "docspace-{{label.customer}}"
batch = {{ max_events = 50, timeout = "200ms" }}

[sinks.es]
type = "elasticsearch"
endpoint = "{es}"
index = "logs-docspace.{{stream}}-{{label.customer}}"
batch = {{ max_events = 50, timeout = "200ms" }}
"#,
        hec = hec.url(),
        es = es.url(),
    );
    let cfg = config(&w, &server.url, &sinks);
    let mut agent = Agent::start(&cfg, w.path(), "a");
    let want = all_ids(&sim);
    until(
        &agent,
        Duration::from_secs(60),
        "every event of both portals at both sinks",
        || hec.ids().len() >= 2 * want.len() && es.stored_count() >= 2 * want.len(),
    )
    .await;
    settle(&sim, &agent).await;
    stop(&mut agent);

    // HEC: each envelope routed by its own portal and stream; ECS `labels` in the event.
    let mut seen = Vec::new();
    let mut ecs = Vec::new();
    for (env, _) in hec.accepted() {
        let ev = &env["event"];
        let portal = ev["docspace"]["portal"].as_str().expect("docspace.portal");
        let stream = ev["docspace"]["stream"].as_str().expect("docspace.stream");
        let labels = labels_of(portal);
        assert_eq!(ev["labels"], labels, "{env}");
        assert_eq!(
            env["index"],
            format!("cust_{}", labels["customer_id"].as_str().unwrap_or("")),
            "{env}"
        );
        assert_eq!(
            env["sourcetype"],
            format!("docspace:{stream}:{portal}"),
            "{env}"
        );
        assert_eq!(
            env["source"],
            format!("docspace-{}", labels["customer"].as_str().unwrap_or("")),
            "{env}"
        );
        seen.push((
            portal.to_owned(),
            ev["docspace"]["id"].as_i64().expect("id"),
        ));
        ecs.push(ev.to_string());
    }
    let by_portal = ids_by_portal(&seen);
    assert_eq!(by_portal.len(), 2, "both portals reach HEC");
    for (portal, ids) in &by_portal {
        assert_exactly_once(ids, &want, &format!("hec, portal {portal}"));
    }
    validate_ecs(&ecs.join("\n"));

    // Elasticsearch: one data stream per customer and stream, each with that portal's events.
    let store = es.store();
    let indices: BTreeSet<&str> = store.keys().map(String::as_str).collect();
    assert_eq!(
        indices,
        BTreeSet::from([
            "logs-docspace.audit-acme",
            "logs-docspace.audit-globex",
            "logs-docspace.login-acme",
            "logs-docspace.login-globex",
        ])
    );
    for (index, docs) in &store {
        let customer = index.rsplit('-').next().expect("namespace");
        let stream = if index.contains(".login-") {
            SimStream::Login
        } else {
            SimStream::Audit
        };
        let ids: Vec<i64> = docs
            .values()
            .map(|d| {
                assert_eq!(d["docspace"]["portal"], customer, "{index}: {d}");
                assert_eq!(d["labels"]["customer"], customer, "{index}: {d}");
                assert_eq!(d["data_stream"]["namespace"], customer, "{index}: {d}");
                d["docspace"]["id"].as_i64().expect("id")
            })
            .collect();
        let want: BTreeSet<i64> = sim.ids(stream).into_iter().collect();
        assert_exactly_once(&ids, &want, index);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_pick_a_portal_and_ndjson_webhooks_carry_the_labels() {
    let (sim, server) = portal(SimZone::Utc).await;
    generate(&sim);
    let json_hook = RawHttp::start().await;
    let cef_hook = RawHttp::start().await;
    let array_hook = RawHttp::start().await;
    let tcp = TcpCollector::start().await;
    let w = Workdir::new();
    let sinks = format!(
        r#"
[sinks.globex_json]
type = "webhook"
url = "{json}"
format = "json"
body = "ndjson"
filter.portals = ["globex"]

[sinks.acme_cef]
type = "webhook"
url = "{cef}"
format = "cef"
body = "ndjson"
filter.labels = {{ customer = "acme" }}

[sinks.acme_ecs]
type = "webhook"
url = "{array}"
format = "ecs"
filter.portals = ["acme"]
filter.streams = ["login"]

[sinks.siem]
type = "syslog"
format = "cef"
address = "{tcp}"
filter.portals = ["globex"]
"#,
        json = json_hook.url,
        cef = cef_hook.url,
        array = array_hook.url,
        tcp = tcp.addr,
    );
    let cfg = config(&w, &server.url, &sinks);
    let mut agent = Agent::start(&cfg, w.path(), "a");
    let want = all_ids(&sim);
    let logins: BTreeSet<i64> = sim.ids(SimStream::Login).into_iter().collect();
    until(
        &agent,
        Duration::from_secs(60),
        "every sink's events",
        || {
            json_hook.lines().len() >= want.len()
                && cef_hook.lines().len() >= want.len()
                && tcp.messages().len() >= want.len()
                && array_hook
                    .posts()
                    .iter()
                    .map(|p| array_len(&p.body))
                    .sum::<usize>()
                    >= logins.len()
        },
    )
    .await;
    settle(&sim, &agent).await;
    stop(&mut agent);

    // NDJSON: the content type, one raw-row document per line, only globex's.
    let posts = json_hook.posts();
    assert!(
        posts
            .iter()
            .all(|p| p.content_type == "application/x-ndjson"),
        "{posts:?}"
    );
    let mut ids = Vec::new();
    for line in json_hook.lines() {
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["portal"], "globex", "{line}");
        assert_eq!(v["labels"], labels_of("globex"), "{line}");
        ids.push(v["id"].as_i64().expect("id"));
    }
    assert_exactly_once(&ids, &want, "globex_json");

    // CEF lines (JSON strings, one per line), only acme's, with its labels as custom keys.
    let lines: Vec<String> = cef_hook
        .lines()
        .iter()
        .map(|l| serde_json::from_str::<String>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let parsed = parse_cef(&lines);
    let mut ids = Vec::new();
    for p in &parsed {
        let ext = &p["ext"];
        assert_eq!(ext["deviceExternalId"], "acme", "{p}");
        assert_eq!(ext["labels.customer"], "acme", "{p}");
        assert_eq!(ext["labels.customer_id"], "42", "{p}");
        ids.push(
            ext["externalId"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("externalId"),
        );
    }
    assert_exactly_once(&ids, &want, "acme_cef");

    // The default body is still one JSON array; two filters combine.
    for p in array_hook.posts() {
        assert_eq!(p.content_type, "application/json");
    }
    let docs: Vec<Value> = array_hook
        .posts()
        .iter()
        .flat_map(|p| serde_json::from_slice::<Vec<Value>>(&p.body).expect("a JSON array"))
        .collect();
    let mut ids = Vec::new();
    for d in &docs {
        assert_eq!(d["docspace"]["portal"], "acme", "{d}");
        assert_eq!(d["labels"], labels_of("acme"), "{d}");
        ids.push(d["docspace"]["id"].as_i64().expect("id"));
    }
    assert_exactly_once(&ids, &logins, "acme_ecs");
    let ndjson: Vec<String> = docs.iter().map(Value::to_string).collect();
    validate_ecs(&ndjson.join("\n"));

    // RFC 5424: the labels as their own SD element, beside docspace@32473.
    let mut ids = Vec::new();
    for m in tcp.messages() {
        let p = syslog_rfc5424::parse_message(&m).unwrap_or_else(|e| panic!("{e}: {m}"));
        let portal = p.sd.find_sdid("docspace@32473").expect("docspace@32473");
        assert_eq!(
            portal.get("portal").map(String::as_str),
            Some("globex"),
            "{m}"
        );
        let labels = p.sd.find_sdid("labels@32473").expect("labels@32473");
        assert_eq!(
            labels.get("customer").map(String::as_str),
            Some("globex"),
            "{m}"
        );
        assert_eq!(
            labels.get("customer_id").map(String::as_str),
            Some("7"),
            "{m}"
        );
        ids.push(portal.get("id").and_then(|i| i.parse().ok()).expect("id"));
    }
    assert_exactly_once(&ids, &want, "siem");
}

/// Elements of a JSON array body (0 for anything else).
fn array_len(body: &[u8]) -> usize {
    serde_json::from_slice::<Vec<Value>>(body).map_or(0, |v| v.len())
}

/// syslog-ng reads the labels element of RFC 5424 as structured data of its own, beside
/// `docspace@32473`, for every message of both portals (values with `"`, `\` and `]` escaped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_ng_reads_the_labels_as_structured_data() {
    let ng = SyslogNg::start();
    let (sim, server) = portal(SimZone::Utc).await;
    generate(&sim);
    let w = Workdir::new();
    let sinks = format!(
        "[sinks.ng]\ntype = \"syslog\"\nformat = \"cef\"\nprotocol = \"tcp\"\naddress = \"127.0.0.1:{}\"\n",
        ng.tcp
    );
    // acme's customer name holds every character SD-PARAM escapes.
    let text = std::fs::read_to_string(config(&w, &server.url, &sinks))
        .expect("config")
        .replace("customer = \"acme\"", r#"customer = "Acme \"R]D\" \\ Co""#);
    let cfg = w.config(&text);
    let mut agent = Agent::start(&cfg, w.path(), "a");
    let want = all_ids(&sim);
    until(
        &agent,
        Duration::from_secs(60),
        "both portals at syslog-ng",
        || ng.messages().len() >= 2 * want.len(),
    )
    .await;
    settle(&sim, &agent).await;
    stop(&mut agent);

    let mut seen = Vec::new();
    for m in ng.messages() {
        assert_eq!(
            m["app_name"], "docspace-siem",
            "syslog-ng's own message: {m}"
        );
        let sd = &m["sd"];
        let portal = sd["docspace@32473"]["portal"]
            .as_str()
            .expect("portal")
            .to_owned();
        let (customer, id) = match portal.as_str() {
            "acme" => ("Acme \"R]D\" \\ Co", "42"),
            "globex" => ("globex", "7"),
            other => panic!("portal {other}: {m}"),
        };
        assert_eq!(sd["labels@32473"]["customer"], customer, "{m}");
        assert_eq!(sd["labels@32473"]["customer_id"], id, "{m}");
        let event = sd["docspace@32473"]["id"]
            .as_str()
            .and_then(|s| s.parse().ok());
        seen.push((portal, event.expect("id")));
    }
    for (portal, ids) in ids_by_portal(&seen) {
        assert_exactly_once(&ids, &want, &format!("syslog-ng, portal {portal}"));
    }
}
