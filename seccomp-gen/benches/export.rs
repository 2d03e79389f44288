//! Export time of a large profile: every trace of ADFA-LD (training, validation and attacks,
//! i386 names mapped to x86_64 and aarch64 by `equivalents`) learned at order 8, exported in
//! each format, alone and merged with the test base profile. Target: under 50 ms.

// Benches are their own crates and report to the terminal.
#![allow(clippy::disallowed_macros)]

use std::hint::black_box;
use std::path::PathBuf;

use chaperone_config::DEFAULT_ORDER;
use chaperone_profiler::model::NgramCounts;
use chaperone_profiler::trace::read_adfa;
use chaperone_seccomp_gen::docker::{export_docker, parse_base};
use chaperone_seccomp_gen::spo::export_spo;
use chaperone_seccomp_gen::{export_oci, Allowlist, ExportOptions};
use criterion::{criterion_group, criterion_main, Criterion};

fn profile() -> Option<NgramCounts> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/adfa-ld");
    if !dir.is_dir() {
        eprintln!("SKIPPED: dataset missing: {}", dir.display());
        return None;
    }
    let data = read_adfa(&dir).expect("ADFA-LD reads");
    let mut counts = NgramCounts::new(DEFAULT_ORDER).expect("order");
    let traces = data
        .training
        .iter()
        .chain(&data.validation)
        .chain(data.attacks.iter().map(|a| &a.trace));
    for t in traces {
        counts.learn_sequence(&t.events);
    }
    eprintln!(
        "profile: {} events, {} grams, {} syscalls",
        counts.events(),
        counts.distinct(),
        counts.alphabet().len()
    );
    Some(counts)
}

fn bench(c: &mut Criterion) {
    let Some(counts) = profile() else { return };
    let base_path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/docker-base.json");
    let base = parse_base(&std::fs::read_to_string(base_path).expect("base")).expect("base");
    let plain = ExportOptions::default();
    let merged = ExportOptions {
        base: Some(base),
        ..ExportOptions::default()
    };
    let oci = export_oci(&Allowlist::from_counts(&counts), &plain).expect("export");
    eprintln!(
        "exported: {} allowed names",
        oci.syscalls().as_ref().map_or(0, |r| r[0].names().len())
    );

    let mut g = c.benchmark_group("export");
    g.bench_function("oci_json", |b| {
        b.iter(|| {
            let oci = export_oci(&Allowlist::from_counts(black_box(&counts)), &plain).unwrap();
            serde_json::to_string_pretty(&oci).unwrap()
        });
    });
    g.bench_function("docker_json", |b| {
        b.iter(|| {
            let oci = export_oci(&Allowlist::from_counts(black_box(&counts)), &plain).unwrap();
            export_docker(&oci)
        });
    });
    g.bench_function("spo_yaml", |b| {
        b.iter(|| {
            let oci = export_oci(&Allowlist::from_counts(black_box(&counts)), &plain).unwrap();
            export_spo(&oci, "adfa-ld").unwrap()
        });
    });
    g.bench_function("docker_json_merged", |b| {
        b.iter(|| {
            let oci = export_oci(&Allowlist::from_counts(black_box(&counts)), &merged).unwrap();
            export_docker(&oci)
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
