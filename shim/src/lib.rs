#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod alert;
mod bootstrap;
pub mod bundle;
pub mod container;
pub mod error;
pub mod learn;
pub mod logging;
pub mod plan;
pub mod runc;
pub mod service;
pub mod task;

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
