//! Candidate index: finds, for one query name, every indexed name that could score at or above a
//! floor, without scoring the others. Generic over what it indexes, so the same structure holds
//! the Entity List (queried by each supplier) and a million suppliers (queried by the few
//! entries a rule changed).
//!
//! It must never miss: a name a full comparison would score at or above the floor is always a
//! candidate (`tests.rs` compares against brute force). It does not score and holds no strings,
//! only 64-bit hashes and document numbers, to stay small at a million suppliers; it never reads
//! or writes anything outside memory.
//!
//! Why it is complete. `score.rs` scores a weighted Dice coefficient whose matched weight on the
//! query side is at most the weight of the query words that have *some* correspondence in the
//! candidate. So if a candidate corresponds to none of a set P of the query's heaviest words, its
//! score is at most `2·W_rest / (2·W_rest + U_P)` (W_rest the weight of the other words, U_P what
//! P costs unmatched). P is grown until that bound falls below the floor; then every candidate
//! must correspond to a word of P, and the index looks up exactly the ways a word can
//! correspond: same word, one edit (deletion neighbourhoods), same skeleton, or joined/split
//! words. Candidates found through only some of P are bounded the same way and dropped early.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use super::normalise::{skeleton, NormalisedName};
use super::score::{
    fnv, fnv_extend, fnv_skip, typo_eligible, PreparedName, MAX_JOIN, MAX_TOKENS, MIN_JOIN_PART,
};

/// Keys are already FNV hashes; hashing them again would only cost time.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// A hash → many values map stored flat: one allocation for all values.
struct MultiMap<V> {
    index: IdMap<(u32, u32)>,
    values: Vec<V>,
}

impl<V: Copy + Ord> MultiMap<V> {
    fn from_pairs(mut pairs: Vec<(u64, V)>) -> Self {
        pairs.sort_unstable();
        pairs.dedup();
        let mut index: IdMap<(u32, u32)> = IdMap::default();
        let mut values = Vec::with_capacity(pairs.len());
        let mut i = 0;
        while i < pairs.len() {
            let key = pairs[i].0;
            let start = values.len() as u32;
            while i < pairs.len() && pairs[i].0 == key {
                values.push(pairs[i].1);
                i += 1;
            }
            index.insert(key, (start, values.len() as u32));
        }
        values.shrink_to_fit();
        index.shrink_to_fit();
        MultiMap { index, values }
    }

    fn get(&self, key: u64) -> &[V] {
        match self.index.get(&key) {
            Some(&(s, e)) => &self.values[s as usize..e as usize],
            None => &[],
        }
    }

    fn contains(&self, key: u64) -> bool {
        self.index.contains_key(&key)
    }

    fn heap_bytes(&self) -> usize {
        self.index.capacity() * (8 + 8 + 1) + self.values.capacity() * std::mem::size_of::<V>()
    }
}

/// Builds a [`CandidateIndex`] one item at a time, so a million suppliers never need to be
/// normalised all at once.
pub struct IndexBuilder<Id> {
    ids: Vec<Id>,
    item_first_doc: Vec<u32>,
    doc_item: Vec<u32>,
    postings: Vec<(u64, u32)>,
    seen: HashSet<u64, BuildHasherDefault<IdHasher>>,
    del1: Vec<(u64, u64)>,
    skel: Vec<(u64, u64)>,
}

impl<Id> Default for IndexBuilder<Id> {
    fn default() -> Self {
        IndexBuilder {
            ids: Vec::new(),
            item_first_doc: vec![0],
            doc_item: Vec::new(),
            postings: Vec::new(),
            seen: HashSet::default(),
            del1: Vec::new(),
            skel: Vec::new(),
        }
    }
}

impl<Id> IndexBuilder<Id> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one item with its names (name first, then aliases); each name is one document.
    pub fn add(&mut self, id: Id, names: &[NormalisedName]) {
        let item = self.ids.len() as u32;
        self.ids.push(id);
        for name in names {
            let doc = self.doc_item.len() as u32;
            self.doc_item.push(item);
            for t in name.tokens.iter().take(MAX_TOKENS) {
                let h = fnv(t.text.as_bytes());
                self.postings.push((h, doc));
                // The written form too, for joined/split words, which are judged on it.
                if t.surface != t.text {
                    self.postings.push((fnv(t.surface.as_bytes()), doc));
                }
                if self.seen.insert(h) {
                    self.add_word_keys(&t.text, h);
                }
                if t.surface != t.text && self.seen.insert(fnv(t.surface.as_bytes()) ^ h) {
                    self.add_word_keys(&t.surface, h);
                }
            }
        }
        self.item_first_doc.push(self.doc_item.len() as u32);
    }

    /// Deletion neighbourhood and skeleton of a newly seen word form, pointing at the hash of
    /// the folded word `h`: the keys through which a query word one edit away, or spelled as
    /// another romanisation, finds it.
    fn add_word_keys(&mut self, word: &str, h: u64) {
        if typo_eligible(word) {
            let b = word.as_bytes();
            self.del1.push((fnv(b), h));
            for i in 0..b.len() {
                self.del1.push((fnv_skip(b, i), h));
            }
        }
        if let Some(s) = skeleton(word) {
            self.skel.push((fnv(s.as_bytes()), h));
        }
    }

    pub fn finish(self) -> CandidateIndex<Id> {
        let mut ids = self.ids;
        ids.shrink_to_fit();
        let mut doc_item = self.doc_item;
        doc_item.shrink_to_fit();
        CandidateIndex {
            ids,
            item_first_doc: self.item_first_doc,
            doc_item,
            postings: MultiMap::from_pairs(self.postings),
            del1: MultiMap::from_pairs(self.del1),
            skel: MultiMap::from_pairs(self.skel),
        }
    }
}

/// Token postings plus one-edit and skeleton keys over the names of many items.
pub struct CandidateIndex<Id> {
    ids: Vec<Id>,
    item_first_doc: Vec<u32>,
    doc_item: Vec<u32>,
    postings: MultiMap<u32>,
    del1: MultiMap<u64>,
    skel: MultiMap<u64>,
}

/// Per-thread working memory for [`CandidateIndex::candidates`], reused across queries so a
/// query allocates nothing in the common case.
#[derive(Default)]
pub struct Scratch {
    hits: Vec<u64>,
    touched: Vec<u32>,
    keys: Vec<u64>,
    word_keys: Vec<u64>,
    word_key_ends: Vec<usize>,
    /// Every indexed word (hash) any query word could correspond to, sorted; for the
    /// candidate-side bound.
    reach: Vec<u64>,
    /// A one-hash Bloom filter over `reach` (bit `h % REACH_BITS`): most words of a candidate
    /// are in no query word's reach, and the filter says so without the binary search, which
    /// was a quarter of screening's instructions. It only ever answers "maybe", so `may_match`
    /// returns exactly what the search alone would.
    reach_filter: Vec<u64>,
    want_reach: bool,
}

const REACH_BITS: u64 = 1 << 15;

impl Scratch {
    /// Scratch that also collects what `may_match` answers (costs a little per query).
    pub fn with_reach() -> Self {
        Scratch {
            want_reach: true,
            ..Scratch::default()
        }
    }

    /// Whether an indexed word, by the hash of its folded or written form, may correspond to
    /// some word of the last query given to [`CandidateIndex::candidates`].
    pub fn reach_known(&self) -> bool {
        self.want_reach
    }

    pub fn may_match(&self, hash: u64) -> bool {
        let bit = hash % REACH_BITS;
        match self.reach_filter.get((bit / 64) as usize) {
            Some(w) if w & (1u64 << (bit % 64)) == 0 => false,
            _ => self.reach.binary_search(&hash).is_ok(),
        }
    }

    /// Empties `reach` and its filter (clearing only the bits its words set).
    fn clear_reach(&mut self) {
        for &h in &self.reach {
            let bit = h % REACH_BITS;
            if let Some(w) = self.reach_filter.get_mut((bit / 64) as usize) {
                *w = 0;
            }
        }
        self.reach.clear();
    }

    /// Sorts `reach` and fills its filter.
    fn seal_reach(&mut self) {
        self.reach.sort_unstable();
        self.reach.dedup();
        if self.reach_filter.is_empty() {
            self.reach_filter = vec![0; (REACH_BITS / 64) as usize];
        }
        for &h in &self.reach {
            let bit = h % REACH_BITS;
            self.reach_filter[(bit / 64) as usize] |= 1u64 << (bit % 64);
        }
    }
}

impl<Id> CandidateIndex<Id> {
    /// Builds from (id, names) pairs.
    pub fn build(items: impl IntoIterator<Item = (Id, Vec<NormalisedName>)>) -> Self {
        let mut b = IndexBuilder::new();
        for (id, names) in items {
            b.add(id, &names);
        }
        b.finish()
    }

    pub fn items(&self) -> usize {
        self.ids.len()
    }

    pub fn docs(&self) -> usize {
        self.doc_item.len()
    }

    pub fn id(&self, item: usize) -> &Id {
        &self.ids[item]
    }

    /// The item a document belongs to and which of its names it is (0 = the name).
    pub fn doc_location(&self, doc: u32) -> (usize, usize) {
        let item = self.doc_item[doc as usize] as usize;
        (item, (doc - self.item_first_doc[item]) as usize)
    }

    /// Documents of one item.
    pub fn item_docs(&self, item: usize) -> std::ops::Range<u32> {
        self.item_first_doc[item]..self.item_first_doc[item + 1]
    }

    /// Approximate heap size in bytes, for the benchmark's memory column.
    pub fn heap_bytes(&self) -> usize {
        self.ids.capacity() * std::mem::size_of::<Id>()
            + (self.item_first_doc.capacity() + self.doc_item.capacity()) * 4
            + self.postings.heap_bytes()
            + self.del1.heap_bytes()
            + self.skel.heap_bytes()
    }

    /// Appends to `out` every document that could score at least `floor` against `query`
    /// (a superset of them; each document once).
    pub fn candidates(
        &self,
        query: &PreparedName,
        floor: f64,
        scratch: &mut Scratch,
        out: &mut Vec<u32>,
    ) {
        self.candidates_with(query, floor, 1.0, scratch, out)
    }

    /// [`CandidateIndex::candidates`] when a query word left unmatched may cost as little as
    /// `omission` times its organisation-rules cost (person rules: a left-out middle name).
    /// Person rules also let an initial correspond to any word it starts, which no key finds:
    /// when an initial is needed to reach the floor, every document is a candidate.
    pub fn candidates_with(
        &self,
        query: &PreparedName,
        floor: f64,
        omission: f64,
        scratch: &mut Scratch,
        out: &mut Vec<u32>,
    ) {
        let toks = &query.toks;
        if toks.is_empty() {
            return;
        }
        // A hair below the floor, so float rounding in the bound can only keep more.
        let t = floor - 1e-9;
        if t <= 0.0 {
            out.extend(0..self.doc_item.len() as u32);
            return;
        }
        let mut order: Vec<usize> = (0..toks.len()).collect();
        order.sort_by(|&x, &y| toks[y].weight.total_cmp(&toks[x].weight).then(x.cmp(&y)));
        let prunable = |rest: f64, missing: f64| 2.0 * rest * (1.0 - t) < t * missing;
        let mut in_prefix = 0u64;
        let mut prefix: Vec<usize> = Vec::new();
        loop {
            let rest: f64 = (0..toks.len())
                .filter(|i| in_prefix & (1u64 << i) == 0)
                .map(|i| toks[i].weight)
                .sum();
            let missing: f64 = prefix
                .iter()
                .map(|&i| toks[i].unmatched_weight() * omission)
                .sum();
            if prunable(rest, missing) || prefix.len() == toks.len() {
                break;
            }
            let next = order[prefix.len()];
            prefix.push(next);
            in_prefix |= 1u64 << next;
        }
        let rest_weight: f64 = (0..toks.len())
            .filter(|i| in_prefix & (1u64 << i) == 0)
            .map(|i| toks[i].weight)
            .sum();
        if omission < 1.0 && prefix.iter().any(|&i| toks[i].initial) {
            scratch.clear_reach();
            out.extend(0..self.doc_item.len() as u32);
            return;
        }

        scratch.clear_reach();
        // Each word's reachable keys, kept for the prefix words below (computing them is
        // most of this function): `word_keys[word_key_ends[pi-1]..word_key_ends[pi]]`.
        scratch.word_keys.clear();
        scratch.word_key_ends.clear();
        for pi in (0..toks.len()).filter(|_| scratch.want_reach) {
            let from = scratch.word_keys.len();
            self.reachable_words(query, pi, &mut scratch.word_keys);
            scratch.word_key_ends.push(scratch.word_keys.len());
            scratch.reach.extend_from_slice(&scratch.word_keys[from..]);
            // Every indexed piece of the word, for words split on the indexed side.
            let b = toks[pi].surface().as_bytes();
            for i in 0..b.len() {
                let mut h = fnv(b"");
                for j in i + 1..=b.len() {
                    h = fnv_extend(h, &b[j - 1..j]);
                    if j - i >= MIN_JOIN_PART && self.postings.contains(h) {
                        scratch.reach.push(h);
                    }
                }
            }
        }
        scratch.seal_reach();
        if scratch.hits.len() < self.doc_item.len() {
            scratch.hits.resize(self.doc_item.len(), 0);
        }
        scratch.touched.clear();
        for (bit, &pi) in prefix.iter().enumerate() {
            scratch.keys.clear();
            if scratch.want_reach {
                let from = if pi == 0 {
                    0
                } else {
                    scratch.word_key_ends[pi - 1]
                };
                let keys = &scratch.word_keys[from..scratch.word_key_ends[pi]];
                scratch.keys.extend_from_slice(keys);
            } else {
                self.reachable_words(query, pi, &mut scratch.keys);
            }
            scratch.keys.sort_unstable();
            scratch.keys.dedup();
            for &k in &scratch.keys {
                for &doc in self.postings.get(k) {
                    let slot = &mut scratch.hits[doc as usize];
                    if *slot == 0 {
                        scratch.touched.push(doc);
                    }
                    *slot |= 1u64 << bit;
                }
            }
        }
        for &doc in &scratch.touched {
            let hit = std::mem::take(&mut scratch.hits[doc as usize]);
            let mut matched = rest_weight;
            let mut missing = 0.0;
            for (bit, &pi) in prefix.iter().enumerate() {
                if hit & (1u64 << bit) != 0 {
                    matched += toks[pi].weight;
                } else {
                    missing += toks[pi].unmatched_weight() * omission;
                }
            }
            if !prunable(matched, missing) {
                out.push(doc);
            }
        }
    }

    /// Hashes of every indexed word that word `pi` of the query could correspond to.
    fn reachable_words(&self, query: &PreparedName, pi: usize, keys: &mut Vec<u64>) {
        let toks = &query.toks;
        let p = &toks[pi];
        keys.push(p.hash);
        if p.number_hash != 0 {
            keys.push(p.number_hash);
        }
        for form in [Some(&*p.text), p.surface.as_deref()].into_iter().flatten() {
            if typo_eligible(form) {
                let b = form.as_bytes();
                keys.extend_from_slice(self.del1.get(fnv(b)));
                for i in 0..b.len() {
                    keys.extend_from_slice(self.del1.get(fnv_skip(b, i)));
                }
            }
        }
        if p.skel != 0 {
            keys.extend_from_slice(self.skel.get(p.skel));
        }
        // Query words around `pi` written together may be one indexed word ("hik vision").
        let lo = (pi + 1).saturating_sub(MAX_JOIN);
        for s in lo..=pi {
            let mut h = fnv(b"");
            for (e, tok) in toks.iter().enumerate().skip(s).take(MAX_JOIN) {
                if tok.surface().len() < MIN_JOIN_PART {
                    break;
                }
                h = fnv_extend(h, tok.surface().as_bytes());
                if e >= pi && e > s {
                    keys.push(h);
                }
            }
        }
        // Or, under person rules, this word and a neighbour written together the other way
        // round ("jinping xi" / "xijinping").
        for other in [pi.checked_sub(1), Some(pi + 1).filter(|&n| n < toks.len())]
            .into_iter()
            .flatten()
        {
            let (x, y) = (toks[pi].surface(), toks[other].surface());
            if x.len() >= MIN_JOIN_PART && y.len() >= MIN_JOIN_PART {
                let (first, second) = if other < pi { (x, y) } else { (y, x) };
                keys.push(fnv_extend(fnv(first.as_bytes()), second.as_bytes()));
            }
        }
        // Or this one query word may be several indexed words written apart ("huawei" vs
        // "hua wei"): find indexed words that start it and whose remainder splits into indexed
        // words too.
        let b = p.surface().as_bytes();
        if b.len() < 2 * MIN_JOIN_PART {
            return;
        }
        // parts[i]: fewest indexed words that b[i..] splits into (usize::MAX if none), computed
        // right to left so each substring is hashed once.
        let n = b.len();
        let mut parts = vec![usize::MAX; n + 1];
        parts[n] = 0;
        for i in (0..n).rev() {
            let mut h = fnv(b"");
            for j in i + 1..=n {
                h = fnv_extend(h, &b[j - 1..j]);
                if j - i >= MIN_JOIN_PART
                    && parts[j] != usize::MAX
                    && parts[j] < MAX_JOIN
                    && !(i == 0 && j == n)
                    && self.postings.contains(h)
                {
                    parts[i] = parts[i].min(parts[j] + 1);
                    if i == 0 {
                        keys.push(h);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::screening::normalise::normalise;
    use crate::screening::score::align;
    use crate::screening::weights::TokenWeights;

    fn index_of(names: &[&str]) -> (CandidateIndex<usize>, Vec<NormalisedName>) {
        let norms: Vec<NormalisedName> = names.iter().map(|n| normalise(n)).collect();
        let idx =
            CandidateIndex::build(norms.iter().cloned().enumerate().map(|(i, n)| (i, vec![n])));
        (idx, norms)
    }

    fn found(idx: &CandidateIndex<usize>, w: &TokenWeights, q: &str, floor: f64) -> Vec<usize> {
        let pq = PreparedName::from_raw(q, w);
        let mut out = Vec::new();
        idx.candidates(&pq, floor, &mut Scratch::default(), &mut out);
        let mut items: Vec<usize> = out.iter().map(|&d| idx.doc_location(d).0).collect();
        items.sort();
        items
    }

    #[test]
    fn finds_exact_typo_skeleton_and_joined_words() {
        let names = [
            "Hikvision Digital",
            "Afghan Construction",
            "Muhammad Traders",
            "Sun Create Electronics",
            "Unrelated Name",
        ];
        let (idx, norms) = index_of(&names);
        let w = TokenWeights::from_names(&norms);
        assert_eq!(found(&idx, &w, "Hik Vision Digital", 0.5), vec![0]);
        assert_eq!(found(&idx, &w, "Afghn Construction", 0.5), vec![1]);
        assert_eq!(found(&idx, &w, "Mohammed Traders", 0.5), vec![2]);
        assert_eq!(found(&idx, &w, "Suncreate Electronics", 0.5), vec![3]);
    }

    #[test]
    fn candidates_cover_every_pair_above_the_floor() {
        let names = [
            "China Electronics Technology Group",
            "China Electronics Corporation",
            "Harbin Institute of Technology",
            "Harbin Engineering University",
            "Aerospace Industries Organization",
            "Aviation Industries Organization",
            "Beijing Huada Jiutian Technology",
            "Shanghai Huada Jiutian Information Technology",
            "Hua Wei Technology",
            "Mhmd Rd Hmdy",
        ];
        let (idx, norms) = index_of(&names);
        let w = TokenWeights::from_names(&norms);
        let queries = [
            "China Electronics",
            "Harbin Technology Institute",
            "Huawei Technologies",
            "Mohammad Reza Ahmadi",
            "Aerospace Industries Org",
            "Beijing Huada Jiutian Tech",
            "Technology",
        ];
        for floor in [0.3, 0.5, 0.8] {
            for q in queries {
                let pq = PreparedName::from_raw(q, &w);
                let brute: Vec<usize> = norms
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| align(&pq, &PreparedName::new(n, &w)).score >= floor)
                    .map(|(i, _)| i)
                    .collect();
                let got = found(&idx, &w, q, floor);
                for b in &brute {
                    assert!(got.contains(b), "{q} misses {} at {floor}", names[*b]);
                }
            }
        }
    }
}
