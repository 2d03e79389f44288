//! Interrupting a thread blocked in `SECCOMP_IOCTL_NOTIF_RECV`.
//!
//! `RECV` sleeps on a semaphore that the listener's hang-up never signals, so a supervisor that
//! blocks in it directly (saving the `poll` before every receive) needs another thread to wake
//! it when the last traced task is gone. That thread sends a real-time signal whose handler does
//! nothing and is installed without `SA_RESTART`: the ioctl returns EINTR.
//!
//! [`Interruptible`] makes the signal safe to send: a thread is registered only while it runs
//! the closure given to [`Interruptible::run`], and registration, deregistration and
//! `pthread_kill` happen under one lock, so the signal never targets a thread that has exited.

use std::sync::{Mutex, OnceLock, PoisonError};

use nix::errno::Errno;

use super::{Result, SysError};

/// Offset of chaperone's wake-up signal from `SIGRTMIN` (glibc keeps the ones below for itself).
const WAKE_OFFSET: libc::c_int = 3;

static WAKE_SIGNAL: OnceLock<std::result::Result<libc::c_int, Errno>> = OnceLock::new();

extern "C" fn on_wake(_signal: libc::c_int) {}

/// The wake-up signal, its no-op handler installed process-wide on first use.
pub(crate) fn wake_signal() -> Result<libc::c_int> {
    let installed = WAKE_SIGNAL.get_or_init(|| {
        let signal = libc::SIGRTMIN() + WAKE_OFFSET;
        // SAFETY: all-zero bytes are a valid `sigaction` (no handler, no flags, empty mask); the
        // fields that matter are set below.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_wake as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // No SA_RESTART: a blocked RECV must return EINTR, not restart.
        action.sa_flags = 0;
        // SAFETY: `sa_mask` is a valid, writable sigset_t.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: `action` is initialised and its handler is async-signal-safe (it does
        // nothing); the old action is not requested.
        let rc = unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
        if rc == 0 {
            Ok(signal)
        } else {
            Err(Errno::last())
        }
    });
    installed.map_err(|source| SysError::Signal {
        op: "sigaction",
        source,
    })
}

/// A slot for the one thread that may currently be interrupted.
#[derive(Debug, Default)]
pub(crate) struct Interruptible {
    thread: Mutex<Option<libc::pthread_t>>,
}

/// Deregisters on drop, so a panicking closure never leaves a stale thread behind.
struct Registration<'a>(&'a Interruptible);

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        *self.0.thread.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl Interruptible {
    /// Runs `f` on this thread with the thread registered: [`Self::interrupt`] may signal it
    /// meanwhile, making a blocking syscall inside `f` fail with EINTR.
    pub(crate) fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        *self.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(me);
        let _registration = Registration(self);
        f()
    }

    /// Signals the registered thread, if any; returns whether one was signalled.
    pub(crate) fn interrupt(&self) -> Result<bool> {
        let signal = wake_signal()?;
        let thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(target) = *thread else {
            return Ok(false);
        };
        // SAFETY: `target` is registered, and a registered thread is inside `run`: it cannot
        // deregister (and so cannot exit) while we hold the lock, so the handle is live.
        let rc = unsafe { libc::pthread_kill(target, signal) };
        // EAGAIN: the real-time signal queue is full, so one is already pending for it.
        if rc == 0 || rc == libc::EAGAIN {
            Ok(true)
        } else {
            Err(SysError::Signal {
                op: "pthread_kill",
                source: Errno::from_raw(rc),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn interrupt_makes_a_blocking_syscall_return_eintr() {
        let slot = Arc::new(Interruptible::default());
        let entered = Arc::new(AtomicBool::new(false));
        let (s, e) = (Arc::clone(&slot), Arc::clone(&entered));
        let sleeper = std::thread::spawn(move || {
            s.run(|| {
                e.store(true, Ordering::SeqCst);
                // pause(2) only returns when a signal handler ran.
                // SAFETY: pause has no preconditions.
                let rc = unsafe { libc::pause() };
                (rc, Errno::last())
            })
        });
        // Keep signalling until the thread is registered and has been woken (the signal may
        // land just before pause, in which case the next one ends it).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sleeper.is_finished() {
            assert!(Instant::now() < deadline, "sleeper never woke");
            if entered.load(Ordering::SeqCst) {
                slot.interrupt().unwrap();
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(sleeper.join().unwrap(), (-1, Errno::EINTR));
        assert!(!slot.interrupt().unwrap(), "deregistered after run");
    }
}
