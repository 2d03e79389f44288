#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub use chaperone_profiler::syscalls::Sym;
