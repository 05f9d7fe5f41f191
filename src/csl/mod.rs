//! The trade.gov Consolidated Screening List (CSL) as a source for the stored list snapshot:
//! `entitywatch list import FILE` reads the CSV (2019 layout without `_id`, 2022/2025 layout
//! with it, optionally gzip-compressed) or the JSON (API `results[]`, `entries[]`, the compact
//! all-sources form), keeps the rows of the chosen lists ([`SourceFilter`], Entity List by
//! default), and turns them into [`ListEntry`]s keyed like the watcher's change events.
//!
//! The list is authoritative data, so this reader is strict where a supplier file is lenient:
//! a structurally malformed file is refused as a whole with the line that broke it, because a
//! snapshot silently missing rows would later read as removals. It must never invent an entry,
//! and it does no database or network I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::list_entry::dedup_strings;
use crate::domain::{recognise_country, ListEntry};
use crate::events::{CountryCode, EntityKey, EntityName};
use crate::screening::Schema;

/// The CSL's name for the Entity List (Supplement No. 4 to part 744).
pub use crate::domain::list_entry::ENTITY_LIST_SOURCE;

/// One row of the CSL, for any of its lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CslEntry {
    /// `_id` (2022+ CSV), `id` (API JSON) or the entity number, when the file has one.
    pub id: Option<String>,
    /// The list, as the CSL names it, e.g. [`ENTITY_LIST_SOURCE`].
    pub source: String,
    pub name: EntityName,
    pub alt_names: Vec<String>,
    pub addresses: Vec<String>,
    /// From `address_countries` where given, else from each address's last comma part.
    pub countries: Vec<CountryCode>,
    pub license_requirement: Option<String>,
    pub license_policy: Option<String>,
    pub federal_register_notice: Option<String>,
    pub start_date: Option<NaiveDate>,
    /// The kind the `type` column states ("Individual", "Entity", "Vessel"); `None` when it is
    /// blank, as it is on Entity List rows, or names a kind the matcher has no rules for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Schema>,
}

impl CslEntry {
    /// The entry as the snapshot keeps it, by the one identity rule of every source: the
    /// primary name, with a trailing bracketed alias ("... Co., Ltd. (Huawei)") moved to the
    /// aliases, under the key [`EntityKey::derive`] gives.
    pub fn to_list_entry(&self) -> ListEntry {
        let (name, aliases) = match self.name.split_trailing_alias() {
            (primary, Some(alias)) => (
                EntityName::parse(primary).unwrap_or_else(|_| self.name.clone()),
                dedup_strings(
                    std::iter::once(alias.to_string()).chain(self.alt_names.iter().cloned()),
                ),
            ),
            (_, None) => (self.name.clone(), self.alt_names.clone()),
        };
        ListEntry {
            entity_key: self.entity_key(),
            name,
            aliases,
            addresses: self.addresses.clone(),
            countries: self.countries.clone(),
            license_requirement: self.license_requirement.clone(),
            license_policy: self.license_policy.clone(),
            federal_register_citation: self.federal_register_notice.clone(),
            source_list: self.source.clone(),
            schema: self.schema,
        }
    }

    /// The watcher's key for this entry: the first country the entry gives (the CSL has no
    /// country heading; the first address is where the Entity List lists it in practice), or
    /// `XX`.
    pub fn entity_key(&self) -> EntityKey {
        let country = self
            .countries
            .first()
            .cloned()
            .unwrap_or_else(CountryCode::unknown);
        EntityKey::derive(&country, &self.name)
    }
}

/// Which lists of the CSL to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceFilter {
    All,
    /// Keep a row if any term matches its source: the abbreviation in parentheses ("EL", "SDN",
    /// "DPL", "MEU", "UVL", "NS-MBS"), or, for terms of four or more characters, any part of
    /// the source name ("Entity List", "Treasury"). Case is ignored.
    Any(Vec<String>),
}

impl Default for SourceFilter {
    fn default() -> Self {
        SourceFilter::entity_list()
    }
}

impl SourceFilter {
    pub fn entity_list() -> Self {
        SourceFilter::Any(vec!["Entity List".to_string()])
    }

    /// `all`, or comma-separated terms: `EL`, `EL,SDN`, `Entity List`.
    pub fn parse(spec: &str) -> Self {
        let terms: Vec<String> = spec
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        if terms.is_empty() {
            SourceFilter::entity_list()
        } else if terms.iter().any(|t| t.eq_ignore_ascii_case("all")) {
            SourceFilter::All
        } else {
            SourceFilter::Any(terms)
        }
    }

    pub fn matches(&self, source: &str) -> bool {
        let terms = match self {
            SourceFilter::All => return true,
            SourceFilter::Any(terms) => terms,
        };
        let source_lower = source.to_lowercase();
        let abbreviation = abbreviation(source).map(|a| a.to_lowercase());
        terms.iter().any(|t| {
            let t = t.to_lowercase();
            let abbreviated = abbreviation
                .as_deref()
                .is_some_and(|a| a == t || a.split_whitespace().next() == Some(t.as_str()));
            // Short terms only as abbreviations: "EL" is inside "Legislative" and "Sectoral".
            abbreviated || (t.chars().count() >= 4 && source_lower.contains(&t))
        })
    }
}

impl SourceFilter {
    /// The terms that match none of `sources`.
    pub fn unmatched_terms<'s>(
        &self,
        sources: impl Iterator<Item = &'s str> + Clone,
    ) -> Vec<String> {
        match self {
            SourceFilter::All => Vec::new(),
            SourceFilter::Any(terms) => terms
                .iter()
                .filter(|t| {
                    let one = SourceFilter::Any(vec![(*t).clone()]);
                    !sources.clone().any(|s| one.matches(s))
                })
                .cloned()
                .collect(),
        }
    }
}

impl fmt::Display for SourceFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceFilter::All => f.write_str("all"),
            SourceFilter::Any(t) => f.write_str(&t.join(",")),
        }
    }
}

/// "Entity List (EL) - Bureau ..." → "EL".
fn abbreviation(source: &str) -> Option<&str> {
    let open = source.find('(')?;
    let close = source[open..].find(')')? + open;
    Some(source[open + 1..close].trim())
}

/// The shape the file turned out to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CslLayout {
    /// CSV without `_id` (as published until about 2020).
    Csv2019,
    /// CSV with `_id` first (2022 and 2025 files).
    Csv2022,
    /// The API's `{"results": [...]}`.
    JsonResults,
    /// `{"entries": [...]}` with the API's field names.
    JsonEntries,
    /// A bare JSON array of entries.
    JsonArray,
    /// The compact all-sources projection: short keys (`fieldKey`), strings interned in `tables`.
    JsonCompact,
}

/// A row that was read but not kept, and why; the rest of the file is unaffected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CslWarning {
    /// "line 17" for CSV, "entry 3" for JSON (1-based).
    pub location: String,
    pub message: String,
}

impl fmt::Display for CslWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// A file read: the entries of the chosen lists, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CslImport {
    pub layout: CslLayout,
    pub entries: Vec<CslEntry>,
    /// Rows (CSV) or entries (JSON) in the file, of every list.
    pub rows: usize,
    /// Rows of lists the filter did not select.
    pub other_sources: usize,
    pub warnings: Vec<CslWarning>,
    /// Every list the file has rows of, with its row count.
    pub sources: BTreeMap<String, usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum CslError {
    #[error("cannot read the screening list file: {0}")]
    Io(#[from] io::Error),
    #[error("the screening list file is larger than {limit} bytes (after decompression)")]
    TooLarge { limit: u64 },
    #[error("the screening list file is empty")]
    Empty,
    #[error(
        "not a Consolidated Screening List CSV: the header lacks {missing}; found columns: {found}",
        missing = missing.join(", "),
        found = found.join(", ")
    )]
    MissingColumns {
        missing: Vec<String>,
        found: Vec<String>,
    },
    #[error("malformed screening list CSV at line {line}: {reason}; the file was not imported")]
    Malformed { line: u64, reason: String },
    #[error("malformed screening list JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "no list in the file matches --source {terms}; the lists in it: {known}",
        terms = terms.join(","),
        known = if known.is_empty() { "(none)".to_string() } else { known.join("; ") }
    )]
    UnknownSource {
        terms: Vec<String>,
        known: Vec<String>,
    },
    #[error(
        "unrecognised screening list JSON: expected an object with `results` or `entries`, or \
         an array; found keys: {0}"
    )]
    UnknownJsonShape(String),
}

/// Bounds on what a file may make the reader hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CslLimits {
    /// Largest (decompressed) file accepted; the full CSL is about 10 MB, so a gzip bomb stops
    /// here rather than at the end of memory.
    pub max_bytes: u64,
}

impl Default for CslLimits {
    fn default() -> Self {
        CslLimits {
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Reads a CSL file (CSV or JSON, optionally gzip-compressed; the content decides, not the
/// file name); `-` is standard input.
pub fn read_csl_path(path: &Path, filter: &SourceFilter) -> Result<CslImport, CslError> {
    if path == Path::new("-") {
        return read_csl(io::stdin().lock(), filter, CslLimits::default());
    }
    let file = std::fs::File::open(path)?;
    read_csl(file, filter, CslLimits::default())
}

/// How much of a list a replace may remove before it is refused. A snapshot import replaces
/// the list, so a file cut short (40 lines of a 2,000-row CSV, a one-entry JSON) would
/// otherwise mark nearly every entry removed, and screening would go quiet without a word.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShrinkGuard {
    /// Largest share (0.0-1.0) of the listed entries one replace may remove.
    pub max_removed_share: f64,
}

impl Default for ShrinkGuard {
    fn default() -> Self {
        ShrinkGuard {
            max_removed_share: 0.05,
        }
    }
}

impl ShrinkGuard {
    /// Whether removing `removed` of `listed_before` entries is within the share. A first
    /// import (nothing listed) always is.
    pub fn allows(&self, listed_before: u64, removed: u64) -> bool {
        listed_before == 0 || removed as f64 <= self.max_removed_share * listed_before as f64
    }

    /// Parses `5%`, `5` (per cent) or `0.05`.
    pub fn parse_share(raw: &str) -> Result<f64, String> {
        let t = raw.trim();
        let (num, percent) = match t.strip_suffix('%') {
            Some(n) => (n.trim(), true),
            None => (t, false),
        };
        let n: f64 = num
            .parse()
            .map_err(|_| format!("{raw:?} is not a share like 5% or 0.05"))?;
        let share = if percent || n > 1.0 { n / 100.0 } else { n };
        if !(0.0..=1.0).contains(&share) {
            return Err(format!("{raw:?} is not a share between 0% and 100%"));
        }
        Ok(share)
    }
}

/// Reads a CSL from any reader: gzip is recognised by its magic bytes, JSON by a leading `{`
/// or `[`, anything else is read as CSV.
pub fn read_csl(
    reader: impl Read,
    filter: &SourceFilter,
    limits: CslLimits,
) -> Result<CslImport, CslError> {
    let mut buffered = BufReader::new(reader);
    let gzip = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let bytes = if gzip {
        read_bounded(flate2::bufread::MultiGzDecoder::new(buffered), limits)?
    } else {
        read_bounded(buffered, limits)?
    };
    let body = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes);
    let import = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(CslError::Empty),
        Some(b'{' | b'[') => read_json(body, filter)?,
        Some(_) => read_csv(body, filter)?,
    };
    // A term that selects nothing is a typo (`--source XYZ`), not a request for an empty list.
    let unmatched = filter.unmatched_terms(import.sources.keys().map(String::as_str));
    if !unmatched.is_empty() {
        return Err(CslError::UnknownSource {
            terms: unmatched,
            known: import
                .sources
                .iter()
                .map(|(s, n)| format!("{s} ({n} rows)"))
                .collect(),
        });
    }
    Ok(import)
}

fn read_bounded(reader: impl Read, limits: CslLimits) -> Result<Vec<u8>, CslError> {
    let mut bytes = Vec::new();
    reader
        .take(limits.max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limits.max_bytes {
        return Err(CslError::TooLarge {
            limit: limits.max_bytes,
        });
    }
    Ok(bytes)
}

/// The values of one row, before they are checked; shared by the CSV and JSON readers.
#[derive(Default)]
struct RawEntry {
    id: Option<String>,
    source: String,
    name: String,
    alt_names: Vec<String>,
    addresses: Vec<String>,
    /// Countries stated as such (JSON `address_countries`, address objects' `country`).
    countries: Vec<String>,
    license_requirement: Option<String>,
    license_policy: Option<String>,
    federal_register_notice: Option<String>,
    start_date: Option<String>,
    /// The `type` column as written.
    kind: Option<String>,
}

/// Collects the kept entries and the reasons rows were not kept.
struct Collector<'a> {
    filter: &'a SourceFilter,
    out: CslImport,
}

impl<'a> Collector<'a> {
    fn new(filter: &'a SourceFilter, layout: CslLayout) -> Self {
        Collector {
            filter,
            out: CslImport {
                layout,
                entries: Vec::new(),
                rows: 0,
                other_sources: 0,
                warnings: Vec::new(),
                sources: BTreeMap::new(),
            },
        }
    }

    fn push(&mut self, location: impl FnOnce() -> String, raw: RawEntry) {
        self.out.rows += 1;
        // A row with no list or no name is reported whatever the filter: counted among "other
        // lists" it would vanish without a word.
        if raw.source.trim().is_empty() {
            self.out.warnings.push(CslWarning {
                location: location(),
                message: "row without a source list, skipped".to_string(),
            });
            return;
        }
        *self.out.sources.entry(raw.source.clone()).or_default() += 1;
        // PostgreSQL cannot store a NUL in text, and would fail the whole import on it.
        let text = [&raw.name, &raw.source]
            .into_iter()
            .chain(&raw.alt_names)
            .chain(&raw.addresses)
            .chain(raw.license_requirement.iter())
            .chain(raw.license_policy.iter())
            .chain(raw.federal_register_notice.iter());
        if text.into_iter().any(|t| t.contains('\0')) {
            self.out.warnings.push(CslWarning {
                location: location(),
                message: "a field contains a NUL byte (0x00), which cannot be stored; skipped"
                    .to_string(),
            });
            return;
        }
        let name = match EntityName::parse(&raw.name) {
            Ok(n) => n,
            Err(_) => {
                self.out.warnings.push(CslWarning {
                    location: location(),
                    message: format!("{} row without a name, skipped", raw.source),
                });
                return;
            }
        };
        if !self.filter.matches(&raw.source) {
            self.out.other_sources += 1;
            return;
        }
        let start_date = match raw.start_date.as_deref() {
            None => None,
            Some(d) => match NaiveDate::parse_from_str(d, "%Y-%m-%d") {
                Ok(d) => Some(d),
                Err(_) => {
                    self.out.warnings.push(CslWarning {
                        location: location(),
                        message: format!("start_date {d:?} is not YYYY-MM-DD, left empty"),
                    });
                    None
                }
            },
        };
        let mut countries: Vec<CountryCode> = Vec::new();
        let stated = raw.countries.iter().filter_map(|c| recognise_country(c));
        let from_addresses = raw.addresses.iter().filter_map(|a| address_country(a));
        // Stated countries are authoritative; an address's last part is only a fallback.
        let candidates: Vec<CountryCode> = if raw.countries.is_empty() {
            from_addresses.collect()
        } else {
            stated.collect()
        };
        for c in candidates {
            if !countries.contains(&c) {
                countries.push(c);
            }
        }
        let schema = raw.kind.as_deref().and_then(Schema::from_source_type);
        let alt_names = dedup_strings(
            raw.alt_names
                .iter()
                .filter(|a| !a.eq_ignore_ascii_case(name.as_str()))
                .cloned(),
        );
        self.out.entries.push(CslEntry {
            id: raw.id,
            source: raw.source,
            name,
            alt_names,
            addresses: dedup_strings(raw.addresses),
            countries,
            license_requirement: raw.license_requirement,
            license_policy: raw.license_policy,
            federal_register_notice: raw.federal_register_notice,
            start_date,
            schema,
        });
    }
}

/// "…, Moscow, 119160, RU" → RU; "…, Chengdu, China" → CN; "…, Phoenix, AZ, 85043" → none.
fn address_country(address: &str) -> Option<CountryCode> {
    let last = address.rsplit(',').next()?.trim().trim_end_matches('.');
    recognise_country(last)
}

/// The CSL joins list values with "; " and often writes "; and " before the last one.
fn split_list(raw: &str) -> Vec<String> {
    raw.split(';')
        .map(|p| {
            let p = p.trim();
            let stripped = p
                .get(..4)
                .filter(|h| h.eq_ignore_ascii_case("and "))
                .map_or(p, |_| &p[4..]);
            stripped.trim().to_string()
        })
        .filter(|p| !p.is_empty())
        .collect()
}

fn non_empty(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

// ---------------------------------------------------------------------------------------------
// CSV

fn read_csv(body: &[u8], filter: &SourceFilter) -> Result<CslImport, CslError> {
    let mut rdr = csv::ReaderBuilder::new().flexible(false).from_reader(body);
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| csv_error(e, 1))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let col = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let missing: Vec<String> = ["source", "name"]
        .iter()
        .filter(|c| col(c).is_none())
        .map(|c| c.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(CslError::MissingColumns {
            missing,
            found: header.clone(),
        });
    }
    let layout = if col("_id").is_some() {
        CslLayout::Csv2022
    } else {
        CslLayout::Csv2019
    };
    let idx = |name: &str| col(name);
    let (c_id, c_entity_number) = (idx("_id"), idx("entity_number"));
    let (c_source, c_name) = (idx("source"), idx("name"));
    let (c_alt, c_addr) = (idx("alt_names"), idx("addresses"));
    let (c_lr, c_lp) = (idx("license_requirement"), idx("license_policy"));
    let (c_fr, c_start) = (idx("federal_register_notice"), idx("start_date"));
    let c_type = idx("type");
    let mut collector = Collector::new(filter, layout);
    let mut record = csv::StringRecord::new();
    loop {
        let line = rdr.position().line();
        match rdr.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(e, line)),
        }
        let line = record.position().map_or(line, |p| p.line());
        let get = |c: Option<usize>| c.and_then(|i| record.get(i)).unwrap_or("");
        let raw = RawEntry {
            id: non_empty(get(c_id)).or_else(|| non_empty(get(c_entity_number))),
            source: get(c_source).trim().to_string(),
            name: get(c_name).to_string(),
            alt_names: split_list(get(c_alt)),
            addresses: split_list(get(c_addr)),
            countries: Vec::new(),
            license_requirement: non_empty(get(c_lr)),
            license_policy: non_empty(get(c_lp)),
            federal_register_notice: non_empty(get(c_fr)),
            start_date: non_empty(get(c_start)),
            kind: non_empty(get(c_type)),
        };
        collector.push(|| format!("line {line}"), raw);
    }
    Ok(collector.out)
}

fn csv_error(e: csv::Error, fallback_line: u64) -> CslError {
    let line = e.position().map_or(fallback_line, |p| p.line());
    let reason = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("expected {expected_len} fields as in the header, found {len}"),
        csv::ErrorKind::Utf8 { err, .. } => {
            format!("invalid UTF-8 in field {}", err.field() + 1)
        }
        csv::ErrorKind::Io(err) => err.to_string(),
        _ => e.to_string(),
    };
    CslError::Malformed { line, reason }
}

// ---------------------------------------------------------------------------------------------
// JSON

fn read_json(body: &[u8], filter: &SourceFilter) -> Result<CslImport, CslError> {
    let doc: Value = serde_json::from_slice(body)?;
    let (layout, entries) = match &doc {
        Value::Array(a) => (CslLayout::JsonArray, a),
        Value::Object(o) => {
            if let (Some(Value::Object(key)), Some(Value::Array(a))) =
                (o.get("fieldKey"), o.get("entries"))
            {
                if key.contains_key("n") {
                    return read_compact(o.get("tables"), a, filter);
                }
            }
            match (o.get("results"), o.get("entries")) {
                (Some(Value::Array(a)), _) => (CslLayout::JsonResults, a),
                (_, Some(Value::Array(a))) => (CslLayout::JsonEntries, a),
                _ => {
                    let keys: Vec<&str> = o.keys().map(String::as_str).collect();
                    return Err(CslError::UnknownJsonShape(keys.join(", ")));
                }
            }
        }
        _ => return Err(CslError::UnknownJsonShape("(not an object)".to_string())),
    };
    let mut collector = Collector::new(filter, layout);
    for (i, e) in entries.iter().enumerate() {
        let location = || format!("entry {}", i + 1);
        let Value::Object(o) = e else {
            collector.out.rows += 1;
            collector.out.warnings.push(CslWarning {
                location: location(),
                message: "not an object, skipped".to_string(),
            });
            continue;
        };
        let text = |k: &str| o.get(k).and_then(json_text);
        let (addresses, mut countries) = json_addresses(o.get("addresses"));
        countries.extend(json_list(o.get("address_countries")));
        let source = text("source").unwrap_or_else(|| inferred_source(text("source_list_url")));
        let raw = RawEntry {
            id: text("id")
                .or_else(|| text("_id"))
                .or_else(|| text("entity_number")),
            source,
            name: text("name").unwrap_or_default(),
            alt_names: json_list(o.get("alt_names")),
            addresses,
            countries,
            license_requirement: text("license_requirement"),
            license_policy: text("license_policy"),
            federal_register_notice: text("federal_register_notice"),
            start_date: text("start_date"),
            kind: text("type"),
        };
        collector.push(location, raw);
    }
    Ok(collector.out)
}

/// Entries that carry no `source` (projections of the Entity List) are Entity List rows when
/// their list URL points at Supplement No. 4 to part 744; otherwise they stay unattributed and
/// only `--source all` keeps them.
fn inferred_source(url: Option<String>) -> String {
    let url = url.unwrap_or_default().to_lowercase();
    if url.contains("supplement-4-744") || url.contains("entity-list") {
        ENTITY_LIST_SOURCE.to_string()
    } else {
        String::new()
    }
}

/// A string value (numbers too, as entity numbers sometimes are); null and blank are none.
fn json_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => non_empty(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().filter_map(json_text).collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        }
        _ => None,
    }
}

/// A list given as an array, a `;`-joined string, or null.
fn json_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(json_text)
            .flat_map(|s| split_list(&s))
            .collect(),
        Some(Value::String(s)) => split_list(s),
        _ => Vec::new(),
    }
}

/// Addresses as a `;`-joined string, an array of strings, or the API's array of objects
/// (`address`, `city`, `state`, `postal_code`, `country`). Returns the addresses and any
/// countries the objects state.
fn json_addresses(v: Option<&Value>) -> (Vec<String>, Vec<String>) {
    let mut addresses = Vec::new();
    let mut countries = Vec::new();
    let items: Vec<&Value> = match v {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(other) => vec![other],
        None => Vec::new(),
    };
    for item in items {
        match item {
            Value::String(s) => addresses.extend(split_list(s)),
            Value::Object(o) => {
                let part = |k: &str| o.get(k).and_then(json_text);
                let joined: Vec<String> = ["address", "city", "state", "postal_code", "country"]
                    .iter()
                    .filter_map(|k| part(k))
                    .collect();
                if !joined.is_empty() {
                    addresses.push(joined.join(", "));
                }
                countries.extend(part("country"));
            }
            _ => {}
        }
    }
    (addresses, countries)
}

/// The compact projection (`screening-list_all-sources_*.json`): `n` name, `a` alt names, `s`
/// source index, `c` countries, `e` entity number, `lr`/`lp` licence indexes, `fr` notice.
fn read_compact(
    tables: Option<&Value>,
    entries: &[Value],
    filter: &SourceFilter,
) -> Result<CslImport, CslError> {
    let table = |name: &str| -> Vec<Option<String>> {
        match tables.and_then(|t| t.get(name)) {
            Some(Value::Array(a)) => a.iter().map(json_text).collect(),
            _ => Vec::new(),
        }
    };
    let (sources, requirements) = (table("sources"), table("licenceRequirements"));
    let (policies, urls) = (table("licencePolicies"), table("urls"));
    let lookup = |t: &[Option<String>], v: Option<&Value>| -> Option<String> {
        let i = usize::try_from(v?.as_u64()?).ok()?;
        t.get(i).cloned().flatten()
    };
    let mut collector = Collector::new(filter, CslLayout::JsonCompact);
    for (i, e) in entries.iter().enumerate() {
        let text = |k: &str| e.get(k).and_then(json_text);
        let source = lookup(&sources, e.get("s"))
            .unwrap_or_else(|| inferred_source(lookup(&urls, e.get("u"))));
        let raw = RawEntry {
            id: text("e"),
            source,
            name: text("n").unwrap_or_default(),
            alt_names: json_list(e.get("a")),
            addresses: Vec::new(),
            countries: json_list(e.get("c")),
            license_requirement: lookup(&requirements, e.get("lr")),
            license_policy: lookup(&policies, e.get("lp")),
            federal_register_notice: text("fr"),
            start_date: None,
            kind: text("t"),
        };
        collector.push(|| format!("entry {}", i + 1), raw);
    }
    Ok(collector.out)
}

/// A list snapshot ready to store: one entry per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// In order of each key's first row.
    pub entries: Vec<ListEntry>,
    /// Rows folded into an earlier row with the same key.
    pub merged_rows: usize,
}

/// One [`ListEntry`] per entity key; rows sharing a key are folded together.
pub fn snapshot(entries: &[CslEntry]) -> Snapshot {
    let mut out: Vec<ListEntry> = Vec::with_capacity(entries.len());
    let mut index: BTreeMap<EntityKey, usize> = BTreeMap::new();
    let mut merged_rows = 0;
    for e in entries {
        let entry = e.to_list_entry();
        match index.get(&entry.entity_key) {
            Some(&i) => {
                out[i].absorb(entry);
                merged_rows += 1;
            }
            None => {
                index.insert(entry.entity_key.clone(), out.len());
                out.push(entry);
            }
        }
    }
    Snapshot {
        entries: out,
        merged_rows,
    }
}

#[cfg(test)]
mod tests;
