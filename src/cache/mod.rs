//! The read-through cache of the redirect path: L1 in process ([`local`]), L2 Redis
//! ([`redis`]), then the store.
//!
//! What is cached is what a redirect needs, [`Cached`]: the target of a live link, a
//! tombstone for a deleted one, or a tombstone for a code that names nothing. A link's
//! expiry is stored with it and checked when it is served, so an expired link is never
//! served from cache. Management reads (`GET /api/v1/links/{code}`) do not use the cache.
//!
//! Both tiers implement [`CacheTier`]; the chain itself, [`LinkCache`], adds what only
//! it can do: coalescing concurrent L1 misses for one code into one load, filling both
//! tiers on a miss, and broadcasting invalidations.

pub mod breaker;
pub mod local;
pub mod redis;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::clock::ms_to_datetime;
use crate::domain::{Link, RedirectKind, Snowflake, TargetUrl};

pub use self::local::LocalTier;
pub use self::redis::{RedisSettings, RedisTier};

/// Where a live link goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The link's ID (clicks are counted against it).
    pub id: Snowflake,
    /// The redirect target.
    pub url: TargetUrl,
    /// 301 or 302.
    pub redirect: RedirectKind,
    /// When the link stops redirecting.
    pub expires_at: Option<DateTime<Utc>>,
}

/// What the cache knows about a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    /// A link that was live when cached (its expiry is checked when served).
    Active(Arc<Target>),
    /// A deleted link: answers 410.
    Gone,
    /// A link an operator took down: answers 410 until enabled again.
    Disabled,
    /// A live link whose target lies in a blocked domain: answers 451. Decided when the
    /// entry enters L1 (by [`LinkCache::with_screen`]), so an L1 hit pays nothing for
    /// the blocklist; L2 keeps the unscreened value.
    Blocked,
    /// No link has this code: answers 404.
    Missing,
}

impl Cached {
    /// What a stored link (or its absence) caches as.
    pub fn of(link: Option<&Link>) -> Self {
        match link {
            None => Self::Missing,
            Some(l) if l.deleted_at.is_some() => Self::Gone,
            Some(l) if l.disabled_at.is_some() => Self::Disabled,
            Some(l) => Self::Active(Arc::new(Target {
                id: l.id,
                url: l.url.clone(),
                redirect: l.redirect,
                expires_at: l.expires_at,
            })),
        }
    }

    /// The compact value stored in Redis (format version 1, named in the key):
    /// `m`, `g`, `d`, `b`, or `a|{301|302}|{expiry ms or empty}|{id}|{url}`.
    pub fn encode(&self) -> String {
        match self {
            Self::Missing => "m".into(),
            Self::Gone => "g".into(),
            Self::Disabled => "d".into(),
            Self::Blocked => "b".into(),
            Self::Active(t) => format!(
                "a|{}|{}|{}|{}",
                t.redirect.status(),
                t.expires_at
                    .map(|e| e.timestamp_millis().to_string())
                    .unwrap_or_default(),
                t.id.get(),
                t.url
            ),
        }
    }

    /// Parses [`encode`](Self::encode)'s output; `None` for anything else (treated as a
    /// miss, so a corrupt or foreign value is replaced by a fresh load).
    pub fn decode(text: &str) -> Option<Self> {
        match text {
            "m" => return Some(Self::Missing),
            "g" => return Some(Self::Gone),
            "d" => return Some(Self::Disabled),
            "b" => return Some(Self::Blocked),
            _ => {}
        }
        let mut parts = text.splitn(5, '|');
        if parts.next()? != "a" {
            return None;
        }
        let redirect = RedirectKind::try_from(parts.next()?.parse::<u16>().ok()?).ok()?;
        let expires_at = match parts.next()? {
            "" => None,
            ms => Some(ms_to_datetime(ms.parse().ok()?)),
        };
        let id = Snowflake::from_u64(parts.next()?.parse().ok()?)?;
        let url = TargetUrl::stored(parts.next()?.to_owned()).ok()?;
        Some(Self::Active(Arc::new(Target {
            id,
            url,
            redirect,
            expires_at,
        })))
    }

    /// How long a tier may keep this value, given its normal TTL: tombstones for unknown
    /// codes live `negative`, and nothing outlives its link's expiry by much (an expired
    /// entry is harmless, since expiry is checked when served, but it is dead weight).
    pub fn ttl(&self, normal: Duration, negative: Duration, now: DateTime<Utc>) -> Duration {
        match self {
            Self::Missing => negative,
            Self::Gone | Self::Disabled | Self::Blocked => normal,
            Self::Active(t) => match t.expires_at {
                Some(at) => (at - now)
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .max(Duration::from_secs(1))
                    .min(normal),
                None => normal,
            },
        }
    }
}

/// Why a cache tier did not answer. Never shown to clients: a cache failure is a
/// counter and a fallback.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache call timed out")]
    Timeout,
    #[error("circuit open: cache skipped")]
    BreakerOpen,
    #[error("cache unavailable")]
    Unavailable(#[source] anyhow::Error),
}

/// One tier of the cache.
#[async_trait]
pub trait CacheTier: Send + Sync + 'static {
    /// The value cached for a code.
    async fn get(&self, code: &str) -> Result<Option<Cached>, CacheError>;
    /// Caches a value only if the code has none: how misses are filled, so that a fill
    /// racing a delete can never overwrite the delete's tombstone.
    async fn fill(&self, code: &str, value: &Cached) -> Result<(), CacheError>;
    /// Caches a value, replacing any: for creates and deletes.
    async fn put(&self, code: &str, value: &Cached) -> Result<(), CacheError>;
}

/// Cache settings (`[cache]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// Whether the in-process L1 is used (turn off to measure L2 or the database).
    pub l1: bool,
    /// Most entries L1 holds.
    pub l1_capacity: u64,
    /// Longest an L1 entry lives, in seconds: also the bound on how long an instance
    /// that missed an invalidation can serve a deleted link.
    #[serde(with = "crate::duration::secs")]
    pub l1_ttl_s: Duration,
    /// How long unknown codes are remembered as tombstones, in seconds, in both tiers.
    #[serde(with = "crate::duration::secs")]
    pub negative_ttl_s: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            l1: true,
            l1_capacity: 100_000,
            l1_ttl_s: Duration::from_secs(60),
            negative_ttl_s: Duration::from_secs(30),
        }
    }
}

/// Hit and miss counters per tier (exported as metrics).
#[derive(Debug, Default)]
pub struct CacheStats {
    pub l1_hits: AtomicU64,
    pub l1_misses: AtomicU64,
    pub l2_hits: AtomicU64,
    pub l2_misses: AtomicU64,
    /// L2 calls that failed or timed out.
    pub l2_errors: AtomicU64,
    /// L2 calls skipped because the breaker was open.
    pub l2_skipped: AtomicU64,
    /// Loads from the store.
    pub loads: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Decides whether a live link's target is blocked now (the blocklist as configured).
pub type Screen = Arc<dyn Fn(&Target) -> bool + Send + Sync>;

/// L1 → L2 → store, for the redirect path.
pub struct LinkCache {
    l1: Option<LocalTier>,
    l2: Option<Arc<RedisTier>>,
    stats: Arc<CacheStats>,
    screen: Option<Screen>,
}

impl LinkCache {
    /// A chain of the given tiers (either may be absent).
    pub fn new(l1: Option<LocalTier>, l2: Option<Arc<RedisTier>>) -> Self {
        Self {
            l1,
            l2,
            stats: Arc::new(CacheStats::default()),
            screen: None,
        }
    }

    /// The same chain, answering [`Cached::Blocked`] for live links `screen` blocks. The
    /// screen runs when a value comes from L2 or the store, not on L1 hits: links made
    /// before their domain was blocked stop redirecting without a string scan per
    /// redirect.
    #[must_use]
    pub fn with_screen(self, screen: Screen) -> Self {
        Self {
            screen: Some(screen),
            ..self
        }
    }

    fn screened(&self, value: Cached) -> Cached {
        match (&self.screen, &value) {
            (Some(blocks), Cached::Active(target)) if blocks(target) => Cached::Blocked,
            _ => value,
        }
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<CacheStats> {
        &self.stats
    }

    /// The Redis tier, if configured.
    pub fn redis(&self) -> Option<&Arc<RedisTier>> {
        self.l2.as_ref()
    }

    /// The L1 tier, if on.
    pub fn local(&self) -> Option<&LocalTier> {
        self.l1.as_ref()
    }

    /// What `code` names: from L1, else L2, else `load` (the store); a miss fills the
    /// tiers. Concurrent L1 misses for one code share one L2 lookup and one load.
    ///
    /// # Errors
    /// Only the errors of `load`: a cache tier that fails is skipped. (The cache does
    /// not know what `load` reads from; the error is whatever it returns.)
    pub async fn get_or_load<F, Fut, E>(&self, code: &str, load: F) -> Result<Cached, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Cached, E>>,
        E: Send + Sync + 'static,
    {
        let Some(l1) = &self.l1 else {
            return self.l2_or_load(code, load).await.map_err(Arc::new);
        };
        if let Some(hit) = l1.get_now(code).await {
            bump(&self.stats.l1_hits);
            return Ok(hit);
        }
        bump(&self.stats.l1_misses);
        l1.get_or_try_insert(code, self.l2_or_load(code, load))
            .await
    }

    async fn l2_or_load<F, Fut, E>(&self, code: &str, load: F) -> Result<Cached, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Cached, E>>,
    {
        let mut l2_answered = false;
        if let Some(l2) = &self.l2 {
            match l2.get(code).await {
                Ok(Some(hit)) => {
                    bump(&self.stats.l2_hits);
                    return Ok(self.screened(hit));
                }
                Ok(None) => {
                    bump(&self.stats.l2_misses);
                    l2_answered = true;
                }
                Err(e) => self.count_l2_error(&e),
            }
        }
        bump(&self.stats.loads);
        let value = load().await?;
        if let (Some(l2), true) = (&self.l2, l2_answered) {
            if let Err(e) = l2.fill(code, &value).await {
                self.count_l2_error(&e);
            }
        }
        Ok(self.screened(value))
    }

    fn count_l2_error(&self, e: &CacheError) {
        match e {
            CacheError::BreakerOpen => bump(&self.stats.l2_skipped),
            _ => bump(&self.stats.l2_errors),
        }
    }

    /// Writes a freshly created link through both tiers. An alias may have been cached
    /// as a tombstone while it named nothing, so other instances are told to drop it.
    pub async fn created(&self, code: &str, value: Cached, is_alias: bool) {
        if let Some(l1) = &self.l1 {
            l1.insert(code, value.clone()).await;
        }
        if let Some(l2) = &self.l2 {
            if let Err(e) = l2.put(code, &value).await {
                self.count_l2_error(&e);
            }
            if is_alias {
                l2.publish_invalidation(code).await;
            }
        }
    }

    /// Records that a link is gone: a tombstone in both tiers (replayed to Redis later
    /// if Redis is down now) and an invalidation for every instance's L1.
    pub async fn deleted(&self, code: &str) {
        self.changed(code, Cached::Gone).await;
    }

    /// Records a link's new state, `value`, in both tiers (replayed to Redis later if
    /// Redis is down now) and has every instance's L1 drop what it holds for the code:
    /// for deletes, takedowns and their reversal.
    pub async fn changed(&self, code: &str, value: Cached) {
        if let Some(l1) = &self.l1 {
            l1.insert(code, self.screened(value.clone())).await;
        }
        if let Some(l2) = &self.l2 {
            l2.put_or_queue(code, &value).await;
            l2.publish_invalidation(code).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn active(url: &str, expires: Option<i64>) -> Cached {
        Cached::Active(Arc::new(Target {
            id: Snowflake::from_parts(123_456_789, 3, 7),
            url: TargetUrl::stored(url.into()).unwrap(),
            redirect: RedirectKind::Permanent,
            expires_at: expires.map(|ms| ms_to_datetime(ms as u64)),
        }))
    }

    #[test]
    fn values_round_trip_through_the_compact_encoding() {
        for value in [
            Cached::Missing,
            Cached::Gone,
            Cached::Disabled,
            Cached::Blocked,
            active("https://example.com/a|b?c=d", None),
            active("https://example.com/", Some(1_800_000_000_123)),
        ] {
            assert_eq!(
                Cached::decode(&value.encode()),
                Some(value.clone()),
                "{value:?}"
            );
        }
        assert_eq!(
            active("https://e.com/", None).encode(),
            format!(
                "a|301||{}|https://e.com/",
                Snowflake::from_parts(123_456_789, 3, 7).get()
            )
        );
    }

    #[tokio::test]
    async fn the_screen_blocks_live_links_as_they_enter_l1_and_nothing_else() {
        let cache = LinkCache::new(None, None)
            .with_screen(Arc::new(|t: &Target| t.url.as_str().contains("evil")));
        let load = |v: Cached| move || async move { Ok::<_, ()>(v) };
        for (loaded, expected) in [
            (active("https://evil.example/", None), Cached::Blocked),
            (
                active("https://good.example/", None),
                active("https://good.example/", None),
            ),
            (Cached::Gone, Cached::Gone),
            (Cached::Missing, Cached::Missing),
        ] {
            let got = cache.get_or_load("c", load(loaded)).await.unwrap();
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn foreign_values_decode_as_nothing() {
        for text in [
            "",
            "x",
            "a|307||1|u",
            "a|301|soon|1|u",
            "a|301||-1|u",
            "a|301||1",
        ] {
            assert_eq!(Cached::decode(text), None, "{text:?}");
        }
    }

    #[test]
    fn ttls_respect_tombstones_and_expiry() {
        let now = Utc::now();
        let (normal, negative) = (Duration::from_secs(60), Duration::from_secs(5));
        assert_eq!(Cached::Missing.ttl(normal, negative, now), negative);
        assert_eq!(Cached::Gone.ttl(normal, negative, now), normal);
        let soon = now.timestamp_millis() + 10_000;
        let ttl = active("https://e.com/", Some(soon)).ttl(normal, negative, now);
        assert!(
            ttl <= Duration::from_secs(10) && ttl >= Duration::from_secs(9),
            "{ttl:?}"
        );
        let past = now.timestamp_millis() - 10_000;
        assert_eq!(
            active("https://e.com/", Some(past)).ttl(normal, negative, now),
            Duration::from_secs(1)
        );
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_text_never_panics(text in "\\PC{0,60}") {
            let _ = Cached::decode(&text);
        }
    }
}
