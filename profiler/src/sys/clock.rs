//! `clock_gettime(CLOCK_MONOTONIC_COARSE)`: the supervisor looks at the time on every event.

use std::time::Duration;

/// The coarse monotonic clock: a few nanoseconds a read (no system call), at the resolution of
/// the scheduler's tick, which is plenty for periods of a second.
pub(crate) fn coarse_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec that outlives the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    if rc != 0 {
        // A kernel without the clock (before 2.6.32): the precise one, from a fixed start.
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        return START.get_or_init(std::time::Instant::now).elapsed();
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or_default(),
        u32::try_from(ts.tv_nsec).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_moves_forward() {
        let a = coarse_now();
        std::thread::sleep(Duration::from_millis(30));
        assert!(coarse_now() > a);
    }
}
