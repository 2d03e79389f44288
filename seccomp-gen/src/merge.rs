//! `--merge BASE`: an export that is never weaker than a base profile (Docker's default, a
//! pod's localhost profile).
//!
//! For a syscall `n` the learned profile allows, the base decides how far it is allowed:
//!
//! | the base's rules for `n` | the result |
//! |---|---|
//! | a rule without arguments that does not allow (errno, kill, trap, trace) | that rule, verbatim |
//! | a rule without arguments that allows (allow, log) | allowed |
//! | only rules with argument conditions, in a base that denies by default | those rules, verbatim: allowed only where the base allows it |
//! | only rules with argument conditions, in a base that allows by default | allowed, but where a conditional rule of the base denies it (kept verbatim) |
//! | none | the base's default action decides |
//!
//! Every base rule that does not allow is kept verbatim (with its errno: Docker's `clone3`
//! returns `ENOSYS` so libc falls back to `clone`), and a syscall the learned profile does not
//! allow gets the export's default action. So nothing the base denies is allowed, and a syscall
//! the base allows only under argument conditions keeps them. With `--default-action log` over a
//! base that denies by default, the base's default action stays the default (a dry run must not
//! let through what the base denies) and the syscalls the base allows but the profile does not
//! get `SCMP_ACT_LOG` rules instead: the log shows what the profile would deny.
//!
//! [`evaluate`] is the reference semantics the tests check this against.

use std::collections::{BTreeMap, BTreeSet};

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator, LinuxSyscall};

use crate::oci::{allows, rule, DefaultAction};
use crate::{GenError, Result};

/// How the base treats one syscall name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Treatment {
    /// Allowed whatever its arguments.
    Allowed,
    /// Allowed only under some rules' argument conditions.
    Conditional,
    /// Never allowed.
    Denied,
}

#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    deny: bool,
    allow: bool,
    arg_deny: bool,
    arg_allow: bool,
}

fn has_args(r: &LinuxSyscall) -> bool {
    r.args().as_ref().is_some_and(|a| !a.is_empty())
}

fn check_actions(base: &LinuxSeccomp) -> Result<()> {
    let notify = LinuxSeccompAction::ScmpActNotify;
    if base.default_action() == notify {
        return Err(GenError::BaseAction {
            action: notify.to_string(),
            name: "defaultAction".to_owned(),
        });
    }
    match base
        .syscalls()
        .iter()
        .flatten()
        .find(|r| r.action() == notify)
    {
        Some(r) => Err(GenError::BaseAction {
            action: notify.to_string(),
            name: r.names().first().cloned().unwrap_or_default(),
        }),
        None => Ok(()),
    }
}

/// The export of `ours` (every name the learned profile allows) with default action `default`,
/// never weaker than `base`. The result's architectures are left to the caller.
pub fn merge(
    ours: &BTreeSet<&str>,
    default: DefaultAction,
    base: &LinuxSeccomp,
) -> Result<LinuxSeccomp> {
    check_actions(base)?;
    let base_rules: &[LinuxSyscall] = base.syscalls().as_deref().unwrap_or_default();
    let mut seen: BTreeMap<&str, Seen> = BTreeMap::new();
    for r in base_rules {
        for n in r.names() {
            let s = seen.entry(n.as_str()).or_default();
            match (allows(r.action()), has_args(r)) {
                (false, false) => s.deny = true,
                (true, false) => s.allow = true,
                (false, true) => s.arg_deny = true,
                (true, true) => s.arg_allow = true,
            }
        }
    }
    let base_default_allows = allows(base.default_action());
    let treatment = |name: &str| -> Treatment {
        let s = seen.get(name).copied().unwrap_or_default();
        if s.deny {
            Treatment::Denied
        } else if s.allow || base_default_allows {
            // Under a base that allows by default, its conditional denials (kept verbatim)
            // are the only limits: the kernel keeps the most restrictive of the matching rules.
            Treatment::Allowed
        } else if s.arg_deny || s.arg_allow {
            Treatment::Conditional
        } else {
            Treatment::Denied
        }
    };

    let mut out = LinuxSeccomp::default();
    let keep_base_default = default == DefaultAction::Log && !base_default_allows;
    if keep_base_default {
        out.set_default_action(base.default_action());
        out.set_default_errno_ret(base.default_errno_ret());
    } else {
        out.set_default_action(default.action());
        // Failing like the base, when both fail: its errno (ENOSYS in containerd's and
        // CRI-O's defaults, so that libc falls back to an older call), else ours.
        let same = default.action() == LinuxSeccompAction::ScmpActErrno
            && base.default_action() == LinuxSeccompAction::ScmpActErrno;
        out.set_default_errno_ret(if same {
            base.default_errno_ret().or(default.errno())
        } else {
            default.errno()
        });
    }

    // What the base denies, verbatim.
    let mut rules: Vec<LinuxSyscall> = base_rules
        .iter()
        .filter(|r| !allows(r.action()))
        .cloned()
        .collect();
    // What both allow.
    let allowed: Vec<String> = ours
        .iter()
        .filter(|n| treatment(n) == Treatment::Allowed)
        .map(|n| (*n).to_owned())
        .collect();
    if !allowed.is_empty() {
        rules.push(rule(allowed, LinuxSeccompAction::ScmpActAllow));
    }
    // A conditional allow rule whose conditions a kept denial repeats exactly is left out: the
    // denial wins (libseccomp refuses two actions for one call and one condition list, and a
    // base that had both compiled only because one of them was its default action).
    let shadowed = |n: &str, allow: &LinuxSyscall| {
        base_rules.iter().any(|d| {
            !allows(d.action()) && d.args() == allow.args() && d.names().iter().any(|x| x == n)
        })
    };
    // What the base allows under conditions: its conditional rules, for our names.
    let conditional = |n: &&String| treatment(n) == Treatment::Conditional;
    for r in base_rules
        .iter()
        .filter(|r| allows(r.action()) && has_args(r))
    {
        let names: Vec<String> = r
            .names()
            .iter()
            .filter(|n| ours.contains(n.as_str()) && !shadowed(n, r))
            .filter(conditional)
            .cloned()
            .collect();
        if !names.is_empty() {
            let mut kept = r.clone();
            kept.set_names(names);
            rules.push(kept);
        }
    }
    // A dry run over a default-deny base: log what the base allows and the profile does not.
    if keep_base_default {
        let mut logged: BTreeSet<&str> = BTreeSet::new();
        for r in base_rules.iter().filter(|r| allows(r.action())) {
            let names: Vec<String> = r
                .names()
                .iter()
                .filter(|n| !ours.contains(n.as_str()) && !shadowed(n, r))
                .filter(|n| match treatment(n) {
                    Treatment::Allowed => !has_args(r) && logged.insert(n.as_str()),
                    Treatment::Conditional => has_args(r),
                    Treatment::Denied => false,
                })
                .cloned()
                .collect();
            if !names.is_empty() {
                let mut kept = r.clone();
                kept.set_names(names);
                kept.set_action(LinuxSeccompAction::ScmpActLog);
                kept.set_errno_ret(None);
                rules.push(kept);
            }
        }
    }
    if !rules.is_empty() {
        out.set_syscalls(Some(rules));
    }
    Ok(out)
}

/// How restrictive an action is: the kernel runs every filter and keeps the most restrictive
/// verdict, and this model does the same for several matching rules.
fn severity(action: LinuxSeccompAction) -> u8 {
    match action {
        LinuxSeccompAction::ScmpActKillProcess => 7,
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => 6,
        LinuxSeccompAction::ScmpActTrap => 5,
        LinuxSeccompAction::ScmpActErrno => 4,
        LinuxSeccompAction::ScmpActNotify => 3,
        LinuxSeccompAction::ScmpActTrace => 2,
        LinuxSeccompAction::ScmpActLog => 1,
        LinuxSeccompAction::ScmpActAllow => 0,
    }
}

fn arg_matches(op: LinuxSeccompOperator, arg: u64, value: u64, value_two: u64) -> bool {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => arg != value,
        LinuxSeccompOperator::ScmpCmpLt => arg < value,
        LinuxSeccompOperator::ScmpCmpLe => arg <= value,
        LinuxSeccompOperator::ScmpCmpEq => arg == value,
        LinuxSeccompOperator::ScmpCmpGe => arg >= value,
        LinuxSeccompOperator::ScmpCmpGt => arg > value,
        LinuxSeccompOperator::ScmpCmpMaskedEq => arg & value == value_two,
    }
}

fn rule_matches(r: &LinuxSyscall, name: &str, args: &[u64; 6]) -> bool {
    r.names().iter().any(|n| n == name)
        && r.args().iter().flatten().all(|a| {
            args.get(a.index()).is_some_and(|&v| {
                arg_matches(a.op(), v, a.value(), a.value_two().unwrap_or_default())
            })
        })
}

/// The action `profile` gives syscall `name` called with `args`: the most restrictive action of
/// the rules that match (name and every argument condition), else the default action.
///
/// A model of the filter runc builds, for tests: it ignores architectures.
pub fn evaluate(profile: &LinuxSeccomp, name: &str, args: &[u64; 6]) -> LinuxSeccompAction {
    profile
        .syscalls()
        .iter()
        .flatten()
        .filter(|r| rule_matches(r, name, args))
        .map(LinuxSyscall::action)
        .max_by_key(|&a| severity(a))
        .unwrap_or(profile.default_action())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxSeccompArg, LinuxSeccompArgBuilder};

    fn arg(value: u64) -> LinuxSeccompArg {
        LinuxSeccompArgBuilder::default()
            .index(0_usize)
            .value(value)
            .op(LinuxSeccompOperator::ScmpCmpEq)
            .build()
            .unwrap()
    }

    fn base() -> LinuxSeccomp {
        let mut b = LinuxSeccomp::default();
        b.set_default_action(LinuxSeccompAction::ScmpActErrno);
        b.set_default_errno_ret(Some(1));
        let mut personality = rule(vec!["personality".into()], LinuxSeccompAction::ScmpActAllow);
        personality.set_args(Some(vec![arg(8)]));
        let mut clone3 = rule(vec!["clone3".into()], LinuxSeccompAction::ScmpActErrno);
        clone3.set_errno_ret(Some(38));
        b.set_syscalls(Some(vec![
            rule(
                vec!["read".into(), "write".into(), "getpid".into()],
                LinuxSeccompAction::ScmpActAllow,
            ),
            personality,
            clone3,
        ]));
        b
    }

    const ALLOW: LinuxSeccompAction = LinuxSeccompAction::ScmpActAllow;

    /// The base's errno for its default action is kept when the export fails by default too:
    /// containerd's and CRI-O's defaults fail with ENOSYS (38). Over a base that allows, the
    /// export's own (EPERM).
    #[test]
    fn the_bases_default_errno_is_kept() {
        let ours: BTreeSet<&str> = ["read"].into();
        let mut enosys = base();
        enosys.set_default_errno_ret(Some(38));
        let m = merge(&ours, DefaultAction::Errno, &enosys).unwrap();
        assert_eq!(m.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(m.default_errno_ret(), Some(38));
        let mut open = LinuxSeccomp::default();
        open.set_default_action(ALLOW);
        let m = merge(&ours, DefaultAction::Errno, &open).unwrap();
        assert_eq!(m.default_errno_ret(), DefaultAction::Errno.errno());
    }

    #[test]
    fn keeps_denials_and_conditions() {
        let ours: BTreeSet<&str> = ["read", "personality", "clone3", "mount"].into();
        let m = merge(&ours, DefaultAction::Errno, &base()).unwrap();
        let z = [0; 6];
        assert_eq!(evaluate(&m, "read", &z), ALLOW);
        assert_ne!(evaluate(&m, "getpid", &z), ALLOW, "not learned");
        assert_ne!(evaluate(&m, "mount", &z), ALLOW, "the base denies it");
        assert_eq!(evaluate(&m, "personality", &[8, 0, 0, 0, 0, 0]), ALLOW);
        assert_ne!(evaluate(&m, "personality", &z), ALLOW);
        let clone3 = m
            .syscalls()
            .iter()
            .flatten()
            .find(|r| r.names() == &["clone3".to_owned()])
            .unwrap();
        assert_eq!(clone3.errno_ret(), Some(38), "errno kept");
    }

    #[test]
    fn a_dry_run_over_a_default_deny_base_still_denies() {
        let ours: BTreeSet<&str> = ["read"].into();
        let m = merge(&ours, DefaultAction::Log, &base()).unwrap();
        let z = [0; 6];
        assert_eq!(m.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(evaluate(&m, "read", &z), ALLOW);
        assert_eq!(evaluate(&m, "getpid", &z), LinuxSeccompAction::ScmpActLog);
        assert_eq!(
            evaluate(&m, "personality", &[8, 0, 0, 0, 0, 0]),
            LinuxSeccompAction::ScmpActLog
        );
        assert_eq!(evaluate(&m, "mount", &z), LinuxSeccompAction::ScmpActErrno);
    }

    #[test]
    fn refuses_notify() {
        let mut b = base();
        b.set_default_action(LinuxSeccompAction::ScmpActNotify);
        assert!(matches!(
            merge(&BTreeSet::new(), DefaultAction::Errno, &b),
            Err(GenError::BaseAction { .. })
        ));
    }
}
