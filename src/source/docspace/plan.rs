//! Whether the filter endpoints answer for real, or with their "latest 20 rows" fallback
//! (docs/docspace-api.md §14.1).
//!
//! The fallback has two causes: a tariff without the `audit` feature, and a Login History
//! section hidden by the server's configuration while the tariff has it. Its answer is a normal
//! 200 envelope, and on a busy portal all of its rows can lie inside the window asked for, so
//! rows prove nothing. What is certain:
//! - the fallback ignores `count` and `from`/`to`: a window in the year 2000 asked for one row
//!   ([`Client::probe_plan`]) is answered with no row by the real endpoint (the portal did not
//!   exist then) and with up to 20 by the fallback. A log with no row at all answers nothing in
//!   both cases, and then there is nothing to lose either.
//! - `GET api/2.0/portal/quota` says whether the tariff has `audit` ([`Client::quota`]); it
//!   cannot see the hidden section, so it only names the cause once the probe found it.
//!
//! The window walker sends the probe after the window's last read and before any of its rows
//! is used: one request per window, and a window read while the plan was gone is never used.

use std::sync::atomic::Ordering;

use serde_json::Value;

use super::{Client, SourceError, rows};
use crate::event::Stream;

/// The `from` and `to` of the probe: a second of the year 2000.
const PROBE_FROM: &str = "2000-01-01T00:00:00Z";
const PROBE_TO: &str = "2000-01-01T00:00:01Z";

/// What `portal/quota` says of the audit feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quota {
    /// `audit`: the tariff includes the audit trail and login history.
    pub audit: Option<bool>,
    /// The tariff's name, when given.
    pub name: Option<String>,
}

impl Client {
    /// One request that the fallback cannot pass (see the module doc): `Ok` when the filter
    /// endpoint of `stream` answers for real, [`SourceError::NoAuditPlan`] naming the cause
    /// when it answers its latest rows whatever was asked.
    pub async fn probe_plan(&self, stream: Stream) -> Result<(), SourceError> {
        let q = [
            ("from", PROBE_FROM.to_owned()),
            ("to", PROBE_TO.to_owned()),
            ("count", "1".to_owned()),
        ];
        let body = self.get_body(stream, &q).await?;
        let n = rows(&body)?.len();
        self.plan_lost.store(n > 0, Ordering::Relaxed);
        if n == 0 {
            return Ok(());
        }
        let cause = match self.quota().await {
            Ok(Quota {
                audit: Some(false),
                name,
            }) => format!(
                "the portal's plan lacks the audit feature (tariff{}; portal/quota says audit: false): upgrade the plan",
                name.map(|n| format!(" \"{n}\"")).unwrap_or_default()
            ),
            Ok(Quota {
                audit: Some(true), ..
            }) => "the tariff has the audit feature, so the Login History section is hidden by the DocSpace server's configuration (IsVisibleSettings(\"LoginHistory\")): make it visible on the server".to_owned(),
            Ok(_) | Err(_) => "the portal's plan lacks the audit feature, or the Login History section is hidden by the server's configuration (portal/quota did not say which)".to_owned(),
        };
        Err(SourceError::NoAuditPlan(format!(
            "{n} rows for a window in the year 2000 asked for 1 row; {cause}"
        )))
    }

    /// The tenant's quota (`GET api/2.0/portal/quota`): whether the tariff has `audit`.
    pub async fn quota(&self) -> Result<Quota, SourceError> {
        let mut url = self.base.clone();
        let path = format!("{}/api/2.0/portal/quota", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url.set_query(None);
        let body = self.request(url).await?;
        let v: Value = serde_json::from_str(&body)
            .map_err(|e| SourceError::Malformed(format!("portal/quota is not JSON ({e})")))?;
        let q = v.get("response").unwrap_or(&v);
        let features = q.get("features").and_then(Value::as_str);
        Ok(Quota {
            audit: q.get("audit").and_then(Value::as_bool).or_else(|| {
                features.map(|f| f.split(',').any(|x| x.trim().eq_ignore_ascii_case("audit")))
            }),
            name: q
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .map(|n| n.chars().take(60).collect()),
        })
    }
}
