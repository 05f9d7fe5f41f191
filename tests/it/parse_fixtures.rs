//! Real Entity List rules against hand-checked expectations.
//!
//! Every `tests/fixtures/federal_register/NAME.xml` with a `NAME.expected.json` beside it is
//! parsed and its whole change list compared, field by field and in order, with the expected
//! one. The expected file is either a JSON array of changes or an object with a `changes`
//! array; each change carries `action`, `name`, `aliases`, `addresses`, the country heading
//! (`country`, as tests/fixtures/README.md names it, compared with `EntityChange::country_name`),
//! `license_requirement`, `license_policy` and `federal_register_citation` (missing lists are
//! empty, missing strings null).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use entitywatch::events::{ChangeAction, EntityChange};
use entitywatch::federal_register::amendment::{parse_rule, ParseError, ParseLimits, ParsedRule};
use proptest::prelude::*;

use crate::common::mutation::{apply, mutation};
use serde_json::Value;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/federal_register")
}

/// (xml path, expected.json path) for each fixture pair, sorted by name.
fn fixture_pairs() -> Vec<(PathBuf, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(fixture_dir()) else {
        return Vec::new();
    };
    let mut pairs: Vec<(PathBuf, PathBuf)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .filter_map(|xml| {
            let stem = xml.file_stem()?.to_str()?.to_string();
            let expected = xml.with_file_name(format!("{stem}.expected.json"));
            expected.exists().then_some((xml, expected))
        })
        .collect();
    pairs.sort();
    pairs
}

/// The fields a fixture pins down, in a shape both sides convert to.
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
}

impl Row {
    fn from_change(c: &EntityChange) -> Row {
        Row {
            action: c.action.as_str().to_string(),
            name: c.name.to_string(),
            aliases: c.aliases.clone(),
            addresses: c.addresses.clone(),
            country_name: c.country_name.clone(),
            license_requirement: c.license_requirement.clone(),
            license_policy: c.license_policy.clone(),
            federal_register_citation: c.federal_register_citation.clone(),
        }
    }

    fn from_json(v: &Value, at: &str) -> Row {
        let string =
            |k: &str| -> Option<String> { v.get(k).and_then(Value::as_str).map(str::to_string) };
        let list = |k: &str| -> Vec<String> {
            match v.get(k) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .unwrap_or_else(|| panic!("{at}: `{k}` holds a non-string: {x}"))
                            .to_string()
                    })
                    .collect(),
                Some(other) => panic!("{at}: `{k}` should be a list, is {other}"),
            }
        };
        Row {
            action: string("action").unwrap_or_else(|| panic!("{at}: no `action`")),
            name: string("name").unwrap_or_else(|| panic!("{at}: no `name`")),
            aliases: list("aliases"),
            addresses: list("addresses"),
            // The heading: `country_name` as in `EntityChange`, or `country` as the fixture
            // README writes it.
            country_name: string("country_name")
                .or_else(|| string("country"))
                .unwrap_or_else(|| panic!("{at}: no `country_name` or `country`")),
            license_requirement: string("license_requirement"),
            license_policy: string("license_policy"),
            federal_register_citation: string("federal_register_citation"),
        }
    }
}

fn expected_rows(path: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let changes = match &json {
        Value::Array(a) => a.clone(),
        Value::Object(o) => match o.get("changes") {
            Some(Value::Array(a)) => a.clone(),
            _ => panic!(
                "{}: expected an array or an object with `changes`",
                path.display()
            ),
        },
        _ => panic!(
            "{}: expected an array or an object with `changes`",
            path.display()
        ),
    };
    changes
        .iter()
        .enumerate()
        .map(|(i, v)| Row::from_json(v, &format!("{} change #{i}", path.display())))
        .collect()
}

fn parse_fixture(xml: &Path) -> ParsedRule {
    let bytes = std::fs::read(xml).unwrap_or_else(|e| panic!("{}: {e}", xml.display()));
    parse_rule(&bytes, None, &ParseLimits::default())
        .unwrap_or_else(|e| panic!("{}: {e}", xml.display()))
}

/// A per-entry, per-field account of where two lists differ.
fn describe_diff(expected: &[Row], actual: &[Row]) -> String {
    let mut out = String::new();
    for i in 0..expected.len().max(actual.len()) {
        match (expected.get(i), actual.get(i)) {
            (Some(e), Some(a)) if e == a => {
                let _ = writeln!(out, "  #{i} ok      {} {}", e.action, e.name);
            }
            (Some(e), Some(a)) => {
                let _ = writeln!(out, "  #{i} DIFFERS expected {} “{}”", e.action, e.name);
                let fields: [(&str, String, String); 8] = [
                    (
                        "action",
                        format!("{:?}", e.action),
                        format!("{:?}", a.action),
                    ),
                    ("name", format!("{:?}", e.name), format!("{:?}", a.name)),
                    (
                        "aliases",
                        format!("{:?}", e.aliases),
                        format!("{:?}", a.aliases),
                    ),
                    (
                        "addresses",
                        format!("{:?}", e.addresses),
                        format!("{:?}", a.addresses),
                    ),
                    (
                        "country_name",
                        format!("{:?}", e.country_name),
                        format!("{:?}", a.country_name),
                    ),
                    (
                        "license_requirement",
                        format!("{:?}", e.license_requirement),
                        format!("{:?}", a.license_requirement),
                    ),
                    (
                        "license_policy",
                        format!("{:?}", e.license_policy),
                        format!("{:?}", a.license_policy),
                    ),
                    (
                        "federal_register_citation",
                        format!("{:?}", e.federal_register_citation),
                        format!("{:?}", a.federal_register_citation),
                    ),
                ];
                for (field, ev, av) in fields.iter().filter(|(_, ev, av)| ev != av) {
                    let _ = writeln!(
                        out,
                        "      {field}:\n        expected {ev}\n        actual   {av}"
                    );
                }
            }
            (Some(e), None) => {
                let _ = writeln!(out, "  #{i} MISSING {} “{}”", e.action, e.name);
            }
            (None, Some(a)) => {
                let _ = writeln!(out, "  #{i} EXTRA   {} “{}”", a.action, a.name);
            }
            (None, None) => {}
        }
    }
    out
}

#[test]
fn fixtures_parse_to_their_expected_changes() {
    let pairs = fixture_pairs();
    assert!(
        !pairs.is_empty(),
        "no fixture pairs (NAME.xml + NAME.expected.json) in {}",
        fixture_dir().display()
    );
    let mut failures = Vec::new();
    for (xml, expected_path) in &pairs {
        let parsed = parse_fixture(xml);
        let expected = expected_rows(expected_path);
        let actual: Vec<Row> = parsed.changes.iter().map(Row::from_change).collect();
        if expected != actual {
            failures.push(format!(
                "{} ({} expected, {} parsed):\n{}  warnings: {:#?}",
                xml.display(),
                expected.len(),
                actual.len(),
                describe_diff(&expected, &actual),
                parsed.warnings
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    // The same comparison as a plain assert, so a failure is also shown as two whole vectors.
    for (xml, expected_path) in &pairs {
        let actual: Vec<Row> = parse_fixture(xml)
            .changes
            .iter()
            .map(Row::from_change)
            .collect();
        assert_eq!(actual, expected_rows(expected_path), "{}", xml.display());
    }
}

#[test]
fn every_fixture_change_has_a_known_country() {
    for (xml, _) in fixture_pairs() {
        let parsed = parse_fixture(&xml);
        let unknown: Vec<String> = parsed
            .changes
            .iter()
            .filter(|c| c.country.is_unknown())
            .map(|c| format!("“{}” under {:?}", c.name, c.country_name))
            .collect();
        assert!(
            unknown.is_empty(),
            "{}: country not recognised for {unknown:?}",
            xml.display()
        );
    }
}

#[test]
fn every_fixture_names_its_document_and_keeps_its_instructions() {
    for (xml, _) in fixture_pairs() {
        let parsed = parse_fixture(&xml);
        assert_ne!(
            parsed.source.document_number,
            "unknown",
            "{}",
            xml.display()
        );
        assert!(
            !parsed.source.document_number.contains('\u{2013}'),
            "{}: en dash left in {}",
            xml.display(),
            parsed.source.document_number
        );
        assert!(
            !parsed.amendatory_text.is_empty(),
            "{}: no AMDPAR kept",
            xml.display()
        );
        let events = parsed.clone().into_events();
        assert_eq!(events.len(), parsed.changes.len() + 1);
    }
}

#[test]
fn the_source_built_from_the_xml_agrees_with_the_api_metadata() {
    for (xml, _) in fixture_pairs() {
        let meta_path = xml.with_extension("meta.json");
        let Ok(text) = std::fs::read_to_string(&meta_path) else {
            continue;
        };
        let meta: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", meta_path.display()));
        let source = parse_fixture(&xml).source;
        let field = |k: &str| meta.get(k).and_then(Value::as_str).map(str::to_string);
        assert_eq!(
            Some(source.document_number.clone()),
            field("document_number"),
            "{}",
            xml.display()
        );
        assert_eq!(source.title, field("title"), "{}", xml.display());
        assert_eq!(
            source.effective_date.map(|d| d.to_string()),
            field("effective_on"),
            "{}",
            xml.display()
        );
    }
}

#[test]
fn the_renamed_revision_carries_its_previous_key() {
    let xml = fixture_dir().join("2025-00704.xml");
    let parsed = parse_fixture(&xml);
    let revised: Vec<_> = parsed
        .changes
        .iter()
        .filter(|c| c.action == ChangeAction::Revised)
        .collect();
    assert_eq!(revised.len(), 1, "{revised:#?}");
    assert_eq!(
        revised[0].previous_key.as_ref().map(|k| k.as_str()),
        // The key of the old name "... not under International Atomic Energy Agency (IAEA)":
        // a trailing bracketed alias is not part of an entry's identity (issue 13).
        Some("IN/department-of-atomic-energy-entity-nuclear-reactors-including-power-plants-not-under-international-atomic-energy-agency")
    );
    assert!(revised[0]
        .entity_key
        .as_str()
        .starts_with("IN/department-of-atomic-energy-facilities-"));
    // The other fixtures' revisions keep their names, so no previous key.
    for (xml, _) in fixture_pairs()
        .iter()
        .filter(|(x, _)| !x.ends_with("2025-00704.xml"))
    {
        for c in parse_fixture(xml).changes {
            assert_eq!(c.previous_key, None, "{}: {}", xml.display(), c.name);
        }
    }
}

#[test]
fn the_truncated_fixture_is_an_xml_error_with_a_position() {
    let bytes = std::fs::read(fixture_dir().join("malformed.xml")).expect("malformed.xml fixture");
    match parse_rule(&bytes, None, &ParseLimits::default()) {
        Err(ParseError::Xml(message)) => assert!(message.contains(':'), "{message}"),
        other => panic!("expected an XML error, got {other:?}"),
    }
}

#[test]
fn over_the_byte_limit_is_refused_before_parsing() {
    let bytes = match fixture_pairs().first() {
        Some((xml, _)) => std::fs::read(xml).unwrap_or_default(),
        None => b"<RULE/>".repeat(100),
    };
    let limit = bytes.len() - 1;
    assert_eq!(
        parse_rule(&bytes, None, &ParseLimits { max_bytes: limit }),
        Err(ParseError::TooLarge {
            size: bytes.len(),
            limit
        })
    );
}

/// Fixture bytes (or a small stand-in when none exist yet) for the mutation tests.
fn corpus() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = fixture_pairs()
        .iter()
        .filter_map(|(xml, _)| std::fs::read(xml).ok())
        .collect();
    if out.is_empty() {
        out.push(
            "<RULE><REGTEXT PART=\"744\"><AMDPAR>Supplement No. 4 to part 744 is amended by adding under \
             IRAN, in alphabetical order, an entry for “A Co.”</AMDPAR><GPOTABLE COLS=\"5\"><BOXHD>\
             <CHED H=\"1\">Country</CHED><CHED H=\"1\">Entity</CHED></BOXHD><ROW><ENT I=\"01\">IRAN</ENT>\
             <ENT>A Co., a.k.a. B<LI>1 Street</LI></ENT></ROW></GPOTABLE></REGTEXT></RULE>"
                .as_bytes()
                .to_vec(),
        );
    }
    out
}

/// XML tags, entities and punctuation of a rule, to insert.
fn tokens() -> Vec<&'static [u8]> {
    [
        "<ROW>",
        "</ROW>",
        "<ENT>",
        "</ENT>",
        "<LI>",
        "</LI>",
        "<ENT I=\"01\">",
        "<AMDPAR>",
        "</AMDPAR>",
        "<GPOTABLE COLS=\"0\">",
        "<PRTPAGE/>",
        "<SU>1</SU>",
        "“",
        "”",
        "a.k.a.",
        "; and —",
        "&amp;",
        "&bogus;",
        "<!DOCTYPE x>",
        "<![CDATA[<ROW>]]>",
        "\u{2014}",
        "\u{0}",
    ]
    .iter()
    .map(|t| t.as_bytes())
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_fixtures_never_panic(pick in any::<usize>(), mutations in prop::collection::vec(mutation(tokens(), 64, false), 1..6)) {
        let corpus = corpus();
        let mut bytes = corpus[pick % corpus.len()].clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        // Any outcome is fine except a panic; an Ok must still be internally consistent.
        if let Ok(parsed) = parse_rule(&bytes, None, &ParseLimits::default()) {
            let doc = parsed.document_event(entitywatch::events::DocumentStage::Published);
            prop_assert_eq!(doc.change_count, parsed.changes.len());
            prop_assert!(!parsed.source.document_number.is_empty());
        }
    }
}
