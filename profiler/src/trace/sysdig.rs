//! sysdig text as recorded by LID-DS (`.sc` files), one event per line:
//!
//! ```text
//! 1631078867467776775 33 2902774 apache2 2902774 read > fd=13(<f>/dev/urandom) size=512
//! timestamp_ns        |  pid     comm    tid     name dir args...
//!                     user id (LID-DS's loader; datasets/README.md calls it cpu)
//! ```
//!
//! A syscall counts once, at its enter (`>`) event; exit (`<`) events are ignored. There is one
//! trace per thread id. Enter events whose name is no syscall of the tables (sysdig's
//! `switch`, `procexit`, `signaldeliver`, ...) are left out and counted in [`Skipped`].

use std::io::BufRead;
use std::path::Path;

use super::lines::{excerpt, is_digits, not_a_number, parse_u32, tokens, LineReader};
use super::{LineError, Parsed, Result, Skipped, Threads, Trace};
use crate::syscalls::{sym_of_bytes, Sym};

/// The fields before the arguments, for "missing ..." errors.
const FIELDS: [&str; 7] = [
    "timestamp",
    "user id",
    "process id",
    "process name",
    "thread id",
    "event name",
    "direction",
];

/// How many tokens a line's head can take: 6 fields plus a process name of up to 15 bytes
/// (`comm`), which may contain spaces, plus the direction.
const HEAD: usize = 24;

/// Reads a sysdig `.sc` file: one trace per thread id, named `"<path>:<tid>"`.
pub fn read_sysdig(path: &Path) -> Result<Vec<Trace>> {
    read_sysdig_with_skipped(path).map(|parsed| parsed.traces)
}

/// [`read_sysdig`], also returning the events left out.
pub(crate) fn read_sysdig_with_skipped(path: &Path) -> Result<Parsed> {
    super::read_file_with(path, "sysdig events", parse_sysdig)
}

/// Parses sysdig text from `reader`; `path` names the traces and appears in errors.
pub fn parse_sysdig(reader: impl BufRead, path: &Path) -> Result<Parsed> {
    let mut lines = LineReader::new(reader, path);
    let mut threads = Threads::new(path);
    let mut skipped = Skipped::default();
    while let Some((number, line)) = lines.next_line()? {
        match parse_line(line) {
            Ok(Event::Enter { tid, name }) => match syscall_sym(name) {
                Some(sym) => threads.push(tid, sym),
                None => skipped.add(name),
            },
            Ok(Event::Exit | Event::Blank) => {}
            Err(reason) => return Err(lines.error(number, reason)),
        }
    }
    Ok(Parsed {
        traces: threads.into_traces(),
        skipped,
    })
}

/// One parsed line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    /// An empty line.
    Blank,
    /// An enter event: where a syscall is counted.
    Enter {
        /// The thread id.
        tid: u32,
        /// The event name as sysdig spells it.
        name: &'a [u8],
    },
    /// An exit event.
    Exit,
}

/// Parses one line.
pub(crate) fn parse_line(line: &[u8]) -> std::result::Result<Event<'_>, LineError> {
    let mut head: [&[u8]; HEAD] = [&[]; HEAD];
    let mut n = 0;
    for token in tokens(line).take(HEAD) {
        head[n] = token;
        n += 1;
    }
    if n == 0 {
        return Ok(Event::Blank);
    }
    for (i, field) in FIELDS.into_iter().enumerate().take(3) {
        if i >= n {
            return Err(LineError::Missing { field });
        }
        if !is_digits(head[i]) {
            return Err(not_a_number(field, head[i]));
        }
    }
    if n < FIELDS.len() {
        return Err(LineError::Missing { field: FIELDS[n] });
    }
    // The direction normally is the 7th token; a process name with spaces pushes it right.
    let direction_at = (6..n).find(|&d| is_direction(head[d]) && is_digits(head[d - 2]));
    let Some(d) = direction_at else {
        return Err(if is_digits(head[4]) {
            LineError::Direction {
                token: excerpt(head[6]),
            }
        } else {
            not_a_number("thread id", head[4])
        });
    };
    let tid = parse_u32(head[d - 2]).ok_or_else(|| not_a_number("thread id", head[d - 2]))?;
    if head[d] == b">" {
        Ok(Event::Enter {
            tid,
            name: head[d - 1],
        })
    } else {
        Ok(Event::Exit)
    }
}

fn is_direction(token: &[u8]) -> bool {
    token == b">" || token == b"<"
}

/// The symbol of a sysdig event name, mapping sysdig's own spellings to kernel names (only
/// names no table has: "umount", which sysdig uses for umount2(2) on some versions, is i386's
/// umount(2) in the tables and stays as it is).
pub(crate) fn syscall_sym(name: &[u8]) -> Option<Sym> {
    let kernel: &[u8] = match name {
        b"pread" => b"pread64",
        b"pwrite" => b"pwrite64",
        b"prlimit" => b"prlimit64",
        b"llseek" => b"_llseek",
        other => other,
    };
    sym_of_bytes(kernel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscalls::sym_of;
    use proptest::prelude::*;

    #[test]
    fn parses_enter_and_exit_events() {
        assert_eq!(
            parse_line(b"1631078867467776775 33 2902774 apache2 2902774 read > fd=13 size=512"),
            Ok(Event::Enter {
                tid: 2902774,
                name: b"read"
            })
        );
        assert_eq!(
            parse_line(b"1631078867467779939 33 2902774 apache2 2902774 read < res=512"),
            Ok(Event::Exit)
        );
        assert_eq!(
            parse_line(b"1 0 42 Web Content 43 futex > addr=7f"),
            Ok(Event::Enter {
                tid: 43,
                name: b"futex"
            })
        );
        assert_eq!(parse_line(b" \t"), Ok(Event::Blank));
    }

    #[test]
    fn reports_what_is_wrong() {
        assert_eq!(
            parse_line(b"1631078867467776775 33 2902774 apache2 29027"),
            Err(LineError::Missing {
                field: "event name"
            })
        );
        assert_eq!(
            parse_line(b"163107886746777"),
            Err(LineError::Missing { field: "user id" })
        );
        assert_eq!(
            parse_line(b"x 33 1 a 1 read >"),
            Err(LineError::NotANumber {
                field: "timestamp",
                token: "x".into()
            })
        );
        assert_eq!(
            parse_line(b"1 33 1 apache2 1 read ?"),
            Err(LineError::Direction { token: "?".into() })
        );
        assert_eq!(
            parse_line(b"1 33 1 apache2 t read >"),
            Err(LineError::NotANumber {
                field: "thread id",
                token: "t".into()
            })
        );
        assert_eq!(
            parse_line(b"1 33 1 apache2 99999999999 read >"),
            Err(LineError::NotANumber {
                field: "thread id",
                token: "99999999999".into()
            })
        );
    }

    #[test]
    fn maps_sysdig_spellings() {
        assert_eq!(syscall_sym(b"pread"), sym_of("pread64"));
        assert_eq!(syscall_sym(b"read"), sym_of("read"));
        assert_eq!(syscall_sym(b"prlimit"), sym_of("prlimit64"));
        for pseudo in [
            "switch",
            "procexit",
            "signaldeliver",
            "page_fault",
            "container",
        ] {
            assert_eq!(syscall_sym(pseudo.as_bytes()), None, "{pseudo}");
        }
    }

    proptest! {
        #[test]
        fn line_parser_never_panics(line in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_line(&line);
        }

        #[test]
        fn line_parser_never_panics_on_near_misses(
            line in "[0-9]{1,20}( [0-9a-z<>]{0,12}){0,30}"
        ) {
            if let Ok(Event::Enter { name, .. }) = parse_line(line.as_bytes()) {
                prop_assert!(!name.is_empty());
            }
        }
    }
}
