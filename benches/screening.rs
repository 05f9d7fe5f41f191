//! `cargo bench --bench screening`: the screening benchmark on the real Entity List snapshot
//! (`../shared/data/csl/`, or the JSON named by `ENTITYWATCH_EL_JSON`), printing the table of
//! `screening::bench` plus the process's peak RSS. Sizes via `BENCH_SUPPLIERS`, `BENCH_RUNS`,
//! `BENCH_BRUTE_SAMPLE` (a small sample keeps a profiler run on the indexed path).
//! A benchmark driver: it may read files and /proc; the matcher it drives never does.

#[path = "common/mod.rs"]
mod common;

use common::{load, peak_rss_mb};
use entitywatch::screening::bench::{run, BenchConfig};

fn main() {
    let path = common::default_list_path();
    let entries = load(&path);
    let mut config = BenchConfig::default();
    if let Some(n) = std::env::var("BENCH_SUPPLIERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.suppliers = n;
    }
    if let Some(n) = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.runs = n;
    }
    if let Some(n) = std::env::var("BENCH_BRUTE_SAMPLE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.brute_force_sample = n;
    }
    // `cargo test --all-targets` runs this file without `--bench`: a small smoke run then, so
    // the suite checks the benchmark works without spending a minute on it.
    if !std::env::args().any(|a| a == "--bench") {
        config.suppliers = config.suppliers.min(5_000);
        config.runs = 1;
        println!(
            "smoke run ({} suppliers); use `cargo bench --bench screening` for the figures",
            config.suppliers
        );
    }
    let report = run(&entries, &config);
    print!("{report}");
    if let Some(mb) = peak_rss_mb() {
        println!(
            "{:<44} {:>12.0} MB  (whole process: list, 1M supplier records, both indexes)",
            "peak RSS", mb
        );
    }
}
