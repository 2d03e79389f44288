//! A profile file (`chaperone export`, `diff`, `learn --merge`): the bytes either decode, and
//! then everything built from a profile works on them, or they are an error. A decoded
//! profile encodes back to itself.
#![no_main]

use chaperone_profiler::model::{codec, NgramScorer, Smoothing};
use chaperone_profiler::tiers::hot_set;
use chaperone_seccomp_gen::{diff::diff, export_oci, Allowlist, ExportOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(counts) = codec::decode(data) else {
        return;
    };
    let again = codec::decode(&codec::encode(&counts)).expect("an encoded profile decodes");
    assert_eq!(again, counts);
    if let Ok(scorer) = NgramScorer::new(&counts, Smoothing::default()) {
        let mut state = scorer.start();
        for (sym, _) in counts.unigrams() {
            let _ = scorer.step(&mut state, sym);
        }
    }
    let _ = hot_set(&counts, 0.9, &Default::default());
    let allow = Allowlist::from_counts(&counts);
    let _ = export_oci(&allow, &ExportOptions::default());
    assert!(
        diff(&counts, &counts).is_empty(),
        "a profile differs from itself"
    );
});
