//! The seccomp filters chaperone installs, as OCI `LinuxSeccomp`, merged with the container's
//! own: learn mode's, and the tiered filter of monitor and enforce mode ([`tiered_filter`],
//! whose tiers `chaperone-seccomp-gen` chooses from the profile).
//!
//! Learn mode traces every syscall that can be traced safely. runc (and youki) refuse two
//! things: `SCMP_ACT_NOTIFY` as the default action, and a `SCMP_ACT_NOTIFY` rule naming `write`
//! (runc init writes the notify fd's number to its sync pipe after the filter is installed, so a
//! notified `write` would deadlock). The same deadlock waits behind every syscall runc init's Go
//! runtime can make on its own in that window, before any supervisor has the fd: a preemption
//! signal's `rt_sigreturn`, a scheduler `futex`, heap growth (`mmap`, `madvise`), `sched_yield`,
//! sleeps, signalling itself. Seen under load: `runc create` hung with init blocked in
//! `rt_sigreturn`. Those [`NEVER_NOTIFIED`] names keep their allow rule; every other name of the
//! x86_64 and aarch64 tables is notified, and where the filter covers 32-bit x86 so is every
//! name only that ABI has (`x86_only_names`: `socketcall`, `ipc`, `mmap2`, `stat64`,
//! `setuid32`, ...), but the `NEVER_IMPLEMENTED` ones; runc skips names its libseccomp
//! cannot resolve. Each rule lists its names from the highest native number down (see
//! `order_for_runc`).
//!
//! The container's own filter is never weakened: its default action and every rule that does
//! not allow (errno, kill, trap, trace) are kept as they are; each allow or log rule becomes
//! the same rule (same names, same argument conditions) with `SCMP_ACT_NOTIFY`, which still
//! runs the syscall after the supervisor answers "continue"; `write` keeps its allow rule. A
//! rule whose action is the default's is left out, as runc leaves it out (made a notify rule,
//! it would override the profile's conditional denials of its syscalls). Only when the default
//! action allows (or logs) are the names no rule mentions added as one notify rule, but for a
//! 32-bit multiplexer (`socketcall`, `ipc`) of calls the profile names. So a syscall the
//! container's profile denies is denied by the same rule, and one it allows is allowed after
//! being seen. The tiered filter is built the same way, with each allowed name given its
//! [`Tier`] instead of notify: allowed in the kernel, notified, or failed or killed in the
//! kernel; the container's own denials stay as they are.
//!
//! A container without a profile of its own gets a filter whose default action is `[filter]
//! unnamed`'s, for the syscalls no name covers (newer than the tables, or unknown to runc's
//! libseccomp): by default ENOSYS, with every name in a rule, the allowed ones too (ADR 0026).
//!
//! One gap, in both: in a profile whose default action allows, a name that only rules with
//! argument conditions mention keeps the default for the arguments those rules do not match,
//! so those calls are neither traced nor given a tier (never weaker, but unseen). Docker's and
//! Kubernetes' profiles deny by default and do not have this shape.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::OnceLock;

use oci_spec::runtime::{Arch as OciArch, LinuxSeccomp, LinuxSeccompAction, LinuxSyscall};

use chaperone_config::Unnamed;

use crate::syscalls::{name_of, Arch};

/// Syscalls never notified: `write` (runc refuses it), what runc init's Go runtime may call
/// by itself between installing the filter and handing over the fd (a notified one would wait
/// for a supervisor that cannot exist yet), and `restart_syscall`, which the kernel makes a
/// thread enter to resume a sleep that a stop (SIGSTOP, a debugger) interrupted: no program
/// calls it and no profile learns it, so traced it was a never-seen syscall after every
/// SIGSTOP/SIGCONT, and denied it failed the sleep with EPERM. So are `uprobe` and
/// `uretprobe` (x86_64, Linux 6.11 and later) for the same reason: the kernel's trampolines
/// enter them when a host tracer probes a function of the process, never the program; a
/// denial breaks the probed function's return (ADR 0025).
/// Sorted.
pub const NEVER_NOTIFIED: &[&str] = &[
    "clock_nanosleep",
    "futex",
    "getpid",
    "gettid",
    "madvise",
    "mmap",
    "munmap",
    "nanosleep",
    "restart_syscall",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sched_yield",
    "sigaltstack",
    "tgkill",
    "uprobe",
    "uretprobe",
    "write",
];

/// Whether `name` is one of [`NEVER_NOTIFIED`].
pub fn never_notified(name: &str) -> bool {
    NEVER_NOTIFIED.binary_search(&name).is_ok()
}

/// The symbols of [`NEVER_NOTIFIED`].
pub fn never_notified_syms() -> impl Iterator<Item = crate::syscalls::Sym> {
    NEVER_NOTIFIED
        .iter()
        .filter_map(|n| crate::syscalls::sym_of(n))
}

/// Syscall names the kernel reserves but implements in no ABI chaperone covers (their table
/// entries have no entry point, or only `sys_ni_syscall`, on every kernel since 3.1): a call
/// fails with ENOSYS whatever the filter says. A filter that allows by default gives them no
/// rule: each name costs runc init CPU time to compile (these 24 0.7-1.3 ms per container,
/// medians of 100 `runc create` on the 2-core test machine). `_sysctl` is not among them: it
/// works on kernels before 5.5. Sorted.
const NEVER_IMPLEMENTED: &[&str] = &[
    "afs_syscall",
    "break",
    "create_module",
    "epoll_ctl_old",
    "epoll_wait_old",
    "ftime",
    "get_kernel_syms",
    "getpmsg",
    "gtty",
    "idle",
    "lock",
    "mpx",
    "nfsservctl",
    "prof",
    "profil",
    "putpmsg",
    "query_module",
    "security",
    "stty",
    "tuxcall",
    "ulimit",
    "vm86",
    "vm86old",
    "vserver",
];

/// Errors building the learn filter.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The container's profile already sends its notify fd elsewhere.
    #[error("the container's seccomp profile already has a listener ({path:?})")]
    ListenerTaken {
        /// The existing `listenerPath`.
        path: String,
    },
    /// The container's profile notifies by default, which runc refuses.
    #[error("the container's seccomp profile uses SCMP_ACT_NOTIFY as its default action")]
    NotifyDefault,
    /// The container's profile has notify rules but no listener, which runc refuses
    /// ("listenerPath is not set"). Kept, they would send the container's own notifications
    /// to chaperone, and one naming what runc init calls before it hands the fd over would
    /// hang the container's start.
    #[error(
        "the container's seccomp profile has SCMP_ACT_NOTIFY rules ({names}) but no listenerPath; runc refuses that"
    )]
    NotifyRules {
        /// The names of those rules, comma-separated.
        names: String,
    },
}

/// Every name of the x86_64 and aarch64 tables, sorted.
pub fn all_names() -> Vec<&'static str> {
    let names: BTreeSet<&'static str> = [Arch::X86_64, Arch::Aarch64]
        .into_iter()
        .flat_map(|a| a.syscalls().filter_map(|(_, sym)| name_of(sym)))
        .collect();
    names.into_iter().collect()
}

/// The architectures a filter without the container's own list covers: the native ABI and the
/// compat ABIs the kernel runs, so 32-bit binaries are not killed by the filter's
/// bad-architecture action. Docker's default profile lists x32 always; here it is listed only
/// when the kernel runs x32 syscalls (most kernels do not), because each architecture costs
/// runc several milliseconds per container to compile the filter for (about 350 names as it
/// was on 2026-11-25, `runc create` by hand on the 2-core test machine: +3.8 ms for x86_64
/// alone, +6.5 ms with x86, +11.2 ms with x32 too). On a kernel without x32 the only
/// difference is that an x32 syscall kills the caller instead of failing with ENOSYS.
fn native_architectures() -> Vec<OciArch> {
    static X32: OnceLock<bool> = OnceLock::new();
    match Arch::native() {
        Some(Arch::Aarch64) => vec![OciArch::ScmpArchAarch64, OciArch::ScmpArchArm],
        _ => {
            let mut archs = vec![OciArch::ScmpArchX86_64, OciArch::ScmpArchX86];
            if *X32.get_or_init(crate::sys::abi::x32_syscalls_run) {
                archs.push(OciArch::ScmpArchX32);
            }
            archs
        }
    }
}

/// The syscalls libseccomp also reaches through a multiplexer on 32-bit x86: the socket calls
/// through `socketcall`, the SysV IPC calls through `ipc`.
const MULTIPLEXED: [(&str, &[&str]); 2] = [
    (
        "socketcall",
        &[
            "accept",
            "accept4",
            "bind",
            "connect",
            "getpeername",
            "getsockname",
            "getsockopt",
            "listen",
            "recv",
            "recvfrom",
            "recvmmsg",
            "recvmsg",
            "send",
            "sendmmsg",
            "sendmsg",
            "sendto",
            "setsockopt",
            "shutdown",
            "socket",
            "socketpair",
        ],
    ),
    (
        "ipc",
        &[
            "msgctl",
            "msgget",
            "msgrcv",
            "msgsnd",
            "semctl",
            "semget",
            "semop",
            "semtimedop",
            "shmat",
            "shmctl",
            "shmdt",
            "shmget",
        ],
    ),
];

/// An action as runc gives it to libseccomp: errno and trace carry a number (EPERM when the
/// profile gives none), the others none. Two rules with the same one do the same.
fn runc_action(action: LinuxSeccompAction, errno: Option<u32>) -> (LinuxSeccompAction, u32) {
    match action {
        LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace => {
            (action, errno.unwrap_or(EPERM))
        }
        _ => (action, 0),
    }
}

fn allows(action: LinuxSeccompAction) -> bool {
    matches!(
        action,
        LinuxSeccompAction::ScmpActAllow | LinuxSeccompAction::ScmpActLog
    )
}

/// What chaperone's filter does with a syscall the container's own profile allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// Allowed in the kernel, unseen by the supervisor.
    Allow,
    /// Notified: the supervisor sees it and answers (learn, score, act).
    Notify,
    /// Failed in the kernel with EPERM.
    Errno,
    /// The calling process is killed by the kernel (`SCMP_ACT_KILL_PROCESS`).
    Kill,
}

impl Tier {
    fn apply(self, rule: &mut LinuxSyscall) {
        let (action, errno) = match self {
            Self::Allow => (LinuxSeccompAction::ScmpActAllow, None),
            Self::Notify => (LinuxSeccompAction::ScmpActNotify, None),
            Self::Errno => (LinuxSeccompAction::ScmpActErrno, Some(EPERM)),
            Self::Kill => (LinuxSeccompAction::ScmpActKillProcess, None),
        };
        rule.set_action(action);
        rule.set_errno_ret(errno);
    }
}

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// The names of the 32-bit x86 table that the x86_64 and aarch64 tables lack (87: the
/// multiplexers `socketcall` and `ipc`, the `*64` and `*32` variants such as `mmap2`, `stat64`,
/// `fcntl64`, `setuid32`, the 64-bit-time calls such as `clock_gettime64`, and old calls such
/// as `waitpid`), sorted. A filter that covers x86 and allows by default gives them their tier
/// too; without that, a 32-bit program's calls of them took the default action (allow),
/// unseen by any supervisor in every mode. The multiplexers notified whole also spare
/// libseccomp expanding every socket and SysV IPC name into argument checks on them (learn
/// mode's filter: 733 BPF instructions instead of 705, and about a quarter more compile time),
/// and see a `socketcall` or `ipc` call whose operation no name covers.
/// `others` holds those tables' names, sorted ([`all_names`]: the caller has them already).
fn x86_only_names(others: &[&str]) -> Vec<&'static str> {
    let names: BTreeSet<&'static str> = Arch::I386
        .syscalls()
        .filter_map(|(_, sym)| name_of(sym))
        .filter(|n| others.binary_search(n).is_err())
        .collect();
    names.into_iter().collect()
}

/// Whether `filter` names 32-bit x86 among its architectures.
fn covers_x86(filter: &LinuxSeccomp) -> bool {
    filter
        .architectures()
        .iter()
        .flatten()
        .any(|a| *a == OciArch::ScmpArchX86)
}

/// Orders the names of one rule for runc: by the native syscall number, highest first, names
/// the native table lacks last. runc adds the names to libseccomp in the order given, and
/// libseccomp 2.5.4 compiled learn mode's 350 names for x86_64 and x86 (the multiplexers the
/// only x86-only ones) in about 4 ms this way against 6.7 ms alphabetically (best of 40, 2-core
/// test machine); in runc init's CPU time per container, 19.0 ms against 20.5 ms (median of
/// 100; 10.3 ms without a filter). Since the filter also names x86's own syscalls (411 names
/// in all) the order gains nothing measurable: 5.0-5.6 ms either way (three runs each, on
/// 2026-12-01). The order of names within a rule does not change what the rule does.
fn order_for_runc(names: &mut [String]) {
    names.sort_by_cached_key(|n| std::cmp::Reverse(native_number(n)));
}

/// The number of syscall `name` on the architecture this binary runs on.
fn native_number(name: &str) -> Option<u32> {
    let sym = crate::syscalls::sym_of(name)?;
    Arch::native()?.number(sym)
}

fn rule(base: &LinuxSyscall, mut names: Vec<String>, tier: Tier) -> LinuxSyscall {
    let mut r = base.clone();
    order_for_runc(&mut names);
    r.set_names(names);
    tier.apply(&mut r);
    r
}

/// The learn-mode filter for a container whose own profile is `container` (`None`:
/// unconfined), sending its notify fd to `listener` with `metadata`: every syscall it allows is
/// notified, but [`NEVER_NOTIFIED`].
pub fn learn_filter(
    container: Option<&LinuxSeccomp>,
    listener: &Path,
    metadata: Option<&str>,
) -> Result<LinuxSeccomp, FilterError> {
    notify_filter(container, listener, metadata, Unnamed::Allow)
}

/// [`learn_filter`] with `unnamed` for the syscalls an unconfined container's filter cannot
/// name (see [`Unnamed`]; [`learn_filter`] allows them): the shim's filter in learn mode, and
/// in monitor and enforce mode for a profile without recorded runs.
pub fn notify_filter(
    container: Option<&LinuxSeccomp>,
    listener: &Path,
    metadata: Option<&str>,
    unnamed: Unnamed,
) -> Result<LinuxSeccomp, FilterError> {
    tiered_filter(container, listener, metadata, unnamed, |_| Tier::Notify)
}

/// The filter for a container whose own profile is `container` (`None`: unconfined): each
/// syscall name that profile allows gets `tier_of(name)`, what it does not allow keeps its
/// action (never weaker), and the notify fd goes to `listener` with `metadata`. A name of
/// [`NEVER_NOTIFIED`] given [`Tier::Notify`] is allowed instead (runc init would deadlock).
/// Without a container profile, the syscalls the filter cannot name (newer than chaperone's
/// tables, or unknown to runc's libseccomp, which skips such names) take the default action,
/// `unnamed`'s (ADR 0026); a container's own profile keeps its default action.
pub fn tiered_filter(
    container: Option<&LinuxSeccomp>,
    listener: &Path,
    metadata: Option<&str>,
    unnamed: Unnamed,
    tier_of: impl Fn(&str) -> Tier,
) -> Result<LinuxSeccomp, FilterError> {
    let tier_of = |name: &str| match tier_of(name) {
        Tier::Notify if never_notified(name) => Tier::Allow,
        tier => tier,
    };
    let mut out = match container {
        Some(c) => {
            if let Some(path) = c.listener_path() {
                return Err(FilterError::ListenerTaken {
                    path: path.display().to_string(),
                });
            }
            if c.default_action() == LinuxSeccompAction::ScmpActNotify {
                return Err(FilterError::NotifyDefault);
            }
            let notifying: Vec<&LinuxSyscall> = c
                .syscalls()
                .iter()
                .flatten()
                .filter(|r| r.action() == LinuxSeccompAction::ScmpActNotify)
                .collect();
            if !notifying.is_empty() {
                let names: Vec<&str> = notifying
                    .iter()
                    .flat_map(|r| r.names().iter().map(String::as_str))
                    .collect();
                return Err(FilterError::NotifyRules {
                    names: if names.is_empty() {
                        "no names".to_owned()
                    } else {
                        names.join(", ")
                    },
                });
            }
            c.clone()
        }
        None => {
            let mut s = LinuxSeccomp::default();
            // On aarch64 the filter also covers 32-bit Arm, whose private syscalls (`set_tls`,
            // `cacheflush`, ...) chaperone's tables lack: failing them would break every
            // 32-bit Arm program, so there they stay allowed.
            let unnamed = match Arch::native() {
                Some(Arch::Aarch64) => Unnamed::Allow,
                _ => unnamed,
            };
            let (action, errno) = match unnamed {
                Unnamed::Allow => (LinuxSeccompAction::ScmpActAllow, None),
                Unnamed::Enosys => (LinuxSeccompAction::ScmpActErrno, Some(ENOSYS)),
            };
            s.set_default_action(action);
            s.set_default_errno_ret(errno);
            s.set_architectures(Some(native_architectures()));
            s
        }
    };
    // Names no rule mentions follow the default action. When it allows, those of another
    // tier get a rule and allowed ones need none; the default of an unconfined container's
    // filter that does not allow (`unnamed`) is for what no name covers, so every name gets
    // its rule.
    let default_allows = allows(out.default_action());
    let name_every_syscall = default_allows || container.is_none();

    let mut rules = Vec::new();
    let mut mentioned: BTreeSet<&str> = BTreeSet::new();
    let existing = container.and_then(|c| c.syscalls().as_ref());
    let default = runc_action(out.default_action(), out.default_errno_ret());
    for r in existing.into_iter().flatten() {
        // runc skips a rule whose action is the default's: it does nothing. An allowing one
        // (an allow rule of a profile that allows by default) made into a tier's rule would
        // override the profile's conditional denials of the same syscall, as libseccomp lets
        // an unconditional rule replace conditional ones: it is left out here too.
        if allows(r.action()) && runc_action(r.action(), r.errno_ret()) == default {
            continue;
        }
        mentioned.extend(r.names().iter().map(String::as_str));
        if !allows(r.action()) {
            rules.push(r.clone());
            continue;
        }
        // An allowing rule (allow, or log) gives each name its tier; a log rule stays one where
        // its names are allowed in the kernel.
        let mut by_tier: BTreeMap<Tier, Vec<String>> = BTreeMap::new();
        for n in r.names() {
            by_tier.entry(tier_of(n)).or_default().push(n.clone());
        }
        rules.extend(by_tier.into_iter().map(|(t, names)| {
            let mut tiered = rule(r, names, t);
            if t == Tier::Allow {
                tiered.set_action(r.action());
            }
            tiered
        }));
    }
    // On 32-bit x86, libseccomp makes a rule on a socket or SysV IPC call also a rule on its
    // multiplexer (`socketcall` or `ipc`, on the operation's argument), and a rule on the
    // whole multiplexer replaces those: one of ours would undo the profile's. So the
    // multiplexer of a family the profile names is left to the profile (unseen where its
    // default allows: the gap above).
    let multiplexed: BTreeSet<&str> = MULTIPLEXED
        .iter()
        .filter(|(_, family)| family.iter().any(|n| mentioned.contains(n)))
        .map(|(multiplexer, _)| *multiplexer)
        .collect();
    mentioned.extend(multiplexed);
    if name_every_syscall {
        let mut by_tier: BTreeMap<Tier, Vec<String>> = BTreeMap::new();
        let names = all_names();
        let x86_only = if covers_x86(&out) {
            x86_only_names(&names)
        } else {
            Vec::new()
        };
        for n in names
            .into_iter()
            .chain(x86_only)
            .filter(|n| !mentioned.contains(n) && NEVER_IMPLEMENTED.binary_search(n).is_err())
        {
            let tier = tier_of(n);
            if tier != Tier::Allow || !default_allows {
                by_tier.entry(tier).or_default().push(n.to_owned());
            }
        }
        rules.extend(
            by_tier
                .into_iter()
                .map(|(t, names)| rule(&LinuxSyscall::default(), names, t)),
        );
    }
    out.set_syscalls(Some(rules));
    out.set_listener_path(Some(listener.to_owned()));
    out.set_listener_metadata(metadata.map(str::to_owned));
    Ok(out)
}

/// Whether runc accepts the notify parts of `filter` and they cannot deadlock runc init (no
/// notify default, nothing of [`NEVER_NOTIFIED`] notified).
pub fn runc_accepts(filter: &LinuxSeccomp) -> bool {
    filter.default_action() != LinuxSeccompAction::ScmpActNotify
        && filter.syscalls().iter().flatten().all(|r| {
            r.action() != LinuxSeccompAction::ScmpActNotify
                || !r.names().iter().any(|n| never_notified(n))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxSeccompArg, LinuxSeccompArgBuilder, LinuxSeccompOperator};

    fn names_with(f: &LinuxSeccomp, action: LinuxSeccompAction) -> BTreeSet<String> {
        f.syscalls()
            .iter()
            .flatten()
            .filter(|r| r.action() == action)
            .flat_map(|r| r.names().iter().cloned())
            .collect()
    }

    #[test]
    fn the_never_notified_list_is_sorted() {
        assert!(NEVER_NOTIFIED.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn never_implemented_names_are_known_and_get_no_rule_of_their_own() {
        assert!(NEVER_IMPLEMENTED.windows(2).all(|w| w[0] < w[1]));
        let f = learn_filter(None, Path::new("/s"), None).unwrap();
        let named = names_with(&f, LinuxSeccompAction::ScmpActNotify);
        for n in NEVER_IMPLEMENTED {
            assert!(crate::syscalls::sym_of(n).is_some(), "{n} is in no table");
            assert!(!named.contains(*n), "{n}");
        }
        // A profile of its own that allows one keeps it, notified like any other.
        let mut c = LinuxSeccomp::default();
        c.set_default_action(LinuxSeccompAction::ScmpActErrno);
        c.set_syscalls(Some(vec![syscall(
            &["tuxcall"],
            LinuxSeccompAction::ScmpActAllow,
        )]));
        let f = learn_filter(Some(&c), Path::new("/s"), None).unwrap();
        assert!(names_with(&f, LinuxSeccompAction::ScmpActNotify).contains("tuxcall"));
    }

    #[test]
    fn unconfined_container_notifies_everything_but_write() {
        let f = learn_filter(None, Path::new("/run/chaperone/x.sock"), Some("img")).unwrap();
        assert!(runc_accepts(&f));
        assert_eq!(f.default_action(), LinuxSeccompAction::ScmpActAllow);
        let notified = names_with(&f, LinuxSeccompAction::ScmpActNotify);
        for n in [
            "read",
            "openat",
            "execve",
            "exit_group",
            "clone3",
            "getppid",
        ] {
            assert!(notified.contains(n), "{n}");
        }
        assert!(!notified.contains("write"));
        assert!(notified.len() > 300);
        // The native ABI and its 32-bit one always; x32 only where the kernel runs it.
        let archs = f.architectures().clone().unwrap_or_default();
        if Arch::native() == Some(Arch::X86_64) {
            assert_eq!(archs[..2], [OciArch::ScmpArchX86_64, OciArch::ScmpArchX86]);
            assert_eq!(
                archs.contains(&OciArch::ScmpArchX32),
                crate::sys::abi::x32_syscalls_run()
            );
        }
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["listenerPath"], "/run/chaperone/x.sock");
        assert_eq!(json["listenerMetadata"], "img");
        assert_eq!(json["syscalls"][0]["action"], "SCMP_ACT_NOTIFY");
        let back: LinuxSeccomp = serde_json::from_value(json).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn the_names_only_x86_has_are_notified_where_the_filter_covers_x86() {
        let only = x86_only_names(&all_names());
        for n in [
            "socketcall",
            "ipc",
            "mmap2",
            "stat64",
            "setuid32",
            "clock_gettime64",
        ] {
            assert!(only.contains(&n), "{n}");
        }
        assert!(!only.contains(&"read") && !only.contains(&"socket"));
        let f = learn_filter(None, Path::new("/s"), None).unwrap();
        let notified = names_with(&f, LinuxSeccompAction::ScmpActNotify);
        let x86 = covers_x86(&f);
        assert_eq!(x86, Arch::native() == Some(Arch::X86_64));
        for n in only.iter().filter(|n| !NEVER_IMPLEMENTED.contains(n)) {
            assert_eq!(notified.contains(*n), x86, "{n}");
        }
        // A profile of its own that covers x86_64 alone gets no rule for them.
        let mut c = LinuxSeccomp::default();
        c.set_default_action(LinuxSeccompAction::ScmpActAllow);
        c.set_architectures(Some(vec![OciArch::ScmpArchX86_64]));
        let f = learn_filter(Some(&c), Path::new("/s"), None).unwrap();
        let notified = names_with(&f, LinuxSeccompAction::ScmpActNotify);
        assert!(notified.contains("socket") && !notified.contains("socketcall"));
    }

    #[test]
    fn each_rule_lists_its_names_from_the_highest_native_number_down() {
        let mut c = LinuxSeccomp::default();
        c.set_default_action(LinuxSeccompAction::ScmpActErrno);
        c.set_syscalls(Some(vec![syscall(
            &["read", "socketcall", "openat", "close", "write"],
            LinuxSeccompAction::ScmpActAllow,
        )]));
        let f = learn_filter(Some(&c), Path::new("/s"), None).unwrap();
        let notify = f
            .syscalls()
            .iter()
            .flatten()
            .find(|r| r.action() == LinuxSeccompAction::ScmpActNotify)
            .unwrap();
        if Arch::native() == Some(Arch::X86_64) {
            // openat 257, close 3, read 0; socketcall is not an x86_64 syscall.
            assert_eq!(notify.names(), &["openat", "close", "read", "socketcall"]);
        }
        for f in [f, learn_filter(None, Path::new("/s"), None).unwrap()] {
            for r in f.syscalls().iter().flatten() {
                let numbers: Vec<Option<u32>> =
                    r.names().iter().map(|n| native_number(n)).collect();
                assert!(numbers.windows(2).all(|w| w[0] >= w[1]), "{numbers:?}");
            }
        }
    }

    fn arg() -> LinuxSeccompArg {
        LinuxSeccompArgBuilder::default()
            .index(0_usize)
            .value(0x2008_u64)
            .op(LinuxSeccompOperator::ScmpCmpEq)
            .build()
            .unwrap()
    }

    fn syscall(names: &[&str], action: LinuxSeccompAction) -> LinuxSyscall {
        let mut r = LinuxSyscall::default();
        r.set_names(names.iter().map(|s| (*s).to_owned()).collect());
        r.set_action(action);
        r
    }

    /// Three shapes of a profile that allows by default where the learn filter was weaker
    /// (found 2026-12-07, each seen under real runc): an allow rule runc skips, made a
    /// notify rule, replaced the profile's conditional denial of the same call; a log rule
    /// was kept, its calls never seen; and on 32-bit x86 a whole `socketcall`/`ipc` notify
    /// rule replaced the conditional rules libseccomp makes of the profile's socket and IPC
    /// denials. (`seccomp-gen/tests/tiered.rs` runs the compiled filters as the kernel does.)
    #[test]
    fn a_default_allow_profile_keeps_its_denials_and_has_its_logged_calls_seen() {
        let mut own = LinuxSeccomp::default();
        own.set_default_action(LinuxSeccompAction::ScmpActAllow);
        own.set_architectures(Some(vec![OciArch::ScmpArchX86_64, OciArch::ScmpArchX86]));
        let mut no_aslr_off = syscall(&["personality"], LinuxSeccompAction::ScmpActErrno);
        no_aslr_off.set_args(Some(vec![arg()]));
        own.set_syscalls(Some(vec![
            syscall(&["personality", "read"], LinuxSeccompAction::ScmpActAllow),
            no_aslr_off.clone(),
            syscall(&["uname"], LinuxSeccompAction::ScmpActLog),
            syscall(&["socket", "shmget"], LinuxSeccompAction::ScmpActErrno),
        ]));
        let f = learn_filter(Some(&own), Path::new("/s"), None).unwrap();
        let rules = f.syscalls().clone().unwrap_or_default();
        // personality: only the profile's conditional denial; other arguments take the
        // default (the documented gap), never a whole rule that would replace the denial.
        let personality: Vec<&LinuxSyscall> = rules
            .iter()
            .filter(|r| r.names().iter().any(|n| n == "personality"))
            .collect();
        assert_eq!(personality, [&no_aslr_off]);
        let notified = names_with(&f, LinuxSeccompAction::ScmpActNotify);
        assert!(notified.contains("read") && notified.contains("uname"));
        assert!(names_with(&f, LinuxSeccompAction::ScmpActLog).is_empty());
        for multiplexer in ["socketcall", "ipc"] {
            assert!(
                rules
                    .iter()
                    .all(|r| !r.names().iter().any(|n| n == multiplexer)),
                "{multiplexer}"
            );
        }
        assert!(
            notified.contains("mmap2"),
            "other x86-only names are still seen"
        );
    }

    #[test]
    fn a_default_deny_profile_stays_a_default_deny_profile() {
        let mut docker = LinuxSeccomp::default();
        docker.set_default_action(LinuxSeccompAction::ScmpActErrno);
        docker.set_default_errno_ret(Some(1));
        let mut personality = syscall(&["personality"], LinuxSeccompAction::ScmpActAllow);
        personality.set_args(Some(vec![arg()]));
        docker.set_syscalls(Some(vec![
            syscall(
                &["read", "write", "openat"],
                LinuxSeccompAction::ScmpActAllow,
            ),
            syscall(&["mount"], LinuxSeccompAction::ScmpActErrno),
            personality,
        ]));
        let f = learn_filter(Some(&docker), Path::new("/s"), None).unwrap();
        assert!(runc_accepts(&f));
        assert_eq!(f.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(f.default_errno_ret(), Some(1));
        let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
        assert_eq!(
            names_with(&f, LinuxSeccompAction::ScmpActNotify),
            set(&["read", "openat", "personality"])
        );
        assert_eq!(
            names_with(&f, LinuxSeccompAction::ScmpActAllow),
            set(&["write"])
        );
        assert_eq!(
            names_with(&f, LinuxSeccompAction::ScmpActErrno),
            set(&["mount"])
        );
        let p = f
            .syscalls()
            .iter()
            .flatten()
            .find(|r| r.names() == &["personality".to_owned()])
            .unwrap();
        assert_eq!(p.args().as_deref(), Some(&[arg()][..]), "conditions kept");
    }

    #[test]
    fn a_default_allow_profile_keeps_its_denials() {
        let mut c = LinuxSeccomp::default();
        c.set_default_action(LinuxSeccompAction::ScmpActAllow);
        c.set_syscalls(Some(vec![syscall(
            &["mount", "kexec_load"],
            LinuxSeccompAction::ScmpActErrno,
        )]));
        let f = learn_filter(Some(&c), Path::new("/s"), None).unwrap();
        let notified = names_with(&f, LinuxSeccompAction::ScmpActNotify);
        assert!(!notified.contains("mount") && !notified.contains("write"));
        assert!(notified.contains("read"));
        assert!(names_with(&f, LinuxSeccompAction::ScmpActErrno).contains("kexec_load"));
    }

    #[test]
    fn refuses_what_runc_refuses() {
        let mut c = LinuxSeccomp::default();
        c.set_default_action(LinuxSeccompAction::ScmpActNotify);
        assert!(matches!(
            learn_filter(Some(&c), Path::new("/s"), None),
            Err(FilterError::NotifyDefault)
        ));
        c.set_default_action(LinuxSeccompAction::ScmpActAllow);
        c.set_listener_path(Some("/other".into()));
        assert!(matches!(
            learn_filter(Some(&c), Path::new("/s"), None),
            Err(FilterError::ListenerTaken { .. })
        ));
        let mut bad = LinuxSeccomp::default();
        bad.set_syscalls(Some(vec![syscall(
            &["write"],
            LinuxSeccompAction::ScmpActNotify,
        )]));
        assert!(!runc_accepts(&bad));
        // runc refuses notify rules without a listener ("listenerPath is not set"); kept, this
        // one would notify `write`, which runc init calls before it hands the fd over.
        let err = learn_filter(Some(&bad), Path::new("/s"), None).unwrap_err();
        assert!(matches!(err, FilterError::NotifyRules { .. }), "{err}");
        assert!(err.to_string().contains("(write)"), "{err}");
        // A notify rule is refused whatever it names, none included.
        bad.set_syscalls(Some(vec![syscall(&[], LinuxSeccompAction::ScmpActNotify)]));
        let err = learn_filter(Some(&bad), Path::new("/s"), None).unwrap_err();
        assert!(err.to_string().contains("(no names)"), "{err}");
    }
}
