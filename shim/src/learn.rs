//! Learn mode in the shim: ONE listener socket per shim, bound on first use, and one supervisor
//! thread per notify fd runc sends there.
//!
//! The supervisor is blocking code (it sleeps in `SECCOMP_IOCTL_NOTIF_RECV`), so it runs on
//! dedicated OS threads, never on the tokio runtime's workers: an acceptor thread takes each
//! connection and starts a `chaperone-sup` thread for its fd. A supervisor ends when its filter
//! has no users left, that is when the container process (and everything it forked) exited; it
//! then logs what it learned. The profile store comes later.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chaperone_config::DEFAULT_ORDER;
use chaperone_profiler::model::NgramCounts;
use chaperone_profiler::supervisor::listener::{Accepted, Listener, ListenerConfig};
use chaperone_profiler::supervisor::{
    Fixed, KernelNotifier, Learn, Stats, Supervisor, SupervisorConfig, Verdict, Wait,
};
use tracing::{info, warn};

use crate::error::{Result, ShimError};

/// The listener socket's file name in the shim's state directory.
pub const SOCKET: &str = "chaperone.sock";
/// Overrides [`DEFAULT_RUN_DIR`] (tests point it into their temp dir).
pub const RUN_DIR_ENV: &str = "CHAPERONE_RUN_DIR";
/// Where shims keep their state directories.
pub const DEFAULT_RUN_DIR: &str = "/run/chaperone";

/// The state directory of the shim serving `address` (its ttrpc socket address).
///
/// A Unix socket path must fit in 108 bytes, and a bundle directory under containerd's state
/// dir with a 64-character id does not leave room, so the directory is short:
/// `<run dir>/s/<hash of the address>`, as containerd names shim sockets.
pub fn state_dir(address: &str) -> PathBuf {
    let run = std::env::var_os(RUN_DIR_ENV).map_or_else(|| DEFAULT_RUN_DIR.into(), PathBuf::from);
    run.join("s")
        .join(format!("{:016x}", fnv1a(address.as_bytes())))
}

/// FNV-1a, 64 bits: stable across builds and processes (the delete action recomputes it).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Removes a state directory whose socket nobody serves (best effort).
pub fn remove_stale(dir: &Path) {
    let socket = dir.join(SOCKET);
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        return;
    }
    let _ = std::fs::remove_file(&socket);
    let _ = std::fs::remove_dir(dir);
}

/// The shim's learner: its state directory and, once bound, its listener thread.
#[derive(Debug)]
pub struct Learner {
    dir: PathBuf,
    bound: Mutex<bool>,
    stats: Arc<Stats>,
}

impl Learner {
    /// A learner keeping its socket in `dir` (nothing is bound until [`Learner::socket`]).
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            bound: Mutex::new(false),
            stats: Arc::new(Stats::default()),
        }
    }

    /// The listener socket's path, binding it and starting the acceptor thread on first use.
    pub fn socket(&self) -> Result<PathBuf> {
        let path = self.dir.join(SOCKET);
        let mut bound = self.bound.lock().unwrap_or_else(|e| e.into_inner());
        if *bound {
            return Ok(path);
        }
        create_private_dir(&self.dir)?;
        let listener = Listener::bind(&path, ListenerConfig::default())
            .map_err(|source| ShimError::Listener { source })?;
        let stats = Arc::clone(&self.stats);
        std::thread::Builder::new()
            .name("chaperone-accept".into())
            .spawn(move || accept_loop(&listener, &stats))
            .map_err(|source| ShimError::Io {
                op: "start the acceptor thread for",
                path: path.clone(),
                source,
            })?;
        *bound = true;
        info!(socket = %path.display(), "seccomp listener bound");
        Ok(path)
    }

    /// Counters summed over every supervisor of this shim.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Removes the socket and the state directory (at shim exit).
    pub fn cleanup(&self) {
        let _ = std::fs::remove_file(self.dir.join(SOCKET));
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| ShimError::Io {
            op: "create",
            path: dir.to_owned(),
            source,
        })
}

fn accept_loop(listener: &Listener, stats: &Arc<Stats>) {
    loop {
        let accepted = match listener.accept() {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, "seccomp listener failed; no more containers are traced");
                return;
            }
        };
        let stats = Arc::clone(stats);
        let spawned = std::thread::Builder::new()
            .name("chaperone-sup".into())
            .spawn(move || supervise(accepted, stats));
        if let Err(e) = spawned {
            // The fd went with the closure: the kernel now fails the container's traced
            // syscalls with ENOSYS. Say so loudly.
            warn!(error = %e, "cannot start a supervisor thread; the container is not served");
        }
    }
}

fn supervise(accepted: Accepted, stats: Arc<Stats>) {
    let container = accepted.state.metadata().clone().unwrap_or_default();
    let pid = accepted.state.pid();
    let result = (|| {
        let notifier = KernelNotifier::new(accepted.seccomp_fd, Wait::default())?;
        let mode = Learn::new(NgramCounts::new(DEFAULT_ORDER)?);
        let mut sup = Supervisor::new(
            notifier,
            mode,
            Fixed::new(Verdict::Continue),
            SupervisorConfig::default(),
            stats,
        )?;
        sup.run()?;
        let (mode, _) = sup.into_parts();
        Ok::<_, chaperone_profiler::supervisor::SupervisorError>(mode.into_counts())
    })();
    match result {
        Ok(counts) => info!(
            container = %container,
            pid,
            events = counts.events(),
            distinct_grams = counts.distinct(),
            "learned the container's syscalls"
        ),
        Err(e) => warn!(container = %container, pid, error = %e, "supervisor failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dirs_are_short_stable_and_distinct() {
        let a = state_dir("unix:///run/containerd/s/0ddfbd72d02b3551e75f3a0ed90b9965b533401be618f43a568bc522764e0ad0");
        let b = state_dir("unix:///run/containerd/s/1ddfbd72d02b3551e75f3a0ed90b9965b533401be618f43a568bc522764e0ad0");
        assert_ne!(a, b);
        assert_eq!(a, state_dir("unix:///run/containerd/s/0ddfbd72d02b3551e75f3a0ed90b9965b533401be618f43a568bc522764e0ad0"));
        if std::env::var_os(RUN_DIR_ENV).is_none() {
            assert!(a.join(SOCKET).as_os_str().len() < 108);
        }
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn the_listener_is_bound_once_and_removed_on_cleanup() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s").join("abc");
        let learner = Learner::new(dir.clone());
        let first = learner.socket().unwrap();
        assert_eq!(learner.socket().unwrap(), first);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&first).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        learner.cleanup();
        assert!(!dir.exists());
    }
}
