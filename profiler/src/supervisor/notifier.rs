//! The [`Notifier`] seam over a seccomp listener, and its kernel implementation.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use std::sync::atomic::Ordering;

use super::hangup::Watcher;
use super::Result;
use crate::sys::{notify, pidfd};

/// One notification: which thread made which syscall.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Notification {
    /// The cookie the answer must carry.
    pub id: u64,
    /// The thread id in the supervisor's pid namespace (0 if not visible there).
    pub tid: u32,
    /// The syscall number of `arch`.
    pub nr: i32,
    /// The `AUDIT_ARCH_*` value of the call.
    pub arch: u32,
    /// The raw arguments. Only scalars may inform a decision: pointed-to memory is the
    /// container's and can change under us.
    pub args: [u64; 6],
    /// The address of the syscall instruction.
    pub ip: u64,
}

/// What a receive produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// A syscall is held and waits for an answer.
    Event(Notification),
    /// A notification went away before it was taken (its thread was killed or interrupted).
    Gone,
    /// No task uses the filter any more (the container's processes have all exited).
    Closed,
}

/// The answer to a held syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Run the syscall as if it had not been traced.
    Continue,
    /// Fail it with this errno without running it.
    Errno(i32),
}

/// Whether an answer reached its thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The thread got the answer.
    Done,
    /// The thread was gone (killed, or interrupted by a signal and restarting the syscall).
    Gone,
}

/// The kernel operations the supervisor loop needs (a fake implements this in tests).
pub trait Notifier {
    /// Waits for the next notification (or the end).
    fn recv(&mut self) -> Result<Received>;
    /// Answers notification `id`.
    fn send(&mut self, id: u64, answer: Answer) -> Result<Delivery>;
    /// Whether notification `id` is still pending.
    fn id_valid(&mut self, id: u64) -> bool;
    /// SIGKILLs the process of thread `tid` that made notification `id`; `Ok(false)` when it
    /// is already gone (or `tid` now names another process).
    fn kill_process(&mut self, tid: u32, id: u64) -> Result<bool>;
    /// Whether thread `tid` still exists (for reclaiming per-thread state).
    fn thread_alive(&mut self, tid: u32) -> bool;
}

/// How the supervisor waits for notifications.
///
/// Where the supervisor runs relative to the traced thread decides the cost of a round trip.
/// Measured with `scripts/bench-notify.sh` on the 2-vCPU VM this was written on (kernel 6.18,
/// getppid in a loop, ns per call, medians of runs of 20,000):
///
/// | placement                                         | ns/call |
/// |---------------------------------------------------|--------:|
/// | untraced                                          |     208 |
/// | RECV blocked on the semaphore, no SYNC_WAKE_UP     |  43,000 |
/// | RECV blocked, SYNC_WAKE_UP (the floor)             |   4,780 |
/// | poll + RECV, SYNC_WAKE_UP                          |   5,450 |
/// | poll + RECV, no SYNC_WAKE_UP (varies run to run)   | 5,500 or 43,000 |
/// | supervisor (learn / detect), poll, SYNC_WAKE_UP    | 5,450-5,850 / 5,480-5,600 |
/// | supervisor pinned to the other vCPU                |  50,000 |
/// | supervisor spinning 2000 polls before blocking     |   6,650 |
///
/// A round trip costs ~5 us when the supervisor and the traced thread share a CPU and ~45 us
/// when each answer must wake the other vCPU (an IPI and an idle exit under the hypervisor).
/// So the supervisor follows the traced thread instead of being pinned: it blocks in `poll`,
/// and with `SYNC_WAKE_UP` the kernel wakes a poll waiter on the notifying thread's CPU
/// (`wake_up_poll_on_current_cpu`) and the answered thread on the supervisor's CPU
/// (`complete_on_current_cpu`). Without the flag the scheduler decides, and the same benchmark
/// lands at 5.5 us in one run and 43 us in the next. The pair ping-pongs on one CPU
/// whichever CPUs the container uses. A blocked RECV waits on the same wait queue, woken the
/// same way. RECV never returns once the filter has no users left, so by default the supervisor
/// blocks in RECV itself and a hang-up watcher thread (`hangup.rs`) interrupts it then; the
/// alternative, `poll` before every RECV, costs ~0.7 us a notification. Pinning cannot follow
/// a container's threads, and spinning only steals the CPU the traced thread needs on a small
/// node, so both are off by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    /// Ask for `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (ignored where the kernel lacks it).
    pub sync_wake_up: bool,
    /// Block in RECV with a hang-up watcher thread (`true`), or `poll` before every RECV.
    pub block_in_recv: bool,
    /// With `poll`: non-blocking polls to try before blocking (0: block at once).
    pub spin_polls: u32,
}

impl Default for Wait {
    fn default() -> Self {
        Self {
            sync_wake_up: true,
            block_in_recv: true,
            spin_polls: 0,
        }
    }
}

/// A [`Notifier`] over a real seccomp listener fd.
#[derive(Debug)]
pub struct KernelNotifier {
    fd: OwnedFd,
    spin_polls: u32,
    sync_wake_up: bool,
    watcher: Option<Watcher>,
}

impl KernelNotifier {
    /// Takes ownership of a listener and sets it up for `wait`.
    pub fn new(fd: OwnedFd, wait: Wait) -> Result<Self> {
        let sync_wake_up = if wait.sync_wake_up {
            notify::set_sync_wake_up(&fd)?
        } else {
            false
        };
        // Without its thread (out of threads or fds) the notifier polls instead, as it does
        // when the watcher fails later: slower to notice a hang-up, never wrong. Failing here
        // would end the container whatever `fail_mode` says.
        let watcher = if wait.block_in_recv {
            match Watcher::start(&fd) {
                Ok(watcher) => Some(watcher),
                Err(e) => {
                    tracing::warn!(error = %e, "seccomp supervisor: cannot start the hang-up watcher; polling instead");
                    None
                }
            }
        } else {
            None
        };
        Ok(Self {
            fd,
            spin_polls: wait.spin_polls,
            sync_wake_up,
            watcher,
        })
    }

    /// Receives blocking in RECV, woken by the watcher on hang-up; `None` when the watcher
    /// failed and the caller must fall back to polling.
    fn recv_watched(&self) -> Option<Result<Received>> {
        let shared = &self.watcher.as_ref()?.shared;
        loop {
            if shared.failed.load(Ordering::SeqCst) {
                // Seen: the watcher stops interrupting (until 2026-12-07 it went on every
                // millisecond for the supervisor's whole life).
                shared.acked.store(true, Ordering::SeqCst);
                return None;
            }
            if shared.closed.load(Ordering::SeqCst) {
                shared.acked.store(true, Ordering::SeqCst);
                return Some(Ok(Received::Closed));
            }
            let fd = self.fd.as_fd();
            return Some(match shared.slot.run(|| notify::recv_once(fd)) {
                Ok(notify::Recv::Interrupted) => continue,
                // RECV also fails with ENOENT when it wakes to find no notification because
                // the last task left; the watcher may not have flagged that yet, so ask.
                Ok(notify::Recv::Gone) => match notify::wait(fd, 0) {
                    Ok(notify::Ready::HangUp) => {
                        shared.acked.store(true, Ordering::SeqCst);
                        Ok(Received::Closed)
                    }
                    Ok(_) => Ok(Received::Gone),
                    Err(e) => Err(e.into()),
                },
                Ok(notify::Recv::Event(n)) => Ok(Received::Event(convert(n))),
                Err(e) => Err(e.into()),
            });
        }
    }

    /// Whether `SYNC_WAKE_UP` is in effect (asked for and supported by the kernel).
    pub fn sync_wake_up(&self) -> bool {
        self.sync_wake_up
    }

    /// Takes one notification blocking in `RECV` without watching for the hang-up first: it
    /// never returns once the filter has no users, so only callers that know how many
    /// notifications will come may use it (the benchmark's kernel floor).
    pub fn recv_blocking(&mut self) -> Result<Received> {
        Ok(match notify::recv(self.borrowed())? {
            notify::Recv::Gone | notify::Recv::Interrupted => Received::Gone,
            notify::Recv::Event(n) => Received::Event(convert(n)),
        })
    }

    fn borrowed(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsFd for KernelNotifier {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Notifier for KernelNotifier {
    fn recv(&mut self) -> Result<Received> {
        if let Some(received) = self.recv_watched() {
            return received;
        }
        let mut spins = self.spin_polls;
        loop {
            let timeout = if spins > 0 {
                spins -= 1;
                0
            } else {
                -1
            };
            match notify::wait(self.borrowed(), timeout)? {
                notify::Ready::Timeout => continue,
                notify::Ready::HangUp => return Ok(Received::Closed),
                notify::Ready::Readable => {}
            }
            return Ok(match notify::recv(self.borrowed())? {
                notify::Recv::Gone | notify::Recv::Interrupted => Received::Gone,
                notify::Recv::Event(n) => Received::Event(convert(n)),
            });
        }
    }

    fn send(&mut self, id: u64, answer: Answer) -> Result<Delivery> {
        let answer = match answer {
            Answer::Continue => notify::Answer::Continue,
            Answer::Errno(e) => notify::Answer::Errno(e),
        };
        Ok(match notify::send(self.borrowed(), id, answer)? {
            notify::Sent::Done => Delivery::Done,
            notify::Sent::Gone => Delivery::Gone,
        })
    }

    fn id_valid(&mut self, id: u64) -> bool {
        notify::id_valid(self.borrowed(), id)
    }

    fn kill_process(&mut self, tid: u32, id: u64) -> Result<bool> {
        // A thread pidfd (6.9+) names exactly this thread. Older kernels take leaders only:
        // there, the pidfd of the thread's process, which SIGKILL ends all the same (until
        // 2026-12-07 the fallback opened `tid` itself, which fails for any other thread).
        // Only ESRCH means the thread is gone: any other failure (out of fds, say) is the
        // kill's failure, reported as such (until 2026-12-07 it read as "gone", and the process
        // ran on with its call denied and nothing counted or logged).
        let gone = |e: &crate::sys::SysError| {
            matches!(
                e,
                crate::sys::SysError::Pidfd {
                    source: Errno::ESRCH,
                    ..
                }
            )
        };
        let fd = match pidfd::open(tid, true) {
            Ok(fd) => fd,
            Err(e) if gone(&e) => return Ok(false),
            // A kernel before 6.9 knows no PIDFD_THREAD.
            Err(crate::sys::SysError::Pidfd {
                source: Errno::EINVAL,
                ..
            }) => match pidfd::open_process_of(tid) {
                Ok(fd) => fd,
                Err(e) if gone(&e) => return Ok(false),
                Err(e) => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        };
        // The pidfd is pinned to a task now; if the notification is still pending, that task
        // is the one that made it (its tid cannot have been reused while it waits).
        if !notify::id_valid(self.borrowed(), id) {
            return Ok(false);
        }
        Ok(pidfd::send_signal(fd.as_fd(), tid, Signal::SIGKILL)?)
    }

    fn thread_alive(&mut self, tid: u32) -> bool {
        // tid 0 means "not visible in our pid namespace": never reclaim it. kill(2) accepts
        // any thread id; EPERM still means it exists.
        let Ok(raw) = i32::try_from(tid) else {
            return false;
        };
        raw == 0 || !matches!(kill(Pid::from_raw(raw), None::<Signal>), Err(Errno::ESRCH))
    }
}

fn convert(n: notify::Notif) -> Notification {
    Notification {
        id: n.id,
        tid: n.pid,
        nr: n.nr,
        arch: n.arch,
        args: n.args,
        ip: n.ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::{Filter, Op, TracedChild};

    /// A hang-up watcher that could not wait interrupts the supervisor until it sees that; the
    /// supervisor then acknowledges, which stops the interrupts. Until 2026-12-07 it did not,
    /// and the watcher woke every millisecond for the supervisor's whole life.
    #[test]
    fn a_failed_watcher_is_acknowledged() {
        let filter = Filter::notify_names(&["getppid"]).unwrap();
        let script = [Op::Syscall {
            nr: libc::SYS_getppid,
            args: [0; 6],
        }];
        let mut child = TracedChild::spawn(&filter, &script).unwrap();
        let mut n = KernelNotifier::new(child.take_listener().unwrap(), Wait::default()).unwrap();
        let shared = std::sync::Arc::clone(&n.watcher.as_ref().expect("a watcher").shared);
        shared.failed.store(true, Ordering::SeqCst);
        assert!(n.recv_watched().is_none(), "the fallback to polling");
        assert!(shared.acked.load(Ordering::SeqCst));
        // The fallback still receives.
        child.start().unwrap();
        let Received::Event(ev) = n.recv().unwrap() else {
            panic!("expected the getppid notification");
        };
        n.send(ev.id, Answer::Continue).unwrap();
        child.wait().unwrap();
    }
}
