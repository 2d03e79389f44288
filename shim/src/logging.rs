//! Logging to containerd's `log` FIFO, and the panic hook.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use tracing::Level;

use crate::error::{Result, ShimError};

/// The FIFO containerd creates in the bundle and copies into its own log.
pub const LOG_FIFO: &str = "log";

/// Sends `tracing` (and the `log` records of the shim and runc libraries) to the FIFO at
/// `path`, at debug level when containerd runs with `-debug`.
pub fn init(path: &Path, debug: bool) -> Result<()> {
    // Opening a FIFO for writing waits for containerd to open its end.
    let fifo = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|source| ShimError::Io {
            op: "open the log FIFO",
            path: path.to_owned(),
            source,
        })?;
    let level = if debug { Level::DEBUG } else { Level::INFO };
    // Only fails when a subscriber is already set, which then keeps logging.
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(Mutex::new(fifo))
        .with_target(false)
        .try_init();
    Ok(())
}

/// Logs a panic with its backtrace, then aborts: a shim that half-works hides failures.
pub fn set_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let backtrace = std::backtrace::Backtrace::force_capture();
        tracing::error!(%info, %backtrace, "shim panicked");
        let _ = writeln!(std::io::stderr(), "shim panicked: {info}\n{backtrace}");
        std::process::abort();
    }));
}
