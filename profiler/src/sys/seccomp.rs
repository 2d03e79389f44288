//! `seccomp(2)`: a small classic-BPF builder and filter install with a notify listener.
//!
//! The builder exists for tests and benchmarks: in production runc installs
//! the container's filter (from the OCI `LinuxSeccomp` the shim writes) and sends the listener.

use std::os::fd::{FromRawFd, OwnedFd};

use nix::errno::Errno;

use super::{Result, SysError};

/// Offset of `seccomp_data.nr`.
const NR_OFFSET: u32 = 0;
/// Offset of `seccomp_data.arch`.
const ARCH_OFFSET: u32 = 4;
/// `BPF_MAXINSNS`: the longest program the kernel accepts.
pub(crate) const MAX_INSNS: usize = 4096;

/// A classic BPF program for `SECCOMP_SET_MODE_FILTER`.
#[derive(Debug, Clone)]
pub(crate) struct BpfProgram {
    insns: Vec<libc::sock_filter>,
}

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        // BPF opcodes are 16 bits wide; every code used here is a small constant sum.
        code: u16::try_from(code).unwrap_or(u16::MAX),
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        jt,
        jf,
        ..stmt(code, k)
    }
}

impl BpfProgram {
    /// A filter that answers `SECCOMP_RET_USER_NOTIF` for the syscall numbers in `notify` made
    /// under `audit_arch`, and allows everything else (other architectures included).
    pub(crate) fn notify(audit_arch: u32, notify: &[u32]) -> Self {
        let ld_abs = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
        let jeq = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
        let ret = libc::BPF_RET | libc::BPF_K;
        let mut insns = Vec::with_capacity(4 + 2 * notify.len());
        insns.push(stmt(ld_abs, ARCH_OFFSET));
        insns.push(jump(jeq, audit_arch, 1, 0));
        insns.push(stmt(ret, libc::SECCOMP_RET_ALLOW));
        insns.push(stmt(ld_abs, NR_OFFSET));
        // Two instructions per number keeps every jump short (jt/jf are 8 bits).
        for &nr in notify {
            insns.push(jump(jeq, nr, 0, 1));
            insns.push(stmt(ret, libc::SECCOMP_RET_USER_NOTIF));
        }
        insns.push(stmt(ret, libc::SECCOMP_RET_ALLOW));
        Self { insns }
    }

    /// Checks the size before anything is forked (the kernel would say EINVAL).
    pub(crate) fn check(&self) -> Result<()> {
        if self.insns.is_empty() || self.insns.len() > MAX_INSNS {
            return Err(SysError::ProgramSize {
                len: self.insns.len(),
                max: MAX_INSNS,
            });
        }
        Ok(())
    }
}

/// Sets `no_new_privs` for the calling thread (required for an unprivileged filter install).
///
/// Async-signal-safe: callable in a forked child.
pub(crate) fn set_no_new_privs() -> Result<()> {
    // SAFETY: prctl with integer arguments only; no memory is passed.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(SysError::NoNewPrivs {
            source: Errno::last(),
        });
    }
    Ok(())
}

/// Installs `prog` on the calling thread with `SECCOMP_FILTER_FLAG_NEW_LISTENER` and returns the
/// listener (the notify fd). `no_new_privs` must be set, or the caller must have CAP_SYS_ADMIN.
///
/// Async-signal-safe (no allocation): callable in a forked child.
pub(crate) fn install_listener(prog: &BpfProgram) -> Result<OwnedFd> {
    let len = prog.insns.len();
    let Ok(count) = u16::try_from(len) else {
        return Err(SysError::ProgramSize {
            len,
            max: MAX_INSNS,
        });
    };
    let fprog = libc::sock_fprog {
        len: count,
        // The kernel only reads the program.
        filter: prog.insns.as_ptr().cast_mut(),
    };
    // SAFETY: `fprog` points at `count` initialized instructions that outlive the call; the
    // kernel copies the program and does not keep the pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            std::ptr::addr_of!(fprog),
        )
    };
    if rc < 0 {
        return Err(SysError::InstallFilter {
            len,
            source: Errno::last(),
        });
    }
    let Ok(fd) = i32::try_from(rc) else {
        return Err(SysError::InstallFilter {
            len,
            source: Errno::EBADF,
        });
    };
    // SAFETY: with NEW_LISTENER a successful seccomp() returns a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_program_shape() {
        let p = BpfProgram::notify(0xC000_003E, &[110, 102]);
        assert_eq!(p.insns.len(), 4 + 4 + 1);
        assert_eq!(p.insns[1].k, 0xC000_003E);
        assert_eq!(p.insns[4].k, 110);
        assert_eq!(p.insns[5].k, libc::SECCOMP_RET_USER_NOTIF);
        assert_eq!(p.insns[8].k, libc::SECCOMP_RET_ALLOW);
        p.check().expect("small program");
        let big = BpfProgram::notify(0, &[1; MAX_INSNS]);
        assert!(matches!(big.check(), Err(SysError::ProgramSize { .. })));
    }
}
