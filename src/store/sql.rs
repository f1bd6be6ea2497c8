//! The statements of the links and of the directory (tenants, keys, the code scheme)
//! and their row mappings, written once for both backends: PostgreSQL and SQLite run
//! the same text.
//!
//! What makes one text serve both:
//! - placeholders are `$1`, `$2`, … numbered in the order they first appear (PostgreSQL
//!   binds `$N` by its number; SQLite reads `$N` as a named parameter and numbers it by
//!   first appearance, so the two agree only in that order);
//! - a parameter tested for NULL is written `CAST($n AS TIMESTAMPTZ)` (PostgreSQL must
//!   know its type; SQLite takes any type name there);
//! - times are given by the service, never a column default (`now()` exists in one of
//!   them only), and bind as `TIMESTAMPTZ` on PostgreSQL and as Unix milliseconds on
//!   SQLite, each backend's [`Columns`] reading them back;
//! - rows are read by column name, once, in [`link_from_row`] and [`key_from_row`].
//!
//! What stays apart, and why: SQLite keeps aliases in the same file as the links, so it
//! finds a link by its alias with one join; PostgreSQL keeps aliases in the directory
//! shard, apart from the link's own shard, so it asks the directory first
//! (`store::postgres::links`).

use chrono::{DateTime, Utc};

use crate::domain::{Alias, Link, RedirectKind, Snowflake, TargetUrl, TenantId};
use crate::store::directory::KeyRecord;

/// The columns of a link row, as [`link_from_row`] reads them by name.
macro_rules! link_columns {
    () => {
        "id, alias, url, redirect, created_at, expires_at, deleted_at, tenant_id, disabled_at"
    };
}

/// `$1` id, `$2` alias, `$3` url, `$4` redirect, `$5` created_at, `$6` expires_at,
/// `$7` tenant.
pub const INSERT_LINK: &str =
    "INSERT INTO links (id, alias, url, redirect, created_at, expires_at, tenant_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// `$1` id.
pub const SELECT_LINK: &str = concat!("SELECT ", link_columns!(), " FROM links WHERE id = $1");

/// A tenant's live links below an ID, newest first: `$1` tenant, `$2` before, `$3` limit.
pub const LIST_LINKS: &str = concat!(
    "SELECT ",
    link_columns!(),
    " FROM links WHERE tenant_id = $1 AND deleted_at IS NULL AND id < $2 \
     ORDER BY tenant_id, id DESC LIMIT $3"
);

/// `$1` deleted_at, `$2` id; changes nothing for a link deleted already.
pub const MARK_DELETED: &str =
    "UPDATE links SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL";

/// Takes a link down (`$1` a time) or puts it back (`$1` NULL), `$2` id; changes
/// nothing when it is in that state already.
pub const SET_DISABLED: &str = "UPDATE links SET disabled_at = $1 \
    WHERE id = $2 AND (disabled_at IS NULL) <> (CAST($1 AS TIMESTAMPTZ) IS NULL)";

/// Whether any link exists.
pub const ANY_LINK: &str = "SELECT EXISTS (SELECT 1 FROM links)";

/// `$1` url, `$2` redirect, `$3` expires_at, `$4` id; not for a deleted link.
pub const UPDATE_LINK: &str = "UPDATE links SET url = $1, redirect = $2, expires_at = $3 \
    WHERE id = $4 AND deleted_at IS NULL";

/// `$1` alias, `$2` link id, `$3` created_at; changes nothing when the alias is taken.
pub const RESERVE_ALIAS: &str = "INSERT INTO aliases (alias, link_id, created_at) \
    VALUES ($1, $2, $3) ON CONFLICT (alias) DO NOTHING";

/// A row as one backend reads its columns, by name.
pub trait Columns {
    /// The backend's error.
    type Error;
    /// An integer column (any width), NULL as `None`.
    fn int(&self, column: &str) -> Result<Option<i64>, Self::Error>;
    /// A text column, NULL as `None`.
    fn text(&self, column: &str) -> Result<Option<String>, Self::Error>;
    /// A binary column, NULL as `None`.
    fn bytes(&self, column: &str) -> Result<Option<Vec<u8>>, Self::Error>;
    /// A time column, NULL as `None`.
    fn time(&self, column: &str) -> Result<Option<DateTime<Utc>>, Self::Error>;
    /// A value the row holds that no link can have.
    fn invalid(column: &str, why: String) -> Self::Error;
}

/// The link a row of the link columns holds.
///
/// # Errors
/// The backend's, or [`Columns::invalid`] for a value no link can have.
pub fn link_from_row<R: Columns>(row: &R) -> Result<Link, R::Error> {
    let required = |column: &str| R::invalid(column, "is NULL".into());
    let raw_id = row.int("id")?.ok_or_else(|| required("id"))?;
    let status = row.int("redirect")?.ok_or_else(|| required("redirect"))?;
    Ok(Link {
        id: Snowflake::from_i64(raw_id)
            .ok_or_else(|| R::invalid("id", format!("{raw_id} is not an ID")))?,
        alias: row
            .text("alias")?
            .map(Alias::stored)
            .transpose()
            .map_err(|e| R::invalid("alias", e.to_string()))?,
        url: TargetUrl::stored(row.text("url")?.ok_or_else(|| required("url"))?)
            .map_err(|e| R::invalid("url", e.to_string()))?,
        redirect: u16::try_from(status)
            .map_err(|e| e.to_string())
            .and_then(RedirectKind::try_from)
            .map_err(|why| R::invalid("redirect", why))?,
        created_at: row
            .time("created_at")?
            .ok_or_else(|| required("created_at"))?,
        expires_at: row.time("expires_at")?,
        deleted_at: row.time("deleted_at")?,
        tenant: row.int("tenant_id")?.map(TenantId::new),
        disabled_at: row.time("disabled_at")?,
    })
}

/// Creates a tenant or, when it exists, sets its quota if one is given: `$1` name,
/// `$2` quota, `$3` created_at; its ID.
pub const UPSERT_TENANT: &str = "INSERT INTO tenants (name, shorten_per_minute, created_at) \
    VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE \
    SET shorten_per_minute = COALESCE(EXCLUDED.shorten_per_minute, tenants.shorten_per_minute) \
    RETURNING id";

/// `$1` tenant ID, `$2` secret hash, `$3` created_at; the key's ID.
pub const INSERT_KEY: &str = "INSERT INTO api_keys (tenant_id, secret_hash, created_at) \
    VALUES ($1, $2, $3) RETURNING id";

/// The columns [`key_from_row`] reads.
macro_rules! key_columns {
    () => {
        "SELECT k.id, k.tenant_id, t.name, k.secret_hash, k.created_at, k.revoked_at, \
         t.shorten_per_minute FROM api_keys k JOIN tenants t ON t.id = k.tenant_id"
    };
}

/// One key with its tenant: `$1` key ID.
pub const SELECT_KEY: &str = concat!(key_columns!(), " WHERE k.id = $1");

/// Every key, oldest first.
pub const LIST_KEYS: &str = concat!(key_columns!(), " ORDER BY k.id");

/// `$1` revoked_at, `$2` key ID; changes nothing for a key revoked already.
pub const REVOKE_KEY: &str =
    "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";

/// The deployment's code scheme (one row, or none yet).
pub const SELECT_SCHEME: &str = "SELECT key_check, plain_below FROM code_scheme WHERE id = 1";

/// Records the code scheme unless one is: `$1` key_check, `$2` plain_below,
/// `$3` recorded_at.
pub const RECORD_SCHEME: &str = "INSERT INTO code_scheme (id, key_check, plain_below, \
    recorded_at) VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING";

/// The key a row of the key columns holds.
///
/// # Errors
/// The backend's, or [`Columns::invalid`] for a value no key can have.
pub fn key_from_row<R: Columns>(row: &R) -> Result<KeyRecord, R::Error> {
    let required = |column: &str| R::invalid(column, "is NULL".into());
    let quota = row.int("shorten_per_minute")?;
    Ok(KeyRecord {
        id: row.int("id")?.ok_or_else(|| required("id"))?,
        tenant_id: TenantId::new(row.int("tenant_id")?.ok_or_else(|| required("tenant_id"))?),
        tenant: row.text("name")?.ok_or_else(|| required("name"))?,
        secret_hash: row
            .bytes("secret_hash")?
            .ok_or_else(|| required("secret_hash"))?,
        created_at: row
            .time("created_at")?
            .ok_or_else(|| required("created_at"))?,
        revoked_at: row.time("revoked_at")?,
        shorten_per_minute: quota
            .map(u32::try_from)
            .transpose()
            .map_err(|e| R::invalid("shorten_per_minute", e.to_string()))?,
    })
}
