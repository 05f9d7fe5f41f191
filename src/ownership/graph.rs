//! The ownership graph and the BIS Affiliates (50 %) rule computed over it.
//!
//! Pure computation: nodes (suppliers and owner entities, one namespace of ids), edges "owner
//! holds `share` of owned", and the set of *listed* nodes (those matched to a current list
//! entry). It must never do I/O, read a clock or know where the data came from; the worker and
//! the store feed it and act on what it answers.
//!
//! # The rule, as computed
//!
//! A node is *restricted* when it is listed, or when the shares held in it by listed and by
//! restricted nodes add up to the threshold (50 % by default) or more. Shares are summed, never
//! multiplied along a chain (the OFAC method that BIS adopted in 90 FR 47201): 40 % held by an
//! owner that is itself restricted counts as 40 %. An owner below the threshold passes nothing
//! on, whatever it holds. The answer is the *least* fixed point: starting from the listed nodes
//! only, a node becomes restricted when its restricted owners reach the threshold, which can
//! make the nodes it owns restricted in turn. Each node becomes restricted at most once, so the
//! work is linear in the edges and a cycle terminates; a cycle of unlisted companies owning
//! each other restricts none of them (nothing listed stands behind them).
//!
//! Shares are integers in hundredths of a percent ([`Share`]), so 30 % + 20 % is exactly 50 %
//! and never 49.999...

use std::collections::{HashMap, VecDeque};
use std::fmt;

/// A share in hundredths of a percent: `Share(5000)` is 50 %.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Share(pub u32);

impl Share {
    pub const FULL: Share = Share(10_000);
    /// The Affiliates rule's threshold: 50 % or more.
    pub const DEFAULT_THRESHOLD: Share = Share(5_000);

    /// From a percentage (`60.0` is 60 %), rounded to hundredths of a percent. `None` for a
    /// negative, non-finite or absurd value (over 100 % for one holding).
    pub fn from_percent(percent: f64) -> Option<Share> {
        if !percent.is_finite() || !(0.0..=100.0).contains(&percent) {
            return None;
        }
        Some(Share((percent * 100.0).round() as u32))
    }

    pub fn percent(self) -> f64 {
        f64::from(self.0) / 100.0
    }

    pub fn saturating_add(self, other: Share) -> Share {
        Share(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 % 100 == 0 {
            write!(f, "{} %", self.0 / 100)
        } else {
            write!(f, "{:.2} %", self.percent())
        }
    }
}

/// A node's index in a [`Graph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

impl NodeId {
    fn ix(self) -> usize {
        self.0 as usize
    }
}

/// What is wrong with the ownership data; reported, never fatal to the computation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anomaly {
    /// An entity recorded as owning itself; the edge is left out of the computation.
    SelfOwnership { node: String, share: Share },
    /// The recorded shares in one entity add up to more than 100 %; they are all counted
    /// (the data is wrong, and over-counting errs on the side of an alert).
    Overflow { node: String, total: Share },
    /// Entities that own each other in a ring (a strongly connected component), named.
    Cycle { nodes: Vec<String> },
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anomaly::SelfOwnership { node, share } => {
                write!(
                    f,
                    "{node} is recorded as owning {share} of itself (ignored)"
                )
            }
            Anomaly::Overflow { node, total } => {
                write!(
                    f,
                    "the shares recorded in {node} add up to {total}, over 100 %"
                )
            }
            Anomaly::Cycle { nodes } => {
                write!(f, "ownership cycle: {}", nodes.join(" → "))
            }
        }
    }
}

/// Collects edges, then freezes them into a [`Graph`]. A second edge between the same owner
/// and owned entity replaces the first (the later record wins, as in an upsert).
#[derive(Debug, Default)]
pub struct GraphBuilder {
    ids: Vec<String>,
    index: HashMap<String, u32>,
    /// (owner, owned) → share.
    edges: HashMap<(u32, u32), Share>,
    anomalies: Vec<Anomaly>,
}

impl GraphBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(nodes: usize, edges: usize) -> Self {
        GraphBuilder {
            ids: Vec::with_capacity(nodes),
            index: HashMap::with_capacity(nodes),
            edges: HashMap::with_capacity(edges),
            anomalies: Vec::new(),
        }
    }

    /// The node for `id`, created if new (a supplier or owner with no edges yet).
    pub fn node(&mut self, id: &str) -> NodeId {
        if let Some(&i) = self.index.get(id) {
            return NodeId(i);
        }
        let i = self.ids.len() as u32;
        self.ids.push(id.to_string());
        self.index.insert(id.to_string(), i);
        NodeId(i)
    }

    /// Records that `owner` holds `share` of `owned`.
    pub fn edge(&mut self, owned: &str, owner: &str, share: Share) {
        if owned == owner {
            self.anomalies.push(Anomaly::SelfOwnership {
                node: owned.to_string(),
                share,
            });
            self.node(owned);
            return;
        }
        let a = self.node(owner).0;
        let b = self.node(owned).0;
        self.edges.insert((a, b), share);
    }

    pub fn build(self) -> Graph {
        let n = self.ids.len();
        let mut edges: Vec<(u32, u32, Share)> = self
            .edges
            .into_iter()
            .map(|((a, b), s)| (a, b, s))
            .collect();
        // Deterministic order, whatever the hash map did.
        edges.sort_unstable_by_key(|&(a, b, _)| (a, b));
        let csr = |key: &dyn Fn(&Edge) -> (u32, u32)| {
            let mut start = vec![0u32; n + 1];
            for e in &edges {
                start[key(e).0 as usize + 1] += 1;
            }
            for i in 0..n {
                start[i + 1] += start[i];
            }
            let mut fill = start.clone();
            let mut to = vec![0u32; edges.len()];
            let mut share = vec![Share(0); edges.len()];
            for e in &edges {
                let (from, other) = key(e);
                let at = fill[from as usize] as usize;
                to[at] = other;
                share[at] = e.2;
                fill[from as usize] += 1;
            }
            Adjacency { start, to, share }
        };
        let down = csr(&|&(a, b, _)| (a, b));
        let up = csr(&|&(a, b, _)| (b, a));
        let mut anomalies = self.anomalies;
        for (i, id) in self.ids.iter().enumerate() {
            let total = up
                .of(i)
                .fold(Share(0), |acc, (_, share)| acc.saturating_add(share));
            if total > Share::FULL {
                anomalies.push(Anomaly::Overflow {
                    node: id.clone(),
                    total,
                });
            }
        }
        Graph {
            ids: self.ids,
            index: self.index,
            down,
            up,
            anomalies,
        }
    }
}

/// (owner, owned, share), as the builder sorts them.
type Edge = (u32, u32, Share);

/// Compressed adjacency: the neighbours of node `i` are `to[start[i]..start[i + 1]]`.
#[derive(Debug, Clone)]
struct Adjacency {
    start: Vec<u32>,
    to: Vec<u32>,
    share: Vec<Share>,
}

impl Adjacency {
    fn of(&self, i: usize) -> impl Iterator<Item = (u32, Share)> + '_ {
        let (a, b) = (self.start[i] as usize, self.start[i + 1] as usize);
        self.to[a..b]
            .iter()
            .copied()
            .zip(self.share[a..b].iter().copied())
    }
}

/// The frozen ownership graph: edges both ways (owner → owned to propagate, owned → owner to
/// sum and to explain).
#[derive(Debug, Clone)]
pub struct Graph {
    ids: Vec<String>,
    index: HashMap<String, u32>,
    down: Adjacency,
    up: Adjacency,
    anomalies: Vec<Anomaly>,
}

impl Graph {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn edge_count(&self) -> usize {
        self.down.to.len()
    }

    pub fn id(&self, node: NodeId) -> &str {
        &self.ids[node.ix()]
    }

    pub fn node(&self, id: &str) -> Option<NodeId> {
        self.index.get(id).map(|&i| NodeId(i))
    }

    /// The owners of `node` with their shares.
    pub fn owners(&self, node: NodeId) -> impl Iterator<Item = (NodeId, Share)> + '_ {
        self.up.of(node.ix()).map(|(o, s)| (NodeId(o), s))
    }

    /// Self-ownership and totals over 100 %, found while building. Cycles are found on
    /// request ([`Graph::cycles`]): they cost a pass over the graph.
    pub fn anomalies(&self) -> &[Anomaly] {
        &self.anomalies
    }

    /// Every ownership cycle (strongly connected component of more than one entity), by
    /// Tarjan's algorithm, iteratively so a long chain cannot overflow the stack.
    pub fn cycles(&self) -> Vec<Anomaly> {
        let n = self.len();
        const UNSEEN: u32 = u32::MAX;
        let mut order = vec![UNSEEN; n];
        let mut low = vec![0u32; n];
        let mut on_stack = vec![false; n];
        let mut stack: Vec<u32> = Vec::new();
        let mut next = 0u32;
        let mut out = Vec::new();
        // (node, position in its out-edges)
        let mut call: Vec<(u32, u32)> = Vec::new();
        for root in 0..n as u32 {
            if order[root as usize] != UNSEEN {
                continue;
            }
            call.push((root, self.down.start[root as usize]));
            order[root as usize] = next;
            low[root as usize] = next;
            next += 1;
            stack.push(root);
            on_stack[root as usize] = true;
            while let Some(&mut (v, ref mut pos)) = call.last_mut() {
                let end = self.down.start[v as usize + 1];
                if *pos < end {
                    let w = self.down.to[*pos as usize];
                    *pos += 1;
                    if order[w as usize] == UNSEEN {
                        order[w as usize] = next;
                        low[w as usize] = next;
                        next += 1;
                        stack.push(w);
                        on_stack[w as usize] = true;
                        call.push((w, self.down.start[w as usize]));
                    } else if on_stack[w as usize] {
                        low[v as usize] = low[v as usize].min(order[w as usize]);
                    }
                    continue;
                }
                call.pop();
                if let Some(&(parent, _)) = call.last() {
                    low[parent as usize] = low[parent as usize].min(low[v as usize]);
                }
                if low[v as usize] == order[v as usize] {
                    let mut component = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w as usize] = false;
                        component.push(w);
                        if w == v {
                            break;
                        }
                    }
                    if component.len() > 1 {
                        let mut nodes: Vec<String> = component
                            .iter()
                            .map(|&i| self.ids[i as usize].clone())
                            .collect();
                        nodes.sort_unstable();
                        out.push(Anomaly::Cycle { nodes });
                    }
                }
            }
        }
        out
    }

    /// Every node reachable from `from` along owner → owned edges, `from` included: the part
    /// of the graph whose restriction a change at `from` can alter.
    pub fn downstream(&self, from: &[NodeId]) -> Vec<NodeId> {
        let mut seen = vec![false; self.len()];
        let mut queue: VecDeque<u32> = VecDeque::new();
        let mut out = Vec::new();
        for &f in from {
            if f.ix() < self.len() && !seen[f.ix()] {
                seen[f.ix()] = true;
                queue.push_back(f.0);
            }
        }
        while let Some(v) = queue.pop_front() {
            out.push(NodeId(v));
            for (w, _) in self.down.of(v as usize) {
                if !seen[w as usize] {
                    seen[w as usize] = true;
                    queue.push_back(w);
                }
            }
        }
        out
    }
}

/// Which nodes are listed, and as which list entries (caller's indices into its own table of
/// entries; one node can match several).
#[derive(Debug, Clone, Default)]
pub struct Listed {
    by_node: HashMap<u32, Vec<u32>>,
}

impl Listed {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `node` as listed as entry `entry`.
    pub fn insert(&mut self, node: NodeId, entry: u32) {
        let v = self.by_node.entry(node.0).or_default();
        if let Err(at) = v.binary_search(&entry) {
            v.insert(at, entry);
        }
    }

    /// `node` is no longer listed (as anything).
    pub fn remove(&mut self, node: NodeId) {
        self.by_node.remove(&node.0);
    }

    pub fn entries(&self, node: NodeId) -> &[u32] {
        self.by_node.get(&node.0).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn is_listed(&self, node: NodeId) -> bool {
        !self.entries(node).is_empty()
    }

    pub fn nodes(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.by_node.keys().map(|&n| NodeId(n))
    }

    pub fn len(&self) -> usize {
        self.by_node.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_node.is_empty()
    }
}

/// One hop of a path: the entity and the share its predecessor holds in it (`None` for the
/// listed entity the path starts from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub node: NodeId,
    pub share: Option<Share>,
}

/// The restricted state of every node under one threshold.
#[derive(Debug, Clone)]
pub struct Evaluation {
    threshold: Share,
    restricted: Vec<bool>,
    /// Shares held in each node by listed and restricted owners.
    share: Vec<Share>,
    /// For restricted nodes: the listed entries behind them (their own, and those of every
    /// restricted or listed owner), sorted.
    behind: HashMap<u32, Vec<u32>>,
}

impl Evaluation {
    /// The full computation over the whole graph.
    pub fn full(graph: &Graph, listed: &Listed, threshold: Share) -> Evaluation {
        let mut eval = Evaluation {
            threshold,
            restricted: vec![false; graph.len()],
            share: vec![Share(0); graph.len()],
            behind: HashMap::new(),
        };
        let all: Vec<NodeId> = (0..graph.len() as u32).map(NodeId).collect();
        let mut region = vec![true; graph.len()];
        eval.solve(graph, listed, &all, &mut region);
        eval
    }

    /// Re-evaluates only what a change at `changed` can alter: the nodes downstream of it
    /// (a new or removed listing, a changed holding in `changed`). Every other node keeps its
    /// state, which is exact: nothing upstream of them changed. Returns the region
    /// re-evaluated, for the caller to compare with what it alerted on. `graph` must be the
    /// graph this evaluation was made on.
    pub fn reevaluate(
        &mut self,
        graph: &Graph,
        listed: &Listed,
        changed: &[NodeId],
    ) -> Vec<NodeId> {
        let region_nodes = graph.downstream(changed);
        let mut region = vec![false; graph.len()];
        for &n in &region_nodes {
            region[n.ix()] = true;
            self.restricted[n.ix()] = false;
            self.share[n.ix()] = Share(0);
            self.behind.remove(&n.0);
        }
        self.solve(graph, listed, &region_nodes, &mut region);
        region_nodes
    }

    /// The least fixed point over `nodes` (all flagged in `in_region`), the rest fixed.
    fn solve(&mut self, graph: &Graph, listed: &Listed, nodes: &[NodeId], in_region: &mut [bool]) {
        let mut queue: VecDeque<u32> = VecDeque::new();
        // Contributions from restricted owners outside the region, which stay as they are.
        for &n in nodes {
            let mut s = Share(0);
            for (o, share) in graph.up.of(n.ix()) {
                if !in_region[o as usize] && self.restricted[o as usize] {
                    s = s.saturating_add(share);
                }
            }
            self.share[n.ix()] = s;
            if listed.is_listed(n) || s >= self.threshold {
                self.restricted[n.ix()] = true;
                queue.push_back(n.0);
            }
        }
        // Propagate inside the region: each node joins the queue once, when it becomes
        // restricted, so cycles end.
        while let Some(v) = queue.pop_front() {
            for (w, share) in graph.down.of(v as usize) {
                if !in_region[w as usize] {
                    continue;
                }
                let s = self.share[w as usize].saturating_add(share);
                self.share[w as usize] = s;
                if !self.restricted[w as usize] && s >= self.threshold {
                    self.restricted[w as usize] = true;
                    queue.push_back(w);
                }
            }
        }
        // Which listed entries stand behind each restricted node: a union along restricted
        // edges until nothing grows (sets only grow and are bounded, so it ends).
        let mut work: VecDeque<u32> = VecDeque::new();
        let mut queued = vec![false; graph.len()];
        for &n in nodes {
            if !self.restricted[n.ix()] {
                continue;
            }
            let mut set: Vec<u32> = listed.entries(n).to_vec();
            for (o, _) in graph.up.of(n.ix()) {
                if !in_region[o as usize] && self.restricted[o as usize] {
                    if let Some(b) = self.behind.get(&o) {
                        union_into(&mut set, b);
                    }
                }
            }
            self.behind.insert(n.0, set);
            work.push_back(n.0);
            queued[n.ix()] = true;
        }
        while let Some(v) = work.pop_front() {
            queued[v as usize] = false;
            let from = self.behind.get(&v).cloned().unwrap_or_default();
            for (w, _) in graph.down.of(v as usize) {
                if !in_region[w as usize] || !self.restricted[w as usize] {
                    continue;
                }
                let set = self.behind.entry(w).or_default();
                if union_into(set, &from) && !queued[w as usize] {
                    queued[w as usize] = true;
                    work.push_back(w);
                }
            }
        }
        for &n in nodes {
            in_region[n.ix()] = false;
        }
    }

    pub fn threshold(&self) -> Share {
        self.threshold
    }

    pub fn is_restricted(&self, node: NodeId) -> bool {
        self.restricted[node.ix()]
    }

    /// Restricted through ownership (the aggregate share reached the threshold), whether or
    /// not the node is listed itself.
    pub fn is_restricted_by_ownership(&self, node: NodeId) -> bool {
        self.share[node.ix()] >= self.threshold
    }

    /// The aggregate share held in `node` by listed and restricted owners.
    pub fn listed_share(&self, node: NodeId) -> Share {
        self.share[node.ix()]
    }

    /// The listed entries behind a restricted node (empty for one that is not).
    pub fn listed_behind(&self, node: NodeId) -> &[u32] {
        self.behind.get(&node.0).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn restricted_count(&self) -> usize {
        self.restricted.iter().filter(|&&r| r).count()
    }

    /// Paths from listed nodes down to `node` through restricted nodes only, each starting at
    /// a listed node; at most `limit` of them, shortest found first (depth-first, never
    /// visiting a node twice on one path, so cycles end).
    pub fn paths(
        &self,
        graph: &Graph,
        listed: &Listed,
        node: NodeId,
        limit: usize,
    ) -> Vec<Vec<Hop>> {
        let mut out = Vec::new();
        // The path is built from the node upward: (node, share it holds in the one below).
        let mut path: Vec<(u32, Option<Share>)> = vec![(node.0, None)];
        self.walk_up(graph, listed, &mut path, &mut out, limit);
        out
    }

    fn walk_up(
        &self,
        graph: &Graph,
        listed: &Listed,
        path: &mut Vec<(u32, Option<Share>)>,
        out: &mut Vec<Vec<Hop>>,
        limit: usize,
    ) {
        const MAX_DEPTH: usize = 32;
        let v = path.last().expect("never empty").0;
        for (o, share) in graph.up.of(v as usize) {
            if out.len() >= limit {
                return;
            }
            if !self.restricted[o as usize] || path.iter().any(|&(p, _)| p == o) {
                continue;
            }
            path.push((o, Some(share)));
            if listed.is_listed(NodeId(o)) {
                // Listed entity first; each hop's share is the share its predecessor holds.
                let mut hops = Vec::with_capacity(path.len());
                let rev: Vec<_> = path.iter().rev().collect();
                for (i, &&(n, _)) in rev.iter().enumerate() {
                    let share = if i == 0 { None } else { rev[i - 1].1 };
                    hops.push(Hop {
                        node: NodeId(n),
                        share,
                    });
                }
                out.push(hops);
            } else if path.len() < MAX_DEPTH {
                self.walk_up(graph, listed, path, out, limit);
            }
            path.pop();
        }
    }
}

/// Adds `from` to the sorted set `into`; true if it grew.
fn union_into(into: &mut Vec<u32>, from: &[u32]) -> bool {
    let before = into.len();
    for &x in from {
        if let Err(at) = into.binary_search(&x) {
            into.insert(at, x);
        }
    }
    into.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(p: u32) -> Share {
        Share(p * 100)
    }

    /// Builds a graph from (owned, owner, percent) and lists the given ids (entry = position).
    fn setup(edges: &[(&str, &str, u32)], listed_ids: &[&str]) -> (Graph, Listed) {
        let mut b = GraphBuilder::new();
        for &(owned, owner, p) in edges {
            b.edge(owned, owner, pct(p));
        }
        for id in listed_ids {
            b.node(id);
        }
        let g = b.build();
        let mut l = Listed::new();
        for (i, id) in listed_ids.iter().enumerate() {
            l.insert(g.node(id).unwrap(), i as u32);
        }
        (g, l)
    }

    fn restricted(g: &Graph, e: &Evaluation, id: &str) -> bool {
        e.is_restricted(g.node(id).unwrap())
    }

    #[test]
    fn sixty_percent_owned_by_a_listed_party_is_restricted() {
        let (g, l) = setup(&[("S", "P", 60)], &["P"]);
        let e = Evaluation::full(&g, &l, Share::DEFAULT_THRESHOLD);
        assert!(restricted(&g, &e, "S"));
        assert_eq!(e.listed_share(g.node("S").unwrap()), pct(60));
        assert_eq!(e.listed_behind(g.node("S").unwrap()), &[0]);
    }

    #[test]
    fn shares_of_two_listed_owners_are_summed() {
        let (g, l) = setup(&[("S", "A", 30), ("S", "B", 25)], &["A", "B"]);
        let e = Evaluation::full(&g, &l, Share::DEFAULT_THRESHOLD);
        assert!(restricted(&g, &e, "S"));
        assert_eq!(e.listed_share(g.node("S").unwrap()), pct(55));
        assert_eq!(e.listed_behind(g.node("S").unwrap()), &[0, 1]);
        let (g, l) = setup(&[("S", "A", 30), ("S", "B", 19)], &["A", "B"]);
        let e = Evaluation::full(&g, &l, Share::DEFAULT_THRESHOLD);
        assert!(!restricted(&g, &e, "S"), "49 % is below the threshold");
    }

    #[test]
    fn exactly_fifty_percent_is_restricted() {
        let (g, l) = setup(&[("S", "A", 30), ("S", "B", 20)], &["A", "B"]);
        let e = Evaluation::full(&g, &l, Share::DEFAULT_THRESHOLD);
        assert!(restricted(&g, &e, "S"));
    }

    #[test]
    fn a_restricted_intermediate_passes_its_whole_share_on() {
        // P listed owns 60 % of I; I owns 40 % of S: 40 % counts, summed not multiplied.
        let (g, l) = setup(&[("I", "P", 60), ("S", "I", 40), ("S", "P", 10)], &["P"]);
        let e = Evaluation::full(&g, &l, Share::DEFAULT_THRESHOLD);
        assert!(restricted(&g, &e, "I"));
        assert!(restricted(&g, &e, "S"));
        assert_eq!(e.listed_share(g.node("S").unwrap()), pct(50));
        let paths = e.paths(&g, &l, g.node("S").unwrap(), 10);
        assert_eq!(paths.len(), 2, "{paths:?}");
        let via_i = paths.iter().find(|p| p.len() == 3).unwrap();
        assert_eq!(g.id(via_i[0].node), "P");
        assert_eq!(via_i[0].share, None);
        assert_eq!(via_i[1].share, Some(pct(60)));
        assert_eq!(g.id(via_i[2].node), "S");
        assert_eq!(via_i[2].share, Some(pct(40)));
    }

    #[test]
    fn an_intermediate_below_the_threshold_passes_nothing_on() {
        let (g, l) = setup(&[("I", "P", 40), ("S", "I", 40), ("S", "P", 20)], &["P"]);
        let e = Evaluation::full(&g, &l, Share::DEFAULT_THRESHOLD);
        assert!(!restricted(&g, &e, "I"));
        assert!(!restricted(&g, &e, "S"));
        assert_eq!(e.listed_share(g.node("S").unwrap()), pct(20));
    }

    #[test]
    fn cycles_terminate_and_are_reported() {
        // A and B own each other; P listed owns 50 % of A; A owns 60 % of S.
        let (g, l) = setup(
            &[
                ("A", "B", 30),
                ("B", "A", 70),
                ("A", "P", 50),
                ("S", "A", 60),
            ],
            &["P"],
        );
        let e = Evaluation::full(&g, &l, Share::DEFAULT_THRESHOLD);
        assert!(restricted(&g, &e, "A") && restricted(&g, &e, "B") && restricted(&g, &e, "S"));
        // A gets 50 % from P plus 30 % back from the restricted B.
        assert_eq!(e.listed_share(g.node("A").unwrap()), pct(80));
        let cycles = g.cycles();
        assert_eq!(
            cycles,
            vec![Anomaly::Cycle {
                nodes: vec!["A".into(), "B".into()]
            }]
        );
        assert!(!e.paths(&g, &l, g.node("S").unwrap(), 10).is_empty());
    }

    #[test]
    fn a_ring_with_nothing_listed_behind_it_restricts_nobody() {
        let (g, l) = setup(&[("A", "B", 60), ("B", "A", 60), ("S", "A", 100)], &[]);
        let e = Evaluation::full(&g, &l, Share::DEFAULT_THRESHOLD);
        assert_eq!(e.restricted_count(), 0);
    }

    #[test]
    fn self_ownership_and_overflow_are_reported_not_fatal() {
        let mut b = GraphBuilder::new();
        b.edge("S", "S", pct(10));
        b.edge("S", "A", pct(70));
        b.edge("S", "B", pct(60));
        let g = b.build();
        assert!(g.anomalies().contains(&Anomaly::SelfOwnership {
            node: "S".into(),
            share: pct(10)
        }));
        assert!(g.anomalies().contains(&Anomaly::Overflow {
            node: "S".into(),
            total: pct(130)
        }));
        let mut l = Listed::new();
        l.insert(g.node("B").unwrap(), 0);
        let e = Evaluation::full(&g, &l, Share::DEFAULT_THRESHOLD);
        assert!(restricted(&g, &e, "S"));
        assert_eq!(g.edge_count(), 2);
    }

    #[test]
    fn a_later_record_of_the_same_holding_replaces_the_earlier() {
        let mut b = GraphBuilder::new();
        b.edge("S", "P", pct(60));
        b.edge("S", "P", pct(10));
        let g = b.build();
        let mut l = Listed::new();
        l.insert(g.node("P").unwrap(), 0);
        let e = Evaluation::full(&g, &l, Share::DEFAULT_THRESHOLD);
        assert!(!restricted(&g, &e, "S"));
    }

    #[test]
    fn the_threshold_is_a_parameter() {
        let (g, l) = setup(&[("S", "P", 30)], &["P"]);
        assert!(
            !Evaluation::full(&g, &l, Share::DEFAULT_THRESHOLD).is_restricted(g.node("S").unwrap())
        );
        assert!(Evaluation::full(&g, &l, pct(25)).is_restricted(g.node("S").unwrap()));
    }

    #[test]
    fn share_parses_and_prints() {
        assert_eq!(Share::from_percent(50.0), Some(Share(5000)));
        assert_eq!(Share::from_percent(33.333), Some(Share(3333)));
        assert_eq!(Share::from_percent(-1.0), None);
        assert_eq!(Share::from_percent(100.5), None);
        assert_eq!(Share::from_percent(f64::NAN), None);
        assert_eq!(pct(60).to_string(), "60 %");
        assert_eq!(Share(3333).to_string(), "33.33 %");
    }

    /// A deterministic pseudo-random graph: incremental re-evaluation must agree with a full
    /// evaluation after every listing added or removed.
    #[test]
    fn incremental_reevaluation_agrees_with_full_evaluation() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |m: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % m
        };
        let n = 300u64;
        let mut b = GraphBuilder::new();
        for i in 0..n {
            b.node(&format!("n{i}"));
        }
        for _ in 0..900 {
            let (a, c) = (next(n), next(n));
            b.edge(
                &format!("n{a}"),
                &format!("n{c}"),
                Share(next(6000) as u32 + 500),
            );
        }
        let g = b.build();
        let mut listed = Listed::new();
        let mut eval = Evaluation::full(&g, &listed, Share::DEFAULT_THRESHOLD);
        for round in 0..60 {
            let node = g.node(&format!("n{}", next(n))).unwrap();
            if round % 3 == 2 {
                listed.remove(node);
            } else {
                listed.insert(node, round);
            }
            eval.reevaluate(&g, &listed, &[node]);
            let full = Evaluation::full(&g, &listed, Share::DEFAULT_THRESHOLD);
            for i in 0..g.len() as u32 {
                let v = NodeId(i);
                assert_eq!(
                    eval.is_restricted(v),
                    full.is_restricted(v),
                    "round {round} node {i}"
                );
                assert_eq!(
                    eval.listed_share(v),
                    full.listed_share(v),
                    "round {round} node {i}"
                );
                assert_eq!(
                    eval.listed_behind(v),
                    full.listed_behind(v),
                    "round {round} node {i}"
                );
            }
        }
        assert!(
            eval.restricted_count() > 0,
            "the test must exercise restriction"
        );
    }
}
