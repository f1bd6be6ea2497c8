//! A link: what a code points to, and the state that decides how a redirect answers.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::cipher::Codec;
use super::codes::Alias;
use super::ids::Snowflake;
use super::target_url::TargetUrl;

/// The HTTP status a redirect answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub enum RedirectKind {
    /// `301 Moved Permanently`: browsers may cache it, so later clicks may not reach us.
    Permanent,
    /// `302 Found` (the default): every click comes back to the service.
    Temporary,
}

impl RedirectKind {
    /// The status code.
    pub fn status(self) -> u16 {
        match self {
            Self::Permanent => 301,
            Self::Temporary => 302,
        }
    }
}

impl From<RedirectKind> for u16 {
    fn from(kind: RedirectKind) -> u16 {
        kind.status()
    }
}

impl TryFrom<u16> for RedirectKind {
    type Error = String;

    fn try_from(status: u16) -> Result<Self, Self::Error> {
        match status {
            301 => Ok(Self::Permanent),
            302 => Ok(Self::Temporary),
            other => Err(format!("redirect must be 301 or 302, not {other}")),
        }
    }
}

/// A stored link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Snowflake ID: names the shard, and (without an alias) the code.
    pub id: Snowflake,
    /// The custom alias, when the link was created with one; it is then the only code.
    pub alias: Option<Alias>,
    /// Where the redirect goes.
    pub url: TargetUrl,
    /// 301 or 302.
    pub redirect: RedirectKind,
    /// When the link was created.
    pub created_at: DateTime<Utc>,
    /// After this instant the link answers 410.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the link was deleted; it then answers 410.
    pub deleted_at: Option<DateTime<Utc>>,
    /// When an operator took the link down (`shortener links disable`); it answers 410
    /// until enabled again.
    pub disabled_at: Option<DateTime<Utc>>,
    /// The tenant that created it; `None` for a link created anonymously.
    pub tenant: Option<TenantId>,
}

/// A tenant: who owns links and keys. Its number is the directory's row ID; nothing
/// else is done with it but comparing and storing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(i64);

impl TenantId {
    /// The tenant of a directory row ID.
    pub const fn new(id: i64) -> Self {
        Self(id)
    }

    /// Its directory row ID, to store.
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Whether a link redirects, as of a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    Active,
    Expired,
    /// Taken down by an operator.
    Disabled,
    Deleted,
}

impl Link {
    /// The code the link is reached by: its alias, or its ID's generated code.
    pub fn code(&self, codec: &Codec) -> String {
        match &self.alias {
            Some(alias) => alias.to_string(),
            None => codec.code(self.id),
        }
    }

    /// The link's state at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> LinkState {
        if self.deleted_at.is_some() {
            LinkState::Deleted
        } else if self.disabled_at.is_some() {
            LinkState::Disabled
        } else if self.expires_at.is_some_and(|at| at <= now) {
            LinkState::Expired
        } else {
            LinkState::Active
        }
    }
}

/// A validated request to create a link (everything but the ID and the time).
#[derive(Debug, Clone)]
pub struct NewLink {
    pub url: TargetUrl,
    pub alias: Option<Alias>,
    pub expires_at: Option<DateTime<Utc>>,
    pub redirect: RedirectKind,
    /// The tenant creating it (`None`: anonymous).
    pub tenant: Option<TenantId>,
}

impl NewLink {
    /// The link this request becomes once it has an ID and a creation time.
    pub fn into_link(self, id: Snowflake, created_at: DateTime<Utc>) -> Link {
        Link {
            id,
            alias: self.alias,
            url: self.url,
            redirect: self.redirect,
            created_at,
            expires_at: self.expires_at,
            deleted_at: None,
            disabled_at: None,
            tenant: self.tenant,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn link(expires_in: Option<i64>, deleted: bool) -> (Link, DateTime<Utc>) {
        let now = Utc::now();
        let link = Link {
            id: Snowflake::from_parts(10_000_000_000, 1, 0),
            alias: None,
            url: TargetUrl::stored("https://example.com/".into()).unwrap(),
            redirect: RedirectKind::Temporary,
            created_at: now,
            expires_at: expires_in.map(|s| now + Duration::seconds(s)),
            deleted_at: deleted.then_some(now),
            disabled_at: None,
            tenant: None,
        };
        (link, now)
    }

    #[test]
    fn state_follows_expiry_and_deletion() {
        let (l, now) = link(None, false);
        assert_eq!(l.state(now), LinkState::Active);
        let (l, now) = link(Some(10), false);
        assert_eq!(l.state(now), LinkState::Active);
        assert_eq!(l.state(now + Duration::seconds(10)), LinkState::Expired);
        let (l, now) = link(Some(10), true);
        assert_eq!(
            l.state(now),
            LinkState::Deleted,
            "deletion wins over expiry"
        );
        let (mut l, now) = link(Some(10), false);
        l.disabled_at = Some(now);
        assert_eq!(
            l.state(now),
            LinkState::Disabled,
            "a takedown wins over expiry"
        );
        l.deleted_at = Some(now);
        assert_eq!(
            l.state(now),
            LinkState::Deleted,
            "deletion wins over a takedown"
        );
    }

    #[test]
    fn an_aliased_link_is_reached_by_its_alias() {
        let codec = Codec::new(
            &crate::domain::cipher::CodeKey::from_bytes([1; 16]),
            Snowflake::from_u64(0).unwrap(),
        );
        let (mut l, _) = link(None, false);
        assert_eq!(l.code(&codec), codec.code(l.id));
        l.alias = Some(Alias::parse("spring-sale").unwrap());
        assert_eq!(l.code(&codec), "spring-sale");
    }

    #[test]
    fn redirect_kind_accepts_only_301_and_302() {
        assert_eq!(RedirectKind::try_from(301), Ok(RedirectKind::Permanent));
        assert_eq!(RedirectKind::try_from(302), Ok(RedirectKind::Temporary));
        assert!(RedirectKind::try_from(307).is_err());
    }
}
