//! What a reload changes: a [`Fingerprint`] of each portal's settings and one of everything
//! the pipeline shares, and [`Changes`], the comparison of the running config with a new one.
//!
//! A fingerprint hashes the merged tree (files, includes and environment), the contents of
//! every file a `*_file` key names (a rotated credential or certificate is a change), and each
//! portal's resolved API key (a systemd credential named after the portal too). The hasher is
//! keyed at random per process and its values are never written anywhere.

use std::hash::{BuildHasher as _, Hash as _, Hasher};
use std::sync::OnceLock;

use super::*;

/// Hashes of a validated config's parts (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint {
    portals: BTreeMap<String, u64>,
    pipeline: u64,
}

/// Top-level keys that are neither a portal nor part of the pipeline: a running agent cannot
/// change them ([`Changes::at_restart`]), or they only say where portals come from.
const NOT_PIPELINE: &[&str] = &["portals", "include", "state_dir", "log", "threads"];

fn hasher() -> impl Hasher {
    static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    KEYS.get_or_init(Default::default).build_hasher()
}

impl Fingerprint {
    pub(super) fn of(root: &Value, cfg: &Config, sources: &Sources) -> Fingerprint {
        let mut portals = BTreeMap::new();
        for p in &cfg.portals {
            let mut h = hasher();
            if let Some(table) = root.get("portals").and_then(|m| m.get(&p.name)) {
                table.to_string().hash(&mut h);
                files_of(table, sources, &mut h);
            }
            p.api_key.expose_secret().hash(&mut h);
            portals.insert(p.name.clone(), h.finish());
        }
        let mut h = hasher();
        if let Value::Object(m) = root {
            for (k, v) in m
                .iter()
                .filter(|(k, _)| !NOT_PIPELINE.contains(&k.as_str()))
            {
                k.hash(&mut h);
                v.to_string().hash(&mut h);
                files_of(v, sources, &mut h);
            }
        }
        Fingerprint {
            portals,
            pipeline: h.finish(),
        }
    }
}

/// Hashes the contents of every file a `*_file` key under `v` names (unreadable: nothing).
fn files_of(v: &Value, sources: &Sources, h: &mut impl Hasher) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                match child.as_str() {
                    Some(path) if k.ends_with("_file") => {
                        std::fs::read(credential_path(path, sources)).ok().hash(h);
                    }
                    _ => files_of(child, sources, h),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|c| files_of(c, sources, h)),
        _ => {}
    }
}

/// What a new config changes against the running one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Portals in the new config only: started.
    pub added: Vec<String>,
    /// Portals in the running config only: stopped.
    pub removed: Vec<String>,
    /// Portals whose settings (or credential files) changed: restarted.
    pub changed: Vec<String>,
    /// Sinks, rules, `[api]`, `shutdown_timeout` or `progress_interval` changed: the whole
    /// pipeline drains and starts again from its saved cursors.
    pub pipeline: bool,
    /// Keys a running agent keeps until its next start: `state_dir`, `log`, `threads`.
    pub at_restart: Vec<&'static str>,
}

impl Changes {
    /// The changes from `old` (running) to `new`.
    pub fn between(old: &Config, new: &Config) -> Changes {
        let (a, b) = (&old.fingerprint.portals, &new.fingerprint.portals);
        let mut at_restart = Vec::new();
        if old.state_dir != new.state_dir {
            at_restart.push("state_dir");
        }
        if old.log.format != new.log.format || old.log.level != new.log.level {
            at_restart.push("log");
        }
        if old.threads != new.threads {
            at_restart.push("threads");
        }
        Changes {
            added: b.keys().filter(|k| !a.contains_key(*k)).cloned().collect(),
            removed: a.keys().filter(|k| !b.contains_key(*k)).cloned().collect(),
            changed: a
                .iter()
                .filter(|(k, h)| b.get(*k).is_some_and(|n| n != *h))
                .map(|(k, _)| k.clone())
                .collect(),
            pipeline: old.fingerprint.pipeline != new.fingerprint.pipeline,
            at_restart,
        }
    }

    /// Whether any portal is added, removed or changed.
    pub fn portals(&self) -> bool {
        !(self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty())
    }
}

impl Config {
    /// Drops a portal from this config (one that could not start on reload), so that the next
    /// reload sees it as added again.
    pub fn forget_portal(&mut self, name: &str) {
        self.portals.retain(|p| p.name != name);
        self.fingerprint.portals.remove(name);
        self.origin.remove(name);
    }
}
