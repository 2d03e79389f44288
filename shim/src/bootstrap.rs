//! The shim binary's three actions, as containerd 1.6 and later call them.
//!
//! containerd-shim 0.12's own `run` speaks only the task API v3 and answers `start` with the
//! JSON of containerd 2.x, which containerd 1.6 (Debian 12's) cannot read. So the shim drives
//! its `Shim` implementation itself, reusing the library's pieces (flags, `spawn`, the exit
//! monitor, the event publisher): `start` prints the bare address, which every containerd
//! accepts, and the server registers the Task service as both `containerd.task.v2.Task` and
//! `containerd.task.v3.Task` (the messages are the same).

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use containerd_shim::monitor::monitor_notify_by_pid;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;
use containerd_shim::protos::shim_async::create_task;
use containerd_shim::protos::ttrpc::r#async::transport::Listener as TtrpcListener;
use containerd_shim::protos::ttrpc::r#async::Server;
use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, Flags, Shim, StartOpts, Task};
use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{info, warn};

use crate::error::{chain, Result, ShimError};
use crate::service::{Service, ADDRESS_FILE};
use crate::{logging, RUNTIME_TYPE};

/// containerd's address for ttrpc events, in the shim's environment.
const TTRPC_ADDRESS: &str = "TTRPC_ADDRESS";
/// The task API names the service is registered under.
const TASK_V2: &str = "containerd.task.v2.Task";
const TASK_V3: &str = "containerd.task.v3.Task";

/// `start`: spawns (or finds) the shim serving this container's group, prints its address.
pub async fn start(flags: &Flags) -> Result<()> {
    let opts = StartOpts {
        id: flags.id.clone(),
        publish_binary: flags.publish_binary.clone(),
        address: flags.address.clone(),
        ttrpc_address: std::env::var(TTRPC_ADDRESS).unwrap_or_default(),
        namespace: flags.namespace.clone(),
        debug: flags.debug,
        extensions: runtime_options(&read_stdin()?)?,
        ..Default::default()
    };
    let mut shim = Service::new(RUNTIME_TYPE, flags, &mut Config::default()).await;
    // `spawn` puts the new server into the `shim_cgroup` of runc's options, if any, and
    // raises its OOM score above containerd's.
    let address = shim
        .start_shim(opts)
        .await
        .map_err(|source| ShimError::Shim {
            op: "start the shim",
            source,
        })?;
    write_stdout(address.as_bytes())
}

/// containerd sends at most this much on `start`'s stdin (its own limit).
const MAX_START_INPUT: u64 = 10 << 20;

/// What containerd wrote to `start`'s stdin: nothing when the shim is started by hand.
fn read_stdin() -> Result<Vec<u8>> {
    use std::io::{IsTerminal, Read};
    let stdin = std::io::stdin();
    let mut input = Vec::new();
    if stdin.is_terminal() {
        return Ok(input);
    }
    stdin
        .lock()
        .take(MAX_START_INPUT)
        .read_to_end(&mut input)
        .map_err(|source| ShimError::Io {
            op: "read the runtime options from",
            path: "stdin".into(),
            source,
        })?;
    Ok(input)
}

/// The runtime options containerd 1.6/1.7 pass to `start`: one protobuf `Any` (runc's
/// `Options`, or CRI's generic `runtimeoptions`), or nothing. Bytes that are not an `Any`
/// fail the start, as under runc-v2, rather than starting the shim without its cgroup.
fn runtime_options(input: &[u8]) -> Result<Vec<Any>> {
    if input.is_empty() {
        return Ok(Vec::new());
    }
    let any = Any::parse_from_bytes(input).map_err(|source| ShimError::Protobuf {
        what: "the runtime options on stdin",
        source,
    })?;
    Ok(if any.type_url.is_empty() {
        Vec::new()
    } else {
        vec![any]
    })
}

/// `delete`: cleans up after a shim that died (containerd calls it then).
pub async fn delete(flags: &Flags) -> Result<()> {
    reap_children()?;
    let mut shim = Service::new(RUNTIME_TYPE, flags, &mut Config::default()).await;
    let response = shim.delete_shim().await.map_err(|source| ShimError::Shim {
        op: "clean up the container",
        source,
    })?;
    let bytes = response
        .write_to_bytes()
        .map_err(|source| ShimError::Protobuf {
            what: "the delete response",
            source,
        })?;
    write_stdout(&bytes)
}

/// The long-lived shim: serves the Task service on `flags.socket` until Shutdown.
pub async fn serve(flags: &Flags) -> Result<()> {
    logging::init(Path::new(logging::LOG_FIFO), flags.debug)?;
    nix::sys::prctl::set_child_subreaper(true).map_err(|source| ShimError::Sys {
        op: "becoming a subreaper",
        source,
    })?;
    reap_children()?;
    let Some(socket) = bind(&flags.socket)? else {
        // Another shim of the same group serves this address already.
        std::fs::write(ADDRESS_FILE, &flags.socket).map_err(|source| ShimError::Io {
            op: "write",
            path: ADDRESS_FILE.into(),
            source,
        })?;
        return Ok(());
    };
    // Removed however serving ends, an error on the way included (only a kill leaves it).
    let socket_file = MadePath::new(socket_path(&flags.socket));
    let mut shim = Service::new(RUNTIME_TYPE, flags, &mut Config::default()).await;
    let ttrpc_address = std::env::var(TTRPC_ADDRESS).unwrap_or_default();
    let publisher = RemotePublisher::new(&ttrpc_address)
        .await
        .map_err(|source| ShimError::Shim {
            op: "connect to containerd's event service",
            source,
        })?;
    let task: Arc<dyn Task + Send + Sync> = Arc::new(shim.create_task_service(publisher).await);
    let mut services = create_task(Arc::clone(&task));
    if let Some(v3) = create_task(task).remove(TASK_V3) {
        services.insert(TASK_V2.to_owned(), v3);
    }
    let listener = TtrpcListener::try_from(socket).map_err(|source| ShimError::Io {
        op: "serve ttrpc on",
        path: flags.socket.clone().into(),
        source,
    })?;
    let mut server = Server::new()
        .add_listener(listener)
        .register_service(services);
    server.start().await.map_err(|source| ShimError::Server {
        op: "start",
        source,
    })?;
    // `start` copies our stdout until it closes: point it at stderr to say we are up.
    nix::unistd::dup2_stdout(std::io::stderr()).map_err(|source| ShimError::Sys {
        op: "closing stdout",
        source,
    })?;
    info!(socket = %flags.socket, "shim serving");
    shim.wait().await;
    info!("shim exiting");
    // Unlinked first: a shim of the same id started from now on binds paths of its own, and
    // containerd's next `start` does not find this dying one serving.
    socket_file.remove();
    shim.learner().cleanup();
    if let Err(e) = server.shutdown().await {
        warn!(error = chain(&e), "ttrpc server shutdown");
    }
    // The Delete before containerd's Shutdown queued a TaskDelete, maybe not published yet.
    shim.finish_events().await;
    Ok(())
}

/// A path this shim made (a socket, its state directory), removed (on drop too) only while it
/// still names what this shim made: a shim of the same id started meanwhile makes its own at
/// the same path. Until 2026-12-07 an exiting shim removed them by name, at its very end, and
/// could take a newer shim's sockets with it.
#[derive(Debug)]
pub(crate) struct MadePath {
    path: PathBuf,
    made: Option<(u64, u64)>,
}

impl MadePath {
    /// What `path` names now.
    pub(crate) fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let made = file_id(&path);
        Self { path, made }
    }

    /// Removes it (a directory only when empty), if it is still what it was.
    pub(crate) fn remove(&self) {
        if self.made.is_none() || file_id(&self.path) != self.made {
            return;
        }
        let _ = if self.path.is_dir() {
            std::fs::remove_dir(&self.path)
        } else {
            std::fs::remove_file(&self.path)
        };
    }
}

impl Drop for MadePath {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The device and inode `path` names (not following a last symlink).
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Removes the socket of `address` once nothing serves it: a server killed as it started may
/// have bound it. A shim already serving it (of the same group) keeps it; one still dying is
/// waited for, at most 2 s.
pub(crate) async fn remove_unserved_socket(address: &str) {
    let path = socket_path(address);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match tokio::net::UnixStream::connect(path).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                if let Err(e) = std::fs::remove_file(path) {
                    warn!(
                        socket = path,
                        error = chain(&e),
                        "cannot remove the socket of a shim that failed to start"
                    );
                }
                return;
            }
            Err(_) => return,
            Ok(_) if tokio::time::Instant::now() >= deadline => return,
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
}

/// The path of a `unix://` address.
fn socket_path(address: &str) -> &str {
    address.strip_prefix("unix://").unwrap_or(address)
}

/// Binds the shim socket; `None` when a live shim already serves it (a stale one is replaced).
fn bind(address: &str) -> Result<Option<UnixListener>> {
    let path = socket_path(address);
    let io = |op, source| ShimError::Io {
        op,
        path: path.into(),
        source,
    };
    if let Some(parent) = Path::new(path).parent() {
        std::fs::create_dir_all(parent).map_err(|e| io("create the directory of", e))?;
    }
    match UnixListener::bind(path) {
        Ok(l) => Ok(Some(l)),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if UnixStream::connect(path).is_ok() {
                return Ok(None);
            }
            std::fs::remove_file(path).map_err(|e| io("remove the stale socket", e))?;
            UnixListener::bind(path)
                .map(Some)
                .map_err(|e| io("bind", e))
        }
        Err(e) => Err(io("bind", e)),
    }
}

/// Reaps every child on SIGCHLD and reports its exit to the library's monitor (the container
/// processes re-parented to the subreaper, and runc commands).
fn reap_children() -> Result<()> {
    let mut sigchld = signal(SignalKind::child()).map_err(|source| ShimError::Io {
        op: "watch SIGCHLD",
        path: "signal".into(),
        source,
    })?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(|source| ShimError::Io {
        op: "watch SIGTERM",
        path: "signal".into(),
        source,
    })?;
    tokio::spawn(async move {
        while sigchld.recv().await.is_some() {
            loop {
                let (pid, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::Exited(pid, code)) => (pid, code),
                    Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as i32),
                    Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                    Ok(_) => continue,
                    Err(e) => {
                        warn!(error = chain(&e), "waitpid");
                        break;
                    }
                };
                if let Err(e) = monitor_notify_by_pid(pid.as_raw(), code).await {
                    warn!(
                        pid = pid.as_raw(),
                        error = chain(&e),
                        "cannot report an exit"
                    );
                }
            }
        }
    });
    // containerd stops shims with Shutdown. runc-v2 exits on SIGTERM and its containers run on;
    // this shim's containers would not (the kernel fails their traced syscalls with ENOSYS once
    // the notify fds close), so SIGTERM is logged and ignored. SIGKILL still ends it.
    tokio::spawn(async move {
        while sigterm.recv().await.is_some() {
            warn!("SIGTERM ignored: the containers' seccomp supervisors run in this shim");
        }
    });
    Ok(())
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|source| ShimError::Io {
            op: "write",
            path: "stdout".into(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use containerd_shim::protos::protobuf::MessageFull;
    use containerd_shim::protos::shim::oci::Options;

    use super::*;

    /// A path is removed only while it names what was made: what a newer shim made at the
    /// same path stays.
    #[test]
    fn a_made_path_is_removed_only_while_it_is_what_was_made() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("s.sock");
        let _first = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let made = MadePath::new(&socket);
        // A newer shim of the same id replaced it.
        std::fs::remove_file(&socket).unwrap();
        let _second = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        made.remove();
        assert!(socket.exists(), "the newer socket was removed");
        drop(made);
        assert!(socket.exists(), "the newer socket was removed on drop");

        let own = MadePath::new(&socket);
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        let state_made = MadePath::new(&state);
        drop(own);
        assert!(!socket.exists());
        state_made.remove();
        assert!(!state.exists());
    }

    /// A socket whose server is gone is removed; one that is served is kept.
    #[tokio::test]
    async fn only_a_socket_nothing_serves_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join("stale.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        assert!(stale.exists());
        remove_unserved_socket(&format!("unix://{}", stale.display())).await;
        assert!(!stale.exists(), "the stale socket is left");

        let served = dir.path().join("served.sock");
        let _server = std::os::unix::net::UnixListener::bind(&served).unwrap();
        remove_unserved_socket(&format!("unix://{}", served.display())).await;
        assert!(served.exists(), "a served socket was removed");

        remove_unserved_socket(&format!("unix://{}", dir.path().join("none").display())).await;
    }

    #[test]
    fn no_input_means_no_options() {
        assert!(runtime_options(&[]).unwrap().is_empty());
    }

    #[test]
    fn runc_options_reach_spawn_with_their_shim_cgroup() {
        let options = Options {
            shim_cgroup: "/containerd/shim".into(),
            ..Default::default()
        };
        let any = Any::pack(&options).unwrap();
        let opts = StartOpts {
            extensions: runtime_options(&any.write_to_bytes().unwrap()).unwrap(),
            ..Default::default()
        };
        let got = opts.extension::<Options>().unwrap().unwrap();
        assert_eq!(got.shim_cgroup, "/containerd/shim");
        assert_eq!(
            Options::descriptor().full_name(),
            "containerd.runc.v1.Options"
        );
    }

    #[test]
    fn garbage_on_stdin_fails_the_start() {
        let err = runtime_options(b"\xff\xff\xff not protobuf").unwrap_err();
        assert!(
            err.to_string().contains("runtime options on stdin"),
            "{err}"
        );
    }
}
