//! Writing supplier records back as CSV (`entitywatch suppliers export`).

use std::collections::BTreeSet;
use std::io::{self, Write};

use crate::domain::supplier::{SupplierRecord, KNOWN_COLUMNS, SCHEMA_COLUMN};

/// Writes records as CSV that [`read_suppliers`] reads back to the same records: the columns
/// id, name, aliases (joined with `; `), country (ISO code), address, then every reference
/// field name used by any record, sorted. A field a spreadsheet would run as a formula is
/// written neutralised (see [`neutralise_formula`]).
pub fn write_suppliers(writer: impl Write, records: &[SupplierRecord]) -> io::Result<()> {
    let refs: BTreeSet<&str> = records
        .iter()
        .flat_map(|r| r.references().keys().map(String::as_str))
        .collect();
    // The kind column only when some record states a kind: older exports keep their columns.
    let kinds = records.iter().any(|r| r.schema().is_some());
    let mut w = SupplierWriter::with_schema_column(writer, refs, kinds)?;
    for r in records {
        w.write(r)?;
    }
    w.finish()
}

/// A streaming CSV writer for exports too large to hold, given the reference columns up front.
pub struct SupplierWriter<W: Write> {
    csv: csv::Writer<W>,
    references: Vec<String>,
    schema_column: bool,
}

impl<W: Write> SupplierWriter<W> {
    pub fn new<I, S>(writer: W, reference_columns: I) -> io::Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self::with_schema_column(writer, reference_columns, false)
    }

    /// [`SupplierWriter::new`] with a `schema` column after the address when `schema_column`.
    pub fn with_schema_column<I, S>(
        writer: W,
        reference_columns: I,
        schema_column: bool,
    ) -> io::Result<Self>
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
            .chain(schema_column.then_some(SCHEMA_COLUMN))
            .chain(references.iter().map(String::as_str));
        csv.write_record(header).map_err(csv_to_io)?;
        Ok(SupplierWriter {
            csv,
            references,
            schema_column,
        })
    }

    pub fn write(&mut self, r: &SupplierRecord) -> io::Result<()> {
        let aliases = r.aliases().join("; ");
        let fixed = [
            r.id(),
            r.name(),
            aliases.as_str(),
            r.country().map_or("", |c| c.as_str()),
            r.address().unwrap_or(""),
        ];
        let schema = self
            .schema_column
            .then(|| r.schema().map_or("", |s| s.as_str()));
        let refs = self
            .references
            .iter()
            .map(|k| r.references().get(k).map_or("", String::as_str));
        self.csv
            .write_record(
                fixed
                    .into_iter()
                    .chain(schema)
                    .chain(refs)
                    .map(|f| neutralise_formula(f).into_owned().into_bytes()),
            )
            .map_err(csv_to_io)
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.csv.flush()
    }
}

/// First characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection"):
/// a supplier named `=HYPERLINK("http://evil","x")` would run when the export is opened.
pub const FORMULA_TRIGGERS: &[char] = &['=', '+', '-', '@', '\t', '\r'];

/// A field starting with a [`FORMULA_TRIGGERS`] character, written with a leading `'`, which
/// spreadsheets take as "text" and do not show. The supplier reader drops that `'` again, so an
/// export still reads back to the same records.
pub fn neutralise_formula(field: &str) -> std::borrow::Cow<'_, str> {
    if field.starts_with(FORMULA_TRIGGERS) {
        std::borrow::Cow::Owned(format!("'{field}"))
    } else {
        std::borrow::Cow::Borrowed(field)
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
