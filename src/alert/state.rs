//! Persisted rule state: novelty baselines (`seen.json`) and windows (`windows.json`) under
//! `state_dir/alerts/<sink>`, read at start and written through the one atomic-file writer
//! ([`crate::cursor::PrivateDir::write_atomic`]), off the async threads when the sink loop saves.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::warn;

use super::engine::{RuleEngine, Seen, State, Table};

/// Version of the state files.
const STATE_VERSION: u32 = 1;
/// Window state is written at most this often (novelty baselines are written at once).
const WINDOW_SAVE_INTERVAL: Duration = Duration::from_secs(30);

/// Saved window state of one rule.
#[derive(Debug, Serialize, Deserialize)]
struct SavedRule {
    kind: String,
    window_ms: i64,
    by: String,
    tables: Vec<Table>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedWindows {
    version: u32,
    rules: HashMap<String, SavedRule>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedSeen {
    version: u32,
    /// rule name → (kind, users).
    rules: HashMap<String, (String, Seen)>,
}

/// One save of an engine's state, ready to be written on any thread.
#[derive(Debug)]
struct SaveJob {
    dir: PathBuf,
    /// Damaged files to set aside first (before the new state replaces them).
    damaged: Vec<PathBuf>,
    /// `seen.json`, when the baselines changed.
    seen: Option<Vec<u8>>,
    /// `windows.json`, when the windows changed and are due.
    windows: Option<Vec<u8>>,
}

/// Which files a save job wrote.
#[derive(Debug, Clone, Copy, Default)]
struct Written {
    seen: bool,
    windows: bool,
}

impl SaveJob {
    /// Sets damaged files aside, then writes `seen.json` and `windows.json` in that order,
    /// stopping at the first failure: what was written, and that failure.
    fn write(self) -> (Written, std::io::Result<()>) {
        for path in self.damaged {
            let moved = path.with_extension(format!(
                "json.corrupt-{}",
                OffsetDateTime::now_utc().unix_timestamp()
            ));
            if fs::rename(&path, &moved).is_ok() {
                warn!(file = %path.display(), moved_to = %moved.display(), "damaged alert state set aside");
            }
        }
        let mut written = Written::default();
        if let Some(bytes) = &self.seen {
            if let Err(e) = write_atomic(&self.dir, "seen.json", bytes) {
                return (written, Err(e));
            }
            written.seen = true;
        }
        if let Some(bytes) = &self.windows {
            if let Err(e) = write_atomic(&self.dir, "windows.json", bytes) {
                return (written, Err(e));
            }
            written.windows = true;
        }
        (written, Ok(()))
    }
}

impl RuleEngine {
    /// Writes changed state to the state directory: novelty baselines at once, windows at
    /// most every 30 s unless `force` (on shutdown). No-op for an in-memory engine. Blocks on
    /// file IO: the sink loop calls [`RuleEngine::save_off_thread`] instead.
    pub fn save(&mut self, force: bool) -> std::io::Result<()> {
        let Some(job) = self.prepare_save(force)? else {
            return Ok(());
        };
        let (written, result) = job.write();
        self.saved(written);
        result
    }

    /// [`RuleEngine::save`] with the file IO on a blocking thread, so that the async threads
    /// never wait for an fsync (as the cursor committer does).
    pub async fn save_off_thread(&mut self, force: bool) -> std::io::Result<()> {
        let Some(job) = self.prepare_save(force)? else {
            return Ok(());
        };
        let (written, result) = tokio::task::spawn_blocking(move || job.write())
            .await
            .map_err(std::io::Error::other)?;
        self.saved(written);
        result
    }

    /// The files a save writes, serialised now (the engine changes between batches, so its
    /// state is captured here); `None` when there is nothing to do.
    fn prepare_save(&mut self, force: bool) -> std::io::Result<Option<SaveJob>> {
        let Some(dir) = self.dir.clone() else {
            return Ok(None);
        };
        let mut seen = None;
        if self.seen_dirty {
            let saved = SavedSeen {
                version: STATE_VERSION,
                rules: self
                    .rules
                    .iter()
                    .filter_map(|r| match &r.state {
                        State::Novelty(s) => Some((
                            r.cfg.name.clone(),
                            (r.cfg.kind.as_str().to_owned(), s.clone()),
                        )),
                        _ => None,
                    })
                    .collect(),
            };
            seen = Some(serde_json::to_vec(&saved)?);
        }
        let due = force
            || self
                .last_window_save
                .is_none_or(|t| t.elapsed() >= WINDOW_SAVE_INTERVAL);
        let mut windows = None;
        if self.windows_dirty && due {
            let wm = self.watermark;
            let mut saved = SavedWindows {
                version: STATE_VERSION,
                rules: HashMap::new(),
            };
            for r in &mut self.rules {
                let w = r.cfg.window_ms();
                let tables = match &mut r.state {
                    State::Counter(t) => {
                        t.prune(wm, w);
                        vec![t.clone()]
                    }
                    State::AfterFailures { failures, fired } => {
                        failures.prune(wm, w);
                        fired.prune(wm, w);
                        vec![failures.clone(), fired.clone()]
                    }
                    State::Novelty(_) => continue,
                };
                saved.rules.insert(
                    r.cfg.name.clone(),
                    SavedRule {
                        kind: r.cfg.kind.as_str().to_owned(),
                        window_ms: w,
                        by: r.cfg.by.as_str().to_owned(),
                        tables,
                    },
                );
            }
            windows = Some(serde_json::to_vec(&saved)?);
        }
        if self.damaged.is_empty() && seen.is_none() && windows.is_none() {
            return Ok(None);
        }
        Ok(Some(SaveJob {
            dir,
            damaged: std::mem::take(&mut self.damaged),
            seen,
            windows,
        }))
    }

    /// Marks what a save job wrote as clean.
    fn saved(&mut self, written: Written) {
        if written.seen {
            self.seen_dirty = false;
        }
        if written.windows {
            self.windows_dirty = false;
            self.last_window_save = Some(std::time::Instant::now());
        }
    }

    pub(super) fn load(&mut self, dir: &Path) {
        if let Some(saved) = read_state::<SavedSeen>(&dir.join("seen.json"), &mut self.damaged) {
            for r in &mut self.rules {
                if let (State::Novelty(s), Some((kind, seen))) =
                    (&mut r.state, saved.rules.get(&r.cfg.name))
                    && kind == r.cfg.kind.as_str()
                {
                    *s = seen.clone();
                }
            }
        }
        if let Some(saved) =
            read_state::<SavedWindows>(&dir.join("windows.json"), &mut self.damaged)
        {
            for r in &mut self.rules {
                let Some(s) = saved.rules.get(&r.cfg.name) else {
                    continue;
                };
                // A changed rule starts afresh: old hits were counted under other terms.
                if s.kind != r.cfg.kind.as_str()
                    || s.window_ms != r.cfg.window_ms()
                    || s.by != r.cfg.by.as_str()
                {
                    continue;
                }
                match (&mut r.state, s.tables.as_slice()) {
                    (State::Counter(t), [one]) => *t = one.clone(),
                    (State::AfterFailures { failures, fired }, [a, b]) => {
                        *failures = a.clone();
                        *fired = b.clone();
                    }
                    _ => {}
                }
            }
            for r in &self.rules {
                let newest = match &r.state {
                    State::Counter(t) => t.keys.values().map(|k| k.n).max(),
                    State::AfterFailures { failures, .. } => {
                        failures.keys.values().map(|k| k.n).max()
                    }
                    State::Novelty(_) => None,
                };
                if let Some(n) = newest {
                    self.watermark = self.watermark.max(n);
                }
            }
        }
    }
}

/// Reads a state file; a damaged one is named in `damaged` with a warning (the engine then
/// starts without it: alerts may repeat, nothing is lost). Never writes.
fn read_state<T: serde::de::DeserializeOwned>(
    path: &Path,
    damaged: &mut Vec<PathBuf>,
) -> Option<T> {
    // Never through a link planted in the state directory (see cursor::PrivateDir).
    let read = || {
        let dir = path.parent().unwrap_or(Path::new("/"));
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        crate::cursor::PrivateDir::open_below(dir, 2, false)?.read(&name)
    };
    let bytes = match read() {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            warn!(file = %path.display(), error = %e, "cannot read alert state; starting without it");
            return None;
        }
    };
    #[derive(Deserialize)]
    struct Version {
        version: u32,
    }
    let problem = match serde_json::from_slice::<Version>(&bytes) {
        Ok(v) if v.version == STATE_VERSION => match serde_json::from_slice::<T>(&bytes) {
            Ok(t) => return Some(t),
            Err(e) => e.to_string(),
        },
        Ok(v) => format!("version {} is not {STATE_VERSION}", v.version),
        Err(e) => e.to_string(),
    };
    warn!(file = %path.display(), %problem, "alert state is damaged; starting without it (baselines are learned again); it is set aside at the next save");
    damaged.push(path.to_path_buf());
    None
}

/// Writes `dir/name` atomically: temp file, fsync, rename, fsync of the directory (0600).
/// `dir` is `state_dir/alerts/<sink>`: both levels are created (0700) and used through their
/// descriptor, never through a link, and the temp file is created exclusively under an
/// unpredictable name (see cursor::PrivateDir).
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    crate::cursor::PrivateDir::open_below(dir, 2, true)?.write_atomic(name, bytes)
}
