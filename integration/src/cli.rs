//! What the programs of this crate (`chaperone-demo`, the benchmarks) share on their command
//! line: the `--bin-dir` they start the shim from, and how arguments and failures end them.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::containerd::SHIM_BINARY;

/// The `--bin-dir` given, once it holds the shim binary.
pub fn bin_dir(given: Option<PathBuf>) -> Result<PathBuf, String> {
    let dir = given.ok_or("--bin-dir is required")?;
    if !dir.join(SHIM_BINARY).is_file() {
        return Err(format!("no {SHIM_BINARY} in {}", dir.display()));
    }
    Ok(dir)
}

/// Runs `program`: `parse` gives its arguments (`None` when only help was asked for, and
/// printed); bad arguments print the error and `usage` and exit 2; `body`'s error is printed
/// and exits 1; otherwise `body`'s exit code.
pub fn main<A>(
    program: &str,
    usage: &str,
    parse: impl FnOnce() -> Result<Option<A>, String>,
    body: impl FnOnce(A) -> anyhow::Result<ExitCode>,
) -> ExitCode {
    let args = match parse() {
        Ok(Some(args)) => args,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e}\n\n{usage}");
            return ExitCode::from(2);
        }
    };
    body(args).unwrap_or_else(|e| {
        eprintln!("{program}: error: {e:#}");
        ExitCode::FAILURE
    })
}
