//! What a container's Create costs the shim at the store's limits: a profile that holds as many
//! recorded events as the store keeps ([`TRACE_KEEP_EVENTS`]), built from ADFA-LD's training
//! and validation traces (a whole host's programs, so far more distinct n-grams than one
//! image's workload learns: a worst case). It times, medians of three, each step the shim takes
//! before runc starts:
//! - every mode but `off`: reading and decoding the profile's model;
//! - learn mode: building the reference scorer from it;
//! - monitor and enforce: the hot set and the recorded runs, then `train_projected` (the model
//!   of the traced syscalls and its threshold), at hot coverage 0.99 (the default), 0.9 and 0.
//!
//! It also times a learning flush into that profile (`Store::merge` of one more run).
//!
//! `cargo run --release -p chaperone-profiler --example create_cost [ADFA_DIR [EVENTS]]`
//! (EVENTS: a smaller profile, at most that many recorded events).

// An example reports to the terminal.
#![allow(clippy::disallowed_macros)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chaperone_config::ModelConfig;
use chaperone_profiler::model::{NgramCounts, NgramScorer, Smoothing};
use chaperone_profiler::store::{Learning, Store, TRACE_KEEP_EVENTS};
use chaperone_profiler::supervisor::{Learned, Piece};
use chaperone_profiler::syscalls::Sym;
use chaperone_profiler::tiers::{hot_set, train_projected};

/// Threads per learning run.
const THREADS_PER_RUN: usize = 40;
const KEY: &str = "sha256:create-cost";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = common::read_adfa("create_cost");
    // What the shim runs with when the node's config sets nothing.
    let config = ModelConfig::default();
    let limit = match std::env::args().nth(2) {
        Some(n) => n.parse::<u64>()?.min(TRACE_KEEP_EVENTS),
        None => TRACE_KEEP_EVENTS,
    };
    let threads: Vec<Vec<Sym>> = data
        .training
        .into_iter()
        .chain(data.validation)
        .map(|t| t.events)
        .collect();
    // The runs that fit in the limit make the profile; the first that does not is the flush.
    let mut runs: Vec<Vec<Vec<Sym>>> = Vec::new();
    let mut events = 0u64;
    let mut extra = None;
    for run in threads.chunks(THREADS_PER_RUN) {
        let n: u64 = run.iter().map(|t| t.len() as u64).sum();
        if events + n > limit {
            extra = Some(run);
            break;
        }
        events += n;
        runs.push(run.to_vec());
    }
    let extra = extra.ok_or("ADFA-LD has too few traces to fill a profile")?;
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("profiles.db"))?;
    eprintln!("create_cost: merging {} runs ({events} events)", runs.len());
    for run in &runs {
        store.merge(KEY, &learning(run, config.order)?, None)?;
    }
    let counts = store.model(KEY)?.ok_or("the profile was not stored")?;
    println!(
        "profile: {} runs, {} events recorded, {} distinct n-grams of order {}",
        runs.len(),
        events,
        counts.distinct(),
        counts.order()
    );

    let read = median(|| store.model(KEY).map(drop))?;
    println!("read and decode the model: {}", ms(read));
    let reference = median(|| NgramScorer::new(&counts, Smoothing::default()).map(drop))?;
    println!("learn mode, build the reference scorer: {}", ms(reference));
    for coverage in [0.99, 0.9, 0.0] {
        let mut projected = 0;
        let mut runs_read = Vec::new();
        let mut trained = Vec::new();
        for _ in 0..3 {
            let start = Instant::now();
            let hot = hot_set(&counts, coverage, &BTreeSet::new());
            let stored = store.runs(KEY)?;
            let read_at = Instant::now();
            let model = train_projected(&counts, &stored, &hot, config.target_far)?
                .ok_or("no projected model")?;
            runs_read.push(read_at - start);
            trained.push(read_at.elapsed());
            projected = model.events;
        }
        println!(
            "hot coverage {coverage}: hot set and runs read {}, train_projected {} ({projected} traced events)",
            ms(mid(runs_read)),
            ms(mid(trained))
        );
    }
    let flush = Instant::now();
    store.merge(KEY, &learning(extra, config.order)?, None)?;
    println!(
        "a learning flush into this profile (one more run): {}",
        ms(flush.elapsed())
    );
    Ok(())
}

/// A learning run of `threads`, recorded, as a learning supervisor hands it to the store.
fn learning(threads: &[Vec<Sym>], order: usize) -> Result<Learning, Box<dyn std::error::Error>> {
    let mut counts = NgramCounts::new(order)?;
    for t in threads {
        counts.learn_sequence(t);
    }
    Ok(Learning::new(
        Learned {
            counts,
            maxima: Vec::new(),
            threads: threads.iter().cloned().map(Piece::whole).collect(),
        },
        1,
    ))
}

/// The median time of three calls of `f`.
fn median<E>(mut f: impl FnMut() -> Result<(), E>) -> Result<Duration, E> {
    let mut times = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed());
    }
    Ok(mid(times))
}

fn mid(mut times: Vec<Duration>) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}
