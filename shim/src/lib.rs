#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

/// The runtime type containerd selects this shim with.
pub const RUNTIME_TYPE: &str = "io.containerd.chaperone.v2";
