//! Trace readers: recorded syscall sequences from files, in chaperone's one alphabet.
//!
//! Every format maps into [`Sym`], whatever its numbering:
//!
//! | format | reader | what it holds |
//! |---|---|---|
//! | [`Format::Adfa`] | [`read_adfa`], [`read_adfa_file`] | ADFA-LD: one process per file, i386 numbers |
//! | [`Format::Unm`] | [`read_unm`] | UNM/MIT: `PID NR` lines, processes interleaved |
//! | [`Format::Sysdig`] | [`read_sysdig`] | LID-DS `.sc` sysdig text, one trace per thread |
//! | [`Format::Strace`] | [`read_strace`] | `strace -f` output, one trace per pid |
//!
//! [`read_traces`] reads any format from a file or a directory tree. Malformed input is a
//! [`TraceError::Parse`] naming the file, the 1-based line and what is wrong; no reader panics on
//! any input. Events that are not syscalls of the tables (sysdig pseudo-events, strace's `????`
//! or a number no table has) are not errors: they are left out and counted in [`Skipped`]
//! ([`read_traces_with_skipped`], [`parse_sysdig`], [`parse_strace`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::syscalls::{Arch, Sym};

mod adfa;
mod lines;
mod strace;
mod sysdig;
mod unm;

pub use adfa::{family_of, parse_adfa, read_adfa, read_adfa_file, AdfaData, AttackTrace};
pub use strace::{parse_strace, parse_strace_in, read_strace};
pub use sysdig::{parse_sysdig, read_sysdig};
pub use unm::{parse_unm, read_unm};

/// One thread's (or process's) recorded syscall sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// Where it came from (file, and pid/tid when a file holds several).
    pub source: String,
    /// The syscalls in order.
    pub events: Vec<Sym>,
}

/// A trace file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// ADFA-LD: one line of space-separated i386 syscall numbers per file.
    Adfa,
    /// UNM/MIT sequence data: `PID NR` per line, many processes interleaved.
    Unm,
    /// sysdig text as recorded by LID-DS (`.sc`).
    Sysdig,
    /// `strace -f` output.
    Strace,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 4] = [Format::Adfa, Format::Unm, Format::Sysdig, Format::Strace];

    /// The name used on the command line: "adfa", "unm", "sysdig", "strace".
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Adfa => "adfa",
            Format::Unm => "unm",
            Format::Sysdig => "sysdig",
            Format::Strace => "strace",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A format name that is not one of the supported ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown trace format {input:?}: expected adfa, unm, sysdig or strace")]
pub struct ParseFormatError {
    /// What was given.
    pub input: String,
}

impl FromStr for Format {
    type Err = ParseFormatError;

    /// Accepts "adfa", "unm", "sysdig" and "strace", ignoring ASCII case.
    fn from_str(s: &str) -> std::result::Result<Format, ParseFormatError> {
        Format::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseFormatError {
                input: s.to_owned(),
            })
    }
}

/// Errors of the trace readers.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// A file or directory could not be opened, listed or read.
    #[error("cannot read {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A line does not fit the format.
    #[error("{path}:{line}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line, counted from 1.
        line: u64,
        /// What is wrong with it.
        reason: LineError,
    },
    /// A dataset directory lacks a part its layout requires.
    #[error("{path} is not an ADFA-LD directory: it has no {missing}")]
    MissingDir {
        /// The dataset directory.
        path: PathBuf,
        /// The missing subdirectory.
        missing: &'static str,
    },
}

/// `Result` with a [`TraceError`].
pub type Result<T> = std::result::Result<T, TraceError>;

/// What is wrong with one line (the `reason` of [`TraceError::Parse`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// A field that must be a decimal number is not one (or does not fit in 32/64 bits).
    #[error("{field} {token:?} is not a decimal number")]
    NotANumber {
        /// Which field.
        field: &'static str,
        /// What was there (cut to a few dozen characters).
        token: String,
    },
    /// A syscall number that the architecture's table does not have.
    #[error("{nr} is not an {arch} syscall number")]
    UnknownNumber {
        /// The architecture whose table was used.
        arch: Arch,
        /// The number.
        nr: u32,
    },
    /// The line ends before a required field.
    #[error("missing {field}")]
    Missing {
        /// The first missing field.
        field: &'static str,
    },
    /// The line goes on after its last field.
    #[error("unexpected {token:?} after the {after}")]
    Trailing {
        /// The last expected field.
        after: &'static str,
        /// The first unexpected token (cut to a few dozen characters).
        token: String,
    },
    /// A sysdig event direction other than `>` or `<`.
    #[error("event direction {token:?} is neither '>' nor '<'")]
    Direction {
        /// What was there (cut to a few dozen characters).
        token: String,
    },
    /// A line that fits none of the format's forms.
    #[error("line fits no {format} form: {excerpt:?}")]
    Unrecognized {
        /// The format being read.
        format: Format,
        /// The start of the line.
        excerpt: String,
    },
    /// A line longer than the readers accept (a binary or corrupt file).
    #[error("line is longer than {limit} bytes")]
    TooLong {
        /// The limit in bytes.
        limit: usize,
    },
}

/// Events a reader left out because they are not syscalls of the tables, counted by name.
///
/// At most [`Skipped::MAX_NAMES`] distinct names are kept (a hostile file cannot grow it without
/// bound); the rest are counted under [`Skipped::OTHER`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    counts: BTreeMap<String, u64>,
}

impl Skipped {
    /// How many distinct names are kept.
    pub const MAX_NAMES: usize = 256;
    /// The name that collects the events of names past [`Skipped::MAX_NAMES`].
    pub const OTHER: &'static str = "<other>";

    /// How many events were left out in all.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Whether nothing was left out.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// How many events named `name` were left out.
    pub fn count(&self, name: &str) -> u64 {
        self.counts.get(name).copied().unwrap_or(0)
    }

    /// (name, count) pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.counts.iter().map(|(name, &n)| (name.as_str(), n))
    }

    /// Adds the counts of `other`.
    pub fn merge(&mut self, other: &Skipped) {
        for (name, n) in other.iter() {
            self.add_n(name.as_bytes(), n);
        }
    }

    /// Counts one event named `name`.
    pub(crate) fn add(&mut self, name: &[u8]) {
        self.add_n(name, 1);
    }

    fn add_n(&mut self, name: &[u8], n: u64) {
        let name = String::from_utf8_lossy(name);
        if let Some(count) = self.counts.get_mut(name.as_ref()) {
            *count += n;
            return;
        }
        let key = if self.counts.len() < Self::MAX_NAMES {
            name.into_owned()
        } else {
            Self::OTHER.to_owned()
        };
        *self.counts.entry(key).or_insert(0) += n;
    }
}

/// Traces read from one or more files, with what was left out of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The traces, in file order, then in order of each thread's first counted syscall.
    pub traces: Vec<Trace>,
    /// Events left out because they are not syscalls.
    pub skipped: Skipped,
}

/// Reads every trace of `path`, a file or a directory, in `format`.
///
/// A directory is read recursively: every regular file below it (symlinks to files included,
/// symlinked directories not followed), in path order; for [`Format::Sysdig`] only the `.sc`
/// files, as LID-DS keeps other files beside its captures (a file named on its own is read
/// whatever its name). `arch` is the numbering of
/// [`Format::Unm`], and of the calls `strace` printed by number; ADFA-LD is always i386 and the
/// text formats otherwise carry names.
pub fn read_traces(format: Format, path: &Path, arch: Arch) -> Result<Vec<Trace>> {
    read_traces_with_skipped(format, path, arch).map(|parsed| parsed.traces)
}

/// [`read_traces`], also returning the events left out because they are not syscalls.
pub fn read_traces_with_skipped(format: Format, path: &Path, arch: Arch) -> Result<Parsed> {
    let metadata = std::fs::metadata(path).map_err(|source| io_error(path, source))?;
    let files = if metadata.is_dir() {
        let mut files = Vec::new();
        list_files(path, &mut files)?;
        // A LID-DS recording keeps its metadata (`.json`) and results (`.res`) beside its
        // capture (`.sc`): in a directory, sysdig reads only the captures.
        if format == Format::Sysdig {
            files.retain(|f| f.extension().is_some_and(|e| e == "sc"));
        }
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut out = Parsed::default();
    for file in &files {
        match format {
            Format::Adfa => out.traces.push(read_adfa_file(file)?),
            Format::Unm => out.traces.extend(read_unm(file, arch)?),
            Format::Sysdig => append(&mut out, sysdig::read_sysdig_with_skipped(file)?),
            Format::Strace => append(&mut out, strace::read_strace_with_skipped(file, arch)?),
        }
    }
    Ok(out)
}

fn append(out: &mut Parsed, parsed: Parsed) {
    out.traces.extend(parsed.traces);
    out.skipped.merge(&parsed.skipped);
}

/// Collects the regular files below `dir` (unsorted).
fn list_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| io_error(dir, source))?;
    for entry in entries {
        let entry = entry.map_err(|source| io_error(dir, source))?;
        let path = entry.path();
        let file_type = entry
            .file_type()
            .map_err(|source| io_error(&path, source))?;
        if file_type.is_dir() {
            list_files(&path, out)?;
        } else if file_type.is_file()
            || (file_type.is_symlink() && std::fs::metadata(&path).is_ok_and(|m| m.is_file()))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Opens `path` and parses it with `parse`, noting at debug level how many events were left out
/// (`what` names them in the log line).
pub(crate) fn read_file_with(
    path: &Path,
    what: &'static str,
    parse: impl FnOnce(io::BufReader<std::fs::File>, &Path) -> Result<Parsed>,
) -> Result<Parsed> {
    let file = std::fs::File::open(path).map_err(|source| io_error(path, source))?;
    let parsed = parse(io::BufReader::with_capacity(1 << 16, file), path)?;
    if !parsed.skipped.is_empty() {
        tracing::debug!(
            path = %path.display(),
            skipped = parsed.skipped.total(),
            "left out {what} that are not syscalls of the tables"
        );
    }
    Ok(parsed)
}

/// A [`TraceError::Io`] for `path`.
pub(crate) fn io_error(path: &Path, source: io::Error) -> TraceError {
    TraceError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Splits events by thread (or process) id into traces, in order of each id's first event.
#[derive(Debug)]
pub(crate) struct Threads {
    label: String,
    index: HashMap<u32, usize>,
    traces: Vec<Trace>,
}

impl Threads {
    /// Groups the events of the file `path`; traces are named `"<path>:<id>"`.
    pub(crate) fn new(path: &Path) -> Threads {
        Threads {
            label: path.display().to_string(),
            index: HashMap::new(),
            traces: Vec::new(),
        }
    }

    /// Appends `sym` to the trace of `id`, starting that trace if it is new.
    pub(crate) fn push(&mut self, id: u32, sym: Sym) {
        let next = self.traces.len();
        let i = *self.index.entry(id).or_insert(next);
        if i == next {
            self.traces.push(Trace {
                source: format!("{}:{id}", self.label),
                events: Vec::new(),
            });
        }
        self.traces[i].events.push(sym);
    }

    /// The traces, in order of first event.
    pub(crate) fn into_traces(self) -> Vec<Trace> {
        self.traces
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_display() {
        for format in Format::ALL {
            assert_eq!(format.to_string().parse::<Format>(), Ok(format));
        }
        assert_eq!("STRACE".parse::<Format>(), Ok(Format::Strace));
        let message = "csv".parse::<Format>().expect_err("unknown").to_string();
        for choice in ["adfa", "unm", "sysdig", "strace", "csv"] {
            assert!(message.contains(choice), "{message}");
        }
    }

    #[test]
    fn skipped_names_are_bounded() {
        let mut skipped = Skipped::default();
        for i in 0..Skipped::MAX_NAMES + 50 {
            skipped.add(format!("pseudo_{i}").as_bytes());
        }
        skipped.add(b"pseudo_0");
        assert_eq!(skipped.iter().count(), Skipped::MAX_NAMES + 1);
        assert_eq!(skipped.count(Skipped::OTHER), 50);
        assert_eq!(skipped.count("pseudo_0"), 2);
        assert_eq!(
            skipped.total(),
            u64::try_from(Skipped::MAX_NAMES + 51).expect("small")
        );

        let mut merged = Skipped::default();
        merged.merge(&skipped);
        assert_eq!(merged.total(), skipped.total());
    }

    #[test]
    fn threads_keep_first_appearance_order() {
        let mut threads = Threads::new(Path::new("f"));
        threads.push(9, 1);
        threads.push(3, 2);
        threads.push(9, 3);
        let traces = threads.into_traces();
        assert_eq!(traces[0].source, "f:9");
        assert_eq!(traces[0].events, [1, 3]);
        assert_eq!(traces[1].source, "f:3");
        assert_eq!(traces[1].events, [2]);
    }

    #[test]
    fn directories_are_listed_recursively_with_file_symlinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/c")).expect("mkdir");
        std::fs::write(root.join("b/c/1 2"), "1 2\n").expect("write");
        std::fs::write(root.join("a"), "1 3\n").expect("write");
        std::os::unix::fs::symlink(root.join("a"), root.join("d")).expect("symlink");
        std::os::unix::fs::symlink(root.join("b"), root.join("e")).expect("symlink");
        let traces = read_traces(Format::Unm, root, Arch::X86_64).expect("valid");
        let sources: Vec<_> = traces
            .iter()
            .map(|t| {
                t.source
                    .strip_prefix(&root.display().to_string())
                    .unwrap_or(&t.source)
            })
            .collect();
        // The symlink to a file is read; the one to a directory is not followed.
        assert_eq!(sources, ["/a:1", "/b/c/1 2:1", "/d:1"]);
    }
}
