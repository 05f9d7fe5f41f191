//! Scoring two normalised names: word-by-word alignment (exact, one typo, transliteration
//! skeleton, or words written joined/split) weighted by rarity, folded into one number in 0..1
//! with an explanation of every piece of evidence.
//!
//! Pure and deterministic: no I/O, no global state, no randomness, and no knowledge of where the
//! names came from; the same pair with the same weights always gives the same score. The bound
//! the candidate index relies on (see `index.rs`) follows from the formula here: change one and
//! re-check the other, the brute-force comparison test guards it.

use std::fmt;

use serde::Serialize;

use super::lexicon::{is_place, roman_numeral, roman_of};
use super::normalise::{is_vowel_poor, normalise, skeleton_hash, within_one_edit, NormalisedName};
use super::schema::Schema;
use super::weights::TokenWeights;

/// Scores at or above this are reported as matches. Chosen on the dev set *and* the hand-written
/// cases in `tests.rs`: on the dev set F1 is flat between 0.80 and 0.85, and the lower end keeps
/// recall for spellings the dev set does not contain (screening fears the miss more).
pub const DEFAULT_THRESHOLD: f64 = 0.80;

/// An unmatched word in parentheses or a branch qualifier counts this much of its weight: the
/// detail may be present on one side only without breaking a match.
pub const OPTIONAL_FACTOR: f64 = 0.2;

/// An unmatched place name ("Zhejiang" Dahua, "Hangzhou" Hikvision) counts this much: registers
/// often drop the city of a company. Two *different* places, though, tell subsidiaries apart,
/// so in a substitution a place counts [`PLACE_CONFLICT_FACTOR`] times its weight.
pub const PLACE_FACTOR: f64 = 0.5;
pub const PLACE_CONFLICT_FACTOR: f64 = 3.0;

/// At most this many words are joined when comparing "Hik Vision" with "Hikvision".
pub const MAX_JOIN: usize = 4;

/// The shortest word that may be part of a joined/split correspondence.
pub const MIN_JOIN_PART: usize = 2;

/// Longer names are cut here: alignment keeps its bookkeeping in 64-bit masks, and no real
/// entity name has more identifying words.
pub const MAX_TOKENS: usize = 64;

/// Country as supporting evidence: a small lift when the supplier's country is one the entry is
/// listed under, a small cut when both are known and differ. Both are smaller than the margin
/// between clear matches and the threshold, so the country alone never decides.
pub const COUNTRY_BONUS: f64 = 0.02;
pub const COUNTRY_PENALTY: f64 = 0.05;

/// Similarity of two words that differ only as romanisations do ("Mohammed"/"Muhammad").
const PHONETIC_SIM: f64 = 0.85;

/// Similarity of a person's initial with the given name it stands for ("J." / "John").
const INITIAL_SIM: f64 = 0.9;

/// A person's name word that the other name leaves out, when that name leaves nothing else
/// out and at least two words correspond (a middle name, a second family name, a patronymic),
/// costs this much of its weight: registers drop them all the time.
pub const PERSON_OMISSION_FACTOR: f64 = 0.35;

/// A word at least this heavy (about one name in a thousand of the weight table has it) is
/// distinctive; so is a word left over that weighs more than every word the names share.
pub const DISTINCTIVE_WEIGHT: f64 = 7.0;

/// An organisation's distinctive word the other name lacks costs this many times its weight:
/// "Beijing Technology Development" is not "Beijing Sensetime Technology Development", however
/// many common words they share.
pub const MISSING_DISTINCTIVE_FACTOR: f64 = 1.6;

/// Two organisation names that share a single word while a distinctive word of one of them
/// finds no counterpart score at most this: a near miss for a reviewer, never an alert.
pub const SINGLE_WORD_CAP: f64 = 0.75;

/// Which rules score a pair: persons and organisations fail to match in different ways.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rules {
    /// Either order, initials, missing middle names; places are ordinary words.
    Person,
    /// Legal forms, places, distinctive words.
    Organization,
}

impl Rules {
    /// The rules for a pair of the given kinds; `None` when they cannot name the same party.
    pub(crate) fn for_kinds(a: Schema, b: Schema) -> Option<Rules> {
        if !a.compatible(b) {
            return None;
        }
        Some(if a == Schema::Person {
            Rules::Person
        } else {
            Rules::Organization
        })
    }
}

/// 64-bit FNV-1a: a stable hash for index keys (deletion variants must hash the same whether
/// built from a slice with a byte skipped or from an owned string).
pub(crate) fn fnv(bytes: &[u8]) -> u64 {
    fnv_extend(0xcbf2_9ce4_8422_2325, bytes)
}

pub(crate) fn fnv_extend(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The hash of `bytes` without the byte at `skip`.
pub(crate) fn fnv_skip(bytes: &[u8], skip: usize) -> u64 {
    let h = fnv(&bytes[..skip]);
    fnv_extend(h, &bytes[skip + 1..])
}

/// How two words (or runs of words) were found to correspond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    Exact,
    /// One insertion, deletion, substitution or swap of neighbours.
    Typo,
    /// Same consonant skeleton: a transliteration variant.
    Phonetic,
    /// One side writes as one word what the other writes as several.
    Joined,
    /// A person's initial (or dotted initials) standing for the other name's word(s).
    Initial,
    /// The same number written differently ("54th" / "Fifty-Fourth" / "LIV").
    Number,
    /// The same word after an abbreviation, plural or spelling fold ("Tech" / "Technology",
    /// "Peking" / "Beijing", "Youssef" / "Yusuf").
    Variant,
    /// The same word once the other script is transliterated ("Ромашка" / "Romashka").
    Transliterated,
}

impl MatchKind {
    fn symbol(self) -> &'static str {
        match self {
            MatchKind::Exact => "=",
            MatchKind::Typo => "~",
            MatchKind::Phonetic => "≈",
            MatchKind::Joined => "+",
            MatchKind::Initial => ".",
            MatchKind::Number => "#",
            MatchKind::Variant => "≡",
            MatchKind::Transliterated => "⇄",
        }
    }
}

/// A word ready for scoring: folded text, hashes and weight.
#[derive(Debug, Clone)]
pub(crate) struct PTok {
    pub text: Box<str>,
    /// The word as written, when folding changed it (see `NormToken::surface`).
    pub surface: Option<Box<str>>,
    pub hash: u64,
    /// Hash of the written form (equal to `hash` when folding left the word alone).
    pub surface_hash: u64,
    /// Hash of the skeleton, 0 when the word has none.
    pub skel: u64,
    pub weight: f64,
    pub optional: bool,
    pub place: bool,
    /// Whether the corpus has the word: a one-letter difference between two words that both
    /// occur in the list is two different words ("Hunan"/"Henan"), not a typo.
    pub known: bool,
    /// The same for the written form (which may be a corpus word though the folded one is not).
    pub surface_known: bool,
    pub vowel_poor: bool,
    /// A single letter or dotted initials: under person rules it may stand for whole words.
    pub initial: bool,
    /// Hash of the same number written the other way (roman "iii" ↔ "3"), 0 when none: kept
    /// beside the word rather than folded, since "VI" may as well be a person's initials.
    pub number_hash: u64,
}

impl PTok {
    /// The word as written.
    pub fn surface(&self) -> &str {
        self.surface.as_deref().unwrap_or(&self.text)
    }

    /// What this word costs when it finds no counterpart.
    pub fn unmatched_weight(&self) -> f64 {
        if self.optional {
            self.weight * OPTIONAL_FACTOR
        } else if self.place {
            self.weight * PLACE_FACTOR
        } else {
            self.weight
        }
    }

    /// What this word costs unmatched under `rules`, before the omission and distinctiveness
    /// adjustments of [`align_with`]. Never below [`PTok::unmatched_weight`] times
    /// [`PERSON_OMISSION_FACTOR`]: the candidate index bounds scores with that.
    fn unmatched_cost(&self, rules: Rules) -> f64 {
        match rules {
            Rules::Person if self.optional => self.weight * OPTIONAL_FACTOR,
            Rules::Person => self.weight,
            Rules::Organization => self.unmatched_weight(),
        }
    }

    /// What this word weighs as one side of a substitution.
    fn conflict_weight(&self, rules: Rules) -> f64 {
        if self.optional {
            self.weight * OPTIONAL_FACTOR
        } else if self.place && rules == Rules::Organization {
            self.weight * PLACE_CONFLICT_FACTOR
        } else {
            self.weight
        }
    }

    /// Whether this word, left over, is a distinctive word of its name: heavy in itself, or
    /// heavier than everything the two names share (`matched_max`).
    fn distinctive(&self, matched_max: f64) -> bool {
        if self.optional || self.initial {
            return false;
        }
        if self.place {
            // A place only when the names share nothing distinctive themselves: "Public
            // Security Bureau" against the Xinjiang one, not "Sophgo" against Xiamen Sophgo.
            matched_max < DISTINCTIVE_WEIGHT && self.weight > matched_max
        } else {
            self.weight >= DISTINCTIVE_WEIGHT || self.weight > matched_max
        }
    }
}

/// Whether a written form may take part in a one-typo correspondence: three letters at least,
/// and no digits, since numbers identify ("706th" and "707th" institutes differ).
pub(crate) fn typo_eligible(word: &str) -> bool {
    word.len() >= 3 && !word.bytes().any(|b| b.is_ascii_digit())
}

/// Same length, one letter swapped for one that romanisations use interchangeably ("Antei"/
/// "Antey", "Javad"/"Jawad", "Mohammad"/"Muhammad"): a variant even between two list words.
fn romanisation_variant(x: &str, y: &str) -> bool {
    if x.len() != y.len() {
        return false;
    }
    let mut diff = x.bytes().zip(y.bytes()).filter(|(p, q)| p != q);
    match (diff.next(), diff.next()) {
        (Some((p, q)), None) => matches!(
            (p.min(q), p.max(q)),
            (b'i', b'y') | (b'v', b'w') | (b'c', b'k') | (b'k', b'q') | (b'o', b'u')
        ),
        _ => false,
    }
}

/// One typo is tolerated in words of five letters or more: in shorter words one letter is
/// too much of the word ("Hunan"/"Henan" are two provinces), so they need exact or phonetic
/// agreement.
pub const TYPO_MIN_LEN: usize = 5;

fn typo_pair(x: &str, y: &str) -> bool {
    let (bx, by) = (x.as_bytes(), y.as_bytes());
    // One edit leaves the first or the last letter in place (words of three letters or more).
    if bx.is_empty() || by.is_empty() || (bx[0] != by[0] && bx[bx.len() - 1] != by[by.len() - 1]) {
        return false;
    }
    typo_eligible(x)
        && typo_eligible(y)
        && x.len().max(y.len()) >= TYPO_MIN_LEN
        && x.len().abs_diff(y.len()) <= 1
        && within_one_edit(x.as_bytes(), y.as_bytes())
}

/// A name normalised and weighted against one corpus, ready to be scored many times.
#[derive(Debug, Clone)]
pub struct PreparedName {
    pub(crate) toks: Vec<PTok>,
    pub(crate) legal_forms: Vec<String>,
    /// Whether the name reads as a person's (see `TokenWeights::looks_like_person`), worked
    /// out once: a name of unknown kind is scored against many.
    pub(crate) person_like: bool,
}

impl PreparedName {
    pub fn new(norm: &NormalisedName, weights: &TokenWeights) -> Self {
        let toks = norm
            .tokens
            .iter()
            .take(MAX_TOKENS)
            .map(|t| {
                let numeric = t.is_numeric();
                let skel = if numeric { 0 } else { skeleton_hash(&t.text) };
                PTok {
                    surface: (t.surface != t.text).then(|| t.surface.as_str().into()),
                    hash: fnv(t.text.as_bytes()),
                    surface_hash: fnv(t.surface.as_bytes()),
                    skel,
                    weight: weights.weight(&t.text),
                    optional: t.optional,
                    place: is_place(&t.text),
                    known: weights.document_frequency(&t.text) > 0,
                    surface_known: weights.document_frequency(&t.surface) > 0,
                    vowel_poor: is_vowel_poor(&t.text),
                    initial: !numeric && (t.text.len() == 1 || (t.initials && t.text.len() <= 3)),
                    number_hash: if numeric {
                        roman_of(&t.text).map_or(0, |r| fnv(r.as_bytes()))
                    } else if t.initials {
                        0
                    } else {
                        roman_numeral(&t.text).map_or(0, |d| fnv(d.as_bytes()))
                    },
                    text: t.text.as_str().into(),
                }
            })
            .collect();
        let mut p = PreparedName {
            toks,
            legal_forms: norm.legal_forms.clone(),
            person_like: false,
        };
        p.person_like = weights.looks_like_person(&p);
        p
    }

    pub fn from_raw(raw: &str, weights: &TokenWeights) -> Self {
        PreparedName::new(&normalise(raw), weights)
    }

    pub fn is_empty(&self) -> bool {
        self.toks.is_empty()
    }
}

/// Similarity of two single words, `None` when they are no evidence for each other.
pub(crate) fn token_sim(a: &PTok, b: &PTok, rules: Rules) -> Option<(f64, MatchKind)> {
    if a.hash == b.hash && a.text == b.text {
        return Some((1.0, MatchKind::Exact));
    }
    if (a.number_hash != 0 && a.number_hash == b.hash)
        || (b.number_hash != 0 && b.number_hash == a.hash)
    {
        return Some((1.0, MatchKind::Number));
    }
    // A typo costs less in a long word, where the rest still identifies it. Folded forms are
    // compared, and written forms, since a fold may move a typo further from its word.
    for (x, y, both_known) in [
        (&*a.text, &*b.text, a.known && b.known),
        (a.surface(), b.surface(), a.surface_known && b.surface_known),
    ] {
        if typo_pair(x, y) && (!both_known || romanisation_variant(x, y)) {
            return Some((1.0 - 0.5 / x.len().max(y.len()) as f64, MatchKind::Typo));
        }
    }
    // Equal skeletons are a hint; the words must also look alike, less so when one of them is
    // not a list word (a spelling the list has never seen is more likely a variant) or when
    // they are persons' names, whose romanisations vary most ("Qasim"/"Kassem"). Two list
    // words must also have as many syllables ("Putin" is not "Potanin"), and a place is never
    // another place's variant ("Qinghai" is not "Qinghua").
    if a.skel == 0 || a.skel != b.skel || a.place || b.place {
        return None;
    }
    let both_known = a.known && b.known;
    let jw_needed = if both_known && rules == Rules::Organization {
        0.75
    } else {
        0.6
    };
    let (sa, sb) = (syllables(&a.text), syllables(&b.text));
    let syllables_agree = if both_known && rules == Rules::Organization {
        sa == sb
    } else {
        sa.abs_diff(sb) <= 1
    };
    // Romanisations double letters and write vowels as digraphs ("Massoud"/"Masud"), but do
    // not add a syllable's worth of letters ("Putin"/"Potanin").
    let (la, lb) = (squeezed_len(&a.text), squeezed_len(&b.text));
    let lengths_agree = la.abs_diff(lb) <= if la.max(lb) >= 8 { 2 } else { 1 };
    if (a.vowel_poor || b.vowel_poor)
        || (syllables_agree && lengths_agree && strsim::jaro_winkler(&a.text, &b.text) >= jw_needed)
    {
        return Some((PHONETIC_SIM, MatchKind::Phonetic));
    }
    None
}

/// The length of a word with doubled letters and runs of vowels counted once.
fn squeezed_len(word: &str) -> usize {
    let vowel = |c: u8| matches!(c, b'a' | b'e' | b'i' | b'o' | b'u' | b'y');
    let b = word.as_bytes();
    (0..b.len())
        .filter(|&i| i == 0 || !(b[i] == b[i - 1] || (vowel(b[i]) && vowel(b[i - 1]))))
        .count()
}

/// Groups of vowel letters (y counted as one): a word's syllables, near enough.
fn syllables(word: &str) -> usize {
    let mut n = 0;
    let mut in_vowel = false;
    for c in word.bytes() {
        let v = matches!(c, b'a' | b'e' | b'i' | b'o' | b'u' | b'y');
        if v && !in_vowel {
            n += 1;
        }
        in_vowel = v;
    }
    n
}

/// One correspondence: words `a.0..a.1` of one name with words `b.0..b.1` of the other.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Edge {
    pub a: (u8, u8),
    pub b: (u8, u8),
    pub sim: f64,
    pub kind: MatchKind,
    /// The evidence weight shared by both sides: the lighter side's, so that a typo (an unknown,
    /// hence heavy, word) matched to a common word counts as the common word.
    pub weight: f64,
}

/// The chosen correspondences between two names and the score they give.
#[derive(Debug, Clone)]
pub(crate) struct Alignment {
    pub edges: Vec<Edge>,
    pub a_used: u64,
    pub b_used: u64,
    pub score: f64,
}

fn span_weight(toks: &[PTok], lo: usize, hi: usize) -> f64 {
    toks[lo..hi].iter().map(|t| t.weight).sum()
}

fn mask(lo: usize, hi: usize) -> u64 {
    let width = hi - lo;
    if width >= 64 {
        u64::MAX
    } else {
        ((1u64 << width) - 1) << lo
    }
}

/// Runs of words of `many` that, written together, are exactly word `one` (written forms:
/// "Hik Vision"/"Hikvision", "Trans-Flot"/"TRANSFLOT"). Parts have two characters at least:
/// single letters would let almost any word split into something, and the normaliser already
/// glues "M&P", "SMU-5" into one word.
fn joined_edges(one: &[PTok], many: &[PTok], one_is_a: bool, out: &mut Vec<Edge>) {
    for (j, word) in one.iter().enumerate() {
        let target = word.surface().as_bytes();
        if target.len() < 2 {
            continue;
        }
        for i in 0..many.len() {
            let mut pos = 0;
            let mut k = i;
            while k < many.len() && k - i < MAX_JOIN {
                let part = many[k].surface().as_bytes();
                if part.len() < MIN_JOIN_PART
                    || part.len() + pos > target.len()
                    || part[0] != target[pos]
                {
                    break;
                }
                if !target[pos..].starts_with(part) {
                    break;
                }
                pos += part.len();
                k += 1;
                if pos == target.len() {
                    if k - i >= 2 {
                        let w = span_weight(many, i, k).min(word.weight);
                        let (a, b) = if one_is_a {
                            ((j as u8, j as u8 + 1), (i as u8, k as u8))
                        } else {
                            ((i as u8, k as u8), (j as u8, j as u8 + 1))
                        };
                        out.push(Edge {
                            a,
                            b,
                            sim: 1.0,
                            kind: MatchKind::Joined,
                            weight: w,
                        });
                    }
                    break;
                }
            }
        }
    }
}

/// Person rules: two neighbouring words written together in the other order ("Jinping Xi" /
/// 习近平, "xijinping"): Chinese and Korean names put the family name first when written as one
/// word, and a Latin register may not.
fn reversed_pair_edges(one: &[PTok], many: &[PTok], one_is_a: bool, out: &mut Vec<Edge>) {
    for (j, word) in one.iter().enumerate() {
        let target = word.surface();
        for i in 0..many.len().saturating_sub(1) {
            let (first, second) = (many[i + 1].surface(), many[i].surface());
            if first.len() < MIN_JOIN_PART || second.len() < MIN_JOIN_PART {
                continue;
            }
            if target.len() == first.len() + second.len()
                && target.starts_with(first)
                && target.ends_with(second)
            {
                let w = span_weight(many, i, i + 2).min(word.weight);
                let (a, b) = if one_is_a {
                    ((j as u8, j as u8 + 1), (i as u8, i as u8 + 2))
                } else {
                    ((i as u8, i as u8 + 2), (j as u8, j as u8 + 1))
                };
                out.push(Edge {
                    a,
                    b,
                    sim: 1.0,
                    kind: MatchKind::Joined,
                    weight: w,
                });
            }
        }
    }
}

/// Person rules: an initial ("J") corresponds to a word it starts ("John"); dotted initials
/// ("V.I.") to as many consecutive words ("Vladimir Ilyich").
fn initial_edges(one: &[PTok], many: &[PTok], one_is_a: bool, out: &mut Vec<Edge>) {
    for (j, init) in one.iter().enumerate() {
        if !init.initial {
            continue;
        }
        let letters = init.text.as_bytes();
        for i in 0..many.len() {
            let n = letters.len();
            if i + n > many.len() {
                break;
            }
            let run = &many[i..i + n];
            let spelled = run
                .iter()
                .zip(letters)
                .all(|(t, &l)| !t.initial && t.text.len() > 1 && t.text.as_bytes()[0] == l);
            if !spelled {
                continue;
            }
            let w = span_weight(many, i, i + n).min(init.weight);
            let (a, b) = if one_is_a {
                ((j as u8, j as u8 + 1), (i as u8, (i + n) as u8))
            } else {
                ((i as u8, (i + n) as u8), (j as u8, j as u8 + 1))
            };
            out.push(Edge {
                a,
                b,
                sim: INITIAL_SIM,
                kind: MatchKind::Initial,
                weight: w,
            });
        }
    }
}

/// The words of `toks` no correspondence used (no allocation: align runs millions of times).
fn left_over(toks: &[PTok], used: u64) -> impl Iterator<Item = &PTok> + Clone {
    toks.iter()
        .enumerate()
        .filter(move |(i, _)| used & (1u64 << i) == 0)
        .map(|(_, t)| t)
}

/// [`align_with`] under organisation rules (the index tests' reference).
#[cfg(test)]
pub(crate) fn align(a: &PreparedName, b: &PreparedName) -> Alignment {
    align_with(a, b, Rules::Organization)
}

/// Aligns two names greedily, best correspondences first, each word used at most once, and
/// scores the result as a weighted Dice coefficient with a substitution term:
/// `Σ 2·sim·w / (Σ 2·w + U_a + U_b + min(C_a, C_b))`, where U are the costs of the words left
/// over on each side and C the same words weighed as a substitution. Under organisation rules
/// a distinctive word left over costs more, and one shared word is never enough; under person
/// rules a name that leaves out words of the other (and nothing else) is only lightly charged.
pub(crate) fn align_with(a: &PreparedName, b: &PreparedName, rules: Rules) -> Alignment {
    let (at, bt) = (&a.toks, &b.toks);
    let mut edges: Vec<Edge> = Vec::new();
    for (i, x) in at.iter().enumerate() {
        for (j, y) in bt.iter().enumerate() {
            if let Some((sim, kind)) = token_sim(x, y, rules) {
                edges.push(Edge {
                    a: (i as u8, i as u8 + 1),
                    b: (j as u8, j as u8 + 1),
                    sim,
                    kind,
                    weight: x.weight.min(y.weight),
                });
            }
        }
    }
    joined_edges(bt, at, false, &mut edges);
    joined_edges(at, bt, true, &mut edges);
    if rules == Rules::Person {
        initial_edges(at, bt, true, &mut edges);
        initial_edges(bt, at, false, &mut edges);
        reversed_pair_edges(at, bt, true, &mut edges);
        reversed_pair_edges(bt, at, false, &mut edges);
    }
    edges.sort_by(|x, y| {
        y.sim
            .total_cmp(&x.sim)
            .then(y.weight.total_cmp(&x.weight))
            .then(x.a.cmp(&y.a))
            .then(x.b.cmp(&y.b))
    });
    let (mut a_used, mut b_used) = (0u64, 0u64);
    let mut chosen = Vec::new();
    for e in edges {
        let ma = mask(e.a.0 as usize, e.a.1 as usize);
        let mb = mask(e.b.0 as usize, e.b.1 as usize);
        if a_used & ma == 0 && b_used & mb == 0 {
            a_used |= ma;
            b_used |= mb;
            chosen.push(e);
        }
    }
    let mut num = 0.0;
    let mut den = 0.0;
    for e in &chosen {
        num += 2.0 * e.sim * e.weight;
        den += 2.0 * e.weight;
    }
    let (left_a, left_b) = (left_over(at, a_used), left_over(bt, b_used));
    let (mut ua, mut ub): (f64, f64) = (
        left_a.clone().map(|t| t.unmatched_cost(rules)).sum(),
        left_b.clone().map(|t| t.unmatched_cost(rules)).sum(),
    );
    let essential_a = left_a.clone().any(|t| !t.optional);
    let essential_b = left_b.clone().any(|t| !t.optional);
    let capped = match rules {
        Rules::Person => {
            // A family name alone ("Putin" for "Vladimir Putin") is a lead, not an alert.
            let capped = chosen.len() == 1 && (essential_a || essential_b);
            if chosen.len() >= 2 {
                if !essential_b {
                    ua *= PERSON_OMISSION_FACTOR;
                }
                if !essential_a {
                    ub *= PERSON_OMISSION_FACTOR;
                }
            }
            capped
        }
        Rules::Organization => {
            let matched_max = chosen.iter().map(|e| e.weight).fold(0.0, f64::max);
            // A place left over costs half (registers drop the city), unless it is the name's
            // rarest word: "Public Security Bureau" is not the Xinjiang one.
            let extra = |t: &PTok| -> f64 {
                if t.distinctive(matched_max) {
                    t.weight * MISSING_DISTINCTIVE_FACTOR - t.unmatched_cost(rules)
                } else {
                    0.0
                }
            };
            ua += left_a.clone().map(extra).sum::<f64>();
            ub += left_b.clone().map(extra).sum::<f64>();
            chosen.len() == 1
                && left_a
                    .clone()
                    .chain(left_b.clone())
                    .any(|t| t.distinctive(matched_max))
        }
    };
    den += ua + ub;
    // Words left over on *both* sides are a substitution ("Shanghai" for "Beijing",
    // "Technology" for "Communications"): evidence of a different entity, which an omission on
    // one side is not. It can only lower a score, which keeps the index's bound valid.
    let conflict_a: f64 = left_a.map(|t| t.conflict_weight(rules)).sum();
    let conflict_b: f64 = left_b.map(|t| t.conflict_weight(rules)).sum();
    den += conflict_a.min(conflict_b);
    let mut score = if den > 0.0 {
        (num / den).clamp(0.0, 1.0)
    } else {
        0.0
    };
    if capped {
        score = score.min(SINGLE_WORD_CAP);
    }
    Alignment {
        edges: chosen,
        a_used,
        b_used,
        score,
    }
}

/// One pair of corresponding words in an explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenMatch {
    pub query: String,
    pub listed: String,
    pub kind: MatchKind,
    pub similarity: f64,
    pub weight: f64,
}

/// A word without counterpart, with the weight it cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnmatchedToken {
    pub token: String,
    pub weight: f64,
    pub optional: bool,
}

/// What the countries said.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "evidence", rename_all = "snake_case")]
pub enum CountryEvidence {
    /// The supplier's country, or the entry's, is not known.
    Unknown,
    Same {
        country: String,
    },
    Different {
        query: String,
        listed: Vec<String>,
    },
}

/// Which rules a score was computed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RulesApplied {
    Person,
    Organization,
    /// The two names are of kinds that never name the same party (a person and a company):
    /// the score is 0 whatever the words.
    KindMismatch,
}

/// Why a score is what it is. "Query" is the supplier side (or the first name of a pair),
/// "listed" the Entity List side (or the second name).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub score: f64,
    pub name_score: f64,
    /// The supplier name or alias that scored best, as given.
    pub query_name: String,
    /// The listed name or alias it matched, as listed.
    pub listed_name: String,
    pub listed_name_is_alias: bool,
    pub matched: Vec<TokenMatch>,
    pub unmatched_query: Vec<UnmatchedToken>,
    pub unmatched_listed: Vec<UnmatchedToken>,
    /// Legal forms dropped before comparing, from either side.
    pub ignored_legal_forms: Vec<String>,
    pub country: CountryEvidence,
    pub country_adjustment: f64,
    pub rules: RulesApplied,
}

impl Explanation {
    pub(crate) fn build(
        query_name: &str,
        listed_name: &str,
        listed_name_is_alias: bool,
        a: &PreparedName,
        b: &PreparedName,
        al: &Alignment,
    ) -> Self {
        let join = |toks: &[PTok], lo: u8, hi: u8| -> String {
            toks[lo as usize..hi as usize]
                .iter()
                .map(|t| &*t.text)
                .collect::<Vec<_>>()
                .join(" ")
        };
        let mut edges = al.edges.clone();
        edges.sort_by_key(|e| e.a);
        let other_script = !query_name.is_ascii() || !listed_name.is_ascii();
        let matched = edges
            .iter()
            .map(|e| TokenMatch {
                query: join(&a.toks, e.a.0, e.a.1),
                listed: join(&b.toks, e.b.0, e.b.1),
                kind: explained_kind(e, a, b, other_script),
                similarity: e.sim,
                weight: e.weight,
            })
            .collect();
        let unmatched = |toks: &[PTok], used: u64| -> Vec<UnmatchedToken> {
            toks.iter()
                .enumerate()
                .filter(|(i, _)| used & (1u64 << i) == 0)
                .map(|(_, t)| UnmatchedToken {
                    token: t.text.to_string(),
                    weight: t.unmatched_weight(),
                    optional: t.optional,
                })
                .collect()
        };
        let mut legal: Vec<String> = a.legal_forms.clone();
        for f in &b.legal_forms {
            if !legal.contains(f) {
                legal.push(f.clone());
            }
        }
        Explanation {
            score: al.score,
            name_score: al.score,
            query_name: query_name.to_string(),
            listed_name: listed_name.to_string(),
            listed_name_is_alias,
            matched,
            unmatched_query: unmatched(&a.toks, al.a_used),
            unmatched_listed: unmatched(&b.toks, al.b_used),
            ignored_legal_forms: legal,
            country: CountryEvidence::Unknown,
            country_adjustment: 0.0,
            rules: RulesApplied::Organization,
        }
    }

    pub(crate) fn with_rules(mut self, rules: Option<Rules>) -> Self {
        self.rules = match rules {
            Some(Rules::Person) => RulesApplied::Person,
            Some(Rules::Organization) => RulesApplied::Organization,
            None => RulesApplied::KindMismatch,
        };
        self
    }

    pub(crate) fn with_country(mut self, evidence: CountryEvidence, adjustment: f64) -> Self {
        self.score = (self.name_score + adjustment).clamp(0.0, 1.0);
        self.country = evidence;
        self.country_adjustment = adjustment;
        self
    }
}

/// What an exact correspondence was, for a person reading the explanation: the same number
/// spelled otherwise, the same word after a fold, or the same word once transliterated.
fn explained_kind(e: &Edge, a: &PreparedName, b: &PreparedName, other_script: bool) -> MatchKind {
    if e.kind != MatchKind::Exact || e.a.1 - e.a.0 != 1 || e.b.1 - e.b.0 != 1 {
        return e.kind;
    }
    let (x, y) = (&a.toks[e.a.0 as usize], &b.toks[e.b.0 as usize]);
    if x.surface() != y.surface() {
        if x.text.bytes().all(|c| c.is_ascii_digit()) {
            MatchKind::Number
        } else {
            MatchKind::Variant
        }
    } else if other_script {
        MatchKind::Transliterated
    } else {
        MatchKind::Exact
    }
}

impl fmt::Display for Explanation {
    /// One line: score, the two names, each correspondence as `query=listed(sim×weight)`, the
    /// words left over, and the country evidence.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:.3} {:?} vs {:?}{}:",
            self.score,
            self.query_name,
            self.listed_name,
            if self.listed_name_is_alias {
                " (alias)"
            } else {
                ""
            }
        )?;
        for m in &self.matched {
            write!(
                f,
                " {}{}{}({:.2}×{:.1})",
                m.query,
                m.kind.symbol(),
                m.listed,
                m.similarity,
                m.weight
            )?;
        }
        let list = |v: &[UnmatchedToken]| -> String {
            v.iter()
                .map(|u| format!("{}({:.1})", u.token, u.weight))
                .collect::<Vec<_>>()
                .join(" ")
        };
        if !self.unmatched_query.is_empty() {
            write!(f, "; only query: {}", list(&self.unmatched_query))?;
        }
        if !self.unmatched_listed.is_empty() {
            write!(f, "; only listed: {}", list(&self.unmatched_listed))?;
        }
        if !self.ignored_legal_forms.is_empty() {
            write!(
                f,
                "; legal forms folded: {}",
                self.ignored_legal_forms.join(" ")
            )?;
        }
        if self.rules == RulesApplied::KindMismatch {
            write!(f, "; a person never matches an organisation")?;
        }
        match &self.country {
            CountryEvidence::Unknown => {}
            CountryEvidence::Same { country } => {
                write!(f, "; country {country} ({:+.2})", self.country_adjustment)?
            }
            CountryEvidence::Different { query, listed } => write!(
                f,
                "; country {query}≠{} ({:+.2})",
                listed.join("/"),
                self.country_adjustment
            )?,
        }
        Ok(())
    }
}

/// A pairwise score with its verdict at [`DEFAULT_THRESHOLD`] and its explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub value: f64,
    pub is_match: bool,
    pub explanation: Explanation,
}

/// Scores two names of unknown kind with the built-in word weights, without country
/// evidence: the pairwise form the `match --pairs` command uses for a file without a `schema`
/// column. Person rules apply when both names look like persons' names.
pub fn score_pair(a: &str, b: &str) -> Score {
    score_pair_typed(a, b, None)
}

/// [`score_pair`] with the caller's word weights.
pub fn score_pair_with(a: &str, b: &str, weights: &TokenWeights) -> Score {
    score_pair_typed_with(a, b, None, weights)
}

/// Scores two names of the given kind (both names name a party of that kind; `None` when the
/// kind is not known) with the built-in word weights.
pub fn score_pair_typed(a: &str, b: &str, schema: Option<Schema>) -> Score {
    score_pair_typed_with(a, b, schema, TokenWeights::builtin())
}

/// [`score_pair_typed`] with the caller's word weights.
pub fn score_pair_typed_with(
    a: &str,
    b: &str,
    schema: Option<Schema>,
    weights: &TokenWeights,
) -> Score {
    let pa = PreparedName::from_raw(a, weights);
    let pb = PreparedName::from_raw(b, weights);
    let rules = pair_rules(schema, &pa, &pb);
    let al = match rules {
        Some(r) => align_with(&pa, &pb, r),
        None => Alignment {
            edges: Vec::new(),
            a_used: 0,
            b_used: 0,
            score: 0.0,
        },
    };
    let explanation = Explanation::build(a, b, false, &pa, &pb, &al).with_rules(rules);
    Score {
        value: al.score,
        is_match: al.score >= DEFAULT_THRESHOLD,
        explanation,
    }
}

/// The rules for a pair of one stated kind: a "person" with a legal form on one side only is a
/// company named after a person, which never matches the person.
pub(crate) fn pair_rules(
    schema: Option<Schema>,
    a: &PreparedName,
    b: &PreparedName,
) -> Option<Rules> {
    match schema {
        Some(Schema::Person) => {
            (a.legal_forms.is_empty() == b.legal_forms.is_empty()).then_some(Rules::Person)
        }
        Some(_) => Some(Rules::Organization),
        None => Some(if a.person_like && b.person_like {
            Rules::Person
        } else {
            Rules::Organization
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_names_score_one_and_disjoint_zero() {
        assert_eq!(score_pair("Hikvision", "HIKVISION").value, 1.0);
        assert_eq!(score_pair("Hikvision", "Dahua").value, 0.0);
        assert_eq!(score_pair("", "Dahua").value, 0.0);
    }

    #[test]
    fn score_is_symmetric() {
        for (a, b) in [
            ("Hik Vision Digital", "Hikvision Digital Technology"),
            ("Mohammad Reza Ahmadi", "Ahmadi, Muhammad Reza"),
            (
                "Beijing Huada Jiutian",
                "Shanghai Huada Jiutian Information",
            ),
        ] {
            let x = score_pair(a, b).value;
            let y = score_pair(b, a).value;
            assert!((x - y).abs() < 1e-12, "{a} / {b}: {x} vs {y}");
        }
    }

    #[test]
    fn typo_costs_little() {
        let s = score_pair("Iqra Computer Proucts", "Iqra Computer Products");
        assert!(s.value > 0.9 && s.value < 1.0, "{}", s.explanation);
        assert_eq!(s.explanation.matched[2].kind, MatchKind::Typo);
    }

    #[test]
    fn joined_and_split_words_match() {
        let s = score_pair("Hik Vision", "Hikvision");
        assert_eq!(s.value, 1.0, "{}", s.explanation);
        assert_eq!(s.explanation.matched[0].kind, MatchKind::Joined);
        assert!(
            score_pair(
                "Anhui Sun-Create Electronics",
                "ANHUI SUNCREATE ELECTRONICS"
            )
            .is_match
        );
    }

    #[test]
    fn numbers_match_exactly_or_not_at_all() {
        assert!(!score_pair("706th Research Institute", "707th Research Institute").is_match);
        assert!(score_pair("706th Research Institute", "706 Research Inst").is_match);
    }

    #[test]
    fn explanation_serialises_and_renders() {
        let s = score_pair("HUAWEI TECH CO LTD", "Huawei Technologies Co., Ltd.");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["explanation"]["matched"][0]["kind"], "exact");
        assert_eq!(json["explanation"]["country"]["evidence"], "unknown");
        let line = s.explanation.to_string();
        assert!(!line.contains('\n'));
        assert!(line.contains("huawei=huawei"), "{line}");
        assert!(line.contains("technology≡technology"), "{line}");
    }
}
