//! `containerd-shim-runc-v2-chaperone`: the same shim under a second name, runtime
//! `io.containerd.runc.v2-chaperone`. containerd's client picks the options type from the runtime
//! name, and names starting with `io.containerd.runc.` get runc's `Options` (root, binary name,
//! shim cgroup...), as for containerd's Rust shim `v2-rs`. Everything else is identical.

use std::process::ExitCode;

fn main() -> ExitCode {
    chaperone_shim::main()
}
