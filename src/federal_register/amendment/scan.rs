//! Document scan: which AMDPARs and tables belong to Supplement No. 4 to part 744.
//!
//! It follows the `REGTEXT`/`AMDPAR`/`HD` context through the document, hands each AMDPAR's text
//! to `instructions` and reads each Entity List table into [`TableRow`]s (cell text
//! only; the entity cell is read later, once the instruction names are known). It never
//! interprets a name.

use std::collections::HashMap;

use roxmltree::{Document, Node};

use super::instructions::{parse_instructions, Instruction};
use super::text::{collapse, flat_text, has_ancestor, is, segments, Segment};

#[derive(Debug, Clone)]
pub(super) struct TableRow {
    pub(super) pos: (usize, usize),
    /// The heading carried down from the last row that had one.
    pub(super) country: Option<String>,
    pub(super) entity: Vec<Segment>,
    pub(super) license_requirement: Option<String>,
    pub(super) license_policy: Option<String>,
    pub(super) citation: Option<String>,
    /// For warnings: which table and row this is.
    pub(super) label: String,
    /// Footnote markers (`<SU>`) of the row's cells (the country's carried down with it), kept
    /// out of the text above.
    pub(super) footnotes: Vec<(TableColumn, String)>,
}

#[derive(Debug, Default)]
pub(super) struct Scan {
    pub(super) amendatory_text: Vec<String>,
    pub(super) instructions: Vec<Instruction>,
    pub(super) rows: Vec<TableRow>,
    /// Footnote texts by marker: the `TNOTE`s of Entity List tables and the document's `FTNT`s,
    /// the first of each marker kept.
    pub(super) notes: HashMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// Nothing said yet which part of the CFR the following content amends.
    Unknown,
    Supplement4,
    Elsewhere,
}

pub(super) fn scan_document(doc: &Document, warnings: &mut Vec<String>) -> Scan {
    let mut scan = Scan::default();
    let mut context = Context::Unknown;
    let mut table_no = 0usize;
    // End of the AMDPAR / HD / GPOTABLE being read: one nested inside it is part of its text
    // already, and re-reading every level of a hostile nest would be quadratic.
    let mut inside_until = 0usize;
    for node in doc.descendants().filter(|n| n.is_element()) {
        if ["AMDPAR", "HD", "GPOTABLE"].iter().any(|t| is(node, t)) {
            if node.range().start < inside_until {
                continue;
            }
            inside_until = node.range().end;
        }
        if is(node, "REGTEXT") {
            if let Some(part) = node.attribute("PART") {
                if !part_mentions_744(part) {
                    context = Context::Elsewhere;
                }
            }
        } else if is(node, "AMDPAR") {
            let text = flat_text(doc, node);
            let in_744 = regtext_part(node).is_none_or(|p| part_mentions_744(&p));
            match amdpar_target(&text, in_744) {
                Target::Supplement4 => context = Context::Supplement4,
                Target::Other => context = Context::Elsewhere,
                Target::Continues => {}
            }
            if context == Context::Supplement4 {
                let pos = node.range().start;
                let (instructions, mut w) = parse_instructions(&text, pos);
                // "3. Supplement No. 4 to part 744 is amended:" introduces lettered AMDPARs.
                let introduces = text.trim_end().ends_with([':', '—']);
                if instructions.is_empty() && !introduces {
                    w.push(format!(
                        "amendatory instruction touching Supplement No. 4 names no adding, revising \
                         or removing of entries: “{text}”"
                    ));
                }
                warnings.append(&mut w);
                scan.instructions.extend(instructions);
                scan.amendatory_text.push(text);
            }
        } else if is(node, "HD") {
            let words = fold_words(&flat_text(doc, node));
            if let Some(n) = supplement_number(&words) {
                let of_744 = words.windows(2).any(|w| w == ["part", "744"]);
                context = if n == "4"
                    && (of_744 || regtext_part(node).is_some_and(|p| part_mentions_744(&p)))
                {
                    Context::Supplement4
                } else {
                    Context::Elsewhere
                };
            }
        } else if is(node, "FTNT") || (is(node, "TNOTE") && context == Context::Supplement4) {
            if let Some((marker, text)) = note(doc, node) {
                scan.notes.entry(marker).or_insert(text);
            }
        } else if is(node, "GPOTABLE") {
            table_no += 1;
            scan_table(doc, node, context, table_no, &mut scan.rows, warnings);
        }
    }
    scan
}

fn part_mentions_744(part: &str) -> bool {
    part.split(|c: char| !c.is_ascii_digit())
        .any(|p| p == "744")
}

fn regtext_part(node: Node) -> Option<String> {
    node.ancestors()
        .find(|a| is(*a, "REGTEXT"))
        .and_then(|r| r.attribute("PART"))
        .map(str::to_string)
}

enum Target {
    Supplement4,
    Other,
    /// A lettered continuation ("b. By revising under …") of the previous instruction.
    Continues,
}

fn amdpar_target(text: &str, in_part_744: bool) -> Target {
    let words = fold_words(text);
    if let Some(n) = supplement_number(&words) {
        let of_this_part = words.windows(2).any(|w| w == ["this", "part"]);
        let of_744 = words.windows(2).any(|w| w == ["part", "744"]);
        if n == "4"
            && (of_744 || (in_part_744 && (of_this_part || !words.contains(&"part".to_string()))))
        {
            return Target::Supplement4;
        }
        return Target::Other;
    }
    let lower = text.to_lowercase();
    let names_other_target = lower.contains('§')
        || lower.contains("authority citation")
        || words
            .windows(2)
            .any(|w| w[0] == "section" && w[1].chars().all(|c| c.is_ascii_digit()))
        || [
            " is amended",
            " is revised",
            " are revised",
            " is added",
            " are added",
            " is removed",
            " are removed",
        ]
        .iter()
        .any(|p| lower.contains(p));
    if names_other_target {
        Target::Other
    } else {
        Target::Continues
    }
}

/// The N of "supplement no N" / "supplement number N" in folded words.
fn supplement_number(words: &[String]) -> Option<&str> {
    words.windows(3).find_map(|w| {
        (w[0] == "supplement" && (w[1] == "no" || w[1] == "number")).then_some(w[2].as_str())
    })
}

/// Lowercase alphanumeric words.
fn fold_words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// A column of the Entity List table, as its heading names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TableColumn {
    Country,
    Entity,
    LicenseRequirement,
    LicensePolicy,
    Citation,
    Other,
}

impl TableColumn {
    pub fn as_str(self) -> &'static str {
        match self {
            TableColumn::Country => "country",
            TableColumn::Entity => "entity",
            TableColumn::LicenseRequirement => "license_requirement",
            TableColumn::LicensePolicy => "license_policy",
            TableColumn::Citation => "federal_register_citation",
            TableColumn::Other => "other",
        }
    }
}

fn scan_table(
    doc: &Document,
    table: Node,
    context: Context,
    table_no: usize,
    rows: &mut Vec<TableRow>,
    warnings: &mut Vec<String>,
) {
    let Some(columns) = table_columns(doc, table, context, table_no, warnings) else {
        return;
    };
    read_rows(doc, table, &columns, table_no, rows, warnings);
}

/// The table's columns, or `None` when it is not an Entity List table (or is one that cannot
/// be read, with a warning).
fn table_columns(
    doc: &Document,
    table: Node,
    context: Context,
    table_no: usize,
    warnings: &mut Vec<String>,
) -> Option<Vec<TableColumn>> {
    let heads: Vec<String> = table
        .children()
        .filter(|n| is(*n, "BOXHD"))
        .flat_map(|b| b.children())
        .filter(|n| is(*n, "CHED") && n.attribute("H").is_none_or(|h| h.trim() == "1"))
        .map(|n| flat_text(doc, n).to_lowercase())
        .collect();
    let mut columns: Vec<TableColumn> = heads
        .iter()
        .map(|h| {
            if h.contains("country") {
                TableColumn::Country
            } else if h.contains("entity") || h.contains("entities") {
                TableColumn::Entity
            } else if h.contains("requirement") {
                TableColumn::LicenseRequirement
            } else if h.contains("policy") {
                TableColumn::LicensePolicy
            } else if h.contains("federal register") || h.contains("citation") {
                TableColumn::Citation
            } else {
                TableColumn::Other
            }
        })
        .collect();
    let has = |c: TableColumn, cols: &[TableColumn]| cols.contains(&c);
    let looks_like_entity_list = has(TableColumn::Country, &columns)
        && has(TableColumn::Entity, &columns)
        && (has(TableColumn::LicenseRequirement, &columns)
            || has(TableColumn::LicensePolicy, &columns));

    match context {
        Context::Supplement4 => {
            if heads.is_empty() {
                warnings.push(format!(
                    "table {table_no} of Supplement No. 4 has no column headings; read as Country | \
                     Entity | License requirement | License review policy | Federal Register citation"
                ));
                columns = vec![
                    TableColumn::Country,
                    TableColumn::Entity,
                    TableColumn::LicenseRequirement,
                    TableColumn::LicensePolicy,
                    TableColumn::Citation,
                ];
            } else if !has(TableColumn::Entity, &columns) {
                warnings.push(format!(
                    "table {table_no} follows an instruction on Supplement No. 4 but has no Entity \
                     column (columns: {}); skipped",
                    heads.join(" | ")
                ));
                return None;
            }
        }
        _ if looks_like_entity_list => warnings.push(format!(
            "table {table_no} has the Entity List's columns but no amendatory instruction on \
             Supplement No. 4 to part 744 precedes it; read anyway"
        )),
        _ => return None,
    }
    Some(columns)
}

/// Each logical row with an entity, the country heading carried down from the last row that
/// had one.
fn read_rows(
    doc: &Document,
    table: Node,
    columns: &[TableColumn],
    table_no: usize,
    rows: &mut Vec<TableRow>,
    warnings: &mut Vec<String>,
) {
    let width = table
        .attribute("COLS")
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c > 0)
        .unwrap_or(columns.len())
        .max(1);
    let mut country: Option<String> = None;
    let mut country_marks: Vec<(TableColumn, String)> = Vec::new();
    let mut row_no = 0usize;
    for row in table.children().filter(|n| is(*n, "ROW")) {
        for cells in logical_rows(row, width) {
            row_no += 1;
            let pos = (row.range().start, row_no);
            let mut entry = TableRow {
                pos,
                country: None,
                entity: Vec::new(),
                license_requirement: None,
                license_policy: None,
                citation: None,
                label: format!("table {table_no}, row {row_no}"),
                footnotes: Vec::new(),
            };
            let mut country_marks_here: Option<Vec<(TableColumn, String)>> = None;
            let mut any_text = false;
            let mut all_elision = true;
            for (i, cell) in cells.iter().enumerate() {
                let segs = segments(doc, *cell);
                if segs.is_empty() {
                    continue;
                }
                any_text = true;
                let joined = segs
                    .iter()
                    .map(|s| s.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                if !is_elision(&joined) {
                    all_elision = false;
                }
                let column = columns.get(i).copied().unwrap_or(TableColumn::Other);
                let marks = footnote_markers(*cell).map(|m| (column, m));
                match column {
                    TableColumn::Country => {
                        if !is_elision(&joined) {
                            country = Some(joined);
                            country_marks_here = Some(marks.collect());
                        }
                    }
                    TableColumn::Entity => {
                        if !is_elision(&joined) {
                            entry.entity = segs;
                        }
                        entry.footnotes.extend(marks);
                    }
                    TableColumn::LicenseRequirement => {
                        entry.license_requirement = Some(joined);
                        entry.footnotes.extend(marks);
                    }
                    TableColumn::LicensePolicy => {
                        entry.license_policy = Some(joined);
                        entry.footnotes.extend(marks);
                    }
                    TableColumn::Citation => {
                        entry.citation = Some(joined);
                        entry.footnotes.extend(marks);
                    }
                    TableColumn::Other => entry.footnotes.extend(marks),
                }
            }
            if let Some(m) = country_marks_here {
                country_marks = m;
            }
            if !any_text || all_elision {
                continue;
            }
            if entry.entity.is_empty() {
                let stray = entry.license_requirement.is_some()
                    || entry.license_policy.is_some()
                    || entry.citation.is_some();
                if stray {
                    warnings.push(format!(
                        "{} under {} has license or citation text but no entity; nothing emitted \
                         for it",
                        entry.label,
                        country.as_deref().unwrap_or("no country heading")
                    ));
                }
                continue;
            }
            entry.country = country.clone();
            let mut with_country = country_marks.clone();
            with_country.append(&mut entry.footnotes);
            entry.footnotes = with_country;
            rows.push(entry);
        }
    }
}

/// A `ROW`'s cells, split when GPO packed several table rows into one `ROW` (each row's first
/// cell carries `I="01"`), and in any case into runs of at most `width` cells.
fn logical_rows<'a, 'i>(row: Node<'a, 'i>, width: usize) -> Vec<Vec<Node<'a, 'i>>> {
    let mut out: Vec<Vec<Node>> = Vec::new();
    let mut current: Vec<Node> = Vec::new();
    for ent in row.children().filter(|n| is(*n, "ENT")) {
        let starts_row = ent.attribute("I").is_some_and(|i| i.trim() == "01");
        if !current.is_empty() && (current.len() >= width || starts_row) {
            out.push(std::mem::take(&mut current));
        }
        current.push(ent);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

pub(super) fn is_elision(text: &str) -> bool {
    text.contains('*')
        && text
            .chars()
            .all(|c| c == '*' || c == '.' || c.is_whitespace())
}

/// The footnote markers (`<SU>`) in a cell, in order; a marker inside a footnote's own text
/// (`FTNT`) is not one.
fn footnote_markers<'a>(cell: Node<'a, '_>) -> impl Iterator<Item = String> + 'a {
    cell.descendants()
        .filter(|n| is(*n, "SU") && !has_ancestor(*n, "FTNT"))
        .map(|n| {
            let text: String = n
                .descendants()
                .filter(|t| t.is_text())
                .filter_map(|t| t.text())
                .collect();
            collapse(&text)
        })
        .filter(|m| !m.is_empty())
}

/// A note's marker and text: "<SU>3</SU> See § 746.8 …" → ("3", "See § 746.8 …").
fn note(doc: &Document, node: Node) -> Option<(String, String)> {
    let marker = node.descendants().find(|n| is(*n, "SU"))?;
    let m: String = marker
        .descendants()
        .filter(|t| t.is_text())
        .filter_map(|t| t.text())
        .collect();
    let body: Vec<String> = node
        .children()
        .filter(|c| !is(*c, "SU"))
        .map(|c| {
            if c.is_text() {
                collapse(c.text().unwrap_or_default())
            } else {
                flat_text(doc, c)
            }
        })
        .filter(|t| !t.is_empty())
        .collect();
    let m = collapse(&m);
    (!m.is_empty()).then(|| (m, body.join(" ")))
}
