//! A rate limiter for log lines on paths a container can trigger.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Lets one log line through per interval and counts the ones it holds back.
///
/// ```
/// # use chaperone_profiler::supervisor::RateLimit;
/// # use std::time::Duration;
/// let limit = RateLimit::new(Duration::from_secs(10));
/// if let Some(suppressed) = limit.check() {
///     tracing::warn!(suppressed, "listener: dropped a malformed message");
/// }
/// ```
#[derive(Debug)]
pub struct RateLimit {
    origin: Instant,
    interval_ns: u64,
    /// Nanoseconds after `origin` before which lines are held back (0: never logged yet).
    next_ns: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimit {
    /// One line per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            origin: Instant::now(),
            interval_ns: u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX),
            next_ns: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(lines suppressed since the last one)` when a line may be logged now.
    pub fn check(&self) -> Option<u64> {
        let now = u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let next = self.next_ns.load(Ordering::Relaxed);
        if now >= next
            && self
                .next_ns
                .compare_exchange(
                    next,
                    now.saturating_add(self.interval_ns).max(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_passes_then_suppresses() {
        let limit = RateLimit::new(Duration::from_secs(3600));
        assert_eq!(limit.check(), Some(0));
        assert_eq!(limit.check(), None);
        assert_eq!(limit.check(), None);
        let fast = RateLimit::new(Duration::ZERO);
        assert_eq!(fast.check(), Some(0));
        assert_eq!(fast.check(), Some(0));
    }
}
