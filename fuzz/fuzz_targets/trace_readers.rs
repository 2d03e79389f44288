//! Every trace reader on the same bytes: none may panic, and a parse error names a line the
//! input has.
#![no_main]

use std::path::Path;

use chaperone_profiler::syscalls::Arch;
use chaperone_profiler::trace::{parse_adfa, parse_strace, parse_sysdig, parse_unm, TraceError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz");
    // Lines as a reader counts them: one more than the newlines, unless the input ends in one.
    let newlines = data.iter().filter(|&&b| b == b'\n').count() as u64;
    let lines = newlines + u64::from(!data.ends_with(b"\n"));
    let mut results = vec![
        parse_adfa(data, path).map(|_| ()),
        parse_sysdig(data, path).map(|_| ()),
        parse_strace(data, path).map(|_| ()),
    ];
    results.extend(
        Arch::ALL
            .iter()
            .map(|&arch| parse_unm(data, path, arch).map(|_| ())),
    );
    for result in results {
        if let Err(TraceError::Parse { line, .. }) = result {
            assert!(
                (1..=lines.max(1)).contains(&line),
                "a parse error names line {line} of {lines}"
            );
        }
    }
});
