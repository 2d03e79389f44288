#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

pub mod detector;
pub mod eval;
pub mod model;
pub mod syscalls;
pub mod trace;
