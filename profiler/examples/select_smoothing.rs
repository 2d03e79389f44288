//! Chooses the n-gram detector's order and smoothing on normal data only: held-out mean
//! surprisal per syscall of the calibration traces (protocol P1: validation traces at odd
//! positions) under a model trained on the training traces. Attack traces are never read.
//!
//! `cargo run --release -p chaperone-profiler --example select_smoothing [ADFA_DIR]`

// An example reports to the terminal.
#![allow(clippy::disallowed_macros)]

mod common;

use chaperone_profiler::model::{NgramCounts, NgramScorer, Smoothing};

fn main() {
    let data = common::read_adfa("select_smoothing");
    let held_out: Vec<&[u16]> = data
        .validation
        .iter()
        .skip(1)
        .step_by(2)
        .map(|t| t.events.as_slice())
        .collect();
    let events: usize = held_out.iter().map(|t| t.len()).sum();
    println!("order  alpha   beta  held-out surprisal/syscall (nats, lower is better)");
    let mut best = (f64::INFINITY, 0, Smoothing::default());
    for order in [2, 3, 4, 5, 6, 7, 8] {
        let mut counts = NgramCounts::new(order).expect("order in range");
        for t in &data.training {
            counts.learn_sequence(&t.events);
        }
        for (alpha, beta) in [
            (0.1, 0.0),
            (1.0, 0.0),
            (10.0, 0.0),
            (30.0, 0.0),
            (100.0, 0.0),
            (300.0, 0.0),
            (0.0, 0.5),
            (0.0, 1.0),
            (0.0, 2.0),
            (0.5, 0.5),
            (1.0, 1.0),
            (10.0, 1.0),
        ] {
            let sm = Smoothing { alpha, beta };
            let scorer = NgramScorer::new(&counts, sm).expect("valid smoothing");
            let total: f64 = held_out
                .iter()
                .map(|t| {
                    let mut s = scorer.start();
                    t.iter()
                        .map(|&e| f64::from(scorer.step(&mut s, e).surprisal))
                        .sum::<f64>()
                })
                .sum();
            let mean = total / events as f64;
            println!("{order:>5} {alpha:>6} {beta:>6}  {mean:.4}");
            if mean < best.0 {
                best = (mean, order, sm);
            }
        }
    }
    println!(
        "best: order {} alpha {} beta {} ({:.4} nats/syscall)",
        best.1, best.2.alpha, best.2.beta, best.0
    );
}
