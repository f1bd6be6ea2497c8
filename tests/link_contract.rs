//! The links' store contract: every function here runs unchanged against each
//! `LinkStore` implementation (sharded PostgreSQL on real databases, and embedded
//! SQLite). The directory and the click store have their own contracts, in
//! `directory_contract.rs` and `click_contract.rs`.

#[macro_use]
mod support;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use shortener::domain::ids::EPOCH_MS;
use shortener::domain::{Alias, Link, RedirectKind, Snowflake, TargetUrl};
use shortener::store::postgres::ShardedPostgres;
use shortener::store::sqlite::{SqliteSettings, SqliteStore};
use shortener::store::{LinkStore, StoreError};
use support::{fresh_database, settings, shard, t0};

/// A store plus whatever must live as long as it (a temporary directory).
struct Subject {
    store: Arc<dyn LinkStore>,
    _dir: Option<tempfile::TempDir>,
}

impl Subject {
    async fn close(&self) {
        self.store.close().await;
    }
}

/// Two shards split at `t0() + 1 day`, so the contract also covers routing.
async fn postgres() -> Subject {
    let (a, b) = (fresh_database().await, fresh_database().await);
    let s = settings(vec![
        shard("s0", &a, "2024-01-01T00:00:00Z".parse().unwrap()),
        shard("s1", &b, t0() + Duration::days(1)),
    ]);
    let store = ShardedPostgres::connect(&s.shards, &s.database, s.directory_name()).unwrap();
    store.check_schema().await.unwrap();
    Subject {
        store: Arc::new(store),
        _dir: None,
    }
}

async fn sqlite() -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), &SqliteSettings::default()).unwrap();
    Subject {
        store: Arc::new(store),
        _dir: Some(dir),
    }
}

static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A link minted at `at`, unique within the test run.
fn link_at(at: DateTime<Utc>, alias: Option<&str>) -> Link {
    let ms = at.timestamp_millis() as u64 - EPOCH_MS;
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = Snowflake::from_parts(ms, (seq / 4096) as u16 % 1024, seq % 4096);
    Link {
        id,
        alias: alias.map(|a| Alias::parse(a).unwrap()),
        url: TargetUrl::stored(format!("https://example.com/{seq}")).unwrap(),
        redirect: RedirectKind::Temporary,
        created_at: id.timestamp(),
        expires_at: None,
        deleted_at: None,
        disabled_at: None,
        tenant: None,
    }
}

fn link(alias: Option<&str>) -> Link {
    link_at(t0(), alias)
}

async fn a_stored_link_reads_back_unchanged(store: &dyn LinkStore) {
    let mut original = link(None);
    original.redirect = RedirectKind::Permanent;
    original.expires_at = Some(t0() + Duration::milliseconds(86_400_123));
    store.insert(&original).await.unwrap();
    assert_eq!(store.get(original.id).await.unwrap(), Some(original));
}

async fn links_on_both_sides_of_a_range_boundary_read_back(store: &dyn LinkStore) {
    let early = link_at(t0(), None);
    let late = link_at(t0() + Duration::days(2), None);
    store.insert(&early).await.unwrap();
    store.insert(&late).await.unwrap();
    assert_eq!(store.get(early.id).await.unwrap(), Some(early));
    assert_eq!(store.get(late.id).await.unwrap(), Some(late));
}

async fn an_unknown_id_or_alias_is_none(store: &dyn LinkStore) {
    assert_eq!(store.get(link(None).id).await.unwrap(), None);
    assert_eq!(store.get_by_alias("never-made").await.unwrap(), None);
}

async fn an_alias_finds_its_link(store: &dyn LinkStore) {
    let aliased = link(Some("contract-alias"));
    store.insert(&aliased).await.unwrap();
    assert_eq!(
        store.get_by_alias("contract-alias").await.unwrap(),
        Some(aliased)
    );
}

async fn a_taken_alias_is_refused_and_the_first_link_kept(store: &dyn LinkStore) {
    let first = link(Some("taken"));
    store.insert(&first).await.unwrap();
    let second = link(Some("taken"));
    let err = store.insert(&second).await.unwrap_err();
    assert!(
        matches!(err, StoreError::AliasTaken(ref a) if a == "taken"),
        "{err:?}"
    );
    assert_eq!(store.get_by_alias("taken").await.unwrap(), Some(first));
    assert_eq!(
        store.get(second.id).await.unwrap(),
        None,
        "nothing of the loser is stored"
    );
}

async fn concurrent_claims_on_one_alias_have_exactly_one_winner(store: &dyn LinkStore) {
    let claims = (0..16).map(|_| link(Some("contested")));
    let results =
        futures::future::join_all(claims.map(|l| async move { store.insert(&l).await })).await;
    let winners = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(winners, 1, "{results:?}");
    assert!(results
        .iter()
        .all(|r| r.is_ok() || matches!(r, Err(StoreError::AliasTaken(_)))));
}

async fn deleting_marks_once(store: &dyn LinkStore) {
    let l = link(None);
    store.insert(&l).await.unwrap();
    let at = t0() + Duration::seconds(5);
    assert!(store.mark_deleted(l.id, at).await.unwrap());
    assert!(
        !store.mark_deleted(l.id, at).await.unwrap(),
        "second delete"
    );
    assert!(
        !store.mark_deleted(link(None).id, at).await.unwrap(),
        "unknown id"
    );
    let stored = store.get(l.id).await.unwrap().unwrap();
    assert_eq!(stored.deleted_at, Some(at));
}

async fn a_takedown_is_recorded_once_and_undone_once(store: &dyn LinkStore) {
    let l = link_at(t0() + Duration::days(2), None); // the second range
    store.insert(&l).await.unwrap();
    let at = t0() + Duration::seconds(9);
    assert!(store.set_disabled(l.id, Some(at)).await.unwrap());
    assert!(
        !store.set_disabled(l.id, Some(at)).await.unwrap(),
        "disabled already"
    );
    assert_eq!(
        store.get(l.id).await.unwrap().unwrap().disabled_at,
        Some(at)
    );
    assert!(store.set_disabled(l.id, None).await.unwrap());
    assert!(
        !store.set_disabled(l.id, None).await.unwrap(),
        "enabled already"
    );
    assert_eq!(store.get(l.id).await.unwrap().unwrap().disabled_at, None);
    assert!(
        !store.set_disabled(link(None).id, Some(at)).await.unwrap(),
        "unknown id"
    );
}

async fn a_fresh_store_has_no_links(store: &dyn LinkStore) {
    assert!(!store.has_links().await.unwrap());
    store.insert(&link(None)).await.unwrap();
    assert!(store.has_links().await.unwrap());
}

async fn many_concurrent_inserts_all_land(store: &dyn LinkStore) {
    let links: Vec<Link> = (0..200).map(|_| link(None)).collect();
    let results = futures::future::join_all(links.iter().map(|l| store.insert(l))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for l in &links {
        assert_eq!(store.get(l.id).await.unwrap().as_ref(), Some(l));
    }
}

async fn health_reports_every_part_ok(store: &dyn LinkStore) {
    let parts = store.health().await;
    assert!(!parts.is_empty());
    assert!(parts.iter().all(|p| p.ok), "{parts:?}");
}

async fn a_bulk_load_reads_back_link_by_link(store: &dyn LinkStore) {
    let mut links: Vec<Link> = (0..2_500).map(|_| link(None)).collect();
    links.push(link_at(t0() + Duration::days(2), None)); // the other range
                                                         // COPY escaping: a backslash (a target URL holds no tab or newline to escape).
    links[7].url = TargetUrl::stored("https://example.com/back\\slash\\n".into()).unwrap();
    store.bulk_insert(&links).await.unwrap();
    for l in links
        .iter()
        .step_by(97)
        .chain([&links[7], links.last().unwrap()])
    {
        assert_eq!(store.get(l.id).await.unwrap().as_ref(), Some(l));
    }
}

contract!(
    a_stored_link_reads_back_unchanged,
    links_on_both_sides_of_a_range_boundary_read_back,
    an_unknown_id_or_alias_is_none,
    an_alias_finds_its_link,
    a_taken_alias_is_refused_and_the_first_link_kept,
    concurrent_claims_on_one_alias_have_exactly_one_winner,
    deleting_marks_once,
    a_takedown_is_recorded_once_and_undone_once,
    a_fresh_store_has_no_links,
    many_concurrent_inserts_all_land,
    health_reports_every_part_ok,
    a_bulk_load_reads_back_link_by_link,
);
