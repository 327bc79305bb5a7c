//! The validator of a chat sink (`type = "slack"`, `"teams"`, `"mattermost"`, `"discord"`,
//! `"google_chat"`).

use super::*;

/// The settings of a chat sink, or `None` after pushing its problems.
pub(super) fn validate(
    errs: &mut Vec<ConfigProblem>,
    key: &str,
    other: &str,
    rs: RawSink,
    ctx: &SinkContext<'_>,
) -> Option<SinkKind> {
    let sources = ctx.sources;
    let url = secret(errs, key, "url", rs.url, rs.url_file.as_deref(), sources);
    if let Some(u) = &url {
        check_url(errs, &format!("{key}.url"), u.expose_secret(), true);
    }
    let chosen = match &rs.rules {
        Some(v) => sink_rules(errs, key, v, ctx.rules),
        None => {
            errs.push(ConfigProblem::new(
                format!("{key}.rules"),
                "missing: the rules that raise alerts here, e.g. rules = [\"brute_force\", \"lockout\"] (a chat sink posts only alerts)",
            ));
            Vec::new()
        }
    };
    let rate = match &rs.rate {
        None => 1.0,
        Some(v) => match v
            .as_f64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        {
            Some(r) if (0.01..=50.0).contains(&r) => r,
            _ => {
                errs.push(ConfigProblem::new(
                    format!("{key}.rate"),
                    format!("{v} is not a number of messages per second between 0.01 and 50"),
                ));
                1.0
            }
        },
    };
    let timeout = duration(
        errs,
        &format!("{key}.timeout"),
        rs.timeout.as_deref(),
        Duration::from_secs(30),
    );
    within(
        errs,
        &format!("{key}.timeout"),
        timeout,
        Duration::from_secs(1),
        Duration::from_secs(300),
    );
    let tls = http_tls(errs, key, rs.tls, rs.proxy.as_deref());
    Some(SinkKind::Chat(ChatConfig {
        kind: ChatKind::parse(other)?,
        url: url.unwrap_or_else(|| SecretString::from(String::new())),
        rules: chosen,
        rate,
        timeout,
        tls,
        state_dir: ctx.state_dir.to_path_buf(),
    }))
}
