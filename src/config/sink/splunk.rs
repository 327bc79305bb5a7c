//! The validator of a `type = "splunk_hec"` sink.

use super::*;

/// The settings of a Splunk HEC sink, or `None` after pushing its problems.
pub(super) fn validate(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    mut rs: RawSink,
    format: Format,
    routes: &Routes<'_>,
) -> Option<SinkKind> {
    let sources = routes.sources;
    let Bulk {
        endpoint,
        max_events,
        batch_timeout,
        timeout,
        tls,
    } = bulk(errs, key, &mut rs, format, "use token_file");
    let token = secret(
        errs,
        key,
        "token",
        rs.token,
        rs.token_file.as_deref(),
        sources,
    );
    let ack_timeout = duration(
        errs,
        &format!("{key}.ack_timeout"),
        rs.ack_timeout.as_deref(),
        Duration::from_secs(60),
    );
    // Splunk refuses an index it does not know, per request; what the config can see is an
    // empty text, or one with characters no index name holds.
    let index = rs.index.as_deref().map(|t| {
        routes.template(errs, &format!("{key}.index"), t, |v| {
            field_problem(v).or_else(|| index_problem(v))
        })
    });
    let sourcetype = rs
        .sourcetype
        .as_deref()
        .map(|t| routes.template(errs, &format!("{key}.sourcetype"), t, field_problem));
    let source = rs
        .source
        .as_deref()
        .map(|t| routes.template(errs, &format!("{key}.source"), t, field_problem));
    Some(SinkKind::SplunkHec(crate::sink::splunk::SplunkConfig {
        endpoint: endpoint?,
        token: token.unwrap_or_else(|| SecretString::from(String::new())),
        // A template that did not parse was reported: the sink is not built.
        index: index.flatten(),
        sourcetype: sourcetype.flatten(),
        source: source.flatten(),
        host: rs.host,
        ack: rs.ack.unwrap_or(false),
        ack_timeout,
        max_events,
        batch_timeout,
        timeout,
        tls,
    }))
}

/// Why an HEC `index`, `sourcetype` or `source` (as rendered) cannot be sent.
fn field_problem(v: &str) -> Option<String> {
    if v.is_empty() {
        Some("is empty".to_owned())
    } else if v.chars().any(char::is_control) {
        Some("holds control characters".to_owned())
    } else {
        None
    }
}

/// Why a rendered `index` is not a Splunk index name (lowercase letters, digits, `_` and `-`,
/// not starting with `_` or `-`).
fn index_problem(v: &str) -> Option<String> {
    let ok = !v.starts_with(['_', '-'])
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    (!ok).then(|| {
        "is not a Splunk index name (lowercase letters, digits, _ and -, not starting with _ or -)".to_owned()
    })
}
