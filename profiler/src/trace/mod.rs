//! Trace readers (being written).

use crate::syscalls::Sym;

/// One thread's (or process's) recorded syscall sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// Where it came from (file, and pid/tid when a file holds several).
    pub source: String,
    /// The syscalls in order.
    pub events: Vec<Sym>,
}
