//! Mattermost incoming webhooks: markdown text and an attachment per alert, `<>` replaced and values in code spans.

use serde_json::{Value, json};

use super::render::*;
use crate::alert::Alert;

pub(super) fn render(alerts: &[Alert], shown: usize, detailed: bool, max: usize) -> Value {
    let st = Style::Mattermost;
    let sev = alerts.iter().map(|a| a.severity).max().unwrap_or(0);
    let links: Vec<String> = portals(alerts)
        .iter()
        .take(5)
        .map(|(n, u)| st.link(u, &format!("Open {n}")))
        .collect();
    if alerts.len() == 1 && detailed {
        let a = &alerts[0];
        let fields: Vec<Value> = a
            .facts()
            .iter()
            .map(|f| json!({"short": f.value.chars().count() < 40, "title": f.label, "value": st.fact(f, max)}))
            .collect();
        return json!({
            "text": format!("#### {} {}\n{}", marker(sev), heading(alerts), st.parts(&a.parts, max)),
            "attachments": [{
                "fallback": Style::Plain.parts(&a.parts, max),
                "color": format!("#{:06X}", color(a.severity)),
                "fields": fields,
                "footer": format!("docspace-siem · {}", links.join(" · ")),
            }],
        });
    }
    let mut text = format!("#### {} {}\n", marker(sev), heading(alerts));
    for a in alerts.iter().take(shown) {
        text.push_str(&format!(
            "- {} {}: {} _({})_\n",
            marker(a.severity),
            st.bold(&a.title()),
            st.parts(&a.parts, max),
            a.when()
        ));
    }
    if let Some(m) = more(alerts, shown) {
        text.push_str(&format!("\n{m}\n"));
    }
    text.push_str(&format!("\n{} · docspace-siem", links.join(" · ")));
    json!({ "text": text })
}
