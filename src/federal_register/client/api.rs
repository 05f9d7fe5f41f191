//! The API's types: what the search and public-inspection endpoints answer, decoded leniently
//! from their raw JSON into the summaries the watcher uses.
//!
//! Decoding only; it never fetches. A result missing what makes it trackable (document number,
//! publication date) is an error, never a silently dropped rule.

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};
use url::Url;

use super::url_policy::loggable;
use super::{ClientError, BIS_AGENCY_SLUG};
use crate::events::{normalise_document_number, SourceDocument};

/// An agency as the API lists it. Agencies the Federal Register could not resolve carry only
/// `raw_name`, so every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agency {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub raw_name: Option<String>,
    #[serde(default)]
    pub slug: Option<String>,
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default)]
    pub parent_id: Option<u64>,
}

impl Agency {
    pub(super) fn is_bis(&self) -> bool {
        if self.slug.as_deref() == Some(BIS_AGENCY_SLUG) {
            return true;
        }
        // Unresolved agencies have no slug; their printed name still says who they are.
        [&self.name, &self.raw_name]
            .into_iter()
            .flatten()
            .any(|n| collapse(n).to_lowercase().contains("industry and security"))
    }
}

/// One CFR part a document affects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CfrReference {
    pub title: Option<u32>,
    pub part: Option<u32>,
}

/// A published document as the search endpoint describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentSummary {
    /// Normalised with [`normalise_document_number`].
    pub document_number: String,
    /// Trimmed (the API pads many titles with spaces).
    pub title: String,
    /// As the API writes it, e.g. `Rule`.
    pub type_: String,
    pub publication_date: NaiveDate,
    pub effective_on: Option<NaiveDate>,
    /// The official page, kept as published (it is for people, never fetched here).
    pub html_url: String,
    /// As published; pass it to [`FederalRegisterClient::fetch_full_text_xml`], which applies
    /// the host rule.
    pub full_text_xml_url: Option<String>,
    /// e.g. `84 FR 54002`.
    pub citation: Option<String>,
    pub agencies: Vec<Agency>,
    pub cfr_references: Vec<CfrReference>,
    pub abstract_: Option<String>,
    pub action: Option<String>,
}

impl DocumentSummary {
    pub fn source_document(&self) -> SourceDocument {
        SourceDocument {
            document_number: self.document_number.clone(),
            publication_date: Some(self.publication_date),
            effective_date: self.effective_on,
            citation: self.citation.clone(),
            title: non_empty(&self.title),
            html_url: non_empty(&self.html_url),
        }
    }
}

/// A document on public inspection: filed, not yet published, text not final.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicInspectionDocument {
    pub document_number: String,
    pub title: String,
    pub type_: String,
    /// `regular` or `special`.
    pub filing_type: Option<String>,
    pub filed_at: Option<DateTime<FixedOffset>>,
    /// The date the document is scheduled to be published.
    pub publication_date: Option<NaiveDate>,
    pub pdf_url: Option<String>,
    pub html_url: String,
    pub agencies: Vec<Agency>,
    pub toc_subject: Option<String>,
    pub toc_doc: Option<String>,
    /// `subject_1`..`subject_3`, those present.
    pub subjects: Vec<String>,
    pub editorial_note: Option<String>,
}

impl PublicInspectionDocument {
    /// The publication date is the scheduled one; the citation does not exist yet.
    pub fn source_document(&self) -> SourceDocument {
        SourceDocument {
            document_number: self.document_number.clone(),
            publication_date: self.publication_date,
            effective_date: None,
            citation: None,
            title: non_empty(&self.title),
            html_url: non_empty(&self.html_url),
        }
    }

    pub(super) fn is_bis_entity_list_filing(&self) -> bool {
        let by_bis = self.agencies.iter().any(Agency::is_bis);
        let mut texts = std::iter::once(&self.title)
            .chain(self.toc_subject.iter())
            .chain(self.toc_doc.iter())
            .chain(self.subjects.iter());
        by_bis && texts.any(|t| mentions_entity_list(t))
    }
}

/// The paginated envelope shared by the search and public-inspection endpoints. An empty
/// search answer has no `results` key at all.
#[derive(Debug, Deserialize)]
pub(super) struct Page<R> {
    #[serde(default)]
    pub(super) count: Option<u64>,
    #[serde(default)]
    pub(super) total_pages: Option<u64>,
    #[serde(default)]
    pub(super) next_page_url: Option<String>,
    #[serde(default = "Vec::new")]
    pub(super) results: Vec<R>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawDocument {
    #[serde(default)]
    document_number: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default, rename = "type")]
    type_: Option<String>,
    #[serde(default)]
    publication_date: Option<String>,
    #[serde(default)]
    effective_on: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    full_text_xml_url: Option<String>,
    #[serde(default)]
    citation: Option<String>,
    #[serde(default)]
    agencies: Option<Vec<Agency>>,
    #[serde(default)]
    cfr_references: Option<Vec<RawCfrReference>>,
    #[serde(default, rename = "abstract")]
    abstract_: Option<String>,
    #[serde(default)]
    action: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawCfrReference {
    #[serde(default)]
    title: Option<serde_json::Value>,
    #[serde(default)]
    part: Option<serde_json::Value>,
}

impl RawDocument {
    /// A document without a number or publication date cannot be tracked; failing loudly
    /// beats dropping what may be the rule someone is waiting for.
    pub(super) fn into_summary(self, page_url: &Url) -> Result<DocumentSummary, ClientError> {
        let decode = |message: String| ClientError::Decode {
            url: loggable(page_url),
            message,
        };
        let document_number = self
            .document_number
            .as_deref()
            .map(normalise_document_number)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| decode("a search result has no document_number".into()))?;
        let raw_date = self.publication_date.as_deref().unwrap_or("");
        let publication_date = parse_date(raw_date).ok_or_else(|| {
            decode(format!(
                "document {document_number} has no valid publication_date ({raw_date:?})"
            ))
        })?;
        let effective_on = self.effective_on.as_deref().and_then(|raw| {
            let parsed = parse_date(raw);
            if parsed.is_none() && !raw.trim().is_empty() {
                tracing::debug!(%document_number, raw, "ignoring an unreadable effective_on");
            }
            parsed
        });
        Ok(DocumentSummary {
            title: trimmed(self.title),
            type_: trimmed(self.type_),
            publication_date,
            effective_on,
            html_url: trimmed(self.html_url),
            full_text_xml_url: self.full_text_xml_url.as_deref().and_then(non_empty),
            citation: self.citation.as_deref().and_then(non_empty),
            agencies: self.agencies.unwrap_or_default(),
            cfr_references: self
                .cfr_references
                .unwrap_or_default()
                .into_iter()
                .map(|r| CfrReference {
                    title: lenient_u32(r.title.as_ref()),
                    part: lenient_u32(r.part.as_ref()),
                })
                .collect(),
            abstract_: self.abstract_.as_deref().and_then(non_empty),
            action: self.action.as_deref().and_then(non_empty),
            document_number,
        })
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RawPiDocument {
    #[serde(default)]
    document_number: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default, rename = "type")]
    type_: Option<String>,
    #[serde(default)]
    filing_type: Option<String>,
    #[serde(default)]
    filed_at: Option<String>,
    #[serde(default)]
    publication_date: Option<String>,
    #[serde(default)]
    pdf_url: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    agencies: Option<Vec<Agency>>,
    #[serde(default)]
    toc_subject: Option<String>,
    #[serde(default)]
    toc_doc: Option<String>,
    #[serde(default)]
    subject_1: Option<String>,
    #[serde(default)]
    subject_2: Option<String>,
    #[serde(default)]
    subject_3: Option<String>,
    #[serde(default)]
    editorial_note: Option<String>,
}

impl RawPiDocument {
    pub(super) fn into_document(
        self,
        page_url: &Url,
    ) -> Result<PublicInspectionDocument, ClientError> {
        let document_number = self
            .document_number
            .as_deref()
            .map(normalise_document_number)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ClientError::Decode {
                url: loggable(page_url),
                message: "a public inspection document has no document_number".into(),
            })?;
        Ok(PublicInspectionDocument {
            document_number,
            title: trimmed(self.title),
            type_: trimmed(self.type_),
            filing_type: self.filing_type.as_deref().and_then(non_empty),
            filed_at: self
                .filed_at
                .as_deref()
                .and_then(|s| DateTime::parse_from_rfc3339(s.trim()).ok()),
            publication_date: self.publication_date.as_deref().and_then(parse_date),
            pdf_url: self.pdf_url.as_deref().and_then(non_empty),
            html_url: trimmed(self.html_url),
            agencies: self.agencies.unwrap_or_default(),
            toc_subject: self.toc_subject.as_deref().and_then(non_empty),
            toc_doc: self.toc_doc.as_deref().and_then(non_empty),
            subjects: [self.subject_1, self.subject_2, self.subject_3]
                .iter()
                .flatten()
                .filter_map(|s| non_empty(s))
                .collect(),
            editorial_note: self.editorial_note.as_deref().and_then(non_empty),
        })
    }
}

pub(super) fn parse_date(raw: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d").ok()
}

pub(super) fn lenient_u32(value: Option<&serde_json::Value>) -> Option<u32> {
    match value? {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(super) fn mentions_entity_list(s: &str) -> bool {
    collapse(s).to_lowercase().contains("entity list")
}

pub(super) fn non_empty(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

pub(super) fn trimmed(s: Option<String>) -> String {
    s.as_deref().map(str::trim).unwrap_or("").to_owned()
}
