//! `--merge BASE` never allows what BASE does not: a property over random small profiles.

// Integration tests are their own crates: their tests have no test module.
#![allow(clippy::tests_outside_test_module)]

mod common;

use std::collections::BTreeSet;

use chaperone_seccomp_gen::merge::{evaluate, merge};
use chaperone_seccomp_gen::oci::allows;
use chaperone_seccomp_gen::DefaultAction;
use oci_spec::runtime::{
    Arch as OciArch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};
use proptest::prelude::*;

const NAMES: &[&str] = &[
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

const ACTIONS: &[LinuxSeccompAction] = &[
    LinuxSeccompAction::ScmpActAllow,
    LinuxSeccompAction::ScmpActLog,
    LinuxSeccompAction::ScmpActErrno,
    LinuxSeccompAction::ScmpActKillProcess,
    LinuxSeccompAction::ScmpActTrap,
];

fn names() -> impl Strategy<Value = Vec<String>> {
    proptest::sample::subsequence(NAMES, 1..=3)
        .prop_map(|v| v.into_iter().map(str::to_owned).collect())
}

fn rule() -> impl Strategy<Value = LinuxSyscall> {
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

fn base() -> impl Strategy<Value = LinuxSeccomp> {
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

fn default_action() -> impl Strategy<Value = DefaultAction> {
    proptest::sample::select(
        &[
            DefaultAction::Errno,
            DefaultAction::Log,
            DefaultAction::Kill,
        ][..],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_allows_what_the_base_does_not(
        ours in proptest::sample::subsequence(NAMES, 0..=NAMES.len()),
        base in base(),
        default in default_action(),
    ) {
        let ours: BTreeSet<&str> = ours.into_iter().collect();
        let merged = merge(&ours, default, &base).unwrap();
        for name in NAMES {
            for arg0 in 0..5_u64 {
                let args = [arg0, 0, 0, 0, 0, 0];
                let (got, want) = (evaluate(&merged, name, &args), evaluate(&base, name, &args));
                prop_assert!(
                    !allows(got) || allows(want),
                    "{name}({arg0}): merged {got:?}, base {want:?}"
                );
                if !ours.contains(name) && default != DefaultAction::Log {
                    prop_assert!(!allows(got), "{name} is not learned");
                }
            }
        }
    }

    #[test]
    fn merged_profiles_compile(
        ours in proptest::sample::subsequence(NAMES, 0..=NAMES.len()),
        base in base(),
        default in default_action(),
    ) {
        // A base libseccomp refuses (two rules for one call with different actions) is no base.
        prop_assume!(common::try_compile(&base).is_ok());
        let ours: BTreeSet<&str> = ours.into_iter().collect();
        let merged = merge(&ours, default, &base).unwrap();
        let mut merged = merged;
        merged.set_architectures(Some(vec![OciArch::ScmpArchX86_64]));
        if let Err(e) = common::try_compile(&merged) {
            prop_assert!(false, "{e}\nbase {base:?}\nmerged {merged:?}");
        }
    }
}
