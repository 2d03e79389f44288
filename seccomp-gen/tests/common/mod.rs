//! Helpers shared by the integration tests: compiling a profile with libseccomp as runc does,
//! and random profiles for the property tests.

// Each test crate uses a part of it.
#![allow(dead_code)]

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    Arch as OciArch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};
use proptest::prelude::*;

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> ScmpAction {
    let errno = errno.map(|e| i32::try_from(e).unwrap()).or(Some(1));
    ScmpAction::from_str(&a.to_string(), errno).unwrap()
}

fn op(o: LinuxSeccompOperator, mask: u64) -> ScmpCompareOp {
    match o {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(mask),
    }
}

/// Builds `profile` into a libseccomp filter the way runc's `libcontainer/seccomp` does (rules
/// whose action is the default action are skipped, names libseccomp does not know are skipped)
/// and exports its BPF program.
pub fn compile(profile: &LinuxSeccomp) -> Vec<u8> {
    try_compile(profile).unwrap_or_else(|e| panic!("{e}"))
}

/// [`compile`], returning libseccomp's refusal as an error.
pub fn try_compile(profile: &LinuxSeccomp) -> Result<Vec<u8>, String> {
    let default = action(profile.default_action(), profile.default_errno_ret());
    let mut ctx = ScmpFilterContext::new(default).unwrap();
    for arch in profile.architectures().iter().flatten() {
        let name = serde_json::to_value(arch).unwrap();
        let arch: ScmpArch = name.as_str().unwrap().parse().unwrap();
        ctx.add_arch(arch).unwrap();
    }
    for rule in profile.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret());
        if act == default {
            continue;
        }
        let conditions: Vec<ScmpArgCompare> = rule
            .args()
            .iter()
            .flatten()
            .map(|a| {
                let (mask, datum) = match a.op() {
                    LinuxSeccompOperator::ScmpCmpMaskedEq => {
                        (a.value(), a.value_two().unwrap_or_default())
                    }
                    _ => (0, a.value()),
                };
                ScmpArgCompare::new(u32::try_from(a.index()).unwrap(), op(a.op(), mask), datum)
            })
            .collect();
        for name in rule.names() {
            let Ok(sys) = ScmpSyscall::from_name(name) else {
                continue;
            };
            if conditions.is_empty() {
                ctx.add_rule(act, sys)
            } else {
                ctx.add_rule_conditional(act, sys, &conditions)
            }
            .map_err(|e| format!("rule {name} {act:?} {conditions:?}: {e}"))?;
        }
    }
    let mut file = tempfile::tempfile().unwrap();
    ctx.export_bpf(&file).unwrap();
    let mut bpf = Vec::new();
    std::io::Seek::rewind(&mut file).unwrap();
    std::io::Read::read_to_end(&mut file, &mut bpf).unwrap();
    assert!(
        !bpf.is_empty() && bpf.len() % 8 == 0,
        "BPF is whole instructions"
    );
    Ok(bpf)
}

/// The syscall names random profiles are made of.
pub const NAMES: &[&str] = &[
    "read",
    "write",
    "openat",
    "close",
    "mmap",
    "clone",
    "execve",
    "mount",
    "socket",
    "personality",
];

/// The actions random rules take.
pub const ACTIONS: &[LinuxSeccompAction] = &[
    LinuxSeccompAction::ScmpActAllow,
    LinuxSeccompAction::ScmpActLog,
    LinuxSeccompAction::ScmpActErrno,
    LinuxSeccompAction::ScmpActKillProcess,
    LinuxSeccompAction::ScmpActTrap,
];

/// One to three of [`NAMES`].
pub fn names() -> impl Strategy<Value = Vec<String>> {
    proptest::sample::subsequence(NAMES, 1..=3)
        .prop_map(|v| v.into_iter().map(str::to_owned).collect())
}

/// A random rule: names, action, errno, maybe one argument condition.
pub fn rule() -> impl Strategy<Value = LinuxSyscall> {
    (
        names(),
        proptest::sample::select(ACTIONS),
        proptest::option::of(1_u32..40),
        proptest::option::of((0_u64..4, any::<bool>())),
    )
        .prop_map(|(names, action, errno, arg)| {
            let mut r = LinuxSyscall::default();
            r.set_names(names);
            r.set_action(action);
            if action == LinuxSeccompAction::ScmpActErrno {
                r.set_errno_ret(errno);
            }
            if let Some((value, masked)) = arg {
                let a = LinuxSeccompArgBuilder::default().index(0_usize);
                let a = if masked {
                    a.value(value)
                        .value_two(value & 1)
                        .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                } else {
                    a.value(value).op(LinuxSeccompOperator::ScmpCmpEq)
                };
                r.set_args(Some(vec![a.build().unwrap()]));
            }
            r
        })
}

/// A random container or base profile libseccomp could take (one action per name and
/// conditions).
pub fn base() -> impl Strategy<Value = LinuxSeccomp> {
    (
        proptest::sample::select(&ACTIONS[..4]),
        proptest::collection::vec(rule(), 0..6),
    )
        // One action per call and condition list, as libseccomp (and so runc) requires of a
        // profile; which of two such rules libseccomp keeps depends on their order.
        .prop_filter("one action per name and conditions", |(_, rules)| {
            rules.iter().enumerate().all(|(i, a)| {
                rules[..i].iter().all(|b| {
                    a.args() != b.args() || a.names().iter().all(|n| !b.names().contains(n))
                })
            })
        })
        .prop_map(|(default, rules)| {
            let mut b = LinuxSeccomp::default();
            b.set_default_action(default);
            b.set_architectures(Some(vec![OciArch::ScmpArchX86_64]));
            b.set_syscalls(Some(rules));
            b
        })
}
