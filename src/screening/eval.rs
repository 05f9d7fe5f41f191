//! Quality measurement on labelled name pairs: precision, recall and F1 at a threshold, overall
//! and per category, printed as a table.
//!
//! Reads whatever `impl Read` it is given (the caller opens the file); it must never open files
//! itself nor tune anything: it reports, a person decides.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;

use serde::{Deserialize, Serialize};

use super::score::{score_pair_with, DEFAULT_THRESHOLD};
use super::weights::TokenWeights;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("line {line}: {source}")]
    Csv {
        line: u64,
        #[source]
        source: csv::Error,
    },
    #[error("line {line}: is_match must be true/false/1/0, got {value:?}")]
    Label { line: u64, value: String },
    #[error("the CSV needs columns name1,name2,is_match: {0}")]
    Header(String),
}

#[derive(Debug, Deserialize)]
struct Row {
    name1: String,
    name2: String,
    is_match: String,
    #[serde(default)]
    category: Option<String>,
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
    pub explanation: String,
}

/// The result of [`evaluate_pairs`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    pub threshold: f64,
    pub overall: Counts,
    pub by_category: BTreeMap<String, Counts>,
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
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let headers = rdr
        .headers()
        .map_err(|e| EvalError::Csv { line: 1, source: e })?
        .clone();
    for needed in ["name1", "name2", "is_match"] {
        if !headers.iter().any(|h| h.trim() == needed) {
            return Err(EvalError::Header(
                headers.iter().collect::<Vec<_>>().join(","),
            ));
        }
    }
    let mut report = EvalReport {
        threshold,
        overall: Counts::default(),
        by_category: BTreeMap::new(),
        mistakes: Vec::new(),
    };
    for (i, rec) in rdr.deserialize::<Row>().enumerate() {
        let line = i as u64 + 2;
        let row = rec.map_err(|e| EvalError::Csv { line, source: e })?;
        let expected = parse_label(&row.is_match).ok_or_else(|| EvalError::Label {
            line,
            value: row.is_match.clone(),
        })?;
        let s = score_pair_with(&row.name1, &row.name2, weights);
        let predicted = s.value >= threshold;
        let category = row
            .category
            .filter(|c| !c.trim().is_empty())
            .unwrap_or_else(|| "(none)".to_string());
        report.overall.add(expected, predicted);
        report
            .by_category
            .entry(category.clone())
            .or_default()
            .add(expected, predicted);
        if expected != predicted {
            report.mistakes.push(Mistake {
                name1: row.name1,
                name2: row.name2,
                expected,
                score: s.value,
                category,
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
