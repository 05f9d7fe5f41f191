//! `cargo bench --bench screening`: the screening benchmark on the real Entity List snapshot
//! (`../shared/data/csl/`, or the JSON named by `ENTITYWATCH_EL_JSON`), printing the table of
//! `screening::bench` plus the process's peak RSS. Sizes via `BENCH_SUPPLIERS`, `BENCH_RUNS`,
//! `BENCH_BRUTE_SAMPLE` (a small sample keeps a profiler run on the indexed path).
//! A benchmark driver: it may read files and /proc; the matcher it drives never does.

use entitywatch::events::{CountryCode, EntityKey, EntityName};
use entitywatch::screening::bench::{run, BenchConfig};
use entitywatch::screening::ListedEntry;

fn load(path: &str) -> Vec<ListedEntry> {
    let raw = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: serde_json::Value = serde_json::from_str(&raw).expect("JSON");
    let list = v["entries"]
        .as_array()
        .or_else(|| v["results"].as_array())
        .expect("entries[]");
    list.iter()
        .filter_map(|e| {
            let name = e["name"].as_str()?;
            let en = EntityName::parse(name).ok()?;
            let countries: Vec<CountryCode> = e["address_countries"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c.as_str().and_then(CountryCode::parse))
                        .collect()
                })
                .unwrap_or_default();
            let heading = countries
                .first()
                .cloned()
                .unwrap_or_else(CountryCode::unknown);
            let aliases = e["alt_names"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            Some(ListedEntry {
                key: EntityKey::derive(&heading, &en),
                name: name.to_string(),
                aliases,
                countries,
            })
        })
        .collect()
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let default = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/csl/EL_only_from_screening-list_2026-07-31.json"
    );
    let path = std::env::var("ENTITYWATCH_EL_JSON").unwrap_or_else(|_| default.to_string());
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
