//! UNM/MIT sequence data: `PID NR` per line, many processes interleaved in one file.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::lines::{excerpt, not_a_number, parse_u32, tokens, LineReader};
use super::{io_error, LineError, Result, Threads, Trace};
use crate::syscalls::{Arch, Sym};

/// Reads a UNM/MIT trace file whose syscall numbers are `arch`'s.
///
/// Each line is `PID NR` (any whitespace; blank lines are skipped). The result has one trace per
/// pid, in order of each pid's first line, named `"<path>:<pid>"`. A number `arch` does not have
/// is an error: UNM's older sets (sendmail, lpr) were recorded on SunOS and need their own table.
pub fn read_unm(path: &Path, arch: Arch) -> Result<Vec<Trace>> {
    let file = File::open(path).map_err(|source| io_error(path, source))?;
    parse_unm(BufReader::with_capacity(1 << 16, file), path, arch)
}

/// Parses UNM/MIT text from `reader`; `path` names the traces and appears in errors.
pub fn parse_unm(reader: impl BufRead, path: &Path, arch: Arch) -> Result<Vec<Trace>> {
    let mut lines = LineReader::new(reader, path);
    let mut threads = Threads::new(path);
    while let Some((number, line)) = lines.next_line()? {
        match parse_line(line, arch) {
            Ok(Some((pid, sym))) => threads.push(pid, sym),
            Ok(None) => {}
            Err(reason) => return Err(lines.error(number, reason)),
        }
    }
    Ok(threads.into_traces())
}

/// Parses one line: `None` for a blank line, else the pid and the syscall.
pub(crate) fn parse_line(
    line: &[u8],
    arch: Arch,
) -> std::result::Result<Option<(u32, Sym)>, LineError> {
    let mut fields = tokens(line);
    let Some(pid) = fields.next() else {
        return Ok(None);
    };
    let pid = parse_u32(pid).ok_or_else(|| not_a_number("pid", pid))?;
    let nr = fields.next().ok_or(LineError::Missing {
        field: "syscall number",
    })?;
    let nr = parse_u32(nr).ok_or_else(|| not_a_number("syscall number", nr))?;
    if let Some(extra) = fields.next() {
        return Err(LineError::Trailing {
            after: "syscall number",
            token: excerpt(extra),
        });
    }
    let sym = arch.sym(nr).ok_or(LineError::UnknownNumber { arch, nr })?;
    Ok(Some((pid, sym)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscalls::sym_of;
    use proptest::prelude::*;

    #[test]
    fn parses_lines() {
        assert_eq!(
            parse_line(b"  552\t 5 ", Arch::I386),
            Ok(Some((552, sym_of("open").expect("open"))))
        );
        assert_eq!(parse_line(b"   ", Arch::I386), Ok(None));
        assert_eq!(
            parse_line(b"552", Arch::I386),
            Err(LineError::Missing {
                field: "syscall number"
            })
        );
        assert_eq!(
            parse_line(b"552 5 7", Arch::I386),
            Err(LineError::Trailing {
                after: "syscall number",
                token: "7".into()
            })
        );
        assert_eq!(
            parse_line(b"p 5", Arch::I386),
            Err(LineError::NotANumber {
                field: "pid",
                token: "p".into()
            })
        );
        assert_eq!(
            parse_line(b"1 9999", Arch::X86_64),
            Err(LineError::UnknownNumber {
                arch: Arch::X86_64,
                nr: 9999
            })
        );
    }

    proptest! {
        #[test]
        fn line_parser_never_panics(line in proptest::collection::vec(any::<u8>(), 0..120)) {
            for arch in Arch::ALL {
                let _ = parse_line(&line, arch);
            }
        }

        #[test]
        fn line_parser_accepts_every_known_number(pid in any::<u32>(), nr in 0u32..500) {
            let line = format!("{pid} {nr}");
            for arch in Arch::ALL {
                match parse_line(line.as_bytes(), arch) {
                    Ok(Some((p, sym))) => {
                        prop_assert_eq!(p, pid);
                        prop_assert_eq!(arch.number(sym), Some(nr));
                    }
                    Ok(None) => prop_assert!(false, "blank"),
                    Err(e) => prop_assert_eq!(e, LineError::UnknownNumber { arch, nr }),
                }
            }
        }
    }
}
