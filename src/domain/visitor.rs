//! Unique visitors without keeping anyone's address: a visitor is a keyed hash
//! (SipHash-1-3) of the full client address and the user agent under a salt that belongs
//! to one UTC day. The salt lives in memory only (and, in the distributed mode, in Redis
//! with an expiry, so that every instance hashes a visitor alike); once a day's salt is
//! gone, its hashes cannot be tied to an address again, not even by whoever holds the
//! database. The same person on two days is two visitor-days, by construction.
//!
//! [`VisitorSalts::hash`] is on the redirect path: a read lock, a search among at most
//! three days, and one hash of about a hundred bytes.

use std::net::IpAddr;
use std::sync::RwLock;

use siphasher::sip::SipHasher13;

use super::click::MAX_USER_AGENT;

/// Writes the family tag and the address at the start of `buf`; returns the length.
fn put(buf: &mut [u8], family: u8, octets: &[u8]) -> usize {
    buf[0] = family;
    buf[1..1 + octets.len()].copy_from_slice(octets);
    1 + octets.len()
}

/// Milliseconds in a UTC day.
pub const DAY_MS: u64 = 86_400_000;

/// A day's salt: the 128-bit SipHash key.
pub type Salt = [u8; 16];

/// The UTC day (days since the Unix epoch) of a Unix millisecond.
pub fn day_of(unix_ms: u64) -> u64 {
    unix_ms / DAY_MS
}

/// Days kept in memory: yesterday (clicks in flight at midnight), today and tomorrow
/// (fetched ahead so that midnight needs no round trip).
const KEPT_DAYS: usize = 3;

/// The salts of the days around now.
#[derive(Debug, Default)]
pub struct VisitorSalts {
    days: RwLock<Vec<(u64, Salt, SipHasher13)>>,
}

impl VisitorSalts {
    /// No salts yet: each day gets a random one when first needed, unless
    /// [`set`](Self::set) gave it a shared one first.
    pub fn new() -> Self {
        Self::default()
    }

    /// The visitor hash of `client` with `user_agent` on the UTC day of `unix_ms`; never
    /// 0 (0 means "no visitor" in a click).
    pub fn hash(&self, unix_ms: u64, client: IpAddr, user_agent: &str) -> u64 {
        let day = day_of(unix_ms);
        let found = self.days.read().ok().and_then(|days| {
            days.iter()
                .find(|(d, _, _)| *d == day)
                .map(|(_, _, hasher)| *hasher)
        });
        let hasher = match found {
            Some(h) => h,
            None => self.make_local(day),
        };
        // One pass over one buffer (the one-shot hash is cheaper than a write per part):
        // the address family, the address, a separator, the user agent.
        let mut buf = [0u8; 1 + 16 + 1 + MAX_USER_AGENT];
        let n = match client {
            IpAddr::V4(v4) => put(&mut buf, 4, &v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => put(&mut buf, 4, &v4.octets()),
                None => put(&mut buf, 6, &v6.octets()),
            },
        };
        buf[n] = 0xff;
        let ua = &user_agent.as_bytes()[..user_agent.len().min(MAX_USER_AGENT)];
        buf[n + 1..n + 1 + ua.len()].copy_from_slice(ua);
        hasher.hash(&buf[..n + 1 + ua.len()]).max(1)
    }

    /// The salt of `day`, if it has one in memory.
    pub fn get(&self, day: u64) -> Option<Salt> {
        self.days
            .read()
            .ok()?
            .iter()
            .find(|(d, _, _)| *d == day)
            .map(|(_, salt, _)| *salt)
    }

    /// Gives `day` the salt `salt` (the one every instance shares), replacing what it had.
    pub fn set(&self, day: u64, salt: &Salt) {
        let hasher = SipHasher13::new_with_key(salt);
        if let Ok(mut days) = self.days.write() {
            days.retain(|(d, _, _)| *d != day);
            days.push((day, *salt, hasher));
            Self::forget_old(&mut days);
        }
    }

    fn make_local(&self, day: u64) -> SipHasher13 {
        let salt: Salt = rand::random();
        let Ok(mut days) = self.days.write() else {
            return SipHasher13::new_with_key(&salt);
        };
        // Another thread may have made it meanwhile.
        if let Some((_, _, h)) = days.iter().find(|(d, _, _)| *d == day) {
            return *h;
        }
        let hasher = SipHasher13::new_with_key(&salt);
        days.push((day, salt, hasher));
        Self::forget_old(&mut days);
        hasher
    }

    /// Drops all but the newest [`KEPT_DAYS`] days: an old salt must not outlive its use.
    fn forget_old(days: &mut Vec<(u64, Salt, SipHasher13)>) {
        days.sort_unstable_by_key(|(d, _, _)| std::cmp::Reverse(*d));
        days.truncate(KEPT_DAYS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const NOON: u64 = 1_780_315_200_000; // 2026-06-01T12:00:00Z

    #[test]
    fn a_visitor_is_the_same_all_day_and_different_the_next() {
        let salts = VisitorSalts::new();
        let a = salts.hash(NOON, ip("203.0.113.7"), "Firefox");
        assert_eq!(
            a,
            salts.hash(NOON + 3_600_000, ip("203.0.113.7"), "Firefox")
        );
        assert_ne!(a, salts.hash(NOON + DAY_MS, ip("203.0.113.7"), "Firefox"));
        assert_ne!(a, salts.hash(NOON, ip("203.0.113.8"), "Firefox"), "address");
        assert_ne!(
            a,
            salts.hash(NOON, ip("203.0.113.7"), "Chrome"),
            "user agent"
        );
        assert_eq!(
            a,
            salts.hash(NOON, ip("::ffff:203.0.113.7"), "Firefox"),
            "IPv4-mapped is IPv4"
        );
    }

    #[test]
    fn instances_with_the_shared_salt_agree_and_others_do_not() {
        let (one, two, stranger) = (
            VisitorSalts::new(),
            VisitorSalts::new(),
            VisitorSalts::new(),
        );
        let salt: Salt = rand::random();
        one.set(day_of(NOON), &salt);
        two.set(day_of(NOON), &salt);
        let h = |s: &VisitorSalts| s.hash(NOON, ip("2001:db8::1"), "UA");
        assert_eq!(h(&one), h(&two));
        assert_ne!(h(&one), h(&stranger));
    }

    #[test]
    fn only_the_newest_days_are_kept() {
        let salts = VisitorSalts::new();
        for d in 0..10 {
            salts.hash(NOON + d * DAY_MS, ip("203.0.113.7"), "UA");
        }
        assert!(salts.get(day_of(NOON) + 9).is_some());
        assert!(salts.get(day_of(NOON) + 7).is_some());
        assert!(salts.get(day_of(NOON) + 6).is_none());
    }
}
