//! The URL a link points to, parsed at the edge so nothing downstream sees raw input.

use std::fmt;

use url::Url;

/// Rules a target URL must meet, from configuration.
#[derive(Debug, Clone)]
pub struct UrlPolicy {
    /// Longest accepted URL, in bytes, as submitted.
    pub max_length: usize,
    /// Hosts of this service (lower case): links to them would loop or launder
    /// the service's own reputation, so they are refused.
    pub own_hosts: Vec<String>,
    /// Blocked domains (lower case, no trailing dot); their subdomains are blocked too.
    pub blocked: std::collections::HashSet<String>,
    /// Whether loopback, unspecified and link-local hosts may be targets (intranet
    /// deployments); off, they are refused: a public shortener must not point back at
    /// whoever follows the link, nor loop through itself.
    pub allow_local: bool,
}

impl UrlPolicy {
    /// Whether a stored link's URL lies in a blocked domain now: for links made before
    /// their domain was blocked. Free when nothing is blocked.
    pub fn blocks_stored(&self, url: &str) -> bool {
        if self.blocked.is_empty() {
            return false;
        }
        Url::parse(url)
            .ok()
            .and_then(|u| host_key(&u))
            .is_some_and(|host| self.blocked_domain(&host).is_some())
    }

    /// The blocked domain that `host` is, or lies under.
    pub fn blocked_domain<'a>(&self, host: &'a str) -> Option<&'a str> {
        if self.blocked.is_empty() {
            return None;
        }
        let mut rest = host;
        loop {
            if self.blocked.contains(rest) {
                return Some(rest);
            }
            rest = rest.split_once('.')?.1;
        }
    }
}

/// Whether a URL's host is this machine, no machine or the local link: `localhost` and
/// its subdomains, 127/8, 0.0.0.0, 169.254/16, `::1`, `::`, fe80::/10, and IPv4-mapped
/// IPv6 forms of those.
fn is_local(url: &Url, host: &str) -> bool {
    use std::net::{IpAddr, Ipv4Addr};
    let v4 = |ip: Ipv4Addr| ip.is_loopback() || ip.is_unspecified() || ip.is_link_local();
    match url.host() {
        Some(url::Host::Ipv4(ip)) => v4(ip),
        Some(url::Host::Ipv6(ip)) => match ip.to_ipv4_mapped() {
            Some(mapped) => v4(mapped),
            None => {
                ip.is_loopback()
                    || ip.is_unspecified()
                    || (ip.segments()[0] & 0xffc0) == 0xfe80
                    || IpAddr::V6(ip).is_loopback()
            }
        },
        Some(url::Host::Domain(_)) => host == "localhost" || host.ends_with(".localhost"),
        None => false,
    }
}

/// Reads a blocklist: one domain per line, `#` starts a comment, blank lines ignored;
/// each entry in the form targets are compared in ([`normalise_host`]).
///
/// # Errors
/// The first entry that can never match a link's host.
pub fn parse_blocklist(text: &str) -> Result<Vec<String>, String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .map(normalise_host)
        .collect()
}

/// The form hosts are compared in: lower case, IDNA (punycode) for names, no trailing
/// dot, IPv6 in brackets, an IPv4-mapped IPv6 address as its IPv4 address.
fn host_key(url: &Url) -> Option<String> {
    match url.host()? {
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.');
            (!d.is_empty()).then(|| d.to_ascii_lowercase())
        }
        url::Host::Ipv4(ip) => Some(ip.to_string()),
        url::Host::Ipv6(ip) => Some(match ip.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("[{ip}]"),
        }),
    }
}

/// A host from the configuration (`public_url`'s, `links.own_hosts`,
/// `links.blocked_domains`, the blocklist file) in the form targets are compared in: a
/// port is dropped (hosts are compared, not ports).
///
/// # Errors
/// An entry that is not a host (a URL with a path, a wildcard, spaces, credentials, an
/// empty name), which could never match a link's host.
pub fn normalise_host(entry: &str) -> Result<String, String> {
    let never = || format!("{entry:?} is not a host name or address, so it can never match");
    if entry.is_empty() || entry.contains(['/', '@', '*', '?', '#', ' ', '\\']) {
        return Err(never());
    }
    let url = Url::parse(&format!("http://{entry}/")).map_err(|_| never())?;
    host_key(&url).ok_or_else(never)
}

/// Why a URL is refused. Each maps to a stable API error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("the URL is longer than {max} bytes")]
    TooLong { max: usize },
    #[error("not a valid absolute URL ({0}); include the scheme, as in https://example.com/")]
    Invalid(String),
    #[error("only http and https URLs can be shortened, not '{0}:'")]
    UnsupportedScheme(String),
    #[error("the URL has no host")]
    MissingHost,
    #[error("URLs carrying a user name or password are refused")]
    Credentials,
    #[error("the URL points back at this service ({0})")]
    OwnHost(String),
    #[error("links to {0} are not allowed")]
    Blocked(String),
    #[error("{0} is a loopback, unspecified or link-local host, which links may not point to")]
    Local(String),
}

/// An absolute http(s) URL with a host, no credentials, within the length limit, not
/// pointing at this service. Stored and redirected to in the normalised form the `url`
/// crate gives it (lower-case scheme and host, IDNA host, percent-encoding as needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl(String);

impl TargetUrl {
    /// Parses and checks a submitted URL.
    ///
    /// # Errors
    /// A [`UrlError`] naming the rule that is broken.
    pub fn parse(raw: &str, policy: &UrlPolicy) -> Result<Self, UrlError> {
        if raw.len() > policy.max_length {
            return Err(UrlError::TooLong {
                max: policy.max_length,
            });
        }
        let url = Url::parse(raw).map_err(|e| match e {
            url::ParseError::EmptyHost => UrlError::MissingHost,
            other => UrlError::Invalid(other.to_string()),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlError::UnsupportedScheme(url.scheme().to_owned()));
        }
        // `http://./` and `http://../` have the host `.` and `..`: nothing once the
        // root's dots are trimmed.
        let Some(host) = host_key(&url) else {
            return Err(UrlError::MissingHost);
        };
        if !policy.allow_local && is_local(&url, &host) {
            return Err(UrlError::Local(host));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Credentials);
        }
        if policy.own_hosts.contains(&host) {
            return Err(UrlError::OwnHost(host));
        }
        if let Some(domain) = policy.blocked_domain(&host) {
            return Err(UrlError::Blocked(domain.to_owned()));
        }
        let normalised = String::from(url);
        if normalised.len() > policy.max_length {
            // Percent-encoding can grow a URL past the limit it was submitted under.
            return Err(UrlError::TooLong {
                max: policy.max_length,
            });
        }
        Ok(Self(normalised))
    }

    /// A URL read back from storage or a cache: it passed [`parse`](Self::parse) when
    /// it was written, under the policy of that time (a domain blocked since is screened
    /// apart, by [`UrlPolicy::blocks_stored`]). Checked only for what every use of it
    /// needs: a non-empty run of visible ASCII, as a `Location` header carries it.
    ///
    /// # Errors
    /// [`UrlError::Invalid`] for anything else (a corrupt row or cache entry).
    pub fn stored(url: String) -> Result<Self, UrlError> {
        if !url.is_empty() && url.bytes().all(|b| b.is_ascii_graphic()) {
            Ok(Self(url))
        } else {
            Err(UrlError::Invalid(format!(
                "stored URL {url:?} is not visible ASCII"
            )))
        }
    }

    /// The normalised URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The normalised URL.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl AsRef<str> for TargetUrl {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> UrlPolicy {
        UrlPolicy {
            max_length: 100,
            own_hosts: vec!["sho.rt".into()],
            blocked: parse_blocklist("# bad places\nEvil.example.\n\nphish.test  # reported\n")
                .unwrap()
                .into_iter()
                .collect(),
            allow_local: false,
        }
    }

    #[test]
    fn a_stored_url_is_taken_back_only_as_visible_ascii() {
        let parsed = TargetUrl::parse("https://Bücher.example/ä b", &policy()).unwrap();
        let again = TargetUrl::stored(parsed.as_str().to_owned()).unwrap();
        assert_eq!(again, parsed, "what parse gives is what stored takes back");
        for bad in [
            "",
            "https://e.com/a b",
            "https://e.com/\n",
            "https://e.com/ä",
        ] {
            assert!(TargetUrl::stored(bad.to_owned()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_blocked_domain_and_its_subdomains_are_refused_and_nothing_else() {
        let cases = [
            ("https://evil.example/x", Some("evil.example")),
            ("https://WWW.Evil.Example./x", Some("evil.example")),
            ("http://a.b.phish.test/", Some("phish.test")),
            ("https://notevil.example/", None),
            ("https://evil.example.org/", None),
            ("https://example/", None),
        ];
        for (url, blocked) in cases {
            let result = TargetUrl::parse(url, &policy());
            match blocked {
                Some(d) => assert_eq!(result, Err(UrlError::Blocked(d.into())), "{url}"),
                None => assert!(result.is_ok(), "{url}: {result:?}"),
            }
        }
    }

    #[test]
    fn accepted_urls_are_normalised() {
        let url = TargetUrl::parse("HTTPS://Example.COM", &policy()).unwrap();
        assert_eq!(url.as_ref(), "https://example.com/");
        let url = TargetUrl::parse("http://example.com/a b?q=1#frag", &policy()).unwrap();
        assert_eq!(url.as_ref(), "http://example.com/a%20b?q=1#frag");
    }

    #[test]
    fn refused_urls_say_why() {
        type Check = fn(&UrlError) -> bool;
        let cases: &[(&str, Check, &str)] = &[
            (
                "javascript:alert(1)",
                |e| matches!(e, UrlError::UnsupportedScheme(s) if s == "javascript"),
                "script",
            ),
            (
                "data:text/html,hi",
                |e| matches!(e, UrlError::UnsupportedScheme(_)),
                "data",
            ),
            (
                "ftp://example.com/f",
                |e| matches!(e, UrlError::UnsupportedScheme(_)),
                "ftp",
            ),
            (
                "example.com",
                |e| matches!(e, UrlError::Invalid(_)),
                "no scheme",
            ),
            ("http://", |e| matches!(e, UrlError::MissingHost), "no host"),
            (
                "http://user:pw@example.com/",
                |e| matches!(e, UrlError::Credentials),
                "credentials",
            ),
            (
                "http://user@example.com/",
                |e| matches!(e, UrlError::Credentials),
                "user only",
            ),
            (
                "https://SHO.RT./x",
                |e| matches!(e, UrlError::OwnHost(_)),
                "own host, any case, trailing dot",
            ),
        ];
        for (input, check, why) in cases {
            let err = TargetUrl::parse(input, &policy()).unwrap_err();
            assert!(check(&err), "{why}: {input:?} gave {err:?}");
        }
        let long = format!("https://example.com/{}", "a".repeat(100));
        assert_eq!(
            TargetUrl::parse(&long, &policy()),
            Err(UrlError::TooLong { max: 100 })
        );
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics_and_keeps_the_rules(text in "\\PC{0,120}") {
            if let Ok(url) = TargetUrl::parse(&text, &policy()) {
                let parsed = Url::parse(url.as_ref()).unwrap();
                prop_assert!(matches!(parsed.scheme(), "http" | "https"));
                prop_assert!(parsed.username().is_empty() && parsed.password().is_none());
                prop_assert!(url.as_ref().len() <= 100);
            }
        }
    }

    #[test]
    fn a_host_of_dots_is_no_host() {
        for input in ["http://./", "http://../", "https://.../x"] {
            assert_eq!(
                TargetUrl::parse(input, &policy()),
                Err(UrlError::MissingHost),
                "{input}"
            );
        }
    }

    #[test]
    fn local_targets_are_refused_unless_allowed() {
        let local = [
            "http://localhost/",
            "http://LOCALHOST./x",
            "http://api.localhost:8080/",
            "http://127.0.0.1/",
            "http://127.0.0.2/",
            "http://0.0.0.0/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]/",
            "http://[::]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
        ];
        for input in local {
            let err = TargetUrl::parse(input, &policy()).unwrap_err();
            assert!(matches!(err, UrlError::Local(_)), "{input}: {err:?}");
        }
        let intranet = UrlPolicy {
            allow_local: true,
            ..policy()
        };
        for input in local {
            TargetUrl::parse(input, &intranet).unwrap();
        }
        for public in [
            "http://10.0.0.1/",
            "http://[2001:db8::1]/",
            "http://localhost.example/",
        ] {
            TargetUrl::parse(public, &policy()).unwrap();
        }
    }

    #[test]
    fn configured_hosts_compare_like_targets_and_impossible_ones_are_refused() {
        for (entry, key) in [
            ("Bücher.Example.", "xn--bcher-kva.example"),
            ("sho.rt:8443", "sho.rt"),
            ("[2001:DB8::1]", "[2001:db8::1]"),
            ("[::ffff:198.51.100.7]", "198.51.100.7"),
        ] {
            assert_eq!(normalise_host(entry).unwrap(), key, "{entry}");
        }
        for never in [
            "",
            "https://x.example/path",
            "*.example.com",
            "a b.example",
            "u@x.example",
        ] {
            assert!(normalise_host(never).is_err(), "{never:?}");
        }
        let policy = UrlPolicy {
            own_hosts: vec![normalise_host("SHO.RT:443").unwrap()],
            blocked: ["Bücher.example", "198.51.100.7"]
                .into_iter()
                .map(|e| normalise_host(e).unwrap())
                .collect(),
            ..policy()
        };
        for (target, why) in [
            (
                "https://sho.rt./x",
                "own host, other port and a trailing dot",
            ),
            (
                "http://xn--bcher-kva.example/",
                "blocked, written in punycode",
            ),
            ("http://BÜCHER.example/", "blocked, written in Unicode"),
            (
                "http://[::ffff:198.51.100.7]/",
                "blocked IPv4, written IPv4-mapped",
            ),
        ] {
            assert!(
                TargetUrl::parse(target, &policy).is_err(),
                "{why}: {target}"
            );
        }
    }
}
