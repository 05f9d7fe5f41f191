//! An entry of the stored Entity List snapshot, whatever source made it (a Consolidated
//! Screening List import, a rule's change event): what screening compares suppliers against.
//! Domain only: no I/O here.

use serde::{Deserialize, Serialize};

use crate::events::{ChangeAction, CountryCode, EntityChange, EntityKey, EntityName};
use crate::screening::Schema;

/// The CSL's name of the Entity List, the list the watcher follows.
pub const ENTITY_LIST_SOURCE: &str = "Entity List (EL) - Bureau of Industry and Security";

/// One entry of the stored list snapshot, whatever it came from (a CSL import or a change
/// event): what screening compares suppliers against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    pub entity_key: EntityKey,
    pub name: EntityName,
    pub aliases: Vec<String>,
    pub addresses: Vec<String>,
    pub countries: Vec<CountryCode>,
    pub license_requirement: Option<String>,
    pub license_policy: Option<String>,
    pub federal_register_citation: Option<String>,
    /// The CSL list name, e.g. [`ENTITY_LIST_SOURCE`].
    pub source_list: String,
    /// What kind of party the entry is, when its source says (the CSL `type` column, a rule's
    /// entry naming a legal form); `None` is unknown, and is scored as before kinds existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Schema>,
}

impl ListEntry {
    /// The entry as a rule states it; the watcher follows only the Entity List.
    pub fn from_change(c: &EntityChange) -> Self {
        ListEntry {
            entity_key: c.entity_key.clone(),
            name: c.name.clone(),
            aliases: c.aliases.clone(),
            addresses: c.addresses.clone(),
            countries: if c.country.is_unknown() {
                Vec::new()
            } else {
                vec![c.country.clone()]
            },
            license_requirement: c.license_requirement.clone(),
            license_policy: c.license_policy.clone(),
            federal_register_citation: c.federal_register_citation.clone(),
            source_list: ENTITY_LIST_SOURCE.to_string(),
            schema: c.schema.or_else(|| schema_from_rule_name(c.name.as_str())),
        }
    }

    /// Folds another row with the same key into this one. The CSL lists some entries several
    /// times (one row per country heading or per rule); no name, alias, address or citation
    /// may be lost in the fold, since screening needs every one of them.
    pub fn absorb(&mut self, other: ListEntry) {
        // Two rows of one key that disagree on the kind leave it unknown rather than guess.
        self.schema = match (self.schema, other.schema) {
            (Some(a), Some(b)) if a != b => None,
            (a, b) => a.or(b),
        };
        if other.name != self.name {
            self.aliases.push(other.name.as_str().to_string());
        }
        self.aliases.extend(other.aliases);
        self.aliases = dedup_strings(std::mem::take(&mut self.aliases))
            .into_iter()
            .filter(|a| a != self.name.as_str())
            .collect();
        self.addresses = dedup_strings(
            std::mem::take(&mut self.addresses)
                .into_iter()
                .chain(other.addresses),
        );
        for c in other.countries {
            if !self.countries.contains(&c) {
                self.countries.push(c);
            }
        }
        join_distinct(
            &mut self.license_requirement,
            other.license_requirement,
            " | ",
        );
        join_distinct(&mut self.license_policy, other.license_policy, " | ");
        join_distinct(
            &mut self.federal_register_citation,
            other.federal_register_citation,
            "; ",
        );
    }
}

/// The kind a rule's entry makes clear by itself: a name carrying a legal form ("... Co.,
/// Ltd.", "OOO ...", "... GmbH") is a company's. Anything else stays unknown: an entry's bare
/// name ("Abdul Satar Ghoura") says too little, and a wrong `Person` would silence alerts.
pub fn schema_from_rule_name(name: &str) -> Option<Schema> {
    (!crate::screening::normalise(name).legal_forms.is_empty()).then_some(Schema::Company)
}

pub(crate) fn join_distinct(mine: &mut Option<String>, theirs: Option<String>, sep: &str) {
    let Some(theirs) = theirs else { return };
    match mine {
        None => *mine = Some(theirs),
        Some(m) => {
            if !m.split(sep).any(|part| part == theirs) {
                m.push_str(sep);
                m.push_str(&theirs);
            }
        }
    }
}

/// The distinct strings of `items`, in first-seen order.
pub(crate) fn dedup_strings(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// How a change found the stored entry it revises or removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// An entry with the change's own key.
    Key(EntityKey),
    /// An entry under the same country whose name or an alias is the change's name (or one of
    /// its aliases): the same entry, keyed by another source or an older key rule.
    NameInCountry(EntityKey),
    /// The only entry in any country with that name: an entry moved or keyed under another
    /// country by its source.
    NameAcrossCountries(EntityKey),
    /// Nothing stored is this entry.
    Unmatched,
}

impl Resolution {
    /// The stored key the change applies to, if any.
    pub fn key(&self) -> Option<&EntityKey> {
        match self {
            Resolution::Key(k)
            | Resolution::NameInCountry(k)
            | Resolution::NameAcrossCountries(k) => Some(k),
            Resolution::Unmatched => None,
        }
    }

    /// How it was found, as the entry history records it.
    pub fn matched_by(&self) -> &'static str {
        match self {
            Resolution::Key(_) => "key",
            Resolution::NameInCountry(_) => "name_in_country",
            Resolution::NameAcrossCountries(_) => "name_across_countries",
            Resolution::Unmatched => "unmatched",
        }
    }
}

/// A stored entry as identity resolution sees it.
#[derive(Debug, Clone)]
pub struct IdentityCandidate {
    pub key: EntityKey,
    pub name: String,
    pub aliases: Vec<String>,
}

/// Finds the stored entry a change names: by key first, then by name or alias within the
/// change's country, then across countries — where a name must be unambiguous (one entry), or
/// it is no identity at all and the change stays unmatched rather than touch a guess.
pub fn resolve_identity(
    key: &EntityKey,
    names: &[&str],
    candidates: &[IdentityCandidate],
) -> Resolution {
    if candidates.iter().any(|c| &c.key == key) {
        return Resolution::Key(key.clone());
    }
    let wanted: Vec<String> = names.iter().map(|n| EntityKey::words_of(n)).collect();
    let same_entity = |c: &IdentityCandidate| {
        std::iter::once(c.name.as_str())
            .chain(c.aliases.iter().map(String::as_str))
            .any(|n| wanted.contains(&EntityKey::words_of(n)))
    };
    let in_country: Vec<&IdentityCandidate> = candidates
        .iter()
        .filter(|c| c.key.country() == key.country() && same_entity(c))
        .collect();
    if let [one] = in_country.as_slice() {
        return Resolution::NameInCountry(one.key.clone());
    }
    if in_country.is_empty() {
        let anywhere: Vec<&IdentityCandidate> =
            candidates.iter().filter(|c| same_entity(c)).collect();
        if let [one] = anywhere.as_slice() {
            return Resolution::NameAcrossCountries(one.key.clone());
        }
    }
    Resolution::Unmatched
}

/// The stored entry `change` is about. A rename names the old entry by its previous key, which
/// then decides; otherwise [`resolve_identity`] on the change's name and aliases. Two entries of
/// one name in different countries may well be two entities, so only a revision or removal —
/// which must be about something listed — looks abroad; an addition never does.
pub fn resolve_change(change: &EntityChange, candidates: &[IdentityCandidate]) -> Resolution {
    if let Some(previous) = change
        .previous_key
        .as_ref()
        .filter(|p| candidates.iter().any(|c| &c.key == *p))
    {
        if previous != &change.entity_key {
            return Resolution::Key(change.entity_key.clone());
        }
    }
    let names: Vec<&str> = std::iter::once(change.name.as_str())
        .chain(change.aliases.iter().map(String::as_str))
        .collect();
    match resolve_identity(&change.entity_key, &names, candidates) {
        Resolution::NameAcrossCountries(_) if change.action == ChangeAction::Added => {
            Resolution::Unmatched
        }
        found => found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_entry_with_a_legal_form_is_a_company_and_a_bare_name_unknown() {
        assert_eq!(
            schema_from_rule_name("Hangzhou Hikvision Digital Technology Co., Ltd."),
            Some(Schema::Company)
        );
        assert_eq!(schema_from_rule_name("OOO Romashka"), Some(Schema::Company));
        assert_eq!(schema_from_rule_name("Abdul Satar Ghoura"), None);
        assert_eq!(
            schema_from_rule_name("Harbin Institute of Technology"),
            None
        );
    }

    fn candidate(key: &str, name: &str, aliases: &[&str]) -> IdentityCandidate {
        IdentityCandidate {
            key: EntityKey::parse(key).unwrap(),
            name: name.to_string(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
        }
    }

    #[test]
    fn key_then_name_in_country_then_across_countries() {
        let stored = vec![
            candidate(
                "CN/huawei-technologies-co-ltd-huawei",
                "Huawei Technologies Co., Ltd. (Huawei)",
                &[],
            ),
            candidate("HK/sky-shine-trading", "Sky Shine Trading", &["Skyshine"]),
            candidate("RU/alpha", "Alpha", &[]),
            candidate("BY/alpha", "Alpha", &[]),
        ];
        let key = |k: &str| EntityKey::parse(k).unwrap();
        assert_eq!(
            resolve_identity(&key("RU/alpha"), &["Alpha"], &stored),
            Resolution::Key(key("RU/alpha"))
        );
        assert_eq!(
            resolve_identity(
                &key("CN/huawei-technologies-co-ltd"),
                &["Huawei Technologies Co., Ltd."],
                &stored
            ),
            Resolution::NameInCountry(key("CN/huawei-technologies-co-ltd-huawei"))
        );
        assert_eq!(
            resolve_identity(&key("CN/skyshine"), &["Skyshine"], &stored),
            Resolution::NameAcrossCountries(key("HK/sky-shine-trading"))
        );
        // Two entries named Alpha elsewhere: ambiguous, so no identity.
        assert_eq!(
            resolve_identity(&key("CN/alpha"), &["Alpha"], &stored),
            Resolution::Unmatched
        );
        assert_eq!(
            resolve_identity(&key("CN/nobody"), &["Nobody"], &stored),
            Resolution::Unmatched
        );
    }
}
