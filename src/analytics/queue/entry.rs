//! The encoding of a stream entry: many clicks in one compact binary value.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::domain::click::{ClientNet, RawClick};
use crate::domain::Snowflake;

/// The version byte that starts every encoded entry.
const ENTRY_V1: u8 = 1;

/// One click of an encoded entry: its strings are indices into the entry's table.
#[derive(Serialize, Deserialize)]
struct PackedClick {
    event_id: u64,
    link_id: u64,
    at_ms: u64,
    referrer: u32,
    user_agent: u32,
    client: ClientNet,
}

/// An encoded entry: every distinct string once, then the clicks (postcard: varints
/// and length-prefixed strings, about 30 bytes a click besides the strings).
#[derive(Serialize, Deserialize)]
struct PackedEntry<'a> {
    #[serde(borrow)]
    strings: Vec<&'a str>,
    clicks: Vec<PackedClick>,
}

/// Encodes clicks into one stream entry's payload.
pub fn encode_entry(clicks: &[RawClick]) -> Vec<u8> {
    let mut index: HashMap<&str, u32> = HashMap::new();
    let mut strings: Vec<&str> = Vec::new();
    let mut packed = Vec::with_capacity(clicks.len());
    for c in clicks {
        let mut intern = |s| {
            *index.entry(s).or_insert_with(|| {
                strings.push(s);
                (strings.len() - 1) as u32
            })
        };
        let referrer = intern(c.referrer.as_str());
        let user_agent = intern(c.user_agent.as_str());
        packed.push(PackedClick {
            event_id: c.event_id.get(),
            link_id: c.link_id.get(),
            at_ms: c.at_ms,
            referrer,
            user_agent,
            client: c.client,
        });
    }
    let entry = PackedEntry {
        strings,
        clicks: packed,
    };
    postcard::to_extend(&entry, vec![ENTRY_V1]).expect("writing to a Vec cannot fail")
}

/// Decodes an entry's payload.
///
/// # Errors
/// When it is not an entry of a known version.
pub fn decode_entry(bytes: &[u8]) -> anyhow::Result<Vec<RawClick>> {
    let Some((&ENTRY_V1, body)) = bytes.split_first() else {
        anyhow::bail!("unknown entry version");
    };
    let entry: PackedEntry<'_> = postcard::from_bytes(body)?;
    let text = |i: u32| -> anyhow::Result<String> {
        entry
            .strings
            .get(i as usize)
            .map(|s| (*s).to_owned())
            .ok_or_else(|| anyhow::anyhow!("string {i} out of range"))
    };
    entry
        .clicks
        .iter()
        .map(|p| {
            Ok(RawClick {
                event_id: Snowflake::from_u64(p.event_id)
                    .ok_or_else(|| anyhow::anyhow!("bad event id"))?,
                link_id: Snowflake::from_u64(p.link_id)
                    .ok_or_else(|| anyhow::anyhow!("bad link id"))?,
                at_ms: p.at_ms,
                referrer: text(p.referrer)?,
                user_agent: text(p.user_agent)?,
                client: p.client,
            })
        })
        .collect()
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
    use super::*;

    fn click(n: u64) -> RawClick {
        RawClick {
            event_id: Snowflake::from_parts(n, 0, 0),
            link_id: Snowflake::from_parts(1, 0, 0),
            at_ms: 1_800_000_000_000,
            referrer: String::new(),
            user_agent: String::new(),
            client: ClientNet::Unknown,
        }
    }

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
            decode_entry(&payload[..payload.len() / 2]).is_err(),
            "cut short"
        );
    }
}
