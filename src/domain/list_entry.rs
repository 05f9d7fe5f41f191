//! An entry of the stored Entity List snapshot, whatever source made it (a Consolidated
//! Screening List import, a rule's change event): what screening compares suppliers against.
//! Domain only: no I/O here.

use serde::{Deserialize, Serialize};

use crate::events::{CountryCode, EntityChange, EntityKey, EntityName};

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
        }
    }

    /// Folds another row with the same key into this one. The CSL lists some entries several
    /// times (one row per country heading or per rule); no name, alias, address or citation
    /// may be lost in the fold, since screening needs every one of them.
    pub fn absorb(&mut self, other: ListEntry) {
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
