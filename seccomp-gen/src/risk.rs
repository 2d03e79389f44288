//! How risky a syscall is to see appear in a profile, for `chaperone diff`.
//!
//! A hand-kept judgement, not generated data: high-risk syscalls are those container escapes and
//! privilege escalations go through (running new code, other processes' memory, mounts, identity
//! and security labels, kernel modules and eBPF, kexec, kernel keyrings, file handles); medium are network endpoints
//! and namespace or process creation (the flags that would make `clone` dangerous are not in the
//! profile); everything else is low. A syscall this build does not know is rated high by
//! `diff` itself (`risk_of` takes names).

use serde::{Deserialize, Serialize};

/// A risk level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// Ordinary.
    Low,
    /// Network endpoints, namespaces, new processes.
    Medium,
    /// Code execution, other processes' memory, mounts, identity, kernel extension.
    High,
}

impl Risk {
    /// "low", "medium" or "high".
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        }
    }
}

impl std::fmt::Display for Risk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// High-risk syscalls, sorted.
pub const HIGH: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "capset",
    "chroot",
    "clock_settime",
    "delete_module",
    "execve",
    "execveat",
    "fchroot",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "init_module",
    "ioperm",
    "iopl",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lsm_set_self_attr",
    "mount",
    "mount_setattr",
    "move_mount",
    "name_to_handle_at",
    "open_by_handle_at",
    "open_tree",
    "open_tree_attr",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "quotactl",
    "reboot",
    "request_key",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "settimeofday",
    "setuid",
    "setuid32",
    "swapoff",
    "swapon",
    "syslog",
    "umount",
    "umount2",
    "uselib",
    "userfaultfd",
];

/// Medium-risk syscalls, sorted.
pub const MEDIUM: &[&str] = &[
    "accept",
    "accept4",
    "bind",
    "clone",
    "clone3",
    "connect",
    "fork",
    "listen",
    "memfd_create",
    "mknod",
    "mknodat",
    "personality",
    "setns",
    "socket",
    "socketcall",
    "socketpair",
    "unshare",
    "vfork",
];

/// The risk of seeing `name` newly in a profile.
pub fn risk_of(name: &str) -> Risk {
    if HIGH.binary_search(&name).is_ok() {
        Risk::High
    } else if MEDIUM.binary_search(&name).is_ok() {
        Risk::Medium
    } else {
        Risk::Low
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaperone_profiler::syscalls::sym_of;

    #[test]
    fn sorted_known_and_disjoint() {
        for list in [HIGH, MEDIUM] {
            assert!(list.windows(2).all(|w| w[0] < w[1]));
            for n in list {
                assert!(sym_of(n).is_some(), "{n}");
            }
        }
        assert!(MEDIUM.iter().all(|n| risk_of(n) == Risk::Medium));
        assert_eq!(risk_of("execve"), Risk::High);
        assert_eq!(risk_of("read"), Risk::Low);
        assert!(Risk::High > Risk::Medium && Risk::Medium > Risk::Low);
    }
}
