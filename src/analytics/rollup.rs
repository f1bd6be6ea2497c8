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
    /// Distinct human visitors that day.
    pub visitors: i64,
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
    /// Distinct human visitors, summed over the days of the range: a visitor is known
    /// within one UTC day only (its hash changes with the day's salt), so one person on
    /// three days counts three times.
    pub visitors: i64,
    /// Every day of the range, days without clicks as zero.
    pub daily: Vec<Day>,
    pub referrers: Vec<Count>,
    pub browsers: Vec<Count>,
    pub os: Vec<Count>,
    pub devices: Vec<Count>,
    /// ISO 3166-1 alpha-2 codes; `(unknown)` for clicks no source could place.
    pub countries: Vec<Count>,
    /// `City, CC`; only clicks whose city is known.
    pub cities: Vec<Count>,
    /// Only clicks whose short URL carried the parameter.
    pub utm_sources: Vec<Count>,
    pub utm_mediums: Vec<Count>,
    pub utm_campaigns: Vec<Count>,
}

/// How many values of each dimension the stats list.
pub const TOP: usize = 10;
/// The referrer of clicks that had none.
pub const DIRECT: &str = "(direct)";
/// The country of clicks no source could place.
pub const UNKNOWN: &str = "(unknown)";

impl Stats {
    /// Shapes rollup rows into the API's stats: the full daily series and the top
    /// values of each dimension (most clicks first, ties by name).
    pub fn build(from: NaiveDate, to: NaiveDate, days: Vec<(NaiveDate, DayCounts)>) -> Self {
        let mut by_day: BTreeMap<NaiveDate, (i64, i64, i64)> = BTreeMap::new();
        let mut dims: [ValueCounts; 9] = Default::default();
        for (day, counts) in &days {
            let d = by_day.entry(*day).or_default();
            d.0 += counts.total;
            d.1 += counts.bots;
            d.2 += counts.visitors;
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
                let (total, bots, visitors) = by_day.get(&day).copied().unwrap_or_default();
                Day {
                    day,
                    total,
                    bots,
                    visitors,
                }
            })
            .collect();
        let total: i64 = daily.iter().map(|d| d.total).sum();
        let bots: i64 = daily.iter().map(|d| d.bots).sum();
        let visitors: i64 = daily.iter().map(|d| d.visitors).sum();
        // Clicks no source placed are not written (a deployment without a location
        // source would write the same "unknown" into every row): they are what the
        // countries leave of the total.
        let placed: i64 = dims[4].values().sum();
        if total > placed {
            *dims[4].entry(String::new()).or_default() += total - placed;
        }
        let top = |i: usize| {
            let mut counts: Vec<Count> = dims[i]
                .iter()
                .map(|(value, total)| Count {
                    value: match (i, value.is_empty()) {
                        (0, true) => DIRECT.into(),
                        (4, true) => UNKNOWN.into(),
                        _ => value.clone(),
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
            visitors,
            referrers: top(0),
            browsers: top(1),
            os: top(2),
            devices: top(3),
            countries: top(4),
            cities: top(5),
            utm_sources: top(6),
            utm_mediums: top(7),
            utm_campaigns: top(8),
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
                3 => &mut c.dims.device,
                4 => &mut c.dims.country,
                _ => &mut c.dims.utm_source,
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
    fn visitors_add_up_over_days_and_unknown_countries_are_named() {
        let mut a = counts(3, 0, &[(4, "FR", 2), (5, "newsletter", 1)]);
        a.visitors = 2;
        let mut b = counts(1, 0, &[(4, "FR", 1)]);
        b.visitors = 1;
        let s = Stats::build(
            d("2026-01-01"),
            d("2026-01-02"),
            vec![(d("2026-01-01"), a), (d("2026-01-02"), b)],
        );
        assert_eq!(s.visitors, 3);
        assert_eq!(
            s.daily.iter().map(|x| x.visitors).collect::<Vec<_>>(),
            [2, 1]
        );
        let countries: Vec<(&str, i64)> = s
            .countries
            .iter()
            .map(|c| (c.value.as_str(), c.total))
            .collect();
        assert_eq!(countries, [("FR", 3), (UNKNOWN, 1)]);
        assert_eq!(s.utm_sources[0].value, "newsletter");
        assert!(s.cities.is_empty() && s.utm_campaigns.is_empty());
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
