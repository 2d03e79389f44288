//! Where a process's stdio goes, as containerd names it in Create and Exec: FIFO paths (plain,
//! or as `fifo://` URIs), or a `file://` URI (`ctr run --log-uri file:///...`, the Go
//! client's `cio.LogFile`) naming a file that gets both output streams, appended.
//!
//! For a file, the process writes into pipes and the shim copies them into the file, as
//! containerd's runc shim does: the container never holds a descriptor of a host file, which
//! a root process could reopen, truncate or chmod through `/proc/self/fd`. A file log takes no
//! stdin. `binary://` (a logging binary, nerdctl's default) is refused as not supported, any
//! other scheme as invalid; both fail Create or Exec before runc runs.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use runc::io::{IoOption, PipedIo};
use runc::Io;
use tokio::sync::oneshot;
use tracing::warn;

use crate::error::{Result, ShimError};

/// What a stdout string names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// FIFOs, at the paths the strings give ([`fifo_path`] takes off a `fifo://`).
    Fifo,
    /// A file that gets stdout and stderr.
    File(PathBuf),
}

/// Reads a Create or Exec request's stdout (containerd decides the scheme by stdout alone).
pub fn target(stdout: &str) -> Result<Target> {
    let Some((scheme, rest)) = split_scheme(stdout) else {
        return Ok(Target::Fifo);
    };
    let invalid = |reason| ShimError::StdioUri {
        uri: stdout.to_owned(),
        reason,
    };
    match scheme {
        "fifo" => Ok(Target::Fifo),
        "file" => {
            let Some(path) = rest.strip_prefix('/') else {
                return Err(invalid("a file:// URI needs an absolute path and no host"));
            };
            let path = percent_decode(path).ok_or_else(|| invalid("bad %-escape"))?;
            if path.is_empty() || path.ends_with('/') || path.contains('\0') {
                return Err(invalid("a file:// URI must name a file"));
            }
            Ok(Target::File(Path::new("/").join(path)))
        }
        "binary" => Err(ShimError::Unimplemented {
            what: "a binary:// log URI (a logging binary); file:// and FIFOs are",
        }),
        _ => Err(invalid("the scheme is none of fifo, file and binary")),
    }
}

/// A FIFO path without its `fifo://` scheme, if it has one.
pub fn fifo_path(s: &str) -> &str {
    match split_scheme(s) {
        Some(("fifo", rest)) => rest,
        _ => s,
    }
}

/// `(scheme, rest)` of `scheme://rest`, when the part before `://` is a URI scheme (a letter,
/// then letters, digits, `+`, `-` or `.`); a path that merely contains `://` has none.
fn split_scheme(s: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = s.split_once("://")?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some((scheme, rest))
}

/// Undoes `%XX` escapes (Go's `url.URL` writes them for spaces and the like); `None` for a
/// broken escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A file log being set up for one process: the pipes runc gives it and the open file.
#[derive(Debug)]
pub struct FileLog {
    pipes: Arc<PipedIo>,
    file: std::fs::File,
    path: PathBuf,
}

impl FileLog {
    /// Creates `path`'s directory (0755) and the file (0644, appended to), and the pipes.
    /// `stdin` is the request's: a file log takes none.
    pub fn open(path: &Path, stdin: &str) -> Result<Self> {
        if !stdin.is_empty() {
            return Err(ShimError::Unimplemented {
                what: "stdin together with a file:// log",
            });
        }
        let failed = |op| {
            let path = path.to_owned();
            move |source| ShimError::Io { op, path, source }
        };
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(failed("create the directory of"))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(failed("open the log file"))?;
        let options = IoOption {
            open_stdin: false,
            open_stdout: true,
            open_stderr: true,
        };
        let pipes = PipedIo::new(0, 0, &options).map_err(failed("make the pipes for"))?;
        Ok(Self {
            pipes: Arc::new(pipes),
            file,
            path: path.to_owned(),
        })
    }

    /// The io runc gives the process.
    pub fn io(&self) -> Arc<dyn Io> {
        Arc::clone(&self.pipes) as Arc<dyn Io>
    }

    /// Starts appending the process's stdout and stderr to the file, once runc has given the
    /// process its ends of the pipes. The receiver fires when both reached EOF: every holder
    /// of them (the process, and whatever it started that kept them) is gone.
    pub fn start(self) -> oneshot::Receiver<()> {
        let (drained, done) = oneshot::channel();
        let streams = [self.pipes.stdout(), self.pipes.stderr()];
        let mut copies = Vec::new();
        for mut stream in streams.into_iter().flatten() {
            let file = self.file.try_clone();
            let path = self.path.clone();
            copies.push(tokio::spawn(async move {
                let failed = match file {
                    Ok(file) => tokio::io::copy(&mut stream, &mut tokio::fs::File::from_std(file))
                        .await
                        .err(),
                    Err(e) => Some(e),
                };
                if let Some(e) = failed {
                    // The process must not block on a full pipe: drain what is left.
                    warn!(path = %path.display(), error = %e, "writing the log file failed; the rest of the output is dropped");
                    let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
                }
            }));
        }
        tokio::spawn(async move {
            for copy in copies {
                let _ = copy.await;
            }
            let _ = drained.send(());
        });
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim::protos::ttrpc;

    #[test]
    fn fifo_paths_and_fifo_uris_are_fifos() {
        for s in [
            "/run/containerd/fifo/1/a-stdout",
            "fifo:///run/x",
            "",
            "/tmp/a://b",
        ] {
            assert_eq!(target(s).unwrap(), Target::Fifo, "{s}");
        }
        assert_eq!(fifo_path("fifo:///run/x"), "/run/x");
        assert_eq!(fifo_path("/tmp/a://b"), "/tmp/a://b");
    }

    #[test]
    fn a_file_uri_names_its_path_with_escapes_undone() {
        assert_eq!(
            target("file:///var/log/ctr/a%20b.log").unwrap(),
            Target::File(PathBuf::from("/var/log/ctr/a b.log"))
        );
    }

    #[test]
    fn bad_uris_are_clear_errors() {
        for (uri, says) in [
            ("file://host/x.log", "absolute path and no host"),
            ("file:///", "must name a file"),
            ("file:///var/log/", "must name a file"),
            ("file:///a%2", "bad %-escape"),
            ("file:///a%00b", "must name a file"),
            ("http://example/x", "none of fifo, file and binary"),
        ] {
            let e = target(uri).unwrap_err();
            assert_eq!(e.code(), ttrpc::Code::INVALID_ARGUMENT, "{uri}");
            assert!(e.to_string().contains(says), "{uri}: {e}");
        }
        let e = target("binary:///usr/bin/logger?x=1").unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::UNIMPLEMENTED);
        assert!(e.to_string().contains("binary://"), "{e}");
    }

    #[test]
    fn a_file_log_refuses_stdin_and_reports_an_unusable_path() {
        let dir = tempfile::tempdir().unwrap();
        let e = FileLog::open(&dir.path().join("x.log"), "/run/in").unwrap_err();
        assert_eq!(e.code(), ttrpc::Code::UNIMPLEMENTED);
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let e = FileLog::open(&blocker.join("x.log"), "").unwrap_err();
        assert!(e.to_string().contains("directory"), "{e}");
    }

    #[tokio::test]
    async fn both_streams_are_appended_and_the_end_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/c.log");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "before\n").unwrap();
        let log = FileLog::open(&path, "").unwrap();
        let mut command = tokio::process::Command::new("sh");
        command.args(["-c", "echo out; echo err >&2"]);
        let io = log.io();
        io.set(&mut command).await.unwrap();
        let mut child = command.spawn().unwrap();
        // As runc's caller does: the command's copies of the write ends go with it.
        drop(command);
        io.close_after_start().await;
        let drained = log.start();
        assert!(child.wait().await.unwrap().success());
        tokio::time::timeout(std::time::Duration::from_secs(10), drained)
            .await
            .expect("the copies end at EOF")
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("before\n"), "{text:?}");
        let mut lines: Vec<&str> = text.lines().skip(1).collect();
        lines.sort_unstable();
        assert_eq!(lines, ["err", "out"]);
    }
}
