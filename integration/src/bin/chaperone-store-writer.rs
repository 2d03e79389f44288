//! `chaperone-store-writer DB PROFILE`: merges learning runs into a profile store forever,
//! printing `merged N` after each commit. The crash test kills it with SIGKILL mid-write.

// A test helper program: it reports on standard output.
#![allow(clippy::disallowed_macros)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use chaperone_profiler::model::NgramCounts;
use chaperone_profiler::store::{Learning, Store};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, profile] = args.as_slice() else {
        eprintln!("usage: chaperone-store-writer DB PROFILE");
        return ExitCode::from(2);
    };
    let store = match Store::open(&PathBuf::from(db)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chaperone-store-writer: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A large model, so a crash lands inside a write more often than between two.
    let mut counts = NgramCounts::new(8).expect("order 8");
    let seq: Vec<u16> = (0..200_000_u32)
        .map(|i| ((i * 7919) % 300) as u16)
        .collect();
    counts.learn_sequence(&seq);
    let learning = Learning {
        counts,
        containers: 1,
        maxima: vec![0.5; 64],
        threads: vec![seq.into()],
        container: None,
        workload: None,
    };
    let mut out = std::io::stdout();
    for n in 1_u64.. {
        if let Err(e) = store.merge(profile, &learning, None) {
            eprintln!("chaperone-store-writer: {e}");
            return ExitCode::FAILURE;
        }
        if writeln!(out, "merged {n}")
            .and_then(|()| out.flush())
            .is_err()
        {
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
