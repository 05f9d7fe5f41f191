//! Supplier records: the customer's side of screening. `entitywatch suppliers import FILE.csv`
//! reads a supplier master through [`read_suppliers`] (CSV → [`SupplierRecord`]s plus one
//! [`RowError`] per bad row), the store upserts the records by id, and
//! `entitywatch suppliers export` writes them back with [`write_suppliers`].
//!
//! Parse, don't validate: a [`SupplierRecord`] that exists has a trimmed non-empty id, a name
//! with a letter or digit and a recognised country (or none), so code holding one never
//! re-checks it. This module must never drop a good row because a neighbour was bad, never
//! stop a whole file for one bad row, and never hold more than a bounded amount of one row in
//! memory, whatever the file contains. It does no database or network I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use crate::events::CountryCode;

/// The columns with a meaning of their own; every other column is a free-form reference field.
pub const ID_COLUMN: &str = "id";
pub const NAME_COLUMN: &str = "name";
pub const ALIASES_COLUMN: &str = "aliases";
pub const COUNTRY_COLUMN: &str = "country";
pub const ADDRESS_COLUMN: &str = "address";
const KNOWN_COLUMNS: [&str; 5] = [
    ID_COLUMN,
    NAME_COLUMN,
    ALIASES_COLUMN,
    COUNTRY_COLUMN,
    ADDRESS_COLUMN,
];

/// Why a supplier record could not be built from the values given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SupplierError {
    #[error("empty id")]
    EmptyId,
    #[error("empty name (no letter or digit)")]
    EmptyName,
    #[error("unrecognised country {0:?}: expected an ISO 3166-1 alpha-2 code such as CN or a country name such as China")]
    UnknownCountry(String),
    #[error("reference field name {0:?} is empty, a reserved column name or a duplicate")]
    BadReferenceName(String),
}

/// One supplier as the customer keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SupplierRecordData")]
pub struct SupplierRecord {
    id: String,
    name: String,
    aliases: Vec<String>,
    country: Option<CountryCode>,
    address: Option<String>,
    references: BTreeMap<String, String>,
}

/// The unchecked shape a record is deserialised from, so serde goes through the constructor.
#[derive(Deserialize)]
struct SupplierRecordData {
    id: String,
    name: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    country: Option<String>,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    references: BTreeMap<String, String>,
}

impl TryFrom<SupplierRecordData> for SupplierRecord {
    type Error = SupplierError;
    fn try_from(d: SupplierRecordData) -> Result<Self, Self::Error> {
        let mut r = SupplierRecord::new(&d.id, &d.name)?
            .with_aliases(d.aliases)
            .with_country_text(d.country.as_deref().unwrap_or(""))?
            .with_address(d.address.as_deref());
        for (k, v) in d.references {
            r = r.with_reference(&k, &v)?;
        }
        Ok(r)
    }
}

impl SupplierRecord {
    /// A record with its two required values. Both are trimmed; inner spacing is the customer's
    /// and is kept, so the export shows the name as it was imported.
    pub fn new(id: &str, name: &str) -> Result<Self, SupplierError> {
        let id = id.trim();
        if id.is_empty() {
            return Err(SupplierError::EmptyId);
        }
        let name = name.trim();
        if !name.chars().any(char::is_alphanumeric) {
            return Err(SupplierError::EmptyName);
        }
        Ok(SupplierRecord {
            id: id.to_string(),
            name: name.to_string(),
            aliases: Vec::new(),
            country: None,
            address: None,
            references: BTreeMap::new(),
        })
    }

    /// Adds aliases. Each value is split at `;` and `|` as in the CSV column, trimmed, and
    /// blanks and repeats are dropped: an alias can then never contain a separator, which is
    /// what makes the CSV form lossless.
    pub fn with_aliases<I, S>(mut self, aliases: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for raw in aliases {
            for a in split_aliases(raw.as_ref()) {
                if !self.aliases.contains(&a) {
                    self.aliases.push(a);
                }
            }
        }
        self
    }

    pub fn with_country(mut self, country: Option<CountryCode>) -> Self {
        self.country = country.filter(|c| !c.is_unknown());
        self
    }

    /// Sets the country from what a person writes: "CN", "cn", "China", "CHINA, PEOPLE'S
    /// REPUBLIC OF". Blank (or `XX`, the list's "unknown") means no country.
    pub fn with_country_text(self, raw: &str) -> Result<Self, SupplierError> {
        let t = raw.trim();
        if t.is_empty() || t.eq_ignore_ascii_case(CountryCode::UNKNOWN) {
            return Ok(self.with_country(None));
        }
        match recognise_country(t) {
            Some(c) => Ok(self.with_country(Some(c))),
            None => Err(SupplierError::UnknownCountry(t.to_string())),
        }
    }

    /// Sets the address; blank means none.
    pub fn with_address(mut self, address: Option<&str>) -> Self {
        self.address = address
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string);
        self
    }

    /// Adds a free-form reference field (cost centre, ERP vendor number, ...). A blank value is
    /// the same as no value: the CSV cannot tell them apart, so the record does not either.
    pub fn with_reference(mut self, key: &str, value: &str) -> Result<Self, SupplierError> {
        let key = key.trim();
        let folded = key.to_lowercase();
        let reserved = KNOWN_COLUMNS.contains(&folded.as_str());
        // Two names equal but for case would be one column on the way back in.
        let duplicate = self
            .references
            .keys()
            .any(|k| k != key && k.to_lowercase() == folded);
        if key.is_empty() || reserved || duplicate {
            return Err(SupplierError::BadReferenceName(key.to_string()));
        }
        self.set_reference(key, value);
        Ok(self)
    }

    /// For names already checked (a header classified by the reader).
    fn set_reference(&mut self, key: &str, value: &str) {
        let value = value.trim();
        if value.is_empty() {
            self.references.remove(key);
        } else {
            self.references.insert(key.to_string(), value.to_string());
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn aliases(&self) -> &[String] {
        &self.aliases
    }

    pub fn country(&self) -> Option<&CountryCode> {
        self.country.as_ref()
    }

    pub fn address(&self) -> Option<&str> {
        self.address.as_deref()
    }

    pub fn references(&self) -> &BTreeMap<String, String> {
        &self.references
    }
}

fn split_aliases(raw: &str) -> impl Iterator<Item = String> + '_ {
    raw.split([';', '|'])
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_string)
}

/// A country as written in a supplier file or a list address: an assigned ISO 3166-1 alpha-2
/// code ("CN", any case) or a country name the Entity List uses ("China", "KOREA, NORTH").
/// Two letters that are not an assigned code ("QQ", a US state such as "TX" that is not also a
/// country code) are not a country: a silent wrong country would weaken screening evidence.
pub fn recognise_country(raw: &str) -> Option<CountryCode> {
    CountryCode::from_heading(raw.trim()).filter(|c| ISO_3166_ALPHA2.contains(&c.as_str()))
}

/// Assigned ISO 3166-1 alpha-2 codes, plus XK (Kosovo), which the screening lists use.
const ISO_3166_ALPHA2: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "XK", "YE", "YT", "ZA", "ZM", "ZW",
];

// ---------------------------------------------------------------------------------------------
// Reading

/// Bounds on what one file may make the reader hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Longest field kept; a longer one makes its row an error and is skipped, never buffered.
    pub max_field_bytes: usize,
    /// Most header columns accepted (each row holds at most this many fields).
    pub max_columns: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_field_bytes: 64 * 1024,
            max_columns: 1024,
        }
    }
}

/// What is wrong with the file as a whole: nothing in it can be read as intended.
#[derive(Debug, thiserror::Error)]
pub enum SupplierFileError {
    #[error("cannot read the supplier file: {0}")]
    Io(#[from] io::Error),
    #[error("the supplier file is empty: expected a header line naming at least the columns id and name")]
    Empty,
    #[error(
        "the header lacks the required column{plural} {missing}; found columns: {found}; expected: \
         id, name (required, any case), aliases, country, address (optional); any other column \
         is kept as a reference field",
        plural = if missing.len() > 1 { "s" } else { "" },
        missing = missing.join(", "),
        found = if found.is_empty() { "(none)".to_string() } else { found.join(", ") }
    )]
    MissingColumns {
        missing: Vec<String>,
        found: Vec<String>,
    },
    #[error("the header names the column {0:?} twice (column names are compared ignoring case)")]
    DuplicateColumn(String),
    #[error("the header (line 1) is not valid UTF-8; save the file as UTF-8")]
    HeaderNotUtf8,
    #[error("the header has {found} columns; at most {limit} are accepted")]
    TooManyColumns { found: usize, limit: usize },
    #[error("a header column name is longer than {limit} bytes")]
    HeaderFieldTooLong { limit: usize },
}

/// What is wrong with one row. The row is skipped; every other row is still read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowProblem {
    WrongFieldCount {
        expected: usize,
        found: usize,
    },
    FieldTooLong {
        column: String,
        bytes: u64,
        limit: usize,
    },
    InvalidUtf8 {
        column: String,
    },
    ValueInUnnamedColumn {
        column: usize,
    },
    /// A quoted field opened on `from_line` is still open at the end of the file: everything
    /// up to `to_line` was read as that one field, so the rows there were never read as rows.
    UnclosedQuote {
        from_line: u64,
        to_line: u64,
    },
    /// The values are readable but do not make a record: empty id or name, unknown country.
    Invalid(SupplierError),
    /// Not fatal: the row was superseded by a later row with the same id, which is kept.
    DuplicateId {
        id: String,
        later_line: u64,
    },
}

impl fmt::Display for RowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowProblem::WrongFieldCount { expected, found } => write!(
                f,
                "wrong number of fields: expected {expected} as in the header, found {found}"
            ),
            RowProblem::FieldTooLong {
                column,
                bytes,
                limit,
            } => write!(
                f,
                "field {column} is {bytes} bytes, longer than the limit of {limit} bytes"
            ),
            RowProblem::InvalidUtf8 { column } => {
                write!(f, "invalid UTF-8 in field {column}; save the file as UTF-8")
            }
            RowProblem::ValueInUnnamedColumn { column } => write!(
                f,
                "a value in column {column}, which has no name in the header"
            ),
            RowProblem::UnclosedQuote { from_line, to_line } if from_line == to_line => write!(
                f,
                "a quoted field opened on line {from_line} is never closed; close the quote"
            ),
            RowProblem::UnclosedQuote { from_line, to_line } => write!(
                f,
                "a quoted field opened on line {from_line} is never closed, so lines \
                 {from_line}-{to_line} up to the end of the file were read as one field and \
                 the rows there were not imported; close the quote"
            ),
            RowProblem::Invalid(e) => e.fmt(f),
            RowProblem::DuplicateId { id, later_line } => write!(
                f,
                "duplicate id {id:?} also on line {later_line}; the later row wins and this one \
                 is ignored"
            ),
        }
    }
}

impl RowProblem {
    /// A warning leaves the file's data complete (the row's id is still imported from another
    /// row); anything else means the row's data is not imported.
    pub fn is_warning(&self) -> bool {
        matches!(self, RowProblem::DuplicateId { .. })
    }
}

/// One bad row: its first line in the file (the header is line 1), its id when readable, and
/// what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub id: Option<String>,
    pub reason: RowProblem,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            Some(id) => write!(f, "line {} (id {id:?}): {}", self.line, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

impl std::error::Error for RowError {}

/// One data row as read: the record, or why it is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupplierRow {
    pub line: u64,
    pub record: Result<SupplierRecord, RowError>,
}

/// Where each header column goes.
#[derive(Debug, Clone)]
enum ColumnRole {
    Id,
    Name,
    Aliases,
    Country,
    Address,
    Reference(String),
    Unnamed,
}

/// A streaming reader: one [`SupplierRow`] per data row, in file order, with no dedup (see
/// [`read_suppliers`] for the whole-file report).
pub struct SupplierReader<R> {
    csv: BoundedCsv<R>,
    columns: Vec<(String, ColumnRole)>,
    record: RawRecord,
}

impl<R: Read> SupplierReader<R> {
    /// Reads and checks the header; fails only if the file as a whole is unusable.
    pub fn new(reader: R, limits: ReadLimits) -> Result<Self, SupplierFileError> {
        let mut csv = BoundedCsv::new(reader, limits);
        let mut header = RawRecord::default();
        if !csv.next_record(&mut header, limits.max_columns + 1)? {
            return Err(SupplierFileError::Empty);
        }
        if header.field_count > limits.max_columns {
            return Err(SupplierFileError::TooManyColumns {
                found: header.field_count,
                limit: limits.max_columns,
            });
        }
        if header.oversized.is_some() {
            return Err(SupplierFileError::HeaderFieldTooLong {
                limit: limits.max_field_bytes,
            });
        }
        let mut names = Vec::with_capacity(header.field_count);
        for f in &header.fields[..header.field_count] {
            let s = std::str::from_utf8(f).map_err(|_| SupplierFileError::HeaderNotUtf8)?;
            names.push(s.trim().to_string());
        }
        let columns = classify_columns(&names)?;
        Ok(SupplierReader {
            csv,
            columns,
            record: RawRecord::default(),
        })
    }

    /// Bytes consumed so far, for a progress bar over the file size.
    pub fn bytes_read(&self) -> u64 {
        self.csv.bytes
    }

    /// The header's column names, trimmed, in file order.
    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|(n, _)| n.as_str())
    }

    fn next_row(&mut self) -> Result<Option<SupplierRow>, SupplierFileError> {
        let width = self.columns.len();
        if !self.csv.next_record(&mut self.record, width)? {
            return Ok(None);
        }
        let line = self.record.line;
        Ok(Some(SupplierRow {
            line,
            record: self
                .build_record()
                .map_err(|(id, reason)| RowError { line, id, reason }),
        }))
    }

    fn build_record(&self) -> Result<SupplierRecord, (Option<String>, RowProblem)> {
        let rec = &self.record;
        // The id is worth reporting even for a row with another problem, when it is readable.
        let id = self
            .columns
            .iter()
            .position(|(_, r)| matches!(r, ColumnRole::Id))
            .and_then(|i| rec.fields.get(i).filter(|_| i < rec.field_count))
            .filter(|_| rec.oversized.map(|(i, _)| self.role_is_id(i)) != Some(true))
            .and_then(|f| std::str::from_utf8(f).ok())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let fail = |p| Err((id.clone(), p));
        if let Some((from_line, to_line)) = rec.unclosed_quote {
            return fail(RowProblem::UnclosedQuote { from_line, to_line });
        }
        if rec.field_count != self.columns.len() {
            return fail(RowProblem::WrongFieldCount {
                expected: self.columns.len(),
                found: rec.field_count,
            });
        }
        if let Some((i, bytes)) = rec.oversized {
            return fail(RowProblem::FieldTooLong {
                column: self.columns[i].0.clone(),
                bytes,
                limit: self.csv.limits.max_field_bytes,
            });
        }
        let mut text = Vec::with_capacity(self.columns.len());
        for (i, f) in rec.fields[..rec.field_count].iter().enumerate() {
            match std::str::from_utf8(f) {
                Ok(s) => text.push(s),
                Err(_) => {
                    return fail(RowProblem::InvalidUtf8 {
                        column: self.column_label(i),
                    })
                }
            }
        }
        let mut id_v = "";
        let mut name_v = "";
        let (mut aliases_v, mut country_v, mut address_v) = ("", "", "");
        for (i, (_, role)) in self.columns.iter().enumerate() {
            match role {
                ColumnRole::Id => id_v = text[i],
                ColumnRole::Name => name_v = text[i],
                ColumnRole::Aliases => aliases_v = text[i],
                ColumnRole::Country => country_v = text[i],
                ColumnRole::Address => address_v = text[i],
                ColumnRole::Unnamed if !text[i].trim().is_empty() => {
                    return fail(RowProblem::ValueInUnnamedColumn { column: i + 1 })
                }
                ColumnRole::Unnamed | ColumnRole::Reference(_) => {}
            }
        }
        let mut record = SupplierRecord::new(id_v, name_v)
            .and_then(|r| r.with_country_text(country_v))
            .map_err(|e| (id.clone(), RowProblem::Invalid(e)))?
            .with_aliases([aliases_v])
            .with_address(Some(address_v));
        for (i, (_, role)) in self.columns.iter().enumerate() {
            if let ColumnRole::Reference(key) = role {
                // The header was checked for reserved and duplicate names once, up front.
                record.set_reference(key, text[i]);
            }
        }
        Ok(record)
    }

    fn role_is_id(&self, i: usize) -> bool {
        matches!(self.columns.get(i), Some((_, ColumnRole::Id)))
    }

    fn column_label(&self, i: usize) -> String {
        match self.columns.get(i) {
            Some((n, _)) if !n.is_empty() => n.clone(),
            _ => format!("#{}", i + 1),
        }
    }
}

impl<R: Read> Iterator for SupplierReader<R> {
    type Item = Result<SupplierRow, SupplierFileError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_row().transpose()
    }
}

fn classify_columns(names: &[String]) -> Result<Vec<(String, ColumnRole)>, SupplierFileError> {
    let mut seen = BTreeSet::new();
    let mut columns = Vec::with_capacity(names.len());
    for n in names {
        let lower = n.to_lowercase();
        if !n.is_empty() && !seen.insert(lower.clone()) {
            return Err(SupplierFileError::DuplicateColumn(n.clone()));
        }
        let role = match lower.as_str() {
            "" => ColumnRole::Unnamed,
            ID_COLUMN => ColumnRole::Id,
            NAME_COLUMN => ColumnRole::Name,
            ALIASES_COLUMN => ColumnRole::Aliases,
            COUNTRY_COLUMN => ColumnRole::Country,
            ADDRESS_COLUMN => ColumnRole::Address,
            _ => ColumnRole::Reference(n.clone()),
        };
        columns.push((n.clone(), role));
    }
    let missing: Vec<String> = [ID_COLUMN, NAME_COLUMN]
        .iter()
        .filter(|c| !seen.contains(**c))
        .map(|c| c.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(SupplierFileError::MissingColumns {
            missing,
            found: names.iter().filter(|n| !n.is_empty()).cloned().collect(),
        });
    }
    Ok(columns)
}

/// A whole file read: the records to upsert (one per id, the last occurrence winning, in the
/// order of those last occurrences) and every problem, ordered by line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SupplierImport {
    pub records: Vec<SupplierRecord>,
    pub errors: Vec<RowError>,
    /// Data rows read (not counting the header and blank lines).
    pub rows: u64,
}

impl SupplierImport {
    /// Rows not imported at all (warnings excluded).
    pub fn rejected(&self) -> usize {
        self.errors
            .iter()
            .filter(|e| !e.reason.is_warning())
            .count()
    }

    pub fn warnings(&self) -> usize {
        self.errors.iter().filter(|e| e.reason.is_warning()).count()
    }
}

/// Progress while reading, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadProgress {
    pub bytes: u64,
    pub rows: u64,
}

/// Reads a whole supplier CSV. Fails only when the file as a whole is unusable (no or wrong
/// header, I/O error); a bad row becomes a [`RowError`] and the rest is read.
pub fn read_suppliers(
    reader: impl Read,
    limits: ReadLimits,
) -> Result<SupplierImport, SupplierFileError> {
    read_suppliers_with_progress(reader, limits, |_| {})
}

/// [`read_suppliers`] calling `progress` every 1,000 rows and at the end.
pub fn read_suppliers_with_progress(
    reader: impl Read,
    limits: ReadLimits,
    mut progress: impl FnMut(ReadProgress),
) -> Result<SupplierImport, SupplierFileError> {
    let mut rows = SupplierReader::new(reader, limits)?;
    // Upsert semantics: a later row for an id replaces an earlier one, as a second import of
    // that row would. Slots keep file order without shifting a vector on every duplicate.
    let mut slots: Vec<Option<(u64, SupplierRecord)>> = Vec::new();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut errors = Vec::new();
    let mut count = 0u64;
    while let Some(row) = rows.next_row()? {
        count += 1;
        match row.record {
            Ok(record) => {
                let slot = slots.len();
                if let Some(previous) = by_id.insert(record.id.clone(), slot) {
                    if let Some((earlier_line, _)) = slots[previous].take() {
                        errors.push(RowError {
                            line: earlier_line,
                            id: Some(record.id.clone()),
                            reason: RowProblem::DuplicateId {
                                id: record.id.clone(),
                                later_line: row.line,
                            },
                        });
                    }
                }
                slots.push(Some((row.line, record)));
            }
            Err(e) => errors.push(e),
        }
        if count % 1000 == 0 {
            progress(ReadProgress {
                bytes: rows.bytes_read(),
                rows: count,
            });
        }
    }
    progress(ReadProgress {
        bytes: rows.bytes_read(),
        rows: count,
    });
    errors.sort_by_key(|e| e.line);
    Ok(SupplierImport {
        records: slots.into_iter().flatten().map(|(_, r)| r).collect(),
        errors,
        rows: count,
    })
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Writes records as CSV that [`read_suppliers`] reads back to the same records: the columns
/// id, name, aliases (joined with `; `), country (ISO code), address, then every reference
/// field name used by any record, sorted.
pub fn write_suppliers(writer: impl Write, records: &[SupplierRecord]) -> io::Result<()> {
    let refs: BTreeSet<&str> = records
        .iter()
        .flat_map(|r| r.references.keys().map(String::as_str))
        .collect();
    let mut w = SupplierWriter::new(writer, refs)?;
    for r in records {
        w.write(r)?;
    }
    w.finish()
}

/// A streaming CSV writer for exports too large to hold, given the reference columns up front.
pub struct SupplierWriter<W: Write> {
    csv: csv::Writer<W>,
    references: Vec<String>,
}

impl<W: Write> SupplierWriter<W> {
    pub fn new<I, S>(writer: W, reference_columns: I) -> io::Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut csv = csv::WriterBuilder::new().from_writer(writer);
        let references: Vec<String> = reference_columns
            .into_iter()
            .map(|s| s.as_ref().to_string())
            .collect();
        let header = KNOWN_COLUMNS
            .iter()
            .copied()
            .chain(references.iter().map(String::as_str));
        csv.write_record(header).map_err(csv_to_io)?;
        Ok(SupplierWriter { csv, references })
    }

    pub fn write(&mut self, r: &SupplierRecord) -> io::Result<()> {
        let aliases = r.aliases.join("; ");
        let fixed = [
            r.id.as_str(),
            r.name.as_str(),
            aliases.as_str(),
            r.country.as_ref().map_or("", |c| c.as_str()),
            r.address.as_deref().unwrap_or(""),
        ];
        let refs = self
            .references
            .iter()
            .map(|k| r.references.get(k).map_or("", String::as_str));
        self.csv
            .write_record(fixed.into_iter().chain(refs))
            .map_err(csv_to_io)
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.csv.flush()
    }
}

fn csv_to_io(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Bounded CSV tokenising

/// One record's fields as bytes. Only the first `width` fields are kept; at most one oversized
/// field is noted (the first), and its bytes are never buffered.
#[derive(Debug, Default)]
struct RawRecord {
    line: u64,
    fields: Vec<Vec<u8>>,
    field_count: usize,
    oversized: Option<(usize, u64)>,
    /// (line it opened on, last line read) of a quoted field the input ended inside.
    unclosed_quote: Option<(u64, u64)>,
}

/// RFC 4180 tokenising over `csv_core`, which lets us stop buffering a field at the limit (the
/// `csv` crate's reader grows a record to whatever size the file has) and count lines exactly.
struct BoundedCsv<R> {
    inner: R,
    core: csv_core::Reader,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    eof: bool,
    /// The line the next unread byte is on. Line breaks are counted as csv_core reads them:
    /// LF, CR LF and a lone CR (old Mac exports) each end a line.
    line: u64,
    /// The last byte consumed, so that a CR LF split across two reads counts once.
    last_byte: u8,
    bytes: u64,
    limits: ReadLimits,
}

const BUF_SIZE: usize = 64 * 1024;

impl<R: Read> BoundedCsv<R> {
    fn new(inner: R, limits: ReadLimits) -> Self {
        BoundedCsv {
            inner,
            core: csv_core::Reader::new(),
            buf: vec![0; BUF_SIZE].into_boxed_slice(),
            pos: 0,
            len: 0,
            eof: false,
            line: 1,
            last_byte: 0,
            bytes: 0,
            limits,
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.pos < self.len || self.eof {
            return Ok(());
        }
        self.pos = 0;
        self.len = 0;
        // A UTF-8 BOM must arrive whole for csv_core to strip it; fill a few bytes at least.
        while self.len < 4 {
            let n = match self.inner.read(&mut self.buf[self.len..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                self.eof = self.len == 0;
                break;
            }
            self.len += n;
            if self.bytes > 0 {
                break;
            }
        }
        Ok(())
    }

    /// Reads the next record into `rec`, keeping at most `width` fields. Returns false at the
    /// end of the input.
    fn next_record(&mut self, rec: &mut RawRecord, width: usize) -> io::Result<bool> {
        // Skip blank lines ourselves (csv_core would too) so the record's first line is known.
        loop {
            self.fill()?;
            if self.eof {
                break;
            }
            let skip = self.buf[self.pos..self.len]
                .iter()
                .take_while(|b| **b == b'\n' || **b == b'\r')
                .count();
            self.line += count_breaks(&self.buf[self.pos..self.pos + skip], &mut self.last_byte);
            self.pos += skip;
            self.bytes += skip as u64;
            if self.pos < self.len {
                break;
            }
        }
        rec.line = self.line;
        rec.field_count = 0;
        rec.oversized = None;
        rec.unclosed_quote = None;
        // Whether the current field began with a quote, and whether an odd number of quotes
        // (so an unclosed one: `""` inside a quoted field is an escaped quote) was seen in it.
        let mut field_started = false;
        let mut quoted = false;
        let mut open = false;
        let mut field_line = self.line;
        let mut scratch = [0u8; 8 * 1024];
        let mut field_len: u64 = 0;
        let max = self.limits.max_field_bytes;
        if rec.fields.len() < width {
            rec.fields.resize_with(width, Vec::new);
        }
        if let Some(f) = rec.fields.first_mut() {
            f.clear();
        }
        loop {
            self.fill()?;
            let input = &self.buf[self.pos..self.len];
            let (res, nin, nout) = self.core.read_field(input, &mut scratch);
            let consumed = &input[..nin];
            if !field_started && !consumed.is_empty() {
                field_started = true;
                quoted = consumed[0] == b'"';
                field_line = self.line;
            }
            if quoted {
                open ^= consumed.iter().filter(|b| **b == b'"').count() % 2 == 1;
            }
            self.line += count_breaks(consumed, &mut self.last_byte);
            self.pos += nin;
            self.bytes += nin as u64;
            let idx = rec.field_count;
            if idx < width && !matches!(rec.oversized, Some((i, _)) if i == idx) {
                let f = &mut rec.fields[idx];
                if f.len() + nout <= max {
                    f.extend_from_slice(&scratch[..nout]);
                } else {
                    f.clear();
                    if rec.oversized.is_none() {
                        rec.oversized = Some((idx, 0));
                    }
                }
            }
            field_len += nout as u64;
            match res {
                csv_core::ReadFieldResult::InputEmpty | csv_core::ReadFieldResult::OutputFull => {}
                csv_core::ReadFieldResult::Field { record_end } => {
                    if let Some((i, size)) = rec.oversized.as_mut() {
                        if *i == idx {
                            *size = field_len;
                        }
                    }
                    field_len = 0;
                    rec.field_count += 1;
                    // csv_core ends a field that is still inside quotes only at the end of the
                    // input, silently; the rows it swallowed must not vanish without a word.
                    if record_end && self.eof && quoted && open {
                        let last = if matches!(self.last_byte, b'\n' | b'\r') {
                            self.line - 1
                        } else {
                            self.line
                        };
                        rec.unclosed_quote = Some((field_line, last.max(field_line)));
                    }
                    (field_started, quoted, open) = (false, false, false);
                    if record_end {
                        return Ok(true);
                    }
                    if let Some(f) = rec.fields.get_mut(rec.field_count) {
                        f.clear();
                    }
                }
                csv_core::ReadFieldResult::End => return Ok(false),
            }
        }
    }
}

/// Line breaks in `bytes` as csv_core reads them: LF, CR LF (once) and a lone CR. `last` is the
/// byte before `bytes` and is updated to the last byte of `bytes`.
fn count_breaks(bytes: &[u8], last: &mut u8) -> u64 {
    let mut n = 0;
    for &b in bytes {
        if b == b'\r' || (b == b'\n' && *last != b'\r') {
            n += 1;
        }
        *last = b;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &[u8]) -> SupplierImport {
        read_suppliers(s, ReadLimits::default()).expect("file readable")
    }

    fn reasons(i: &SupplierImport) -> Vec<(u64, String)> {
        i.errors
            .iter()
            .map(|e| (e.line, e.reason.to_string()))
            .collect()
    }

    #[test]
    fn reads_all_columns_and_keeps_references() {
        let i = read(
            b"ID,Name,Aliases,Country,Address,ERP Number,notes\n\
              S1, Acme Ltd ,Acme; ACME Corp|Acme,China,\"1 Road, Town\",4711,\n",
        );
        assert!(i.errors.is_empty(), "{:?}", i.errors);
        let r = &i.records[0];
        assert_eq!(r.id(), "S1");
        assert_eq!(r.name(), "Acme Ltd");
        assert_eq!(r.aliases(), ["Acme", "ACME Corp"]);
        assert_eq!(r.country().map(|c| c.as_str()), Some("CN"));
        assert_eq!(r.address(), Some("1 Road, Town"));
        assert_eq!(r.references().len(), 1);
        assert_eq!(r.references()["ERP Number"], "4711");
    }

    #[test]
    fn wrong_columns_are_one_clear_file_error() {
        let e = read_suppliers(&b"supplier,company\n1,Acme\n"[..], ReadLimits::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("required columns id, name"), "{e}");
        assert!(e.contains("found columns: supplier, company"), "{e}");
        let e = read_suppliers(&b"ID,company\n"[..], ReadLimits::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("required column name;"), "{e}");
        assert!(matches!(
            read_suppliers(&b""[..], ReadLimits::default()),
            Err(SupplierFileError::Empty)
        ));
        assert!(matches!(
            read_suppliers(&b"id,name,ID\n"[..], ReadLimits::default()),
            Err(SupplierFileError::DuplicateColumn(_))
        ));
    }

    #[test]
    fn bom_and_crlf_are_tolerated() {
        let i = read(b"\xef\xbb\xbfid,name\r\n1,Acme\r\n\r\n2,Beta\r\n");
        assert!(i.errors.is_empty(), "{:?}", i.errors);
        assert_eq!(i.records.len(), 2);
    }

    #[test]
    fn bom_survives_a_reader_that_returns_one_byte_at_a_time() {
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() || buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0[0];
                self.0 = &self.0[1..];
                Ok(1)
            }
        }
        let data = b"\xef\xbb\xbfid,name\n1,\"Acme, \"\"The\"\" Co\"\n";
        let i = read_suppliers(Trickle(data), ReadLimits::default()).unwrap();
        assert!(i.errors.is_empty(), "{:?}", i.errors);
        assert_eq!(i.records[0].name(), "Acme, \"The\" Co");
    }

    #[test]
    fn quoted_commas_and_newlines_keep_line_numbers_right() {
        let i = read(b"id,name,address\n1,\"Acme, Inc.\",\"line one\nline two\"\n2,,x\n3,Gamma,\n");
        assert_eq!(i.records.len(), 2);
        assert_eq!(i.records[0].name(), "Acme, Inc.");
        assert_eq!(i.records[0].address(), Some("line one\nline two"));
        assert_eq!(
            reasons(&i),
            [(4, "empty name (no letter or digit)".to_string())]
        );
    }

    #[test]
    fn invalid_utf8_rejects_only_its_row() {
        let i = read(b"id,name\n1,Acme\n2,Bad \xff\xfe name\n3,Gamma\n");
        assert_eq!(i.records.len(), 2);
        assert_eq!(i.errors.len(), 1);
        assert_eq!(i.errors[0].line, 3);
        assert_eq!(i.errors[0].id.as_deref(), Some("2"));
        assert!(i.errors[0]
            .reason
            .to_string()
            .contains("invalid UTF-8 in field name"));
        let e = read_suppliers(&b"id,n\xffame\n"[..], ReadLimits::default()).unwrap_err();
        assert!(matches!(e, SupplierFileError::HeaderNotUtf8));
    }

    #[test]
    fn a_ten_megabyte_field_is_rejected_without_buffering_it() {
        let mut data = b"id,name,notes\n1,Acme,short\n2,Huge,\"".to_vec();
        data.extend(vec![b'x'; 10 * 1024 * 1024]);
        data.extend_from_slice(b"\"\n3,Gamma,ok\n");
        let mut csv = BoundedCsv::new(&data[..], ReadLimits::default());
        let mut rec = RawRecord::default();
        while csv.next_record(&mut rec, 3).unwrap() {
            assert!(rec.fields.iter().all(|f| f.capacity() <= 2 * 64 * 1024));
        }
        let i = read(&data);
        assert_eq!(i.records.len(), 2);
        assert_eq!(i.errors.len(), 1);
        assert_eq!(i.errors[0].line, 3);
        assert_eq!(i.errors[0].id.as_deref(), Some("2"));
        assert_eq!(
            i.errors[0].reason,
            RowProblem::FieldTooLong {
                column: "notes".into(),
                bytes: 10 * 1024 * 1024,
                limit: 64 * 1024
            }
        );
    }

    #[test]
    fn duplicate_ids_keep_the_last_row_and_warn_about_earlier_ones() {
        let i = read(b"id,name\nA,First\nB,Other\nA,Second\nA,Third\n");
        let names: Vec<_> = i.records.iter().map(|r| (r.id(), r.name())).collect();
        assert_eq!(names, [("B", "Other"), ("A", "Third")]);
        assert_eq!(
            reasons(&i),
            [
                (
                    2,
                    "duplicate id \"A\" also on line 4; the later row wins and this one is ignored"
                        .to_string()
                ),
                (
                    4,
                    "duplicate id \"A\" also on line 5; the later row wins and this one is ignored"
                        .to_string()
                ),
            ]
        );
        assert_eq!(i.warnings(), 2);
        assert_eq!(i.rejected(), 0);
    }

    #[test]
    fn empty_ids_names_bad_countries_and_field_counts_are_row_errors() {
        let i = read(
            b"id,name,country\n,Acme,CN\n2,  ,CN\n3,--,CN\n4,Delta,Atlantis\n5,Echo,QQ\n6,Fox\n\
              7,Golf,CN,extra\n8,Hotel,cn\n9,India,\n",
        );
        let got = reasons(&i);
        assert_eq!(got.len(), 7, "{got:?}");
        assert_eq!(got[0], (2, "empty id".to_string()));
        assert_eq!(got[1].0, 3);
        assert_eq!(got[2], (4, "empty name (no letter or digit)".to_string()));
        assert!(got[3].1.starts_with("unrecognised country \"Atlantis\""));
        assert!(got[4].1.starts_with("unrecognised country \"QQ\""));
        assert_eq!(
            got[5],
            (
                7,
                "wrong number of fields: expected 3 as in the header, found 2".to_string()
            )
        );
        assert_eq!(got[6].0, 8);
        assert_eq!(i.errors[6].id.as_deref(), Some("7"));
        let ids: Vec<_> = i.records.iter().map(|r| r.id()).collect();
        assert_eq!(ids, ["8", "9"]);
    }

    #[test]
    fn lone_carriage_returns_end_lines_as_they_end_records() {
        // Old Mac exports end lines with CR alone; csv_core ends records there, so must we.
        let i = read(b"id,name\r1,Acme\r2,\r3,Gamma\r\n4,\n5,Echo");
        assert_eq!(i.records.len(), 3);
        assert_eq!(
            reasons(&i),
            [
                (3, "empty name (no letter or digit)".to_string()),
                (5, "empty name (no letter or digit)".to_string())
            ]
        );
        // A CR LF split across two reads is one line break.
        let mut last = 0;
        assert_eq!(count_breaks(b"a\r", &mut last), 1);
        assert_eq!(count_breaks(b"\nb\n", &mut last), 1);
    }

    #[test]
    fn an_unclosed_quote_is_reported_with_the_lines_it_swallowed() {
        let i = read(b"id,name\n1,Acme\n2,\"Beta Ltd\n3,Gamma\n4,Delta\n");
        let ids: Vec<_> = i.records.iter().map(|r| r.id()).collect();
        assert_eq!(ids, ["1"]);
        assert_eq!(i.errors.len(), 1);
        assert_eq!(i.errors[0].line, 3);
        assert_eq!(
            i.errors[0].reason,
            RowProblem::UnclosedQuote {
                from_line: 3,
                to_line: 5
            }
        );
        assert!(i.errors[0].to_string().contains("lines 3-5"));
        // Closed quotes, escaped quotes and quotes inside unquoted fields are not flagged.
        let i = read(b"id,name,address\n1,\"A \"\"B\"\" C\",\"x\ny\"\n2,Say \"hi,z");
        assert!(i.errors.is_empty(), "{:?}", i.errors);
        assert_eq!(i.records.len(), 2);
        // One that opens on the last line, without a final line break.
        let i = read(b"id,name\n1,Acme\n2,\"Beta");
        assert_eq!(
            i.errors[0].reason,
            RowProblem::UnclosedQuote {
                from_line: 3,
                to_line: 3
            }
        );
    }

    #[test]
    fn unnamed_columns_are_ignored_unless_they_hold_a_value() {
        let i = read(b"id,name,\n1,Acme,\n2,Beta,oops\n");
        assert_eq!(i.records.len(), 1);
        assert_eq!(i.errors[0].line, 3);
        assert!(i.errors[0].reason.to_string().contains("column 3"));
    }

    #[test]
    fn export_reads_back_identically() {
        let records = vec![
            SupplierRecord::new("a-1", "Acme, \"Quoted\" Ltd")
                .unwrap()
                .with_aliases(["Acme", "Acme Holdings"])
                .with_country_text("CHINA, PEOPLE'S REPUBLIC OF")
                .unwrap()
                .with_address(Some("1 Road\nTown"))
                .with_reference("cost centre", "42")
                .unwrap(),
            SupplierRecord::new("b", "Беларусь Завод")
                .unwrap()
                .with_reference("erp", "x,y")
                .unwrap(),
            SupplierRecord::new("c", "C").unwrap(),
        ];
        let mut out = Vec::new();
        write_suppliers(&mut out, &records).unwrap();
        let back = read(&out);
        assert!(back.errors.is_empty(), "{:?}", back.errors);
        assert_eq!(back.records, records);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("id,name,aliases,country,address,cost centre,erp\n"));
    }

    #[test]
    fn serde_goes_through_the_constructor() {
        let r = SupplierRecord::new("1", "Acme")
            .unwrap()
            .with_country_text("DE")
            .unwrap();
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<SupplierRecord>(&j).unwrap(), r);
        assert!(serde_json::from_str::<SupplierRecord>(r#"{"id":" ","name":"x"}"#).is_err());
        assert!(serde_json::from_str::<SupplierRecord>(
            r#"{"id":"1","name":"x","country":"Atlantis"}"#
        )
        .is_err());
    }

    #[test]
    fn countries_are_codes_or_names() {
        for (raw, code) in [
            ("cn", "CN"),
            ("China", "CN"),
            ("KOREA, NORTH", "KP"),
            ("xk", "XK"),
        ] {
            assert_eq!(recognise_country(raw).unwrap().as_str(), code, "{raw}");
        }
        for raw in ["QQ", "Atlantis", "TX", ""] {
            assert!(recognise_country(raw).is_none(), "{raw}");
        }
    }
}
