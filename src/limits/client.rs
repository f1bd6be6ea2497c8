//! Who a request comes from: the one place that decides a request's client address,
//! which the rate limits, the click and everything after use.
//!
//! The peer is the client unless it is a trusted proxy (`limits.trusted_proxies`). From
//! a trusted proxy the client is the rightmost hop of the forwarding header
//! (`limits.client_header`: `X-Forwarded-For` or the standard `Forwarded`) that is not
//! itself a trusted proxy: every hop to its right was added by a proxy we trust, the
//! hops to its left are whatever the client sent. Only one of the two headers is
//! believed, the one the operator's proxy writes: a proxy that does not know the other
//! passes a client's forged copy through unchanged. A hop that does not parse ends the
//! walk at the peer (the proxy) rather than skip to a hop a client chose.
//!
//! From a trusted proxy the location headers of a CDN in front (`CF-IPCountry`,
//! `CloudFront-Viewer-Country`, `X-Vercel-IP-Country`, their city headers, and the names
//! `[geo]` adds) are believed too; from any other peer every such header means nothing.

use std::borrow::Cow;
use std::net::IpAddr;

use actix_web::http::header::{HeaderMap, HeaderName};
use actix_web::HttpRequest;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::domain::click::{clip_str, country_code, MAX_CITY};

/// Which forwarding header a trusted proxy writes (`limits.client_header`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the default: what nginx, HAProxy,
    /// AWS and most CDNs write).
    #[default]
    #[serde(rename = "x-forwarded-for")]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for="[2001:db8::1]:443"`.
    #[serde(rename = "forwarded")]
    Forwarded,
}

/// Country headers of well-known CDNs, believed from trusted proxies.
pub const COUNTRY_HEADERS: [&str; 3] = [
    "cf-ipcountry",
    "cloudfront-viewer-country",
    "x-vercel-ip-country",
];
/// City headers of well-known CDNs (Vercel's is percent-encoded).
pub const CITY_HEADERS: [&str; 3] = ["x-vercel-ip-city", "cloudfront-viewer-city", "cf-ipcity"];

/// A request's client, as far as it can be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// The client's address; `None` without a peer (a Unix socket, a test request).
    pub ip: Option<IpAddr>,
    /// Whether the peer is a trusted proxy (and its location headers are believed).
    pub via_proxy: bool,
}

/// Decides clients. Built once from the settings.
#[derive(Debug, Clone, Default)]
pub struct ClientResolver {
    trusted: Vec<IpNet>,
    header: ClientHeader,
    countries: Vec<HeaderName>,
    cities: Vec<HeaderName>,
}

impl ClientResolver {
    /// A resolver trusting `trusted`, reading `header`, and believing the CDN headers
    /// plus `country_headers` and `city_headers` from trusted proxies.
    pub fn new(
        trusted: Vec<IpNet>,
        header: ClientHeader,
        country_headers: &[String],
        city_headers: &[String],
    ) -> Self {
        let names = |builtin: &[&str], extra: &[String]| -> Vec<HeaderName> {
            let extra = extra.iter().map(String::as_str);
            builtin
                .iter()
                .copied()
                .chain(extra)
                .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
                .collect()
        };
        Self {
            trusted,
            header,
            countries: names(&COUNTRY_HEADERS, country_headers),
            cities: names(&CITY_HEADERS, city_headers),
        }
    }

    /// The client of `req`.
    pub fn resolve(&self, req: &HttpRequest) -> Client {
        let Some(peer) = req.peer_addr().map(|a| a.ip()) else {
            return Client {
                ip: None,
                via_proxy: false,
            };
        };
        self.resolve_from(peer, req.headers())
    }

    /// The client of a request from `peer` with `headers`.
    pub fn resolve_from(&self, peer: IpAddr, headers: &HeaderMap) -> Client {
        if self.trusted.is_empty() || !self.is_trusted(peer) {
            return Client {
                ip: Some(peer),
                via_proxy: false,
            };
        }
        let ip = match self.header {
            ClientHeader::XForwardedFor => {
                self.rightmost_untrusted(headers, "x-forwarded-for", |hop| hop.parse().ok())
            }
            ClientHeader::Forwarded => {
                self.rightmost_untrusted(headers, "forwarded", forwarded_for)
            }
        };
        Client {
            ip: Some(ip.unwrap_or(peer)),
            via_proxy: true,
        }
    }

    /// Walks the hops of every `name` header from the right: trusted hops are skipped,
    /// the first other one is the client if it parses. `None`: no such hop, or it did
    /// not parse.
    fn rightmost_untrusted(
        &self,
        headers: &HeaderMap,
        name: &str,
        parse: impl Fn(&str) -> Option<IpAddr>,
    ) -> Option<IpAddr> {
        let values: Vec<&str> = headers
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .collect();
        for hop in values.iter().rev().flat_map(|v| v.rsplit(',')) {
            let hop = hop.trim();
            if hop.is_empty() {
                continue;
            }
            match parse(hop) {
                Some(ip) if self.is_trusted(ip) => continue,
                found => return found,
            }
        }
        None
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The country and city a CDN in front named for `client`, believed only when it
    /// came through a trusted proxy. The country is an upper-case ISO 3166-1 alpha-2
    /// code (`XX` and Cloudflare's `T1` for Tor mean unknown); the city is decoded when
    /// percent-encoded and cut to [`MAX_CITY`] bytes.
    pub fn edge_place<'a>(
        &self,
        client: &Client,
        headers: &'a HeaderMap,
    ) -> (Option<String>, Option<Cow<'a, str>>) {
        if !client.via_proxy {
            return (None, None);
        }
        let first = |names: &[HeaderName]| {
            names
                .iter()
                .find_map(|n| headers.get(n).and_then(|v| v.to_str().ok()))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let country = first(&self.countries).and_then(country_code);
        let city = first(&self.cities).map(|c| {
            let decoded = percent_decode(c);
            match decoded {
                Cow::Borrowed(s) => Cow::Borrowed(clip_str(s, MAX_CITY)),
                Cow::Owned(s) => Cow::Owned(clip_str(&s, MAX_CITY).to_owned()),
            }
        });
        (country, city)
    }
}

fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    url::form_urlencoded::parse(format!("c={s}").as_bytes())
        .next()
        .map(|(_, v)| Cow::Owned(v.into_owned()))
        .unwrap_or(Cow::Borrowed(s))
}

/// The address of one `Forwarded` element's `for=` parameter (`for=192.0.2.60`,
/// `for="[2001:db8::17]:4711"`, `for="198.51.100.1:80"`); `None` for `unknown`, an
/// obfuscated name or anything else.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let value = element.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
    })?;
    let value = value.trim_matches('"');
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    match value.parse() {
        Ok(ip) => Some(ip),
        // IPv4 with a port.
        Err(_) => value.rsplit_once(':')?.0.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn resolver(header: ClientHeader) -> ClientResolver {
        ClientResolver::new(
            vec![
                "10.0.0.0/8".parse().unwrap(),
                "127.0.0.1/32".parse().unwrap(),
            ],
            header,
            &["x-geo-country".into()],
            &[],
        )
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_rightmost_hop_that_is_not_a_trusted_proxy() {
        let r = resolver(ClientHeader::XForwardedFor);
        type Case<'a> = (
            &'a str,
            &'a [(&'static str, &'static str)],
            &'a str,
            &'a str,
        );
        let cases: &[Case] = &[
            (
                "untrusted peer: headers ignored",
                &[("x-forwarded-for", "198.51.100.1")],
                "203.0.113.9",
                "203.0.113.9",
            ),
            (
                "one hop",
                &[("x-forwarded-for", "198.51.100.1")],
                "10.0.0.1",
                "198.51.100.1",
            ),
            (
                "spoofed left hops are skipped",
                &[("x-forwarded-for", "1.2.3.4, 198.51.100.1, 10.0.0.2")],
                "10.0.0.1",
                "198.51.100.1",
            ),
            (
                "two header lines",
                &[
                    ("x-forwarded-for", "1.2.3.4"),
                    ("x-forwarded-for", "198.51.100.1"),
                ],
                "10.0.0.1",
                "198.51.100.1",
            ),
            (
                "garbage stops at the proxy",
                &[("x-forwarded-for", "198.51.100.1, nonsense")],
                "10.0.0.1",
                "10.0.0.1",
            ),
            ("no header: the proxy", &[], "10.0.0.1", "10.0.0.1"),
            (
                "the other header is not believed",
                &[("forwarded", "for=198.51.100.1")],
                "10.0.0.1",
                "10.0.0.1",
            ),
            (
                "mapped trusted peer",
                &[("x-forwarded-for", "198.51.100.1")],
                "::ffff:10.0.0.1",
                "198.51.100.1",
            ),
        ];
        for (what, pairs, peer, want) in cases {
            assert_eq!(
                r.resolve_from(ip(peer), &headers(pairs)).ip,
                Some(ip(want)),
                "{what}"
            );
        }
    }

    #[test]
    fn forwarded_elements_give_their_for_address() {
        let r = resolver(ClientHeader::Forwarded);
        let cases: &[(&'static str, &str)] = &[
            ("for=198.51.100.1;proto=https", "198.51.100.1"),
            ("for=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17"),
            ("For=\"198.51.100.7:80\", for=10.0.0.9", "198.51.100.7"),
            ("for=1.2.3.4, for=198.51.100.2;by=10.0.0.1", "198.51.100.2"),
            ("for=unknown", "10.0.0.1"),
            ("for=_hidden, for=10.0.0.3", "10.0.0.1"),
        ];
        for (value, want) in cases {
            let h = headers(&[("forwarded", value)]);
            assert_eq!(
                r.resolve_from(ip("10.0.0.1"), &h).ip,
                Some(ip(want)),
                "{value}"
            );
        }
    }

    #[test]
    fn cdn_location_headers_count_only_through_a_trusted_proxy() {
        let r = resolver(ClientHeader::XForwardedFor);
        let h = headers(&[
            ("cf-ipcountry", "jp"),
            ("x-vercel-ip-city", "S%C3%A3o%20Paulo"),
        ]);
        let trusted = r.resolve_from(ip("10.0.0.1"), &h);
        let (country, city) = r.edge_place(&trusted, &h);
        assert_eq!(country.as_deref(), Some("JP"));
        assert_eq!(city.as_deref(), Some("São Paulo"));
        let direct = r.resolve_from(ip("203.0.113.9"), &h);
        assert_eq!(r.edge_place(&direct, &h), (None, None));
        for unknown in ["XX", "T1", "", "FRA", "1A"] {
            let mut h = HeaderMap::new();
            h.insert(
                HeaderName::from_static("x-geo-country"),
                HeaderValue::from_str(unknown).unwrap(),
            );
            assert_eq!(r.edge_place(&trusted, &h).0, None, "{unknown:?}");
        }
        let h = headers(&[("x-geo-country", "de")]);
        assert_eq!(
            r.edge_place(&trusted, &h).0.as_deref(),
            Some("DE"),
            "an added name"
        );
    }
}
