//! `chaperone diff`: how one learned profile differs from another.
//!
//! Four kinds of change, each with a [`Risk`]: syscalls only the new profile has, syscalls only
//! the old one has, transitions (bigrams `a -> b`, thread starts left out) only the new one has,
//! and syscalls both have whose share of all calls moved by at least [`SHIFT_FACTOR`] (and is at
//! least [`MIN_SHARE`] in one of them, so that noise among rare calls is not reported).

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use chaperone_profiler::model::{gram_symbols, NgramCounts, BOS};
use chaperone_profiler::syscalls::{name_of, Sym};
use serde::Serialize;

use crate::risk::{risk_of, Risk};

/// A share must change by this factor (up or down) to count as shifted.
pub const SHIFT_FACTOR: f64 = 2.0;
/// A shift is reported only when the share is at least this in the old or the new profile.
pub const MIN_SHARE: f64 = 0.001;

/// The kind of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// A syscall only the new profile has.
    NewSyscall,
    /// A syscall only the old profile has.
    RemovedSyscall,
    /// A transition only the new profile has.
    NewTransition,
    /// A syscall whose share of all calls moved.
    Shifted,
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// What changed.
    pub kind: ChangeKind,
    /// The syscall, or the two of a transition.
    pub syscalls: Vec<&'static str>,
    /// The highest risk of the syscalls involved (low for a removal).
    pub risk: Risk,
    /// Share of all calls (transitions: of all transitions) in the old profile.
    pub old_share: f64,
    /// The same in the new profile.
    pub new_share: f64,
}

/// When `chaperone diff` fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOn {
    /// A new syscall.
    NewSyscalls,
    /// A new syscall or transition of high risk.
    Risky,
    /// Any change.
    Any,
}

impl FromStr for FailOn {
    type Err = String;

    /// Accepts "new-syscalls", "risky" and "any".
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "new-syscalls" => Ok(FailOn::NewSyscalls),
            "risky" => Ok(FailOn::Risky),
            "any" => Ok(FailOn::Any),
            _ => Err(format!(
                "unknown policy {s:?}: expected new-syscalls, risky or any"
            )),
        }
    }
}

impl FailOn {
    /// Whether `change` breaks this policy.
    pub fn matches(self, change: &Change) -> bool {
        match self {
            FailOn::Any => true,
            FailOn::NewSyscalls => change.kind == ChangeKind::NewSyscall,
            FailOn::Risky => {
                matches!(
                    change.kind,
                    ChangeKind::NewSyscall | ChangeKind::NewTransition
                ) && change.risk == Risk::High
            }
        }
    }
}

/// Per-syscall and per-transition counts of a profile.
struct Summary {
    unigrams: BTreeMap<Sym, u64>,
    bigrams: BTreeMap<(Sym, Sym), u64>,
}

impl Summary {
    fn of(counts: &NgramCounts) -> Self {
        let mut unigrams = BTreeMap::new();
        let mut bigrams = BTreeMap::new();
        for (gram, n) in counts.iter() {
            match *gram_symbols(gram).as_slice() {
                [s] if s != BOS => {
                    unigrams.insert(s, n);
                }
                [a, b] if a != BOS && b != BOS => {
                    bigrams.insert((a, b), n);
                }
                _ => {}
            }
        }
        Self { unigrams, bigrams }
    }

    fn share(&self, s: Sym) -> f64 {
        share(self.unigrams.get(&s).copied(), self.unigrams.values().sum())
    }

    fn transition_share(&self, t: (Sym, Sym)) -> f64 {
        share(self.bigrams.get(&t).copied(), self.bigrams.values().sum())
    }
}

#[allow(clippy::cast_precision_loss)] // counts far below 2^52
fn share(n: Option<u64>, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        n.unwrap_or(0) as f64 / total as f64
    }
}

fn name(s: Sym) -> &'static str {
    name_of(s).unwrap_or("?")
}

/// The risk of `s`; high for a syscall this build does not know (learned by a newer chaperone,
/// ADR 0025): nothing says it is harmless, and a gate must not let it through as low.
fn risk(s: Sym) -> Risk {
    name_of(s).map_or(Risk::High, risk_of)
}

/// Every change from `old` to `new`, by kind, then highest risk first, then by name.
pub fn diff(old: &NgramCounts, new: &NgramCounts) -> Vec<Change> {
    let (o, n) = (Summary::of(old), Summary::of(new));
    let old_syms: BTreeSet<Sym> = o.unigrams.keys().copied().collect();
    let new_syms: BTreeSet<Sym> = n.unigrams.keys().copied().collect();
    let mut out = Vec::new();
    let single = |kind, s: Sym, risk| Change {
        kind,
        syscalls: vec![name(s)],
        risk,
        old_share: o.share(s),
        new_share: n.share(s),
    };
    for &s in new_syms.difference(&old_syms) {
        out.push(single(ChangeKind::NewSyscall, s, risk(s)));
    }
    for &s in old_syms.difference(&new_syms) {
        out.push(single(ChangeKind::RemovedSyscall, s, Risk::Low));
    }
    for &(a, b) in n.bigrams.keys().filter(|t| !o.bigrams.contains_key(t)) {
        out.push(Change {
            kind: ChangeKind::NewTransition,
            syscalls: vec![name(a), name(b)],
            risk: risk(a).max(risk(b)),
            old_share: 0.0,
            new_share: n.transition_share((a, b)),
        });
    }
    for &s in old_syms.intersection(&new_syms) {
        let (before, after) = (o.share(s), n.share(s));
        let moved = after >= before * SHIFT_FACTOR || before >= after * SHIFT_FACTOR;
        if moved && before.max(after) >= MIN_SHARE {
            out.push(single(ChangeKind::Shifted, s, risk(s)));
        }
    }
    out.sort_by(|x, y| {
        (x.kind, std::cmp::Reverse(x.risk), &x.syscalls).cmp(&(
            y.kind,
            std::cmp::Reverse(y.risk),
            &y.syscalls,
        ))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaperone_profiler::syscalls::sym_of;

    fn learn(seqs: &[&[&str]]) -> NgramCounts {
        let mut c = NgramCounts::new(3).unwrap();
        for seq in seqs {
            let syms: Vec<Sym> = seq.iter().map(|n| sym_of(n).unwrap()).collect();
            c.learn_sequence(&syms);
        }
        c
    }

    #[test]
    fn finds_each_kind() {
        let old = learn(&[&["read", "write", "read", "write", "close"]]);
        let new = learn(&[&["read", "execve", "read", "read", "read", "read", "write"]]);
        let d = diff(&old, &new);
        let kinds = |k| {
            d.iter()
                .filter(|c| c.kind == k)
                .map(|c| c.syscalls.join(">"))
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(ChangeKind::NewSyscall), ["execve"]);
        assert_eq!(kinds(ChangeKind::RemovedSyscall), ["close"]);
        assert_eq!(
            kinds(ChangeKind::NewTransition),
            ["execve>read", "read>execve", "read>read"]
        );
        assert_eq!(kinds(ChangeKind::Shifted), ["write"]);
        assert!(FailOn::Risky.matches(&d[0]));
        assert!(diff(&old, &old).is_empty());
        "sometimes".parse::<FailOn>().unwrap_err();
    }

    /// A syscall this build does not know (a profile learned by a newer chaperone, ADR 0025)
    /// cannot be judged, so it is rated high: `--fail-on risky` stops at it (until 2026-12-07
    /// it was low).
    #[test]
    fn a_syscall_this_build_does_not_know_is_high_risk() {
        let unknown = (0..Sym::MAX).find(|&s| name_of(s).is_none()).unwrap();
        let read = sym_of("read").unwrap();
        let old = learn(&[&["read", "read"]]);
        let mut new = NgramCounts::new(3).unwrap();
        new.learn_sequence(&[read, unknown, read]);
        let d = diff(&old, &new);
        let added: Vec<_> = d
            .iter()
            .filter(|c| matches!(c.kind, ChangeKind::NewSyscall | ChangeKind::NewTransition))
            .collect();
        assert_eq!(added.len(), 3, "{d:?}");
        for c in added {
            assert_eq!(c.risk, Risk::High, "{c:?}");
            assert!(FailOn::Risky.matches(c));
        }
    }
}
