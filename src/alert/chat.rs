//! Chat sinks: alert messages in each service's native shape (Slack blocks, a Teams Workflows
//! Adaptive Card, Mattermost, Discord embeds, Google Chat cardsV2), and the client that posts
//! them under a per-webhook rate limit (docs/formats.md §4.3).
//!
//! Invariants:
//! - A chat sink posts only alerts: nothing at start-up, no heartbeat, never an event as such.
//!   Its health check makes a request that posts nothing.
//! - At most one message per batch of events: several alerts become one digest ("12 alerts"),
//!   showing as many as the service's limits allow and counting the rest by rule, never
//!   dropping them silently.
//! - Every message is within the service's documented limits (Slack 50 blocks and 3000
//!   characters per section; Discord 2000 content, 10 embeds, 6000 characters in embeds, 25
//!   fields; Mattermost 16383 characters; Google Chat 32,000 bytes; Teams about 28 KB),
//!   counted in UTF-16 units, the stricter of the ways services count.
//! - Event values are attacker-controlled (a login is whatever was typed): control, bidi and
//!   zero-width characters become U+FFFD, `://` and `www.` are broken so nothing links, and
//!   each service's markup is neutralised (Slack `&<>` entities inside code spans; Mattermost
//!   and Google Chat `<>` replaced and code spans; Discord code spans, `@` broken and
//!   `allowed_mentions: {"parse": []}`; Teams `[]<>` replaced; Google Chat cards HTML-escaped).
//! - The webhook URL is a credential: only scheme://host/… appears in errors and logs, and a
//!   response body is quoted only when it holds no piece of the URL.
//! - Posts are paced by a token bucket (1 message/s by default); `Retry-After` (and Discord's
//!   `retry_after` body field and `X-RateLimit-Reset-After`) hold the bucket and are handed to
//!   the retry loop, which never drops an alert for a retryable failure.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use tracing::{error, info, warn};

use super::{Alert, Fact, Part, RuleConfig, RuleEngine, to_ecs};
use crate::event::{Event, format_utc_millis};
use crate::http::HttpTls;
use crate::http::redact_url;
use crate::pipeline::{DeadLetter, SinkStats};
use crate::retry::MAX_SINK_BACKOFF;
use crate::retry::{Backoff, retry_after};
use crate::sink::SinkError;

/// A chat service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChatKind {
    /// Slack incoming webhook (blocks).
    Slack,
    /// Microsoft Teams Workflows webhook (Adaptive Card 1.4).
    Teams,
    /// Mattermost incoming webhook.
    Mattermost,
    /// Discord webhook (embeds).
    Discord,
    /// Google Chat incoming webhook (cardsV2).
    GoogleChat,
}

impl ChatKind {
    /// Every chat service.
    pub const ALL: [ChatKind; 5] = [
        ChatKind::Slack,
        ChatKind::Teams,
        ChatKind::Mattermost,
        ChatKind::Discord,
        ChatKind::GoogleChat,
    ];

    /// The sink `type` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatKind::Slack => "slack",
            ChatKind::Teams => "teams",
            ChatKind::Mattermost => "mattermost",
            ChatKind::Discord => "discord",
            ChatKind::GoogleChat => "google_chat",
        }
    }

    /// Parses a sink `type`.
    pub fn parse(s: &str) -> Option<ChatKind> {
        ChatKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Most alerts shown in one digest before the "and N more" line.
    fn max_shown(self) -> usize {
        match self {
            ChatKind::Slack => 40,
            ChatKind::Discord => 9,
            ChatKind::Teams | ChatKind::GoogleChat | ChatKind::Mattermost => 25,
        }
    }
}

impl std::fmt::Display for ChatKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Neutralising event values

/// Characters shown as U+FFFD: controls, line and paragraph separators, bidi controls and
/// invisible characters (they could reorder or hide text, or smuggle a mention).
fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}'
            | '\u{061C}' | '\u{FEFF}' | '\u{00AD}' | '\u{180E}')
}

/// Cleans a value: hidden characters → U+FFFD, `://` and `www.` broken with a zero-width space
/// so no service turns them into a link.
fn clean(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| if hidden(c) { '\u{FFFD}' } else { c })
        .collect();
    let mut out = mapped.replace("://", ":\u{200B}//");
    // `www.` case-insensitively, without allocating per character.
    let mut i = 0;
    while let Some(pos) = out[i..].to_ascii_lowercase().find("www.") {
        let at = i + pos + 3;
        out.insert(at, '\u{200B}');
        i = at + '\u{200B}'.len_utf8() + 1;
    }
    out
}

/// Cuts to `max` characters, ending in `…`.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Length as the services count it (UTF-16 units: JavaScript string length; never less than
/// the number of characters).
fn units(s: &str) -> usize {
    s.encode_utf16().count()
}

fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// How text is written for one place of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// Slack mrkdwn.
    Slack,
    /// Mattermost markdown (also parses Slack's `<!channel>` and `<url|text>`).
    Mattermost,
    /// Discord markdown.
    Discord,
    /// Adaptive Card TextBlock / FactSet markdown subset.
    Teams,
    /// Google Chat card text (HTML subset).
    ChatHtml,
    /// Google Chat message text (`*bold*`, `` `code` ``, `<users/all>`).
    ChatText,
    /// No markup at all (Slack `plain_text`, Discord embed titles, fallbacks).
    Plain,
}

impl Style {
    /// Our own text (trusted), escaped for the style.
    fn text(self, s: &str) -> String {
        match self {
            Style::Slack => slack_escape(s),
            Style::ChatHtml => html_escape(s),
            _ => s.to_owned(),
        }
    }

    /// An event value (untrusted), cut to `max` characters and shown literally.
    fn value(self, s: &str, max: usize) -> String {
        let v = cut(&clean(s), max);
        if v.is_empty() {
            return "–".to_owned();
        }
        let code = |v: &str| format!("`{}`", v.replace('`', "ˋ"));
        match self {
            Style::Slack => slack_escape(&code(&v)),
            Style::Mattermost => code(
                &v.replace('<', "‹")
                    .replace('>', "›")
                    .replace('@', "@\u{200B}"),
            ),
            Style::Discord => code(
                &v.replace('<', "‹")
                    .replace('>', "›")
                    .replace('@', "@\u{200B}"),
            ),
            Style::ChatText => code(&v.replace('<', "‹").replace('>', "›")),
            Style::Teams => v
                .replace('[', "［")
                .replace(']', "］")
                .replace('<', "‹")
                .replace('>', "›")
                .replace('@', "@\u{200B}"),
            Style::ChatHtml => html_escape(&v),
            Style::Plain => v
                .replace('<', "‹")
                .replace('>', "›")
                .replace('@', "@\u{200B}"),
        }
    }

    fn bold(self, s: &str) -> String {
        match self {
            Style::Slack | Style::ChatText => format!("*{s}*"),
            Style::Mattermost | Style::Discord | Style::Teams => format!("**{s}**"),
            Style::ChatHtml => format!("<b>{s}</b>"),
            Style::Plain => s.to_owned(),
        }
    }

    /// A link to a portal (config-controlled URL).
    fn link(self, url: &str, label: &str) -> String {
        let url = safe_url(url);
        match (self, url) {
            (_, None) => self.text(label),
            (Style::Slack, Some(u)) => format!("<{u}|{}>", slack_escape(label).replace('|', "¦")),
            (Style::ChatHtml, Some(u)) => {
                format!("<a href=\"{}\">{}</a>", html_escape(&u), html_escape(label))
            }
            (Style::ChatText, Some(u)) => format!("<{u}|{}>", label.replace(['<', '>', '|'], "")),
            (Style::Plain, Some(u)) => format!("{label} ({u})"),
            (_, Some(u)) => format!("[{}]({u})", label.replace(['[', ']'], "")),
        }
    }

    /// An alert's sentence, values cut to `max` characters each.
    fn parts(self, parts: &[Part], max: usize) -> String {
        parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => self.text(t),
                Part::Value(v) => self.value(v, max),
            })
            .collect()
    }

    /// A fact's value.
    fn fact(self, f: &Fact, max: usize) -> String {
        if f.untrusted {
            self.value(&f.value, max)
        } else {
            self.text(&cut(&f.value, max * 2))
        }
    }
}

/// An http(s) URL safe inside every link syntax (`<>|()"` and spaces percent-encoded).
fn safe_url(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    if !matches!(u.scheme(), "https" | "http") {
        return None;
    }
    let mut s = String::new();
    for c in u.as_str().chars() {
        match c {
            '<' => s.push_str("%3C"),
            '>' => s.push_str("%3E"),
            '|' => s.push_str("%7C"),
            '(' => s.push_str("%28"),
            ')' => s.push_str("%29"),
            '"' => s.push_str("%22"),
            ' ' => s.push_str("%20"),
            c if c.is_control() => {}
            c => s.push(c),
        }
    }
    Some(s)
}

fn marker(severity: u8) -> &'static str {
    match severity {
        9.. => "🔴",
        7..=8 => "🟠",
        5..=6 => "🟡",
        _ => "🔵",
    }
}

fn color(severity: u8) -> u32 {
    match severity {
        9.. => 0x00B7_1C1C,
        7..=8 => 0x00E6_4A19,
        5..=6 => 0x00F9_A825,
        _ => 0x0019_76D2,
    }
}

/// "5 brute_force, 3 new_country" for alerts not shown.
fn tally(alerts: &[Alert]) -> String {
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for a in alerts {
        *by.entry(a.rule.as_str()).or_default() += 1;
    }
    let mut v: Vec<(&str, usize)> = by.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.iter()
        .map(|(r, n)| format!("{n} {r}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `on portal main` / `on 2 portals`.
fn portals(alerts: &[Alert]) -> Vec<(&str, &str)> {
    let mut v: Vec<(&str, &str)> = Vec::new();
    for a in alerts {
        if !v.iter().any(|(n, _)| *n == a.portal) {
            v.push((a.portal.as_str(), a.portal_url.as_str()));
        }
    }
    v
}

fn heading(alerts: &[Alert]) -> String {
    let ps = portals(alerts);
    let on = match ps.as_slice() {
        [(one, _)] => format!(" on {one}"),
        many => format!(" on {} portals", many.len()),
    };
    match alerts {
        [one] => format!("{}{on}", one.title()),
        many => format!("{} alerts{on}", many.len()),
    }
}

// ---------------------------------------------------------------------------------------------
// Payloads

/// The message for `alerts` in the service's native shape: one alert in detail, or a digest.
/// `Value::Null` for no alerts (nothing is posted).
pub fn payload(kind: ChatKind, alerts: &[Alert]) -> Value {
    if alerts.is_empty() {
        return Value::Null;
    }
    let mut candidates: Vec<(usize, bool, usize)> = Vec::new();
    if alerts.len() == 1 {
        // (shown, detailed, value length)
        candidates.push((1, true, 120));
        candidates.push((1, true, 40));
        candidates.push((1, false, 40));
    } else {
        let top = alerts.len().min(kind.max_shown());
        for shown in (1..=top).rev() {
            candidates.push((shown, false, 80));
        }
        candidates.push((1, false, 24));
    }
    candidates.push((0, false, 16));
    for (shown, detailed, max) in candidates {
        let p = build(kind, alerts, shown, detailed, max);
        if fits(kind, &p) {
            return p;
        }
    }
    // Unreachable in practice: the last candidate is a heading and a count.
    build(kind, alerts, 0, false, 8)
}

fn build(kind: ChatKind, alerts: &[Alert], shown: usize, detailed: bool, max: usize) -> Value {
    match kind {
        ChatKind::Slack => slack(alerts, shown, detailed, max),
        ChatKind::Mattermost => mattermost(alerts, shown, detailed, max),
        ChatKind::Discord => discord(alerts, shown, detailed, max),
        ChatKind::Teams => teams(alerts, shown, detailed, max),
        ChatKind::GoogleChat => google_chat(alerts, shown, detailed, max),
    }
}

/// Whether a payload is within the service's limits.
fn fits(kind: ChatKind, p: &Value) -> bool {
    let bytes = serde_json::to_vec(p).map_or(usize::MAX, |b| b.len());
    let str_at = |v: &Value, ptr: &str| v.pointer(ptr).and_then(Value::as_str).map_or(0, units);
    match kind {
        ChatKind::Slack => {
            let blocks = p["blocks"].as_array().map_or(&[][..], Vec::as_slice);
            blocks.len() <= 50
                && str_at(p, "/text") <= 3000
                && bytes <= 40_000
                && blocks.iter().all(|b| {
                    let fields = b["fields"].as_array().map_or(&[][..], Vec::as_slice);
                    let elements = b["elements"].as_array().map_or(&[][..], Vec::as_slice);
                    match b["type"].as_str() {
                        Some("header") => str_at(b, "/text/text") <= 150,
                        _ => {
                            str_at(b, "/text/text") <= 3000
                                && fields.len() <= 10
                                && fields.iter().all(|f| str_at(f, "/text") <= 2000)
                                && elements.len() <= 10
                                && elements.iter().all(|e| str_at(e, "/text") <= 3000)
                        }
                    }
                })
        }
        ChatKind::Mattermost => {
            let att: usize = p["attachments"].as_array().map_or(0, |a| {
                a.iter()
                    .map(|x| serde_json::to_string(x).map_or(usize::MAX, |s| units(&s)))
                    .sum()
            });
            str_at(p, "/text") <= 16_000 && att <= 16_000 && bytes <= 64_000
        }
        ChatKind::Discord => {
            let embeds = p["embeds"].as_array().map_or(&[][..], Vec::as_slice);
            let mut total = 0;
            let ok = embeds.iter().all(|e| {
                let fields = e["fields"].as_array().map_or(&[][..], Vec::as_slice);
                let (t, d, f) = (
                    str_at(e, "/title"),
                    str_at(e, "/description"),
                    str_at(e, "/footer/text"),
                );
                total += t + d + f;
                let fields_ok = fields.len() <= 25
                    && fields.iter().all(|x| {
                        let (n, v) = (str_at(x, "/name"), str_at(x, "/value"));
                        total += n + v;
                        n <= 256 && v <= 1024 && n > 0 && v > 0
                    });
                t <= 256 && d <= 4096 && f <= 2048 && fields_ok
            });
            ok && embeds.len() <= 10 && total <= 6000 && str_at(p, "/content") <= 2000
        }
        ChatKind::Teams => bytes <= 27_000,
        ChatKind::GoogleChat => bytes <= 30_000,
    }
}

/// The "and N more" line, if any.
fn more(alerts: &[Alert], shown: usize) -> Option<String> {
    let rest = alerts.get(shown..).unwrap_or_default();
    (!rest.is_empty()).then(|| format!("…and {} more: {}", rest.len(), tally(rest)))
}

fn slack(alerts: &[Alert], shown: usize, detailed: bool, max: usize) -> Value {
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

fn mattermost(alerts: &[Alert], shown: usize, detailed: bool, max: usize) -> Value {
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

fn discord(alerts: &[Alert], shown: usize, detailed: bool, max: usize) -> Value {
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

fn teams(alerts: &[Alert], shown: usize, detailed: bool, max: usize) -> Value {
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

fn google_chat(alerts: &[Alert], shown: usize, detailed: bool, max: usize) -> Value {
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

// ---------------------------------------------------------------------------------------------
// The sink

/// Settings of a chat sink (`type = "slack" | "teams" | "mattermost" | "discord" | "google_chat"`).
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// The service.
    pub kind: ChatKind,
    /// The webhook URL (it embeds a token, hence secret).
    pub url: SecretString,
    /// The rules that raise alerts on this sink, resolved (built-in defaults included).
    pub rules: Vec<RuleConfig>,
    /// Messages per second (token bucket); 1 by default.
    pub rate: f64,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// TLS settings.
    pub tls: HttpTls,
    /// The agent's `state_dir`: the sink keeps its rule state in `alerts/<sink name>/` below it.
    pub state_dir: PathBuf,
}

impl ChatConfig {
    /// The URL with its tokens hidden, for logs.
    pub fn redacted_url(&self) -> String {
        redact_url(self.url.expose_secret())
    }
}

/// A token bucket of capacity one: at most one message per `interval`, and no message before
/// a `Retry-After` has passed.
#[derive(Debug)]
struct Pacer {
    interval: Duration,
    next: Option<tokio::time::Instant>,
}

impl Pacer {
    fn new(rate: f64) -> Pacer {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate.clamp(0.001, 100.0)
        } else {
            1.0
        };
        Pacer {
            interval: Duration::from_secs_f64(1.0 / rate),
            next: None,
        }
    }

    /// Waits for the token, then takes it.
    async fn acquire(&mut self) {
        if let Some(n) = self.next {
            tokio::time::sleep_until(n).await;
        }
        self.next = Some(tokio::time::Instant::now() + self.interval);
    }

    /// Nothing is sent for `d` (a `Retry-After`).
    fn hold(&mut self, d: Duration) {
        let until = tokio::time::Instant::now() + d;
        self.next = Some(self.next.map_or(until, |n| n.max(until)));
    }
}

/// A chat webhook that posts the alerts its rules raise.
pub struct ChatSink {
    name: String,
    kind: ChatKind,
    url: SecretString,
    shown: String,
    http: reqwest::Client,
    engine: RuleEngine,
    pacer: Pacer,
}

impl std::fmt::Debug for ChatSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatSink")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &self.shown)
            .field("rules", &self.engine.rule_names())
            .finish_non_exhaustive()
    }
}

impl ChatSink {
    /// Builds the client and loads the rule state (no request, no write).
    pub fn new(name: &str, cfg: ChatConfig) -> Result<ChatSink, String> {
        let target = url::Url::parse(cfg.url.expose_secret())
            .map_err(|_| format!("url {} is not a valid URL", cfg.redacted_url()))?;
        let http =
            crate::http::client(&cfg.tls, cfg.timeout, &target).map_err(|e| e.to_string())?;
        let shown = cfg.redacted_url();
        let dir = cfg.state_dir.join("alerts").join(name);
        Ok(ChatSink {
            name: name.to_owned(),
            kind: cfg.kind,
            url: cfg.url,
            shown,
            http,
            engine: RuleEngine::with_state(cfg.rules, dir),
            pacer: Pacer::new(cfg.rate),
        })
    }

    /// The service.
    pub fn kind(&self) -> ChatKind {
        self.kind
    }

    /// Judges events; the alerts they raise, in firing order.
    pub fn observe(&mut self, events: &[&Event]) -> Vec<Alert> {
        self.engine.observe_batch(events)
    }

    /// Judges events and renders what they raise: no message, or one (a single alert or a
    /// digest).
    pub fn observe_and_render(&mut self, events: &[&Event]) -> Vec<Value> {
        let alerts = self.observe(events);
        if alerts.is_empty() {
            Vec::new()
        } else {
            vec![payload(self.kind, &alerts)]
        }
    }

    /// Writes the rule state (after the alerts were posted); `force` also writes window state
    /// that changed less than 30 s ago.
    pub fn persist(&mut self, force: bool) -> std::io::Result<()> {
        self.engine.save(force)
    }

    /// Saves everything; call when the sink stops.
    pub fn close(&mut self) {
        if let Err(e) = self.engine.save(true) {
            warn!(sink = %self.name, error = %e, "cannot save alert rule state; alerts may repeat after the restart");
        }
    }

    /// Posts one message, after the rate limit allows it.
    pub async fn post(&mut self, payload: &Value) -> Result<(), SinkError> {
        self.pacer.acquire().await;
        let body = serde_json::to_vec(payload).unwrap_or_default();
        let content_type = match self.kind {
            ChatKind::GoogleChat => "application/json; charset=UTF-8",
            _ => "application/json",
        };
        let what = format!("{} webhook {}", self.kind, self.shown);
        let resp = self
            .http
            .post(self.url.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                SinkError::retryable(format!("{what}: {}", crate::tls::describe_reqwest(&e)))
            })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = read_capped(resp, 16 * 1024).await;
        if status.is_success() {
            return Ok(());
        }
        let wait = retry_after_of(&headers, &text);
        if let Some(w) = wait {
            self.pacer.hold(w);
        }
        let retry_after = wait.map(|w| w.as_secs_f64().ceil() as u64);
        let code = status.as_u16();
        let said = quote_body(&text, self.url.expose_secret());
        let what = format!("{what} answered HTTP {code}{said}");
        Err(match code {
            429 => SinkError {
                retry_after,
                ..SinkError::retryable(format!("{what} (rate limited)"))
            },
            408 | 500 | 502..=599 => SinkError {
                retry_after,
                ..SinkError::retryable(what)
            },
            401 | 403 | 404 | 410 => SinkError::operator(format!(
                "{what}: the service refused the webhook (revoked or wrong URL, deleted or archived channel, disabled flow); check url (alerts wait meanwhile)"
            )),
            // Not the alert's fault: it waits for the operator (retried, shown in /health).
            300..=399 => SinkError::operator(format!(
                "{what}: redirects are not followed; set url to the webhook's final address (alerts wait meanwhile)"
            )),
            _ => SinkError::fatal(format!("{what}: the service rejected the message")),
        })
    }

    /// Checks the webhook is reachable without posting anything (a chat sink posts only
    /// alerts). Discord answers a GET with the webhook, so a wrong token shows here.
    pub async fn healthcheck(&mut self) -> Result<String, SinkError> {
        let method = match self.kind {
            ChatKind::Discord => reqwest::Method::GET,
            _ => reqwest::Method::HEAD,
        };
        let what = format!("{} webhook {}", self.kind, self.shown);
        match self
            .http
            .request(method, self.url.expose_secret())
            .send()
            .await
        {
            Ok(r) => {
                let code = r.status().as_u16();
                if self.kind == ChatKind::Discord && matches!(code, 401 | 403 | 404) {
                    return Err(SinkError::operator(format!(
                        "{what} answered HTTP {code}: no such webhook or a wrong token; check url"
                    )));
                }
                Ok(format!("{what} reachable (HTTP {code}); nothing posted"))
            }
            Err(e) => Err(SinkError::retryable(format!(
                "{what}: {}",
                crate::tls::describe_reqwest(&e)
            ))),
        }
    }
}

/// Reads at most `cap` bytes of a response body as text.
async fn read_capped(mut resp: reqwest::Response, cap: usize) -> String {
    let mut buf = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = cap.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if buf.len() >= cap {
            break;
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The wait a 429/5xx asks for (`Retry-After`, Discord's `X-RateLimit-Reset-After` and
/// `retry_after` body field; the longest wins), capped at the sink backoff. Absurd values (NaN,
/// negative, infinite) are ignored and huge ones clamped by [`crate::retry::chat_retry_after`]:
/// no answer can panic the task.
fn retry_after_of(headers: &reqwest::header::HeaderMap, body: &str) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    crate::retry::chat_retry_after(
        header("retry-after"),
        header("x-ratelimit-reset-after"),
        body,
        time::OffsetDateTime::now_utc(),
    )
    .map(|d| d.min(MAX_SINK_BACKOFF))
}

/// ` (body)` for an error message: the first line of a short body, only when it holds no
/// piece of the secret URL.
fn quote_body(body: &str, url: &str) -> String {
    let line: String = body
        .trim()
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(160)
        .collect();
    if line.is_empty() {
        return String::new();
    }
    // Every configured secret, not only this webhook's: a service may echo anything it got.
    let line = crate::http::scrub(&line);
    let secret_bits = url
        .split(['/', '?', '&', '=', ':'])
        .filter(|s| s.len() >= 6);
    let lower = line.to_lowercase();
    if secret_bits
        .into_iter()
        .any(|bit| lower.contains(&bit.to_lowercase()))
    {
        return String::new();
    }
    format!(" ({line})")
}

/// The delivery of one batch through a chat sink (called by the generic sink loop instead of
/// encoding events): judge, render, post with retries, then save the rule state. Returns when
/// every message was posted or rejected for good (rejected alerts go to the dead-letter file
/// as ECS documents with the reason). Retryable failures are retried forever with capped
/// backoff, honouring `Retry-After`, so the events wait instead of losing an alert.
pub async fn deliver(
    sink: &mut ChatSink,
    name: &str,
    events: &[&Event],
    stats: &SinkStats,
    dead_letter: &DeadLetter,
) {
    let alerts = sink.observe(events);
    if !alerts.is_empty() {
        let message = payload(sink.kind, &alerts);
        let mut backoff = Backoff::new(Duration::from_millis(500), MAX_SINK_BACKOFF);
        loop {
            match sink.post(&message).await {
                Ok(()) => {
                    info!(sink = %name, alerts = alerts.len(), rules = %tally(&alerts), "alert message posted");
                    stats.set_error(None);
                    break;
                }
                Err(e) if e.retryable => {
                    stats.retries.fetch_add(1, Ordering::Relaxed);
                    stats.set_error(Some(e.message.clone()));
                    let delay = match e.retry_after {
                        Some(s) => retry_after(Some(s), MAX_SINK_BACKOFF),
                        None => backoff.next_delay(),
                    };
                    if e.operator {
                        error!(sink = %name, retry_in = %crate::retry::Secs(delay), "{e}");
                    } else {
                        warn!(sink = %name, retry_in = %crate::retry::Secs(delay), "{e}");
                    }
                    tokio::time::sleep(delay).await;
                }
                Err(e) => {
                    error!(sink = %name, alerts = alerts.len(), file = %dead_letter.path().display(), "{e}; alerts written to the dead-letter file");
                    stats.set_error(Some(e.message.clone()));
                    stats
                        .dead_lettered
                        .fetch_add(alerts.len() as u64, Ordering::Relaxed);
                    let records: Vec<(Value, String)> = alerts
                        .iter()
                        .map(|a| (to_ecs(a), e.message.clone()))
                        .collect();
                    let mut wait = Backoff::new(Duration::from_secs(1), MAX_SINK_BACKOFF);
                    while let Err(io) = dead_letter.append(&records) {
                        error!(sink = %name, error = %io, "cannot write the dead-letter file; retrying");
                        tokio::time::sleep(wait.next_delay()).await;
                    }
                    break;
                }
            }
        }
    }
    if let Err(e) = sink.persist(false) {
        warn!(sink = %name, error = %e, "cannot save alert rule state; alerts may repeat after a restart");
    }
    stats
        .delivered
        .fetch_add(events.len() as u64, Ordering::Relaxed);
    stats
        .last_success
        .store(crate::pipeline::now_millis() / 1000, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{RuleKind, select};
    use crate::event::{GUEST_USER_ID, PortalInfo};
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use time::format_description::well_known::Rfc3339;
    use time::macros::{datetime, offset};

    /// Everything an attacker might type to ping, link or break a message, and then 64 KiB.
    fn hostile() -> String {
        format!(
            "<!channel> @everyone @here [x](http://evil) <users/all> <@123> `tick` *b* ~s~ \r\nINJECT\u{202E}www.evil.example{}",
            "A".repeat(64 * 1024)
        )
    }

    fn portal() -> Arc<PortalInfo> {
        Arc::new(PortalInfo::new("main", "https://docspace.example.com"))
    }

    fn ev(id: i64, secs: i64, action: i64, fields: Value) -> Event {
        let t = datetime!(2025-01-15 13:00:00 UTC) + time::Duration::seconds(secs);
        let mut v = json!({"id": id, "date": t.to_offset(offset!(+1)).format(&Rfc3339).expect("date"), "actionId": action});
        for (k, x) in fields.as_object().expect("object") {
            v[k] = x.clone();
        }
        Event::from_json(portal(), None, v).expect("row")
    }

    fn fail(id: i64, secs: i64, login: &str) -> Event {
        ev(
            id,
            secs,
            1013,
            json!({"login": login, "user": login, "userId": GUEST_USER_ID,
            "ip": "192.0.2.66", "country": hostile(), "action": hostile()}),
        )
    }

    fn all_rules() -> Vec<RuleConfig> {
        let names: Vec<String> = RuleKind::BUILTIN
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect();
        select(&names, &[]).expect("rules")
    }

    /// One alert of every built-in rule, all about the hostile login.
    fn one_of_each() -> Vec<Alert> {
        let h = hostile();
        let mut evs: Vec<Event> = (0..10).map(|i| fail(i, i, &h)).collect();
        evs.push(ev(
            20,
            20,
            1023,
            json!({"login": h, "userId": GUEST_USER_ID, "ip": "192.0.2.66"}),
        ));
        let success = |id, secs, country: &str| {
            ev(
                id,
                secs,
                1029,
                json!({"user": h, "userId": "9b1e4f7a-2c3d-4e5f-8a6b-7c8d9e0f1a2b",
                "ip": "192.0.2.66", "country": country, "city": h}),
            )
        };
        evs.push(success(30, 30, "Germany"));
        evs.push(ev(
            35,
            35,
            1029,
            json!({"user": h, "userId": "9b1e4f7a-2c3d-4e5f-8a6b-7c8d9e0f1a2b",
            "ip": "198.51.100.4", "country": h}),
        ));
        evs.push(ev(
            40,
            40,
            6035,
            json!({"user": h, "userId": "9b1e4f7a-2c3d-4e5f-8a6b-7c8d9e0f1a2b",
            "ip": "203.0.113.45", "action": h}),
        ));
        let mut e = RuleEngine::new(all_rules());
        let alerts = e.observe_batch(&evs.iter().collect::<Vec<_>>());
        let kinds: Vec<RuleKind> = alerts.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            vec![
                RuleKind::BruteForce,
                RuleKind::Lockout,
                RuleKind::SuccessAfterFailures,
                RuleKind::NewCountry,
                RuleKind::NewIp,
                RuleKind::SensitiveAudit
            ]
        );
        alerts
    }

    /// 500 brute-force alerts about 500 hostile logins, in one batch.
    fn storm() -> Vec<Alert> {
        let evs: Vec<Event> = (0..5000)
            .map(|i| fail(i, i / 10, &format!("{}{}", i / 10, hostile())))
            .collect();
        let alerts = RuleEngine::new(all_rules()).observe_batch(&evs.iter().collect::<Vec<_>>());
        assert_eq!(alerts.len(), 500);
        alerts
    }

    fn len(v: &Value, ptr: &str) -> usize {
        v.pointer(ptr)
            .and_then(Value::as_str)
            .map_or(0, |s| s.encode_utf16().count())
    }

    fn arr<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
        v.pointer(ptr)
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
    }

    /// The documented schema and limits of each service (docs/formats.md §4.3), checked
    /// independently of the code that sizes the messages.
    fn check_documented(kind: ChatKind, p: &Value) {
        let bytes = serde_json::to_vec(p).expect("json").len();
        match kind {
            ChatKind::Slack => {
                assert!(len(p, "/text") > 0, "Slack needs fallback text");
                let blocks = arr(p, "/blocks");
                assert!(
                    !blocks.is_empty() && blocks.len() <= 50,
                    "{} blocks",
                    blocks.len()
                );
                let mut ids = std::collections::BTreeSet::new();
                for b in blocks {
                    if let Some(id) = b["block_id"].as_str() {
                        assert!(
                            id.len() <= 255 && ids.insert(id.to_owned()),
                            "block_id {id}"
                        );
                    }
                    match b["type"].as_str().expect("block type") {
                        "header" => {
                            assert_eq!(b["text"]["type"], "plain_text");
                            assert!(len(b, "/text/text") <= 150);
                        }
                        "section" => {
                            assert_eq!(b["text"]["type"], "mrkdwn");
                            assert!(len(b, "/text/text") <= 3000);
                            let fields = arr(b, "/fields");
                            assert!(fields.len() <= 10);
                            assert!(fields.iter().all(|f| len(f, "/text") <= 2000));
                        }
                        "context" => {
                            let el = arr(b, "/elements");
                            assert!(!el.is_empty() && el.len() <= 10);
                        }
                        other => panic!("unexpected block {other}"),
                    }
                }
            }
            ChatKind::Teams => {
                assert_eq!(p["type"], "message");
                let att = &p["attachments"][0];
                assert_eq!(
                    att["contentType"],
                    "application/vnd.microsoft.card.adaptive"
                );
                assert_eq!(att["content"]["type"], "AdaptiveCard");
                assert_eq!(att["content"]["version"], "1.4");
                assert_eq!(
                    att["content"]["$schema"],
                    "http://adaptivecards.io/schemas/adaptive-card.json"
                );
                assert!(p.get("@type").is_none(), "never the retired MessageCard");
                let body = arr(p, "/attachments/0/content/body");
                assert!(!body.is_empty());
                assert!(body.iter().all(|b| b["type"].is_string()));
                assert!(bytes <= 28 * 1024, "{bytes} bytes");
            }
            ChatKind::Mattermost => {
                assert!(len(p, "/text") > 0 && len(p, "/text") <= 16_383);
                for a in arr(p, "/attachments") {
                    assert!(len(a, "/fallback") > 0);
                }
            }
            ChatKind::Discord => {
                assert_eq!(p["allowed_mentions"], json!({"parse": []}));
                assert!(len(p, "/content") <= 2000);
                let embeds = arr(p, "/embeds");
                assert!(embeds.len() <= 10);
                let mut total = 0;
                for e in embeds {
                    assert!(len(e, "/title") <= 256 && len(e, "/description") <= 4096);
                    assert!(len(e, "/footer/text") <= 2048);
                    total += len(e, "/title") + len(e, "/description") + len(e, "/footer/text");
                    let fields = arr(e, "/fields");
                    assert!(fields.len() <= 25);
                    for f in fields {
                        assert!(len(f, "/name") <= 256 && len(f, "/value") <= 1024);
                        total += len(f, "/name") + len(f, "/value");
                    }
                }
                assert!(total <= 6000, "{total} characters in embeds");
            }
            ChatKind::GoogleChat => {
                assert!(bytes <= 32_000, "{bytes} bytes");
                let card = &p["cardsV2"][0];
                assert!(card["cardId"].as_str().is_some_and(|s| !s.is_empty()));
                let sections = arr(card, "/card/sections");
                assert!(!sections.is_empty());
                for s in sections {
                    for w in arr(s, "/widgets") {
                        let keys: Vec<&String> = w.as_object().expect("widget").keys().collect();
                        assert_eq!(keys.len(), 1, "one widget kind per widget: {keys:?}");
                        assert!(
                            ["textParagraph", "decoratedText", "buttonList"]
                                .contains(&keys[0].as_str())
                        );
                    }
                }
            }
        }
    }

    /// Nothing an attacker typed can ping, link, or break a line, in any service.
    fn check_neutralised(kind: ChatKind, p: &Value) {
        let s = serde_json::to_string(p).expect("json");
        for bad in [
            "<!channel>",
            "<!here>",
            "http://evil",
            "<users/all>",
            "<@123>",
            "\\r",
            "\u{202E}",
            "www.evil",
        ] {
            assert!(
                !s.contains(bad),
                "{kind}: {bad:?} survived in {}",
                &s[..s.len().min(3000)]
            );
        }
        if let Some(at) = s.find("INJECT") {
            assert!(
                s[..at].ends_with("\u{FFFD}\u{FFFD}"),
                "{kind}: CR LF not neutralised"
            );
        }
        match kind {
            ChatKind::Slack => {
                assert!(
                    s.contains("&lt;!channel&gt; @everyone @here [x](http:\u{200B}//evil)"),
                    "{kind}"
                );
                assert!(
                    !s.contains("`tick`"),
                    "backticks inside a value are replaced"
                );
            }
            ChatKind::Discord | ChatKind::Mattermost => {
                for m in ["@everyone", "@here", "@channel", "@all"] {
                    assert!(!s.contains(m), "{kind}: {m} could ping");
                }
                assert!(
                    s.contains("‹!channel› @\u{200B}everyone @\u{200B}here"),
                    "{kind}"
                );
            }
            ChatKind::Teams => {
                assert!(
                    !s.contains("[x]") && !s.contains("@everyone"),
                    "{kind}: markdown link or mention survived"
                );
                assert!(
                    s.contains(
                        "‹!channel› @\u{200B}everyone @\u{200B}here ［x］(http:\u{200B}//evil)"
                    ),
                    "{kind}"
                );
            }
            ChatKind::GoogleChat => {
                assert!(
                    s.contains("&lt;!channel&gt; @everyone"),
                    "card text is HTML-escaped"
                );
                assert!(
                    p["text"]
                        .as_str()
                        .is_none_or(|t| !t.contains('<') || t.contains("‹"))
                );
            }
        }
    }

    #[test]
    fn every_service_gets_its_native_shape_within_limits_and_neutralised() {
        let alerts = one_of_each();
        for kind in ChatKind::ALL {
            for a in &alerts {
                let p = build(kind, std::slice::from_ref(a), 1, true, 120);
                assert!(fits(kind, &p), "{kind}: one hostile alert fits in detail");
            }
        }
        for kind in ChatKind::ALL {
            for a in &alerts {
                let p = payload(kind, std::slice::from_ref(a));
                check_documented(kind, &p);
                check_neutralised(kind, &p);
            }
            let p = payload(kind, &alerts);
            check_documented(kind, &p);
            check_neutralised(kind, &p);
        }
        // The single Slack message says what, who, from where, when (UTC and portal time),
        // how many and links to the portal.
        let p = payload(ChatKind::Slack, &alerts[..1]);
        let s = serde_json::to_string(&p).expect("json");
        for want in [
            "Brute-force login attempts on main",
            "11 failed logins for",
            "192.0.2.66",
            "UTC (portal time 14:00:00 – 14:00:20 +01:00)",
            "*Events*\\n11",
            "<https://docspace.example.com/|Open main>",
        ] {
            assert!(s.contains(want), "missing {want:?} in {s}");
        }
        assert_eq!(payload(ChatKind::Slack, &[]), Value::Null);
    }

    #[test]
    fn a_storm_becomes_one_digest_within_limits() {
        let alerts = storm();
        for kind in ChatKind::ALL {
            let p = payload(kind, &alerts);
            check_documented(kind, &p);
            check_neutralised(kind, &p);
            let s = serde_json::to_string(&p).expect("json");
            assert!(
                s.contains("500 alerts on main"),
                "{kind}: no digest heading"
            );
            assert!(s.contains("more: "), "{kind}: the rest is counted");
            assert!(
                s.contains(" brute_force"),
                "{kind}: the rest is counted by rule"
            );
        }
        // Slack shows the block ids of the alerts it lists, one per alert.
        let p = payload(ChatKind::Slack, &alerts);
        let shown = arr(&p, "/blocks")
            .iter()
            .filter(|b| {
                b["block_id"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("alert:brute_force:"))
            })
            .count();
        assert!(shown >= 5, "{shown}");
        let p = payload(ChatKind::Discord, &alerts);
        assert_eq!(arr(&p, "/embeds").len(), 10);
    }

    #[test]
    fn neutralising_keeps_ordinary_text_readable() {
        assert_eq!(
            Style::Slack.value("bob@example.com", 120),
            "`bob@example.com`"
        );
        assert_eq!(Style::Slack.value("a&b<c>", 120), "`a&amp;b&lt;c&gt;`");
        assert_eq!(Style::Teams.value("Zürich", 120), "Zürich");
        assert_eq!(
            Style::ChatHtml.value("<b>x</b>", 120),
            "&lt;b&gt;x&lt;/b&gt;"
        );
        assert_eq!(Style::Discord.value("", 120), "–");
        assert_eq!(Style::Plain.value(&"x".repeat(500), 10).chars().count(), 10);
        assert_eq!(
            clean("see https://a.b and WWW.c.d"),
            "see https:\u{200B}//a.b and WWW\u{200B}.c.d"
        );
        assert_eq!(
            safe_url("https://p.example.com/a|b(c)"),
            Some("https://p.example.com/a%7Cb%28c%29".to_owned())
        );
        assert_eq!(safe_url("javascript:alert(1)"), None);
    }

    // -----------------------------------------------------------------------------------------
    // Against mock services

    /// A scripted answer: status, headers, body.
    type Answer = (u16, Vec<(&'static str, String)>, String);

    #[derive(Clone, Default)]
    struct Mock {
        url: String,
        got: Arc<Mutex<Vec<(std::time::Instant, String, Value)>>>,
        script: Arc<Mutex<VecDeque<Answer>>>,
        default: (u16, &'static str),
    }

    impl Mock {
        async fn start(default: (u16, &'static str)) -> Mock {
            use axum::http::{HeaderMap, StatusCode};
            use axum::response::IntoResponse;
            async fn handle(
                axum::extract::State(m): axum::extract::State<Mock>,
                headers: HeaderMap,
                body: axum::body::Bytes,
            ) -> axum::response::Response {
                let ct = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let next = m.script.lock().expect("lock").pop_front();
                let (status, hdrs, text) =
                    next.unwrap_or((m.default.0, vec![], m.default.1.to_owned()));
                if (200..300).contains(&status) && !body.is_empty() {
                    let v: Value = serde_json::from_slice(&body).expect("the message is JSON");
                    m.got
                        .lock()
                        .expect("lock")
                        .push((std::time::Instant::now(), ct, v));
                }
                let mut resp =
                    (StatusCode::from_u16(status).expect("status"), text).into_response();
                for (k, v) in hdrs {
                    resp.headers_mut().insert(k, v.parse().expect("header"));
                }
                resp
            }
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let m = Mock {
                url: format!("http://{addr}/services/T000/B000/s3cr3tt0ken99"),
                default,
                ..Mock::default()
            };
            let app = axum::Router::new()
                .route(
                    "/services/T000/B000/s3cr3tt0ken99",
                    axum::routing::post(handle).get(handle).head(handle),
                )
                .with_state(m.clone());
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            m
        }

        fn then(&self, status: u16, headers: Vec<(&'static str, String)>, body: &str) {
            self.script
                .lock()
                .expect("lock")
                .push_back((status, headers, body.to_owned()));
        }

        fn received(&self) -> Vec<(std::time::Instant, String, Value)> {
            self.got.lock().expect("lock").clone()
        }
    }

    fn sink(kind: ChatKind, url: &str, rate: f64, dir: &std::path::Path) -> ChatSink {
        ChatSink::new(
            "chat",
            ChatConfig {
                kind,
                url: SecretString::from(url.to_owned()),
                rules: all_rules(),
                rate,
                timeout: Duration::from_secs(5),
                tls: HttpTls::default(),
                state_dir: dir.to_path_buf(),
            },
        )
        .expect("sink")
    }

    #[tokio::test]
    async fn each_service_answers_as_documented_and_success_is_recognised() {
        let dir = tempfile::tempdir().expect("tmp");
        let alerts = one_of_each();
        for (kind, answer) in [
            (ChatKind::Slack, (200, "ok")),
            (ChatKind::Mattermost, (200, "ok")),
            (ChatKind::Teams, (202, "")),
            (ChatKind::Discord, (204, "")),
            (
                ChatKind::GoogleChat,
                (200, "{\"name\":\"spaces/AAA/messages/BBB\"}"),
            ),
        ] {
            let m = Mock::start(answer).await;
            let mut s = sink(kind, &m.url, 100.0, dir.path());
            s.post(&payload(kind, &alerts)).await.expect("posted");
            let got = m.received();
            assert_eq!(got.len(), 1);
            let want_ct = if kind == ChatKind::GoogleChat {
                "application/json; charset=UTF-8"
            } else {
                "application/json"
            };
            assert_eq!(got[0].1, want_ct);
            check_documented(kind, &got[0].2);
            // The health check posts nothing.
            s.healthcheck().await.expect("reachable");
            assert_eq!(
                m.received().len(),
                1,
                "{kind}: the health check posted a message"
            );
        }
    }

    /// See: issue 15. A 429 asking for an absurd wait (`Retry-After: 1e20`, Discord's
    /// `retry_after: 1e300`, NaN, negative) panicked the sink task in
    /// `Duration::from_secs_f64`; now the wait is clamped to the sink backoff or ignored.
    #[tokio::test]
    async fn absurd_retry_after_values_are_clamped_not_a_panic() {
        let dir = tempfile::tempdir().expect("tmp");
        let msg = json!({"text": "x", "blocks": []});
        let m = Mock::start((204, "")).await;
        type Headers = Vec<(&'static str, String)>;
        let cases: [(Headers, &str, Option<u64>); 6] = [
            (vec![("retry-after", "1e20".into())], "", Some(60)),
            (vec![], r#"{"retry_after":1e300}"#, Some(60)),
            (
                vec![("x-ratelimit-reset-after", "1e300".into())],
                "",
                Some(60),
            ),
            (
                vec![("retry-after", "NaN".into())],
                r#"{"retry_after":-1}"#,
                None,
            ),
            (vec![("retry-after", "inf".into())], "", None),
            (vec![("retry-after", "-1".into())], "", None),
        ];
        for (headers, body, want) in cases {
            let shown = format!("{headers:?} {body}");
            m.then(429, headers, body);
            let mut s = sink(ChatKind::Discord, &m.url, 100.0, dir.path());
            let e = s.post(&msg).await.expect_err("429");
            assert!(e.retryable, "{shown}: {e:?}");
            assert_eq!(e.retry_after, want, "{shown}");
        }
    }

    #[tokio::test]
    async fn rate_limits_and_retry_after_are_honoured_and_errors_hide_the_url() {
        let dir = tempfile::tempdir().expect("tmp");
        let msg = json!({"text": "x", "blocks": []});
        // Slack: 429 + Retry-After.
        let m = Mock::start((200, "ok")).await;
        m.then(429, vec![("retry-after", "2".into())], "rate_limited");
        let mut s = sink(ChatKind::Slack, &m.url, 100.0, dir.path());
        let e = s.post(&msg).await.expect_err("429");
        assert!(e.retryable && !e.operator, "{e:?}");
        assert_eq!(e.retry_after, Some(2));
        assert!(
            e.message.contains("HTTP 429 (rate_limited)"),
            "{}",
            e.message
        );
        // The bucket is held for the Retry-After: the next post waits.
        let start = std::time::Instant::now();
        s.post(&msg).await.expect("ok");
        assert!(
            start.elapsed() >= Duration::from_millis(1900),
            "{:?}",
            start.elapsed()
        );
        // Discord: the wait is in the JSON body, in float seconds.
        let m = Mock::start((204, "")).await;
        m.then(
            429,
            vec![],
            r#"{"message":"You are being rate limited.","retry_after":0.53,"global":false}"#,
        );
        let mut s = sink(ChatKind::Discord, &m.url, 100.0, dir.path());
        let e = s.post(&msg).await.expect_err("429");
        assert_eq!(e.retry_after, Some(1));
        let start = std::time::Instant::now();
        s.post(&msg).await.expect("ok");
        assert!(start.elapsed() >= Duration::from_millis(500));
        // The client-side limit: 5 messages/s → 3 posts take at least 400 ms.
        let m = Mock::start((200, "ok")).await;
        let mut s = sink(ChatKind::Slack, &m.url, 5.0, dir.path());
        for _ in 0..3 {
            s.post(&msg).await.expect("ok");
        }
        let got = m.received();
        assert!(
            got[2].0 - got[0].0 >= Duration::from_millis(390),
            "{:?}",
            got[2].0 - got[0].0
        );
        // Status mapping; no message names the secret path.
        m.then(404, vec![], "no_service");
        m.then(410, vec![], "channel_is_archived");
        m.then(400, vec![], "invalid_payload");
        m.then(503, vec![], "");
        m.then(
            403,
            vec![],
            "invalid_token for /services/T000/B000/s3cr3tt0ken99",
        );
        let mut s = sink(ChatKind::Slack, &m.url, 100.0, dir.path());
        let mut results = Vec::new();
        for _ in 0..5 {
            results.push(s.post(&msg).await.expect_err("error"));
        }
        assert!(results[0].operator && results[0].message.contains("(no_service)"));
        assert!(results[1].operator);
        assert!(!results[2].retryable && results[2].message.contains("(invalid_payload)"));
        assert!(results[3].retryable && !results[3].operator);
        assert!(results[4].operator);
        for e in &results {
            assert!(
                !e.message.contains("s3cr3t") && !e.message.contains("T000"),
                "{}",
                e.message
            );
            assert!(e.message.contains("http://127.0.0.1:"), "{}", e.message);
        }
    }

    #[tokio::test]
    async fn deliver_posts_only_alerts_retries_429_and_dead_letters_rejections() {
        let dir = tempfile::tempdir().expect("tmp");
        let m = Mock::start((200, "ok")).await;
        let mut s = sink(ChatKind::Slack, &m.url, 100.0, dir.path());
        let stats = SinkStats::default();
        let dl = DeadLetter::new(dir.path(), "chat");
        // Normal events: nothing is posted.
        let normal: Vec<Event> = (0..20)
            .map(|i| ev(i, i, 1029, json!({"user": "Alice Johnson", "userId": "9b1e4f7a-2c3d-4e5f-8a6b-7c8d9e0f1a2b", "ip": "203.0.113.45", "country": "Germany"})))
            .collect();
        deliver(
            &mut s,
            "chat",
            &normal.iter().collect::<Vec<_>>(),
            &stats,
            &dl,
        )
        .await;
        assert!(m.received().is_empty());
        assert_eq!(stats.delivered.load(Ordering::Relaxed), 20);
        // An attack: one message, after a 429 with Retry-After.
        m.then(429, vec![("retry-after", "1".into())], "rate_limited");
        let attack: Vec<Event> = (0..12)
            .map(|i| fail(100 + i, 100 + i, "bob@example.com"))
            .collect();
        let start = std::time::Instant::now();
        deliver(
            &mut s,
            "chat",
            &attack.iter().collect::<Vec<_>>(),
            &stats,
            &dl,
        )
        .await;
        assert!(start.elapsed() >= Duration::from_secs(1));
        let got = m.received();
        assert_eq!(got.len(), 1);
        assert_eq!(stats.retries.load(Ordering::Relaxed), 1);
        assert!(
            serde_json::to_string(&got[0].2)
                .expect("json")
                .contains("12 failed logins for")
        );
        // A rejection for good goes to the dead-letter file as ECS alerts, with the reason.
        m.then(400, vec![], "invalid_payload");
        let more: Vec<Event> = (0..10)
            .map(|i| fail(200 + i, 1000 + i, "eve@example.com"))
            .collect();
        deliver(
            &mut s,
            "chat",
            &more.iter().collect::<Vec<_>>(),
            &stats,
            &dl,
        )
        .await;
        let dead = std::fs::read_to_string(dl.path()).expect("dead letters");
        let line: Value = serde_json::from_str(dead.lines().next().expect("line")).expect("json");
        assert_eq!(line["event"]["event"]["kind"], "alert");
        assert!(
            line["reason"]
                .as_str()
                .expect("reason")
                .contains("invalid_payload")
        );
        // The state was saved after posting.
        assert!(
            dir.path().join("alerts/chat/seen.json").exists()
                || dir.path().join("alerts/chat/windows.json").exists()
        );
    }
}
