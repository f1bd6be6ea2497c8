//! L1: an in-process moka cache, bounded by entries, each entry with its own lifetime.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use moka::future::Cache;
use moka::ops::compute::Op;
use moka::Expiry;

use super::{CacheError, CacheSettings, CacheTier, Cached};

struct PerEntryTtl {
    normal: Duration,
    negative: Duration,
}

impl Expiry<String, Cached> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Cached, _at: Instant) -> Option<Duration> {
        Some(value.ttl(self.normal, self.negative, Utc::now()))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Cached,
        _at: Instant,
        _remaining: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl(self.normal, self.negative, Utc::now()))
    }
}

/// The in-process tier.
#[derive(Clone)]
pub struct LocalTier {
    cache: Cache<String, Cached>,
}

impl LocalTier {
    /// An L1 sized and timed by the settings.
    pub fn new(settings: &CacheSettings) -> Self {
        let cache = Cache::builder()
            .max_capacity(settings.l1_capacity)
            .expire_after(PerEntryTtl {
                normal: settings.l1_ttl_s,
                negative: settings.negative_ttl_s,
            })
            .build();
        Self { cache }
    }

    /// The cached value, if any (the hot path: no boxing, no allocation).
    pub async fn get_now(&self, code: &str) -> Option<Cached> {
        self.cache.get(code).await
    }

    /// The cached value, or the result of `init`, which runs once however many callers
    /// miss on the same code at the same time; the others wait for it.
    pub(super) async fn get_or_try_insert<E: Send + Sync + 'static>(
        &self,
        code: &str,
        init: impl std::future::Future<Output = Result<Cached, E>>,
    ) -> Result<Cached, Arc<E>> {
        self.cache.try_get_with_by_ref(code, init).await
    }

    /// Caches a value, replacing any but a deleted link's tombstone: a deletion is
    /// final, so an edit that raced it and lands later cannot bring the link back. The
    /// compare and the write are one step for the code (moka's per-key compute).
    pub async fn insert(&self, code: &str, value: Cached) {
        self.cache
            .entry_by_ref(code)
            .and_compute_with(|current| {
                let keep = matches!(current.as_ref().map(|e| e.value()), Some(Cached::Gone));
                std::future::ready(if keep { Op::Nop } else { Op::Put(value) })
            })
            .await;
    }

    /// Forgets one code.
    pub async fn remove(&self, code: &str) {
        self.cache.invalidate(code).await;
    }

    /// Forgets everything (after invalidations may have been missed).
    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    /// Entries held (approximate).
    pub fn len(&self) -> u64 {
        self.cache.entry_count()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl CacheTier for LocalTier {
    async fn get(&self, code: &str) -> Result<Option<Cached>, CacheError> {
        Ok(self.get_now(code).await)
    }

    async fn fill(&self, code: &str, value: &Cached) -> Result<(), CacheError> {
        let value = value.clone();
        self.cache
            .entry_by_ref(code)
            .or_insert_with(async move { value })
            .await;
        Ok(())
    }

    async fn put(&self, code: &str, value: &Cached) -> Result<(), CacheError> {
        self.insert(code, value.clone()).await;
        Ok(())
    }
}
