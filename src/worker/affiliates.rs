//! The worker's side of the BIS Affiliates (50 %) rule: screening owner entities, keeping the
//! ownership graph's evaluation current, and alerting on suppliers that become (or stop being)
//! restricted through ownership.
//!
//! After an entity change, owners are screened against the changed entry (decisions stored as
//! for suppliers, so the same review workflow dismisses an owner match) and only the nodes
//! whose listing changed are re-evaluated ([`Evaluation::reevaluate`], the part of the graph
//! below them). After an ownership change the graph is rebuilt and the part below the changed
//! holding is compared with what was alerted. Each affiliate alert goes out through the same
//! `send_all` as every alert, once per (supplier, set of listed entries, their versions); the
//! state in the store remembers it so a fall below the threshold sends a clearing notice.
//!
//! This file must never decide the rule itself (that is `ownership::graph`) nor deliver on its
//! own (that is `send_all` and the ledger).

use std::collections::{BTreeSet, HashMap};

use tracing::{info, warn};

use super::{alert_supplier, typed_screening_entry, EventOutcome, Worker, WorkerError};
use crate::alerts::{
    AffiliateDetail, AffiliateHop, AffiliateListedEntry, AffiliatePath, Alert, AlertEntry,
    AlertKind,
};
use crate::domain::SupplierRecord;
use crate::events::{ChangeAction, EntityChange, EntityKey};
use crate::ownership::{
    restrictiveness, Evaluation, Graph, GraphBuilder, Listed, NodeId, OwnershipRecord, Share,
};
use crate::screening::{self, Screener, SupplierIndex};
use crate::store::{AffiliateState, Owner, StoredEntry};

/// Most paths an alert lists; the aggregate share is always complete.
const MAX_PATHS: usize = 16;

/// The evaluated graph, kept between events: rebuilt only when the holdings changed,
/// re-evaluated in part when only listings changed.
pub(crate) struct AffiliateCache {
    fingerprint: (i64, Option<String>),
    graph: Graph,
    listed: Listed,
    /// (entity key, version) of each listed-entry index used in `listed`.
    entries: Vec<(String, i64)>,
    entry_index: HashMap<(String, i64), u32>,
    eval: Evaluation,
}

/// What to compare with the stored alerts after an evaluation.
enum Region {
    /// The nodes below these ids (an ownership change at them).
    Below(Vec<String>),
    /// The nodes below those whose listing changed, and every supplier alerted on `key`.
    ListingOf(EntityKey),
}

impl Worker {
    /// The hook after an entity change was applied and its suppliers screened: screens the
    /// owners against the entry, then re-evaluates the part of the graph it can alter.
    pub(crate) async fn affiliates_after_change(
        &self,
        change: &EntityChange,
        outcome: &mut EventOutcome,
    ) -> Result<(), WorkerError> {
        let Some(threshold) = self.affiliates else {
            return Ok(());
        };
        if self.store.ownership_fingerprint().await?.0 == 0 {
            return Ok(());
        }
        if change.action != ChangeAction::Removed {
            self.screen_owners_against(&change.entity_key, outcome)
                .await?;
        }
        self.reevaluate_affiliates(
            threshold,
            Region::ListingOf(change.entity_key.clone()),
            outcome,
        )
        .await
    }

    /// Holdings from `ownership import` or the ownership topic: stored, their owners screened
    /// against the whole list, and the part of the graph below them re-evaluated.
    pub async fn ownership_upserted(
        &self,
        records: &[OwnershipRecord],
    ) -> Result<EventOutcome, WorkerError> {
        self.store.upsert_ownership(records).await?;
        let mut outcome = EventOutcome::default();
        let Some(threshold) = self.affiliates else {
            return Ok(outcome);
        };
        let owners: BTreeSet<&str> = records.iter().map(|r| r.owner_id.as_str()).collect();
        let owners: Vec<String> = owners.into_iter().map(str::to_string).collect();
        self.screen_owners(&owners, &mut outcome).await?;
        let owned: BTreeSet<&str> = records.iter().map(|r| r.owned_id.as_str()).collect();
        let region = Region::Below(owned.into_iter().map(str::to_string).collect());
        self.reevaluate_affiliates(threshold, region, &mut outcome)
            .await?;
        Ok(outcome)
    }

    /// A tombstone on the ownership topic: the holding is deleted and what it held re-evaluated.
    pub async fn ownership_deleted(
        &self,
        owned_id: &str,
        owner_id: &str,
    ) -> Result<EventOutcome, WorkerError> {
        self.store.delete_holding(owned_id, owner_id).await?;
        let mut outcome = EventOutcome::default();
        if let Some(threshold) = self.affiliates {
            let region = Region::Below(vec![owned_id.to_string()]);
            self.reevaluate_affiliates(threshold, region, &mut outcome)
                .await?;
        }
        Ok(outcome)
    }

    /// Owners that are not suppliers (a supplier is screened as one), as screening records.
    async fn owner_records(
        &self,
        only: Option<&[String]>,
    ) -> Result<Vec<SupplierRecord>, WorkerError> {
        let owners: Vec<Owner> = match only {
            Some(ids) => {
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    out.extend(self.store.owner(id).await?);
                }
                out
            }
            None => self.store.owners().await?,
        };
        let mut records = Vec::with_capacity(owners.len());
        for o in owners {
            if self.store.supplier(&o.id).await?.is_some() {
                continue;
            }
            if let Ok(r) = SupplierRecord::new(&o.id, &o.name) {
                records.push(r.with_country(o.country));
            }
        }
        Ok(records)
    }

    /// Screens the owners `ids` against the whole current list and stores the decisions.
    async fn screen_owners(
        &self,
        ids: &[String],
        outcome: &mut EventOutcome,
    ) -> Result<(), WorkerError> {
        let owners = self.owner_records(Some(ids)).await?;
        let listed = self.store.listed_entries().await?;
        if owners.is_empty() || listed.is_empty() {
            return Ok(());
        }
        let (listed, results) = tokio::task::spawn_blocking(move || {
            let screener = Screener::new_typed(listed.iter().map(typed_screening_entry).collect());
            let results: Vec<(SupplierRecord, Vec<screening::Match>)> = owners
                .into_iter()
                .map(|o| {
                    let m = screener.screen_typed(
                        o.name(),
                        o.aliases(),
                        o.country(),
                        o.screening_schema(),
                    );
                    (o, m)
                })
                .collect();
            (listed, results)
        })
        .await
        .map_err(|e| WorkerError::Screening(e.to_string()))?;
        for (owner, matches) in results {
            for matched in matches {
                let entry = &listed[matched.entry];
                self.decide(
                    &owner,
                    entry,
                    entry.version,
                    &matched,
                    entry.last_document.clone(),
                    outcome,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Screens every owner against one (changed) entry, through the candidate index.
    async fn screen_owners_against(
        &self,
        key: &EntityKey,
        outcome: &mut EventOutcome,
    ) -> Result<(), WorkerError> {
        let Some(current) = self.store.listed_entry(key).await? else {
            return Ok(());
        };
        let owners = self.owner_records(None).await?;
        if owners.is_empty() {
            return Ok(());
        }
        let changed = typed_screening_entry(&current);
        let by_id: HashMap<String, SupplierRecord> = owners
            .iter()
            .map(|o| (o.id().to_string(), o.clone()))
            .collect();
        let hits = tokio::task::spawn_blocking(move || {
            let index = SupplierIndex::new_typed(owners.iter().map(|o| {
                (
                    screening::SupplierRecord {
                        id: o.id().to_string(),
                        name: o.name().to_string(),
                        aliases: o.aliases().to_vec(),
                        country: o.country().cloned(),
                    },
                    Some(o.screening_schema()),
                )
            }));
            // As in `handle_change`: the fixed weights make the changed entry's own screener
            // score as the whole list's would.
            let screener = Screener::new_typed(vec![changed.clone()]);
            index
                .rescreen_typed(&screener, std::slice::from_ref(&changed))
                .into_iter()
                .map(|h| (h.supplier.clone(), h.matched))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| WorkerError::Screening(e.to_string()))?;
        for (id, matched) in hits {
            let Some(owner) = by_id.get(&id) else {
                continue;
            };
            self.decide(
                owner,
                &current,
                current.version,
                &matched,
                current.last_document.clone(),
                outcome,
            )
            .await?;
        }
        Ok(())
    }

    /// Brings the evaluation up to date and alerts on the suppliers in `region` whose
    /// affiliate state changed.
    async fn reevaluate_affiliates(
        &self,
        threshold: Share,
        region: Region,
        outcome: &mut EventOutcome,
    ) -> Result<(), WorkerError> {
        let fingerprint = self.store.ownership_fingerprint().await?;
        let matches = self.store.listed_matches().await?;
        let mut cache = self.affiliate_cache.lock().await;
        let rebuild = !matches!(cache.as_ref(), Some(c) if c.fingerprint == fingerprint && c.eval.threshold() == threshold);
        if rebuild {
            let holdings = self.store.holdings().await?;
            let matches = matches.clone();
            let built = tokio::task::spawn_blocking(move || {
                let mut b = GraphBuilder::with_capacity(holdings.len(), holdings.len());
                for h in &holdings {
                    b.edge(&h.owned_id, &h.owner_id, h.share);
                }
                let graph = b.build();
                for a in graph.anomalies() {
                    warn!(anomaly = %a, "ownership data");
                }
                for a in graph.cycles() {
                    info!(anomaly = %a, "ownership data");
                }
                let mut c = AffiliateCache {
                    fingerprint,
                    eval: Evaluation::full(&graph, &Listed::new(), threshold),
                    graph,
                    listed: Listed::new(),
                    entries: Vec::new(),
                    entry_index: HashMap::new(),
                };
                c.set_listed(&matches);
                c.eval = Evaluation::full(&c.graph, &c.listed, threshold);
                c
            })
            .await
            .map_err(|e| WorkerError::Screening(e.to_string()))?;
            *cache = Some(built);
        }
        let c = cache.as_mut().expect("just set");
        // Nodes whose listing differs from what the evaluation was made with.
        let relisted = if rebuild {
            Vec::new()
        } else {
            c.set_listed(&matches)
        };
        if !relisted.is_empty() {
            c.eval.reevaluate(&c.graph, &c.listed, &relisted);
        }
        let states: HashMap<String, AffiliateState> = self
            .store
            .affiliate_states()
            .await?
            .into_iter()
            .map(|s| (s.supplier_id.clone(), s))
            .collect();
        // The region whose state may have changed. After a rebuild that is everything (the
        // cache was cold or the holdings changed): the stored states are the memory of what
        // was alerted, so a fresh worker misses nothing a previous one left undone.
        let region_nodes: Vec<NodeId> = if rebuild {
            (0..c.graph.len() as u32).map(NodeId).collect()
        } else {
            let start: Vec<NodeId> = match &region {
                Region::Below(ids) => ids.iter().filter_map(|id| c.graph.node(id)).collect(),
                Region::ListingOf(_) => relisted.clone(),
            };
            c.graph.downstream(&start)
        };
        let mut ids: BTreeSet<String> = region_nodes
            .into_iter()
            .filter(|&n| c.eval.is_restricted_by_ownership(n) || states.contains_key(c.graph.id(n)))
            .map(|n| c.graph.id(n).to_string())
            .collect();
        match &region {
            // A holding deleted may leave its owned entity out of the graph altogether.
            Region::Below(below) => {
                ids.extend(below.iter().filter(|id| states.contains_key(*id)).cloned())
            }
            Region::ListingOf(key) => ids.extend(
                states
                    .values()
                    .filter(|s| s.listed.iter().any(|(k, _)| k == key.as_str()))
                    .map(|s| s.supplier_id.clone()),
            ),
        }
        if rebuild {
            ids.extend(states.keys().cloned());
        }
        let mut alerts = Vec::new();
        let mut after: Vec<(String, Option<AffiliateState>)> = Vec::new();
        for id in ids {
            let Some(supplier) = self.store.supplier(&id).await? else {
                continue;
            };
            let node = c.graph.node(&id);
            let state = states.get(&id);
            let restricted =
                node.filter(|&n| c.eval.is_restricted_by_ownership(n) && !c.listed.is_listed(n));
            match (restricted, state) {
                (Some(n), _) => {
                    let Some(alert) = self.affiliate_alert(c, &supplier, n).await? else {
                        continue;
                    };
                    if state.map(|s| s.alert_id.as_str()) == Some(alert.alert_id.as_str()) {
                        continue;
                    }
                    let detail = alert.affiliate.as_ref().expect("affiliate alert");
                    let listed = detail
                        .listed_entries
                        .iter()
                        .map(|e| (e.entity_key.to_string(), e.version))
                        .collect();
                    after.push((
                        id.clone(),
                        Some(AffiliateState {
                            supplier_id: id.clone(),
                            alert_id: alert.alert_id.clone(),
                            listed,
                            share: c.eval.listed_share(n),
                            payload: serde_json::to_string(&alert).unwrap_or_default(),
                        }),
                    ));
                    alerts.push(alert);
                }
                (None, Some(s)) => {
                    let Ok(previous) = serde_json::from_str::<Alert>(&s.payload) else {
                        warn!(supplier = %id, "stored affiliate alert unreadable; state dropped");
                        after.push((id.clone(), None));
                        continue;
                    };
                    let Some(mut detail) = previous.affiliate.clone() else {
                        after.push((id.clone(), None));
                        continue;
                    };
                    let now = node.map(|n| c.eval.listed_share(n)).unwrap_or_default();
                    detail.aggregate_share_percent = now.percent();
                    detail.paths.clear();
                    let alert = Alert::affiliate(
                        AlertKind::Cleared,
                        alert_supplier(&supplier),
                        previous.entry.clone(),
                        detail,
                        format!(
                            "the listed share in {} fell to {now}, below the threshold of {threshold}",
                            supplier.name()
                        ),
                    );
                    after.push((id.clone(), None));
                    alerts.push(alert);
                }
                (None, None) => {}
            }
        }
        drop(cache);
        self.send_all(&alerts, outcome).await?;
        // Only once sent: a failure above leaves the state as it was, and the re-handled event
        // finds the same difference (the ledger keeps what was already delivered).
        for (id, state) in after {
            match state {
                Some(s) => self.store.set_affiliate_state(&s).await?,
                None => self.store.clear_affiliate_state(&id).await?,
            }
        }
        if !alerts.is_empty() {
            info!(alerts = alerts.len(), "affiliates re-evaluated");
        }
        Ok(())
    }

    /// The affiliate alert for the restricted node `n`, or None if an entry behind it is no
    /// longer in the snapshot (a race with a removal; the removal's own event re-evaluates).
    async fn affiliate_alert(
        &self,
        c: &AffiliateCache,
        supplier: &SupplierRecord,
        n: NodeId,
    ) -> Result<Option<Alert>, WorkerError> {
        let mut entries: Vec<(StoredEntry, AffiliateListedEntry)> = Vec::new();
        for &i in c.eval.listed_behind(n) {
            let (key, version) = &c.entries[i as usize];
            let Ok(key) = EntityKey::parse(key) else {
                continue;
            };
            let Some(stored) = self.store.listed_entry(&key).await? else {
                return Ok(None);
            };
            let e = &stored.entry;
            let listed = AffiliateListedEntry {
                entity_key: key,
                version: *version,
                name: e.name.to_string(),
                federal_register_citation: e.federal_register_citation.clone(),
                document_number: stored.last_document.clone(),
                license_requirement: e.license_requirement.clone(),
                license_policy: e.license_policy.clone(),
            };
            entries.push((stored, listed));
        }
        let Some(strictest) = entries
            .iter()
            .max_by_key(|(s, _)| {
                restrictiveness(
                    s.entry.license_requirement.as_deref(),
                    s.entry.license_policy.as_deref(),
                )
            })
            .map(|(s, l)| (s.clone(), l.version))
        else {
            return Ok(None);
        };
        let mut names: HashMap<String, String> = HashMap::new();
        let mut paths = Vec::new();
        let mut lines = Vec::new();
        for path in c.eval.paths(&c.graph, &c.listed, n, MAX_PATHS) {
            let mut hops = Vec::with_capacity(path.len());
            for hop in &path {
                let id = c.graph.id(hop.node).to_string();
                let name = match names.get(&id) {
                    Some(n) => n.clone(),
                    None => {
                        let name = self.node_name(&id).await?;
                        names.insert(id.clone(), name.clone());
                        name
                    }
                };
                let entity_key = c
                    .listed
                    .entries(hop.node)
                    .first()
                    .and_then(|&i| EntityKey::parse(&c.entries[i as usize].0).ok())
                    .filter(|_| hop.share.is_none());
                hops.push(AffiliateHop {
                    id,
                    name,
                    share_percent: hop.share.map(Share::percent),
                    entity_key,
                });
            }
            lines.push(
                hops.iter()
                    .map(|h| match h.share_percent {
                        Some(p) => format!("{p} % {}", h.name),
                        None => format!("{} (listed)", h.name),
                    })
                    .collect::<Vec<_>>()
                    .join(" → "),
            );
            paths.push(AffiliatePath { hops });
        }
        let share = c.eval.listed_share(n);
        let (stored, version) = strictest;
        let detail = AffiliateDetail {
            aggregate_share_percent: share.percent(),
            threshold_percent: c.eval.threshold().percent(),
            paths,
            listed_entries: entries.into_iter().map(|(_, l)| l).collect(),
            license_requirement: stored.entry.license_requirement.clone(),
            license_policy: stored.entry.license_policy.clone(),
        };
        let entry = AlertEntry {
            version,
            ..super::snapshot_alert_entry(&stored, &stored.entry.name.to_string())
        };
        let explanation = format!(
            "{share} of {} is held by listed or restricted owners (threshold {}): {}",
            supplier.name(),
            c.eval.threshold(),
            lines.join("; ")
        );
        Ok(Some(Alert::affiliate(
            AlertKind::Affiliate,
            alert_supplier(supplier),
            entry,
            detail,
            explanation,
        )))
    }

    async fn node_name(&self, id: &str) -> Result<String, WorkerError> {
        if let Some(s) = self.store.supplier(id).await? {
            return Ok(s.name().to_string());
        }
        Ok(self
            .store
            .owner(id)
            .await?
            .map(|o| o.name)
            .unwrap_or_else(|| id.to_string()))
    }
}

impl AffiliateCache {
    /// Replaces the listed nodes with `matches`; returns the nodes whose set of (entry,
    /// version) changed.
    fn set_listed(&mut self, matches: &[crate::store::ListedMatch]) -> Vec<NodeId> {
        let mut next = Listed::new();
        for m in matches {
            let Some(node) = self.graph.node(&m.node_id) else {
                continue;
            };
            let k = (m.entity_key.clone(), m.version);
            let i = match self.entry_index.get(&k) {
                Some(&i) => i,
                None => {
                    let i = self.entries.len() as u32;
                    self.entries.push(k.clone());
                    self.entry_index.insert(k, i);
                    i
                }
            };
            next.insert(node, i);
        }
        let mut changed: BTreeSet<NodeId> = BTreeSet::new();
        for n in next.nodes().chain(self.listed.nodes()) {
            if next.entries(n) != self.listed.entries(n) {
                changed.insert(n);
            }
        }
        self.listed = next;
        changed.into_iter().collect()
    }
}
