//! ADFA-LD (UNSW Canberra): one trace per `.txt` file, a line of space-separated i386 numbers.

use std::ffi::OsStr;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use super::lines::{not_a_number, parse_u32, tokens, LineReader};
use super::{io_error, LineError, Result, Trace, TraceError};
use crate::syscalls::{Arch, Sym};

/// The numbering ADFA-LD uses: the x86 32-bit table (3=read, 5=open, 192=mmap2, ...). The
/// dataset's own syscall list file is the asm-generic table and does not match the traces.
const ADFA_ARCH: Arch = Arch::I386;

const TRAINING: &str = "Training_Data_Master";
const VALIDATION: &str = "Validation_Data_Master";
const ATTACK: &str = "Attack_Data_Master";

/// One attack trace and the attack family it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttackTrace {
    /// The family: the attack folder's name without its run number (`Hydra_FTP_3` -> `Hydra_FTP`).
    pub family: String,
    /// The trace.
    pub trace: Trace,
}

/// The ADFA-LD dataset: normal training and validation traces, and attack traces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdfaData {
    /// `Training_Data_Master/*.txt`, sorted by file name.
    pub training: Vec<Trace>,
    /// `Validation_Data_Master/*.txt`, sorted by file name.
    pub validation: Vec<Trace>,
    /// `Attack_Data_Master/<Family>_<N>/*.txt`, sorted by folder name, then by file name.
    pub attacks: Vec<AttackTrace>,
}

/// Reads the ADFA-LD dataset at `dir`.
///
/// `dir` must hold `Training_Data_Master/`, `Validation_Data_Master/` and `Attack_Data_Master/`.
/// Only `.txt` files are read (stray files such as `.DS_Store` are ignored); names are sorted
/// byte-wise, so `Adduser_10` comes before `Adduser_2`.
pub fn read_adfa(dir: &Path) -> Result<AdfaData> {
    let training = read_folder(&required(dir, TRAINING)?)?;
    let validation = read_folder(&required(dir, VALIDATION)?)?;
    let attack_dir = required(dir, ATTACK)?;
    let mut attacks = Vec::new();
    for folder in sorted_entries(&attack_dir, Kind::Dir)? {
        let name = folder
            .file_name()
            .map(OsStr::to_string_lossy)
            .unwrap_or_default();
        let family = family_of(&name).to_owned();
        for trace in read_folder(&folder)? {
            attacks.push(AttackTrace {
                family: family.clone(),
                trace,
            });
        }
    }
    Ok(AdfaData {
        training,
        validation,
        attacks,
    })
}

/// Reads one ADFA-LD trace file.
///
/// The file is space-separated i386 syscall numbers, normally on one line; any whitespace
/// separates them (trailing spaces and newlines are fine) and an empty file is an empty trace.
pub fn read_adfa_file(path: &Path) -> Result<Trace> {
    let bytes = std::fs::read(path).map_err(|source| io_error(path, source))?;
    parse_adfa(bytes.as_slice(), path)
}

/// Parses ADFA-LD text from `reader`; `path` names the trace and appears in errors.
pub fn parse_adfa(reader: impl BufRead, path: &Path) -> Result<Trace> {
    let mut lines = LineReader::new(reader, path);
    let mut events = Vec::new();
    while let Some((number, line)) = lines.next_line()? {
        if let Err(reason) = parse_line(line, &mut events) {
            return Err(lines.error(number, reason));
        }
    }
    Ok(Trace {
        source: path.display().to_string(),
        events,
    })
}

/// Appends the syscalls of one line to `out`.
pub(crate) fn parse_line(line: &[u8], out: &mut Vec<Sym>) -> std::result::Result<(), LineError> {
    for token in tokens(line) {
        let nr = parse_u32(token).ok_or_else(|| not_a_number("syscall number", token))?;
        let sym = ADFA_ARCH.sym(nr).ok_or(LineError::UnknownNumber {
            arch: ADFA_ARCH,
            nr,
        })?;
        out.push(sym);
    }
    Ok(())
}

/// The attack family of an attack folder: its name without a trailing `_<digits>`.
/// An attack family from a folder or file name: the name without a trailing `_<digits>` run
/// number (`Hydra_FTP_3` -> `Hydra_FTP`).
pub fn family_of(folder: &str) -> &str {
    match folder.rsplit_once('_') {
        Some((family, run))
            if !family.is_empty() && !run.is_empty() && run.bytes().all(|b| b.is_ascii_digit()) =>
        {
            family
        }
        _ => folder,
    }
}

/// `dir/name`, which must be a directory.
fn required(dir: &Path, name: &'static str) -> Result<PathBuf> {
    let path = dir.join(name);
    if path.is_dir() {
        Ok(path)
    } else if !dir.is_dir() {
        let source = std::fs::metadata(dir)
            .err()
            .unwrap_or_else(|| std::io::Error::other("not a directory"));
        Err(io_error(dir, source))
    } else {
        Err(TraceError::MissingDir {
            path: dir.to_path_buf(),
            missing: name,
        })
    }
}

/// Reads every `.txt` trace of `dir`, sorted by file name.
fn read_folder(dir: &Path) -> Result<Vec<Trace>> {
    sorted_entries(dir, Kind::Txt)?
        .iter()
        .map(|path| read_adfa_file(path))
        .collect()
}

/// What [`sorted_entries`] lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Subdirectories.
    Dir,
    /// Files (or symlinks to files) named `*.txt`.
    Txt,
}

/// The entries of `dir` of one kind, sorted byte-wise by file name.
fn sorted_entries(dir: &Path, kind: Kind) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| io_error(dir, source))?;
    for entry in entries {
        let entry = entry.map_err(|source| io_error(dir, source))?;
        let path = entry.path();
        let keep = match kind {
            Kind::Dir => path.is_dir(),
            Kind::Txt => path.extension() == Some(OsStr::new("txt")) && path.is_file(),
        };
        if keep {
            out.push(path);
        }
    }
    out.sort_by(|a, b| file_name_bytes(a).cmp(&file_name_bytes(b)));
    Ok(out)
}

fn file_name_bytes(path: &Path) -> Option<&[u8]> {
    path.file_name().map(OsStr::as_encoded_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn families_drop_the_run_number() {
        assert_eq!(family_of("Hydra_FTP_10"), "Hydra_FTP");
        assert_eq!(family_of("Adduser_1"), "Adduser");
        assert_eq!(family_of("Meterpreter"), "Meterpreter");
        assert_eq!(family_of("Web_Shell_x"), "Web_Shell_x");
        assert_eq!(family_of("_3"), "_3");
        assert_eq!(family_of("x_"), "x_");
    }

    #[test]
    fn parses_a_line_leniently() {
        let mut out = Vec::new();
        parse_line(b"3 5 192\t\t 195 ", &mut out).expect("valid");
        let names: Vec<_> = out
            .iter()
            .filter_map(|&s| crate::syscalls::name_of(s))
            .collect();
        assert_eq!(names, ["read", "open", "mmap2", "stat64"]);
        assert_eq!(
            parse_line(b"3 x", &mut out),
            Err(LineError::NotANumber {
                field: "syscall number",
                token: "x".into()
            })
        );
        assert_eq!(
            parse_line(b"222", &mut out),
            Err(LineError::UnknownNumber {
                arch: Arch::I386,
                nr: 222
            })
        );
    }

    proptest! {
        #[test]
        fn line_parser_never_panics(line in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut out = Vec::new();
            let _ = parse_line(&line, &mut out);
        }

        #[test]
        fn line_parser_never_panics_on_text(line in "[0-9 \\t\\-+xa]{0,80}") {
            let mut out = Vec::new();
            if parse_line(line.as_bytes(), &mut out).is_ok() {
                prop_assert_eq!(out.len(), line.split_ascii_whitespace().count());
            }
        }
    }
}
