//! Encode and decode benchmarks over [`redpepper_codec::corpus`]: one realistic small
//! message per type, plus a Response carrying 4 KiB of output.
//!
//! `cargo bench -p redpepper-codec -- --warm-up-time 1 --measurement-time 2`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use redpepper_codec::{corpus, decode, encode};

fn bench(c: &mut Criterion) {
    for (name, msg) in corpus::messages() {
        let bytes = encode(&msg).unwrap();
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function("encode", |b| b.iter(|| encode(black_box(&msg)).unwrap()));
        group.bench_function("decode", |b| b.iter(|| decode(black_box(&bytes)).unwrap()));
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
