//! One sync: fetch the codified list, compare it with the snapshot, publish every change in one
//! `publish` call, reconcile, set the gauges. A failure anywhere before the publish returns an
//! error having published nothing; the snapshot is only ever changed by the workers applying
//! what was published.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::ecfr::{latest_supplement_version, parse_supplement};
use super::plan::{plan_sync, reconcile, ReconcileReport};
use super::{
    CodifiedEntry, CodifiedList, ListSourceError, ListSourceKind, ListSourcesClient, SUPPLEMENT,
};
use crate::bus::{PublishError, Publisher};
use crate::csl::{read_csl, snapshot, CslLimits, SourceFilter};
use crate::events::{ChangeAction, ChangeEvent, SourceDocument};
use crate::metrics::metrics;
use crate::outcome::SyncOutcome;
use crate::store::{Store, StoreError};
use crate::telemetry::{InternalEvent, ListReconciled, ListSynced};

/// The `watch_state` row holding the CSL file's last ETag.
const CSL_ETAG_STATE: &str = "csl_etag";

#[derive(Debug, thiserror::Error)]
pub enum ListSyncError {
    #[error(transparent)]
    Source(#[from] ListSourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("publishing the list's changes: {0}")]
    Publish(#[from] PublishError),
}

/// What one sync did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub source: ListSourceKind,
    /// The source document of its changes; `None` when the CSL answered 304.
    pub document_number: Option<String>,
    #[serde(serialize_with = "as_spelling")]
    pub outcome: SyncOutcome,
    pub added: usize,
    pub revised: usize,
    pub removed: usize,
    /// Entries a rule made after the list's date, left as the rule made them.
    pub not_yet_codified: usize,
    pub warnings: Vec<String>,
    /// The comparison with the rules (eCFR syncs).
    pub reconcile: Option<ReconcileReport>,
}

/// Syncs the snapshot from a list source through a change publisher.
#[derive(Clone)]
pub struct ListSync {
    client: ListSourcesClient,
    store: Store,
    publisher: Arc<dyn Publisher>,
    max_bytes: usize,
}

impl ListSync {
    pub fn new(
        client: ListSourcesClient,
        store: Store,
        publisher: Arc<dyn Publisher>,
        max_bytes: usize,
    ) -> ListSync {
        ListSync {
            client,
            store,
            publisher,
            max_bytes,
        }
    }

    /// One sync from `kind`, logged and counted whatever its outcome.
    pub async fn sync(&self, kind: ListSourceKind) -> Result<SyncReport, ListSyncError> {
        self.sync_unless_stopped(kind, std::future::pending())
            .await
            .expect("a pending stop never fires")
    }

    /// As [`ListSync::sync`], given up (`None`) if `stop` fires while the list is being
    /// fetched: a shutdown need not wait out a source's retries. Once the list is in hand the
    /// sync runs to its end, so its one publish is never cut short.
    pub async fn sync_unless_stopped(
        &self,
        kind: ListSourceKind,
        stop: impl std::future::Future<Output = ()>,
    ) -> Option<Result<SyncReport, ListSyncError>> {
        let result = self.sync_inner(kind, stop).await?;
        match &result {
            Ok(report) => ListSynced {
                source: kind.as_str(),
                outcome: report.outcome,
                published: report.added + report.revised + report.removed,
                error: None,
            }
            .emit(),
            Err(e) => ListSynced {
                source: kind.as_str(),
                outcome: SyncOutcome::Failed,
                published: 0,
                error: Some(e),
            }
            .emit(),
        }
        Some(result)
    }

    async fn sync_inner(
        &self,
        kind: ListSourceKind,
        stop: impl std::future::Future<Output = ()>,
    ) -> Option<Result<SyncReport, ListSyncError>> {
        let fetched = tokio::select! {
            fetched = self.etag_and_fetch(kind) => fetched,
            () = stop => return None,
        };
        Some(self.apply(kind, fetched).await)
    }

    async fn etag_and_fetch(
        &self,
        kind: ListSourceKind,
    ) -> Result<Option<(CodifiedList, Option<String>)>, ListSyncError> {
        let etag = match kind {
            ListSourceKind::Csl => self.store.state(CSL_ETAG_STATE).await?,
            ListSourceKind::Ecfr => None,
        };
        self.fetch(kind, etag.as_deref()).await
    }

    /// Compares, publishes and records the fetched list (`None`: the CSL's 304).
    async fn apply(
        &self,
        kind: ListSourceKind,
        fetched: Result<Option<(CodifiedList, Option<String>)>, ListSyncError>,
    ) -> Result<SyncReport, ListSyncError> {
        let Some((list, new_etag)) = fetched? else {
            return Ok(SyncReport {
                source: kind,
                document_number: None,
                outcome: SyncOutcome::Unchanged,
                added: 0,
                revised: 0,
                removed: 0,
                not_yet_codified: 0,
                warnings: Vec::new(),
                reconcile: None,
            });
        };
        let stored = self.store.all_listed_entries().await?;
        let rule_dates = self.rule_dates().await?;
        // Reconciled before the sync's own changes land: it compares the list with what the
        // rules built, and a sync's changes explain nothing.
        let reconciled = match kind {
            ListSourceKind::Ecfr => {
                let histories = self.store.all_entry_histories().await?;
                let report = reconcile(&list, &stored, &histories, &rule_dates);
                ListReconciled { report: &report }.emit();
                Some(report)
            }
            ListSourceKind::Csl => None,
        };
        let plan = plan_sync(&list, &stored, &rule_dates);
        let count = |a: ChangeAction| plan.changes.iter().filter(|c| c.action == a).count();
        let report = SyncReport {
            source: kind,
            document_number: Some(list.source.document_number.clone()),
            outcome: if plan.changes.is_empty() {
                SyncOutcome::Unchanged
            } else {
                SyncOutcome::Changed
            },
            added: count(ChangeAction::Added),
            revised: count(ChangeAction::Revised),
            removed: count(ChangeAction::Removed),
            not_yet_codified: plan.not_yet_codified.len(),
            warnings: list.warnings.clone(),
            reconcile: reconciled,
        };
        if !plan.changes.is_empty() {
            let events: Vec<ChangeEvent> = plan
                .changes
                .iter()
                .cloned()
                .map(ChangeEvent::Entity)
                .collect();
            // One call: the whole list's changes are durable together or not at all.
            self.publisher.publish(&events).await?;
            for c in &plan.changes {
                metrics()
                    .change_events_published
                    .with_label_values(&[c.action.as_str()])
                    .inc();
            }
        }
        if let Some(tag) = new_etag {
            self.store.set_state(CSL_ETAG_STATE, &tag).await?;
        }
        Ok(report)
    }

    /// The eCFR list compared with the rules, without publishing anything.
    pub async fn reconcile(&self) -> Result<ReconcileReport, ListSyncError> {
        let (list, _) = self
            .fetch(ListSourceKind::Ecfr, None)
            .await?
            .ok_or(ListSourceError::NoVersion)?;
        let stored = self.store.all_listed_entries().await?;
        let histories = self.store.all_entry_histories().await?;
        let report = reconcile(&list, &stored, &histories, &self.rule_dates().await?);
        ListReconciled { report: &report }.emit();
        Ok(report)
    }

    /// The list from `kind`, with the CSL's new ETag; `None` when the CSL is unchanged (304).
    pub async fn fetch(
        &self,
        kind: ListSourceKind,
        etag: Option<&str>,
    ) -> Result<Option<(CodifiedList, Option<String>)>, ListSyncError> {
        let list = match kind {
            ListSourceKind::Ecfr => {
                let versions = self.client.ecfr_versions().await?;
                let (date, amended) = latest_supplement_version(&versions)?;
                let xml = self.client.ecfr_supplement(date).await?;
                let stored = self.store.all_listed_entries().await?;
                let hints: Vec<&str> = stored
                    .iter()
                    .flat_map(|s| {
                        std::iter::once(s.entry.name.as_str())
                            .chain(s.entry.aliases.iter().map(String::as_str))
                    })
                    .collect();
                let (entries, warnings) = parse_supplement(&xml, &hints, self.max_bytes)?;
                (
                    CodifiedList {
                        kind,
                        date,
                        source: ecfr_document(date, amended),
                        entries,
                        warnings,
                    },
                    None,
                )
            }
            ListSourceKind::Csl => {
                let Some((body, new_etag)) = self.client.csl_bulk(etag).await? else {
                    return Ok(None);
                };
                (csl_list(&body, self.max_bytes)?, new_etag)
            }
        };
        if list.0.entries.is_empty() {
            return Err(ListSourceError::Empty(kind.as_str()).into());
        }
        Ok(Some(list))
    }

    async fn rule_dates(&self) -> Result<HashMap<String, NaiveDate>, StoreError> {
        Ok(self
            .store
            .processed_documents()
            .await?
            .into_iter()
            .filter_map(|d| d.publication_date.map(|p| (d.document_number, p)))
            .collect())
    }
}

fn as_spelling<S: serde::Serializer>(o: &SyncOutcome, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(o.as_str())
}

/// The source document of an eCFR version (see the module docs of `list_sources`).
pub fn ecfr_document(date: NaiveDate, amended: NaiveDate) -> SourceDocument {
    SourceDocument {
        document_number: format!("ecfr-{date}"),
        publication_date: Some(date),
        effective_date: Some(amended),
        citation: None,
        title: Some(format!("eCFR: {SUPPLEMENT} (the Entity List) as of {date}")),
        html_url: Some(format!(
            "https://www.ecfr.gov/on/{date}/title-15/part-744/appendix-Supplement%20No.%204%20to%20Part%20744"
        )),
    }
}

/// The Entity List rows of a CSL bulk file as a codified list, dated today.
fn csl_list(body: &[u8], max_bytes: usize) -> Result<CodifiedList, ListSourceError> {
    let import = read_csl(
        body,
        &SourceFilter::entity_list(),
        CslLimits {
            max_bytes: max_bytes as u64,
        },
    )
    .map_err(|e| ListSourceError::Parse {
        source_kind: "csl",
        message: e.to_string(),
    })?;
    let digest = hex::encode(Sha256::digest(body));
    let today = Utc::now().date_naive();
    let entries = snapshot(&import.entries)
        .entries
        .into_iter()
        .map(|entry| CodifiedEntry {
            heading: entry
                .countries
                .first()
                .map(|c| c.as_str().to_string())
                .unwrap_or_default(),
            entry,
        })
        .collect();
    Ok(CodifiedList {
        kind: ListSourceKind::Csl,
        date: today,
        source: SourceDocument {
            document_number: format!("csl-{}", &digest[..12]),
            publication_date: Some(today),
            effective_date: None,
            citation: None,
            title: Some("Consolidated Screening List (trade.gov), Entity List rows".into()),
            html_url: None,
        },
        entries,
        warnings: import.warnings.iter().map(ToString::to_string).collect(),
    })
}
