//! Entity cell: one table cell's prose → name, aliases and addresses.
//!
//! The FR prints an entry as one run ("Name, a.k.a., the following two aliases: —A; and —B.
//! Address; and Address."), so where the name ends is a heuristic; the names the instructions
//! quote are passed in as hints and win over punctuation. It never drops text: what is not the
//! name or an alias is an address.

use super::address_shape::{address_start, opens_address};
use super::scan::is_elision;
use super::text::{collapse, Segment};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct EntryText {
    pub(super) name: String,
    pub(super) aliases: Vec<String>,
    pub(super) addresses: Vec<String>,
    pub(super) warnings: Vec<String>,
}

/// Legal-form words that follow a comma inside a name ("Co., Ltd.", "Foo, Inc."), folded to
/// lowercase letters only.
const LEGAL_FORMS: &[&str] = &[
    "ltd",
    "limited",
    "inc",
    "incorporated",
    "llc",
    "plc",
    "co",
    "corp",
    "corporation",
    "company",
    "coltd",
    "colimited",
    "gmbh",
    "ag",
    "sa",
    "sas",
    "sarl",
    "srl",
    "spa",
    "bv",
    "nv",
    "ab",
    "as",
    "oy",
    "kg",
    "jsc",
    "pjsc",
    "ojsc",
    "cjsc",
    "llp",
    "lp",
    "pte",
    "pteltd",
    "pvtltd",
    "sdnbhd",
    "bhd",
    "fze",
    "fzco",
    "fzc",
    "fzllc",
    "dmcc",
    "sro",
    "spzoo",
    "ooo",
    "ltda",
    "sadecv",
    "srldecv",
    "sde",
    "ltdco",
    "limitedliabilitycompany",
    "privatelimited",
    "sl",
    "ltdsti",
    "as",
    "kft",
    "zrt",
    "doo",
    "ad",
    "eood",
    "ood",
    "tbk",
    "pt",
    // Turkish "San. ve Tic. Ltd. Şti." (Limited Şirketi).
    "sti",
    "şti",
    "sirketi",
    "şirketi",
];

/// Abbreviations after which a period does not end a name ("No. 5", "Co. Ltd.", "Pvt. Ltd.").
const CONTINUING_ABBREVIATIONS: &[&str] = &[
    "no", "nos", "st", "ste", "rd", "ave", "bldg", "fl", "rm", "dr", "mr", "mrs", "ms", "prof",
    "mt", "ft", "jr", "sr", "vs", "ul", "pr", "per", "str", "sq", "blvd", "dist", "prov", "pvt",
    "pte", "bros", "intl", "int", "p.o", "u.s", "u.k", "e.g", "i.e", "mfg", "dept", "univ", "inst",
    "tech", "ind", "eng", "elec", "sci", "acad", "natl", "assn", "gen",
];

/// Abbreviations whose period is part of the name ("Ltd.", "Inc.").
const NAME_ABBREVIATIONS: &[&str] = &[
    "ltd", "inc", "co", "corp", "bhd", "pte", "pvt", "jr", "sr", "st", "bros", "intl", "mfg",
    "assn", "dept", "univ", "inst", "tech", "ind", "eng", "elec", "sci", "acad", "natl", "gen",
    "cie", "ste", "soc", "no",
];

pub(super) fn fold_letters(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

pub(super) fn last_word(s: &str) -> &str {
    s.rsplit(|c: char| c.is_whitespace() || c == '(' || c == ',')
        .next()
        .unwrap_or_default()
}

/// Drops a sentence-ending period, keeping one that belongs to an abbreviation.
pub(super) fn strip_terminal_period(s: &str) -> String {
    let t = s.trim();
    let Some(body) = t.strip_suffix('.') else {
        return t.to_string();
    };
    let word = last_word(body).trim_start_matches(|c: char| !c.is_alphanumeric());
    let lower = word.to_lowercase();
    // A lone letter keeps its period only as the last of initials ("J. S."); "Group A." ends
    // a sentence.
    let initial = |w: &str| w.chars().count() == 1 && w.chars().all(char::is_alphabetic);
    let before = body
        .get(..body.len() - word.len())
        .unwrap_or_default()
        .trim_end();
    let after_initial = before
        .strip_suffix('.')
        .is_some_and(|b| initial(last_word(b).trim_start_matches(|c: char| !c.is_alphanumeric())));
    let keeps = NAME_ABBREVIATIONS.contains(&lower.as_str())
        || word.contains('.')
        || (initial(word) && after_initial);
    if keeps {
        t.to_string()
    } else {
        body.trim_end().to_string()
    }
}

fn is_dash(c: char) -> bool {
    matches!(c, '\u{2010}'..='\u{2015}' | '-' | '\u{2212}')
}

/// Strips list punctuation around an alias or address: leading dashes, trailing "; and", ",".
pub(super) fn clean_item(s: &str) -> String {
    let mut t = collapse(s);
    loop {
        let mut u = t
            .trim_start_matches(|c: char| {
                is_dash(c) || c.is_whitespace() || c == ',' || c == ';' || c == ':'
            })
            .trim_end_matches(|c: char| c.is_whitespace() || c == ',' || c == ';' || c == ':')
            .to_string();
        let lower = u.to_lowercase();
        if lower == "and" {
            u.clear();
        } else if lower.ends_with(" and") {
            u.truncate(u.len() - 4);
        } else if lower.starts_with("and ") {
            u = u.get(4..).unwrap_or_default().to_string();
        }
        if u == t {
            break;
        }
        t = u;
    }
    strip_terminal_period(&t)
}

/// Byte offsets of top-level (outside parentheses) occurrences of `pred` characters.
fn top_level_positions(s: &str, pred: impl Fn(char) -> bool) -> Vec<usize> {
    let mut depth = 0i32;
    let mut out = Vec::new();
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth = (depth - 1).max(0),
            c if depth == 0 && pred(c) => out.push(i),
            _ => {}
        }
    }
    out
}

/// Whether the period at byte `dot` (followed by whitespace) ends a name rather than an
/// abbreviation inside it.
fn period_ends_name(s: &str, dot: usize) -> bool {
    let before = s.get(..dot).unwrap_or_default();
    let word = last_word(before).trim_start_matches(|c: char| !c.is_alphanumeric());
    let lower = word.to_lowercase();
    if word.chars().count() <= 1 {
        return word.is_empty() || !word.chars().all(char::is_alphabetic);
    }
    if lower == "co" {
        let next = s.get(dot + 1..).unwrap_or_default();
        let next_word = next.split_whitespace().next().unwrap_or_default();
        let next_folded = fold_letters(next_word);
        return ![
            "ltd", "limited", "llc", "inc", "kg", "pte", "pvt", "sdn", "bhd",
        ]
        .contains(&next_folded.as_str());
    }
    !CONTINUING_ABBREVIATIONS.contains(&lower.as_str())
}

/// Whether the comma-separated chunk starting at `s` is a legal form that continues a name.
fn is_legal_form_chunk(s: &str) -> bool {
    let chunk = s.split(',').next().unwrap_or_default();
    let without_paren = chunk.split('(').next().unwrap_or_default();
    let folded = fold_letters(without_paren);
    LEGAL_FORMS.contains(&folded.as_str())
        || (folded.len() <= 6
            && !folded.is_empty()
            && chunk.trim().chars().next().is_some_and(char::is_uppercase)
            && chunk.contains('.')
            && chunk.chars().filter(|c| c.is_alphabetic()).count() <= 5
            && !chunk.chars().any(|c| c.is_ascii_digit()))
}

/// Splits "Name, rest" / "Name. Rest" using `hints` (names the instructions quote) first, then
/// the shape of an address (see `address_shape`): commas before the chunk where the address
/// begins are part of the name. With no address shape to go by, punctuation decides: a comma
/// not followed by a legal form, a name-ending period, or a semicolon.
fn split_leading_name<'a>(s: &'a str, hints: &[&str]) -> (&'a str, &'a str) {
    if let Some(end) = hint_prefix(s, hints) {
        return (s.get(..end).unwrap_or(s), s.get(end..).unwrap_or_default());
    }
    // A period separates only where an address visibly follows it ("Institute of Basic
    // Medicine. 27 Taiping Road"), never after initials ("A.C. International").
    let period_before_address = |p: usize| {
        let word = last_word(s.get(..p).unwrap_or_default());
        let plain_word =
            word.chars().filter(|c| c.is_alphabetic()).count() >= 3 && !word.contains('.');
        period_ends_name(s, p) && (plain_word || opens_address(s.get(p + 1..).unwrap_or_default()))
    };
    if let Some(b) = address_start(s, is_legal_form_chunk, period_before_address) {
        // A semicolon before the address still ends the name ("Name; Address").
        let semi = top_level_positions(s, |c| c == ';')
            .into_iter()
            .find(|i| *i < b.name_end);
        return match semi {
            Some(i) => (s.get(..i).unwrap_or(s), s.get(i + 1..).unwrap_or_default()),
            None => (
                s.get(..b.name_end).unwrap_or(s),
                s.get(b.rest_start..).unwrap_or_default(),
            ),
        };
    }
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth = (depth - 1).max(0),
            ',' | ';' if depth == 0 => {
                let rest = s.get(i + 1..).unwrap_or_default();
                if c == ';' || !is_legal_form_chunk(rest) {
                    return (s.get(..i).unwrap_or(s), rest);
                }
            }
            '.' if depth == 0 => {
                let after = s.get(i + 1..).unwrap_or_default();
                if after.starts_with(char::is_whitespace) && period_ends_name(s, i) {
                    return (s.get(..i + 1).unwrap_or(s), after);
                }
            }
            _ => {}
        }
    }
    (s, "")
}

/// The byte offset where the longest hint ends if `s` starts with it (compared on letters and
/// digits only), extended over a following period that belongs to the name.
fn hint_prefix(s: &str, hints: &[&str]) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None; // (folded length, byte end)
    for hint in hints {
        let want: Vec<char> = hint
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        if want.is_empty() || best.is_some_and(|(len, _)| len >= want.len()) {
            continue;
        }
        let mut k = 0usize;
        let mut end = None;
        for (i, c) in s.char_indices() {
            if !c.is_alphanumeric() {
                continue;
            }
            let mut matched = true;
            for lc in c.to_lowercase() {
                if want.get(k) == Some(&lc) {
                    k += 1;
                } else {
                    matched = false;
                    break;
                }
            }
            if !matched {
                break;
            }
            if k == want.len() {
                end = Some(i + c.len_utf8());
                break;
            }
        }
        let Some(mut e) = end else { continue };
        // Must end on a word boundary.
        if s.get(e..)
            .and_then(|r| r.chars().next())
            .is_some_and(char::is_alphanumeric)
        {
            continue;
        }
        // Keep "Ltd." / "Inc." periods and closing parentheses that belong to the name.
        let rest = s.get(e..).unwrap_or_default();
        if rest.starts_with(')') {
            e += 1;
        }
        if s.get(e..).is_some_and(|r| r.starts_with('.')) {
            let with_dot = s.get(..e + 1).unwrap_or(s);
            if strip_terminal_period(with_dot).len() == with_dot.trim().len() {
                e += 1;
            }
        }
        best = Some((want.len(), e));
    }
    best.map(|(_, e)| e)
}

pub(super) fn number_word(w: &str) -> Option<usize> {
    const UNITS: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 10] = [
        "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    let w = w
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase();
    if let Ok(n) = w.parse::<usize>() {
        return Some(n);
    }
    if let Some(n) = UNITS.iter().position(|u| *u == w) {
        return Some(n);
    }
    let (tens, unit) = w.split_once(['-', '‑']).unwrap_or((w.as_str(), ""));
    let t = TENS.iter().position(|x| !x.is_empty() && *x == tens)?;
    let u = if unit.is_empty() {
        0
    } else {
        UNITS
            .iter()
            .position(|x| *x == unit)
            .filter(|u| (1..10).contains(u))?
    };
    Some(t * 10 + u)
}

/// The alias marker in `s`: its byte range, or None.
fn find_aka(s: &str) -> Option<(usize, usize)> {
    // ASCII folding keeps byte offsets valid for `s`.
    let lower = s.to_ascii_lowercase();
    for marker in [
        "a.k.a.",
        "a.k.a",
        "a/k/a",
        "also known as",
        "f.k.a.",
        "f.k.a",
    ] {
        let mut from = 0;
        while let Some(p) = lower
            .get(from..)
            .and_then(|r| r.find(marker))
            .map(|p| p + from)
        {
            let before_ok = lower
                .get(..p)
                .and_then(|b| b.chars().next_back())
                .is_none_or(|c| !c.is_alphanumeric());
            let after_ok = lower
                .get(p + marker.len()..)
                .and_then(|a| a.chars().next())
                .is_none_or(|c| !c.is_alphanumeric());
            if before_ok && after_ok {
                return Some((p, p + marker.len()));
            }
            from = p + marker.len();
        }
    }
    None
}

/// Reads "the following two aliases:" at the start of `s`: the count announced (None when the
/// header states none), whether there was such a header, and the text after its colon.
fn alias_header(s: &str) -> (Option<usize>, bool, &str) {
    let t = s.trim_start_matches(|c: char| c == '.' || c == ',' || c.is_whitespace());
    let lower = t.to_lowercase();
    if !lower.starts_with("the following") {
        return (None, false, t);
    }
    let Some(colon) = t.find(':') else {
        return (None, false, t);
    };
    let header = t.get(..colon).unwrap_or_default();
    // Only a short header: "the following twenty-three aliases".
    if header.split_whitespace().count() > 6 {
        return (None, false, t);
    }
    let words: Vec<&str> = header.split_whitespace().collect();
    let count = words.get(2).and_then(|w| number_word(w)).or_else(|| {
        words
            .iter()
            .any(|w| w.eq_ignore_ascii_case("alias"))
            .then_some(1)
    });
    (count, true, t.get(colon + 1..).unwrap_or_default())
}

/// Splits an inline alias list ("—A; and —B. Address") into aliases and the address text after.
/// `own_line` is true for the text of one `<LI>` line, where an alias ends with the line.
fn inline_aliases(s: &str, count: Option<usize>, own_line: bool) -> (Vec<String>, String) {
    let t = s.trim();
    let mut aliases = Vec::new();
    if t.starts_with(is_dash) {
        // Split at dashes that open an item: at the start or after a space, ';' or ':'.
        let mut starts = Vec::new();
        let mut prev: Option<char> = None;
        for (i, c) in t.char_indices() {
            if is_dash(c) && prev.is_none_or(|p| p.is_whitespace() || p == ';' || p == ':') {
                starts.push(i);
            }
            prev = Some(c);
        }
        // Dashes beyond the announced count sit in the address ("Bldg 5 - 7"); keep them there.
        if let Some(n) = count {
            if starts.len() > n && n > 0 {
                starts.truncate(n);
            }
        }
        let mut items: Vec<&str> = Vec::new();
        for (k, st) in starts.iter().enumerate() {
            let end = starts.get(k + 1).copied().unwrap_or(t.len());
            items.push(t.get(*st..end).unwrap_or_default());
        }
        let Some((last, firsts)) = items.split_last() else {
            return (aliases, t.to_string());
        };
        aliases.extend(
            firsts
                .iter()
                .map(|i| clean_item(i))
                .filter(|a| !a.is_empty()),
        );
        let last = last.trim_start_matches(|c: char| is_dash(c) || c.is_whitespace());
        let (alias, rest) = if own_line {
            split_alias_line(last)
        } else {
            split_at_name_end(last)
        };
        let alias = clean_item(alias);
        if !alias.is_empty() {
            aliases.push(alias);
        }
        return (aliases, rest.to_string());
    }
    // No dashes: "A; B; and C. Address" or the single-alias "a.k.a. X, Address".
    let semis = top_level_positions(t, |c| c == ';');
    let take = match count {
        Some(n) => n.saturating_sub(1).min(semis.len()),
        // Unannounced: items run until one that ends a sentence inside it ("C. Address").
        None => {
            let mut part_start = 0;
            let mut found = semis.len();
            for (n, p) in semis.iter().enumerate() {
                if has_name_end(t.get(part_start..*p).unwrap_or_default()) {
                    found = n;
                    break;
                }
                part_start = p + 1;
            }
            found
        }
    };
    let mut start = 0;
    for p in semis.iter().take(take) {
        let a = clean_item(t.get(start..*p).unwrap_or_default());
        if !a.is_empty() {
            aliases.push(a);
        }
        start = p + 1;
    }
    let last = t.get(start..).unwrap_or_default();
    let (alias, rest) = split_leading_name(last.trim_start(), &[]);
    let alias = clean_item(alias);
    if !alias.is_empty() {
        aliases.push(alias);
    }
    (aliases, rest.to_string())
}

fn has_name_end(s: &str) -> bool {
    !split_at_name_end(s).1.trim().is_empty()
}

/// Splits at the period that ends a name (dash-listed aliases may contain commas): first one
/// an address visibly follows ("—ISM Tech. Rm. 1014 …", "—… A.A. Kulakov. 12 Yablochkova
/// Street"), else the first that ends a name by its own shape.
fn split_at_name_end(s: &str) -> (&str, &str) {
    let periods: Vec<usize> = top_level_positions(s, |c| c == '.')
        .into_iter()
        .filter(|p| {
            s.get(p + 1..)
                .is_some_and(|a| a.starts_with(char::is_whitespace))
        })
        .collect();
    let at = |p: usize| {
        (
            s.get(..p + 1).unwrap_or(s),
            s.get(p + 1..).unwrap_or_default(),
        )
    };
    if let Some(p) = periods
        .iter()
        .find(|p| opens_address(s.get(*p + 1..).unwrap_or_default()))
    {
        return at(*p);
    }
    match periods.iter().find(|p| period_ends_name(s, **p)) {
        Some(p) => at(*p),
        None => (s, ""),
    }
}

/// An alias on a line of its own (`<LI>—JSC Plant Named After A.A. Kulakov.</LI>`): the whole
/// line is the alias unless an address visibly follows a period in it.
fn split_alias_line(s: &str) -> (&str, &str) {
    let found = top_level_positions(s, |c| c == '.').into_iter().find(|p| {
        let after = s.get(p + 1..).unwrap_or_default();
        after.starts_with(char::is_whitespace) && opens_address(after)
    });
    match found {
        Some(p) => (
            s.get(..p + 1).unwrap_or(s),
            s.get(p + 1..).unwrap_or_default(),
        ),
        None => (s, ""),
    }
}

/// Splits address text at ';' (including "; and"), dropping list punctuation.
pub(super) fn split_addresses(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut cuts = top_level_positions(s, |c| c == ';');
    cuts.push(s.len());
    for p in cuts {
        let a = clean_item(s.get(start..p).unwrap_or_default());
        if !a.is_empty() && !is_elision(&a) {
            out.push(a);
        }
        start = p + 1;
    }
    out
}

/// Reads the Entity cell. `hints` are the names the instructions quote for this country.
pub(super) fn parse_entity_cell(segs: &[Segment], hints: &[&str]) -> EntryText {
    let mut entry = EntryText::default();
    let mut rest_segments: Vec<&Segment> = segs.iter().collect();
    if rest_segments.is_empty() {
        return entry;
    }
    let mut head = rest_segments.remove(0).text.clone();
    // "Name,<LI>a.k.a., the following …" – the alias header on the first line.
    if find_aka(&head).is_none() {
        if let Some(first) = rest_segments.first() {
            if find_aka(&first.text).is_some_and(|(p, _)| p == 0) {
                head = format!("{head} {}", first.text);
                rest_segments.remove(0);
            }
        }
    }

    let mut address_text: Vec<String> = Vec::new();
    let mut announced: Option<usize> = None;
    let mut expect_alias_lines = false;
    if let Some((a, b)) = find_aka(&head) {
        entry.name = clean_name(head.get(..a).unwrap_or_default());
        let after = head.get(b..).unwrap_or_default();
        let (count, has_header, list) = alias_header(after);
        announced = if has_header { count } else { Some(1) };
        if list.trim().is_empty() {
            expect_alias_lines = true;
        } else {
            let (aliases, rest) = inline_aliases(list, announced, false);
            entry.aliases = aliases;
            address_text.push(rest);
        }
    } else {
        let (name, rest) = split_leading_name(&head, hints);
        entry.name = clean_name(name);
        address_text.push(rest.to_string());
    }

    let any_dashed = rest_segments
        .iter()
        .any(|s| s.is_line && s.text.starts_with(is_dash));
    let mut in_aliases = expect_alias_lines;
    for seg in rest_segments {
        let dashed = seg.text.starts_with(is_dash);
        let is_alias = if !seg.is_line {
            false
        } else if any_dashed {
            dashed
        } else if expect_alias_lines {
            match announced {
                Some(n) => entry.aliases.len() < n,
                None => in_aliases,
            }
        } else {
            false
        };
        if is_alias {
            let (aliases, rest) = inline_aliases(&seg.text, None, true);
            entry.aliases.extend(aliases);
            if !rest.trim().is_empty() {
                address_text.push(rest);
            }
            let trimmed = seg.text.trim_end();
            in_aliases = trimmed.ends_with(';') || trimmed.to_lowercase().ends_with(" and");
        } else {
            in_aliases = false;
            address_text.push(seg.text.clone());
        }
    }
    for t in &address_text {
        entry.addresses.extend(split_addresses(t));
    }
    if let Some(n) = announced {
        if n != entry.aliases.len() {
            entry.warnings.push(format!(
                "the text announces {n} alias(es) but {} were read: {}",
                entry.aliases.len(),
                entry.aliases.join(" | ")
            ));
        }
    }
    entry
}

fn clean_name(s: &str) -> String {
    let t = collapse(s);
    let t = t.trim_end_matches(|c: char| c == ',' || c == ';' || c == ':' || c.is_whitespace());
    strip_terminal_period(t)
}
