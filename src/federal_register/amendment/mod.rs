//! Rule XML → structured Entity List changes.
//!
//! Sits between `client` (which fetches a rule's GPO FEDREG full-text XML) and the bus: it turns
//! the amendatory instructions (`AMDPAR`) and the five-column table of Supplement No. 4 to part
//! 744 into [`EntityChange`]s, plus one [`DocumentEvent`] that carries whatever could not be
//! reconciled.
//!
//! What it must never do:
//! - I/O of any kind: bytes in, values out, so it can be fuzzed and replayed.
//! - Drop an entry silently: a table row no instruction mentions, an instruction naming an entry
//!   the table lacks, a row without a readable name all end up either as a change or as a
//!   warning that names the entry (usually both). Missing a listing is the one failure this
//!   product cannot afford; a noisy warning is cheap.
//! - Panic, hang or blow the stack on hostile input: size is checked before parsing, DTDs (and so
//!   entity-expansion bombs) are refused, nesting depth is bounded before the recursive XML
//!   parser sees the document, and nothing here indexes or unwraps input-derived data.
//!
//! The parsing is heuristic by necessity: the FR prints an entry as one run of prose ("Name,
//! a.k.a., the following two aliases: —A; and —B. Address; and Address."). Where the instruction
//! text names the entries, those names say where a name ends; where it only counts them, the
//! shape of the address does (`address_shape`).
//!
//! # Moves, footnotes, counts and keys
//!
//! - An entry moved between countries ("by removing under HONG KONG the entry for “X” and
//!   adding under CHINA, PEOPLE'S REPUBLIC OF, an entry for “X”") is emitted as the rule
//!   states it: a removal under the old heading and an addition under the new one, each with
//!   its own key, so each half can be checked against the codified list on its own and a store
//!   that never held the old key loses nothing. [`ParsedRule::moves`] pairs the two.
//! - Footnote markers (`<SU>`) in any cell are kept out of names and licence text and recorded
//!   in [`ParsedRule::footnotes`] (entry key, column, marker, and the note's text when the
//!   document holds it).
//! - An instruction that only counts its entries ("thirty-four entities") is checked against the
//!   table: a different number of rows under that country is a warning naming both counts.
//!   The names then come from the table alone, split from the address by its shape
//!   (`address_shape`).
//! - Two entries of one rule never share a key: the later is keyed `KEY--2` with a warning.
//!
//! # Layout
//!
//! The stages run in this order, one module each:
//! `guards` (size, DTD and nesting checks before parsing) → `source` (FRDOC, SUBJECT,
//! EFFDATE) → `scan` (which AMDPARs and tables amend Supplement No. 4; `text` extracts their
//! prose and `instructions` reads each AMDPAR) → `reconcile` (instruction names × table rows
//! in numbered matching passes, each row's cell read by `entity_cell`, which asks
//! `address_shape` where an unnamed entry's address begins) → [`ParsedRule`].

mod address_shape;
mod entity_cell;
mod guards;
mod instructions;
mod reconcile;
mod scan;
#[cfg(test)]
mod shape_tests;
mod source;
#[cfg(test)]
mod tests;
mod text;

use roxmltree::{Document, ParsingOptions};

use crate::events::{
    ChangeAction, ChangeEvent, DocumentEvent, DocumentStage, EntityChange, EntityKey, EntityName,
    SourceDocument,
};

pub use scan::TableColumn;

use guards::{max_nesting_depth, xml_error};
use reconcile::{name_key, reconcile};
use scan::scan_document;
use source::complete_source;

/// Real rules are well under 1 MiB; a whole daily issue is a few MiB. 16 MiB leaves room for
/// both without letting a hostile response pin hundreds of MiB of tree in memory.
pub const DEFAULT_MAX_BYTES: usize = 16 * 1024 * 1024;

/// FEDREG documents nest about 15 deep. roxmltree recurses once per open element, so an
/// unbounded `<a><a><a>…` would overflow the stack (an abort, not a catchable panic).
pub const MAX_NESTING_DEPTH: usize = 256;

/// The warnings travel in one [`DocumentEvent`] on the bus; past this many the rest are
/// counted, not listed.
pub const MAX_WARNINGS: usize = 500;

/// Bounds applied before any XML parsing happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseLimits {
    pub max_bytes: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// Why a document could not be read at all. A readable document whose content puzzles the
/// parser is never an error: it yields warnings on [`ParsedRule`] instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("document is {size} bytes, over the limit of {limit} bytes; refused before parsing")]
    TooLarge { size: usize, limit: usize },
    #[error("document is not well-formed XML: {0}")]
    Xml(String),
    #[error("document is not valid UTF-8")]
    NotUtf8,
    #[error(
        "document has a DTD (<!DOCTYPE>); refused, as DTD entities can expand without bound \
         and FR rule XML does not need one"
    )]
    DtdRefused,
    #[error("elements are nested {depth} deep, over the limit of {limit}")]
    TooDeep { depth: usize, limit: usize },
}

/// What one rule document says about the Entity List.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRule {
    /// The caller's source, with missing fields filled from the XML.
    pub source: SourceDocument,
    /// In document order: removals where their instruction stands, table rows where they stand.
    pub changes: Vec<EntityChange>,
    /// The AMDPAR texts that touch Supplement No. 4 to part 744, whitespace-collapsed.
    pub amendatory_text: Vec<String>,
    /// Each names the entry (or table / instruction) and the difference found.
    pub warnings: Vec<String>,
    /// Footnote markers (`<SU>`) found in the table's cells, in document order. They are kept
    /// out of names and licence text; this is where they are recorded.
    pub footnotes: Vec<FootnoteMark>,
    /// Entries the rule removes under one country and adds under another (see the module docs).
    pub moves: Vec<MovedEntry>,
}

/// A footnote marker in a cell of the Entity List table ("§§ 734.9(g),<SU>3</SU> 746.8…").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FootnoteMark {
    /// The change whose row carries the marker (for a marker on a country heading, every row
    /// under it).
    pub entity_key: EntityKey,
    pub column: TableColumn,
    /// As printed: "3", "*", "1".
    pub marker: String,
    /// The footnote's text, when the document holds it (a `TNOTE` of the table or an `FTNT`).
    pub note: Option<String>,
}

/// An entry moved between countries: a removal under one heading and an addition of the same
/// name under another, in one rule. Both changes are in [`ParsedRule::changes`]; this pairs
/// them so a consumer can tell a move from an unrelated removal and listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedEntry {
    pub name: EntityName,
    /// The key the removal carries (the old country).
    pub removed: EntityKey,
    /// The key the addition carries (the new country).
    pub added: EntityKey,
    pub from_country_name: String,
    pub to_country_name: String,
}

impl ParsedRule {
    pub fn document_event(&self, stage: DocumentStage) -> DocumentEvent {
        DocumentEvent {
            stage,
            source: self.source.clone(),
            amendatory_text: self.amendatory_text.clone(),
            change_count: self.changes.len(),
            warnings: self.warnings.clone(),
        }
    }

    /// The entity changes, then one [`DocumentEvent`] for the published document. The document
    /// event comes last so a consumer that sees it knows the rule's changes are all in.
    pub fn into_events(self) -> Vec<ChangeEvent> {
        let document = self.document_event(DocumentStage::Published);
        let mut events: Vec<ChangeEvent> =
            self.changes.into_iter().map(ChangeEvent::Entity).collect();
        events.push(ChangeEvent::Document(document));
        events
    }
}

/// Parses one rule's FEDREG XML (as served by `full_text_xml_url`).
///
/// `source` is what the caller already knows about the document (from the API); `None` builds it
/// from the XML (`FRDOC`, `SUBJECT`, `EFFDATE`), with document number `unknown` if absent.
pub fn parse_rule(
    xml: &[u8],
    source: Option<SourceDocument>,
    limits: &ParseLimits,
) -> Result<ParsedRule, ParseError> {
    if xml.len() > limits.max_bytes {
        return Err(ParseError::TooLarge {
            size: xml.len(),
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(xml).map_err(|_| ParseError::NotUtf8)?;
    let depth = max_nesting_depth(text.as_bytes(), MAX_NESTING_DEPTH);
    if depth > MAX_NESTING_DEPTH {
        return Err(ParseError::TooDeep {
            depth,
            limit: MAX_NESTING_DEPTH,
        });
    }
    let options = ParsingOptions {
        // Kept false on purpose: see `ParseError::DtdRefused`.
        allow_dtd: false,
        // A node costs far more memory than the bytes that spell it; cap what a crafted
        // `<a/><a/>…` of max_bytes can allocate.
        nodes_limit: u32::try_from(limits.max_bytes / 4)
            .unwrap_or(u32::MAX)
            .max(100_000),
    };
    let doc = Document::parse_with_options(text, options).map_err(|e| xml_error(e, text))?;

    let mut warnings = Vec::new();
    let source = complete_source(&doc, source, &mut warnings);
    let scan = scan_document(&doc, &mut warnings);
    let reconciled = reconcile(&scan, &source, &mut warnings);
    let moves = moved_entries(&reconciled.changes);
    if scan.amendatory_text.is_empty() && scan.rows.is_empty() {
        warnings.push(
            "no amendment to Supplement No. 4 to part 744 (the Entity List) found in this document"
                .to_string(),
        );
    }
    if warnings.len() > MAX_WARNINGS {
        let omitted = warnings.len() - MAX_WARNINGS;
        warnings.truncate(MAX_WARNINGS);
        warnings.push(format!(
            "… and {omitted} more warnings, omitted to keep the document event small"
        ));
    }
    Ok(ParsedRule {
        source,
        changes: reconciled.changes,
        amendatory_text: scan.amendatory_text,
        warnings,
        footnotes: reconciled.footnotes,
        moves,
    })
}

/// Pairs each removal with the addition of the same name under another country.
fn moved_entries(changes: &[EntityChange]) -> Vec<MovedEntry> {
    let mut additions: std::collections::HashMap<String, Vec<usize>> =
        std::collections::HashMap::new();
    for (i, c) in changes.iter().enumerate() {
        if c.action == ChangeAction::Added {
            additions
                .entry(name_key(c.name.as_str()))
                .or_default()
                .push(i);
        }
    }
    let mut taken = vec![false; changes.len()];
    let mut out = Vec::new();
    for removal in changes.iter().filter(|c| c.action == ChangeAction::Removed) {
        let Some(candidates) = additions.get(&name_key(removal.name.as_str())) else {
            continue;
        };
        let found = candidates
            .iter()
            .copied()
            .find(|i| !taken[*i] && changes[*i].country != removal.country);
        if let Some(i) = found {
            taken[i] = true;
            let added = &changes[i];
            out.push(MovedEntry {
                name: added.name.clone(),
                removed: removal.entity_key.clone(),
                added: added.entity_key.clone(),
                from_country_name: removal.country_name.clone(),
                to_country_name: added.country_name.clone(),
            });
        }
    }
    out
}

/// An Entity cell read as a rule's table cell is read, for the codified list of
/// `list_sources`, whose table has the same columns: `lines[0]` is the cell's running text and
/// any further item one of its line elements; `name_hints` are names the entry may start with
/// (they split a comma-bearing name from its address). Returns the name, aliases, addresses
/// and what could not be read.
pub(crate) fn read_entity_cell(
    lines: &[String],
    name_hints: &[&str],
) -> (String, Vec<String>, Vec<String>, Vec<String>) {
    let segments: Vec<text::Segment> = lines
        .iter()
        .enumerate()
        .map(|(i, line)| text::Segment {
            is_line: i > 0,
            text: line.clone(),
        })
        .collect();
    let e = entity_cell::parse_entity_cell(&segments, name_hints);
    (e.name, e.aliases, e.addresses, e.warnings)
}
