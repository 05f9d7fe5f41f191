//! Speed measurement: a deterministic synthetic supplier base (real Entity List words, with
//! planted variants of listed names), screened in full, re-screened against a few changed
//! entries, and compared with brute force on a sample. Returns a report whose `Display` is the
//! table the `bench` command prints.
//!
//! Takes the entries from its caller and never reads files, the clock aside: it measures, it
//! must not change what it measures (same scorer, same index as production).

use std::collections::HashSet;
use std::fmt;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use super::normalise::normalise;
use super::{ListedEntry, Screener, SupplierIndex, SupplierRecord};
use crate::events::CountryCode;

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchConfig {
    pub suppliers: usize,
    /// Planted variants of listed names per thousand suppliers.
    pub planted_per_mille: u32,
    pub changed_entries: usize,
    /// Suppliers scored against every listed name to extrapolate brute force.
    pub brute_force_sample: usize,
    /// Timed repetitions; the report gives the median.
    pub runs: usize,
    pub seed: u64,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            suppliers: 1_000_000,
            planted_per_mille: 10,
            changed_entries: 100,
            brute_force_sample: 400,
            runs: 3,
            seed: 20_260_731,
        }
    }
}

/// splitmix64: a tiny deterministic generator, so the synthetic base is the same on every
/// machine and every version of any random-number crate.
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.next() % 1000 < u64::from(per_mille)
    }
}

/// A synthetic supplier base and which suppliers are planted variants of which entry.
pub struct SyntheticSuppliers {
    pub records: Vec<SupplierRecord<u32>>,
    /// (supplier id, entry position) for every planted variant.
    pub planted: Vec<(u32, usize)>,
}

const LEGAL_SUFFIXES: &[&str] = &[
    "Co., Ltd.",
    "LLC",
    "Inc.",
    "GmbH",
    "Limited",
    "JSC",
    "Trading Co.",
    "Pvt. Ltd.",
    "S.A.",
    "FZE",
];

/// Builds `n` suppliers: 2–4 words drawn from the listed names with their list frequency (so
/// common words such as "Technology" are common here too, which is what makes screening hard),
/// an optional legal form and country; and `planted_per_mille` of them a variant of a listed
/// name or alias as a supplier master would write it.
pub fn synthetic_suppliers(
    entries: &[ListedEntry],
    n: usize,
    planted_per_mille: u32,
    seed: u64,
) -> SyntheticSuppliers {
    let mut words: Vec<String> = Vec::new();
    for e in entries {
        for name in e.names() {
            for w in name.split_whitespace() {
                let w = w.trim_matches(|c: char| !c.is_alphanumeric());
                let norm = normalise(w);
                if norm.tokens.len() == 1
                    && norm.legal_forms.is_empty()
                    && !norm.tokens[0].is_numeric()
                {
                    words.push(w.to_string());
                }
            }
        }
    }
    let countries: Vec<CountryCode> = entries
        .iter()
        .flat_map(|e| e.countries.iter().cloned())
        .collect();
    let mut rng = Rng::new(seed);
    let mut records = Vec::with_capacity(n);
    let mut planted = Vec::new();
    for id in 0..n as u32 {
        if !entries.is_empty() && rng.chance(planted_per_mille) {
            let ei = rng.below(entries.len());
            let e = &entries[ei];
            let names: Vec<&str> = e.names().collect();
            let name = plant_variant(names[rng.below(names.len())], &mut rng);
            records.push(SupplierRecord {
                id,
                name,
                aliases: Vec::new(),
                country: e.countries.first().cloned(),
            });
            planted.push((id, ei));
            continue;
        }
        let k = 2 + rng.below(3);
        let mut name: Vec<&str> = (0..k)
            .map(|_| words[rng.below(words.len())].as_str())
            .collect();
        if rng.chance(600) {
            name.push(LEGAL_SUFFIXES[rng.below(LEGAL_SUFFIXES.len())]);
        }
        let country = (!countries.is_empty() && rng.chance(700))
            .then(|| countries[rng.below(countries.len())].clone());
        records.push(SupplierRecord {
            id,
            name: name.join(" "),
            aliases: Vec::new(),
            country,
        });
    }
    SyntheticSuppliers { records, planted }
}

/// How a supplier master renders a listed name: one or two of case loss, punctuation loss, a
/// dropped letter, abbreviations, another legal form, inverted word order, a branch suffix.
fn plant_variant(name: &str, rng: &mut Rng) -> String {
    let mut s = name.to_string();
    for _ in 0..1 + rng.below(2) {
        match rng.below(7) {
            0 => s = s.to_uppercase(),
            1 => {
                s = s
                    .chars()
                    .filter(|c| !matches!(c, ',' | '.' | '(' | ')' | '"'))
                    .collect()
            }
            2 => {
                let mut words: Vec<String> = s.split(' ').map(str::to_string).collect();
                let long: Vec<usize> = (0..words.len())
                    .filter(|&i| {
                        words[i].len() >= 7 && words[i].chars().all(|c| c.is_ascii_alphabetic())
                    })
                    .collect();
                if !long.is_empty() {
                    let i = long[rng.below(long.len())];
                    let at = 2 + rng.below(words[i].len() - 3);
                    words[i].remove(at);
                }
                s = words.join(" ");
            }
            3 => {
                for (long, short) in [
                    ("Technology", "Tech"),
                    ("Technologies", "Tech"),
                    ("International", "Intl"),
                    ("Company", "Co"),
                    ("Corporation", "Corp"),
                    ("Limited", "Ltd"),
                    ("Industries", "Ind"),
                ] {
                    s = s.replace(long, short);
                }
            }
            4 => s = format!("{s} {}", LEGAL_SUFFIXES[rng.below(LEGAL_SUFFIXES.len())]),
            5 => {
                let words: Vec<&str> = s.split(' ').collect();
                if (2..=3).contains(&words.len()) {
                    s = format!(
                        "{}, {}",
                        words[words.len() - 1],
                        words[..words.len() - 1].join(" ")
                    );
                }
            }
            _ => s = format!("{s} (Shanghai Branch)"),
        }
    }
    s
}

/// The measured figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    pub threads: usize,
    pub suppliers: usize,
    pub listed_entries: usize,
    pub listed_names: usize,
    pub planted: usize,
    pub screener_build_s: f64,
    pub screener_index_bytes: usize,
    pub full_screen_s: Vec<f64>,
    pub full_screen_matches: usize,
    pub planted_found: usize,
    pub supplier_index_build_s: f64,
    pub supplier_index_bytes: usize,
    pub changed_entries: usize,
    pub delta_s: Vec<f64>,
    pub delta_matches: usize,
    pub delta_planted: usize,
    pub delta_planted_found: usize,
    pub sample: usize,
    pub sample_planted: usize,
    pub sample_planted_found_index: usize,
    pub sample_planted_found_brute: usize,
    /// Whether index and brute force returned the same matches (keys and scores) on the sample.
    pub sample_identical: bool,
    pub brute_sample_s: f64,
    pub index_sample_s: f64,
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        0.0
    } else {
        s[s.len() / 2]
    }
}

impl BenchReport {
    pub fn full_screen_median_s(&self) -> f64 {
        median(&self.full_screen_s)
    }
    pub fn delta_median_s(&self) -> f64 {
        median(&self.delta_s)
    }
    /// Brute force time per supplier on the sample, times the number of suppliers.
    pub fn brute_extrapolated_s(&self) -> f64 {
        self.brute_sample_s / self.sample.max(1) as f64 * self.suppliers as f64
    }
    pub fn speedup(&self) -> f64 {
        self.brute_extrapolated_s() / self.full_screen_median_s().max(1e-9)
    }
}

/// Runs the benchmark against `entries` (the whole Entity List for the real figures).
pub fn run(entries: &[ListedEntry], config: &BenchConfig) -> BenchReport {
    let t = Instant::now();
    let screener = Screener::new(entries.to_vec()).with_floor(super::DEFAULT_THRESHOLD);
    let screener_build_s = t.elapsed().as_secs_f64();
    let base = synthetic_suppliers(
        entries,
        config.suppliers,
        config.planted_per_mille,
        config.seed,
    );
    let planted_set: HashSet<(u32, usize)> = base.planted.iter().copied().collect();

    let mut full_screen_s = Vec::new();
    let mut full_screen_matches = 0;
    let mut planted_found = 0;
    for _ in 0..config.runs.max(1) {
        let t = Instant::now();
        let results = screener.screen_many(&base.records);
        full_screen_s.push(t.elapsed().as_secs_f64());
        full_screen_matches = results
            .iter()
            .map(|r| r.iter().filter(|m| m.is_match).count())
            .sum();
        planted_found = base
            .planted
            .iter()
            .filter(|(id, ei)| {
                results[*id as usize]
                    .iter()
                    .any(|m| m.is_match && m.entry == *ei)
            })
            .count();
    }

    // Delta: entries that have planted suppliers first (so recall means something), then others.
    let mut changed_idx: Vec<usize> = Vec::new();
    for &(_, ei) in &base.planted {
        if changed_idx.len() * 2 >= config.changed_entries {
            break;
        }
        if !changed_idx.contains(&ei) {
            changed_idx.push(ei);
        }
    }
    let mut rng = Rng::new(config.seed ^ 0xde17a);
    while changed_idx.len() < config.changed_entries.min(entries.len()) {
        let ei = rng.below(entries.len());
        if !changed_idx.contains(&ei) {
            changed_idx.push(ei);
        }
    }
    let changed: Vec<ListedEntry> = changed_idx.iter().map(|&i| entries[i].clone()).collect();
    let t = Instant::now();
    let supplier_index = SupplierIndex::new(base.records.iter().cloned());
    let supplier_index_build_s = t.elapsed().as_secs_f64();
    let mut delta_s = Vec::new();
    let mut delta_matches = 0;
    let mut delta_found: HashSet<(u32, usize)> = HashSet::new();
    for _ in 0..config.runs.max(1).max(5) {
        let t = Instant::now();
        let hits = supplier_index.rescreen(&screener, &changed);
        delta_s.push(t.elapsed().as_secs_f64());
        delta_matches = hits.iter().filter(|h| h.matched.is_match).count();
        delta_found = hits
            .iter()
            .filter(|h| h.matched.is_match)
            .map(|h| (*h.supplier, changed_idx[h.matched.entry]))
            .filter(|p| planted_set.contains(p))
            .collect();
    }
    let changed_set: HashSet<usize> = changed_idx.iter().copied().collect();
    let delta_planted = base
        .planted
        .iter()
        .filter(|(_, ei)| changed_set.contains(ei))
        .count();

    // Brute force on a sample: half planted, half ordinary suppliers.
    let half = config.brute_force_sample / 2;
    let mut sample: Vec<&SupplierRecord<u32>> = base
        .planted
        .iter()
        .take(half)
        .map(|(id, _)| &base.records[*id as usize])
        .collect();
    let mut rng = Rng::new(config.seed ^ 0xb07e);
    while sample.len() < config.brute_force_sample.min(base.records.len()) {
        sample.push(&base.records[rng.below(base.records.len())]);
    }
    let t = Instant::now();
    let brute: Vec<_> = sample
        .par_iter()
        .map(|s| screener.screen_brute_force(&s.name, &s.aliases, s.country.as_ref()))
        .collect();
    let brute_sample_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let indexed: Vec<_> = sample
        .par_iter()
        .map(|s| screener.screen(&s.name, &s.aliases, s.country.as_ref()))
        .collect();
    let index_sample_s = t.elapsed().as_secs_f64();
    let key = |v: &[super::Match]| -> Vec<(usize, u64)> {
        v.iter()
            .map(|m| (m.entry, (m.score * 1e9).round() as u64))
            .collect()
    };
    let sample_identical = brute.iter().zip(&indexed).all(|(b, i)| key(b) == key(i));
    let found_in = |results: &[Vec<super::Match>]| -> usize {
        sample
            .iter()
            .zip(results)
            .filter(|(s, r)| {
                base.planted
                    .iter()
                    .find(|(id, _)| *id == s.id)
                    .is_some_and(|(_, ei)| r.iter().any(|m| m.is_match && m.entry == *ei))
            })
            .count()
    };
    let sample_planted = sample
        .iter()
        .filter(|s| planted_set.iter().any(|(id, _)| *id == s.id))
        .count();

    BenchReport {
        threads: rayon::current_num_threads(),
        suppliers: base.records.len(),
        listed_entries: entries.len(),
        listed_names: entries.iter().map(|e| 1 + e.aliases.len()).sum(),
        planted: base.planted.len(),
        screener_build_s,
        screener_index_bytes: screener.index_heap_bytes(),
        full_screen_s,
        full_screen_matches,
        planted_found,
        supplier_index_build_s,
        supplier_index_bytes: supplier_index.heap_bytes(),
        changed_entries: changed.len(),
        delta_s,
        delta_matches,
        delta_planted,
        delta_planted_found: delta_found.len(),
        sample: sample.len(),
        sample_planted,
        sample_planted_found_index: found_in(&indexed),
        sample_planted_found_brute: found_in(&brute),
        sample_identical,
        brute_sample_s,
        index_sample_s,
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
        let runs = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.3}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        writeln!(
            f,
            "screening benchmark: {} suppliers ({} planted variants), {} listed entries ({} names), {} threads",
            self.suppliers, self.planted, self.listed_entries, self.listed_names, self.threads
        )?;
        writeln!(f, "{:<44} {:>14}  detail", "measure", "value")?;
        writeln!(
            f,
            "{:<44} {:>12.3} s  index {:.1} MB",
            "build screener (list index)",
            self.screener_build_s,
            self.screener_index_bytes as f64 / 1e6
        )?;
        writeln!(
            f,
            "{:<44} {:>12.3} s  runs {}; {} matches",
            "full screen, median",
            self.full_screen_median_s(),
            runs(&self.full_screen_s),
            self.full_screen_matches
        )?;
        writeln!(
            f,
            "{:<44} {:>12.2} %  {} of {}",
            "  recall on planted variants",
            pct(self.planted_found, self.planted),
            self.planted_found,
            self.planted
        )?;
        writeln!(
            f,
            "{:<44} {:>12.3} s  index {:.1} MB",
            "build supplier index",
            self.supplier_index_build_s,
            self.supplier_index_bytes as f64 / 1e6
        )?;
        writeln!(
            f,
            "{:<44} {:>12.3} s  runs {}; {} matches",
            format!(
                "delta re-screen ({} changed entries), median",
                self.changed_entries
            ),
            self.delta_median_s(),
            runs(&self.delta_s),
            self.delta_matches
        )?;
        writeln!(
            f,
            "{:<44} {:>12.2} %  {} of {}",
            "  recall on planted variants of changed",
            pct(self.delta_planted_found, self.delta_planted),
            self.delta_planted_found,
            self.delta_planted
        )?;
        writeln!(
            f,
            "{:<44} {:>12.3} s  {} suppliers, index {:.3} s on the same",
            "brute force on sample", self.brute_sample_s, self.sample, self.index_sample_s
        )?;
        writeln!(
            f,
            "{:<44} {:>12.1} s",
            "brute force extrapolated to all suppliers",
            self.brute_extrapolated_s()
        )?;
        writeln!(
            f,
            "{:<44} {:>12.0} ×",
            "speed-up (brute / full screen)",
            self.speedup()
        )?;
        writeln!(
            f,
            "{:<44} {:>14}  planted found: index {} / brute {} of {}",
            "sample: index = brute force",
            if self.sample_identical { "yes" } else { "NO" },
            self.sample_planted_found_index,
            self.sample_planted_found_brute,
            self.sample_planted
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EntityKey, EntityName};

    fn entries() -> Vec<ListedEntry> {
        [
            "Hangzhou Hikvision Digital Technology Co., Ltd.",
            "Beijing Huada Jiutian Technology",
            "Abdul Satar Ghoura",
        ]
        .iter()
        .map(|n| ListedEntry {
            key: EntityKey::derive(&CountryCode::unknown(), &EntityName::parse(n).unwrap()),
            name: n.to_string(),
            aliases: vec![],
            countries: vec![CountryCode::parse("CN").unwrap()],
        })
        .collect()
    }

    #[test]
    fn synthetic_base_is_deterministic_and_plants_variants() {
        let e = entries();
        let a = synthetic_suppliers(&e, 2000, 50, 7);
        let b = synthetic_suppliers(&e, 2000, 50, 7);
        assert_eq!(a.records, b.records);
        assert!(
            a.planted.len() > 50 && a.planted.len() < 150,
            "{}",
            a.planted.len()
        );
    }

    #[test]
    fn small_run_reports_identical_index_and_brute_force() {
        let cfg = BenchConfig {
            suppliers: 3000,
            planted_per_mille: 30,
            changed_entries: 2,
            brute_force_sample: 60,
            runs: 1,
            seed: 1,
        };
        let r = run(&entries(), &cfg);
        assert!(r.sample_identical);
        assert_eq!(r.sample_planted_found_index, r.sample_planted_found_brute);
        assert!(r.planted_found * 10 >= r.planted * 9, "{r}");
        let table = r.to_string();
        assert!(table.contains("speed-up"));
    }
}
