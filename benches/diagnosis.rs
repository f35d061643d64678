//! How long `diagnose()` takes on one pair of artifacts (key present, region right): the
//! target is at most 100 µs per pair. Reads only the fixtures compiled into the binary.

use criterion::{criterion_group, criterion_main, Criterion};
use linkbot::diagnosis::rules::diagnose;
use linkbot::domain::Region;
use std::hint::black_box;

const API_KEY_LOG: &[u8] = include_bytes!(
    "../tests/fixtures/artifacts/key-present-region-ok/connector_getConnectorAPIKey.log"
);
const CONFIGMAP_LOG: &[u8] =
    include_bytes!("../tests/fixtures/artifacts/key-present-region-ok/connector_sl_configMap.log");

fn bench_diagnose(c: &mut Criterion) {
    let expected = Region::parse("us-east").expect("a valid region");
    c.bench_function("diagnose key-present-region-ok", |b| {
        b.iter(|| {
            diagnose(
                black_box(API_KEY_LOG),
                black_box(CONFIGMAP_LOG),
                black_box(&expected),
            )
        })
    });
}

criterion_group!(benches, bench_diagnose);
criterion_main!(benches);
