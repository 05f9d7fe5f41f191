//! Ownership: who owns the suppliers, and the BIS Affiliates (50 %) rule over it.
//!
//! A supplier whose own name is on no list is still restricted when listed parties own 50 % or
//! more of it, directly or through restricted intermediates, alone or together (90 FR 47201).
//! [`graph`] computes that from ownership records; [`reader`] reads them from a CSV file with
//! one error per bad row. The records arrive by `ownership import` or on the compacted topic
//! `entitywatch.ownership.v1`; the worker (`worker::affiliates`) joins them to the screening
//! decisions and alerts.
//!
//! This module and [`graph`] are domain code: they must never do I/O (the reader takes any
//! `Read`), never touch the store or a clock, and never decide delivery.

pub mod graph;
pub mod reader;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::events::CountryCode;
pub use graph::{Anomaly, Evaluation, Graph, GraphBuilder, Hop, Listed, NodeId, Share};

/// One holding: `owner_id` holds `percent` of `owned_id` (a supplier id or another owner's id).
/// Its JSON is the value of a record on `entitywatch.ownership.v1`, keyed by [`record_key`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnershipRecord {
    pub owned_id: String,
    pub owner_id: String,
    pub owner_name: String,
    #[serde(default)]
    pub owner_country: Option<CountryCode>,
    /// 0 to 100.
    pub percent: f64,
    #[serde(default)]
    pub as_of: Option<NaiveDate>,
    #[serde(default)]
    pub source: Option<String>,
}

impl OwnershipRecord {
    pub fn share(&self) -> Option<Share> {
        Share::from_percent(self.percent)
    }

    /// The key of this holding on the ownership topic (see [`record_key`]).
    pub fn key(&self) -> String {
        record_key(&self.owned_id, &self.owner_id)
    }
}

/// The key of the holding (owned, owner) on the compacted ownership topic: a JSON array of the
/// two ids, so no id can contain a separator that makes two holdings share a key. A tombstone
/// with this key deletes the holding.
pub fn record_key(owned_id: &str, owner_id: &str) -> String {
    serde_json::to_string(&[owned_id, owner_id]).unwrap_or_default()
}

/// The (owned, owner) ids in a topic key made by [`record_key`].
pub fn parse_record_key(key: &str) -> Option<(String, String)> {
    let [owned, owner]: [String; 2] = serde_json::from_str(key).ok()?;
    Some((owned, owner))
}

/// Whether the worker applies the Affiliates rule, and at which threshold
/// (`--affiliates on|off`, `--affiliates-threshold`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffiliateRule {
    Off,
    On { threshold: Share },
}

impl Default for AffiliateRule {
    /// On at 50 %: the rule as published.
    fn default() -> Self {
        AffiliateRule::On {
            threshold: Share::DEFAULT_THRESHOLD,
        }
    }
}

impl AffiliateRule {
    pub fn threshold(self) -> Option<Share> {
        match self {
            AffiliateRule::Off => None,
            AffiliateRule::On { threshold } => Some(threshold),
        }
    }
}

/// How restrictive an entry's licence review policy is, for choosing the one that applies
/// to an affiliate: the rule gives it "the most restrictive licence requirement" of the listed
/// parties behind it. Ordered from least to most restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicySeverity {
    /// No policy text, or one we cannot read.
    Unknown,
    PresumptionOfApproval,
    CaseByCase,
    /// "Presumption of denial" anywhere in the policy, also when other items are case by case:
    /// for the items it covers it is the strictest there is.
    PresumptionOfDenial,
}

impl PolicySeverity {
    pub fn of(policy: Option<&str>) -> PolicySeverity {
        let Some(p) = policy.map(str::to_ascii_lowercase) else {
            return PolicySeverity::Unknown;
        };
        if p.contains("denial") {
            PolicySeverity::PresumptionOfDenial
        } else if p.contains("case-by-case") || p.contains("case by case") {
            PolicySeverity::CaseByCase
        } else if p.contains("approval") {
            PolicySeverity::PresumptionOfApproval
        } else {
            PolicySeverity::Unknown
        }
    }
}

/// The rank of a (licence requirement, policy) pair: the policy first, then a requirement
/// covering all items subject to the EAR over one naming some.
pub fn restrictiveness(requirement: Option<&str>, policy: Option<&str>) -> (PolicySeverity, bool) {
    let all_items = requirement
        .map(|r| r.to_ascii_lowercase().contains("all items"))
        .unwrap_or(false);
    (PolicySeverity::of(policy), all_items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denial_outranks_case_by_case_and_approval() {
        let denial = restrictiveness(
            Some("For all items subject to the EAR."),
            Some("Presumption of denial."),
        );
        let mixed = restrictiveness(
            Some("For all items subject to the EAR."),
            Some(
                "Case-by-case review for ECCNs 1A004.c; presumption of denial for all other items.",
            ),
        );
        let cbc = restrictiveness(
            Some("For all items subject to the EAR."),
            Some("Case-by-case review."),
        );
        let some = restrictiveness(Some("For items on the CCL."), Some("Case-by-case review."));
        let approval = restrictiveness(None, Some("Presumption of approval."));
        assert_eq!(denial, mixed);
        assert!(denial > cbc && cbc > some && some > approval);
        assert!(approval > restrictiveness(None, None));
    }

    #[test]
    fn record_keys_round_trip_whatever_the_ids_hold() {
        let k = record_key("V-1/\"x\"", "O,2");
        assert_eq!(
            parse_record_key(&k),
            Some(("V-1/\"x\"".into(), "O,2".into()))
        );
        assert_ne!(record_key("a", "b/c"), record_key("a/b", "c"));
        assert_eq!(parse_record_key("not json"), None);
    }
}
