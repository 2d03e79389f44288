//! The Security Profiles Operator `SeccompProfile` object
//! (`security-profiles-operator.x-k8s.io/v1beta1`), written as YAML for `kubectl apply`.
//!
//! The spec carries the OCI profile's fields SPO's CRD has: `defaultAction`, `architectures`
//! and `syscalls` (`names`, `action`, `errnoRet`, `args`). The CRD has no `defaultErrnoRet`:
//! runc returns `EPERM` for an errno default without one, which is what chaperone exports.

use oci_spec::runtime::{Arch as OciArch, LinuxSeccomp, LinuxSeccompAction, LinuxSyscall};
use serde::{Deserialize, Serialize};

use crate::{yaml, GenError, Result};

/// SPO's API version.
pub const API_VERSION: &str = "security-profiles-operator.x-k8s.io/v1beta1";
/// SPO's kind.
pub const KIND: &str = "SeccompProfile";

/// A `SeccompProfile` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeccompProfile {
    /// [`API_VERSION`].
    pub api_version: String,
    /// [`KIND`].
    pub kind: String,
    /// The object's name.
    pub metadata: Metadata,
    /// The profile.
    pub spec: Spec,
}

/// The object's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// A lowercase RFC 1123 subdomain.
    pub name: String,
}

/// `spec` of a `SeccompProfile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    /// The action for syscalls no rule matches.
    pub default_action: LinuxSeccompAction,
    /// The architectures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<OciArch>,
    /// The rules (OCI's shape).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syscalls: Vec<LinuxSyscall>,
}

/// Whether `name` is a valid Kubernetes object name (RFC 1123 subdomain).
pub fn valid_name(name: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok)
}

impl SeccompProfile {
    /// The SPO object named `name` holding `oci`.
    pub fn from_oci(oci: &LinuxSeccomp, name: &str) -> Result<Self> {
        if !valid_name(name) {
            return Err(GenError::ObjectName {
                name: name.to_owned(),
            });
        }
        Ok(Self {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            metadata: Metadata {
                name: name.to_owned(),
            },
            spec: Spec {
                default_action: oci.default_action(),
                architectures: oci.architectures().clone().unwrap_or_default(),
                syscalls: oci.syscalls().clone().unwrap_or_default(),
            },
        })
    }

    /// The object as YAML.
    pub fn to_yaml(&self) -> String {
        yaml::to_yaml(&serde_json::to_value(self).unwrap_or_default())
    }
}

/// The export of `oci` as an SPO object named `name`, in YAML.
pub fn export_spo(oci: &LinuxSeccomp, name: &str) -> Result<String> {
    Ok(SeccompProfile::from_oci(oci, name)?.to_yaml())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("nginx-1.25"));
        assert!(!valid_name("Nginx") && !valid_name("-a") && !valid_name("a..b"));
        assert!(!valid_name(""));
    }
}
