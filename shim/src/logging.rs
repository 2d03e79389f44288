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

/// What `run` logs (at every level, without colours), for tests that check a log line.
#[cfg(test)]
pub(crate) fn logged(run: impl FnOnce()) -> String {
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, run);
    let bytes = buffer
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    String::from_utf8_lossy(&bytes).into_owned()
}
