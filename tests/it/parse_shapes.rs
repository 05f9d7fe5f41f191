//! Rule shapes the parser must survive, rebuilt from real Entity List rows.
//!
//! Each `tests/fixtures/federal_register/shapes/NAME.xml` has a `NAME.expected.json` written
//! from the same CSL rows by `shapes/rebuild.py` (never from the parser's output): the whole
//! change list (`changes`, in table order, every field compared), the warnings the rule must
//! produce (`warnings`, each a substring that one warning must contain, in order; an empty list
//! means none at all) and the footnote markers recorded per change (`footnotes`, as
//! `column:marker`). tests/fixtures/README.md says how each was rebuilt.
use crate::common;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use entitywatch::events::ChangeAction;
use entitywatch::federal_register::amendment::{parse_rule, ParseLimits, ParsedRule};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    action: String,
    name: String,
    aliases: Vec<String>,
    addresses: Vec<String>,
    country_name: String,
    license_requirement: Option<String>,
    license_policy: Option<String>,
    federal_register_citation: Option<String>,
    footnotes: Vec<String>,
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().expect("a string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

struct Expected {
    rows: Vec<Row>,
    warnings: Vec<String>,
    /// (name, from heading, to heading).
    moves: Vec<(String, String, String)>,
}

fn expected(name: &str) -> Expected {
    let path = common::fixture(&format!("federal_register/shapes/{name}.expected.json"));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("expected file"))
        .expect("expected JSON");
    let rows = v["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| Row {
            action: text(c, "action").expect("action"),
            name: text(c, "name").expect("name"),
            aliases: strings(c, "aliases"),
            addresses: strings(c, "addresses"),
            country_name: text(c, "country").expect("country"),
            license_requirement: text(c, "license_requirement"),
            license_policy: text(c, "license_policy"),
            federal_register_citation: text(c, "federal_register_citation"),
            footnotes: strings(c, "footnotes"),
        })
        .collect();
    let moves = v
        .get("moves")
        .and_then(Value::as_array)
        .map(|ms| {
            ms.iter()
                .map(|m| {
                    (
                        text(m, "name").expect("name"),
                        text(m, "from").expect("from"),
                        text(m, "to").expect("to"),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Expected {
        rows,
        warnings: strings(&v, "warnings"),
        moves,
    }
}

fn parse(name: &str) -> ParsedRule {
    let path = common::fixture(&format!("federal_register/shapes/{name}.xml"));
    let xml = std::fs::read(&path).expect("fixture");
    parse_rule(&xml, None, &ParseLimits::default()).expect("parses")
}

fn actual(p: &ParsedRule) -> Vec<Row> {
    let mut marks: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for f in &p.footnotes {
        marks
            .entry(f.entity_key.as_str())
            .or_default()
            .push(format!("{}:{}", f.column.as_str(), f.marker));
    }
    p.changes
        .iter()
        .map(|c| Row {
            action: c.action.as_str().to_string(),
            name: c.name.to_string(),
            aliases: c.aliases.clone(),
            addresses: c.addresses.clone(),
            country_name: c.country_name.clone(),
            license_requirement: c.license_requirement.clone(),
            license_policy: c.license_policy.clone(),
            federal_register_citation: c.federal_register_citation.clone(),
            footnotes: marks
                .get(c.entity_key.as_str())
                .cloned()
                .unwrap_or_default(),
        })
        .collect()
}

fn diff(expected: &[Row], actual: &[Row]) -> String {
    let mut out = String::new();
    for i in 0..expected.len().max(actual.len()) {
        let (e, a) = (expected.get(i), actual.get(i));
        if e != a {
            let _ = writeln!(out, "change {i}:\n  expected {e:?}\n  parsed   {a:?}");
        }
    }
    out
}

/// The whole change list, the warnings and the footnotes of one fixture.
fn check(name: &str) -> ParsedRule {
    let p = parse(name);
    let Expected {
        rows: want,
        warnings: want_warnings,
        moves: want_moves,
    } = expected(name);
    let got = actual(&p);
    assert!(
        want == got,
        "{name}: {} expected, {} parsed\n{}warnings: {:#?}",
        want.len(),
        got.len(),
        diff(&want, &got),
        p.warnings
    );
    if want_warnings.is_empty() {
        assert_eq!(p.warnings, Vec::<String>::new(), "{name}");
    } else {
        assert_eq!(
            p.warnings.len(),
            want_warnings.len(),
            "{name}: {:#?}",
            p.warnings
        );
        for (w, part) in p.warnings.iter().zip(&want_warnings) {
            assert!(w.contains(part.as_str()), "{name}: “{w}” lacks “{part}”");
        }
    }
    let moves: Vec<(String, String, String)> = p
        .moves
        .iter()
        .map(|m| {
            (
                m.name.to_string(),
                m.from_country_name.clone(),
                m.to_country_name.clone(),
            )
        })
        .collect();
    assert_eq!(moves, want_moves, "{name}: moves");
    let keys: HashSet<&str> = p.changes.iter().map(|c| c.entity_key.as_str()).collect();
    assert_eq!(
        keys.len(),
        p.changes.len(),
        "{name}: two changes share a key"
    );
    p
}

#[test]
fn count_only_rule_in_four_countries_keeps_names_with_commas() {
    let p = check("count_only_86FR71557");
    assert_eq!(p.changes.len(), 40);
    let academy: Vec<&str> = p
        .changes
        .iter()
        .map(|c| c.name.as_str())
        .filter(|n| n.starts_with("Academy of Military Medical Sciences, "))
        .collect();
    assert_eq!(academy.len(), 11, "{academy:#?}");
}

#[test]
fn count_only_rule_of_121_entries_with_a_footnote_in_the_licence_column() {
    let p = check("count_only_87FR20299");
    assert_eq!(p.changes.len(), 121);
    assert!(p.changes.iter().all(|c| c.action == ChangeAction::Added
        && !c
            .license_requirement
            .as_deref()
            .unwrap_or_default()
            .contains(",3")));
    assert!(p.footnotes.len() >= 90, "{}", p.footnotes.len());
}

#[test]
fn an_entry_moved_between_countries_is_a_removal_and_an_addition() {
    let p = check("moved_hong_kong_to_china");
    assert_eq!(p.moves.len(), 3);
    for m in &p.moves {
        let removal = p
            .changes
            .iter()
            .find(|c| c.entity_key == m.removed)
            .expect("the removal");
        let addition = p
            .changes
            .iter()
            .find(|c| c.entity_key == m.added)
            .expect("the addition");
        assert_eq!(removal.action, ChangeAction::Removed);
        assert_eq!(addition.action, ChangeAction::Added);
        assert_eq!(removal.country.as_str(), "HK");
        assert_eq!(addition.country.as_str(), "CN");
        assert_eq!(
            removal.entity_key.as_str().split_once('/').map(|(_, w)| w),
            addition.entity_key.as_str().split_once('/').map(|(_, w)| w)
        );
    }
}

#[test]
fn a_table_note_is_recorded_with_its_marker() {
    // The GPO-layout fixture of tests/parse_fixtures.rs: <SU>4</SU> in every License
    // requirement cell and a <TNOTE> at the end of the table.
    let xml = std::fs::read(common::fixture("federal_register/2025-00480.xml")).expect("fixture");
    let p = parse_rule(&xml, None, &ParseLimits::default()).expect("parses");
    assert_eq!(p.footnotes.len(), p.changes.len());
    for (f, c) in p.footnotes.iter().zip(&p.changes) {
        assert_eq!(f.entity_key, c.entity_key);
        assert_eq!(
            (f.column.as_str(), f.marker.as_str()),
            ("license_requirement", "4")
        );
        let note = f.note.as_deref().expect("the TNOTE's text");
        assert!(
            note.starts_with(
                "For this entity, “items subject to the EAR” includes foreign-produced items"
            ),
            "{note}"
        );
        assert_eq!(
            c.license_requirement.as_deref(),
            Some("For all items subject to the EAR (See §§ 734.9(e)(2) and 744.11 of the EAR)")
        );
    }
}
