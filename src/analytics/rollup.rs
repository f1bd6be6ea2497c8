//! Turning a batch of newly inserted clicks into rollup increments, and rollup rows
//! into the stats the API shows. Shared by both stores.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::event::ClickRecord;
use crate::domain::Snowflake;

/// The dimensions counted per link and day.
pub const DIMENSIONS: [&str; 4] = ["referrer", "browser", "os", "device"];

/// Increments for the rollup tables, sorted by key so that concurrent writers take row
/// locks in the same order and cannot deadlock.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Increments {
    /// (link, day) → (clicks, bot clicks).
    pub daily: BTreeMap<(Snowflake, NaiveDate), (i64, i64)>,
    /// (link, dimension, day, value) → clicks.
    pub dims: BTreeMap<(Snowflake, &'static str, NaiveDate, String), i64>,
}

impl Increments {
    /// Adds up `clicks` (only the ones actually inserted).
    pub fn of<'a>(clicks: impl IntoIterator<Item = &'a ClickRecord>) -> Self {
        let mut inc = Self::default();
        for c in clicks {
            let daily = inc.daily.entry((c.link_id, c.day)).or_default();
            daily.0 += 1;
            daily.1 += i64::from(c.bot);
            for (dim, value) in DIMENSIONS
                .iter()
                .zip([&c.referrer, &c.browser, &c.os, &c.device])
            {
                *inc.dims
                    .entry((c.link_id, *dim, c.day, value.clone()))
                    .or_default() += 1;
            }
        }
        inc
    }
}

/// Rollup rows for one link over a range of days, as read from a store.
#[derive(Debug, Default, Clone)]
pub struct RollupRows {
    /// (day, clicks, bot clicks), any order, days without clicks absent.
    pub daily: Vec<(NaiveDate, i64, i64)>,
    /// (dimension, value, clicks summed over the range).
    pub dims: Vec<(String, String, i64)>,
}

/// One day of the series.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Day {
    pub day: NaiveDate,
    pub total: i64,
    pub bots: i64,
}

/// One value of a dimension.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Count {
    pub value: String,
    pub total: i64,
}

/// A link's stats over `[from, to]`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub total: i64,
    pub humans: i64,
    pub bots: i64,
    /// Every day of the range, days without clicks as zero.
    pub daily: Vec<Day>,
    pub referrers: Vec<Count>,
    pub browsers: Vec<Count>,
    pub os: Vec<Count>,
    pub devices: Vec<Count>,
}

/// How many values of each dimension the stats list.
pub const TOP: usize = 10;

impl Stats {
    /// Shapes rollup rows into the API's stats: the full daily series and the top
    /// values of each dimension (most clicks first, ties by name).
    pub fn build(from: NaiveDate, to: NaiveDate, rows: RollupRows) -> Self {
        let by_day: BTreeMap<NaiveDate, (i64, i64)> = rows
            .daily
            .into_iter()
            .map(|(d, t, b)| (d, (t, b)))
            .collect();
        let daily: Vec<Day> = from
            .iter_days()
            .take_while(|d| *d <= to)
            .map(|day| {
                let (total, bots) = by_day.get(&day).copied().unwrap_or_default();
                Day { day, total, bots }
            })
            .collect();
        let total: i64 = daily.iter().map(|d| d.total).sum();
        let bots: i64 = daily.iter().map(|d| d.bots).sum();
        let top = |dim: &str| {
            let mut counts: Vec<Count> = rows
                .dims
                .iter()
                .filter(|(d, _, _)| d == dim)
                .map(|(_, value, total)| Count {
                    value: if dim == "referrer" && value.is_empty() {
                        "(direct)".into()
                    } else {
                        value.clone()
                    },
                    total: *total,
                })
                .collect();
            counts.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.value.cmp(&b.value)));
            counts.truncate(TOP);
            counts
        };
        Self {
            from,
            to,
            total,
            humans: total - bots,
            bots,
            referrers: top("referrer"),
            browsers: top("browser"),
            os: top("os"),
            devices: top("device"),
            daily,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_series_has_every_day_of_the_range() {
        let rows = RollupRows {
            daily: vec![(d("2026-01-03"), 5, 1), (d("2026-01-01"), 2, 0)],
            dims: vec![
                ("referrer".into(), "".into(), 4),
                ("referrer".into(), "a.example".into(), 3),
                ("browser".into(), "Chrome".into(), 7),
            ],
        };
        let s = Stats::build(d("2025-12-31"), d("2026-01-03"), rows);
        let series: Vec<_> = s
            .daily
            .iter()
            .map(|x| (x.day.to_string(), x.total))
            .collect();
        assert_eq!(
            series,
            vec![
                ("2025-12-31".into(), 0),
                ("2026-01-01".into(), 2),
                ("2026-01-02".into(), 0),
                ("2026-01-03".into(), 5)
            ]
        );
        assert_eq!((s.total, s.humans, s.bots), (7, 6, 1));
        assert_eq!(
            s.referrers[0],
            Count {
                value: "(direct)".into(),
                total: 4
            }
        );
        assert_eq!(s.browsers.len(), 1);
        assert!(s.os.is_empty());
    }
}
