//! Syscall tables (being generated).

/// A syscall in chaperone's one alphabet.
pub type Sym = u16;
