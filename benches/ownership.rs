//! `cargo bench --bench ownership`: the Affiliates (50 %) rule over a synthetic ownership
//! graph: 1,000,000 suppliers, 300,000 owner entities, 2,000,000 holdings by default
//! (`BENCH_OWN_SUPPLIERS`, `BENCH_OWN_OWNERS`, `BENCH_OWN_EDGES`, `BENCH_OWN_LISTED` owners
//! listed at the start, `BENCH_OWN_DELTA` entries a later rule adds, `BENCH_RUNS`). Prints a
//! table of medians and the process's peak RSS. A benchmark driver: it may read /proc; the
//! computation it drives (`ownership::graph`) never does. Targets (issue 16, 2 cores): full
//! evaluation < 10 s, re-evaluation after a rule adding 100 entries < 1 s, peak RSS < 2 GB.

use std::time::{Duration, Instant};

use entitywatch::ownership::{Evaluation, GraphBuilder, Listed, NodeId, Share};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// xorshift64: deterministic, so every run measures the same graph.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let suppliers = env("BENCH_OWN_SUPPLIERS", 1_000_000);
    let owners = env("BENCH_OWN_OWNERS", 300_000);
    let edges = env("BENCH_OWN_EDGES", 2_000_000);
    let listed_at_start = env("BENCH_OWN_LISTED", 3_000);
    let delta = env("BENCH_OWN_DELTA", 100);
    let runs = env("BENCH_RUNS", 3).max(1);

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let t = Instant::now();
    let mut b = GraphBuilder::with_capacity(suppliers + owners, edges);
    for i in 0..owners {
        b.node(&format!("O-{i}"));
    }
    for i in 0..suppliers {
        b.node(&format!("S-{i}"));
    }
    // A quarter of the holdings are between owners (groups, intermediates, some rings), the
    // rest owners holding suppliers; shares from 5 % to 64 %.
    for e in 0..edges {
        let owner = format!("O-{}", rng.below(owners));
        let owned = if e % 4 == 0 {
            format!("O-{}", rng.below(owners))
        } else {
            format!("S-{}", rng.below(suppliers))
        };
        b.edge(&owned, &owner, Share(500 + rng.below(6000) as u32));
    }
    let graph = b.build();
    let build = t.elapsed();

    let mut listed = Listed::new();
    for i in 0..listed_at_start {
        listed.insert(
            graph.node(&format!("O-{}", rng.below(owners))).unwrap(),
            i as u32,
        );
    }
    let added: Vec<NodeId> = (0..delta)
        .map(|_| graph.node(&format!("O-{}", rng.below(owners))).unwrap())
        .collect();

    let (mut full, mut incr, mut cycles) = (Vec::new(), Vec::new(), Vec::new());
    let (mut restricted_before, mut restricted_after, mut region, mut rings) = (0, 0, 0, 0);
    for _ in 0..runs {
        let t = Instant::now();
        let mut eval = Evaluation::full(&graph, &listed, Share::DEFAULT_THRESHOLD);
        full.push(t.elapsed());
        restricted_before = eval.restricted_count();

        let mut after = listed.clone();
        for (i, &n) in added.iter().enumerate() {
            after.insert(n, (listed_at_start + i) as u32);
        }
        let t = Instant::now();
        region = eval.reevaluate(&graph, &after, &added).len();
        incr.push(t.elapsed());
        restricted_after = eval.restricted_count();

        let t = Instant::now();
        rings = graph.cycles().len();
        cycles.push(t.elapsed());
    }
    // The incremental answer is the full one (checked once, outside the timings).
    let check = {
        let mut after = listed.clone();
        for (i, &n) in added.iter().enumerate() {
            after.insert(n, (listed_at_start + i) as u32);
        }
        Evaluation::full(&graph, &after, Share::DEFAULT_THRESHOLD).restricted_count()
    };
    assert_eq!(
        check, restricted_after,
        "incremental and full evaluation disagree"
    );

    println!("| ownership benchmark | value |");
    println!("| --- | --- |");
    println!(
        "| suppliers / owners / holdings | {suppliers} / {owners} / {} |",
        graph.edge_count()
    );
    println!("| listed owners at start / added by the rule | {listed_at_start} / {delta} |");
    println!("| graph build (once) | {:.2} s |", build.as_secs_f64());
    println!(
        "| full evaluation (median of {runs}) | {:.2} s |",
        median(full).as_secs_f64()
    );
    println!(
        "| re-evaluation after the rule (median of {runs}) | {:.3} s ({region} nodes below the change) |",
        median(incr).as_secs_f64()
    );
    println!(
        "| cycle report (median of {runs}) | {:.2} s ({rings} rings) |",
        median(cycles).as_secs_f64()
    );
    println!("| restricted before / after | {restricted_before} / {restricted_after} |");
    if let Some(mb) = peak_rss_mb() {
        println!("| peak RSS | {mb:.0} MB |");
    }
}
