//! Snowflake IDs: 63 bits, time-ordered, unique per worker without coordination.
//!
//! ```text
//!  63 62                                     22 21        12 11          0
//!  +--+----------------------------------------+------------+-------------+
//!  |0 | milliseconds since 2024-01-01 (41 bits) | worker (10) | sequence (12)|
//!  +--+----------------------------------------+------------+-------------+
//! ```
//!
//! The generator keeps `(last millisecond, sequence)` packed in one `AtomicU64` and
//! advances it with a compare-and-swap, so concurrent callers never take a lock and never
//! get the same ID. It reads its state *before* the clock: a state written by another
//! thread then always comes from a clock reading no later than ours, so a race between
//! threads is never mistaken for the clock going backwards.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::clock::{ms_to_datetime, Clock};

/// The custom epoch, 2024-01-01T00:00:00Z, in Unix milliseconds.
pub const EPOCH_MS: u64 = 1_704_067_200_000;
/// Bits of the millisecond timestamp (about 69 years).
pub const TIMESTAMP_BITS: u32 = 41;
/// Bits of the worker ID.
pub const WORKER_BITS: u32 = 10;
/// Bits of the per-millisecond sequence.
pub const SEQUENCE_BITS: u32 = 12;
/// The largest worker ID.
pub const MAX_WORKER_ID: u16 = (1 << WORKER_BITS) - 1;
const MAX_SEQUENCE: u64 = (1 << SEQUENCE_BITS) - 1;
const MAX_TIMESTAMP: u64 = (1 << TIMESTAMP_BITS) - 1;
const TIMESTAMP_SHIFT: u32 = WORKER_BITS + SEQUENCE_BITS;
/// How long a caller may wait for the clock to reach a fresh millisecond when the
/// sequence is used up before it concludes the clock has stalled.
const STALL_LIMIT: Duration = Duration::from_millis(100);

/// A Snowflake ID. Always below 2^63, so it fits PostgreSQL's `BIGINT`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "u64", into = "u64")]
pub struct Snowflake(u64);

impl TryFrom<u64> for Snowflake {
    type Error = String;

    fn try_from(raw: u64) -> Result<Self, Self::Error> {
        Self::from_u64(raw).ok_or_else(|| format!("{raw} does not fit in 63 bits"))
    }
}

impl From<Snowflake> for u64 {
    fn from(id: Snowflake) -> u64 {
        id.0
    }
}

impl Snowflake {
    /// The largest ID (2^63 - 1): above every ID ever minted, a "newest first" cursor's
    /// start.
    pub const MAX: Self = Self(i64::MAX as u64);

    /// Wraps a raw value, refusing anything that does not fit in 63 bits.
    pub fn from_u64(raw: u64) -> Option<Self> {
        (raw <= i64::MAX as u64).then_some(Self(raw))
    }

    /// Wraps a value read from a `BIGINT` column.
    pub fn from_i64(raw: i64) -> Option<Self> {
        u64::try_from(raw).ok().map(Self)
    }

    /// Assembles an ID from its parts (each is masked to its width).
    pub fn from_parts(ms_since_epoch: u64, worker: u16, sequence: u64) -> Self {
        Self(
            (ms_since_epoch & MAX_TIMESTAMP) << TIMESTAMP_SHIFT
                | (u64::from(worker) & u64::from(MAX_WORKER_ID)) << SEQUENCE_BITS
                | (sequence & MAX_SEQUENCE),
        )
    }

    /// The smallest ID minted during the Unix millisecond `unix_ms`: where a shard
    /// range that starts at that instant begins. Instants before the epoch map to 0.
    pub fn first_of_ms(unix_ms: u64) -> Self {
        Self::from_parts(unix_ms.saturating_sub(EPOCH_MS), 0, 0)
    }

    /// The raw value.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The value as a `BIGINT`.
    pub fn as_i64(self) -> i64 {
        // Cannot wrap: every constructor keeps the value below 2^63.
        self.0 as i64
    }

    /// Unix milliseconds at which the ID was minted.
    pub fn unix_ms(self) -> u64 {
        (self.0 >> TIMESTAMP_SHIFT) + EPOCH_MS
    }

    /// The instant at which the ID was minted.
    pub fn timestamp(self) -> DateTime<Utc> {
        ms_to_datetime(self.unix_ms())
    }

    /// The worker that minted the ID.
    pub fn worker(self) -> u16 {
        ((self.0 >> SEQUENCE_BITS) & u64::from(MAX_WORKER_ID)) as u16
    }

    /// The position of the ID within its millisecond.
    pub fn sequence(self) -> u64 {
        self.0 & MAX_SEQUENCE
    }
}

impl fmt::Display for Snowflake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why no ID could be issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The clock went back further than the generator is willing to wait out.
    #[error(
        "the clock moved backwards by {behind_ms} ms (waiting is allowed up to {limit_ms} ms)"
    )]
    ClockMovedBackwards { behind_ms: u64, limit_ms: u64 },
    /// The clock reads a time outside the 41-bit window that starts at the epoch.
    #[error("the clock reads {unix_ms} ms since 1970, outside the ID space")]
    ClockOutOfRange { unix_ms: u64 },
    /// The sequence is used up and the clock did not reach the next millisecond.
    #[error("the clock has not advanced for {0:?} with the sequence exhausted")]
    ClockStalled(Duration),
    /// This process holds no worker ID now (its lease lapsed and is not yet renewed).
    #[error("this instance holds no worker ID at the moment")]
    NoWorkerId,
}

/// Which worker ID this process may stamp into IDs, and until when: a configured ID is
/// held for ever, a leased one until a deadline on the monotonic clock that the lease
/// keeper moves on at each renewal. Minting reads it on every ID (one atomic load, and
/// for a lease one monotonic clock read), so a lapsed lease stops minting at once, with
/// no help from the task that failed to renew it.
#[derive(Debug)]
pub struct WorkerSlot {
    base: Instant,
    /// `deadline << 16 | worker`: the deadline in milliseconds after `base` (0: none,
    /// [`FOREVER`]: no end); the worker bits stay when the slot is vacated, for
    /// [`last_worker`](Self::last_worker).
    packed: AtomicU64,
}

const FOREVER: u64 = (1 << 48) - 1;

impl WorkerSlot {
    /// A slot holding `worker` with no end (a configured worker ID).
    pub fn fixed(worker: u16) -> Self {
        Self {
            base: Instant::now(),
            packed: AtomicU64::new(FOREVER << 16 | u64::from(worker)),
        }
    }

    /// A slot holding nothing yet.
    pub fn vacant() -> Self {
        Self {
            base: Instant::now(),
            packed: AtomicU64::new(0),
        }
    }

    /// Holds `worker` until `until`.
    pub fn hold(&self, worker: u16, until: Instant) {
        let ms = u64::try_from(until.saturating_duration_since(self.base).as_millis())
            .unwrap_or(FOREVER - 1)
            .min(FOREVER - 1);
        self.packed
            .store(ms << 16 | u64::from(worker), Ordering::Release);
    }

    /// Gives the worker ID up: nothing is minted until the next [`hold`](Self::hold).
    pub fn vacate(&self) {
        let worker = self.packed.load(Ordering::Acquire) & 0xffff;
        self.packed.store(worker, Ordering::Release);
    }

    /// The worker ID held now, if any.
    pub fn current(&self) -> Option<u16> {
        let packed = self.packed.load(Ordering::Acquire);
        let deadline = packed >> 16;
        let worker = (packed & 0xffff) as u16;
        match deadline {
            0 => None,
            FOREVER => Some(worker),
            _ => {
                let now = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
                (now < deadline).then_some(worker)
            }
        }
    }

    /// The worker ID held last, lapsed or not (0 before the first): for event IDs,
    /// which tolerate a duplicate (their units are told apart by producer).
    pub fn last_worker(&self) -> u16 {
        (self.packed.load(Ordering::Acquire) & 0xffff) as u16
    }

    /// Whether the slot carries a deadline (held, or lapsed without being vacated).
    pub fn has_deadline(&self) -> bool {
        self.packed.load(Ordering::Acquire) >> 16 != 0
    }
}

/// Counters the metrics module exports.
#[derive(Debug, Default)]
pub struct IdStats {
    /// IDs handed out.
    pub issued: AtomicU64,
    /// Times a caller waited for a clock that had stepped back a little.
    pub clock_waits: AtomicU64,
    /// Requests failed because the clock stepped back too far.
    pub clock_failures: AtomicU64,
    /// Times the 4,096 IDs of one millisecond ran out and a caller waited for the next.
    pub sequence_exhausted: AtomicU64,
    /// IDs found already used by another instance (two instances share a worker ID).
    pub duplicates: AtomicU64,
    /// Lease renewals that went through.
    pub lease_renewals: AtomicU64,
    /// Lease renewals that failed (the directory unreachable or slow).
    pub lease_errors: AtomicU64,
    /// Leases that ran out before a renewal got through.
    pub leases_lost: AtomicU64,
}

enum Attempt {
    Issued(Snowflake),
    /// The clock is behind the last issued millisecond by this much (within the limit).
    Behind(u64),
    /// All 4,096 sequence numbers of this millisecond (since the epoch) are taken.
    Exhausted(u64),
}

/// Issues Snowflake IDs for the worker ID its [`WorkerSlot`] holds.
pub struct SnowflakeGenerator {
    slot: Arc<WorkerSlot>,
    clock: Arc<dyn Clock>,
    /// `(ms since epoch) << SEQUENCE_BITS | sequence` of the last issued ID.
    state: AtomicU64,
    max_backward_ms: u64,
    stats: IdStats,
}

impl fmt::Debug for SnowflakeGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnowflakeGenerator")
            .field("worker", &self.slot.current())
            .field("max_backward_ms", &self.max_backward_ms)
            .finish_non_exhaustive()
    }
}

impl SnowflakeGenerator {
    /// A generator for `worker` (0–1023) that waits out backward clock steps of up to
    /// `max_backward` and fails on larger ones.
    ///
    /// # Panics
    /// If `worker` exceeds [`MAX_WORKER_ID`]; configuration validation rules that out.
    pub fn new(worker: u16, clock: Arc<dyn Clock>, max_backward: Duration) -> Self {
        assert!(worker <= MAX_WORKER_ID, "worker id {worker} out of range");
        Self::with_slot(Arc::new(WorkerSlot::fixed(worker)), clock, max_backward)
    }

    /// A generator minting with whatever worker ID `slot` holds at each call.
    pub fn with_slot(slot: Arc<WorkerSlot>, clock: Arc<dyn Clock>, max_backward: Duration) -> Self {
        Self {
            slot,
            clock,
            state: AtomicU64::new(0),
            max_backward_ms: u64::try_from(max_backward.as_millis()).unwrap_or(u64::MAX),
            stats: IdStats::default(),
        }
    }

    /// The worker ID this generator stamps into IDs now, if it holds one.
    pub fn worker(&self) -> Option<u16> {
        self.slot.current()
    }

    /// The slot it reads its worker ID from.
    pub fn slot(&self) -> &Arc<WorkerSlot> {
        &self.slot
    }

    /// Unix milliseconds by this generator's clock.
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The Unix millisecond of the last ID issued (the epoch before the first).
    pub fn last_issued_ms(&self) -> u64 {
        (self.state.load(Ordering::Acquire) >> SEQUENCE_BITS) + EPOCH_MS
    }

    /// Issues nothing at or before the Unix millisecond `unix_ms` from now on: the
    /// last millisecond another holder of the same worker ID may have used. A clock
    /// that is behind it is waited out as a backward step is (and fails beyond that).
    pub fn raise_floor(&self, unix_ms: u64) {
        let since_epoch = unix_ms.saturating_sub(EPOCH_MS).min(MAX_TIMESTAMP);
        self.state.fetch_max(
            since_epoch << SEQUENCE_BITS | MAX_SEQUENCE,
            Ordering::AcqRel,
        );
    }

    /// Counters for metrics.
    pub fn stats(&self) -> &IdStats {
        &self.stats
    }

    fn attempt(&self, worker: u16) -> Result<Attempt, IdError> {
        loop {
            let current = self.state.load(Ordering::Acquire);
            let now = self.clock.now_ms();
            let since_epoch = now
                .checked_sub(EPOCH_MS)
                .filter(|ms| *ms <= MAX_TIMESTAMP)
                .ok_or(IdError::ClockOutOfRange { unix_ms: now })?;
            let last = current >> SEQUENCE_BITS;
            let next = if since_epoch > last {
                since_epoch << SEQUENCE_BITS
            } else if since_epoch == last {
                if current & MAX_SEQUENCE == MAX_SEQUENCE {
                    return Ok(Attempt::Exhausted(last));
                }
                current + 1
            } else {
                let behind_ms = last - since_epoch;
                if behind_ms > self.max_backward_ms {
                    self.stats.clock_failures.fetch_add(1, Ordering::Relaxed);
                    return Err(IdError::ClockMovedBackwards {
                        behind_ms,
                        limit_ms: self.max_backward_ms,
                    });
                }
                return Ok(Attempt::Behind(behind_ms));
            };
            if self
                .state
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.stats.issued.fetch_add(1, Ordering::Relaxed);
                return Ok(Attempt::Issued(Snowflake::from_parts(
                    next >> SEQUENCE_BITS,
                    worker,
                    next & MAX_SEQUENCE,
                )));
            }
        }
    }

    /// Issues the next ID, waiting (asynchronously) for a small backward clock step to
    /// pass or for the next millisecond when this one's sequence is used up.
    ///
    /// # Errors
    /// [`IdError::ClockMovedBackwards`] when the clock is further behind than allowed,
    /// or stays behind longer than that in total; [`IdError::ClockOutOfRange`] and
    /// [`IdError::ClockStalled`] for a clock that cannot be trusted at all;
    /// [`IdError::NoWorkerId`] while no worker ID is held.
    pub async fn next_id(&self) -> Result<Snowflake, IdError> {
        let mut waited_ms = 0;
        let mut exhausted_since: Option<(u64, Instant)> = None;
        loop {
            let worker = self.slot.current().ok_or(IdError::NoWorkerId)?;
            match self.attempt(worker)? {
                Attempt::Issued(id) => return Ok(id),
                Attempt::Behind(ms) => {
                    waited_ms += self.note_wait(ms, waited_ms)?;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                Attempt::Exhausted(ms) => {
                    self.note_exhausted(ms, &mut exhausted_since)?;
                    tokio::task::yield_now().await;
                }
            }
        }
    }

    /// An ID now or none: never waits. For the redirect path's click events, which
    /// drop a click rather than wait for the clock, and keep the last worker ID while a
    /// lease is being renewed (an event ID may repeat another instance's: click units
    /// are told apart by their producer, so no click is lost or counted twice).
    pub fn try_next_id(&self) -> Option<Snowflake> {
        match self.attempt(self.slot.last_worker()) {
            Ok(Attempt::Issued(id)) => Some(id),
            _ => None,
        }
    }

    /// The same as [`next_id`](Self::next_id) for callers outside an async runtime
    /// (bulk seeding, benchmarks): it blocks the thread instead of yielding.
    ///
    /// # Errors
    /// As for [`next_id`](Self::next_id).
    pub fn next_id_blocking(&self) -> Result<Snowflake, IdError> {
        let mut waited_ms = 0;
        let mut exhausted_since: Option<(u64, Instant)> = None;
        loop {
            let worker = self.slot.current().ok_or(IdError::NoWorkerId)?;
            match self.attempt(worker)? {
                Attempt::Issued(id) => return Ok(id),
                Attempt::Behind(ms) => {
                    waited_ms += self.note_wait(ms, waited_ms)?;
                    std::thread::sleep(Duration::from_millis(ms));
                }
                Attempt::Exhausted(ms) => {
                    self.note_exhausted(ms, &mut exhausted_since)?;
                    std::thread::yield_now();
                }
            }
        }
    }

    /// Accounts for one wait of `ms`, failing once the total would pass the limit.
    fn note_wait(&self, ms: u64, waited_ms: u64) -> Result<u64, IdError> {
        if waited_ms + ms > self.max_backward_ms {
            self.stats.clock_failures.fetch_add(1, Ordering::Relaxed);
            return Err(IdError::ClockMovedBackwards {
                behind_ms: waited_ms + ms,
                limit_ms: self.max_backward_ms,
            });
        }
        if waited_ms == 0 {
            self.stats.clock_waits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(ms)
    }

    /// Notes that millisecond `ms` is used up. Fails only when the *same* millisecond
    /// stays used up past [`STALL_LIMIT`]: the clock has stopped. Losing the race for
    /// one fresh millisecond after another under contention is not a stall.
    fn note_exhausted(&self, ms: u64, since: &mut Option<(u64, Instant)>) -> Result<(), IdError> {
        match since {
            Some((seen, start)) if *seen == ms => {
                if start.elapsed() > STALL_LIMIT {
                    return Err(IdError::ClockStalled(start.elapsed()));
                }
            }
            _ => {
                if since.is_none() {
                    self.stats
                        .sequence_exhausted
                        .fetch_add(1, Ordering::Relaxed);
                }
                *since = Some((ms, Instant::now()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
