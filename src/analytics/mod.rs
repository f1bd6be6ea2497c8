//! Click analytics: the redirect path offers a [`RawClick`](crate::domain::click::RawClick)
//! to a [`queue`] without waiting; the [`worker`] classifies clicks ([`event`]), sums a
//! window of them and has the click store count it exactly once; the stats API shapes
//! what the store keeps ([`rollup`]).
//!
//! [`Analytics`] owns the running parts; they stop with the process's
//! [`Shutdown`](crate::shutdown::Shutdown), in its order.

pub mod event;
pub mod geo;
pub mod queue;
pub mod rollup;
pub mod salts;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use self::queue::{ClickQueue, MemoryQueue, QueueKind, QueueSettings, RedisStreamQueue};
use self::worker::{AnalyticsSettings, Worker, WorkerStats};
use crate::shutdown::Shutdown;
use crate::store::clicks::ClickStore;

/// The running analytics of one process.
pub struct Analytics {
    queue: Arc<dyn ClickQueue>,
    worker_stats: Option<Arc<WorkerStats>>,
    tasks: Vec<JoinHandle<()>>,
}

/// A queue, and the same queue as Redis Streams when it is one (its producer must run).
pub type BuiltQueue = (Arc<dyn ClickQueue>, Option<Arc<RedisStreamQueue>>);

/// Where the Redis Streams queue lives: the Redis URL and the key prefix.
#[derive(Debug, Clone, Copy)]
pub struct StreamAt<'a> {
    pub url: &'a str,
    pub key_prefix: &'a str,
}

/// Builds the queue `settings` names (Redis Streams at `redis`).
///
/// # Errors
/// When `kind = "redis"` without a Redis to put it on.
pub fn build_queue(
    settings: &QueueSettings,
    redis: Option<StreamAt>,
) -> anyhow::Result<BuiltQueue> {
    Ok(match settings.kind {
        QueueKind::Memory => (Arc::new(MemoryQueue::new(settings.capacity)), None),
        QueueKind::Redis => {
            let redis = redis
                .ok_or_else(|| anyhow::anyhow!("queue.kind = \"redis\" needs a [redis] section"))?;
            let q = Arc::new(RedisStreamQueue::new(
                redis.url,
                redis.key_prefix,
                settings,
            )?);
            (q.clone(), Some(q))
        }
    })
}

impl Analytics {
    /// Starts the queue's producer (Redis) and, when asked or when the queue is in
    /// process, a worker into `store` (placing clicks with the `geo` database). Both watch `shutdown` and stop in its order
    /// (see [`crate::shutdown`]): they keep working until [`close`](Self::close).
    ///
    /// # Errors
    /// When the queue cannot be built or a configured location database not read.
    pub fn start(
        queue_settings: &QueueSettings,
        redis: Option<StreamAt>,
        settings: &AnalyticsSettings,
        geo: &geo::GeoSettings,
        store: Arc<dyn ClickStore>,
        shutdown: &Shutdown,
    ) -> anyhow::Result<Self> {
        let (queue, stream) = build_queue(queue_settings, redis)?;
        let mut tasks = Vec::new();
        if let Some(q) = stream {
            tasks.push(tokio::spawn(q.run_producer(shutdown.token())));
        }
        let in_process = queue_settings.kind == QueueKind::Memory || settings.worker_in_serve;
        let geo = if in_process {
            geo::open_configured(geo)?
        } else {
            None
        };
        let worker_stats = in_process.then(|| {
            let (geo, every) = geo.map_or((None, Duration::ZERO), |(g, e)| (Some(g), e));
            let w = Worker::new(queue.clone(), store, settings.clone()).with_geo(geo, every);
            let stats = w.stats().clone();
            let token = shutdown.token();
            tasks.push(tokio::spawn(async move { w.run(token).await }));
            stats
        });
        tracing::info!(queue = ?queue_settings.kind, worker_in_process = in_process, "click analytics on");
        Ok(Self {
            queue,
            worker_stats,
            tasks,
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

    /// Closes the queue and waits for the producer to push its buffer out and the
    /// worker to commit what is left. Call once the shutdown has begun and the HTTP
    /// server has stopped taking requests.
    pub async fn close(&mut self) {
        self.queue.close();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}
