//! Tests of the sample generator.

use super::*;

/// `CANON_SAMPLE_OUT=dir CANON_SAMPLE_SCALE=n cargo test --release --lib sample::tests::stats -- --ignored --nocapture`
#[test]
#[ignore]
fn stats() {
    let out = std::env::var("CANON_SAMPLE_OUT").unwrap_or_else(|_| "/tmp/canon-sample".into());
    let scale = std::env::var("CANON_SAMPLE_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1);
    let t = std::time::Instant::now();
    let report = generate(&SampleOptions { out: out.into(), seed: 42, scale }).unwrap();
    for t in &report.tables {
        println!("{:<10} {:<24} {:>10} rows {:>12} bytes {:>3} files", t.system, t.table, t.rows, t.bytes, t.files);
    }
    println!("total {} rows, {} bytes, {:?}", report.total_rows(), report.total_bytes(), t.elapsed());
}
