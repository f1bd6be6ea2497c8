//! The link service: what shortening, resolving, listing, deleting and counting a
//! click mean, independent of HTTP. Handlers parse input and shape output; everything
//! in between happens here, and handlers reach storage, the cache, the ID generator and
//! the click queue only through it.
//!
//! Split by what its callers need, so that each gets only that:
//! - [`Links`]: finding, resolving (the redirect path), listing, deleting and taking
//!   down links: the store behind the cache, the codec, the clock. An operator's
//!   `links disable` needs nothing more.
//! - [`Shortener`]: creating and editing links: [`Links`] plus the URL policy and the
//!   ID generator.
//! - [`Clicks`] (in [`clicks`]): a redirect's click offered to the queue, a link's
//!   counts read back.
//! - [`Health`]: readiness, every storage part asked at most once a second.

mod clicks;

pub use clicks::{ClickInfo, Clicks};

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use serde::Deserialize;

use crate::auth::Caller;
use crate::cache::breaker::BreakerState;
use crate::cache::{Cached, LinkCache, Target};
use crate::domain::cipher::Codec;
use crate::domain::clock::ms_to_datetime;
use crate::domain::{
    Alias, Clock, Cursor, Link, LinkKey, LinkState, NewLink, PageLimit, RedirectKind, Snowflake,
    SnowflakeGenerator, TargetUrl, TenantId, UrlPolicy,
};
use crate::error::{ApiError, Code};
use crate::store::{LinkStore, ListQuery, PartHealth, StoreError};

/// A request to shorten, as the API takes it (validated by [`Shortener::validate`]).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://example.com/a/long/path", "alias": "spring-sale"}))]
pub struct CreateLink {
    /// The URL to shorten: http or https, no credentials, at most `links.max_url_length`
    /// bytes.
    #[schema(
        format = "uri",
        min_length = 1,
        example = "https://example.com/a/long/path"
    )]
    pub url: String,
    /// A custom alias instead of a generated code: 3 to 64 of `A-Z a-z 0-9 - _`, not a
    /// reserved path, not 10 or 11 letters and digits only.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_-]{3,64}$", example = "spring-sale")]
    pub alias: Option<String>,
    /// When the link stops redirecting (RFC 3339).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// 301 or 302 (default).
    #[serde(default)]
    #[schema(minimum = 301, maximum = 302, example = 302)]
    pub redirect: Option<u16>,
}

/// An edit of a link (`PATCH`), as the API takes it: any of the fields; one left out
/// stays as it is.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://example.com/the/new/target", "expires_at": null}))]
pub struct LinkChanges {
    /// A new target: the rules of creation apply (not `null`: a link always has one).
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = String, format = "uri", min_length = 1)]
    pub url: Option<String>,
    /// A new expiry (RFC 3339, in the future), or `null` to clear it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>, nullable)]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// 301 or 302.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = u16, minimum = 301, maximum = 302)]
    pub redirect: Option<u16>,
}

/// A field that may be left out but not given as `null` (`invalid_body`).
fn not_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl LinkChanges {
    /// Whether it asks to change nothing (`{}`, or `[]`, which serde reads as a struct
    /// of no fields).
    pub fn is_empty(&self) -> bool {
        self.url.is_none() && self.expires_at.is_none() && self.redirect.is_none()
    }
}

/// One page of a tenant's links, newest first.
#[derive(Debug)]
pub struct LinkPage {
    pub links: Vec<Link>,
    /// Where the next (older) page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// Which reads a link load is for: management reads (and everything a client acts on)
/// stay on the primary, the redirect path may read a replica.
#[derive(Clone, Copy)]
enum ReadFor {
    Management,
    Redirect,
}

/// Finds, resolves, lists, deletes and takes down links: the store behind the cache,
/// the codec that turns codes into IDs, the clock.
pub struct Links {
    store: Arc<dyn LinkStore>,
    cache: LinkCache,
    codec: Arc<Codec>,
    clock: Arc<dyn Clock>,
}

/// Creates and edits links: [`Links`] plus the URL policy and the ID generator.
pub struct Shortener {
    links: Arc<Links>,
    ids: Arc<SnowflakeGenerator>,
    policy: UrlPolicy,
}

/// Readiness for `/readyz`.
pub struct Health {
    links: Arc<Links>,
    /// The last answer and when it was taken: the shards are asked at most once per
    /// [`READINESS_TTL`], however often `/readyz` is called.
    last: tokio::sync::Mutex<Option<(std::time::Instant, Readiness)>>,
}

/// How long a readiness answer is reused.
pub const READINESS_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// Whether the service can serve: every storage part, and the Redis breaker's state.
#[derive(Debug, Clone)]
pub struct Readiness {
    pub parts: Vec<PartHealth>,
    /// The shards' replicas as their last probes saw them (reported, not deciding).
    pub replicas: Vec<crate::store::ReplicaHealth>,
    /// `None` without Redis.
    pub redis: Option<BreakerState>,
}

impl Readiness {
    /// Whether every storage part can serve redirects: it answered, or it is a shard
    /// whose primary did not but a replica of it is up (its redirects go on from there).
    pub fn ready(&self) -> bool {
        self.parts.iter().all(|p| p.ok || self.covered(p))
    }

    /// Whether some part did not answer (ready or not).
    pub fn degraded(&self) -> bool {
        self.parts.iter().any(|p| !p.ok)
    }

    fn covered(&self, part: &PartHealth) -> bool {
        self.replicas.iter().any(|r| r.shard == part.name && r.up)
    }
}

impl Links {
    /// Links in `store` behind `cache`, reached by codes of `codec`. A `policy` with
    /// blocked domains also screens what enters L1: the blocklist applies to links
    /// stored before it.
    pub fn new(
        store: Arc<dyn LinkStore>,
        cache: LinkCache,
        codec: Arc<Codec>,
        clock: Arc<dyn Clock>,
        policy: &UrlPolicy,
    ) -> Self {
        let cache = if policy.blocked.is_empty() {
            cache
        } else {
            let screen = policy.clone();
            cache.with_screen(Arc::new(move |t: &Target| {
                screen.blocks_stored(t.url.as_str())
            }))
        };
        Self {
            store,
            cache,
            codec,
            clock,
        }
    }

    /// The cache of the redirect path.
    pub fn cache(&self) -> &LinkCache {
        &self.cache
    }

    /// The deployment's codec: which code names which ID.
    pub fn codec(&self) -> &Codec {
        &self.codec
    }

    /// The code a link is reached by: its alias, or its generated code.
    pub fn code_of(&self, link: &Link) -> String {
        link.code(&self.codec)
    }

    /// The current time, from the service's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}

impl Health {
    /// Readiness of the storage under `links`.
    pub fn new(links: Arc<Links>) -> Self {
        Self {
            links,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// Asks every storage part for a trivial answer, for `/readyz`: at most once per
    /// [`READINESS_TTL`]. Concurrent callers wait for the one check under way (the lock
    /// is held across it), so a flood of `/readyz` cannot load the shards.
    pub async fn readiness(&self) -> Readiness {
        let mut last = self.last.lock().await;
        if let Some((at, readiness)) = last.as_ref() {
            if at.elapsed() < READINESS_TTL {
                return readiness.clone();
            }
        }
        let store = &self.links.store;
        let fresh = Readiness {
            parts: store.health().await,
            replicas: store.replicas(),
            redis: self.links.cache.redis().map(|r| r.breaker_state()),
        };
        *last = Some((std::time::Instant::now(), fresh.clone()));
        fresh
    }
}

impl Shortener {
    /// Creates links in `links`, checking targets against `policy`, minting IDs with
    /// `ids`.
    pub fn new(links: Arc<Links>, ids: Arc<SnowflakeGenerator>, policy: UrlPolicy) -> Self {
        Self { links, ids, policy }
    }

    /// The ID generator (its counters are metrics).
    pub fn ids(&self) -> &Arc<SnowflakeGenerator> {
        &self.ids
    }

    /// Turns a request into a [`NewLink`], or says which rule it breaks.
    ///
    /// # Errors
    /// 422 with a specific code for a bad URL, alias, expiry or redirect kind.
    pub fn validate(
        &self,
        request: CreateLink,
        tenant: Option<TenantId>,
    ) -> Result<NewLink, ApiError> {
        let url = TargetUrl::parse(&request.url, &self.policy)?;
        let alias = request.alias.as_deref().map(Alias::parse).transpose()?;
        Ok(NewLink {
            url,
            alias,
            expires_at: self.expiry(request.expires_at)?,
            redirect: request
                .redirect
                .map(redirect_kind)
                .transpose()?
                .unwrap_or(RedirectKind::Temporary),
            tenant,
        })
    }

    /// An expiry as accepted: in the future, and in milliseconds (both stores keep
    /// milliseconds; truncating here makes every backend read back exactly what was
    /// accepted).
    fn expiry(&self, at: Option<DateTime<Utc>>) -> Result<Option<DateTime<Utc>>, ApiError> {
        match at {
            Some(at) if at <= self.links.now() => Err(ApiError::new(
                Code::ExpiresInPast,
                "expires_at must be in the future",
            )),
            at => Ok(at.map(|t| t.trunc_subsecs(3))),
        }
    }

    /// Edits a link of the caller's: its target, expiry or redirect kind, with the rules
    /// of creation. Every cache tier on every instance learns the new link at once
    /// (Redis, and through it each instance's L1; an instance that missed the message
    /// serves the old target at most `cache.l1_ttl_s` longer, as for deletes). An
    /// empty change is no change.
    ///
    /// # Errors
    /// 404 unknown or another tenant's, 403 created anonymously, 410 deleted, 422 a
    /// value breaks a rule, 503 its shard is unavailable.
    pub async fn update(
        &self,
        caller: &Caller,
        code: &str,
        changes: LinkChanges,
    ) -> Result<Link, ApiError> {
        if changes.is_empty() {
            return Err(ApiError::new(
                Code::NoChanges,
                "the body changes nothing: give url, expires_at or redirect",
            ));
        }
        let mut link = self.links.find_for(caller, code).await?;
        if !caller.can_manage(&link) {
            return Err(no_owner());
        }
        if link.deleted_at.is_some() {
            return Err(deleted());
        }
        if let Some(url) = &changes.url {
            link.url = TargetUrl::parse(url, &self.policy)?;
        }
        if let Some(at) = changes.expires_at {
            link.expires_at = self.expiry(at)?;
        }
        if let Some(status) = changes.redirect {
            link.redirect = redirect_kind(status)?;
        }
        if !self.links.store.update(&link).await? {
            return Err(deleted());
        }
        self.links
            .cache
            .changed(&self.links.code_of(&link), Cached::of(Some(&link)))
            .await;
        Ok(link)
    }

    /// Mints an ID and stores the link; returns only once the row is committed, so a
    /// code that is handed out always resolves.
    ///
    /// # Errors
    /// 409 for a taken alias, 503 when the ID clock or the shard is unavailable.
    pub async fn create(&self, new: NewLink) -> Result<Link, ApiError> {
        let id = self.ids.next_id().await?;
        let mut link = new.into_link(id, ms_to_datetime(id.unix_ms()));
        let mut attempts = 0;
        loop {
            match self.links.store.insert(&link).await {
                Ok(()) => break,
                // Another instance minted this ID: it shares our worker ID. Loud, and
                // harmless to this caller: the next ID is tried.
                Err(StoreError::DuplicateId(id)) if attempts < DUPLICATE_RETRIES => {
                    attempts += 1;
                    self.ids.stats().duplicates.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        id = id.get(),
                        worker_id = id.worker(),
                        "a link with this ID exists already: another instance runs with the \
                         same worker_id; give each instance its own"
                    );
                    let id = self.ids.next_id().await?;
                    link.id = id;
                    link.created_at = ms_to_datetime(id.unix_ms());
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Committed: now warm the cache (a failure here only costs a later miss).
        self.links
            .cache
            .created(
                &self.links.code_of(&link),
                Cached::of(Some(&link)),
                link.alias.is_some(),
            )
            .await;
        Ok(link)
    }
}

impl Links {
    /// The link a code names, in any state, read from the store (not the cache).
    ///
    /// # Errors
    /// 404 when no link has the code; 503 when its shard is unavailable.
    pub async fn find(&self, code: &str) -> Result<Link, ApiError> {
        let key = LinkKey::parse(code).ok_or_else(ApiError::not_found)?;
        self.load(&key, ReadFor::Management)
            .await?
            .ok_or_else(ApiError::not_found)
    }

    /// The link a code names, if `caller` may read it: `404` otherwise, exactly as for
    /// a code that names nothing, so another tenant's links do not leak.
    ///
    /// # Errors
    /// 404 unknown or not the caller's; 503 when its shard is unavailable.
    pub async fn find_for(&self, caller: &Caller, code: &str) -> Result<Link, ApiError> {
        let link = self.find(code).await?;
        if caller.can_read(&link) {
            Ok(link)
        } else {
            Err(ApiError::not_found())
        }
    }

    /// The link a code names, as its owner sees it: also when expired, but 410 once
    /// deleted.
    ///
    /// # Errors
    /// 404 unknown or not the caller's; 410 deleted; 503 when its shard is unavailable.
    pub async fn show(&self, caller: &Caller, code: &str) -> Result<Link, ApiError> {
        let link = self.find_for(caller, code).await?;
        if link.state(self.now()) == LinkState::Deleted {
            return Err(deleted());
        }
        Ok(link)
    }

    /// The live links of `tenant` older than `after` (from the newest when `None`),
    /// newest first, at most `limit`, and where the next page starts.
    ///
    /// # Errors
    /// 503 when a shard is unavailable.
    pub async fn list(
        &self,
        tenant: TenantId,
        after: Option<Cursor>,
        limit: PageLimit,
    ) -> Result<LinkPage, ApiError> {
        let limit = limit.get();
        let links = self
            .store
            .list_links(ListQuery {
                tenant,
                before: after.map_or(Snowflake::MAX, |c| self.codec.id_of(c.number())),
                limit,
            })
            .await?;
        let next = (links.len() == limit)
            .then(|| {
                links
                    .last()
                    .map(|l| Cursor::after(self.codec.number_of(l.id)))
            })
            .flatten();
        Ok(LinkPage { links, next })
    }

    /// The link `key` names, read for `path` (the redirect path may read a replica).
    async fn load(
        &self,
        key: &LinkKey,
        path: ReadFor,
    ) -> Result<Option<Link>, crate::store::StoreError> {
        Ok(match key {
            LinkKey::Generated(number) => {
                let id = self.codec.id_of(*number);
                let link = match path {
                    ReadFor::Management => self.store.get(id).await?,
                    ReadFor::Redirect => self.store.resolve(id).await?,
                };
                // A link created with an alias is reached by its alias only.
                link.filter(|l| l.alias.is_none())
            }
            LinkKey::Alias(alias) => match path {
                ReadFor::Management => self.store.get_by_alias(alias.as_ref()).await?,
                ReadFor::Redirect => self.store.resolve_alias(alias.as_ref()).await?,
            },
        })
    }

    /// Where a code redirects now, through the cache: the redirect path.
    ///
    /// # Errors
    /// 404 unknown, 410 expired or deleted, 503 when the cache cannot answer and the
    /// link's shard is unavailable.
    pub async fn resolve(&self, code: &str) -> Result<Arc<Target>, ApiError> {
        // A code that cannot name a link is answered without touching any tier.
        let key = LinkKey::parse(code).ok_or_else(ApiError::not_found)?;
        let cached = self
            .cache
            .get_or_load(code, || async {
                self.load(&key, ReadFor::Redirect)
                    .await
                    .map(|link| Cached::of(link.as_ref()))
            })
            .await
            .map_err(|e| ApiError::from_store(&e))?;
        match cached {
            Cached::Missing => Err(ApiError::not_found()),
            Cached::Gone => Err(deleted()),
            Cached::Disabled => Err(disabled()),
            Cached::Blocked => Err(ApiError::new(
                Code::LinkBlocked,
                "this link points to a blocked domain",
            )),
            Cached::Active(target) => {
                if target.expires_at.is_some_and(|at| at <= self.clock.now()) {
                    return Err(expired());
                }
                Ok(target)
            }
        }
    }

    /// Deletes the link a code names, when it belongs to the caller's tenant; it answers
    /// 410 from then on.
    ///
    /// # Errors
    /// 404 unknown or another tenant's, 403 created anonymously, 410 already deleted,
    /// 503 shard unavailable.
    pub async fn delete(&self, caller: &Caller, code: &str) -> Result<(), ApiError> {
        let link = self.find_for(caller, code).await?;
        if !caller.can_manage(&link) {
            return Err(no_owner());
        }
        if link.deleted_at.is_some() || !self.store.mark_deleted(link.id, self.clock.now()).await? {
            return Err(deleted());
        }
        self.cache.deleted(&self.code_of(&link)).await;
        Ok(())
    }
}

impl Links {
    /// An operator's takedown (`disabled`) or its reversal: the link answers 410
    /// `link_disabled` from now on, or redirects again, on every instance (every cache
    /// tier is updated and told). Returns false when the link was in that state already.
    ///
    /// # Errors
    /// 404 unknown, 410 deleted, 503 its shard is unavailable.
    pub async fn set_disabled(&self, code: &str, disabled: bool) -> Result<bool, ApiError> {
        let link = self.find(code).await?;
        if link.deleted_at.is_some() {
            return Err(deleted());
        }
        let at = disabled.then(|| self.clock.now());
        let changed = self.store.set_disabled(link.id, at).await?;
        let link = Link {
            disabled_at: at,
            ..link
        };
        // Also when nothing changed: a cache that missed the first call is set right.
        self.cache
            .changed(&self.code_of(&link), Cached::of(Some(&link)))
            .await;
        Ok(changed)
    }
}

/// How often a shorten retries with a fresh ID after finding its ID used.
const DUPLICATE_RETRIES: u32 = 3;

fn deleted() -> ApiError {
    ApiError::new(Code::LinkDeleted, "this link has been deleted")
}

fn no_owner() -> ApiError {
    ApiError::new(
        Code::LinkHasNoOwner,
        "this link was created without an API key, so nobody can change or delete it \
         through the API",
    )
}

fn redirect_kind(status: u16) -> Result<RedirectKind, ApiError> {
    RedirectKind::try_from(status).map_err(|m| ApiError::new(Code::InvalidRedirect, m))
}

fn disabled() -> ApiError {
    ApiError::new(Code::LinkDisabled, "this link has been taken down")
}

fn expired() -> ApiError {
    ApiError::new(Code::LinkExpired, "this link has expired")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ReplicaHealth;

    fn part(name: &str, ok: bool) -> PartHealth {
        PartHealth {
            name: name.into(),
            ok,
            latency_ms: 1.0,
            error: None,
        }
    }

    fn replica(shard: &str, up: bool) -> ReplicaHealth {
        ReplicaHealth {
            shard: shard.into(),
            replica: "r0".into(),
            url: "postgres://r".into(),
            up,
            lag_ms: Some(0),
            read: up,
            error: None,
        }
    }

    #[test]
    fn a_shard_down_keeps_the_instance_ready_only_while_a_replica_of_it_is_up() {
        let readiness = |parts, replicas| Readiness {
            parts,
            replicas,
            redis: None,
        };
        let all_up = readiness(vec![part("s0", true), part("s1", true)], vec![]);
        assert!(all_up.ready() && !all_up.degraded());
        let s1_down = readiness(vec![part("s0", true), part("s1", false)], vec![]);
        assert!(!s1_down.ready());
        let covered = readiness(
            vec![part("s0", true), part("s1", false)],
            vec![replica("s1", true)],
        );
        assert!(covered.ready() && covered.degraded());
        let other_replica = readiness(
            vec![part("s0", true), part("s1", false)],
            vec![replica("s0", true)],
        );
        assert!(!other_replica.ready());
        let replica_down = readiness(vec![part("s1", false)], vec![replica("s1", false)]);
        assert!(!replica_down.ready());
    }
}
