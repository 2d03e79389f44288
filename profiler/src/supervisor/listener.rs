//! The listener protocol: runc sends each container process's notify fd here.
//!
//! The shim puts this socket's path in `linux.seccomp.listenerPath`. For every container process
//! it starts under a filter with `SCMP_ACT_NOTIFY` rules (the init process, then each exec), runc
//! connects once and sends, in one `sendmsg`, the OCI `ContainerProcessState` JSON (`ociVersion`,
//! `fds: ["seccompFd"]`, `pid`, `metadata` = `listenerMetadata`, `state`) with the listener fd as
//! `SCM_RIGHTS`. It does not wait for a reply, and it may not close the connection promptly, so
//! a message is complete as soon as it parses.
//!
//! Everything about a connection is checked before its fd is handed out: the peer must be root
//! (`SO_PEERCRED`), the message at most [`ListenerConfig::max_message`] bytes of valid JSON, the
//! fds exactly the one named `seccompFd`, and that fd a seccomp listener. A rejected connection
//! is counted and logged (rate-limited) and everything it sent, fds included, is closed; but
//! first the processes of a seccomp listener it sent are stopped ([`stop_filtered`]): runc init
//! keeps its own copy of the listener while it waits, in a notified `read`, for runc's go-ahead,
//! so with nobody to answer that call it, and `runc create` with it, would wait for ever.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use oci_spec::runtime::{ContainerProcessState, SECCOMP_FD_NAME};

use super::ratelimit::RateLimit;
use crate::sys::{scm, SysError};

/// Settings of the listener socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// The largest message accepted (runc's is a few KiB, but the state carries the spec's
    /// annotations, which Kubernetes allows up to 256 KiB of).
    pub max_message: usize,
    /// How long a peer may take to send its message.
    pub read_timeout: Duration,
    /// The only uid allowed to connect (root: runc runs as root under containerd).
    pub peer_uid: u32,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            max_message: 1024 * 1024,
            read_timeout: Duration::from_secs(5),
            peer_uid: 0,
        }
    }
}

/// Why a connection was refused (or the listener failed).
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// Binding or accepting on the socket failed.
    #[error("listener socket {path:?}: {op} failed")]
    Socket {
        /// The socket path.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
    /// Setting up or reading the connection failed.
    #[error("reading a listener connection failed")]
    Read {
        /// The error.
        source: SysError,
    },
    /// `SO_PEERCRED` could not be read.
    #[error("cannot read the peer's credentials")]
    PeerCred {
        /// The error.
        source: Errno,
    },
    /// The peer is not the allowed user.
    #[error("peer pid {pid} runs as uid {uid}, expected uid {expected}")]
    PeerUid {
        /// The peer's pid.
        pid: i32,
        /// The peer's uid.
        uid: u32,
        /// The allowed uid.
        expected: u32,
    },
    /// The peer closed its connection without sending anything: a check that the socket is
    /// served (the shim's `delete` makes one), not runc.
    #[error("the peer sent nothing")]
    Empty,
    /// The peer sent nothing in time.
    #[error("the peer sent no complete message within {timeout:?}")]
    Timeout {
        /// The limit.
        timeout: Duration,
    },
    /// The message is larger than allowed.
    #[error("message larger than {max} bytes")]
    Oversized {
        /// The limit.
        max: usize,
    },
    /// The message is not a container process state.
    #[error("message is not a valid ContainerProcessState")]
    Json {
        /// The parse error.
        source: serde_json::Error,
    },
    /// The fds sent do not match the names in `fds` (or more were sent than fit).
    #[error("message names fds {named:?} but carried {received} (truncated: {truncated})")]
    Fds {
        /// The names in the message.
        named: Vec<String>,
        /// How many were received.
        received: usize,
        /// The sender attached more fds than we take.
        truncated: bool,
    },
    /// The fd named `seccompFd` is not a seccomp listener.
    #[error("the seccompFd is {what:?}, not a seccomp listener")]
    NotSeccomp {
        /// What `/proc/self/fd` says it is.
        what: String,
    },
    /// The state names no process.
    #[error("container process pid {pid} is not valid")]
    Pid {
        /// The pid given.
        pid: i32,
    },
}

/// A notify fd with the process state runc sent with it.
#[derive(Debug)]
pub struct Accepted {
    /// The container process state (`metadata` is the filter's `listenerMetadata`).
    pub state: ContainerProcessState,
    /// The notify listener: give it to a [`super::KernelNotifier`].
    pub seccomp_fd: OwnedFd,
    /// The peer's pid (runc).
    pub peer_pid: i32,
}

/// Counters of a listener.
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// Connections whose fd was handed out.
    pub accepted: AtomicU64,
    /// Connections refused.
    pub rejected: AtomicU64,
    /// `accept` calls that failed for want of fds or memory and were retried after a pause.
    pub accept_retries: AtomicU64,
}

/// The Unix socket server runc connects to.
#[derive(Debug)]
pub struct Listener {
    socket: UnixListener,
    path: PathBuf,
    config: ListenerConfig,
    log: RateLimit,
    stats: ListenerStats,
}

impl Listener {
    /// Binds `path` (a stale socket file there is replaced), readable by its owner only.
    pub fn bind(path: &Path, config: ListenerConfig) -> Result<Self, ListenerError> {
        let err = |op, source| ListenerError::Socket {
            path: path.to_owned(),
            op,
            source,
        };
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(err("remove stale socket", e)),
        }
        let socket = UnixListener::bind(path).map_err(|e| err("bind", e))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| err("chmod", e))?;
        Ok(Self {
            socket,
            path: path.to_owned(),
            config,
            log: RateLimit::new(Duration::from_secs(10)),
            stats: ListenerStats::default(),
        })
    }

    /// The socket path (for `linux.seccomp.listenerPath`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The counters.
    pub fn stats(&self) -> &ListenerStats {
        &self.stats
    }

    /// Waits for the next valid notify fd; refused connections are counted, logged
    /// (rate-limited) and skipped. An `accept` that fails for a reason that passes is retried:
    /// at once when a peer went away before its connection was taken, after a pause that
    /// doubles from 5 ms to 1 s while the process or the system is out of fds or memory (the
    /// connection waits in the backlog meanwhile). Any other failure is returned.
    pub fn accept(&self) -> Result<Accepted, ListenerError> {
        let mut pause = Backoff::default();
        loop {
            let conn = match self.socket.accept() {
                Ok((conn, _)) => conn,
                Err(e) if peer_gone(&e) => continue,
                Err(e) if out_of_resources(&e) => {
                    self.stats.accept_retries.fetch_add(1, Ordering::Relaxed);
                    let wait = pause.next_pause();
                    if let Some(suppressed) = self.log.check() {
                        tracing::warn!(error = %e, suppressed, retry_ms = wait.as_millis(), "seccomp listener: accept failed; retrying");
                    }
                    std::thread::sleep(wait);
                    continue;
                }
                Err(e) => {
                    return Err(ListenerError::Socket {
                        path: self.path.clone(),
                        op: "accept",
                        source: e,
                    })
                }
            };
            pause = Backoff::default();
            match handle(conn, &self.config) {
                Ok(accepted) => {
                    self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                    return Ok(accepted);
                }
                Err(e) => self.rejected(&e),
            }
        }
    }

    fn rejected(&self, error: &ListenerError) {
        if matches!(error, ListenerError::Empty) {
            // Nothing was offered, so nothing was refused (before 2026-12-07 every pod's
            // teardown logged a warning for its `delete`'s check).
            tracing::debug!("seccomp listener: a connection closed without a message");
            return;
        }
        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.log.check() {
            tracing::warn!(error = %error, suppressed, "seccomp listener: connection refused");
        }
    }
}

const ACCEPT_PAUSE_MIN: Duration = Duration::from_millis(5);
const ACCEPT_PAUSE_MAX: Duration = Duration::from_secs(1);

/// The pauses between `accept` retries: 5 ms, doubling up to 1 s.
#[derive(Debug)]
struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Self(ACCEPT_PAUSE_MIN)
    }
}

impl Backoff {
    /// The pause before the next retry.
    fn next_pause(&mut self) -> Duration {
        let pause = self.0;
        self.0 = (pause * 2).min(ACCEPT_PAUSE_MAX);
        pause
    }
}

fn errno_of(error: &io::Error) -> Errno {
    Errno::from_raw(error.raw_os_error().unwrap_or(0))
}

/// A failed `accept` that only lost one connection: its peer went away before it was taken
/// (accept(2) says to retry on these), or a signal interrupted the call.
fn peer_gone(error: &io::Error) -> bool {
    matches!(
        errno_of(error),
        Errno::ECONNABORTED | Errno::EPROTO | Errno::EINTR
    )
}

/// A failed `accept` that may succeed later: the process's fd table or the system's is full,
/// or memory is short.
fn out_of_resources(error: &io::Error) -> bool {
    matches!(
        errno_of(error),
        Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM
    )
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads and checks one connection (what [`Listener::accept`] does per connection). A refused
/// connection's seccomp listener, if it sent one, has its processes stopped ([`stop_filtered`]).
pub fn handle(conn: UnixStream, config: &ListenerConfig) -> Result<Accepted, ListenerError> {
    let mut fds = Vec::new();
    let handled = read_connection(&conn, config, &mut fds);
    if handled.is_err() {
        for fd in fds.into_iter().filter(is_seccomp_listener) {
            stop_filtered(fd);
        }
    }
    handled
}

/// What the kernel says `fd` is (`/proc/self/fd`'s link), empty when it cannot be read.
fn fd_target(fd: &OwnedFd) -> String {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// What a seccomp notify listener's fd is.
const SECCOMP_LISTENER: &str = "anon_inode:seccomp notify";

/// Whether `fd` is a seccomp notify listener.
fn is_seccomp_listener(fd: &OwnedFd) -> bool {
    fd_target(fd) == SECCOMP_LISTENER
}

/// SIGKILLs, in a thread of its own, every process that waits on a notification of
/// `listener`, until none is left using its filter. Nothing else would answer them: a
/// refused container fails to start (its `runc create` sees its init die) instead of hanging
/// (until 2026-12-07 it hung, and its Create held the shim's containers).
fn stop_filtered(listener: OwnedFd) {
    use super::notifier::{KernelNotifier, Notifier, Received, Wait};
    let run = move || {
        // Polling before each receive: the hang-up ends it once the processes are gone.
        let wait = Wait {
            block_in_recv: false,
            ..Wait::default()
        };
        let Ok(mut notifier) = KernelNotifier::new(listener, wait) else {
            return;
        };
        loop {
            match notifier.recv() {
                Ok(Received::Event(n)) => {
                    if let Err(e) = notifier.kill_process(n.tid, n.id) {
                        tracing::warn!(pid = n.tid, error = %e, "seccomp listener: cannot stop a process of a refused connection's filter");
                        return;
                    }
                }
                Ok(Received::Gone) => {}
                Ok(Received::Closed) | Err(_) => return,
            }
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("chaperone-refused".into())
        .spawn(run)
    {
        tracing::warn!(error = %e, "seccomp listener: cannot start the thread that stops a refused connection's processes");
    }
}

fn read_connection(
    conn: &UnixStream,
    config: &ListenerConfig,
    fds: &mut Vec<OwnedFd>,
) -> Result<Accepted, ListenerError> {
    let cred =
        getsockopt(conn, PeerCredentials).map_err(|source| ListenerError::PeerCred { source })?;
    if cred.uid() != config.peer_uid {
        return Err(ListenerError::PeerUid {
            pid: cred.pid(),
            uid: cred.uid(),
            expected: config.peer_uid,
        });
    }
    // One deadline for the whole message: a socket's timeout holds for each read, and a peer
    // sending a byte at a time would hold the acceptor, and every container behind it, for as
    // long as it liked (until 2026-12-07).
    let deadline = std::time::Instant::now() + config.read_timeout;
    let timeout = || ListenerError::Timeout {
        timeout: config.read_timeout,
    };

    let mut message = Vec::new();
    let mut truncated = false;
    let mut chunk = vec![0u8; 16 * 1024];
    let state = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(timeout());
        }
        conn.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .map_err(|e| ListenerError::Read {
                source: SysError::RecvMsg {
                    source: Errno::from_raw(e.raw_os_error().unwrap_or(0)),
                },
            })?;
        let got = match scm::recv(conn.as_fd(), &mut chunk) {
            Ok(got) => got,
            Err(SysError::RecvMsg {
                source: Errno::EAGAIN,
            }) => return Err(timeout()),
            Err(source) => return Err(ListenerError::Read { source }),
        };
        if got.len == 0 && got.fds.is_empty() && message.is_empty() {
            return Err(ListenerError::Empty);
        }
        // Owned at once: whatever happens next, they are closed unless handed out.
        fds.extend(got.fds);
        truncated |= got.ctrunc;
        if message.len() + got.len > config.max_message {
            return Err(ListenerError::Oversized {
                max: config.max_message,
            });
        }
        message.extend_from_slice(&chunk[..got.len]);
        match serde_json::from_slice::<ContainerProcessState>(&message) {
            Ok(state) => break state,
            // Incomplete: read on, unless the peer is done.
            Err(e) if e.is_eof() && got.len > 0 => continue,
            Err(source) => return Err(ListenerError::Json { source }),
        }
    };

    let named = state.fds();
    if truncated || named.len() != fds.len() || named.len() != 1 || named[0] != SECCOMP_FD_NAME {
        return Err(ListenerError::Fds {
            named: named.clone(),
            received: fds.len(),
            truncated,
        });
    }
    if *state.pid() <= 0 {
        return Err(ListenerError::Pid { pid: *state.pid() });
    }
    let what = fd_target(&fds[0]);
    if what != SECCOMP_LISTENER {
        return Err(ListenerError::NotSeccomp { what });
    }
    let seccomp_fd = fds.remove(0);
    Ok(Accepted {
        state,
        seccomp_fd,
        peer_pid: cred.pid(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_retries_wait_5_ms_doubling_to_at_most_1_s() {
        let mut backoff = Backoff::default();
        let pauses: Vec<u128> = (0..11).map(|_| backoff.next_pause().as_millis()).collect();
        assert_eq!(pauses, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
    }
}
