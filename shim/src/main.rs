//! `containerd-shim-chaperone-v2`: the Task service is not built yet (see the shim issue).

// Until the shim logs to containerd's FIFO, its one message goes to stderr.
#![allow(clippy::disallowed_macros)]

fn main() -> std::process::ExitCode {
    eprintln!(
        "containerd-shim-chaperone-v2 ({}): the containerd Task service is not implemented yet",
        chaperone_shim::RUNTIME_TYPE
    );
    std::process::ExitCode::FAILURE
}
