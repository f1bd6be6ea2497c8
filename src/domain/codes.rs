//! Short codes: the canonical Base62 form of a number that stands for a Snowflake ID,
//! and custom aliases. Which number stands for which ID is the keyed permutation of
//! [`super::cipher`]; this module only knows the text.
//!
//! The two live in separate namespaces that can be told apart from the text alone: a
//! generated code is 10 or 11 characters of `[0-9A-Za-z]` (every ID minted since
//! February 2024 encodes to that length), and an alias may never have that shape. A
//! redirect therefore takes exactly one path, by ID or by alias, with one lookup.

use std::fmt;

use super::cipher::Codec;
use super::ids::Snowflake;

/// Shortest generated code (IDs minted from 2024-02-07 on).
pub const GENERATED_MIN_LEN: usize = 10;
/// Longest generated code (the largest 63-bit value is 11 Base62 digits).
pub const GENERATED_MAX_LEN: usize = 11;
/// Shortest alias.
pub const ALIAS_MIN_LEN: usize = 3;
/// Longest alias.
pub const ALIAS_MAX_LEN: usize = 64;

/// Paths the service serves itself, or may serve later, which an alias must not shadow.
/// Compared without regard to case.
pub const RESERVED_ALIASES: &[&str] = &[
    "api",
    "admin",
    "assets",
    "console",
    "docs",
    "favicon",
    "health",
    "healthz",
    "login",
    "logout",
    "metrics",
    "openapi",
    "ready",
    "readyz",
    "robots",
    "static",
    "stats",
    "status",
    "well-known",
];

/// Why a text is not a canonical Base62 number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("empty input")]
    Empty,
    #[error("'{0}' is not a Base62 digit")]
    ForeignCharacter(char),
    #[error("leading zeros are not canonical")]
    LeadingZero,
    #[error("the value does not fit in 63 bits")]
    Overflow,
}

/// Encodes a value as canonical Base62 (digits, then upper case, then lower case).
pub fn encode(value: u64) -> String {
    base62::encode(value)
}

/// Decodes canonical Base62 into a 63-bit value. Rejects what [`encode`] would never
/// produce: empty input, foreign characters, leading zeros, values of 2^63 and above.
/// Never panics, whatever the input.
///
/// # Errors
/// A [`CodecError`] naming the first problem found.
pub fn decode_canonical(text: &str) -> Result<u64, CodecError> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(CodecError::Empty);
    }
    if let Some(c) = text.chars().find(|c| !c.is_ascii_alphanumeric()) {
        return Err(CodecError::ForeignCharacter(c));
    }
    if bytes.len() > 1 && bytes[0] == b'0' {
        return Err(CodecError::LeadingZero);
    }
    let value = base62::decode(bytes).map_err(|e| match e {
        base62::DecodeError::EmptyInput => CodecError::Empty,
        base62::DecodeError::InvalidBase62Byte(b, _) => CodecError::ForeignCharacter(b as char),
        base62::DecodeError::ArithmeticOverflow => CodecError::Overflow,
    })?;
    u64::try_from(value)
        .ok()
        .filter(|v| *v <= i64::MAX as u64)
        .ok_or(CodecError::Overflow)
}

/// True when `text` has the shape of a generated code: 10–11 ASCII letters and digits.
pub fn has_generated_shape(text: &str) -> bool {
    (GENERATED_MIN_LEN..=GENERATED_MAX_LEN).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Parses a generated code into the number it spells (not yet the ID: that takes the
/// deployment's [`Codec`]).
///
/// # Errors
/// When the text does not have the generated shape or is not canonical Base62.
pub fn parse_generated(text: &str) -> Result<u64, CodecError> {
    if !has_generated_shape(text) {
        return Err(CodecError::ForeignCharacter('?'));
    }
    decode_canonical(text)
}

impl Codec {
    /// The generated code of an ID.
    pub fn code(&self, id: Snowflake) -> String {
        encode(self.number_of(id))
    }

    /// The ID a generated code names, when the text is one.
    pub fn id_of_code(&self, text: &str) -> Option<Snowflake> {
        parse_generated(text).ok().map(|n| self.id_of(n))
    }
}

/// Why a requested alias is refused. Each maps to a stable API error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AliasError {
    #[error("an alias is {ALIAS_MIN_LEN} to {ALIAS_MAX_LEN} characters long")]
    Length,
    #[error("an alias may use only letters A-Z and a-z, digits, '-' and '_'")]
    Alphabet,
    #[error("'{0}' is reserved for the service's own paths")]
    Reserved(String),
    #[error("an alias of 10 or 11 letters and digits only would look like a generated code; add a '-' or '_' or change its length")]
    LooksGenerated,
}

/// A custom alias: `[A-Za-z0-9_-]{3,64}`, not reserved, not shaped like a generated code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Alias(String);

impl Alias {
    /// Parses a requested alias.
    ///
    /// # Errors
    /// An [`AliasError`] saying which rule it breaks.
    pub fn parse(text: &str) -> Result<Self, AliasError> {
        check_shape(text)?;
        if RESERVED_ALIASES
            .iter()
            .any(|r| r.eq_ignore_ascii_case(text))
        {
            return Err(AliasError::Reserved(text.to_owned()));
        }
        if has_generated_shape(text) {
            return Err(AliasError::LooksGenerated);
        }
        Ok(Self(text.to_owned()))
    }

    /// An alias read back from storage: it passed [`parse`](Self::parse) when it was
    /// made (a path reserved since keeps working for it). Checked only for its length
    /// and alphabet.
    ///
    /// # Errors
    /// [`AliasError`] for anything else (a corrupt row).
    pub fn stored(text: String) -> Result<Self, AliasError> {
        check_shape(&text)?;
        Ok(Self(text))
    }

    /// The alias.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An alias's length and alphabet: what every alias has, however old.
fn check_shape(text: &str) -> Result<(), AliasError> {
    if !(ALIAS_MIN_LEN..=ALIAS_MAX_LEN).contains(&text.len()) {
        return Err(AliasError::Length);
    }
    if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(AliasError::Alphabet);
    }
    Ok(())
}

impl AsRef<str> for Alias {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Alias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a code in a URL path refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKey {
    /// A generated code, as the number it spells: [`Codec::id_of`] turns it into the
    /// ID, which names the shard. Parsing stops at the number so that a cache hit costs
    /// no cipher.
    Generated(u64),
    /// A custom alias, looked up in the directory.
    Alias(Alias),
}

impl LinkKey {
    /// Classifies a path segment. `None` means it can name no link at all, so the caller
    /// answers 404 without touching storage.
    pub fn parse(text: &str) -> Option<Self> {
        if has_generated_shape(text) {
            return parse_generated(text).ok().map(Self::Generated);
        }
        Alias::parse(text).ok().map(Self::Alias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_63_bit_value_round_trips(value in 0..=i64::MAX as u64) {
            let text = encode(value);
            prop_assert_eq!(decode_canonical(&text), Ok(value));
        }

        #[test]
        fn a_leading_zero_is_never_canonical(value in 1..=i64::MAX as u64 / 62) {
            let padded = format!("0{}", encode(value));
            prop_assert_eq!(decode_canonical(&padded), Err(CodecError::LeadingZero));
        }

        #[test]
        fn decoding_arbitrary_text_never_panics(text in "\\PC{0,40}") {
            if let Ok(value) = decode_canonical(&text) {
                // Whatever it accepts is exactly what encode produces.
                prop_assert_eq!(encode(value), text);
            }
        }

        #[test]
        fn ids_minted_after_february_2024_have_generated_codes(
            ms in 40u64 * 86_400_000..(1u64 << 41),
            worker in 0u16..1024,
            seq in 0u64..4096,
            plain_below_ms in 0u64..(1u64 << 41),
        ) {
            let codec = Codec::new(
                &crate::domain::cipher::CodeKey::from_bytes([5; 16]),
                Snowflake::from_parts(plain_below_ms, 0, 0),
            );
            let id = Snowflake::from_parts(ms, worker, seq);
            let code = codec.code(id);
            prop_assert!(has_generated_shape(&code), "{}", code);
            let Some(LinkKey::Generated(number)) = LinkKey::parse(&code) else {
                panic!("{code} is not a generated code");
            };
            prop_assert_eq!(codec.id_of(number), id);
            prop_assert_eq!(codec.id_of_code(&code), Some(id));
        }

        #[test]
        fn no_valid_alias_is_shaped_like_a_generated_code(text in "[A-Za-z0-9_-]{3,64}") {
            if let Ok(alias) = Alias::parse(&text) {
                prop_assert!(!has_generated_shape(alias.as_ref()));
            }
        }
    }

    #[test]
    fn values_of_64_bits_and_beyond_overflow() {
        assert_eq!(
            decode_canonical(&encode(1 << 63)),
            Err(CodecError::Overflow)
        );
        assert_eq!(decode_canonical(&"z".repeat(30)), Err(CodecError::Overflow));
    }

    #[test]
    fn foreign_characters_and_empty_input_are_refused() {
        assert_eq!(decode_canonical(""), Err(CodecError::Empty));
        assert_eq!(
            decode_canonical("ab-c"),
            Err(CodecError::ForeignCharacter('-'))
        );
        assert_eq!(
            decode_canonical("abé"),
            Err(CodecError::ForeignCharacter('é'))
        );
        assert_eq!(decode_canonical("0"), Ok(0));
    }

    #[test]
    fn alias_rules() {
        let cases: &[(&str, Result<(), AliasError>, &str)] = &[
            ("launch-2026", Ok(()), "letters, digits and a dash"),
            ("a_b", Ok(()), "shortest allowed"),
            ("ab", Err(AliasError::Length), "too short"),
            (&"x".repeat(65), Err(AliasError::Length), "too long"),
            ("hello world", Err(AliasError::Alphabet), "space"),
            ("héllo", Err(AliasError::Alphabet), "non-ASCII"),
            ("a/b", Err(AliasError::Alphabet), "slash"),
            (
                "API",
                Err(AliasError::Reserved("API".into())),
                "reserved, any case",
            ),
            (
                "healthz",
                Err(AliasError::Reserved("healthz".into())),
                "route",
            ),
            (
                "abcdefghij",
                Err(AliasError::LooksGenerated),
                "10 alphanumerics",
            ),
            (
                "abcdefghijk",
                Err(AliasError::LooksGenerated),
                "11 alphanumerics",
            ),
            ("abcdefghijkl", Ok(()), "12 alphanumerics"),
            ("abcde-fghij", Ok(()), "11 with a dash"),
        ];
        for (input, expected, why) in cases {
            assert_eq!(
                Alias::parse(input).map(|_| ()),
                *expected,
                "{why}: {input:?}"
            );
        }
    }

    #[test]
    fn a_path_segment_names_a_generated_code_an_alias_or_nothing() {
        let id = Snowflake::from_parts(10_000_000_000, 1, 2);
        assert_eq!(
            LinkKey::parse(&encode(id.get())),
            Some(LinkKey::Generated(id.get()))
        );
        assert!(matches!(LinkKey::parse("my-link"), Some(LinkKey::Alias(_))));
        assert_eq!(LinkKey::parse("0000000000"), None, "non-canonical code");
        assert_eq!(LinkKey::parse("zzzzzzzzzzz"), None, "beyond 63 bits");
        assert_eq!(LinkKey::parse("metrics"), None, "reserved");
        assert_eq!(LinkKey::parse("a.b"), None, "foreign character");
    }
}
