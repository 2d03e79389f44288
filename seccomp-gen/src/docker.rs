//! The Docker / Kubernetes localhost profile format (moby's `profiles/seccomp` `Seccomp` type):
//! what `docker run --security-opt seccomp=FILE` and a pod's
//! `seccompProfile: {type: Localhost, localhostProfile: FILE}` read.
//!
//! [`DockerProfile`] is written from the OCI export ([`DockerProfile::from_oci`]) and is also how
//! a base profile is read ([`parse_base`]): its fields are a superset of the OCI object's, so an
//! OCI `linux.seccomp` object (or a whole `config.json`) parses too.
//!
//! Every struct read from a base rejects fields the formats do not define, naming the field and
//! where it is: a misspelt field would otherwise be dropped with what it holds, and a base whose
//! denials are under `"syscall"`, or whose conditions are under `"arg"`, would export as allowing
//! what it denies. The formats are moby's, OCI's and containers/common's (Podman's and CRI-O's
//! profile names its errnos: `defaultErrno`, a rule's `errno`).

use chaperone_profiler::syscalls::{sym_of, Arch};
use oci_spec::runtime::{
    Arch as OciArch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall,
};
use serde::{Deserialize, Serialize};

use crate::oci::allows;
use crate::{GenError, Result};

/// A moby seccomp profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DockerProfile {
    /// A note for people: not in moby's type, but hand-written profiles carry one (moby's Go
    /// decoder ignores it). Read, never written.
    #[serde(default, skip_serializing)]
    pub comment: Option<String>,
    /// The action for syscalls no rule matches.
    pub default_action: LinuxSeccompAction,
    /// The errno of an `SCMP_ACT_ERRNO` default action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// containers/common's (Podman's, CRI-O's) name for that errno (`"ENOSYS"`), taken where
    /// `defaultErrnoRet` is absent. Read, never written.
    #[serde(default, skip_serializing, deserialize_with = "errno_name")]
    pub default_errno: Option<u32>,
    /// The architectures, each with the compat ABIs it also covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arch_map: Vec<ArchMap>,
    /// The legacy flat architecture list (used when `archMap` is absent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<OciArch>,
    /// Filter flags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<LinuxSeccompFilterFlag>,
    /// The rules.
    #[serde(default)]
    pub syscalls: Vec<DockerSyscall>,
    /// OCI's socket of a seccomp agent for `SCMP_ACT_NOTIFY` rules. Read so that such a base
    /// parses; never exported: a base's notify rules are refused ([`GenError::BaseAction`]), and
    /// without them the agent has nothing to receive.
    #[serde(default, skip_serializing)]
    pub listener_path: Option<String>,
    /// OCI's opaque data for that agent; read and not exported, as `listener_path`.
    #[serde(default, skip_serializing)]
    pub listener_metadata: Option<String>,
}

/// One `archMap` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArchMap {
    /// The main architecture.
    pub architecture: OciArch,
    /// The compat architectures that come with it (`null` in moby's own `default.json` for
    /// RISC-V, which moby's Go reads as none).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub sub_architectures: Vec<OciArch>,
}

/// One rule of a moby profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DockerSyscall {
    /// The syscall names.
    #[serde(default)]
    pub names: Vec<String>,
    /// The deprecated single name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The action.
    pub action: LinuxSeccompAction,
    /// The errno of an `SCMP_ACT_ERRNO` action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// containers/common's name for that errno (`"EPERM"`), taken where `errnoRet` is absent.
    /// Read, never written.
    #[serde(default, skip_serializing, deserialize_with = "errno_name")]
    pub errno: Option<u32>,
    /// Argument conditions, all of which must hold.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "strict_args"
    )]
    pub args: Vec<LinuxSeccompArg>,
    /// A note for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The rule applies only when these hold (capabilities, architectures, kernel version).
    #[serde(default, skip_serializing_if = "Filter::is_empty")]
    pub includes: Filter,
    /// The rule applies only when these do not hold.
    #[serde(default, skip_serializing_if = "Filter::is_empty")]
    pub excludes: Filter,
}

/// moby's rule condition: the container's capabilities, architecture and kernel version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Filter {
    /// Capabilities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<String>,
    /// Architectures (moby's short names: "amd64", "arm64", ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arches: Vec<String>,
    /// The lowest kernel version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

impl Filter {
    /// Whether there is no condition.
    pub fn is_empty(&self) -> bool {
        self.caps.is_empty() && self.arches.is_empty() && self.min_kernel.is_none()
    }
}

/// An argument condition as read: OCI's `LinuxSeccompArg` accepts any other field and drops it,
/// so a misspelt `valueTwo` would compare a masked argument with 0.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StrictArg {
    index: usize,
    value: u64,
    #[serde(default)]
    value_two: Option<u64>,
    op: LinuxSeccompOperator,
}

/// The `args` of a rule, each read as a [`StrictArg`].
fn strict_args<'de, D>(d: D) -> std::result::Result<Vec<LinuxSeccompArg>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    // `null` as none, as Go reads it (containers/common's profile has one).
    Option::<Vec<StrictArg>>::deserialize(d)?
        .unwrap_or_default()
        .into_iter()
        .map(|a| {
            let builder = LinuxSeccompArgBuilder::default()
                .index(a.index)
                .value(a.value)
                .op(a.op);
            match a.value_two {
                Some(two) => builder.value_two(two),
                None => builder,
            }
            .build()
            .map_err(serde::de::Error::custom)
        })
        .collect()
}

/// The compat ABIs moby lists under a main architecture.
fn sub_architectures(main: OciArch) -> &'static [OciArch] {
    match main {
        OciArch::ScmpArchX86_64 => &[OciArch::ScmpArchX86, OciArch::ScmpArchX32],
        OciArch::ScmpArchAarch64 => &[OciArch::ScmpArchArm],
        _ => &[],
    }
}

impl DockerProfile {
    /// The profile with containers/common's errno names taken where moby's numbers are absent.
    fn with_errno_names(mut self) -> Self {
        self.default_errno_ret = self.default_errno_ret.or(self.default_errno);
        for rule in &mut self.syscalls {
            rule.errno_ret = rule.errno_ret.or(rule.errno);
        }
        self
    }

    /// The moby form of an OCI profile: the same rules; architectures grouped into `archMap`
    /// (a compat architecture goes under its main one when both are listed).
    pub fn from_oci(oci: &LinuxSeccomp) -> Self {
        let arches: Vec<OciArch> = oci.architectures().clone().unwrap_or_default();
        let is_sub = |a: &OciArch| {
            arches
                .iter()
                .any(|main| main != a && sub_architectures(*main).contains(a))
        };
        let arch_map = arches
            .iter()
            .filter(|a| !is_sub(a))
            .map(|&main| ArchMap {
                architecture: main,
                sub_architectures: arches
                    .iter()
                    .copied()
                    .filter(|a| sub_architectures(main).contains(a))
                    .collect(),
            })
            .collect();
        Self {
            comment: None,
            default_action: oci.default_action(),
            default_errno_ret: oci.default_errno_ret(),
            default_errno: None,
            arch_map,
            architectures: Vec::new(),
            flags: oci.flags().clone().unwrap_or_default(),
            syscalls: oci
                .syscalls()
                .iter()
                .flatten()
                .map(|r| DockerSyscall {
                    names: r.names().clone(),
                    name: None,
                    action: r.action(),
                    errno_ret: r.errno_ret(),
                    errno: None,
                    args: r.args().clone().unwrap_or_default(),
                    comment: None,
                    includes: Filter::default(),
                    excludes: Filter::default(),
                })
                .collect(),
            listener_path: None,
            listener_metadata: None,
        }
    }

    /// The OCI profile runc would get from this one for an unprivileged container (Docker's
    /// default capabilities) on x86_64 or aarch64, taken conservatively where moby decides at run
    /// time. A rule that denies is always kept, without its conditions. A rule that allows is
    /// kept only if it applies to such a container everywhere ([`applies_unprivileged`]).
    /// Architectures are the `archMap` entries with their sub-architectures, else
    /// `architectures`.
    pub fn to_oci(&self) -> LinuxSeccomp {
        let mut out = LinuxSeccomp::default();
        out.set_default_action(self.default_action);
        out.set_default_errno_ret(self.default_errno_ret);
        let arches: Vec<OciArch> = if self.arch_map.is_empty() {
            self.architectures.clone()
        } else {
            self.arch_map
                .iter()
                .flat_map(|m| std::iter::once(m.architecture).chain(m.sub_architectures.clone()))
                .collect()
        };
        out.set_architectures((!arches.is_empty()).then_some(arches));
        out.set_flags((!self.flags.is_empty()).then(|| self.flags.clone()));
        let rules: Vec<LinuxSyscall> = self
            .syscalls
            .iter()
            .filter(|r| !allows(r.action) || applies_unprivileged(r))
            .map(|r| {
                let mut s = LinuxSyscall::default();
                let mut names = r.names.clone();
                names.extend(r.name.clone());
                s.set_names(names);
                s.set_action(r.action);
                s.set_errno_ret(r.errno_ret);
                s.set_args((!r.args.is_empty()).then(|| r.args.clone()));
                s
            })
            .collect();
        out.set_syscalls((!rules.is_empty()).then_some(rules));
        out
    }

    /// Pretty JSON, as moby's own `default.json` is laid out.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// A JSON `null` as an empty list, as Go's decoder reads it.
/// An errno by its name (`"EPERM"`), as containers/common writes it; a name this build's
/// libc does not know is an error naming it.
fn errno_name<'de, D>(d: D) -> std::result::Result<Option<u32>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    // The names Linux gives a second time, which nix names by the first.
    const ALIASES: [(&str, &str); 3] = [
        ("EWOULDBLOCK", "EAGAIN"),
        ("EDEADLOCK", "EDEADLK"),
        ("ENOTSUP", "EOPNOTSUPP"),
    ];
    let Some(name) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    // Empty is unset, as Go reads it.
    if name.is_empty() {
        return Ok(None);
    }
    let canonical = ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name.as_str(), |(_, to)| to);
    (1..4096)
        .map(nix::errno::Errno::from_raw)
        .find(|&e| e != nix::errno::Errno::UnknownErrno && format!("{e:?}") == canonical)
        .map(|e| Some((e as i32).unsigned_abs()))
        .ok_or_else(|| serde::de::Error::custom(format!("unknown errno name {name:?}")))
}

fn null_as_empty<'de, D, T>(d: D) -> std::result::Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// The architectures chaperone exports for, with moby's names for them.
const MOBY_ARCHES: [(Arch, &str); 2] = [(Arch::X86_64, "amd64"), (Arch::Aarch64, "arm64")];

/// Whether moby applies rule `r` to a container with no capability beyond Docker's default set
/// on amd64 and arm64: it requires no capability (`includes.caps`) and no kernel version
/// (`includes.minKernel`), and on each of the two architectures where one of its syscalls
/// exists, its `includes.arches` (if any) names that architecture and its `excludes.arches`
/// does not. So `arch_prctl`, allowed on amd64 only, counts: arm64 has no such syscall.
/// `excludes.caps` is met: such a container lacks the capabilities moby lists there.
pub fn applies_unprivileged(r: &DockerSyscall) -> bool {
    let exists_on = |arch: Arch| {
        r.names
            .iter()
            .chain(&r.name)
            .any(|n| sym_of(n).and_then(|s| arch.number(s)).is_some())
    };
    r.includes.caps.is_empty()
        && r.includes.min_kernel.is_none()
        && MOBY_ARCHES.iter().all(|&(arch, moby)| {
            !exists_on(arch)
                || ((r.includes.arches.is_empty() || r.includes.arches.iter().any(|x| x == moby))
                    && !r.excludes.arches.iter().any(|x| x == moby))
        })
}

/// The export of `oci` as moby JSON.
pub fn export_docker(oci: &LinuxSeccomp) -> String {
    DockerProfile::from_oci(oci).to_json()
}

/// A whole OCI `config.json`, of which only `linux.seccomp` is read (the rest is not a
/// profile's, so its fields are not checked).
#[derive(Deserialize)]
struct Bundle {
    linux: Option<BundleLinux>,
}

#[derive(Deserialize)]
struct BundleLinux {
    seccomp: Option<DockerProfile>,
}

/// Reads a base profile: moby JSON, an OCI `linux.seccomp` object, or a whole OCI
/// `config.json` (its `linux.seccomp`; none means unconfined, an allow-all profile). A field
/// the formats do not define is an error naming it, with its line and column.
pub fn parse_base(json: &str) -> Result<LinuxSeccomp> {
    let json_error = |source| GenError::Json {
        what: "base profile",
        source,
    };
    let value: serde_json::Value = serde_json::from_str(json).map_err(json_error)?;
    // Parsed again from the text, not from `value`: only the text has positions for errors.
    let docker = if value.get("linux").is_some() {
        let bundle: Bundle = serde_json::from_str(json).map_err(json_error)?;
        match bundle.linux.and_then(|l| l.seccomp) {
            Some(seccomp) => seccomp,
            None => return Ok(unconfined()),
        }
    } else {
        serde_json::from_str(json).map_err(json_error)?
    };
    Ok(docker.with_errno_names().to_oci())
}

/// The profile of a container without seccomp: everything allowed.
fn unconfined() -> LinuxSeccomp {
    DockerProfile {
        comment: None,
        default_action: LinuxSeccompAction::ScmpActAllow,
        default_errno_ret: None,
        default_errno: None,
        arch_map: Vec::new(),
        architectures: Vec::new(),
        flags: Vec::new(),
        syscalls: Vec::new(),
        listener_path: None,
        listener_metadata: None,
    }
    .to_oci()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditional_rules_are_taken_conservatively() {
        let json = r#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                         "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": []},
                {"names": ["mount"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
                 "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["unshare"], "action": "SCMP_ACT_ALLOW",
                 "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390x"]}},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"arches": ["s390x"]}},
                {"names": ["open_tree"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"minKernel": "5.2"}}
            ]
        }"#;
        let oci = parse_base(json).unwrap();
        assert_eq!(oci.architectures().as_ref().unwrap().len(), 3);
        let names: Vec<_> = oci
            .syscalls()
            .iter()
            .flatten()
            .map(|r| (r.names()[0].as_str(), r.action()))
            .collect();
        assert_eq!(
            names,
            [
                ("read", LinuxSeccompAction::ScmpActAllow),
                ("clone3", LinuxSeccompAction::ScmpActErrno),
                ("unshare", LinuxSeccompAction::ScmpActAllow)
            ]
        );
    }

    /// moby's own `default.json` has `"subArchitectures": null` (RISC-V) and allows
    /// `arch_prctl` on amd64 and x32 only: it parses, and `arch_prctl` is kept (arm64 has no such
    /// syscall). An allow rule restricted to amd64 for a syscall arm64 has too is still dropped,
    /// and so is one that needs a kernel version.
    #[test]
    fn mobys_arch_rules_are_taken_where_the_syscall_exists() {
        let json = r#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "archMap": [
                {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                {"architecture": "SCMP_ARCH_RISCV64", "subArchitectures": null}
            ],
            "syscalls": [
                {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"arches": ["amd64", "x32"]}},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"arches": ["amd64"]}},
                {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"minKernel": "4.8"}}
            ]
        }"#;
        let oci = parse_base(json).unwrap();
        assert_eq!(oci.architectures().as_ref().unwrap().len(), 3);
        let kept: Vec<&str> = oci
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|r| r.names().iter().map(String::as_str))
            .collect();
        assert_eq!(kept, ["arch_prctl"]);
    }

    /// The error of `parse_base(json)`, with its source.
    fn base_error(json: &str) -> String {
        let err = parse_base(json).unwrap_err();
        let source = std::error::Error::source(&err).map(ToString::to_string);
        format!("{err}: {}", source.unwrap_or_default())
    }

    /// A field the formats do not define is an error naming it and where it is: a misspelt
    /// one would otherwise drop what it holds (until 2026-12-07 a base whose rules were under
    /// "syscall" denied nothing, and a rule's "arg" made a conditional allow unconditional).
    #[test]
    fn a_base_with_an_unknown_field_is_refused_naming_it() {
        let cases = [
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW",
                    "syscall": [{"names": ["openat"], "action": "SCMP_ACT_ERRNO"}]}"#,
                "syscall",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["personality"],
                    "action": "SCMP_ACT_ALLOW",
                    "arg": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}]}"#,
                "arg",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["clone"],
                    "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1,
                    "valeuTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}]}]}"#,
                "valeuTwo",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["mount"],
                    "action": "SCMP_ACT_ALLOW", "includes": {"cap": ["CAP_SYS_ADMIN"]}}]}"#,
                "cap",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "archMap": [{"architecture":
                    "SCMP_ARCH_X86_64", "subArchitecture": ["SCMP_ARCH_X86"]}]}"#,
                "subArchitecture",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultAktion": "SCMP_ACT_ALLOW"}"#,
                "defaultAktion",
            ),
            (
                r#"{"ociVersion": "1.0.2", "process": {"args": ["sh"]}, "linux": {"seccomp":
                    {"defaultAction": "SCMP_ACT_ALLOW", "syscall": []}}}"#,
                "syscall",
            ),
        ];
        for (json, field) in cases {
            let err = base_error(json);
            assert!(
                err.contains(&format!("unknown field `{field}`")) && err.contains(" line "),
                "{field}: {err}"
            );
        }
    }

    /// Every field moby's `Seccomp` type (with the OCI `LinuxSeccomp` it embeds) defines is
    /// read, those with nothing to export included.
    #[test]
    fn a_base_may_carry_every_field_moby_and_oci_define() {
        let json = r#"{
            "comment": "hand-written",
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 1,
            "architectures": ["SCMP_ARCH_X86_64"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "listenerPath": "/run/agent.sock",
            "listenerMetadata": "x",
            "syscalls": [
                {"name": "read", "names": ["write"], "action": "SCMP_ACT_ALLOW",
                 "args": [], "comment": "io", "includes": {}, "excludes": {}},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 1, "valueTwo": 1, "op": "SCMP_CMP_MASKED_EQ"}],
                 "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390x"], "minKernel": "4.8"}},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}
            ]
        }"#;
        let oci = parse_base(json).unwrap();
        assert_eq!(oci.syscalls().as_ref().unwrap().len(), 3);
        let clone = &oci.syscalls().as_ref().unwrap()[1];
        assert_eq!(clone.args().as_ref().unwrap()[0].value_two(), Some(1));
    }

    /// containers/common's profile (Podman, CRI-O) names errnos (`defaultErrno`, `errno`) and
    /// has an `"args": null`; its names are taken as moby's numbers. Until 2026-12-07 the
    /// names were refused as unknown fields once unknown fields were.
    #[test]
    fn a_containers_common_base_with_errno_names_is_read() {
        let json = r#"{
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrno": "ENOSYS",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": null},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errno": "EPERM"},
                {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errno": "EPERM", "errnoRet": 13}
            ]
        }"#;
        let oci = parse_base(json).unwrap();
        assert_eq!(oci.default_errno_ret(), Some(38));
        let rules = oci.syscalls().as_ref().unwrap();
        assert_eq!(rules[1].errno_ret(), Some(1));
        assert_eq!(
            rules[2].errno_ret(),
            Some(13),
            "the number, where both are given"
        );
        let aliases = parse_base(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrno": "",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "errno": "EWOULDBLOCK"},
                             {"names": ["write"], "action": "SCMP_ACT_ERRNO", "errno": "ENOTSUP"}]}"#,
        )
        .unwrap();
        assert_eq!(aliases.default_errno_ret(), None, "empty is unset");
        let rules = aliases.syscalls().as_ref().unwrap();
        assert_eq!(rules[0].errno_ret(), Some(11));
        assert_eq!(rules[1].errno_ret(), Some(95));
        parse_base(r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrno": "UnknownErrno"}"#)
            .unwrap_err();
        let unknown =
            parse_base(r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrno": "EBOGUS"}"#)
                .unwrap_err();
        // In the serde error, the error's source.
        let unknown = format!("{unknown:?}");
        assert!(unknown.contains("EBOGUS"), "{unknown}");
    }

    #[test]
    fn a_config_json_without_seccomp_is_unconfined() {
        let oci = parse_base(r#"{"ociVersion": "1.0.2", "linux": {}}"#).unwrap();
        assert_eq!(oci.default_action(), LinuxSeccompAction::ScmpActAllow);
        parse_base("{").unwrap_err();
    }
}
