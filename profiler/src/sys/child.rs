//! A forked child that installs a notify filter on itself, hands the listener to its parent over
//! a socketpair (`SCM_RIGHTS`), waits for "go" and runs a fixed script of raw syscalls.
//!
//! Between `fork` and `_exit` the child runs only async-signal-safe code: raw syscalls, stack
//! buffers, no allocation, no locks, no Rust destructors (the parent may be multi-threaded, as
//! the test harness is). The script is built before the fork and only read in the child.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::seccomp::{self, BpfProgram};
use super::{scm, Result, SysError};

/// Most operations a script may have (results travel back in a fixed array).
pub const MAX_OPS: usize = 32;

/// One step of a traced child's script. Every step yields one `i64` result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// One raw syscall; the result is its return value, or `-errno`.
    Syscall {
        /// The syscall number (native ABI).
        nr: i64,
        /// Its six arguments.
        args: [u64; 6],
    },
    /// The same raw syscall (no arguments) `times` times; the result is the elapsed nanoseconds.
    Repeat {
        /// The syscall number.
        nr: i64,
        /// How many calls.
        times: u64,
    },
    /// `ways` processes (this one and `ways - 1` forks) each run [`Op::Repeat`] at once; the
    /// result is the elapsed nanoseconds until all are done.
    Parallel {
        /// Concurrent processes (1 to 64).
        ways: u32,
        /// The syscall number.
        nr: i64,
        /// Calls per process.
        times: u64,
    },
    /// `count` short-lived processes one after another, each making syscall `nr` once and
    /// exiting; the result is how many were forked and reaped.
    ShortChildren {
        /// How many processes.
        count: u32,
        /// The syscall each makes.
        nr: i64,
    },
}

/// The parent's handle on a spawned child.
#[derive(Debug)]
pub(crate) struct Spawned {
    /// The child's pid.
    pub(crate) pid: Pid,
    /// The parent's end of the socketpair.
    pub(crate) sock: OwnedFd,
    /// The child's notify listener.
    pub(crate) listener: OwnedFd,
}

/// Child setup stages reported on failure (the child sends `[stage, errno]`).
const STAGE_OK: i32 = 0;
const STAGE_AFFINITY: i32 = 1;
const STAGE_NNP: i32 = 2;
const STAGE_FILTER: i32 = 3;

/// Forks the child. `cpu` pins it (and its script's forks) to one CPU.
pub(crate) fn spawn(prog: &BpfProgram, ops: &[Op], cpu: Option<usize>) -> Result<Spawned> {
    prog.check()?;
    if ops.len() > MAX_OPS {
        return Err(SysError::Child {
            op: "check script length",
            source: Errno::E2BIG,
        });
    }
    let (parent_end, child_end) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|source| SysError::Child {
        op: "socketpair",
        source,
    })?;
    // SAFETY: the child only runs `child_main`, which is async-signal-safe and never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(SysError::Child {
            op: "fork",
            source: Errno::last(),
        });
    }
    if pid == 0 {
        child_main(
            prog,
            ops,
            cpu,
            child_end.as_raw_fd(),
            parent_end.as_raw_fd(),
        );
    }
    drop(child_end);
    let pid = Pid::from_raw(pid);
    let mut guard = Reaper(Some(pid));
    let mut header = [0u8; 8];
    let chunk = scm::recv(parent_end.as_fd(), &mut header)?;
    let stage = i32::from_ne_bytes([header[0], header[1], header[2], header[3]]);
    let errno = i32::from_ne_bytes([header[4], header[5], header[6], header[7]]);
    if chunk.len != header.len() || stage != STAGE_OK {
        let op = match stage {
            STAGE_AFFINITY => "sched_setaffinity",
            STAGE_NNP => "prctl(PR_SET_NO_NEW_PRIVS)",
            STAGE_FILTER => "seccomp(SECCOMP_SET_MODE_FILTER)",
            _ => "receive the listener",
        };
        return Err(SysError::Child {
            op,
            source: Errno::from_raw(errno),
        });
    }
    let Some(listener) = chunk.fds.into_iter().next() else {
        return Err(SysError::Child {
            op: "receive the listener",
            source: Errno::EBADMSG,
        });
    };
    guard.0 = None;
    Ok(Spawned {
        pid,
        sock: parent_end,
        listener,
    })
}

/// Kills and reaps a child on an early return.
struct Reaper(Option<Pid>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            kill_and_reap(pid);
        }
    }
}

/// SIGKILLs `pid` and waits for it (errors ignored: it may be gone already).
pub(crate) fn kill_and_reap(pid: Pid) {
    let _ = kill(pid, Signal::SIGKILL);
    let _ = waitpid(pid, None);
}

/// Tells the child to run its script.
pub(crate) fn go(sock: BorrowedFd<'_>) -> Result<()> {
    nix::unistd::write(sock, &[1u8])
        .map(|_| ())
        .map_err(|source| SysError::Child {
            op: "send go",
            source,
        })
}

/// Waits for the child and reads the results it sent before exiting.
pub(crate) fn finish(pid: Pid, sock: BorrowedFd<'_>) -> Result<(WaitStatus, Vec<i64>)> {
    let status = loop {
        match waitpid(pid, None) {
            Err(Errno::EINTR) => continue,
            Err(source) => return Err(SysError::Child { op: "wait", source }),
            Ok(s) => break s,
        }
    };
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8 * (MAX_OPS + 1)];
    loop {
        match nix::unistd::read(sock, &mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR) => continue,
            // The child was killed before writing anything: no results.
            Err(_) => break,
        }
    }
    let results = bytes
        .chunks_exact(8)
        .map(|c| i64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect();
    Ok((status, results))
}

// ---- the child side: async-signal-safe only --------------------------------------------------

fn child_main(prog: &BpfProgram, ops: &[Op], cpu: Option<usize>, sock: RawFd, other: RawFd) -> ! {
    // SAFETY: closing the parent's end of the socketpair in the child; we never use it.
    unsafe { libc::close(other) };
    if let Some(cpu) = cpu {
        // SAFETY: an all-zero cpu_set_t is the empty set; CPU_SET writes inside it.
        let rc = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
        };
        if rc != 0 {
            report_and_exit(sock, STAGE_AFFINITY, Errno::last_raw());
        }
    }
    if let Err(SysError::NoNewPrivs { source }) = seccomp::set_no_new_privs() {
        report_and_exit(sock, STAGE_NNP, source as i32);
    }
    let listener = match seccomp::install_listener(prog) {
        Ok(fd) => fd,
        Err(SysError::InstallFilter { source, .. }) => {
            report_and_exit(sock, STAGE_FILTER, source as i32)
        }
        Err(_) => report_and_exit(sock, STAGE_FILTER, libc::EINVAL),
    };
    let mut header = [0u8; 8];
    header[..4].copy_from_slice(&STAGE_OK.to_ne_bytes());
    send_fd(sock, &header, listener.as_raw_fd());
    // The parent has its own copy now; ours would only keep the listener open.
    // SAFETY: closing our own fd; `listener` is forgotten so it is not closed twice.
    unsafe { libc::close(listener.as_raw_fd()) };
    std::mem::forget(listener);

    let mut go = [0u8; 1];
    // SAFETY: reading one byte into a stack buffer.
    if unsafe { libc::read(sock, go.as_mut_ptr().cast(), 1) } != 1 {
        exit_now(2);
    }
    let mut results = [0i64; MAX_OPS];
    for (slot, op) in results.iter_mut().zip(ops) {
        *slot = run_op(op);
    }
    let n = ops.len().min(MAX_OPS);
    // SAFETY: writing the first `n` results from a stack array; a short write is harmless.
    unsafe {
        libc::write(
            sock,
            results.as_ptr().cast(),
            n * std::mem::size_of::<i64>(),
        )
    };
    exit_now(0)
}

fn run_op(op: &Op) -> i64 {
    match *op {
        Op::Syscall { nr, args } => raw_syscall(nr, args),
        Op::Repeat { nr, times } => {
            let start = now_ns();
            repeat(nr, times);
            now_ns() - start
        }
        Op::Parallel { ways, nr, times } => {
            let start = now_ns();
            let mut pids = [0 as libc::pid_t; 64];
            let extra = (ways.clamp(1, 64) - 1) as usize;
            for slot in pids.iter_mut().take(extra) {
                // SAFETY: the forked process only runs the loop below and `_exit`s.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    repeat(nr, times);
                    exit_now(0);
                }
                *slot = pid;
            }
            repeat(nr, times);
            for &pid in pids.iter().take(extra).filter(|&&p| p > 0) {
                reap(pid);
            }
            now_ns() - start
        }
        Op::ShortChildren { count, nr } => {
            let mut done = 0;
            for _ in 0..count {
                // SAFETY: the forked process makes one raw syscall and `_exit`s.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    raw_syscall(nr, [0; 6]);
                    exit_now(0);
                }
                if pid > 0 && reap(pid) {
                    done += 1;
                }
            }
            done
        }
    }
}

fn repeat(nr: i64, times: u64) {
    for _ in 0..times {
        raw_syscall(nr, [0; 6]);
    }
}

fn raw_syscall(nr: i64, a: [u64; 6]) -> i64 {
    // SAFETY: the script's author chose the syscall; arguments are passed as plain integers.
    // JUSTIFICATION: scripts are built by tests and probes that call only syscalls whose
    // pointer arguments are null or irrelevant (getppid, getuid, uname(NULL), ...).
    let rc = unsafe { libc::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
    if rc < 0 {
        -i64::from(Errno::last_raw())
    } else {
        rc
    }
}

fn reap(pid: libc::pid_t) -> bool {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child with a valid status pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            return true;
        }
        if rc < 0 && Errno::last() != Errno::EINTR {
            return false;
        }
    }
}

fn now_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec (clock_gettime is async-signal-safe, usually the vDSO).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

fn send_fd(sock: RawFd, data: &[u8], fd: RawFd) {
    let mut control = [0u64; 4];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr().cast_mut().cast(),
        iov_len: data.len(),
    };
    // SAFETY: all-zero msghdr is valid; the control buffer (32 bytes) holds CMSG_SPACE(4) = 24
    // bytes, so one header with one int fits; every pointer is to this stack frame.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(4) as usize;
        libc::CMSG_DATA(cmsg).cast::<i32>().write_unaligned(fd);
        if libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) < 0 {
            exit_now(3);
        }
    }
}

fn report_and_exit(sock: RawFd, stage: i32, errno: i32) -> ! {
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&stage.to_ne_bytes());
    msg[4..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: writing a stack buffer to our socket.
    unsafe { libc::write(sock, msg.as_ptr().cast(), msg.len()) };
    exit_now(1)
}

fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` ends the process at once, running no destructors or atexit handlers.
    unsafe { libc::_exit(code) }
}
