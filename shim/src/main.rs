//! `containerd-shim-chaperone-v2`: containerd's shim v2 for chaperone (`io.containerd.chaperone.v2`).
//!
//! containerd runs it three ways: `start` (spawn or find the long-lived shim of the container's
//! group and print its address), with no action (serve the Task service over ttrpc), and
//! `delete` (clean up after a shim that died). Everything lives in the library; this only
//! parses the flags, answers `-v`, and hands over.

use std::process::ExitCode;

fn main() -> ExitCode {
    chaperone_shim::main()
}
