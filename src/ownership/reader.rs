//! Reading an ownership file: CSV in, [`OwnershipRecord`]s plus one [`OwnershipRowError`] per
//! bad row out, each naming its line (the header is line 1).
//!
//! Columns: `owned_id`, `owner_id`, `owner_name`, `percent` (required, any case and order),
//! `owner_country`, `as_of` (YYYY-MM-DD), `source` (optional). This reader must never drop a
//! good row because a neighbour was bad, and never stop a whole file for one bad row; it reads
//! from any `Read` and does no other I/O.

use std::fmt;
use std::io::Read;

use chrono::NaiveDate;

use crate::domain::recognise_country;

use super::OwnershipRecord;

/// Longest field kept; a longer one makes its row an error.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;

const REQUIRED: [&str; 4] = ["owned_id", "owner_id", "owner_name", "percent"];
const OPTIONAL: [&str; 3] = ["owner_country", "as_of", "source"];

/// What is wrong with the file as a whole.
#[derive(Debug, thiserror::Error)]
pub enum OwnershipFileError {
    #[error("cannot read the ownership file: {0}")]
    Csv(#[from] csv::Error),
    #[error("the ownership file is empty: expected a header naming owned_id, owner_id, owner_name, percent")]
    Empty,
    #[error("the header lacks the column{plural} {missing}; expected: owned_id, owner_id, owner_name, percent (required), owner_country, as_of, source (optional)",
        plural = if missing.len() > 1 { "s" } else { "" }, missing = missing.join(", "))]
    MissingColumns { missing: Vec<String> },
}

/// What is wrong with one row.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnershipRowProblem {
    WrongFieldCount {
        expected: usize,
        found: usize,
    },
    InvalidUtf8,
    FieldTooLong {
        column: &'static str,
    },
    Empty {
        column: &'static str,
    },
    /// Not a number from 0 to 100.
    BadPercent(String),
    BadDate(String),
    /// A warning: the row is kept without a country.
    UnknownCountry(String),
}

impl fmt::Display for OwnershipRowProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongFieldCount { expected, found } => {
                write!(f, "expected {expected} fields, found {found}")
            }
            Self::InvalidUtf8 => f.write_str("not valid UTF-8"),
            Self::FieldTooLong { column } => {
                write!(f, "field {column} is longer than {MAX_FIELD_BYTES} bytes")
            }
            Self::Empty { column } => write!(f, "{column} is empty"),
            Self::BadPercent(v) => write!(f, "percent {v:?} is not a number from 0 to 100"),
            Self::BadDate(v) => write!(f, "as_of {v:?} is not a date (YYYY-MM-DD)"),
            Self::UnknownCountry(v) => {
                write!(
                    f,
                    "owner_country {v:?} is no country we know (kept without one)"
                )
            }
        }
    }
}

/// One bad row (or, for [`OwnershipRowProblem::UnknownCountry`], one warning).
#[derive(Debug, Clone, PartialEq)]
pub struct OwnershipRowError {
    pub line: u64,
    pub problem: OwnershipRowProblem,
}

impl fmt::Display for OwnershipRowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

/// The whole file: every good record (a later row for the same holding wins when stored),
/// every rejected row and every warning.
#[derive(Debug, Default)]
pub struct OwnershipImport {
    pub records: Vec<OwnershipRecord>,
    pub rejected: Vec<OwnershipRowError>,
    pub warnings: Vec<OwnershipRowError>,
}

pub fn read_ownership(reader: impl Read) -> Result<OwnershipImport, OwnershipFileError> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut raw = csv::ByteRecord::new();
    if !csv.read_byte_record(&mut raw)? {
        return Err(OwnershipFileError::Empty);
    }
    let names: Vec<String> = raw
        .iter()
        .map(|f| {
            String::from_utf8_lossy(f)
                .trim()
                .trim_start_matches('\u{feff}')
                .to_ascii_lowercase()
        })
        .collect();
    let col = |name: &str| names.iter().position(|n| n == name);
    let missing: Vec<String> = REQUIRED
        .iter()
        .filter(|c| col(c).is_none())
        .map(|c| c.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(OwnershipFileError::MissingColumns { missing });
    }
    let required: Vec<usize> = REQUIRED.iter().map(|c| col(c).unwrap_or(0)).collect();
    let optional: Vec<Option<usize>> = OPTIONAL.iter().map(|c| col(c)).collect();
    let width = names.len();
    let mut out = OwnershipImport::default();
    loop {
        let line = csv.position().line() + 1;
        match csv.read_byte_record(&mut raw) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) if matches!(e.kind(), csv::ErrorKind::Io(_)) => return Err(e.into()),
            Err(_) => {
                out.rejected.push(OwnershipRowError {
                    line,
                    problem: OwnershipRowProblem::InvalidUtf8,
                });
                continue;
            }
        }
        // A blank line is no row.
        if raw.len() == 1 && raw[0].is_empty() {
            continue;
        }
        let line = raw.position().map(|p| p.line()).unwrap_or(line);
        match row(&raw, width, &required, &optional) {
            Ok((record, warning)) => {
                if let Some(problem) = warning {
                    out.warnings.push(OwnershipRowError { line, problem });
                }
                out.records.push(record);
            }
            Err(problem) => out.rejected.push(OwnershipRowError { line, problem }),
        }
    }
    Ok(out)
}

type RowResult = Result<(OwnershipRecord, Option<OwnershipRowProblem>), OwnershipRowProblem>;

fn row(
    raw: &csv::ByteRecord,
    width: usize,
    required: &[usize],
    optional: &[Option<usize>],
) -> RowResult {
    if raw.len() != width {
        return Err(OwnershipRowProblem::WrongFieldCount {
            expected: width,
            found: raw.len(),
        });
    }
    let field = |i: usize, column: &'static str| -> Result<&str, OwnershipRowProblem> {
        let bytes = &raw[i];
        if bytes.len() > MAX_FIELD_BYTES {
            return Err(OwnershipRowProblem::FieldTooLong { column });
        }
        let s = std::str::from_utf8(bytes).map_err(|_| OwnershipRowProblem::InvalidUtf8)?;
        Ok(s.trim())
    };
    let needed = |k: usize| -> Result<String, OwnershipRowProblem> {
        let v = field(required[k], REQUIRED[k])?;
        if v.is_empty() {
            return Err(OwnershipRowProblem::Empty {
                column: REQUIRED[k],
            });
        }
        Ok(v.to_string())
    };
    let maybe = |k: usize| -> Result<Option<String>, OwnershipRowProblem> {
        match optional[k] {
            Some(i) => {
                let v = field(i, OPTIONAL[k])?;
                Ok((!v.is_empty()).then(|| v.to_string()))
            }
            None => Ok(None),
        }
    };
    let owned_id = needed(0)?;
    let owner_id = needed(1)?;
    let owner_name = needed(2)?;
    let percent_text = needed(3)?;
    let percent = percent_text
        .trim_end_matches('%')
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|p| p.is_finite() && (0.0..=100.0).contains(p))
        .ok_or_else(|| OwnershipRowProblem::BadPercent(percent_text.clone()))?;
    let as_of = match maybe(1)? {
        Some(d) => Some(
            NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                .map_err(|_| OwnershipRowProblem::BadDate(d.clone()))?,
        ),
        None => None,
    };
    let mut warning = None;
    let owner_country = match maybe(0)? {
        Some(c) => {
            let code = recognise_country(&c);
            if code.is_none() {
                warning = Some(OwnershipRowProblem::UnknownCountry(c));
            }
            code
        }
        None => None,
    };
    Ok((
        OwnershipRecord {
            owned_id,
            owner_id,
            owner_name,
            owner_country,
            percent,
            as_of,
            source: maybe(2)?,
        },
        warning,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_rows_are_read_and_bad_rows_named_by_line() {
        let file = "owned_id,owner_id,owner_name,owner_country,percent,as_of,source\n\
                    V-1,O-1,Parent Co,CN,60,2025-10-01,ERP\n\
                    V-2,O-1,Parent Co,China,40.5%,,\n\
                    V-3,O-2,,CN,10,,\n\
                    V-4,O-2,Other,CN,120,,\n\
                    V-5,O-2,Other,CN,ten,,\n\
                    V-6,O-2,Other\n\
                    V-7,O-3,Third,Atlantis,5,,\n\
                    V-8,O-3,Third,CN,5,01/02/2025,\n";
        let r = read_ownership(file.as_bytes()).unwrap();
        assert_eq!(r.records.len(), 3, "{:?}", r.records);
        assert_eq!(r.records[0].percent, 60.0);
        assert_eq!(r.records[0].owner_country.as_ref().unwrap().as_str(), "CN");
        assert_eq!(r.records[0].as_of, NaiveDate::from_ymd_opt(2025, 10, 1));
        assert_eq!(r.records[0].source.as_deref(), Some("ERP"));
        assert_eq!(r.records[1].percent, 40.5);
        assert_eq!(r.records[1].owner_country.as_ref().unwrap().as_str(), "CN");
        assert_eq!(r.records[2].owner_country, None);
        let lines: Vec<(u64, String)> = r
            .rejected
            .iter()
            .map(|e| (e.line, e.problem.to_string()))
            .collect();
        assert_eq!(
            lines,
            vec![
                (4, "owner_name is empty".to_string()),
                (
                    5,
                    "percent \"120\" is not a number from 0 to 100".to_string()
                ),
                (
                    6,
                    "percent \"ten\" is not a number from 0 to 100".to_string()
                ),
                (7, "expected 7 fields, found 3".to_string()),
                (
                    9,
                    "as_of \"01/02/2025\" is not a date (YYYY-MM-DD)".to_string()
                ),
            ]
        );
        assert_eq!(r.warnings.len(), 1);
        assert_eq!(r.warnings[0].line, 8);
    }

    #[test]
    fn a_header_without_the_required_columns_is_refused() {
        let e = read_ownership("owned_id,owner\nV-1,O-1\n".as_bytes()).unwrap_err();
        assert!(
            e.to_string().contains("owner_id, owner_name, percent"),
            "{e}"
        );
        assert!(matches!(
            read_ownership("".as_bytes()),
            Err(OwnershipFileError::Empty)
        ));
    }

    #[test]
    fn invalid_utf8_costs_only_its_row() {
        let mut file = b"owned_id,owner_id,owner_name,percent\nV-1,O-1,A,60\n".to_vec();
        file.extend_from_slice(b"V-2,O-1,\xff\xfe,60\nV-3,O-1,A,60\n");
        let r = read_ownership(&file[..]).unwrap();
        assert_eq!(r.records.len(), 2);
        assert_eq!(r.rejected[0].line, 3);
        assert_eq!(r.rejected[0].problem, OwnershipRowProblem::InvalidUtf8);
    }
}
