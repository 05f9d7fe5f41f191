//! Countries as people write them: in supplier files, list addresses and `--country` flags.
//! Domain only: no I/O here.
//!
//! The names come from [`super::country_table`], generated from the ISO 3166-1 data of a
//! maintained crate (see the command at its top); the Entity List's own headings
//! ([`CountryCode::from_heading`]) are recognised first, as the list writes them.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::country_table::COUNTRIES;
use crate::events::{fold_to_key_words, CountryCode};

/// A country as written in a supplier file or a list address: an assigned ISO 3166-1 alpha-2
/// code ("CN", any case), an alpha-3 code ("DEU"), a heading the Entity List uses ("KOREA,
/// NORTH"), the ISO short or long name ("Iran (Islamic Republic of)"), a common English name
/// ("USA", "UK", "Great Britain", "Macau", "Ivory Coast") or the country's name in its own
/// language ("Deutschland", "中国", "Россия"). Case, accents and punctuation are ignored.
/// Two letters that are not an assigned code ("QQ", a US state such as "TX" that is not also a
/// country code) are not a country: a silent wrong country would weaken screening evidence.
pub fn recognise_country(raw: &str) -> Option<CountryCode> {
    let t = raw.trim();
    if t.is_empty() {
        return None;
    }
    if let Some(code) = CountryCode::from_heading(t).filter(|c| is_assigned(c.as_str())) {
        return Some(code);
    }
    if t.len() == 3 && t.chars().all(|c| c.is_ascii_alphabetic()) {
        if let Some((alpha2, _, _)) = COUNTRIES
            .iter()
            .find(|(_, alpha3, _)| alpha3.eq_ignore_ascii_case(t))
        {
            return CountryCode::parse(alpha2);
        }
    }
    let folded = fold_to_key_words(t);
    let folded = folded.strip_prefix("the-").unwrap_or(&folded);
    NAMES.get(folded).and_then(|code| CountryCode::parse(code))
}

/// XK (Kosovo) is not assigned by ISO, but the screening lists use it.
fn is_assigned(alpha2: &str) -> bool {
    alpha2 == "XK" || COUNTRIES.iter().any(|(code, _, _)| *code == alpha2)
}

/// Folded name → alpha-2. A name two countries share (after folding) is left out: it would
/// give one of them a wrong country.
static NAMES: LazyLock<HashMap<String, &'static str>> = LazyLock::new(|| {
    let mut names: HashMap<String, Option<&'static str>> = HashMap::new();
    for (alpha2, _, written) in COUNTRIES {
        for name in *written {
            let folded = fold_to_key_words(name);
            let folded = folded.strip_prefix("the-").unwrap_or(&folded).to_string();
            if folded == "unnamed" {
                continue;
            }
            names
                .entry(folded)
                .and_modify(|code| {
                    if *code != Some(*alpha2) {
                        *code = None;
                    }
                })
                .or_insert(Some(*alpha2));
        }
    }
    names
        .into_iter()
        .filter_map(|(name, code)| code.map(|c| (name, c)))
        .collect()
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_people_write_are_recognised() {
        for (raw, code) in [
            ("United States", "US"),
            ("USA", "US"),
            ("usa", "US"),
            ("United States of America", "US"),
            ("UK", "GB"),
            ("Great Britain", "GB"),
            ("United Kingdom", "GB"),
            ("Iran, Islamic Republic of", "IR"),
            ("Iran (Islamic Republic of)", "IR"),
            ("Viet Nam", "VN"),
            ("Vietnam", "VN"),
            ("Cote d'Ivoire", "CI"),
            ("Côte d’Ivoire", "CI"),
            ("Ivory Coast", "CI"),
            ("Macau", "MO"),
            ("Macao", "MO"),
            ("Deutschland", "DE"),
            ("中国", "CN"),
            ("Россия", "RU"),
            ("Russian Federation", "RU"),
            ("DEU", "DE"),
            ("chn", "CN"),
            ("The Netherlands", "NL"),
            ("South Korea", "KR"),
            ("North Korea", "KP"),
        ] {
            assert_eq!(
                recognise_country(raw).map(|c| c.as_str().to_string()),
                Some(code.to_string()),
                "{raw}"
            );
        }
    }

    #[test]
    fn entity_list_headings_and_codes_still_work() {
        for (raw, code) in [
            ("CHINA, PEOPLE'S REPUBLIC OF", "CN"),
            ("KOREA, NORTH", "KP"),
            ("RUSSIA", "RU"),
            ("cn", "CN"),
            ("xk", "XK"),
        ] {
            assert_eq!(recognise_country(raw).unwrap().as_str(), code, "{raw}");
        }
    }

    #[test]
    fn what_is_no_country_stays_none() {
        for raw in ["QQ", "TX", "XX", "XXX", "Atlantis", "", "  "] {
            assert!(recognise_country(raw).is_none(), "{raw}");
        }
    }

    #[test]
    fn the_table_covers_iso_3166() {
        assert!(COUNTRIES.len() >= 249, "{}", COUNTRIES.len());
        for (alpha2, alpha3, names) in COUNTRIES {
            assert_eq!(alpha2.len(), 2);
            assert_eq!(alpha3.len(), 3);
            assert!(!names.is_empty(), "{alpha2}");
        }
    }
}
