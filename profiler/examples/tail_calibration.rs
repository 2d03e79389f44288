//! Measures the live threshold for false-alarm targets below one in the number of held-out
//! threads, where `stats::calibrate` fits the tail (ADR 0023), against the highest held-out
//! score it returned before. On ADFA-LD under protocol P1, each trace is scored as a live
//! thread: its highest window score under the default 8-gram trained on the training traces.
//! Repeatedly, `m` calibration traces are drawn at random; each threshold is set on them and
//! its false-alarm rate measured on the even-position normal traces, its detection rate on the
//! attacks. Normal data alone sets the thresholds; the attacks only measure the cost.
//!
//! `cargo run --release -p chaperone-profiler --example tail_calibration [ADFA_DIR]`

// An example reports to the terminal.
#![allow(clippy::disallowed_macros)]

mod common;

use chaperone_profiler::detector::{stats, NgramDetector, NgramParams};
use chaperone_profiler::eval::{EvalSet, Protocol};
use chaperone_profiler::supervisor::max_window;

/// Draws per setting.
const REPEATS: usize = 1000;

fn main() {
    let set = EvalSet::from(common::read_adfa("tail_calibration"));
    let split = Protocol::P1.split(&set);
    let ngram = NgramDetector::train(&split.train, NgramParams::default())
        .expect("the default order is supported");
    let scorer = ngram.scorer();
    let maxima =
        |traces: &[&[_]]| -> Vec<f64> { traces.iter().map(|t| max_window(scorer, t)).collect() };
    let calibration = maxima(&split.calibrate);
    let test = maxima(&split.test);
    let attacks: Vec<&[_]> = set
        .attacks
        .iter()
        .map(|(_, t)| t.events.as_slice())
        .collect();
    let attacks = maxima(&attacks);
    println!(
        "{} calibration, {} test, {} attack traces (P1, 8-gram, highest window score)",
        calibration.len(),
        test.len(),
        attacks.len()
    );
    println!("m\ttarget\tFAR highest (mean, p90)\tFAR fit (mean, p90)\tDR highest\tDR fit\tfit above highest");
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    for m in [20, 50, 100, 200, 500, 1000] {
        for far in [0.01, 0.005, 0.002, 0.001] {
            if far * m as f64 >= 1.0 {
                continue;
            }
            let mut rows = Vec::with_capacity(REPEATS);
            for _ in 0..REPEATS {
                let sample: Vec<f64> = (0..m)
                    .map(|_| calibration[next(&mut rng) % calibration.len()])
                    .collect();
                let highest = sample.iter().copied().fold(f64::MIN, f64::max);
                let fit = stats::calibrate(&sample, far).expect("finite scores");
                rows.push([
                    stats::alarm_rate(&test, highest),
                    stats::alarm_rate(&test, fit),
                    stats::alarm_rate(&attacks, highest),
                    stats::alarm_rate(&attacks, fit),
                    f64::from(u8::from(fit > highest)),
                ]);
            }
            let col = |i: usize| -> Vec<f64> { rows.iter().map(|r| r[i]).collect() };
            println!(
                "{m}\t{far}\t{:.4}, {:.4}\t{:.4}, {:.4}\t{:.3}\t{:.3}\t{:.2}",
                mean(&col(0)),
                p90(col(0)),
                mean(&col(1)),
                p90(col(1)),
                mean(&col(2)),
                mean(&col(3)),
                mean(&col(4)),
            );
        }
    }
    for far in [0.0004, 0.0002, 0.0001] {
        let highest = calibration.iter().copied().fold(f64::MIN, f64::max);
        let fit = stats::calibrate(&calibration, far).expect("finite scores");
        println!(
            "all {}\t{far}\thighest {highest:.3}: FAR {:.4} DR {:.3}\tfit {fit:.3}: FAR {:.4} DR {:.3}",
            calibration.len(),
            stats::alarm_rate(&test, highest),
            stats::alarm_rate(&attacks, highest),
            stats::alarm_rate(&test, fit),
            stats::alarm_rate(&attacks, fit),
        );
    }
}

/// xorshift64: a fixed, seedable stream of draws.
fn next(x: &mut u64) -> usize {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    // The draw only indexes a slice; truncation on 32-bit targets keeps it uniform enough.
    #[allow(clippy::cast_possible_truncation)]
    let i = (*x >> 11) as usize;
    i
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn p90(mut v: Vec<f64>) -> f64 {
    v.sort_unstable_by(f64::total_cmp);
    v[v.len() * 9 / 10]
}
