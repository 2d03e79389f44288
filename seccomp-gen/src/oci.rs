//! The OCI `LinuxSeccomp` export (the `linux.seccomp` object of a bundle's `config.json`).
//!
//! This is the canonical form: the Docker and SPO exports are written from it.

use std::str::FromStr;

use chaperone_profiler::syscalls::Arch;
use oci_spec::runtime::{Arch as OciArch, LinuxSeccomp, LinuxSeccompAction, LinuxSyscall};

use crate::{merge, Allowlist, GenError, Result};

/// `EPERM`: the errno a denied syscall returns under [`DefaultAction::Errno`].
pub const EPERM: u32 = 1;

/// The default architectures of an export.
pub const DEFAULT_ARCHES: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

/// What a syscall the profile does not allow gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DefaultAction {
    /// `SCMP_ACT_ERRNO` returning `EPERM`.
    #[default]
    Errno,
    /// `SCMP_ACT_LOG`: allowed and logged by the kernel's audit (a dry run of the profile).
    Log,
    /// `SCMP_ACT_KILL_PROCESS`.
    Kill,
}

impl DefaultAction {
    /// The seccomp action.
    pub fn action(self) -> LinuxSeccompAction {
        match self {
            DefaultAction::Errno => LinuxSeccompAction::ScmpActErrno,
            DefaultAction::Log => LinuxSeccompAction::ScmpActLog,
            DefaultAction::Kill => LinuxSeccompAction::ScmpActKillProcess,
        }
    }

    /// The errno returned, for [`DefaultAction::Errno`].
    pub fn errno(self) -> Option<u32> {
        (self == DefaultAction::Errno).then_some(EPERM)
    }
}

impl FromStr for DefaultAction {
    type Err = GenError;

    /// Accepts "errno", "log" and "kill".
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "errno" => Ok(DefaultAction::Errno),
            "log" => Ok(DefaultAction::Log),
            "kill" => Ok(DefaultAction::Kill),
            _ => Err(GenError::DefaultAction {
                input: s.to_owned(),
            }),
        }
    }
}

/// How to export a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// The architectures the filter covers (default x86_64 and aarch64).
    pub arches: Vec<Arch>,
    /// What a syscall outside the profile gets.
    pub default_action: DefaultAction,
    /// A profile the result must never be weaker than (`--merge BASE`), see [`merge`].
    pub base: Option<LinuxSeccomp>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            arches: DEFAULT_ARCHES.to_vec(),
            default_action: DefaultAction::default(),
            base: None,
        }
    }
}

/// The OCI name of an architecture.
pub fn oci_arch(arch: Arch) -> OciArch {
    match arch {
        Arch::X86_64 => OciArch::ScmpArchX86_64,
        Arch::I386 => OciArch::ScmpArchX86,
        Arch::Aarch64 => OciArch::ScmpArchAarch64,
    }
}

/// Whether `action` lets the syscall run (`SCMP_ACT_ALLOW`, or `SCMP_ACT_LOG` which logs it).
pub fn allows(action: LinuxSeccompAction) -> bool {
    matches!(
        action,
        LinuxSeccompAction::ScmpActAllow | LinuxSeccompAction::ScmpActLog
    )
}

/// One rule: `names` get `action`.
pub(crate) fn rule(names: Vec<String>, action: LinuxSeccompAction) -> LinuxSyscall {
    let mut r = LinuxSyscall::default();
    r.set_names(names);
    r.set_action(action);
    r
}

/// The profile `allow` as an OCI `LinuxSeccomp`.
///
/// Without a base: the default action of `options`, and one `SCMP_ACT_ALLOW` rule naming every
/// allowed syscall of every architecture (sorted). With a base, [`merge::merge`].
pub fn export_oci(allow: &Allowlist, options: &ExportOptions) -> Result<LinuxSeccomp> {
    if options.arches.is_empty() {
        return Err(GenError::NoArchitecture);
    }
    let names = allow.on_arches(&options.arches);
    let mut out = match &options.base {
        Some(base) => merge::merge(&names, options.default_action, base)?,
        None => {
            let mut s = LinuxSeccomp::default();
            s.set_default_action(options.default_action.action());
            s.set_default_errno_ret(options.default_action.errno());
            let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            if !names.is_empty() {
                s.set_syscalls(Some(vec![rule(names, LinuxSeccompAction::ScmpActAllow)]));
            }
            s
        }
    };
    out.set_architectures(Some(options.arches.iter().map(|&a| oci_arch(a)).collect()));
    Ok(out)
}

/// Every name the profile's rules mention, with the actions they get (for tests and `diff`).
pub fn rules_by_name(profile: &LinuxSeccomp) -> Vec<(&str, LinuxSeccompAction)> {
    profile
        .syscalls()
        .iter()
        .flatten()
        .flat_map(|r| r.names().iter().map(move |n| (n.as_str(), r.action())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learned_plus_runtime_allowed_rest_denied_with_eperm() {
        let allow = Allowlist::exactly(["read", "open", "mmap2"]);
        let p = export_oci(&allow, &ExportOptions::default()).unwrap();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(EPERM));
        assert_eq!(
            p.architectures().as_deref(),
            Some(&[OciArch::ScmpArchX86_64, OciArch::ScmpArchAarch64][..])
        );
        let rules = p.syscalls().as_ref().unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].names(), &["mmap", "open", "openat", "read"]);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<LinuxSeccomp>(&json).unwrap(), p);
    }

    #[test]
    fn default_actions() {
        for (text, action, errno) in [
            ("errno", LinuxSeccompAction::ScmpActErrno, Some(1)),
            ("log", LinuxSeccompAction::ScmpActLog, None),
            ("kill", LinuxSeccompAction::ScmpActKillProcess, None),
        ] {
            let d: DefaultAction = text.parse().unwrap();
            assert_eq!((d.action(), d.errno()), (action, errno));
        }
        "allow".parse::<DefaultAction>().unwrap_err();
        let none = ExportOptions {
            arches: vec![],
            ..ExportOptions::default()
        };
        assert!(matches!(
            export_oci(&Allowlist::default(), &none),
            Err(GenError::NoArchitecture)
        ));
    }
}
