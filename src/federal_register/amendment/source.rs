//! Document facts: the FR document number, title and effective date read from the XML
//! (`FRDOC`, `SUBJECT`, `EFFDATE`) to complete what the caller knew from the API.
//!
//! It only fills gaps and reports disagreements; it never overrides a number the caller gave.

use chrono::NaiveDate;
use roxmltree::{Document, Node};

use super::text::{flat_text, has_ancestor, is};
use crate::events::{normalise_document_number, SourceDocument};

pub(super) fn complete_source(
    doc: &Document,
    given: Option<SourceDocument>,
    warnings: &mut Vec<String>,
) -> SourceDocument {
    let mut numbers: Vec<String> = Vec::new();
    let frdocs = doc
        .descendants()
        .filter(|n| is(*n, "FRDOC") && !has_ancestor(*n, "FRDOC"));
    for n in frdocs {
        if let Some(num) = frdoc_number(&flat_text(doc, n)) {
            if !numbers.contains(&num) {
                numbers.push(num);
            }
        }
    }
    if numbers.len() > 1 {
        warnings.push(format!(
            "the XML holds several FR documents ({}); the first is taken as this rule's number",
            numbers.join(", ")
        ));
    }
    let xml_number = numbers.into_iter().next();

    let subjects: Vec<Node> = doc.descendants().filter(|n| is(*n, "SUBJECT")).collect();
    let title = subjects
        .iter()
        .find(|n| has_ancestor(**n, "PREAMB"))
        .or_else(|| {
            subjects
                .iter()
                .find(|n| !has_ancestor(**n, "SECTION") && !has_ancestor(**n, "REGTEXT"))
        })
        .map(|n| flat_text(doc, *n))
        .filter(|t| !t.is_empty());

    let effective = doc
        .descendants()
        .find(|n| is(*n, "EFFDATE"))
        .and_then(|n| first_date(&flat_text(doc, n)));

    match given {
        None => SourceDocument {
            document_number: xml_number.unwrap_or_else(|| "unknown".to_string()),
            publication_date: None,
            effective_date: effective,
            citation: None,
            title,
            html_url: None,
        },
        Some(mut s) => {
            s.document_number = normalise_document_number(&s.document_number);
            let blank = s.document_number.is_empty() || s.document_number == "unknown";
            match xml_number {
                Some(x) if blank => s.document_number = x,
                Some(x) if x != s.document_number => warnings.push(format!(
                    "the caller says document {} but the XML's FRDOC says {}; keeping {}",
                    s.document_number, x, s.document_number
                )),
                _ => {}
            }
            if s.document_number.is_empty() {
                s.document_number = "unknown".to_string();
            }
            if s.title.is_none() {
                s.title = title;
            }
            if s.effective_date.is_none() {
                s.effective_date = effective;
            }
            s
        }
    }
}

/// `[FR Doc. 2019–22210 Filed 10-7-19; 8:45 am]` → `2019-22210`.
pub(super) fn frdoc_number(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let at = lower
        .find("doc.")
        .map(|p| p + 4)
        .or_else(|| lower.find("doc").map(|p| p + 3))?;
    let token = text.get(at..)?.split_whitespace().next()?;
    let token = token.trim_matches(|c: char| !c.is_alphanumeric());
    token
        .chars()
        .any(|c| c.is_ascii_digit())
        .then(|| normalise_document_number(token))
}

/// The first "October 9, 2019" (or "Oct. 9, 2019") in the text.
fn first_date(text: &str) -> Option<NaiveDate> {
    const MONTHS: [&str; 12] = [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let words: Vec<&str> = text.split_whitespace().collect();
    words.windows(3).find_map(|w| {
        let m = w[0]
            .trim_matches(|c: char| !c.is_alphabetic())
            .to_lowercase();
        if m.len() < 3 {
            return None;
        }
        let month = MONTHS
            .iter()
            .position(|full| full.starts_with(m.as_str()))?;
        let day: u32 = w[1].trim_end_matches(',').parse().ok()?;
        let year: i32 = w[2]
            .trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .ok()?;
        if !(1900..=2200).contains(&year) {
            return None;
        }
        NaiveDate::from_ymd_opt(year, u32::try_from(month).ok()? + 1, day)
    })
}
