//! Prometheus metrics: what operators alert on and graph. Every stage of the flow records into
//! the one process-wide registry here; `http` serves it on `GET /metrics`.
//!
//! Names follow Prometheus conventions: the `entitywatch_` prefix, base units (`_seconds`,
//! `_bytes`), `_total` on counters, and labels with a small fixed set of values. A label must
//! never carry a supplier name, an entry key, a URL or anything else unbounded or secret: a
//! webhook URL in a label would leak a credential to every dashboard viewer.
//!
//! Times are exported as Unix timestamps (`..._timestamp_seconds`), not ages, so that a stalled
//! process still shows a growing age in PromQL (`time() - metric`) instead of a frozen one.

use std::sync::LazyLock;

use crate::events::ChangeAction;
use crate::outcome::{
    DeadLetterKind, DocumentOutcome, MatchLabel, PollOutcome, SyncOutcome, WorkerOutcome,
};
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every metric entitywatch exports. Obtain it with [`metrics()`].
pub struct Metrics {
    registry: Registry,
    pub build_info: IntGaugeVec,

    // Watcher.
    pub polls: IntCounterVec,
    pub last_successful_poll: IntGauge,
    pub stuck_since: IntGauge,
    pub documents: IntCounterVec,
    pub parser_warnings: IntCounter,
    pub federal_register_requests: IntCounterVec,
    pub federal_register_retries: IntCounter,
    pub change_events_published: IntCounterVec,
    pub document_events_published: IntCounter,
    pub publish_failures: IntCounter,

    // Worker.
    pub consumer_lag: IntGaugeVec,
    pub worker_events: IntCounterVec,
    pub screening_duration: Histogram,
    pub suppliers_screened: IntCounter,
    pub matches: IntCounterVec,
    pub alerts: IntCounterVec,
    pub alert_delivery_retries: IntCounterVec,
    pub digests: IntCounterVec,
    pub digest_alerts: IntCounterVec,
    pub dead_letters: IntCounterVec,

    // Snapshots.
    pub list_unmatched_changes: IntCounterVec,
    pub suppliers: IntGauge,
    pub suppliers_last_change: IntGauge,
    pub entity_list_entries: IntGauge,
    pub entity_list_last_change: IntGauge,

    // The codified list (list sync and reconcile).
    pub list_syncs: IntCounterVec,
    pub list_last_sync: IntGauge,
    pub list_codified_entries: IntGauge,
    pub list_unexplained_entries: IntGauge,
    pub list_unreflected_rule_entries: IntGauge,
    pub list_differing_entries: IntGauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process-wide metrics. A process is one watcher and/or one worker, so one registry is
/// what Prometheus scrapes; tests that need exact counts scrape a process of their own.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("unique name");
    c
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(c.clone())).expect("unique name");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    registry.register(Box::new(g.clone())).expect("unique name");
    g
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry.register(Box::new(g.clone())).expect("unique name");
    g
}

/// Pre-creates the series of a labelled counter so that they read 0 before the first event:
/// `increase()` over a series that appears at 1 misses that first increment. The values come
/// from the outcome enums, the same spelling the code counts with.
fn touch(c: &IntCounterVec, values: impl IntoIterator<Item = &'static str>) {
    for v in values {
        c.with_label_values(&[v]);
    }
}

fn spellings<T: Copy>(all: &'static [T], as_str: fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|v| as_str(*v)).collect()
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        let build_info = gauge_vec(
            &r,
            "entitywatch_build_info",
            "Always 1; the labels say which entitywatch version is running.",
            &["version"],
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        let polls = counter_vec(
            &r,
            "entitywatch_watcher_polls_total",
            "Federal Register polls by the watcher, by outcome (success, failure).",
            &["outcome"],
        );
        touch(&polls, spellings(PollOutcome::ALL, PollOutcome::as_str));
        let documents = counter_vec(
            &r,
            "entitywatch_watcher_documents_total",
            "Entity List rules the watcher found, by outcome: parsed (events published), \
             unreadable (only a document event published), fetch_failed (retried next poll), \
             already_processed (skipped).",
            &["outcome"],
        );
        touch(
            &documents,
            spellings(DocumentOutcome::ALL, DocumentOutcome::as_str),
        );
        let federal_register_requests = counter_vec(
            &r,
            "entitywatch_federal_register_requests_total",
            "HTTP requests to the Federal Register API, by outcome (success, failure); a \
             request retried three times counts once.",
            &["outcome"],
        );
        touch(
            &federal_register_requests,
            spellings(PollOutcome::ALL, PollOutcome::as_str),
        );
        let change_events_published = counter_vec(
            &r,
            "entitywatch_change_events_published_total",
            "Entity change events the watcher published, by action (added, removed, revised).",
            &["action"],
        );
        touch(
            &change_events_published,
            spellings(ChangeAction::ALL, ChangeAction::as_str),
        );
        let worker_events = counter_vec(
            &r,
            "entitywatch_worker_events_total",
            "Change-topic messages the worker handled, by outcome: processed, failed (will be \
             retried), dead_lettered (not a change event it understands).",
            &["outcome"],
        );
        touch(
            &worker_events,
            spellings(WorkerOutcome::ALL, WorkerOutcome::as_str),
        );
        let matches = counter_vec(
            &r,
            "entitywatch_matches_total",
            "Screening decisions on (supplier, entry) pairs, by decision: alert (a match), \
             dismissed (a match a reviewer dismissed), near_miss (scored close below the \
             threshold, stored for audit), cleared (the entry was removed).",
            &["decision"],
        );
        touch(&matches, spellings(MatchLabel::ALL, MatchLabel::as_str));
        let dead_letters = counter_vec(
            &r,
            "entitywatch_dead_letters_total",
            "Messages written to the dead-letter topic, by kind: event (a message on the \
             change or supplier topic that cannot be handled), alert (an alert no retry could \
             deliver).",
            &["kind"],
        );
        touch(
            &dead_letters,
            spellings(DeadLetterKind::ALL, DeadLetterKind::as_str),
        );

        let list_unmatched_changes = counter_vec(
            &r,
            "entitywatch_list_unmatched_changes_total",
            "Revisions and removals that matched no stored entry by key, by name within the \
             country or by name across countries, by action (revised, removed): a sign of a \
             misread rule or a snapshot that is not the list.",
            &["action"],
        );
        touch(&list_unmatched_changes, ["revised", "removed"]);
        let list_syncs = counter_vec(
            &r,
            "entitywatch_list_syncs_total",
            "Syncs of the codified list (eCFR or CSL) against the snapshot, by outcome: \
             changed (its changes were published), unchanged, failed (nothing published).",
            &["outcome"],
        );
        touch(
            &list_syncs,
            spellings(SyncOutcome::ALL, SyncOutcome::as_str),
        );

        Metrics {
            build_info,
            list_unmatched_changes,
            list_syncs,
            list_last_sync: gauge(
                &r,
                "entitywatch_list_last_sync_timestamp_seconds",
                "Unix time of the last sync of the codified list that completed (changed or \
                 unchanged).",
            ),
            list_codified_entries: gauge(
                &r,
                "entitywatch_list_codified_entries",
                "Entries of the codified list (eCFR Supplement No. 4 to part 744) at the last \
                 reconciliation.",
            ),
            list_unexplained_entries: gauge(
                &r,
                "entitywatch_list_unexplained_entries",
                "Entries of the codified list that no parsed rule explains (not in the \
                 snapshot, or stored by an import or a sync only), at the last reconciliation.",
            ),
            list_unreflected_rule_entries: gauge(
                &r,
                "entitywatch_list_unreflected_rule_entries",
                "Entries a parsed rule added, revised or removed that the codified list, dated \
                 after the rule, does not show: the sign of a misread rule.",
            ),
            list_differing_entries: gauge(
                &r,
                "entitywatch_list_differing_entries",
                "Entries a parsed rule made whose fields the codified list states otherwise, at \
                 the last reconciliation.",
            ),
            polls,
            last_successful_poll: gauge(
                &r,
                "entitywatch_watcher_last_successful_poll_timestamp_seconds",
                "Unix time of the watcher's last poll that completed; alert on time() minus \
                 this.",
            ),
            stuck_since: gauge(
                &r,
                "entitywatch_watcher_stuck_since_timestamp_seconds",
                "Unix time since which the watermark is held by a rule the watcher cannot \
                 fetch (retried every poll); 0 when no rule holds it. Alert on time() minus \
                 this.",
            ),
            documents,
            parser_warnings: counter(
                &r,
                "entitywatch_watcher_parser_warnings_total",
                "Warnings the amendment parser raised (entries it could not fully read, \
                 instructions that disagree with the tables).",
            ),
            federal_register_requests,
            federal_register_retries: counter(
                &r,
                "entitywatch_federal_register_retries_total",
                "Retried Federal Register requests (timeouts, 5xx, 429).",
            ),
            change_events_published,
            document_events_published: counter(
                &r,
                "entitywatch_document_events_published_total",
                "Document-level events published (one per rule, plus public-inspection early \
                 warnings).",
            ),
            publish_failures: counter(
                &r,
                "entitywatch_publish_failures_total",
                "Failed attempts to publish a rule's events to the bus; the rule is retried and \
                 the checkpoint does not advance.",
            ),
            consumer_lag: gauge_vec(
                &r,
                "entitywatch_consumer_lag",
                "Messages on the partition not yet handled by this worker (high watermark \
                 minus the next offset to handle).",
                &["topic", "partition"],
            ),
            worker_events,
            screening_duration: {
                let h = Histogram::with_opts(
                    HistogramOpts::new(
                        "entitywatch_screening_duration_seconds",
                        "Time to screen the suppliers against one entity change (or one \
                         supplier against the list), including the index lookup.",
                    )
                    .buckets(vec![
                        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    ]),
                )
                .expect("valid metric");
                r.register(Box::new(h.clone())).expect("unique name");
                h
            },
            suppliers_screened: counter(
                &r,
                "entitywatch_suppliers_screened_total",
                "Supplier records scored against an entry (candidates from the index).",
            ),
            matches,
            alerts: counter_vec(
                &r,
                "entitywatch_alerts_total",
                "Alerts by sink (kafka, slack, webhook) and outcome: delivered, duplicate \
                 (already delivered, not sent again), dead_lettered (every retry failed).",
                &["sink", "outcome"],
            ),
            alert_delivery_retries: counter_vec(
                &r,
                "entitywatch_alert_delivery_retries_total",
                "Alert delivery attempts that failed and were retried, by sink.",
                &["sink"],
            ),
            digests: counter_vec(
                &r,
                "entitywatch_slack_digests_total",
                "Slack digests (one message for a batch of more than --slack-digest-over \
                 alerts) by sink and outcome: delivered, dead_lettered.",
                &["sink", "outcome"],
            ),
            digest_alerts: counter_vec(
                &r,
                "entitywatch_slack_digest_alerts_total",
                "Alerts carried by delivered Slack digests, by sink (also counted as delivered \
                 in entitywatch_alerts_total).",
                &["sink"],
            ),
            dead_letters,
            suppliers: gauge(
                &r,
                "entitywatch_suppliers",
                "Supplier records in the store.",
            ),
            suppliers_last_change: gauge(
                &r,
                "entitywatch_suppliers_last_change_timestamp_seconds",
                "Unix time of the latest supplier record change in the store.",
            ),
            entity_list_entries: gauge(
                &r,
                "entitywatch_entity_list_entries",
                "Entity List entries in the stored snapshot (not removed).",
            ),
            entity_list_last_change: gauge(
                &r,
                "entitywatch_entity_list_last_change_timestamp_seconds",
                "Unix time of the latest change to the stored Entity List snapshot.",
            ),
            registry: {
                #[cfg(target_os = "linux")]
                {
                    let process = prometheus::process_collector::ProcessCollector::for_self();
                    r.register(Box::new(process)).expect("unique name");
                }
                r
            },
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding to a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_help_and_the_prefix() {
        let families = metrics().registry.gather();
        assert!(families.len() >= 20, "{} families", families.len());
        for f in families {
            let name = f.name();
            assert!(
                name.starts_with("entitywatch_") || name.starts_with("process_"),
                "{name}"
            );
            assert!(!f.help().is_empty(), "{name} has no help");
        }
    }

    #[test]
    fn labelled_counters_start_at_zero() {
        let text = metrics().render();
        assert!(text.contains("entitywatch_watcher_polls_total{outcome=\"failure\"} 0"));
        assert!(text.contains("entitywatch_build_info{version=\""));
    }
}
