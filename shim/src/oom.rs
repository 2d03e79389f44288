//! OOM events: containerd's TaskOOM when the kernel's OOM killer acts in a container's memory
//! cgroup, which is how the CRI plugin tells the kubelet a container was `OOMKilled`.
//!
//! - cgroup v1: an eventfd registered on `memory.oom_control` through `cgroup.event_control`;
//!   the kernel signals it on every OOM in the group, and once more when the group is removed.
//! - cgroup v2: inotify on `memory.events`; an event whenever its `oom_kill` count grows. The
//!   watch ends when the file goes with the group.
//!
//! The watch starts at Create (runc has made the group by then) and is a task on the shim's
//! runtime, not a thread; Delete aborts it.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use cgroups_rs::fs::memory::MemController;
use cgroups_rs::fs::{Cgroup, Controller};
use containerd_shim::protos::events::task::TaskOOM;
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::error::{chain, Result, ShimError};
use crate::task::{publish, Event};

/// What tells the shim a group ran out of memory; made by [`open`], watched by [`watch`].
#[derive(Debug)]
pub enum OomSource {
    /// cgroup v1: the registered eventfd, and the group's directory (gone once removed).
    V1 {
        /// Signalled on an OOM and on the group's removal.
        eventfd: EventFd,
        /// The memory cgroup's directory.
        dir: PathBuf,
    },
    /// cgroup v2: inotify on `memory.events`, and its `oom_kill` count when the watch began.
    V2 {
        /// Watches `memory.events`.
        inotify: Fd<Inotify>,
        /// The `memory.events` file.
        events: PathBuf,
        /// The `oom_kill` count already reported.
        seen: u64,
    },
}

/// A nix descriptor type that tokio can poll.
#[derive(Debug)]
pub struct Fd<T>(T);

impl<T: AsFd> AsRawFd for Fd<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl<T> From<Fd<T>> for OwnedFd
where
    OwnedFd: From<T>,
{
    fn from(fd: Fd<T>) -> Self {
        Self::from(fd.0)
    }
}

/// Prepares the OOM watch of `cgroup`'s memory controller (blocking file I/O).
pub fn open(cgroup: &Cgroup) -> Result<OomSource> {
    let memory: &MemController = cgroup.controller_of().ok_or(ShimError::InvalidRequest {
        reason: "the container's cgroup has no memory controller",
    })?;
    let dir = memory.path().to_owned();
    if cgroup.v2() {
        open_v2(&dir)
    } else {
        open_v1(&dir)
    }
}

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ShimError + 'a {
    move |source| ShimError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

fn open_v1(dir: &Path) -> Result<OomSource> {
    let control_path = dir.join("memory.oom_control");
    let control = File::open(&control_path).map_err(io_error("open", &control_path))?;
    let eventfd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
        .map_err(|e| io_error("create an eventfd for", &control_path)(e.into()))?;
    // The kernel keeps the eventfd; the control file is only named by its descriptor here.
    let registration = format!("{} {}", eventfd.as_raw_fd(), control.as_raw_fd());
    let event_control = dir.join("cgroup.event_control");
    std::fs::write(&event_control, registration).map_err(io_error("write", &event_control))?;
    Ok(OomSource::V1 {
        eventfd,
        dir: dir.to_owned(),
    })
}

fn open_v2(dir: &Path) -> Result<OomSource> {
    let events = dir.join("memory.events");
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)
        .map_err(|e| io_error("watch", &events)(e.into()))?;
    inotify
        .add_watch(&events, AddWatchFlags::IN_MODIFY)
        .map_err(|e| io_error("watch", &events)(e.into()))?;
    let text = std::fs::read_to_string(&events).map_err(io_error("read", &events))?;
    Ok(OomSource::V2 {
        inotify: Fd(inotify),
        events,
        seen: oom_kills(&text),
    })
}

/// The `oom_kill` count of a cgroup v2 `memory.events` file (0 when absent).
fn oom_kills(memory_events: &str) -> u64 {
    memory_events
        .lines()
        .find_map(|line| line.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Publishes TaskOOM for container `id` on every OOM `source` reports, until its group is
/// removed or the task is aborted. Must be called on the runtime.
pub fn watch(
    source: OomSource,
    id: String,
    events: mpsc::UnboundedSender<Event>,
) -> Result<JoinHandle<()>> {
    let registration = |source| ShimError::Io {
        op: "poll the OOM notification of",
        path: PathBuf::from(&id),
        source,
    };
    Ok(match source {
        OomSource::V1 { eventfd, dir } => {
            let fd = crate::sys::async_fd(eventfd).map_err(registration)?;
            tokio::spawn(watch_v1(fd, dir, id, events))
        }
        OomSource::V2 {
            inotify,
            events: file,
            seen,
        } => {
            let fd = crate::sys::async_fd(inotify).map_err(registration)?;
            tokio::spawn(watch_v2(fd, file, seen, id, events))
        }
    })
}

async fn watch_v1(
    fd: AsyncFd<EventFd>,
    dir: PathBuf,
    id: String,
    events: mpsc::UnboundedSender<Event>,
) {
    loop {
        let Ok(mut ready) = fd.readable().await else {
            return;
        };
        match ready.try_io(|fd| fd.get_ref().read().map_err(std::io::Error::from)) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                warn!(container = %id, error = chain(&e), "the OOM notification failed; no more OOM events");
                return;
            }
            Err(_would_block) => continue,
        }
        // The same signal says the group was removed.
        if !dir.join("memory.oom_control").exists() {
            return;
        }
        report(&id, &events).await;
    }
}

async fn watch_v2(
    fd: AsyncFd<Fd<Inotify>>,
    file: PathBuf,
    mut seen: u64,
    id: String,
    events: mpsc::UnboundedSender<Event>,
) {
    loop {
        let Ok(mut ready) = fd.readable().await else {
            return;
        };
        let read = ready.try_io(|fd| fd.get_ref().0.read_events().map_err(std::io::Error::from));
        let gone = match read {
            Ok(Ok(notes)) => notes
                .iter()
                .any(|n| n.mask.contains(AddWatchFlags::IN_IGNORED)),
            Ok(Err(e)) => {
                warn!(container = %id, error = chain(&e), "the OOM watch failed; no more OOM events");
                return;
            }
            Err(_would_block) => continue,
        };
        let Ok(text) = tokio::fs::read_to_string(&file).await else {
            return;
        };
        let kills = oom_kills(&text);
        if kills > seen {
            seen = kills;
            report(&id, &events).await;
        }
        if gone {
            return;
        }
    }
}

async fn report(id: &str, events: &mpsc::UnboundedSender<Event>) {
    info!(container = %id, "the container ran out of memory");
    publish(
        events,
        TaskOOM {
            container_id: id.to_owned(),
            ..Default::default()
        },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oom_kills_are_counted_from_memory_events() {
        let text = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(oom_kills(text), 2);
        assert_eq!(oom_kills("low 0\n"), 0);
        assert_eq!(oom_kills("oom_kill x\n"), 0);
    }

    #[tokio::test]
    async fn a_v1_signal_after_the_group_is_gone_ends_the_watch_quietly() {
        let dir = tempfile::tempdir().unwrap();
        let eventfd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).unwrap();
        eventfd.write(1).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let source = OomSource::V1 {
            eventfd,
            dir: dir.path().join("gone"),
        };
        watch(source, "c".into(), tx).unwrap().await.unwrap();
        assert!(rx.recv().await.is_none(), "no TaskOOM for a removed group");
    }

    #[tokio::test]
    async fn a_v1_signal_while_the_group_exists_is_a_task_oom() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.oom_control"), "under_oom 1\n").unwrap();
        let eventfd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).unwrap();
        eventfd.write(1).unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let source = OomSource::V1 {
            eventfd,
            dir: dir.path().to_owned(),
        };
        let task = watch(source, "c1".into(), tx).unwrap();
        let (topic, _) = rx.recv().await.unwrap();
        assert_eq!(topic, "/tasks/oom");
        task.abort();
    }

    #[tokio::test]
    async fn a_v2_watch_reports_a_grown_oom_kill_count() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("memory.events");
        std::fs::write(&file, "oom 0\noom_kill 0\n").unwrap();
        let OomSource::V2 {
            inotify,
            events,
            seen,
        } = open_v2(dir.path()).unwrap()
        else {
            panic!("not a v2 source");
        };
        assert_eq!(seen, 0);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = watch(
            OomSource::V2 {
                inotify,
                events,
                seen,
            },
            "c2".into(),
            tx,
        )
        .unwrap();
        // A modification that does not grow oom_kill is not an OOM.
        std::fs::write(&file, "oom 1\noom_kill 0\n").unwrap();
        std::fs::write(&file, "oom 1\noom_kill 1\n").unwrap();
        let (topic, _) = rx.recv().await.unwrap();
        assert_eq!(topic, "/tasks/oom");
        std::fs::remove_file(&file).unwrap();
        task.await.unwrap();
        assert!(rx.recv().await.is_none(), "one OOM, one event");
    }
}
