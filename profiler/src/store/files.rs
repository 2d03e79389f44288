//! The store's files as the file system has them, looked at before SQLite opens them, and the
//! making of a new store.
//!
//! SQLite cannot be left to find these out itself. Opening a database file that is missing
//! (with `SQLITE_OPEN_CREATE`) or empty, it deletes a `-wal` it finds beside it, and with it
//! the committed changes of the store that `-wal` belongs to: one moved aside without it, as
//! a corrupt store's message once advised. And an empty file reads as a valid store of
//! schema 0, which a writer would migrate into a new, empty one, dropping what a truncation
//! destroyed without a word. So a missing store is made under another name and linked into
//! place whole: no opener ever finds it empty, and an empty file at the store's path is never
//! one being made, but damage.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{Result, StoreError};

/// What is at a store's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    /// Nothing (and no `-wal` holding changes beside it).
    Missing,
    /// A file that is not empty: SQLite's to judge.
    Present,
}

/// `path` with `suffix` appended to its file name, as SQLite names a store's `-wal` and `-shm`.
pub(super) fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// How long an empty file at the store's path may be one a build before 2026-12-07 is making in
/// place (it writes the file's first page a moment after creating it): such a file younger than
/// this is waited for, an older one is damage. Such a creator writes that page as it switches
/// the store to WAL, milliseconds later; a store truncated in place is reported this much
/// later, with its Create waiting meanwhile.
const CREATING_GRACE: Duration = Duration::from_secs(5);

/// Looks at the store's path before SQLite opens it. A `-wal` holding changes beside a missing
/// or empty store is [`StoreError::OrphanWal`]; an empty file without one is
/// [`StoreError::Corrupt`] (once it is older than [`CREATING_GRACE`]): no build since
/// 2026-12-07 leaves its store empty at its path, and SQLite would read it as a new store.
pub(super) fn look(path: &Path) -> Result<Found> {
    // SQLite follows symbolic links, and names the `-wal` after the file they end at.
    let resolved = resolve(path);
    let path = resolved.as_path();
    let began = Instant::now();
    loop {
        // The `-wal` first: a `-wal` appears only once its store is in place, so a `-wal` seen
        // before the store is found missing or empty belongs to a store that went away, never
        // to one another opener is making.
        let wal_holds = fs::metadata(beside(path, "-wal")).is_ok_and(|m| m.len() > 0);
        // One look at the store itself: a second (whether it exists) could see a store another
        // opener linked in meanwhile, and take it for an empty one (review, 2026-12-07).
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                if wal_holds {
                    return Err(StoreError::OrphanWal {
                        path: path.to_owned(),
                    });
                }
                return Ok(Found::Missing);
            }
            // Not ours to judge (a directory that cannot be searched, say): SQLite's open says
            // what is wrong.
            Err(_) => return Ok(Found::Present),
        };
        if meta.len() > 0 {
            return Ok(Found::Present);
        }
        if wal_holds {
            return Err(StoreError::OrphanWal {
                path: path.to_owned(),
            });
        }
        let age = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .unwrap_or(Duration::MAX);
        // Only a regular file can be a store being made (a FIFO or a device is not).
        if !meta.is_file() || age >= CREATING_GRACE || began.elapsed() >= CREATING_GRACE {
            return Err(StoreError::Corrupt {
                path: path.to_owned(),
                reason: "it is empty, 0 bytes: a store truncated, or a file that never was one"
                    .to_owned(),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Where the symbolic links at `path` end (followed as SQLite follows them, each target
/// relative to its link's directory; at most 40, as the kernel's limit): `path` itself when it
/// is no link.
pub(super) fn resolve(path: &Path) -> PathBuf {
    let mut at = path.to_owned();
    for _ in 0..40 {
        let Ok(to) = fs::read_link(&at) else {
            break;
        };
        at = match at.parent() {
            Some(dir) if to.is_relative() => dir.join(to),
            _ => to,
        };
    }
    at
}

/// Why this user may not write the store at `path`, asked when SQLite says it cannot (its
/// "attempt to write a readonly database" names neither the file nor the reason): the file
/// itself, its `-wal` or `-shm`, or its directory, where SQLite makes those two. `None` when
/// none of them is the reason.
pub(super) fn why_not_writable(path: &Path) -> Option<String> {
    let resolved = resolve(path);
    let path = resolved.as_path();
    use nix::errno::Errno;
    use nix::unistd::{eaccess, geteuid, AccessFlags};
    let denied = |file: &Path| match eaccess(file, AccessFlags::W_OK) {
        Ok(()) | Err(Errno::ENOENT) => None,
        Err(e) => Some(e),
    };
    let who = || format!("this user (uid {})", geteuid());
    if let Some(e) = denied(path) {
        return Some(if e == Errno::EROFS {
            format!("{} is on a read-only file system", path.display())
        } else {
            format!("{} may not write {}", who(), path.display())
        });
    }
    let (wal, shm) = (beside(path, "-wal"), beside(path, "-shm"));
    if let Some(file) = [&wal, &shm].into_iter().find(|f| denied(f).is_some()) {
        return Some(format!("{} may not write {}", who(), file.display()));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let to_make = !wal.exists() || !shm.exists() || !path.exists();
    if to_make && denied(dir).is_some() {
        return Some(format!(
            "{} may not write its directory {}, where SQLite makes the store's -wal and -shm",
            who(),
            dir.display()
        ));
    }
    None
}

/// Tells the temporary files of concurrent creators in one process apart.
static CREATED: AtomicU64 = AtomicU64::new(0);

/// Makes a new store at `path`: `init` makes it (schema, WAL) in a new file beside it, which is
/// then hard-linked into place, so the store appears whole or not at all. When another opener
/// put one there first, that one is kept and this one dropped. The temporary file is removed
/// either way; a creator killed before that leaves it behind (`.NAME.new-PID-N`), holding no
/// profile.
pub(super) fn create(path: &Path, init: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let open_err = |source: std::io::Error| StoreError::Open {
        path: path.to_owned(),
        source: Box::new(source),
    };
    // A symbolic link to a store not made yet: the store is made where it points (a link
    // cannot be made over the symbolic link itself), as SQLite made it before 2026-12-07.
    let resolved = resolve(path);
    let path = resolved.as_path();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy();
    let temp = loop {
        let n = CREATED.fetch_add(1, Ordering::Relaxed);
        let temp = dir.join(format!(".{name}.new-{}-{n}", std::process::id()));
        // The mode SQLite gives the files it makes (before the umask).
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&temp)
        {
            Ok(_) => break Removed(temp),
            // Left by a creator killed before it removed it, whose process id this one has.
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(match why_not_writable(path) {
                    Some(cause) => StoreError::NotWritable {
                        path: path.to_owned(),
                        cause,
                        source: Box::new(e),
                    },
                    None => open_err(e),
                })
            }
        }
    };
    init(&temp.0)?;
    match fs::hard_link(&temp.0, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(open_err(e)),
    }
}

/// A file removed when dropped, with the `-wal` and `-shm` SQLite may have left beside it.
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = fs::remove_file(beside(&self.0, suffix));
        }
    }
}
