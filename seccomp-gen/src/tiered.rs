//! The tiered runtime filter of monitor and enforce mode (DESIGN.md): from a learned profile,
//! the hottest syscalls are allowed in the kernel, the rest of what it learned is notified and
//! scored, and what it never learned gets the configured in-kernel action (or is notified, to
//! alert). Merged with the container's own profile like learn mode's filter, so it is never
//! weaker than that profile.
//!
//! Always allowed whatever their tier: `NEVER_NOTIFIED` (notifying them can deadlock runc
//! init). Always notified: `chaperone_profiler::tiers::ALWAYS_TRACED` (`execve`, which the
//! supervisor watches for). Never given the unseen action: [`RUNC_INIT_SYSCALLS`], which runc
//! itself calls after loading the filter (learning skips that prelude, so the profile may not
//! have them); they are notified unless hot.

use std::collections::BTreeSet;
use std::path::Path;

use chaperone_config::{Unnamed, Unseen};
use chaperone_profiler::model::NgramCounts;
use chaperone_profiler::supervisor::filter::{never_notified, tiered_filter, FilterError, Tier};
use chaperone_profiler::syscalls::{name_of, Sym};
use chaperone_profiler::tiers::{hot_set, ALWAYS_TRACED};
use oci_spec::runtime::LinuxSeccomp;

use crate::runtime::RUNC_INIT_SYSCALLS;

/// A profile's syscalls split into tiers, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tiers {
    hot: BTreeSet<&'static str>,
    seen: BTreeSet<&'static str>,
}

impl Tiers {
    /// The tiers of a learned profile: `hot` (see `chaperone_profiler::tiers::hot_set`) among
    /// the syscalls `counts` saw.
    pub fn new(counts: &NgramCounts, hot: &BTreeSet<Sym>) -> Self {
        Self {
            hot: hot.iter().filter_map(|&s| name_of(s)).collect(),
            seen: counts.alphabet().into_iter().filter_map(name_of).collect(),
        }
    }

    /// The tiers of a learned profile with the hot set covering `coverage` of its events.
    pub fn with_coverage(counts: &NgramCounts, coverage: f64) -> Self {
        Self::new(counts, &hot_set(counts, coverage, &BTreeSet::new()))
    }

    /// Tiers from names: `hot` allowed in the kernel, `seen` notified.
    pub fn from_names<'a>(
        hot: impl IntoIterator<Item = &'a str>,
        seen: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let known = |n: &str| chaperone_profiler::syscalls::sym_of(n).and_then(name_of);
        Self {
            hot: hot.into_iter().filter_map(known).collect(),
            seen: seen.into_iter().filter_map(known).collect(),
        }
    }

    /// The syscalls allowed in the kernel.
    pub fn hot(&self) -> &BTreeSet<&'static str> {
        &self.hot
    }

    /// The syscalls the profile saw.
    pub fn seen(&self) -> &BTreeSet<&'static str> {
        &self.seen
    }

    /// The tier of `name` when the profile never saw a syscall is handled as `unseen`.
    pub fn tier_of(&self, name: &str, unseen: Unseen) -> Tier {
        if never_notified(name) {
            Tier::Allow
        } else if ALWAYS_TRACED.contains(&name) {
            Tier::Notify
        } else if self.hot.contains(name) {
            Tier::Allow
        } else if self.seen.contains(name) || RUNC_INIT_SYSCALLS.contains(&name) {
            Tier::Notify
        } else {
            match unseen {
                Unseen::Notify => Tier::Notify,
                Unseen::Errno => Tier::Errno,
                Unseen::Kill => Tier::Kill,
            }
        }
    }
}

/// The runtime filter of a container whose own profile is `container` (`None`: unconfined):
/// each syscall that profile allows gets its tier; its denials are kept; without a profile,
/// what the filter cannot name gets `unnamed`; the notify fd goes to `listener` with
/// `metadata`.
pub fn runtime_filter(
    container: Option<&LinuxSeccomp>,
    tiers: &Tiers,
    unseen: Unseen,
    unnamed: Unnamed,
    listener: &Path,
    metadata: Option<&str>,
) -> Result<LinuxSeccomp, FilterError> {
    tiered_filter(container, listener, metadata, unnamed, |name| {
        tiers.tier_of(name, unseen)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaperone_profiler::supervisor::filter::runc_accepts;
    use chaperone_profiler::syscalls::sym_of;
    use oci_spec::runtime::LinuxSeccompAction;

    fn sym(name: &str) -> Sym {
        sym_of(name).unwrap()
    }

    #[test]
    fn an_unconfined_container_gets_the_three_tiers() {
        let mut counts = NgramCounts::new(2).unwrap();
        let hot_thread: Vec<Sym> = ["read", "openat", "close"]
            .iter()
            .map(|n| sym(n))
            .cycle()
            .take(300)
            .collect();
        counts.learn_sequence(&hot_thread);
        counts.learn_sequence(&[sym("socket"), sym("connect")]);
        let tiers = Tiers::with_coverage(&counts, 0.9);
        assert_eq!(
            tiers.hot().iter().copied().collect::<Vec<_>>(),
            ["close", "openat", "read"]
        );
        for unseen in [Unseen::Notify, Unseen::Errno, Unseen::Kill] {
            let f = runtime_filter(
                None,
                &tiers,
                unseen,
                Unnamed::Allow,
                Path::new("/s.sock"),
                Some("c"),
            )
            .unwrap();
            assert!(runc_accepts(&f));
            assert_eq!(f.default_action(), LinuxSeccompAction::ScmpActAllow);
            let action_of = |name: &str| {
                f.syscalls()
                    .iter()
                    .flatten()
                    .find(|r| r.names().iter().any(|n| n == name))
                    .map_or(LinuxSeccompAction::ScmpActAllow, |r| r.action())
            };
            for n in ["read", "openat", "close", "write", "futex"] {
                assert_eq!(action_of(n), LinuxSeccompAction::ScmpActAllow, "{n}");
            }
            for n in ["socket", "connect", "execve", "capset"] {
                assert_eq!(action_of(n), LinuxSeccompAction::ScmpActNotify, "{n}");
            }
            let want = match unseen {
                Unseen::Notify => LinuxSeccompAction::ScmpActNotify,
                Unseen::Errno => LinuxSeccompAction::ScmpActErrno,
                Unseen::Kill => LinuxSeccompAction::ScmpActKillProcess,
            };
            for n in ["ptrace", "mount", "bind"] {
                assert_eq!(action_of(n), want, "{n} was never seen");
            }
        }
    }

    #[test]
    fn from_names_ignores_unknown_names() {
        let t = Tiers::from_names(["read", "nonsense"], ["socket"]);
        assert_eq!(t.hot().len(), 1);
        assert_eq!(t.tier_of("socket", Unseen::Errno), Tier::Notify);
        assert_eq!(t.tier_of("mount", Unseen::Errno), Tier::Errno);
    }
}
