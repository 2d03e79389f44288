//! Scoring and learning cost per event (criterion): `cargo bench -p chaperone-profiler --bench score`.
//!
//! Uses ADFA-LD from ../shared/datasets when present (train on Training, score Validation),
//! otherwise a synthetic stream from a random sparse Markov chain of similar shape. The summary
//! line names which ("data: adfa-ld" or "data: synthetic"); a dataset directory that is there
//! but does not read fails the bench.

// Integration tests and benches are their own crates: their tests have no test module, and
// they report to the terminal.
#![allow(clippy::tests_outside_test_module, clippy::disallowed_macros)]

use std::path::PathBuf;
use std::time::Instant;

use chaperone_profiler::model::{NgramCounts, NgramScorer, Smoothing};
use chaperone_profiler::syscalls::Sym;
use chaperone_profiler::trace;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// The data source's name, the training traces and the stream to score.
fn data() -> (&'static str, Vec<Vec<Sym>>, Vec<Sym>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/adfa-ld");
    // Only a dataset that is not there falls back: one that is there but does not read is a
    // broken setup, and the synthetic stream's figures would pass for ADFA-LD's.
    let present = dir
        .try_exists()
        .unwrap_or_else(|e| panic!("bench: cannot tell whether {} exists: {e}", dir.display()));
    if present {
        let d = trace::read_adfa(&dir)
            .unwrap_or_else(|e| panic!("bench: ADFA-LD at {} does not read: {e}", dir.display()));
        let stream = d
            .validation
            .iter()
            .flat_map(|t| t.events.iter().copied())
            .collect();
        return (
            "adfa-ld",
            d.training.into_iter().map(|t| t.events).collect(),
            stream,
        );
    }
    eprintln!(
        "bench: ADFA-LD not found at {}, using a synthetic stream",
        dir.display()
    );
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut walk = |n: usize| -> Vec<Sym> {
        let mut s: Sym = 0;
        (0..n)
            .map(|_| {
                // Four likely successors per syscall, occasionally anything out of 150.
                let r = next();
                let pick = |m: u64| Sym::try_from((r >> 8) % m).unwrap_or(0);
                s = if r % 16 == 0 {
                    pick(150)
                } else {
                    (s * 7 + pick(4)) % 150
                };
                s
            })
            .collect()
    };
    let train = (0..800).map(|_| walk(400)).collect();
    ("synthetic", train, walk(2_000_000))
}

fn bench(c: &mut Criterion) {
    let (source, train, stream) = data();
    let mut counts = NgramCounts::new(chaperone_config::DEFAULT_ORDER).expect("valid order");
    for t in &train {
        counts.learn_sequence(t);
    }
    let scorer = NgramScorer::new(&counts, Smoothing::default()).expect("valid smoothing");
    let chunk = &stream[..stream.len().min(1_000_000)];

    // The cheapest model on the same loop: one table lookup per event (a 1-gram's surprisal,
    // add-one smoothed), added up in order like the scorer's, so it is not vectorised away.
    let unigram_table = unigram_surprisal(&train);
    let unigram = || {
        let mut total = 0.0f32;
        for &s in chunk {
            total += unigram_table.get(usize::from(s)).copied().unwrap_or(0.0);
        }
        std::hint::black_box(total);
    };
    let floor = || {
        let total: u64 = chunk.iter().map(|&s| u64::from(s)).sum();
        std::hint::black_box(total);
    };
    let score = || {
        let mut state = scorer.start();
        let mut total = 0.0f32;
        for &s in chunk {
            total += scorer.step(&mut state, s).surprisal;
        }
        std::hint::black_box(total);
    };

    let mut g = c.benchmark_group("ngram");
    g.throughput(Throughput::Elements(chunk.len() as u64));
    g.sample_size(20);
    // The floor: reading the same events and adding them up, to put the scorer's cost in scale.
    g.bench_function("floor_read_per_event", |b| b.iter(floor));
    g.bench_function("unigram_lookup_per_event", |b| b.iter(unigram));
    g.bench_function("score_per_event", |b| b.iter(score));
    g.bench_function("learn_per_event", |b| {
        b.iter_batched_ref(
            || counts.clone(),
            |m| {
                let mut ctx = m.begin_thread();
                for &s in chunk {
                    m.observe(&mut ctx, s);
                }
            },
            criterion::BatchSize::LargeInput,
        );
    });
    g.finish();

    // The figure the issue names, with its baselines from this same run.
    let floor_ns = median_ns_per_event(floor, chunk.len());
    let unigram_ns = median_ns_per_event(unigram, chunk.len());
    let score_ns = median_ns_per_event(score, chunk.len());
    eprintln!(
        "ngram: scoring {score_ns:.1} ns/event (goal <= 50), {:.1}x a 1-gram table lookup \
         ({unigram_ns:.2} ns/event), {:.0}x the floor of reading the same events ({floor_ns:.2} \
         ns/event), {} events per run, data: {source}",
        score_ns / unigram_ns,
        score_ns / floor_ns,
        chunk.len()
    );
}

/// Surprisal of each syscall under a 1-gram of `train` with add-one smoothing, indexed by
/// syscall number.
fn unigram_surprisal(train: &[Vec<Sym>]) -> Vec<f32> {
    let mut counts = vec![0u64; usize::from(Sym::MAX) + 1];
    for &s in train.iter().flatten() {
        counts[usize::from(s)] += 1;
    }
    let total: u64 = counts.iter().sum();
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
    counts
        .iter()
        .map(|&n| -((n as f64 + 1.0) / (total as f64 + counts.len() as f64)).ln() as f32)
        .collect()
}

/// Median over 15 runs of `run`'s wall time, per event.
fn median_ns_per_event(mut run: impl FnMut(), events: usize) -> f64 {
    let mut runs: Vec<f64> = (0..15)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64() * 1e9 / events.max(1) as f64
        })
        .collect();
    runs.sort_unstable_by(f64::total_cmp);
    runs[runs.len() / 2]
}

criterion_group!(benches, bench);
criterion_main!(benches);
