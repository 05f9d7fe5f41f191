//! Reading the eCFR: the versions JSON of title 15 part 744 (which date to fetch) and the XML of
//! Supplement No. 4 to part 744 (the codified Entity List) into [`CodifiedEntry`]s keyed by the
//! one identity rule ([`EntityKey::derive`]).
//!
//! The appendix is a `DIV*` element with `TYPE="APPENDIX"` holding `gpotbl_table` tables of
//! `TR` rows with `TH` headers and five `TD` cells: Country | Entity | License requirement |
//! License review policy | Federal Register citation. The Country cell is often empty on the
//! rows that follow a country's first; `<SU>` footnote marks are kept out of every cell's text
//! (and counted in the warnings). Pure: no I/O here.

use chrono::NaiveDate;
use roxmltree::{Document, Node, ParsingOptions};
use serde::Deserialize;

use super::{CodifiedEntry, ListSourceError, SUPPLEMENT};
use crate::domain::list_entry::ENTITY_LIST_SOURCE;
use crate::domain::ListEntry;
use crate::events::{CountryCode, EntityKey, EntityName};
use crate::federal_register::amendment::read_entity_cell;

#[derive(Debug, Deserialize)]
struct Versions {
    content_versions: Vec<ContentVersion>,
}

/// One entry of `content_versions[]`; fields the choice does not need are ignored.
#[derive(Debug, Deserialize)]
struct ContentVersion {
    date: NaiveDate,
    #[serde(default)]
    amendment_date: Option<NaiveDate>,
    #[serde(default)]
    identifier: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

/// The version of the Supplement to fetch: the latest `date` among the versions whose
/// identifier (or name) is the Supplement, and the amendment date it records.
pub fn latest_supplement_version(json: &[u8]) -> Result<(NaiveDate, NaiveDate), ListSourceError> {
    let versions: Versions = serde_json::from_slice(json).map_err(|e| ListSourceError::Parse {
        source_kind: "ecfr",
        message: format!("versions JSON: {e}"),
    })?;
    let is_supplement = |v: &ContentVersion| {
        let wanted = SUPPLEMENT.to_ascii_lowercase();
        v.kind
            .as_deref()
            .is_none_or(|k| k.eq_ignore_ascii_case("appendix"))
            && (v.identifier.to_ascii_lowercase() == wanted
                || v.name
                    .as_deref()
                    .is_some_and(|n| n.to_ascii_lowercase().starts_with(&wanted)))
    };
    versions
        .content_versions
        .iter()
        .filter(|v| is_supplement(v))
        .max_by_key(|v| v.date)
        .map(|v| (v.date, v.amendment_date.unwrap_or(v.date)))
        .ok_or(ListSourceError::NoVersion)
}

/// The entries of the Supplement's XML. `name_hints` are names an entry may start with (the
/// snapshot's), which split a comma-bearing name from its address as a rule's instruction
/// does; without one the name ends where an address begins.
pub fn parse_supplement(
    xml: &[u8],
    name_hints: &[&str],
    max_bytes: usize,
) -> Result<(Vec<CodifiedEntry>, Vec<String>), ListSourceError> {
    let parse_err = |message: String| ListSourceError::Parse {
        source_kind: "ecfr",
        message,
    };
    if xml.len() > max_bytes {
        return Err(parse_err(format!(
            "the XML is larger than {max_bytes} bytes"
        )));
    }
    let text = std::str::from_utf8(xml).map_err(|e| parse_err(format!("not UTF-8: {e}")))?;
    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: u32::try_from(max_bytes / 4)
            .unwrap_or(u32::MAX)
            .max(100_000),
    };
    let doc = Document::parse_with_options(text, options)
        .map_err(|e| parse_err(format!("not well-formed XML: {e}")))?;
    let appendix = doc
        .descendants()
        .find(|n| n.is_element() && n.attribute("TYPE") == Some("APPENDIX"))
        .ok_or_else(|| parse_err(format!("no DIV with TYPE=\"APPENDIX\" ({SUPPLEMENT})")))?;
    let mut warnings = Vec::new();
    let mut out: Vec<CodifiedEntry> = Vec::new();
    let mut heading = String::new();
    let mut footnotes = 0usize;
    for row in appendix
        .descendants()
        .filter(|n| n.has_tag_name("TABLE") && has_class(n, "gpotbl_table"))
        .flat_map(|t| t.descendants().filter(|n| n.has_tag_name("TR")))
    {
        let cells: Vec<Node> = row.children().filter(|c| c.has_tag_name("TD")).collect();
        if cells.is_empty() {
            continue; // the header row (TH)
        }
        if cells.len() != 5 {
            warnings.push(format!(
                "a row with {} cells instead of 5 was skipped: {}",
                cells.len(),
                excerpt(&cell_lines(row, &mut footnotes).join(" "))
            ));
            continue;
        }
        let country = cell_lines(cells[0], &mut footnotes).join(" ");
        if !country.is_empty() {
            heading = country;
        }
        let entity_lines = cell_lines(cells[1], &mut footnotes);
        if entity_lines.is_empty() {
            continue; // a heading-only row
        }
        let (raw_name, aliases, addresses, cell_warnings) =
            read_entity_cell(&entity_lines, name_hints);
        warnings.extend(cell_warnings);
        let Ok(name) = EntityName::parse(&raw_name) else {
            warnings.push(format!(
                "an entry under {heading} has no readable name: {}",
                excerpt(&entity_lines.join(" "))
            ));
            continue;
        };
        let code = CountryCode::from_heading(&heading).unwrap_or_else(|| {
            warnings.push(format!("unknown country heading {heading:?} for {name}"));
            CountryCode::unknown()
        });
        let optional = |n: Node, footnotes: &mut usize| {
            let t = cell_lines(n, footnotes).join(" ");
            (!t.is_empty()).then_some(t)
        };
        let entry = ListEntry {
            // The codified text is a rule's text: only a legal form in the name says the kind.
            schema: crate::domain::list_entry::schema_from_rule_name(name.as_str()),
            entity_key: EntityKey::derive(&code, &name),
            name,
            aliases,
            addresses,
            countries: if code.is_unknown() {
                Vec::new()
            } else {
                vec![code]
            },
            license_requirement: optional(cells[2], &mut footnotes),
            license_policy: optional(cells[3], &mut footnotes),
            federal_register_citation: optional(cells[4], &mut footnotes),
            source_list: ENTITY_LIST_SOURCE.to_string(),
        };
        match out
            .iter_mut()
            .find(|e| e.entry.entity_key == entry.entity_key)
        {
            // The list names some entries twice under one heading: one entry, nothing lost.
            Some(existing) => existing.entry.absorb(entry),
            None => out.push(CodifiedEntry {
                heading: heading.clone(),
                entry,
            }),
        }
    }
    if footnotes > 0 {
        warnings.push(format!(
            "{footnotes} footnote mark(s) (<SU>) kept out of the cells' text"
        ));
    }
    Ok((out, warnings))
}

fn has_class(n: &Node, class: &str) -> bool {
    n.attribute("class")
        .is_some_and(|c| c.split_whitespace().any(|w| w == class))
}

/// A cell's text, whitespace collapsed: its running text first, then one item per line element
/// (`P`, `LI`, `br`), with `SU` footnote marks left out and counted.
fn cell_lines(cell: Node, footnotes: &mut usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    walk(cell, &mut lines, footnotes);
    lines
        .into_iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

fn walk(node: Node, lines: &mut Vec<String>, footnotes: &mut usize) {
    for child in node.children() {
        if child.is_text() {
            if let (Some(line), Some(t)) = (lines.last_mut(), child.text()) {
                line.push_str(t);
            }
            continue;
        }
        if !child.is_element() {
            continue;
        }
        match child.tag_name().name() {
            "SU" => *footnotes += 1,
            "br" | "BR" => lines.push(String::new()),
            "P" | "LI" | "FP" => {
                lines.push(String::new());
                walk(child, lines, footnotes);
                lines.push(String::new());
            }
            _ => walk(child, lines, footnotes),
        }
    }
}

fn excerpt(s: &str) -> String {
    s.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../tests/fixtures/ecfr/supplement-4-part-744.xml");

    #[test]
    fn the_latest_supplement_version_is_chosen() {
        let json = br#"{"content_versions":[
            {"date":"2025-01-16","amendment_date":"2025-01-16","identifier":"Supplement No. 4 to Part 744","name":"Supplement No. 4 to Part 744\u2014Entity List","part":"744","type":"appendix","substantive":true,"removed":false},
            {"date":"2025-03-01","amendment_date":"2025-02-27","identifier":"744.1","name":"744.1 General provisions.","part":"744","type":"section"},
            {"date":"2024-06-01","amendment_date":"2024-06-01","identifier":"Supplement No. 4 to Part 744","part":"744","type":"appendix"}
        ],"meta":{}}"#;
        let (date, amended) = latest_supplement_version(json).unwrap();
        assert_eq!(date.to_string(), "2025-01-16");
        assert_eq!(amended.to_string(), "2025-01-16");
        assert!(matches!(
            latest_supplement_version(br#"{"content_versions":[]}"#),
            Err(ListSourceError::NoVersion)
        ));
    }

    #[test]
    fn the_fixture_reads_to_every_entry_with_headings_carried_and_footnotes_dropped() {
        let (entries, warnings) = parse_supplement(FIXTURE.as_bytes(), &[], 1 << 24).unwrap();
        // 73 added by the six fixture rules and 2 revised that none of them added; the 3
        // removals name entries none of them added.
        assert_eq!(entries.len(), 75, "{warnings:?}");
        let hik = entries
            .iter()
            .find(|e| {
                e.entry.entity_key.as_str() == "CN/hangzhou-hikvision-digital-technology-co-ltd"
            })
            .expect("Hikvision is listed");
        assert_eq!(hik.heading, "CHINA, PEOPLE'S REPUBLIC OF");
        assert!(hik.entry.aliases.contains(&"Hikvision".to_string()));
        for e in &entries {
            let lic = e.entry.license_requirement.as_deref().unwrap_or("");
            assert!(!lic.ends_with(char::is_numeric), "{lic}");
        }
        assert!(
            warnings.iter().any(|w| w.contains("footnote")),
            "{warnings:?}"
        );
    }

    #[test]
    fn truncated_xml_is_an_error_not_a_short_list() {
        let cut = &FIXTURE.as_bytes()[..FIXTURE.len() / 2];
        assert!(matches!(
            parse_supplement(cut, &[], 1 << 24),
            Err(ListSourceError::Parse { .. })
        ));
    }
}
