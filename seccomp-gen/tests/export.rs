//! Every export format: round trips, the formats' own fields, and compiling with libseccomp.

// Integration tests are their own crates: their tests have no test module.
#![allow(clippy::tests_outside_test_module)]

mod common;

use std::path::PathBuf;

use chaperone_profiler::model::NgramCounts;
use chaperone_profiler::syscalls::Arch;
use chaperone_profiler::trace::{read_traces, Format};
use chaperone_seccomp_gen::docker::{export_docker, parse_base, DockerProfile};
use chaperone_seccomp_gen::spo::{export_spo, SeccompProfile, API_VERSION, KIND};
use chaperone_seccomp_gen::{export_oci, Allowlist, DefaultAction, ExportOptions};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction};
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn learned() -> Allowlist {
    let mut counts = NgramCounts::new(4).unwrap();
    for t in read_traces(
        Format::Strace,
        &fixture("webserver-v1.strace"),
        Arch::X86_64,
    )
    .unwrap()
    {
        counts.learn_sequence(&t.events);
    }
    Allowlist::from_counts(&counts)
}

fn base() -> LinuxSeccomp {
    parse_base(&std::fs::read_to_string(fixture("docker-base.json")).unwrap()).unwrap()
}

/// Every combination of options the tests export with.
fn all_options() -> Vec<ExportOptions> {
    let mut out = Vec::new();
    for arches in [
        vec![Arch::X86_64, Arch::Aarch64],
        vec![Arch::X86_64],
        vec![Arch::Aarch64],
        vec![Arch::X86_64, Arch::I386],
    ] {
        for default_action in [
            DefaultAction::Errno,
            DefaultAction::Log,
            DefaultAction::Kill,
        ] {
            for base in [None, Some(base())] {
                out.push(ExportOptions {
                    arches: arches.clone(),
                    default_action,
                    base,
                });
            }
        }
    }
    out
}

fn yaml_to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| (k.as_str().unwrap().to_owned(), yaml_to_json(v)))
                .collect(),
        ),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect()),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Null => Value::Null,
        other => panic!("unexpected YAML value {other:?}"),
    }
}

#[test]
fn oci_round_trips_and_compiles() {
    let allow = learned();
    for options in all_options() {
        let oci = export_oci(&allow, &options).unwrap();
        let json = serde_json::to_string_pretty(&oci).unwrap();
        let back: LinuxSeccomp = serde_json::from_str(&json).unwrap();
        assert_eq!(back, oci, "{options:?}");
        common::compile(&back);
    }
}

#[test]
fn docker_round_trips_has_mobys_fields_and_compiles() {
    let allow = learned();
    for options in all_options() {
        let oci = export_oci(&allow, &options).unwrap();
        let json = export_docker(&oci);
        let parsed: DockerProfile = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed, DockerProfile::from_oci(&oci));
        assert_eq!(parsed.to_oci(), oci, "{options:?}");
        assert_eq!(parse_base(&json).unwrap(), oci, "an export can be a base");
        common::compile(&parsed.to_oci());

        let v: Value = serde_json::from_str(&json).unwrap();
        assert!(v["defaultAction"]
            .as_str()
            .unwrap()
            .starts_with("SCMP_ACT_"));
        for entry in v["archMap"].as_array().unwrap() {
            assert!(entry["architecture"]
                .as_str()
                .unwrap()
                .starts_with("SCMP_ARCH_"));
            assert!(entry["subArchitectures"].is_array());
        }
        for rule in v["syscalls"].as_array().unwrap() {
            assert!(rule["names"].as_array().is_some_and(|n| !n.is_empty()));
            assert!(rule["action"].as_str().unwrap().starts_with("SCMP_ACT_"));
        }
    }
    let oci = export_oci(&allow, &ExportOptions::default()).unwrap();
    let v: Value = serde_json::from_str(&export_docker(&oci)).unwrap();
    assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(v["defaultErrnoRet"], 1);
    let i386 = ExportOptions {
        arches: vec![Arch::X86_64, Arch::I386],
        ..ExportOptions::default()
    };
    let v: Value =
        serde_json::from_str(&export_docker(&export_oci(&allow, &i386).unwrap())).unwrap();
    assert_eq!(
        v["archMap"],
        serde_json::json!([{"architecture": "SCMP_ARCH_X86_64",
                            "subArchitectures": ["SCMP_ARCH_X86"]}])
    );
}

#[test]
fn spo_yaml_parses_back_to_the_same_fields_and_compiles() {
    let allow = learned();
    for options in all_options() {
        let oci = export_oci(&allow, &options).unwrap();
        let yaml = export_spo(&oci, "webserver-v1").unwrap();
        let docs = YamlLoader::load_from_str(&yaml).unwrap();
        assert_eq!(docs.len(), 1);
        let v = yaml_to_json(&docs[0]);
        assert_eq!(v["apiVersion"], API_VERSION);
        assert_eq!(v["kind"], KIND);
        assert_eq!(v["metadata"]["name"], "webserver-v1");
        let back: SeccompProfile = serde_json::from_value(v).unwrap();
        assert_eq!(
            back,
            SeccompProfile::from_oci(&oci, "webserver-v1").unwrap()
        );
        assert_eq!(back.spec.default_action, oci.default_action());
        assert_eq!(Some(&back.spec.architectures), oci.architectures().as_ref());
        assert_eq!(Some(&back.spec.syscalls), oci.syscalls().as_ref());
        let mut as_oci = LinuxSeccomp::default();
        as_oci.set_default_action(back.spec.default_action);
        as_oci.set_architectures(Some(back.spec.architectures.clone()));
        as_oci.set_syscalls(Some(back.spec.syscalls.clone()));
        common::compile(&as_oci);
    }
    export_spo(&LinuxSeccomp::default(), "Not_Valid").unwrap_err();
}

#[test]
fn merged_exports_keep_the_bases_denials() {
    let allow = learned();
    let options = ExportOptions {
        base: Some(base()),
        ..ExportOptions::default()
    };
    let oci = export_oci(&allow, &options).unwrap();
    let rules: Vec<(String, LinuxSeccompAction, Option<u32>)> = oci
        .syscalls()
        .iter()
        .flatten()
        .flat_map(|r| {
            r.names()
                .iter()
                .map(|n| (n.clone(), r.action(), r.errno_ret()))
        })
        .collect();
    let allowed = |n: &str| {
        rules
            .iter()
            .any(|(name, a, _)| name == n && *a == LinuxSeccompAction::ScmpActAllow)
    };
    assert!(allowed("read") && allowed("accept4") && allowed("execve"));
    // runc's own needs, but the base does not allow them: still denied.
    assert!(!allowed("capset") && !allowed("prctl"));
    // Only with CAP_SYS_ADMIN in the base: not allowed.
    assert!(!allowed("mount"));
    assert!(rules.contains(&("clone3".into(), LinuxSeccompAction::ScmpActErrno, Some(38))));
    // runc needs clone; the base allows it only without namespace flags: conditions kept.
    let clone: Vec<_> = oci
        .syscalls()
        .iter()
        .flatten()
        .filter(|r| r.names().iter().any(|n| n == "clone"))
        .collect();
    assert!(!clone.is_empty());
    assert!(clone
        .iter()
        .all(|r| r.args().as_ref().map(Vec::len) == Some(1)));
}

#[test]
fn fixture_base_compiles() {
    common::compile(&base());
}
