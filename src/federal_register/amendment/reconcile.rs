//! Reconciliation: instructions × table rows → changes.
//!
//! Each table row is matched to the instruction that names it in numbered passes, strictest
//! first (same name or alias, then word prefix, then close spelling, then a lone rename), so a
//! looser pass only ever sees what the stricter ones left. Then every row is emitted (as its
//! instruction's action, or with a guessed action and a warning) and every named instruction the
//! table lacks is emitted with a warning. It never drops a row or a named instruction.

use std::collections::{HashMap, HashSet};

use crate::events::{
    ChangeAction, CountryCode, EntityChange, EntityKey, EntityName, SourceDocument,
};

use super::entity_cell::{fold_letters, parse_entity_cell, EntryText};
use super::instructions::Instruction;
use super::scan::{Scan, TableRow};
use super::FootnoteMark;

/// The entity key's word part: how names are compared (case, punctuation, quotes, spacing and
/// a trailing period do not matter).
pub(super) fn name_key(name: &str) -> String {
    match EntityName::parse(name) {
        Ok(n) => {
            let key = EntityKey::derive(&CountryCode::unknown(), &n);
            key.as_str()
                .split_once('/')
                .map(|(_, w)| w.to_string())
                .unwrap_or_default()
        }
        Err(_) => String::new(),
    }
}

/// How headings are compared: the ISO code when the heading is known, else its folded letters.
fn country_id(heading: &str) -> String {
    match CountryCode::from_heading(heading) {
        Some(c) => c.as_str().to_string(),
        None => format!("?{}", fold_letters(heading)),
    }
}

fn is_word_prefix(short: &str, long: &str) -> bool {
    !short.is_empty()
        && long.len() > short.len()
        && long.starts_with(short)
        && long.as_bytes().get(short.len()) == Some(&b'-')
}

fn first_key_word(key: &str) -> &str {
    key.split('-').next().unwrap_or_default()
}

/// Above this many name comparisons the loose passes are skipped (with a warning), so a
/// hostile document with many thousands of rows and names cannot turn matching quadratic.
const LOOSE_MATCH_BUDGET: usize = 250_000;
const FUZZY_THRESHOLD: f64 = 0.85;
/// At most this many instruction names sharing a row's first word are tried as name hints.
const MAX_HINTS: usize = 256;

/// What reconciliation produced: the changes in document order and the footnote markers of
/// their rows.
pub(super) struct Reconciled {
    pub(super) changes: Vec<EntityChange>,
    pub(super) footnotes: Vec<FootnoteMark>,
}

/// One change on its way out: where it stands in the document, and the table row it came
/// from (`None` for an instruction the table lacks).
struct Emitted {
    pos: (usize, usize),
    change: EntityChange,
    row: Option<usize>,
}

/// Matches table rows to instructions, then emits: every row (as its instruction's action, or
/// with a guessed action and a warning), every named instruction the table lacks (with a
/// warning), every removal. Sorted into document order; no two entries share a key.
pub(super) fn reconcile(
    scan: &Scan,
    source: &SourceDocument,
    warnings: &mut Vec<String>,
) -> Reconciled {
    let mut m = Matching::new(scan);
    m.match_same_name_or_alias();
    m.match_loosely(warnings);
    m.match_lone_renames();
    m.check_counts(warnings);

    let fallback = Fallback::new(&m);
    let mut changes: Vec<Emitted> = (0..m.rows.len())
        .filter_map(|r| {
            m.emit_row(r, &fallback, source, warnings)
                .map(|(pos, change)| Emitted {
                    pos,
                    change,
                    row: Some(r),
                })
        })
        .collect();
    m.emit_unmatched_instructions(source, warnings, &mut changes);

    changes.sort_by_key(|e| e.pos);
    m.make_keys_distinct(&mut changes, warnings);
    let footnotes = changes
        .iter()
        .filter_map(|e| Some((e, m.rows.get(e.row?)?)))
        .flat_map(|(e, row)| {
            row.footnotes.iter().map(|(column, marker)| FootnoteMark {
                entity_key: e.change.entity_key.clone(),
                column: *column,
                marker: marker.clone(),
                note: scan.notes.get(marker).cloned(),
            })
        })
        .collect();
    Reconciled {
        changes: changes.into_iter().map(|e| e.change).collect(),
        footnotes,
    }
}

/// What the passes share: the scan with its country ids and name keys, each row's reading, and
/// the matches made so far.
struct Matching<'s> {
    instructions: &'s [Instruction],
    rows: &'s [TableRow],
    row_cid: Vec<Option<String>>,
    inst_cids: Vec<Vec<String>>,
    inst_keys: Vec<String>,
    /// Named additions and revisions by name key.
    by_key: HashMap<String, Vec<usize>>,
    entries: Vec<EntryText>,
    row_keys: Vec<String>,
    row_match: Vec<Option<usize>>,
    used: Vec<bool>,
    /// Matched on something looser than the name: worth a warning.
    loose: Vec<bool>,
}

impl<'s> Matching<'s> {
    fn new(scan: &'s Scan) -> Self {
        let instructions = scan.instructions.as_slice();
        let rows = scan.rows.as_slice();
        let mut m = Matching {
            instructions,
            rows,
            row_cid: rows
                .iter()
                .map(|r| r.country.as_deref().map(country_id))
                .collect(),
            inst_cids: instructions
                .iter()
                .map(|i| i.countries.iter().map(|c| country_id(c)).collect())
                .collect(),
            inst_keys: instructions
                .iter()
                .map(|i| i.name.as_deref().map(name_key).unwrap_or_default())
                .collect(),
            by_key: HashMap::new(),
            entries: Vec::new(),
            row_keys: Vec::new(),
            row_match: vec![None; rows.len()],
            used: vec![false; instructions.len()],
            loose: vec![false; rows.len()],
        };
        let mut by_first_word: HashMap<String, Vec<usize>> = HashMap::new();
        for (k, key) in m.inst_keys.iter().enumerate() {
            if m.is_named_entry(k) && !key.is_empty() {
                m.by_key.entry(key.clone()).or_default().push(k);
                by_first_word
                    .entry(first_key_word(key).to_string())
                    .or_default()
                    .push(k);
            }
        }
        m.entries = (0..rows.len())
            .map(|r| m.read_entry(r, &by_first_word))
            .collect();
        m.row_keys = m.entries.iter().map(|e| name_key(&e.name)).collect();
        m
    }

    /// Reads row `r`'s Entity cell, with the instruction names that could be its name as hints.
    fn read_entry(&self, r: usize, by_first_word: &HashMap<String, Vec<usize>>) -> EntryText {
        let Some(row) = self.rows.get(r) else {
            return EntryText::default();
        };
        let head = row
            .entity
            .first()
            .map(|s| s.text.as_str())
            .unwrap_or_default();
        let head_key = name_key(head.split_whitespace().next().unwrap_or_default());
        let hints: Vec<&str> = by_first_word
            .get(first_key_word(&head_key))
            .map(|ks| {
                ks.iter()
                    .filter(|k| self.fits(**k, r))
                    .take(MAX_HINTS)
                    .filter_map(|k| self.instructions.get(*k).and_then(|i| i.name.as_deref()))
                    .collect()
            })
            .unwrap_or_default();
        parse_entity_cell(&row.entity, &hints)
    }

    /// Whether instruction `k` may speak of row `r`. An instruction or a row without a country
    /// matches on name alone.
    fn fits(&self, k: usize, r: usize) -> bool {
        match (self.inst_cids.get(k), self.row_cid.get(r)) {
            (Some(cids), Some(Some(rc))) => cids.is_empty() || cids.contains(rc),
            (Some(_), Some(None)) => true,
            _ => false,
        }
    }

    fn is_named_entry(&self, k: usize) -> bool {
        self.instructions
            .get(k)
            .is_some_and(|i| i.name.is_some() && i.action != ChangeAction::Removed)
    }

    fn link(&mut self, r: usize, k: usize, loose: bool) {
        self.row_match[r] = Some(k);
        self.used[k] = true;
        self.loose[r] = loose;
    }

    /// Passes 1 and 2: the same name, or the instruction names one of the row's aliases.
    fn match_same_name_or_alias(&mut self) {
        for r in 0..self.rows.len() {
            let entry = &self.entries[r];
            let candidates = std::iter::once(self.row_keys[r].clone())
                .chain(entry.aliases.iter().map(|a| name_key(a)));
            let mut found = None;
            for key in candidates {
                found = self.by_key.get(key.as_str()).and_then(|ks| {
                    ks.iter()
                        .copied()
                        .find(|k| !self.used[*k] && self.fits(*k, r))
                });
                if found.is_some() {
                    break;
                }
            }
            if let Some(k) = found {
                self.link(r, k, false);
            }
        }
    }

    /// Passes 3 and 4, within [`LOOSE_MATCH_BUDGET`]: one name is the other plus words, then
    /// close spelling.
    fn match_loosely(&mut self, warnings: &mut Vec<String>) {
        let open_rows: Vec<usize> = (0..self.rows.len())
            .filter(|r| self.row_match[*r].is_none() && !self.row_keys[*r].is_empty())
            .collect();
        let open_inst: Vec<usize> = (0..self.instructions.len())
            .filter(|k| self.is_named_entry(*k) && !self.used[*k])
            .collect();
        if open_rows.len().saturating_mul(open_inst.len()) > LOOSE_MATCH_BUDGET {
            warnings.push(format!(
                "{} unmatched table rows × {} unmatched instruction names: too many to compare \
                 loosely; left unmatched",
                open_rows.len(),
                open_inst.len()
            ));
            return;
        }
        self.match_word_prefixes(&open_rows, &open_inst);
        self.match_close_spellings(&open_rows, &open_inst);
    }

    /// Pass 3: one name is the other plus words ("Foo" / "Foo Technology Co., Ltd.").
    fn match_word_prefixes(&mut self, open_rows: &[usize], open_inst: &[usize]) {
        for &r in open_rows {
            let prefix = open_inst.iter().copied().find(|k| {
                !self.used[*k]
                    && self.fits(*k, r)
                    && (is_word_prefix(&self.inst_keys[*k], &self.row_keys[r])
                        || is_word_prefix(&self.row_keys[r], &self.inst_keys[*k]))
            });
            if let Some(k) = prefix {
                self.link(r, k, true);
            }
        }
    }

    /// Pass 4: the closest spelling at or above [`FUZZY_THRESHOLD`].
    fn match_close_spellings(&mut self, open_rows: &[usize], open_inst: &[usize]) {
        for &r in open_rows {
            if self.row_match[r].is_some() {
                continue;
            }
            let best = open_inst
                .iter()
                .copied()
                .filter(|k| !self.used[*k] && self.fits(*k, r))
                .map(|k| {
                    (
                        k,
                        strsim::normalized_levenshtein(&self.row_keys[r], &self.inst_keys[k]),
                    )
                })
                .filter(|(_, score)| *score >= FUZZY_THRESHOLD)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            if let Some((k, _)) = best {
                self.link(r, k, true);
            }
        }
    }

    /// Pass 5: a rename the table does not explain: the only revision left for a country and
    /// the only row left under it.
    fn match_lone_renames(&mut self) {
        let mut left_rows: HashMap<Option<String>, Vec<usize>> = HashMap::new();
        for r in (0..self.rows.len()).filter(|r| self.row_match[*r].is_none()) {
            left_rows
                .entry(self.row_cid[r].clone())
                .or_default()
                .push(r);
        }
        for (cid, rs) in &left_rows {
            let [r] = rs.as_slice() else { continue };
            let revs: Vec<usize> = (0..self.instructions.len())
                .filter(|k| {
                    self.is_named_entry(*k)
                        && !self.used[*k]
                        && self.instructions[*k].action == ChangeAction::Revised
                        && cid
                            .as_deref()
                            .is_some_and(|c| self.inst_cids[*k].iter().any(|x| x == c))
                })
                .collect();
            if let [k] = revs.as_slice() {
                self.link(*r, *k, true);
            }
        }
    }

    /// For a row no instruction names: an unnamed instruction ("twenty-eight entities") for its
    /// country covers it.
    fn covering(&self, r: usize) -> Option<ChangeAction> {
        self.instructions
            .iter()
            .enumerate()
            .find(|(k, i)| {
                i.name.is_none() && i.action != ChangeAction::Removed && self.fits(*k, r)
            })
            .map(|(_, i)| i.action)
    }

    /// Otherwise "revising" said for its country makes it a revision.
    fn revising_here(&self, r: usize) -> bool {
        self.instructions.iter().enumerate().any(|(k, i)| {
            i.action == ChangeAction::Revised && !self.inst_cids[k].is_empty() && self.fits(k, r)
        })
    }

    /// An instruction that only counts its entries ("thirty-four entities") is checked against
    /// the rows under its countries that no named instruction claims. Instructions for the same
    /// countries add up ("adding three entities" and "revising two entities" under one heading).
    fn check_counts(&self, warnings: &mut Vec<String>) {
        // (country ids, headings as written, total announced), one per set of countries.
        let mut announced: Vec<(Vec<String>, Vec<String>, usize)> = Vec::new();
        let mut index: HashMap<Vec<String>, usize> = HashMap::new();
        // A group is checked only when each of its unnamed instructions says how many, and no
        // country is in two groups: otherwise the rows cannot be shared out between them.
        let mut uncounted: Vec<usize> = Vec::new();
        for (k, inst) in self.instructions.iter().enumerate() {
            if inst.name.is_some() || inst.action == ChangeAction::Removed {
                continue;
            }
            let mut cids = self.inst_cids[k].clone();
            if cids.is_empty() {
                continue;
            }
            cids.sort();
            cids.dedup();
            let g = match index.get(&cids) {
                Some(&g) => g,
                None => {
                    index.insert(cids.clone(), announced.len());
                    announced.push((cids, inst.countries.clone(), 0));
                    announced.len() - 1
                }
            };
            match inst.count {
                Some(n) => announced[g].2 += n,
                None => uncounted.push(g),
            }
        }
        let mut groups_of: HashMap<&str, usize> = HashMap::new();
        for (cids, _, _) in &announced {
            for c in cids {
                *groups_of.entry(c.as_str()).or_default() += 1;
            }
        }
        let checkable: Vec<bool> = announced
            .iter()
            .enumerate()
            .map(|(g, (cids, _, _))| {
                !uncounted.contains(&g)
                    && cids.iter().all(|c| groups_of.get(c.as_str()) == Some(&1))
            })
            .collect();
        let announced: Vec<(Vec<String>, Vec<String>, usize)> = announced
            .into_iter()
            .zip(checkable)
            .filter_map(|(a, ok)| ok.then_some(a))
            .collect();
        if announced.is_empty() {
            return;
        }
        let mut unnamed_rows: HashMap<&str, usize> = HashMap::new();
        let mut headless = 0usize;
        for r in (0..self.rows.len()).filter(|r| self.row_match[*r].is_none()) {
            match self.row_cid[r].as_deref() {
                Some(c) => *unnamed_rows.entry(c).or_default() += 1,
                None => headless += 1,
            }
        }
        // Rows under no heading belong to the one counted instruction, if there is one; with
        // several they cannot be shared out, so nothing is checked.
        if headless > 0 && announced.len() > 1 {
            return;
        }
        for (cids, headings, total) in announced {
            let rows: usize = headless
                + cids
                    .iter()
                    .map(|c| unnamed_rows.get(c.as_str()).copied().unwrap_or(0))
                    .sum::<usize>();
            if rows != total {
                warnings.push(format!(
                    "the instruction announces {total} entries under {} but the table has {rows} \
                     rows under it that no instruction names",
                    headings.join("; ")
                ));
            }
        }
    }

    /// Two entries of one rule never share a key: when the table's names (or a row and an
    /// instruction the table lacks) would give two additions or revisions the same key, both
    /// are kept and the later one, in document order, is keyed `KEY--2` (`--3`, …), with a
    /// warning naming both. Removals keep their keys: removing one entry twice is harmless.
    fn make_keys_distinct(&self, changes: &mut [Emitted], warnings: &mut Vec<String>) {
        let mut seen: HashMap<EntityKey, (usize, usize)> = HashMap::new();
        for i in 0..changes.len() {
            if changes[i].change.action == ChangeAction::Removed {
                continue;
            }
            let key = changes[i].change.entity_key.clone();
            let Some((first, copies)) = seen.get(&key).copied() else {
                seen.insert(key, (i, 1));
                continue;
            };
            let copies = copies + 1;
            seen.insert(key.clone(), (first, copies));
            let Ok(distinct) = EntityKey::parse(&format!("{}--{copies}", key.as_str())) else {
                continue;
            };
            warnings.push(format!(
                "{} and {} under {} would share the entity key {key}; both emitted, the second \
                 keyed {distinct}",
                self.describe(&changes[first]),
                self.describe(&changes[i]),
                changes[i].change.country_name
            ));
            changes[i].change.entity_key = distinct;
        }
    }

    /// “Name” (table 1, row 4; first address …) — enough to find the entry in the rule.
    fn describe(&self, e: &Emitted) -> String {
        let row = e.row.and_then(|r| self.rows.get(r));
        let address = e.change.addresses.first().map(|a| format!("; {a}"));
        match row {
            Some(row) => format!(
                "“{}” ({}{})",
                e.change.name,
                row.label,
                address.unwrap_or_default()
            ),
            None => format!("“{}” (named by the instruction only)", e.change.name),
        }
    }

    /// Row `r` as a change, or `None` (with a warning) when no name can be read for it.
    fn emit_row(
        &self,
        r: usize,
        fallback: &Fallback,
        source: &SourceDocument,
        warnings: &mut Vec<String>,
    ) -> Option<((usize, usize), EntityChange)> {
        let row = self.rows.get(r)?;
        let entry = self.entries.get(r)?;
        let instruction = self.row_match[r].and_then(|k| self.instructions.get(k));
        let country_name = row
            .country
            .clone()
            .or_else(|| instruction.and_then(|i| i.countries.first().cloned()))
            .unwrap_or_default();
        let under = if country_name.is_empty() {
            "no country heading".to_string()
        } else {
            country_name.clone()
        };
        let display = if entry.name.is_empty() {
            format!("{} (no name read)", row.label)
        } else {
            format!("“{}”", entry.name)
        };
        for w in &entry.warnings {
            warnings.push(format!("table entry {display} under {under}: {w}"));
        }
        let name = row_name(row, entry, instruction, &under, warnings)?;
        let action = match instruction {
            Some(i) => {
                warn_loose_match(self.loose[r], i, &name, &under, warnings);
                i.action
            }
            None => fallback.action(self, r, &name, &under, warnings),
        };
        let mut change = build_change(action, name, &country_name, source, warnings);
        if action == ChangeAction::Revised {
            if let Some(Ok(old)) = instruction
                .and_then(|i| i.name.as_deref())
                .map(EntityName::parse)
            {
                let previous = EntityKey::derive(&change.country, &old);
                if previous != change.entity_key {
                    change.previous_key = Some(previous);
                }
            }
        }
        change.aliases = entry.aliases.clone();
        change.addresses = entry.addresses.clone();
        change.license_requirement = row.license_requirement.clone();
        change.license_policy = row.license_policy.clone();
        change.federal_register_citation = row.citation.clone();
        Some((row.pos, change))
    }

    /// Every named instruction no row matched (removals always land here): a change under each
    /// of its countries, with a warning when the table should have had the entry.
    fn emit_unmatched_instructions(
        &self,
        source: &SourceDocument,
        warnings: &mut Vec<String>,
        changes: &mut Vec<Emitted>,
    ) {
        let row_cids: HashSet<Option<&str>> = self.row_cid.iter().map(|c| c.as_deref()).collect();
        for (k, inst) in self.instructions.iter().enumerate() {
            let Some(raw_name) = inst.name.as_deref() else {
                let has_rows = row_cids.contains(&None)
                    || self.inst_cids[k].is_empty() && !self.rows.is_empty()
                    || self.inst_cids[k]
                        .iter()
                        .any(|c| row_cids.contains(&Some(c.as_str())));
                if !has_rows {
                    warnings.push(format!(
                        "instruction {} entries under {} but the table has no row for that country",
                        verb_gerund(inst.action),
                        inst.countries.join("; ")
                    ));
                }
                continue;
            };
            if self.used[k] {
                continue;
            }
            let Ok(name) = EntityName::parse(raw_name) else {
                continue;
            };
            // An instruction naming several countries for one entry ("under CHINA and HONG
            // KONG") is one change per listing.
            let headings: Vec<String> = if inst.countries.is_empty() {
                warnings.push(format!(
                    "instruction {} “{name}” names no country heading; keyed under {}",
                    verb_gerund(inst.action),
                    CountryCode::UNKNOWN
                ));
                vec![String::new()]
            } else {
                inst.countries.clone()
            };
            for country_name in headings {
                if inst.action != ChangeAction::Removed {
                    warnings.push(format!(
                        "instruction {} “{name}” under {} but the table has no such entry; \
                         emitted with the instruction's name only",
                        verb_gerund(inst.action),
                        if country_name.is_empty() {
                            "no country"
                        } else {
                            &country_name
                        }
                    ));
                }
                let change =
                    build_change(inst.action, name.clone(), &country_name, source, warnings);
                changes.push(Emitted {
                    pos: inst.pos,
                    change,
                    row: None,
                });
            }
        }
    }
}

/// The action for rows no instruction names. Row by row normally; once per country when there
/// are too many rows × instructions to check each (see [`LOOSE_MATCH_BUDGET`]).
struct Fallback {
    per_country: Option<PerCountry>,
}

struct PerCountry {
    cover: HashMap<Option<String>, Option<ChangeAction>>,
    revise: HashMap<Option<String>, bool>,
}

impl Fallback {
    fn new(m: &Matching) -> Self {
        let unmatched_rows = m.row_match.iter().filter(|x| x.is_none()).count();
        if unmatched_rows.saturating_mul(m.instructions.len()) <= LOOSE_MATCH_BUDGET {
            return Fallback { per_country: None };
        }
        let mut cover = HashMap::new();
        let mut revise = HashMap::new();
        for r in (0..m.rows.len()).filter(|r| m.row_match[*r].is_none()) {
            let cid = m.row_cid[r].clone();
            cover.entry(cid.clone()).or_insert_with(|| m.covering(r));
            revise.entry(cid).or_insert_with(|| m.revising_here(r));
        }
        Fallback {
            per_country: Some(PerCountry { cover, revise }),
        }
    }

    fn action(
        &self,
        m: &Matching,
        r: usize,
        name: &EntityName,
        under: &str,
        warnings: &mut Vec<String>,
    ) -> ChangeAction {
        let cid = &m.row_cid[r];
        let covered = match &self.per_country {
            Some(p) => p.cover.get(cid).copied().flatten(),
            None => m.covering(r),
        };
        if let Some(action) = covered {
            return action;
        }
        let revising = match &self.per_country {
            Some(p) => p.revise.get(cid).copied().unwrap_or(false),
            None => m.revising_here(r),
        };
        let action = if revising {
            ChangeAction::Revised
        } else {
            ChangeAction::Added
        };
        warnings.push(format!(
            "table entry “{name}” under {under} is not named by any amendatory instruction; \
             emitted as {action}"
        ));
        action
    }
}

/// The row's name; failing that the instruction's (with a warning); failing both `None`, with a
/// warning quoting the cell.
fn row_name(
    row: &TableRow,
    entry: &EntryText,
    instruction: Option<&Instruction>,
    under: &str,
    warnings: &mut Vec<String>,
) -> Option<EntityName> {
    if let Ok(n) = EntityName::parse(&entry.name) {
        return Some(n);
    }
    match instruction
        .and_then(|i| i.name.as_deref())
        .map(EntityName::parse)
    {
        Some(Ok(n)) => {
            warnings.push(format!(
                "{} under {under}: no name could be read from the Entity cell; used the \
                 instruction's name “{n}”",
                row.label
            ));
            Some(n)
        }
        _ => {
            let text: Vec<&str> = row.entity.iter().map(|s| s.text.as_str()).collect();
            warnings.push(format!(
                "{} under {under}: no entity name could be read, nothing emitted; cell text: \
                 “{}”",
                row.label,
                text.join(" / ")
            ));
            None
        }
    }
}

fn warn_loose_match(
    loose: bool,
    i: &Instruction,
    name: &EntityName,
    under: &str,
    warnings: &mut Vec<String>,
) {
    let said = i.name.as_deref().unwrap_or_default();
    if loose && i.action == ChangeAction::Revised {
        warnings.push(format!(
            "table entry “{name}” under {under} taken as a rename: the instruction revises \
             “{said}”, which the table does not list"
        ));
    } else if loose {
        warnings.push(format!(
            "table entry “{name}” under {under} taken as the one the instruction {} as \
             “{said}” (names differ); used the table's name",
            verb_present(i.action)
        ));
    }
}

pub(super) fn build_change(
    action: ChangeAction,
    name: EntityName,
    country_name: &str,
    source: &SourceDocument,
    warnings: &mut Vec<String>,
) -> EntityChange {
    let country = match CountryCode::from_heading(country_name) {
        Some(c) => c,
        None => {
            if !country_name.is_empty() {
                warnings.push(format!(
                    "country heading “{country_name}” of “{name}” is not recognised; keyed under {}",
                    CountryCode::UNKNOWN
                ));
            }
            CountryCode::unknown()
        }
    };
    EntityChange::new(action, name, country, country_name, source.clone())
}

fn verb_present(a: ChangeAction) -> &'static str {
    match a {
        ChangeAction::Added => "adds",
        ChangeAction::Revised => "revises",
        ChangeAction::Removed => "removes",
    }
}

fn verb_gerund(a: ChangeAction) -> &'static str {
    match a {
        ChangeAction::Added => "adding",
        ChangeAction::Revised => "revising",
        ChangeAction::Removed => "removing",
    }
}
