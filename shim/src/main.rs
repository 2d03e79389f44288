//! `containerd-shim-chaperone-v2`: containerd's shim v2 for chaperone (`io.containerd.chaperone.v2`).
//!
//! containerd runs it three ways: `start` (spawn or find the long-lived shim of the container's
//! group and print its address), with no action (serve the Task service over ttrpc), and
//! `delete` (clean up after a shim that died). Everything lives in the library; this only
//! parses the flags, answers `-v`, and hands over.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    let flags = match containerd_shim::parse(args.get(1..).unwrap_or_default()) {
        Ok(flags) => flags,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "{}: {e}", chaperone_shim::RUNTIME_TYPE);
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
            chaperone_shim::RUNTIME_TYPE,
        );
        return ExitCode::SUCCESS;
    }
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
    runtime.block_on(chaperone_shim::run(flags))
}
