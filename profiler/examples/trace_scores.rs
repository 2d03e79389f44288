//! Writes the per-trace scores behind the profiler README's "everything tried" table: for
//! protocols P1 and P2 of `chaperone eval`, one tab-separated line per scored ADFA-LD trace with
//! its role (`cal`, `test` or `attack`), attack family, length, number of distinct syscalls, and
//! the `cover`, set-distance and `ngram` scores. A new combination of these scores can then be
//! prototyped without training again; `sets` is `cover` plus 4 past the cut, the set distance
//! that at most 5 % of the calibration traces exceed (at the default `--far`).
//!
//! `cargo run --release -p chaperone-profiler --example trace_scores [ADFA_DIR] > scores.tsv`

// An example reports to the terminal.
#![allow(clippy::disallowed_macros)]

mod common;

use std::collections::BTreeSet;

use chaperone_profiler::detector::{Detector, Kind, SetsThenCover};
use chaperone_profiler::eval::{EvalSet, Protocol};
use chaperone_profiler::syscalls::Sym;

fn main() {
    let data = common::read_adfa("trace_scores");
    let set = EvalSet::from(data);
    println!("protocol\trole\tfamily\tlength\tdistinct\tcover\tset_distance\tngram");
    for protocol in [Protocol::P1, Protocol::P2] {
        let split = protocol.split(&set);
        let sets = SetsThenCover::train(&split.train);
        let ngram = match Kind::Ngram.train(&split.train) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("trace_scores: training the n-gram: {e}");
                std::process::exit(1);
            }
        };
        let line = |role: &str, family: &str, events: &[Sym]| {
            let distinct = events.iter().collect::<BTreeSet<_>>().len();
            println!(
                "{protocol}\t{role}\t{family}\t{}\t{distinct}\t{}\t{}\t{}",
                events.len(),
                sets.cover().score(events),
                sets.set_distance(events),
                ngram.score(events)
            );
        };
        for events in &split.calibrate {
            line("cal", "-", events);
        }
        for events in &split.test {
            line("test", "-", events);
        }
        for (family, t) in &set.attacks {
            line("attack", family, &t.events);
        }
    }
}
