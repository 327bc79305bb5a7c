//! Google Chat incoming webhooks: a cardsV2 card, values HTML-escaped.

use serde_json::{Value, json};

use super::render::*;
use crate::alert::Alert;

pub(super) fn render(alerts: &[Alert], shown: usize, detailed: bool, max: usize) -> Value {
    let st = Style::ChatHtml;
    let sev = alerts.iter().map(|a| a.severity).max().unwrap_or(0);
    let mut sections = Vec::new();
    for a in alerts.iter().take(shown) {
        let mut widgets = vec![json!({"textParagraph": {"text": st.parts(&a.parts, max)}})];
        if detailed {
            for f in a.facts() {
                widgets.push(json!({"decoratedText": {"topLabel": f.label, "text": st.fact(&f, max), "wrapText": true}}));
            }
        } else {
            widgets
                .push(json!({"textParagraph": {"text": format!("<i>{}</i>", st.text(&a.when()))}}));
        }
        let mut section = json!({"widgets": widgets});
        if alerts.len() > 1 {
            section["header"] = json!(format!("{} {}", marker(a.severity), st.text(&a.title())));
        }
        sections.push(section);
    }
    if let Some(m) = more(alerts, shown) {
        sections.push(json!({"widgets": [{"textParagraph": {"text": st.text(&m)}}]}));
    }
    let buttons: Vec<Value> = portals(alerts)
        .iter()
        .take(5)
        .filter_map(|(n, u)| {
            safe_url(u)
                .map(|u| json!({"text": format!("Open {n}"), "onClick": {"openLink": {"url": u}}}))
        })
        .collect();
    if !buttons.is_empty() {
        sections.push(json!({"widgets": [{"buttonList": {"buttons": buttons}}]}));
    }
    let text = match alerts {
        [one] => format!(
            "{} {}: {}",
            marker(sev),
            Style::ChatText.bold(&one.title()),
            Style::ChatText.parts(&one.parts, max.min(60))
        ),
        many => format!("{} {}", marker(sev), Style::ChatText.bold(&heading(many))),
    };
    let card_id = format!("alert-{}", alerts[0].id());
    json!({
        "text": text,
        "cardsV2": [{
            "cardId": card_id,
            "card": {
                "header": {
                    "title": cut(&format!("{} {}", marker(sev), heading(alerts)), 200),
                    "subtitle": "docspace-siem",
                },
                "sections": sections,
            },
        }],
    })
}
