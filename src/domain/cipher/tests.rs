use std::collections::HashSet;

use fpe::ff1::FlexibleNumeralString;
use proptest::prelude::*;

use super::*;
use crate::domain::codes::{decode_canonical, encode, has_generated_shape, GENERATED_MAX_LEN};

fn key(byte: u8) -> CodeKey {
    CodeKey::from_bytes([byte; 16])
}

fn id(raw: u64) -> Snowflake {
    Snowflake::from_u64(raw).unwrap()
}

/// FF1 as the `fpe` crate computes it, on its own numeral string, bit by bit.
fn reference_encrypt(key: &CodeKey, value: u64) -> u64 {
    let ff1 = fpe::ff1::FF1::<Aes128>::new(&key.0, 2).unwrap();
    let bits: Vec<u16> = (0..BITS).rev().map(|i| ((value >> i) & 1) as u16).collect();
    let out: Vec<u16> = ff1
        .encrypt(&[], &FlexibleNumeralString::from(bits))
        .unwrap()
        .into();
    out.iter().fold(0, |acc, b| acc << 1 | u64::from(*b))
}

proptest! {
    #[test]
    fn this_ff1_computes_what_the_fpe_crate_computes(
        value in 0..=MASK,
        byte in any::<u8>(),
    ) {
        let codec = Codec::new(&key(byte), Snowflake::MAX);
        prop_assert_eq!(codec.encrypt(value), reference_encrypt(&key(byte), value));
        prop_assert_eq!(codec.decrypt(codec.encrypt(value)), value);
    }

    #[test]
    fn every_id_round_trips_through_its_code_number(raw in 0..=MASK, plain in 0..=MASK) {
        let codec = Codec::new(&key(7), id(plain));
        let number = codec.number_of(id(raw));
        prop_assert_eq!(codec.id_of(number), id(raw));
        // Plain below the boundary, keyed (and never below it) above.
        if raw < plain.max(CODE_FLOOR) {
            prop_assert_eq!(number, raw);
        } else {
            prop_assert!(number >= plain.max(CODE_FLOOR));
        }
    }
}

/// IDs as one worker mints them: consecutive sequence numbers, then the next
/// milliseconds, from an instant in 2026.
fn consecutive_ids(count: u64) -> impl Iterator<Item = Snowflake> {
    let ms = 90_000_000_000; // 2026-11
    (0..count).map(move |n| Snowflake::from_parts(ms + n / 4096, 1, n % 4096))
}

#[test]
fn a_million_consecutive_ids_get_a_million_distinct_codes_that_decode_back() {
    const COUNT: u64 = 1_000_000;
    let codec = Codec::new(&key(42), Snowflake::from_u64(0).unwrap());
    let ids: Vec<Snowflake> = consecutive_ids(COUNT).collect();
    // One half per core: FF1 in an unoptimised test build takes a while.
    let codes: Vec<String> = std::thread::scope(|s| {
        let halves: Vec<_> = ids
            .chunks(ids.len() / 2 + 1)
            .map(|chunk| {
                let codec = &codec;
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|id| {
                            let code = encode(codec.number_of(*id));
                            assert!(has_generated_shape(&code), "{code} is not a generated code");
                            let back = codec.id_of(decode_canonical(&code).unwrap());
                            assert_eq!(back, *id, "{code} decodes to another ID");
                            code
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        halves.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let distinct: HashSet<&String> = codes.iter().collect();
    assert_eq!(distinct.len() as u64, COUNT, "two IDs share a code");
}

#[test]
fn codes_of_consecutive_ids_share_no_structure() {
    let codec = Codec::new(&key(42), Snowflake::from_u64(0).unwrap());
    let codes: Vec<(u64, String)> = consecutive_ids(100_000)
        .map(|id| {
            let n = codec.number_of(id);
            (n, encode(n))
        })
        .collect();
    let pairs = codes.len() - 1;
    let (mut prefix_total, mut prefix_max, mut bits_total, mut near) = (0, 0, 0u64, 0);
    for w in codes.windows(2) {
        let ((a, ta), (b, tb)) = (&w[0], &w[1]);
        let prefix = ta
            .bytes()
            .zip(tb.bytes())
            .take_while(|(x, y)| x == y)
            .count();
        prefix_total += prefix;
        prefix_max = prefix_max.max(prefix);
        bits_total += u64::from((a ^ b).count_ones());
        if a.abs_diff(*b) < 1 << 48 {
            near += 1;
        }
    }
    // Eleven-character codes start with one of about eleven digits, so two random codes
    // share a first character about one time in eleven and a second one time in 680.
    let mean_prefix = prefix_total as f64 / pairs as f64;
    assert!(mean_prefix < 0.15, "mean common prefix {mean_prefix}");
    assert!(
        prefix_max <= 5,
        "two neighbours share {prefix_max} characters"
    );
    // About half the bits differ, as between random numbers (31.5 of 63).
    let mean_bits = bits_total as f64 / pairs as f64;
    assert!(
        (30.5..32.5).contains(&mean_bits),
        "mean differing bits {mean_bits}"
    );
    // Two random 63-bit numbers are within 2^48 of each other one time in 16,000.
    assert!(
        near <= 30,
        "{near} of {pairs} neighbours are numerically close"
    );
}

#[test]
fn another_key_makes_other_codes() {
    let (a, b) = (Codec::new(&key(1), id(0)), Codec::new(&key(2), id(0)));
    let same = consecutive_ids(10_000)
        .filter(|id| a.number_of(*id) == b.number_of(*id))
        .count();
    assert_eq!(same, 0);
    assert_ne!(key(1).check_value(), key(2).check_value());
    assert_eq!(key(1).check_value(), key(1).check_value());
}

#[test]
fn ids_below_the_boundary_keep_their_plain_codes_and_the_rest_never_collide_with_them() {
    let boundary = Snowflake::from_parts(90_000_000_000, 0, 0);
    let codec = Codec::new(&key(9), boundary);
    let old = Snowflake::from_parts(80_000_000_000, 3, 5);
    assert_eq!(
        codec.number_of(old),
        old.get(),
        "an old link keeps its code"
    );
    for id in consecutive_ids(20_000) {
        assert!(codec.number_of(id) >= boundary.get());
    }
    assert_eq!(codec.plain_below(), boundary);
}

#[test]
fn code_keys_are_32_hex_digits_and_never_printed() {
    let k = CodeKey::parse(" 000102030405060708090a0b0c0d0E0F\n").unwrap();
    assert_eq!(k.to_hex(), "000102030405060708090a0b0c0d0e0f");
    assert_eq!(CodeKey::parse(&k.to_hex()), Ok(k.clone()));
    for bad in [
        "",
        "00",
        &"0".repeat(31),
        &"0".repeat(33),
        &"g".repeat(32),
        &"é".repeat(16),
    ] {
        assert_eq!(CodeKey::parse(bad), Err(MalformedKey), "{bad:?}");
    }
    assert!(!format!("{k:?}").contains(&k.to_hex()));
}

#[test]
fn generated_lengths_stay_10_to_11_characters() {
    let codec = Codec::new(&key(3), id(0));
    for id in consecutive_ids(50_000) {
        let len = encode(codec.number_of(id)).len();
        assert!((10..=GENERATED_MAX_LEN).contains(&len));
    }
}
