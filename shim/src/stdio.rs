//! Where a process's stdio goes, as containerd names it in Create and Exec: FIFO paths (plain,
//! or as `fifo://` URIs), a `file://` URI (`ctr run --log-uri file:///...`, the Go client's
//! `cio.LogFile`) naming a file that gets both output streams, appended, or a `binary://` URI
//! naming a logging binary (nerdctl's default, `ctr run --log-uri binary:///...`).
//!
//! For a file, the process writes into pipes and the shim copies them into the file, as
//! containerd's runc shim does: the container never holds a descriptor of a host file, which
//! a root process could reopen, truncate or chmod through `/proc/self/fd`.
//!
//! A logging binary is started as containerd's runc shim starts it: the URI's path is the
//! program, each query pair `k=v` gives two arguments `k` and `v`, the environment holds only
//! `CONTAINER_ID` (the container's id, or the exec's) and `CONTAINER_NAMESPACE`, descriptors 3
//! and 4 are the read ends of the process's stdout and stderr pipes, and the binary closes
//! descriptor 5 (or writes a byte to it) once it is ready. The process starts only then. The
//! process's exit is told once the binary has exited (at most [`crate::console::DRAIN_TIMEOUT`]
//! later); a binary still running when its process is deleted gets SIGTERM, and SIGKILL
//! [`LOGGER_TERM_TIMEOUT`] later. If it exits early, the shim drains the pipes so that the
//! process never blocks on them.
//!
//! A file or binary log takes no stdin and no terminal. Any other scheme is invalid. All of
//! these fail Create or Exec before runc runs.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::signal::Signal;
use runc::io::{IoOption, PipedIo};
use runc::Io;
use tokio::io::AsyncReadExt;
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

use crate::error::{chain, Result, ShimError};
use crate::sys;
use chaperone_profiler::pidfd;

/// How long a logging binary may take to say it is ready.
pub const LOGGER_READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a logging binary has after SIGTERM before SIGKILL (containerd's runc shim: 12 s).
pub const LOGGER_TERM_TIMEOUT: Duration = Duration::from_secs(12);

/// What a stdout string names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// FIFOs, at the paths the strings give ([`fifo_path`] takes off a `fifo://`).
    Fifo,
    /// A file that gets stdout and stderr.
    File(PathBuf),
    /// A logging binary that reads stdout and stderr.
    Binary {
        /// The program.
        path: PathBuf,
        /// Its arguments, from the URI's query.
        args: Vec<String>,
    },
}

/// Reads a Create or Exec request's stdout (containerd decides the scheme by stdout alone).
pub fn target(stdout: &str) -> Result<Target> {
    let Some((scheme, rest)) = split_scheme(stdout) else {
        return Ok(Target::Fifo);
    };
    let invalid = |reason| ShimError::StdioUri {
        uri: stdout.to_owned(),
        reason,
    };
    match scheme {
        "fifo" => Ok(Target::Fifo),
        "file" | "binary" => {
            let Some(rest) = rest.strip_prefix('/') else {
                return Err(invalid(
                    "a file:// or binary:// URI needs an absolute path and no host",
                ));
            };
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            let path = percent_decode(path, false).ok_or_else(|| invalid("bad %-escape"))?;
            if path.is_empty() || path.ends_with('/') || path.contains('\0') {
                return Err(invalid("a file:// or binary:// URI must name a file"));
            }
            let path = Path::new("/").join(path);
            if scheme == "file" {
                return Ok(Target::File(path));
            }
            // As Go's `url.Query` reads it: `&`-separated `k=v` or bare `k` (value ""), with
            // `+` for a space; containerd passes each as the two arguments `k` and `v`.
            let mut args = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                for part in [k, v] {
                    let part = percent_decode(part, true)
                        .filter(|p| !p.contains('\0'))
                        .ok_or_else(|| invalid("bad %-escape in the query"))?;
                    args.push(part);
                }
            }
            Ok(Target::Binary { path, args })
        }
        _ => Err(invalid("the scheme is none of fifo, file and binary")),
    }
}

/// A FIFO path without its `fifo://` scheme, if it has one.
pub fn fifo_path(s: &str) -> &str {
    match split_scheme(s) {
        Some(("fifo", rest)) => rest,
        _ => s,
    }
}

/// `(scheme, rest)` of `scheme://rest`, when the part before `://` is a URI scheme (a letter,
/// then letters, digits, `+`, `-` or `.`); a path that merely contains `://` has none.
fn split_scheme(s: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = s.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some((scheme, rest))
}

/// Undoes `%XX` escapes (Go's `url.URL` writes them for spaces and the like), and in a query
/// `+` for a space; `None` for a broken escape or bytes that are not UTF-8.
fn percent_decode(s: &str, query: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else if query && bytes[i] == b'+' {
            out.push(b' ');
            i += 1;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// containerd's FIFOs (`ctr`, CRI) as a process's own stdio, as runc-v2 connects them (with
/// [`HeldFifos`]). A stream the request leaves empty is /dev/null: runc's own pipe, the
/// default, would be inherited by the process, which keeps it open, and runc's caller would
/// wait for its end.
#[derive(Debug)]
pub struct FifoIo {
    stdin: Option<PathBuf>,
    stdout: Option<PathBuf>,
    stderr: Option<PathBuf>,
}

/// The shim's own ends of a process's FIFOs, which never read or write, kept as long as the
/// process is; runc-v2 keeps the same.
/// - A reader of each output FIFO. A process whose FIFOs lost their readers (`ctr run -d`
///   returned, containerd restarting) would otherwise get EPIPE or be killed by SIGPIPE at
///   its next write; with it, its output waits in the FIFO, and once that is full its writes
///   block until a reader is back.
/// - A writer of the stdin FIFO, until CloseIO: the process (or its terminal's copy) sees
///   the end of stdin only once CloseIO has dropped it and containerd's writer is closed.
#[derive(Debug, Default)]
pub struct HeldFifos {
    stdin: Option<OwnedFd>,
    _outputs: Vec<OwnedFd>,
}

impl HeldFifos {
    /// Opens the shim's ends of the FIFOs `stdin` and, unless the process has a terminal
    /// (whose copy holds its stdout FIFO itself), `stdout` and `stderr`; empty names are none.
    pub fn open(stdin: &str, outputs: [&str; 2]) -> Result<Self> {
        let open = |name: &str, write: bool| {
            let path = Path::new(fifo_path(name));
            // Read-write for stdin: a write-only open would fail while nothing reads.
            std::fs::OpenOptions::new()
                .read(true)
                .write(write)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)
                .map(OwnedFd::from)
                .map_err(io_failure(path)("open the shim's end of the FIFO"))
        };
        let stdin = (!stdin.is_empty()).then(|| open(stdin, true)).transpose()?;
        let outputs = outputs
            .into_iter()
            .filter(|name| !name.is_empty())
            .map(|name| open(name, false))
            .collect::<Result<_>>()?;
        Ok(Self {
            stdin,
            _outputs: outputs,
        })
    }

    /// Drops the shim's writer of stdin (CloseIO).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }
}

impl FifoIo {
    /// The io of the FIFOs `stdin`, `stdout` and `stderr` name (empty: none).
    pub fn io(stdin: &str, stdout: &str, stderr: &str) -> Arc<dyn Io> {
        let path = |s: &str| (!s.is_empty()).then(|| PathBuf::from(fifo_path(s)));
        Arc::new(Self {
            stdin: path(stdin),
            stdout: path(stdout),
            stderr: path(stderr),
        })
    }
}

#[async_trait::async_trait]
impl Io for FifoIo {
    async fn set(&self, cmd: &mut tokio::process::Command) -> std::io::Result<()> {
        let stdin = match &self.stdin {
            // Non-blocking, so that opening it does not wait for containerd's writer; the
            // process reads it blocking.
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(path)?;
                let flags = OFlag::from_bits_retain(fcntl(&file, FcntlArg::F_GETFL)?);
                fcntl(&file, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
                std::process::Stdio::from(file)
            }
            None => std::process::Stdio::null(),
        };
        cmd.stdin(stdin);
        cmd.stdout(fifo_writer(self.stdout.as_deref()).await?);
        cmd.stderr(fifo_writer(self.stderr.as_deref()).await?);
        Ok(())
    }

    async fn close_after_start(&self) {}
}

/// The write end of the FIFO at `path` (the shim holds a reader), or /dev/null.
async fn fifo_writer(path: Option<&Path>) -> std::io::Result<std::process::Stdio> {
    let Some(path) = path else {
        return Ok(std::process::Stdio::null());
    };
    let file = tokio::fs::OpenOptions::new().write(true).open(path).await?;
    Ok(file.into_std().await.into())
}

/// A file log being set up for one process: the pipes runc gives it and the open file.
#[derive(Debug)]
pub struct FileLog {
    pipes: Arc<PipedIo>,
    file: std::fs::File,
    path: PathBuf,
}

impl FileLog {
    /// Creates `path`'s directory (0755) and the file (0644, appended to), and the pipes.
    pub fn open(path: &Path) -> Result<Self> {
        let failed = io_failure(path);
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(failed("create the directory of"))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(failed("open the log file"))?;
        Ok(Self {
            pipes: output_pipes().map_err(failed("make the pipes for"))?,
            file,
            path: path.to_owned(),
        })
    }

    /// The io runc gives the process.
    pub fn io(&self) -> Arc<dyn Io> {
        Arc::clone(&self.pipes) as Arc<dyn Io>
    }

    /// Starts appending the process's stdout and stderr to the file, once runc has given the
    /// process its ends of the pipes. The receiver fires when both reached EOF: every holder
    /// of them (the process, and whatever it started that kept them) is gone.
    pub fn start(self) -> oneshot::Receiver<()> {
        let (drained, done) = oneshot::channel();
        let streams = [self.pipes.stdout(), self.pipes.stderr()];
        let mut copies = Vec::new();
        for mut stream in streams.into_iter().flatten() {
            let file = self.file.try_clone();
            let path = self.path.clone();
            copies.push(tokio::spawn(async move {
                let failed = match file {
                    Ok(file) => tokio::io::copy(&mut stream, &mut tokio::fs::File::from_std(file))
                        .await
                        .err(),
                    Err(e) => Some(e),
                };
                if let Some(e) = failed {
                    // The process must not block on a full pipe: drain what is left.
                    warn!(path = %path.display(), error = chain(&e), "writing the log file failed; the rest of the output is dropped");
                    let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
                }
            }));
        }
        tokio::spawn(async move {
            for copy in copies {
                let _ = copy.await;
            }
            let _ = drained.send(());
        });
        done
    }
}

/// `ShimError::Io` for `op` on `path`.
fn io_failure(
    path: &Path,
) -> impl Fn(&'static str) -> Box<dyn FnOnce(std::io::Error) -> ShimError> {
    let path = path.to_owned();
    move |op| {
        let path = path.clone();
        Box::new(move |source| ShimError::Io { op, path, source })
    }
}

/// A process's stdout and stderr pipes (no stdin).
fn output_pipes() -> std::io::Result<Arc<PipedIo>> {
    let options = IoOption {
        open_stdin: false,
        open_stdout: true,
        open_stderr: true,
    };
    PipedIo::new(0, 0, &options).map(Arc::new)
}

/// Starts `path` with `args` and only `env` in its environment, /dev/null as its stdin,
/// stdout and stderr, and `fds[i]` as its descriptor `3 + i` (Go's `ExtraFiles`); its pid.
///
/// `posix_spawn`, not `std::process::Command`: when the exec fails, std reaps the child itself
/// and panics if the shim's reaper (`waitpid(-1)`) got there first; glibc's `posix_spawn`
/// reports the exec's errno and tolerates that.
fn spawn(
    path: &Path,
    args: &[String],
    env: &[(&str, &str)],
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<u32> {
    use nix::fcntl::OFlag;
    use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags};
    use nix::sys::signal::SigSet;
    use nix::sys::stat::Mode;
    use std::ffi::CString;
    use std::os::fd::AsRawFd;

    let c = |s: &str| CString::new(s).map_err(std::io::Error::other);
    let program = c(&path.to_string_lossy())?;
    let argv = std::iter::once(Ok(program.clone()))
        .chain(args.iter().map(|a| c(a)))
        .collect::<std::io::Result<Vec<_>>>()?;
    let envp = env
        .iter()
        .map(|(k, v)| c(&format!("{k}={v}")))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut actions = PosixSpawnFileActions::init()?;
    actions.add_open(0, "/dev/null", OFlag::O_RDONLY, Mode::empty())?;
    actions.add_open(1, "/dev/null", OFlag::O_WRONLY, Mode::empty())?;
    actions.add_dup2(1, 2)?;
    // Each source first goes above every source and target, so that no dup2 onto 3, 4, ...
    // overwrites a source that is still to be moved.
    let targets = (3..).take(fds.len());
    let sources = fds.iter().map(AsRawFd::as_raw_fd);
    let above = sources.clone().chain(targets.clone()).max().unwrap_or(2) + 1;
    for (i, fd) in (0..).zip(sources) {
        actions.add_dup2(fd, above + i)?;
    }
    for (i, target) in (0..).zip(targets) {
        actions.add_dup2(above + i, target)?;
        actions.add_close(above + i)?;
    }
    let mut attr = PosixSpawnAttr::init()?;
    // Nothing of the shim's signal state: no blocked signals, none ignored (Rust ignores SIGPIPE).
    attr.set_flags(
        PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF,
    )?;
    attr.set_sigmask(&SigSet::empty())?;
    attr.set_sigdefault(&SigSet::all())?;
    let pid = nix::spawn::posix_spawn(program.as_c_str(), &actions, &attr, &argv, &envp)?;
    u32::try_from(pid.as_raw()).map_err(std::io::Error::other)
}

/// A logging binary, running: signalled through its pidfd, so never a process that took over
/// its pid. Dropping it (with its process's record, at Delete) ends it: SIGTERM, then SIGKILL
/// [`LOGGER_TERM_TIMEOUT`] later.
#[derive(Debug)]
pub struct Logger {
    pidfd: OwnedFd,
    pid: u32,
    path: PathBuf,
    exited: watch::Receiver<bool>,
}

impl Logger {
    /// Starts `path` with `args` for the process `id` of `namespace`, its descriptors 3 and 4
    /// the read ends of `pipes` and 5 the write end of `ready`.
    fn spawn(
        path: &Path,
        args: &[String],
        (id, namespace): (&str, &str),
        pipes: &PipedIo,
        ready: OwnedFd,
    ) -> Result<Self> {
        let failed = io_failure(path);
        let (Some(out), Some(err)) = (pipes.stdout.as_ref(), pipes.stderr.as_ref()) else {
            unreachable!("output_pipes opens stdout and stderr");
        };
        let env = [("CONTAINER_ID", id), ("CONTAINER_NAMESPACE", namespace)];
        let fds = [out.rd.as_fd(), err.rd.as_fd(), ready.as_fd()];
        let pid = spawn(path, args, &env, &fds).map_err(failed("start"))?;
        let pidfd = pidfd::open(pid, false)
            .map_err(|e| failed("open a pidfd of")(std::io::Error::other(e)))?;
        let watched = pidfd.try_clone().map_err(failed("open a pidfd of"))?;
        let watched = sys::async_fd(watched).map_err(failed("watch"))?;
        let (exit, exited) = watch::channel(false);
        tokio::spawn(async move {
            // A pidfd polls readable once its process has exited.
            let _ = watched.readable().await;
            let _ = exit.send(true);
        });
        Ok(Self {
            pidfd,
            pid,
            path: path.to_owned(),
            exited,
        })
    }

    /// Whether it has exited (as far as its watcher has seen).
    pub fn exited(&self) -> bool {
        *self.exited.borrow()
    }

    fn failure(&self, reason: &'static str) -> ShimError {
        ShimError::Logger {
            path: self.path.clone(),
            reason,
        }
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        if self.exited() {
            return;
        }
        let (pid, path) = (self.pid, self.path.display().to_string());
        match pidfd::send_signal(self.pidfd.as_fd(), pid, Signal::SIGTERM) {
            Ok(true) => info!(pid, logger = %path, "logging binary sent SIGTERM"),
            Ok(false) => return,
            Err(e) => {
                warn!(pid, logger = %path, error = chain(&e), "cannot signal the logging binary")
            }
        }
        let (Ok(runtime), Ok(pidfd)) = (
            tokio::runtime::Handle::try_current(),
            self.pidfd.try_clone(),
        ) else {
            return;
        };
        let mut exited = self.exited.clone();
        runtime.spawn(async move {
            let gone = exited.wait_for(|exited| *exited);
            if tokio::time::timeout(LOGGER_TERM_TIMEOUT, gone)
                .await
                .is_err()
            {
                warn!(pid, logger = %path, "the logging binary ignored SIGTERM; sending SIGKILL");
                let _ = pidfd::send_signal(pidfd.as_fd(), pid, Signal::SIGKILL);
            }
        });
    }
}

/// A binary log being set up for one process: the pipes runc gives it and the logging binary
/// reading them, ready.
#[derive(Debug)]
pub struct BinaryLog {
    pipes: Arc<PipedIo>,
    logger: Logger,
}

impl BinaryLog {
    /// Starts the logging binary `path` with `args` for the process `id` of `namespace`, and
    /// waits (at most [`LOGGER_READY_TIMEOUT`]) until it says it is ready. A binary that does
    /// not is ended (by dropping it).
    pub async fn open(path: &Path, args: &[String], process: (&str, &str)) -> Result<Self> {
        Self::open_within(path, args, process, LOGGER_READY_TIMEOUT).await
    }

    async fn open_within(
        path: &Path,
        args: &[String],
        process: (&str, &str),
        ready_within: Duration,
    ) -> Result<Self> {
        let failed = io_failure(path);
        let pipes = output_pipes().map_err(failed("make the pipes for"))?;
        let (ready, ready_end) = std::io::pipe().map_err(failed("make the ready pipe for"))?;
        let logger = Logger::spawn(path, args, process, &pipes, ready_end.into())?;
        let mut ready = tokio::net::unix::pipe::Receiver::from_owned_fd(ready.into())
            .map_err(failed("wait for"))?;
        let mut byte = [0u8; 1];
        match tokio::time::timeout(ready_within, ready.read(&mut byte)).await {
            Err(_) => return Err(logger.failure("did not say it was ready in time")),
            Ok(Err(e)) => return Err(failed("wait for")(e)),
            Ok(Ok(_)) => {}
        }
        let mut exit = [nix::poll::PollFd::new(
            logger.pidfd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut exit, nix::poll::PollTimeout::ZERO).unwrap_or(0) > 0 {
            return Err(logger.failure("exited before it was ready (see its own log)"));
        }
        Ok(Self { pipes, logger })
    }

    /// The io runc gives the process.
    pub fn io(&self) -> Arc<dyn Io> {
        Arc::clone(&self.pipes) as Arc<dyn Io>
    }

    /// Once runc has given the process its ends of the pipes: the receiver fires when the
    /// logging binary has exited (its process's exit waits for that), and the [`Logger`] is
    /// kept with the process until it is deleted. Whatever the binary leaves unread is then
    /// drained, so that the process never blocks on a full pipe.
    pub fn start(self) -> (oneshot::Receiver<()>, Logger) {
        let (drained, done) = oneshot::channel();
        let pipes = self.pipes;
        let mut exited = self.logger.exited.clone();
        let (pid, path) = (self.logger.pid, self.logger.path.display().to_string());
        tokio::spawn(async move {
            let _ = exited.wait_for(|exited| *exited).await;
            let _ = drained.send(());
            // Only now: an async reader makes the pipe non-blocking, for the binary's copy too.
            let (out, err) = tokio::join!(discard(pipes.stdout()), discard(pipes.stderr()));
            if out + err > 0 {
                warn!(pid, logger = %path, bytes = out + err, "the logging binary exited before its process's output ended; the rest was dropped");
            }
        });
        (done, self.logger)
    }
}

/// Reads `stream` to its end; the number of bytes.
async fn discard(stream: Option<Box<dyn tokio::io::AsyncRead + Send + Sync + Unpin>>) -> u64 {
    let Some(mut stream) = stream else {
        return 0;
    };
    tokio::io::copy(&mut stream, &mut tokio::io::sink())
        .await
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim::protos::ttrpc;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::PermissionsExt;

    const WAIT: Duration = Duration::from_secs(10);

    /// Runs `script` in `sh` with `io`'s pipes as its stdout and stderr, as runc would.
    async fn run_on(io: &dyn Io, script: &str) -> tokio::process::Child {
        let mut command = tokio::process::Command::new("sh");
        command.args(["-c", script]);
        io.set(&mut command).await.unwrap();
        let child = command.spawn().unwrap();
        // As runc's caller does: the command's copies of the write ends go with it.
        drop(command);
        io.close_after_start().await;
        child
    }

    async fn wait(mut child: tokio::process::Child) -> std::process::ExitStatus {
        tokio::time::timeout(WAIT, child.wait())
            .await
            .expect("the process ends")
            .unwrap()
    }

    /// A logging binary in `dir` running `body` (a shell script).
    fn logger(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("logger");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// Waits (at most `within`) until the process `pid` (a child of the test, not reaped) is
    /// gone or a zombie.
    async fn until_ended(pid: &str, within: Duration) {
        let stat = format!("/proc/{pid}/stat");
        let ended = async {
            loop {
                match std::fs::read_to_string(&stat) {
                    Ok(s) if !s.contains(") Z ") => {
                        tokio::time::sleep(Duration::from_millis(10)).await
                    }
                    _ => return,
                }
            }
        };
        tokio::time::timeout(within, ended)
            .await
            .expect("the logging binary is ended");
    }

    #[test]
    fn a_spawned_binary_gets_the_given_descriptors_as_3_and_up() {
        use std::io::Write;
        let (r0, mut w0) = std::io::pipe().unwrap();
        let (r1, mut w1) = std::io::pipe().unwrap();
        w0.write_all(b"zero").unwrap();
        w1.write_all(b"one").unwrap();
        drop((w0, w1));
        let (out, out_w) = std::io::pipe().unwrap();
        let out_w = OwnedFd::from(out_w);
        // Given in the order opposite to their numbers, so a naive dup2 would clobber one.
        let (r0, r1) = (OwnedFd::from(r0), OwnedFd::from(r1));
        let script = "{ cat <&3; echo; cat <&4; echo; echo $X; ls /proc/self/fd; } >&5";
        let args = ["-c".to_owned(), script.to_owned()];
        let fds = [r1.as_fd(), r0.as_fd(), out_w.as_fd()];
        let above = fds.iter().map(AsRawFd::as_raw_fd).max().unwrap().max(5) + 1;
        spawn(Path::new("/bin/sh"), &args, &[("X", "x")], &fds).unwrap();
        drop(out_w);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(OwnedFd::from(out)), &mut text)
            .unwrap();
        assert!(text.starts_with("one\nzero\nx\n"), "{text:?}");
        // The copies made on the way (numbered above every source) are closed.
        let open: Vec<i32> = text.lines().skip(3).map(|l| l.parse().unwrap()).collect();
        for fd in [3, 4, 5] {
            assert!(open.contains(&fd), "{text:?}");
        }
        for temporary in above..above + 3 {
            assert!(
                !open.contains(&temporary),
                "fd {temporary} leaked: {text:?}"
            );
        }
    }

    #[test]
    fn a_binary_that_cannot_be_run_is_an_error_not_a_panic() {
        let e = spawn(Path::new("/nonexistent/logger"), &[], &[], &[]).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT), "{e}");
    }

    #[tokio::test]
    async fn a_logging_binary_gets_the_streams_its_arguments_and_only_the_ids() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let path = logger(
            dir.path(),
            &format!(
                "echo \"$@\" > {d}/args; env > {d}/env; exec 5>&-\n\
                 cat <&3 > {d}/out & cat <&4 > {d}/err; wait"
            ),
        );
        let args = ["-f".to_owned(), "a b".to_owned()];
        let log = BinaryLog::open(&path, &args, ("c1", "k8s.io"))
            .await
            .unwrap();
        let go = dir.path().join("go");
        let script = format!(
            "echo out; echo err >&2; until [ -e {} ]; do sleep 0.01; done",
            go.display()
        );
        let child = run_on(&*log.io(), &script).await;
        let (drained, logger) = log.start();
        // The binary's reads block: an async reader in the shim would have made the shared
        // pipe non-blocking, and the binary's reads fail with EAGAIN.
        let fdinfo = std::fs::read_to_string(format!("/proc/{}/fdinfo/3", logger.pid)).unwrap();
        let flags = fdinfo
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .unwrap();
        let flags = i32::from_str_radix(flags.trim(), 8).unwrap();
        assert_eq!(flags & libc::O_NONBLOCK, 0, "{fdinfo}");
        std::fs::write(&go, "").unwrap();
        assert!(wait(child).await.success());
        tokio::time::timeout(WAIT, drained)
            .await
            .expect("the logging binary exits at EOF")
            .unwrap();
        assert!(logger.exited());
        let read = |name| std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(read("out"), "out\n");
        assert_eq!(read("err"), "err\n");
        assert_eq!(read("args"), "-f a b\n");
        let env = read("env");
        assert!(env.contains("CONTAINER_ID=c1\n"), "{env}");
        assert!(env.contains("CONTAINER_NAMESPACE=k8s.io\n"), "{env}");
        assert!(
            !env.contains("CARGO"),
            "the shim's environment leaked: {env}"
        );
    }

    #[tokio::test]
    async fn a_logging_binary_that_never_gets_ready_fails_the_process_and_is_ended() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let path = logger(
            dir.path(),
            &format!("echo $$ > {}; exec sleep 30", pid_file.display()),
        );
        let e = BinaryLog::open_within(&path, &[], ("c1", "default"), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::UNKNOWN);
        assert!(e.to_string().contains("did not say it was ready"), "{e}");
        // The failed open dropped the logger: SIGTERM.
        until_ended(std::fs::read_to_string(&pid_file).unwrap().trim(), WAIT).await;
    }

    /// One that ignores the SIGTERM of its process's Delete is killed 12 s later, not before.
    #[tokio::test]
    async fn a_logging_binary_that_ignores_sigterm_is_killed_after_12_s() {
        let dir = tempfile::tempdir().unwrap();
        let path = logger(dir.path(), "trap '' TERM; exec 5>&-; exec sleep 60");
        let log = BinaryLog::open(&path, &[], ("c1", "default"))
            .await
            .unwrap();
        let pid = log.logger.pid.to_string();
        let termed = std::time::Instant::now();
        drop(log);
        until_ended(&pid, LOGGER_TERM_TIMEOUT + WAIT).await;
        let took = termed.elapsed();
        assert!(took >= LOGGER_TERM_TIMEOUT, "ended after {took:?}");
    }

    #[tokio::test]
    async fn output_a_logging_binary_leaves_unread_is_drained() {
        let dir = tempfile::tempdir().unwrap();
        // Ready, then it reads one byte and exits.
        let path = logger(dir.path(), "exec 5>&-; head -c 1 <&3 >/dev/null");
        let log = BinaryLog::open(&path, &[], ("c1", "default"))
            .await
            .unwrap();
        // More than a pipe holds: without the drain the process would block for ever.
        let child = run_on(
            &*log.io(),
            "head -c 1000000 /dev/zero; head -c 1000000 /dev/zero >&2",
        )
        .await;
        let (drained, _logger) = log.start();
        assert!(wait(child).await.success());
        tokio::time::timeout(WAIT, drained).await.unwrap().unwrap();
    }

    #[test]
    fn fifo_paths_and_fifo_uris_are_fifos() {
        for s in [
            "/run/containerd/fifo/1/a-stdout",
            "fifo:///run/x",
            "",
            "/tmp/a://b",
        ] {
            assert_eq!(target(s).unwrap(), Target::Fifo, "{s}");
        }
        assert_eq!(fifo_path("fifo:///run/x"), "/run/x");
        assert_eq!(fifo_path("/tmp/a://b"), "/tmp/a://b");
    }

    #[test]
    fn a_file_uri_names_its_path_with_escapes_undone() {
        assert_eq!(
            target("file:///var/log/ctr/a%20b.log").unwrap(),
            Target::File(PathBuf::from("/var/log/ctr/a b.log"))
        );
    }

    /// `uri` is refused as an invalid argument whose message says `says`.
    fn assert_invalid(uri: &str, says: &str) {
        let e = target(uri).unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::INVALID_ARGUMENT, "{uri}");
        assert!(e.to_string().contains(says), "{uri}: {e}");
    }

    #[test]
    fn bad_uris_are_clear_errors() {
        for (uri, says) in [
            ("file://host/x.log", "absolute path and no host"),
            ("file:///", "must name a file"),
            ("file:///var/log/", "must name a file"),
            ("file:///a%2", "bad %-escape"),
            ("file:///a%00b", "must name a file"),
            ("http://example/x", "none of fifo, file and binary"),
        ] {
            assert_invalid(uri, says);
        }
    }

    #[test]
    fn a_binary_uri_names_the_program_and_its_query_gives_the_arguments() {
        let nerdctl =
            "binary:///usr/local/bin/nerdctl?_NERDCTL_INTERNAL_LOGGING=/var/lib/nerdctl/1935db59";
        assert_eq!(
            target(nerdctl).unwrap(),
            Target::Binary {
                path: PathBuf::from("/usr/local/bin/nerdctl"),
                args: vec![
                    "_NERDCTL_INTERNAL_LOGGING".into(),
                    "/var/lib/nerdctl/1935db59".into()
                ],
            }
        );
        assert_eq!(
            target("binary:///opt/my%20logger?bare&&k=a+b%2Fc").unwrap(),
            Target::Binary {
                path: PathBuf::from("/opt/my logger"),
                args: vec!["bare".into(), String::new(), "k".into(), "a b/c".into()],
            }
        );
        for (uri, says) in [
            ("binary://host/bin/x", "no host"),
            ("binary:///", "must name a file"),
            ("binary:///bin/x?k=%zz", "bad %-escape in the query"),
            ("binary:///bin/x?k=%00", "bad %-escape in the query"),
        ] {
            assert_invalid(uri, says);
        }
        // A file URI's query is not part of its path, as in Go's url.URL.
        assert_eq!(
            target("file:///var/log/a.log?x=1").unwrap(),
            Target::File(PathBuf::from("/var/log/a.log"))
        );
    }

    #[test]
    fn a_file_log_reports_an_unusable_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let e = FileLog::open(&blocker.join("x.log")).unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
    }

    #[tokio::test]
    async fn both_streams_are_appended_and_the_end_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/c.log");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "before\n").unwrap();
        let log = FileLog::open(&path).unwrap();
        let child = run_on(&*log.io(), "echo out; echo err >&2").await;
        let drained = log.start();
        assert!(wait(child).await.success());
        tokio::time::timeout(WAIT, drained)
            .await
            .expect("the copies end at EOF")
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("before\n"), "{text:?}");
        let mut lines: Vec<&str> = text.lines().skip(1).collect();
        lines.sort_unstable();
        assert_eq!(lines, ["err", "out"]);
    }
}
