//! Every parser that reads untrusted text: the target URL, an alias, a code (and the
//! code-or-alias path segment), an API key token. None may panic, and what each accepts
//! must keep its rules.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use shortener::domain::codes::{decode_canonical, encode, has_generated_shape};
use shortener::domain::{Alias, LinkKey, TargetUrl, UrlPolicy};

fn policy() -> &'static UrlPolicy {
    static POLICY: OnceLock<UrlPolicy> = OnceLock::new();
    POLICY.get_or_init(|| UrlPolicy {
        max_length: 2_048,
        own_hosts: vec!["sho.rt".into()],
        blocked: ["evil.example".to_owned()].into_iter().collect(),
        allow_local: false,
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(target) = TargetUrl::parse(text, policy()) {
        let url = url::Url::parse(target.as_ref()).expect("an accepted URL re-parses");
        assert!(matches!(url.scheme(), "http" | "https"), "{text:?}");
        assert!(
            url.username().is_empty() && url.password().is_none(),
            "{text:?}"
        );
        let host = url.host_str().expect("an accepted URL has a host");
        assert!(policy().blocked_domain(host).is_none(), "{text:?}");
        assert!(host.trim_end_matches('.') != "sho.rt", "{text:?}");
        assert!(text.len() <= policy().max_length);
    }

    if let Ok(alias) = Alias::parse(text) {
        assert_eq!(alias.as_ref(), text);
        assert!(!has_generated_shape(text), "{text:?}");
    }

    if let Ok(value) = decode_canonical(text) {
        assert_eq!(encode(value), text, "only canonical codes decode");
    }

    match LinkKey::parse(text) {
        Some(LinkKey::Generated(id)) => assert_eq!(shortener::domain::codes::code_for(id), text),
        Some(LinkKey::Alias(alias)) => assert_eq!(alias.as_ref(), text),
        None => {}
    }

    if let Some((id, secret)) = shortener::auth::parse_token(text) {
        assert!(id > 0);
        assert_eq!(format!("shk_{id}_{secret}"), text);
    }
});
