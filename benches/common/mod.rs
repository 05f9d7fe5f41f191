//! What the benchmark drivers share: the real Entity List snapshot as listed entries (the
//! screening-list JSON of `../shared/data/csl/`, or the file named by `ENTITYWATCH_EL_JSON`)
//! and the process's peak RSS. Benchmark drivers may read files and /proc; nothing here is
//! part of the service.

#![allow(dead_code)]

use entitywatch::events::{CountryCode, EntityKey, EntityName};
use entitywatch::screening::ListedEntry;

/// The default Entity List file: the CSL's Entity List rows of 2026-07-31.
pub fn default_list_path() -> String {
    std::env::var("ENTITYWATCH_EL_JSON").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/data/csl/EL_only_from_screening-list_2026-07-31.json"
        )
        .to_string()
    })
}

pub fn load(path: &str) -> Vec<ListedEntry> {
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

pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
