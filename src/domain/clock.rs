//! Wall-clock time, injectable so tests can step it (expiry, shard boundaries, a clock
//! that jumps backwards) without sleeping.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, TimeZone, Utc};

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    fn now_ms(&self) -> u64;

    /// The same instant as a UTC timestamp.
    fn now(&self) -> DateTime<Utc> {
        ms_to_datetime(self.now_ms())
    }
}

/// Converts Unix milliseconds to a UTC timestamp (saturating at the far future).
pub fn ms_to_datetime(ms: u64) -> DateTime<Utc> {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        u64::try_from(now.as_millis()).unwrap_or(u64::MAX)
    }
}

/// A clock that only moves when told to. Used by tests and by the `seed` tooling.
#[derive(Debug)]
pub struct ManualClock {
    ms: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `ms` milliseconds since the Unix epoch.
    pub fn new(ms: u64) -> Self {
        Self {
            ms: AtomicU64::new(ms),
        }
    }

    /// A clock standing at the given instant.
    pub fn at(t: DateTime<Utc>) -> Self {
        Self::new(u64::try_from(t.timestamp_millis()).unwrap_or(0))
    }

    /// Moves the clock forwards by `ms`.
    pub fn advance_ms(&self, ms: u64) {
        self.ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Moves the clock backwards by `ms` (as NTP sometimes does to a real one).
    pub fn rewind_ms(&self, ms: u64) {
        self.ms.fetch_sub(ms, Ordering::SeqCst);
    }

    /// Puts the clock at `ms`.
    pub fn set_ms(&self, ms: u64) {
        self.ms.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }
}
