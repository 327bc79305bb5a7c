//! Durable cursors, one per portal and stream, under `state_dir/cursors/`, and the lock that keeps
//! a second agent off the same `state_dir`.
//!
//! Invariants:
//! - A cursor file is written atomically: a fresh temp file in the same directory, `write_all`,
//!   `fsync(file)`, `rename`, `fsync(dir)`. A crash leaves the old or the new cursor, never a
//!   torn one; a failed write leaves the old file and is reported (never retried on the same fd).
//! - A cursor that does not parse, has another version or names another portal/stream is never
//!   silently replaced: [`StateDir::load`] (the agent's start) moves it aside to
//!   `*.corrupt-<unix time>` and the caller gets [`CursorError::Corrupt`] naming both paths and
//!   what to do. A watermark ahead of the clock is not corrupt (the clock was set back, or the
//!   state came from another machine): it loads, and the poller waits for the clock.
//! - [`read_only`] (for `cursor show`) changes nothing: no lock, no directory or file created,
//!   no rename, no chmod; a corrupt cursor is reported ([`CursorError::Damaged`]) and left where
//!   it is.
//! - The watermark only ever holds times of events every sink acknowledged (the pipeline's job).

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::event::{Stream, format_utc_millis, parse_date};

/// Version of the on-disk format.
pub const CURSOR_VERSION: u32 = 1;
/// Most ids remembered for de-duplication across the overlap.
pub const MAX_SEEN: usize = 200_000;

/// Errors of the state directory.
#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    /// The directory cannot be created or written.
    #[error("state directory {path}: {source}")]
    Io {
        /// What failed.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another agent holds the lock.
    #[error(
        "another docspace-siem already uses state directory {0} (lock held on its `lock` file); stop it or give this one its own state_dir"
    )]
    Locked(PathBuf),
    /// The cursor file is damaged and was set aside (by the agent's start).
    #[error(
        "cursor {path} is corrupt ({reason}); it was moved to {moved_to}. Nothing was sent. To resume, restore a good copy to {path}, or remove it to start again from the portal's start_from"
    )]
    Corrupt {
        /// The cursor file.
        path: PathBuf,
        /// Where it went.
        moved_to: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The cursor file is damaged; a read-only look left it where it is.
    #[error(
        "cursor {path} is corrupt ({reason}); `run` will move it aside and stop with exit 78. To resume, restore a good copy to {path}, or remove it to start again from the portal's start_from"
    )]
    Damaged {
        /// The cursor file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Where one portal/stream stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Time of the newest event delivered to every sink (UTC).
    pub watermark: OffsetDateTime,
    /// `(id, unix seconds)` of events delivered within the overlap before the watermark, so a
    /// re-read of the overlap emits nothing twice.
    pub seen: Vec<(i64, i64)>,
}

impl Cursor {
    /// A cursor at `t` that has seen nothing.
    pub fn at(t: OffsetDateTime) -> Cursor {
        Cursor {
            watermark: t,
            seen: Vec::new(),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    version: u32,
    portal: String,
    stream: String,
    watermark: String,
    seen: Vec<(i64, i64)>,
    updated_at: String,
}

/// An opened, locked state directory.
#[derive(Debug)]
pub struct StateDir {
    root: PathBuf,
    // Held for the life of the agent: the OS lock goes with the descriptor.
    _lock: File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CursorError + '_ {
    move |source| CursorError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl StateDir {
    /// Creates (0700) and locks the directory.
    pub fn open(root: &Path) -> Result<StateDir, CursorError> {
        for dir in [root.to_path_buf(), root.join("cursors")] {
            fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let _ = fs::set_permissions(root, fs::Permissions::from_mode(0o700));
        }
        let lock_path = root.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(CursorError::Locked(root.to_path_buf()));
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        // Temp files of a save that a crash interrupted: the old cursor is intact beside them.
        if let Ok(entries) = fs::read_dir(root.join("cursors")) {
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') && name.contains(".json.tmp-") {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(StateDir {
            root: root.to_path_buf(),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of a cursor file.
    pub fn cursor_path(&self, portal: &str, stream: Stream) -> PathBuf {
        cursor_path(&self.root, portal, stream)
    }

    /// Loads a cursor; `Ok(None)` on the first run.
    pub fn load(&self, portal: &str, stream: Stream) -> Result<Option<Cursor>, CursorError> {
        let path = self.cursor_path(portal, stream);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        match decode(&bytes, portal, stream) {
            Ok(c) => Ok(Some(c)),
            Err(reason) => {
                let moved_to = path.with_extension(format!(
                    "json.corrupt-{}",
                    OffsetDateTime::now_utc().unix_timestamp()
                ));
                fs::rename(&path, &moved_to).map_err(io(&path))?;
                Err(CursorError::Corrupt {
                    path,
                    moved_to,
                    reason,
                })
            }
        }
    }

    /// Saves a cursor atomically (temp file, fsync, rename, fsync of the directory).
    pub fn save(&self, portal: &str, stream: Stream, cursor: &Cursor) -> Result<(), CursorError> {
        let path = self.cursor_path(portal, stream);
        let dir = self.root.join("cursors");
        let body = OnDisk {
            version: CURSOR_VERSION,
            portal: portal.to_owned(),
            stream: stream.as_str().to_owned(),
            watermark: format_utc_millis(cursor.watermark),
            seen: cursor.seen.clone(),
            updated_at: format_utc_millis(OffsetDateTime::now_utc()),
        };
        // Serialising plain data cannot fail.
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let tmp = dir.join(format!(
            ".{portal}.{}.json.tmp-{}",
            stream.as_str(),
            std::process::id()
        ));
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            failpoint("cursor-after-write");
            f.sync_all()?;
            drop(f);
            failpoint("cursor-before-rename");
            fs::rename(&tmp, &path)?;
            failpoint("cursor-after-rename");
            File::open(&dir)?.sync_all()
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&tmp);
            return Err(io(&path)(e));
        }
        Ok(())
    }
}

/// Path of the cursor file of a portal/stream under the state directory `root`.
pub fn cursor_path(root: &Path, portal: &str, stream: Stream) -> PathBuf {
    root.join("cursors")
        .join(format!("{portal}.{}.json", stream.as_str()))
}

/// Reads a cursor without the lock and without changing anything on disk (`cursor show`):
/// `Ok(None)` when there is none (or no state directory yet); a corrupt file is
/// [`CursorError::Damaged`] and stays where it is. Safe beside a running agent, whose saves
/// replace the file atomically.
pub fn read_only(root: &Path, portal: &str, stream: Stream) -> Result<Option<Cursor>, CursorError> {
    let path = cursor_path(root, portal, stream);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    decode(&bytes, portal, stream)
        .map(Some)
        .map_err(|reason| CursorError::Damaged { path, reason })
}

/// Crash-test hook (debug builds only): when `$DOCSPACE_SIEM_FAILPOINT` names this point, the
/// process aborts right here, as a power cut or `kill -9` would stop it. Release builds compile
/// it away.
#[inline]
fn failpoint(name: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("DOCSPACE_SIEM_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = name;
}

fn decode(bytes: &[u8], portal: &str, stream: Stream) -> Result<Cursor, String> {
    let d: OnDisk = serde_json::from_slice(bytes).map_err(|e| format!("not a cursor file: {e}"))?;
    if d.version != CURSOR_VERSION {
        return Err(format!("version {} is not {CURSOR_VERSION}", d.version));
    }
    if d.portal != portal || d.stream != stream.as_str() {
        return Err(format!(
            "it belongs to portal {:?} stream {:?}",
            d.portal, d.stream
        ));
    }
    // Ahead of the clock is not corrupt: the poller waits for the clock (see the module doc).
    let watermark = parse_date(&d.watermark).map_err(|e| format!("watermark: {e}"))?;
    Ok(Cursor {
        watermark,
        seen: d.seen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().expect("tmp");
        let st = StateDir::open(dir.path()).expect("open");
        assert_eq!(st.load("main", Stream::Login).expect("load"), None);
        let c = Cursor {
            watermark: datetime!(2025-01-15 13:32:07.123 UTC),
            seen: vec![(5, 1_736_947_927)],
        };
        st.save("main", Stream::Login, &c).expect("save");
        assert_eq!(st.load("main", Stream::Login).expect("load"), Some(c));
        let leftovers: Vec<_> = fs::read_dir(dir.path().join("cursors"))
            .expect("dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains("tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn second_agent_is_locked_out() {
        let dir = tempfile::tempdir().expect("tmp");
        let _first = StateDir::open(dir.path()).expect("open");
        let err = StateDir::open(dir.path()).unwrap_err();
        assert!(matches!(err, CursorError::Locked(_)), "{err}");
    }

    #[test]
    fn corrupt_cursors_are_set_aside_not_replaced() {
        let cases: [&[u8]; 6] = [
            b"",
            &[0u8; 4096],
            b"{\"version\":1,\"portal\":\"main\"",
            b"{\"version\":999,\"portal\":\"main\",\"stream\":\"login\",\"watermark\":\"2025-01-01T00:00:00Z\",\"seen\":[],\"updated_at\":\"x\"}",
            b"{\"version\":1,\"portal\":\"other\",\"stream\":\"login\",\"watermark\":\"2025-01-01T00:00:00Z\",\"seen\":[],\"updated_at\":\"x\"}",
            b"{\"version\":1,\"portal\":\"main\",\"stream\":\"login\",\"watermark\":\"9999-12-31T23:59:59-01:00\",\"seen\":[],\"updated_at\":\"x\"}",
        ];
        for bytes in cases {
            let dir = tempfile::tempdir().expect("tmp");
            let st = StateDir::open(dir.path()).expect("open");
            let path = st.cursor_path("main", Stream::Login);
            fs::write(&path, bytes).expect("write");
            // A read-only look reports it and leaves it where it is.
            let err = read_only(dir.path(), "main", Stream::Login).unwrap_err();
            assert!(matches!(err, CursorError::Damaged { .. }), "{err}");
            assert_eq!(fs::read(&path).expect("still there"), bytes);
            let err = st.load("main", Stream::Login).unwrap_err();
            let CursorError::Corrupt { moved_to, .. } = &err else {
                panic!("expected Corrupt, got {err}");
            };
            assert!(!path.exists(), "original moved away");
            assert_eq!(fs::read(moved_to).expect("kept"), bytes);
            assert!(err.to_string().contains("Nothing was sent"));
        }
    }

    /// See: issue 15. A watermark ahead of the clock is not corrupt: it loads (the poller
    /// waits for the clock), and a read-only look at a missing state directory creates nothing.
    #[test]
    fn a_cursor_ahead_of_the_clock_loads_and_read_only_creates_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let st = StateDir::open(dir.path()).expect("open");
        let ahead = Cursor::at(datetime!(2999-01-01 00:00 UTC));
        st.save("main", Stream::Login, &ahead).expect("save");
        assert_eq!(
            st.load("main", Stream::Login).expect("load"),
            Some(ahead.clone())
        );
        assert_eq!(
            read_only(dir.path(), "main", Stream::Login).expect("read"),
            Some(ahead)
        );
        let missing = dir.path().join("never");
        assert_eq!(
            read_only(&missing, "main", Stream::Login).expect("read"),
            None
        );
        assert!(!missing.exists());
    }
}
