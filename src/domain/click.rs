//! Clicks, in the shapes every layer shares: what the redirect path captures
//! ([`RawClick`]), what the worker makes of it ([`ClickRecord`]), the unit that is
//! counted exactly once ([`ClickUnit`]), and the per-link, per-day counts both click
//! stores keep ([`DayCounts`], summed into a [`Rollup`]). No I/O here.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::clock::ms_to_datetime;
use super::Snowflake;

/// Longest user agent kept, in bytes; longer ones are cut (they are parsed, not stored).
pub const MAX_USER_AGENT: usize = 256;
/// Longest referrer host kept.
pub const MAX_REFERRER: usize = 253;
/// Longest `Referer` header carried in a click, in bytes (the worker reduces it to its
/// host; a longer one is cut, which can only lose its path).
pub const MAX_REFERRER_HEADER: usize = 512;

/// Longest query string of the short URL carried in a click, in bytes (the worker
/// takes only the `utm_*` parameters from it; a longer one is cut).
pub const MAX_QUERY: usize = 512;
/// Longest campaign value (`utm_source`, `utm_medium`, `utm_campaign`) counted, in
/// bytes; longer ones are cut.
pub const MAX_CAMPAIGN: usize = 100;
/// Longest city name kept, in bytes.
pub const MAX_CITY: usize = 100;

/// The dimensions counted per link and day, as they are named in the stored JSON.
pub const DIMENSIONS: [&str; 9] = [
    "referrer",
    "browser",
    "os",
    "device",
    "country",
    "city",
    "utm_source",
    "utm_medium",
    "utm_campaign",
];
/// Distinct values kept per dimension, per link and day; the rest are summed under
/// [`OTHER`]. Bounds the row (and the work of merging it) however wide the traffic.
pub const MAX_DIM_VALUES: usize = 64;
/// The value that collects what [`MAX_DIM_VALUES`] leaves out. No host, browser, OS or
/// device name contains parentheses, so it cannot clash with a real value.
pub const OTHER: &str = "(other)";

/// A client address with its host part gone: the /24 of an IPv4 address or the /48 of
/// an IPv6 one. Enough to tell networks and countries apart, not people. `Copy`, so the
/// redirect path anonymises without allocating; it becomes text only in the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum ClientNet {
    /// No address (a Unix socket, a test).
    #[default]
    Unknown,
    /// The first three octets.
    V4([u8; 3]),
    /// The first three 16-bit groups.
    V6([u16; 3]),
}

impl ClientNet {
    /// Anonymises `ip`. IPv4-mapped IPv6 addresses are treated as IPv4.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                Self::V4([a, b, c])
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::of(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    Self::V6([s[0], s[1], s[2]])
                }
            },
        }
    }

    /// Parses the text form back (`203.0.113.0`, `2001:db8:abcd::`, or empty).
    pub fn parse(text: &str) -> Self {
        text.parse::<IpAddr>().map(Self::of).unwrap_or_default()
    }
}

impl fmt::Display for ClientNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Unknown => Ok(()),
            Self::V4([a, b, c]) => Ipv4Addr::new(a, b, c, 0).fmt(f),
            Self::V6([a, b, c]) => Ipv6Addr::new(a, b, c, 0, 0, 0, 0, 0).fmt(f),
        }
    }
}

/// A click as the redirect handler captures it: two header values cut to size, the
/// anonymised address, no parsing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawClick {
    /// Unique per click (a Snowflake): the key of a kept raw event.
    pub event_id: Snowflake,
    /// The link clicked.
    pub link_id: Snowflake,
    /// When, in Unix milliseconds.
    pub at_ms: u64,
    /// The `Referer` header as sent, cut to [`MAX_REFERRER_HEADER`] bytes, or empty for
    /// direct traffic. The worker reduces it to its host.
    pub referrer: String,
    /// The `User-Agent` header, cut to [`MAX_USER_AGENT`] bytes.
    pub user_agent: String,
    /// The client's network.
    pub client: ClientNet,
    /// The visitor: a keyed hash of the full client address and user agent under the
    /// day's salt (see [`crate::domain::visitor`]), or 0 when the address is unknown.
    pub visitor: u64,
    /// What few clicks carry (a query, a CDN's place); `None` for the rest, so that the
    /// common click stays small on its way through the queue.
    pub extra: Option<Box<ClickExtra>>,
}

/// The parts of a click most clicks do not have.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClickExtra {
    /// The short URL's own query string, cut to [`MAX_QUERY`] bytes, or empty. The
    /// worker keeps only its `utm_source`, `utm_medium` and `utm_campaign`.
    pub query: String,
    /// The country a trusted proxy or CDN in front named (ISO 3166-1 alpha-2), or empty.
    pub country: String,
    /// The city a trusted proxy or CDN in front named, or empty.
    pub city: String,
}

impl ClickExtra {
    /// `None` when all three are empty.
    pub fn of(query: String, country: String, city: String) -> Option<Box<Self>> {
        if query.is_empty() && country.is_empty() && city.is_empty() {
            None
        } else {
            Some(Box::new(Self {
                query,
                country,
                city,
            }))
        }
    }
}

impl RawClick {
    /// The query, the CDN's country and city (empty where absent).
    pub fn extra_parts(&self) -> (&str, &str, &str) {
        match &self.extra {
            Some(e) => (&e.query, &e.country, &e.city),
            None => ("", "", ""),
        }
    }
}

/// The first `max` bytes of `value`, cut back to a character boundary.
pub fn clip_str(value: &str, max: usize) -> &str {
    let mut end = value.len().min(max);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

/// An ISO 3166-1 alpha-2 code, upper case; `None` for anything else and for the
/// "unknown" codes CDNs send (`XX`, `T1`).
pub fn country_code(value: &str) -> Option<String> {
    let v = value.trim();
    if v.len() != 2 || !v.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let v = v.to_ascii_uppercase();
    (v != "XX").then_some(v)
}

/// Where a click came from, as far as anyone knows: empty strings for unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Place {
    /// ISO 3166-1 alpha-2, upper case.
    pub country: String,
    /// `City, CC` (or the city alone when the country is unknown).
    pub city: String,
}

/// The campaign parameters of the short URL's query; empty where absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Campaign {
    pub source: String,
    pub medium: String,
    pub campaign: String,
}

impl Campaign {
    /// Whether the query carried none of the three.
    pub fn is_empty(&self) -> bool {
        self.source.is_empty() && self.medium.is_empty() && self.campaign.is_empty()
    }
}

/// What a user agent reduces to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Families {
    pub browser: String,
    pub os: String,
    /// `pc`, `smartphone`, `mobilephone`, `appliance`, `crawler`, `misc`, or `unknown`
    /// (woothee's categories).
    pub device: String,
    pub bot: bool,
}

/// A click ready to be counted: the referrer reduced to its host and the user agent to
/// its families. Both are shared (`Arc`): real traffic repeats a few of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickRecord {
    pub event_id: Snowflake,
    pub link_id: Snowflake,
    pub at_ms: u64,
    /// The referrer's host, lower case, or empty for direct traffic.
    pub referrer: Arc<str>,
    pub families: Arc<Families>,
    pub client: ClientNet,
    /// The visitor hash; `None` for bots and clicks without an address.
    pub visitor: Option<u64>,
    pub place: Arc<Place>,
    pub campaign: Arc<Campaign>,
}

impl ClickRecord {
    /// The UTC day the click counts on.
    pub fn day(&self) -> NaiveDate {
        ms_to_datetime(self.at_ms).date_naive()
    }
}

/// The clicks that are counted, or not, as one: a queue entry or one flush of the
/// in-process queue. Its ID is recorded in the same transaction as its counts, so a unit
/// delivered again adds nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickUnit {
    /// Given by whoever made the unit (the producer of a stream entry, or the worker for
    /// an in-process flush).
    pub id: UnitId,
    pub clicks: Vec<ClickRecord>,
}

/// What a unit is known by: its first click's event ID (a Snowflake, so it also says
/// when the unit was made, and old units are pruned by range) and the producer that
/// made it, a random number each producer draws when it starts. Two instances that
/// share a worker ID (a misconfiguration) mint the same event IDs; the producer keeps
/// their units apart, so neither instance's clicks are taken for the other's
/// duplicates and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitId {
    pub first: Snowflake,
    pub producer: i64,
}

/// Counts of one dimension: value → clicks.
pub type ValueCounts = BTreeMap<String, i64>;

/// The dimension counts of one link on one day. Stored as one JSON object
/// (`{"referrer": {"news.example": 3}, "browser": {…}, …}`) inside the day's row, so a
/// day of a link costs one row write per flush, however many values it has. Rows
/// written before a dimension existed simply lack its key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Dims {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub referrer: ValueCounts,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub browser: ValueCounts,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub os: ValueCounts,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub device: ValueCounts,
    /// ISO country codes; only clicks that were placed (the rest are the total less
    /// these).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub country: ValueCounts,
    /// Only clicks whose city is known.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub city: ValueCounts,
    /// Only clicks that carried the parameter.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub utm_source: ValueCounts,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub utm_medium: ValueCounts,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub utm_campaign: ValueCounts,
}

impl Dims {
    /// The dimensions, in the order of [`DIMENSIONS`].
    pub fn each(&self) -> [(&'static str, &ValueCounts); 9] {
        let all = [
            &self.referrer,
            &self.browser,
            &self.os,
            &self.device,
            &self.country,
            &self.city,
            &self.utm_source,
            &self.utm_medium,
            &self.utm_campaign,
        ];
        std::array::from_fn(|i| (DIMENSIONS[i], all[i]))
    }

    fn each_mut(&mut self) -> [&mut ValueCounts; 9] {
        [
            &mut self.referrer,
            &mut self.browser,
            &mut self.os,
            &mut self.device,
            &mut self.country,
            &mut self.city,
            &mut self.utm_source,
            &mut self.utm_medium,
            &mut self.utm_campaign,
        ]
    }

    /// Adds `other` in, then keeps at most [`MAX_DIM_VALUES`] values per dimension (see
    /// [`cap`]). The SQL function `click_dims_sum` of the PostgreSQL schema keeps the
    /// same rule when it sums a row's partial sums.
    pub fn add(&mut self, other: &Dims) {
        for (mine, (_, theirs)) in self.each_mut().into_iter().zip(other.each()) {
            for (value, n) in theirs {
                *mine.entry(value.clone()).or_default() += n;
            }
            cap(mine);
        }
    }

    /// The JSON stored in the day's row.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Reads a JSON array of partial sums (how both stores keep them) and adds them up;
    /// unknown dimensions are ignored.
    ///
    /// # Errors
    /// When the text is not a JSON array of such objects.
    pub fn sum_json(text: &str) -> Result<Self, serde_json::Error> {
        let parts: Vec<Dims> = serde_json::from_str(text)?;
        let mut sum = Dims::default();
        for part in &parts {
            sum.add(part);
        }
        Ok(sum)
    }
}

/// Keeps the [`MAX_DIM_VALUES`] values with the most clicks (ties: the smaller value by
/// byte order) and sums the rest under [`OTHER`].
pub fn cap(counts: &mut ValueCounts) {
    let named = counts.len() - usize::from(counts.contains_key(OTHER));
    if named <= MAX_DIM_VALUES {
        return;
    }
    let mut ranked: Vec<(&String, i64)> = counts
        .iter()
        .filter(|(v, _)| v.as_str() != OTHER)
        .map(|(v, n)| (v, *n))
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let dropped: Vec<String> = ranked[MAX_DIM_VALUES..]
        .iter()
        .map(|(v, _)| (*v).clone())
        .collect();
    let mut rest = 0;
    for v in dropped {
        rest += counts.remove(&v).unwrap_or(0);
    }
    *counts.entry(OTHER.to_owned()).or_default() += rest;
}

/// One more click of `value`.
fn bump(counts: &mut ValueCounts, value: &str) {
    match counts.get_mut(value) {
        Some(n) => *n += 1,
        None => {
            counts.insert(value.to_owned(), 1);
        }
    }
}

/// Clicks of one link on one day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayCounts {
    pub total: i64,
    pub bots: i64,
    /// Distinct visitors (humans only) on that day.
    pub visitors: i64,
    pub dims: Dims,
}

impl DayCounts {
    /// Adds `other` in.
    pub fn add(&mut self, other: &DayCounts) {
        self.total += other.total;
        self.bots += other.bots;
        self.visitors += other.visitors;
        self.dims.add(&other.dims);
    }
}

/// One visitor of one link on one day: what the stores keep a set of, per day, so that
/// the same visitor in two flushes or from two instances counts once.
pub type VisitorKey = (Snowflake, NaiveDate, u64);

/// Counts per (link, day), sorted by key: concurrent writers then take row locks in the
/// same order and cannot deadlock. `visitors` of each row is left at 0: how many of the
/// flush's [`visitors`](Self::visitors) are new is only known to the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rollup {
    pub rows: BTreeMap<(Snowflake, NaiveDate), DayCounts>,
    /// The distinct visitors of the clicks, sorted (the same lock order again).
    pub visitors: BTreeSet<VisitorKey>,
}

impl Rollup {
    /// Sums clicks in process: a link clicked a thousand times in a flush is one row.
    pub fn of<'a>(clicks: impl IntoIterator<Item = &'a ClickRecord>) -> Self {
        let mut rows: BTreeMap<(Snowflake, NaiveDate), DayCounts> = BTreeMap::new();
        let mut visitors = BTreeSet::new();
        for c in clicks {
            let day = c.day();
            let row = rows.entry((c.link_id, day)).or_default();
            row.total += 1;
            row.bots += i64::from(c.families.bot);
            if let (Some(v), false) = (c.visitor, c.families.bot) {
                visitors.insert((c.link_id, day, v));
            }
            let f = &c.families;
            let d = &mut row.dims;
            for (counts, value) in [
                (&mut d.referrer, &*c.referrer),
                (&mut d.browser, f.browser.as_str()),
                (&mut d.os, f.os.as_str()),
                (&mut d.device, f.device.as_str()),
            ] {
                bump(counts, value);
            }
            // The referrer counts its empty value (direct traffic); these only count
            // clicks that have one. Clicks no source could place are the day's total
            // less its countries (`Stats::build`): a deployment without a location
            // source writes no country at all, and most clicks skip this.
            let (p, u) = (&c.place, &c.campaign);
            if !(p.country.is_empty() && p.city.is_empty() && u.is_empty()) {
                for (counts, value) in [
                    (&mut d.country, p.country.as_str()),
                    (&mut d.city, p.city.as_str()),
                    (&mut d.utm_source, u.source.as_str()),
                    (&mut d.utm_medium, u.medium.as_str()),
                    (&mut d.utm_campaign, u.campaign.as_str()),
                ] {
                    if !value.is_empty() {
                        bump(counts, value);
                    }
                }
            }
        }
        for row in rows.values_mut() {
            for counts in row.dims.each_mut() {
                cap(counts);
            }
        }
        Self { rows, visitors }
    }

    /// Rows to write.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Whether a click's raw event is kept, at a sampling `rate` from 0 (none) to 1 (all).
/// Decided by the event ID alone, so a click delivered twice is sampled the same way.
pub fn keep_raw(event_id: Snowflake, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 {
        return false;
    }
    // splitmix64: event IDs are sequential, their hashes are not.
    let mut z = event_id.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 11) as f64 / (1u64 << 53) as f64) < rate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn families(browser: &str, bot: bool) -> Arc<Families> {
        Arc::new(Families {
            browser: browser.into(),
            os: "Linux".into(),
            device: "pc".into(),
            bot,
        })
    }

    fn record(link: u64, at_ms: u64, referrer: &str, browser: &str, bot: bool) -> ClickRecord {
        ClickRecord {
            event_id: Snowflake::from_parts(1, 1, 1),
            link_id: Snowflake::from_parts(link, 0, 0),
            at_ms,
            referrer: referrer.into(),
            families: families(browser, bot),
            client: ClientNet::Unknown,
            visitor: None,
            place: Arc::default(),
            campaign: Arc::default(),
        }
    }

    #[test]
    fn addresses_lose_their_host_part() {
        let text = |ip: &str| ClientNet::of(ip.parse().unwrap()).to_string();
        assert_eq!(text("203.0.113.77"), "203.0.113.0");
        assert_eq!(text("2001:db8:abcd:12:1:2:3:4"), "2001:db8:abcd::");
        assert_eq!(text("::ffff:198.51.100.9"), "198.51.100.0");
        assert_eq!(ClientNet::parse("203.0.113.0").to_string(), "203.0.113.0");
        assert_eq!(ClientNet::parse("").to_string(), "");
    }

    #[test]
    fn a_rollup_has_one_row_per_link_and_day_with_its_dimensions() {
        let day1 = 1_767_225_599_999; // 2025-12-31T23:59:59.999Z
        let day2 = day1 + 1;
        let clicks = [
            record(1, day1, "news.example", "Chrome", false),
            record(1, day1, "", "Chrome", true),
            record(1, day2, "news.example", "Firefox", false),
            record(2, day1, "", "Chrome", false),
        ];
        let rollup = Rollup::of(&clicks);
        assert_eq!(rollup.len(), 3, "two days of link 1, one of link 2");
        let first = &rollup.rows[&(
            Snowflake::from_parts(1, 0, 0),
            "2025-12-31".parse().unwrap(),
        )];
        assert_eq!((first.total, first.bots), (2, 1));
        assert_eq!(first.dims.browser["Chrome"], 2);
        assert_eq!(first.dims.referrer["news.example"], 1);
        assert_eq!(first.dims.referrer[""], 1);
        assert_eq!(first.dims.device["pc"], 2);
    }

    #[test]
    fn dims_round_trip_through_json_and_add_up() {
        let mut a = Rollup::of(&[record(1, 0, "a.example", "Chrome", false)])
            .rows
            .into_values()
            .next()
            .unwrap()
            .dims;
        let json = a.to_json();
        assert_eq!(
            json,
            r#"{"referrer":{"a.example":1},"browser":{"Chrome":1},"os":{"Linux":1},"device":{"pc":1}}"#
        );
        let b = Dims::sum_json(&format!("[{json}]")).unwrap();
        a.add(&b);
        assert_eq!(a.referrer["a.example"], 2);
        assert_eq!(a.os["Linux"], 2);
    }

    #[test]
    fn a_rollup_counts_places_campaigns_and_each_human_visitor_once() {
        let mut clicks = Vec::new();
        for (visitor, country, city, source, bot) in [
            (Some(7), "FR", "Paris, FR", "newsletter", false),
            (Some(7), "FR", "Paris, FR", "", false),
            (Some(8), "", "", "newsletter", false),
            (Some(9), "DE", "", "", true),
            (None, "DE", "", "", false),
        ] {
            let mut c = record(1, 0, "", "Chrome", bot);
            c.visitor = visitor;
            c.place = Arc::new(Place {
                country: country.into(),
                city: city.into(),
            });
            c.campaign = Arc::new(Campaign {
                source: source.into(),
                ..Campaign::default()
            });
            clicks.push(c);
        }
        let rollup = Rollup::of(&clicks);
        let row = rollup.rows.values().next().unwrap();
        let link = Snowflake::from_parts(1, 0, 0);
        let day = clicks[0].day();
        assert_eq!(
            rollup.visitors.iter().copied().collect::<Vec<_>>(),
            vec![(link, day, 7), (link, day, 8)],
            "distinct, bots left out"
        );
        assert_eq!(row.dims.country["FR"], 2);
        assert_eq!(row.dims.country["DE"], 2);
        assert_eq!(row.dims.country.len(), 2, "an unknown place is not written");
        assert_eq!(row.dims.city.len(), 1, "nor is an unknown city");
        assert_eq!(row.dims.utm_source["newsletter"], 2);
        assert!(row.dims.utm_medium.is_empty());
    }

    #[test]
    fn values_past_the_cap_are_summed_under_other() {
        let mut counts: ValueCounts = (0..MAX_DIM_VALUES + 10)
            .map(|i| (format!("host{i:03}.example"), 100 - i as i64))
            .collect();
        let before: i64 = counts.values().sum();
        cap(&mut counts);
        assert_eq!(counts.len(), MAX_DIM_VALUES + 1);
        assert_eq!(counts.values().sum::<i64>(), before, "nothing is lost");
        assert!(counts.contains_key("host000.example"), "the largest stay");
        assert!(!counts.contains_key("host073.example"), "the smallest go");
        let other = counts[OTHER];
        assert_eq!(other, (64..74).map(|i| 100 - i).sum::<i64>());
        // Adding more keeps the bound.
        let mut again = counts.clone();
        again.insert("new.example".into(), 1_000);
        cap(&mut again);
        assert_eq!(again.len(), MAX_DIM_VALUES + 1);
        assert_eq!(again[OTHER], other + 37, "the smallest named value moves");
    }

    #[test]
    fn raw_sampling_is_decided_by_the_event_id() {
        let ids: Vec<Snowflake> = (0..10_000)
            .map(|i| Snowflake::from_parts(1_000 + i, 3, i % 7))
            .collect();
        let kept = ids.iter().filter(|id| keep_raw(**id, 0.1)).count();
        assert!((800..1200).contains(&kept), "about a tenth: {kept}");
        assert!(ids.iter().all(|id| keep_raw(*id, 1.0)));
        assert!(!ids.iter().any(|id| keep_raw(*id, 0.0)));
        assert_eq!(
            ids.iter().map(|id| keep_raw(*id, 0.1)).collect::<Vec<_>>(),
            ids.iter().map(|id| keep_raw(*id, 0.1)).collect::<Vec<_>>()
        );
    }
}
