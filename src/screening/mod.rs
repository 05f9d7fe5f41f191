//! Screening: decides which Entity List entries a supplier's name could be, with a score in 0..1
//! and an explanation for each, fast enough to re-screen a million suppliers on every rule.
//!
//! Domain code: it must never import an I/O crate (no sqlx, reqwest, tokio, axum, rdkafka) nor
//! read files; callers hand it entries and names, and evaluation data as any `impl Read`.
//!
//! The pieces, in data-flow order: `normalise` folds a name to comparable words (with the word
//! lists of `lexicon` and the ISO 20275 legal forms of `legal_forms`), `weights` says how rare
//! each word is (a fixed table, `common_words`), `schema` what kind of party a name names,
//! `score` aligns two names word by word under that kind's rules, `index` finds the few names
//! worth scoring. [`Screener`] puts them together for supplier → list screening,
//! [`SupplierIndex`] for the reverse (a changed entry → suppliers), `pairs` reads pair files,
//! `eval` measures quality on labelled pairs and `bench` measures speed.
//!
//! A decision is a function of (supplier record, entry, [`MATCHER_VERSION`]): the weights
//! never come from the live list, so a replay scores every pair exactly as before.

pub mod bench;
mod common_words;
pub mod eval;
pub mod index;
mod legal_forms;
pub mod lexicon;
pub mod normalise;
pub mod pairs;
pub mod schema;
pub mod score;
pub mod weights;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

use rayon::prelude::*;
use serde::Serialize;

use crate::events::{CountryCode, EntityKey};

pub use eval::{evaluate_pairs, evaluate_pairs_with, EvalError, EvalReport};
pub use index::{CandidateIndex, IndexBuilder, Scratch};
pub use normalise::{normalise, NormalisedName};
pub use pairs::{
    parse_pairs, PairRow, PairRowError, PairsFile, PairsFileError, DEFAULT_MAX_FIELD_BYTES,
};
pub use schema::{Schema, UnknownSchema};
pub use score::{
    score_pair, score_pair_typed, score_pair_typed_with, score_pair_with, CountryEvidence,
    Explanation, MatchKind, PreparedName, RulesApplied, Score, TokenMatch, UnmatchedToken,
    COUNTRY_BONUS, COUNTRY_PENALTY, DEFAULT_THRESHOLD,
};
pub use weights::TokenWeights;

use score::{align_with, pair_rules, Rules, PERSON_OMISSION_FACTOR};

/// The version of the matcher's rules and tables. Every stored decision records it; a decision
/// for the same supplier record version and entry version under the same matcher version is
/// the same decision, so a replay never re-decides. Bump it with any change to the scoring,
/// the normaliser or a generated table (the `tables_fingerprint_is_recorded` test fails until
/// [`TABLES_FINGERPRINT`] is updated, as a reminder); a new version means a deliberate
/// re-screen. 2.1.0: the worker scores by kinds (an entry's from its source, a supplier an
/// organisation unless its record says otherwise), so a person entry never matches a company.
pub const MATCHER_VERSION: &str = "2.1.0";

/// The fingerprint of the generated and hand-written word tables [`MATCHER_VERSION`] was set
/// for (see [`tables_fingerprint`]).
pub const TABLES_FINGERPRINT: u64 = 13281392323215299731;

/// A stable 64-bit hash of every table the matcher decides with: the built-in word weights,
/// the legal forms and the word lists. Equal fingerprints mean equal tables.
pub fn tables_fingerprint() -> u64 {
    use score::fnv_extend;
    let mut h = score::fnv(MATCHER_VERSION.as_bytes());
    let mut add = |s: &str| {
        h = fnv_extend(h, s.as_bytes());
        h = fnv_extend(h, &[0]);
    };
    add(&common_words::COMMON_WORDS_DOCS.to_string());
    add(legal_forms::ELF_SOURCE);
    for (w, n, p) in common_words::COMMON_WORDS {
        add(w);
        add(&n.to_string());
        add(&p.to_string());
    }
    for w in legal_forms::ELF_PHRASES
        .iter()
        .chain(legal_forms::ELF_END_WORDS)
        .chain(lexicon::LEGAL_FORMS)
        .chain(lexicon::AMBIGUOUS_LEGAL_FORMS)
        .chain(lexicon::STOPWORDS)
        .chain(lexicon::PLACES)
    {
        add(w);
    }
    for (a, b) in lexicon::ABBREVIATIONS
        .iter()
        .chain(lexicon::NUMBER_WORDS)
        .chain(lexicon::ROMAN_NUMERALS)
        .chain(lexicon::INITIALISMS)
        .chain(lexicon::INITIALISM_EXPANSIONS)
        .chain(lexicon::PINYIN_WORDS)
        .chain(lexicon::WADE_GILES)
        .chain(lexicon::GIVEN_NAME_VARIANTS)
        .chain(lexicon::CJK_WORDS)
    {
        add(a);
        add(b);
    }
    h
}

/// Below this a listed entry is not worth showing at all; between it and the threshold it is a
/// near miss a reviewer may want to see (`screen` on the command line shows them).
pub const DEFAULT_FLOOR: f64 = 0.6;

/// One Entity List entry as the matcher needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedEntry {
    pub key: EntityKey,
    pub name: String,
    pub aliases: Vec<String>,
    /// Countries of the entry's addresses and heading; empty when unknown.
    pub countries: Vec<CountryCode>,
}

impl ListedEntry {
    /// The name, then each alias.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.name.as_str()).chain(self.aliases.iter().map(String::as_str))
    }
}

/// A supplier (or any name to screen) as the batch and delta APIs take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupplierRecord<Id> {
    pub id: Id,
    pub name: String,
    pub aliases: Vec<String>,
    pub country: Option<CountryCode>,
}

/// One listed entry a name may be.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    pub key: EntityKey,
    /// The entry's primary name (the explanation says which name or alias matched).
    pub listed_name: String,
    pub score: f64,
    /// Whether `score` reaches the screener's threshold.
    pub is_match: bool,
    pub explanation: Explanation,
    /// Position of the entry in the list the [`Screener`] was built from.
    #[serde(skip)]
    pub entry: usize,
}

fn country_evidence(
    supplier: Option<&CountryCode>,
    listed: &[CountryCode],
) -> (CountryEvidence, f64) {
    let known: Vec<&CountryCode> = listed.iter().filter(|c| !c.is_unknown()).collect();
    match supplier {
        Some(c) if !c.is_unknown() && !known.is_empty() => {
            if known.contains(&c) {
                (
                    CountryEvidence::Same {
                        country: c.to_string(),
                    },
                    COUNTRY_BONUS,
                )
            } else {
                (
                    CountryEvidence::Different {
                        query: c.to_string(),
                        listed: known.iter().map(|c| c.to_string()).collect(),
                    },
                    -COUNTRY_PENALTY,
                )
            }
        }
        _ => (CountryEvidence::Unknown, 0.0),
    }
}

/// Screens names against a fixed set of listed entries.
pub struct Screener {
    entries: Vec<ListedEntry>,
    /// Each entry's kind when its source gave one.
    schemas: Vec<Option<Schema>>,
    /// Whether any entry is a person's (then a query of unknown kind may be scored by person
    /// rules, which the candidate bound must allow for).
    has_persons: bool,
    weights: TokenWeights,
    /// One prepared name per (entry, name-or-alias), in index document order.
    docs: Vec<PreparedName>,
    index: CandidateIndex<u32>,
    threshold: f64,
    floor: f64,
}

/// The best-scoring (supplier name, listed document) pair found so far for one entry.
#[derive(Clone, Copy)]
struct Best {
    score: f64,
    query: usize,
    doc: u32,
}

impl Screener {
    /// Indexes entries of unknown kind with the built-in word weights.
    pub fn new(entries: Vec<ListedEntry>) -> Self {
        let n = entries.len();
        Self::build(entries, vec![None; n], TokenWeights::builtin().clone())
    }

    /// Indexes entries with their kinds (the CSL `type`, `None` when the source gives none).
    pub fn new_typed(entries: Vec<(ListedEntry, Option<Schema>)>) -> Self {
        let (entries, schemas) = entries.into_iter().unzip();
        Self::build(entries, schemas, TokenWeights::builtin().clone())
    }

    /// Indexes entries with the caller's word weights (for experiments; decisions use the
    /// built-in, versioned weights of [`Screener::new`]).
    pub fn with_weights(
        entries: Vec<ListedEntry>,
        schemas: Vec<Option<Schema>>,
        weights: TokenWeights,
    ) -> Self {
        Self::build(entries, schemas, weights)
    }

    fn build(
        entries: Vec<ListedEntry>,
        schemas: Vec<Option<Schema>>,
        weights: TokenWeights,
    ) -> Self {
        assert_eq!(entries.len(), schemas.len(), "one kind per entry");
        let norms: Vec<Vec<NormalisedName>> = entries
            .par_iter()
            .map(|e| e.names().map(normalise).collect())
            .collect();
        let docs = norms
            .iter()
            .flatten()
            .map(|n| PreparedName::new(n, &weights))
            .collect();
        let index = CandidateIndex::build(
            norms
                .into_iter()
                .enumerate()
                .map(|(i, names)| (i as u32, names)),
        );
        Screener {
            has_persons: schemas.contains(&Some(Schema::Person)),
            entries,
            schemas,
            weights,
            docs,
            index,
            threshold: DEFAULT_THRESHOLD,
            floor: DEFAULT_FLOOR,
        }
    }

    /// Sets the score at which a result counts as a match (default [`DEFAULT_THRESHOLD`]).
    pub fn with_threshold(mut self, threshold: f64) -> Self {
        self.threshold = threshold;
        self
    }

    /// Sets the lowest score returned at all (default [`DEFAULT_FLOOR`]); everything at or above
    /// it is found, exactly as a full comparison would.
    pub fn with_floor(mut self, floor: f64) -> Self {
        self.floor = floor;
        self
    }

    pub fn entries(&self) -> &[ListedEntry] {
        &self.entries
    }

    /// The kind of entry `i`, when known.
    pub fn schema(&self, i: usize) -> Option<Schema> {
        self.schemas[i]
    }

    /// The version of the rules and tables this screener decides with.
    pub fn matcher_version(&self) -> &'static str {
        MATCHER_VERSION
    }

    pub fn weights(&self) -> &TokenWeights {
        &self.weights
    }

    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    pub fn floor(&self) -> f64 {
        self.floor
    }

    /// Approximate heap size of the index, for the benchmark.
    pub fn index_heap_bytes(&self) -> usize {
        self.index.heap_bytes()
    }

    /// Listed entries the supplier may be, best first, down to the floor. Each supplier name and
    /// alias is scored against each listed name and alias; an entry scores its best pair.
    pub fn screen(
        &self,
        name: &str,
        aliases: &[String],
        country: Option<&CountryCode>,
    ) -> Vec<Match> {
        let names: Vec<&str> = std::iter::once(name)
            .chain(aliases.iter().map(String::as_str))
            .collect();
        self.screen_names(&names, country, None, &mut Scratch::with_reach(), false)
    }

    /// [`Screener::screen`] for a name of a known kind: a person is screened by person rules
    /// and only against entries that may be persons, an organisation never against a person.
    pub fn screen_typed(
        &self,
        name: &str,
        aliases: &[String],
        country: Option<&CountryCode>,
        schema: Schema,
    ) -> Vec<Match> {
        let names: Vec<&str> = std::iter::once(name)
            .chain(aliases.iter().map(String::as_str))
            .collect();
        self.screen_names(
            &names,
            country,
            Some(schema),
            &mut Scratch::with_reach(),
            false,
        )
    }

    /// [`Screener::screen`] for many suppliers in parallel; results in input order.
    pub fn screen_many<Id: Sync>(&self, suppliers: &[SupplierRecord<Id>]) -> Vec<Vec<Match>> {
        suppliers
            .par_iter()
            .map_init(Scratch::with_reach, |scratch, s| {
                let names: Vec<&str> = std::iter::once(s.name.as_str())
                    .chain(s.aliases.iter().map(String::as_str))
                    .collect();
                self.screen_names(&names, s.country.as_ref(), None, scratch, false)
            })
            .collect()
    }

    /// [`Screener::screen_many`] for suppliers of known kinds.
    pub fn screen_many_typed<Id: Sync>(
        &self,
        suppliers: &[(SupplierRecord<Id>, Schema)],
    ) -> Vec<Vec<Match>> {
        suppliers
            .par_iter()
            .map_init(Scratch::with_reach, |scratch, (s, schema)| {
                let names: Vec<&str> = std::iter::once(s.name.as_str())
                    .chain(s.aliases.iter().map(String::as_str))
                    .collect();
                self.screen_names(&names, s.country.as_ref(), Some(*schema), scratch, false)
            })
            .collect()
    }

    /// The same answer as [`Screener::screen`], by scoring every listed name: the reference the
    /// index is tested and benchmarked against.
    pub fn screen_brute_force(
        &self,
        name: &str,
        aliases: &[String],
        country: Option<&CountryCode>,
    ) -> Vec<Match> {
        let names: Vec<&str> = std::iter::once(name)
            .chain(aliases.iter().map(String::as_str))
            .collect();
        self.screen_names(&names, country, None, &mut Scratch::default(), true)
    }

    /// [`Screener::screen_brute_force`] for a name of a known kind.
    pub fn screen_brute_force_typed(
        &self,
        name: &str,
        aliases: &[String],
        country: Option<&CountryCode>,
        schema: Schema,
    ) -> Vec<Match> {
        let names: Vec<&str> = std::iter::once(name)
            .chain(aliases.iter().map(String::as_str))
            .collect();
        self.screen_names(&names, country, Some(schema), &mut Scratch::default(), true)
    }

    /// The rules for query `q` (of kind `schema`) against listed document `d` of entry `e`.
    fn rules(
        &self,
        schema: Option<Schema>,
        q: &PreparedName,
        entry: usize,
        d: &PreparedName,
    ) -> Option<Rules> {
        pair_rules_between(schema, self.schemas[entry], q, d)
    }

    fn screen_names(
        &self,
        names: &[&str],
        country: Option<&CountryCode>,
        schema: Option<Schema>,
        scratch: &mut Scratch,
        brute_force: bool,
    ) -> Vec<Match> {
        let prepared: Vec<PreparedName> = names
            .iter()
            .map(|n| PreparedName::from_raw(n, &self.weights))
            .collect();
        // Few entries survive the index per supplier: a vector beats a hash map here.
        let mut best: Vec<(u32, Best)> = Vec::new();
        let mut cands: Vec<u32> = Vec::new();
        for (qi, q) in prepared.iter().enumerate() {
            if q.is_empty() {
                continue;
            }
            cands.clear();
            let omission = omission_bound(schema, self.has_persons, q);
            if brute_force {
                cands.extend(0..self.docs.len() as u32);
            } else {
                self.index.candidates_with(
                    q,
                    self.floor - COUNTRY_BONUS,
                    omission,
                    scratch,
                    &mut cands,
                );
            }
            let floor = self.floor - COUNTRY_BONUS - 1e-9;
            let initials = omission < 1.0 && q.toks.iter().any(|t| t.initial);
            for &doc in &cands {
                let d = &self.docs[doc as usize];
                if !brute_force
                    && scratch.reach_known()
                    && !initials
                    && !listed_side_may_reach(d, scratch, floor, omission)
                {
                    continue;
                }
                let entry = self.index.doc_location(doc).0 as u32;
                let Some(rules) = self.rules(schema, q, entry as usize, d) else {
                    continue;
                };
                let s = align_with(q, d, rules).score;
                if s <= 0.0 {
                    continue;
                }
                let b = match best.iter().position(|(e, _)| *e == entry) {
                    Some(p) => &mut best[p].1,
                    None => {
                        best.push((
                            entry,
                            Best {
                                score: -1.0,
                                query: qi,
                                doc,
                            },
                        ));
                        &mut best.last_mut().expect("just pushed").1
                    }
                };
                if s > b.score {
                    *b = Best {
                        score: s,
                        query: qi,
                        doc,
                    };
                }
            }
        }
        let mut out: Vec<Match> = best
            .into_iter()
            .filter_map(|(entry, b)| {
                let e = &self.entries[entry as usize];
                let (evidence, adj) = country_evidence(country, &e.countries);
                let score = (b.score + adj).clamp(0.0, 1.0);
                if score < self.floor {
                    return None;
                }
                let (_, ordinal) = self.index.doc_location(b.doc);
                let listed = e.names().nth(ordinal).unwrap_or(&e.name);
                let q = &prepared[b.query];
                let d = &self.docs[b.doc as usize];
                let rules = self.rules(schema, q, entry as usize, d);
                let al = align_with(q, d, rules.unwrap_or(Rules::Organization));
                let explanation =
                    Explanation::build(names[b.query], listed, ordinal > 0, q, d, &al)
                        .with_rules(rules)
                        .with_country(evidence, adj);
                Some(Match {
                    key: e.key.clone(),
                    listed_name: e.name.clone(),
                    score,
                    is_match: score >= self.threshold,
                    explanation,
                    entry: entry as usize,
                })
            })
            .collect();
        sort_matches(&mut out);
        out
    }
}

/// The index's bound seen from the listed name: its words that no query word can correspond to
/// cost their weight, so if they outweigh what can match, the pair cannot reach the floor
/// (same argument as in `index.rs`, on the other side).
fn listed_side_may_reach(d: &PreparedName, scratch: &Scratch, floor: f64, omission: f64) -> bool {
    let (mut matched, mut missing) = (0.0, 0.0);
    for t in &d.toks {
        if scratch.may_match(t.hash) || scratch.may_match(t.surface_hash) {
            matched += t.weight;
        } else {
            missing += t.unmatched_weight() * omission;
        }
    }
    2.0 * matched * (1.0 - floor) >= floor * missing
}

/// The rules for a query of kind `query` against an entry of kind `entry`: two known kinds
/// decide, one known kind speaks for both, and with none the names' look decides.
fn pair_rules_between(
    query: Option<Schema>,
    entry: Option<Schema>,
    q: &PreparedName,
    d: &PreparedName,
) -> Option<Rules> {
    match (query, entry) {
        (Some(x), Some(y)) => Rules::for_kinds(x, y),
        (Some(x), None) | (None, Some(x)) => pair_rules(Some(x), q, d),
        (None, None) => pair_rules(None, q, d),
    }
}

/// The least a query word left unmatched may cost, as a share of its organisation-rules
/// cost: lower for a name that may be scored by person rules, where a left-out middle name is
/// cheap. The candidate index and the bounds use it so they never drop such a match.
fn omission_bound(schema: Option<Schema>, other_side_has_persons: bool, q: &PreparedName) -> f64 {
    let may_be_person = match schema {
        Some(Schema::Person) => true,
        Some(_) => false,
        None => other_side_has_persons || q.person_like,
    };
    if may_be_person {
        PERSON_OMISSION_FACTOR
    } else {
        1.0
    }
}

fn sort_matches(v: &mut [Match]) {
    v.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.key.cmp(&b.key))
            .then(a.entry.cmp(&b.entry))
    });
}

/// Suppliers indexed for the reverse direction: when a rule adds or revises a few entries, find
/// the suppliers they may be without screening every supplier again.
pub struct SupplierIndex<Id> {
    index: CandidateIndex<Id>,
    /// Every supplier name and alias as given, concatenated; `name_ends[doc]` ends document
    /// `doc`. Kept raw (not as words) because only candidates are ever re-read.
    names: String,
    name_ends: Vec<u64>,
    countries: Vec<[u8; 2]>,
    /// Per document, its words as (folded hash, written hash, flags): enough to bound a
    /// candidate's score before re-normalising its name. `word_starts[doc]..word_starts[doc+1]`.
    word_starts: Vec<u32>,
    words: Vec<(u64, u64)>,
    word_flags: Vec<u8>,
    /// Each supplier's kind when its record says (`None`: unknown).
    schemas: Vec<Option<Schema>>,
    has_persons: bool,
}

const FLAG_OPTIONAL: u8 = 1;
const FLAG_PLACE: u8 = 2;
const FLAG_INITIAL: u8 = 4;

/// One supplier a changed entry may be.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SupplierHit<'a, Id> {
    pub supplier: &'a Id,
    #[serde(flatten)]
    pub matched: Match,
}

impl<Id: Send + Sync> SupplierIndex<Id> {
    /// Indexes the suppliers, normalising in parallel chunks so that memory holds one chunk of
    /// normalised names at a time.
    pub fn new(records: impl IntoIterator<Item = SupplierRecord<Id>>) -> Self {
        Self::new_typed(records.into_iter().map(|r| (r, None)))
    }

    /// [`SupplierIndex::new`] for suppliers whose records may say what kind of party they are.
    pub fn new_typed(
        records: impl IntoIterator<Item = (SupplierRecord<Id>, Option<Schema>)>,
    ) -> Self {
        const CHUNK: usize = 1 << 16;
        let mut schemas = Vec::new();
        let mut builder = IndexBuilder::new();
        let mut names = String::new();
        let mut name_ends = Vec::new();
        let mut countries = Vec::new();
        let mut word_starts = vec![0u32];
        let mut words = Vec::new();
        let mut word_flags = Vec::new();
        let mut chunk: Vec<SupplierRecord<Id>> = Vec::with_capacity(CHUNK);
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            chunk.extend(records.by_ref().take(CHUNK).map(|(r, schema)| {
                schemas.push(schema);
                r
            }));
            let norms: Vec<Vec<NormalisedName>> = chunk
                .par_iter()
                .map(|r| {
                    std::iter::once(&r.name)
                        .chain(&r.aliases)
                        .map(|n| normalise(n))
                        .collect()
                })
                .collect();
            for (r, n) in chunk.drain(..).zip(norms) {
                for name in std::iter::once(&r.name).chain(&r.aliases) {
                    names.push_str(name);
                    name_ends.push(names.len() as u64);
                }
                countries.push(match &r.country {
                    Some(c) if !c.is_unknown() => {
                        let b = c.as_str().as_bytes();
                        [b[0], b[1]]
                    }
                    _ => [0, 0],
                });
                for name in &n {
                    for t in name.tokens.iter().take(score::MAX_TOKENS) {
                        words.push((
                            score::fnv(t.text.as_bytes()),
                            score::fnv(t.surface.as_bytes()),
                        ));
                        let mut f = 0;
                        if t.optional {
                            f |= FLAG_OPTIONAL;
                        }
                        if lexicon::is_place(&t.text) {
                            f |= FLAG_PLACE;
                        }
                        if t.text.len() == 1 && !t.is_numeric() {
                            f |= FLAG_INITIAL;
                        }
                        word_flags.push(f);
                    }
                    word_starts.push(words.len() as u32);
                }
                builder.add(r.id, &n);
            }
        }
        names.shrink_to_fit();
        name_ends.shrink_to_fit();
        countries.shrink_to_fit();
        words.shrink_to_fit();
        word_flags.shrink_to_fit();
        schemas.shrink_to_fit();
        SupplierIndex {
            has_persons: schemas.contains(&Some(Schema::Person)),
            schemas,
            index: builder.finish(),
            names,
            name_ends,
            countries,
            word_starts,
            words,
            word_flags,
        }
    }

    pub fn len(&self) -> usize {
        self.index.items()
    }

    pub fn is_empty(&self) -> bool {
        self.index.items() == 0
    }

    /// Approximate heap size in bytes.
    pub fn heap_bytes(&self) -> usize {
        self.index.heap_bytes()
            + self.names.capacity()
            + self.name_ends.capacity() * 8
            + self.countries.capacity() * 2
            + self.word_starts.capacity() * 4
            + self.words.capacity() * 16
            + self.word_flags.capacity()
            + self.schemas.capacity()
    }

    /// The candidate-side bound (see `listed_side_may_reach`) from the stored word hashes, so
    /// that most candidates are dropped without re-normalising their names.
    fn supplier_side_may_reach(
        &self,
        doc: u32,
        weights: &HashMap<u64, f64>,
        unknown_weight: f64,
        scratch: &Scratch,
        floor: f64,
        omission: f64,
    ) -> bool {
        let (mut matched, mut missing) = (0.0, 0.0);
        let range =
            self.word_starts[doc as usize] as usize..self.word_starts[doc as usize + 1] as usize;
        for (&(h, sh), &f) in self.words[range.clone()]
            .iter()
            .zip(&self.word_flags[range])
        {
            let w = weights
                .get(&h)
                .copied()
                .unwrap_or(if f & FLAG_INITIAL != 0 {
                    unknown_weight.min(weights::INITIAL_WEIGHT)
                } else {
                    unknown_weight
                });
            if scratch.may_match(h) || scratch.may_match(sh) {
                matched += w;
            } else if f & FLAG_OPTIONAL != 0 {
                missing += w * score::OPTIONAL_FACTOR * omission;
            } else if f & FLAG_PLACE != 0 {
                missing += w * score::PLACE_FACTOR * omission;
            } else {
                missing += w * omission;
            }
        }
        2.0 * matched * (1.0 - floor) >= floor * missing
    }

    fn doc_name(&self, doc: u32) -> &str {
        let end = self.name_ends[doc as usize] as usize;
        let start = if doc == 0 {
            0
        } else {
            self.name_ends[doc as usize - 1] as usize
        };
        &self.names[start..end]
    }

    fn country(&self, item: usize) -> Option<CountryCode> {
        let c = self.countries[item];
        if c == [0, 0] {
            None
        } else {
            CountryCode::parse(std::str::from_utf8(&c).ok()?)
        }
    }

    /// Suppliers at or above the screener's floor for each changed entry, best first. Scores are
    /// the ones [`Screener::screen`] gives the same supplier against the same entry, with the
    /// screener's word weights; `Match::entry` is the position in `changed`.
    pub fn rescreen(
        &self,
        screener: &Screener,
        changed: &[ListedEntry],
    ) -> Vec<SupplierHit<'_, Id>> {
        let typed: Vec<(ListedEntry, Option<Schema>)> =
            changed.iter().map(|e| (e.clone(), None)).collect();
        self.rescreen_typed(screener, &typed)
    }

    /// [`SupplierIndex::rescreen`] for changed entries whose kind the source gives.
    pub fn rescreen_typed(
        &self,
        screener: &Screener,
        changed: &[(ListedEntry, Option<Schema>)],
    ) -> Vec<SupplierHit<'_, Id>> {
        let floor = screener.floor();
        let weights = screener.weights();
        let by_hash = weights.by_hash();
        let unknown_weight = weights.weight("");
        let bound_floor = floor - COUNTRY_BONUS - 1e-9;
        let mut hits: Vec<SupplierHit<'_, Id>> = changed
            .par_iter()
            .enumerate()
            .map_init(Scratch::with_reach, |scratch, (ei, (e, entry_schema))| {
                let entry_schema = *entry_schema;
                let listed: Vec<PreparedName> = e
                    .names()
                    .map(|n| PreparedName::from_raw(n, weights))
                    .collect();
                let mut best: HashMap<usize, (f64, u32, usize)> = HashMap::new();
                let mut prepared: HashMap<u32, PreparedName> = HashMap::new();
                let mut cands = Vec::new();
                for (li, l) in listed.iter().enumerate() {
                    if l.is_empty() {
                        continue;
                    }
                    cands.clear();
                    let omission = omission_bound(entry_schema, self.has_persons, l);
                    self.index.candidates_with(
                        l,
                        floor - COUNTRY_BONUS,
                        omission,
                        scratch,
                        &mut cands,
                    );
                    let initials = omission < 1.0 && l.toks.iter().any(|t| t.initial);
                    for &doc in &cands {
                        if !prepared.contains_key(&doc)
                            && !initials
                            && !self.supplier_side_may_reach(
                                doc,
                                &by_hash,
                                unknown_weight,
                                scratch,
                                bound_floor,
                                omission,
                            )
                        {
                            continue;
                        }
                        let item = self.index.doc_location(doc).0;
                        let q = prepared
                            .entry(doc)
                            .or_insert_with(|| PreparedName::from_raw(self.doc_name(doc), weights));
                        let Some(rules) =
                            pair_rules_between(self.schemas[item], entry_schema, q, l)
                        else {
                            continue;
                        };
                        let s = align_with(q, l, rules).score;
                        if s <= 0.0 {
                            continue;
                        }
                        let b = best.entry(item).or_insert((-1.0, doc, li));
                        if s > b.0 {
                            *b = (s, doc, li);
                        }
                    }
                }
                let mut out = Vec::new();
                for (item, (s, doc, li)) in best {
                    let country = self.country(item);
                    let (evidence, adj) = country_evidence(country.as_ref(), &e.countries);
                    let score = (s + adj).clamp(0.0, 1.0);
                    if score < floor {
                        continue;
                    }
                    let q = &prepared[&doc];
                    let l = &listed[li];
                    let listed_name = e.names().nth(li).unwrap_or(&e.name);
                    let rules = pair_rules_between(self.schemas[item], entry_schema, q, l);
                    let al = align_with(q, l, rules.unwrap_or(Rules::Organization));
                    let explanation =
                        Explanation::build(self.doc_name(doc), listed_name, li > 0, q, l, &al)
                            .with_rules(rules)
                            .with_country(evidence, adj);
                    out.push(SupplierHit {
                        supplier: self.index.id(item),
                        matched: Match {
                            key: e.key.clone(),
                            listed_name: e.name.clone(),
                            score,
                            is_match: score >= screener.threshold(),
                            explanation,
                            entry: ei,
                        },
                    });
                }
                out
            })
            .flatten()
            .collect();
        hits.sort_by(|a, b| {
            b.matched
                .score
                .total_cmp(&a.matched.score)
                .then(a.matched.key.cmp(&b.matched.key))
                .then(
                    a.matched
                        .explanation
                        .query_name
                        .cmp(&b.matched.explanation.query_name),
                )
        });
        hits
    }
}
