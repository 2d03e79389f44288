//! Names a program uses on one architecture and their counterparts on another.
//!
//! A profile is learned on one architecture and exported for several. A learned name the target
//! architecture lacks is skipped there, unless this table gives the syscall the same program
//! makes on that architecture instead: the 32-bit x86 ABI's `*64`/`*32` variants and multiplexed
//! old calls map to the x86_64 names (so a profile learned from i386 traces, such as ADFA-LD's,
//! exports for x86_64), and the legacy calls asm-generic dropped map to the `*at`/`p*` calls libc
//! makes on aarch64 (so an x86_64 profile exports for aarch64). Hand-written from the kernel's
//! `arch/x86/entry/syscalls/syscall_32.tbl` and `include/uapi/asm-generic/unistd.h` and glibc's
//! wrappers; `socketcall` and `ipc` multiplex many calls and have no single counterpart.

use chaperone_profiler::syscalls::{sym_of, Arch};

/// `(name, counterpart)`: when an architecture lacks `name`, it gets `counterpart` instead (if
/// it has that). A name may have several counterparts.
pub const EQUIVALENTS: &[(&str, &str)] = &[
    // The i386 ABI's 64-bit-offset and 32-bit-uid variants.
    ("_llseek", "lseek"),
    ("_newselect", "select"),
    ("chown32", "chown"),
    ("fadvise64_64", "fadvise64"),
    ("fchown32", "fchown"),
    ("fcntl64", "fcntl"),
    ("fstat64", "fstat"),
    ("fstatat64", "newfstatat"),
    ("fstatfs64", "fstatfs"),
    ("ftruncate64", "ftruncate"),
    ("getegid32", "getegid"),
    ("geteuid32", "geteuid"),
    ("getgid32", "getgid"),
    ("getgroups32", "getgroups"),
    ("getresgid32", "getresgid"),
    ("getresuid32", "getresuid"),
    ("getuid32", "getuid"),
    ("lchown32", "lchown"),
    ("lstat64", "lstat"),
    ("mmap2", "mmap"),
    ("sendfile64", "sendfile"),
    ("setfsgid32", "setfsgid"),
    ("setfsuid32", "setfsuid"),
    ("setgid32", "setgid"),
    ("setgroups32", "setgroups"),
    ("setregid32", "setregid"),
    ("setresgid32", "setresgid"),
    ("setresuid32", "setresuid"),
    ("setreuid32", "setreuid"),
    ("setuid32", "setuid"),
    ("sigaction", "rt_sigaction"),
    ("sigprocmask", "rt_sigprocmask"),
    ("sigreturn", "rt_sigreturn"),
    ("sigsuspend", "rt_sigsuspend"),
    ("stat64", "stat"),
    ("statfs64", "statfs"),
    ("truncate64", "truncate"),
    ("ugetrlimit", "getrlimit"),
    ("waitpid", "wait4"),
    // Legacy calls asm-generic (aarch64) dropped, and what libc calls there instead.
    ("access", "faccessat"),
    ("alarm", "setitimer"),
    ("chmod", "fchmodat"),
    ("chown", "fchownat"),
    ("creat", "openat"),
    ("dup2", "dup3"),
    ("epoll_create", "epoll_create1"),
    ("epoll_wait", "epoll_pwait"),
    ("eventfd", "eventfd2"),
    ("fork", "clone"),
    ("futimesat", "utimensat"),
    ("getdents", "getdents64"),
    ("getpgrp", "getpgid"),
    ("inotify_init", "inotify_init1"),
    ("lchown", "fchownat"),
    ("link", "linkat"),
    ("lstat", "newfstatat"),
    ("mkdir", "mkdirat"),
    ("mknod", "mknodat"),
    ("open", "openat"),
    ("pause", "ppoll"),
    ("pipe", "pipe2"),
    ("poll", "ppoll"),
    ("readlink", "readlinkat"),
    ("rename", "renameat"),
    ("rename", "renameat2"),
    ("rmdir", "unlinkat"),
    ("select", "pselect6"),
    ("signalfd", "signalfd4"),
    ("stat", "newfstatat"),
    ("symlink", "symlinkat"),
    ("unlink", "unlinkat"),
    ("utime", "utimensat"),
    ("utimes", "utimensat"),
    ("vfork", "clone"),
];

/// Whether `arch` has a syscall called `name`.
pub fn has(arch: Arch, name: &str) -> bool {
    sym_of(name).is_some_and(|sym| arch.number(sym).is_some())
}

/// The names `arch` uses for `name`: `name` itself when `arch` has it, else its counterparts
/// there (following one more step, so `stat64` reaches `newfstatat` through `stat`), else none.
pub fn on_arch(arch: Arch, name: &'static str) -> Vec<&'static str> {
    if has(arch, name) {
        return vec![name];
    }
    let mut out = Vec::new();
    for &(from, to) in EQUIVALENTS.iter().filter(|(from, _)| *from == name) {
        debug_assert_eq!(from, name);
        if has(arch, to) {
            out.push(to);
        } else {
            out.extend(
                EQUIVALENTS
                    .iter()
                    .filter(|(f, t)| *f == to && has(arch, t))
                    .map(|&(_, t)| t),
            );
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_in_the_tables() {
        for (from, to) in EQUIVALENTS {
            assert!(sym_of(from).is_some(), "{from}");
            assert!(sym_of(to).is_some(), "{to}");
        }
    }

    #[test]
    fn maps_per_architecture() {
        assert_eq!(on_arch(Arch::X86_64, "mmap2"), ["mmap"]);
        assert_eq!(on_arch(Arch::X86_64, "open"), ["open"]);
        assert_eq!(on_arch(Arch::Aarch64, "open"), ["openat"]);
        assert_eq!(on_arch(Arch::Aarch64, "stat64"), ["newfstatat"]);
        assert_eq!(on_arch(Arch::Aarch64, "rename"), ["renameat", "renameat2"]);
        assert!(on_arch(Arch::X86_64, "socketcall").is_empty());
        assert!(on_arch(Arch::Aarch64, "mmap2").contains(&"mmap"));
    }
}
