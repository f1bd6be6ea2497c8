//! The encoding of a stream entry: many clicks in one compact binary value.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::domain::click::{ClickExtra, ClientNet, RawClick};
use crate::domain::Snowflake;

/// The version byte of entries written before clicks carried visitors, campaigns and
/// places (still read: a stream may hold them during an upgrade).
const ENTRY_V1: u8 = 1;
/// The version byte that starts every entry written now.
const ENTRY_V2: u8 = 2;

/// One click of an encoded entry: its strings are indices into the entry's table.
#[derive(Debug, Serialize, Deserialize)]
pub struct PackedClick {
    pub event_id: u64,
    pub link_id: u64,
    pub at_ms: u64,
    pub referrer: u32,
    pub user_agent: u32,
    pub client: ClientNet,
    /// The visitor hash (0: none).
    pub visitor: u64,
    pub query: u32,
    pub country: u32,
    pub city: u32,
}

/// A click of a version 1 entry.
#[derive(Debug, Deserialize)]
struct PackedClickV1 {
    event_id: u64,
    link_id: u64,
    at_ms: u64,
    referrer: u32,
    user_agent: u32,
    client: ClientNet,
}

#[derive(Debug, Deserialize)]
struct EntryV1<'a> {
    #[serde(borrow)]
    strings: Vec<&'a str>,
    clicks: Vec<PackedClickV1>,
}

/// An encoded entry: every distinct string once, then the clicks (postcard: varints
/// and length-prefixed strings, about 30 bytes a click besides the strings). Read
/// without copying its strings: a reader works each one out once per entry.
#[derive(Debug, Serialize, Deserialize)]
pub struct EntryView<'a> {
    #[serde(borrow)]
    pub strings: Vec<&'a str>,
    pub clicks: Vec<PackedClick>,
}

/// The index of `s` in the entry's table, adding it the first time (the empty string
/// is always index 0).
fn intern<'a>(s: &'a str, index: &mut HashMap<&'a str, u32>, strings: &mut Vec<&'a str>) -> u32 {
    if s.is_empty() {
        return 0;
    }
    *index.entry(s).or_insert_with(|| {
        strings.push(s);
        (strings.len() - 1) as u32
    })
}

/// Encodes clicks into one stream entry's payload.
pub fn encode_entry(clicks: &[RawClick]) -> Vec<u8> {
    let mut index: HashMap<&str, u32> = HashMap::new();
    // The empty string is index 0: most clicks have no query, no place and no referrer,
    // and need no lookup for them.
    let mut strings: Vec<&str> = vec![""];
    let mut packed = Vec::with_capacity(clicks.len());
    for c in clicks {
        let mut intern = |s| intern(s, &mut index, &mut strings);
        let referrer = intern(c.referrer.as_str());
        let user_agent = intern(c.user_agent.as_str());
        let (query, country, city) = match &c.extra {
            Some(e) => (intern(&e.query), intern(&e.country), intern(&e.city)),
            None => (0, 0, 0),
        };
        packed.push(PackedClick {
            event_id: c.event_id.get(),
            link_id: c.link_id.get(),
            at_ms: c.at_ms,
            referrer,
            user_agent,
            client: c.client,
            visitor: c.visitor,
            query,
            country,
            city,
        });
    }
    let entry = EntryView {
        strings,
        clicks: packed,
    };
    postcard::to_extend(&entry, vec![ENTRY_V2]).expect("writing to a Vec cannot fail")
}

/// A version 1 entry in today's shape: no visitor, the empty string for the rest.
fn upgrade_v1(old: EntryV1<'_>) -> EntryView<'_> {
    let mut strings = old.strings;
    let empty = strings.len() as u32;
    strings.push("");
    let clicks = old
        .clicks
        .into_iter()
        .map(|c| PackedClick {
            event_id: c.event_id,
            link_id: c.link_id,
            at_ms: c.at_ms,
            referrer: c.referrer,
            user_agent: c.user_agent,
            client: c.client,
            visitor: 0,
            query: empty,
            country: empty,
            city: empty,
        })
        .collect();
    EntryView { strings, clicks }
}

/// Reads an entry's payload, checking every index and ID in it.
///
/// # Errors
/// When it is not an entry of a known version, or not a consistent one.
pub fn view_entry(bytes: &[u8]) -> anyhow::Result<EntryView<'_>> {
    let view: EntryView<'_> = match bytes.split_first() {
        Some((&ENTRY_V2, body)) => postcard::from_bytes(body)?,
        Some((&ENTRY_V1, body)) => upgrade_v1(postcard::from_bytes(body)?),
        _ => anyhow::bail!("unknown entry version"),
    };
    let n = view.strings.len() as u32;
    for c in &view.clicks {
        anyhow::ensure!(
            [c.referrer, c.user_agent, c.query, c.country, c.city]
                .iter()
                .all(|i| *i < n),
            "string index out of range"
        );
        anyhow::ensure!(
            Snowflake::from_u64(c.event_id).is_some() && Snowflake::from_u64(c.link_id).is_some(),
            "bad ID"
        );
    }
    Ok(view)
}

/// Decodes an entry's payload into owned clicks.
///
/// # Errors
/// As for [`view_entry`].
pub fn decode_entry(bytes: &[u8]) -> anyhow::Result<Vec<RawClick>> {
    let view = view_entry(bytes)?;
    Ok(view
        .clicks
        .iter()
        .filter_map(|p| {
            Some(RawClick {
                event_id: Snowflake::from_u64(p.event_id)?,
                link_id: Snowflake::from_u64(p.link_id)?,
                at_ms: p.at_ms,
                referrer: view.strings[p.referrer as usize].to_owned(),
                user_agent: view.strings[p.user_agent as usize].to_owned(),
                client: p.client,
                visitor: p.visitor,
                extra: ClickExtra::of(
                    view.strings[p.query as usize].to_owned(),
                    view.strings[p.country as usize].to_owned(),
                    view.strings[p.city as usize].to_owned(),
                ),
            })
        })
        .collect())
}

/// An entry written by versions that put one click per entry, as JSON in field `c`.
#[derive(Deserialize)]
pub(super) struct LegacyClick {
    pub event_id: Snowflake,
    pub link_id: Snowflake,
    pub at_ms: u64,
    pub referrer: String,
    pub user_agent: String,
    pub client: String,
}

#[cfg(test)]
mod tests {
    use super::super::sample_click as click;
    use super::*;

    #[test]
    fn an_entry_decodes_to_the_clicks_it_was_made_of_and_is_compact() {
        let mut batch: Vec<RawClick> = (0..500).map(click).collect();
        for (i, c) in batch.iter_mut().enumerate() {
            c.user_agent = format!("agent/{}", i % 3);
            c.referrer = if i % 2 == 0 {
                "https://a.example/x".into()
            } else {
                String::new()
            };
            c.client = ClientNet::parse("203.0.113.9");
            c.visitor = i as u64 * 7919;
            if i % 5 == 0 {
                c.extra = ClickExtra::of("utm_source=news".into(), "FR".into(), "Lyon".into());
            }
        }
        let payload = encode_entry(&batch);
        assert_eq!(decode_entry(&payload).unwrap(), batch);
        let json: usize = batch
            .iter()
            .map(|c| serde_json::to_string(c).unwrap().len())
            .sum();
        assert!(
            payload.len() * 5 < json,
            "{} bytes against {json} as JSON",
            payload.len()
        );
        assert!(decode_entry(&payload[1..]).is_err(), "no version byte");
        assert!(
            decode_entry(&[3, 0, 0]).is_err(),
            "a version from the future"
        );
        assert!(
            decode_entry(&payload[..payload.len() / 2]).is_err(),
            "cut short"
        );
    }

    #[test]
    fn a_version_1_entry_still_reads() {
        #[derive(Serialize)]
        struct V1<'a> {
            strings: Vec<&'a str>,
            clicks: Vec<(u64, u64, u64, u32, u32, ClientNet)>,
        }
        let c = click(1);
        let old = V1 {
            strings: vec!["https://a.example/", "agent/1"],
            clicks: vec![(
                c.event_id.get(),
                c.link_id.get(),
                c.at_ms,
                0,
                1,
                ClientNet::parse("203.0.113.9"),
            )],
        };
        let payload = postcard::to_extend(&old, vec![ENTRY_V1]).unwrap();
        let back = decode_entry(&payload).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].referrer, "https://a.example/");
        assert_eq!(back[0].user_agent, "agent/1");
        assert_eq!((back[0].visitor, back[0].extra.as_ref()), (0, None));
    }
}
