//! Microsoft Teams Workflows webhooks: an Adaptive Card 1.4 with a fact set per alert, `[]<>` replaced.

use serde_json::{Value, json};

use super::render::*;
use crate::alert::Alert;

pub(super) fn render(alerts: &[Alert], shown: usize, detailed: bool, max: usize) -> Value {
    let st = Style::Teams;
    let sev = alerts.iter().map(|a| a.severity).max().unwrap_or(0);
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": format!("{} {}", marker(sev), heading(alerts)),
        "weight": "Bolder",
        "size": "Medium",
        "color": if sev >= 7 { "Attention" } else { "Warning" },
        "wrap": true,
    })];
    for a in alerts.iter().take(shown) {
        let mut items = Vec::new();
        if alerts.len() > 1 {
            items.push(
                json!({"type": "TextBlock", "text": a.title(), "weight": "Bolder", "wrap": true}),
            );
        }
        items.push(json!({"type": "TextBlock", "text": st.parts(&a.parts, max), "wrap": true}));
        if detailed {
            let facts: Vec<Value> = a
                .facts()
                .iter()
                .map(|f| json!({"title": f.label, "value": st.fact(f, max)}))
                .collect();
            items.push(json!({"type": "FactSet", "facts": facts}));
        } else {
            items.push(json!({"type": "TextBlock", "text": a.when(), "isSubtle": true, "size": "Small", "wrap": true}));
        }
        body.push(json!({"type": "Container", "separator": true, "items": items}));
    }
    if let Some(m) = more(alerts, shown) {
        body.push(json!({"type": "TextBlock", "text": m, "wrap": true, "isSubtle": true}));
    }
    let actions: Vec<Value> = portals(alerts)
        .iter()
        .take(5)
        .filter_map(|(n, u)| {
            safe_url(u)
                .map(|u| json!({"type": "Action.OpenUrl", "title": format!("Open {n}"), "url": u}))
        })
        .collect();
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "msteams": {"width": "Full"},
                "body": body,
                "actions": actions,
            },
        }],
    })
}
