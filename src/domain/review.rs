//! An analyst's review of an alert, and the state an alert is in because of it.
//!
//! An alert is *open* until someone confirms, dismisses or escalates it (the latest review
//! wins: an escalated alert can still be confirmed or dismissed), and *cleared* once its entry
//! was removed from the list (a `cleared` notice followed it). A dismissal also tells screening
//! to stay quiet about the pair until the entry is revised; a revision is a new alert, open
//! again. Domain only: the store keeps the reviews, this says what they mean.

use std::fmt;
use std::str::FromStr;

/// What a reviewer decided about an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReviewDecision {
    /// A true match: the supplier is the listed party.
    Confirm,
    /// A false positive: not the listed party.
    Dismiss,
    /// Needs someone with more authority or information.
    Escalate,
}

impl ReviewDecision {
    pub const ALL: [ReviewDecision; 3] = [
        ReviewDecision::Confirm,
        ReviewDecision::Dismiss,
        ReviewDecision::Escalate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReviewDecision::Confirm => "confirm",
            ReviewDecision::Dismiss => "dismiss",
            ReviewDecision::Escalate => "escalate",
        }
    }

    /// The state an alert is in after this decision.
    pub fn status(self) -> AlertStatus {
        match self {
            ReviewDecision::Confirm => AlertStatus::Confirmed,
            ReviewDecision::Dismiss => AlertStatus::Dismissed,
            ReviewDecision::Escalate => AlertStatus::Escalated,
        }
    }
}

impl fmt::Display for ReviewDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown review decision {0:?}: expected confirm, dismiss or escalate")]
pub struct UnknownDecision(pub String);

impl FromStr for ReviewDecision {
    type Err = UnknownDecision;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReviewDecision::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| UnknownDecision(s.to_string()))
    }
}

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertStatus {
    Open,
    Confirmed,
    Dismissed,
    Escalated,
    /// The entry was removed from the list after the alert.
    Cleared,
}

impl AlertStatus {
    pub const ALL: [AlertStatus; 5] = [
        AlertStatus::Open,
        AlertStatus::Confirmed,
        AlertStatus::Dismissed,
        AlertStatus::Escalated,
        AlertStatus::Cleared,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Confirmed => "confirmed",
            AlertStatus::Dismissed => "dismissed",
            AlertStatus::Escalated => "escalated",
            AlertStatus::Cleared => "cleared",
        }
    }

    /// The status of an alert given its latest review and whether its entry was removed
    /// since. A removal clears an alert whatever its review said: the listing it was about is
    /// gone (the review stays in the audit trail).
    pub fn of(latest_review: Option<ReviewDecision>, cleared: bool) -> AlertStatus {
        if cleared {
            return AlertStatus::Cleared;
        }
        latest_review.map_or(AlertStatus::Open, ReviewDecision::status)
    }
}

impl fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown alert status {0:?}: expected open, confirmed, dismissed, escalated or cleared")]
pub struct UnknownStatus(pub String);

impl FromStr for AlertStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AlertStatus::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreviewed_alert_is_open_and_the_latest_review_decides() {
        assert_eq!(AlertStatus::of(None, false), AlertStatus::Open);
        assert_eq!(
            AlertStatus::of(Some(ReviewDecision::Escalate), false),
            AlertStatus::Escalated
        );
        assert_eq!(
            AlertStatus::of(Some(ReviewDecision::Dismiss), false),
            AlertStatus::Dismissed
        );
    }

    #[test]
    fn a_removal_clears_whatever_the_review_said() {
        assert_eq!(
            AlertStatus::of(Some(ReviewDecision::Confirm), true),
            AlertStatus::Cleared
        );
        assert_eq!(AlertStatus::of(None, true), AlertStatus::Cleared);
    }

    #[test]
    fn spellings_round_trip_and_unknown_ones_are_named() {
        for d in ReviewDecision::ALL {
            assert_eq!(d.as_str().parse::<ReviewDecision>(), Ok(d));
        }
        for s in AlertStatus::ALL {
            assert_eq!(s.as_str().parse::<AlertStatus>(), Ok(s));
        }
        assert_eq!(
            "approve".parse::<ReviewDecision>().unwrap_err().to_string(),
            "unknown review decision \"approve\": expected confirm, dismiss or escalate"
        );
        assert!("closed".parse::<AlertStatus>().is_err());
    }
}
