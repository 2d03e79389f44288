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

/// Prints `rows`, the first the header, in columns as wide as their widest cell, three spaces
/// apart as kubectl prints them; the columns `right` names are aligned right. (Fixed widths,
/// before 2026-12-07, were overrun by a 71-character image digest.)
pub fn print_table(rows: &[Vec<String>], right: &[usize]) -> io::Result<()> {
    use std::io::Write as _;
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = io::stdout().lock();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let pad = " ".repeat(widths[c].saturating_sub(cell.chars().count()));
            let last = c + 1 == row.len();
            match (right.contains(&c), last) {
                (true, _) => line.push_str(&format!("{pad}{cell}")),
                (false, true) => line.push_str(cell),
                (false, false) => line.push_str(&format!("{cell}{pad}")),
            }
            if !last {
                line.push_str("   ");
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// `text` for a table cell: control characters (a newline in a profile's name) escaped, so a
/// row stays one line.
pub fn cell(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// Says on stderr what a trace reader left out as no syscall chaperone knows (a sysdig event
/// that is not a syscall, a name newer than the tables or misspelt), so that nothing is
/// dropped unsaid: the total and the most frequent names. (Before 2026-12-07 only a debug log
/// line said it, which the CLI does not print.)
pub fn report_skipped(path: &std::path::Path, skipped: &chaperone_profiler::trace::Skipped) {
    if skipped.is_empty() {
        return;
    }
    let mut names: Vec<(&str, u64)> = skipped.iter().collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let shown: Vec<String> = names
        .iter()
        .take(5)
        .map(|(name, n)| format!("{} ({n})", cell(name)))
        .collect();
    let more = if names.len() > 5 { ", ..." } else { "" };
    #[allow(clippy::disallowed_macros)] // a notice on stderr, as the other messages
    {
        eprintln!(
            "chaperone: {}: left out {} events that are no syscall chaperone knows: {}{more}",
            path.display(),
            skipped.total(),
            shown.join(", ")
        );
    }
}

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

    #[test]
    fn control_characters_in_a_cell_are_escaped() {
        assert_eq!(cell("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(cell("sha256:ab"), "sha256:ab");
    }
}
