//! Discord webhooks: up to ten embeds with fields, `@` broken and no mention parsed (`allowed_mentions: {"parse": []}`).

use serde_json::{Value, json};

use super::render::*;
use crate::alert::Alert;
use crate::event::format_utc_millis;

pub(super) fn render(alerts: &[Alert], shown: usize, detailed: bool, max: usize) -> Value {
    let st = Style::Discord;
    let sev = alerts.iter().map(|a| a.severity).max().unwrap_or(0);
    let mut embeds = Vec::new();
    for a in alerts.iter().take(shown) {
        let mut e = json!({
            "title": cut(&a.title(), 256),
            "description": st.parts(&a.parts, max),
            "color": color(a.severity),
            "timestamp": format_utc_millis(a.last),
            "footer": {"text": cut(&format!("docspace-siem · portal {} · rule {}", a.portal, a.rule), 2048)},
        });
        if let Some(u) = safe_url(&a.portal_url) {
            e["url"] = json!(u);
        }
        if detailed {
            let fields: Vec<Value> = a
                .facts()
                .iter()
                .take(25)
                .map(|f| json!({"name": f.label, "value": cut(&st.fact(f, max), 1024), "inline": f.value.chars().count() < 40}))
                .collect();
            e["fields"] = json!(fields);
        } else {
            e["description"] = json!(format!("{}\n*{}*", st.parts(&a.parts, max), a.when()));
        }
        embeds.push(e);
    }
    if let Some(m) = more(alerts, shown) {
        embeds.push(json!({"title": "More alerts", "description": m, "color": color(sev)}));
    }
    json!({
        "content": cut(&format!("{} **{}**", marker(sev), heading(alerts)), 2000),
        "username": "docspace-siem",
        "allowed_mentions": {"parse": []},
        "embeds": embeds,
    })
}
