//! What the programs of this crate (`chaperone-demo`, the benchmarks) share on their command
//! line: the `--bin-dir` they start the shim from, and how arguments and failures end them.

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::containerd::{newer_source, SHIM_BINARY};

/// The exit code of a program whose standard output was closed under it (a `| head` that has
/// read enough): what a shell reports for one that SIGPIPE ended, 128 + 13.
pub const CLOSED_OUTPUT: u8 = 141;

/// Set by [`main`]: [`say`] writes to standard output itself and reports a closed output.
/// Unset (the tests calling the library), it prints as `println!` does, which the test harness
/// captures.
static PROGRAM: AtomicBool = AtomicBool::new(false);

/// Standard output is closed: the program stops where it is, cleans up (its containerd, its
/// containers) and exits with [`CLOSED_OUTPUT`], saying nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputClosed;

impl std::fmt::Display for OutputClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output is closed")
    }
}

impl std::error::Error for OutputClosed {}

/// Writes `args` and a newline to standard output: [`OutputClosed`] when its reader is gone,
/// rather than `println!`'s panic (an abort in release builds, which would leave the private
/// containerd running). Use through [`say!`](crate::say).
pub fn say(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    if !PROGRAM.load(Ordering::Relaxed) {
        println!("{args}");
        return Ok(());
    }
    let mut out = io::stdout().lock();
    match out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Err(OutputClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}

/// `println!` for this crate's programs: `say!(...)?` stops a program whose output is closed
/// ([`say`]).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::say(format_args!($($arg)*))
    };
}

/// The `--bin-dir` given, once it holds the shim binary, and unless it is a cargo target
/// directory whose shim is older than its sources (the run would measure old code).
pub fn bin_dir(given: Option<PathBuf>) -> Result<PathBuf, String> {
    let dir = given.ok_or("--bin-dir is required")?;
    if !dir.join(SHIM_BINARY).is_file() {
        return Err(format!("no {SHIM_BINARY} in {}", dir.display()));
    }
    if let Some(source) = newer_source(&dir, SHIM_BINARY) {
        return Err(format!(
            "{} is older than {}: rebuild it first (cargo build --release --workspace)",
            dir.join(SHIM_BINARY).display(),
            source.display()
        ));
    }
    Ok(dir)
}

/// Runs `program`: `parse` gives its arguments (`None` when only help was asked for: `usage`
/// is printed); bad arguments print the error and `usage` and exit 2; `body`'s error is printed
/// and exits 1, or, when standard output was closed, exits [`CLOSED_OUTPUT`] silently;
/// otherwise `body`'s exit code.
pub fn main<A>(
    program: &str,
    usage: &str,
    parse: impl FnOnce() -> Result<Option<A>, String>,
    body: impl FnOnce(A) -> anyhow::Result<ExitCode>,
) -> ExitCode {
    PROGRAM.store(true, Ordering::Relaxed);
    let result = match parse() {
        Ok(Some(args)) => body(args),
        Ok(None) => say!("{usage}").map(|()| ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("{program}: {e}\n\n{usage}");
            return ExitCode::from(2);
        }
    };
    result.unwrap_or_else(|e| {
        if e.chain().any(|cause| cause.is::<OutputClosed>()) {
            return ExitCode::from(CLOSED_OUTPUT);
        }
        eprintln!("{program}: error: {e:#}");
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use anyhow::Context as _;

    use super::*;

    #[test]
    fn a_bin_dir_needs_the_shim_built_after_its_sources() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().to_owned();
        let err = bin_dir(Some(bin.clone())).unwrap_err();
        assert!(
            err.starts_with("no containerd-shim-chaperone-v2 in"),
            "{err}"
        );
        let (shim, source) = (bin.join(SHIM_BINARY), bin.join("main.rs"));
        std::fs::write(
            bin.join(format!("{SHIM_BINARY}.d")),
            format!("{}: {}\n", shim.display(), source.display()),
        )
        .unwrap();
        let at = crate::containerd::file_at;
        at(&shim, 1_000);
        at(&source, 2_000);
        let err = bin_dir(Some(bin.clone())).unwrap_err();
        assert!(
            err.contains("is older than") && err.contains("main.rs"),
            "{err}"
        );
        at(&shim, 3_000);
        assert_eq!(bin_dir(Some(bin.clone())).unwrap(), bin);
    }

    #[test]
    fn a_closed_output_anywhere_in_the_chain_exits_141_and_other_errors_1() {
        let closed = || Err(anyhow::Error::from(OutputClosed).context("printing a run"));
        let code = main("t", "usage", || Ok(Some(())), |()| closed());
        assert_eq!(code, ExitCode::from(CLOSED_OUTPUT));
        let failed = main(
            "t",
            "usage",
            || Ok(Some(())),
            |()| Err(anyhow::anyhow!("broken")).context("a step"),
        );
        assert_eq!(failed, ExitCode::FAILURE);
        let bad = main(
            "t",
            "usage",
            || Err::<Option<()>, _>("no".to_owned()),
            |()| Ok(ExitCode::SUCCESS),
        );
        assert_eq!(bad, ExitCode::from(2));
    }
}
