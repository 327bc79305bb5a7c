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
//! - Every file operation under `state_dir` is safe whoever runs it ([`PrivateDir`]): the
//!   configured `state_dir` is trusted as the admin wrote it, but nothing below it is. No
//!   symbolic link below it is followed (directories are opened `O_NOFOLLOW` and used through
//!   their descriptor, files opened `O_NOFOLLOW`), temp files are created exclusively (`O_EXCL`,
//!   0600) under unpredictable names, and only a directory the agent created is given its mode
//!   (a `state_dir` writable by every user, such as `/tmp`, is refused, never chmod'ed).
//! - As root, a state directory owned by another user is refused ([`CursorError::Owner`]): a
//!   root-run `cursor set` would otherwise write where that user points it. The message says
//!   how to run the command as the owner (`sudo -u docspace-siem …`).

use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Write as _};
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
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
    /// Run as root on a state directory that another user owns.
    #[error(
        "state directory {path} belongs to uid {owner}, not to root: a root-run command there could be made to write wherever that user points it. Run it as the owner instead, e.g. `sudo -u docspace-siem docspace-siem cursor …` (the service user)"
    )]
    Owner {
        /// The directory.
        path: PathBuf,
        /// Its owner's uid.
        owner: u32,
    },
    /// A state directory every user may write to (such as `/tmp`).
    #[error(
        "state directory {0} is writable by every user; give the agent a directory of its own (the default is /var/lib/docspace-siem)"
    )]
    Shared(PathBuf),
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
    /// `cursors/`, opened without following a link.
    cursors: PrivateDir,
    // Held for the life of the agent: the OS lock goes with the descriptor.
    _lock: File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CursorError + '_ {
    move |source| CursorError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The effective user and group ids of this process (`/proc/self/status`; `None` where there
/// is no procfs).
pub fn effective_ids() -> Option<(u32, u32)> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field("Uid:")?, field("Gid:")?))
}

impl StateDir {
    /// Opens and locks the directory, creating it (0700) when missing. Refuses, as root, a
    /// directory another user owns, and for anyone a directory every user may write to.
    pub fn open(root: &Path) -> Result<StateDir, CursorError> {
        let created = match fs::symlink_metadata(root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut b = fs::DirBuilder::new();
                b.recursive(true);
                #[cfg(unix)]
                b.mode(0o700);
                b.create(root).map_err(io(root))?;
                true
            }
            _ => false,
        };
        let base = PrivateDir::open_trusted(root).map_err(io(root))?;
        #[cfg(unix)]
        {
            let md = base.fd.metadata().map_err(io(root))?;
            if md.mode() & 0o002 != 0 {
                return Err(CursorError::Shared(root.to_path_buf()));
            }
            if let Some((0, _)) = effective_ids()
                && md.uid() != 0
            {
                return Err(CursorError::Owner {
                    path: root.to_path_buf(),
                    owner: md.uid(),
                });
            }
            if created {
                // Only a directory this process made is given its mode (never /tmp, never
                // another user's directory).
                use std::os::unix::fs::PermissionsExt as _;
                let _ = base.fd.set_permissions(fs::Permissions::from_mode(0o700));
            }
        }
        let _ = created;
        let cursors = base
            .subdir("cursors", true)
            .map_err(io(&root.join("cursors")))?;
        let lock_path = root.join("lock");
        let lock = base.open_lock("lock").map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(CursorError::Locked(root.to_path_buf()));
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        // Temp files of a save that a crash interrupted: the old cursor is intact beside them.
        if let Ok(entries) = fs::read_dir(cursors.at("")) {
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') && name.contains(".json.tmp-") {
                    let _ = cursors.remove(&name);
                }
            }
        }
        Ok(StateDir {
            root: root.to_path_buf(),
            cursors,
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
        self.load_lane(portal, stream, None)
    }

    /// Loads the cursor of one sink of a portal/stream (`sink`), or the stream's own (`None`);
    /// `Ok(None)` when there is none. A corrupt file is moved aside, as by [`StateDir::load`].
    pub fn load_lane(
        &self,
        portal: &str,
        stream: Stream,
        sink: Option<&str>,
    ) -> Result<Option<Cursor>, CursorError> {
        let name = lane_name(portal, stream, sink);
        let path = self.root.join("cursors").join(&name);
        let bytes = match self.cursors.read(&name) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        match decode(&bytes, portal, stream) {
            Ok(c) => Ok(Some(c)),
            Err(reason) => {
                let moved = format!(
                    "{name}.corrupt-{}",
                    OffsetDateTime::now_utc().unix_timestamp()
                );
                self.cursors.rename(&name, &moved).map_err(io(&path))?;
                Err(CursorError::Corrupt {
                    moved_to: path.with_file_name(moved),
                    path,
                    reason,
                })
            }
        }
    }

    /// Saves a cursor atomically (temp file, fsync, rename, fsync of the directory).
    pub fn save(&self, portal: &str, stream: Stream, cursor: &Cursor) -> Result<(), CursorError> {
        self.save_lane(portal, stream, None, cursor)
    }

    /// Saves the cursor of one sink of a portal/stream (`sink`), or the stream's own (`None`),
    /// atomically; the file format is the same.
    pub fn save_lane(
        &self,
        portal: &str,
        stream: Stream,
        sink: Option<&str>,
        cursor: &Cursor,
    ) -> Result<(), CursorError> {
        let name = lane_name(portal, stream, sink);
        let path = self.root.join("cursors").join(&name);
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
        self.cursors.write_atomic(&name, &bytes).map_err(io(&path))
    }

    /// Deletes a cursor (`cursor reset`): `Ok(false)` when there was none.
    pub fn remove(&self, portal: &str, stream: Stream) -> Result<bool, CursorError> {
        self.remove_lane(portal, stream, None)
    }

    /// Deletes the cursor of one sink (`sink`) or the stream's own (`None`).
    pub fn remove_lane(
        &self,
        portal: &str,
        stream: Stream,
        sink: Option<&str>,
    ) -> Result<bool, CursorError> {
        let name = lane_name(portal, stream, sink);
        match self.cursors.remove(&name) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(&self.root.join("cursors").join(&name))(e)),
        }
    }
}

/// A directory below a trusted one, opened without following symbolic links and used through
/// its descriptor (`/proc/self/fd/N/name`), so that no link planted in it or swapped for it
/// by whoever can write there (the service user) redirects a read, a write, a rename or a
/// delete elsewhere. Files are opened `O_NOFOLLOW`; new ones are created exclusively, 0600.
#[derive(Debug)]
pub struct PrivateDir {
    fd: File,
    /// The directory as configured, for messages.
    shown: PathBuf,
}

#[cfg(unix)]
const NOFOLLOW: i32 = libc::O_NOFOLLOW | libc::O_CLOEXEC;
#[cfg(not(unix))]
const NOFOLLOW: i32 = 0;

impl PrivateDir {
    /// Opens `path` itself as configured (an admin may make it a link), as a directory.
    fn open_trusted(path: &Path) -> std::io::Result<PrivateDir> {
        let mut o = OpenOptions::new();
        o.read(true);
        #[cfg(unix)]
        o.custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC);
        Ok(PrivateDir {
            fd: o.open(path)?,
            shown: path.to_path_buf(),
        })
    }

    /// Opens `path`, whose last `depth` components lie inside the trusted part (such as
    /// `state_dir/alerts/NAME` with depth 2): those are created (0700) when `create` and never
    /// followed when they are links.
    pub fn open_below(path: &Path, depth: usize, create: bool) -> std::io::Result<PrivateDir> {
        let parts: Vec<_> = path.components().collect();
        let split = parts.len().saturating_sub(depth);
        let base: PathBuf = parts[..split].iter().collect();
        let mut dir = PrivateDir::open_trusted(&base)?;
        for part in &parts[split..] {
            let name = part.as_os_str().to_string_lossy();
            dir = dir.subdir(&name, create)?;
        }
        Ok(dir)
    }

    /// The directory as configured.
    pub fn path(&self) -> &Path {
        &self.shown
    }

    /// Where `name` inside this very directory is, whatever happened to its path since.
    fn at(&self, name: &str) -> PathBuf {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd as _;
            let proc = PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()));
            if proc.is_dir() {
                return proc.join(name);
            }
        }
        self.shown.join(name)
    }

    /// The directory `name` inside this one, created 0700 when `create` and missing; a link
    /// there is refused (`ELOOP`).
    fn subdir(&self, name: &str, create: bool) -> std::io::Result<PrivateDir> {
        if create {
            let mut b = fs::DirBuilder::new();
            #[cfg(unix)]
            b.mode(0o700);
            match b.create(self.at(name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        let mut o = OpenOptions::new();
        o.read(true);
        #[cfg(unix)]
        o.custom_flags(libc::O_DIRECTORY | NOFOLLOW);
        let fd = o.open(self.at(name)).map_err(|e| {
            // O_DIRECTORY answers ENOTDIR for a link before O_NOFOLLOW's ELOOP: say what it is.
            if fs::symlink_metadata(self.at(name)).is_ok_and(|m| m.file_type().is_symlink()) {
                no_links(std::io::Error::from_raw_os_error(libc::ELOOP), name)
            } else {
                e
            }
        })?;
        Ok(PrivateDir {
            fd,
            shown: self.shown.join(name),
        })
    }

    /// The lock file: opened or created (0600), never through a link, never truncated, and
    /// only a regular file (a FIFO planted there cannot block the open: `O_NONBLOCK`).
    fn open_lock(&self, name: &str) -> std::io::Result<File> {
        let mut o = OpenOptions::new();
        o.create(true).truncate(false).write(true);
        #[cfg(unix)]
        o.mode(0o600).custom_flags(NOFOLLOW | libc::O_NONBLOCK);
        let f = o.open(self.at(name)).map_err(|e| no_links(e, name))?;
        regular(f, name)
    }

    /// Reads `name` whole (never through a link).
    pub fn read(&self, name: &str) -> std::io::Result<Vec<u8>> {
        let mut o = OpenOptions::new();
        o.read(true);
        #[cfg(unix)]
        o.custom_flags(NOFOLLOW | libc::O_NONBLOCK);
        let mut f = regular(o.open(self.at(name)).map_err(|e| no_links(e, name))?, name)?;
        let mut out = Vec::new();
        f.read_to_end(&mut out)?;
        Ok(out)
    }

    /// Replaces `name` atomically: a temp file of an unpredictable name created exclusively
    /// (0600), written, fsynced, renamed over `name`, then the directory fsynced. A failed
    /// write leaves the old file and no temp file.
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let tmp = format!(
            ".{name}.tmp-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        );
        let result = (|| {
            let mut o = OpenOptions::new();
            o.write(true).create_new(true);
            #[cfg(unix)]
            o.mode(0o600).custom_flags(NOFOLLOW);
            let mut f = o.open(self.at(&tmp))?;
            f.write_all(bytes)?;
            failpoint("cursor-after-write");
            f.sync_all()?;
            drop(f);
            failpoint("cursor-before-rename");
            fs::rename(self.at(&tmp), self.at(name))?;
            failpoint("cursor-after-rename");
            self.fd.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(self.at(&tmp));
        }
        result
    }

    /// Appends to `name` (created 0600; never through a link, only a regular file).
    pub fn append(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let mut o = OpenOptions::new();
        o.create(true).append(true);
        #[cfg(unix)]
        o.mode(0o600).custom_flags(NOFOLLOW | libc::O_NONBLOCK);
        let mut f = regular(o.open(self.at(name)).map_err(|e| no_links(e, name))?, name)?;
        f.write_all(bytes)?;
        f.sync_data()
    }

    /// The size of `name`, if it is a regular file.
    pub fn len(&self, name: &str) -> Option<u64> {
        fs::symlink_metadata(self.at(name))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    /// Renames `from` to `to` inside this directory (a link is moved, never followed).
    pub fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        fs::rename(self.at(from), self.at(to))
    }

    /// Removes `name` (a link is removed, never followed).
    pub fn remove(&self, name: &str) -> std::io::Result<()> {
        fs::remove_file(self.at(name))
    }
}

/// `ELOOP` from `O_NOFOLLOW` as what it means.
fn no_links(e: std::io::Error, name: &str) -> std::io::Error {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ELOOP) {
        return std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "{name} is a symbolic link; refusing to follow it (only the agent's own files belong in the state directory)"
            ),
        );
    }
    let _ = name;
    e
}

/// `f` when it is a regular file.
fn regular(f: File, name: &str) -> std::io::Result<File> {
    if f.metadata()?.is_file() {
        Ok(f)
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{name} is not a regular file"),
        ))
    }
}

/// The file of a stream's cursor (`<portal>.<stream>.json`) or of one of its sinks
/// (`<portal>.<stream>.<sink>.json`). Table names hold no dot, so the two never collide.
fn lane_name(portal: &str, stream: Stream, sink: Option<&str>) -> String {
    match sink {
        Some(sink) => format!("{portal}.{}.{sink}.json", stream.as_str()),
        None => format!("{portal}.{}.json", stream.as_str()),
    }
}

/// Path of the cursor file of one sink of a portal/stream (`None`: the stream's own).
pub fn lane_path(root: &Path, portal: &str, stream: Stream, sink: Option<&str>) -> PathBuf {
    root.join("cursors").join(lane_name(portal, stream, sink))
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
    read_only_lane(root, portal, stream, None)
}

/// [`read_only`] for the cursor of one sink (`sink`) or the stream's own (`None`).
pub fn read_only_lane(
    root: &Path,
    portal: &str,
    stream: Stream,
    sink: Option<&str>,
) -> Result<Option<Cursor>, CursorError> {
    let path = lane_path(root, portal, stream, sink);
    let read = || -> std::io::Result<Vec<u8>> {
        // `cursors` through its descriptor, the file without following a link.
        PrivateDir::open_below(&root.join("cursors"), 1, false)?
            .read(&lane_name(portal, stream, sink))
    };
    let bytes = match read() {
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

    /// See: issue 16. Links planted below the state directory redirect nothing: a linked
    /// directory is refused, a linked file is neither appended to nor read, and an atomic
    /// write replaces the link itself (its target untouched); temp names are unpredictable.
    #[cfg(unix)]
    #[test]
    fn private_dirs_follow_no_link() {
        let dir = tempfile::tempdir().expect("tmp");
        let base = dir.path().join("state");
        fs::create_dir(&base).expect("state");
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).expect("outside");
        let target = outside.join("target");
        fs::write(&target, b"keep").expect("target");
        // dead-letter/ as a link to another directory.
        std::os::unix::fs::symlink(&outside, base.join("dead-letter")).expect("link");
        let e = PrivateDir::open_below(&base.join("dead-letter"), 1, true).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        // alerts/x/seen.json as a link to a file.
        let alerts = PrivateDir::open_below(&base.join("alerts").join("x"), 2, true).expect("dir");
        std::os::unix::fs::symlink(&target, base.join("alerts/x/seen.json")).expect("link");
        assert!(alerts.append("seen.json", b"more").is_err());
        assert!(alerts.read("seen.json").is_err());
        alerts.write_atomic("seen.json", b"{}").expect("write");
        assert_eq!(fs::read(&target).expect("target"), b"keep");
        assert!(
            fs::symlink_metadata(base.join("alerts/x/seen.json"))
                .expect("md")
                .is_file()
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| fs::metadata(p).expect("md").permissions().mode() & 0o777;
        assert_eq!(mode(&base.join("alerts/x/seen.json")), 0o600);
        assert_eq!(mode(&base.join("alerts")), 0o700);
        assert_eq!(fs::read_dir(&outside).expect("dir").count(), 1);
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
