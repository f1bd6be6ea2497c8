//! A circuit breaker for Redis: after `threshold` consecutive failures it opens and
//! Redis is skipped for `open_for`; then one probe call is let through (half-open). A
//! success closes it, a failure opens it again.
//!
//! Small enough to own: it needs no more than three atomics, and its state must be
//! readable for the breaker gauge and the log.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// The breaker's state, as exported (`0` closed, `1` open, `2` half-open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum BreakerState {
    Closed = 0,
    Open = 1,
    HalfOpen = 2,
}

/// A consecutive-failure circuit breaker.
#[derive(Debug)]
pub struct Breaker {
    name: &'static str,
    state: AtomicU8,
    failures: AtomicU32,
    /// Milliseconds since `epoch` at which the breaker last opened or let a probe go.
    since_ms: AtomicU64,
    threshold: u32,
    open_for: Duration,
    epoch: Instant,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(name: &'static str, threshold: u32, open_for: Duration) -> Self {
        Self {
            name,
            state: AtomicU8::new(BreakerState::Closed as u8),
            failures: AtomicU32::new(0),
            since_ms: AtomicU64::new(0),
            threshold: threshold.max(1),
            open_for,
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        match self.state.load(Ordering::Acquire) {
            0 => BreakerState::Closed,
            1 => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }

    /// Whether a call may go ahead now. In the open state, once `open_for` has passed,
    /// exactly one caller is let through as the probe.
    pub fn allow(&self) -> bool {
        match self.state() {
            BreakerState::Closed => true,
            BreakerState::Open | BreakerState::HalfOpen => {
                // A probe that never reported (its task was dropped) must not wedge the
                // breaker: after another `open_for`, let a new probe go.
                let since = self.since_ms.load(Ordering::Acquire);
                let now = self.now_ms();
                if now.saturating_sub(since) < self.open_for.as_millis() as u64 {
                    return false;
                }
                let won = self
                    .since_ms
                    .compare_exchange(since, now, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
                if won {
                    self.state
                        .store(BreakerState::HalfOpen as u8, Ordering::Release);
                }
                won
            }
        }
    }

    /// Reports a successful call.
    pub fn on_success(&self) {
        self.failures.store(0, Ordering::Relaxed);
        let previous = self
            .state
            .swap(BreakerState::Closed as u8, Ordering::AcqRel);
        if previous != BreakerState::Closed as u8 {
            tracing::info!(breaker = self.name, "circuit closed: calls resume");
        }
    }

    /// Reports a failed call.
    pub fn on_failure(&self) {
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        let state = self.state();
        if state == BreakerState::HalfOpen
            || (state == BreakerState::Closed && failures >= self.threshold)
        {
            self.since_ms.store(self.now_ms(), Ordering::Release);
            let previous = self.state.swap(BreakerState::Open as u8, Ordering::AcqRel);
            if previous == BreakerState::Closed as u8 {
                tracing::warn!(
                    breaker = self.name,
                    failures,
                    open_for_ms = self.open_for.as_millis() as u64,
                    "circuit opened: calls are skipped"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_skips_calls() {
        let b = Breaker::new("t", 3, Duration::from_secs(60));
        b.on_failure();
        b.on_failure();
        assert!(b.allow(), "two failures are below the threshold");
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow());
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = Breaker::new("t", 2, Duration::from_secs(60));
        b.on_failure();
        b.on_success();
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[test]
    fn after_the_open_period_one_probe_goes_and_its_outcome_decides() {
        let b = Breaker::new("t", 1, Duration::from_millis(20));
        b.on_failure();
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(25));
        assert!(b.allow(), "the probe");
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(!b.allow(), "only one probe at a time");
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Open, "a failed probe reopens");
        std::thread::sleep(Duration::from_millis(25));
        assert!(b.allow());
        b.on_success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow());
    }

    #[test]
    fn a_probe_that_never_reports_does_not_wedge_the_breaker() {
        let b = Breaker::new("t", 1, Duration::from_millis(10));
        b.on_failure();
        std::thread::sleep(Duration::from_millis(15));
        assert!(b.allow());
        std::thread::sleep(Duration::from_millis(15));
        assert!(b.allow(), "a new probe after another open period");
    }
}
