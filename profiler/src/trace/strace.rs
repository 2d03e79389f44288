//! `strace -f` output, one trace per pid.
//!
//! Each line is an optional pid (`1234 ` as with `-o FILE`, or `[pid  1234] ` as on stderr),
//! optional timestamps (`-t`, `-tt`, `-ttt`, `-r`), an optional `[...]` (`-i` instruction
//! pointer, `-n` syscall number), then one of:
//!
//! - `name(args...) = ret`: a syscall, counted;
//! - `name(args... <unfinished ...>`: a syscall, counted at its start;
//! - `<... name resumed> ...) = ret`: the end of an unfinished call, not counted again;
//! - `--- SIGCHLD {...} ---` and `+++ exited with 0 +++`: skipped.
//!
//! strace's own messages (`strace: Process 1235 attached`, `[ Process PID=1 runs in 32 bit
//! mode. ]`), `-k` stack frames and a `<unfinished ...>` pushed onto its own line by such a
//! message are skipped too. On stderr, strace writes "Process N attached" in the middle of the
//! `clone` line that made N; the rest of that call then comes on the next line, and is skipped
//! like a resumed one. A timestamp of whole seconds (`--timestamps=unix,s`) is a number, told
//! from a pid by being larger than any pid can be.
//!
//! Lines without a pid belong to one process. With `-o FILE`, strace prefixes every line when it
//! traces more than one process; on stderr it writes `[pid N]` only while it traces more than
//! one. So an unprefixed line belongs to the first process (pid 0, or the number after the last
//! `.` of the file name when it has one: `strace -ff -o trace` writes `trace.<pid>`), which on
//! stderr keeps that key when it later appears as `[pid N]` (the pid no "Process N attached"
//! announced), or, once the first has exited, to the one process still traced.
//!
//! A syscall strace has no name for is printed by number (`syscall_0x1c4`, older versions
//! `syscall_452`): it is looked up in x86_64's table (strace's numbers are the traced
//! architecture's; [`parse_strace_in`] takes another). Names that are not syscalls of the
//! tables (`????`, a number no table has) are left out and counted in [`Skipped`].

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::Path;

use super::lines::{excerpt, is_digits, not_a_number, parse_u32, LineReader};
use super::{Format, LineError, Parsed, Result, Skipped, Threads, Trace};
use crate::syscalls::{sym_of_bytes, Arch, Sym};

/// The largest pid Linux gives (`PID_MAX_LIMIT`, 2^22): a larger number is not a pid.
const PID_MAX: u32 = 1 << 22;

/// How many lines after a call that a "Process N attached" message cut off its rest may come.
const CUT_OFF_LINES: u32 = 16;

/// Reads an `strace -f` output file: one trace per pid, named `"<path>:<pid>"`.
pub fn read_strace(path: &Path) -> Result<Vec<Trace>> {
    read_strace_with_skipped(path, Arch::X86_64).map(|parsed| parsed.traces)
}

/// [`read_strace`], also returning the calls left out; numbered calls are looked up in `arch`.
pub(crate) fn read_strace_with_skipped(path: &Path, arch: Arch) -> Result<Parsed> {
    super::read_file_with(path, "strace calls", |reader, path| {
        parse_strace_in(reader, path, arch)
    })
}

/// Parses `strace -f` output from `reader`; `path` names the traces and appears in errors.
pub fn parse_strace(reader: impl BufRead, path: &Path) -> Result<Parsed> {
    parse_strace_in(reader, path, Arch::X86_64)
}

/// [`parse_strace`], looking the calls strace printed by number up in `arch`'s table.
pub fn parse_strace_in(reader: impl BufRead, path: &Path, arch: Arch) -> Result<Parsed> {
    let mut lines = LineReader::new(reader, path);
    let mut threads = Threads::new(path);
    let mut skipped = Skipped::default();
    let mut processes = Processes::new(pid_of_file_name(path).unwrap_or(0));
    // Lines left in which the rest of a call that strace's message cut off may come.
    let mut cut_off = 0_u32;
    while let Some((number, line)) = lines.next_line()? {
        let attached = attached_in(line);
        let after_cut = std::mem::take(&mut cut_off).saturating_sub(1);
        match parse_line(line) {
            Ok(Line::Call { pid, name }) => {
                // The process of the call, before the child its message announces.
                let pid = processes.of(pid);
                if attached.is_some() {
                    cut_off = CUT_OFF_LINES;
                } else {
                    cut_off = after_cut;
                }
                match sym_of_call(name, arch) {
                    Some(sym) => threads.push(pid, sym),
                    None => skipped.add(name),
                }
            }
            Ok(Line::Exit { pid }) => {
                let pid = processes.of(pid);
                processes.exited(pid);
                cut_off = after_cut;
            }
            Ok(Line::Resumed | Line::Signal | Line::Blank) => cut_off = after_cut,
            // The rest of the call the message cut off.
            Err(_) if after_cut > 0 => {}
            Err(reason) => return Err(lines.error(number, reason)),
        }
        if let Some(pid) = attached {
            processes.attached(pid);
        }
    }
    Ok(Parsed {
        traces: threads.into_traces(),
        skipped,
    })
}

/// The pid in strace's "Process N attached" message, wherever it is in `line` (on stderr it
/// can cut the `clone` line that made N).
fn attached_in(line: &[u8]) -> Option<u32> {
    const MESSAGE: &[u8] = b"strace: Process ";
    let at = line.windows(MESSAGE.len()).position(|w| w == MESSAGE)?;
    let (pid, rest) = split_token(&line[at + MESSAGE.len()..]);
    rest.starts_with(b"attached")
        .then(|| parse_u32(pid))
        .flatten()
}

/// The symbol of a name strace printed: a syscall of the tables, or a number strace has no
/// name for (`syscall_0x1c4`, `syscall_452`) looked up in `arch`'s table.
fn sym_of_call(name: &[u8], arch: Arch) -> Option<Sym> {
    sym_of_bytes(name).or_else(|| {
        let number = name.strip_prefix(b"syscall_")?;
        let nr = match number.strip_prefix(b"0x") {
            Some(hex) => u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?,
            None => parse_u32(number)?,
        };
        arch.sym(nr)
    })
}

/// Which process each line belongs to (see the module documentation): the pid of a prefixed
/// line, except the first process's, which keeps its key; for an unprefixed line, the first
/// process, or the one process still traced once it has exited.
struct Processes {
    /// The key of the first process's trace.
    first: u32,
    /// Whether unprefixed lines were given to the first process (stderr output starts so).
    first_unprefixed: bool,
    /// The first process's pid, once a prefixed line showed it.
    first_pid: Option<u32>,
    /// Pids strace announced as attached (children, never the first).
    attached: BTreeSet<u32>,
    /// The processes traced and not exited, by key.
    alive: BTreeSet<u32>,
}

impl Processes {
    fn new(first: u32) -> Self {
        Self {
            first,
            first_unprefixed: false,
            first_pid: None,
            attached: BTreeSet::new(),
            alive: BTreeSet::from([first]),
        }
    }

    fn attached(&mut self, pid: u32) {
        self.attached.insert(pid);
        self.alive.insert(pid);
    }

    /// The key of a line with pid prefix `pid`.
    fn of(&mut self, pid: Option<u32>) -> u32 {
        match pid {
            Some(pid) if Some(pid) == self.first_pid => self.first,
            Some(pid) => {
                if self.first_unprefixed
                    && self.first_pid.is_none()
                    && !self.attached.contains(&pid)
                    && !self.alive.contains(&pid)
                {
                    // The first process, shown by its pid now that strace traces two (stderr).
                    self.first_pid = Some(pid);
                    return self.first;
                }
                self.alive.insert(pid);
                pid
            }
            None => {
                let first_alive = self.alive.contains(&self.first);
                match self.alive.first() {
                    Some(&only) if !first_alive && self.alive.len() == 1 => only,
                    _ => {
                        self.first_unprefixed |= first_alive;
                        self.first
                    }
                }
            }
        }
    }

    fn exited(&mut self, key: u32) {
        self.alive.remove(&key);
    }
}

/// The pid in a `strace -ff` output file name (`trace.1234`).
fn pid_of_file_name(path: &Path) -> Option<u32> {
    let name = path.file_name()?.as_encoded_bytes();
    let dot = name.iter().rposition(|&b| b == b'.')?;
    parse_u32(&name[dot + 1..])
}

/// One parsed line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// Nothing to count: empty, a message of strace's own, a stack frame.
    Blank,
    /// The start of a syscall (finished or not).
    Call {
        /// The pid prefix, if the line has one.
        pid: Option<u32>,
        /// The name strace printed.
        name: &'a [u8],
    },
    /// `<... name resumed>`: the end of an unfinished call.
    Resumed,
    /// `--- SIGNAL ... ---`.
    Signal,
    /// `+++ exited with N +++` or `+++ killed by SIGNAL +++`.
    Exit {
        /// The pid prefix, if the line has one.
        pid: Option<u32>,
    },
}

/// Parses one line.
pub(crate) fn parse_line(line: &[u8]) -> std::result::Result<Line<'_>, LineError> {
    let unrecognized = || LineError::Unrecognized {
        format: Format::Strace,
        excerpt: excerpt(line),
    };
    let mut rest = line.trim_ascii();
    if rest.is_empty() || rest.starts_with(b"strace: ") || rest.starts_with(b"> ") {
        return Ok(Line::Blank);
    }
    let mut pid = None;
    if let Some(after) = rest.strip_prefix(b"[pid") {
        let end = after
            .iter()
            .position(|&b| b == b']')
            .ok_or_else(unrecognized)?;
        let digits = after[..end].trim_ascii();
        pid = Some(parse_u32(digits).ok_or_else(|| not_a_number("pid", digits))?);
        rest = after[end + 1..].trim_ascii_start();
    } else {
        let (first, after) = split_token(rest);
        if is_digits(first) {
            let number = parse_u32(first).ok_or_else(|| not_a_number("pid", first))?;
            // A number larger than any pid is a timestamp of whole seconds.
            if number <= PID_MAX {
                pid = Some(number);
                rest = after;
            }
        }
    }
    loop {
        let (first, after) = split_token(rest);
        // After the pid, a bare number can only be a timestamp (`--timestamps=unix,s`).
        let seconds = is_digits(first) && !after.is_empty();
        if !(is_timestamp(first) || seconds) {
            break;
        }
        rest = after;
    }
    if rest.starts_with(b"[ Process ") {
        return Ok(Line::Blank);
    }
    while let Some(after) = rest.strip_prefix(b"[") {
        let end = after
            .iter()
            .position(|&b| b == b']')
            .ok_or_else(unrecognized)?;
        rest = after[end + 1..].trim_ascii_start();
    }
    if rest.starts_with(b"<...") {
        return Ok(Line::Resumed);
    }
    if rest.starts_with(b"<unfinished") {
        return Ok(Line::Blank);
    }
    if rest.starts_with(b"---") {
        return Ok(Line::Signal);
    }
    if rest.starts_with(b"+++") {
        return Ok(Line::Exit { pid });
    }
    let name_len = rest
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b'?'))
        .unwrap_or(rest.len());
    let name = &rest[..name_len];
    let starts_well = name
        .first()
        .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_' || b == b'?');
    if starts_well && rest.get(name_len) == Some(&b'(') {
        Ok(Line::Call { pid, name })
    } else {
        Err(unrecognized())
    }
}

/// The first whitespace-separated token of `text` (which starts with no whitespace) and the
/// rest, with its leading whitespace removed.
fn split_token(text: &[u8]) -> (&[u8], &[u8]) {
    let end = text
        .iter()
        .position(u8::is_ascii_whitespace)
        .unwrap_or(text.len());
    (&text[..end], text[end..].trim_ascii_start())
}

/// Whether `token` is a `-t`/`-tt`/`-ttt`/`-r` timestamp: digits with `:` or `.`.
fn is_timestamp(token: &[u8]) -> bool {
    token.iter().any(u8::is_ascii_digit)
        && token.iter().any(|&b| b == b':' || b == b'.')
        && token
            .iter()
            .all(|&b| b.is_ascii_digit() || b == b':' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn call(pid: Option<u32>, name: &str) -> std::result::Result<Line<'_>, LineError> {
        Ok(Line::Call {
            pid,
            name: name.as_bytes(),
        })
    }

    #[test]
    fn parses_pid_prefixes() {
        assert_eq!(
            parse_line(b"1234  read(3, \"\", 4096) = 0"),
            call(Some(1234), "read")
        );
        assert_eq!(
            parse_line(b"[pid  1235] openat(AT_FDCWD, \"/etc\", O_RDONLY) = 3"),
            call(Some(1235), "openat")
        );
        assert_eq!(
            parse_line(b"execve(\"/bin/true\", [\"true\"], 0x7ffd /* 20 vars */) = 0"),
            call(None, "execve")
        );
    }

    #[test]
    fn parses_timestamps_and_brackets() {
        for line in [
            "1234 10:20:30 brk(NULL) = 0x55",
            "1234 10:20:30.123456 brk(NULL) = 0x55",
            "1234 1700000000.123456 brk(NULL) = 0x55",
            "1234      0.000123 brk(NULL) = 0x55",
            "[pid 1234] 10:20:30.123456 [00007f0c1a2b3c4d] brk(NULL) = 0x55",
            "1234 [ 12] brk(NULL) = 0x55 <0.000010>",
        ] {
            assert_eq!(
                parse_line(line.as_bytes()),
                call(Some(1234), "brk"),
                "{line}"
            );
        }
        assert_eq!(
            parse_line(b"   0.000000 brk(NULL) = 0x55"),
            call(None, "brk")
        );
    }

    #[test]
    fn recognizes_the_other_forms() {
        assert_eq!(
            parse_line(b"1234 wait4(-1,  <unfinished ...>"),
            call(Some(1234), "wait4")
        );
        assert_eq!(
            parse_line(b"1234 <... wait4 resumed>[{WIFEXITED(s)}], 0, NULL) = 1235"),
            Ok(Line::Resumed)
        );
        assert_eq!(
            parse_line(b"1234 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED} ---"),
            Ok(Line::Signal)
        );
        assert_eq!(
            parse_line(b"1235 +++ exited with 0 +++"),
            Ok(Line::Exit { pid: Some(1235) })
        );
        assert_eq!(
            parse_line(b"+++ killed by SIGKILL +++"),
            Ok(Line::Exit { pid: None })
        );
        assert_eq!(
            parse_line(b"strace: Process 1235 attached"),
            Ok(Line::Blank)
        );
        assert_eq!(
            parse_line(b"[ Process PID=1234 runs in 32 bit mode. ]"),
            Ok(Line::Blank)
        );
        assert_eq!(parse_line(b" <unfinished ...>"), Ok(Line::Blank));
        assert_eq!(
            parse_line(b" > /usr/lib/libc.so.6(read+0x12) [0x1]"),
            Ok(Line::Blank)
        );
        assert_eq!(parse_line(b""), Ok(Line::Blank));
        assert_eq!(
            parse_line(b"1 syscall_0x1c1(0, 0) = -1 ENOSYS"),
            call(Some(1), "syscall_0x1c1")
        );
        assert_eq!(
            parse_line(b"1 ????( <unfinished ...>"),
            call(Some(1), "????")
        );
    }

    #[test]
    fn rejects_what_fits_no_form() {
        for line in [
            "hello world",
            "1234",
            "[pid 12 read(",
            "1234 = 0",
            "1234 9read()",
            "read (3)",
        ] {
            assert!(
                matches!(
                    parse_line(line.as_bytes()),
                    Err(LineError::Unrecognized { .. })
                ),
                "{line}"
            );
        }
        assert_eq!(
            parse_line(b"[pid x] read()"),
            Err(LineError::NotANumber {
                field: "pid",
                token: "x".into()
            })
        );
        assert_eq!(
            parse_line(b"99999999999 read()"),
            Err(LineError::NotANumber {
                field: "pid",
                token: "99999999999".into()
            })
        );
    }

    #[test]
    fn numbered_calls_are_looked_up_in_the_architectures_table() {
        for (name, want) in [
            ("syscall_0x1c4", Some("fchmodat2")),
            ("syscall_452", Some("fchmodat2")),
            ("syscall_0x1c1", Some("futex_waitv")),
            ("syscall_0x3e7", None),
            ("syscall_0x", None),
            ("syscall_0xzz", None),
            ("????", None),
            ("read", Some("read")),
        ] {
            let got = sym_of_call(name.as_bytes(), Arch::X86_64).and_then(crate::syscalls::name_of);
            assert_eq!(got, want, "{name}");
        }
        // aarch64 numbers its calls otherwise: 63 is read there, uname on x86_64.
        let on = |arch| sym_of_call(b"syscall_63", arch).and_then(crate::syscalls::name_of);
        assert_eq!(on(Arch::Aarch64), Some("read"));
        assert_eq!(on(Arch::X86_64), Some("uname"));
    }

    #[test]
    fn file_names_give_the_pid_of_unprefixed_lines() {
        assert_eq!(pid_of_file_name(Path::new("/tmp/trace.1234")), Some(1234));
        assert_eq!(pid_of_file_name(Path::new("/tmp/trace.txt")), None);
        assert_eq!(pid_of_file_name(Path::new("/tmp/trace")), None);
    }

    proptest! {
        #[test]
        fn line_parser_never_panics(line in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_line(&line);
        }

        #[test]
        fn line_parser_never_panics_on_near_misses(
            line in "(\\[pid {0,3}[0-9x]{0,12}\\]? ?)?([0-9:.]{0,12} )?(\\[[0-9a-f ]{0,6}\\]? ?)?[a-z_?<.+\\-]{0,8}\\(?.{0,20}"
        ) {
            if let Ok(Line::Call { name, .. }) = parse_line(line.as_bytes()) {
                prop_assert!(!name.is_empty());
            }
        }
    }
}
