//! Amendatory instructions: "by adding under CHINA, PEOPLE'S REPUBLIC OF, in alphabetical order,
//! entries for “A” and “B”" → one [`Instruction`] per named entry (or one per country heading
//! when only a count is given).
//!
//! It reads the AMDPAR's prose only; what the table says is reconciled later. A phrase it
//! cannot place is a warning, never a guess that drops an entry.

use crate::events::{ChangeAction, CountryCode, EntityName};

use super::entity_cell::{number_word, strip_terminal_period};
use super::text::collapse;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Instruction {
    pub(super) action: ChangeAction,
    /// The country headings as the instruction writes them (usually one; empty if none named).
    pub(super) countries: Vec<String>,
    /// `None` when the instruction names no entry ("twenty-eight entities").
    pub(super) name: Option<String>,
    /// For an unnamed instruction, the number of entries it announces, if it says
    /// ("thirty-three entities").
    pub(super) count: Option<usize>,
    /// Byte offset of the AMDPAR and the quote's index in it, for document order.
    pub(super) pos: (usize, usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word {
        text: String,
        start: usize,
        end: usize,
    },
    Quote {
        text: String,
    },
    Punct(char),
}

fn tokenize(text: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '“' || c == '"' {
            let close = if c == '“' { '”' } else { '"' };
            let mut content = String::new();
            for (_, d) in chars.by_ref() {
                if d == close {
                    break;
                }
                content.push(d);
            }
            out.push(Tok::Quote { text: content });
        } else if c.is_alphanumeric() {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                let joins = matches!(d, '\'' | '’' | '-' | '‑');
                if d.is_alphanumeric() || joins {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let word = text.get(i..end).unwrap_or_default().to_string();
            out.push(Tok::Word {
                text: word,
                start: i,
                end,
            });
        } else if !c.is_whitespace() {
            out.push(Tok::Punct(c));
        }
    }
    out
}

pub(super) fn verb(word: &str) -> Option<ChangeAction> {
    match word.to_lowercase().as_str() {
        "adding" | "add" => Some(ChangeAction::Added),
        "revising" | "revise" | "amending" | "correcting" => Some(ChangeAction::Revised),
        "removing" | "remove" | "deleting" | "delete" => Some(ChangeAction::Removed),
        _ => None,
    }
}

fn is_upper_word(w: &str) -> bool {
    w.chars().any(char::is_alphabetic) && !w.chars().any(char::is_lowercase)
}

const MAX_HEADING_TOKENS: usize = 200;

/// The country heading(s) after `under` at `toks[at]` (the token after "under"), and the index
/// of the phrase's last token. An uppercase run such as `CHINA, PEOPLE'S REPUBLIC OF` or
/// `BELGIUM, BOLIVIA, and BRAZIL` (split into known countries where it is a list), or for
/// mixed-case text the longest comma-separated prefix that names a known country. Headings are
/// returned as written.
fn countries_after(text: &str, toks: &[Tok], mut at: usize) -> Option<(Vec<String>, usize)> {
    let word_at = |k: usize| match toks.get(k) {
        Some(Tok::Word { text, .. }) => Some(text.to_lowercase()),
        _ => None,
    };
    // "under the destination(s) of CHINA"
    if word_at(at).as_deref() == Some("the")
        && matches!(
            word_at(at + 1).as_deref(),
            Some("destination" | "destinations")
        )
        && word_at(at + 2).as_deref() == Some("of")
    {
        at += 3;
    }
    let span = |from: usize, to: usize| -> Option<String> {
        let s = match toks.get(from)? {
            Tok::Word { start, .. } => *start,
            _ => return None,
        };
        let e = match toks.get(to)? {
            Tok::Word { end, .. } => *end,
            _ => return None,
        };
        text.get(s..e).map(collapse)
    };

    // Uppercase run; commas, parentheses and "and" allowed between words. Bounded: the longest
    // real run is a list of a few dozen destinations.
    let mut k = at;
    let mut last_word: Option<usize> = None;
    while let Some(t) = toks.get(k).filter(|_| k < at + MAX_HEADING_TOKENS) {
        match t {
            // "UNDER" or a verb opens the next phrase, never part of a heading.
            Tok::Word { text: w, .. } if w.eq_ignore_ascii_case("under") || verb(w).is_some() => {
                break
            }
            Tok::Word { text: w, .. } if is_upper_word(w) => last_word = Some(k),
            Tok::Word { text: w, .. }
                if w == "and"
                    && matches!(toks.get(k + 1), Some(Tok::Word { text: n, .. }) if is_upper_word(n)) =>
                {}
            Tok::Punct(',') | Tok::Punct('(') | Tok::Punct(')') => {}
            _ => break,
        }
        k += 1;
    }
    if let Some(mut end) = last_word {
        let mut heading = span(at, end)?;
        if matches!(toks.get(end + 1), Some(Tok::Punct(')'))) && heading.contains('(') {
            heading.push(')');
            end += 1;
        }
        if heading.chars().filter(|c| c.is_alphabetic()).count() >= 2 {
            return Some((split_country_list(&heading), end));
        }
    }

    // Mixed case: "under China, People's Republic of, in alphabetical order".
    let mut best: Option<(String, usize)> = None;
    let mut k = at;
    let mut chunk_end: Option<usize> = None;
    let mut chunks = 0;
    while chunks < 4 && k < at + MAX_HEADING_TOKENS {
        match toks.get(k) {
            Some(Tok::Word { .. }) => chunk_end = Some(k),
            Some(Tok::Punct(',')) | None => {
                if let Some(end) = chunk_end {
                    if let Some(h) = span(at, end) {
                        if CountryCode::from_heading(&h).is_some() {
                            best = Some((h, end));
                        }
                    }
                }
                chunks += 1;
                if toks.get(k).is_none() {
                    break;
                }
            }
            _ => break,
        }
        k += 1;
    }
    best.map(|(h, end)| (vec![h], end))
}

/// `BELGIUM, BOLIVIA, CHINA, PEOPLE'S REPUBLIC OF, and EGYPT` → the four headings; a run that
/// is one heading (or that does not resolve entirely into known countries) stays whole.
fn split_country_list(run: &str) -> Vec<String> {
    if CountryCode::from_heading(run).is_some() {
        return vec![run.to_string()];
    }
    let chunks: Vec<String> = run
        .split(',')
        .flat_map(|c| {
            let words: Vec<&str> = c.split_whitespace().collect();
            words
                .split(|w| w.eq_ignore_ascii_case("and"))
                .map(|ws| ws.join(" "))
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty())
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chunks.len() {
        let pair = chunks
            .get(i + 1)
            .map(|next| format!("{}, {}", chunks[i], next));
        if let Some(p) = pair.filter(|p| CountryCode::from_heading(p).is_some()) {
            out.push(p);
            i += 2;
        } else if CountryCode::from_heading(&chunks[i]).is_some() {
            out.push(chunks[i].clone());
            i += 1;
        } else {
            return vec![run.to_string()];
        }
    }
    if out.is_empty() {
        vec![run.to_string()]
    } else {
        out
    }
}

#[derive(Debug)]
pub(super) struct Under {
    at: usize,
    end: usize,
    countries: Vec<String>,
    /// "a. Under RUSSIA, by revising …": the phrase belongs to the verb that follows it.
    leading: bool,
}

/// Splits an AMDPAR into instructions. `pos` orders them in the document.
pub(super) fn parse_instructions(text: &str, pos: usize) -> (Vec<Instruction>, Vec<String>) {
    let toks = tokenize(text);
    let mut warnings = Vec::new();
    let verbs: Vec<(usize, ChangeAction)> = toks
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match t {
            Tok::Word { text, .. } => verb(text).map(|a| (i, a)),
            _ => None,
        })
        .collect();
    let unders = under_phrases(text, &toks, &verbs);

    let mut out = Vec::new();
    let mut quote_index = 0usize;
    let mut inherited: Vec<String> = Vec::new();
    // Unders are in token order, so each clause's are a contiguous run found by bisection.
    let leading: Vec<&Under> = unders.iter().filter(|u| u.leading).collect();
    let inner_all: Vec<&Under> = unders.iter().filter(|u| !u.leading).collect();
    for (c, (start, action)) in verbs.iter().enumerate() {
        let end = verbs.get(c + 1).map_or(toks.len(), |(i, _)| *i);
        let previous_verb = c
            .checked_sub(1)
            .and_then(|p| verbs.get(p))
            .map_or(0, |(i, _)| *i + 1);
        let lead: Option<&Under> = {
            let upto = leading.partition_point(|u| u.end < *start);
            upto.checked_sub(1)
                .and_then(|i| leading.get(i))
                .copied()
                .filter(|u| u.at >= previous_verb)
        };
        let from = inner_all.partition_point(|u| u.at <= *start);
        let to = inner_all.partition_point(|u| u.at < end);
        let inner: &[&Under] = inner_all.get(from..to).unwrap_or_default();
        let mut named_per_under = vec![0usize; inner.len()];
        let mut quoted = false;
        let mut current: Option<usize> = None; // the last inner under before this token
        for (qi, t) in toks.iter().enumerate().take(end).skip(*start) {
            while inner
                .get(current.map_or(0, |g| g + 1))
                .is_some_and(|u| u.at < qi)
            {
                current = Some(current.map_or(0, |g| g + 1));
            }
            let Tok::Quote { text: raw } = t else {
                continue;
            };
            quoted = true;
            // Before any "under" in the clause: "the entry for “X” under HONG KONG".
            let group = current.or(if inner.is_empty() { None } else { Some(0) });
            if let Some(n) = group.and_then(|g| named_per_under.get_mut(g)) {
                *n += 1;
            }
            let countries = group
                .and_then(|g| inner.get(g))
                .map(|u| u.countries.clone())
                .or_else(|| lead.map(|u| u.countries.clone()))
                .unwrap_or_else(|| inherited.clone());
            let name = clean_quoted_name(raw);
            if EntityName::parse(&name).is_err() {
                warnings.push(format!(
                    "amendatory instruction quotes “{raw}”, which is not an entity name; ignored"
                ));
                continue;
            }
            out.push(Instruction {
                action: *action,
                countries,
                name: Some(name),
                count: None,
                pos: (pos, quote_index),
            });
            quote_index += 1;
        }
        // With the index of the next heading in the clause, where this one's count ends.
        let mut unnamed: Vec<(&Under, usize)> = inner
            .iter()
            .zip(&named_per_under)
            .enumerate()
            .filter(|(_, (_, n))| **n == 0)
            .map(|(g, (u, _))| (*u, inner.get(g + 1).map_or(end, |x| x.at)))
            .collect();
        if inner.is_empty() && !quoted {
            unnamed.extend(lead.map(|u| (u, end)));
        }
        for (u, next_at) in unnamed {
            let heading = u.countries.join("; ");
            // The count follows the heading up to the next heading ("under BELARUS, twenty-five
            // entities, and under RUSSIA, …"), or stands between the verb and the first one
            // ("adding thirty-three entities under CHINA").
            let after = if u.leading { *start } else { u.end + 1 };
            let count = announced_count(&toks, after, if u.leading { end } else { next_at })
                .or_else(|| {
                    let first = inner.first().is_some_and(|f| f.at == u.at);
                    first
                        .then(|| announced_count(&toks, *start, u.at))
                        .flatten()
                });
            if *action == ChangeAction::Removed {
                warnings.push(format!(
                    "instruction removing under {heading} names no entry in quotes; no removal \
                     emitted for it"
                ));
            } else {
                out.push(Instruction {
                    action: *action,
                    countries: u.countries.clone(),
                    name: None,
                    count,
                    pos: (pos, quote_index),
                });
                quote_index += 1;
            }
        }
        if let Some(u) = inner.last().copied().or(lead) {
            inherited = u.countries.clone();
        }
    }
    (out, warnings)
}

/// Every "under COUNTRY" phrase, each marked leading when it opens an item and belongs to the
/// verb after it.
fn under_phrases(text: &str, toks: &[Tok], verbs: &[(usize, ChangeAction)]) -> Vec<Under> {
    let mut unders: Vec<Under> = toks
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match t {
            Tok::Word { text: w, .. } if w.eq_ignore_ascii_case("under") => {
                countries_after(text, toks, i + 1).map(|(countries, end)| Under {
                    at: i,
                    end,
                    countries,
                    leading: false,
                })
            }
            _ => None,
        })
        .collect();
    for u in &mut unders {
        // "a. Under RUSSIA, by revising": the phrase opens an item (after punctuation, not
        // after a quoted name as in "the entry for “X” under HONG KONG, and by adding").
        let opens_item =
            u.at == 0 || matches!(toks.get(u.at - 1), Some(Tok::Punct(';' | ':' | '.' | ',')));
        if !opens_item {
            continue;
        }
        let next_verb = verbs.get(verbs.partition_point(|(v, _)| *v <= u.end));
        if let Some((v, _)) = next_verb {
            u.leading = toks
                .get(u.end + 1..*v)
                .unwrap_or_default()
                .iter()
                .all(|t| match t {
                    Tok::Punct(_) => true,
                    Tok::Word { text, .. } => ["by", "and"].contains(&text.to_lowercase().as_str()),
                    Tok::Quote { .. } => false,
                });
        }
    }
    unders
}

/// The number in "thirty-three entities" / "25 entries" / "one entity" within `toks[from..to]`.
fn announced_count(toks: &[Tok], from: usize, to: usize) -> Option<usize> {
    let window = toks.get(from..to.min(toks.len()))?;
    let noun = |t: &Tok| {
        matches!(t, Tok::Word { text, .. }
            if ["entity", "entities", "entry", "entries"].contains(&text.to_lowercase().as_str()))
    };
    let word = |k: usize| match window.get(k) {
        Some(Tok::Word { text, .. }) => Some(text.to_lowercase()),
        _ => None,
    };
    (0..window.len()).find_map(|i| {
        let first = word(i)?;
        let (n, mut next) = match first.as_str() {
            "a" | "an" => (1, i + 1),
            w => (number_word(w)?, i + 1),
        };
        // "one hundred (and) twenty-one entities".
        let mut n = n;
        if word(next).as_deref() == Some("hundred") && (1..10).contains(&n) {
            n *= 100;
            next += 1;
            let after_and = if word(next).as_deref() == Some("and") {
                next + 1
            } else {
                next
            };
            if let Some(rest) = word(after_and).as_deref().and_then(number_word) {
                if rest < 100 {
                    n += rest;
                    next = after_and + 1;
                }
            }
        }
        // "thirty-three entities", "three additional entities", "two new entries".
        let follows = window.get(next).is_some_and(noun)
            || (window.get(next + 1).is_some_and(noun)
                && word(next).is_some_and(|w| {
                    ["additional", "new", "more", "further"].contains(&w.as_str())
                }));
        follows.then_some(n)
    })
}

/// A quoted name as the instruction writes it, without the punctuation American style puts
/// inside the closing quote (“A,” “B;” and “C.”).
fn clean_quoted_name(raw: &str) -> String {
    let mut s = collapse(raw);
    loop {
        let t = s.trim_end_matches([',', ';', ':']).trim_end().to_string();
        if t == s {
            break;
        }
        s = t;
    }
    strip_terminal_period(&s)
}
