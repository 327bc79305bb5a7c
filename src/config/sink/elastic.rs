//! The validator of a `type = "elasticsearch"` sink (Elasticsearch or OpenSearch).

use super::*;

/// The settings of an Elasticsearch or OpenSearch sink, or `None` after pushing its problems.
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
    let index = routes.template(
        errs,
        &format!("{key}.index"),
        rs.index.as_deref().unwrap_or(DEFAULT_INDEX),
        index_problem,
    );
    Some(SinkKind::Elasticsearch(
        crate::sink::elastic::ElasticConfig {
            endpoint: endpoint?,
            index: index?,
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

/// The index when none is set: the data stream of each stream.
const DEFAULT_INDEX: &str = "logs-docspace.{stream}-default";

/// Why `index` (as rendered for a portal and stream) is not an index or data stream name.
fn index_problem(index: &str) -> Option<String> {
    (index.is_empty()
        || index.len() > 255
        || index.starts_with(['-', '_', '+'])
        || matches!(index, "." | "..")
        || index
            .chars()
            .any(|c| c.is_ascii_uppercase() || c.is_control() || "\\/*?\"<>| ,#:".contains(c)))
    .then(|| {
        "is not a valid index or data stream name (lowercase, at most 255 bytes, no spaces or \\/*?\"<>|,#:)".to_owned()
    })
}
