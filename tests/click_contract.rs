//! The click store's contract: every function here runs unchanged against each
//! `ClickStore` (sharded PostgreSQL on real databases, and the embedded `clicks.db`).

#[macro_use]
mod support;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use shortener::analytics::rollup::Stats;
use shortener::domain::click::{
    Campaign, ClickRecord, ClickUnit, ClientNet, DayCounts, Dims, Families, Place, UnitId,
    MAX_DIM_VALUES, OTHER,
};
use shortener::domain::ids::EPOCH_MS;
use shortener::domain::{DayRange, Snowflake};
use shortener::store::clicks::ClickStore;
use shortener::store::postgres::ShardedClicks;
use shortener::store::sqlite::{SqliteClicks, SqliteSettings};
use support::{fresh_database, settings, shard, t0};

/// A store plus whatever must live as long as it (a temporary directory).
struct Subject {
    store: Arc<dyn ClickStore>,
    _dir: Option<tempfile::TempDir>,
}

impl Subject {
    async fn close(&self) {
        self.store.close().await;
    }
}

/// Two shards split at `t0() + 1 day`, so the contract also covers routing. Every raw
/// event is kept, so retention can be seen working.
async fn postgres() -> Subject {
    let (a, b) = (fresh_database().await, fresh_database().await);
    let mut s = settings(vec![
        shard("s0", &a, "2024-01-01T00:00:00Z".parse().unwrap()),
        shard("s1", &b, t0() + Duration::days(1)),
    ]);
    s.analytics.raw_events = 1.0;
    Subject {
        store: Arc::new(
            ShardedClicks::connect(&s.shards, &s.database, s.analytics.raw_events).unwrap(),
        ),
        _dir: None,
    }
}

async fn sqlite() -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteClicks::open(dir.path(), &SqliteSettings::default(), 1.0).unwrap();
    Subject {
        store: Arc::new(store),
        _dir: Some(dir),
    }
}

static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A Snowflake of the instant `at`, unique within the test run.
fn id_at(at: DateTime<Utc>) -> Snowflake {
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Snowflake::from_parts(
        at.timestamp_millis() as u64 - EPOCH_MS,
        (seq / 4096) as u16 % 1024,
        seq % 4096,
    )
}

fn click(
    link: Snowflake,
    at: DateTime<Utc>,
    referrer: &str,
    browser: &str,
    bot: bool,
) -> ClickRecord {
    ClickRecord {
        event_id: id_at(at),
        link_id: link,
        at_ms: at.timestamp_millis() as u64,
        referrer: referrer.into(),
        families: Arc::new(Families {
            browser: browser.into(),
            os: "Linux".into(),
            device: if bot { "crawler".into() } else { "pc".into() },
            bot,
        }),
        client: ClientNet::parse("203.0.113.0"),
        visitor: None,
        place: Arc::default(),
        campaign: Arc::default(),
    }
}

/// A human click of `visitor` from `country`, with a campaign source.
fn visit(
    link: Snowflake,
    at: DateTime<Utc>,
    visitor: u64,
    country: &str,
    source: &str,
) -> ClickRecord {
    let mut c = click(link, at, "", "Firefox", false);
    c.visitor = Some(visitor);
    c.place = Arc::new(Place {
        country: country.into(),
        city: if country == "FR" {
            "Paris, FR".into()
        } else {
            String::new()
        },
    });
    c.campaign = Arc::new(Campaign {
        source: source.into(),
        medium: if source.is_empty() {
            String::new()
        } else {
            "email".into()
        },
        campaign: String::new(),
    });
    c
}

/// The unit ID a producer gives a unit whose first click is at `at`.
fn unit_id(at: DateTime<Utc>, producer: i64) -> UnitId {
    UnitId {
        first: id_at(at),
        producer,
    }
}

fn unit(clicks: Vec<ClickRecord>) -> ClickUnit {
    ClickUnit {
        id: unit_id(t0(), 1),
        clicks,
    }
}

async fn stats(
    store: &dyn ClickStore,
    link: Snowflake,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Stats {
    let (from, to) = (from.date_naive(), to.date_naive());
    Stats::build(
        from,
        to,
        store
            .days(link, DayRange::new(from, to).unwrap())
            .await
            .unwrap(),
    )
}

async fn clicks_are_counted_once_however_often_they_are_recorded(store: &dyn ClickStore) {
    let (a, b) = (id_at(t0()), id_at(t0() + Duration::days(2)));
    let day1 = t0();
    let day2 = t0() + Duration::days(1);
    let batch = unit(vec![
        click(a, day1, "news.example", "Chrome", false),
        click(a, day1, "", "Firefox", false),
        click(a, day2, "news.example", "Chrome", true),
        click(b, day2, "", "Chrome", false),
    ]);
    assert_eq!(
        store
            .record(std::slice::from_ref(&batch))
            .await
            .unwrap()
            .counted,
        4
    );
    assert_eq!(
        store
            .record(std::slice::from_ref(&batch))
            .await
            .unwrap()
            .counted,
        0,
        "a redelivered batch counts nothing"
    );
    let part = ClickUnit {
        id: batch.id,
        clicks: batch.clicks[1..2].to_vec(),
    };
    assert_eq!(
        store.record(&[part]).await.unwrap().counted,
        0,
        "nor does part of one"
    );

    let s = stats(store, a, day1, day2).await;
    let series: Vec<_> = s.daily.iter().map(|d| (d.total, d.bots)).collect();
    assert_eq!(series, vec![(2, 0), (1, 1)]);
    assert_eq!((s.total, s.humans, s.bots), (3, 2, 1));
    assert_eq!(s.referrers[0].value, "news.example");
    assert_eq!(s.referrers[0].total, 2);
    assert_eq!(s.browsers[0].value, "Chrome");
    assert_eq!(s.browsers[0].total, 2);
    assert_eq!(stats(store, b, day1, day2).await.total, 1);
}

async fn units_delivered_again_in_another_mix_count_only_what_is_new(store: &dyn ClickStore) {
    let link = id_at(t0());
    let three = |n: usize| {
        unit(
            (0..n)
                .map(|_| click(link, t0(), "", "Chrome", false))
                .collect(),
        )
    };
    let (u1, u2, u3) = (three(1), three(2), three(4));
    let first = store.record(&[u1.clone(), u2.clone()]).await.unwrap();
    assert_eq!((first.counted, first.duplicates), (3, 0));
    // A worker died after committing u2; another takes u2 over along with u3.
    let again = store.record(&[u2, u3.clone()]).await.unwrap();
    assert_eq!((again.counted, again.duplicates), (4, 2));
    assert_eq!(store.record(&[u3, u1]).await.unwrap().counted, 0);
    assert_eq!(stats(store, link, t0(), t0()).await.total, 7);
}

async fn a_flush_writes_one_row_per_link_and_day_and_later_flushes_add_to_it(
    store: &dyn ClickStore,
) {
    // Two links, one on each shard, each clicked on two days, many times.
    let (a, b) = (id_at(t0()), id_at(t0() + Duration::days(2)));
    let (day1, day2) = (t0(), t0() + Duration::days(1));
    let mut clicks = Vec::new();
    for (link, day, n) in [(a, day1, 30), (a, day2, 20), (b, day1, 7), (b, day2, 3)] {
        for i in 0..n {
            let browser = if i % 2 == 0 { "Chrome" } else { "Firefox" };
            clicks.push(click(link, day, "news.example", browser, i % 5 == 0));
        }
    }
    let recorded = store.record(&[unit(clicks)]).await.unwrap();
    assert_eq!(recorded.counted, 60);
    assert_eq!(recorded.rows, 4, "one row per (link, day), not per click");
    assert_eq!(
        recorded.events, 60,
        "every raw event kept at a sampling rate of 1"
    );

    let again = store
        .record(&[unit(vec![
            click(a, day1, "other.example", "Safari", false),
            click(a, day1, "news.example", "Chrome", false),
        ])])
        .await
        .unwrap();
    assert_eq!(again.rows, 1);
    let days = store
        .days(
            a,
            DayRange::new(day1.date_naive(), day2.date_naive()).unwrap(),
        )
        .await
        .unwrap();
    let first = &days
        .iter()
        .find(|(d, _)| *d == day1.date_naive())
        .unwrap()
        .1;
    assert_eq!((first.total, first.bots), (32, 6));
    assert_eq!(first.dims.referrer["news.example"], 31);
    assert_eq!(first.dims.referrer["other.example"], 1);
    assert_eq!(first.dims.browser["Chrome"], 16);
    assert_eq!(first.dims.browser["Safari"], 1);
    assert_eq!(first.dims.device["crawler"], 6);
    let s = stats(store, b, day1, day2).await;
    assert_eq!(
        s.daily.iter().map(|d| d.total).collect::<Vec<_>>(),
        vec![7, 3]
    );
}

async fn values_past_the_cap_are_summed_under_other_as_the_worker_would(store: &dyn ClickStore) {
    let link = id_at(t0());
    let flush = |from: usize, to: usize| {
        unit(
            (from..to)
                .flat_map(|i| {
                    let host = format!("h{i:03}.example");
                    (0..=(i % 4)).map(move |_| host.clone())
                })
                .map(|host| click(link, t0(), &host, "Chrome", false))
                .collect(),
        )
    };
    let (f1, f2) = (flush(0, 50), flush(40, 100));
    store.record(std::slice::from_ref(&f1)).await.unwrap();
    store.record(std::slice::from_ref(&f2)).await.unwrap();

    // What the store keeps equals the in-process merge of the same two flushes.
    let mut expected = DayCounts::default();
    for f in [&f1, &f2] {
        let rollup = shortener::domain::click::Rollup::of(&f.clicks);
        expected.add(rollup.rows.values().next().unwrap());
    }
    let days = store
        .days(
            link,
            DayRange::new(t0().date_naive(), t0().date_naive()).unwrap(),
        )
        .await
        .unwrap();
    let stored: &Dims = &days[0].1.dims;
    assert_eq!(stored, &expected.dims);
    assert_eq!(stored.referrer.len(), MAX_DIM_VALUES + 1);
    assert_eq!(
        stored.referrer.values().sum::<i64>(),
        (f1.clicks.len() + f2.clicks.len()) as i64,
        "no click lost to the cap"
    );
    assert!(stored.referrer[OTHER] > 0);
}

async fn a_row_written_by_many_flushes_still_adds_up(store: &dyn ClickStore) {
    // More flushes than a row keeps partial sums for: it is summed up along the way.
    let link = id_at(t0());
    for i in 0..20 {
        let host = format!("r{}.example", i % 3);
        let clicks = (0..3).map(|_| click(link, t0(), &host, "Chrome", i % 2 == 0));
        store.record(&[unit(clicks.collect())]).await.unwrap();
    }
    let days = store
        .days(
            link,
            DayRange::new(t0().date_naive(), t0().date_naive()).unwrap(),
        )
        .await
        .unwrap();
    let day = &days[0].1;
    assert_eq!((day.total, day.bots), (60, 30));
    assert_eq!(day.dims.referrer["r0.example"], 21);
    assert_eq!(day.dims.referrer["r1.example"], 21);
    assert_eq!(day.dims.referrer["r2.example"], 18);
    assert_eq!(day.dims.browser["Chrome"], 60);
}

async fn pruning_removes_raw_events_and_keeps_the_rollups(store: &dyn ClickStore) {
    let l = id_at(t0());
    let old = t0() - Duration::days(100);
    let recent = t0();
    store
        .record(&[unit(vec![
            click(l, old, "", "Chrome", false),
            click(l, old, "", "Chrome", false),
            click(l, recent, "", "Chrome", false),
        ])])
        .await
        .unwrap();
    let units_before = t0() - Duration::days(200);
    assert_eq!(
        store
            .prune(t0() - Duration::days(90), units_before)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .prune(t0() - Duration::days(90), units_before)
            .await
            .unwrap(),
        0
    );
    assert_eq!(stats(store, l, old, recent).await.total, 3);
}

async fn a_pruned_unit_is_forgotten_and_a_kept_one_is_not(store: &dyn ClickStore) {
    let link = id_at(t0());
    let old = ClickUnit {
        id: unit_id(t0() - Duration::hours(30), 1),
        clicks: vec![click(link, t0(), "", "Chrome", false)],
    };
    let new = unit(vec![click(link, t0(), "", "Chrome", false)]);
    store.record(&[old.clone(), new.clone()]).await.unwrap();
    store
        .prune(t0() - Duration::days(90), t0() - Duration::hours(24))
        .await
        .unwrap();
    let again = store.record(&[old, new]).await.unwrap();
    assert_eq!(
        (again.counted, again.duplicates),
        (1, 1),
        "the unit older than the retention counts again; the newer one does not"
    );
}

async fn units_of_two_producers_with_one_first_event_id_both_count(store: &dyn ClickStore) {
    // Two instances sharing a worker ID mint the same event IDs: their units share a
    // first event ID and differ by producer.
    let link = id_at(t0());
    let first = id_at(t0());
    let of = |producer| ClickUnit {
        id: UnitId { first, producer },
        clicks: vec![click(link, t0(), "", "Chrome", false)],
    };
    let (a, b) = (of(11), of(-22));
    let counted = store.record(&[a.clone(), b.clone()]).await.unwrap();
    assert_eq!((counted.counted, counted.duplicates), (2, 0));
    let again = store.record(&[b, a]).await.unwrap();
    assert_eq!(
        (again.counted, again.duplicates),
        (0, 2),
        "each still counts once"
    );
    assert_eq!(stats(store, link, t0(), t0()).await.total, 2);
}

async fn a_visitor_counts_once_a_day_across_flushes_and_units(store: &dyn ClickStore) {
    let link = id_at(t0());
    let (day1, day2) = (t0(), t0() + Duration::days(1));
    // Visitor 1 twice in one unit, again in a second unit (another instance's) and in a
    // later flush; visitor 2 once; a bot with a hash is not a visitor.
    let mut bot = click(link, day1, "", "Googlebot", true);
    bot.visitor = Some(3);
    let first = ClickUnit {
        id: unit_id(day1, 1),
        clicks: vec![
            visit(link, day1, 1, "FR", "newsletter"),
            visit(link, day1, 1, "FR", ""),
            bot,
        ],
    };
    let second = ClickUnit {
        id: unit_id(day1, 2),
        clicks: vec![
            visit(link, day1, 1, "FR", ""),
            visit(link, day1, 2, "", "newsletter"),
        ],
    };
    store.record(&[first.clone(), second]).await.unwrap();
    store
        .record(&[unit(vec![visit(link, day1, 1, "DE", "")])])
        .await
        .unwrap();
    // A redelivery adds nothing, visitors included.
    store.record(&[first]).await.unwrap();
    // The next day, the same hash would be another visitor-day (salts differ by day).
    store
        .record(&[unit(vec![visit(link, day2, 1, "FR", "")])])
        .await
        .unwrap();

    let s = stats(store, link, day1, day2).await;
    assert_eq!(s.total, 7);
    assert_eq!(
        s.daily
            .iter()
            .map(|d| (d.total, d.visitors))
            .collect::<Vec<_>>(),
        vec![(6, 2), (1, 1)]
    );
    assert_eq!(s.visitors, 3);
    let values = |c: &[shortener::analytics::rollup::Count]| {
        c.iter()
            .map(|c| (c.value.clone(), c.total))
            .collect::<Vec<_>>()
    };
    let named = |pairs: &[(&str, i64)]| {
        pairs
            .iter()
            .map(|(v, n)| ((*v).to_owned(), *n))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        values(&s.countries),
        named(&[("FR", 4), ("(unknown)", 2), ("DE", 1)])
    );
    assert_eq!(values(&s.cities), vec![("Paris, FR".to_owned(), 4)]);
    assert_eq!(values(&s.utm_sources), vec![("newsletter".to_owned(), 2)]);
    assert_eq!(values(&s.utm_mediums), vec![("email".to_owned(), 2)]);
    assert!(s.utm_campaigns.is_empty());
}

async fn a_days_visitors_are_pruned_with_its_units_and_the_count_stays(store: &dyn ClickStore) {
    let link = id_at(t0());
    let yesterday = t0() - Duration::days(1);
    store
        .record(&[unit(vec![visit(link, yesterday, 9, "", "")])])
        .await
        .unwrap();
    // Units older than 12 hours are forgotten: yesterday's visitors go with them.
    store
        .prune(t0() - Duration::days(90), t0() - Duration::hours(12))
        .await
        .unwrap();
    let s = stats(store, link, yesterday, yesterday).await;
    assert_eq!(s.visitors, 1, "the count stays");
    store
        .record(&[unit(vec![visit(link, yesterday, 9, "", "")])])
        .await
        .unwrap();
    assert_eq!(
        stats(store, link, yesterday, yesterday).await.visitors,
        2,
        "a click that late no longer finds its visitor"
    );
}

async fn health_reports_every_part_ok(store: &dyn ClickStore) {
    let parts = store.health().await;
    assert!(!parts.is_empty());
    assert!(parts.iter().all(|p| p.ok), "{parts:?}");
}

contract!(
    clicks_are_counted_once_however_often_they_are_recorded,
    units_delivered_again_in_another_mix_count_only_what_is_new,
    a_flush_writes_one_row_per_link_and_day_and_later_flushes_add_to_it,
    values_past_the_cap_are_summed_under_other_as_the_worker_would,
    a_row_written_by_many_flushes_still_adds_up,
    pruning_removes_raw_events_and_keeps_the_rollups,
    a_pruned_unit_is_forgotten_and_a_kept_one_is_not,
    units_of_two_producers_with_one_first_event_id_both_count,
    a_visitor_counts_once_a_day_across_flushes_and_units,
    a_days_visitors_are_pruned_with_its_units_and_the_count_stays,
    health_reports_every_part_ok,
);
