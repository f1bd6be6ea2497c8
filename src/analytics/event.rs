//! Turning what the redirect path captured into what is counted: the referrer reduced
//! to its host, the user agent to browser, OS, device and a bot flag, the network to a
//! country and city (a CDN's header first, then the location database), the query to
//! its campaign. This happens in the worker, off the hot path, and each distinct user
//! agent, referrer, network and query is worked out once ([`Classifier`] keeps bounded
//! caches of each).

use std::collections::HashMap;
use std::sync::Arc;

use maxminddb::Reader;

use super::geo::{self, GeoDb};
use super::queue::EntryView;
use crate::domain::click::clip_str;
pub use crate::domain::click::{
    Campaign, ClickExtra, ClickRecord, ClientNet, Families, Place, RawClick, MAX_CAMPAIGN,
    MAX_REFERRER, MAX_REFERRER_HEADER, MAX_USER_AGENT,
};
use crate::domain::Snowflake;

/// The host of a `Referer` header value, lower case, or empty when there is none or it
/// does not parse.
pub fn referrer_host(header: Option<&str>) -> String {
    header
        .and_then(|h| url::Url::parse(h).ok())
        .and_then(|u| {
            u.host_str()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
        })
        .filter(|h| h.len() <= MAX_REFERRER)
        .unwrap_or_default()
}

/// Cuts a header value to `max` bytes on a character boundary.
pub fn clip(value: &str, max: usize) -> String {
    clip_str(value, max).to_owned()
}

/// Words in a user agent that mark automated clients woothee does not know.
const BOT_MARKERS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "go-http-client",
    "java/",
    "okhttp",
    "headlesschrome",
    "facebookexternalhit",
    "preview",
    "monitor",
    "k6/",
    "oha/",
];

/// Parses a user agent into families and decides whether it is a bot.
pub fn classify(parser: &woothee::parser::Parser, user_agent: &str) -> Families {
    let parsed = parser.parse(user_agent);
    let lower = user_agent.to_ascii_lowercase();
    let normal = |s: &str| {
        if s == "UNKNOWN" {
            "unknown".to_owned()
        } else {
            s.to_owned()
        }
    };
    let (browser, os, device) = match &parsed {
        Some(r) => (normal(r.name), normal(r.os), normal(r.category)),
        None => (
            "unknown".to_owned(),
            "unknown".to_owned(),
            "unknown".to_owned(),
        ),
    };
    let bot = device == "crawler"
        || user_agent.is_empty()
        || BOT_MARKERS.iter().any(|m| lower.contains(m));
    Families {
        browser,
        os,
        device,
        bot,
    }
}

/// Distinct user agents (and, separately, referrers) remembered; when a cache is full it
/// is emptied and starts again, which bounds memory whatever the traffic sends.
pub const CLASSIFIER_CACHE: usize = 10_000;

/// The campaign parameters of a query string (`utm_source`, `utm_medium`,
/// `utm_campaign`), each trimmed and cut to [`MAX_CAMPAIGN`] bytes; the first of each
/// wins.
pub fn campaign_of(query: &str) -> Campaign {
    let mut c = Campaign::default();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match key.as_ref() {
            "utm_source" => &mut c.source,
            "utm_medium" => &mut c.medium,
            "utm_campaign" => &mut c.campaign,
            _ => continue,
        };
        if slot.is_empty() {
            *slot = clip(value.trim(), MAX_CAMPAIGN);
        }
    }
    c
}

/// Classifies clicks, working out each distinct user agent and referrer once.
pub struct Classifier {
    parser: woothee::parser::Parser,
    agents: HashMap<String, Arc<Families>>,
    referrers: HashMap<String, Arc<str>>,
    direct: Arc<str>,
    /// How many user agents were parsed (not found in the cache).
    pub parsed: u64,
    geo: Option<Arc<GeoDb>>,
    /// The database as of `geo_generation`.
    reader: Option<Arc<Reader<Vec<u8>>>>,
    geo_generation: u64,
    /// Places by network (database lookups), by the database's record, and by header
    /// values.
    places: HashMap<ClientNet, Arc<Place>>,
    records: HashMap<usize, Arc<Place>>,
    edge_places: HashMap<(String, String), Arc<Place>>,
    nowhere: Arc<Place>,
    campaigns: HashMap<String, Arc<Campaign>>,
    no_campaign: Arc<Campaign>,
}

impl Default for Classifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Classifier {
    /// An empty classifier.
    pub fn new() -> Self {
        Self {
            parser: woothee::parser::Parser::new(),
            agents: HashMap::new(),
            referrers: HashMap::new(),
            direct: Arc::from(""),
            parsed: 0,
            geo: None,
            reader: None,
            geo_generation: 0,
            places: HashMap::new(),
            records: HashMap::new(),
            edge_places: HashMap::new(),
            nowhere: Arc::default(),
            campaigns: HashMap::new(),
            no_campaign: Arc::default(),
        }
    }

    /// A classifier that places clicks with `geo` too.
    pub fn with_geo(geo: Option<Arc<GeoDb>>) -> Self {
        let mut c = Self::new();
        c.geo = geo;
        c.refresh_geo();
        c
    }

    /// Takes up a reloaded database, forgetting the places looked up in the old one.
    pub fn refresh_geo(&mut self) {
        let Some(geo) = &self.geo else { return };
        let generation = geo.generation();
        if self.reader.is_none() || generation != self.geo_generation {
            self.reader = Some(geo.reader());
            self.geo_generation = generation;
            self.places.clear();
            self.records.clear();
        }
    }

    /// Where a click came from: the country (and city) a trusted CDN header named, else
    /// the database's answer for its network, else nowhere known.
    pub fn place(&mut self, client: ClientNet, country: &str, city: &str) -> Arc<Place> {
        if !country.is_empty() || !city.is_empty() {
            let key = (country.to_owned(), city.to_owned());
            if let Some(p) = self.edge_places.get(&key) {
                return p.clone();
            }
            if self.edge_places.len() >= CLASSIFIER_CACHE {
                self.edge_places.clear();
            }
            let place = Arc::new(Place {
                country: country.to_owned(),
                city: geo::city_label(city, country),
            });
            self.edge_places.insert(key, place.clone());
            return place;
        }
        let Some(reader) = &self.reader else {
            return self.nowhere.clone();
        };
        if client == ClientNet::Unknown {
            return self.nowhere.clone();
        }
        if let Some(p) = self.places.get(&client) {
            return p.clone();
        }
        if self.places.len() >= CLASSIFIER_CACHE {
            self.places.clear();
        }
        if self.records.len() >= CLASSIFIER_CACHE {
            self.records.clear();
        }
        let place =
            geo::lookup(reader, client, &mut self.records).unwrap_or_else(|| self.nowhere.clone());
        self.places.insert(client, place.clone());
        place
    }

    /// The campaign of a short URL's query string.
    pub fn campaign(&mut self, query: &str) -> Arc<Campaign> {
        if query.is_empty() {
            return self.no_campaign.clone();
        }
        if let Some(c) = self.campaigns.get(query) {
            return c.clone();
        }
        if self.campaigns.len() >= CLASSIFIER_CACHE {
            self.campaigns.clear();
        }
        let c = campaign_of(query);
        let c = if c.is_empty() {
            self.no_campaign.clone()
        } else {
            Arc::new(c)
        };
        self.campaigns.insert(query.to_owned(), c.clone());
        c
    }

    /// The families of a user agent.
    pub fn families(&mut self, user_agent: &str) -> Arc<Families> {
        if let Some(f) = self.agents.get(user_agent) {
            return f.clone();
        }
        if self.agents.len() >= CLASSIFIER_CACHE {
            self.agents.clear();
        }
        self.parsed += 1;
        let f = Arc::new(classify(&self.parser, user_agent));
        self.agents.insert(user_agent.to_owned(), f.clone());
        f
    }

    /// The host of a `Referer` header.
    pub fn referrer(&mut self, header: &str) -> Arc<str> {
        if header.is_empty() {
            return self.direct.clone();
        }
        if let Some(h) = self.referrers.get(header) {
            return h.clone();
        }
        if self.referrers.len() >= CLASSIFIER_CACHE {
            self.referrers.clear();
        }
        let host: Arc<str> = Arc::from(referrer_host(Some(header)));
        self.referrers.insert(header.to_owned(), host.clone());
        host
    }

    /// The clicks of a stream entry, ready to be counted: each of its distinct strings
    /// is looked up once, not once per click.
    pub fn records_of(&mut self, entry: &EntryView<'_>, out: &mut Vec<ClickRecord>) {
        let mut referrers: Vec<Option<Arc<str>>> = vec![None; entry.strings.len()];
        let mut agents: Vec<Option<Arc<Families>>> = vec![None; entry.strings.len()];
        let mut campaigns: Vec<Option<Arc<Campaign>>> = vec![None; entry.strings.len()];
        for c in &entry.clicks {
            let (Some(event_id), Some(link_id)) = (
                Snowflake::from_u64(c.event_id),
                Snowflake::from_u64(c.link_id),
            ) else {
                continue;
            };
            let (r, a) = (c.referrer as usize, c.user_agent as usize);
            let referrer = match &referrers[r] {
                Some(h) => h.clone(),
                None => referrers[r].insert(self.referrer(entry.strings[r])).clone(),
            };
            let families = match &agents[a] {
                Some(f) => f.clone(),
                None => agents[a].insert(self.families(entry.strings[a])).clone(),
            };
            let q = c.query as usize;
            let campaign = match &campaigns[q] {
                Some(x) => x.clone(),
                None => campaigns[q].insert(self.campaign(entry.strings[q])).clone(),
            };
            let place = self.place(
                c.client,
                entry.strings[c.country as usize],
                entry.strings[c.city as usize],
            );
            out.push(ClickRecord {
                event_id,
                link_id,
                at_ms: c.at_ms,
                referrer,
                families,
                client: c.client,
                visitor: (c.visitor != 0).then_some(c.visitor),
                place,
                campaign,
            });
        }
    }

    /// The click, ready to be counted.
    pub fn record(&mut self, click: &RawClick) -> ClickRecord {
        let (query, country, city) = click.extra_parts();
        ClickRecord {
            event_id: click.event_id,
            link_id: click.link_id,
            at_ms: click.at_ms,
            referrer: self.referrer(&click.referrer),
            families: self.families(&click.user_agent),
            client: click.client,
            visitor: (click.visitor != 0).then_some(click.visitor),
            place: self.place(click.client, country, city),
            campaign: self.campaign(query),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Snowflake;

    fn raw(ua: &str) -> RawClick {
        RawClick {
            event_id: Snowflake::from_parts(1, 1, 1),
            link_id: Snowflake::from_parts(1, 1, 0),
            at_ms: 1_800_000_000_000,
            referrer: String::new(),
            user_agent: ua.into(),
            client: ClientNet::parse("203.0.113.0"),
            visitor: 0,
            extra: None,
        }
    }

    #[test]
    fn referrers_reduce_to_their_host() {
        assert_eq!(
            referrer_host(Some("https://News.Example.com/a?b=c")),
            "news.example.com"
        );
        assert_eq!(referrer_host(Some("not a url")), "");
        assert_eq!(referrer_host(None), "");
    }

    #[test]
    fn user_agents_become_families_and_bots_are_flagged() {
        let mut c = Classifier::new();
        let chrome = c.record(&raw("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"));
        let f = &chrome.families;
        assert_eq!(
            (f.browser.as_str(), f.os.as_str(), f.device.as_str(), f.bot),
            ("Chrome", "Windows 10", "pc", false)
        );
        let iphone = c.record(&raw("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"));
        let f = &iphone.families;
        assert_eq!(
            (f.os.as_str(), f.device.as_str(), f.bot),
            ("iPhone", "smartphone", false)
        );
        for bot in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "curl/8.5.0",
            "python-requests/2.31",
            "",
        ] {
            assert!(c.record(&raw(bot)).families.bot, "{bot:?}");
        }
    }

    #[test]
    fn each_distinct_user_agent_is_parsed_once_and_the_cache_stays_bounded() {
        let mut c = Classifier::new();
        for _ in 0..100 {
            c.record(&raw("curl/8.5.0"));
            c.record(&raw("Mozilla/5.0 Firefox/121.0"));
        }
        assert_eq!(c.parsed, 2);
        for i in 0..CLASSIFIER_CACHE + 5 {
            c.record(&raw(&format!("agent/{i}")));
        }
        assert!(c.agents.len() <= CLASSIFIER_CACHE);
    }

    #[test]
    fn the_worker_reduces_the_referrer_header_to_its_host() {
        let mut c = Classifier::new();
        let mut click = raw("x");
        click.referrer = "https://News.Example.com/story?id=1".into();
        assert_eq!(&*c.record(&click).referrer, "news.example.com");
        assert_eq!(&*c.record(&raw("x")).referrer, "", "direct traffic");
    }

    #[test]
    fn a_click_counts_on_its_utc_day() {
        let mut c = Classifier::new();
        let mut late = raw("x");
        late.at_ms = 1_767_225_599_999; // 2025-12-31T23:59:59.999Z
        assert_eq!(c.record(&late).day().to_string(), "2025-12-31");
    }

    #[test]
    fn campaigns_come_from_the_utm_parameters_of_the_query() {
        let c = campaign_of("utm_source=news%20letter&utm_medium=email&x=1&utm_source=late");
        assert_eq!(
            (c.source.as_str(), c.medium.as_str(), c.campaign.as_str()),
            ("news letter", "email", "")
        );
        let mut k = Classifier::new();
        let mut click = raw("x");
        click.extra = ClickExtra::of("utm_campaign=spring".into(), String::new(), String::new());
        assert_eq!(k.record(&click).campaign.campaign, "spring");
        click.extra = ClickExtra::of("ref=abc".into(), String::new(), String::new());
        assert_eq!(*k.record(&click).campaign, Campaign::default());
        let long = format!("utm_source={}", "a".repeat(500));
        assert_eq!(campaign_of(&long).source.len(), MAX_CAMPAIGN);
    }

    #[test]
    fn a_cdn_header_names_the_place_when_there_is_one() {
        let mut k = Classifier::new();
        let mut click = raw("x");
        assert_eq!(*k.record(&click).place, Place::default(), "no source knows");
        click.extra = ClickExtra::of(String::new(), "JP".into(), "Osaka".into());
        let place = k.record(&click).place;
        assert_eq!(
            (place.country.as_str(), place.city.as_str()),
            ("JP", "Osaka, JP")
        );
    }

    #[test]
    fn long_user_agents_are_clipped_on_a_character_boundary() {
        let ua = "é".repeat(200);
        let clipped = clip(&ua, MAX_USER_AGENT);
        assert!(clipped.len() <= MAX_USER_AGENT && ua.starts_with(&clipped));
    }
}
