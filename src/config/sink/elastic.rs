//! The validator of a `type = "elasticsearch"` sink (Elasticsearch or OpenSearch).

use super::*;

/// The settings of an Elasticsearch or OpenSearch sink, or `None` after pushing its problems.
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
    } = bulk(
        errs,
        key,
        &mut rs,
        format,
        "use api_key_file, or username and password_file",
    );
    use crate::sink::elastic::{EsAuth, Flavor};
    let flavor = match rs.flavor.as_deref() {
        None | Some("elasticsearch") => Flavor::Elasticsearch,
        Some("opensearch") => Flavor::Opensearch,
        Some(other) => {
            errs.push(ConfigProblem::new(
                format!("{key}.flavor"),
                format!("{other:?} is not elasticsearch or opensearch"),
            ));
            Flavor::Elasticsearch
        }
    };
    let auth = if rs.api_key.is_some() || rs.api_key_file.is_some() {
        if rs.username.is_some() {
            errs.push(ConfigProblem::new(
                format!("{key}.username"),
                "give either api_key or username and password, not both",
            ));
        }
        secret(
            errs,
            key,
            "api_key",
            rs.api_key,
            rs.api_key_file.as_deref(),
            sources,
        )
        .map_or(EsAuth::None, EsAuth::ApiKey)
    } else if let Some(username) = rs.username {
        match secret(
            errs,
            key,
            "password",
            rs.password,
            rs.password_file.as_deref(),
            sources,
        ) {
            Some(password) => EsAuth::Basic { username, password },
            None => EsAuth::None,
        }
    } else {
        EsAuth::None
    };
    let index = rs
        .index
        .unwrap_or_else(|| "logs-docspace.{stream}-default".to_owned());
    if index.is_empty()
        || index.starts_with(['-', '_', '+'])
        || index
            .chars()
            .any(|c| c.is_ascii_uppercase() || "\\/*?\"<>| ,#:".contains(c))
    {
        errs.push(ConfigProblem::new(
            format!("{key}.index"),
            format!("{index:?} is not a valid index or data stream name (lowercase, no spaces or \\/*?\"<>|,#:)"),
        ));
    }
    Some(SinkKind::Elasticsearch(
        crate::sink::elastic::ElasticConfig {
            endpoint: endpoint?,
            index,
            auth,
            flavor,
            pipeline: rs.pipeline,
            max_events,
            batch_timeout,
            timeout,
            tls,
        },
    ))
}
