//! Byte-level line reading and token parsing shared by the readers (no allocation per token).

use std::io::{BufRead, Read};
use std::path::Path;

use super::{io_error, LineError, Result, TraceError};

/// The longest line a reader accepts. sysdig lines carry argument buffers and strace lines long
/// strings, but nothing legitimate comes near this.
pub(crate) const MAX_LINE: usize = 16 << 20;

/// Reads `\n`-terminated lines (a final `\r` is dropped) into one reused buffer, counting them.
#[derive(Debug)]
pub(crate) struct LineReader<'p, R> {
    inner: R,
    path: &'p Path,
    buf: Vec<u8>,
    line: u64,
}

impl<'p, R: BufRead> LineReader<'p, R> {
    /// Reads `inner`, naming `path` in errors.
    pub(crate) fn new(inner: R, path: &'p Path) -> Self {
        LineReader {
            inner,
            path,
            buf: Vec::new(),
            line: 0,
        }
    }

    /// The next line and its 1-based number, or `None` at the end of the input.
    pub(crate) fn next_line(&mut self) -> Result<Option<(u64, &[u8])>> {
        self.buf.clear();
        let limit = u64::try_from(MAX_LINE)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let n = (&mut self.inner)
            .take(limit)
            .read_until(b'\n', &mut self.buf)
            .map_err(|source| io_error(self.path, source))?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        let mut end = self.buf.len();
        if self.buf.last() == Some(&b'\n') {
            end -= 1;
        } else if end > MAX_LINE {
            return Err(self.error(self.line, LineError::TooLong { limit: MAX_LINE }));
        }
        if end > 0 && self.buf[end - 1] == b'\r' {
            end -= 1;
        }
        Ok(Some((self.line, &self.buf[..end])))
    }

    /// A [`TraceError::Parse`] at `line` of this file.
    pub(crate) fn error(&self, line: u64, reason: LineError) -> TraceError {
        TraceError::Parse {
            path: self.path.to_path_buf(),
            line,
            reason,
        }
    }
}

/// The whitespace-separated tokens of `line`.
pub(crate) fn tokens(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|b| b.is_ascii_whitespace())
        .filter(|t| !t.is_empty())
}

/// Parses a decimal `u32` (digits only, no sign); `None` if it is not one or overflows.
pub(crate) fn parse_u32(token: &[u8]) -> Option<u32> {
    if token.is_empty() {
        return None;
    }
    let mut value: u32 = 0;
    for &b in token {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
    }
    Some(value)
}

/// Whether `token` is non-empty and all decimal digits.
pub(crate) fn is_digits(token: &[u8]) -> bool {
    !token.is_empty() && token.iter().all(u8::is_ascii_digit)
}

/// `bytes` as text for an error message, cut to a few dozen characters.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    const MAX: usize = 60;
    if bytes.len() <= MAX {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut text = String::from_utf8_lossy(&bytes[..MAX]).into_owned();
    text.push_str("...");
    text
}

/// A [`LineError::NotANumber`] for `token`.
pub(crate) fn not_a_number(field: &'static str, token: &[u8]) -> LineError {
    LineError::NotANumber {
        field,
        token: excerpt(token),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numbers_strictly() {
        assert_eq!(parse_u32(b"0"), Some(0));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b""), None);
        assert_eq!(parse_u32(b"-1"), None);
        assert_eq!(parse_u32(b"+1"), None);
        assert_eq!(parse_u32(b"1a"), None);
    }

    #[test]
    fn reads_lines_with_numbers_and_endings() {
        let input: &[u8] = b"a\r\n\nb";
        let path = Path::new("x");
        let mut lines = LineReader::new(input, path);
        let mut got = Vec::new();
        while let Some((n, line)) = lines.next_line().expect("in memory") {
            got.push((n, line.to_vec()));
        }
        assert_eq!(
            got,
            vec![(1, b"a".to_vec()), (2, b"".to_vec()), (3, b"b".to_vec())]
        );
    }

    #[test]
    fn refuses_endless_lines() {
        let endless = std::io::BufReader::new(std::io::repeat(b'7').take(MAX_LINE as u64 + 10));
        let path = Path::new("endless");
        let mut lines = LineReader::new(endless, path);
        match lines.next_line() {
            Err(TraceError::Parse {
                line: 1, reason, ..
            }) => {
                assert_eq!(reason, LineError::TooLong { limit: MAX_LINE });
            }
            other => panic!(
                "expected TooLong, got {:?}",
                other.map(|l| l.map(|(n, _)| n))
            ),
        }
    }

    #[test]
    fn cuts_excerpts() {
        assert_eq!(excerpt(b"abc"), "abc");
        assert_eq!(excerpt(&[b'x'; 100]).len(), 63);
        assert_eq!(excerpt(b"\xff"), "\u{fffd}");
    }
}
