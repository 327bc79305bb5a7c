//! Slack incoming webhooks: a header block, a section per alert (mrkdwn, `&<>` as entities inside code spans) and a context line, within 50 blocks.

use serde_json::{Value, json};

use super::render::*;
use crate::alert::Alert;

pub(super) fn render(alerts: &[Alert], shown: usize, detailed: bool, max: usize) -> Value {
    let st = Style::Slack;
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": cut(&format!("{} {}", marker(alerts.iter().map(|a| a.severity).max().unwrap_or(0)), heading(alerts)), 150), "emoji": true},
    })];
    for (i, a) in alerts.iter().take(shown).enumerate() {
        let mut text = if alerts.len() == 1 {
            st.parts(&a.parts, max)
        } else {
            format!(
                "{} {}\n{}",
                marker(a.severity),
                st.bold(&st.text(&a.title())),
                st.parts(&a.parts, max)
            )
        };
        if !detailed {
            text.push_str(&format!("\n_{}_", st.text(&a.when())));
        }
        let mut block = json!({
            "type": "section",
            "block_id": format!("alert:{}:{}:{i}", a.rule, a.id()),
            "text": {"type": "mrkdwn", "text": text},
        });
        if detailed {
            let fields: Vec<Value> = a
                .facts()
                .iter()
                .take(10)
                .map(|f| json!({"type": "mrkdwn", "text": format!("*{}*\n{}", st.text(f.label), st.fact(f, max))}))
                .collect();
            block["fields"] = json!(fields);
        }
        blocks.push(block);
    }
    let mut context = Vec::new();
    if let Some(m) = more(alerts, shown) {
        context.push(json!({"type": "mrkdwn", "text": st.text(&m)}));
    }
    let links: Vec<String> = portals(alerts)
        .iter()
        .take(5)
        .map(|(n, u)| st.link(u, &format!("Open {n}")))
        .collect();
    context
        .push(json!({"type": "mrkdwn", "text": format!("{} · docspace-siem", links.join(" · "))}));
    blocks.push(json!({"type": "context", "elements": context}));
    let fallback = match alerts {
        [one] => format!("{}: {}", st.text(&one.title()), st.parts(&one.parts, max)),
        many => format!(
            "{}: {}",
            st.text(&heading(many)),
            many.iter()
                .take(shown.min(3))
                .map(|a| st.parts(&a.parts, max.min(40)))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    json!({"text": fallback, "blocks": blocks})
}
