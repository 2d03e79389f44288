#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

pub mod alert;
mod bootstrap;
pub mod bundle;
pub mod cgroup;
pub mod console;
pub mod container;
pub mod error;
pub mod events;
pub mod image;
pub mod learn;
pub mod logging;
pub mod oom;
pub mod plan;
pub mod runc;
pub mod service;
pub mod stdio;
#[allow(unsafe_code)]
mod sys;
pub mod task;
pub mod webhook;

use std::io::Write;
use std::process::ExitCode;

pub use error::{Result, ShimError};

/// The runtime type containerd selects this shim with.
pub const RUNTIME_TYPE: &str = "io.containerd.chaperone.v2";

/// Runs the action containerd asked for (`start`, `delete`, or serving when none is given).
/// Call it from the tokio runtime of `main`.
pub async fn run(flags: containerd_shim::Flags) -> ExitCode {
    logging::set_panic_hook();
    let result = match flags.action.as_str() {
        "start" => bootstrap::start(&flags).await,
        "delete" => bootstrap::delete(&flags).await,
        "" => bootstrap::serve(&flags).await,
        _ => Err(ShimError::InvalidRequest {
            reason: "unknown action (expected start, delete or none)",
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e.chain(), action = %flags.action, "shim failed");
            let _ = writeln!(std::io::stderr(), "{RUNTIME_TYPE}: {}", e.chain());
            ExitCode::FAILURE
        }
    }
}

/// The whole program of both binaries (`containerd-shim-chaperone-v2` and its alias
/// `containerd-shim-runc-v2-chaperone`): parses the flags, answers `-v`, runs the shim.
pub fn main() -> ExitCode {
    use std::io::Write;
    let args: Vec<_> = std::env::args_os().collect();
    let flags = match containerd_shim::parse(args.get(1..).unwrap_or_default()) {
        Ok(flags) => flags,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{}: {e}", RUNTIME_TYPE);
            return ExitCode::FAILURE;
        }
    };
    if flags.version {
        let _ = writeln!(
            std::io::stdout(),
            "{}:\n  Version: {}\n  Runtime: {}",
            args.first()
                .map(|a| a.to_string_lossy())
                .unwrap_or_default(),
            env!("CARGO_PKG_VERSION"),
            RUNTIME_TYPE,
        );
        return ExitCode::SUCCESS;
    }
    sys::one_malloc_arena();
    // The supervisors run on their own threads; the runtime only serves ttrpc and runc calls.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(flags))
}
