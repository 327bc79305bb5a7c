//! The ECS form of an alert (`event.kind = "alert"`): the document stdout and webhook sinks
//! ship beside their events, and that the dead-letter file keeps for a rejected chat message.
//! Pure and sync like every encoder.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::ECS_VERSION;
use crate::alert::{Alert, By};
use crate::event::{Event, format_utc_millis};

/// The ECS document of an alert (`event.kind = "alert"`), valid under
/// `validate_ecs.py --strict`.
pub fn to_ecs(a: &Alert) -> Value {
    let mut event = Map::new();
    event.insert("kind".into(), json!("alert"));
    event.insert("category".into(), json!(a.category));
    event.insert("type".into(), json!(["info"]));
    event.insert("action".into(), json!(a.kind.as_str().replace('_', "-")));
    event.insert("outcome".into(), json!(a.outcome.as_str()));
    event.insert("id".into(), json!(a.id()));
    event.insert("code".into(), json!(a.action.0.to_string()));
    event.insert("dataset".into(), json!("docspace.alert"));
    event.insert("module".into(), json!("docspace"));
    event.insert("provider".into(), json!("docspace-siem"));
    event.insert("severity".into(), json!(a.severity));
    event.insert("start".into(), json!(format_utc_millis(a.first)));
    event.insert("end".into(), json!(format_utc_millis(a.last)));
    let nanos = (a.last - a.first).whole_nanoseconds();
    event.insert(
        "duration".into(),
        json!(i64::try_from(nanos).unwrap_or(i64::MAX)),
    );
    event.insert("reason".into(), json!(keyword(&a.summary)));
    event.insert(
        "created".into(),
        json!(format_utc_millis(OffsetDateTime::now_utc())),
    );

    let mut doc = Map::new();
    doc.insert("@timestamp".into(), json!(format_utc_millis(a.last)));
    doc.insert("ecs".into(), json!({ "version": ECS_VERSION }));
    doc.insert("event".into(), Value::Object(event));
    doc.insert("message".into(), json!(a.summary));
    doc.insert(
        "rule".into(),
        json!({
            "name": a.rule,
            "category": a.kind.as_str(),
            "description": a.title(),
            "ruleset": "docspace-siem",
        }),
    );
    let user = match a.by {
        By::Ip => a.user.as_deref(),
        _ => Some(a.key.as_str()),
    };
    if let Some(u) = user {
        doc.insert("user".into(), json!({ "name": keyword(u) }));
    }
    let addr = match a.by {
        By::Ip => Some(a.key.as_str()),
        _ => a.ip.as_deref(),
    };
    let mut source = Map::new();
    if let Some(ip) = addr.and_then(|s| s.parse::<std::net::IpAddr>().ok()) {
        source.insert("ip".into(), json!(ip.to_string()));
    }
    if let Some(s) = addr {
        source.insert("address".into(), json!(keyword(s)));
    }
    let mut geo = Map::new();
    if let Some(c) = &a.country {
        geo.insert("country_name".into(), json!(keyword(c)));
    }
    if let Some(c) = &a.city {
        geo.insert("city_name".into(), json!(keyword(c)));
    }
    if !geo.is_empty() {
        source.insert("geo".into(), Value::Object(geo));
    }
    if !source.is_empty() {
        doc.insert("source".into(), Value::Object(source));
    }
    let mut related = Map::new();
    let mut users: Vec<String> = Vec::new();
    for u in user
        .into_iter()
        .chain(a.related_users.iter().map(String::as_str))
    {
        let k = keyword(u);
        if !users.contains(&k) {
            users.push(k);
        }
    }
    if !users.is_empty() {
        related.insert("user".into(), json!(users));
    }
    let mut ips: Vec<String> = Vec::new();
    for i in addr
        .into_iter()
        .chain(a.related_ips.iter().map(String::as_str))
    {
        if let Ok(ip) = i.parse::<std::net::IpAddr>() {
            let s = ip.to_string();
            if !ips.contains(&s) {
                ips.push(s);
            }
        }
    }
    if !ips.is_empty() {
        related.insert("ip".into(), json!(ips));
    }
    if !related.is_empty() {
        doc.insert("related".into(), Value::Object(related));
    }
    let host = url::Url::parse(&a.portal_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| a.portal_url.clone());
    doc.insert(
        "observer".into(),
        json!({
            "vendor": "ONLYOFFICE",
            "product": "DocSpace",
            "type": "application",
            "hostname": keyword(&host),
            "name": a.portal,
        }),
    );
    doc.insert(
        "organization".into(),
        json!({ "id": keyword(&host), "name": a.portal }),
    );
    if !a.labels.is_empty() {
        // ECS `labels`: the portal's labels, as every event of the portal carries them.
        let labels: Map<String, Value> = a
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), json!(keyword(v))))
            .collect();
        doc.insert("labels".into(), Value::Object(labels));
    }
    let mut alert = Map::new();
    alert.insert("rule".into(), json!(a.rule));
    alert.insert("kind".into(), json!(a.kind.as_str()));
    alert.insert("by".into(), json!(a.by.as_str()));
    alert.insert("key".into(), json!(a.key));
    alert.insert("count".into(), json!(a.count));
    alert.insert("event_ids".into(), json!(a.events));
    if !a.known.is_empty() {
        alert.insert("known".into(), json!(a.known));
    }
    if let Some(d) = &a.detail {
        alert.insert("detail".into(), json!(d));
    }
    doc.insert(
        "docspace".into(),
        json!({
            "portal": a.portal,
            "portal_url": a.portal_url,
            "stream": a.stream.as_str(),
            "action_id": a.action.0,
            "action_name": a.action.1,
            "alert": alert,
        }),
    );
    Value::Object(doc)
}

/// `alerts` (raised by `events`), each as a compact ECS document (`event.kind = "alert"`) with
/// the index in `events` of the event that fired it (whose dead letter it shares).
pub fn ecs_records(alerts: &[Alert], events: &[&Event]) -> Vec<(Vec<u8>, usize)> {
    alerts
        .iter()
        .map(|a| {
            let at = a
                .events
                .last()
                .and_then(|id| {
                    events
                        .iter()
                        .rposition(|e| e.id == *id && e.portal.name == a.portal)
                })
                .unwrap_or(events.len().saturating_sub(1));
            (serde_json::to_vec(&to_ecs(a)).unwrap_or_default(), at)
        })
        .collect()
}

/// ECS keyword fields are not indexed past 1024 characters.
fn keyword(v: &str) -> String {
    if v.chars().count() <= 1024 {
        return v.to_owned();
    }
    let mut s: String = v.chars().take(1021).collect();
    s.push_str("...");
    s
}
