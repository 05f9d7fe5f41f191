//! The change-event schema: what the watcher says happened to the Entity List.
//!
//! Everything downstream (bus, screening, store, alerts) speaks these types, so they sit at the
//! centre of the data flow and must never import an I/O crate (no sqlx, reqwest, rdkafka, axum).
//! Types here parse, they do not validate: an [`EntityChange`] that exists has a non-empty name
//! and a stable [`EntityKey`]; code that holds one never re-checks it.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// The version of the JSON shape of [`ChangeEvent`]; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// What a rule did to one entry of Supplement No. 4 to part 744.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeAction {
    Added,
    Removed,
    Revised,
}

impl ChangeAction {
    pub const ALL: &'static [ChangeAction] = &[
        ChangeAction::Added,
        ChangeAction::Removed,
        ChangeAction::Revised,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChangeAction::Added => "added",
            ChangeAction::Removed => "removed",
            ChangeAction::Revised => "revised",
        }
    }
}

impl fmt::Display for ChangeAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a domain value could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("an entity name must contain at least one letter or digit, got {0:?}")]
    EmptyName(String),
    #[error("an entity key must look like `CC/words-of-the-name`, got {0:?}")]
    MalformedKey(String),
}

/// A listed entity's name: trimmed, whitespace collapsed, never empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EntityName(String);

impl EntityName {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let collapsed = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        if collapsed.chars().any(char::is_alphanumeric) {
            Ok(EntityName(collapsed))
        } else {
            Err(DomainError::EmptyName(raw.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Splits a trailing bracketed alias off the name: "Avin Electronics Technology Co., Ltd.
    /// (AETC)" is the primary name "Avin Electronics Technology Co., Ltd." and the alias
    /// "AETC". Only an alias-like group counts — at most eight words, no colon (so "(Parent
    /// Organization: ...)" stays part of the name) — and only when a name remains before it.
    /// Brackets inside the name ("Chemtech International (Private) Limited") are left alone.
    pub fn split_trailing_alias(&self) -> (&str, Option<&str>) {
        let name = self.0.as_str();
        let Some(inner_end) = name.strip_suffix(')') else {
            return (name, None);
        };
        // Find the '(' that opens the final group, allowing nested brackets inside it.
        let mut depth = 0usize;
        let mut open = None;
        for (i, c) in inner_end.char_indices().rev() {
            match c {
                ')' => depth += 1,
                '(' if depth == 0 => {
                    open = Some(i);
                    break;
                }
                '(' => depth -= 1,
                _ => {}
            }
        }
        let Some(open) = open else {
            return (name, None);
        };
        let primary = name[..open].trim_end();
        let alias = inner_end[open + 1..].trim();
        let alias_like = !alias.is_empty()
            && !alias.contains(':')
            && alias.split_whitespace().count() <= 8
            && alias.chars().any(char::is_alphanumeric);
        if alias_like && primary.chars().any(char::is_alphanumeric) {
            (primary, Some(alias))
        } else {
            (name, None)
        }
    }
}

impl TryFrom<String> for EntityName {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        EntityName::parse(&value)
    }
}

impl From<EntityName> for String {
    fn from(value: EntityName) -> Self {
        value.0
    }
}

impl fmt::Display for EntityName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The stable identity of an Entity List entry across rules: `CC/normalised-name`.
///
/// Derived from the country heading the entry sits under and its name folded to lowercase ASCII
/// words, so "Hangzhou Hikvision Digital Technology Co., Ltd." under CHINA is
/// `CN/hangzhou-hikvision-digital-technology-co-ltd` in the rule that adds it, in the rule that
/// revises it and in the rule that removes it. It is also the Kafka message key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EntityKey(String);

impl EntityKey {
    /// The key for `name` listed under the country `country` (ISO code, or `XX` when unknown).
    ///
    /// One identity whatever source names the entry: the key is made of the entry's primary
    /// name, without a trailing bracketed alias ("Huawei Technologies Co., Ltd. (Huawei)" is
    /// `CN/huawei-technologies-co-ltd`, as a rule that writes the alias in its a.k.a. list has
    /// it). See [`EntityName::split_trailing_alias`].
    pub fn derive(country: &CountryCode, name: &EntityName) -> Self {
        let (primary, _) = name.split_trailing_alias();
        EntityKey(format!(
            "{}/{}",
            country.as_str(),
            fold_to_key_words(primary)
        ))
    }

    /// The country part of the key.
    pub fn country(&self) -> &str {
        self.0.split_once('/').map_or("", |(cc, _)| cc)
    }

    /// The name words of the key.
    pub fn words(&self) -> &str {
        self.0.split_once('/').map_or("", |(_, w)| w)
    }

    /// The key words `name` folds to (primary name, as in [`EntityKey::derive`]).
    pub fn words_of(name: &str) -> String {
        let primary = EntityName::parse(name)
            .map(|n| n.split_trailing_alias().0.to_string())
            .unwrap_or_else(|_| name.to_string());
        fold_to_key_words(&primary)
    }

    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let (cc, words) = raw
            .split_once('/')
            .ok_or_else(|| DomainError::MalformedKey(raw.to_string()))?;
        let cc_ok = cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_uppercase());
        let words_ok = !words.is_empty()
            && words
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if cc_ok && words_ok {
            Ok(EntityKey(raw.to_string()))
        } else {
            Err(DomainError::MalformedKey(raw.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EntityKey {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        EntityKey::parse(&value)
    }
}

impl From<EntityKey> for String {
    fn from(value: EntityKey) -> Self {
        value.0
    }
}

impl fmt::Display for EntityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lowercase ASCII words joined by `-`: accents dropped, other scripts transliterated, every
/// run of punctuation and space one separator. Never empty for a valid [`EntityName`].
pub(crate) fn fold_to_key_words(name: &str) -> String {
    let decomposed: String = name
        .nfkd()
        .filter(|c| c.is_ascii() || !is_combining(*c))
        .collect();
    let ascii = any_ascii::any_ascii(&decomposed).to_ascii_lowercase();
    let words: Vec<&str> = ascii
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        "unnamed".to_string()
    } else {
        words.join("-")
    }
}

fn is_combining(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

/// An ISO 3166-1 alpha-2 code, or `XX` where the heading names no country we know.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CountryCode(String);

impl CountryCode {
    pub const UNKNOWN: &'static str = "XX";

    pub fn unknown() -> Self {
        CountryCode(Self::UNKNOWN.to_string())
    }

    /// Accepts a two-letter code (any case).
    pub fn parse(raw: &str) -> Option<Self> {
        let t = raw.trim();
        (t.len() == 2 && t.chars().all(|c| c.is_ascii_alphabetic()))
            .then(|| CountryCode(t.to_ascii_uppercase()))
    }

    /// The code for a country heading as the Entity List writes it ("CHINA, PEOPLE'S REPUBLIC OF",
    /// "KOREA, NORTH", "RUSSIA"), for a plain country name ("China"), or for an ISO code.
    pub fn from_heading(heading: &str) -> Option<Self> {
        let folded = fold_to_key_words(heading);
        if let Some(code) = CountryCode::parse(heading) {
            // A bare two-letter heading is a code only if it is not a word we know as a name.
            if !COUNTRY_NAMES.iter().any(|(n, _)| *n == folded) {
                return Some(code);
            }
        }
        COUNTRY_NAMES
            .iter()
            .find(|(n, _)| *n == folded)
            .map(|(_, c)| CountryCode((*c).to_string()))
    }

    pub fn is_unknown(&self) -> bool {
        self.0 == Self::UNKNOWN
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CountryCode {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        CountryCode::parse(&value)
            .ok_or_else(|| format!("not a two-letter country code: {value:?}"))
    }
}

impl From<CountryCode> for String {
    fn from(value: CountryCode) -> Self {
        value.0
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Country headings of Supplement No. 4 (and common plain names), folded as by
/// `fold_to_key_words`, with their ISO codes. Crimea is listed by BIS under UKRAINE headings but
/// the CSL sometimes writes "CRIMEA (OCCUPIED)": both map to UA.
const COUNTRY_NAMES: &[(&str, &str)] = &[
    ("afghanistan", "AF"),
    ("armenia", "AM"),
    ("argentina", "AR"),
    ("austria", "AT"),
    ("australia", "AU"),
    ("azerbaijan", "AZ"),
    ("bahrain", "BH"),
    ("belarus", "BY"),
    ("belgium", "BE"),
    ("belize", "BZ"),
    ("bolivia", "BO"),
    ("brazil", "BR"),
    ("bulgaria", "BG"),
    ("burma", "MM"),
    ("myanmar", "MM"),
    ("canada", "CA"),
    ("chile", "CL"),
    ("china", "CN"),
    ("china-people-s-republic-of", "CN"),
    ("china-peoples-republic-of", "CN"),
    ("people-s-republic-of-china", "CN"),
    ("costa-rica", "CR"),
    ("crimea-occupied", "UA"),
    ("crimea-region-of-ukraine", "UA"),
    ("cuba", "CU"),
    ("cyprus", "CY"),
    ("czech-republic", "CZ"),
    ("czechia", "CZ"),
    ("denmark", "DK"),
    ("ecuador", "EC"),
    ("egypt", "EG"),
    ("estonia", "EE"),
    ("finland", "FI"),
    ("france", "FR"),
    ("georgia", "GE"),
    ("germany", "DE"),
    ("greece", "GR"),
    ("hong-kong", "HK"),
    ("hong-kong-special-administrative-region", "HK"),
    ("hungary", "HU"),
    ("india", "IN"),
    ("indonesia", "ID"),
    ("iran", "IR"),
    ("iraq", "IQ"),
    ("ireland", "IE"),
    ("israel", "IL"),
    ("italy", "IT"),
    ("jamaica", "JM"),
    ("japan", "JP"),
    ("jordan", "JO"),
    ("kazakhstan", "KZ"),
    ("kenya", "KE"),
    ("korea-north", "KP"),
    ("korea-south", "KR"),
    ("north-korea", "KP"),
    ("south-korea", "KR"),
    ("kyrgyzstan", "KG"),
    ("laos", "LA"),
    ("latvia", "LV"),
    ("lebanon", "LB"),
    ("lithuania", "LT"),
    ("luxembourg", "LU"),
    ("madagascar", "MG"),
    ("malaysia", "MY"),
    ("malta", "MT"),
    ("mexico", "MX"),
    ("morocco", "MA"),
    ("netherlands", "NL"),
    ("the-netherlands", "NL"),
    ("new-zealand", "NZ"),
    ("nicaragua", "NI"),
    ("north-macedonia", "MK"),
    ("norway", "NO"),
    ("oman", "OM"),
    ("pakistan", "PK"),
    ("panama", "PA"),
    ("paraguay", "PY"),
    ("peru", "PE"),
    ("philippines", "PH"),
    ("poland", "PL"),
    ("portugal", "PT"),
    ("qatar", "QA"),
    ("romania", "RO"),
    ("russia", "RU"),
    ("russian-federation", "RU"),
    ("saudi-arabia", "SA"),
    ("senegal", "SN"),
    ("serbia", "RS"),
    ("singapore", "SG"),
    ("slovakia", "SK"),
    ("slovenia", "SI"),
    ("south-africa", "ZA"),
    ("south-sudan", "SS"),
    ("spain", "ES"),
    ("sri-lanka", "LK"),
    ("sweden", "SE"),
    ("switzerland", "CH"),
    ("syria", "SY"),
    ("taiwan", "TW"),
    ("tajikistan", "TJ"),
    ("thailand", "TH"),
    ("turkey", "TR"),
    ("turkiye", "TR"),
    ("uganda", "UG"),
    ("ukraine", "UA"),
    ("united-arab-emirates", "AE"),
    ("uae", "AE"),
    ("united-kingdom", "GB"),
    ("uzbekistan", "UZ"),
    ("venezuela", "VE"),
    ("vietnam", "VN"),
    ("yemen", "YE"),
];

/// The Federal Register document a change came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceDocument {
    /// FR document number, e.g. `2019-22210` (always with an ASCII hyphen, also for documents
    /// printed before March 2024 with an en dash).
    pub document_number: String,
    pub publication_date: Option<NaiveDate>,
    pub effective_date: Option<NaiveDate>,
    /// The rule's citation, e.g. `84 FR 54002`.
    pub citation: Option<String>,
    pub title: Option<String>,
    pub html_url: Option<String>,
}

impl SourceDocument {
    /// A document known only by its number (as when parsing a file given on the command line).
    pub fn from_number(document_number: &str) -> Self {
        SourceDocument {
            document_number: normalise_document_number(document_number),
            publication_date: None,
            effective_date: None,
            citation: None,
            title: None,
            html_url: None,
        }
    }
}

/// `2019–22210` (en dash, as printed before March 2024) and `2019-22210` are the same document.
pub fn normalise_document_number(raw: &str) -> String {
    raw.trim()
        .chars()
        .map(|c| match c {
            '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
            c => c,
        })
        .collect()
}

/// One change to one Entity List entry, as a rule states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityChange {
    pub action: ChangeAction,
    pub entity_key: EntityKey,
    /// For a revision that renames the entry: the key under the name the instruction used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_key: Option<EntityKey>,
    pub name: EntityName,
    pub aliases: Vec<String>,
    pub addresses: Vec<String>,
    /// ISO code of the country heading the entry is listed under (`XX` if unrecognised).
    pub country: CountryCode,
    /// The heading exactly as the rule writes it, e.g. "CHINA, PEOPLE'S REPUBLIC OF".
    pub country_name: String,
    pub license_requirement: Option<String>,
    pub license_policy: Option<String>,
    /// The entry's own citation column, e.g. "84 FR 54002, 10/9/19."
    pub federal_register_citation: Option<String>,
    pub source: SourceDocument,
    /// What kind of party the entry is, when the source says so (the CSL `type` column, on a
    /// list sync); absent when it does not, which is how rules state their entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<crate::screening::Schema>,
}

impl EntityChange {
    /// Builds a change; the key is derived from `country` and `name`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        action: ChangeAction,
        name: EntityName,
        country: CountryCode,
        country_name: impl Into<String>,
        source: SourceDocument,
    ) -> Self {
        EntityChange {
            action,
            entity_key: EntityKey::derive(&country, &name),
            previous_key: None,
            name,
            aliases: Vec::new(),
            addresses: Vec::new(),
            country,
            country_name: country_name.into(),
            license_requirement: None,
            license_policy: None,
            federal_register_citation: None,
            source,
            schema: None,
        }
    }
}

/// Whether a document is published or only on public inspection (text not final).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentStage {
    Published,
    PublicInspection,
}

/// One event per rule (or public-inspection filing), so a rule the parser could not read is
/// still seen by whoever watches the topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentEvent {
    pub stage: DocumentStage,
    pub source: SourceDocument,
    /// The amendatory instructions (`AMDPAR`) touching Supplement No. 4, verbatim.
    pub amendatory_text: Vec<String>,
    /// How many entity changes the parser emitted for this document.
    pub change_count: usize,
    /// What the parser could not reconcile (instructions vs table, unreadable rows, ...).
    pub warnings: Vec<String>,
}

/// What goes on the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChangeEvent {
    Entity(EntityChange),
    Document(DocumentEvent),
}

impl ChangeEvent {
    /// The partition key: the entity key, or `document/NUMBER` for document-level events.
    pub fn key(&self) -> String {
        match self {
            ChangeEvent::Entity(c) => c.entity_key.to_string(),
            ChangeEvent::Document(d) => format!("document/{}", d.source.document_number),
        }
    }

    pub fn document_number(&self) -> &str {
        match self {
            ChangeEvent::Entity(c) => &c.source.document_number,
            ChangeEvent::Document(d) => &d.source.document_number,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_stable_across_punctuation_and_case() {
        let cn = CountryCode::from_heading("CHINA, PEOPLE'S REPUBLIC OF").unwrap();
        let a = EntityKey::derive(
            &cn,
            &EntityName::parse("Hangzhou Hikvision Digital Technology Co., Ltd.").unwrap(),
        );
        let b = EntityKey::derive(
            &cn,
            &EntityName::parse("  HANGZHOU  Hikvision digital technology co ltd").unwrap(),
        );
        assert_eq!(a, b);
        assert_eq!(
            a.as_str(),
            "CN/hangzhou-hikvision-digital-technology-co-ltd"
        );
    }

    #[test]
    fn key_folds_other_scripts_and_accents() {
        let ru = CountryCode::from_heading("RUSSIA").unwrap();
        let k = EntityKey::derive(&ru, &EntityName::parse("ООО «Ромашка»").unwrap());
        assert_eq!(k.as_str(), "RU/ooo-romashka");
        let tr = CountryCode::from_heading("Turkey").unwrap();
        let k = EntityKey::derive(&tr, &EntityName::parse("Şirket Güneş").unwrap());
        assert_eq!(k.as_str(), "TR/sirket-gunes");
    }

    #[test]
    fn empty_names_are_refused() {
        assert!(EntityName::parse("  ").is_err());
        assert!(EntityName::parse("—;").is_err());
        assert_eq!(EntityName::parse(" a  b ").unwrap().as_str(), "a b");
    }

    #[test]
    fn headings_map_to_iso_codes() {
        for (h, c) in [
            ("CHINA, PEOPLE'S REPUBLIC OF", "CN"),
            ("CHINA, PEOPLE’S REPUBLIC OF", "CN"),
            ("KOREA, NORTH", "KP"),
            ("UNITED ARAB EMIRATES", "AE"),
            ("HONG KONG", "HK"),
            ("cn", "CN"),
        ] {
            assert_eq!(CountryCode::from_heading(h).unwrap().as_str(), c, "{h}");
        }
        assert!(CountryCode::from_heading("ATLANTIS").is_none());
    }

    #[test]
    fn key_round_trips_through_json_and_rejects_garbage() {
        let k = EntityKey::parse("CN/iflytek").unwrap();
        let j = serde_json::to_string(&k).unwrap();
        assert_eq!(serde_json::from_str::<EntityKey>(&j).unwrap(), k);
        assert!(serde_json::from_str::<EntityKey>("\"cn/x\"").is_err());
        assert!(serde_json::from_str::<EntityKey>("\"CN/\"").is_err());
    }

    #[test]
    fn en_dash_document_numbers_are_normalised() {
        assert_eq!(normalise_document_number("2019–22210"), "2019-22210");
    }

    #[test]
    fn a_trailing_bracketed_alias_is_not_part_of_the_key() {
        let cn = CountryCode::parse("CN").unwrap();
        let with = EntityName::parse("Huawei Technologies Co., Ltd. (Huawei)").unwrap();
        let without = EntityName::parse("Huawei Technologies Co., Ltd.").unwrap();
        assert_eq!(
            EntityKey::derive(&cn, &with),
            EntityKey::derive(&cn, &without)
        );
        assert_eq!(
            EntityKey::derive(&cn, &with).as_str(),
            "CN/huawei-technologies-co-ltd"
        );
        assert_eq!(
            with.split_trailing_alias(),
            ("Huawei Technologies Co., Ltd.", Some("Huawei"))
        );
    }

    #[test]
    fn brackets_that_are_not_an_alias_stay_in_the_name() {
        for raw in [
            "Chemtech International (Private) Limited",
            "Baotou Guanghua Chemical Industrial Corporation (Parent Organization: China National Nuclear Group Corporation (CNNC))",
            "(AETC)",
            "China Aerospace Science and Industry Corporation (CASIC) 3rd Academy",
        ] {
            let n = EntityName::parse(raw).unwrap();
            assert_eq!(n.split_trailing_alias(), (raw, None), "{raw}");
        }
        let nested = EntityName::parse("Institute (Branch (North))").unwrap();
        assert_eq!(
            nested.split_trailing_alias(),
            ("Institute", Some("Branch (North)"))
        );
    }
}
