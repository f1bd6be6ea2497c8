//! What a generated code costs: FF1 over AES-128 on 63 bits, one way and back, and the
//! whole code (cipher plus Base62) as create and a cache miss use it.
//!
//!   cargo bench --bench codes

use criterion::{criterion_group, criterion_main, Criterion};
use shortener::domain::cipher::{CodeKey, Codec};
use shortener::domain::Snowflake;
use std::hint::black_box;

fn codes(c: &mut Criterion) {
    let codec = Codec::new(
        &CodeKey::from_bytes([7; 16]),
        Snowflake::from_u64(0).unwrap(),
    );
    let id = Snowflake::from_parts(90_000_000_000, 1, 42);
    let number = codec.number_of(id);
    let code = codec.code(id);
    c.bench_function("cipher: id → code number (FF1 encrypt)", |b| {
        b.iter(|| codec.number_of(black_box(id)))
    });
    c.bench_function("cipher: code number → id (FF1 decrypt)", |b| {
        b.iter(|| codec.id_of(black_box(number)))
    });
    c.bench_function("code: id → text (create)", |b| {
        b.iter(|| codec.code(black_box(id)))
    });
    c.bench_function("code: text → id (cache miss)", |b| {
        b.iter(|| codec.id_of_code(black_box(&code)))
    });
    c.bench_function("code: text → number (every redirect, no cipher)", |b| {
        b.iter(|| shortener::domain::codes::parse_generated(black_box(&code)))
    });
}

criterion_group!(benches, codes);
criterion_main!(benches);
