//! The validator of one `[sinks.NAME]` table: the keys every sink shares (type, format,
//! filter, rules), then the validator of its type, one file each.

use super::*;
use crate::sink::template::Template;

mod azure;
mod chat;
mod elastic;
mod splunk;
mod syslog;
mod webhook;

pub(super) fn filter(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    raw: Option<RawFilter>,
    portal_names: &[String],
) -> Filter {
    let Some(raw) = raw else {
        return Filter::default();
    };
    let streams = streams(errs, &format!("{key}.filter.streams"), raw.streams);
    let mut actions_out = Vec::new();
    for a in raw.actions.unwrap_or_default() {
        match &a {
            Value::Number(n) if n.as_i64().is_some() => actions_out.extend(n.as_i64()),
            Value::String(s) => match s.parse::<i64>() {
                Ok(n) => actions_out.push(n),
                Err(_) => match actions::by_name(s).or_else(|| {
                    actions::ACTIONS
                        .iter()
                        .find(|a| actions::kebab_case(a.name) == s.to_ascii_lowercase())
                }) {
                    Some(act) => actions_out.push(i64::from(act.code)),
                    None => errs.push(ConfigProblem::new(
                        format!("{key}.filter.actions"),
                        format!("{s:?} is not a DocSpace MessageAction name or code"),
                    )),
                },
            },
            other => errs.push(ConfigProblem::new(
                format!("{key}.filter.actions"),
                format!("{other} is not an action id or name"),
            )),
        }
    }
    let outcome_values: Vec<Value> = match raw.outcome {
        None => Vec::new(),
        Some(Value::Array(v)) => v,
        Some(v) => vec![v],
    };
    let mut outcomes = Vec::new();
    for v in outcome_values {
        match v.as_str().and_then(Outcome::parse) {
            Some(o) => outcomes.push(o),
            None => errs.push(ConfigProblem::new(
                format!("{key}.filter.outcome"),
                format!("{v} is not \"success\", \"failure\" or \"unknown\""),
            )),
        }
    }
    let mut portals = Vec::new();
    for p in raw.portals.unwrap_or_default() {
        if portal_names.contains(&p) {
            portals.push(p);
        } else {
            errs.push(ConfigProblem::new(
                format!("{key}.filter.portals"),
                format!(
                    "{p:?} is not a [portals.NAME] table; the portals are {}",
                    portal_names.join(", ")
                ),
            ));
        }
    }
    let labels = labels(errs, &format!("{key}.filter.labels"), raw.labels);
    Filter {
        streams,
        actions: actions_out,
        outcomes,
        portals,
        labels,
    }
}

/// A sink's `rules`: rule names (a list, or `a,b` from the environment) resolved against the
/// `[rules.NAME]` tables and the built-in rules.
pub(super) fn sink_rules(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    raw: &Value,
    defined: Option<&[crate::alert::RuleConfig]>,
) -> Vec<crate::alert::RuleConfig> {
    let names: Vec<String> = match raw {
        Value::Array(v) => v
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
            .collect(),
        Value::String(s) => s
            .split(',')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect(),
        other => {
            errs.push(ConfigProblem::new(
                format!("{key}.rules"),
                format!("{other} is not a list of rule names"),
            ));
            return Vec::new();
        }
    };
    // Invalid `[rules.NAME]` tables were reported already.
    let Some(defined) = defined else {
        return Vec::new();
    };
    crate::alert::select(&names, defined).unwrap_or_else(|problems| {
        errs.extend(
            problems
                .into_iter()
                .map(|p| ConfigProblem::new(format!("{key}.rules"), p)),
        );
        Vec::new()
    })
}

/// What a sink's validation needs beyond its own table.
pub(super) struct SinkContext<'a> {
    pub(super) sources: &'a Sources,
    /// The valid `[rules.NAME]` tables (None when some are invalid).
    pub(super) rules: Option<&'a [crate::alert::RuleConfig]>,
    pub(super) state_dir: &'a Path,
    /// Every `[portals.NAME]` table name, valid or not (what `filter.portals` may name).
    pub(super) portal_names: &'a [String],
    /// The valid portals (whose labels a `{label.KEY}` template needs).
    pub(super) portals: &'a [PortalConfig],
}

pub(super) fn sink(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    name: &str,
    mut rs: RawSink,
    present: &[String],
    ctx: &SinkContext<'_>,
) -> Option<SinkConfig> {
    let sources = ctx.sources;
    let before = errs.len();
    let Some(kind) = rs.kind.take() else {
        errs.push(ConfigProblem::new(
            format!("{key}.type"),
            format!("missing: one of {SINK_TYPES}"),
        ));
        return None;
    };
    let kind = kind.as_str();
    let own: &[&str] = match kind {
        "stdout" => &["rules"],
        "syslog" => SYSLOG_KEYS,
        "webhook" => WEBHOOK_KEYS,
        "splunk_hec" => SPLUNK_KEYS,
        "elasticsearch" => ELASTIC_KEYS,
        "azure_logs" => {
            if rs.format.is_some() {
                errs.push(ConfigProblem::new(
                    format!("{key}.format"),
                    "an azure_logs sink writes the columns of its DCR's stream (packaging/sentinel/); remove format",
                ));
            }
            AZURE_KEYS
        }
        other if ChatKind::parse(other).is_some() => {
            if rs.format.is_some() {
                errs.push(ConfigProblem::new(
                    format!("{key}.format"),
                    "chat sinks post alert messages in the service's own shape; remove format",
                ));
            }
            CHAT_KEYS
        }
        other => {
            errs.push(ConfigProblem::new(
                format!("{key}.type"),
                format!("unknown sink type {other:?}; use {SINK_TYPES}"),
            ));
            return None;
        }
    };
    for k in present {
        if !matches!(k.as_str(), "type" | "format" | "filter") && !own.contains(&k.as_str()) {
            errs.push(ConfigProblem::new(
                format!("{key}.{k}"),
                format!("is not a key of a {kind:?} sink"),
            ));
        }
    }
    let format = match rs.format.as_deref() {
        None => match kind {
            "syslog" => Format::Cef,
            _ => Format::Ecs,
        },
        Some(f) => Format::parse(f).unwrap_or_else(|| {
            errs.push(ConfigProblem::new(
                format!("{key}.format"),
                format!("unknown format {f:?}; use ecs, cef, leef, ocsf or json"),
            ));
            Format::Ecs
        }),
    };
    let filter = filter(errs, key, rs.filter.take(), ctx.portal_names);
    // A label filter that no portal passes is a typo more often than a plan: such a sink would
    // get nothing, silently. (Judged only when every portal is valid and so in `portals`.)
    if !filter.labels.is_empty()
        && ctx.portals.len() == ctx.portal_names.len()
        && !ctx
            .portals
            .iter()
            .any(|p| filter.takes_portal(&p.name, &p.labels))
    {
        errs.push(ConfigProblem::new(
            format!("{key}.filter.labels"),
            "matches no portal: none carries every label given with that value (and is in filter.portals, when set)",
        ));
    }
    let alerts = match (&rs.rules, kind) {
        (Some(v), "stdout" | "webhook") => {
            if format != Format::Ecs {
                errs.push(ConfigProblem::new(
                    format!("{key}.rules"),
                    "alerts reach stdout and webhook sinks as ECS documents: set format = \"ecs\"",
                ));
            }
            Some(crate::alert::SinkRules {
                rules: sink_rules(errs, key, v, ctx.rules),
                state: ctx.state_dir.join("alerts").join(name),
            })
        }
        _ => None,
    };
    let kind = match kind {
        "stdout" => SinkKind::Stdout,
        "syslog" => syslog::validate(errs, key, rs)?,
        "webhook" => webhook::validate(errs, key, rs, sources)?,
        "splunk_hec" => splunk::validate(errs, key, rs, format, &routes(&filter, ctx))?,
        "elasticsearch" => elastic::validate(errs, key, rs, format, &routes(&filter, ctx))?,
        "azure_logs" => azure::validate(errs, key, rs, &routes(&filter, ctx))?,
        other if ChatKind::parse(other).is_some() => chat::validate(errs, key, other, rs, ctx)?,
        _ => return None,
    };
    if errs.len() > before {
        return None;
    }
    Some(SinkConfig {
        name: name.to_owned(),
        format,
        filter,
        kind,
        alerts,
    })
}

/// Where a sink's events come from, for its routing templates: each portal the sink takes
/// (after `filter.portals` and `filter.labels`) with the streams it takes of it.
pub(super) struct Routes<'a> {
    pub(super) sources: &'a Sources,
    pub(super) portals: Vec<(crate::event::PortalInfo, Vec<Stream>)>,
}

pub(super) fn routes<'a>(filter: &Filter, ctx: &SinkContext<'a>) -> Routes<'a> {
    let portals = ctx
        .portals
        .iter()
        .filter(|p| filter.takes_portal(&p.name, &p.labels))
        .map(|p| {
            let info = crate::event::PortalInfo::new(&p.name, p.url.as_str())
                .with_labels(p.labels.clone());
            let streams = p
                .streams
                .iter()
                .copied()
                .filter(|s| filter.streams.is_empty() || filter.streams.contains(s))
                .collect();
            (info, streams)
        })
        .collect();
    Routes {
        sources: ctx.sources,
        portals,
    }
}

impl Routes<'_> {
    /// Parses the routing template at `key` (`{portal}`, `{stream}`, `{label.KEY}`) and
    /// requires every label it names of each portal the sink takes; `check` judges each text it
    /// renders to (for a portal × stream), naming the portal when it fails; its problem reads
    /// after the text (`"…" is not …`).
    pub(super) fn template(
        &self,
        errs: &mut Vec<ConfigProblem>,
        key: &str,
        text: &str,
        check: impl Fn(&str) -> Option<String>,
    ) -> Option<Template> {
        let t = match Template::parse(text) {
            Ok(t) => t,
            Err(problem) => {
                errs.push(ConfigProblem::new(key, problem));
                return None;
            }
        };
        if t.is_static() {
            let any = crate::event::PortalInfo::new("", "");
            let rendered = t.render(&any, Stream::Login);
            if let Some(problem) = check(&rendered) {
                errs.push(ConfigProblem::new(key, format!("{rendered:?} {problem}")));
            }
            return Some(t);
        }
        let before = errs.len();
        for (portal, streams) in &self.portals {
            let name = &portal.name;
            for label in t.labels() {
                if portal.label(label).is_none() {
                    errs.push(ConfigProblem::new(
                        key,
                        format!(
                            "names {{label.{label}}}, but portals.{name} has no label {label:?}: add it to portals.{name}.labels, or leave that portal out with filter.portals"
                        ),
                    ));
                }
            }
            if errs.len() > before {
                continue;
            }
            for stream in streams {
                let rendered = t.render(portal, *stream);
                if let Some(problem) = check(&rendered) {
                    errs.push(ConfigProblem::new(
                        key,
                        format!(
                            "renders to {rendered:?} for portals.{name} ({}): {problem}",
                            stream.as_str()
                        ),
                    ));
                    // One line per portal: the other stream's text fails for the same reason.
                    break;
                }
            }
        }
        Some(t)
    }
}

/// What Splunk HEC and Elasticsearch sinks share: a base URL without credentials, batches, a
/// timeout and an HTTP client.
struct Bulk {
    endpoint: Option<Url>,
    max_events: usize,
    batch_timeout: Duration,
    timeout: Duration,
    tls: HttpTls,
}

/// The shared keys of a Splunk HEC or Elasticsearch sink; `credentials` says where its
/// credentials go instead of the URL.
fn bulk(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    rs: &mut RawSink,
    format: Format,
    credentials: &str,
) -> Bulk {
    if matches!(format, Format::Cef | Format::Leef) {
        errs.push(ConfigProblem::new(
            format!("{key}.format"),
            "must be ecs, ocsf or json for this sink type",
        ));
    }
    let endpoint = match rs.endpoint.as_deref() {
        Some(u) => check_url(errs, &format!("{key}.endpoint"), u, false)
            .and_then(|u| no_credentials(errs, &format!("{key}.endpoint"), u, credentials)),
        None => {
            errs.push(ConfigProblem::new(
                format!("{key}.endpoint"),
                "missing: the base URL, e.g. https://splunk.example.com:8088",
            ));
            None
        }
    };
    let (max_events, batch_timeout) = batch(errs, key, rs.batch.take(), 500);
    let timeout = duration(
        errs,
        &format!("{key}.timeout"),
        rs.timeout.as_deref(),
        Duration::from_secs(30),
    );
    let tls = http_tls(errs, key, rs.tls.take(), rs.proxy.as_deref());
    Bulk {
        endpoint,
        max_events,
        batch_timeout,
        timeout,
        tls,
    }
}

#[cfg(test)]
mod tests;
