//! Address shape: where, in "Name, Name part, Address, City, Country", the address begins.
//!
//! Rules that only count their entries ("thirty-four entities") give no name to split on, and
//! many real names carry commas ("Academy of Military Medical Sciences, Institute of Basic
//! Medicine, 27 Taiping Road, …"). So each comma-separated chunk after the first is judged by
//! its shape: house numbers, "No.", "Room", "Building", street and district words mark an
//! address; institute, plant, company words and legal forms mark a part of the name; a postal
//! code or a country name only says an address has begun somewhere before it. Text in quotes is
//! a name ("AO GNPP “Region”"), whatever its words. Nothing here knows the instruction text: the
//! names it quotes are tried before this (see `entity_cell`).

use crate::events::CountryCode;

/// Words that open an address when a chunk starts with them ("Room 803", "No. 188").
const OPENING_WORDS: &[&str] = &[
    "no",
    "nos",
    "room",
    "rm",
    "rooms",
    "building",
    "bldg",
    "floor",
    "flat",
    "unit",
    "suite",
    "block",
    "blk",
    "office",
    "house",
    "apt",
    "apartment",
    "po",
    "p.o",
    "box",
    "plot",
    "lot",
    "kilometer",
    "km",
];

/// Words no name part uses: their presence anywhere in a chunk marks it as address, even beside
/// a name word ("third floor of U-shaped factory building").
const STRONG_ADDRESS_WORDS: &[&str] = &[
    "street",
    "st",
    "road",
    "rd",
    "avenue",
    "ave",
    "lane",
    "boulevard",
    "blvd",
    "prospekt",
    "prospect",
    "prosp",
    "pereulok",
    "shosse",
    "highway",
    "hwy",
    "ulitsa",
    "floor",
    "building",
    "bldg",
    "room",
    "rm",
    "district",
    "province",
    "oblast",
    "krai",
    "prefecture",
    "county",
    "caddesi",
    "sokak",
    "mahallesi",
    "jalan",
    "calle",
    "avenida",
    "rue",
    "strasse",
    "straße",
    "naberezhnaya",
    "ploshchad",
    "alley",
    "crescent",
    "township",
];

/// Address words that a name part may also use ("Free Zone Company"); a name word in the same
/// chunk wins over them.
const WEAK_ADDRESS_WORDS: &[&str] = &[
    "city",
    "town",
    "village",
    "zone",
    "park",
    "tower",
    "plaza",
    "office",
    "block",
    "region",
    "square",
    "estate",
    "industrial",
    "compound",
    "quarter",
    "sector",
    "area",
    "sk",
    "cad",
    "mah",
    "pr",
    "ul",
    "str",
    "dist",
];

/// Words of organisation names ("… Corporation, Second Academy, 23rd Research Institute").
const NAME_WORDS: &[&str] = &[
    "institute",
    "institution",
    "academy",
    "plant",
    "factory",
    "bureau",
    "company",
    "corporation",
    "corp",
    "research",
    "university",
    "college",
    "school",
    "laboratory",
    "laboratories",
    "lab",
    "group",
    "enterprise",
    "enterprises",
    "association",
    "works",
    "department",
    "division",
    "branch",
    "design",
    "holding",
    "holdings",
    "industries",
    "industry",
    "technology",
    "technologies",
    "electronics",
    "engineering",
    "systems",
    "trading",
    "limited",
    "ltd",
    "inc",
    "jsc",
    "ojsc",
    "pjsc",
    "cjsc",
    "ao",
    "pao",
    "oao",
    "zao",
    "llc",
    "concern",
    "ministry",
    "representative",
    "shipyard",
    "agency",
    "administration",
    "service",
    "services",
    "center",
    "centre",
    "academy",
    "npo",
    "npp",
    "kb",
    "okb",
    "gnpp",
    "fsue",
    "llp",
    "gmbh",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Certainly where an address starts (or continues).
    Address,
    /// Only found at an address's end: a postal code or a country.
    AddressTail,
    /// A part of an organisation's name.
    NamePart,
    /// Nothing decisive ("Moscow", "NPO Lightning").
    Unknown,
}

/// Where the name ends and the address begins in a cell's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Boundary {
    /// The name is `s[..name_end]` (a name-ending period stays with it: "Co., Ltd.").
    pub(super) name_end: usize,
    /// The address is `s[rest_start..]`.
    pub(super) rest_start: usize,
}

/// The top-level separators of `s` (outside parentheses, brackets and quotes): each comma, and
/// each period followed by a space that `ends_name` says ends a sentence ("Institute of Basic
/// Medicine. 27 Taiping Road"). As (byte offset, is a period).
fn separators(s: &str, ends_name: impl Fn(usize) -> bool) -> Vec<(usize, bool)> {
    let mut depth = 0i32;
    let mut quoted = false;
    let mut out = Vec::new();
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth = (depth - 1).max(0),
            '“' => quoted = true,
            '”' => quoted = false,
            ',' if depth == 0 && !quoted => out.push((i, false)),
            '.' if depth == 0
                && !quoted
                && s.get(i + 1..).is_some_and(|r| r.starts_with(' '))
                && ends_name(i) =>
            {
                out.push((i, true))
            }
            _ => {}
        }
    }
    out
}

/// The chunk's words, lowercased, without punctuation at their edges, with text in quotes left
/// out.
fn words(chunk: &str) -> Vec<String> {
    let mut unquoted = String::new();
    let mut quoted = false;
    for c in chunk.chars() {
        match c {
            '“' | '"' if !quoted => quoted = true,
            '”' | '"' if quoted => quoted = false,
            _ if !quoted => unquoted.push(c),
            _ => {}
        }
    }
    unquoted
        .split(|c: char| c.is_whitespace() || c == '/' || c == '-' || c == '(' || c == ')')
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

fn shape(chunk: &str, is_legal_form: bool) -> Shape {
    let t = chunk.trim().trim_end_matches('.');
    if t.is_empty() {
        return Shape::Unknown;
    }
    // Before the legal-form test, which takes a short capitalised "India." for an "S.A.";
    // two letters are a legal form ("AG", "SA"), not a country code.
    if t.chars().filter(|c| c.is_alphabetic()).count() > 2 && CountryCode::from_heading(t).is_some()
    {
        return Shape::AddressTail;
    }
    if is_legal_form {
        return Shape::NamePart;
    }
    let ws = words(t);
    let has = |list: &[&str]| ws.iter().any(|w| list.contains(&w.as_str()));
    let named = has(NAME_WORDS);
    let first = ws.first().map(String::as_str).unwrap_or_default();
    // "No.4", "No.188": the number glued to the abbreviation.
    // "R1102 B Tainyuangang Center", "B28 10/F": a unit code; "23rd Research Institute" and
    // "711 Aircraft Repair Plant" (digits first) are left to the name words below.
    let unit_code = {
        let letters = first.chars().take_while(char::is_ascii_alphabetic).count();
        (1..=2).contains(&letters)
            && first.len() > letters
            && first[letters..].chars().all(|c| c.is_ascii_digit())
    };
    let opens = OPENING_WORDS.contains(&first)
        || unit_code
        || t.starts_with('#')
        || t.to_lowercase().starts_with("c/o ")
        || (first.starts_with("no")
            && first.len() > 2
            && first[2..].chars().all(|c| c.is_ascii_digit()));
    if opens && !(named && first.starts_with("no")) {
        return Shape::Address;
    }
    if has(STRONG_ADDRESS_WORDS) {
        return Shape::Address;
    }
    // "AO GNPP “Region”", "“Central Design Bureau of Automation”": quoted names; "(ATCOP)":
    // an acronym in parentheses.
    if named || t.contains(['“', '"']) || t.starts_with('(') {
        return Shape::NamePart;
    }
    if has(WEAK_ADDRESS_WORDS) {
        return Shape::Address;
    }
    let digits = t.chars().filter(char::is_ascii_digit).count();
    let only_code = t
        .chars()
        .all(|c| c.is_ascii_digit() || c == '-' || c == ' ');
    if only_code && digits >= 5 {
        return Shape::AddressTail;
    }
    if digits > 0 {
        return Shape::Address;
    }
    Shape::Unknown
}

/// Where the address begins, or `None` when no chunk after the first has the shape of an
/// address. `is_legal_form` tells whether the text after a comma continues a name as a legal
/// form ("Co., Ltd.", "Almaz, JSC"); `ends_name` whether the period at a byte offset can end a
/// name (not "No." or "St.").
pub(super) fn address_start(
    s: &str,
    is_legal_form: impl Fn(&str) -> bool,
    ends_name: impl Fn(usize) -> bool,
) -> Option<Boundary> {
    let seps = separators(s, ends_name);
    let mut shapes = Vec::with_capacity(seps.len());
    for (k, &(p, is_period)) in seps.iter().enumerate() {
        let end = seps.get(k + 1).map_or(s.len(), |(q, _)| *q);
        let chunk = s.get(p + 1..end).unwrap_or_default();
        let rest = s.get(p + 1..).unwrap_or_default();
        let legal = if is_period {
            is_legal_form(chunk)
        } else {
            is_legal_form(rest)
        };
        shapes.push(shape(chunk, legal));
    }
    // The address begins after the last part of the name before the first chunk of an
    // address: the chunks between are localities ("People's Steel Mills, Javedan Nagar,
    // Manghopir Road", "Foo Trading, Dubai, United Arab Emirates").
    let first = shapes
        .iter()
        .position(|x| matches!(x, Shape::Address | Shape::AddressTail))?;
    let last_name = shapes
        .get(..first)
        .unwrap_or_default()
        .iter()
        .rposition(|x| *x == Shape::NamePart);
    let &(p, is_period) = seps.get(last_name.map_or(0, |k| k + 1))?;
    Some(Boundary {
        name_end: if is_period { p + 1 } else { p },
        rest_start: p + 1,
    })
}

/// Whether `s` (the text after a period or comma) opens an address, judged on its first chunk.
pub(super) fn opens_address(s: &str) -> bool {
    // The chunk ends at a comma, a semicolon or a sentence's period ("Kulakov. 12 …").
    let t = s.trim_start();
    let stop = t
        .char_indices()
        .find(|(i, c)| {
            *c == ','
                || *c == ';'
                || (*c == '.' && t.get(i + 1..).is_some_and(|r| r.starts_with(' ')))
        })
        .map_or(t.len(), |(i, c)| if c == '.' { i + 1 } else { i });
    let chunk = t.get(..stop).unwrap_or(t);
    shape(chunk, false) == Shape::Address
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> (&str, &str) {
        match address_start(s, |_| false, |_| true) {
            Some(b) => (&s[..b.name_end], s[b.rest_start..].trim_start()),
            None => (s, ""),
        }
    }

    #[test]
    fn comma_bearing_names_end_where_the_address_begins() {
        assert_eq!(
            split("Academy of Military Medical Sciences, Institute of Basic Medicine, 27 Taiping Road, Haidian District, Beijing, 100850, China"),
            ("Academy of Military Medical Sciences, Institute of Basic Medicine", "27 Taiping Road, Haidian District, Beijing, 100850, China")
        );
        assert_eq!(
            split("China Aerospace Science and Industry Corporation, Second Academy, 23rd Research Institute, No. 52 Yongding Road, Beijing"),
            ("China Aerospace Science and Industry Corporation, Second Academy, 23rd Research Institute", "No. 52 Yongding Road, Beijing")
        );
        assert_eq!(
            split("Tactical Missile Corporation, 711 Aircraft Repair Plant (711 ARZ), 18 Chkalova Pereulok, Borisoglebsk, Voronezhskaya Oblast, 397171, Russia").0,
            "Tactical Missile Corporation, 711 Aircraft Repair Plant (711 ARZ)"
        );
        assert_eq!(
            split("Tactical Missile Corporation, AO GNPP “Region”, 10 Turaevo I.Z., Lytkarino City, Moscow Region, 140080, Russia").0,
            "Tactical Missile Corporation, AO GNPP “Region”"
        );
        assert_eq!(
            split("Tactical Missile Corporation, NPO Lightning, 5K1 Lodochnaya Street, Moscow, Russia").0,
            "Tactical Missile Corporation, NPO Lightning"
        );
        assert_eq!(
            split("Tactical Missile Corporation, “Central Design Bureau of Automation”, 24A Kosmicheski Prospekt, Omsk, Russia").0,
            "Tactical Missile Corporation, “Central Design Bureau of Automation”"
        );
        assert_eq!(
            split("People's Steel Mills, Javedan Nagar, Manghopir Road, 75890, Karachi, Pakistan")
                .0,
            "People's Steel Mills"
        );
    }

    #[test]
    fn a_city_and_country_only_address_starts_after_the_last_name_part() {
        assert_eq!(
            split("Foo Trading, Dubai, United Arab Emirates").0,
            "Foo Trading"
        );
        assert_eq!(
            split("Academy of X, Institute of Y, Beijing, 100850, China").0,
            "Academy of X, Institute of Y"
        );
    }

    #[test]
    fn no_address_shape_means_no_answer() {
        assert_eq!(address_start("Foo, Bar", |_| false, |_| true), None);
        assert_eq!(address_start("Foo", |_| false, |_| true), None);
    }

    #[test]
    fn opening_words_and_street_words() {
        for a in [
            "Room 803, Chevalier House",
            "No.4 Zihua Rd.",
            "Flat D, 14/F.",
            "Electrosignalnaya Street",
            "Dongdao Village",
            "#1802 Daeryung Techno 15th",
            "South of the third floor of U-shaped factory building",
        ] {
            assert!(opens_address(a), "{a}");
        }
        for n in [
            "Second Academy",
            "JSC “KRASNY GIDROPRESS”",
            "Moscow",
            "23rd Research Institute",
        ] {
            assert!(!opens_address(n), "{n}");
        }
    }
}
