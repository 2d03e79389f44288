//! Which compat ABIs the kernel runs: whether an x32 syscall (the x86_64 number with bit 30 set)
//! reaches the kernel's x32 table. Most kernels are built without it (`CONFIG_X86_X32_ABI`) or
//! boot with it off (Debian's `syscall.x32=n`); a filter then need not cover it, and covering it
//! costs runc about 5 ms per container to compile (see `supervisor::filter`).
//!
//! The probe runs in a forked child, so that a seccomp filter above this process that kills
//! x32 syscalls (systemd's `SystemCallArchitectures=native`) kills the child, not the caller:
//! containers inherit that filter, so for them x32 is just as unavailable. Between `fork` and
//! `_exit` the child makes raw syscalls only (async-signal-safe; the caller may be threaded).

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

/// The bit that selects the x32 table on x86_64.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;

/// Whether x32 syscalls run here. `true` when it cannot be told (the fork failed), so that a
/// filter built from the answer never leaves a usable ABI out.
#[cfg(target_arch = "x86_64")]
pub(crate) fn x32_syscalls_run() -> bool {
    // SAFETY: the child only calls `x32_child`, which makes raw syscalls and `_exit`s.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return true;
    }
    if pid == 0 {
        x32_child();
    }
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return code == 0,
            // Killed: a filter above us refuses the ABI, and the containers inherit it.
            Ok(WaitStatus::Signaled(..)) => return false,
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return true,
        }
    }
}

/// No other ABI exists to probe for on other architectures.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn x32_syscalls_run() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
fn x32_child() -> ! {
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: raw syscalls with a stack value and plain integers; `_exit` runs no destructors.
    // A SIGSYS from a filter would otherwise dump core.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        let rc = libc::syscall(X32_SYSCALL_BIT | libc::SYS_getppid);
        libc::_exit(if rc > 0 { 0 } else { 1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_probe_agrees_with_an_x32_syscall_made_here() {
        // SAFETY: getppid takes no arguments. This process is under no filter that kills the
        // ABI (else the probe's child would have been killed and it would answer false, and
        // this call would end the test loudly).
        let rc = unsafe { libc::syscall(X32_SYSCALL_BIT | libc::SYS_getppid) };
        let runs = rc > 0;
        assert_eq!(x32_syscalls_run(), runs, "x32 getppid gave {rc}");
        if !runs {
            assert_eq!(nix::errno::Errno::last(), nix::errno::Errno::ENOSYS);
        }
    }
}
