//! The directory contract: every function here runs unchanged against each `Directory`
//! implementation (the directory shard of sharded PostgreSQL, and embedded SQLite).

#[macro_use]
mod support;

use std::sync::Arc;

use chrono::{Duration, Utc};
use shortener::store::postgres::ShardedPostgres;
use shortener::store::sqlite::{SqliteSettings, SqliteStore};
use shortener::store::{Directory, LinkStore, NewKey};
use support::{fresh_database, settings, shard, t0};

/// A directory, the store it lives in (closed at the end) and what must live as long.
struct Subject {
    store: Arc<dyn Directory>,
    owner: Arc<dyn LinkStore>,
    _dir: Option<tempfile::TempDir>,
}

impl Subject {
    async fn close(&self) {
        self.owner.close().await;
    }
}

/// Two shards; the directory is the second, so the contract sees it is not just "the
/// first shard".
/// A key to create for `tenant`, with its quota, holding `hash`.
fn new_key<'a>(tenant: &'a str, quota: Option<u32>, hash: &'a [u8]) -> NewKey<'a> {
    NewKey {
        tenant,
        shorten_per_minute: quota,
        secret_hash: hash,
    }
}

async fn postgres() -> Subject {
    let (a, b) = (fresh_database().await, fresh_database().await);
    let mut s = settings(vec![
        shard("s0", &a, "2024-01-01T00:00:00Z".parse().unwrap()),
        shard("s1", &b, t0() + Duration::days(1)),
    ]);
    s.directory = Some("s1".into());
    let store = ShardedPostgres::connect(&s.shards, &s.database, s.directory_name()).unwrap();
    store.check_schema().await.unwrap();
    let store = Arc::new(store);
    Subject {
        store: store.clone(),
        owner: store,
        _dir: None,
    }
}

async fn sqlite() -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path(), &SqliteSettings::default()).unwrap());
    Subject {
        store: store.clone(),
        owner: store,
        _dir: Some(dir),
    }
}

async fn a_created_key_reads_back_with_its_tenant(store: &dyn Directory) {
    let key = store
        .create_key(new_key("acme", Some(7), &[1; 32]))
        .await
        .unwrap();
    assert_eq!(key.tenant, "acme");
    assert_eq!(key.secret_hash, vec![1; 32]);
    assert_eq!(key.shorten_per_minute, Some(7));
    assert_eq!(key.revoked_at, None);
    assert_eq!(store.find_key(key.id).await.unwrap(), Some(key));
}

async fn an_unknown_key_is_none(store: &dyn Directory) {
    assert_eq!(store.find_key(987_654).await.unwrap(), None);
    assert!(!store.revoke_key(987_654, Utc::now()).await.unwrap());
}

async fn keys_of_one_tenant_share_it_and_its_latest_quota(store: &dyn Directory) {
    let first = store
        .create_key(new_key("acme", Some(5), &[1; 32]))
        .await
        .unwrap();
    let second = store
        .create_key(new_key("acme", None, &[2; 32]))
        .await
        .unwrap();
    let other = store
        .create_key(new_key("globex", None, &[3; 32]))
        .await
        .unwrap();
    assert_eq!(first.tenant_id, second.tenant_id, "one tenant, two keys");
    assert_ne!(first.tenant_id, other.tenant_id);
    assert_eq!(
        second.shorten_per_minute,
        Some(5),
        "no quota given keeps the tenant's"
    );
    let third = store
        .create_key(new_key("acme", Some(9), &[4; 32]))
        .await
        .unwrap();
    let first_again = store.find_key(first.id).await.unwrap().unwrap();
    assert_eq!(third.shorten_per_minute, Some(9));
    assert_eq!(
        first_again.shorten_per_minute,
        Some(9),
        "a quota belongs to the tenant, so every key sees it"
    );
}

async fn keys_list_oldest_first(store: &dyn Directory) {
    let a = store
        .create_key(new_key("acme", None, &[1; 32]))
        .await
        .unwrap();
    let b = store
        .create_key(new_key("globex", None, &[2; 32]))
        .await
        .unwrap();
    let ids: Vec<i64> = store
        .list_keys()
        .await
        .unwrap()
        .iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, vec![a.id, b.id]);
}

async fn a_key_is_revoked_once(store: &dyn Directory) {
    let key = store
        .create_key(new_key("acme", None, &[1; 32]))
        .await
        .unwrap();
    let at = t0();
    assert!(store.revoke_key(key.id, at).await.unwrap());
    assert!(
        !store
            .revoke_key(key.id, at + Duration::seconds(1))
            .await
            .unwrap(),
        "already revoked"
    );
    let stored = store.find_key(key.id).await.unwrap().unwrap();
    assert_eq!(stored.revoked_at, Some(at), "the first revocation's time");
}

async fn the_first_code_scheme_recorded_wins(store: &dyn Directory) {
    use shortener::domain::cipher::CodeScheme;
    use shortener::domain::Snowflake;
    assert_eq!(store.code_scheme().await.unwrap(), None);
    let first = CodeScheme {
        key_check: "0123456789abcdef".into(),
        plain_below: Snowflake::from_parts(90_000_000_000, 0, 0),
    };
    let second = CodeScheme {
        key_check: "fedcba9876543210".into(),
        plain_below: Snowflake::from_u64(0).unwrap(),
    };
    assert_eq!(store.record_code_scheme(&first).await.unwrap(), first);
    assert_eq!(
        store.record_code_scheme(&second).await.unwrap(),
        first,
        "a later proposal gets the scheme in force"
    );
    assert_eq!(store.code_scheme().await.unwrap(), Some(first));
}

contract!(
    the_first_code_scheme_recorded_wins,
    a_created_key_reads_back_with_its_tenant,
    an_unknown_key_is_none,
    keys_of_one_tenant_share_it_and_its_latest_quota,
    keys_list_oldest_first,
    a_key_is_revoked_once,
);
