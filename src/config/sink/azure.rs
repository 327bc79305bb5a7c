//! The validator of a `type = "azure_logs"` sink (Microsoft Sentinel through the Azure Monitor
//! Logs Ingestion API).

use super::*;
use crate::sink::azure::{AzureConfig, DEFAULT_AUDIENCE, DEFAULT_AUTHORITY};

/// A required identifier that goes into a URL path: present, and only the characters Azure
/// uses in it (letters, digits, `-`, `_`, `.`), so that nothing in it can change the URL.
fn ident(errs: &mut Vec<ConfigProblem>, key: &str, value: Option<String>, what: &str) -> String {
    match value.as_deref().map(str::trim) {
        None | Some("") => {
            errs.push(ConfigProblem::new(key, format!("missing: {what}")));
            String::new()
        }
        Some(v)
            if v.len() <= 256
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) =>
        {
            v.to_owned()
        }
        Some(_) => {
            errs.push(ConfigProblem::new(
                key,
                format!("is not {what}: only letters, digits, `-`, `_` and `.` are allowed"),
            ));
            String::new()
        }
    }
}

/// An https URL (http on loopback only) without credentials, query or fragment.
fn base_url(errs: &mut Vec<ConfigProblem>, key: &str, value: &str) -> Option<Url> {
    let u = check_url(errs, key, value, false)
        .and_then(|u| no_credentials(errs, key, u, "set client_secret or client_secret_file"))?;
    if u.query().is_some() || u.fragment().is_some() {
        errs.push(ConfigProblem::new(
            key,
            format!(
                "{} must be a base URL without `?` or `#`",
                redact_url(u.as_str())
            ),
        ));
        return None;
    }
    Some(u)
}

/// The settings of a Sentinel sink, or `None` after pushing its problems.
pub(super) fn validate(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    mut rs: RawSink,
    routes: &Routes<'_>,
) -> Option<SinkKind> {
    let sources = routes.sources;
    let tenant_id = ident(
        errs,
        &format!("{key}.tenant_id"),
        rs.tenant_id.take(),
        "the Entra ID tenant (directory) id or domain",
    );
    let client_id = ident(
        errs,
        &format!("{key}.client_id"),
        rs.client_id.take(),
        "the app registration's application (client) id",
    );
    let dcr_immutable_id = ident(
        errs,
        &format!("{key}.dcr_immutable_id"),
        rs.dcr_immutable_id.take(),
        "the DCR's immutable id (dcr-…)",
    );
    let client_secret = secret(
        errs,
        key,
        "client_secret",
        rs.client_secret.take(),
        rs.client_secret_file.as_deref(),
        sources,
    );
    let endpoint = match rs.endpoint.as_deref() {
        Some(u) => base_url(errs, &format!("{key}.endpoint"), u),
        None => {
            errs.push(ConfigProblem::new(
                format!("{key}.endpoint"),
                "missing: the data collection endpoint or the DCR's logs ingestion endpoint, e.g. https://my-dce-ab12.westeurope-1.ingest.monitor.azure.com",
            ));
            None
        }
    };
    let authority_host = base_url(
        errs,
        &format!("{key}.authority_host"),
        rs.authority_host.as_deref().unwrap_or(DEFAULT_AUTHORITY),
    );
    let audience = rs
        .audience
        .take()
        .unwrap_or_else(|| DEFAULT_AUDIENCE.into());
    let audience = match Url::parse(audience.trim()) {
        Ok(u) if u.scheme() == "https" && u.host().is_some() => audience.trim().to_owned(),
        _ => {
            errs.push(ConfigProblem::new(
                format!("{key}.audience"),
                format!(
                    "{audience:?} is not an https:// audience such as \"{DEFAULT_AUDIENCE}\" (Azure US Government: https://monitor.azure.us, Azure China: https://monitor.azure.cn)"
                ),
            ));
            String::new()
        }
    };
    let stream = match rs.stream.as_deref().map(str::trim) {
        None | Some("") => {
            errs.push(ConfigProblem::new(
                format!("{key}.stream"),
                "missing: the stream the DCR declares, e.g. \"Custom-DocSpace_CL\"",
            ));
            None
        }
        Some(s) => routes.template(errs, &format!("{key}.stream"), s, |v| {
            // Every rendering must still name a DCR stream: `Custom-…` or `Microsoft-…`.
            (!(v.starts_with("Custom-") || v.starts_with("Microsoft-"))).then(|| {
                "is not a DCR stream name: those start with \"Custom-\" (a custom table, e.g. \"Custom-DocSpace_CL\") or \"Microsoft-\"".to_owned()
            })
        }),
    };
    let gzip = match rs.compression.as_deref() {
        None | Some("gzip") => true,
        Some("none") => false,
        Some(other) => {
            errs.push(ConfigProblem::new(
                format!("{key}.compression"),
                format!("{other:?} is not \"gzip\" or \"none\""),
            ));
            true
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
    Some(SinkKind::AzureLogs(AzureConfig {
        tenant_id,
        client_id,
        client_secret: client_secret?,
        endpoint: endpoint?,
        dcr_immutable_id,
        stream: stream?,
        authority_host: authority_host?,
        audience,
        gzip,
        max_events,
        batch_timeout,
        timeout,
        tls,
    }))
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigErrors, Sources, load};

    fn load_str(body: &str, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, body).expect("write");
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        load(&Sources { file, env })
    }

    const PORTAL: &str = "state_dir = \"/tmp/x\"\n[portals.main]\nurl = \"https://docspace.example.com\"\napi_key = \"sk-abc\"\n";

    fn problems(sink: &str) -> String {
        match load_str(
            &format!("{PORTAL}[sinks.sentinel]\ntype = \"azure_logs\"\n{sink}"),
            &[],
        ) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    const GOOD: &str = "tenant_id = \"72f988bf-86f1-41af-91ab-2d7cd011db47\"\nclient_id = \"0b3f5c1e-1111-2222-3333-444455556666\"\nclient_secret = \"azure-secret-value-1234\"\nendpoint = \"https://dce-ab12.westeurope-1.ingest.monitor.azure.com\"\ndcr_immutable_id = \"dcr-00000000000000000000000000000000\"\nstream = \"Custom-DocSpace_CL\"\n";

    #[test]
    fn a_complete_table_loads_with_public_cloud_defaults() {
        let cfg = load_str(
            &format!("{PORTAL}[sinks.sentinel]\ntype = \"azure_logs\"\n{GOOD}"),
            &[],
        )
        .expect("valid");
        let crate::sink::SinkKind::AzureLogs(a) = &cfg.sinks[0].kind else {
            panic!("not an azure_logs sink");
        };
        assert_eq!(
            a.authority_host.as_str(),
            "https://login.microsoftonline.com/"
        );
        assert_eq!(a.scope(), "https://monitor.azure.com//.default");
        assert!(a.gzip);
        assert_eq!(a.max_events, 500);
        assert!(!format!("{a:?}").contains("azure-secret-value"));
    }

    #[test]
    fn missing_keys_are_named_by_their_dotted_path_all_at_once() {
        let e = problems("");
        for k in [
            "sinks.sentinel.tenant_id: missing",
            "sinks.sentinel.client_id: missing",
            "sinks.sentinel.client_secret: missing",
            "sinks.sentinel.endpoint: missing",
            "sinks.sentinel.dcr_immutable_id: missing",
            "sinks.sentinel.stream: missing",
        ] {
            assert!(e.contains(k), "{k} not in:\n{e}");
        }
    }

    #[test]
    fn plain_http_is_refused_except_on_loopback() {
        let e = problems(&GOOD.replace(
            "https://dce-ab12.westeurope-1.ingest.monitor.azure.com",
            "http://dce-ab12.westeurope-1.ingest.monitor.azure.com",
        ));
        assert!(
            e.contains("sinks.sentinel.endpoint") && e.contains("must use https"),
            "{e}"
        );
        let e = problems(&format!(
            "{GOOD}authority_host = \"http://login.example.com\"\n"
        ));
        assert!(e.contains("sinks.sentinel.authority_host"), "{e}");
        let ok = problems(&format!(
            "{}authority_host = \"http://127.0.0.1:9\"\n",
            GOOD.replace(
                "https://dce-ab12.westeurope-1.ingest.monitor.azure.com",
                "http://127.0.0.1:8"
            )
        ));
        assert_eq!(ok, "", "loopback http is accepted");
    }

    #[test]
    fn bad_values_and_unknown_keys_are_errors() {
        let e = problems(&format!(
            "{}compression = \"zstd\"\naudience = \"monitor\"\nformat = \"ecs\"\nindex = \"x\"\n",
            GOOD.replace("Custom-DocSpace_CL", "DocSpace_CL")
                .replace("dcr-0000", "dcr/../0000")
        ));
        for k in [
            "sinks.sentinel.compression",
            "sinks.sentinel.audience",
            "sinks.sentinel.format",
            "sinks.sentinel.index: is not a key",
            "sinks.sentinel.stream",
            "sinks.sentinel.dcr_immutable_id",
        ] {
            assert!(e.contains(k), "{k} not in:\n{e}");
        }
        assert!(!e.contains("azure-secret-value"), "{e}");
        let e = problems(&GOOD.replace("Custom-DocSpace_CL", "Custom-{portl}_CL"));
        assert!(
            e.contains("sinks.sentinel.stream") && e.contains("{portl}"),
            "{e}"
        );
        let e = problems(&GOOD.replace("Custom-DocSpace_CL", "Custom-{label.customer}_CL"));
        assert!(
            e.contains("sinks.sentinel.stream") && e.contains("portals.main has no label"),
            "{e}"
        );
        let labelled = load_str(
            &format!(
                "{PORTAL}labels = {{ customer = \"acme\" }}\n[sinks.sentinel]\ntype = \"azure_logs\"\n{}",
                GOOD.replace("Custom-DocSpace_CL", "Custom-{label.customer}_CL")
            ),
            &[],
        );
        assert!(labelled.is_ok(), "{:?}", labelled.err());
    }
}
