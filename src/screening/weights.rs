//! Word weights: how much evidence sharing a word is, as inverse document frequency over the
//! listed names and aliases ("Technology", "Research", "Institute" are in hundreds of entries and
//! weigh little; "Hikvision" is in one and weighs most).
//!
//! Built from whatever names the caller hands over (the Screener's entries) or from the built-in
//! table for pairwise scoring; never from a file or the network, and never updated in place, so
//! that the same two names always get the same score from the same corpus.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::common_words::{COMMON_WORDS, COMMON_WORDS_DOCS};
use super::normalise::NormalisedName;

/// The lightest a word can weigh: even the commonest word is some evidence when it is all two
/// names share, and a zero weight would let a name of only common words match anything.
const MIN_WEIGHT: f64 = 0.25;

/// The most a single letter weighs: an initial ("K.ARMA", "M&P", a truncated "OJSC" → "O")
/// narrows little, however rare the letter is in the list.
pub(crate) const INITIAL_WEIGHT: f64 = 2.5;

/// FNV-1a for the word table: looked up for every word of every supplier, where SipHash's
/// resistance to crafted keys buys nothing (the keys are our own corpus).
#[derive(Default)]
pub(crate) struct FnvHasher(u64);

impl Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

type WordMap = HashMap<Box<str>, u32, BuildHasherDefault<FnvHasher>>;

/// Document frequencies of folded words over a corpus of names.
#[derive(Debug, Clone)]
pub struct TokenWeights {
    df: WordMap,
    /// Of those names, how many are persons' (the built-in table only).
    person_df: WordMap,
    docs: u32,
}

/// A word in at least this many names has a reliable person share.
const PERSON_EVIDENCE_MIN_DF: u32 = 3;

impl TokenWeights {
    /// Counts each word once per name it appears in.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a NormalisedName>) -> Self {
        let mut df = WordMap::default();
        let mut docs = 0u32;
        let mut seen: Vec<&str> = Vec::new();
        for name in names {
            docs += 1;
            seen.clear();
            for t in &name.tokens {
                if !seen.contains(&t.text.as_str()) {
                    seen.push(t.text.as_str());
                    *df.entry(t.text.as_str().into()).or_insert(0) += 1;
                }
            }
        }
        TokenWeights {
            df,
            person_df: WordMap::default(),
            docs,
        }
    }

    /// Weights from the built-in table of common Entity List words (see `common_words.rs`),
    /// for scoring two names without a corpus at hand. Words absent from the table are rare.
    pub fn builtin() -> &'static TokenWeights {
        static BUILTIN: std::sync::OnceLock<TokenWeights> = std::sync::OnceLock::new();
        BUILTIN.get_or_init(|| TokenWeights {
            df: COMMON_WORDS
                .iter()
                .map(|(w, n, _)| ((*w).into(), *n))
                .collect(),
            person_df: COMMON_WORDS
                .iter()
                .filter(|(_, _, p)| *p > 0)
                .map(|(w, _, p)| ((*w).into(), *p))
                .collect(),
            docs: COMMON_WORDS_DOCS,
        })
    }

    /// Whether a name reads as a person's: no legal form, two to six words of letters only, and
    /// its words that the table knows well are mostly words of persons' names ("Mohammad",
    /// "Viktorovich"), none mostly an organisation's ("Trading", "Institute").
    pub(crate) fn looks_like_person(&self, name: &super::score::PreparedName) -> bool {
        if !name.legal_forms.is_empty() || !(2..=6).contains(&name.toks.len()) {
            return false;
        }
        let mut personal = false;
        for t in &name.toks {
            if !t.text.bytes().all(|c| c.is_ascii_alphabetic()) {
                return false;
            }
            let df = self.document_frequency(&t.text);
            if df < PERSON_EVIDENCE_MIN_DF || t.initial {
                continue;
            }
            let share =
                f64::from(self.person_df.get(&*t.text).copied().unwrap_or(0)) / f64::from(df);
            if share < 0.4 {
                return false;
            }
            personal |= share >= 0.75;
        }
        personal
    }

    /// Weights of every corpus word keyed by the FNV hash of the word, for callers that hold
    /// hashes rather than words (the supplier index's bound).
    pub(crate) fn by_hash(&self) -> HashMap<u64, f64> {
        self.df
            .keys()
            .map(|w| (super::score::fnv(w.as_bytes()), self.weight(w)))
            .collect()
    }

    pub fn docs(&self) -> u32 {
        self.docs
    }

    pub fn document_frequency(&self, token: &str) -> u32 {
        self.df.get(token).copied().unwrap_or(0)
    }

    /// The weight of a word: `ln((N + 1) / (df + 0.5))`, a word never seen weighing the most.
    pub fn weight(&self, token: &str) -> f64 {
        let df = f64::from(self.document_frequency(token));
        let n = f64::from(self.docs.max(1));
        let w = ((n + 1.0) / (df + 0.5)).ln().max(MIN_WEIGHT);
        if token.len() == 1 && !token.as_bytes()[0].is_ascii_digit() {
            w.min(INITIAL_WEIGHT)
        } else {
            w
        }
    }

    /// All (word, document frequency) pairs with at least `min_df` documents, most frequent
    /// first: the input of the built-in table generator.
    pub fn frequent(&self, min_df: u32) -> Vec<(&str, u32)> {
        let mut v: Vec<(&str, u32)> = self
            .df
            .iter()
            .filter(|(_, n)| **n >= min_df)
            .map(|(w, n)| (&**w, *n))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v
    }

    /// The corpus's document frequency of a word among persons' names only (0 unless the
    /// weights know which names are persons').
    pub fn person_frequency(&self, token: &str) -> u32 {
        self.person_df.get(token).copied().unwrap_or(0)
    }

    /// [`TokenWeights::from_names`] for names whose kind is known, counting persons' names
    /// apart as well: the built-in table's generator.
    pub fn from_typed_names<'a>(
        names: impl IntoIterator<Item = (&'a NormalisedName, bool)>,
    ) -> Self {
        let mut df = WordMap::default();
        let mut person_df = WordMap::default();
        let mut docs = 0u32;
        let mut seen: Vec<&str> = Vec::new();
        for (name, person) in names {
            docs += 1;
            seen.clear();
            for t in &name.tokens {
                if !seen.contains(&t.text.as_str()) {
                    seen.push(t.text.as_str());
                    *df.entry(t.text.as_str().into()).or_insert(0) += 1;
                    if person {
                        *person_df.entry(t.text.as_str().into()).or_insert(0) += 1;
                    }
                }
            }
        }
        TokenWeights {
            df,
            person_df,
            docs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::screening::normalise::normalise;

    #[test]
    fn rare_words_weigh_more_than_common_ones() {
        let names: Vec<NormalisedName> = [
            "Alpha Technology",
            "Beta Technology",
            "Gamma Technology",
            "Hikvision Digital Technology",
        ]
        .iter()
        .map(|n| normalise(n))
        .collect();
        let w = TokenWeights::from_names(&names);
        assert!(w.weight("hikvision") > w.weight("technology") * 2.0);
        assert!(w.weight("neverseen") > w.weight("hikvision"));
    }

    #[test]
    fn builtin_knows_the_common_list_words() {
        let w = TokenWeights::builtin();
        assert!(w.docs() > 1000);
        for common in ["technology", "research", "institute"] {
            assert!(w.weight(common) < 0.6 * w.weight("hikvision"), "{common}");
        }
    }
}
