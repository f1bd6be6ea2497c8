//! Click analytics: the redirect path offers a [`RawClick`](crate::domain::click::RawClick)
//! to a [`queue`] without waiting; the [`worker`] classifies clicks ([`event`]), sums a
//! window of them and has the click store count it exactly once; the stats API shapes
//! what the store keeps ([`rollup`]).
//!
//! [`Analytics`] owns the running parts and stops them in order: the producer flushes
//! its buffer to Redis, then the worker drains what is left and commits it.

pub mod event;
pub mod queue;
pub mod rollup;
pub mod worker;

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::queue::{ClickQueue, MemoryQueue, QueueKind, RedisStreamQueue};
use self::worker::{Worker, WorkerStats};
use crate::config::Settings;
use crate::store::clicks::ClickStore;

/// The running analytics of one process.
pub struct Analytics {
    queue: Arc<dyn ClickQueue>,
    worker_stats: Option<Arc<WorkerStats>>,
    producer: Option<(CancellationToken, JoinHandle<()>)>,
    worker: Option<(CancellationToken, JoinHandle<()>)>,
}

/// A queue, and the same queue as Redis Streams when it is one (its producer must run).
pub type BuiltQueue = (Arc<dyn ClickQueue>, Option<Arc<RedisStreamQueue>>);

/// Builds the queue the configuration names.
///
/// # Errors
/// When `kind = "redis"` without a `[redis]` section.
pub fn build_queue(settings: &Settings) -> anyhow::Result<BuiltQueue> {
    Ok(match settings.queue.kind {
        QueueKind::Memory => (Arc::new(MemoryQueue::new(settings.queue.capacity)), None),
        QueueKind::Redis => {
            let redis = settings
                .redis
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("queue.kind = \"redis\" needs a [redis] section"))?;
            let q = Arc::new(RedisStreamQueue::new(
                &redis.url,
                &redis.key_prefix,
                &settings.queue,
            )?);
            (q.clone(), Some(q))
        }
    })
}

impl Analytics {
    /// Starts the queue's producer (Redis) and, when asked or when the queue is in
    /// process, a worker into `store`.
    ///
    /// # Errors
    /// When the queue cannot be built.
    pub fn start(settings: &Settings, store: Arc<dyn ClickStore>) -> anyhow::Result<Self> {
        let (queue, redis) = build_queue(settings)?;
        let producer = redis.map(|q| {
            let stop = CancellationToken::new();
            let task = tokio::spawn(q.run_producer(stop.clone()));
            (stop, task)
        });
        let in_process =
            settings.queue.kind == QueueKind::Memory || settings.analytics.worker_in_serve;
        let (worker, worker_stats) = if in_process {
            let w = Arc::new(Worker::new(
                queue.clone(),
                store,
                settings.analytics.clone(),
            ));
            let stats = w.stats().clone();
            let stop = CancellationToken::new();
            let token = stop.clone();
            (
                Some((stop, tokio::spawn(async move { w.run(token).await }))),
                Some(stats),
            )
        } else {
            (None, None)
        };
        tracing::info!(queue = ?settings.queue.kind, worker_in_process = in_process, "click analytics on");
        Ok(Self {
            queue,
            worker_stats,
            producer,
            worker,
        })
    }

    /// The queue the redirect path offers clicks to.
    pub fn queue(&self) -> &Arc<dyn ClickQueue> {
        &self.queue
    }

    /// The in-process worker's counters, if one runs here.
    pub fn worker_stats(&self) -> Option<&Arc<WorkerStats>> {
        self.worker_stats.as_ref()
    }

    /// Stops in order: the producer pushes its buffer out, then the worker drains and
    /// commits what is left. Call after the HTTP server has stopped taking requests.
    pub async fn shutdown(&mut self) {
        if let Some((stop, task)) = self.producer.take() {
            stop.cancel();
            let _ = task.await;
        }
        if let Some((stop, task)) = self.worker.take() {
            stop.cancel();
            let _ = task.await;
        }
    }
}
