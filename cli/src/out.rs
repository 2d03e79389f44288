//! Standard output whose write errors reach the caller, so that a reader that goes away (`|
//! head`) ends the command quietly instead of panicking in `println!`.

use std::io;

/// What `chaperone` exits with when its standard output was closed early: what a shell reports
/// for a program that SIGPIPE kills (128 + 13), as GNU tools exit under `| head`.
pub const CLOSED_OUTPUT: u8 = 141;

/// `println!` that returns the `io::Result` of the write instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

pub(crate) use outln;

/// A usage error found after the arguments were parsed (arguments that do not go together):
/// exit 2, as for clap's own.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Fails with a [`Usage`] error saying `what`.
macro_rules! usage {
    ($($arg:tt)*) => {
        return Err($crate::out::Usage(format!($($arg)*)).into())
    };
}
pub(crate) use usage;

/// Whether `err` comes from writing to a pipe whose reader is gone.
pub fn is_closed_output(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn a_broken_pipe_is_found_under_any_context() {
        let err = Err::<(), _>(io::Error::from(io::ErrorKind::BrokenPipe))
            .context("cannot write to standard output")
            .context("exporting")
            .unwrap_err();
        assert!(is_closed_output(&err));
        let other = Err::<(), _>(io::Error::from(io::ErrorKind::PermissionDenied))
            .context("cannot write to standard output")
            .unwrap_err();
        assert!(!is_closed_output(&other));
        assert!(!is_closed_output(&anyhow::anyhow!("no profile")));
    }
}
