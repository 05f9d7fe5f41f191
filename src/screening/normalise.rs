//! Name normalisation: turns a name as any register writes it into the folded words the scorer
//! compares, so that spelling differences which never change *who* is named (script, case,
//! punctuation, legal form, abbreviation, number spelling, plural) disappear before scoring.
//!
//! Pure functions over strings: this file must never read a file, hold global mutable state, or
//! decide whether two names match (that is `score`'s job). Every rule here applies to both sides
//! of a comparison alike, which is what makes a rule safe: a fold can only merge spellings, so a
//! rule must never merge two words that name different things ("Hunan" and "Henan" stay apart).

use unicode_normalization::UnicodeNormalization;

use super::legal_forms::{ELF_END_WORDS, ELF_PHRASES};
use super::lexicon::{
    abbreviation, is_stopword, number_word, spelling_variant, AMBIGUOUS_LEGAL_FORMS,
    AMBIGUOUS_LEGAL_FORMS_FIRST, BRANCH_WORDS, CJK_WORDS, FUZZY_LEGAL_MIN_LEN, INITIALISMS,
    INITIALISM_EXPANSIONS, LEGAL_FORMS, NUMBER_MARKERS, ORDINAL_SUFFIXES, PATRONYMIC_ENDINGS,
    PINYIN_WORDS, PLACES,
};

/// One word of a normalised name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormToken {
    /// Lowercase ASCII letters and digits only, after every fold: what words are compared by.
    pub text: String,
    /// The word as written (lowercase ASCII) before number, abbreviation and plural folds: typos
    /// and joined words are judged on it ("Industral" is one letter from "Industrial", not from
    /// "industry"; "Trans-Flot" joins to "transflot", not "tranflot").
    pub surface: String,
    /// Inside parentheses or part of a branch qualifier: supporting detail ("(CETC)",
    /// "(Shenzhen Branch)") whose absence on the other side must not break a match.
    pub optional: bool,
    /// Written as dotted initials ("V.I." → `vi`): never a roman numeral, and a person's
    /// initials may stand for several of the other name's words.
    pub initials: bool,
}

impl NormToken {
    pub fn is_numeric(&self) -> bool {
        is_numeric(&self.text)
    }
}

/// A name after normalisation: the words that identify, and the legal forms that were removed
/// (kept for the explanation only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NormalisedName {
    pub tokens: Vec<NormToken>,
    pub legal_forms: Vec<String>,
}

impl NormalisedName {
    /// The identifying words joined by spaces, e.g. for logs and explanations.
    pub fn text(&self) -> String {
        let words: Vec<&str> = self.tokens.iter().map(|t| t.text.as_str()).collect();
        words.join(" ")
    }
}

pub fn is_numeric(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Normalises a name: Unicode folding and transliteration, punctuation and case folding, number
/// words, abbreviations, plurals, legal forms and stopwords, in that order.
pub fn normalise(raw: &str) -> NormalisedName {
    let tokens = words_before_legal_forms(raw);
    let (mut tokens, legal_forms) = strip_legal_forms(tokens);
    if tokens.iter().any(|t| !is_stopword(&t.text)) {
        tokens.retain(|t| !is_stopword(&t.text));
    }
    let mut tokens = fold_initialisms(tokens);
    mark_optional(&mut tokens);
    NormalisedName {
        tokens,
        legal_forms,
    }
}

/// The folded words of a name before legal forms and stopwords go: what the legal-form table
/// generator folds the ISO 20275 names with, so that table and names speak the same words.
pub(crate) fn words_before_legal_forms(raw: &str) -> Vec<NormToken> {
    let ascii = glue_single_characters(&to_ascii(&split_camel_case(raw)));
    let pieces = split_digits(split_pieces(&ascii));
    let mut tokens = fold_numbers(pieces);
    for t in &mut tokens {
        t.text = fold_word(&t.text);
    }
    tokens
}

/// "Plant2", "SMU5", "MiG29" → a word and a number: registers write the number glued, spaced
/// or hyphenated, and the number is what identifies. Ordinals ("54th", "5y") are left to
/// [`fold_numbers`], codes with several letter/digit runs ("A1B2") stay one word.
fn split_digits(pieces: Vec<NormToken>) -> Vec<NormToken> {
    let mut out = Vec::with_capacity(pieces.len());
    for t in pieces {
        let b = t.text.as_bytes();
        let boundary = |w: &[u8]| w[0].is_ascii_digit() != w[1].is_ascii_digit();
        let boundaries = b.windows(2).filter(|w| boundary(w)).count();
        if boundaries != 1 || t.initials || ordinal_digits(&t.text).is_some() {
            out.push(t);
            continue;
        }
        let at = b.windows(2).position(boundary).map_or(0, |p| p + 1);
        let (x, y) = t.text.split_at(at);
        for part in [x, y] {
            out.push(NormToken {
                text: part.to_string(),
                surface: part.to_string(),
                optional: t.optional,
                initials: false,
            });
        }
    }
    out
}

/// Country names to their short form ([`INITIALISMS`]): "United Kingdom" → `uk`; generic
/// initialisms to their expansion ([`INITIALISM_EXPANSIONS`]): "PRC" → `people republic
/// china`; pinyin words to their translation ([`PINYIN_WORDS`]).
fn fold_initialisms(tokens: Vec<NormToken>) -> Vec<NormToken> {
    type Phrases = Vec<(Vec<&'static str>, &'static str)>;
    static PHRASES: std::sync::OnceLock<Phrases> = std::sync::OnceLock::new();
    let phrases = PHRASES.get_or_init(|| {
        let mut p: Phrases = INITIALISMS
            .iter()
            .chain(PINYIN_WORDS)
            .chain(INITIALISM_EXPANSIONS)
            .map(|(long, short)| (long.split(' ').collect(), *short))
            .collect();
        p.sort_by_key(|(w, _)| std::cmp::Reverse(w.len()));
        p
    });
    let mut out: Vec<NormToken> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let hit = phrases.iter().find(|(words, _)| {
            i + words.len() <= tokens.len()
                && words.iter().zip(&tokens[i..]).all(|(w, t)| *w == t.text)
        });
        match hit {
            Some((words, short)) => {
                let span = &tokens[i..i + words.len()];
                let surface: String = span.iter().map(|t| t.surface.as_str()).collect();
                let optional = span.iter().all(|t| t.optional);
                // A fold may stand for two words ("yanjiusuo" → research institute).
                for word in short.split(' ') {
                    out.push(NormToken {
                        text: word.to_string(),
                        surface: surface.clone(),
                        optional,
                        initials: false,
                    });
                }
                i += words.len();
            }
            None => {
                out.push(tokens[i].clone());
                i += 1;
            }
        }
    }
    out
}

/// NFKC, then Latin transliteration, leaving only ASCII. Pure-ASCII input (most supplier
/// masters) skips the Unicode machinery, which matters when a million names are screened.
pub fn to_ascii(raw: &str) -> String {
    if raw.is_ascii() {
        return raw.to_string();
    }
    let mut s: String = raw.nfkc().collect();
    // ISO 9 writes щ as ŝ, a letter no Latin orthography in use has: spell it as the other
    // systems do before accents are dropped, so "Ŝit" meets "Shchit".
    if s.contains(['ŝ', 'Ŝ']) {
        s = s.replace('ŝ', "shch").replace('Ŝ', "Shch");
    }
    if s.chars().any(is_cjk) {
        for (word, english) in CJK_WORDS {
            if s.contains(word) {
                s = s.replace(word, english);
            }
        }
        s = chinese_numerals(&s);
    }
    let chars: Vec<char> = s.nfkd().collect();
    let mut out = String::with_capacity(s.len() + 8);
    let mut prev_cjk = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii() {
            out.push(c);
            prev_cjk = false;
        } else if is_combining(c) {
            // Accents only decorate a Latin letter ("Müller", "Şirketi"); drop them.
        } else if is_arabic_letter(c) {
            // The article ال is written joined to its noun but transliterated "al-": split it so
            // "الستار" meets "Al Sattar" / "Sattar" word by word.
            let at_word_start = i == 0 || !is_arabic_letter(chars[i - 1]);
            if at_word_start && c == '\u{0627}' && chars.get(i + 1) == Some(&'\u{0644}') {
                out.push_str("al ");
                i += 2;
                continue;
            }
            out.push_str(any_ascii::any_ascii_char(c));
            prev_cjk = false;
        } else if is_cjk(c) {
            // Consecutive ideographs form one word (pinyin of a place or brand is written
            // joined: 北京 → "beijing"); a run starting after Latin text starts a new word.
            if !prev_cjk
                && out
                    .chars()
                    .last()
                    .is_some_and(|p| p.is_ascii_alphanumeric())
            {
                out.push(' ');
            }
            out.push_str(any_ascii::any_ascii_char(c));
            prev_cjk = true;
        } else {
            out.push_str(any_ascii::any_ascii_char(c));
            prev_cjk = false;
        }
        i += 1;
    }
    out
}

fn is_combining(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

fn is_arabic_letter(c: char) -> bool {
    matches!(c as u32, 0x0620..=0x064A | 0x066E..=0x06D3 | 0x06FA..=0x06FF)
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// "第五十四" → " 54 ": Chinese numerals in names are institute numbers and must compare as the
/// digits the English rendering uses.
fn chinese_numerals(s: &str) -> String {
    fn digit(c: char) -> Option<u32> {
        "零一二三四五六七八九"
            .chars()
            .position(|d| d == c)
            .map(|p| p as u32)
            .or(if c == '〇' { Some(0) } else { None })
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let start = if chars[i] == '第' { i + 1 } else { i };
        let mut j = start;
        while j < chars.len() && (digit(chars[j]).is_some() || matches!(chars[j], '十' | '百')) {
            j += 1;
        }
        // A lone numeral inside a word ("一" in a brand) stays text; a numeral run after 第 or
        // of two characters or more is a number.
        if j > start && (chars[i] == '第' || j - start >= 2) {
            let mut total = 0u32;
            let mut current = 0u32;
            for &c in &chars[start..j] {
                match c {
                    '十' => {
                        total += current.max(1) * 10;
                        current = 0;
                    }
                    '百' => {
                        total += current.max(1) * 100;
                        current = 0;
                    }
                    c => current = current * 10 + digit(c).unwrap_or(0),
                }
            }
            total += current;
            out.push_str(&format!(" {total} "));
            i = j;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// "M&P", "K-SOFT", "SMU-5", "A-K-S", "R&D", "K.ARMA": a compound with a one-character part is
/// one word written with a separator ("MP", "KSOFT"), so the separators go. Compounds of longer parts
/// ("Sun-Create", "Air-to-Air") stay separate words, and the scorer joins them when needed.
fn glue_single_characters(ascii: &str) -> String {
    let b = ascii.as_bytes();
    let is_part = |c: u8| c.is_ascii_alphanumeric();
    let is_glue = |c: u8| c == b'-' || c == b'&' || c == b'+' || c == b'.';
    let mut out = String::with_capacity(ascii.len());
    let mut i = 0;
    while i < b.len() {
        if !is_part(b[i]) {
            out.push(b[i] as char);
            i += 1;
            continue;
        }
        // A compound: parts separated by single glue characters, no spaces.
        let start = i;
        let mut end = i;
        let mut short_part = false;
        let mut parts = 0;
        loop {
            let p = end;
            while end < b.len() && is_part(b[end]) {
                end += 1;
            }
            parts += 1;
            short_part |= end - p == 1;
            if end + 1 < b.len() && is_glue(b[end]) && is_part(b[end + 1]) {
                end += 1;
            } else {
                break;
            }
        }
        let compound = &ascii[start..end];
        // A dot glues letters only ("K.ARMA", "R.Ye", "L.L.C"), never a number ("No.2").
        let dotted = compound.contains('.');
        let alphabetic = compound
            .bytes()
            .all(|c| c.is_ascii_alphabetic() || is_glue(c));
        // Dotted initials only ("V.I.", "U.S.A."): left to `split_pieces`, which merges them and
        // remembers they were initials.
        let initials_only = dotted
            && compound
                .split('.')
                .all(|p| p.len() == 1 && p.bytes().all(|c| c.is_ascii_alphabetic()));
        if parts > 1 && short_part && (!dotted || alphabetic) && !initials_only {
            out.extend(compound.chars().filter(|c| !is_glue(*c as u8)));
        } else {
            out.push_str(compound);
        }
        i = end;
    }
    out
}

/// "RheinmetallAG" → "Rheinmetall AG", "HuaweiLtd" → "Huawei Ltd": a legal form glued to the
/// name, marked by its capital. Only a legal form is split off: "HuaWei" and "OpenLab" stay one
/// word (the scorer joins "Hua Wei" to it), which keeps a typo in them ("Openab") one typo.
fn split_camel_case(raw: &str) -> String {
    let b: Vec<char> = raw.chars().collect();
    if !b.iter().any(char::is_ascii_lowercase) || !b.iter().any(char::is_ascii_uppercase) {
        return raw.to_string();
    }
    let mut out = String::with_capacity(raw.len() + 4);
    let mut lower_run = 0usize;
    for i in 0..b.len() {
        let c = b[i];
        if i > 0 && c.is_ascii_uppercase() {
            let next_lower = b.get(i + 1).is_some_and(char::is_ascii_lowercase);
            let caps_to_end = {
                let rest = &b[i..];
                let n = rest.iter().take_while(|x| x.is_ascii_uppercase()).count();
                n >= 2 && rest.get(n).is_none_or(|x| !x.is_alphanumeric())
            };
            // After a lowercase run only: in "GosNIIOKhT" the capitals are an acronym's.
            if lower_run >= 2 && (next_lower || caps_to_end) {
                let rest: String = b[i..]
                    .iter()
                    .take_while(|x| x.is_ascii_alphanumeric())
                    .map(|x| x.to_ascii_lowercase())
                    .collect();
                if is_one_word_legal_form(&rest) {
                    out.push(' ');
                }
            }
        }
        out.push(c);
        if c.is_ascii_lowercase() {
            lower_run += 1;
        } else {
            lower_run = 0;
        }
    }
    out
}

/// Splits folded ASCII into lowercase words, merging dotted initials ("L.L.C." → `llc`,
/// "S.A." → `sa`) and noting which words sit inside parentheses.
fn split_pieces(ascii: &str) -> Vec<NormToken> {
    let mut out: Vec<NormToken> = Vec::new();
    let mut word = String::new();
    let mut depth = 0i32;
    // Whether the previous finished word was a single letter directly followed by '.'.
    let mut initial_run = false;
    let bytes = ascii.as_bytes();
    let flush = |word: &mut String, out: &mut Vec<NormToken>, depth: i32, initials: bool| {
        if !word.is_empty() {
            let text = std::mem::take(word);
            out.push(NormToken {
                surface: text.clone(),
                text,
                optional: depth > 0,
                initials,
            });
        }
    };
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => word.push(b.to_ascii_lowercase() as char),
            // Apostrophes join: "Xi'an" → "xian", "O'Brien" → "obrien", soft signs vanish.
            b'\'' | b'`' | b'"' => {}
            b'.' => {
                let single_letter = word.len() == 1 && word.as_bytes()[0].is_ascii_alphabetic();
                let next_is_initial = bytes.get(i + 1).is_some_and(|c| c.is_ascii_alphabetic())
                    && bytes.get(i + 2).is_none_or(|c| !c.is_ascii_alphanumeric());
                if single_letter && next_is_initial {
                    // Keep accumulating: the next letter joins this initial.
                    if initial_run {
                        if let Some(last) = out.pop() {
                            word.insert_str(0, &last.text);
                        }
                    }
                    initial_run = true;
                    flush(&mut word, &mut out, depth, true);
                } else if single_letter && initial_run {
                    if let Some(last) = out.pop() {
                        word.insert_str(0, &last.text);
                    }
                    initial_run = false;
                    flush(&mut word, &mut out, depth, true);
                } else {
                    initial_run = false;
                    flush(&mut word, &mut out, depth, single_letter);
                }
            }
            b'(' | b'[' | b'{' => {
                initial_run = false;
                flush(&mut word, &mut out, depth, false);
                depth += 1;
            }
            b')' | b']' | b'}' => {
                initial_run = false;
                flush(&mut word, &mut out, depth, false);
                depth = (depth - 1).max(0);
            }
            _ => {
                if !word.is_empty() {
                    let merged = initial_run && word.len() == 1;
                    if merged {
                        if let Some(last) = out.pop() {
                            word.insert_str(0, &last.text);
                        }
                    }
                    initial_run = false;
                    flush(&mut word, &mut out, depth, merged);
                }
            }
        }
        i += 1;
    }
    let merged = initial_run && word.len() == 1;
    if merged {
        if let Some(last) = out.pop() {
            word.insert_str(0, &last.text);
        }
    }
    flush(&mut word, &mut out, depth, merged);
    out
}

/// Number spellings: "first"/"1st"/"one" → `1`, "No. 2"/"Number Two" → `2`, "5-y" → `5`.
fn fold_numbers(pieces: Vec<NormToken>) -> Vec<NormToken> {
    let mut out: Vec<NormToken> = Vec::with_capacity(pieces.len());
    for mut t in pieces {
        if let Some(digits) = number_word(&t.text) {
            t.text = digits.to_string();
        } else if let Some(n) = ordinal_digits(&t.text) {
            t.text = n;
        }
        if is_numeric(&t.text) {
            if let Some(prev) = out.last() {
                if NUMBER_MARKERS.contains(&prev.text.as_str()) {
                    out.pop();
                }
            }
            // "Fifty-Fourth" is 54: a spelled ten followed by a spelled unit adds up.
            if let Some(prev) = out.last_mut() {
                let spelled = |x: &NormToken| number_word(&x.surface).is_some();
                if spelled(prev) && spelled(&t) && t.text.len() == 1 {
                    if let (Ok(tens), Ok(unit)) = (prev.text.parse::<u32>(), t.text.parse::<u32>())
                    {
                        if tens >= 20 && tens % 10 == 0 {
                            prev.text = (tens + unit).to_string();
                            prev.surface = format!("{}{}", prev.surface, t.surface);
                            continue;
                        }
                    }
                }
            }
        } else if ORDINAL_SUFFIXES.contains(&t.text.as_str())
            && out.last().is_some_and(|p| is_numeric(&p.text))
        {
            continue;
        }
        out.push(t);
    }
    out
}

/// "1st", "22nd", "54th", "5y" → the digits.
fn ordinal_digits(word: &str) -> Option<String> {
    let split = word.find(|c: char| !c.is_ascii_digit())?;
    let (digits, suffix) = word.split_at(split);
    (!digits.is_empty() && ORDINAL_SUFFIXES.contains(&suffix))
        .then(|| digits.trim_start_matches('0').to_string())
        .map(|d| if d.is_empty() { "0".to_string() } else { d })
}

/// Abbreviation and plural folding of one word. Plurals fold because registers disagree on
/// "Technology"/"Technologies" and "System"/"Systems" for the same entity; names that end in
/// -ss, -us, -is, -os, -as keep their final s ("Abbas", "Kronos", "Paris").
pub fn fold_word(word: &str) -> String {
    if let Some(full) = abbreviation(word).or_else(|| spelling_variant(word)) {
        return full.to_string();
    }
    let b = word.as_bytes();
    if b.len() >= 5 && word.ends_with("ies") {
        return format!("{}y", &word[..word.len() - 3]);
    }
    if b.len() >= 4
        && b[b.len() - 1] == b's'
        && b[..b.len() - 1].iter().all(|c| c.is_ascii_alphabetic())
        && !matches!(b[b.len() - 2], b's' | b'u' | b'i' | b'o' | b'a')
    {
        let singular = &word[..word.len() - 1];
        return abbreviation(singular).unwrap_or(singular).to_string();
    }
    word.to_string()
}

type Phrase = Vec<&'static str>;

/// Our own words hash with FNV (see `lexicon`): SipHash buys nothing against them.
type Fnv = std::hash::BuildHasherDefault<super::weights::FnvHasher>;

/// How freely a legal-form phrase may be removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Anywhere in a name ("Limited Liability Company", "GmbH").
    Anywhere,
    /// At either end only: one-word forms from the ISO list ("Aktiengesellschaft", "ZAT") and
    /// the hand-listed forms that open a name ("AO", "PT").
    Ends,
    /// Closing a name only: forms that are also initials or words ("AS", "SA", "AG").
    Last,
}

struct LegalPhrase {
    words: Phrase,
    placement: Placement,
}

/// Legal-form phrases by first word, longest first (so "company limited" wins over "company"),
/// and an index of the long first words by their one-deletion variants and skeletons, so a
/// misspelt or differently transliterated form ("Obshchestvo"/"Obshestvo") is found without
/// scanning thousands of phrases for every word of a million names.
struct LegalPhrases {
    phrases: Vec<LegalPhrase>,
    by_first: std::collections::HashMap<&'static str, Vec<u32>, Fnv>,
    fuzzy_first: std::collections::HashMap<u64, Vec<u32>, Fnv>,
}

fn legal_phrases() -> &'static LegalPhrases {
    static PHRASES: std::sync::OnceLock<LegalPhrases> = std::sync::OnceLock::new();
    PHRASES.get_or_init(|| {
        let placement_of = |words: &Phrase, generated_end_word: bool| {
            let one = words.len() == 1;
            if one && AMBIGUOUS_LEGAL_FORMS_FIRST.contains(&words[0]) {
                Placement::Ends
            } else if one && AMBIGUOUS_LEGAL_FORMS.contains(&words[0]) {
                Placement::Last
            } else if generated_end_word {
                Placement::Ends
            } else {
                Placement::Anywhere
            }
        };
        let mut all: Vec<LegalPhrase> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let sources = LEGAL_FORMS
            .iter()
            .map(|f| (*f, false))
            .chain(ELF_PHRASES.iter().map(|f| (*f, false)))
            .chain(ELF_END_WORDS.iter().map(|f| (*f, true)));
        for (form, end_word) in sources {
            if !seen.insert(form) {
                continue;
            }
            let words: Phrase = form.split(' ').collect();
            let placement = placement_of(&words, end_word);
            all.push(LegalPhrase { words, placement });
        }
        all.sort_by_key(|p| std::cmp::Reverse(p.words.len()));
        let mut by_first: std::collections::HashMap<&'static str, Vec<u32>, Fnv> =
            Default::default();
        let mut fuzzy_first: std::collections::HashMap<u64, Vec<u32>, Fnv> = Default::default();
        for (i, p) in all.iter().enumerate() {
            let first = p.words[0];
            by_first.entry(first).or_default().push(i as u32);
            if first.len() >= FUZZY_LEGAL_MIN_LEN {
                for key in fuzzy_keys(first) {
                    let v = fuzzy_first.entry(key).or_default();
                    if v.last() != Some(&(i as u32)) {
                        v.push(i as u32);
                    }
                }
            }
        }
        LegalPhrases {
            phrases: all,
            by_first,
            fuzzy_first,
        }
    })
}

/// The keys under which a long legal word is found fuzzily: its one-deletion variants (one
/// edit away shares one) and its skeleton (another transliteration of the same word).
fn fuzzy_keys(word: &str) -> impl Iterator<Item = u64> + '_ {
    let b = word.as_bytes();
    let dels = (0..=b.len()).map(move |i| {
        if i == b.len() {
            super::score::fnv(b)
        } else {
            super::score::fnv_skip(b, i)
        }
    });
    let skel = (word.len() >= FUZZY_LEGAL_MIN_LEN)
        .then(|| skeleton(word))
        .flatten()
        .map(|s| super::score::fnv(s.as_bytes()) ^ 0x5bd1_e995);
    dels.chain(skel)
}

/// Whether `word` alone is a legal form ("ag", "gmbh", "ltd").
fn is_one_word_legal_form(word: &str) -> bool {
    let lp = legal_phrases();
    lp.by_first
        .get(word)
        .is_some_and(|v| v.iter().any(|&i| lp.phrases[i as usize].words.len() == 1))
}

/// [`phrases_starting`] through a per-thread memo: supplier masters repeat the same few
/// thousand words a million times, and the fuzzy lookup costs a dozen hashes per word. The
/// memo holds answers of a pure function, so it never changes a result; it is emptied when
/// it grows past a bound.
fn phrases_starting_cached(word: &str) -> Vec<u32> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    const MAX_ENTRIES: usize = 1 << 16;
    thread_local! {
        static MEMO: RefCell<HashMap<Box<str>, Vec<u32>, Fnv>> = RefCell::new(HashMap::default());
    }
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        if let Some(v) = m.get(word) {
            return v.clone();
        }
        let v = phrases_starting(word);
        if m.len() >= MAX_ENTRIES {
            m.clear();
        }
        m.insert(word.into(), v.clone());
        v
    })
}

/// Indices of the phrases that may start with `word`: exact first word, else (long words only)
/// one edit or one skeleton away, longest phrase first.
fn phrases_starting(word: &str) -> Vec<u32> {
    let lp = legal_phrases();
    let exact = lp.by_first.get(word).into_iter().flatten().copied();
    if word.len() + 1 < FUZZY_LEGAL_MIN_LEN || !word.bytes().all(|c| c.is_ascii_lowercase()) {
        return exact.collect();
    }
    // Exact and fuzzy both: the code list itself has misspelt forms ("Limted Partnership"),
    // so an exact first word does not mean the word is spelt right.
    let mut out: Vec<u32> = fuzzy_keys(word)
        .flat_map(|k| lp.fuzzy_first.get(&k).into_iter().flatten().copied())
        .filter(|&i| legal_word_matches(lp.phrases[i as usize].words[0], word))
        .chain(exact)
        .collect();
    // Phrases are stored longest first, so index order is length order.
    out.sort_unstable();
    out.dedup();
    out
}

fn legal_word_matches(pattern: &str, word: &str) -> bool {
    if pattern == word {
        return true;
    }
    if pattern.len() < FUZZY_LEGAL_MIN_LEN || word.len() + 1 < pattern.len() {
        return false;
    }
    if within_one_edit(pattern.as_bytes(), word.as_bytes()) {
        return true;
    }
    // Another transliteration of a long word ("obshchestvo"/"obshestvo"): the skeletons of
    // both must agree and be long enough to mean something.
    word.len() >= FUZZY_LEGAL_MIN_LEN
        && skeleton(pattern).is_some_and(|s| s.len() >= 4 && Some(&s) == skeleton(word).as_ref())
}

/// The longest legal-form phrase starting at `at` allowed there, as its length in tokens.
fn legal_phrase_at(
    tokens: &[NormToken],
    starts: &[Vec<u32>],
    at: usize,
    allowed: &[Placement],
) -> Option<usize> {
    let lp = legal_phrases();
    starts.get(at)?.iter().find_map(|&pi| {
        let phrase = &lp.phrases[pi as usize];
        let n = phrase.words.len();
        if at + n > tokens.len() || !allowed.contains(&phrase.placement) {
            return None;
        }
        let hit = phrase
            .words
            .iter()
            .zip(&tokens[at..at + n])
            .all(|(p, t)| legal_word_matches(p, &t.text));
        hit.then_some(n)
    })
}

/// The longest legal-form phrase ending at `end` (exclusive), as its length in tokens.
fn legal_phrase_ending(tokens: &[NormToken], starts: &[Vec<u32>], end: usize) -> Option<usize> {
    let lp = legal_phrases();
    let mut best: Option<usize> = None;
    // No legal-form phrase is longer than ten words.
    for start in end.saturating_sub(10)..end {
        for &pi in &starts[start] {
            let phrase = &lp.phrases[pi as usize];
            let n = phrase.words.len();
            if start + n != end {
                continue;
            }
            let hit = phrase
                .words
                .iter()
                .zip(&tokens[start..end])
                .all(|(p, t)| legal_word_matches(p, &t.text));
            if hit {
                best = Some(best.map_or(n, |b: usize| b.max(n)));
            }
        }
    }
    best
}

/// Removes legal forms: any at either end (peeled repeatedly, so "OOO X" and "X Co., Ltd." and
/// "X Sanayi Ltd. Şti." all lose theirs), and unambiguous ones anywhere ("Concern X, Joint Stock
/// Company Y"). Parenthesised groups are their own stretches, so the "Co." of "X Co. (Shenzhen
/// Branch)" still closes its stretch. A name made only of legal words keeps them: it has
/// nothing else to match on.
fn strip_legal_forms(tokens: Vec<NormToken>) -> (Vec<NormToken>, Vec<String>) {
    let mut keep = vec![true; tokens.len()];
    let starts: Vec<Vec<u32>> = tokens
        .iter()
        .map(|t| phrases_starting_cached(&t.text))
        .collect();
    let mut start = 0;
    while start < tokens.len() {
        let mut end = start + 1;
        while end < tokens.len() && tokens[end].optional == tokens[start].optional {
            end += 1;
        }
        strip_stretch(
            &tokens[start..end],
            &starts[start..end],
            &mut keep[start..end],
        );
        start = end;
    }
    if !keep.iter().any(|k| *k) {
        return (tokens, Vec::new());
    }
    let mut kept = Vec::with_capacity(tokens.len());
    let mut removed = Vec::new();
    for (t, k) in tokens.into_iter().zip(keep) {
        if k {
            kept.push(t);
        } else {
            removed.push(t.text);
        }
    }
    (kept, removed)
}

fn strip_stretch(tokens: &[NormToken], starts: &[Vec<u32>], keep: &mut [bool]) {
    use Placement::{Anywhere, Ends};
    let mut lo = 0;
    let mut hi = tokens.len();
    loop {
        let mut changed = false;
        if lo < hi {
            if let Some(n) = legal_phrase_at(&tokens[..hi], starts, lo, &[Anywhere, Ends]) {
                keep[lo..lo + n].iter_mut().for_each(|k| *k = false);
                lo += n;
                changed = true;
            }
        }
        if lo < hi {
            if let Some(n) = legal_phrase_ending(&tokens[lo..hi], &starts[lo..hi], hi - lo) {
                keep[hi - n..hi].iter_mut().for_each(|k| *k = false);
                hi -= n;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut i = lo;
    while i < hi {
        if let Some(n) = legal_phrase_at(&tokens[..hi], starts, i, &[Anywhere]) {
            keep[i..i + n].iter_mut().for_each(|k| *k = false);
            i += n;
        } else {
            i += 1;
        }
    }
}

/// Decides which words are optional evidence. On entry `optional` means "in parentheses".
/// A parenthesised acronym ("(CETC)") is optional, a parenthesised place ("(Shanghai)") is not:
/// it tells subsidiaries apart. A branch qualifier ("(Shenzhen Branch)", trailing "Shenzhen
/// Branch") is optional whole: a branch of a listed entity is that entity. So is a patronymic.
fn mark_optional(tokens: &mut [NormToken]) {
    let n = tokens.len();
    let mut i = 0;
    while i < n {
        if !tokens[i].optional {
            i += 1;
            continue;
        }
        let mut end = i;
        while end < n && tokens[end].optional {
            end += 1;
        }
        let branch = tokens[i..end]
            .iter()
            .any(|t| BRANCH_WORDS.contains(&t.text.as_str()));
        for t in &mut tokens[i..end] {
            t.optional = branch || !PLACES.contains(&t.text.as_str());
        }
        i = end;
    }
    if n > 1 {
        for t in tokens.iter_mut() {
            if t.text.len() >= 7 && PATRONYMIC_ENDINGS.iter().any(|e| t.text.ends_with(e)) {
                t.optional = true;
            }
        }
    }
    if n > 1 && BRANCH_WORDS.contains(&tokens[n - 1].text.as_str()) {
        tokens[n - 1].optional = true;
        if n > 2 {
            tokens[n - 2].optional = true;
        }
    }
}

/// Whether two ASCII words are at most one edit apart (insert, delete, substitute, or swap of
/// neighbours), in linear time: the scorer calls this for every token pair it looks at.
pub fn within_one_edit(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    match b.len() - a.len() {
        0 => {
            let first = match a.iter().zip(b).position(|(x, y)| x != y) {
                None => return true,
                Some(p) => p,
            };
            if a[first + 1..] == b[first + 1..] {
                return true;
            }
            // Adjacent transposition.
            first + 1 < a.len()
                && a[first] == b[first + 1]
                && a[first + 1] == b[first]
                && a[first + 2..] == b[first + 2..]
        }
        1 => {
            let first = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(a.len());
            a[first..] == b[first + 1..]
        }
        _ => false,
    }
}

/// A consonant skeleton for transliteration variants: "Mohammad", "Muhammad", "Mohamed" and the
/// Arabic-script "mhmd" share `mhmd`; "Obshchestvo" (BGN/PCGN), "Obŝestvo" (ISO 9, accents
/// dropped) and "Obshestvo" share one too. Digraphs that one system writes for another's single
/// letter fold first (shch/sch/sh → s, zh → z, kh → h, ch/ts/tz → c), then vowels (and y, w,
/// which stand for vowels in most romanisations, and a j after a vowel, the й of "-ij") are
/// dropped, q/c→k, v→w, ph→f, x→ks, doubled letters collapse and a final h goes. `None` for
/// words too short for the skeleton to mean anything. Equal skeletons are only a hint: the
/// scorer also asks for surface similarity unless one side is vowel-poor.
pub fn skeleton(word: &str) -> Option<String> {
    let (mut folded, mut out) = (Vec::new(), Vec::new());
    skeleton_into(word, &mut folded, &mut out).then(|| String::from_utf8(out).unwrap_or_default())
}

/// The FNV hash of [`skeleton`], 0 when there is none, without allocating: it runs for every
/// word of every supplier name.
pub(crate) fn skeleton_hash(word: &str) -> u64 {
    use std::cell::RefCell;
    thread_local! {
        static BUFFERS: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    }
    BUFFERS.with(|b| {
        let (folded, out) = &mut *b.borrow_mut();
        if skeleton_into(word, folded, out) {
            super::score::fnv(out)
        } else {
            0
        }
    })
}

/// [`skeleton`] into `out` (with `folded` as working space); false when there is none.
fn skeleton_into(word: &str, folded: &mut Vec<u8>, out: &mut Vec<u8>) -> bool {
    folded.clear();
    out.clear();
    let b = word.as_bytes();
    if b.len() < 4 || !b.iter().all(|c| c.is_ascii_lowercase()) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        let (c, n) = if rest.starts_with(b"shch") {
            (b's', 4)
        } else if rest.starts_with(b"sch") {
            (b's', 3)
        } else if rest.starts_with(b"sh") {
            (b's', 2)
        } else if rest.starts_with(b"zh") {
            (b'z', 2)
        } else if rest.starts_with(b"kh") {
            (b'h', 2)
        } else if rest.starts_with(b"gh") {
            // Persian and Arabic q (ق, غ) are written q, gh or g: "Ghasem"/"Qasem".
            (b'q', 2)
        } else if rest.starts_with(b"ch") || rest.starts_with(b"ts") || rest.starts_with(b"tz") {
            (b'c', 2)
        } else if rest.starts_with(b"ph") {
            (b'f', 2)
        } else {
            (rest[0], 1)
        };
        folded.push(c);
        i += n;
    }
    let is_vowel = |c: u8| matches!(c, b'a' | b'e' | b'i' | b'o' | b'u' | b'y' | b'w');
    for (i, &c) in folded.iter().enumerate() {
        let c = match c {
            b'q' | b'c' => b'k',
            b'v' => b'w',
            // A final h is a ta marbuta or an aspiration that romanisations keep or drop.
            b'h' if i + 1 == folded.len() => continue,
            b'j' if i > 0 && is_vowel(folded[i - 1]) => continue,
            c => c,
        };
        if is_vowel(c) {
            continue;
        }
        if c == b'x' {
            out.push(b'k');
            out.push(b's');
            continue;
        }
        if out.last() != Some(&c) {
            out.push(c);
        }
    }
    out.len() >= 3
}

/// Whether a word has at most one vowel letter: the shape of a romanised Arabic or Persian word,
/// whose script writes no short vowels ("mhmd"), so only its skeleton can be compared.
pub fn is_vowel_poor(word: &str) -> bool {
    word.bytes()
        .filter(|c| matches!(c, b'a' | b'e' | b'i' | b'o' | b'u'))
        .count()
        <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(raw: &str) -> Vec<String> {
        normalise(raw).tokens.into_iter().map(|t| t.text).collect()
    }

    fn text(raw: &str) -> String {
        normalise(raw).text()
    }

    #[test]
    fn case_and_punctuation_fold() {
        assert_eq!(
            text("HUAWEI TECHNOLOGIES CO LTD"),
            text("Huawei Technologies Co., Ltd.")
        );
        assert_eq!(
            text("Afghan-German Construction"),
            "afghan german construction"
        );
        assert_eq!(text("Xi’an Aero-Engine"), "xian aero engine");
        assert_eq!(text("O'Brien & Sons"), "obrien son");
    }

    #[test]
    fn ampersand_is_and_which_is_a_stopword() {
        assert_eq!(text("Smith & Wesson"), text("Smith and Wesson"));
        assert_eq!(text("Smith & Wesson"), "smith wesson");
    }

    #[test]
    fn single_character_compounds_glue() {
        assert_eq!(text("M&P Trading"), "mp trading");
        assert_eq!(text("K-SOFT Enterprises"), "ksoft enterprise");
        assert_eq!(text("OOO \"A-K-S\""), "aks");
        assert_eq!(text("SMU-5"), "smu 5");
        assert_eq!(text("Sun-Create"), "sun create");
        assert_eq!(text("R&D Center"), "research development center");
        assert_eq!(text("LLC K.ARMA"), "karma");
        assert_eq!(text("Plant No.2"), "plant 2");
        assert_eq!(text("St.Petersburg"), "saint petersburg");
    }

    #[test]
    fn dotted_initials_merge() {
        assert_eq!(words("V.I. Shimko"), vec!["vi", "shimko"]);
        assert_eq!(text("U.S.A. Trading"), "usa trading");
        assert_eq!(
            text("A.S. Yakovlev Design Bureau"),
            "as yakovlev design bureau"
        );
    }

    #[test]
    fn nfkc_and_accents() {
        assert_eq!(text("ＡＢＣ Ｔｒａｄｉｎｇ"), "abc trading");
        assert_eq!(text("Müller Präzision"), "muller prazision");
        assert_eq!(
            text("Ankara Makine Sanayi ve Ticaret Limited Şirketi"),
            "ankara makine industry trade"
        );
    }

    #[test]
    fn cyrillic_transliterates() {
        assert_eq!(text("ООО Ромашка"), "romashka");
        assert_eq!(text("ООО Ромашка"), text("Romashka LLC"));
        assert_eq!(
            text("Общество с ограниченной ответственностью Лаггар Про"),
            "laggar pro"
        );
        assert_eq!(text("АО «Концерн Вега»"), "concern vega");
    }

    #[test]
    fn chinese_translates_common_words_and_transliterates_the_rest() {
        assert_eq!(text("华为技术有限公司"), "huawei technology");
        assert_eq!(text("北京华为"), "beijing huawei");
        assert_eq!(
            text("中国电子科技集团公司第五十四研究所"),
            "china electronic technology group 54 research institute"
        );
    }

    #[test]
    fn arabic_transliterates_and_splits_the_article() {
        assert_eq!(words("عبد الستار"), vec!["bd", "al", "str"]);
        assert_eq!(text("محمد"), "mhmd");
    }

    #[test]
    fn legal_forms_fold_across_languages() {
        let base = text("Romashka");
        for form in [
            "Romashka Co., Ltd.",
            "Romashka Company Limited",
            "Romashka Co Ltd",
            "Romashka LLC",
            "Romashka L.L.C.",
            "Romashka Inc",
            "Romashka Incorporated",
            "Romashka Corp.",
            "Romashka Corporation",
            "OOO Romashka",
            "ZAO Romashka",
            "OAO Romashka",
            "PAO Romashka",
            "JSC Romashka",
            "AO Romashka",
            "Romashka GmbH",
            "Romashka AG",
            "Romashka S.A.",
            "Romashka SA de CV",
            "Romashka S.A. de C.V.",
            "Romashka Sp. z o.o.",
            "Romashka FZE",
            "Romashka FZCO",
            "Romashka FZ-LLC",
            "Romashka LLP",
            "Romashka PLC",
            "Romashka Pte. Ltd.",
            "Romashka Pvt. Ltd.",
            "Romashka Private Limited",
            "Romashka (Pty) Ltd.",
            "Romashka Limited Şirketi",
            "Romashka Ltd. Şti.",
            "Romashka A.Ş.",
            "Romashka B.V.",
            "Romashka N.V.",
            "Romashka SRL",
            "Romashka SARL",
            "Romashka GmbH & Co. KG",
            "Romashka OJSC",
            "Romashka CJSC",
            "Open Joint Stock Company Romashka",
            "Public Joint Stock Company Romashka",
            "Joint-Stock Company Romashka",
            "Limited Liability Company Romashka",
            "Obshchestvo s Ogranichennoy Otvetstvennostyu Romashka",
            "Obshchestvo S Ogranichennoi Otvetstvennostyu Romashka",
            "Romashka Sdn. Bhd.",
            "PT Romashka Tbk",
            "Romashka, OOO",
            "Romashka Compny",
            "Romashka Limted",
        ] {
            assert_eq!(text(form), base, "{form}");
        }
    }

    #[test]
    fn ambiguous_legal_forms_only_at_the_ends() {
        assert_eq!(text("Romashka AG"), "romashka");
        assert_eq!(text("AG Industries"), "ag industry");
        assert_eq!(text("Branch of AO Company Sukhoi"), "branch ao sukhoi");
        assert_eq!(text("Alpha AS Beta"), "alpha as beta");
    }

    #[test]
    fn a_name_of_only_legal_words_keeps_them() {
        assert_eq!(text("Company Limited"), "company limited");
    }

    #[test]
    fn removed_legal_forms_are_reported() {
        let n = normalise("Huawei Technologies Co., Ltd.");
        assert_eq!(n.legal_forms, vec!["co", "ltd"]);
    }

    #[test]
    fn abbreviations_fold() {
        for (a, b) in [
            ("Sichuan Univ", "Sichuan University"),
            ("ABC Tech", "ABC Technology"),
            ("ABC Technologies", "ABC Technology"),
            ("ABC Intl", "ABC International"),
            ("ABC Mfg", "ABC Manufacturing"),
            ("ABC Elec", "ABC Electronics"),
            ("ABC Sci", "ABC Science"),
            ("ABC Eng", "ABC Engineering"),
            ("ABC Dev", "ABC Development"),
            ("ABC Grp", "ABC Group"),
            ("ABC Ind", "ABC Industries"),
            ("ABC Industrial", "ABC Industries"),
            ("ABC Svcs", "ABC Services"),
            ("ABC Natl", "ABC National"),
            ("ABC Inst", "ABC Institute"),
            ("ABC Acad", "ABC Academy"),
            ("ABC Res", "ABC Research"),
            ("ABC Centre", "ABC Center"),
            ("St. Petersburg", "Saint Petersburg"),
            ("Sankt Petersburg", "Saint Petersburg"),
        ] {
            assert_eq!(text(a), text(b), "{a} vs {b}");
        }
    }

    #[test]
    fn plurals_fold_but_names_ending_in_s_keep_it() {
        assert_eq!(text("Systems"), "system");
        assert_eq!(text("Industries"), "industry");
        assert_eq!(text("Abbas"), "abbas");
        assert_eq!(text("Kronos"), "kronos");
    }

    #[test]
    fn numbers_and_ordinals_fold() {
        assert_eq!(text("First Machinery Plant"), text("1st Machinery Plant"));
        assert_eq!(text("1st Machinery Plant"), "1 machinery plant");
        assert_eq!(text("Plant No. 2"), "plant 2");
        assert_eq!(text("Plant Number Two"), "plant 2");
        assert_eq!(text("54th Research Institute"), "54 research institute");
        assert_eq!(text("5-y Sudoremontnyy Zavod"), "5 sudoremontnyy plant");
        assert_eq!(text("5Y Sudoremontnyy Zavod"), "5 sudoremontnyy plant");
        assert_eq!(text("Nr Trading"), "nr trading");
        assert_eq!(text("Fifty-Fourth Institute"), "54 institute");
    }

    #[test]
    fn stopwords_go() {
        assert_eq!(text("The Institute of Physics"), "institute physic");
        assert_eq!(
            text("Center for Research and Development"),
            "center research development"
        );
    }

    #[test]
    fn parentheses_and_branches_are_optional() {
        let n = normalise("Chengdu Nanfei Microelectronics Co., Ltd. (Shenzhen Branch)");
        let optional: Vec<&str> = n
            .tokens
            .iter()
            .filter(|t| t.optional)
            .map(|t| t.text.as_str())
            .collect();
        assert_eq!(optional, vec!["shenzhen", "branch"]);
        let n = normalise("China State Shipbuilding Corporation (CSSC) 750th Test Center");
        assert!(n.tokens.iter().any(|t| t.text == "cssc" && t.optional));
        assert!(n.tokens.iter().any(|t| t.text == "750" && !t.optional));
    }

    #[test]
    fn one_edit() {
        assert!(within_one_edit(b"afghan", b"afghn"));
        assert!(within_one_edit(b"hunan", b"henan"));
        assert!(within_one_edit(b"research", b"reserach"));
        assert!(within_one_edit(b"abc", b"abc"));
        assert!(!within_one_edit(b"beijing", b"beihang"));
        assert!(!within_one_edit(b"abcd", b"badc"));
    }

    #[test]
    fn skeletons_join_transliteration_variants() {
        let s = |w: &str| skeleton(w);
        assert_eq!(s("mohammad"), s("muhammad"));
        assert_eq!(s("mohamed"), s("mohammed"));
        assert_eq!(s("mohammad"), s("mhmd"));
        assert_eq!(s("ahmadi"), s("hmdy"));
        assert_eq!(s("hussein"), s("husain"));
        assert_eq!(s("qasim"), s("kassem"));
        assert_eq!(s("ghoura"), s("ghwrh"));
        assert_ne!(s("beijing"), s("nanjing"));
        assert_eq!(s("ali"), None);
    }

    #[test]
    fn empty_and_symbol_only_names() {
        assert!(normalise("").tokens.is_empty());
        assert!(normalise(" ,.- ").tokens.is_empty());
    }
}
