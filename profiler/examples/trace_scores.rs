//! Writes the per-trace scores behind the profiler README's "everything tried" table: for
//! protocols P1 and P2 of `chaperone eval`, one tab-separated line per scored ADFA-LD trace with
//! its role, attack family, length, number of distinct syscalls, and the `cover`, set-distance and
//! `ngram` scores. A new combination of these scores can then be prototyped without training
//! again; `sets` is `cover` plus 4 past the cut, the set distance that at most 5 % of the
//! calibration traces exceed (at the default `--far`).
//!
//! Roles: `cal`, `test` and `attack` are scored by detectors trained on the protocol's training
//! traces; `fold` rows are the training traces themselves, each scored by detectors trained on the
//! other four of five folds (trace `i` is in fold `i % 5`; the rows come fold by fold), so that a
//! model of the scores can be fitted on training data alone.
//!
//! `cargo run --release -p chaperone-profiler --example trace_scores [ADFA_DIR] > scores.tsv`

// An example reports to the terminal.
#![allow(clippy::disallowed_macros)]

mod common;

use std::collections::BTreeSet;

use chaperone_profiler::detector::{Detector, Kind, SetsThenCover};
use chaperone_profiler::eval::{EvalSet, Protocol};
use chaperone_profiler::syscalls::Sym;

/// Folds of the training traces for the cross-fitted `fold` rows.
const FOLDS: usize = 5;

/// The detectors whose scores are written.
struct Scorers {
    sets: SetsThenCover,
    ngram: Box<dyn Detector>,
}

impl Scorers {
    fn train(traces: &[&[Sym]]) -> Self {
        match Kind::Ngram.train(traces) {
            Ok(ngram) => Self {
                sets: SetsThenCover::train(traces),
                ngram,
            },
            Err(e) => {
                eprintln!("trace_scores: training the n-gram: {e}");
                std::process::exit(1);
            }
        }
    }

    fn line(&self, protocol: Protocol, role: &str, family: &str, events: &[Sym]) {
        let distinct = events.iter().collect::<BTreeSet<_>>().len();
        println!(
            "{protocol}\t{role}\t{family}\t{}\t{distinct}\t{}\t{}\t{}",
            events.len(),
            self.sets.cover().score(events),
            self.sets.set_distance(events),
            self.ngram.score(events)
        );
    }
}

fn main() {
    let data = common::read_adfa("trace_scores");
    let set = EvalSet::from(data);
    println!("protocol\trole\tfamily\tlength\tdistinct\tcover\tset_distance\tngram");
    for protocol in [Protocol::P1, Protocol::P2] {
        let split = protocol.split(&set);
        for fold in 0..FOLDS {
            let in_fold = |i: usize| i % FOLDS == fold;
            let rest: Vec<&[Sym]> = (0..split.train.len())
                .filter(|&i| !in_fold(i))
                .map(|i| split.train[i])
                .collect();
            let scorers = Scorers::train(&rest);
            for i in (0..split.train.len()).filter(|&i| in_fold(i)) {
                scorers.line(protocol, "fold", "-", split.train[i]);
            }
        }
        let scorers = Scorers::train(&split.train);
        for events in &split.calibrate {
            scorers.line(protocol, "cal", "-", events);
        }
        for events in &split.test {
            scorers.line(protocol, "test", "-", events);
        }
        for (family, t) in &set.attacks {
            scorers.line(protocol, "attack", family, &t.events);
        }
    }
}
