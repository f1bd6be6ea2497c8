//! Rate limits (governor, GCRA): separate quotas for shortening and for redirects, per
//! client address, and a shortening quota per API key (a tenant may have its own).
//! The client address comes from [`client`], the one place that decides
//! it (trusted proxies and their forwarding header); idle keys are evicted so the
//! keyed state cannot grow without bound.

pub mod client;

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, QuantaInstant};
use governor::{DefaultKeyedRateLimiter, NotUntil, Quota, RateLimiter};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Rate limit settings (`[limits]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    /// Whether requests are limited at all.
    pub enabled: bool,
    /// Links one client address may create per minute, sustained.
    pub shorten_per_minute: u32,
    /// Links one client address may create at once before the rate applies.
    pub shorten_burst: u32,
    /// Redirects one client address may follow per second, sustained.
    pub redirect_per_second: u32,
    /// Redirects one client address may follow at once.
    pub redirect_burst: u32,
    /// Links one API key may create per minute, unless its tenant has its own quota.
    /// A key may spend a full minute's quota at once; it then refills continuously.
    pub key_shorten_per_minute: u32,
    /// Proxies (addresses or CIDR blocks) whose forwarding header (`client_header`) and
    /// CDN location headers are believed. From any other peer they mean nothing.
    #[serde(deserialize_with = "proxies")]
    pub trusted_proxies: Vec<IpNet>,
    /// The forwarding header the trusted proxies write: `"x-forwarded-for"` (default)
    /// or `"forwarded"` (RFC 7239). Only that one is read.
    pub client_header: client::ClientHeader,
    /// How often state of clients that are back to a full quota is dropped, seconds.
    #[serde(with = "crate::duration::secs")]
    pub evict_every_s: Duration,
    /// IPv6 clients are limited by this prefix of their address (64: one quota per
    /// /64, which is what one subscriber usually gets); 128 limits each address.
    pub ipv6_prefix: u8,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            shorten_per_minute: 120,
            shorten_burst: 60,
            redirect_per_second: 600,
            redirect_burst: 1_200,
            key_shorten_per_minute: 600,
            trusted_proxies: Vec::new(),
            client_header: Default::default(),
            evict_every_s: Duration::from_secs(60),
            ipv6_prefix: 64,
        }
    }
}

/// The key an address is limited by: an IPv4 address as itself (also when it comes
/// IPv4-mapped, `::ffff:a.b.c.d`), an IPv6 address by its first `v6_prefix` bits, so
/// that one client cannot multiply its quota by walking its own /64.
pub fn limit_key(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u32::from(v6_prefix.clamp(1, 128));
                let mask = u128::MAX << (128 - bits);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        },
    }
}

/// What a request is limited as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Shorten,
    Redirect,
}

/// Requests refused, per class (exported as `shortener_rate_limited_total`).
#[derive(Debug, Default)]
pub struct LimitStats {
    pub shorten: AtomicU64,
    pub redirect: AtomicU64,
}

/// The limiters of one process.
pub struct Limits {
    shorten: DefaultKeyedRateLimiter<IpAddr>,
    redirect: DefaultKeyedRateLimiter<IpAddr>,
    /// Per API key, one limiter per distinct quota (tenants with their own quota are few).
    keys: RwLock<HashMap<u32, Arc<DefaultKeyedRateLimiter<i64>>>>,
    key_default: u32,
    ipv6_prefix: u8,
    clock: DefaultClock,
    stats: Arc<LimitStats>,
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n.max(1)).expect("at least 1")
}

/// Reads `trusted_proxies`: each entry an address or a CIDR block.
fn proxies<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|e| parse_proxy(e).map_err(serde::de::Error::custom))
        .collect()
}

/// One `trusted_proxies` entry: an address (a block of one) or a CIDR block.
///
/// # Errors
/// Naming the entry, when it is neither.
pub fn parse_proxy(entry: &str) -> Result<IpNet, String> {
    entry
        .parse::<IpNet>()
        .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{entry:?} is not an address or CIDR block"))
}

impl Limits {
    /// Limiters for the settings (which were validated at load).
    pub fn new(settings: &LimitSettings) -> Self {
        Self {
            shorten: RateLimiter::keyed(
                Quota::per_minute(nz(settings.shorten_per_minute))
                    .allow_burst(nz(settings.shorten_burst)),
            ),
            redirect: RateLimiter::keyed(
                Quota::per_second(nz(settings.redirect_per_second))
                    .allow_burst(nz(settings.redirect_burst)),
            ),
            keys: RwLock::new(HashMap::new()),
            key_default: settings.key_shorten_per_minute.max(1),
            ipv6_prefix: settings.ipv6_prefix.clamp(1, 128),
            clock: DefaultClock::default(),
            stats: Arc::new(LimitStats::default()),
        }
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<LimitStats> {
        &self.stats
    }

    /// Lets the request through, or answers `429` with `Retry-After` and the
    /// `RateLimit-*` headers.
    ///
    /// # Errors
    /// [`ApiError`] 429 when the client is over its quota for `class`.
    pub fn check(&self, class: Class, client: IpAddr) -> Result<(), ApiError> {
        let client = limit_key(client, self.ipv6_prefix);
        let limiter = match class {
            Class::Shorten => &self.shorten,
            Class::Redirect => &self.redirect,
        };
        limiter.check_key(&client).map_err(|not_until| {
            let counter = match class {
                Class::Shorten => &self.stats.shorten,
                Class::Redirect => &self.stats.redirect,
            };
            self.refuse(&not_until, counter)
        })
    }

    /// The 429 for a refused request (its limit is the quota's burst), counted.
    fn refuse(&self, not_until: &NotUntil<QuantaInstant>, counter: &AtomicU64) -> ApiError {
        counter.fetch_add(1, Ordering::Relaxed);
        let wait = not_until.wait_time_from(self.clock.now());
        ApiError::rate_limited(
            not_until.quota().burst_size().get(),
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        )
    }

    /// Applies the shortening quota of one API key: `per_minute` (its tenant's own) or
    /// the default.
    ///
    /// # Errors
    /// [`ApiError`] 429 when the key is over its quota.
    pub fn check_key(&self, key: i64, per_minute: Option<u32>) -> Result<(), ApiError> {
        let quota = per_minute.unwrap_or(self.key_default).max(1);
        // A key may spend a full minute's quota at once: its burst is the quota.
        self.key_limiter(quota)
            .check_key(&key)
            .map_err(|not_until| self.refuse(&not_until, &self.stats.shorten))
    }

    fn key_limiter(&self, quota: u32) -> Arc<DefaultKeyedRateLimiter<i64>> {
        if let Some(l) = self.keys.read().ok().and_then(|m| m.get(&quota).cloned()) {
            return l;
        }
        let mut map = self.keys.write().unwrap_or_else(|e| e.into_inner());
        map.entry(quota)
            .or_insert_with(|| {
                Arc::new(RateLimiter::keyed(
                    Quota::per_minute(nz(quota)).allow_burst(nz(quota)),
                ))
            })
            .clone()
    }

    fn key_limiters(&self) -> Vec<Arc<DefaultKeyedRateLimiter<i64>>> {
        self.keys
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Drops the state of clients and keys whose quota has fully recovered.
    pub fn evict_idle(&self) {
        self.shorten.retain_recent();
        self.redirect.retain_recent();
        self.shorten.shrink_to_fit();
        self.redirect.shrink_to_fit();
        for l in self.key_limiters() {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// Clients and keys with state (all classes).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.shorten.len()
            + self.redirect.len()
            + self.key_limiters().iter().map(|l| l.len()).sum::<usize>()
    }

    /// Evicts idle clients every `every` until `shutdown` begins.
    pub fn spawn_eviction(
        self: &Arc<Self>,
        every: Duration,
        shutdown: &crate::shutdown::Shutdown,
    ) -> tokio::task::JoinHandle<()> {
        let limits = self.clone();
        shutdown.spawn_until(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                limits.evict_idle();
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_client_over_its_burst_is_refused_with_the_wait_and_others_are_not() {
        let limits = Limits::new(&LimitSettings {
            redirect_per_second: 1,
            redirect_burst: 2,
            ..LimitSettings::default()
        });
        assert!(limits.check(Class::Redirect, ip("203.0.113.1")).is_ok());
        assert!(limits.check(Class::Redirect, ip("203.0.113.1")).is_ok());
        let refused = limits
            .check(Class::Redirect, ip("203.0.113.1"))
            .unwrap_err();
        assert_eq!(refused.code(), Code::RateLimited);
        assert!(
            limits.check(Class::Redirect, ip("203.0.113.2")).is_ok(),
            "another client"
        );
        assert!(
            limits.check(Class::Shorten, ip("203.0.113.1")).is_ok(),
            "another class"
        );
        assert_eq!(limits.stats().redirect.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn recovered_clients_are_evicted() {
        let limits = Limits::new(&LimitSettings {
            redirect_per_second: 1_000,
            ..LimitSettings::default()
        });
        for n in 0..50 {
            limits
                .check(Class::Redirect, IpAddr::from([10, 0, 0, n]))
                .unwrap();
        }
        assert_eq!(limits.tracked(), 50);
        std::thread::sleep(Duration::from_millis(20));
        limits.evict_idle();
        assert_eq!(limits.tracked(), 0);
    }

    #[test]
    fn each_key_has_its_own_quota_and_a_tenant_quota_overrides_the_default() {
        let limits = Limits::new(&LimitSettings {
            key_shorten_per_minute: 3,
            ..LimitSettings::default()
        });
        for _ in 0..3 {
            limits.check_key(1, None).unwrap();
        }
        let refused = limits.check_key(1, None).unwrap_err();
        assert_eq!(refused.code(), Code::RateLimited);
        assert!(limits.check_key(2, None).is_ok(), "another key");
        for _ in 0..10 {
            limits.check_key(3, Some(10)).unwrap();
        }
        assert!(limits.check_key(3, Some(10)).is_err());
        assert_eq!(limits.tracked(), 3);
    }

    #[test]
    fn proxies_are_addresses_or_blocks() {
        assert_eq!(parse_proxy("10.0.0.0/8"), Ok("10.0.0.0/8".parse().unwrap()));
        assert_eq!(parse_proxy("::1"), Ok("::1/128".parse().unwrap()));
        assert!(parse_proxy("proxy.local").is_err());
    }

    #[test]
    fn ipv6_clients_share_a_quota_per_prefix_and_mapped_ipv4_is_ipv4() {
        let key = |s: &str| limit_key(ip(s), 64);
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:198.51.100.7"), ip("198.51.100.7"));
        assert_eq!(key("198.51.100.7"), ip("198.51.100.7"));
        assert_eq!(limit_key(ip("2001:db8::1"), 128), ip("2001:db8::1"));
        assert_eq!(limit_key(ip("2001:db8:ffff::1"), 32), ip("2001:db8::"));
    }
}
