//! A small MaxMind DB (format 2.0) writer for tests: an IPv4 search tree over a few
//! networks, each with a record in the shape of GeoLite2 (`country.iso_code`,
//! `city.names.en`) or of ip-location-db (`country_code`, `city`). Enough to give test
//! addresses known countries without a downloaded database.

use std::net::Ipv4Addr;
use std::path::Path;

/// What a network's record looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `{"country": {"iso_code": "FR"}, "city": {"names": {"en": "Paris"}}}`
    GeoLite2,
    /// `{"country_code": "FR", "city": "Paris"}`
    IpLocationDb,
}

/// One network of the database.
pub struct Network<'a> {
    pub cidr: &'a str,
    pub country: &'a str,
    pub city: Option<&'a str>,
    pub shape: Shape,
}

enum Value {
    Str(String),
    Map(Vec<(String, Value)>),
    U16(u16),
    U32(u32),
    U64(u64),
    Array(Vec<Value>),
}

fn s(v: &str) -> Value {
    Value::Str(v.to_owned())
}

fn map(pairs: Vec<(&str, Value)>) -> Value {
    Value::Map(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// The control byte(s) of a field of `type_` (1–15) and `size`.
fn control(out: &mut Vec<u8>, type_: u8, size: usize) {
    let (size_bits, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, vec![]),
        29..=284 => (29, vec![(size - 29) as u8]),
        285..=65_820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
    };
    if type_ <= 7 {
        out.push((type_ << 5) | size_bits);
    } else {
        out.push(size_bits);
        out.push(type_ - 7);
    }
    out.extend(extra);
}

fn uint(out: &mut Vec<u8>, type_: u8, v: u64, width: usize) {
    let bytes = v.to_be_bytes();
    let first = bytes[8 - width..]
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(width);
    let used = &bytes[8 - width + first..];
    control(out, type_, used.len());
    out.extend_from_slice(used);
}

fn encode(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(text) => {
            control(out, 2, text.len());
            out.extend_from_slice(text.as_bytes());
        }
        Value::Map(pairs) => {
            control(out, 7, pairs.len());
            for (k, v) in pairs {
                encode(out, &Value::Str(k.clone()));
                encode(out, v);
            }
        }
        Value::U16(n) => uint(out, 5, u64::from(*n), 2),
        Value::U32(n) => uint(out, 6, u64::from(*n), 4),
        Value::U64(n) => uint(out, 9, *n, 8),
        Value::Array(items) => {
            control(out, 11, items.len());
            for item in items {
                encode(out, item);
            }
        }
    }
}

fn record(n: &Network<'_>) -> Value {
    match n.shape {
        Shape::GeoLite2 => {
            let mut pairs = vec![("country", map(vec![("iso_code", s(n.country))]))];
            if let Some(city) = n.city {
                pairs.push(("city", map(vec![("names", map(vec![("en", s(city))]))])));
            }
            map(pairs)
        }
        Shape::IpLocationDb => {
            let mut pairs = vec![("country_code", s(n.country))];
            if let Some(city) = n.city {
                pairs.push(("city", s(city)));
            }
            map(pairs)
        }
    }
}

#[derive(Clone, Copy)]
enum Rec {
    Empty,
    Node(usize),
    Data(usize),
}

/// Writes a database of `networks` (IPv4, not overlapping) to `path`, atomically (a
/// reader never sees half a file).
pub fn write(path: &Path, networks: &[Network<'_>]) {
    let mut data = Vec::new();
    let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty, Rec::Empty]];
    for n in networks {
        let (addr, len) = n.cidr.split_once('/').expect("a CIDR block");
        let bits = u32::from(addr.parse::<Ipv4Addr>().expect("IPv4"));
        let len: u32 = len.parse().unwrap();
        assert!((1..=32).contains(&len));
        let offset = data.len();
        encode(&mut data, &record(n));
        let mut node = 0;
        for i in 0..len {
            let bit = ((bits >> (31 - i)) & 1) as usize;
            if i == len - 1 {
                nodes[node][bit] = Rec::Data(offset);
            } else {
                node = match nodes[node][bit] {
                    Rec::Node(next) => next,
                    _ => {
                        nodes.push([Rec::Empty, Rec::Empty]);
                        let next = nodes.len() - 1;
                        nodes[node][bit] = Rec::Node(next);
                        next
                    }
                };
            }
        }
    }
    let count = nodes.len();
    let mut out = Vec::new();
    for pair in &nodes {
        for rec in pair {
            let value = match *rec {
                Rec::Empty => count,
                Rec::Node(i) => i,
                Rec::Data(offset) => count + 16 + offset,
            };
            out.extend_from_slice(&(value as u32).to_be_bytes()[1..]);
        }
    }
    out.extend_from_slice(&[0u8; 16]);
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
    let metadata = map(vec![
        ("node_count", Value::U32(count as u32)),
        ("record_size", Value::U16(24)),
        ("ip_version", Value::U16(4)),
        ("database_type", s("Shortener-Test-Country")),
        ("languages", Value::Array(vec![s("en")])),
        ("binary_format_major_version", Value::U16(2)),
        ("binary_format_minor_version", Value::U16(0)),
        ("build_epoch", Value::U64(1_780_000_000)),
        ("description", map(vec![("en", s("test networks"))])),
    ]);
    encode(&mut out, &metadata);
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, out).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
