//! Tenants and API keys.
//!
//! A key reads `shk_{id}_{secret}`: the ID finds the stored row in one indexed lookup,
//! the 40-character secret (about 238 random bits) is what proves possession. Only the
//! SHA-256 of the secret is stored, and the comparison with it runs in constant time. A
//! hash without a salt or a slow KDF is right here: the secret is random and long, so
//! there is nothing to guess from a leaked hash; slow hashing protects passwords, which
//! are not.
//!
//! Verified keys are cached in process for `auth.key_cache_ttl_s`, so the API does not
//! read the directory on every call; a revocation takes effect on every instance within
//! that time.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::HttpRequest;
use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::{Link, TenantId};
use crate::error::{ApiError, Code};
use crate::store::{Directory, KeyRecord, NewKey};

/// Every key starts with this, so leaked keys are easy to spot (secret scanners).
pub const KEY_PREFIX: &str = "shk_";
/// Characters of the secret part.
pub const SECRET_LEN: usize = 40;

/// Authentication settings (`[auth]`).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Whether links may be created without a key. Unset: on in the embedded mode, off
    /// in the distributed mode.
    pub allow_anonymous: Option<bool>,
    /// How long a verified key is trusted without asking the directory again, seconds
    /// (0: ask every time). A revoked key stops working within this time.
    #[serde(with = "crate::duration::secs::option", default)]
    pub key_cache_ttl_s: Option<Duration>,
}

impl AuthSettings {
    /// The key cache's lifetime (default 10 s).
    pub fn key_cache_ttl(&self) -> Duration {
        self.key_cache_ttl_s.unwrap_or(Duration::from_secs(10))
    }
}

/// A key as handed to its owner once: the token and what the directory keeps.
pub struct IssuedKey {
    /// `shk_{id}_{secret}`: shown once, never stored.
    pub token: String,
    /// The stored record.
    pub record: KeyRecord,
}

/// SHA-256 of a key's secret part.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Splits `shk_{id}_{secret}` into the ID and the secret; `None` when malformed.
pub fn parse_token(token: &str) -> Option<(i64, &str)> {
    let rest = token.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    // Canonical digits only: `+1` or `01` would name key 1 too, so one key would have
    // several spellings.
    let canonical = !id.is_empty()
        && id.len() <= 19
        && id.bytes().all(|b| b.is_ascii_digit())
        && !id.starts_with('0');
    let id: i64 = id.parse().ok().filter(|id| canonical && *id > 0)?;
    (secret.len() == SECRET_LEN && secret.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some((id, secret))
}

/// Creates a key for `tenant` (and the tenant, when new); the token is returned once.
///
/// # Errors
/// When the directory cannot be written.
pub async fn issue_key(
    store: &dyn Directory,
    tenant: &str,
    shorten_per_minute: Option<u32>,
) -> Result<IssuedKey, crate::store::StoreError> {
    let secret = Alphanumeric.sample_string(&mut rand::rng(), SECRET_LEN);
    let record = store
        .create_key(NewKey {
            tenant,
            shorten_per_minute,
            secret_hash: &hash_secret(&secret),
        })
        .await?;
    Ok(IssuedKey {
        token: format!("{KEY_PREFIX}{}_{secret}", record.id),
        record,
    })
}

/// Who is calling the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// No key (allowed only with `allow_anonymous`).
    Anonymous,
    /// A valid key of a tenant.
    Tenant {
        tenant: TenantId,
        key: i64,
        /// The tenant's own shortening quota, when it has one.
        shorten_per_minute: Option<u32>,
    },
}

impl Caller {
    /// The tenant, when there is one.
    pub fn tenant(&self) -> Option<TenantId> {
        match self {
            Self::Anonymous => None,
            Self::Tenant { tenant, .. } => Some(*tenant),
        }
    }

    /// Whether the caller may read the link and its stats: its own tenant's links, and
    /// links created anonymously (public, as their redirect is).
    pub fn can_read(&self, link: &Link) -> bool {
        link.tenant.is_none() || link.tenant == self.tenant()
    }

    /// Whether the caller may delete the link: only its tenant. A link created without
    /// a key has no owner and cannot be deleted through the API.
    pub fn can_manage(&self, link: &Link) -> bool {
        link.tenant.is_some() && link.tenant == self.tenant()
    }
}

/// Tells callers apart by their `Authorization` header.
pub struct Authenticator {
    store: Arc<dyn Directory>,
    allow_anonymous: bool,
    /// Key ID → the stored key (or `None`: no such key), for `key_cache_ttl`.
    keys: moka::future::Cache<i64, Option<Arc<KeyRecord>>>,
}

impl Authenticator {
    /// The directory the keys are read from.
    pub fn directory(&self) -> &Arc<dyn Directory> {
        &self.store
    }

    /// An authenticator over the directory in `store`.
    pub fn new(store: Arc<dyn Directory>, allow_anonymous: bool, ttl: Duration) -> Self {
        Self {
            store,
            allow_anonymous,
            keys: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The caller of `req`: a tenant with a valid key, or anonymous when there is no
    /// `Authorization` header.
    ///
    /// # Errors
    /// 401 for a malformed, unknown or revoked key; 503 when the directory is down.
    pub async fn identify(&self, req: &HttpRequest) -> Result<Caller, ApiError> {
        let mut values = req.headers().get_all(header::AUTHORIZATION);
        let Some(value) = values.next() else {
            return Ok(Caller::Anonymous);
        };
        if values.next().is_some() {
            // Which one would count is a guess a proxy and this service may make
            // differently: refuse rather than pick.
            return Err(ApiError::new(
                Code::DuplicateAuthorization,
                "send one Authorization header",
            ));
        }
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| {
                ApiError::new(
                    Code::InvalidAuthorization,
                    "send the API key as Authorization: Bearer shk_…",
                )
            })?;
        let invalid = || ApiError::new(Code::InvalidApiKey, "the API key is not valid");
        let (id, secret) = parse_token(token).ok_or_else(invalid)?;
        let store = self.store.clone();
        let record = self
            .keys
            .try_get_with(id, async move {
                store.find_key(id).await.map(|k| k.map(Arc::new))
            })
            .await
            .map_err(|e| ApiError::from_store(&e))?;
        let record = record.ok_or_else(invalid)?;
        // Compared in constant time whatever else is true, so timing tells nothing.
        let matches: bool = hash_secret(secret)
            .as_slice()
            .ct_eq(&record.secret_hash)
            .into();
        if !matches {
            return Err(invalid());
        }
        if record.revoked_at.is_some() {
            return Err(ApiError::new(
                Code::ApiKeyRevoked,
                "the API key has been revoked",
            ));
        }
        Ok(Caller::Tenant {
            tenant: record.tenant_id,
            key: record.id,
            shorten_per_minute: record.shorten_per_minute,
        })
    }

    /// The calling tenant, refusing anonymous callers whatever `allow_anonymous` says.
    ///
    /// # Errors
    /// 401 without a valid key.
    pub async fn require_tenant(&self, req: &HttpRequest) -> Result<TenantId, ApiError> {
        self.identify(req)
            .await?
            .tenant()
            .ok_or_else(authentication_required)
    }

    /// The caller, refusing anonymous ones unless `allow_anonymous` is on.
    ///
    /// # Errors
    /// 401 without a valid key when anonymous use is off.
    pub async fn caller(&self, req: &HttpRequest) -> Result<Caller, ApiError> {
        match self.identify(req).await? {
            Caller::Anonymous if !self.allow_anonymous => Err(authentication_required()),
            caller => Ok(caller),
        }
    }
}

fn authentication_required() -> ApiError {
    ApiError::new(
        Code::AuthenticationRequired,
        "this needs an API key: Authorization: Bearer shk_…",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_token_splits_into_id_and_secret() {
        let secret = "a".repeat(SECRET_LEN);
        let token = format!("shk_42_{secret}");
        assert_eq!(parse_token(&token), Some((42, secret.as_str())));
        for bad in [
            format!("shk_0_{secret}"),
            format!("shk_-1_{secret}"),
            format!("shk_+42_{secret}"),
            format!("shk_042_{secret}"),
            format!("shk__{secret}"),
            format!("shk_99999999999999999999_{secret}"),
            format!("shk_x_{secret}"),
            format!("sk_42_{secret}"),
            format!("shk_42_{}", &secret[1..]),
            format!("shk_42_{}!", &secret[1..]),
            "shk_42".into(),
        ] {
            assert_eq!(parse_token(&bad), None, "{bad}");
        }
    }

    fn link(tenant: Option<TenantId>) -> Link {
        Link {
            id: crate::domain::Snowflake::from_parts(1, 1, 1),
            alias: None,
            url: crate::domain::TargetUrl::stored("https://example.com/".into()).unwrap(),
            redirect: crate::domain::RedirectKind::Temporary,
            created_at: chrono::Utc::now(),
            expires_at: None,
            deleted_at: None,
            disabled_at: None,
            tenant,
        }
    }

    #[test]
    fn tenants_see_their_own_and_public_links_and_manage_only_their_own() {
        let a = Caller::Tenant {
            tenant: TenantId::new(1),
            key: 1,
            shorten_per_minute: None,
        };
        let b = Caller::Tenant {
            tenant: TenantId::new(2),
            key: 2,
            shorten_per_minute: None,
        };
        let (of_a, public) = (link(Some(TenantId::new(1))), link(None));
        assert!(a.can_read(&of_a) && a.can_manage(&of_a));
        assert!(!b.can_read(&of_a) && !b.can_manage(&of_a));
        assert!(!Caller::Anonymous.can_read(&of_a));
        for c in [&a, &b, &Caller::Anonymous] {
            assert!(c.can_read(&public), "public links are readable");
            assert!(!c.can_manage(&public), "nobody owns a public link");
        }
    }

    proptest! {
        #[test]
        fn any_string_parses_or_is_refused_without_panicking(s in ".{0,80}") {
            if let Some((id, secret)) = parse_token(&s) {
                prop_assert!(id > 0);
                prop_assert_eq!(secret.len(), SECRET_LEN);
            }
        }

        /// Near-valid tokens (most of them one flaw away from valid, many valid): only a
        /// canonical positive ID with a 40-character alphanumeric secret parses, and it
        /// parses to exactly its parts.
        #[test]
        fn only_canonical_tokens_parse_and_to_their_parts(
            id in "(0|01|\\+1|-1|[1-9][0-9]{0,19})",
            secret in "[A-Za-z0-9]{39,41}|[A-Za-z0-9]{20}[-_ ][A-Za-z0-9]{19}",
        ) {
            let token = format!("shk_{id}_{secret}");
            let canonical = id.parse::<i64>().is_ok_and(|n| n > 0 && n.to_string() == id);
            let valid = canonical
                && secret.len() == SECRET_LEN
                && secret.bytes().all(|b| b.is_ascii_alphanumeric());
            match parse_token(&token) {
                Some((n, s)) => {
                    prop_assert!(valid, "{token} parsed");
                    prop_assert_eq!(n.to_string(), id);
                    prop_assert_eq!(s, secret.as_str());
                }
                None => prop_assert!(!valid, "{token} refused"),
            }
        }
    }
}
