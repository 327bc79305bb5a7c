//! What every chat renderer shares: neutralising event values (hidden characters, links,
//! each service's markup), lengths as the services count them, the digest's heading and tally,
//! and the choice of the largest message within the service's limits.

use std::collections::BTreeMap;

use serde_json::Value;

use super::ChatKind;
use crate::alert::{Alert, Fact, Part};

// ---------------------------------------------------------------------------------------------
// Neutralising event values

/// Characters shown as U+FFFD: controls, line and paragraph separators, bidi controls and
/// invisible characters (they could reorder or hide text, or smuggle a mention).
pub(super) fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}'
            | '\u{061C}' | '\u{FEFF}' | '\u{00AD}' | '\u{180E}')
}

/// Cleans a value: hidden characters → U+FFFD, `://` and `www.` broken with a zero-width space
/// so no service turns them into a link.
pub(super) fn clean(s: &str) -> String {
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
pub(super) fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Length as the services count it (UTF-16 units: JavaScript string length; never less than
/// the number of characters).
pub(super) fn units(s: &str) -> usize {
    s.encode_utf16().count()
}

pub(super) fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub(super) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// How text is written for one place of one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Style {
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
    pub(super) fn text(self, s: &str) -> String {
        match self {
            Style::Slack => slack_escape(s),
            Style::ChatHtml => html_escape(s),
            _ => s.to_owned(),
        }
    }

    /// An event value (untrusted), cut to `max` characters and shown literally.
    pub(super) fn value(self, s: &str, max: usize) -> String {
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

    pub(super) fn bold(self, s: &str) -> String {
        match self {
            Style::Slack | Style::ChatText => format!("*{s}*"),
            Style::Mattermost | Style::Discord | Style::Teams => format!("**{s}**"),
            Style::ChatHtml => format!("<b>{s}</b>"),
            Style::Plain => s.to_owned(),
        }
    }

    /// A link to a portal (config-controlled URL).
    pub(super) fn link(self, url: &str, label: &str) -> String {
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
    pub(super) fn parts(self, parts: &[Part], max: usize) -> String {
        parts
            .iter()
            .map(|p| match p {
                Part::Text(t) => self.text(t),
                Part::Value(v) => self.value(v, max),
            })
            .collect()
    }

    /// A fact's value.
    pub(super) fn fact(self, f: &Fact, max: usize) -> String {
        if f.untrusted {
            self.value(&f.value, max)
        } else {
            self.text(&cut(&f.value, max * 2))
        }
    }
}

/// An http(s) URL safe inside every link syntax (`<>|()"` and spaces percent-encoded).
pub(super) fn safe_url(url: &str) -> Option<String> {
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

pub(super) fn marker(severity: u8) -> &'static str {
    match severity {
        9.. => "🔴",
        7..=8 => "🟠",
        5..=6 => "🟡",
        _ => "🔵",
    }
}

pub(super) fn color(severity: u8) -> u32 {
    match severity {
        9.. => 0x00B7_1C1C,
        7..=8 => 0x00E6_4A19,
        5..=6 => 0x00F9_A825,
        _ => 0x0019_76D2,
    }
}

/// "5 brute_force, 3 new_country" for alerts not shown.
pub(crate) fn tally(alerts: &[Alert]) -> String {
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
pub(super) fn portals(alerts: &[Alert]) -> Vec<(&str, &str)> {
    let mut v: Vec<(&str, &str)> = Vec::new();
    for a in alerts {
        if !v.iter().any(|(n, _)| *n == a.portal) {
            v.push((a.portal.as_str(), a.portal_url.as_str()));
        }
    }
    v
}

pub(super) fn heading(alerts: &[Alert]) -> String {
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

pub(super) fn build(
    kind: ChatKind,
    alerts: &[Alert],
    shown: usize,
    detailed: bool,
    max: usize,
) -> Value {
    match kind {
        ChatKind::Slack => super::slack::render(alerts, shown, detailed, max),
        ChatKind::Mattermost => super::mattermost::render(alerts, shown, detailed, max),
        ChatKind::Discord => super::discord::render(alerts, shown, detailed, max),
        ChatKind::Teams => super::teams::render(alerts, shown, detailed, max),
        ChatKind::GoogleChat => super::google_chat::render(alerts, shown, detailed, max),
    }
}

/// Whether a payload is within the service's limits.
pub(super) fn fits(kind: ChatKind, p: &Value) -> bool {
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
pub(super) fn more(alerts: &[Alert], shown: usize) -> Option<String> {
    let rest = alerts.get(shown..).unwrap_or_default();
    (!rest.is_empty()).then(|| format!("…and {} more: {}", rest.len(), tally(rest)))
}
