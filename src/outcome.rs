//! The outcomes of every step that operators count and auditors read: what a worker did with a
//! message, what a screening decision was, what a delivery came to, what became of a Federal
//! Register document. Each is an enum whose `as_str` is the one spelling used in the store, in
//! logs and in metric labels, so the three can never disagree.
//!
//! Domain vocabulary only: no I/O here, and a variant's spelling never changes once released
//! (stored decisions and dashboards depend on it); a new outcome is a new variant.

use std::fmt;

macro_rules! outcome_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, for pre-creating metric series at 0.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling in the store, the logs and the metric labels.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value spelled `text`, if any.
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

outcome_enum! {
    /// What the worker did with one message of the change or suppliers topic.
    WorkerOutcome {
        /// Handled; its position may be committed.
        Processed => "processed",
        /// Handling failed (store or sink down); it is retried, never skipped.
        Failed => "failed",
        /// Not something entitywatch understands; written to the dead-letter topic, then skipped.
        DeadLettered => "dead_lettered",
    }
}

outcome_enum! {
    /// What one sync of the codified list came to.
    SyncOutcome {
        /// The list differed from the snapshot; its changes were published.
        Changed => "changed",
        /// The list equals the snapshot (or the CSL answered 304): nothing published.
        Unchanged => "unchanged",
        /// Fetching, reading or publishing failed: nothing published, the snapshot untouched.
        Failed => "failed",
    }
}

outcome_enum! {
    /// The stored screening decision on one (supplier, entry, version).
    DecisionKind {
        /// Scored at or above the threshold and not dismissed: an alert.
        Match => "match",
        /// Scored close below the threshold: stored for audit, no alert.
        NearMiss => "near_miss",
        /// A match a reviewer dismissed at this entry version.
        Dismissed => "dismissed",
    }
}

impl DecisionKind {
    /// The `decision` label of `entitywatch_matches_total` (a match is counted as an alert).
    pub fn metric_label(self) -> MatchLabel {
        match self {
            DecisionKind::Match => MatchLabel::Alert,
            DecisionKind::NearMiss => MatchLabel::NearMiss,
            DecisionKind::Dismissed => MatchLabel::Dismissed,
        }
    }
}

outcome_enum! {
    /// The `decision` label values of `entitywatch_matches_total`.
    MatchLabel {
        Alert => "alert",
        Dismissed => "dismissed",
        NearMiss => "near_miss",
        /// A supplier alerted on an entry that was removed was sent a `cleared` notice.
        Cleared => "cleared",
    }
}

outcome_enum! {
    /// What one (alert, sink) delivery came to.
    DeliveryOutcome {
        Delivered => "delivered",
        /// The ledger says the sink already accepted it: not sent again.
        Duplicate => "duplicate",
        /// Every attempt failed: the alert went to the dead-letter topic.
        DeadLettered => "dead_lettered",
        /// The sink was down: parked in the outbox, sent later (and counted again then).
        Queued => "queued",
    }
}

outcome_enum! {
    /// What became of one Entity List rule the watcher found.
    DocumentOutcome {
        /// Parsed; its entity changes and document event were published.
        Parsed => "parsed",
        /// Fetched but unreadable: only its document event was published, so it is still seen.
        Unreadable => "unreadable",
        /// Could not be fetched: it stays unprocessed and is retried at the next poll.
        FetchFailed => "fetch_failed",
        /// Processed by an earlier poll: skipped.
        AlreadyProcessed => "already_processed",
    }
}

outcome_enum! {
    /// How one Federal Register poll ended.
    PollOutcome {
        Success => "success",
        Failure => "failure",
    }
}

outcome_enum! {
    /// The `kind` label of `entitywatch_dead_letters_total`.
    DeadLetterKind {
        /// A message on the change or supplier topic that cannot be handled.
        Event => "event",
        /// An alert no retry could deliver.
        Alert => "alert",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_parses_back_from_its_spelling() {
        for o in WorkerOutcome::ALL {
            assert_eq!(WorkerOutcome::parse(o.as_str()), Some(*o));
        }
        for d in DecisionKind::ALL {
            assert_eq!(DecisionKind::parse(d.as_str()), Some(*d));
        }
        for d in DocumentOutcome::ALL {
            assert_eq!(DocumentOutcome::parse(&d.to_string()), Some(*d));
        }
        assert_eq!(DeliveryOutcome::parse("nope"), None);
    }

    #[test]
    fn a_match_is_counted_as_an_alert() {
        assert_eq!(DecisionKind::Match.metric_label().as_str(), "alert");
        assert_eq!(DecisionKind::NearMiss.metric_label().as_str(), "near_miss");
    }
}
