//! Alerts as analysts see them: every alert the alert topic took (the one sink that gets them
//! all), its state from the latest review, the reviews themselves, and the audit trail of
//! every screening decision and review in time order.
//!
//! The ledger row of the alert topic is the alert's record (its payload is the whole alert as
//! sent); reviews are an append-only table beside it. Nothing here sends or re-screens: a
//! dismissal also records the (supplier, entry) pair as dismissed, which screening reads.

use std::collections::{HashMap, HashSet};

use chrono::{SecondsFormat, Utc};
use futures::{Stream, StreamExt, TryStreamExt};
use sqlx::Row;

use super::{Store, StoreError};
use crate::alerts::ALERT_TOPIC_SINK;
use crate::domain::{AlertStatus, ReviewDecision};

/// One alert as stored: the alert topic's ledger row.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlert {
    pub alert_id: String,
    pub supplier_id: String,
    pub entity_key: String,
    pub entry_version: i64,
    /// `listed`, `revised` or `cleared`.
    pub kind: String,
    /// The alert's JSON as the sinks got it.
    pub payload: String,
    pub raised_at: String,
    pub status: AlertStatus,
}

/// One review of an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertReview {
    pub alert_id: String,
    pub reviewed_at: String,
    pub supplier_id: String,
    pub entity_key: String,
    pub entry_version: i64,
    pub decision: ReviewDecision,
    pub reason: String,
    pub reviewer: String,
}

/// Which alerts to list; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct AlertQuery {
    pub status: Option<AlertStatus>,
    pub supplier_id: Option<String>,
    pub entity_key: Option<String>,
    /// RFC 3339; alerts raised at or after it.
    pub since: Option<String>,
    pub limit: Option<usize>,
}

/// One line of the audit trail.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditRecord {
    pub at: String,
    /// `decision` (a screening decision) or `review` (an analyst's).
    pub record: &'static str,
    pub supplier_id: String,
    pub entity_key: String,
    pub entry_version: i64,
    /// The decision (`match`, `near_miss`, `dismissed`) or review (`confirm`, ...).
    pub outcome: String,
    /// The match score (decisions).
    pub score: Option<f64>,
    /// Which words matched (decisions) or the reviewer's reason (reviews).
    pub why: String,
    /// The rule or list sync the decision was made for (decisions).
    pub document_number: Option<String>,
    /// The matcher version and supplier record the decision was made on (decisions).
    pub basis: Option<String>,
    /// Who reviewed (reviews).
    pub reviewer: Option<String>,
    /// The alert reviewed (reviews).
    pub alert_id: Option<String>,
}

impl AuditRecord {
    /// The header of the audit trail's CSV form (`audit export --format csv`, the console's
    /// download): one column per field, in this order.
    pub const CSV_HEADER: [&'static str; 12] = [
        "at",
        "record",
        "supplier_id",
        "entity_key",
        "entry_version",
        "outcome",
        "score",
        "why",
        "document_number",
        "basis",
        "reviewer",
        "alert_id",
    ];

    /// This record as a CSV row under [`AuditRecord::CSV_HEADER`]. Text that came from
    /// suppliers' files, rules or reviewers could start a spreadsheet formula, so it is
    /// neutralised as `suppliers export` does.
    pub fn csv_row(&self) -> [String; 12] {
        let cell = |s: &str| crate::suppliers::neutralise_formula(s).into_owned();
        [
            self.at.clone(),
            self.record.to_string(),
            cell(&self.supplier_id),
            cell(&self.entity_key),
            self.entry_version.to_string(),
            self.outcome.clone(),
            self.score.map(|s| format!("{s:.4}")).unwrap_or_default(),
            cell(&self.why),
            cell(self.document_number.as_deref().unwrap_or("")),
            cell(self.basis.as_deref().unwrap_or("")),
            cell(self.reviewer.as_deref().unwrap_or("")),
            self.alert_id.clone().unwrap_or_default(),
        ]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("no alert with id {0:?}")]
    UnknownAlert(String),
    #[error("alert {0} is a cleared notice (its entry was removed): there is nothing to review")]
    NotReviewable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Now, as reviews record it: microseconds, so that two reviews of one alert differ and text
/// order is time order.
fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

const SELECT_ALERTS: &str = "SELECT alert_id, supplier_id, entity_key, entry_version, kind, \
     payload, delivered_at FROM alert_deliveries WHERE sink = $1 AND state = 'delivered'";

impl Store {
    /// The alerts `query` asks for, newest first.
    pub async fn alerts(&self, query: &AlertQuery) -> Result<Vec<StoredAlert>, StoreError> {
        let mut sql = SELECT_ALERTS.to_string();
        let mut binds: Vec<String> = vec![ALERT_TOPIC_SINK.to_string()];
        for (column, value, op) in [
            ("supplier_id", &query.supplier_id, "="),
            ("entity_key", &query.entity_key, "="),
            ("delivered_at", &query.since, ">="),
        ] {
            if let Some(v) = value {
                binds.push(v.clone());
                sql.push_str(&format!(" AND {column} {op} ${}", binds.len()));
            }
        }
        sql.push_str(" ORDER BY delivered_at DESC, alert_id");
        let mut q = sqlx::query(&sql);
        for b in &binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(self.pool()).await?;
        let latest = self.latest_reviews().await?;
        let cleared = self.cleared_pairs().await?;
        let mut out = Vec::new();
        for r in rows {
            let mut alert = StoredAlert {
                alert_id: r.try_get("alert_id")?,
                supplier_id: r.try_get("supplier_id")?,
                entity_key: r.try_get("entity_key")?,
                entry_version: r.try_get("entry_version")?,
                kind: r.try_get("kind")?,
                payload: r.try_get("payload")?,
                raised_at: r.try_get("delivered_at")?,
                status: AlertStatus::Open,
            };
            let removed = alert.kind == "cleared"
                || cleared
                    .get(&(alert.supplier_id.clone(), alert.entity_key.clone()))
                    .is_some_and(|v| *v >= alert.entry_version);
            alert.status = AlertStatus::of(latest.get(&alert.alert_id).copied(), removed);
            if query.status.is_none_or(|s| s == alert.status) {
                out.push(alert);
            }
            if query.limit.is_some_and(|l| out.len() >= l) {
                break;
            }
        }
        Ok(out)
    }

    /// One alert by its id (the full id, or a unique prefix of at least 8 characters, as
    /// the short ids in logs and Slack messages show them).
    pub async fn alert(&self, id: &str) -> Result<Option<StoredAlert>, StoreError> {
        let id = id.trim();
        let found: Vec<StoredAlert> = self
            .alerts(&AlertQuery::default())
            .await?
            .into_iter()
            .filter(|a| a.alert_id == id || (id.len() >= 8 && a.alert_id.starts_with(id)))
            .collect();
        Ok(match found.len() {
            1 => found.into_iter().next(),
            _ => found.into_iter().find(|a| a.alert_id == id),
        })
    }

    /// Every review of `alert_id`, oldest first.
    pub async fn alert_reviews(&self, alert_id: &str) -> Result<Vec<AlertReview>, StoreError> {
        let rows = sqlx::query(
            "SELECT alert_id, reviewed_at, supplier_id, entity_key, entry_version, decision, \
             reason, reviewer FROM alert_reviews WHERE alert_id = $1 ORDER BY reviewed_at",
        )
        .bind(alert_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(review_of).collect()
    }

    /// The (sink, state, when) of each delivery of `alert_id`.
    pub async fn alert_deliveries(
        &self,
        alert_id: &str,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT sink, state, delivered_at FROM alert_deliveries WHERE alert_id = $1 \
             ORDER BY sink",
        )
        .bind(alert_id)
        .fetch_all(self.pool())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok((
                    r.try_get("sink")?,
                    r.try_get("state")?,
                    r.try_get("delivered_at")?,
                ))
            })
            .collect()
    }

    /// Records a review of an alert. A dismissal also dismisses the (supplier, entry) pair at
    /// the alert's entry version, so screening stays quiet until the entry is revised; a
    /// confirmation or escalation lifts an earlier dismissal of the pair.
    pub async fn review_alert(
        &self,
        alert_id: &str,
        decision: ReviewDecision,
        reason: &str,
        reviewer: &str,
    ) -> Result<AlertReview, ReviewError> {
        let alert = self
            .alert(alert_id)
            .await?
            .ok_or_else(|| ReviewError::UnknownAlert(alert_id.to_string()))?;
        if alert.kind == "cleared" {
            return Err(ReviewError::NotReviewable(alert.alert_id));
        }
        let review = AlertReview {
            alert_id: alert.alert_id.clone(),
            reviewed_at: now_text(),
            supplier_id: alert.supplier_id.clone(),
            entity_key: alert.entity_key.clone(),
            entry_version: alert.entry_version,
            decision,
            reason: reason.to_string(),
            reviewer: reviewer.to_string(),
        };
        sqlx::query(
            "INSERT INTO alert_reviews (alert_id, reviewed_at, supplier_id, entity_key, \
             entry_version, decision, reason, reviewer) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&review.alert_id)
        .bind(&review.reviewed_at)
        .bind(&review.supplier_id)
        .bind(&review.entity_key)
        .bind(review.entry_version)
        .bind(decision.as_str())
        .bind(reason)
        .bind(reviewer)
        .execute(self.pool())
        .await
        .map_err(StoreError::from)?;
        match decision {
            ReviewDecision::Dismiss => {
                self.dismiss(
                    &alert.supplier_id,
                    &alert.entity_key,
                    alert.entry_version,
                    reason,
                )
                .await?
            }
            ReviewDecision::Confirm | ReviewDecision::Escalate => {
                sqlx::query("DELETE FROM reviews WHERE supplier_id = $1 AND entity_key = $2")
                    .bind(&alert.supplier_id)
                    .bind(&alert.entity_key)
                    .execute(self.pool())
                    .await
                    .map_err(StoreError::from)?;
            }
        }
        Ok(review)
    }

    /// Every screening decision and every review at or after `since` (RFC 3339; all when
    /// `None`), in time order. Decisions are read as a stream, so an export of millions holds
    /// one page in memory at a time; reviews, made by people and so far fewer, are read first
    /// and merged in (one connection at a time: the embedded store may have only one).
    pub async fn audit_trail<'a>(
        &'a self,
        since: Option<&'a str>,
    ) -> Result<impl Stream<Item = Result<AuditRecord, StoreError>> + 'a, StoreError> {
        let since = since.unwrap_or("").to_string();
        let reviews: Vec<AuditRecord> = sqlx::query(
            "SELECT alert_id, reviewed_at, supplier_id, entity_key, entry_version, decision, \
             reason, reviewer FROM alert_reviews WHERE reviewed_at >= $1 ORDER BY reviewed_at",
        )
        .bind(since.clone())
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| review_of(r).map(review_record))
        .collect::<Result<_, _>>()?;
        let decisions = sqlx::query(
            "SELECT supplier_id, entity_key, entry_version, basis, score, decision, explanation, \
             document_number, decided_at FROM decisions WHERE decided_at >= $1 \
             ORDER BY decided_at, supplier_id, entity_key",
        )
        .bind(since)
        .fetch(self.pool())
        .map_err(StoreError::from)
        .and_then(|r| async move { decision_record(&r) });
        Ok(merge_by_time(
            decisions.boxed(),
            futures::stream::iter(reviews.into_iter().map(Ok)).boxed(),
        ))
    }

    /// The latest review decision of every reviewed alert.
    async fn latest_reviews(&self) -> Result<HashMap<String, ReviewDecision>, StoreError> {
        let rows = sqlx::query(
            "SELECT alert_id, decision FROM alert_reviews ORDER BY alert_id, reviewed_at",
        )
        .fetch_all(self.pool())
        .await?;
        let mut latest = HashMap::new();
        for r in rows {
            let decision: String = r.try_get("decision")?;
            if let Ok(d) = decision.parse() {
                latest.insert(r.try_get("alert_id")?, d);
            }
        }
        Ok(latest)
    }

    /// (supplier, entry) pairs a `cleared` notice went out for, with the highest version.
    async fn cleared_pairs(&self) -> Result<HashMap<(String, String), i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT supplier_id, entity_key, MAX(entry_version) AS v FROM alert_deliveries \
             WHERE sink = $1 AND state = 'delivered' AND kind = 'cleared' \
             GROUP BY supplier_id, entity_key",
        )
        .bind(ALERT_TOPIC_SINK)
        .fetch_all(self.pool())
        .await?;
        let mut seen = HashSet::new();
        let mut out = HashMap::new();
        for r in rows {
            let key = (r.try_get("supplier_id")?, r.try_get("entity_key")?);
            if seen.insert(key.clone()) {
                out.insert(key, r.try_get("v")?);
            }
        }
        Ok(out)
    }
}

fn review_of(r: &sqlx::any::AnyRow) -> Result<AlertReview, StoreError> {
    let decision: String = r.try_get("decision")?;
    Ok(AlertReview {
        alert_id: r.try_get("alert_id")?,
        reviewed_at: r.try_get("reviewed_at")?,
        supplier_id: r.try_get("supplier_id")?,
        entity_key: r.try_get("entity_key")?,
        entry_version: r.try_get("entry_version")?,
        decision: decision.parse().map_err(|_| StoreError::Corrupt {
            name: "alert_reviews.decision".to_string(),
            value: decision.clone(),
        })?,
        reason: r.try_get("reason")?,
        reviewer: r.try_get("reviewer")?,
    })
}

fn decision_record(r: &sqlx::any::AnyRow) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        at: r.try_get("decided_at")?,
        record: "decision",
        supplier_id: r.try_get("supplier_id")?,
        entity_key: r.try_get("entity_key")?,
        entry_version: r.try_get("entry_version")?,
        outcome: r.try_get("decision")?,
        score: Some(r.try_get("score")?),
        why: r.try_get("explanation")?,
        document_number: r.try_get("document_number")?,
        basis: Some(r.try_get("basis")?),
        reviewer: None,
        alert_id: None,
    })
}

fn review_record(r: AlertReview) -> AuditRecord {
    AuditRecord {
        at: r.reviewed_at,
        record: "review",
        supplier_id: r.supplier_id,
        entity_key: r.entity_key,
        entry_version: r.entry_version,
        outcome: r.decision.as_str().to_string(),
        score: None,
        why: r.reason,
        document_number: None,
        basis: None,
        reviewer: Some(r.reviewer),
        alert_id: Some(r.alert_id),
    }
}

type RecordStream<'a> = futures::stream::BoxStream<'a, Result<AuditRecord, StoreError>>;

/// Merges two time-ordered streams into one, oldest first. The timestamps compare as
/// instants, not text: decisions and reviews may be written with different precision.
fn merge_by_time<'a>(
    a: RecordStream<'a>,
    b: RecordStream<'a>,
) -> impl Stream<Item = Result<AuditRecord, StoreError>> + 'a {
    futures::stream::unfold((a.peekable(), b.peekable()), |(mut a, mut b)| async move {
        let take_a = {
            let (pa, pb) = (
                std::pin::Pin::new(&mut a).peek().await,
                std::pin::Pin::new(&mut b).peek().await,
            );
            match (pa, pb) {
                (None, None) => return None,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(Err(_)), _) => true,
                (_, Some(Err(_))) => false,
                (Some(Ok(x)), Some(Ok(y))) => instant(&x.at) <= instant(&y.at),
            }
        };
        let next = if take_a {
            a.next().await
        } else {
            b.next().await
        };
        next.map(|n| (n, (a, b)))
    })
}

fn instant(at: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(at).ok()
}
