//! `--merge BASE` never allows what BASE does not, and allows what was learned where BASE does:
//! properties over random small profiles.

// Integration tests are their own crates: their tests have no test module.
#![allow(clippy::tests_outside_test_module)]

mod common;

use std::collections::BTreeSet;

use chaperone_seccomp_gen::merge::{evaluate, merge};
use chaperone_seccomp_gen::oci::allows;
use chaperone_seccomp_gen::DefaultAction;
use common::{base, NAMES};
use oci_spec::runtime::Arch as OciArch;
use proptest::prelude::*;

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
                // And the converse: what was learned and the base allows stays allowed (a
                // base allowing by default once denied the learned call outright where one
                // of its rules denied it only under conditions).
                if ours.contains(name) && allows(want) {
                    prop_assert!(allows(got), "{name}({arg0}): learned and allowed by the base, merged {got:?}");
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
