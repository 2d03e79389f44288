//! A base profile for `--merge` (moby JSON, an OCI `linux.seccomp` or a whole `config.json`):
//! read, merged with a learned allow-list and exported in every format, or a clear error.
#![no_main]

use chaperone_seccomp_gen::docker::{export_docker, parse_base};
use chaperone_seccomp_gen::spo::export_spo;
use chaperone_seccomp_gen::{export_oci, Allowlist, ExportOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(base) = parse_base(text) else {
        return;
    };
    let allow = Allowlist::exactly(["read", "write", "openat", "close", "exit_group"]);
    let options = ExportOptions {
        base: Some(base),
        ..ExportOptions::default()
    };
    if let Ok(merged) = export_oci(&allow, &options) {
        let json = export_docker(&merged);
        // What chaperone writes, it reads back.
        parse_base(&json).expect("an exported profile reads back as a base");
        let _ = export_spo(&merged, "fuzz");
    }
});
