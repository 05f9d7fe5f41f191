//! Pair files: the `name1,name2[,schema][,is_match][,category]` CSV that `match --pairs` scores
//! and `evaluate` measures, read into typed rows. A bad row (unknown schema, a missing field, a
//! field over the size limit, broken CSV) is an error naming its line; every other row is still
//! returned, so one bad line never hides the rest of the file.
//!
//! Pure: reads the `impl Read` it is given and never opens a file or prints; the command line
//! decides what to do with the errors.

use std::io::Read;

use super::schema::{Schema, UnknownSchema};
use super::score::{score_pair_typed, Score};

/// Fields longer than this are refused unless the caller says otherwise: no real name is
/// anywhere near, and a runaway quoted field would otherwise be scored as one name.
pub const DEFAULT_MAX_FIELD_BYTES: usize = 4096;

/// One well-formed row.
#[derive(Debug, Clone, PartialEq)]
pub struct PairRow {
    /// The line the row starts on (the header is line 1).
    pub line: u64,
    pub name1: String,
    pub name2: String,
    /// The pair's kind when the file has a `schema` column and the cell is not empty.
    pub schema: Option<Schema>,
    /// The `is_match` label when the file has one, as given (checked by `evaluate`).
    pub label: Option<String>,
    pub category: Option<String>,
}

impl PairRow {
    /// Scores the row by the rules of its kind (or, without one, the rules its names suggest).
    pub fn score(&self) -> Score {
        score_pair_typed(&self.name1, &self.name2, self.schema)
    }
}

/// Why one row was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairRowError {
    #[error("line {line}: {source}")]
    UnknownSchema {
        line: u64,
        #[source]
        source: UnknownSchema,
    },
    #[error("line {line}: no {column} field (the header names it, the row has {fields} fields)")]
    MissingField {
        line: u64,
        column: &'static str,
        fields: usize,
    },
    #[error("line {line}: the {column} field is {bytes} bytes, over the limit of {limit}")]
    FieldTooLong {
        line: u64,
        column: &'static str,
        bytes: usize,
        limit: usize,
    },
    #[error("line {line}: {message}")]
    Csv { line: u64, message: String },
}

impl PairRowError {
    pub fn line(&self) -> u64 {
        match self {
            PairRowError::UnknownSchema { line, .. }
            | PairRowError::MissingField { line, .. }
            | PairRowError::FieldTooLong { line, .. }
            | PairRowError::Csv { line, .. } => *line,
        }
    }
}

/// Why the file as a whole cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairsFileError {
    #[error("the pairs file has no {column} column (found: {found})")]
    MissingColumn { column: &'static str, found: String },
    #[error("line 1: {0}")]
    Header(String),
}

/// A pairs file read row by row.
#[derive(Debug, Clone, PartialEq)]
pub struct PairsFile {
    /// Whether the header names a `schema` column.
    pub has_schema: bool,
    /// Whether the header names an `is_match` column.
    pub has_label: bool,
    /// Every data row in file order: read, or the reason it was not.
    pub rows: Vec<Result<PairRow, PairRowError>>,
}

/// Reads a pairs CSV: `name1` and `name2` are required, `schema`, `is_match` and `category`
/// optional, column order free, header names case-insensitive (a byte-order mark is ignored).
pub fn parse_pairs(reader: impl Read, max_field_bytes: usize) -> Result<PairsFile, PairsFileError> {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let headers = rdr
        .headers()
        .map_err(|e| PairsFileError::Header(e.to_string()))?
        .clone();
    let find = |name: &str| {
        headers.iter().position(|h| {
            h.trim()
                .trim_start_matches('\u{feff}')
                .eq_ignore_ascii_case(name)
        })
    };
    let required = |name: &'static str| {
        find(name).ok_or_else(|| PairsFileError::MissingColumn {
            column: name,
            found: headers.iter().collect::<Vec<_>>().join(","),
        })
    };
    let (c1, c2) = (required("name1")?, required("name2")?);
    let (cs, cl, cc) = (find("schema"), find("is_match"), find("category"));
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = rdr.position().line().max(2);
        match rdr.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(line, |p| p.line());
                rows.push(read_row(
                    &record,
                    line,
                    max_field_bytes,
                    [c1, c2],
                    cs,
                    cl,
                    cc,
                ));
            }
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line());
                rows.push(Err(PairRowError::Csv {
                    line,
                    message: e.to_string(),
                }));
                // A UTF-8 error leaves the reader on the next record; anything else (an I/O
                // error) cannot be read past.
                if !matches!(e.kind(), csv::ErrorKind::Utf8 { .. }) {
                    break;
                }
            }
        }
    }
    Ok(PairsFile {
        has_schema: cs.is_some(),
        has_label: cl.is_some(),
        rows,
    })
}

fn read_row(
    record: &csv::StringRecord,
    line: u64,
    limit: usize,
    [c1, c2]: [usize; 2],
    cs: Option<usize>,
    cl: Option<usize>,
    cc: Option<usize>,
) -> Result<PairRow, PairRowError> {
    let field = |i: usize, column: &'static str| -> Result<&str, PairRowError> {
        let v = record.get(i).ok_or(PairRowError::MissingField {
            line,
            column,
            fields: record.len(),
        })?;
        if v.len() > limit {
            return Err(PairRowError::FieldTooLong {
                line,
                column,
                bytes: v.len(),
                limit,
            });
        }
        Ok(v)
    };
    let name1 = field(c1, "name1")?.to_string();
    let name2 = field(c2, "name2")?.to_string();
    let schema = match cs {
        Some(i) => {
            let v = field(i, "schema")?;
            if v.trim().is_empty() {
                None
            } else {
                Some(
                    v.parse::<Schema>()
                        .map_err(|source| PairRowError::UnknownSchema { line, source })?,
                )
            }
        }
        None => None,
    };
    let label = cl
        .map(|i| field(i, "is_match").map(str::to_string))
        .transpose()?;
    let category = cc
        .map(|i| record.get(i).unwrap_or("").trim().to_string())
        .filter(|c| !c.is_empty());
    Ok(PairRow {
        line,
        name1,
        name2,
        schema,
        label,
        category,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(csv: &str) -> PairsFile {
        parse_pairs(csv.as_bytes(), 64).unwrap()
    }

    #[test]
    fn schema_column_is_optional_and_used_when_present() {
        let f = parse("name1,name2\nA Corp,A Inc\n");
        assert!(!f.has_schema);
        assert_eq!(f.rows[0].as_ref().unwrap().schema, None);
        let f = parse("schema,name2,name1\nPerson,John Smith,Smith John\ncompany,A,B\n,C,D\n");
        assert!(f.has_schema);
        let rows: Vec<&PairRow> = f.rows.iter().map(|r| r.as_ref().unwrap()).collect();
        assert_eq!(rows[0].schema, Some(Schema::Person));
        assert_eq!(rows[0].name1, "Smith John");
        assert_eq!(rows[1].schema, Some(Schema::Company));
        assert_eq!(rows[2].schema, None);
        assert_eq!(rows[2].line, 4);
    }

    #[test]
    fn bad_rows_name_their_line_and_the_others_are_kept() {
        let long = "x".repeat(65);
        let csv = format!(
            "name1,name2,schema\nA,B,Person\nC,D,Persn\nE,F\n{long},G,Company\n\"H\nI\",J,Company\n"
        );
        let f = parse(&csv);
        assert_eq!(f.rows.len(), 5);
        assert!(f.rows[0].is_ok());
        let e = f.rows[1].as_ref().unwrap_err();
        assert!(
            matches!(e, PairRowError::UnknownSchema { line: 3, .. }),
            "{e}"
        );
        assert!(e
            .to_string()
            .starts_with("line 3: unknown schema \"Persn\""));
        let e = f.rows[2].as_ref().unwrap_err();
        assert!(
            matches!(
                e,
                PairRowError::MissingField {
                    line: 4,
                    column: "schema",
                    ..
                }
            ),
            "{e}"
        );
        let e = f.rows[3].as_ref().unwrap_err();
        assert!(
            matches!(
                e,
                PairRowError::FieldTooLong {
                    line: 5,
                    column: "name1",
                    bytes: 65,
                    ..
                }
            ),
            "{e}"
        );
        // A quoted name over two lines is one row starting on line 6.
        assert_eq!(f.rows[4].as_ref().unwrap().line, 6);
    }

    #[test]
    fn names_are_required_columns() {
        let e = parse_pairs("a,b\n1,2\n".as_bytes(), 64).unwrap_err();
        assert!(matches!(
            e,
            PairsFileError::MissingColumn {
                column: "name1",
                ..
            }
        ));
    }

    #[test]
    fn rows_score_by_their_kind() {
        let f = parse("name1,name2,schema\nJohn Smith,John Smith Ltd,Person\n");
        let s = f.rows[0].as_ref().unwrap().score();
        assert!(s.value < 0.5, "{}", s.explanation);
    }
}
