//! Slack digests: what one document, list sync or supplier import raised, as one message.
//!
//! Slack incoming webhooks take about one message per second, so a rule or an initial
//! screening that raises hundreds of alerts would flood the channel and run into 429s. When a
//! batch raises more than `--slack-digest-over N` alerts for a Slack sink, the sink gets one
//! [`Digest`] instead: the counts by kind, the top N by score and a link to the console's queue
//! filtered to them. The alert topic and the signed webhook still get every alert.
//!
//! This module only describes a digest (which batch, which alerts it carries, what it shows);
//! it does no I/O and never decides whether a digest is sent — the worker's delivery ledger
//! does, and records which alerts a digest carried so none of them is also sent on its own.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{Alert, AlertKind};

/// Where a batch of alerts came from: the unit a digest summarises.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum DigestSource {
    /// A Federal Register rule or a list sync (`ecfr-…`, `csl-…`): its change events'
    /// document number.
    Document(String),
    /// One `suppliers import` run.
    SupplierImport(String),
    /// One batch of supplier upserts from the suppliers topic.
    SupplierBatch(String),
    /// One `rescreen` run.
    Rescreen(String),
}

impl DigestSource {
    /// A rule's or list sync's alerts.
    pub fn document(number: &str) -> Self {
        DigestSource::Document(number.trim().to_string())
    }

    /// A new supplier import run.
    pub fn supplier_import() -> Self {
        DigestSource::SupplierImport(run_id())
    }

    /// A new batch of supplier upserts.
    pub fn supplier_batch() -> Self {
        DigestSource::SupplierBatch(run_id())
    }

    /// A new rescreen run.
    pub fn rescreen() -> Self {
        DigestSource::Rescreen(run_id())
    }

    /// The key the ledger groups held alerts by, e.g. `document/2019-22210`.
    pub fn key(&self) -> String {
        match self {
            DigestSource::Document(n) => format!("document/{n}"),
            DigestSource::SupplierImport(id) => format!("import/{id}"),
            DigestSource::SupplierBatch(id) => format!("suppliers/{id}"),
            DigestSource::Rescreen(id) => format!("rescreen/{id}"),
        }
    }

    /// The source a ledger key names (the inverse of [`DigestSource::key`]).
    pub fn from_key(key: &str) -> Option<Self> {
        let (kind, id) = key.split_once('/')?;
        let id = id.to_string();
        match kind {
            "document" => Some(DigestSource::Document(id)),
            "import" => Some(DigestSource::SupplierImport(id)),
            "suppliers" => Some(DigestSource::SupplierBatch(id)),
            "rescreen" => Some(DigestSource::Rescreen(id)),
            _ => None,
        }
    }

    /// How the message names the batch.
    pub fn describe(&self) -> String {
        match self {
            DigestSource::Document(n) if n.starts_with("ecfr-") => {
                format!("the eCFR list sync {n}")
            }
            DigestSource::Document(n) if n.starts_with("csl-") => {
                format!("the CSL list sync {n}")
            }
            DigestSource::Document(n) => format!("rule {n}"),
            DigestSource::SupplierImport(_) => "a supplier import".to_string(),
            DigestSource::SupplierBatch(_) => "supplier updates".to_string(),
            DigestSource::Rescreen(_) => "a rescreen".to_string(),
        }
    }
}

/// A run id: time-ordered and unique enough that two runs never share a group.
fn run_id() -> String {
    format!(
        "{}-{:08x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
        rand::random::<u32>()
    )
}

/// How many alerts of one kind a digest carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCount {
    pub kind: AlertKind,
    pub count: usize,
}

/// One digest: what a batch raised for one Slack sink. Stored whole as the digest's ledger
/// payload, so a digest resent after a crash is the same message carrying the same alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Digest {
    /// Hex SHA-256 of the sink, the batch and the sorted alert ids.
    pub digest_id: String,
    pub source: DigestSource,
    /// Every alert the digest carries (the ledger marks each delivered with it).
    pub alert_ids: Vec<String>,
    /// By kind, in [`AlertKind`] order; kinds with no alert are left out.
    pub counts: Vec<KindCount>,
    /// The highest-scoring alerts, best first (cleared notices, which have no score, last).
    pub top: Vec<Alert>,
    /// The console's queue filtered to these alerts, when `--console-url` is set.
    pub queue_url: Option<String>,
    /// The rule's page, for a rule's digest.
    pub rule_url: Option<String>,
    /// The rule's citation as its entries give it (e.g. `84 FR 54002, 10/9/19.`).
    pub citation: Option<String>,
}

/// What the message says to do when no console is configured.
pub const CLI_LISTING: &str = "entitywatch alerts list --status open";

impl Digest {
    /// The digest of `alerts` (one batch's, for `sink`) showing the `top` best by score, with a
    /// link into the console at `console` when it is set.
    pub fn new(
        sink: &str,
        source: DigestSource,
        alerts: &[Alert],
        top: usize,
        console: Option<&url::Url>,
    ) -> Digest {
        let mut ids: Vec<String> = alerts.iter().map(|a| a.alert_id.clone()).collect();
        ids.sort();
        ids.dedup();
        let counts = [
            AlertKind::Listed,
            AlertKind::Revised,
            AlertKind::Affiliate,
            AlertKind::Cleared,
        ]
        .into_iter()
        .map(|kind| KindCount {
            kind,
            count: alerts.iter().filter(|a| a.kind == kind).count(),
        })
        .filter(|c| c.count > 0)
        .collect();
        let mut ranked: Vec<&Alert> = alerts.iter().collect();
        // A cleared notice is not a match: its score of 0 must not compete with matches.
        ranked.sort_by(|a, b| {
            (a.kind == AlertKind::Cleared)
                .cmp(&(b.kind == AlertKind::Cleared))
                .then(b.score.total_cmp(&a.score))
                .then(a.supplier.id.cmp(&b.supplier.id))
        });
        let first = alerts.first();
        let (rule_url, citation) = match &source {
            DigestSource::Document(n) if !n.starts_with("ecfr-") && !n.starts_with("csl-") => (
                first.map(|a| a.entry.rule_url()),
                first.and_then(|a| a.entry.federal_register_citation.clone()),
            ),
            _ => (None, None),
        };
        Digest {
            digest_id: digest_id(sink, &source, &ids),
            queue_url: console.map(|c| queue_url(c, &source, alerts)),
            source,
            alert_ids: ids,
            counts,
            top: ranked.into_iter().take(top).cloned().collect(),
            rule_url,
            citation,
        }
    }

    pub fn total(&self) -> usize {
        self.alert_ids.len()
    }

    /// `28 listed, 2 revised`.
    pub fn counts_line(&self) -> String {
        self.counts
            .iter()
            .map(|c| format!("{} {}", c.count, c.kind))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The id of the digest of `ids` (sorted) from `source` for `sink`: the same batch decided
/// again gives the same digest, a different set of alerts a different one.
pub fn digest_id(sink: &str, source: &DigestSource, ids: &[String]) -> String {
    let mut h = Sha256::new();
    h.update(b"digest\0");
    h.update(sink.as_bytes());
    h.update([0u8]);
    h.update(source.key().as_bytes());
    for id in ids {
        h.update([0u8]);
        h.update(id.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The console's queue of open alerts narrowed to the batch: by document for a rule or list
/// sync, and by supplier or entry when all the alerts share one. The parameter names are the
/// console's (`status`, `supplier_id`, `entity_key`, `document`).
pub fn queue_url(console: &url::Url, source: &DigestSource, alerts: &[Alert]) -> String {
    let mut url = console.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().push("alerts");
    }
    {
        let mut q = url.query_pairs_mut();
        q.clear();
        q.append_pair("status", "open");
        if let DigestSource::Document(n) = source {
            q.append_pair("document", n);
        }
        let one = |field: fn(&Alert) -> &str| {
            let first = field(alerts.first()?);
            alerts.iter().all(|a| field(a) == first).then_some(first)
        };
        if let Some(s) = one(|a| a.supplier.id.as_str()) {
            q.append_pair("supplier_id", s);
        }
        if let Some(e) = one(|a| a.entry.entity_key.as_str()) {
            q.append_pair("entity_key", e);
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::tests::sample_alert;

    fn alerts(n: usize) -> Vec<Alert> {
        (0..n)
            .map(|i| {
                let mut a = sample_alert(if i % 5 == 4 {
                    AlertKind::Revised
                } else {
                    AlertKind::Listed
                });
                a.supplier.id = format!("S-{i:03}");
                a.score = 0.80 + (i as f64) / 1000.0;
                a.alert_id = format!("{i:064x}");
                a
            })
            .collect()
    }

    #[test]
    fn counts_top_and_id() {
        let all = alerts(30);
        let d = Digest::new("slack", DigestSource::document("2019-22210"), &all, 5, None);
        assert_eq!(d.total(), 30);
        assert_eq!(d.counts_line(), "24 listed, 6 revised");
        let top: Vec<&str> = d.top.iter().map(|a| a.supplier.id.as_str()).collect();
        assert_eq!(top, ["S-029", "S-028", "S-027", "S-026", "S-025"]);
        assert_eq!(
            d.rule_url.as_deref(),
            Some("https://www.federalregister.gov/d/2019-22210")
        );
        // Order of the alerts does not change the digest; another set does.
        let mut reversed = all.clone();
        reversed.reverse();
        let again = Digest::new(
            "slack",
            DigestSource::document("2019-22210"),
            &reversed,
            5,
            None,
        );
        assert_eq!(again.digest_id, d.digest_id);
        let fewer = Digest::new(
            "slack",
            DigestSource::document("2019-22210"),
            &all[1..],
            5,
            None,
        );
        assert_ne!(fewer.digest_id, d.digest_id);
        let other_sink = Digest::new(
            "slack:b",
            DigestSource::document("2019-22210"),
            &all,
            5,
            None,
        );
        assert_ne!(other_sink.digest_id, d.digest_id);
    }

    #[test]
    fn the_queue_link_uses_the_console_parameters() {
        let console = url::Url::parse("https://console.example/ew/").unwrap();
        let all = alerts(7);
        let link = queue_url(&console, &DigestSource::document("2019-22210"), &all);
        // Every alert is on the same entry, so the link narrows to it too.
        assert_eq!(
            link,
            "https://console.example/ew/alerts?status=open&document=2019-22210&entity_key=CN%2Fhangzhou-hikvision-digital-technology-co-ltd"
        );
        let import = queue_url(
            &url::Url::parse("http://localhost:8080").unwrap(),
            &DigestSource::SupplierImport("x".into()),
            &all[..1],
        );
        assert!(
            import.starts_with("http://localhost:8080/alerts?status=open&supplier_id=S-000&"),
            "{import}"
        );
    }

    #[test]
    fn cleared_notices_rank_after_matches() {
        let mut all = alerts(6);
        all[0].kind = AlertKind::Cleared;
        all[0].score = 0.0;
        all[1].kind = AlertKind::Cleared;
        let d = Digest::new("slack", DigestSource::rescreen(), &all, 6, None);
        assert_eq!(d.top.last().unwrap().kind, AlertKind::Cleared);
        assert_eq!(d.top[d.top.len() - 2].kind, AlertKind::Cleared);
        assert!(d.rule_url.is_none());
    }

    #[test]
    fn keys_round_trip() {
        for s in [
            DigestSource::document("2019-22210"),
            DigestSource::document("ecfr-2026-11-30"),
            DigestSource::supplier_import(),
            DigestSource::supplier_batch(),
            DigestSource::rescreen(),
        ] {
            assert_eq!(DigestSource::from_key(&s.key()), Some(s));
        }
        assert_eq!(DigestSource::from_key("nope"), None);
    }
}
