//! The validator of a `type = "webhook"` sink.

use super::*;

/// The settings of a webhook sink, or `None` after pushing its problems.
pub(super) fn validate(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    rs: RawSink,
    sources: &Sources,
) -> Option<SinkKind> {
    let url = if let Some(f) = rs.url_file.as_deref() {
        read_secret_file(
            errs,
            &format!("{key}.url_file"),
            &credential_path(f, sources),
        )
    } else if let Some(u) = rs.url {
        Some(u)
    } else {
        errs.push(ConfigProblem::new(
            format!("{key}.url"),
            "missing: set url or url_file",
        ));
        None
    };
    if let Some(u) = &url {
        check_url(errs, &format!("{key}.url"), u.expose_secret(), true);
    }
    let mut headers = Vec::new();
    for (h, v) in rs.headers.unwrap_or_default() {
        if reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err() {
            errs.push(ConfigProblem::new(
                format!("{key}.headers.{h}"),
                "is not a valid HTTP header name",
            ));
        } else if reqwest::header::HeaderValue::from_str(v.expose_secret()).is_err() {
            errs.push(ConfigProblem::new(
                format!("{key}.headers.{h}"),
                "holds characters an HTTP header value cannot carry",
            ));
        } else {
            headers.push((h, v));
        }
    }
    let (max_events, batch_timeout) = batch(errs, key, rs.batch, 100);
    let timeout = duration(
        errs,
        &format!("{key}.timeout"),
        rs.timeout.as_deref(),
        Duration::from_secs(30),
    );
    let tls = http_tls(errs, key, rs.tls, rs.proxy.as_deref());
    let body = match rs.body.as_deref() {
        None => crate::sink::webhook::Body::Array,
        Some(b) => crate::sink::webhook::Body::parse(b).unwrap_or_else(|| {
            errs.push(ConfigProblem::new(
                format!("{key}.body"),
                format!("{b:?} is not \"array\" (one JSON array per POST) or \"ndjson\" (one event per line)"),
            ));
            crate::sink::webhook::Body::Array
        }),
    };
    Some(SinkKind::Webhook(WebhookConfig {
        url: url.unwrap_or_else(|| SecretString::from(String::new())),
        headers,
        max_events,
        batch_timeout,
        timeout,
        tls,
        gzip: rs.gzip.unwrap_or(false),
        body,
    }))
}
