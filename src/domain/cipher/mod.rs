//! The keyed permutation between Snowflake IDs and the numbers generated codes spell.
//!
//! A generated code is the canonical Base62 of `P(id)`, where `P` is a secret
//! permutation of the 63-bit space: FF1 (NIST SP 800-38G format-preserving encryption)
//! over AES-128, on 63 binary numerals, with an empty tweak. Because `P` is a
//! bijection, codes are unique with no retry, and `P⁻¹` turns a code back into its ID,
//! and so into its shard, with no lookup. Because it is keyed, neighbouring IDs land far
//! apart and a code says nothing about when or by which worker it was minted: guessing
//! another link's code is guessing a 63-bit value.
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
//! **Why FF1 is written out here.** The `fpe` crate implements FF1 for any radix, length
//! and tweak; for this one shape (radix 2, 63 numerals, no tweak) its general machinery
//! (a fresh CBC-MAC with a cloned key schedule per round, iterators over bytes) costs
//! about 4,700 instructions per call, measured with callgrind on the redirect's cache
//! miss. [`Ff1`] is the same algorithm with everything that does not depend on the
//! input computed once per key: the first CBC-MAC block `AES(P)` is fixed, so a round is
//! one AES block and two additions, ten rounds per call, nothing allocated. The unit
//! tests check it bit for bit against `fpe` (a dev-dependency) on random keys and
//! values, so the crate stays the reference and this the fast path.

use std::fmt;

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes128;
use sha2::{Digest, Sha256};

use super::ids::Snowflake;

/// The smallest number a generated code may have: 62⁹ is the first 10-digit Base62
/// value.
pub const CODE_FLOOR: u64 = 13_537_086_546_263_552;
/// Bits of the permuted space (FF1's `n`).
const BITS: u32 = 63;
/// FF1's `u` and `v`: the halves are 31 and 32 bits.
const U: u32 = BITS / 2;
const V: u32 = BITS - U;

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

/// Turns IDs into code numbers and back.
pub struct Codec {
    ff1: Ff1,
    floor: u64,
    plain_below: u64,
}

impl Codec {
    /// A codec for `key`, keeping IDs below `plain_below` plain.
    pub fn new(key: &CodeKey, plain_below: Snowflake) -> Self {
        Self {
            ff1: Ff1::new(key),
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
        self.ff1.encrypt(value)
    }

    fn decrypt(&self, value: u64) -> u64 {
        self.ff1.decrypt(value)
    }
}

const MASK: u64 = (1 << BITS) - 1;

/// FF1 (NIST SP 800-38G, Algorithms 7 and 8) with AES-128, radix 2, `n` = 63 and an
/// empty tweak, on a value's 63 bits (most significant first). With these parameters
/// `b` = 4 and `d` = 8: each round's PRF input is the fixed block `P` followed by one
/// block `Q = 0¹¹ ‖ i ‖ NUM(B)`, its CBC-MAC is `AES(AES(P) ⊕ Q)`, and the round adds
/// the MAC's first 8 bytes to the other half modulo `2^m`.
struct Ff1 {
    aes: Aes128,
    /// `AES(P)`: the first CBC-MAC block, the same for every call.
    first: [u8; 16],
}

impl Ff1 {
    fn new(key: &CodeKey) -> Self {
        let aes = Aes128::new(&key.0.into());
        // P = [1, 2, 1] ‖ radix (3 bytes) ‖ [10] ‖ [u mod 256] ‖ n (4 bytes) ‖ t (4 bytes).
        let mut p = [1, 2, 1, 0, 0, 2, 10, U as u8, 0, 0, 0, 0, 0, 0, 0, 0];
        p[8..12].copy_from_slice(&BITS.to_be_bytes());
        let mut first = p.into();
        aes.encrypt_block(&mut first);
        Self {
            aes,
            first: first.into(),
        }
    }

    /// The round function: the first 8 bytes of `AES(AES(P) ⊕ (0¹¹ ‖ i ‖ half))`.
    fn round(&self, i: u8, half: u64) -> u64 {
        let mut block = self.first;
        block[11] ^= i;
        for (b, h) in block[12..].iter_mut().zip((half as u32).to_be_bytes()) {
            *b ^= h;
        }
        let mut block = block.into();
        self.aes.encrypt_block(&mut block);
        u64::from_be_bytes(block[..8].try_into().expect("8 of 16 bytes"))
    }

    fn encrypt(&self, value: u64) -> u64 {
        let (mut a, mut b) = (value >> V & mask(U), value & mask(V));
        for i in 0..10u8 {
            let m = if i % 2 == 0 { U } else { V };
            let c = a.wrapping_add(self.round(i, b)) & mask(m);
            (a, b) = (b, c);
        }
        a << V | b
    }

    fn decrypt(&self, value: u64) -> u64 {
        let (mut a, mut b) = (value >> V & mask(U), value & mask(V));
        for i in (0..10u8).rev() {
            let m = if i % 2 == 0 { U } else { V };
            let c = b.wrapping_sub(self.round(i, a)) & mask(m);
            (a, b) = (c, a);
        }
        a << V | b
    }
}

/// The low `bits` bits set.
fn mask(bits: u32) -> u64 {
    (1 << bits) - 1
}

#[cfg(test)]
mod tests;
