//! The rate-limit warnings: DocSpace allows 1,500 requests a minute per user (its limiter is
//! partitioned by the API key's creator, docs/docspace-api.md §8), so portals on one URL and
//! one API key share that budget. `validate` warns (never fails) when their polls cannot fit
//! in it, or when their `max_requests_per_second` add up past it.
//!
//! Portals with `max_requests_per_second = 0` (the client limit off: a self-hosted portal whose
//! limiter is off) are left out. The agent cannot see who created a key: keys of one creator
//! share the limit too, which the warning says.

use super::*;

/// DocSpace's sliding window, per user.
pub const RATE_LIMIT_PER_MINUTE: f64 = 1500.0;
/// What a caught-up poll of one stream sends at least: one read of its window (login: one
/// slice of the log; audit: one filter page) and the plan probe that ends every window
/// (`source/docspace/walker.rs`). A busy portal's overlap re-reads and catch-ups send more.
pub const REQUESTS_PER_POLL: f64 = 2.0;
/// At most this many portal names in a warning.
const NAMED: usize = 8;

/// The warnings for `portals` (see the module doc).
pub(super) fn warnings(portals: &[PortalConfig]) -> Vec<ConfigProblem> {
    // Portals by URL and API key, compared in memory only.
    let mut groups: Vec<(String, Vec<&PortalConfig>)> = Vec::new();
    for p in portals.iter().filter(|p| p.max_requests_per_second > 0.0) {
        let url = p.url.as_str().trim_end_matches('/').to_owned();
        match groups
            .iter_mut()
            .find(|(u, g)| *u == url && g[0].api_key.expose_secret() == p.api_key.expose_secret())
        {
            Some((_, g)) => g.push(p),
            None => groups.push((url, vec![p])),
        }
    }
    let mut out = Vec::new();
    for (url, group) in groups {
        let streams: usize = group.iter().map(|p| p.streams.len()).sum();
        let per_minute: f64 = group
            .iter()
            .map(|p| {
                p.streams.len() as f64 * REQUESTS_PER_POLL * 60.0
                    / p.poll_interval.as_secs_f64().max(1.0)
            })
            .sum();
        let (who, need) = if group.len() == 1 {
            (
                format!("portal {} (API key of {url})", group[0].name),
                "needs",
            )
        } else {
            (
                format!("portals sharing the API key of {url} ({})", names(&group)),
                "need",
            )
        };
        let share = "DocSpace's rate limit of 1,500 requests a minute counts every request of the API key's creator, and portals sharing the API key share it (keys created by the same user share it too, which the agent cannot see)";
        if per_minute > RATE_LIMIT_PER_MINUTE {
            out.push(ConfigProblem::new(
                "",
                format!(
                    "{who} {need} at least {per_minute:.0} requests a minute to poll their {streams} stream(s) every poll_interval ({REQUESTS_PER_POLL:.0} requests per stream per poll): {share}; polls will be late and answered 429. Raise poll_interval, poll fewer streams, or give the portals API keys created by different users"
                ),
            ));
        }
        let rps: f64 = group.iter().map(|p| p.max_requests_per_second).sum();
        if rps * 60.0 > RATE_LIMIT_PER_MINUTE {
            out.push(ConfigProblem::new(
                "",
                format!(
                    "{who} may send up to {rps} requests a second together (max_requests_per_second), over {:.1} a second: {share}; catch-ups will be answered 429. Lower max_requests_per_second so that the portals sharing the key add up to 24.8 at most, or give them API keys created by different users",
                    RATE_LIMIT_PER_MINUTE / 60.0
                ),
            ));
        }
    }
    out
}

fn names(group: &[&PortalConfig]) -> String {
    let mut s: Vec<&str> = group.iter().take(NAMED).map(|p| p.name.as_str()).collect();
    if group.len() > NAMED {
        s.push("…");
    }
    format!("{}: {} portals", s.join(", "), group.len())
}

#[cfg(test)]
mod tests {
    use super::super::*;

    /// `n` portals on one URL and key, each with `extra` keys.
    fn shared_key(n: usize, extra: &str) -> Vec<ConfigProblem> {
        let mut body = String::from("state_dir = \"/tmp/x\"\n[sinks.console]\ntype = \"stdout\"\n");
        for i in 0..n {
            body.push_str(&format!(
                "[portals.p{i}]\nurl = \"https://docspace.example.com\"\napi_key = \"sk-shared\"\npoll_interval = \"1s\"\n{extra}\n"
            ));
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, body).expect("write");
        load(&Sources {
            file,
            env: Vec::new(),
        })
        .expect("valid")
        .warnings
    }

    #[test]
    fn forty_portals_polling_every_second_on_one_key_are_warned_about() {
        let w = shared_key(40, "max_requests_per_second = 0.5");
        assert_eq!(w.len(), 1, "{w:#?}");
        let line = w[0].to_string();
        assert!(
            line.starts_with(
                "portals sharing the API key of https://docspace.example.com (p0, p1, p10, "
            ),
            "{line}"
        );
        assert!(
            line.contains("40 portals) need at least 9600 requests a minute"),
            "{line}"
        );
        assert!(line.contains("Raise poll_interval, poll fewer streams, or give the portals API keys created by different users"), "{line}");
        assert!(!line.contains("sk-shared"), "{line}");
    }

    #[test]
    fn two_portals_within_the_limit_are_not() {
        assert!(shared_key(2, "max_requests_per_second = 12").is_empty());
        assert!(shared_key(1, "").is_empty());
    }

    #[test]
    fn request_rates_adding_up_past_the_limit_are_warned_about() {
        let w = shared_key(2, "");
        assert_eq!(w.len(), 1, "{w:#?}");
        assert!(
            w[0].problem
                .contains("may send up to 49.6 requests a second together"),
            "{w:#?}"
        );
    }

    #[test]
    fn separate_keys_and_a_limiter_turned_off_are_not_counted_together() {
        let mut body = String::from("state_dir = \"/tmp/x\"\n[sinks.console]\ntype = \"stdout\"\n");
        for i in 0..40 {
            body.push_str(&format!(
                "[portals.p{i}]\nurl = \"https://docspace.example.com\"\napi_key = \"sk-{i}\"\npoll_interval = \"1s\"\nstreams = [\"audit\"]\n"
            ));
        }
        body.push_str("[portals.off]\nurl = \"https://docspace.example.com\"\napi_key = \"sk-0\"\npoll_interval = \"1s\"\nmax_requests_per_second = 0\n");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.toml");
        std::fs::write(&file, body).expect("write");
        let c = load(&Sources {
            file,
            env: Vec::new(),
        })
        .expect("valid");
        assert!(c.warnings.is_empty(), "{:#?}", c.warnings);
    }
}
