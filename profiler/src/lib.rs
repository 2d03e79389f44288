#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

pub mod detector;
pub mod eval;
pub mod model;
pub mod store;
pub mod supervisor;
#[allow(unsafe_code)]
mod sys;
/// Signalling a process through a pidfd, never a process that took over its pid (the shim uses
/// it for logging binaries too).
pub use sys::{pidfd, SysError};
pub mod syscalls;
pub mod tiers;
pub mod trace;
