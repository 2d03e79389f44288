//! Properties of the learned model: exact merging, lossless serialization, size on ADFA-LD.

// Integration tests and benches are their own crates: their tests have no test module, and
// they report to the terminal.
#![allow(clippy::tests_outside_test_module, clippy::disallowed_macros)]

use std::path::PathBuf;

use chaperone_profiler::model::{codec, NgramCounts, NgramScorer, Smoothing};
use chaperone_profiler::syscalls::Sym;
use chaperone_profiler::trace;
use proptest::prelude::*;

fn learn(order: usize, seqs: &[Vec<Sym>]) -> NgramCounts {
    let mut m = NgramCounts::new(order).unwrap();
    for s in seqs {
        m.learn_sequence(s);
    }
    m
}

fn seqs() -> impl Strategy<Value = Vec<Vec<Sym>>> {
    // A small alphabet makes shared grams (and so real merging) likely.
    prop::collection::vec(prop::collection::vec(0u16..12, 0..40), 0..8)
}

proptest! {
    #[test]
    fn merge_is_exact(order in 1usize..=8, a in seqs(), b in seqs()) {
        let mut merged = learn(order, &a);
        merged.merge(&learn(order, &b)).unwrap();
        let both: Vec<Vec<Sym>> = a.iter().chain(&b).cloned().collect();
        prop_assert_eq!(merged, learn(order, &both));
    }

    #[test]
    fn merge_is_commutative(order in 1usize..=8, a in seqs(), b in seqs()) {
        let mut ab = learn(order, &a);
        ab.merge(&learn(order, &b)).unwrap();
        let mut ba = learn(order, &b);
        ba.merge(&learn(order, &a)).unwrap();
        prop_assert_eq!(ab, ba);
    }

    #[test]
    fn codec_round_trips(order in 1usize..=8, a in seqs()) {
        let m = learn(order, &a);
        prop_assert_eq!(codec::decode(&codec::encode(&m)).unwrap(), m);
    }

    #[test]
    fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut framed = b"CHPM\x01\x00".to_vec();
        framed.extend(bytes);
        if let Ok(m) = codec::decode(&framed) {
            prop_assert_eq!(codec::decode(&codec::encode(&m)).unwrap(), m);
        }
    }
}

fn adfa() -> Option<trace::AdfaData> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/adfa-ld");
    if !dir.is_dir() {
        let ci = matches!(std::env::var("CI").as_deref(), Ok("true" | "1"));
        assert!(!ci, "dataset missing under CI: {}", dir.display());
        eprintln!("SKIPPED: dataset missing: {}", dir.display());
        return None;
    }
    Some(trace::read_adfa(&dir).expect("ADFA-LD reads"))
}

#[test]
fn adfa_model_is_small_and_round_trips() {
    let Some(data) = adfa() else { return };
    let train: Vec<Vec<Sym>> = data.training.into_iter().map(|t| t.events).collect();
    let m = learn(chaperone_config::DEFAULT_ORDER, &train);
    assert_eq!(m.events(), 308_077);
    let bytes = codec::encode(&m);
    eprintln!(
        "ADFA-LD model: {} grams, {} bytes serialized",
        m.distinct(),
        bytes.len()
    );
    assert!(bytes.len() <= 4 << 20, "{} bytes > 4 MiB", bytes.len());
    let back = codec::decode(&bytes).unwrap();
    assert_eq!(back, m);
    // The compiled scorer of the decoded model scores identically.
    let (s1, s2) = (
        NgramScorer::new(&m, Smoothing::default()).unwrap(),
        NgramScorer::new(&back, Smoothing::default()).unwrap(),
    );
    let probe = &data.validation[0].events;
    let (mut a, mut b) = (s1.start(), s2.start());
    for &e in probe {
        assert_eq!(s1.step(&mut a, e), s2.step(&mut b, e));
    }
}
