//! The console's pages: what each shows, built from the store's records, and rendered by
//! askama templates compiled into the binary (`src/http/console/templates`).
//!
//! Every value reaches the page through a template's escaping (names on alerts come from the
//! Federal Register and from customers' files, and may hold markup), and every link is built
//! here with its parts percent-encoded. Nothing here reads the store or decides anything: it
//! only turns records into what a reviewer reads.

use askama::Template;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::alerts::{Alert, AlertKind};
use crate::domain::{AlertStatus, ReviewDecision, SupplierRecord};
use crate::store::{AlertReview, EntryChangeRecord, StoredAlert, StoredEntry};

/// Path segments keep only unreserved characters; everything else is percent-encoded, so an
/// id with `/`, `?` or `#` still names one page.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn alert_href(alert_id: &str) -> String {
    format!("/alerts/{}", utf8_percent_encode(alert_id, SEGMENT))
}

pub fn supplier_href(supplier_id: &str) -> String {
    format!("/suppliers/{}", utf8_percent_encode(supplier_id, SEGMENT))
}

/// `/alerts` with these query parameters (empty values left out).
pub fn queue_href(pairs: &[(&str, &str)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        query.append_pair(k, v);
        any = true;
    }
    if any {
        format!("/alerts?{}", query.finish())
    } else {
        "/alerts".to_string()
    }
}

/// Where a document of an entry's history can be read: a rule on federalregister.gov, a list
/// sync from the eCFR at the codified list; a CSL file has no page of its own.
pub fn document_url(document_number: &str) -> Option<String> {
    let n = document_number.trim();
    if n.is_empty() || n.starts_with("csl-") {
        return None;
    }
    if n.starts_with("ecfr-") {
        return Some(
            "https://www.ecfr.gov/current/title-15/subtitle-B/chapter-VII/subchapter-C/part-744/\
             appendix-Supplement%20No.%204%20to%20Part%20744"
                .to_string(),
        );
    }
    Some(format!(
        "https://www.federalregister.gov/d/{}",
        utf8_percent_encode(n, SEGMENT)
    ))
}

/// The part of every page around its content: who is signed in, and the CSRF value of the
/// sign-out form.
pub struct Chrome {
    pub user: String,
    pub scope: String,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub nonce: String,
    pub next: String,
    pub error: Option<String>,
}

/// One alert as a row of the queue or of a supplier's page.
pub struct AlertRow {
    pub href: String,
    pub short_id: String,
    pub status: &'static str,
    pub kind: &'static str,
    pub score: String,
    pub raised_at: String,
    pub supplier_name: String,
    pub supplier_id: String,
    pub supplier_href: String,
    pub entry_name: String,
    /// Every alert on the same entry.
    pub entry_href: String,
    pub country_name: String,
    pub document_number: String,
    /// The open alerts of the same document; none when the entry came from a list import.
    pub document_href: Option<String>,
    pub citation: String,
}

impl AlertRow {
    pub fn new(stored: &StoredAlert, alert: &Alert) -> AlertRow {
        AlertRow {
            href: alert_href(&stored.alert_id),
            short_id: stored.alert_id.chars().take(12).collect(),
            status: stored.status.as_str(),
            kind: alert.kind.as_str(),
            score: score_text(alert),
            raised_at: day_and_time(&stored.raised_at),
            supplier_name: alert.supplier.name.clone(),
            supplier_id: stored.supplier_id.clone(),
            supplier_href: supplier_href(&stored.supplier_id),
            entry_name: alert.entry.name.clone(),
            entry_href: queue_href(&[("entity_key", &stored.entity_key)]),
            country_name: alert.entry.country_name.clone(),
            document_number: alert.entry.document_number.clone(),
            document_href: (!alert.entry.document_number.trim().is_empty()).then(|| {
                queue_href(&[
                    ("status", "open"),
                    ("document", &alert.entry.document_number),
                ])
            }),
            citation: alert
                .entry
                .federal_register_citation
                .clone()
                .unwrap_or_default(),
        }
    }
}

/// The score as the pages show it; none for notices that are not matches.
pub fn score_text(alert: &Alert) -> String {
    match alert.kind {
        AlertKind::Cleared | AlertKind::Affiliate => "–".to_string(),
        _ => format!("{:.2}", alert.score),
    }
}

/// An RFC 3339 instant as `YYYY-MM-DD HH:MM UTC`, or as stored if it is not one.
pub fn day_and_time(at: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(at)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M UTC")
                .to_string()
        })
        .unwrap_or_else(|_| at.to_string())
}

/// The queue's filter as the form shows it.
#[derive(Debug, Clone, Default)]
pub struct QueueFilter {
    pub status: Option<AlertStatus>,
    pub supplier_id: String,
    pub entity_key: String,
    pub document: String,
}

impl QueueFilter {
    fn pairs(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("status", self.status.map_or("", AlertStatus::as_str)),
            ("supplier_id", &self.supplier_id),
            ("entity_key", &self.entity_key),
            ("document", &self.document),
        ]
    }

    pub fn href(&self, page: usize) -> String {
        let page = page.to_string();
        let mut pairs = self.pairs();
        if page != "1" {
            pairs.push(("page", &page));
        }
        queue_href(&pairs)
    }
}

/// One choice of the status filter.
pub struct StatusChoice {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "queue.html")]
pub struct QueuePage {
    pub chrome: Chrome,
    pub heading: String,
    pub filter: QueueFilter,
    pub statuses: Vec<StatusChoice>,
    pub rows: Vec<AlertRow>,
    pub total: usize,
    pub first: usize,
    pub last: usize,
    pub previous_href: Option<String>,
    pub next_href: Option<String>,
}

impl QueuePage {
    pub fn statuses(selected: Option<AlertStatus>) -> Vec<StatusChoice> {
        let mut out = vec![StatusChoice {
            value: "",
            label: "any status",
            selected: selected.is_none(),
        }];
        out.extend(AlertStatus::ALL.into_iter().map(|s| StatusChoice {
            value: s.as_str(),
            label: s.as_str(),
            selected: selected == Some(s),
        }));
        out
    }

    /// What the queue shows, in words: "Open alerts", "Dismissed alerts on rule 2019-22210".
    pub fn heading_for(filter: &QueueFilter) -> String {
        let mut heading = match filter.status {
            Some(s) => {
                let s = s.as_str();
                format!("{}{} alerts", s[..1].to_ascii_uppercase(), &s[1..])
            }
            None => "All alerts".to_string(),
        };
        if !filter.document.is_empty() {
            heading.push_str(&format!(" from document {}", filter.document));
        }
        if !filter.supplier_id.is_empty() {
            heading.push_str(&format!(" for supplier {}", filter.supplier_id));
        }
        if !filter.entity_key.is_empty() {
            heading.push_str(&format!(" on entry {}", filter.entity_key));
        }
        heading
    }
}

/// The supplier side of an alert page, or the head of a supplier's page.
pub struct SupplierView {
    pub id: String,
    pub href: String,
    pub name: String,
    pub country: String,
    pub address: String,
    pub aliases: Vec<String>,
    pub references: Vec<(String, String)>,
    /// Whether the supplier is still in the supplier master (the alert keeps its name either
    /// way).
    pub on_file: bool,
}

impl SupplierView {
    pub fn new(id: &str, alerted_name: &str, record: Option<&SupplierRecord>) -> SupplierView {
        SupplierView {
            id: id.to_string(),
            href: supplier_href(id),
            name: record
                .map_or(alerted_name, SupplierRecord::name)
                .to_string(),
            country: record
                .and_then(|r| r.country())
                .map(|c| c.to_string())
                .unwrap_or_default(),
            address: record
                .and_then(SupplierRecord::address)
                .unwrap_or("")
                .to_string(),
            aliases: record.map(|r| r.aliases().to_vec()).unwrap_or_default(),
            references: record
                .map(|r| {
                    r.references()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            on_file: record.is_some(),
        }
    }
}

/// How BIS reviews licence applications for an entry, read from its licence review policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewPolicy {
    PolicyOfDenial,
    PresumptionOfDenial,
    CaseByCase,
    PresumptionOfApproval,
}

impl ReviewPolicy {
    /// Every policy a licence review policy text states, strictest first (a policy often
    /// reads "Case-by-case review for ...; presumption of denial for all other items").
    pub fn all_in(policy: &str) -> Vec<ReviewPolicy> {
        let p = policy.to_ascii_lowercase();
        [
            (ReviewPolicy::PolicyOfDenial, &["policy of denial"][..]),
            (
                ReviewPolicy::PresumptionOfDenial,
                &["presumption of denial"][..],
            ),
            (
                ReviewPolicy::CaseByCase,
                &["case-by-case", "case by case"][..],
            ),
            (
                ReviewPolicy::PresumptionOfApproval,
                &["presumption of approval"][..],
            ),
        ]
        .into_iter()
        .filter(|(_, words)| words.iter().any(|w| p.contains(w)))
        .map(|(policy, _)| policy)
        .collect()
    }

    /// The policy in one sentence, noting when it differs by item.
    pub fn explain(policy: &str) -> Option<String> {
        let all = Self::all_in(policy);
        let strictest = all.first()?.meaning();
        Some(if all.len() > 1 {
            format!("The policy differs by item; for the strictest: {strictest}")
        } else {
            strictest.to_string()
        })
    }

    pub fn meaning(self) -> &'static str {
        match self {
            ReviewPolicy::PolicyOfDenial => "BIS denies licence applications.",
            ReviewPolicy::PresumptionOfDenial => {
                "BIS presumes licence applications will be denied; approval is the exception."
            }
            ReviewPolicy::CaseByCase => "BIS reviews each licence application on its merits.",
            ReviewPolicy::PresumptionOfApproval => {
                "BIS presumes licence applications will be approved."
            }
        }
    }
}

/// The listed side of an alert page: the entry as the alert carried it, with what the stored
/// list adds (addresses, whether it was removed since).
pub struct EntryView {
    pub name: String,
    pub entity_key: String,
    pub version: i64,
    pub matched_name: String,
    pub aliases: Vec<String>,
    pub addresses: Vec<String>,
    pub country_name: String,
    pub license_requirement: String,
    pub license_policy: String,
    pub citation: String,
    pub document_number: String,
    /// The rule on federalregister.gov; none for an entry known only from a list import.
    pub rule_url: Option<String>,
    /// The plain-language reading of the listing, one sentence per item.
    pub meaning: Vec<String>,
    pub removed_at: Option<String>,
    pub alerts_href: String,
}

impl EntryView {
    pub fn new(alert: &Alert, stored: Option<&StoredEntry>) -> EntryView {
        let e = &alert.entry;
        let mut meaning = vec![
            "The party is on the Entity List (15 CFR part 744, Supplement No. 4): exporting, \
             re-exporting or transferring (in-country) to it the items of its licence \
             requirement needs a licence from the Bureau of Industry and Security, and \
             licence exceptions are generally not available."
                .to_string(),
        ];
        if let Some(m) = e.license_policy.as_deref().and_then(ReviewPolicy::explain) {
            meaning.push(m);
        }
        if alert.kind == AlertKind::Cleared {
            meaning.push(
                "This alert is a notice that the listing ended: the entry was removed from \
                 the list, so the restriction no longer applies through it."
                    .to_string(),
            );
        }
        EntryView {
            name: e.name.clone(),
            entity_key: e.entity_key.as_str().to_string(),
            version: e.version,
            matched_name: e.matched_name.clone(),
            aliases: e.aliases.clone(),
            addresses: stored
                .map(|s| s.entry.addresses.clone())
                .unwrap_or_default(),
            country_name: e.country_name.clone(),
            license_requirement: e.license_requirement.clone().unwrap_or_default(),
            license_policy: e.license_policy.clone().unwrap_or_default(),
            citation: e.federal_register_citation.clone().unwrap_or_default(),
            document_number: e.document_number.clone(),
            rule_url: (e.html_url.as_deref().is_some_and(|u| !u.trim().is_empty())
                || !e.document_number.trim().is_empty())
            .then(|| e.rule_url()),
            meaning,
            removed_at: stored
                .and_then(|s| s.removed_at)
                .map(|t| t.format("%Y-%m-%d").to_string()),
            alerts_href: queue_href(&[("entity_key", e.entity_key.as_str())]),
        }
    }
}

/// Why an affiliate alert was raised: the share held by listed parties and the chains of
/// holdings.
pub struct AffiliateView {
    pub share: String,
    pub threshold: String,
    pub paths: Vec<String>,
}

impl AffiliateView {
    pub fn new(alert: &Alert) -> Option<AffiliateView> {
        let d = alert.affiliate.as_ref()?;
        Some(AffiliateView {
            share: format!("{:.1}", d.aggregate_share_percent),
            threshold: format!("{:.0}", d.threshold_percent),
            paths: d
                .paths
                .iter()
                .map(|p| {
                    p.hops
                        .iter()
                        .map(|h| match h.share_percent {
                            Some(s) => format!("{} ({s:.1} %)", h.name),
                            None => h.name.clone(),
                        })
                        .collect::<Vec<_>>()
                        .join(" → ")
                })
                .collect(),
        })
    }
}

pub struct HistoryRow {
    pub version: i64,
    pub action: String,
    pub document_number: String,
    pub document_url: Option<String>,
    pub matched_by: String,
    pub changed_at: String,
    /// The version this alert is about.
    pub current: bool,
}

impl HistoryRow {
    pub fn new(r: &EntryChangeRecord, alerted_version: i64) -> HistoryRow {
        let document = r.document_number.clone().unwrap_or_default();
        HistoryRow {
            version: r.version,
            action: r.action.clone(),
            document_url: document_url(&document),
            document_number: document,
            matched_by: identity_text(&r.action, &r.matched_by),
            changed_at: day_and_time(&r.changed_at),
            current: r.version == alerted_version,
        }
    }
}

/// How a change found the stored entry it changed, in words (the history records the
/// identity resolution's spelling).
fn identity_text(action: &str, matched_by: &str) -> String {
    match (action, matched_by) {
        ("added", "unmatched") => "new to the list".to_string(),
        (_, "unmatched") => "matched no stored entry".to_string(),
        (_, "key") => "by its key".to_string(),
        (_, "name_in_country") => "by name, same country".to_string(),
        (_, "name_across_countries") => "by name, another country".to_string(),
        (_, other) => other.to_string(),
    }
}

pub struct ReviewRow {
    pub at: String,
    pub decision: &'static str,
    pub reviewer: String,
    pub reason: String,
}

impl From<&AlertReview> for ReviewRow {
    fn from(r: &AlertReview) -> Self {
        ReviewRow {
            at: day_and_time(&r.reviewed_at),
            decision: r.decision.as_str(),
            reviewer: r.reviewer.clone(),
            reason: r.reason.clone(),
        }
    }
}

pub struct DeliveryRow {
    pub sink: String,
    pub state: String,
    pub at: String,
}

/// One button of the review form.
pub struct DecisionChoice {
    pub value: &'static str,
    pub label: &'static str,
}

pub fn decision_choices() -> Vec<DecisionChoice> {
    ReviewDecision::ALL
        .into_iter()
        .map(|d| DecisionChoice {
            value: d.as_str(),
            label: match d {
                ReviewDecision::Confirm => "Confirm: the supplier is the listed party",
                ReviewDecision::Dismiss => "Dismiss: not the listed party",
                ReviewDecision::Escalate => "Escalate: needs someone who can decide",
            },
        })
        .collect()
}

#[derive(Template)]
#[template(path = "alert.html")]
pub struct AlertPage {
    pub chrome: Chrome,
    pub alert_id: String,
    pub action: String,
    pub status: &'static str,
    pub kind: &'static str,
    pub raised_at: String,
    pub score: String,
    pub explanation: String,
    pub changes: Vec<String>,
    pub supplier: SupplierView,
    pub entry: EntryView,
    pub affiliate: Option<AffiliateView>,
    pub history: Vec<HistoryRow>,
    pub reviews: Vec<ReviewRow>,
    pub deliveries: Vec<DeliveryRow>,
    /// The review form, when this session may review and the alert can be reviewed.
    pub decisions: Vec<DecisionChoice>,
    /// Why there is no review form, when there is none.
    pub no_review: Option<String>,
}

#[derive(Template)]
#[template(path = "supplier.html")]
pub struct SupplierPage {
    pub chrome: Chrome,
    pub supplier: SupplierView,
    pub rows: Vec<AlertRow>,
    pub open: usize,
}

#[derive(Template)]
#[template(path = "not_found.html")]
pub struct NotFoundPage {
    pub chrome: Chrome,
    pub what: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_encode_their_parts() {
        assert_eq!(supplier_href("S 1/2?x#y"), "/suppliers/S%201%2F2%3Fx%23y");
        assert_eq!(alert_href("ab-12"), "/alerts/ab-12");
        assert_eq!(
            queue_href(&[
                ("status", "open"),
                ("supplier_id", ""),
                ("document", "2019-22210")
            ]),
            "/alerts?status=open&document=2019-22210"
        );
        assert_eq!(queue_href(&[("status", "")]), "/alerts");
        assert_eq!(
            queue_href(&[("entity_key", "CN/a&b=c")]),
            "/alerts?entity_key=CN%2Fa%26b%3Dc"
        );
    }

    #[test]
    fn documents_link_to_their_source() {
        assert_eq!(
            document_url("2019-22210").as_deref(),
            Some("https://www.federalregister.gov/d/2019-22210")
        );
        assert!(document_url("ecfr-2024-05-01")
            .unwrap()
            .starts_with("https://www.ecfr.gov/"));
        assert_eq!(document_url("csl-0123456789ab"), None);
        assert_eq!(document_url(""), None);
        assert_eq!(
            document_url("x/../y").as_deref(),
            Some("https://www.federalregister.gov/d/x%2F..%2Fy")
        );
    }

    #[test]
    fn review_policies_are_read_strictest_first() {
        use ReviewPolicy::*;
        assert_eq!(
            ReviewPolicy::all_in("Presumption of denial."),
            [PresumptionOfDenial]
        );
        assert_eq!(ReviewPolicy::all_in("Policy of denial. "), [PolicyOfDenial]);
        assert_eq!(
            ReviewPolicy::all_in(
                "Case-by-case review for ECCNs 1A004; presumption of denial for all other items"
            ),
            [PresumptionOfDenial, CaseByCase]
        );
        assert_eq!(
            ReviewPolicy::explain("Presumption of denial.").as_deref(),
            Some("BIS presumes licence applications will be denied; approval is the exception.")
        );
        assert!(ReviewPolicy::explain(
            "Case-by-case review for 1A004; presumption of denial for all other items"
        )
        .unwrap()
        .starts_with("The policy differs by item; for the strictest: BIS presumes"));
        assert_eq!(ReviewPolicy::explain("See §744.4(d) of this part."), None);
    }

    #[test]
    fn the_heading_says_what_the_queue_shows() {
        let filter = QueueFilter {
            status: Some(AlertStatus::Open),
            document: "2019-22210".into(),
            ..QueueFilter::default()
        };
        assert_eq!(
            QueuePage::heading_for(&filter),
            "Open alerts from document 2019-22210"
        );
        assert_eq!(
            filter.href(2),
            "/alerts?status=open&document=2019-22210&page=2"
        );
        assert_eq!(filter.href(1), "/alerts?status=open&document=2019-22210");
        assert_eq!(
            QueuePage::heading_for(&QueueFilter::default()),
            "All alerts"
        );
    }
}
