//! The syscalls the runtime itself makes between loading the container's filter and the
//! container's `execve`: every exported profile allows them, learned or not.
//!
//! The learned profile only sees what the container's processes do, but the filter is loaded by
//! `runc init` (a Go program) before it executes the container's entrypoint, so runc's own last
//! steps run under it. Source: runc `libcontainer/standard_init_linux.go` (`(*linuxStandardInit)
//! .Init`, runc 1.1-1.2) and `libcontainer/sync.go` / `libcontainer/utils`:
//!
//! - With `NoNewPrivileges` (Docker's and most pods' `allowPrivilegeEscalation: false`) the filter
//!   is loaded "as close to execve as possible": `syncParentSeccomp` (write + read on the sync
//!   socket, close of the notify fd), `setupPersonality` (only when the spec asks), closing the
//!   sync and log pipes, opening the exec FIFO through `/proc/thread-self/fd/N` and writing one
//!   byte to it, `getpid` for the hook state, `UnsafeCloseFrom` (reads `/proc/self/fd` and closes
//!   every fd above the passed ones) and `execve` (`execveat` through `fexecve` with runc-dmz).
//! - Without `NoNewPrivileges` (Kubernetes' default, `allowPrivilegeEscalation` unset) the filter
//!   is loaded *before* `finalizeNamespace`, so also: dropping capabilities (`capget`, `capset`,
//!   `prctl` for the bounding set, keep-caps and the parent-death signal), `setgroups`, `setgid`,
//!   `setuid`, `chdir` to the working directory, `getppid` (parent check), `exec.LookPath`
//!   (`newfstatat`) and `eaccess` (`faccessat2`, falling back to `faccessat`).
//! - Throughout, the Go runtime of `runc init`: `futex`, `nanosleep`, `sched_yield`, the signal
//!   calls (`rt_sigaction`, `rt_sigprocmask`, `rt_sigreturn`, `sigaltstack`, `tgkill`, `gettid`),
//!   memory (`mmap`, `munmap`, `madvise`), new OS threads (`clone`), the netpoller
//!   (`epoll_pwait`, `epoll_ctl`), `fcntl`, `fstat` and `exit`/`exit_group` on failure.
//!
//! Security Profiles Operator's `examples/baseprofile-runc.yaml` (a base profile for runc
//! v1.0.0-rc92) lists the same core: capget, capset, chdir, close, epoll_ctl, epoll_pwait,
//! execve, fchown, fcntl, fstat, fstatfs, futex, getdents64, getpid, getppid, nanosleep,
//! newfstatat, openat, prctl, read, sched_yield, setgid, setgroups, setuid, write. `fchown` and
//! `fstatfs` there come from older runc versions' console and mount handling, and are kept for
//! them. `personality` is not in the list: a spec that sets `linux.personality` needs it learned
//! or added.

/// What `runc init` calls after the filter is loaded, sorted; names absent on an architecture
/// are skipped there like any other.
pub const RUNC_INIT_SYSCALLS: &[&str] = &[
    "capget",
    "capset",
    "chdir",
    "clone",
    "close",
    "epoll_ctl",
    "epoll_pwait",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fchown",
    "fcntl",
    "fstat",
    "fstatfs",
    "futex",
    "getdents64",
    "getpid",
    "getppid",
    "gettid",
    "madvise",
    "mmap",
    "munmap",
    "nanosleep",
    "newfstatat",
    "openat",
    "prctl",
    "read",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sched_yield",
    "setgid",
    "setgroups",
    "setuid",
    "sigaltstack",
    "tgkill",
    "write",
];

#[cfg(test)]
mod tests {
    use super::*;
    use chaperone_profiler::syscalls::{sym_of, Arch};

    #[test]
    fn sorted_and_known_on_x86_64_and_aarch64() {
        assert!(RUNC_INIT_SYSCALLS.windows(2).all(|w| w[0] < w[1]));
        for name in RUNC_INIT_SYSCALLS {
            let sym = sym_of(name).unwrap_or_else(|| panic!("{name} is not in the tables"));
            for arch in [Arch::X86_64, Arch::Aarch64] {
                assert!(arch.number(sym).is_some(), "{name} missing on {arch}");
            }
        }
    }
}
