//! Durations in the configuration. Each key keeps the unit its name says
//! (`redis.timeout_ms = 250`, `cache.l1_ttl_s = 60`), and also takes a humantime string
//! (`"250ms"`, `"1m 30s"`, `"2h"`), so a number that worked before keeps working and a
//! reader need not convert. The settings hold a [`Duration`], so no part converts
//! units again; written back (the defaults figment starts from), a duration is the
//! number in its key's unit.
//!
//! Use as `#[serde(with = "crate::duration::ms")]` (or `secs`, `hours`, and
//! `secs::option` for an optional one).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// A key's unit: how a bare number reads and how a duration is written back.
#[derive(Clone, Copy)]
struct Unit {
    name: &'static str,
    nanos: u64,
}

impl Unit {
    fn of(self, n: u64) -> Result<Duration, String> {
        let nanos = u128::from(n) * u128::from(self.nanos);
        u64::try_from(nanos / 1_000_000_000)
            .map(|s| Duration::new(s, (nanos % 1_000_000_000) as u32))
            .map_err(|_| format!("{n} {} is too long", self.name))
    }

    fn count(self, d: Duration) -> u64 {
        u64::try_from(d.as_nanos() / u128::from(self.nanos)).unwrap_or(u64::MAX)
    }
}

const MILLIS: Unit = Unit {
    name: "milliseconds",
    nanos: 1_000_000,
};
const SECS: Unit = Unit {
    name: "seconds",
    nanos: 1_000_000_000,
};
const HOURS: Unit = Unit {
    name: "hours",
    nanos: 3_600_000_000_000,
};

/// A duration as the whole milliseconds the parts that count in milliseconds compare
/// it with (a stream's idle time, a replica's lag).
pub fn whole_millis(d: Duration) -> u64 {
    MILLIS.count(d)
}

/// Parses a configured value: a whole number in the unit, or a humantime string.
fn parse(text: &str, unit: Unit) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(n) = text.parse::<u64>() {
        return unit.of(n);
    }
    humantime::parse_duration(text).map_err(|e| {
        format!(
            "{text:?} is not a duration: give a whole number of {} or a duration such as \
             \"250ms\", \"30s\", \"5m\" ({e})",
            unit.name
        )
    })
}

struct DurationVisitor(Unit);

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a whole number of {} or a duration string such as \"250ms\"",
            self.0.name
        )
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
        self.0.of(n).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
        let n = u64::try_from(n).map_err(|_| E::custom("a duration cannot be negative"))?;
        self.visit_u64(n)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse(text, self.0).map_err(E::custom)
    }
}

fn deserialize<'de, D: Deserializer<'de>>(d: D, unit: Unit) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor(unit))
}

macro_rules! unit_module {
    ($name:ident, $unit:expr, $doc:literal) => {
        #[doc = $doc]
        pub mod $name {
            use super::*;

            /// Writes the duration as a whole number of this unit.
            ///
            /// # Errors
            /// As the serializer's.
            pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_u64($unit.count(*d))
            }

            /// Reads a number of this unit or a humantime string.
            ///
            /// # Errors
            /// Anything else, naming what is expected.
            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
                super::deserialize(d, $unit)
            }

            /// The same for an optional duration.
            pub mod option {
                use super::*;

                /// Writes `None` as nothing, a duration as a number of this unit.
                ///
                /// # Errors
                /// As the serializer's.
                pub fn serialize<S: Serializer>(
                    d: &Option<Duration>,
                    s: S,
                ) -> Result<S::Ok, S::Error> {
                    match d {
                        Some(d) => s.serialize_some(&$unit.count(*d)),
                        None => s.serialize_none(),
                    }
                }

                /// Reads nothing, a number of this unit or a humantime string.
                ///
                /// # Errors
                /// Anything else.
                pub fn deserialize<'de, D: Deserializer<'de>>(
                    d: D,
                ) -> Result<Option<Duration>, D::Error> {
                    struct Wrapped(Duration);
                    impl<'de> serde::Deserialize<'de> for Wrapped {
                        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                            super::deserialize(d).map(Wrapped)
                        }
                    }
                    Ok(<Option<Wrapped> as serde::Deserialize>::deserialize(d)?.map(|w| w.0))
                }
            }
        }
    };
}

unit_module!(ms, MILLIS, "A key in milliseconds (`…_ms`).");
unit_module!(secs, SECS, "A key in seconds (`…_s`).");
unit_module!(hours, HOURS, "A key in hours (`…_hours`).");

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, serde::Serialize, Debug, PartialEq)]
    struct Keys {
        #[serde(with = "ms")]
        timeout_ms: Duration,
        #[serde(with = "secs")]
        ttl_s: Duration,
        #[serde(with = "secs::option", default)]
        cache_s: Option<Duration>,
    }

    fn read(json: &str) -> Result<Keys, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_read_in_the_keys_unit_and_strings_as_humantime() {
        let keys = read(r#"{"timeout_ms": 250, "ttl_s": 60}"#).unwrap();
        assert_eq!(keys.timeout_ms, Duration::from_millis(250));
        assert_eq!(keys.ttl_s, Duration::from_secs(60));
        assert_eq!(keys.cache_s, None);
        let keys = read(r#"{"timeout_ms": "1s 500ms", "ttl_s": "2m", "cache_s": "90"}"#).unwrap();
        assert_eq!(keys.timeout_ms, Duration::from_millis(1_500));
        assert_eq!(keys.ttl_s, Duration::from_secs(120));
        assert_eq!(keys.cache_s, Some(Duration::from_secs(90)));
    }

    #[test]
    fn nonsense_and_negatives_are_refused_saying_what_is_expected() {
        let e = read(r#"{"timeout_ms": "soon", "ttl_s": 1}"#).unwrap_err();
        assert!(e.contains("milliseconds") && e.contains("250ms"), "{e}");
        assert!(read(r#"{"timeout_ms": -5, "ttl_s": 1}"#).is_err());
        assert!(read(r#"{"timeout_ms": 1.5, "ttl_s": 1}"#).is_err());
    }

    #[test]
    fn a_duration_is_written_back_as_the_number_in_its_unit() {
        let keys = Keys {
            timeout_ms: Duration::from_millis(250),
            ttl_s: Duration::from_secs(60),
            cache_s: Some(Duration::from_secs(10)),
        };
        let text = serde_json::to_string(&keys).unwrap();
        assert!(text.contains(r#""timeout_ms":250"#), "{text}");
        assert_eq!(read(&text).unwrap(), keys);
        assert_eq!(HOURS.count(Duration::from_secs(7_200)), 2);
    }
}
