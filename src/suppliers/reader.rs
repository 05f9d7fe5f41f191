//! Reading a supplier file: CSV in, [`SupplierRecord`]s plus one [`RowError`] per bad row out.
//!
//! This reader must never drop a good row because a neighbour was bad, never stop a whole file
//! for one bad row, and never hold more than a bounded amount of one row in memory, whatever
//! the file contains.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::io::{self, Read};

use crate::domain::recognise_country;
use crate::domain::supplier::{
    SupplierError, SupplierRecord, ADDRESS_COLUMN, ALIASES_COLUMN, COUNTRY_COLUMN, ID_COLUMN,
    NAME_COLUMN, SCHEMA_COLUMN,
};

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
    /// A NUL byte (0x00), which no text column of the store can hold.
    NulByte {
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
    /// A country that is no code or name we know: the row is kept, without a country.
    UnknownCountry(String),
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
            RowProblem::NulByte { column } => write!(
                f,
                "field {column} contains a NUL byte (0x00), which cannot be stored; remove it"
            ),
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
            RowProblem::UnknownCountry(raw) => write!(
                f,
                "country {raw:?} is not an ISO 3166 code or a country name we know; the row is \
                 stored and screened without a country"
            ),
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
        matches!(
            self,
            RowProblem::DuplicateId { .. } | RowProblem::UnknownCountry(_)
        )
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
    /// A problem that did not cost the row (a country we do not know).
    pub warning: Option<RowProblem>,
}

/// Where each header column goes.
#[derive(Debug, Clone)]
enum ColumnRole {
    Id,
    Name,
    Aliases,
    Country,
    Address,
    Schema,
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
        // A header can be long (many columns) but not endless: `/dev/zero` or a binary file
        // with no line break would otherwise be read to its end, which may never come.
        let header_limit =
            (limits.max_field_bytes as u64).saturating_mul(limits.max_columns as u64 + 1);
        if !csv.next_record_within(&mut header, limits.max_columns + 1, Some(header_limit))? {
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
        let (record, warning) = match self.build_record() {
            Ok((record, warning)) => (Ok(record), warning),
            Err((id, reason)) => (Err(RowError { line, id, reason }), None),
        };
        Ok(Some(SupplierRow {
            line,
            record,
            warning,
        }))
    }

    fn build_record(
        &self,
    ) -> Result<(SupplierRecord, Option<RowProblem>), (Option<String>, RowProblem)> {
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
                // PostgreSQL cannot store a NUL in text at all, and would fail the whole
                // import on it; SQLite would store it. Both refuse the row alike.
                Ok(s) if s.contains('\0') => {
                    return fail(RowProblem::NulByte {
                        column: self.column_label(i),
                    })
                }
                Ok(s) => text.push(restore_formula(s)),
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
        let mut schema_v = "";
        for (i, (_, role)) in self.columns.iter().enumerate() {
            match role {
                ColumnRole::Id => id_v = text[i],
                ColumnRole::Name => name_v = text[i],
                ColumnRole::Aliases => aliases_v = text[i],
                ColumnRole::Country => country_v = text[i],
                ColumnRole::Address => address_v = text[i],
                ColumnRole::Schema => schema_v = text[i],
                ColumnRole::Unnamed if !text[i].trim().is_empty() => {
                    return fail(RowProblem::ValueInUnnamedColumn { column: i + 1 })
                }
                ColumnRole::Unnamed | ColumnRole::Reference(_) => {}
            }
        }
        let record = SupplierRecord::new(id_v, name_v)
            .and_then(|r| r.with_schema_text(schema_v))
            .map_err(|e| (id.clone(), RowProblem::Invalid(e)))?;
        // A country we cannot read costs the country, never the row: a supplier left out of
        // screening for its spelling of "United States" would be the worse failure. "XX" (the
        // list's "unknown") is no country either, and is said so.
        let raw_country = country_v.trim();
        let (country, warning) = match recognise_country(raw_country) {
            Some(c) => (Some(c), None),
            None if raw_country.is_empty() => (None, None),
            None => (
                None,
                Some(RowProblem::UnknownCountry(raw_country.to_string())),
            ),
        };
        let record = record.with_country(country);
        let mut record = record
            .with_aliases([aliases_v])
            .with_address(Some(address_v));
        for (i, (_, role)) in self.columns.iter().enumerate() {
            if let ColumnRole::Reference(key) = role {
                // The header was checked for reserved and duplicate names once, up front.
                record.set_reference(key, text[i]);
            }
        }
        Ok((record, warning))
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

/// Undoes [`super::neutralise_formula`]: `'=x` is read as `=x`. A `'` before anything else is
/// part of the value.
fn restore_formula(field: &str) -> &str {
    match field.strip_prefix('\'') {
        Some(rest) if rest.starts_with(super::FORMULA_TRIGGERS) => rest,
        _ => field,
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
            SCHEMA_COLUMN => ColumnRole::Schema,
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
        if let Some(reason) = row.warning {
            errors.push(RowError {
                line: row.line,
                id: row.record.as_ref().ok().map(|r| r.id().to_string()),
                reason,
            });
        }
        match row.record {
            Ok(record) => {
                let slot = slots.len();
                if let Some(previous) = by_id.insert(record.id().to_string(), slot) {
                    if let Some((earlier_line, _)) = slots[previous].take() {
                        errors.push(RowError {
                            line: earlier_line,
                            id: Some(record.id().to_string()),
                            reason: RowProblem::DuplicateId {
                                id: record.id().to_string(),
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
        self.next_record_within(rec, width, None)
    }

    /// As `next_record`; past `limit` bytes the record is cut short and marked oversized.
    fn next_record_within(
        &mut self,
        rec: &mut RawRecord,
        width: usize,
        limit: Option<u64>,
    ) -> io::Result<bool> {
        let mut record_bytes: u64 = 0;
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
            record_bytes += nin as u64;
            let idx = rec.field_count;
            if limit.is_some_and(|l| record_bytes > l) {
                rec.oversized
                    .get_or_insert((idx.min(width.saturating_sub(1)), record_bytes));
                rec.field_count = (idx + 1).min(width);
                return Ok(true);
            }
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
#[path = "tests.rs"]
mod tests;
