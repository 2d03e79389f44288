//! The node's `/etc/chaperone/config.toml`: parsed and validated, or a clear error.
#![no_main]

use chaperone_config::{Config, HttpUrl};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Config::parse(text);
    let _ = HttpUrl::parse(text);
});
