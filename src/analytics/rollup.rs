//! The stats the API shows, shaped from the per-day counts a click store keeps.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use crate::domain::click::{DayCounts, ValueCounts, OTHER};

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
    pub fn build(from: NaiveDate, to: NaiveDate, days: Vec<(NaiveDate, DayCounts)>) -> Self {
        let mut by_day: BTreeMap<NaiveDate, (i64, i64)> = BTreeMap::new();
        let mut dims: [ValueCounts; 4] = Default::default();
        for (day, counts) in &days {
            let d = by_day.entry(*day).or_default();
            d.0 += counts.total;
            d.1 += counts.bots;
            for (sum, (_, values)) in dims.iter_mut().zip(counts.dims.each()) {
                for (value, n) in values {
                    *sum.entry(value.clone()).or_default() += n;
                }
            }
        }
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
        let top = |i: usize| {
            let mut counts: Vec<Count> = dims[i]
                .iter()
                .map(|(value, total)| Count {
                    value: if i == 0 && value.is_empty() {
                        "(direct)".into()
                    } else {
                        value.clone()
                    },
                    total: *total,
                })
                .collect();
            // Most clicks first, ties by name; what the per-day cap folded away comes
            // last whatever its count, as it is not one value.
            counts.sort_by(|a, b| {
                (a.value == OTHER)
                    .cmp(&(b.value == OTHER))
                    .then_with(|| b.total.cmp(&a.total))
                    .then_with(|| a.value.cmp(&b.value))
            });
            counts.truncate(TOP);
            counts
        };
        Self {
            from,
            to,
            total,
            humans: total - bots,
            bots,
            referrers: top(0),
            browsers: top(1),
            os: top(2),
            devices: top(3),
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

    fn counts(total: i64, bots: i64, dims: &[(usize, &str, i64)]) -> DayCounts {
        let mut c = DayCounts {
            total,
            bots,
            ..DayCounts::default()
        };
        for (i, value, n) in dims {
            let map = match i {
                0 => &mut c.dims.referrer,
                1 => &mut c.dims.browser,
                2 => &mut c.dims.os,
                _ => &mut c.dims.device,
            };
            map.insert((*value).into(), *n);
        }
        c
    }

    #[test]
    fn the_series_has_every_day_of_the_range() {
        let days = vec![
            (
                d("2026-01-03"),
                counts(5, 1, &[(0, "", 2), (0, "a.example", 3), (1, "Chrome", 5)]),
            ),
            (
                d("2026-01-01"),
                counts(2, 0, &[(0, "", 2), (1, "Chrome", 2)]),
            ),
        ];
        let s = Stats::build(d("2025-12-31"), d("2026-01-03"), days);
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
        assert_eq!(s.browsers[0].total, 7, "summed over the days");
        assert!(s.os.is_empty());
    }

    #[test]
    fn what_the_cap_folded_away_is_listed_last() {
        let days = vec![(
            d("2026-01-01"),
            counts(
                9,
                0,
                &[(0, OTHER, 5), (0, "a.example", 3), (0, "b.example", 1)],
            ),
        )];
        let s = Stats::build(d("2026-01-01"), d("2026-01-01"), days);
        let order: Vec<&str> = s.referrers.iter().map(|c| c.value.as_str()).collect();
        assert_eq!(order, ["a.example", "b.example", OTHER]);
    }
}
