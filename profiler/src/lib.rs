#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

pub mod detector;
pub mod eval;
pub mod model;
pub mod store;
pub mod supervisor;
#[allow(unsafe_code)]
mod sys;
pub mod syscalls;
pub mod tiers;
pub mod trace;
