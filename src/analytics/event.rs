//! Click events: what the redirect path captures (cheaply), and what the worker derives
//! from it (user-agent parsing happens off the hot path, in the worker).

use std::net::IpAddr;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::clock::ms_to_datetime;
use crate::domain::Snowflake;

/// Longest user agent kept, in bytes; longer ones are cut (they are parsed, not stored).
pub const MAX_USER_AGENT: usize = 256;
/// Longest referrer host kept.
pub const MAX_REFERRER: usize = 253;
/// Longest `Referer` header carried in a click, in bytes (it is reduced to its host by
/// the worker; a longer one is cut, which can only lose its path).
pub const MAX_REFERRER_HEADER: usize = 512;

/// A click as the redirect handler captures it: no parsing, and the client address is
/// already anonymised, so the raw IP never leaves the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RawClick {
    /// Unique per click (a Snowflake): what makes redelivery harmless.
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
    /// The client address with its host part zeroed: see [`anonymise`].
    pub client: String,
}

/// A click ready to be counted: the user agent reduced to families.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickRecord {
    pub event_id: Snowflake,
    pub link_id: Snowflake,
    pub at: DateTime<Utc>,
    /// The UTC day the click counts on.
    pub day: NaiveDate,
    pub referrer: String,
    pub browser: String,
    pub os: String,
    /// `desktop`, `mobile`, `tablet`-less families as woothee names them: `pc`,
    /// `smartphone`, `mobilephone`, `appliance`, `crawler`, `misc`, or `unknown`.
    pub device: String,
    pub bot: bool,
    pub client: String,
}

/// Zeroes the host part of an address: the last octet of IPv4 (a /24), all but the
/// first 48 bits of IPv6 (a /48). Enough to tell networks and countries apart, not
/// people. IPv4-mapped IPv6 addresses are treated as IPv4.
pub fn anonymise(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0")
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => anonymise(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0).to_string()
            }
        },
    }
}

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
    if value.len() <= max {
        return value.to_owned();
    }
    let mut end = max;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_owned()
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

/// What a user agent reduces to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Families {
    pub browser: String,
    pub os: String,
    pub device: String,
    pub bot: bool,
}

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

impl RawClick {
    /// Parses the user agent into families and flags bots.
    pub fn into_record(self, parser: &woothee::parser::Parser) -> ClickRecord {
        let families = classify(parser, &self.user_agent);
        self.into_record_with(&families)
    }

    /// The record, with the user agent already classified (the worker memoises
    /// [`classify`] per batch: real traffic repeats a few user agents many times).
    pub fn into_record_with(self, families: &Families) -> ClickRecord {
        let at = ms_to_datetime(self.at_ms);
        ClickRecord {
            event_id: self.event_id,
            link_id: self.link_id,
            day: at.date_naive(),
            at,
            referrer: referrer_host(
                Some(&self.referrer)
                    .filter(|r| !r.is_empty())
                    .map(String::as_str),
            ),
            browser: families.browser.clone(),
            os: families.os.clone(),
            device: families.device.clone(),
            bot: families.bot,
            client: self.client,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(ua: &str) -> RawClick {
        RawClick {
            event_id: Snowflake::from_parts(1, 1, 1),
            link_id: Snowflake::from_parts(1, 1, 0),
            at_ms: 1_800_000_000_000,
            referrer: String::new(),
            user_agent: ua.into(),
            client: "203.0.113.0".into(),
        }
    }

    #[test]
    fn addresses_lose_their_host_part() {
        assert_eq!(anonymise("203.0.113.77".parse().unwrap()), "203.0.113.0");
        assert_eq!(
            anonymise("2001:db8:abcd:12:1:2:3:4".parse().unwrap()),
            "2001:db8:abcd::"
        );
        assert_eq!(
            anonymise("::ffff:198.51.100.9".parse().unwrap()),
            "198.51.100.0"
        );
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
        let p = woothee::parser::Parser::new();
        let chrome = raw("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36").into_record(&p);
        assert_eq!(
            (
                chrome.browser.as_str(),
                chrome.os.as_str(),
                chrome.device.as_str(),
                chrome.bot
            ),
            ("Chrome", "Windows 10", "pc", false)
        );
        let iphone = raw("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1").into_record(&p);
        assert_eq!(
            (iphone.os.as_str(), iphone.device.as_str(), iphone.bot),
            ("iPhone", "smartphone", false)
        );
        for bot in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "curl/8.5.0",
            "python-requests/2.31",
            "",
        ] {
            assert!(raw(bot).into_record(&p).bot, "{bot:?}");
        }
    }

    #[test]
    fn the_worker_reduces_the_referrer_header_to_its_host() {
        let p = woothee::parser::Parser::new();
        let mut click = raw("x");
        click.referrer = "https://News.Example.com/story?id=1".into();
        assert_eq!(click.into_record(&p).referrer, "news.example.com");
        assert_eq!(raw("x").into_record(&p).referrer, "", "direct traffic");
    }

    #[test]
    fn a_click_counts_on_its_utc_day() {
        let p = woothee::parser::Parser::new();
        let mut late = raw("x");
        late.at_ms = 1_767_225_599_999; // 2025-12-31T23:59:59.999Z
        assert_eq!(late.into_record(&p).day.to_string(), "2025-12-31");
    }

    #[test]
    fn long_user_agents_are_clipped_on_a_character_boundary() {
        let ua = "é".repeat(200);
        let clipped = clip(&ua, MAX_USER_AGENT);
        assert!(clipped.len() <= MAX_USER_AGENT && ua.starts_with(&clipped));
    }
}
