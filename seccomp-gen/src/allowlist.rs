//! What a learned profile allows: its syscalls plus the runtime's own, per architecture.

use std::collections::BTreeSet;

use chaperone_profiler::model::NgramCounts;
use chaperone_profiler::supervisor::filter::NEVER_NOTIFIED;
use chaperone_profiler::syscalls::{name_of, sym_of, Arch, Sym};

use crate::equivalents;
use crate::runtime::RUNC_INIT_SYSCALLS;
use crate::{GenError, Result};

/// The syscalls an exported profile allows, by name, before they are mapped to architectures.
///
/// Built from a learned profile ([`Allowlist::from_counts`]); other sources (the profile store,
/// a list of names) build the same type, so every export takes an `Allowlist`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowlist {
    learned: BTreeSet<&'static str>,
    runtime: bool,
}

impl Allowlist {
    /// The learned syscalls of `counts` plus [`RUNC_INIT_SYSCALLS`] and the untraced
    /// [`NEVER_NOTIFIED`]; symbols outside this build's alphabet are ignored. For profiles
    /// this build learned (tests, benches); a profile read from a file or a store, which a
    /// newer chaperone may have learned, goes through [`Allowlist::try_from_counts`].
    pub fn from_counts(counts: &NgramCounts) -> Self {
        Self::from_syms(counts.alphabet())
    }

    /// [`Allowlist::from_counts`], but a profile holding symbols this build's alphabet lacks
    /// (learned by a newer chaperone, whose alphabet only grew: ADR 0025) is
    /// [`GenError::UnknownSymbols`]. Dropped, they would be syscalls the container made and
    /// the export denies.
    pub fn try_from_counts(counts: &NgramCounts) -> Result<Self> {
        let alphabet = counts.alphabet();
        let unknown: Vec<Sym> = alphabet
            .iter()
            .copied()
            .filter(|&s| name_of(s).is_none())
            .collect();
        if !unknown.is_empty() {
            return Err(GenError::UnknownSymbols { symbols: unknown });
        }
        Ok(Self::from_syms(alphabet))
    }

    /// `syms` plus [`RUNC_INIT_SYSCALLS`]; symbols outside the alphabet are ignored.
    pub fn from_syms(syms: impl IntoIterator<Item = Sym>) -> Self {
        Self {
            learned: syms.into_iter().filter_map(name_of).collect(),
            runtime: true,
        }
    }

    /// Exactly `names` (no runtime syscalls); names outside the tables are ignored.
    pub fn exactly<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            learned: names
                .into_iter()
                .filter_map(|n| sym_of(n).and_then(name_of))
                .collect(),
            runtime: false,
        }
    }

    /// The learned names (architecture-neutral, sorted).
    pub fn learned(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.learned.iter().copied()
    }

    /// Every name allowed on `arch`: learned and runtime names that `arch` has, and the
    /// counterparts ([`equivalents`]) of those it lacks. The runtime names include the
    /// syscalls chaperone never traces ([`NEVER_NOTIFIED`]): a learned profile cannot have seen
    /// them, and the traced container made them freely.
    pub fn on_arch(&self, arch: Arch) -> BTreeSet<&'static str> {
        let runtime: &[&str] = if self.runtime {
            RUNC_INIT_SYSCALLS
        } else {
            &[]
        };
        let untraced: &[&str] = if self.runtime { NEVER_NOTIFIED } else { &[] };
        self.learned
            .iter()
            .copied()
            .chain(runtime.iter().copied())
            .chain(untraced.iter().copied())
            .flat_map(|n| equivalents::on_arch(arch, n))
            .collect()
    }

    /// The union of [`Allowlist::on_arch`] over `arches`: one OCI or Docker rule list serves
    /// every architecture of a profile, and runc skips a name its libseccomp cannot resolve on
    /// the architecture at hand.
    pub fn on_arches(&self, arches: &[Arch]) -> BTreeSet<&'static str> {
        arches.iter().flat_map(|&a| self.on_arch(a)).collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn what_chaperone_never_traces_is_allowed() {
        let a = super::Allowlist::from_syms([]);
        for arch in [Arch::X86_64, Arch::Aarch64] {
            let names = a.on_arch(arch);
            // Those the architecture has (`uprobe` and `uretprobe` are x86_64's only).
            for n in NEVER_NOTIFIED
                .iter()
                .filter(|n| sym_of(n).and_then(|s| arch.number(s)).is_some())
            {
                assert!(names.contains(n), "{n} on {arch}");
            }
            // The kernel's resumption of a sleep after SIGSTOP/SIGCONT: never learned.
            assert!(names.contains("restart_syscall"), "{arch}");
        }
        assert!(!super::Allowlist::exactly([])
            .on_arch(Arch::X86_64)
            .contains("futex"));
    }

    use super::*;

    /// A profile learned by a newer chaperone may hold symbols past this build's alphabet:
    /// `try_from_counts` refuses it naming them, rather than allow less than was learned.
    #[test]
    fn symbols_this_build_does_not_know_are_an_error() {
        let unknown = (0..Sym::MAX).find(|&s| name_of(s).is_none()).unwrap();
        let mut counts = NgramCounts::new(2).unwrap();
        counts.learn_sequence(&[sym_of("read").unwrap(), unknown, unknown + 7]);
        let err = Allowlist::try_from_counts(&counts).unwrap_err();
        assert!(
            matches!(&err, GenError::UnknownSymbols { symbols } if *symbols == [unknown, unknown + 7]),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!("{unknown}, {}", unknown + 7)),
            "{text}"
        );
        counts = NgramCounts::new(2).unwrap();
        counts.learn_sequence(&[sym_of("read").unwrap()]);
        assert_eq!(
            Allowlist::try_from_counts(&counts).unwrap(),
            Allowlist::from_counts(&counts)
        );
    }

    #[test]
    fn learned_plus_runtime_mapped_per_arch() {
        let mut counts = NgramCounts::new(2).unwrap();
        let syms: Vec<Sym> = ["open", "mmap2", "socketcall", "read"]
            .iter()
            .map(|n| sym_of(n).unwrap())
            .collect();
        counts.learn_sequence(&syms);
        let list = Allowlist::from_counts(&counts);
        assert_eq!(
            list.learned().collect::<Vec<_>>(),
            ["mmap2", "open", "read", "socketcall"]
        );
        let x86 = list.on_arch(Arch::X86_64);
        assert!(x86.contains("open") && x86.contains("mmap") && x86.contains("execve"));
        assert!(!x86.contains("mmap2") && !x86.contains("socketcall"));
        let arm = list.on_arch(Arch::Aarch64);
        assert!(arm.contains("openat") && !arm.contains("open"));
        let both = list.on_arches(&[Arch::X86_64, Arch::Aarch64]);
        assert!(both.contains("open") && both.contains("openat"));
        assert!(!Allowlist::exactly(["read"])
            .on_arch(Arch::X86_64)
            .contains("execve"));
    }
}
