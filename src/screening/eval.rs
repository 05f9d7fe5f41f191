//! Quality measurement on labelled name pairs: precision, recall and F1 at a threshold, overall,
//! per category and per kind of party (the optional `schema` column), printed as a table.
//!
//! Reads whatever `impl Read` it is given (the caller opens the file); it must never open files
//! itself nor tune anything: it reports, a person decides.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;

use serde::Serialize;

use super::pairs::{parse_pairs, PairRowError, PairsFileError, DEFAULT_MAX_FIELD_BYTES};
use super::score::{score_pair_typed_with, DEFAULT_THRESHOLD};
use super::weights::TokenWeights;

/// Evaluation stops at the first bad row: a measurement over part of a file would mislead.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Row(#[from] PairRowError),
    #[error("line {line}: is_match must be true/false/1/0, got {value:?}")]
    Label { line: u64, value: String },
    #[error("the CSV needs columns name1,name2,is_match: {0}")]
    Header(String),
}

impl From<PairsFileError> for EvalError {
    fn from(e: PairsFileError) -> Self {
        EvalError::Header(e.to_string())
    }
}

/// Counts for one category (or for all rows).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    pub true_positive: u64,
    pub false_positive: u64,
    pub true_negative: u64,
    pub false_negative: u64,
}

impl Counts {
    fn add(&mut self, expected: bool, predicted: bool) {
        match (expected, predicted) {
            (true, true) => self.true_positive += 1,
            (false, true) => self.false_positive += 1,
            (false, false) => self.true_negative += 1,
            (true, false) => self.false_negative += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.true_positive + self.false_positive + self.true_negative + self.false_negative
    }

    /// Precision, 1 when nothing was predicted positive (no false alarm was raised).
    pub fn precision(&self) -> f64 {
        let p = self.true_positive + self.false_positive;
        if p == 0 {
            1.0
        } else {
            self.true_positive as f64 / p as f64
        }
    }

    /// Recall, 1 when there was nothing to find.
    pub fn recall(&self) -> f64 {
        let p = self.true_positive + self.false_negative;
        if p == 0 {
            1.0
        } else {
            self.true_positive as f64 / p as f64
        }
    }

    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }

    pub fn accuracy(&self) -> f64 {
        let t = self.total();
        if t == 0 {
            1.0
        } else {
            (self.true_positive + self.true_negative) as f64 / t as f64
        }
    }
}

/// A pair the matcher got wrong, for a person to look at.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mistake {
    pub name1: String,
    pub name2: String,
    pub expected: bool,
    pub score: f64,
    pub category: String,
    /// The pair's kind as labelled, or `(unknown)`.
    pub schema: String,
    pub explanation: String,
}

/// The result of [`evaluate_pairs`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    pub threshold: f64,
    pub overall: Counts,
    pub by_category: BTreeMap<String, Counts>,
    /// Per labelled kind of party (`Person`, `Company`, ..., `(unknown)` without a label).
    pub by_schema: BTreeMap<String, Counts>,
    /// Every misclassified pair, in input order.
    pub mistakes: Vec<Mistake>,
}

impl EvalReport {
    pub fn precision(&self) -> f64 {
        self.overall.precision()
    }
    pub fn recall(&self) -> f64 {
        self.overall.recall()
    }
    pub fn f1(&self) -> f64 {
        self.overall.f1()
    }
}

fn parse_label(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" | "t" => Some(true),
        "false" | "0" | "no" | "n" | "f" => Some(false),
        _ => None,
    }
}

/// Scores every `name1,name2,is_match[,category]` row with [`super::score_pair`] and counts
/// the verdicts at [`DEFAULT_THRESHOLD`].
pub fn evaluate_pairs(reader: impl Read) -> Result<EvalReport, EvalError> {
    evaluate_pairs_with(reader, TokenWeights::builtin(), DEFAULT_THRESHOLD)
}

/// [`evaluate_pairs`] with other word weights or another threshold.
pub fn evaluate_pairs_with(
    reader: impl Read,
    weights: &TokenWeights,
    threshold: f64,
) -> Result<EvalReport, EvalError> {
    let file = parse_pairs(reader, DEFAULT_MAX_FIELD_BYTES)?;
    if !file.has_label {
        return Err(EvalError::Header("no is_match column".to_string()));
    }
    let mut report = EvalReport {
        threshold,
        overall: Counts::default(),
        by_category: BTreeMap::new(),
        by_schema: BTreeMap::new(),
        mistakes: Vec::new(),
    };
    for row in file.rows {
        let row = row?;
        let value = row.label.clone().unwrap_or_default();
        let expected = parse_label(&value).ok_or(EvalError::Label {
            line: row.line,
            value,
        })?;
        let s = score_pair_typed_with(&row.name1, &row.name2, row.schema, weights);
        let predicted = s.value >= threshold;
        let category = row.category.unwrap_or_else(|| "(none)".to_string());
        let schema = row
            .schema
            .map_or_else(|| "(unknown)".to_string(), |k| k.to_string());
        report.overall.add(expected, predicted);
        report
            .by_category
            .entry(category.clone())
            .or_default()
            .add(expected, predicted);
        report
            .by_schema
            .entry(schema.clone())
            .or_default()
            .add(expected, predicted);
        if expected != predicted {
            report.mistakes.push(Mistake {
                name1: row.name1,
                name2: row.name2,
                expected,
                score: s.value,
                category,
                schema,
                explanation: s.explanation.to_string(),
            });
        }
    }
    Ok(report)
}

impl fmt::Display for EvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "threshold {:.2}", self.threshold)?;
        writeln!(
            f,
            "{:<20} {:>6} {:>6} {:>6} {:>6} {:>6} {:>9} {:>7} {:>7} {:>8}",
            "category", "pairs", "TP", "FP", "TN", "FN", "precision", "recall", "F1", "accuracy"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, c: &Counts| {
            writeln!(
                f,
                "{:<20} {:>6} {:>6} {:>6} {:>6} {:>6} {:>9.4} {:>7.4} {:>7.4} {:>8.4}",
                name,
                c.total(),
                c.true_positive,
                c.false_positive,
                c.true_negative,
                c.false_negative,
                c.precision(),
                c.recall(),
                c.f1(),
                c.accuracy()
            )
        };
        for (name, c) in &self.by_category {
            row(f, name, c)?;
        }
        writeln!(f, "{:-<20}", "by type ")?;
        for (name, c) in &self.by_schema {
            row(f, name, c)?;
        }
        writeln!(f, "{:-<20}", "")?;
        row(f, "ALL", &self.overall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_table() {
        let csv = "name1,name2,is_match,category\n\
                   Huawei Technologies Co. Ltd.,HUAWEI TECHNOLOGIES CO LTD,true,variant\n\
                   Harbin Institute of Technology,Harbin Engineering University,false,hard\n\
                   Sichuan University,Sichuan Univ,1,variant\n";
        let r = evaluate_pairs(csv.as_bytes()).unwrap();
        assert_eq!(r.overall.total(), 3);
        assert_eq!(r.overall.true_positive, 2);
        assert_eq!(r.overall.true_negative, 1);
        assert_eq!(r.f1(), 1.0);
        let table = r.to_string();
        assert!(table.contains("variant"));
        assert!(table.contains("ALL"));
        assert!(table.contains("(unknown)"));
    }

    #[test]
    fn counts_per_type() {
        let csv = "name1,name2,is_match,schema\n\
                   John Smith,Smith John,true,Person\n\
                   Huawei Technologies,Huawei Technologies Co Ltd,true,Company\n\
                   Huawei Technologies,ZTE Corporation,false,Company\n";
        let r = evaluate_pairs(csv.as_bytes()).unwrap();
        assert_eq!(r.by_schema["Person"].true_positive, 1);
        assert_eq!(r.by_schema["Company"].total(), 2);
        assert!(r.to_string().contains("Company"));
        let e =
            evaluate_pairs("name1,name2,is_match,schema\nA,B,true,Robot\n".as_bytes()).unwrap_err();
        assert!(e.to_string().starts_with("line 2"), "{e}");
    }

    #[test]
    fn category_is_optional_and_bad_labels_are_reported_with_their_line() {
        let r = evaluate_pairs("name1,name2,is_match\nA Corp,A Inc,true\n".as_bytes()).unwrap();
        assert_eq!(r.by_category["(none)"].true_positive, 1);
        let e = evaluate_pairs("name1,name2,is_match\nA,B,maybe\n".as_bytes()).unwrap_err();
        assert!(e.to_string().starts_with("line 2"), "{e}");
        assert!(evaluate_pairs("a,b\n1,2\n".as_bytes()).is_err());
    }
}
