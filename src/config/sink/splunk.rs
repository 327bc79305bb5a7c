//! The validator of a `type = "splunk_hec"` sink.

use super::*;

/// The settings of a Splunk HEC sink, or `None` after pushing its problems.
pub(super) fn validate(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    mut rs: RawSink,
    format: Format,
    sources: &Sources,
) -> Option<SinkKind> {
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
    Some(SinkKind::SplunkHec(crate::sink::splunk::SplunkConfig {
        endpoint: endpoint?,
        token: token.unwrap_or_else(|| SecretString::from(String::new())),
        index: rs.index,
        sourcetype: rs.sourcetype,
        source: rs.source,
        host: rs.host,
        ack: rs.ack.unwrap_or(false),
        ack_timeout,
        max_events,
        batch_timeout,
        timeout,
        tls,
    }))
}
