//! Keeping a leased worker ID (distributed mode, `ids.lease`): take one at startup,
//! renew it every third of `ids.lease_ttl_s`, stop minting before it could have run
//! out, take one again after losing it, give it up at shutdown.
//!
//! The rule that keeps IDs unique: the generator's [`WorkerSlot`] holds the ID until
//! `sent + ttl - ttl/10`, where `sent` is when the renewal that succeeded was *sent*.
//! The directory computes its expiry at `now()` when it runs the statement, which is
//! after `sent`, so the instance's deadline always comes before the directory's (the
//! tenth of margin covers clock rates that differ a little). Another instance can only
//! take the ID after the directory's expiry, by which time this one has stopped. It
//! then also starts its IDs after the last millisecond this one could have stamped
//! (`minted_until_ms`), in case their clocks disagree.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::domain::SnowflakeGenerator;
use crate::store::{Lease, Refusal, WorkerLeases};

/// The lease keeper of one process.
pub struct LeaseKeeper {
    leases: Arc<dyn WorkerLeases>,
    ids: Arc<SnowflakeGenerator>,
    holder: String,
    want: Option<u16>,
    ttl: Duration,
}

/// The running keeper: [`release`](Self::release) stops it and gives the ID up.
pub struct LeaseHandle {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl LeaseHandle {
    /// Stops minting, gives the worker ID up (recording the last millisecond used) and
    /// waits for the keeper to end.
    pub async fn release(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

impl LeaseKeeper {
    /// A keeper for `ids`, whose slot starts vacant; `want` is the configured worker ID.
    pub fn new(
        leases: Arc<dyn WorkerLeases>,
        ids: Arc<SnowflakeGenerator>,
        want: Option<u16>,
        ttl: Duration,
    ) -> Self {
        let holder = crate::telemetry::instance_name();
        Self {
            leases,
            ids,
            holder,
            want,
            ttl,
        }
    }

    /// How long before the directory's expiry minting stops.
    fn margin(&self) -> Duration {
        (self.ttl / 10).max(Duration::from_millis(50))
    }

    fn minted_until(&self) -> u64 {
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        self.ids.now_ms().saturating_add(ttl_ms)
    }

    /// Takes a lease now.
    ///
    /// # Errors
    /// When the configured ID is held by another instance, none is free, or the
    /// directory cannot be reached.
    pub async fn acquire(&self) -> anyhow::Result<u16> {
        self.take().await?
    }

    /// Takes a lease at startup. The directory unreachable is no reason not to start
    /// (redirects need no ID): the instance starts holding none, shortens answer 503
    /// and the keeper takes one as soon as the directory answers. A refusal (the
    /// configured ID held by another instance, none free) still stops startup.
    ///
    /// # Errors
    /// When the lease is refused, or the directory fails otherwise.
    pub async fn acquire_at_startup(&self) -> anyhow::Result<Option<u16>> {
        match self.take().await {
            Ok(taken) => Ok(Some(taken?)),
            Err(e) if e.is_unreachable() => {
                tracing::warn!(
                    error = %crate::telemetry::chain(&e),
                    "the directory is unreachable: starting without a worker ID; shortens \
                     answer 503 until one is leased"
                );
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn take(&self) -> Result<anyhow::Result<u16>, crate::store::StoreError> {
        let sent = Instant::now();
        let lease = self
            .leases
            .acquire(&self.holder, self.want, self.ttl, self.minted_until())
            .await?;
        Ok(match lease {
            Ok(Lease { worker, floor_ms }) => {
                if floor_ms > 0 {
                    self.ids.raise_floor(floor_ms);
                }
                self.ids
                    .slot()
                    .hold(worker, sent + self.ttl - self.margin());
                tracing::info!(
                    worker_id = worker,
                    holder = %self.holder,
                    ttl_s = self.ttl.as_secs_f64(),
                    configured = self.want.is_some(),
                    "worker ID leased"
                );
                Ok(worker)
            }
            Err(Refusal::Held {
                holder,
                remaining_ms,
            }) => Err(anyhow::anyhow!(
                "worker_id = {} is held by another instance ({holder}) for {:.1} s more: \
                 give this instance another worker_id, or leave it unset to lease a free one",
                self.want.unwrap_or_default(),
                remaining_ms as f64 / 1000.0
            )),
            Err(Refusal::NoneFree) => Err(anyhow::anyhow!(
                "all 1,024 worker IDs are leased by running instances"
            )),
        })
    }

    /// Renews (or, once lost, takes again) until released.
    pub fn spawn(self) -> LeaseHandle {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let every = self.ttl / 3;
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    () = tokio::time::sleep(every) => {}
                }
                self.tick(every).await;
            }
            self.give_up().await;
        });
        LeaseHandle { stop, task }
    }

    async fn tick(&self, within: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let slot = self.ids.slot();
        let worker = slot.last_worker();
        if slot.current().is_none() {
            // Lapsed (or lost earlier): take one again, this same ID if it is still free.
            self.ids
                .stats()
                .leases_lost
                .fetch_add(u64::from(was_held(slot)), Relaxed);
            slot.vacate();
            match tokio::time::timeout(within, self.acquire()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(
                    error = format!("{e:#}"),
                    "no worker ID yet; shortens answer 503"
                ),
                Err(_) => {
                    tracing::warn!("the directory did not answer in time; shortens answer 503")
                }
            }
            return;
        }
        let sent = Instant::now();
        let renewed = tokio::time::timeout(
            within,
            self.leases
                .renew(worker, &self.holder, self.ttl, self.minted_until()),
        )
        .await;
        match renewed {
            Ok(Ok(true)) => {
                self.ids.stats().lease_renewals.fetch_add(1, Relaxed);
                slot.hold(worker, sent + self.ttl - self.margin());
            }
            Ok(Ok(false)) => {
                self.ids.stats().leases_lost.fetch_add(1, Relaxed);
                slot.vacate();
                tracing::error!(
                    worker_id = worker,
                    "the worker ID lease ran out before it was renewed: shortens answer 503 \
                     until another is taken"
                );
            }
            Ok(Err(e)) => {
                self.ids.stats().lease_errors.fetch_add(1, Relaxed);
                tracing::warn!(worker_id = worker, error = %crate::telemetry::chain(&e), "lease renewal failed; retrying");
            }
            Err(_) => {
                self.ids.stats().lease_errors.fetch_add(1, Relaxed);
                tracing::warn!(worker_id = worker, "lease renewal timed out; retrying");
            }
        }
    }

    async fn give_up(&self) {
        let slot = self.ids.slot();
        let held = slot.current();
        slot.vacate();
        let Some(worker) = held else { return };
        let last = self.ids.last_issued_ms();
        match self.leases.release(worker, &self.holder, last).await {
            Ok(()) => tracing::info!(worker_id = worker, "worker ID lease released"),
            Err(e) => {
                tracing::warn!(worker_id = worker, error = %crate::telemetry::chain(&e), "lease release failed; it runs out by itself")
            }
        }
    }
}

/// Whether the slot held an ID before (it lapsed rather than never being taken).
fn was_held(slot: &crate::domain::WorkerSlot) -> bool {
    // A vacated slot keeps its worker bits; a lapsed one still carries its deadline.
    slot.current().is_none() && slot.has_deadline()
}
