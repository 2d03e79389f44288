//! Bundle rewriting on Create: unless the container's mode is off, a seccomp filter whose notify
//! fd runc sends to this shim's listener (the container's own denials kept): learn mode's,
//! which notifies every syscall, or in monitor and enforce mode the tiered filter, which runs
//! the profile's hot syscalls in the kernel and acts on unseen ones there when so configured.
//!
//! `config.json` is edited as JSON, not through `oci_spec::Spec`, so fields this version of
//! oci-spec does not know survive the rewrite. The original is kept next to it as
//! `config.json.orig` for audit.

use std::path::{Path, PathBuf};

use chaperone_config::Mode;
use chaperone_profiler::supervisor::filter::notify_filter;
use chaperone_seccomp_gen::runtime_filter;
use oci_spec::runtime::LinuxSeccomp;
use serde_json::Value;

use crate::error::{Result, ShimError};
use crate::plan::Plan;

/// The bundle's OCI config.
pub const CONFIG: &str = "config.json";
/// The original config, kept for audit when the shim rewrote it.
pub const CONFIG_ORIG: &str = "config.json.orig";

/// Reads `bundle/config.json` as JSON.
pub fn read_config(bundle: &Path) -> Result<Value> {
    let path = bundle.join(CONFIG);
    let bytes = std::fs::read(&path).map_err(|source| ShimError::Io {
        op: "read",
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| ShimError::Spec { path, source })
}

/// The annotation `key` of a config, if set.
pub fn annotation<'a>(config: &'a Value, key: &str) -> Option<&'a str> {
    config.get("annotations")?.get(key)?.as_str()
}

/// Sets `linux.seccomp` of `config` to the filter `plan` asks for, for container `id`: what the
/// container's own profile denies stays denied; the rest notifies the listener at `socket`, or
/// with tiers gets its tier.
pub fn add_filter(config: &mut Value, id: &str, plan: &Plan, socket: &Path) -> Result<()> {
    let path = PathBuf::from(CONFIG);
    let existing =
        match config.pointer("/linux/seccomp") {
            None | Some(Value::Null) => None,
            Some(v) => Some(serde_json::from_value::<LinuxSeccomp>(v.clone()).map_err(
                |source| ShimError::Spec {
                    path: path.clone(),
                    source,
                },
            )?),
        };
    let unnamed = plan.config.filter.unnamed;
    let filter = match &plan.tiers {
        None => notify_filter(existing.as_ref(), socket, Some(id), unnamed),
        Some(tiers) => runtime_filter(
            existing.as_ref(),
            tiers,
            plan.unseen(),
            unnamed,
            socket,
            Some(id),
        ),
    }
    .map_err(|source| ShimError::Filter {
        id: id.to_owned(),
        source,
    })?;
    let filter =
        serde_json::to_value(&filter).map_err(|source| ShimError::Spec { path, source })?;
    let Some(root) = config.as_object_mut() else {
        return Err(ShimError::InvalidRequest {
            reason: "config.json is not a JSON object",
        });
    };
    let linux = root
        .entry("linux")
        .or_insert_with(|| Value::Object(Default::default()));
    let Some(linux) = linux.as_object_mut() else {
        return Err(ShimError::InvalidRequest {
            reason: "config.json's linux is not a JSON object",
        });
    };
    linux.insert("seccomp".to_owned(), filter);
    Ok(())
}

/// Prepares the bundle of container `id`, whose `config.json` the caller read (`config`, see
/// [`read_config`]): `resolve` chooses the plan from it; unless
/// the mode is off, the original config is kept as `config.json.orig` and `config.json` gets the
/// filter whose listener is `socket()` (called only then: it binds the shim's listener).
pub fn prepare(
    bundle: &Path,
    mut config: Value,
    id: &str,
    resolve: impl FnOnce(&Value) -> Result<Plan>,
    socket: impl FnOnce() -> Result<PathBuf>,
) -> Result<Plan> {
    let plan = resolve(&config)?;
    if plan.mode == Mode::Off {
        return Ok(plan);
    }
    add_filter(&mut config, id, &plan, &socket()?)?;
    let path = bundle.join(CONFIG);
    let orig = bundle.join(CONFIG_ORIG);
    std::fs::copy(&path, &orig).map_err(|source| ShimError::Io {
        op: "keep the original config as",
        path: orig,
        source,
    })?;
    let text = serde_json::to_vec_pretty(&config).map_err(|source| ShimError::Spec {
        path: path.clone(),
        source,
    })?;
    let tmp = bundle.join(".config.json.chaperone");
    std::fs::write(&tmp, text).map_err(|source| ShimError::Io {
        op: "write",
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, &path).map_err(|source| ShimError::Io {
        op: "replace",
        path,
        source,
    })?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaperone_config::Unseen;
    use serde_json::json;

    fn bundle_with(config: &Value) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG), serde_json::to_vec(config).unwrap()).unwrap();
        dir
    }

    fn plan(mode: Mode) -> impl FnOnce(&Value) -> Result<Plan> {
        move |_| {
            Ok(Plan::fixed(
                "c",
                "k",
                mode,
                std::sync::Arc::new(chaperone_config::Config::default()),
            ))
        }
    }

    #[test]
    fn learn_mode_rewrites_the_seccomp_filter_and_keeps_the_original() {
        let original = json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["sh"]},
            "linux": {"namespaces": [{"type": "pid"}], "somethingNew": 1}
        });
        let dir = bundle_with(&original);
        let socket = PathBuf::from("/run/chaperone/s/x/chaperone.sock");
        let plan = prepare(
            dir.path(),
            read_config(dir.path()).unwrap(),
            "c1",
            plan(Mode::Learn),
            || Ok(socket.clone()),
        )
        .unwrap();
        assert_eq!(plan.mode, Mode::Learn);
        let kept: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(CONFIG_ORIG)).unwrap()).unwrap();
        assert_eq!(kept, original);
        let new = read_config(dir.path()).unwrap();
        assert_eq!(new["linux"]["somethingNew"], 1, "unknown fields survive");
        assert_eq!(
            new["linux"]["seccomp"]["listenerPath"],
            socket.to_str().unwrap()
        );
        assert_eq!(new["linux"]["seccomp"]["listenerMetadata"], "c1");
        // `[filter] unnamed = "enosys"` (the default): what no rule names fails with ENOSYS,
        // and what is never notified (runc's own syscalls) has its allow rule.
        assert_eq!(new["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(new["linux"]["seccomp"]["defaultErrnoRet"], 38);
        let rules = new["linux"]["seccomp"]["syscalls"].as_array().unwrap();
        let with = |action: &str, name: &str| {
            rules.iter().any(|r| {
                r["action"] == action && r["names"].as_array().unwrap().contains(&json!(name))
            })
        };
        assert!(with("SCMP_ACT_NOTIFY", "openat"));
        assert!(with("SCMP_ACT_ALLOW", "futex"));

        // `unnamed = "allow"`: the default allows them, and the allowed need no rule.
        let mut config = chaperone_config::Config::default();
        config.filter.unnamed = chaperone_config::Unnamed::Allow;
        let dir = bundle_with(&original);
        prepare(
            dir.path(),
            read_config(dir.path()).unwrap(),
            "c1",
            move |_| {
                Ok(Plan::fixed(
                    "c",
                    "k",
                    Mode::Learn,
                    std::sync::Arc::new(config),
                ))
            },
            || Ok(socket.clone()),
        )
        .unwrap();
        let new = read_config(dir.path()).unwrap();
        assert_eq!(new["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
        let rules = new["linux"]["seccomp"]["syscalls"].as_array().unwrap();
        assert!(
            rules.iter().all(|r| r["action"] == "SCMP_ACT_NOTIFY"),
            "{rules:?}"
        );
    }

    #[test]
    fn the_containers_own_denials_are_kept() {
        let original = json!({
            "annotations": {"other": "x"},
            "linux": {"seccomp": {
                "defaultAction": "SCMP_ACT_ERRNO",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [
                    {"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO"}
                ]
            }}
        });
        let dir = bundle_with(&original);
        prepare(
            dir.path(),
            read_config(dir.path()).unwrap(),
            "c2",
            plan(Mode::Enforce),
            || Ok(PathBuf::from("/s.sock")),
        )
        .unwrap();
        let new = read_config(dir.path()).unwrap();
        let seccomp = &new["linux"]["seccomp"];
        assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ERRNO");
        let rules = seccomp["syscalls"].as_array().unwrap();
        let action_of = |name: &str| {
            rules
                .iter()
                .find(|r| r["names"].as_array().unwrap().iter().any(|n| n == name))
                .map(|r| r["action"].clone())
        };
        assert_eq!(action_of("ptrace").unwrap(), "SCMP_ACT_ERRNO");
        assert_eq!(action_of("read").unwrap(), "SCMP_ACT_NOTIFY");
        assert_eq!(action_of("write").unwrap(), "SCMP_ACT_ALLOW");
    }

    #[test]
    fn tiers_split_the_containers_allowed_syscalls() {
        let original = json!({"linux": {"seccomp": {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["read", "openat", "execve", "ptrace", "mount", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["reboot"], "action": "SCMP_ACT_ERRNO"}
            ]
        }}});
        let tiers = chaperone_seccomp_gen::Tiers::from_names(
            ["read", "execve"],
            ["read", "openat", "execve"],
        );
        for (mode, unseen, ptrace) in [
            (Mode::Enforce, Unseen::Errno, "SCMP_ACT_ERRNO"),
            (Mode::Enforce, Unseen::Kill, "SCMP_ACT_KILL_PROCESS"),
            (Mode::Monitor, Unseen::Kill, "SCMP_ACT_NOTIFY"),
        ] {
            let dir = bundle_with(&original);
            let resolve = |_: &Value| {
                let mut config = chaperone_config::Config::default();
                config.filter.unseen = unseen;
                let mut plan = Plan::fixed("c", "k", mode, std::sync::Arc::new(config));
                plan.tiers = Some(tiers.clone());
                Ok(plan)
            };
            prepare(
                dir.path(),
                read_config(dir.path()).unwrap(),
                "c5",
                resolve,
                || Ok(PathBuf::from("/s.sock")),
            )
            .unwrap();
            let seccomp = &read_config(dir.path()).unwrap()["linux"]["seccomp"];
            assert_eq!(seccomp["defaultAction"], "SCMP_ACT_ERRNO");
            let action_of = |name: &str| {
                seccomp["syscalls"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["names"].as_array().unwrap().iter().any(|n| n == name))
                    .map(|r| r["action"].as_str().unwrap().to_owned())
            };
            let expected = [
                ("read", "SCMP_ACT_ALLOW"),
                ("write", "SCMP_ACT_ALLOW"),
                ("openat", "SCMP_ACT_NOTIFY"),
                ("execve", "SCMP_ACT_NOTIFY"),
                ("ptrace", ptrace),
                ("mount", ptrace),
                ("reboot", "SCMP_ACT_ERRNO"),
            ];
            for (name, action) in expected {
                assert_eq!(
                    action_of(name).as_deref(),
                    Some(action),
                    "{name} in {mode:?}"
                );
            }
        }
    }

    #[test]
    fn mode_off_leaves_the_bundle_alone_and_binds_nothing() {
        let original = json!({"annotations": {"chaperone.io/mode": "off"}});
        let dir = bundle_with(&original);
        let plan = prepare(
            dir.path(),
            read_config(dir.path()).unwrap(),
            "c3",
            plan(Mode::Off),
            || panic!("no listener in mode off"),
        )
        .unwrap();
        assert_eq!(plan.mode, Mode::Off);
        assert!(!dir.path().join(CONFIG_ORIG).exists());
        assert_eq!(read_config(dir.path()).unwrap(), original);
    }

    #[test]
    fn a_profile_that_already_has_a_listener_is_refused() {
        let original = json!({"linux": {"seccomp": {
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/elsewhere.sock"
        }}});
        let dir = bundle_with(&original);
        let err = prepare(
            dir.path(),
            read_config(dir.path()).unwrap(),
            "c4",
            plan(Mode::Learn),
            || Ok(PathBuf::from("/s.sock")),
        )
        .unwrap_err();
        assert!(matches!(err, ShimError::Filter { .. }), "{err:?}");
        assert!(!dir.path().join(CONFIG_ORIG).exists());
    }
}
