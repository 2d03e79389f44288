//! What the examples share: reading ADFA-LD.

use std::path::PathBuf;

use chaperone_profiler::trace::{self, AdfaData};

/// Reads ADFA-LD from the first argument, or from `../shared/datasets/adfa-ld` beside the
/// project; on an error, prints it as `example: error` and exits 1.
// An example has nothing to do without its data; it ends as its `main` would.
#[allow(clippy::exit)]
pub fn read_adfa(example: &str) -> AdfaData {
    let dir = std::env::args().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/datasets/adfa-ld"),
        PathBuf::from,
    );
    trace::read_adfa(&dir).unwrap_or_else(|e| {
        eprintln!("{example}: {e}");
        std::process::exit(1);
    })
}
