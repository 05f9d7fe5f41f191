//! The comparison of a codified list with the stored snapshot, pure: which change events a sync
//! publishes ([`plan_sync`]) and where the rules and the list disagree ([`reconcile`]).
//!
//! Entries are matched by the one identity rule ([`resolve_identity`]): key, then name or alias
//! in the country, then across countries, each stored entry claimed by one codified entry at
//! most. A rule is "due" in the codified list when the list's date is after the rule's date
//! (`processed_documents.publication_date`, which for Entity List rules is their effective
//! date; a rule of unknown date counts as due). A sync never undoes a rule the list is not due
//! to show yet: such an entry is left as the rule made it.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use serde::Serialize;

use super::{CodifiedEntry, CodifiedList, ListSourceKind};
use crate::domain::list_entry::{resolve_identity, IdentityCandidate, ENTITY_LIST_SOURCE};
use crate::domain::ListEntry;
use crate::events::{ChangeAction, CountryCode, EntityChange, EntityKey};
use crate::screening::Schema;
use crate::store::{EntryChangeRecord, StoredEntry};

/// What a sync publishes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// Additions and revisions in list order, then removals.
    pub changes: Vec<EntityChange>,
    /// Stored entries a rule made after the list's date, left alone.
    pub not_yet_codified: Vec<EntityKey>,
}

/// The changes that make the snapshot equal `list`, by identity.
pub fn plan_sync(
    list: &CodifiedList,
    stored: &[StoredEntry],
    rule_dates: &HashMap<String, NaiveDate>,
) -> SyncPlan {
    let current: Vec<&StoredEntry> = stored.iter().filter(|s| s.removed_at.is_none()).collect();
    let matched = match_entries(&list.entries, &current);
    let not_due = |s: &StoredEntry| {
        s.last_document.as_deref().is_some_and(|d| {
            !ListSourceKind::is_list_document(d)
                && rule_dates.get(d).is_some_and(|date| *date >= list.date)
        })
    };
    let mut plan = SyncPlan::default();
    for (codified, m) in list.entries.iter().zip(&matched) {
        match m {
            Some(i) => {
                let s = current[*i];
                let change = change_for(codified, &s.entry.entity_key, ChangeAction::Revised, list);
                if differing_fields(&ListEntry::from_change(&change), &s.entry).is_empty() {
                    continue;
                }
                if not_due(s) {
                    plan.not_yet_codified.push(s.entry.entity_key.clone());
                    continue;
                }
                plan.changes.push(change);
            }
            None => {
                let key = &codified.entry.entity_key;
                // Removed by a rule the list does not show yet: not ours to re-add.
                if stored
                    .iter()
                    .any(|s| &s.entry.entity_key == key && s.removed_at.is_some() && not_due(s))
                {
                    plan.not_yet_codified.push(key.clone());
                    continue;
                }
                plan.changes
                    .push(change_for(codified, key, ChangeAction::Added, list));
            }
        }
    }
    let claimed: HashSet<usize> = matched.iter().flatten().copied().collect();
    for (i, s) in current.iter().enumerate() {
        if claimed.contains(&i) || s.entry.source_list != ENTITY_LIST_SOURCE {
            continue;
        }
        if not_due(s) {
            plan.not_yet_codified.push(s.entry.entity_key.clone());
            continue;
        }
        plan.changes.push(removal_of(&s.entry, list));
    }
    plan
}

/// Where the rules the snapshot was built from and the codified list disagree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    pub source: String,
    pub list_date: Option<NaiveDate>,
    pub codified_entries: usize,
    /// Entries the list has that no rule explains (not stored, or stored by an import or a
    /// sync only).
    pub unexplained: Vec<Unexplained>,
    /// Rule changes due in the list that it does not show: the sign of a misread rule.
    pub unreflected: Vec<Unreflected>,
    /// Entries a rule made whose fields the list states otherwise.
    pub differing: Vec<Differing>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unexplained {
    pub entity_key: EntityKey,
    pub name: String,
    /// The stored entry it matched, if any, and what wrote it last.
    pub stored_key: Option<EntityKey>,
    pub last_document: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreflected {
    pub entity_key: EntityKey,
    pub name: String,
    /// What the rule did that the list does not show.
    pub action: String,
    pub document_number: String,
    pub rule_date: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Differing {
    pub entity_key: EntityKey,
    pub name: String,
    pub document_number: String,
    pub fields: Vec<&'static str>,
}

/// Compares `list` with the snapshot and the history of which document made which version.
pub fn reconcile(
    list: &CodifiedList,
    stored: &[StoredEntry],
    histories: &HashMap<String, Vec<EntryChangeRecord>>,
    rule_dates: &HashMap<String, NaiveDate>,
) -> ReconcileReport {
    let all: Vec<&StoredEntry> = stored.iter().collect();
    let matched = match_entries(&list.entries, &all);
    let rule_records = |key: &EntityKey| -> Vec<&EntryChangeRecord> {
        histories
            .get(key.as_str())
            .map(|h| {
                h.iter()
                    .filter(|r| {
                        r.document_number
                            .as_deref()
                            .is_some_and(|d| !ListSourceKind::is_list_document(d))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let due = |doc: &str| rule_dates.get(doc).is_none_or(|d| *d < list.date);
    let mut report = ReconcileReport {
        source: list.source.document_number.clone(),
        list_date: Some(list.date),
        codified_entries: list.entries.len(),
        ..ReconcileReport::default()
    };
    for (codified, m) in list.entries.iter().zip(&matched) {
        let Some(s) = m.map(|i| all[i]) else {
            report.unexplained.push(Unexplained {
                entity_key: codified.entry.entity_key.clone(),
                name: codified.entry.name.to_string(),
                stored_key: None,
                last_document: None,
            });
            continue;
        };
        let records = rule_records(&s.entry.entity_key);
        let Some(last) = records.last() else {
            report.unexplained.push(Unexplained {
                entity_key: codified.entry.entity_key.clone(),
                name: codified.entry.name.to_string(),
                stored_key: Some(s.entry.entity_key.clone()),
                last_document: s.last_document.clone(),
            });
            continue;
        };
        let doc = last.document_number.clone().unwrap_or_default();
        if last.action == ChangeAction::Removed.as_str() {
            if due(&doc) {
                report.unreflected.push(Unreflected {
                    entity_key: s.entry.entity_key.clone(),
                    name: s.entry.name.to_string(),
                    action: last.action.clone(),
                    rule_date: rule_dates.get(&doc).copied(),
                    document_number: doc,
                });
            }
            continue;
        }
        let as_listed = ListEntry::from_change(&change_for(
            codified,
            &s.entry.entity_key,
            ChangeAction::Revised,
            list,
        ));
        let fields = differing_fields(&as_listed, &s.entry);
        if !fields.is_empty() && s.removed_at.is_none() && due(&doc) {
            report.differing.push(Differing {
                entity_key: s.entry.entity_key.clone(),
                name: s.entry.name.to_string(),
                document_number: doc,
                fields,
            });
        }
    }
    let claimed: HashSet<usize> = matched.iter().flatten().copied().collect();
    for (i, s) in all.iter().enumerate() {
        if claimed.contains(&i) {
            continue;
        }
        let records = rule_records(&s.entry.entity_key);
        let Some(last) = records.last() else { continue };
        let doc = last.document_number.clone().unwrap_or_default();
        if last.action != ChangeAction::Removed.as_str() && due(&doc) {
            report.unreflected.push(Unreflected {
                entity_key: s.entry.entity_key.clone(),
                name: s.entry.name.to_string(),
                action: last.action.clone(),
                rule_date: rule_dates.get(&doc).copied(),
                document_number: doc,
            });
        }
    }
    report
}

/// For each codified entry, the index in `pool` of the stored entry it is: keys first, so an
/// exact key is never taken by another entry's name match; each stored entry claimed once.
fn match_entries(codified: &[CodifiedEntry], pool: &[&StoredEntry]) -> Vec<Option<usize>> {
    let candidates: Vec<IdentityCandidate> = pool
        .iter()
        .map(|s| IdentityCandidate {
            key: s.entry.entity_key.clone(),
            name: s.entry.name.to_string(),
            aliases: s.entry.aliases.clone(),
        })
        .collect();
    let index: HashMap<&EntityKey, usize> = pool
        .iter()
        .enumerate()
        .map(|(i, s)| (&s.entry.entity_key, i))
        .collect();
    let mut out: Vec<Option<usize>> = codified
        .iter()
        .map(|c| index.get(&c.entry.entity_key).copied())
        .collect();
    let mut claimed: HashSet<usize> = out.iter().flatten().copied().collect();
    for (c, slot) in codified.iter().zip(out.iter_mut()) {
        if slot.is_some() {
            continue;
        }
        let free: Vec<IdentityCandidate> = candidates
            .iter()
            .enumerate()
            .filter(|(i, _)| !claimed.contains(i))
            .map(|(_, c)| c.clone())
            .collect();
        let names: Vec<&str> = std::iter::once(c.entry.name.as_str())
            .chain(c.entry.aliases.iter().map(String::as_str))
            .collect();
        if let Some(key) = resolve_identity(&c.entry.entity_key, &names, &free).key() {
            let i = index[key];
            claimed.insert(i);
            *slot = Some(i);
        }
    }
    out
}

/// The change that states `codified` for the stored entry `key`.
fn change_for(
    codified: &CodifiedEntry,
    key: &EntityKey,
    action: ChangeAction,
    list: &CodifiedList,
) -> EntityChange {
    let e = &codified.entry;
    let country = e
        .countries
        .first()
        .cloned()
        .unwrap_or_else(CountryCode::unknown);
    let mut change = EntityChange::new(
        action,
        e.name.clone(),
        country,
        codified.heading.clone(),
        list.source.clone(),
    );
    change.entity_key = key.clone();
    change.aliases = e.aliases.clone();
    change.addresses = e.addresses.clone();
    change.license_requirement = e.license_requirement.clone();
    change.license_policy = e.license_policy.clone();
    change.federal_register_citation = e.federal_register_citation.clone();
    change.schema = e.schema;
    change
}

fn removal_of(e: &ListEntry, list: &CodifiedList) -> EntityChange {
    let country = CountryCode::parse(e.entity_key.country()).unwrap_or_else(CountryCode::unknown);
    let mut change = EntityChange::new(
        ChangeAction::Removed,
        e.name.clone(),
        country.clone(),
        country.as_str(),
        list.source.clone(),
    );
    change.entity_key = e.entity_key.clone();
    change.aliases = e.aliases.clone();
    change.addresses = e.addresses.clone();
    change
}

/// Whether the list's kind `a` of an entry tells screening something the stored kind `b` does
/// not. Only a stated kind counts (a source that says nothing leaves the stored kind alone,
/// so it must not read as a difference, or every sync would publish it again), and a company
/// and an organisation are scored alike, as is an entry of unknown kind against suppliers,
/// which are organisations: filling in `Organization` is no change worth a new version.
fn kind_differs(a: Option<Schema>, b: Option<Schema>) -> bool {
    let class = |s: Option<Schema>| match s {
        Some(Schema::Person) => 1,
        Some(Schema::Vessel) => 2,
        None | Some(Schema::Company | Schema::Organization) => 0,
    };
    a.is_some() && class(a) != class(b)
}

/// The fields in which two entries differ (aliases and addresses as sets: sources order them
/// differently, and the order means nothing).
pub fn differing_fields(a: &ListEntry, b: &ListEntry) -> Vec<&'static str> {
    let set = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    let mut out = Vec::new();
    if a.name != b.name {
        out.push("name");
    }
    if kind_differs(a.schema, b.schema) {
        out.push("schema");
    }
    if set(&a.aliases) != set(&b.aliases) {
        out.push("aliases");
    }
    if set(&a.addresses) != set(&b.addresses) {
        out.push("addresses");
    }
    if a.countries != b.countries {
        out.push("countries");
    }
    if a.license_requirement != b.license_requirement {
        out.push("license_requirement");
    }
    if a.license_policy != b.license_policy {
        out.push("license_policy");
    }
    if a.federal_register_citation != b.federal_register_citation {
        out.push("federal_register_citation");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EntityName, SourceDocument};

    fn entry(key: &str, name: &str) -> ListEntry {
        let key = EntityKey::parse(key).unwrap();
        ListEntry {
            countries: vec![CountryCode::parse(key.country()).unwrap()],
            entity_key: key,
            name: EntityName::parse(name).unwrap(),
            aliases: vec![],
            addresses: vec!["Beijing, China.".into()],
            license_requirement: Some("For all items subject to the EAR.".into()),
            license_policy: Some("Presumption of denial.".into()),
            federal_register_citation: Some("84 FR 54002, 10/9/19.".into()),
            source_list: ENTITY_LIST_SOURCE.into(),
            schema: None,
        }
    }

    fn stored(e: ListEntry, doc: &str, removed: bool) -> StoredEntry {
        StoredEntry {
            entry: e,
            version: 1,
            last_action: "added".into(),
            last_document: Some(doc.into()),
            updated_at: chrono::Utc::now(),
            removed_at: removed.then(chrono::Utc::now),
        }
    }

    fn list(entries: Vec<ListEntry>, date: &str) -> CodifiedList {
        let date: NaiveDate = date.parse().unwrap();
        CodifiedList {
            kind: ListSourceKind::Ecfr,
            date,
            source: SourceDocument::from_number(&format!("ecfr-{date}")),
            entries: entries
                .into_iter()
                .map(|entry| CodifiedEntry {
                    heading: "CHINA, PEOPLE'S REPUBLIC OF".into(),
                    entry,
                })
                .collect(),
            warnings: vec![],
        }
    }

    fn history(doc: &str, action: &str) -> Vec<EntryChangeRecord> {
        vec![EntryChangeRecord {
            version: 1,
            action: action.into(),
            document_number: Some(doc.into()),
            change_key: String::new(),
            matched_by: "key".into(),
            changed_at: String::new(),
        }]
    }

    #[test]
    fn an_unchanged_list_plans_nothing_and_one_change_plans_one_revision() {
        let a = entry("CN/alpha-co-ltd", "Alpha Co., Ltd.");
        let b = entry("CN/beta-institute", "Beta Institute");
        let snapshot = vec![
            stored(a.clone(), "2019-22210", false),
            stored(b.clone(), "2019-22210", false),
        ];
        let dates = HashMap::new();
        let same = list(vec![a.clone(), b.clone()], "2025-02-01");
        assert_eq!(plan_sync(&same, &snapshot, &dates), SyncPlan::default());

        let mut b2 = b.clone();
        b2.addresses = vec!["Shanghai, China.".into()];
        let plan = plan_sync(&list(vec![a.clone(), b2], "2025-02-01"), &snapshot, &dates);
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(plan.changes[0].action, ChangeAction::Revised);
        assert_eq!(plan.changes[0].entity_key, b.entity_key);
        assert_eq!(plan.changes[0].source.document_number, "ecfr-2025-02-01");

        let plan = plan_sync(&list(vec![a], "2025-02-01"), &snapshot, &dates);
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(plan.changes[0].action, ChangeAction::Removed);
    }

    #[test]
    fn a_stated_person_kind_is_published_once_and_silence_changes_nothing() {
        let p = entry("CN/abdul-satar-ghoura", "Abdul Satar Ghoura");
        let snapshot = vec![stored(p.clone(), "2019-22210", false)];
        let dates = HashMap::new();
        let mut typed = p.clone();
        typed.schema = Some(Schema::Person);
        let plan = plan_sync(&list(vec![typed.clone()], "2025-02-01"), &snapshot, &dates);
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(plan.changes[0].schema, Some(Schema::Person));
        assert_eq!(
            ListEntry::from_change(&plan.changes[0]).schema,
            Some(Schema::Person)
        );
        // Stored as a person: the same list again, or one that says nothing, plans nothing.
        let snapshot = vec![stored(typed.clone(), "csl-0123456789ab", false)];
        assert!(
            plan_sync(&list(vec![typed], "2025-02-02"), &snapshot, &dates)
                .changes
                .is_empty()
        );
        assert!(
            plan_sync(&list(vec![p.clone()], "2025-02-02"), &snapshot, &dates)
                .changes
                .is_empty()
        );
        // An organisation stated for an entry of unknown kind scores the same: no revision.
        let mut org = p.clone();
        org.schema = Some(Schema::Organization);
        let snapshot = vec![stored(p, "2019-22210", false)];
        assert!(plan_sync(&list(vec![org], "2025-02-02"), &snapshot, &dates)
            .changes
            .is_empty());
    }

    #[test]
    fn a_rule_newer_than_the_list_is_not_undone() {
        let a = entry("CN/alpha-co-ltd", "Alpha Co., Ltd.");
        let snapshot = vec![stored(a, "2025-00480", false)];
        let dates = HashMap::from([("2025-00480".to_string(), "2025-01-16".parse().unwrap())]);
        let plan = plan_sync(&list(vec![], "2025-01-10"), &snapshot, &dates);
        assert!(plan.changes.is_empty());
        assert_eq!(plan.not_yet_codified.len(), 1);
    }

    #[test]
    fn reconcile_names_the_dropped_entry_and_its_rule() {
        let a = entry("CN/alpha-co-ltd", "Alpha Co., Ltd.");
        let b = entry("CN/beta-institute", "Beta Institute");
        let c = entry("CN/gamma-works", "Gamma Works");
        let snapshot = vec![
            stored(a.clone(), "2019-22210", false),
            stored(b.clone(), "2019-22210", false),
        ];
        let histories = HashMap::from([
            (a.entity_key.to_string(), history("2019-22210", "added")),
            (b.entity_key.to_string(), history("2019-22210", "added")),
        ]);
        let dates = HashMap::from([("2019-22210".to_string(), "2019-10-09".parse().unwrap())]);
        let agree = reconcile(
            &list(vec![a.clone(), b.clone()], "2025-02-01"),
            &snapshot,
            &histories,
            &dates,
        );
        assert!(
            agree.unexplained.is_empty()
                && agree.unreflected.is_empty()
                && agree.differing.is_empty()
        );

        let mut a2 = a.clone();
        a2.license_policy = Some("Case-by-case review.".into());
        let r = reconcile(
            &list(vec![a2, c], "2025-02-01"),
            &snapshot,
            &histories,
            &dates,
        );
        assert_eq!(r.unreflected.len(), 1);
        assert_eq!(r.unreflected[0].entity_key, b.entity_key);
        assert_eq!(r.unreflected[0].document_number, "2019-22210");
        assert_eq!(r.unexplained.len(), 1);
        assert_eq!(r.unexplained[0].name, "Gamma Works");
        assert_eq!(r.differing.len(), 1);
        assert_eq!(r.differing[0].fields, vec!["license_policy"]);

        // A list dated before the rule is not due to show it.
        let early = reconcile(&list(vec![a], "2019-10-01"), &snapshot, &histories, &dates);
        assert!(early.unreflected.is_empty());
    }
}
