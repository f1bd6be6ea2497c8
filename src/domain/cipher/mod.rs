//! The keyed permutation between Snowflake IDs and the numbers generated codes spell.
//!
//! A generated code is the canonical Base62 of `P(id)`, where `P` is a secret
//! permutation of the 63-bit space: FF1 (NIST SP 800-38G format-preserving encryption,
//! the `fpe` crate) over AES-128, on 63 binary numerals. Because `P` is a bijection,
//! codes are unique with no retry, and `P⁻¹` turns a code back into its ID, and so into
//! its shard, with no lookup. Because it is keyed, neighbouring IDs land far apart and a
//! code says nothing about when or by which worker it was minted: guessing another
//! link's code is guessing a 63-bit value.
//!
//! Two adjustments keep the codes' shape:
//! - **Length.** A code must stay 10–11 characters, so its number must be at least
//!   62⁹. FF1 is applied again to any output below the floor (cycle walking), which keeps
//!   it a bijection of `[floor, 2⁶³)` onto itself; every ID minted since 2024-02-07 lies
//!   there. It takes 1.0015 rounds of FF1 on average.
//! - **Links made before codes were keyed.** IDs below the deployment's `plain_below`
//!   keep their old code, the plain Base62 of the ID; the permutation works on
//!   `[plain_below, 2⁶³)` only (the floor is the larger of the two). A code's number
//!   then says by itself which rule made it: below `plain_below` plain, above it keyed,
//!   one lookup either way. `plain_below` is fixed once per deployment (the
//!   [`CodeScheme`] the directory records), so every instance agrees.
//!
//! FF1 runs on a numeral string kept in one `u64` ([`Bits63`]), so it allocates
//! nothing: eleven AES block encryptions per call.

use std::fmt;

use aes::Aes128;
use fpe::ff1::{NumeralString, Operations, FF1};
use sha2::{Digest, Sha256};

use super::ids::Snowflake;

/// The smallest number a generated code may have: 62⁹ is the first 10-digit Base62
/// value.
pub const CODE_FLOOR: u64 = 13_537_086_546_263_552;
/// Bits of the permuted space.
const BITS: usize = 63;
const LOW_BITS: usize = BITS - BITS / 2;

/// Generated codes' settings.
#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CodeSettings {
    /// The code key: 32 hexadecimal digits (128 bits), secret, the same on every
    /// instance (`shortener code-key` makes one; `SHORTENER_CODES__KEY` keeps it out of
    /// files). Required in the distributed mode. In the embedded mode, when absent, a
    /// key is generated on the first start and kept in `{data_dir}/code.key`.
    pub key: Option<String>,
}

impl fmt::Debug for CodeSettings {
    /// Never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeSettings")
            .field("key", &self.key.as_ref().map(|_| "<secret>"))
            .finish()
    }
}

/// A code key: 128 secret bits, written as 32 hexadecimal digits.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeKey([u8; 16]);

/// The text given as a code key is not 32 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a code key is 32 hexadecimal digits (128 bits), for example from `shortener code-key`")]
pub struct MalformedKey;

impl CodeKey {
    /// Parses 32 hexadecimal digits (surrounding whitespace ignored).
    ///
    /// # Errors
    /// [`MalformedKey`] for anything else.
    pub fn parse(text: &str) -> Result<Self, MalformedKey> {
        let text = text.trim();
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(MalformedKey);
        }
        let mut key = [0u8; 16];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| MalformedKey)?;
        }
        Ok(Self(key))
    }

    /// A key from 16 random bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The key as 32 lower-case hexadecimal digits (for writing it down once).
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A check value that tells keys apart without revealing them: the first 64 bits of
    /// SHA-256 over a label and the key, in hexadecimal.
    pub fn check_value(&self) -> String {
        let digest = Sha256::new()
            .chain_update(b"shortener code key check v1\0")
            .chain_update(self.0)
            .finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for CodeKey {
    /// Never prints the key itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CodeKey(check {})", self.check_value())
    }
}

/// How a deployment makes its codes, recorded once in the directory so that every
/// instance agrees: which key (by its check value) and below which ID codes stay plain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeScheme {
    /// [`CodeKey::check_value`] of the key in use.
    pub key_check: String,
    /// IDs below this keep the plain Base62 code they were handed out with.
    pub plain_below: Snowflake,
}

/// Turns IDs into code numbers and back. Shared behind an `Arc` (FF1 is not `Clone`).
pub struct Codec {
    ff1: FF1<Aes128>,
    floor: u64,
    plain_below: u64,
}

impl Codec {
    /// A codec for `key`, keeping IDs below `plain_below` plain.
    pub fn new(key: &CodeKey, plain_below: Snowflake) -> Self {
        let ff1 = FF1::<Aes128>::new(&key.0, 2).expect("2 is a valid FF1 radix");
        Self {
            ff1,
            floor: plain_below.get().max(CODE_FLOOR),
            plain_below: plain_below.get(),
        }
    }

    /// IDs below this keep plain codes.
    pub fn plain_below(&self) -> Snowflake {
        Snowflake::from_u64(self.plain_below).expect("set from a Snowflake")
    }

    /// The number a generated code spells for `id`.
    pub fn number_of(&self, id: Snowflake) -> u64 {
        let id = id.get();
        if id < self.floor {
            return id;
        }
        let mut value = id;
        loop {
            value = self.encrypt(value);
            if value >= self.floor {
                return value;
            }
        }
    }

    /// The ID whose code spells `number` (the inverse of [`number_of`](Self::number_of)).
    pub fn id_of(&self, number: u64) -> Snowflake {
        let number = number & MASK;
        if number < self.floor {
            return Snowflake::from_u64(number).expect("masked to 63 bits");
        }
        let mut value = number;
        loop {
            value = self.decrypt(value);
            if value >= self.floor {
                return Snowflake::from_u64(value).expect("masked to 63 bits");
            }
        }
    }

    fn encrypt(&self, value: u64) -> u64 {
        self.ff1
            .encrypt(&[], &Bits63(value))
            .expect("a Bits63 is a valid radix-2 numeral string")
            .0
    }

    fn decrypt(&self, value: u64) -> u64 {
        self.ff1
            .decrypt(&[], &Bits63(value))
            .expect("a Bits63 is a valid radix-2 numeral string")
            .0
    }
}

const MASK: u64 = (1 << BITS) - 1;

/// 63 binary numerals, most significant first, held in the low bits of a `u64`.
struct Bits63(u64);

/// One half of a [`Bits63`] during FF1's rounds: `len` numerals in the low bits.
struct Half {
    value: u64,
    len: usize,
}

/// The last `len` bytes of a big-endian `u64`.
struct BeBytes {
    bytes: [u8; 8],
    len: usize,
}

impl AsRef<[u8]> for BeBytes {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[8 - self.len..]
    }
}

fn low_mask(bits: usize) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
    }
}

/// FF1 hands the round function's output over as big-endian bytes; only its value
/// modulo 2^64 matters, as every half is shorter than 64 bits.
fn be_value(bytes: impl Iterator<Item = u8>) -> u64 {
    bytes.fold(0u64, |acc, b| acc << 8 | u64::from(b))
}

impl Operations for Half {
    type Bytes = BeBytes;

    fn numeral_count(&self) -> usize {
        self.len
    }

    fn to_be_bytes(&self, _radix: u32, b: usize) -> BeBytes {
        BeBytes {
            bytes: self.value.to_be_bytes(),
            len: b.min(8),
        }
    }

    fn add_mod_exp(self, other: impl Iterator<Item = u8>, _radix: u32, m: usize) -> Self {
        Self {
            value: self.value.wrapping_add(be_value(other)) & low_mask(m),
            len: m,
        }
    }

    fn sub_mod_exp(self, other: impl Iterator<Item = u8>, _radix: u32, m: usize) -> Self {
        Self {
            value: self.value.wrapping_sub(be_value(other)) & low_mask(m),
            len: m,
        }
    }
}

impl NumeralString for Bits63 {
    type Ops = Half;

    fn is_valid(&self, radix: u32) -> bool {
        radix == 2 && self.0 <= MASK
    }

    fn numeral_count(&self) -> usize {
        BITS
    }

    fn split(&self) -> (Half, Half) {
        (
            Half {
                value: self.0 >> LOW_BITS,
                len: BITS - LOW_BITS,
            },
            Half {
                value: self.0 & low_mask(LOW_BITS),
                len: LOW_BITS,
            },
        )
    }

    fn concat(a: Half, b: Half) -> Self {
        Self(a.value << b.len | b.value)
    }
}

#[cfg(test)]
mod tests;
