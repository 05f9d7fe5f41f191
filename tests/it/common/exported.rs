//! The metric names entitywatch exports, as the deployment files (tests/it/deploy.rs) may use
//! them and a live scrape (tests/it/operations.rs) must show them.

/// Every `entitywatch_*` metric the service exports (the standard `process_*` metrics come
/// beside them). The rules, the dashboard and README may use only these; tests/it/operations.rs
/// checks this list against a live `/metrics` scrape, so a renamed metric cannot leave an alert
/// or a panel silently empty.
pub const METRICS: &[&str] = &[
    "entitywatch_build_info",
    "entitywatch_watcher_polls_total",
    "entitywatch_watcher_last_successful_poll_timestamp_seconds",
    "entitywatch_watcher_stuck_since_timestamp_seconds",
    "entitywatch_watcher_documents_total",
    "entitywatch_watcher_parser_warnings_total",
    "entitywatch_federal_register_requests_total",
    "entitywatch_federal_register_retries_total",
    "entitywatch_change_events_published_total",
    "entitywatch_document_events_published_total",
    "entitywatch_publish_failures_total",
    "entitywatch_consumer_lag",
    "entitywatch_worker_events_total",
    "entitywatch_screening_duration_seconds",
    "entitywatch_suppliers_screened_total",
    "entitywatch_matches_total",
    "entitywatch_alerts_total",
    "entitywatch_alert_delivery_retries_total",
    "entitywatch_slack_digests_total",
    "entitywatch_slack_digest_alerts_total",
    "entitywatch_dead_letters_total",
    "entitywatch_suppliers",
    "entitywatch_suppliers_last_change_timestamp_seconds",
    "entitywatch_entity_list_entries",
    "entitywatch_entity_list_last_change_timestamp_seconds",
    "entitywatch_list_unmatched_changes_total",
    "entitywatch_list_syncs_total",
    "entitywatch_list_last_sync_timestamp_seconds",
    "entitywatch_list_codified_entries",
    "entitywatch_list_unexplained_entries",
    "entitywatch_list_unreflected_rule_entries",
    "entitywatch_list_differing_entries",
];

/// Histograms of [`METRICS`]: their series carry `_bucket`, `_sum` and `_count` suffixes.
pub const HISTOGRAMS: &[&str] = &["entitywatch_screening_duration_seconds"];
