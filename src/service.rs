//! The link service: what shortening, resolving and deleting mean, independent of HTTP.
//! Handlers parse input and shape output; everything in between happens here.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};

use crate::auth::Caller;
use crate::cache::{Cached, LinkCache, Target};
use crate::domain::click::DayCounts;
use crate::domain::clock::ms_to_datetime;
use crate::domain::{
    Alias, Clock, Link, LinkKey, LinkState, NewLink, RedirectKind, Snowflake, SnowflakeGenerator,
    TargetUrl, TenantId, UrlPolicy,
};
use crate::error::ApiError;
use crate::store::clicks::ClickStore;
use crate::store::LinkStore;

/// A request to shorten, as received (validated by [`LinkService::validate`]).
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
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

/// Creates, finds and deletes links.
pub struct LinkService {
    store: Arc<dyn LinkStore>,
    clicks: Arc<dyn ClickStore>,
    cache: LinkCache,
    ids: Arc<SnowflakeGenerator>,
    clock: Arc<dyn Clock>,
    policy: UrlPolicy,
}

impl LinkService {
    /// A service over `store` behind `cache`, with the clicks in `clicks`, minting IDs
    /// with `ids`.
    pub fn new(
        store: Arc<dyn LinkStore>,
        clicks: Arc<dyn ClickStore>,
        cache: LinkCache,
        ids: Arc<SnowflakeGenerator>,
        clock: Arc<dyn Clock>,
        policy: UrlPolicy,
    ) -> Self {
        Self {
            store,
            clicks,
            cache,
            ids,
            clock,
            policy,
        }
    }

    /// The cache of the redirect path.
    pub fn cache(&self) -> &LinkCache {
        &self.cache
    }

    /// The storage behind the service.
    pub fn store(&self) -> &Arc<dyn LinkStore> {
        &self.store
    }

    /// The click store behind the stats.
    pub fn click_store(&self) -> &Arc<dyn ClickStore> {
        &self.clicks
    }

    /// The ID generator.
    pub fn ids(&self) -> &Arc<SnowflakeGenerator> {
        &self.ids
    }

    /// The current time, from the service's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
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
        if let Some(at) = request.expires_at {
            if at <= self.clock.now() {
                return Err(ApiError::unprocessable(
                    "expires_in_past",
                    "expires_at must be in the future",
                ));
            }
        }
        let redirect = match request.redirect {
            None => RedirectKind::Temporary,
            Some(status) => RedirectKind::try_from(status)
                .map_err(|m| ApiError::unprocessable("invalid_redirect", m))?,
        };
        Ok(NewLink {
            url,
            alias,
            // Both stores keep milliseconds; truncating here makes every backend read
            // back exactly what was accepted.
            expires_at: request.expires_at.map(|t| t.trunc_subsecs(3)),
            redirect,
            tenant,
        })
    }

    /// Mints an ID and stores the link; returns only once the row is committed, so a
    /// code that is handed out always resolves.
    ///
    /// # Errors
    /// 409 for a taken alias, 503 when the ID clock or the shard is unavailable.
    pub async fn create(&self, new: NewLink) -> Result<Link, ApiError> {
        let id = self.ids.next_id().await?;
        let link = new.into_link(id, ms_to_datetime(id.unix_ms()));
        self.store.insert(&link).await?;
        // Committed: now warm the cache (a failure here only costs a later miss).
        self.cache
            .created(&link.code(), Cached::of(Some(&link)), link.alias.is_some())
            .await;
        Ok(link)
    }

    /// The link a code names, in any state, read from the store (not the cache).
    ///
    /// # Errors
    /// 404 when no link has the code; 503 when its shard is unavailable.
    pub async fn find(&self, code: &str) -> Result<Link, ApiError> {
        let key = LinkKey::parse(code).ok_or_else(ApiError::not_found)?;
        self.load(&key).await?.ok_or_else(ApiError::not_found)
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

    /// The live links of `tenant` older than `before` (from the newest when `None`),
    /// newest first, at most `limit`.
    ///
    /// # Errors
    /// 503 when a shard is unavailable.
    pub async fn list(
        &self,
        tenant: TenantId,
        before: Option<Snowflake>,
        limit: usize,
    ) -> Result<Vec<Link>, ApiError> {
        Ok(self.store.list_links(tenant, before, limit).await?)
    }

    /// The link a code names and its click counts on each day of `[from, to]` that has
    /// any, if `caller` may read it.
    ///
    /// # Errors
    /// 404 unknown or not the caller's; 503 when its shard is unavailable.
    pub async fn clicks(
        &self,
        caller: &Caller,
        code: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<(Link, Vec<(NaiveDate, DayCounts)>), ApiError> {
        let link = self.find_for(caller, code).await?;
        let days = self.clicks.days(link.id, from, to).await?;
        Ok((link, days))
    }

    async fn load(&self, key: &LinkKey) -> Result<Option<Link>, crate::store::StoreError> {
        Ok(match key {
            LinkKey::Generated(id) => self
                .store
                .get(*id)
                .await?
                // A link created with an alias is reached by its alias only.
                .filter(|l| l.alias.is_none()),
            LinkKey::Alias(alias) => self.store.get_by_alias(alias.as_ref()).await?,
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
                self.load(&key).await.map(|link| Cached::of(link.as_ref()))
            })
            .await
            .map_err(|e| ApiError::from_store(&e))?;
        match cached {
            Cached::Missing => Err(ApiError::not_found()),
            Cached::Gone => Err(deleted()),
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
            return Err(ApiError::new(
                actix_web::http::StatusCode::FORBIDDEN,
                "link_has_no_owner",
                "this link was created without an API key, so nobody can delete it through \
                 the API",
            ));
        }
        if link.deleted_at.is_some() || !self.store.mark_deleted(link.id, self.clock.now()).await? {
            return Err(deleted());
        }
        self.cache.deleted(&link.code()).await;
        Ok(())
    }
}

fn deleted() -> ApiError {
    ApiError::gone("link_deleted", "this link has been deleted")
}

fn expired() -> ApiError {
    ApiError::gone("link_expired", "this link has expired")
}

/// 410 for a link that may not redirect at `now`.
///
/// # Errors
/// When the link is expired or deleted.
pub fn check_state(link: &Link, now: DateTime<Utc>) -> Result<(), ApiError> {
    match link.state(now) {
        LinkState::Active => Ok(()),
        LinkState::Expired => Err(expired()),
        LinkState::Deleted => Err(deleted()),
    }
}
